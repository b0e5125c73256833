//! Names of users, roles and groups, which IAM compares case-insensitively.
//!
//! The entity tables hold the name as created (`COLLATE NOCASE`); the
//! tables keyed by an entity's name (`inline_policies`, `attachments`,
//! `group_members`, `mfa_devices.user`) hold that same spelling, whatever
//! spelling a request used: every function reading or writing them
//! resolves the name with [`canonical_name`] first. [`canonicalise`] repairs
//! stores written before that rule, and [`unbind_principal`] makes policies
//! naming a deleted user or role name its unique id instead, as AWS does.

use crate::model::replace_principal;
use crate::{PrincipalKind, Result, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn table(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "users",
        PrincipalKind::Role => "roles",
        PrincipalKind::Group => "groups",
    }
}

/// The stored spelling of a user's, role's or group's name, or `None`.
pub(crate) fn lookup(conn: &Connection, kind: PrincipalKind, name: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            &format!("SELECT name FROM {} WHERE name = ?1", table(kind)),
            [name],
            |r| r.get(0),
        )
        .optional()?)
}

/// The stored spelling of a user's, role's or group's name;
/// `NoSuchEntity` when there is none.
pub(crate) fn canonical_name(conn: &Connection, kind: PrincipalKind, name: &str) -> Result<String> {
    lookup(conn, kind, name)?.ok_or_else(|| StoreError::NoSuchEntity {
        kind: kind.as_str(),
        name: name.to_owned(),
    })
}

/// Rewrites every row keyed by an entity's name to the entity's spelling,
/// and deletes rows whose entity no longer exists (an MFA device of a
/// vanished user is unassigned). Where two spellings collide, the newest
/// row (highest rowid) wins. Idempotent; runs inside the open migration.
pub(crate) fn canonicalise(tx: &Connection) -> Result<()> {
    // (table, kind column or fixed kind, name column, other key columns)
    for (tbl, kind_col, name_col, rest) in [
        ("inline_policies", "kind", "principal", "name"),
        ("attachments", "kind", "principal", "arn"),
        ("group_members", "'group'", "grp", "user"),
        ("group_members", "'user'", "user", "grp"),
    ] {
        let rows: Vec<(i64, String, String, String)> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT rowid, {kind_col}, {name_col}, {rest} FROM {tbl} ORDER BY rowid DESC"
            ))?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut kept = std::collections::HashSet::new();
        for (rowid, kind, name, other) in rows {
            let canonical = match kind.parse::<PrincipalKind>() {
                Ok(k) => lookup(tx, k, &name)?,
                Err(_) => continue,
            };
            let Some(canonical) = canonical else {
                tx.execute(&format!("DELETE FROM {tbl} WHERE rowid = ?1"), [rowid])?;
                continue;
            };
            // Newest first: an older row of the same key is a duplicate.
            if !kept.insert((kind, canonical.clone(), other)) {
                tx.execute(&format!("DELETE FROM {tbl} WHERE rowid = ?1"), [rowid])?;
                continue;
            }
            if canonical != name {
                tx.execute(
                    &format!("UPDATE OR REPLACE {tbl} SET {name_col} = ?1 WHERE rowid = ?2"),
                    params![canonical, rowid],
                )?;
            }
        }
    }
    let assigned: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT serial, user FROM mfa_devices WHERE user IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (serial, user) in assigned {
        match lookup(tx, PrincipalKind::User, &user)? {
            Some(c) if c == user => {}
            Some(c) => {
                tx.execute(
                    "UPDATE mfa_devices SET user = ?1 WHERE serial = ?2",
                    params![c, serial],
                )?;
            }
            None => {
                tx.execute(
                    "UPDATE mfa_devices SET user = NULL, enabled_at = NULL WHERE serial = ?1",
                    [serial],
                )?;
            }
        }
    }
    Ok(())
}

/// After a user or role is deleted: every stored resource-based policy (the
/// roles' trust policies) naming its ARN in `Principal.AWS` names its
/// unique id instead, so a new entity of the same name is not trusted
/// (trust policies, KMS key policies, secrets' resource policies); and its
/// last uses and jobs (the access advisor's, policy generations) are
/// forgotten.
pub(crate) fn unbind_principal(tx: &Connection, arn: &str, id: &str) -> Result<()> {
    // A new entity of the same name starts with no history.
    tx.execute("DELETE FROM last_accessed WHERE principal = ?1", [arn])?;
    tx.execute("DELETE FROM credential_last_used WHERE id = ?1", [arn])?;
    // Its policy generations show what it did: gone with it.
    tx.execute("DELETE FROM advisor_jobs WHERE arn = ?1", [arn])?;
    let roles: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT name, trust_policy FROM roles")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (role, document) in roles {
        if let Some(rewritten) = replace_principal(&document, arn, id) {
            tx.execute(
                "UPDATE roles SET trust_policy = ?1 WHERE name = ?2",
                params![rewritten, role],
            )?;
        }
    }
    // The other resource-based policies: KMS key policies (the key
    // document's `policy`) and Secrets Manager resource policies (the
    // secret document's `resource_policy`). Each rewrite bumps the row's
    // revision, so a writer holding the old document retries.
    rebind_embedded(tx, "kms_keys", "id", "policy", arn, id)?;
    rebind_embedded(tx, "secrets", "arn", "resource_policy", arn, id)?;
    Ok(())
}

/// [`replace_principal`] on the policy held as text in member `member` of
/// each JSON `document` of `table` (rows keyed by `key`).
fn rebind_embedded(
    tx: &Connection,
    table: &str,
    key: &str,
    member: &str,
    arn: &str,
    id: &str,
) -> Result<()> {
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare(&format!("SELECT {key}, document FROM {table}"))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (row, document) in rows {
        let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&document) else {
            continue;
        };
        let Some(policy) = doc.get(member).and_then(serde_json::Value::as_str) else {
            continue;
        };
        if let Some(rewritten) = replace_principal(policy, arn, id) {
            doc[member] = serde_json::Value::String(rewritten);
            tx.execute(
                &format!(
                    "UPDATE {table} SET document = ?1, revision = revision + 1 WHERE {key} = ?2"
                ),
                params![doc.to_string(), row],
            )?;
        }
    }
    Ok(())
}

/// Refuses to delete a user, role or group that still has inline or
/// attached policies, under any spelling of its name (`DeleteConflict`,
/// as IAM answers).
pub(crate) fn ensure_no_policies(conn: &Connection, kind: PrincipalKind, name: &str) -> Result<()> {
    for (table, conflict) in [
        ("inline_policies", "delete policies"),
        ("attachments", "detach all policies"),
    ] {
        let n: i64 = conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM {table} WHERE kind = ?1 AND principal = ?2 COLLATE NOCASE"
            ),
            params![kind.as_str(), name],
            |r| r.get(0),
        )?;
        if n > 0 {
            return Err(StoreError::DeleteConflict(conflict));
        }
    }
    Ok(())
}
