//! An application's identity settings (the kinds it takes, whether unknown identities
//! create anonymous customers) and the rules that turn what a client sends into an
//! [`Identity`].

use sha2::{Digest, Sha256};
use unico_core::identity::{MAX_DECLARED_IDENTITY_KINDS, identity_kinds};
use unico_core::{AppId, CustomerId, Identity, IdentityKind};
use unico_store::identities::{anonymous_profiles_key, declared_kinds_key, parse_declared_kinds};
use unico_store::{ByIdentity, Store, StoreError};

use crate::error::ApiError;

/// Prefix of the customerId of every anonymous customer.
pub const ANONYMOUS_PREFIX: &str = "anon-";

/// What an application takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRules {
    /// The default kinds, then those the application declared.
    pub kinds: Vec<IdentityKind>,
    /// An event for an identity nobody holds creates an anonymous customer (the default);
    /// off, such an event is refused.
    pub anonymous_profiles: bool,
}

impl IdentityRules {
    /// The rules of `app` as stored.
    pub fn of(s: &dyn Store, app: AppId) -> Result<Self, StoreError> {
        let declared = s
            .get_meta(&declared_kinds_key(app))?
            .map(|t| parse_declared_kinds(&t))
            .unwrap_or_default();
        let anonymous_profiles =
            s.get_meta(&anonymous_profiles_key(app))?.as_deref() != Some("false");
        Ok(Self {
            kinds: identity_kinds(&declared),
            anonymous_profiles,
        })
    }

    /// The identity of `kind` and `value` if the application takes the kind and the value
    /// keeps its rule; the message says which part is wrong.
    pub fn identity(&self, kind: &str, value: &str) -> Result<Identity, (&'static str, String)> {
        let parsed = IdentityKind::parse(kind).map_err(|e| ("kind", e.to_string()))?;
        if !self.kinds.contains(&parsed) {
            let names: Vec<&str> = self.kinds.iter().map(IdentityKind::as_str).collect();
            return Err((
                "kind",
                format!(
                    "\"{}\" is not an identity kind of this application; it takes {} (declare more with PATCH /v1/apps/{{app}} {{\"identity_kinds\": [...]}})",
                    unico_core::value::excerpt(kind),
                    names.join(", ")
                ),
            ));
        }
        Identity::new(parsed, value).map_err(|e| ("value", e.to_string()))
    }

    /// How an event naming `identity` finds its customer under these rules.
    pub fn by_identity(&self, identity: Identity) -> ByIdentity {
        let anonymous = self.anonymous_profiles.then(|| anonymous_id(&identity));
        ByIdentity {
            identity,
            anonymous,
        }
    }
}

/// The customerId of the anonymous customer created for `identity`: `anon-` and the first
/// 20 hexadecimal digits of the SHA-256 of `kind:value`. The same identity always gives
/// the same id, so concurrent first events of one device create one customer.
pub fn anonymous_id(identity: &Identity) -> CustomerId {
    let digest = Sha256::digest(format!("{}:{}", identity.kind, identity.value()).as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    // 25 ASCII characters: always a valid customerId.
    CustomerId::parse(&format!("{ANONYMOUS_PREFIX}{hex}")).unwrap_or_else(|_| unreachable!())
}

/// The kinds an application declares beyond the default ones: valid names, at most
/// [`MAX_DECLARED_IDENTITY_KINDS`], each once, none a default one.
pub fn parse_declared(names: &[String]) -> Result<Vec<IdentityKind>, ApiError> {
    if names.len() > MAX_DECLARED_IDENTITY_KINDS {
        return Err(ApiError::invalid(
            "identity_kinds",
            format!("an application declares at most {MAX_DECLARED_IDENTITY_KINDS} identity kinds"),
        ));
    }
    let mut out: Vec<IdentityKind> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let kind = IdentityKind::parse(name)
            .map_err(|e| ApiError::invalid(format!("identity_kinds[{i}]"), e.to_string()))?;
        if !kind.is_default() && !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok(out)
}

/// Stores the declared kinds.
pub fn store_declared(s: &dyn Store, app: AppId, kinds: &[IdentityKind]) -> Result<(), StoreError> {
    let text: Vec<&str> = kinds.iter().map(IdentityKind::as_str).collect();
    s.set_meta(&declared_kinds_key(app), &text.join(","))
}

/// Stores whether unknown identities create anonymous customers.
pub fn store_anonymous(s: &dyn Store, app: AppId, on: bool) -> Result<(), StoreError> {
    s.set_meta(
        &anonymous_profiles_key(app),
        if on { "true" } else { "false" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_ids_are_stable_and_distinct() {
        let a = Identity::new(IdentityKind::device_id(), "phone-1").unwrap();
        let b = Identity::new(IdentityKind::device_id(), "phone-2").unwrap();
        assert_eq!(anonymous_id(&a), anonymous_id(&a.clone()));
        assert_ne!(anonymous_id(&a), anonymous_id(&b));
        assert_eq!(anonymous_id(&a).as_str().len(), 25);
        assert!(anonymous_id(&a).as_str().starts_with("anon-"));
    }

    #[test]
    fn kinds_outside_the_application_are_refused_with_the_list() {
        let rules = IdentityRules {
            kinds: identity_kinds(&[IdentityKind::parse("card").unwrap()]),
            anonymous_profiles: true,
        };
        assert!(rules.identity("card", "X1").is_ok());
        let (part, message) = rules.identity("passport", "X").unwrap_err();
        assert_eq!(part, "kind");
        assert!(
            message.contains("device_id, email, phone, external_code, card"),
            "{message}"
        );
        assert_eq!(rules.identity("email", "nope").unwrap_err().0, "value");
    }
}
