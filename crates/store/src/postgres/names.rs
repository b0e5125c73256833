//! Names of users, roles and groups on PostgreSQL: the same rules as
//! SQLite's (`crate::sqlite::names`). Entity tables compare names with
//! the `latchkey_nocase` collation; rows keyed by an entity's name hold
//! the entity's own spelling, resolved with [`canonical_name`] first.

use super::Sql;
use crate::model::replace_principal;
use crate::{PrincipalKind, Result, StoreError};

pub(crate) fn table(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "users",
        PrincipalKind::Role => "roles",
        PrincipalKind::Group => "groups",
    }
}

/// The stored spelling of a user's, role's or group's name, or `None`.
pub(crate) fn lookup(c: &impl Sql, kind: PrincipalKind, name: &str) -> Result<Option<String>> {
    Ok(c.query_opt(
        &format!("SELECT name FROM {} WHERE name = $1", table(kind)),
        &[&name],
    )?
    .map(|r| r.try_get(0))
    .transpose()?)
}

/// The stored spelling of a user's, role's or group's name;
/// `NoSuchEntity` when there is none.
pub(crate) fn canonical_name(c: &impl Sql, kind: PrincipalKind, name: &str) -> Result<String> {
    lookup(c, kind, name)?.ok_or_else(|| StoreError::NoSuchEntity {
        kind: kind.as_str(),
        name: name.to_owned(),
    })
}

/// After a user or role is deleted: resource-based policies naming its ARN
/// name its unique id instead, and its last uses are forgotten (see
/// `crate::sqlite::names::unbind_principal`).
pub(crate) fn unbind_principal(tx: &impl Sql, arn: &str, id: &str) -> Result<()> {
    tx.execute("DELETE FROM last_accessed WHERE principal = $1", &[&arn])?;
    tx.execute("DELETE FROM credential_last_used WHERE id = $1", &[&arn])?;
    tx.execute("DELETE FROM advisor_jobs WHERE arn = $1", &[&arn])?;
    for row in tx.query("SELECT name, trust_policy FROM roles", &[])? {
        let (role, document): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        if let Some(rewritten) = replace_principal(&document, arn, id) {
            tx.execute(
                "UPDATE roles SET trust_policy = $1 WHERE name = $2",
                &[&rewritten, &role],
            )?;
        }
    }
    rebind_embedded(tx, "kms_keys", "id", "policy", arn, id)?;
    rebind_embedded(tx, "secrets", "arn", "resource_policy", arn, id)?;
    Ok(())
}

/// [`replace_principal`] on the policy held as text in member `member` of
/// each JSON `document` of `table` (rows keyed by `key`); each rewrite
/// bumps the row's revision.
fn rebind_embedded(
    tx: &impl Sql,
    table: &str,
    key: &str,
    member: &str,
    arn: &str,
    id: &str,
) -> Result<()> {
    for row in tx.query(&format!("SELECT {key}, document FROM {table}"), &[])? {
        let (key_value, document): (String, String) = (row.try_get(0)?, row.try_get(1)?);
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
                    "UPDATE {table} SET document = $1, revision = revision + 1 WHERE {key} = $2"
                ),
                &[&doc.to_string(), &key_value],
            )?;
        }
    }
    Ok(())
}

/// Refuses to delete a user, role or group that still has inline or
/// attached policies, under any spelling of its name.
pub(crate) fn ensure_no_policies(c: &impl Sql, kind: PrincipalKind, name: &str) -> Result<()> {
    for (table, conflict) in [
        ("inline_policies", "delete policies"),
        ("attachments", "detach all policies"),
    ] {
        let n: i64 = c
            .query_one(
                &format!(
                    "SELECT COUNT(*) FROM {table} WHERE kind = $1 AND principal = $2 COLLATE latchkey_nocase"
                ),
                &[&kind.as_str(), &name],
            )?
            .try_get(0)?;
        if n > 0 {
            return Err(StoreError::DeleteConflict(conflict));
        }
    }
    Ok(())
}
