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

pub(crate) fn merge_tags(
    existing: &mut Vec<(String, String)>,
    new: &[(String, String)],
) -> Result<()> {
    for (k, v) in new {
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(StoreError::InvalidInput(
                "tag keys are 1-128 characters, values up to 256",
            ));
        }
        match existing
            .iter_mut()
            .find(|(ek, _)| ek.eq_ignore_ascii_case(k))
        {
            Some(slot) => slot.1 = v.clone(),
            None => existing.push((k.clone(), v.clone())),
        }
    }
    if existing.len() > 50 {
        return Err(StoreError::LimitExceeded(
            "cannot exceed quota for TagsPerUser: 50",
        ));
    }
    Ok(())
}

/// Removes tags by key (case-insensitively, as IAM compares tag keys).
pub(crate) fn remove_tags(tags: &mut Vec<(String, String)>, keys: &[&str]) {
    tags.retain(|(k, _)| !keys.iter().any(|r| r.eq_ignore_ascii_case(k)));
}

/// `document` with every `Principal.AWS` entry equal to `arn` (ignoring
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
        let Some(aws) = statement
            .get_mut("Principal")
            .and_then(|p| p.get_mut("AWS"))
        else {
            continue;
        };
        match aws {
            Value::Array(list) => list.iter_mut().for_each(&mut replace),
            one => replace(one),
        }
    }
    changed.then(|| doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
