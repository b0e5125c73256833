//! [`Passwords`] on PostgreSQL, as SQLite's (`crate::sqlite::passwords`):
//! a hash is sealed with `login-profile/` and the user's unique id as
//! context.

use tokio_postgres::Row;

use super::identities::user;
use super::{PgBackend, Sql};
use crate::backend::{LoginPassword, PASSWORD_HISTORY, Passwords};
use crate::shared::{login_profile_context as context, no_profile};
use crate::{LoginProfile, PasswordHash, PasswordPolicy, Result, StoreError, User};

const PROFILE_COLUMNS: &str = "user_name, created, changed, reset_required, last_used";

fn row_to_profile(r: &Row) -> Result<LoginProfile> {
    Ok(LoginProfile {
        user: r.try_get(0)?,
        created: r.try_get(1)?,
        changed: r.try_get(2)?,
        reset_required: r.try_get(3)?,
        last_used: r.try_get(4)?,
    })
}

fn profile(c: &impl Sql, user: &str) -> Result<Option<LoginProfile>> {
    c.query_opt(
        &format!("SELECT {PROFILE_COLUMNS} FROM login_profiles WHERE user_name = $1"),
        &[&user],
    )?
    .map(|r| row_to_profile(&r))
    .transpose()
}

/// An integer column that must fit `T` (as rusqlite's checked reads).
fn narrow<T: TryFrom<i64>>(value: i64, column: &str) -> Result<T> {
    T::try_from(value).map_err(|_| {
        StoreError::Postgres(format!("password_policy.{column} out of range: {value}"))
    })
}

impl PgBackend {
    fn open_hash(&self, sealed: &[u8], user: &User) -> Result<PasswordHash> {
        let phc = self.vault().open(sealed, &context(user))?;
        let phc = std::str::from_utf8(&phc)
            .map_err(|_| StoreError::InvalidInput("a stored password hash is not text"))?;
        PasswordHash::parse(phc)
            .map_err(|_| StoreError::InvalidInput("a stored password hash is not Argon2id"))
    }
}

impl Passwords for PgBackend {
    fn create_login_profile(
        &self,
        user_name: &str,
        hash: &PasswordHash,
        reset_required: bool,
        now: i64,
    ) -> Result<LoginProfile> {
        self.write(|tx| {
            let user = user(tx, self.account(), user_name)?;
            let sealed = self
                .vault()
                .seal(hash.as_str().as_bytes(), &context(&user))?;
            let inserted = tx.execute(
                "INSERT INTO login_profiles (user_name, hash, created, changed, reset_required) \
                 VALUES ($1, $2, $3, $3, $4) ON CONFLICT (user_name) DO NOTHING",
                &[&user.name, &sealed, &now, &reset_required],
            )?;
            if inserted == 0 {
                return Err(StoreError::EntityAlreadyExists {
                    kind: "login profile for user",
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
        })
    }

    fn login_profile(&self, user: &str) -> Result<Option<LoginProfile>> {
        self.read(|c| profile(c, user))
    }

    fn login_password(&self, user_name: &str, previous: usize) -> Result<Option<LoginPassword>> {
        let limit = i64::try_from(previous.min(PASSWORD_HISTORY)).unwrap_or(0);
        let found = self.read(|c| {
            let Ok(owner) = user(c, self.account(), user_name) else {
                return Ok(None);
            };
            let Some(row) = c.query_opt(
                &format!("SELECT {PROFILE_COLUMNS}, hash FROM login_profiles WHERE user_name = $1"),
                &[&owner.name],
            )?
            else {
                return Ok(None);
            };
            let profile = row_to_profile(&row)?;
            let sealed: Vec<u8> = row.try_get(5)?;
            let history = c
                .query(
                    "SELECT hash FROM password_history WHERE user_name = $1 \
                     ORDER BY id DESC LIMIT $2",
                    &[&owner.name, &limit],
                )?
                .iter()
                .map(|r| Ok(r.try_get::<_, Vec<u8>>(0)?))
                .collect::<Result<Vec<_>>>()?;
            Ok(Some((owner, profile, sealed, history)))
        })?;
        let Some((owner, profile, sealed, history)) = found else {
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
        user_name: &str,
        hash: Option<&PasswordHash>,
        reset_required: Option<bool>,
        now: i64,
    ) -> Result<LoginProfile> {
        let keep = i64::try_from(PASSWORD_HISTORY).unwrap_or(i64::MAX);
        self.write(|tx| {
            let owner = user(tx, self.account(), user_name)?;
            let old: Option<Vec<u8>> = tx
                .query_opt(
                    "SELECT hash FROM login_profiles WHERE user_name = $1",
                    &[&owner.name],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            let Some(old) = old else {
                return Err(no_profile(&owner.name));
            };
            if let Some(h) = hash {
                let sealed = self.vault().seal(h.as_str().as_bytes(), &context(&owner))?;
                tx.execute(
                    "INSERT INTO password_history (user_name, hash) VALUES ($1, $2)",
                    &[&owner.name, &old],
                )?;
                tx.execute(
                    "DELETE FROM password_history WHERE user_name = $1 AND id NOT IN \
                     (SELECT id FROM password_history WHERE user_name = $1 ORDER BY id DESC LIMIT $2)",
                    &[&owner.name, &keep],
                )?;
                tx.execute(
                    "UPDATE login_profiles SET hash = $2, changed = $3 WHERE user_name = $1",
                    &[&owner.name, &sealed, &now],
                )?;
            }
            if let Some(reset) = reset_required {
                tx.execute(
                    "UPDATE login_profiles SET reset_required = $2 WHERE user_name = $1",
                    &[&owner.name, &reset],
                )?;
            }
            profile(tx, &owner.name)?.ok_or_else(|| no_profile(&owner.name))
        })
    }

    fn delete_login_profile(&self, user: &str) -> Result<()> {
        self.write(|tx| {
            if tx.execute("DELETE FROM login_profiles WHERE user_name = $1", &[&user])? == 0 {
                return Err(no_profile(user));
            }
            tx.execute(
                "DELETE FROM password_history WHERE user_name = $1",
                &[&user],
            )?;
            Ok(())
        })
    }

    fn record_password_use(&self, user: &str, at: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE login_profiles SET last_used = GREATEST(COALESCE(last_used, 0), $2) \
                 WHERE user_name = $1",
                &[&user, &at],
            )
        })?;
        Ok(())
    }

    fn login_profiles(&self) -> Result<Vec<LoginProfile>> {
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT {PROFILE_COLUMNS} FROM login_profiles \
                     ORDER BY lower(user_name) COLLATE \"C\""
                ),
                &[],
            )?
            .iter()
            .map(row_to_profile)
            .collect()
        })
    }

    fn password_policy(&self) -> Result<Option<PasswordPolicy>> {
        self.read(|c| {
            let Some(r) = c.query_opt(
                "SELECT minimum_length, require_symbols, require_numbers, require_uppercase, \
                 require_lowercase, allow_users_to_change, max_age_days, reuse_prevention, \
                 hard_expiry FROM password_policy WHERE id = 1",
                &[],
            )?
            else {
                return Ok(None);
            };
            Ok(Some(PasswordPolicy {
                minimum_length: narrow(r.try_get(0)?, "minimum_length")?,
                require_symbols: r.try_get(1)?,
                require_numbers: r.try_get(2)?,
                require_uppercase: r.try_get(3)?,
                require_lowercase: r.try_get(4)?,
                allow_users_to_change: r.try_get(5)?,
                max_age_days: r
                    .try_get::<_, Option<i64>>(6)?
                    .map(|v| narrow(v, "max_age_days"))
                    .transpose()?,
                reuse_prevention: r
                    .try_get::<_, Option<i64>>(7)?
                    .map(|v| narrow(v, "reuse_prevention"))
                    .transpose()?,
                hard_expiry: r.try_get(8)?,
            }))
        })
    }

    fn put_password_policy(&self, p: &PasswordPolicy) -> Result<()> {
        let minimum_length = i64::from(p.minimum_length);
        let max_age_days = p.max_age_days.map(i64::from);
        let reuse_prevention = p.reuse_prevention.map(i64::from);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO password_policy (id, minimum_length, require_symbols, \
                 require_numbers, require_uppercase, require_lowercase, allow_users_to_change, \
                 max_age_days, reuse_prevention, hard_expiry) \
                 VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET minimum_length = EXCLUDED.minimum_length, \
                 require_symbols = EXCLUDED.require_symbols, \
                 require_numbers = EXCLUDED.require_numbers, \
                 require_uppercase = EXCLUDED.require_uppercase, \
                 require_lowercase = EXCLUDED.require_lowercase, \
                 allow_users_to_change = EXCLUDED.allow_users_to_change, \
                 max_age_days = EXCLUDED.max_age_days, \
                 reuse_prevention = EXCLUDED.reuse_prevention, \
                 hard_expiry = EXCLUDED.hard_expiry",
                &[
                    &minimum_length,
                    &p.require_symbols,
                    &p.require_numbers,
                    &p.require_uppercase,
                    &p.require_lowercase,
                    &p.allow_users_to_change,
                    &max_age_days,
                    &reuse_prevention,
                    &p.hard_expiry,
                ],
            )?;
            Ok(())
        })
    }

    fn delete_password_policy(&self) -> Result<bool> {
        Ok(self.write(|tx| tx.execute("DELETE FROM password_policy WHERE id = 1", &[]))? > 0)
    }
}
