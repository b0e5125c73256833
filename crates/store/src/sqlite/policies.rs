//! Inline and managed policies, attachments, and managed policies'
//! versions.
//!
//! A managed policy's versions live in `policy_versions`; the default
//! version's document is also kept in `managed_policies.document`, which is
//! what the policy engine reads (`identity_policies`, `managed_policy`), so
//! every change of the default rewrites it in the same transaction.

use rusqlite::{OptionalExtension, params};

use super::names::{self, canonical_name};
use super::{SqliteBackend, parse_tags, tags_json, unique_id};
use crate::backend::Policies;
use crate::model::{merge_tags, remove_tags, version_number};
use crate::shared::{no_policy, no_version};
use crate::{
    MAX_POLICY_VERSIONS, ManagedPolicy, PolicyEntity, PolicyVersion, PrincipalKind, Result,
    StoreError,
};

impl SqliteBackend {
    /// Reads a managed policy's tags, changes them and writes them back,
    /// holding the writer throughout so that concurrent changes all land.
    fn change_policy_tags(
        &self,
        arn: &str,
        change: impl FnOnce(&mut Vec<(String, String)>) -> Result<()>,
    ) -> Result<()> {
        let db = self.db();
        let text: Option<String> = db
            .query_row(
                "SELECT tags FROM managed_policies WHERE arn = ?1",
                [arn],
                |r| r.get(0),
            )
            .optional()?;
        let mut tags = parse_tags(&text.ok_or_else(|| no_policy(arn))?);
        change(&mut tags)?;
        db.execute(
            "UPDATE managed_policies SET tags = ?1 WHERE arn = ?2",
            params![tags_json(&tags), arn],
        )?;
        Ok(())
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

impl Policies for SqliteBackend {
    fn put_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
        document: &str,
    ) -> Result<()> {
        crate::shared::check_policy_name(name)?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let principal = names::canonical_name(&tx, kind, principal)?;
        // Policy names are not distinguished by case: putting `A` replaces
        // `a`, as IAM has it.
        tx.execute(
            "DELETE FROM inline_policies WHERE kind = ?1 AND principal = ?2 AND name = ?3 COLLATE NOCASE",
            params![kind.as_str(), principal, name],
        )?;
        tx.execute(
            "INSERT INTO inline_policies (kind, principal, name, document) VALUES (?1, ?2, ?3, ?4)",
            params![kind.as_str(), principal, name, document],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn get_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
    ) -> Result<String> {
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        db.query_row(
            "SELECT document FROM inline_policies WHERE kind = ?1 AND principal = ?2 AND name = ?3 COLLATE NOCASE",
            params![kind.as_str(), principal, name],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::NoSuchEntity {
            kind: "policy",
            name: name.to_owned(),
        })
    }

    fn delete_inline_policy(&self, kind: PrincipalKind, principal: &str, name: &str) -> Result<()> {
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        let n = db.execute(
            "DELETE FROM inline_policies WHERE kind = ?1 AND principal = ?2 AND name = ?3 COLLATE NOCASE",
            params![kind.as_str(), principal, name],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "policy",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn inline_policies(
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

    fn create_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        description: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<ManagedPolicy> {
        let checked = crate::shared::check_new_policy(name, path, description, tags)?;
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

    fn get_policy(&self, arn: &str) -> Result<ManagedPolicy> {
        self.db()
            .query_row(
                &format!("SELECT {POLICY_COLUMNS} FROM managed_policies m WHERE m.arn = ?1"),
                [arn],
                row_to_policy,
            )
            .optional()?
            .ok_or_else(|| no_policy(arn))
    }

    fn list_policies(&self) -> Result<Vec<ManagedPolicy>> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {POLICY_COLUMNS} FROM managed_policies m ORDER BY m.arn"
        ))?;
        let rows = stmt.query_map([], row_to_policy)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn managed_policy(&self, arn: &str) -> Result<String> {
        self.db()
            .query_row(
                "SELECT document FROM managed_policies WHERE arn = ?1",
                [arn],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "policy",
                name: arn.to_owned(),
            })
    }

    fn delete_policy(&self, arn: &str) -> Result<()> {
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

    fn create_policy_version(
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

    fn list_policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>> {
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

    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<()> {
        let policy = self.get_policy(arn)?;
        let n = version_number(version_id).ok_or_else(|| no_version(arn, version_id))?;
        // By number: `v01` names the default `v1` too.
        if version_number(&policy.default_version) == Some(n) {
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

    fn set_default_policy_version(&self, arn: &str, version_id: &str, now: i64) -> Result<()> {
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

    fn tag_policy(&self, arn: &str, tags: &[(String, String)]) -> Result<()> {
        self.change_policy_tags(arn, |current| merge_tags(current, tags))
    }

    fn untag_policy(&self, arn: &str, keys: &[&str]) -> Result<()> {
        self.change_policy_tags(arn, |current| {
            remove_tags(current, keys);
            Ok(())
        })
    }

    fn attach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()> {
        self.managed_policy(arn)?;
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        db.execute(
            "INSERT OR IGNORE INTO attachments (kind, principal, arn) VALUES (?1, ?2, ?3)",
            params![kind.as_str(), principal, arn],
        )?;
        Ok(())
    }

    fn detach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()> {
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        let n = db.execute(
            "DELETE FROM attachments WHERE kind = ?1 AND principal = ?2 AND arn = ?3",
            params![kind.as_str(), principal, arn],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "policy attachment",
                name: arn.to_owned(),
            });
        }
        Ok(())
    }

    fn attached_policies(
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

    fn policy_entities(&self, arn: &str) -> Result<Vec<PolicyEntity>> {
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

    fn all_identity_policies(&self) -> Result<Vec<(PrincipalKind, String, String, String)>> {
        let db = self.reader();
        // A user's own policies, its groups', and a role's, labelled as
        // `identity_policies` labels them.
        let mut stmt = db.prepare(
            "SELECT kind, principal, kind || '/' || principal || '/' || name, document
               FROM inline_policies WHERE kind IN ('user', 'role')
             UNION ALL
             SELECT a.kind, a.principal, m.arn, m.document
               FROM attachments a JOIN managed_policies m ON m.arn = a.arn
              WHERE a.kind IN ('user', 'role')
             UNION ALL
             SELECT 'user', gm.user, 'group/' || i.principal || '/' || i.name, i.document
               FROM group_members gm JOIN inline_policies i ON i.kind = 'group' AND i.principal = gm.grp
             UNION ALL
             SELECT 'user', gm.user, m.arn, m.document
               FROM group_members gm JOIN attachments a ON a.kind = 'group' AND a.principal = gm.grp
               JOIN managed_policies m ON m.arn = a.arn",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, principal, label, document) = row?;
            let kind = match kind.as_str() {
                "user" => PrincipalKind::User,
                _ => PrincipalKind::Role,
            };
            out.push((kind, principal, label, document));
        }
        Ok(out)
    }

    fn identity_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<(String, String)>> {
        let db = self.db();
        let principal = names::canonical_name(&db, kind, principal)?;
        let mut principals = vec![(kind, principal.clone())];
        if kind == PrincipalKind::User {
            for g in Self::group_names(&db, &principal)? {
                principals.push((PrincipalKind::Group, g));
            }
        }
        let mut out = Vec::new();
        let mut inline = db.prepare("SELECT name, document FROM inline_policies WHERE kind = ?1 AND principal = ?2 ORDER BY name")?;
        let mut attached = db.prepare(
            "SELECT m.arn, m.document FROM attachments a JOIN managed_policies m ON m.arn = a.arn
             WHERE a.kind = ?1 AND a.principal = ?2 ORDER BY m.arn",
        )?;
        for (k, p) in &principals {
            for row in inline.query_map(params![k.as_str(), p], |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?))
            })? {
                let (name, doc) = row?;
                out.push((format!("{}/{p}/{name}", k.as_str()), doc));
            }
            for row in attached.query_map(params![k.as_str(), p], |r| Ok((r.get(0)?, r.get(1)?)))? {
                out.push(row?);
            }
        }
        Ok(out)
    }
}
