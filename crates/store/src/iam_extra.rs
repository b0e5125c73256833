//! The rest of the IAM API's store: managed policies with their versions
//! and tags, groups and their members, listings of attached and inline
//! policies, untagging, role updates and virtual MFA devices.
//!
//! A managed policy's versions live in `policy_versions`; the default
//! version's document is also kept in `managed_policies.document`, which is
//! what the policy engine reads (`identity_policies`, `managed_policy`), so
//! every change of the default rewrites it in the same transaction.

use rusqlite::{OptionalExtension, params};

use crate::names::canonical_name;
use crate::{
    Group, MfaDevice, PrincipalKind, Result, Store, StoreError, User, merge_tags, parse_tags,
    tags_json, unique_id, valid_name, valid_path,
};

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
fn version_number(version_id: &str) -> Option<i64> {
    version_id
        .strip_prefix('v')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.len() <= 9)
        .and_then(|n| n.parse().ok())
}

fn no_policy(arn: &str) -> StoreError {
    StoreError::NoSuchEntity {
        kind: "policy",
        name: arn.to_owned(),
    }
}

fn no_version(arn: &str, version_id: &str) -> StoreError {
    StoreError::NoSuchEntity {
        kind: "policy version",
        name: format!("{arn} {version_id}"),
    }
}

const POLICY_COLUMNS: &str = "m.arn, m.name, m.id, m.path, m.default_version, \
     (SELECT COUNT(*) FROM attachments a WHERE a.arn = m.arn), m.description, m.created, m.updated, m.tags";

fn row_to_policy(r: &rusqlite::Row<'_>) -> rusqlite::Result<ManagedPolicy> {
    let created: i64 = r.get(7)?;
    let updated: i64 = r.get(8)?;
    Ok(ManagedPolicy {
        arn: r.get(0)?,
        name: r.get(1)?,
        id: r.get(2)?,
        path: r.get(3)?,
        default_version: format!("v{}", r.get::<_, i64>(4)?),
        attachment_count: r.get(5)?,
        description: r.get(6)?,
        created,
        // Policies from before versions were kept have no update time.
        updated: if updated == 0 { created } else { updated },
        tags: parse_tags(&r.get::<_, String>(9)?),
    })
}

fn row_to_group(store: &Store, r: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    let (name, path): (String, String) = (r.get(0)?, r.get(2)?);
    Ok(Group {
        arn: store.arn("group", &path, &name),
        name,
        id: r.get(1)?,
        path,
        created: r.get(3)?,
    })
}

impl Store {
    // ---- managed policies ----

    /// Creates a managed policy with its first version, `v1`, as default.
    pub fn create_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        description: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<ManagedPolicy> {
        if !valid_name(name, 128) || !valid_path(path) {
            return Err(StoreError::InvalidInput(
                "policy names are 1-128 characters of [A-Za-z0-9_+=,.@-]",
            ));
        }
        if description.len() > 1000 {
            return Err(StoreError::InvalidInput(
                "a policy description is at most 1000 characters",
            ));
        }
        let mut checked = Vec::new();
        merge_tags(&mut checked, tags)?;
        let arn = format!("arn:aws:iam::{}:policy{path}{name}", self.account);
        let id = unique_id("ANPA")?;
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            // IAM names are not distinguished by case: `Pwn` and `pwn`
            // cannot both exist.
            let taken: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM managed_policies WHERE name = ?1 COLLATE NOCASE",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Err(StoreError::EntityAlreadyExists {
                    kind: "policy",
                    name: name.to_owned(),
                });
            }
            let n = tx.execute(
                "INSERT OR IGNORE INTO managed_policies
                 (arn, name, id, path, document, created, default_version, next_version, updated, description, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 2, ?6, ?7, ?8)",
                params![arn, name, id, path, document, now, description, tags_json(&checked)],
            )?;
            if n == 0 {
                return Err(StoreError::EntityAlreadyExists {
                    kind: "policy",
                    name: name.to_owned(),
                });
            }
            tx.execute(
                "INSERT OR REPLACE INTO policy_versions (arn, version, document, created) VALUES (?1, 1, ?2, ?3)",
                params![arn, document, now],
            )?;
            tx.commit()?;
        }
        self.get_policy(&arn)
    }

    pub fn get_policy(&self, arn: &str) -> Result<ManagedPolicy> {
        self.db()
            .query_row(
                &format!("SELECT {POLICY_COLUMNS} FROM managed_policies m WHERE m.arn = ?1"),
                [arn],
                row_to_policy,
            )
            .optional()?
            .ok_or_else(|| no_policy(arn))
    }

    /// Every managed policy, by ARN.
    pub fn list_policies(&self) -> Result<Vec<ManagedPolicy>> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {POLICY_COLUMNS} FROM managed_policies m ORDER BY m.arn"
        ))?;
        let rows = stmt.query_map([], row_to_policy)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes a managed policy that is attached to nothing and has no
    /// version but the default.
    pub fn delete_policy(&self, arn: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM managed_policies WHERE arn = ?1",
                [arn],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Err(no_policy(arn));
        }
        let attached: i64 = tx.query_row(
            "SELECT COUNT(*) FROM attachments WHERE arn = ?1",
            [arn],
            |r| r.get(0),
        )?;
        if attached > 0 {
            return Err(StoreError::DeleteConflict(
                "detach the policy from every user, group and role",
            ));
        }
        let versions: i64 = tx.query_row(
            "SELECT COUNT(*) FROM policy_versions WHERE arn = ?1",
            [arn],
            |r| r.get(0),
        )?;
        if versions > 1 {
            return Err(StoreError::DeleteConflict(
                "delete the policy's non-default versions",
            ));
        }
        tx.execute("DELETE FROM policy_versions WHERE arn = ?1", [arn])?;
        tx.execute("DELETE FROM managed_policies WHERE arn = ?1", [arn])?;
        tx.commit()?;
        Ok(())
    }

    /// Adds a version (at most [`MAX_POLICY_VERSIONS`]), optionally as the
    /// new default.
    pub fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_default: bool,
        now: i64,
    ) -> Result<PolicyVersion> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let next: Option<i64> = tx
            .query_row(
                "SELECT next_version FROM managed_policies WHERE arn = ?1",
                [arn],
                |r| r.get(0),
            )
            .optional()?;
        let next = next.ok_or_else(|| no_policy(arn))?;
        let count: i64 = tx.query_row(
            "SELECT COUNT(*) FROM policy_versions WHERE arn = ?1",
            [arn],
            |r| r.get(0),
        )?;
        if count >= MAX_POLICY_VERSIONS {
            return Err(StoreError::LimitExceeded(
                "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.",
            ));
        }
        tx.execute(
            "INSERT INTO policy_versions (arn, version, document, created) VALUES (?1, ?2, ?3, ?4)",
            params![arn, next, document, now],
        )?;
        tx.execute(
            "UPDATE managed_policies SET next_version = ?1, updated = ?2 WHERE arn = ?3",
            params![next + 1, now, arn],
        )?;
        if set_default {
            tx.execute(
                "UPDATE managed_policies SET default_version = ?1, document = ?2 WHERE arn = ?3",
                params![next, document, arn],
            )?;
        }
        tx.commit()?;
        Ok(PolicyVersion {
            version_id: format!("v{next}"),
            document: document.to_owned(),
            is_default: set_default,
            created: now,
        })
    }

    /// A policy's versions, newest first.
    pub fn list_policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>> {
        let default = self.get_policy(arn)?.default_version;
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT version, document, created FROM policy_versions WHERE arn = ?1 ORDER BY version DESC",
        )?;
        let rows = stmt.query_map([arn], |r| {
            let id = format!("v{}", r.get::<_, i64>(0)?);
            Ok(PolicyVersion {
                is_default: id == default,
                version_id: id,
                document: r.get(1)?,
                created: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn get_policy_version(&self, arn: &str, version_id: &str) -> Result<PolicyVersion> {
        self.list_policy_versions(arn)?
            .into_iter()
            .find(|v| v.version_id == version_id)
            .ok_or_else(|| no_version(arn, version_id))
    }

    /// Deletes a version that is not the default.
    pub fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<()> {
        let policy = self.get_policy(arn)?;
        let n = version_number(version_id).ok_or_else(|| no_version(arn, version_id))?;
        if policy.default_version == version_id {
            return Err(StoreError::DeleteConflict(
                "make another version the default (the default version is deleted with the policy)",
            ));
        }
        let deleted = self.db().execute(
            "DELETE FROM policy_versions WHERE arn = ?1 AND version = ?2",
            params![arn, n],
        )?;
        if deleted == 0 {
            return Err(no_version(arn, version_id));
        }
        Ok(())
    }

    /// Makes a version the default: from now on the policy engine enforces
    /// its document.
    pub fn set_default_policy_version(&self, arn: &str, version_id: &str, now: i64) -> Result<()> {
        let n = version_number(version_id).ok_or_else(|| no_version(arn, version_id))?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM managed_policies WHERE arn = ?1",
                [arn],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Err(no_policy(arn));
        }
        let document: Option<String> = tx
            .query_row(
                "SELECT document FROM policy_versions WHERE arn = ?1 AND version = ?2",
                params![arn, n],
                |r| r.get(0),
            )
            .optional()?;
        let document = document.ok_or_else(|| no_version(arn, version_id))?;
        tx.execute(
            "UPDATE managed_policies SET default_version = ?1, document = ?2, updated = ?3 WHERE arn = ?4",
            params![n, document, now, arn],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn tag_policy(&self, arn: &str, tags: &[(String, String)]) -> Result<()> {
        let mut policy = self.get_policy(arn)?;
        merge_tags(&mut policy.tags, tags)?;
        self.db().execute(
            "UPDATE managed_policies SET tags = ?1 WHERE arn = ?2",
            params![tags_json(&policy.tags), arn],
        )?;
        Ok(())
    }

    pub fn untag_policy(&self, arn: &str, keys: &[&str]) -> Result<()> {
        let mut policy = self.get_policy(arn)?;
        remove_tags(&mut policy.tags, keys);
        self.db().execute(
            "UPDATE managed_policies SET tags = ?1 WHERE arn = ?2",
            params![tags_json(&policy.tags), arn],
        )?;
        Ok(())
    }

    /// The users, groups and roles a managed policy is attached to.
    pub fn policy_entities(&self, arn: &str) -> Result<Vec<PolicyEntity>> {
        self.get_policy(arn)?;
        let db = self.db();
        let mut out = Vec::new();
        for (kind, table) in [
            (PrincipalKind::User, "users"),
            (PrincipalKind::Group, "groups"),
            (PrincipalKind::Role, "roles"),
        ] {
            let mut stmt = db.prepare(&format!(
                "SELECT e.name, e.id, e.path FROM attachments a JOIN {table} e ON e.name = a.principal
                 WHERE a.kind = ?1 AND a.arn = ?2 ORDER BY e.name"
            ))?;
            let rows = stmt.query_map(params![kind.as_str(), arn], |r| {
                Ok(PolicyEntity {
                    kind,
                    name: r.get(0)?,
                    id: r.get(1)?,
                    path: r.get(2)?,
                })
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// The managed policies attached to a user, group or role.
    pub fn attached_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<ManagedPolicy>> {
        let db = self.db();
        let principal = canonical_name(&db, kind, principal)?;
        let mut stmt = db.prepare(&format!(
            "SELECT {POLICY_COLUMNS} FROM attachments a2 JOIN managed_policies m ON m.arn = a2.arn
             WHERE a2.kind = ?1 AND a2.principal = ?2 ORDER BY m.arn"
        ))?;
        let rows = stmt.query_map(params![kind.as_str(), principal], row_to_policy)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// (name, document) of a user's, group's or role's inline policies.
    pub fn inline_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<(String, String)>> {
        let db = self.db();
        let principal = canonical_name(&db, kind, principal)?;
        let mut stmt = db.prepare(
            "SELECT name, document FROM inline_policies WHERE kind = ?1 AND principal = ?2 ORDER BY name",
        )?;
        let rows = stmt.query_map(params![kind.as_str(), principal], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ---- groups ----

    pub fn list_groups(&self) -> Result<Vec<Group>> {
        let db = self.db();
        let mut stmt = db.prepare("SELECT name, id, path, created FROM groups ORDER BY name")?;
        let rows = stmt.query_map([], |r| row_to_group(self, r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The groups a user belongs to.
    pub fn groups_of_user(&self, user: &str) -> Result<Vec<Group>> {
        let db = self.db();
        let user = canonical_name(&db, PrincipalKind::User, user)?;
        let mut stmt = db.prepare(
            "SELECT g.name, g.id, g.path, g.created FROM group_members m JOIN groups g ON g.name = m.grp
             WHERE m.user = ?1 ORDER BY g.name",
        )?;
        let rows = stmt.query_map([&user], |r| row_to_group(self, r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The users of a group.
    pub fn group_members(&self, group: &str) -> Result<Vec<User>> {
        let db = self.db();
        let group = canonical_name(&db, PrincipalKind::Group, group)?;
        let mut stmt = db.prepare(
            "SELECT u.name, u.id, u.path, u.created, u.tags FROM group_members m JOIN users u ON u.name = m.user
             WHERE m.grp = ?1 ORDER BY u.name",
        )?;
        let rows = stmt.query_map([&group], |r| self.row_to_user(r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn remove_user_from_group(&self, group: &str, user: &str) -> Result<()> {
        let db = self.db();
        let group = canonical_name(&db, PrincipalKind::Group, group)?;
        let user_name = canonical_name(&db, PrincipalKind::User, user)?;
        let n = db.execute(
            "DELETE FROM group_members WHERE grp = ?1 AND user = ?2",
            [group, user_name],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "group member",
                name: user.to_owned(),
            });
        }
        Ok(())
    }

    /// Deletes a group that has no members and no policies.
    /// Rows of any spelling of its name count.
    pub fn delete_group(&self, name: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let name = canonical_name(&tx, PrincipalKind::Group, name)?;
        let count =
            |sql: &str| -> rusqlite::Result<i64> { tx.query_row(sql, [&name], |r| r.get(0)) };
        if count("SELECT COUNT(*) FROM group_members WHERE grp = ?1 COLLATE NOCASE")? > 0 {
            return Err(StoreError::DeleteConflict("remove users from group"));
        }
        crate::names::ensure_no_policies(&tx, PrincipalKind::Group, &name)?;
        tx.execute("DELETE FROM groups WHERE name = ?1", [&name])?;
        tx.commit()?;
        Ok(())
    }

    // ---- tags and role settings ----

    pub fn untag_user(&self, name: &str, keys: &[&str]) -> Result<()> {
        self.change_tags(PrincipalKind::User, name, |t| {
            remove_tags(t, keys);
            Ok(())
        })
    }

    pub fn untag_role(&self, name: &str, keys: &[&str]) -> Result<()> {
        self.change_tags(PrincipalKind::Role, name, |t| {
            remove_tags(t, keys);
            Ok(())
        })
    }

    /// Changes a role's description and/or maximum session duration.
    pub fn update_role(
        &self,
        name: &str,
        description: Option<&str>,
        max_session_duration: Option<i64>,
    ) -> Result<()> {
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
        let role = self.get_role(name)?;
        self.db().execute(
            "UPDATE roles SET description = ?1, max_session = ?2 WHERE name = ?3",
            params![
                description.unwrap_or(&role.description),
                max_session_duration.unwrap_or(role.max_session_duration),
                name
            ],
        )?;
        Ok(())
    }

    // ---- MFA ----

    /// Every virtual MFA device, assigned or not, by serial number.
    pub fn list_virtual_mfa_devices(&self) -> Result<Vec<MfaDevice>> {
        let db = self.db();
        let mut stmt =
            db.prepare("SELECT serial, user, enabled_at FROM mfa_devices ORDER BY serial")?;
        let rows = stmt.query_map([], |r| {
            Ok(MfaDevice {
                serial: r.get(0)?,
                user: r.get(1)?,
                enabled_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Removes tags by key (case-insensitively, as IAM compares tag keys).
fn remove_tags(tags: &mut Vec<(String, String)>, keys: &[&str]) {
    tags.retain(|(k, _)| !keys.iter().any(|r| r.eq_ignore_ascii_case(k)));
}

#[cfg(test)]
mod tests {
    use super::*;

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
