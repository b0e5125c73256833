//! The store's records (users, roles, groups, keys, devices, policies)
//! and the rules on them that do not depend on a backend: IAM's name and
//! path shapes, tag limits, policy version ids, and rewriting trust
//! policies when a principal goes.

use serde_json::Value;

use crate::{PrincipalKind, Result, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub created: i64,
    pub tags: Vec<(String, String)>,
}

/// A user's console password (IAM's login profile), without its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginProfile {
    /// The user's name as stored.
    pub user: String,
    /// Epoch seconds.
    pub created: i64,
    /// When the password was last set (creation, update or change).
    pub changed: i64,
    /// The user must choose a new password at the next sign-in.
    pub reset_required: bool,
    /// The last successful sign-in with it.
    pub last_used: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub created: i64,
    pub trust_policy: String,
    pub max_session_duration: i64,
    pub description: String,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub user: String,
    pub active: bool,
    pub created: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfaDevice {
    pub serial: String,
    pub user: Option<String>,
    pub enabled_at: Option<i64>,
}

/// AWS's quota: versions per managed policy.
pub const MAX_POLICY_VERSIONS: i64 = 5;

/// A customer managed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub arn: String,
    pub name: String,
    pub id: String,
    pub path: String,
    /// `v1`, `v2`, ...
    pub default_version: String,
    /// Users, groups and roles it is attached to.
    pub attachment_count: i64,
    pub description: String,
    pub created: i64,
    pub updated: i64,
    pub tags: Vec<(String, String)>,
}

/// One version of a managed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    /// `v1`, `v2`, ...
    pub version_id: String,
    pub document: String,
    pub is_default: bool,
    pub created: i64,
}

/// A user, group or role a managed policy is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyEntity {
    pub kind: PrincipalKind,
    pub name: String,
    pub id: String,
    pub path: String,
}

/// `v3` → 3.
pub(crate) fn version_number(version_id: &str) -> Option<i64> {
    version_id
        .strip_prefix('v')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.len() <= 9)
        .and_then(|n| n.parse().ok())
}

/// IAM names: 1-64 characters of `[\w+=,.@-]`.
pub fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

pub(crate) fn valid_path(path: &str) -> bool {
    path.starts_with('/') && path.ends_with('/') && path.len() <= 512 && !path.contains("//")
}

/// Adds `new` to `existing`, replacing the value of a key `existing` has.
/// IAM compares tag keys without case (and so do the condition keys
/// `aws:PrincipalTag/KEY` and `iam:ResourceTag/KEY`): a key that differs
/// from an existing one only in case is that key, and one request may not
/// give a key twice. At most 50 tags in all.
pub(crate) fn merge_tags(
    existing: &mut Vec<(String, String)>,
    new: &[(String, String)],
) -> Result<()> {
    for (i, (k, v)) in new.iter().enumerate() {
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(StoreError::InvalidInput(
                "tag keys are 1-128 characters, values up to 256",
            ));
        }
        if new[..i].iter().any(|(o, _)| o.eq_ignore_ascii_case(k)) {
            return Err(StoreError::InvalidInput(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ));
        }
    }
    for (k, v) in new {
        // Kept once, should an older version have stored a key twice.
        let mut found = false;
        existing.retain_mut(|(ek, ev)| {
            if !ek.eq_ignore_ascii_case(k) {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            ev.clone_from(v);
            true
        });
        if !found {
            existing.push((k.clone(), v.clone()));
        }
    }
    if existing.len() > 50 {
        return Err(StoreError::LimitExceeded(
            "cannot exceed quota for TagsPerUser: 50",
        ));
    }
    Ok(())
}

/// The tags of a new user, role or policy, checked as [`merge_tags`]
/// checks them.
pub(crate) fn new_tags(tags: &[(String, String)]) -> Result<Vec<(String, String)>> {
    let mut checked = Vec::with_capacity(tags.len());
    merge_tags(&mut checked, tags)?;
    Ok(checked)
}

/// Removes tags by key (case-insensitively, as IAM compares tag keys).
pub(crate) fn remove_tags(tags: &mut Vec<(String, String)>, keys: &[&str]) {
    tags.retain(|(k, _)| !keys.iter().any(|r| r.eq_ignore_ascii_case(k)));
}

/// `document` with every `Principal.AWS` and `NotPrincipal.AWS` entry equal to `arn` (ignoring
/// ASCII case, as IAM names do) replaced by `id`; `None` if none is.
pub fn replace_principal(document: &str, arn: &str, id: &str) -> Option<String> {
    let mut doc: Value = serde_json::from_str(document).ok()?;
    let mut changed = false;
    let mut replace = |v: &mut Value| {
        if let Value::String(s) = v
            && s.eq_ignore_ascii_case(arn)
        {
            *v = Value::String(id.to_owned());
            changed = true;
        }
    };
    let statements: Vec<&mut Value> = match doc.get_mut("Statement")? {
        Value::Array(list) => list.iter_mut().collect(),
        one => vec![one],
    };
    for statement in statements {
        for member in ["Principal", "NotPrincipal"] {
            let Some(aws) = statement.get_mut(member).and_then(|p| p.get_mut("AWS")) else {
                continue;
            };
            match aws {
                Value::Array(list) => list.iter_mut().for_each(&mut replace),
                one => replace(one),
            }
        }
    }
    changed.then(|| doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_are_one_key_whatever_their_case() {
        let tags = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        for twice in [
            tags(&[("team", "blue"), ("Team", "red")]),
            tags(&[("team", "blue"), ("team", "red")]),
        ] {
            assert!(matches!(new_tags(&twice), Err(StoreError::InvalidInput(_))));
            let mut existing = Vec::new();
            assert!(merge_tags(&mut existing, &twice).is_err());
            assert!(existing.is_empty());
        }
        let mut existing = new_tags(&tags(&[("team", "blue")])).unwrap();
        merge_tags(&mut existing, &tags(&[("TEAM", "red")])).unwrap();
        assert_eq!(existing, tags(&[("team", "red")]));
        // A key stored twice by an older version is kept once.
        let mut legacy = tags(&[("team", "blue"), ("env", "x"), ("Team", "red")]);
        merge_tags(&mut legacy, &tags(&[("TEAM", "green")])).unwrap();
        assert_eq!(legacy, tags(&[("team", "green"), ("env", "x")]));
        let many: Vec<(String, String)> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(matches!(new_tags(&many), Err(StoreError::LimitExceeded(_))));
        assert_eq!(new_tags(&many[..50]).unwrap().len(), 50);
    }

    #[test]
    fn principal_arns_become_unique_ids() {
        let arn = "arn:aws:iam::123456789012:user/olduser";
        let one = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/OldUser"},"Action":"sts:AssumeRole"}}"#;
        let out = replace_principal(one, arn, "AIDAX").unwrap();
        assert!(out.contains(r#""AWS":"AIDAX""#), "{out}");
        let many = r#"{"Statement":[{"Principal":{"AWS":["arn:aws:iam::123456789012:user\/olduser","arn:aws:iam::123456789012:user/other"]}},{"Principal":"*"}]}"#;
        let out = replace_principal(many, arn, "AIDAX").unwrap();
        assert!(
            out.contains(r#"["AIDAX","arn:aws:iam::123456789012:user/other"]"#),
            "{out}"
        );
        let not = r#"{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/olduser"}}]}"#;
        let out = replace_principal(not, arn, "AIDAX").unwrap();
        assert!(out.contains(r#""NotPrincipal":{"AWS":"AIDAX"}"#), "{out}");
        for untouched in [
            r#"{"Statement":[{"Principal":{"AWS":"arn:aws:iam::123456789012:user/olduser2"}}]}"#,
            r#"{"Statement":[{"NotPrincipal":{"Service":"arn:aws:iam::123456789012:user/olduser"}}]}"#,
            "not json",
        ] {
            assert_eq!(replace_principal(untouched, arn, "AIDAX"), None);
        }
    }

    #[test]
    fn version_numbers() {
        assert_eq!(version_number("v1"), Some(1));
        assert_eq!(version_number("v12"), Some(12));
        for bad in ["", "v", "1", "v-1", "v1a", "V1", "v9999999999"] {
            assert_eq!(version_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn tags_are_removed_by_key_ignoring_case() {
        let mut tags = vec![
            ("Team".to_owned(), "a".to_owned()),
            ("k".into(), "v".into()),
        ];
        remove_tags(&mut tags, &["team", "absent"]);
        assert_eq!(tags, [("k".to_owned(), "v".to_owned())]);
    }
}
