//! [`Identities`] on PostgreSQL: users, roles and groups, as SQLite's
//! (`crate::sqlite::identities`).

use tokio_postgres::Row;

use super::names::{self, canonical_name};
use super::{PgBackend, Sql};
use crate::backend::Identities;
use crate::model::{merge_tags, remove_tags};
use crate::sqlite::{parse_tags, tags_json, unique_id};
use crate::{Group, PrincipalKind, Result, Role, StoreError, User};

pub(super) const USER_COLUMNS: &str = "name, id, path, created, tags";

const ROLE_COLUMNS: &str = "name, id, path, created, trust_policy, max_session, description, tags";

const GROUP_COLUMNS: &str = "name, id, path, created";

/// SQLite's `NOCASE` order of names (all ASCII): lower case, then bytes.
const BY_NAME: &str = "lower(name) COLLATE \"C\"";

fn arn(account: &str, kind: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:{kind}{path}{name}")
}

fn no_such(kind: &'static str, name: &str) -> StoreError {
    StoreError::NoSuchEntity {
        kind,
        name: name.to_owned(),
    }
}

/// A row of [`USER_COLUMNS`].
pub(super) fn row_to_user(account: &str, r: &Row) -> Result<User> {
    let name: String = r.try_get(0)?;
    let path: String = r.try_get(2)?;
    Ok(User {
        arn: arn(account, "user", &path, &name),
        name,
        id: r.try_get(1)?,
        path,
        created: r.try_get(3)?,
        tags: parse_tags(&r.try_get::<_, String>(4)?),
    })
}

fn row_to_role(account: &str, r: &Row) -> Result<Role> {
    let name: String = r.try_get(0)?;
    let path: String = r.try_get(2)?;
    Ok(Role {
        arn: arn(account, "role", &path, &name),
        name,
        id: r.try_get(1)?,
        path,
        created: r.try_get(3)?,
        trust_policy: r.try_get(4)?,
        max_session_duration: r.try_get(5)?,
        description: r.try_get(6)?,
        tags: parse_tags(&r.try_get::<_, String>(7)?),
    })
}

fn row_to_group(account: &str, r: &Row) -> Result<Group> {
    let name: String = r.try_get(0)?;
    let path: String = r.try_get(2)?;
    Ok(Group {
        arn: arn(account, "group", &path, &name),
        name,
        id: r.try_get(1)?,
        path,
        created: r.try_get(3)?,
    })
}

/// The user named `name` (any spelling), or `None`.
pub(super) fn find_user(c: &impl Sql, account: &str, name: &str) -> Result<Option<User>> {
    c.query_opt(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"),
        &[&name],
    )?
    .map(|r| row_to_user(account, &r))
    .transpose()
}

/// The user named `name` (any spelling); `NoSuchEntity` when there is none.
pub(super) fn user(c: &impl Sql, account: &str, name: &str) -> Result<User> {
    find_user(c, account, name)?.ok_or_else(|| no_such("user", name))
}

fn role(c: &impl Sql, account: &str, name: &str) -> Result<Role> {
    c.query_opt(
        &format!("SELECT {ROLE_COLUMNS} FROM roles WHERE name = $1"),
        &[&name],
    )?
    .map(|r| row_to_role(account, &r))
    .transpose()?
    .ok_or_else(|| no_such("role", name))
}

/// The names of the groups `user` (its stored spelling) belongs to, in
/// SQLite's order; for other concerns (policies) too.
pub(super) fn group_names(c: &impl Sql, user: &str) -> Result<Vec<String>> {
    c.query(
        "SELECT g.name FROM group_members m JOIN groups g ON g.name = m.grp
         WHERE m.user_name = $1 ORDER BY lower(g.name) COLLATE \"C\"",
        &[&user],
    )?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

fn count(c: &impl Sql, sql: &str, name: &str) -> Result<i64> {
    Ok(c.query_one(sql, &[&name])?.try_get(0)?)
}

impl PgBackend {
    /// Reads a user's or role's tags, changes them and writes them back,
    /// in one transaction.
    pub(crate) fn change_tags(
        &self,
        kind: PrincipalKind,
        name: &str,
        change: impl Fn(&mut Vec<(String, String)>) -> Result<()>,
    ) -> Result<()> {
        self.write(|tx| {
            let (mut tags, name) = match kind {
                PrincipalKind::User => {
                    let u = user(tx, self.account(), name)?;
                    (u.tags, u.name)
                }
                PrincipalKind::Role => {
                    let r = role(tx, self.account(), name)?;
                    (r.tags, r.name)
                }
                PrincipalKind::Group => {
                    return Err(StoreError::InvalidInput("groups have no tags"));
                }
            };
            change(&mut tags)?;
            tx.execute(
                &format!(
                    "UPDATE {} SET tags = $1 WHERE name = $2",
                    names::table(kind)
                ),
                &[&tags_json(&tags), &name],
            )?;
            Ok(())
        })
    }
}

impl Identities for PgBackend {
    fn create_user(
        &self,
        name: &str,
        path: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<User> {
        let tags = tags_json(&crate::shared::check_new_user(name, path, tags)?);
        let id = unique_id("AIDA")?;
        self.write(|tx| {
            let n = tx.execute(
                "INSERT INTO users (name, id, path, created, tags) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
                &[&name, &id, &path, &now, &tags],
            )?;
            if n == 0 {
                return Err(StoreError::EntityAlreadyExists {
                    kind: "user",
                    name: name.to_owned(),
                });
            }
            user(tx, self.account(), name)
        })
    }

    fn get_user(&self, name: &str) -> Result<User> {
        self.read(|c| user(c, self.account(), name))
    }

    fn list_users(&self) -> Result<Vec<User>> {
        self.read(|c| {
            c.query(
                &format!("SELECT {USER_COLUMNS} FROM users ORDER BY {BY_NAME}"),
                &[],
            )?
            .iter()
            .map(|r| row_to_user(self.account(), r))
            .collect()
        })
    }

    fn delete_user(&self, name: &str) -> Result<()> {
        self.write(|tx| {
            let user = user(tx, self.account(), name)?;
            if count(
                tx,
                "SELECT COUNT(*) FROM access_keys WHERE user_name = $1 COLLATE latchkey_nocase",
                &user.name,
            )? > 0
            {
                return Err(StoreError::DeleteConflict("delete access keys"));
            }
            names::ensure_no_policies(tx, PrincipalKind::User, &user.name)?;
            if count(
                tx,
                "SELECT COUNT(*) FROM mfa_devices WHERE user_name = $1 COLLATE latchkey_nocase",
                &user.name,
            )? > 0
            {
                return Err(StoreError::DeleteConflict("remove MFA devices"));
            }
            if count(
                tx,
                "SELECT COUNT(*) FROM login_profiles WHERE user_name = $1 COLLATE latchkey_nocase",
                &user.name,
            )? > 0
            {
                return Err(StoreError::DeleteConflict("delete login profile"));
            }
            tx.execute(
                "DELETE FROM group_members WHERE user_name = $1 COLLATE latchkey_nocase",
                &[&user.name],
            )?;
            tx.execute("DELETE FROM users WHERE name = $1", &[&user.name])?;
            names::unbind_principal(tx, &user.arn, &user.id)?;
            Ok(())
        })
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
        let tags = tags_json(&crate::shared::check_new_role(
            name,
            path,
            max_session_duration,
            tags,
        )?);
        let id = unique_id("AROA")?;
        self.write(|tx| {
            let n = tx.execute(
                "INSERT INTO roles (name, id, path, created, trust_policy, max_session, description, tags)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                &[
                    &name,
                    &id,
                    &path,
                    &now,
                    &trust_policy,
                    &max_session_duration,
                    &description,
                    &tags,
                ],
            )?;
            if n == 0 {
                return Err(StoreError::EntityAlreadyExists {
                    kind: "role",
                    name: name.to_owned(),
                });
            }
            role(tx, self.account(), name)
        })
    }

    fn get_role(&self, name: &str) -> Result<Role> {
        self.read(|c| role(c, self.account(), name))
    }

    fn list_roles(&self) -> Result<Vec<Role>> {
        self.read(|c| {
            c.query(
                &format!("SELECT {ROLE_COLUMNS} FROM roles ORDER BY {BY_NAME}"),
                &[],
            )?
            .iter()
            .map(|r| row_to_role(self.account(), r))
            .collect()
        })
    }

    fn delete_role(&self, name: &str) -> Result<()> {
        self.write(|tx| {
            let role = role(tx, self.account(), name)?;
            names::ensure_no_policies(tx, PrincipalKind::Role, &role.name)?;
            tx.execute("DELETE FROM roles WHERE name = $1", &[&role.name])?;
            names::unbind_principal(tx, &role.arn, &role.id)?;
            Ok(())
        })
    }

    fn update_assume_role_policy(&self, name: &str, document: &str) -> Result<()> {
        let n = self.write(|tx| {
            tx.execute(
                "UPDATE roles SET trust_policy = $1 WHERE name = $2",
                &[&document, &name],
            )
        })?;
        if n == 0 {
            return Err(no_such("role", name));
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
        self.write(|tx| {
            let role = role(tx, self.account(), name)?;
            tx.execute(
                "UPDATE roles SET description = $1, max_session = $2 WHERE name = $3",
                &[
                    &description.unwrap_or(&role.description),
                    &max_session_duration.unwrap_or(role.max_session_duration),
                    &role.name,
                ],
            )?;
            Ok(())
        })
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
        let n = self.write(|tx| {
            tx.execute(
                "INSERT INTO groups (name, id, path, created) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&name, &id, &path, &now],
            )
        })?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "group",
                name: name.to_owned(),
            });
        }
        Ok((id, arn(self.account(), "group", path, name)))
    }

    fn get_group(&self, name: &str) -> Result<Group> {
        self.read(|c| {
            c.query_opt(
                &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE name = $1"),
                &[&name],
            )?
            .map(|r| row_to_group(self.account(), &r))
            .transpose()?
            .ok_or_else(|| no_such("group", name))
        })
    }

    fn list_groups(&self) -> Result<Vec<Group>> {
        self.read(|c| {
            c.query(
                &format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY {BY_NAME}"),
                &[],
            )?
            .iter()
            .map(|r| row_to_group(self.account(), r))
            .collect()
        })
    }

    fn add_user_to_group(&self, group: &str, user: &str) -> Result<()> {
        self.write(|tx| {
            let group = canonical_name(tx, PrincipalKind::Group, group)?;
            let user = canonical_name(tx, PrincipalKind::User, user)?;
            tx.execute(
                "INSERT INTO group_members (grp, user_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&group, &user],
            )?;
            Ok(())
        })
    }

    fn remove_user_from_group(&self, group: &str, user: &str) -> Result<()> {
        self.write(|tx| {
            let group = canonical_name(tx, PrincipalKind::Group, group)?;
            let user_name = canonical_name(tx, PrincipalKind::User, user)?;
            let n = tx.execute(
                "DELETE FROM group_members WHERE grp = $1 AND user_name = $2",
                &[&group, &user_name],
            )?;
            if n == 0 {
                return Err(no_such("group member", user));
            }
            Ok(())
        })
    }

    fn groups_for_user(&self, user: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let user = canonical_name(c, PrincipalKind::User, user)?;
            group_names(c, &user)
        })
    }

    fn groups_of_user(&self, user: &str) -> Result<Vec<Group>> {
        self.read(|c| {
            let user = canonical_name(c, PrincipalKind::User, user)?;
            c.query(
                "SELECT g.name, g.id, g.path, g.created FROM group_members m JOIN groups g ON g.name = m.grp
                 WHERE m.user_name = $1 ORDER BY lower(g.name) COLLATE \"C\"",
                &[&user],
            )?
            .iter()
            .map(|r| row_to_group(self.account(), r))
            .collect()
        })
    }

    fn group_members(&self, group: &str) -> Result<Vec<User>> {
        self.read(|c| {
            let group = canonical_name(c, PrincipalKind::Group, group)?;
            c.query(
                "SELECT u.name, u.id, u.path, u.created, u.tags FROM group_members m JOIN users u ON u.name = m.user_name
                 WHERE m.grp = $1 ORDER BY lower(u.name) COLLATE \"C\"",
                &[&group],
            )?
            .iter()
            .map(|r| row_to_user(self.account(), r))
            .collect()
        })
    }

    fn delete_group(&self, name: &str) -> Result<()> {
        self.write(|tx| {
            let name = canonical_name(tx, PrincipalKind::Group, name)?;
            if count(
                tx,
                "SELECT COUNT(*) FROM group_members WHERE grp = $1 COLLATE latchkey_nocase",
                &name,
            )? > 0
            {
                return Err(StoreError::DeleteConflict("remove users from group"));
            }
            names::ensure_no_policies(tx, PrincipalKind::Group, &name)?;
            tx.execute("DELETE FROM groups WHERE name = $1", &[&name])?;
            Ok(())
        })
    }
}
