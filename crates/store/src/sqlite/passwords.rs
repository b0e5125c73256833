//! Console passwords and the account password policy. A hash is sealed
//! with `login-profile/` and the user's unique id as context.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteBackend;
use crate::backend::{Identities, LoginPassword, PASSWORD_HISTORY, Passwords};
use crate::shared::{login_profile_context as context, no_profile};
use crate::{LoginProfile, PasswordHash, PasswordPolicy, Result, StoreError, User};

fn row_to_profile(r: &rusqlite::Row<'_>) -> rusqlite::Result<LoginProfile> {
    Ok(LoginProfile {
        user: r.get(0)?,
        created: r.get(1)?,
        changed: r.get(2)?,
        reset_required: r.get::<_, i64>(3)? != 0,
        last_used: r.get(4)?,
    })
}

const PROFILE_COLUMNS: &str = "user, created, changed, reset_required, last_used";

fn profile(db: &Connection, user: &str) -> Result<Option<LoginProfile>> {
    Ok(db
        .query_row(
            &format!("SELECT {PROFILE_COLUMNS} FROM login_profiles WHERE user = ?1"),
            [user],
            row_to_profile,
        )
        .optional()?)
}

impl SqliteBackend {
    fn open_hash(&self, sealed: &[u8], user: &User) -> Result<PasswordHash> {
        let phc = self.vault().open(sealed, &context(user))?;
        let phc = std::str::from_utf8(&phc)
            .map_err(|_| StoreError::InvalidInput("a stored password hash is not text"))?;
        PasswordHash::parse(phc)
            .map_err(|_| StoreError::InvalidInput("a stored password hash is not Argon2id"))
    }
}

impl Passwords for SqliteBackend {
    fn create_login_profile(
        &self,
        user: &str,
        hash: &PasswordHash,
        reset_required: bool,
        now: i64,
    ) -> Result<LoginProfile> {
        let user = self.get_user(user)?;
        let sealed = self
            .vault()
            .seal(hash.as_str().as_bytes(), &context(&user))?;
        let inserted = self.db().execute(
            "INSERT INTO login_profiles (user, hash, created, changed, reset_required) \
             SELECT ?1, ?2, ?3, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE name = ?1) \
             ON CONFLICT(user) DO NOTHING",
            params![user.name, sealed, now, i64::from(reset_required)],
        )?;
        if inserted == 0 {
            if self.login_profile(&user.name)?.is_some() {
                return Err(StoreError::EntityAlreadyExists {
                    kind: "login profile for user",
                    name: user.name,
                });
            }
            // Deleted between the lookup and the insert.
            return Err(StoreError::NoSuchEntity {
                kind: "user",
                name: user.name,
            });
        }
        Ok(LoginProfile {
            user: user.name,
            created: now,
            changed: now,
            reset_required,
            last_used: None,
        })
    }

    fn login_profile(&self, user: &str) -> Result<Option<LoginProfile>> {
        profile(&self.reader(), user)
    }

    fn login_password(&self, user: &str, previous: usize) -> Result<Option<LoginPassword>> {
        let Ok(owner) = self.get_user(user) else {
            return Ok(None);
        };
        let (row, history) = {
            let db = self.reader();
            let row: Option<(LoginProfile, Vec<u8>)> = db
                .query_row(
                    &format!("SELECT {PROFILE_COLUMNS}, hash FROM login_profiles WHERE user = ?1"),
                    [&owner.name],
                    |r| Ok((row_to_profile(r)?, r.get(5)?)),
                )
                .optional()?;
            let mut stmt = db.prepare(
                "SELECT hash FROM password_history WHERE user = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let limit = i64::try_from(previous.min(PASSWORD_HISTORY)).unwrap_or(0);
            let history = stmt
                .query_map(params![owner.name, limit], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            (row, history)
        };
        let Some((profile, sealed)) = row else {
            return Ok(None);
        };
        let hash = self.open_hash(&sealed, &owner)?;
        let previous = history
            .iter()
            .map(|h| self.open_hash(h, &owner))
            .collect::<Result<_>>()?;
        Ok(Some(LoginPassword {
            profile,
            hash,
            previous,
        }))
    }

    fn update_login_profile(
        &self,
        user: &str,
        hash: Option<&PasswordHash>,
        reset_required: Option<bool>,
        now: i64,
    ) -> Result<LoginProfile> {
        let owner = self.get_user(user)?;
        let sealed = match hash {
            Some(h) => Some(self.vault().seal(h.as_str().as_bytes(), &context(&owner))?),
            None => None,
        };
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let old: Option<Vec<u8>> = tx
            .query_row(
                "SELECT hash FROM login_profiles WHERE user = ?1",
                [&owner.name],
                |r| r.get(0),
            )
            .optional()?;
        let Some(old) = old else {
            return Err(no_profile(&owner.name));
        };
        if let Some(sealed) = sealed {
            tx.execute(
                "INSERT INTO password_history (user, hash) VALUES (?1, ?2)",
                params![owner.name, old],
            )?;
            tx.execute(
                "DELETE FROM password_history WHERE user = ?1 AND id NOT IN \
                 (SELECT id FROM password_history WHERE user = ?1 ORDER BY id DESC LIMIT ?2)",
                params![owner.name, PASSWORD_HISTORY as i64],
            )?;
            tx.execute(
                "UPDATE login_profiles SET hash = ?2, changed = ?3 WHERE user = ?1",
                params![owner.name, sealed, now],
            )?;
        }
        if let Some(reset) = reset_required {
            tx.execute(
                "UPDATE login_profiles SET reset_required = ?2 WHERE user = ?1",
                params![owner.name, i64::from(reset)],
            )?;
        }
        let updated = profile(&tx, &owner.name)?.ok_or_else(|| no_profile(&owner.name))?;
        tx.commit()?;
        Ok(updated)
    }

    fn delete_login_profile(&self, user: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        if tx.execute("DELETE FROM login_profiles WHERE user = ?1", [user])? == 0 {
            return Err(no_profile(user));
        }
        tx.execute("DELETE FROM password_history WHERE user = ?1", [user])?;
        tx.commit()?;
        Ok(())
    }

    fn record_password_use(&self, user: &str, at: i64) -> Result<()> {
        self.db().execute(
            "UPDATE login_profiles SET last_used = MAX(COALESCE(last_used, 0), ?2) WHERE user = ?1",
            params![user, at],
        )?;
        Ok(())
    }

    fn login_profiles(&self) -> Result<Vec<LoginProfile>> {
        let db = self.reader();
        let mut stmt = db.prepare(&format!(
            "SELECT {PROFILE_COLUMNS} FROM login_profiles ORDER BY user"
        ))?;
        let rows = stmt.query_map([], row_to_profile)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn password_policy(&self) -> Result<Option<PasswordPolicy>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT minimum_length, require_symbols, require_numbers, require_uppercase, \
                 require_lowercase, allow_users_to_change, max_age_days, reuse_prevention, \
                 hard_expiry FROM password_policy WHERE id = 1",
                [],
                |r| {
                    Ok(PasswordPolicy {
                        minimum_length: r.get(0)?,
                        require_symbols: r.get(1)?,
                        require_numbers: r.get(2)?,
                        require_uppercase: r.get(3)?,
                        require_lowercase: r.get(4)?,
                        allow_users_to_change: r.get(5)?,
                        max_age_days: r.get(6)?,
                        reuse_prevention: r.get(7)?,
                        hard_expiry: r.get(8)?,
                    })
                },
            )
            .optional()?)
    }

    fn put_password_policy(&self, p: &PasswordPolicy) -> Result<()> {
        self.db().execute(
            "INSERT OR REPLACE INTO password_policy (id, minimum_length, require_symbols, \
             require_numbers, require_uppercase, require_lowercase, allow_users_to_change, \
             max_age_days, reuse_prevention, hard_expiry) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                p.minimum_length,
                p.require_symbols,
                p.require_numbers,
                p.require_uppercase,
                p.require_lowercase,
                p.allow_users_to_change,
                p.max_age_days,
                p.reuse_prevention,
                p.hard_expiry
            ],
        )?;
        Ok(())
    }

    fn delete_password_policy(&self) -> Result<bool> {
        Ok(self
            .db()
            .execute("DELETE FROM password_policy WHERE id = 1", [])?
            > 0)
    }
}
