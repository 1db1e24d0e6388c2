//! Events addressed by an identity instead of a customerId, on PostgreSQL: the embedded
//! backend's rules (`sqlite/events.rs`), resolved once per batch before its customers are
//! looked up.
//!
//! An identity's holder is found and locked against deletion (`FOR KEY SHARE`, as every
//! event write locks its customers) in one statement; a holder merged away while the lock
//! was awaited is gone when the wait ends, so the identities not found are looked up once
//! more (the merge moved them to its survivor). An item whose identity nobody holds lands
//! on the anonymous customer it names, created like any customer of the batch (an alias
//! leads to its survivor); once the batch's events are stored, the identity is given to
//! that customer. If a concurrent write gave it to someone first, the whole batch runs
//! again ([`Fail::Again`]), and then finds the holder.

use std::collections::HashMap;

use unico_core::{AppId, Customer, CustomerId, Identity};

use super::conn::{Fail, Res};
use super::identities;
use super::writes::Wx;
use crate::error::StoreError;
use crate::events::{EventOutcome, NewEvent};

/// Lookups of a batch's identities: a second one finds those whose holder was merged while
/// the first waited for it.
const HOLDER_ROUNDS: usize = 2;

/// The items of a batch addressed by an identity, and where each lands.
#[derive(Default)]
pub struct Addressed {
    /// The customerId each such item lands on, by item.
    names: HashMap<usize, CustomerId>,
    /// Identities nobody held, the anonymous customer each lands on, and their items.
    unheld: Vec<(Identity, CustomerId, Vec<usize>)>,
}

impl Addressed {
    /// Finds where the batch's items addressed by an identity land (their type accepted);
    /// answers those naming an identity nobody holds, without an anonymous customer to
    /// create, as refused (`NotFound`). In batch order, as the embedded backend: the first
    /// item of an identity nobody holds names its anonymous customer, later ones follow it.
    pub fn resolve(
        w: &mut Wx<'_, '_>,
        app: AppId,
        events: &[NewEvent],
        types: &[Result<i64, StoreError>],
        answers: &mut [Option<Result<EventOutcome, StoreError>>],
    ) -> Res<Addressed> {
        let items: Vec<(usize, &crate::ByIdentity)> = events
            .iter()
            .enumerate()
            .filter(|(i, _)| types[*i].is_ok())
            .filter_map(|(i, e)| e.by_identity.as_deref().map(|by| (i, by)))
            .collect();
        let mut out = Addressed::default();
        if items.is_empty() {
            return Ok(out);
        }
        let holders = holders(w, app, items.iter().map(|(_, by)| &by.identity))?;
        let mut made: HashMap<&Identity, usize> = HashMap::new();
        for (i, by) in items {
            if let Some(holder) = holders.get(&by.identity) {
                out.names.insert(i, holder.clone());
            } else if let Some(&u) = made.get(&by.identity) {
                out.names.insert(i, out.unheld[u].1.clone());
                out.unheld[u].2.push(i);
            } else if let Some(anonymous) = &by.anonymous {
                made.insert(&by.identity, out.unheld.len());
                out.unheld
                    .push((by.identity.clone(), anonymous.clone(), vec![i]));
                out.names.insert(i, anonymous.clone());
            } else {
                answers[i] = Some(Err(StoreError::NotFound(format!(
                    "a customer holding the identity {} {} (link it to a customer first, or turn on anonymous profiles for the application)",
                    by.identity.kind,
                    unico_core::value::excerpt(by.identity.value())
                ))));
            }
        }
        Ok(out)
    }

    /// The customerId item `i` lands on, if it is addressed by an identity.
    pub fn name(&self, i: usize) -> Option<&CustomerId> {
        self.names.get(&i)
    }

    /// Once the batch's events are stored: gives each identity nobody held to the customer
    /// its stored items landed on, marking it anonymous if the batch created it (`kept`).
    /// Identities whose items all turned out duplicates are left alone.
    pub fn attach(
        &self,
        w: &mut Wx<'_, '_>,
        app: AppId,
        customer_rows: &HashMap<&str, i64>,
        kept: &[(usize, Customer)],
        answers: &[Option<Result<EventOutcome, StoreError>>],
        now: i64,
    ) -> Res<()> {
        for (identity, name, items) in &self.unheld {
            let stored = items
                .iter()
                .any(|&i| matches!(&answers[i], Some(Ok(outcome)) if !outcome.duplicate));
            if !stored {
                continue;
            }
            let id = customer_rows
                .get(name.as_str())
                .copied()
                .ok_or_else(|| StoreError::Internal("an anonymous customer was lost".into()))?;
            if kept.iter().any(|(_, c)| c.id == id) {
                identities::mark_anonymous(&mut w.db, id)?;
            }
            if !identities::attach(&mut w.db, app, id, identity, now)? {
                return Err(Fail::Again("the holder of an identity"));
            }
        }
        Ok(())
    }
}

/// The customerIds of the identities' holders, each locked against deletion.
fn holders<'i>(
    w: &mut Wx<'_, '_>,
    app: AppId,
    wanted: impl Iterator<Item = &'i Identity>,
) -> Res<HashMap<Identity, CustomerId>> {
    let mut left: Vec<&Identity> = Vec::new();
    for identity in wanted {
        if !left.contains(&identity) {
            left.push(identity);
        }
    }
    let mut found: HashMap<Identity, CustomerId> = HashMap::new();
    for _ in 0..HOLDER_ROUNDS {
        let kinds: Vec<&str> = left.iter().map(|i| i.kind.as_str()).collect();
        let values: Vec<&str> = left.iter().map(|i| i.value()).collect();
        for row in w.db.query(
            "SELECT r.ord, c.customer_id FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS r(kind, value, ord)
             CROSS JOIN LATERAL (SELECT c.customer_id FROM identities i JOIN customers c ON c.id = i.customer
                 WHERE i.app_id = $1 AND i.kind = r.kind AND i.value = r.value FOR KEY SHARE OF c) c",
            &[&app.0, &kinds, &values],
        )? {
            let ord: i64 = row.try_get(0)?;
            let identity = usize::try_from(ord - 1)
                .ok()
                .and_then(|k| left.get(k))
                .ok_or_else(|| StoreError::Internal("an identity lookup went astray".into()))?;
            let customer_id = CustomerId::parse(row.try_get(1)?)
                .map_err(|e| super::rows::corrupt("customerId", e))?;
            found.insert((*identity).clone(), customer_id);
        }
        left.retain(|i| !found.contains_key(*i));
        if left.is_empty() {
            break;
        }
    }
    Ok(found)
}
