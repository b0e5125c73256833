//! What both backends must agree on, written once: the sealing contexts
//! (a store moved between backends opens only if they match byte for
//! byte), the errors IAM's callers see, and small conversions.

use crate::model::{new_tags, valid_path};
use crate::{Fingerprint, StoreError, User, valid_name};

/// The vault check written at creation; a wrong master key fails to open it.
pub(crate) const VAULT_CHECK: &[u8] = b"latchkey vault check";
/// The database CA's private key.
pub(crate) const DATABASE_CA_CONTEXT: &[u8] = b"latchkey database CA";
/// The audit trail's signing key.
pub(crate) const AUDIT_KEY_CONTEXT: &[u8] = b"latchkey audit signing key";

/// Every table and column holding sealed blobs: what
/// [`crate::Backend::rewrap_all`] re-wraps.
pub(crate) const SEALED_COLUMNS: &[(&str, &str)] = &[
    ("access_keys", "secret"),
    ("mfa_devices", "seed"),
    ("cluster_keys", "material"),
    ("database_passwords", "secret"),
    ("database_passwords", "next_secret"),
    ("database_ca", "key"),
    ("audit_key", "key"),
    ("vault_check", "value"),
    ("secret_values", "value"),
    ("kms_key_materials", "material"),
    ("parameter_values", "value"),
    ("login_profiles", "hash"),
    ("password_history", "hash"),
    ("console_sessions", "state"),
];

/// The sealing context of `user`'s current upstream password.
/// `vault` sealing with the master key the nodes agreed on (`designated`),
/// if they did.
pub(crate) fn sealing_as_agreed(
    mut vault: crate::Vault,
    designated: Option<u32>,
) -> crate::Result<crate::Vault> {
    if let Some(id) = designated {
        vault
            .seal_with(id)
            .map_err(|_| crate::StoreError::SealingKeyMissing(id))?;
    }
    Ok(vault)
}

pub(crate) fn current_login_context(database: &str, user: &str) -> String {
    format!("{database}/{user}")
}

/// The sealing context of `user`'s next upstream password.
pub(crate) fn next_login_context(database: &str, user: &str) -> String {
    format!("{database}/{user}/next")
}

/// A KMS key's material version: material moved to another row does not
/// open.
pub(crate) fn kms_context(id: &str, version: u32) -> Vec<u8> {
    format!("kms/{id}/{version}").into_bytes()
}

/// A parameter's value version.
pub(crate) fn parameter_context(name: &str, version: u64) -> Vec<u8> {
    format!("ssm/{name}/{version}").into_bytes()
}

/// A secret's value version.
pub(crate) fn secret_context(arn: &str, version: &str) -> Vec<u8> {
    format!("secretsmanager/{arn}/{version}").into_bytes()
}

/// A user's console password hashes (bound to the user's unique id).
pub(crate) fn login_profile_context(user: &User) -> Vec<u8> {
    format!("login-profile/{}", user.id).into_bytes()
}

/// A login user as stored: `NULL` when it is the client user itself.
pub(crate) fn other_user<'a>(user: &str, login_user: &'a str) -> Option<&'a str> {
    (login_user != user).then_some(login_user)
}

/// Fingerprints are stored as signed 64-bit integers, bit for bit.
pub(crate) fn fingerprint_to_sql(fp: Fingerprint) -> i64 {
    fp.0 as i64
}

pub(crate) fn fingerprint_from_sql(v: i64) -> Fingerprint {
    Fingerprint(v as u64)
}

/// A parameter version as a signed integer; versions never come near
/// the limit.
pub(crate) fn sql_version(version: u64) -> crate::Result<i64> {
    i64::try_from(version).map_err(|_| StoreError::InvalidInput("parameter version out of range"))
}

/// The most classification tags one database object carries.
pub(crate) const MAX_TAGS_PER_OBJECT: i64 = 50;

/// KMS key material kept unsealed in memory, at most (keys × versions).
pub(crate) const MATERIAL_CACHE: usize = 4096;

pub(crate) fn no_database(database: &str) -> StoreError {
    StoreError::NoSuchEntity {
        kind: "database",
        name: database.to_owned(),
    }
}

pub(crate) fn no_policy(arn: &str) -> StoreError {
    StoreError::NoSuchEntity {
        kind: "policy",
        name: arn.to_owned(),
    }
}

pub(crate) fn no_version(arn: &str, version_id: &str) -> StoreError {
    StoreError::NoSuchEntity {
        kind: "policy version",
        name: format!("{arn} {version_id}"),
    }
}

pub(crate) fn no_profile(user: &str) -> StoreError {
    StoreError::NoSuchEntity {
        kind: "login profile for user",
        name: user.to_owned(),
    }
}

/// IAM's rules for a new user: its tags, checked.
pub(crate) fn check_new_user(
    name: &str,
    path: &str,
    tags: &[(String, String)],
) -> crate::Result<Vec<(String, String)>> {
    if !valid_name(name, 64) {
        return Err(StoreError::InvalidInput(
            "user names are 1-64 characters of [A-Za-z0-9_+=,.@-]",
        ));
    }
    check_path(path)?;
    new_tags(tags)
}

/// IAM's rules for a new role: its tags, checked.
pub(crate) fn check_new_role(
    name: &str,
    path: &str,
    max_session_duration: i64,
    tags: &[(String, String)],
) -> crate::Result<Vec<(String, String)>> {
    if !valid_name(name, 64) {
        return Err(StoreError::InvalidInput(
            "role names are 1-64 characters of [A-Za-z0-9_+=,.@-]",
        ));
    }
    check_path(path)?;
    check_role_update(None, Some(max_session_duration))?;
    new_tags(tags)
}

/// IAM's rules for a role's description and maximum session duration.
pub(crate) fn check_role_update(
    description: Option<&str>,
    max_session_duration: Option<i64>,
) -> crate::Result<()> {
    if description.is_some_and(|d| d.len() > 1000) {
        return Err(StoreError::InvalidInput(
            "a role description is at most 1000 characters",
        ));
    }
    if max_session_duration.is_some_and(|m| !(3600..=43_200).contains(&m)) {
        return Err(StoreError::InvalidInput(
            "MaxSessionDuration must be 3600 to 43200 seconds",
        ));
    }
    Ok(())
}

/// IAM's rules for a new group.
pub(crate) fn check_new_group(name: &str, path: &str) -> crate::Result<()> {
    if !valid_name(name, 128) || !valid_path(path) {
        return Err(StoreError::InvalidInput(
            "group names are 1-128 characters of [A-Za-z0-9_+=,.@-]",
        ));
    }
    Ok(())
}

/// IAM's rule for an inline or managed policy's name.
pub(crate) fn check_policy_name(name: &str) -> crate::Result<()> {
    if !valid_name(name, 128) {
        return Err(StoreError::InvalidInput(
            "policy names are 1-128 characters of [A-Za-z0-9_+=,.@-]",
        ));
    }
    Ok(())
}

/// IAM's rules for a new managed policy: its tags, checked.
pub(crate) fn check_new_policy(
    name: &str,
    path: &str,
    description: &str,
    tags: &[(String, String)],
) -> crate::Result<Vec<(String, String)>> {
    check_policy_name(name)?;
    check_path(path)?;
    if description.len() > 1000 {
        return Err(StoreError::InvalidInput(
            "a policy description is at most 1000 characters",
        ));
    }
    new_tags(tags)
}

fn check_path(path: &str) -> crate::Result<()> {
    if valid_path(path) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput("a path must begin and end with /"))
    }
}

/// A sequence number as both stores keep it (a signed 64-bit integer).
pub(crate) fn sequence_to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn sequence_from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Where each node's shipped trail stands: node, trail id, first and last
/// record, last digest (0 for none); followed by a `WHERE` or `ORDER BY`.
pub(crate) const SHIPPED_HEAD: &str = "SELECT t.node, t.trail_id,
        COALESCE((SELECT min(sequence) FROM audit_records r WHERE r.node = t.node), 0),
        COALESCE((SELECT max(sequence) FROM audit_records r WHERE r.node = t.node), 0),
        COALESCE((SELECT max(sequence) FROM audit_digests d WHERE d.node = t.node), 0)
     FROM audit_trails t";

/// Whether the MFA device `serial` (`arn:aws:iam::ACCOUNT:mfa/PATH/NAME`)
/// has the name `name`, compared without case: one name per account,
/// whatever the path, so that `Carol` cannot sit beside `carol`.
pub(crate) fn same_mfa_name(serial: &str, name: &str) -> bool {
    serial
        .rsplit('/')
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case(name))
}
