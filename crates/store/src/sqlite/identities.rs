//! Users, roles and groups: IAM's names (compared ignoring case), paths,
//! tags and group memberships.

use rusqlite::{OptionalExtension, params};

use super::names::{self, canonical_name};
use super::{SqliteBackend, tags_json, unique_id};
use crate::backend::Identities;
use crate::model::{merge_tags, remove_tags};
use crate::{Group, PrincipalKind, Result, Role, StoreError, User};

fn row_to_group(store: &SqliteBackend, r: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    let (name, path): (String, String) = (r.get(0)?, r.get(2)?);
    Ok(Group {
        arn: store.arn("group", &path, &name),
        name,
        id: r.get(1)?,
        path,
        created: r.get(3)?,
    })
}

impl Identities for SqliteBackend {
    fn create_user(
        &self,
        name: &str,
        path: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<User> {
        let tags = crate::shared::check_new_user(name, path, tags)?;
        let id = unique_id("AIDA")?;
        let n = self.db().execute(
            "INSERT OR IGNORE INTO users (name, id, path, created, tags) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, id, path, now, tags_json(&tags)],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "user",
                name: name.to_owned(),
            });
        }
        self.get_user(name)
    }

    fn get_user(&self, name: &str) -> Result<User> {
        self.db()
            .query_row(
                "SELECT name, id, path, created, tags FROM users WHERE name = ?1",
                [name],
                |r| self.row_to_user(r),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "user",
                name: name.to_owned(),
            })
    }

    fn list_users(&self) -> Result<Vec<User>> {
        let db = self.reader();
        let mut stmt =
            db.prepare("SELECT name, id, path, created, tags FROM users ORDER BY name")?;
        let rows = stmt.query_map([], |r| self.row_to_user(r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn delete_user(&self, name: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let user = tx
            .query_row(
                "SELECT name, id, path, created, tags FROM users WHERE name = ?1",
                [name],
                |r| self.row_to_user(r),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "user",
                name: name.to_owned(),
            })?;
        let count =
            |sql: &str| -> rusqlite::Result<i64> { tx.query_row(sql, [&user.name], |r| r.get(0)) };
        if count("SELECT COUNT(*) FROM access_keys WHERE user = ?1 COLLATE NOCASE")? > 0 {
            return Err(StoreError::DeleteConflict("delete access keys"));
        }
        names::ensure_no_policies(&tx, PrincipalKind::User, &user.name)?;
        if count("SELECT COUNT(*) FROM mfa_devices WHERE user = ?1 COLLATE NOCASE")? > 0 {
            return Err(StoreError::DeleteConflict("remove MFA devices"));
        }
        if count("SELECT COUNT(*) FROM login_profiles WHERE user = ?1 COLLATE NOCASE")? > 0 {
            return Err(StoreError::DeleteConflict("delete login profile"));
        }
        tx.execute(
            "DELETE FROM group_members WHERE user = ?1 COLLATE NOCASE",
            [&user.name],
        )?;
        tx.execute("DELETE FROM users WHERE name = ?1", [&user.name])?;
        names::unbind_principal(&tx, &user.arn, &user.id)?;
        tx.commit()?;
        Ok(())
    }

    fn tag_user(&self, name: &str, tags: &[(String, String)]) -> Result<()> {
        self.change_tags(PrincipalKind::User, name, |t| merge_tags(t, tags))
    }

    fn untag_user(&self, name: &str, keys: &[&str]) -> Result<()> {
        self.change_tags(PrincipalKind::User, name, |t| {
            remove_tags(t, keys);
            Ok(())
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn create_role(
        &self,
        name: &str,
        path: &str,
        trust_policy: &str,
        max_session_duration: i64,
        description: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<Role> {
        let tags = crate::shared::check_new_role(name, path, max_session_duration, tags)?;
        let id = unique_id("AROA")?;
        let n = self.db().execute(
            "INSERT OR IGNORE INTO roles (name, id, path, created, trust_policy, max_session, description, tags)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![name, id, path, now, trust_policy, max_session_duration, description, tags_json(&tags)],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "role",
                name: name.to_owned(),
            });
        }
        self.get_role(name)
    }

    fn get_role(&self, name: &str) -> Result<Role> {
        self.db()
            .query_row(
                &format!("SELECT {} FROM roles WHERE name = ?1", Self::ROLE_COLUMNS),
                [name],
                |r| self.row_to_role(r),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "role",
                name: name.to_owned(),
            })
    }

    fn list_roles(&self) -> Result<Vec<Role>> {
        let db = self.reader();
        let mut stmt = db.prepare(&format!(
            "SELECT {} FROM roles ORDER BY name",
            Self::ROLE_COLUMNS
        ))?;
        let rows = stmt.query_map([], |r| self.row_to_role(r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn delete_role(&self, name: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let role = tx
            .query_row(
                &format!("SELECT {} FROM roles WHERE name = ?1", Self::ROLE_COLUMNS),
                [name],
                |r| self.row_to_role(r),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "role",
                name: name.to_owned(),
            })?;
        names::ensure_no_policies(&tx, PrincipalKind::Role, &role.name)?;
        tx.execute("DELETE FROM roles WHERE name = ?1", [&role.name])?;
        names::unbind_principal(&tx, &role.arn, &role.id)?;
        tx.commit()?;
        Ok(())
    }

    fn update_assume_role_policy(&self, name: &str, document: &str) -> Result<()> {
        let n = self.db().execute(
            "UPDATE roles SET trust_policy = ?1 WHERE name = ?2",
            params![document, name],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "role",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn update_role(
        &self,
        name: &str,
        description: Option<&str>,
        max_session_duration: Option<i64>,
    ) -> Result<()> {
        crate::shared::check_role_update(description, max_session_duration)?;
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

    fn tag_role(&self, name: &str, tags: &[(String, String)]) -> Result<()> {
        self.change_tags(PrincipalKind::Role, name, |t| merge_tags(t, tags))
    }

    fn untag_role(&self, name: &str, keys: &[&str]) -> Result<()> {
        self.change_tags(PrincipalKind::Role, name, |t| {
            remove_tags(t, keys);
            Ok(())
        })
    }

    fn create_group(&self, name: &str, path: &str, now: i64) -> Result<(String, String)> {
        crate::shared::check_new_group(name, path)?;
        let id = unique_id("AGPA")?;
        let n = self.db().execute(
            "INSERT OR IGNORE INTO groups (name, id, path, created) VALUES (?1, ?2, ?3, ?4)",
            params![name, id, path, now],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "group",
                name: name.to_owned(),
            });
        }
        Ok((id, self.arn("group", path, name)))
    }

    fn get_group(&self, name: &str) -> Result<Group> {
        self.db()
            .query_row(
                "SELECT name, id, path, created FROM groups WHERE name = ?1",
                [name],
                |r| {
                    let (name, path): (String, String) = (r.get(0)?, r.get(2)?);
                    Ok(Group {
                        arn: self.arn("group", &path, &name),
                        name,
                        id: r.get(1)?,
                        path,
                        created: r.get(3)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "group",
                name: name.to_owned(),
            })
    }

    fn list_groups(&self) -> Result<Vec<Group>> {
        let db = self.reader();
        let mut stmt = db.prepare("SELECT name, id, path, created FROM groups ORDER BY name")?;
        let rows = stmt.query_map([], |r| row_to_group(self, r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn add_user_to_group(&self, group: &str, user: &str) -> Result<()> {
        let db = self.db();
        let group = names::canonical_name(&db, PrincipalKind::Group, group)?;
        let user = names::canonical_name(&db, PrincipalKind::User, user)?;
        db.execute(
            "INSERT OR IGNORE INTO group_members (grp, user) VALUES (?1, ?2)",
            [group, user],
        )?;
        Ok(())
    }

    fn remove_user_from_group(&self, group: &str, user: &str) -> Result<()> {
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

    fn groups_for_user(&self, user: &str) -> Result<Vec<String>> {
        let db = self.db();
        let user = names::canonical_name(&db, PrincipalKind::User, user)?;
        Self::group_names(&db, &user)
    }

    fn groups_of_user(&self, user: &str) -> Result<Vec<Group>> {
        let db = self.db();
        let user = canonical_name(&db, PrincipalKind::User, user)?;
        let mut stmt = db.prepare(
            "SELECT g.name, g.id, g.path, g.created FROM group_members m JOIN groups g ON g.name = m.grp
             WHERE m.user = ?1 ORDER BY g.name",
        )?;
        let rows = stmt.query_map([&user], |r| row_to_group(self, r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn group_members(&self, group: &str) -> Result<Vec<User>> {
        let db = self.db();
        let group = canonical_name(&db, PrincipalKind::Group, group)?;
        let mut stmt = db.prepare(
            "SELECT u.name, u.id, u.path, u.created, u.tags FROM group_members m JOIN users u ON u.name = m.user
             WHERE m.grp = ?1 ORDER BY u.name",
        )?;
        let rows = stmt.query_map([&group], |r| self.row_to_user(r))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn delete_group(&self, name: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let name = canonical_name(&tx, PrincipalKind::Group, name)?;
        let count =
            |sql: &str| -> rusqlite::Result<i64> { tx.query_row(sql, [&name], |r| r.get(0)) };
        if count("SELECT COUNT(*) FROM group_members WHERE grp = ?1 COLLATE NOCASE")? > 0 {
            return Err(StoreError::DeleteConflict("remove users from group"));
        }
        names::ensure_no_policies(&tx, PrincipalKind::Group, &name)?;
        tx.execute("DELETE FROM groups WHERE name = ?1", [&name])?;
        tx.commit()?;
        Ok(())
    }
}
