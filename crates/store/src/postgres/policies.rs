//! [`Policies`] on PostgreSQL: the same rules as `crate::sqlite::policies`.
//! Every change of a managed policy's default version rewrites
//! `managed_policies.document` in the same transaction.

use tokio_postgres::Row;

use super::names::canonical_name;
use super::{PgBackend, Sql};
use crate::backend::Policies;
use crate::model::{merge_tags, remove_tags, version_number};
use crate::shared::{no_policy, no_version};
use crate::sqlite::{parse_tags, tags_json, unique_id};
use crate::{
    MAX_POLICY_VERSIONS, ManagedPolicy, PolicyEntity, PolicyVersion, PrincipalKind, Result,
    StoreError,
};

fn no_inline_policy(name: &str) -> StoreError {
    StoreError::NoSuchEntity {
        kind: "policy",
        name: name.to_owned(),
    }
}

const POLICY_COLUMNS: &str = "m.arn, m.name, m.id, m.path, m.default_version, \
     (SELECT COUNT(*) FROM attachments a WHERE a.arn = m.arn), m.description, m.created, m.updated, m.tags";

fn row_to_policy(r: &Row) -> Result<ManagedPolicy> {
    let created: i64 = r.try_get(7)?;
    let updated: i64 = r.try_get(8)?;
    Ok(ManagedPolicy {
        arn: r.try_get(0)?,
        name: r.try_get(1)?,
        id: r.try_get(2)?,
        path: r.try_get(3)?,
        default_version: format!("v{}", r.try_get::<_, i64>(4)?),
        attachment_count: r.try_get(5)?,
        description: r.try_get(6)?,
        created,
        // Policies from before versions were kept have no update time.
        updated: if updated == 0 { created } else { updated },
        tags: parse_tags(&r.try_get::<_, String>(9)?),
    })
}

fn policy(c: &impl Sql, arn: &str) -> Result<ManagedPolicy> {
    c.query_opt(
        &format!("SELECT {POLICY_COLUMNS} FROM managed_policies m WHERE m.arn = $1"),
        &[&arn],
    )?
    .map(|r| row_to_policy(&r))
    .transpose()?
    .ok_or_else(|| no_policy(arn))
}

fn pairs(rows: Vec<Row>) -> Result<Vec<(String, String)>> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// A user's groups, ordered as SQLite's `NOCASE` orders them (ASCII
/// case folded, then bytes).
fn group_names(c: &impl Sql, user: &str) -> Result<Vec<String>> {
    c.query(
        "SELECT g.name FROM group_members m JOIN groups g ON g.name = m.grp
         WHERE m.user_name = $1 ORDER BY lower(g.name) COLLATE \"C\"",
        &[&user],
    )?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

/// Reads a policy's tags, changes them and writes them back.
fn change_policy_tags(
    tx: &impl Sql,
    arn: &str,
    change: impl FnOnce(&mut Vec<(String, String)>) -> Result<()>,
) -> Result<()> {
    let text: String = tx
        .query_opt("SELECT tags FROM managed_policies WHERE arn = $1", &[&arn])?
        .ok_or_else(|| no_policy(arn))?
        .try_get(0)?;
    let mut tags = parse_tags(&text);
    change(&mut tags)?;
    tx.execute(
        "UPDATE managed_policies SET tags = $1 WHERE arn = $2",
        &[&tags_json(&tags), &arn],
    )?;
    Ok(())
}

impl Policies for PgBackend {
    fn put_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
        document: &str,
    ) -> Result<()> {
        crate::shared::check_policy_name(name)?;
        self.write(|tx| {
            let principal = canonical_name(tx, kind, principal)?;
            // Policy names are not distinguished by case: putting `A`
            // replaces `a`, as IAM has it.
            tx.execute(
                "DELETE FROM inline_policies WHERE kind = $1 AND principal = $2 AND name = $3 COLLATE latchkey_nocase",
                &[&kind.as_str(), &principal, &name],
            )?;
            tx.execute(
                "INSERT INTO inline_policies (kind, principal, name, document) VALUES ($1, $2, $3, $4)",
                &[&kind.as_str(), &principal, &name, &document],
            )?;
            Ok(())
        })
    }

    fn get_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
    ) -> Result<String> {
        self.read(|c| {
            let principal = canonical_name(c, kind, principal)?;
            c.query_opt(
                "SELECT document FROM inline_policies WHERE kind = $1 AND principal = $2 AND name = $3 COLLATE latchkey_nocase",
                &[&kind.as_str(), &principal, &name],
            )?
            .map(|r| r.try_get(0))
            .transpose()?
            .ok_or_else(|| no_inline_policy(name))
        })
    }

    fn delete_inline_policy(&self, kind: PrincipalKind, principal: &str, name: &str) -> Result<()> {
        self.write(|tx| {
            let principal = canonical_name(tx, kind, principal)?;
            let n = tx.execute(
                "DELETE FROM inline_policies WHERE kind = $1 AND principal = $2 AND name = $3 COLLATE latchkey_nocase",
                &[&kind.as_str(), &principal, &name],
            )?;
            if n == 0 {
                return Err(no_inline_policy(name));
            }
            Ok(())
        })
    }

    fn inline_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let principal = canonical_name(c, kind, principal)?;
            pairs(c.query(
                "SELECT name, document FROM inline_policies WHERE kind = $1 AND principal = $2 ORDER BY name COLLATE \"C\"",
                &[&kind.as_str(), &principal],
            )?)
        })
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
        let checked = tags_json(&crate::shared::check_new_policy(
            name,
            path,
            description,
            tags,
        )?);
        let arn = format!("arn:aws:iam::{}:policy{path}{name}", self.account());
        let id = unique_id("ANPA")?;
        let exists = || StoreError::EntityAlreadyExists {
            kind: "policy",
            name: name.to_owned(),
        };
        self.write(|tx| {
            // IAM names are not distinguished by case: `Pwn` and `pwn`
            // cannot both exist.
            if tx
                .query_opt(
                    "SELECT 1 FROM managed_policies WHERE name = $1 COLLATE latchkey_nocase",
                    &[&name],
                )?
                .is_some()
            {
                return Err(exists());
            }
            let n = tx.execute(
                "INSERT INTO managed_policies
                 (arn, name, id, path, document, created, default_version, next_version, updated, description, tags)
                 VALUES ($1, $2, $3, $4, $5, $6, 1, 2, $6, $7, $8) ON CONFLICT DO NOTHING",
                &[&arn, &name, &id, &path, &document, &now, &description, &checked],
            )?;
            if n == 0 {
                return Err(exists());
            }
            tx.execute(
                "INSERT INTO policy_versions (arn, version, document, created) VALUES ($1, 1, $2, $3)
                 ON CONFLICT (arn, version) DO UPDATE SET document = EXCLUDED.document, created = EXCLUDED.created",
                &[&arn, &document, &now],
            )?;
            policy(tx, &arn)
        })
        .map_err(|e| match e {
            StoreError::UniqueViolation => exists(),
            e => e,
        })
    }

    fn get_policy(&self, arn: &str) -> Result<ManagedPolicy> {
        self.read(|c| policy(c, arn))
    }

    fn list_policies(&self) -> Result<Vec<ManagedPolicy>> {
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT {POLICY_COLUMNS} FROM managed_policies m ORDER BY m.arn COLLATE \"C\""
                ),
                &[],
            )?
            .iter()
            .map(row_to_policy)
            .collect()
        })
    }

    fn managed_policy(&self, arn: &str) -> Result<String> {
        self.read(|c| {
            c.query_opt(
                "SELECT document FROM managed_policies WHERE arn = $1",
                &[&arn],
            )?
            .map(|r| r.try_get(0))
            .transpose()?
            .ok_or_else(|| no_policy(arn))
        })
    }

    fn delete_policy(&self, arn: &str) -> Result<()> {
        self.write(|tx| {
            if tx
                .query_opt("SELECT 1 FROM managed_policies WHERE arn = $1", &[&arn])?
                .is_none()
            {
                return Err(no_policy(arn));
            }
            let attached: i64 = tx
                .query_one("SELECT COUNT(*) FROM attachments WHERE arn = $1", &[&arn])?
                .try_get(0)?;
            if attached > 0 {
                return Err(StoreError::DeleteConflict(
                    "detach the policy from every user, group and role",
                ));
            }
            let versions: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM policy_versions WHERE arn = $1",
                    &[&arn],
                )?
                .try_get(0)?;
            if versions > 1 {
                return Err(StoreError::DeleteConflict(
                    "delete the policy's non-default versions",
                ));
            }
            tx.execute("DELETE FROM policy_versions WHERE arn = $1", &[&arn])?;
            tx.execute("DELETE FROM managed_policies WHERE arn = $1", &[&arn])?;
            Ok(())
        })
    }

    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_default: bool,
        now: i64,
    ) -> Result<PolicyVersion> {
        self.write(|tx| {
            let next: i64 = tx
                .query_opt(
                    "SELECT next_version FROM managed_policies WHERE arn = $1",
                    &[&arn],
                )?
                .ok_or_else(|| no_policy(arn))?
                .try_get(0)?;
            let count: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM policy_versions WHERE arn = $1",
                    &[&arn],
                )?
                .try_get(0)?;
            if count >= MAX_POLICY_VERSIONS {
                return Err(StoreError::LimitExceeded(
                    "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.",
                ));
            }
            tx.execute(
                "INSERT INTO policy_versions (arn, version, document, created) VALUES ($1, $2, $3, $4)",
                &[&arn, &next, &document, &now],
            )?;
            tx.execute(
                "UPDATE managed_policies SET next_version = $1, updated = $2 WHERE arn = $3",
                &[&(next + 1), &now, &arn],
            )?;
            if set_default {
                tx.execute(
                    "UPDATE managed_policies SET default_version = $1, document = $2 WHERE arn = $3",
                    &[&next, &document, &arn],
                )?;
            }
            Ok(PolicyVersion {
                version_id: format!("v{next}"),
                document: document.to_owned(),
                is_default: set_default,
                created: now,
            })
        })
    }

    fn list_policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>> {
        self.read(|c| {
            let default = policy(c, arn)?.default_version;
            c.query(
                "SELECT version, document, created FROM policy_versions WHERE arn = $1 ORDER BY version DESC",
                &[&arn],
            )?
            .iter()
            .map(|r| {
                let id = format!("v{}", r.try_get::<_, i64>(0)?);
                Ok(PolicyVersion {
                    is_default: id == default,
                    version_id: id,
                    document: r.try_get(1)?,
                    created: r.try_get(2)?,
                })
            })
            .collect()
        })
    }

    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<()> {
        self.write(|tx| {
            let default: i64 = tx
                .query_opt(
                    "SELECT default_version FROM managed_policies WHERE arn = $1",
                    &[&arn],
                )?
                .ok_or_else(|| no_policy(arn))?
                .try_get(0)?;
            let n = version_number(version_id).ok_or_else(|| no_version(arn, version_id))?;
            // By number: `v01` names the default `v1` too.
            if n == default {
                return Err(StoreError::DeleteConflict(
                    "make another version the default (the default version is deleted with the policy)",
                ));
            }
            let deleted = tx.execute(
                "DELETE FROM policy_versions WHERE arn = $1 AND version = $2",
                &[&arn, &n],
            )?;
            if deleted == 0 {
                return Err(no_version(arn, version_id));
            }
            Ok(())
        })
    }

    fn set_default_policy_version(&self, arn: &str, version_id: &str, now: i64) -> Result<()> {
        let n = version_number(version_id).ok_or_else(|| no_version(arn, version_id))?;
        self.write(|tx| {
            if tx
                .query_opt("SELECT 1 FROM managed_policies WHERE arn = $1", &[&arn])?
                .is_none()
            {
                return Err(no_policy(arn));
            }
            let document: String = tx
                .query_opt(
                    "SELECT document FROM policy_versions WHERE arn = $1 AND version = $2",
                    &[&arn, &n],
                )?
                .ok_or_else(|| no_version(arn, version_id))?
                .try_get(0)?;
            tx.execute(
                "UPDATE managed_policies SET default_version = $1, document = $2, updated = $3 WHERE arn = $4",
                &[&n, &document, &now, &arn],
            )?;
            Ok(())
        })
    }

    fn tag_policy(&self, arn: &str, tags: &[(String, String)]) -> Result<()> {
        self.write(|tx| change_policy_tags(tx, arn, |t| merge_tags(t, tags)))
    }

    fn untag_policy(&self, arn: &str, keys: &[&str]) -> Result<()> {
        self.write(|tx| {
            change_policy_tags(tx, arn, |t| {
                remove_tags(t, keys);
                Ok(())
            })
        })
    }

    fn attach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()> {
        self.write(|tx| {
            if tx
                .query_opt("SELECT 1 FROM managed_policies WHERE arn = $1", &[&arn])?
                .is_none()
            {
                return Err(no_policy(arn));
            }
            let principal = canonical_name(tx, kind, principal)?;
            tx.execute(
                "INSERT INTO attachments (kind, principal, arn) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&kind.as_str(), &principal, &arn],
            )?;
            Ok(())
        })
    }

    fn detach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()> {
        self.write(|tx| {
            let principal = canonical_name(tx, kind, principal)?;
            let n = tx.execute(
                "DELETE FROM attachments WHERE kind = $1 AND principal = $2 AND arn = $3",
                &[&kind.as_str(), &principal, &arn],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchEntity {
                    kind: "policy attachment",
                    name: arn.to_owned(),
                });
            }
            Ok(())
        })
    }

    fn attached_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<ManagedPolicy>> {
        self.read(|c| {
            let principal = canonical_name(c, kind, principal)?;
            c.query(
                &format!(
                    "SELECT {POLICY_COLUMNS} FROM attachments a2 JOIN managed_policies m ON m.arn = a2.arn
                     WHERE a2.kind = $1 AND a2.principal = $2 ORDER BY m.arn COLLATE \"C\""
                ),
                &[&kind.as_str(), &principal],
            )?
            .iter()
            .map(row_to_policy)
            .collect()
        })
    }

    fn policy_entities(&self, arn: &str) -> Result<Vec<PolicyEntity>> {
        self.read(|c| {
            policy(c, arn)?;
            let mut out = Vec::new();
            for kind in [
                PrincipalKind::User,
                PrincipalKind::Group,
                PrincipalKind::Role,
            ] {
                // Ordered as SQLite's `NOCASE` orders names.
                let rows = c.query(
                    &format!(
                        "SELECT e.name, e.id, e.path FROM attachments a JOIN {} e ON e.name = a.principal
                         WHERE a.kind = $1 AND a.arn = $2 ORDER BY lower(e.name) COLLATE \"C\"",
                        super::names::table(kind)
                    ),
                    &[&kind.as_str(), &arn],
                )?;
                for r in rows {
                    out.push(PolicyEntity {
                        kind,
                        name: r.try_get(0)?,
                        id: r.try_get(1)?,
                        path: r.try_get(2)?,
                    });
                }
            }
            Ok(out)
        })
    }

    fn identity_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let principal = canonical_name(c, kind, principal)?;
            let mut principals = vec![(kind, principal.clone())];
            if kind == PrincipalKind::User {
                for g in group_names(c, &principal)? {
                    principals.push((PrincipalKind::Group, g));
                }
            }
            let mut out = Vec::new();
            for (k, p) in &principals {
                for (name, doc) in pairs(c.query(
                    "SELECT name, document FROM inline_policies WHERE kind = $1 AND principal = $2 ORDER BY name COLLATE \"C\"",
                    &[&k.as_str(), p],
                )?)? {
                    out.push((format!("{}/{p}/{name}", k.as_str()), doc));
                }
                out.extend(pairs(c.query(
                    "SELECT m.arn, m.document FROM attachments a JOIN managed_policies m ON m.arn = a.arn
                     WHERE a.kind = $1 AND a.principal = $2 ORDER BY m.arn COLLATE \"C\"",
                    &[&k.as_str(), p],
                )?)?);
            }
            Ok(out)
        })
    }

    fn all_identity_policies(&self) -> Result<Vec<(PrincipalKind, String, String, String)>> {
        self.read(|c| {
            // A user's own policies, its groups', and a role's, labelled as
            // `identity_policies` labels them.
            let rows = c.query(
                "SELECT kind, principal, kind || '/' || principal || '/' || name, document
                   FROM inline_policies WHERE kind IN ('user', 'role')
                 UNION ALL
                 SELECT a.kind, a.principal, m.arn, m.document
                   FROM attachments a JOIN managed_policies m ON m.arn = a.arn
                  WHERE a.kind IN ('user', 'role')
                 UNION ALL
                 SELECT 'user', gm.user_name, 'group/' || i.principal || '/' || i.name, i.document
                   FROM group_members gm JOIN inline_policies i ON i.kind = 'group' AND i.principal = gm.grp
                 UNION ALL
                 SELECT 'user', gm.user_name, m.arn, m.document
                   FROM group_members gm JOIN attachments a ON a.kind = 'group' AND a.principal = gm.grp
                   JOIN managed_policies m ON m.arn = a.arn",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let kind = match r.try_get::<_, &str>(0)? {
                        "user" => PrincipalKind::User,
                        _ => PrincipalKind::Role,
                    };
                    Ok((kind, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
                })
                .collect()
        })
    }
}
