//! Resource tags as IAM policies see them. Condition keys name a tag
//! without case (`aws:ResourceTag/team` is `aws:ResourceTag/Team`), so two
//! keys that differ only in case would be one key with two values to a
//! policy, and whichever came last would hide the other: an ABAC Allow or
//! Deny undone by adding `Team` beside `team`. Every service that keeps
//! tags (Secrets Manager, KMS, Parameter Store) merges them here, and maps
//! [`Conflict`] to its own error.

/// Why tags cannot be merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// The request gives this key twice (in any case).
    Duplicate(String),
    /// The resource has `existing`, which differs from the given key only
    /// in case.
    CaseVariant { existing: String, given: String },
}

/// The first key `tags` gives twice, ignoring case.
pub fn duplicate(tags: &[(String, String)]) -> Option<&str> {
    tags.iter()
        .enumerate()
        .find(|(i, (k, _))| tags[..*i].iter().any(|(o, _)| o.eq_ignore_ascii_case(k)))
        .map(|(_, (k, _))| k.as_str())
}

/// `existing` with `tags` added or replacing the values of the same keys.
/// A key the resource has in another case is refused, as is a request
/// giving a key twice; a key stored twice by an older version is kept
/// once.
pub fn merge(
    existing: &[(String, String)],
    tags: &[(String, String)],
) -> Result<Vec<(String, String)>, Conflict> {
    if let Some(k) = duplicate(tags) {
        return Err(Conflict::Duplicate(k.to_owned()));
    }
    let mut merged = existing.to_vec();
    for (k, v) in tags {
        if let Some((other, _)) = merged
            .iter()
            .find(|(key, _)| key != k && key.eq_ignore_ascii_case(k))
        {
            return Err(Conflict::CaseVariant {
                existing: other.clone(),
                given: k.clone(),
            });
        }
        let mut found = false;
        merged.retain_mut(|(key, value)| {
            if key != k {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            value.clone_from(v);
            true
        });
        if !found {
            merged.push((k.clone(), v.clone()));
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn keys_are_one_key_whatever_their_case() {
        let have = tags(&[("team", "blue"), ("env", "dev")]);
        assert_eq!(
            merge(&have, &tags(&[("team", "red"), ("owner", "a")])),
            Ok(tags(&[("team", "red"), ("env", "dev"), ("owner", "a")]))
        );
        assert_eq!(
            merge(&have, &tags(&[("Team", "red")])),
            Err(Conflict::CaseVariant {
                existing: "team".into(),
                given: "Team".into()
            })
        );
        assert_eq!(
            merge(&have, &tags(&[("a", "1"), ("A", "2")])),
            Err(Conflict::Duplicate("A".into()))
        );
        // A key an older version stored twice is kept once.
        let twice = tags(&[("k", "1"), ("k", "2")]);
        assert_eq!(merge(&twice, &tags(&[("k", "3")])), Ok(tags(&[("k", "3")])));
        assert_eq!(duplicate(&tags(&[("x", "1"), ("y", "2")])), None);
    }
}
