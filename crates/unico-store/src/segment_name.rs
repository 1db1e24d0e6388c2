//! Segment names are unique per application, compared without case: "VIPs" and "vips" would
//! be two audiences no marketer can tell apart in a list. Both backends check a new or
//! changed name against the application's others inside the writing transaction.

use crate::error::StoreError;

/// `Conflict` if `name` equals, without case, the name of another segment of the
/// application (`existing`: each segment's id and name; `except`: the segment being
/// renamed).
pub fn check_unique(
    name: &str,
    except: Option<i64>,
    existing: impl IntoIterator<Item = (i64, String)>,
) -> Result<(), StoreError> {
    let wanted = name.to_lowercase();
    for (id, other) in existing {
        if Some(id) != except && other.to_lowercase() == wanted {
            return Err(StoreError::Conflict(format!(
                "a segment named \"{other}\" exists already in this application (names are compared without case); choose another name"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_compared_without_case_and_a_segment_keeps_its_own() {
        let existing = || vec![(1, "VIPs".to_owned()), (2, "Ñandú fans".to_owned())];
        assert!(check_unique("vips", None, existing()).is_err());
        assert!(check_unique("ñANDÚ FANS", None, existing()).is_err());
        assert!(
            check_unique("VIPS", Some(1), existing()).is_ok(),
            "renaming itself"
        );
        assert!(check_unique("VIPS", Some(2), existing()).is_err());
        assert!(check_unique("VIPs 2", None, existing()).is_ok());
    }
}
