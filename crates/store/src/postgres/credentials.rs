//! [`Credentials`] on PostgreSQL, as SQLite's (`crate::sqlite::credentials`):
//! secrets sealed with the key id or device serial as context.

use tokio_postgres::Row;
use zeroize::Zeroizing;

use super::names::canonical_name;
use super::{PgBackend, Sql};
use crate::backend::Credentials;
use crate::model::valid_path;
use crate::sqlite::{base64_secret, unique_id};
use crate::{AccessKey, MfaDevice, PrincipalKind, Result, StoreError, random, valid_name};

const KEY_COLUMNS: &str = "id, user_name, active, created";

const MFA_COLUMNS: &str = "serial, user_name, enabled_at";

/// A row of [`KEY_COLUMNS`].
fn row_to_key(r: &Row) -> Result<AccessKey> {
    Ok(AccessKey {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        active: r.try_get(2)?,
        created: r.try_get(3)?,
    })
}

/// A row of [`MFA_COLUMNS`].
fn row_to_mfa(r: &Row) -> Result<MfaDevice> {
    Ok(MfaDevice {
        serial: r.try_get(0)?,
        user: r.try_get(1)?,
        enabled_at: r.try_get(2)?,
    })
}

fn no_key(id: &str) -> StoreError {
    StoreError::NoSuchEntity {
        kind: "access key",
        name: id.to_owned(),
    }
}

impl Credentials for PgBackend {
    fn create_access_key(&self, user: &str, now: i64) -> Result<(AccessKey, Zeroizing<String>)> {
        let id = unique_id("AKIA")?;
        let secret = Zeroizing::new(base64_secret(&random::<30>()?));
        let sealed = self.vault().seal(secret.as_bytes(), id.as_bytes())?;
        // The count and the insert in one transaction: two nodes cannot
        // both add a user's second key.
        let user = self.write(|tx| {
            let user = canonical_name(tx, PrincipalKind::User, user)?;
            let existing: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM access_keys WHERE user_name = $1",
                    &[&user],
                )?
                .try_get(0)?;
            if existing >= 2 {
                return Err(StoreError::LimitExceeded(
                    "cannot exceed quota for AccessKeysPerUser: 2",
                ));
            }
            tx.execute(
                "INSERT INTO access_keys (id, user_name, secret, active, created) VALUES ($1, $2, $3, TRUE, $4)",
                &[&id, &user, &sealed, &now],
            )?;
            Ok(user)
        })?;
        Ok((
            AccessKey {
                id,
                user,
                active: true,
                created: now,
            },
            secret,
        ))
    }

    fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>> {
        self.read(|c| {
            let user = canonical_name(c, PrincipalKind::User, user)?;
            c.query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM access_keys WHERE user_name = $1 COLLATE latchkey_nocase
                     ORDER BY created, id COLLATE \"C\""
                ),
                &[&user],
            )?
            .iter()
            .map(row_to_key)
            .collect()
        })
    }

    fn update_access_key(&self, id: &str, active: bool) -> Result<()> {
        let n = self.write(|tx| {
            tx.execute(
                "UPDATE access_keys SET active = $1 WHERE id = $2",
                &[&active, &id],
            )
        })?;
        if n == 0 {
            return Err(no_key(id));
        }
        Ok(())
    }

    fn delete_access_key(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            // Remembered, so that a leaked key found later is known to be
            // dead rather than never issued.
            tx.execute(
                "INSERT INTO deleted_access_keys (id, user_name, deleted)
                 SELECT id, user_name, floor(extract(epoch FROM now()))::BIGINT FROM access_keys WHERE id = $1
                 ON CONFLICT (id) DO UPDATE SET user_name = EXCLUDED.user_name, deleted = EXCLUDED.deleted",
                &[&id],
            )?;
            if tx.execute("DELETE FROM access_keys WHERE id = $1", &[&id])? == 0 {
                return Err(no_key(id));
            }
            tx.execute("DELETE FROM credential_last_used WHERE id = $1", &[&id])?;
            Ok(())
        })
    }

    fn access_key(&self, id: &str) -> Result<Option<AccessKey>> {
        self.read(|c| {
            c.query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM access_keys WHERE id = $1"),
                &[&id],
            )?
            .as_ref()
            .map(row_to_key)
            .transpose()
        })
    }

    fn deleted_access_key(&self, id: &str) -> Result<Option<(String, i64)>> {
        self.read(|c| {
            c.query_opt(
                "SELECT user_name, deleted FROM deleted_access_keys WHERE id = $1",
                &[&id],
            )?
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
        })
    }

    fn access_key_secret(&self, id: &str) -> Result<Option<(AccessKey, Zeroizing<String>)>> {
        let row = self.read(|c| {
            c.query_opt(
                &format!("SELECT {KEY_COLUMNS}, secret FROM access_keys WHERE id = $1"),
                &[&id],
            )?
            .map(|r| Ok((row_to_key(&r)?, r.try_get::<_, Vec<u8>>(4)?)))
            .transpose()
        })?;
        let Some((key, sealed)) = row else {
            return Ok(None);
        };
        let secret = self.vault().open(&sealed, id.as_bytes())?;
        let secret = Zeroizing::new(String::from_utf8_lossy(&secret).into_owned());
        Ok(Some((key, secret)))
    }

    fn create_virtual_mfa(&self, name: &str, path: &str) -> Result<(String, Zeroizing<String>)> {
        if !valid_name(name, 128) || !valid_path(path) {
            return Err(StoreError::InvalidInput(
                "MFA device names are 1-128 characters of [A-Za-z0-9_+=,.@-]",
            ));
        }
        let serial = format!("arn:aws:iam::{}:mfa{path}{name}", self.account());
        let seed = Zeroizing::new(random::<20>()?);
        let sealed = self.vault().seal(seed.as_ref(), serial.as_bytes())?;
        let n = self.write(|tx| {
            // One name per account, whatever its case and path (as IAM
            // keeps device names): read and insert in one serializable
            // transaction.
            for row in tx.query("SELECT serial FROM mfa_devices", &[])? {
                if crate::shared::same_mfa_name(&row.try_get::<_, String>(0)?, name) {
                    return Ok(0);
                }
            }
            tx.execute(
                "INSERT INTO mfa_devices (serial, user_name, seed, enabled_at, last_step)
                 VALUES ($1, NULL, $2, NULL, NULL) ON CONFLICT DO NOTHING",
                &[&serial, &sealed],
            )
        })?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "MFA device",
                name: name.to_owned(),
            });
        }
        Ok((
            serial,
            Zeroizing::new(latchkey_session::base32(seed.as_ref())),
        ))
    }

    fn mfa_seed(&self, serial: &str) -> Result<(MfaDevice, Zeroizing<Vec<u8>>, Option<i64>)> {
        let row = self.read(|c| {
            c.query_opt(
                "SELECT user_name, seed, enabled_at, last_step FROM mfa_devices WHERE serial = $1",
                &[&serial],
            )
        })?;
        let row = row.ok_or_else(|| StoreError::NoSuchEntity {
            kind: "MFA device",
            name: serial.to_owned(),
        })?;
        let user: Option<String> = row.try_get(0)?;
        let sealed: Vec<u8> = row.try_get(1)?;
        let enabled_at: Option<i64> = row.try_get(2)?;
        let last_step: Option<i64> = row.try_get(3)?;
        let seed = self.vault().open(&sealed, serial.as_bytes())?;
        Ok((
            MfaDevice {
                serial: serial.to_owned(),
                user,
                enabled_at,
            },
            seed,
            last_step,
        ))
    }

    fn use_mfa_step(&self, serial: &str, step: i64) -> Result<bool> {
        // One conditional UPDATE (compare-and-set): of two nodes given the
        // same code at once, one changes the row; the other, retried, finds
        // the step used.
        let n = self.write(|tx| {
            tx.execute(
                "UPDATE mfa_devices SET last_step = $1
                 WHERE serial = $2 AND (last_step IS NULL OR last_step < $1)",
                &[&step, &serial],
            )
        })?;
        Ok(n == 1)
    }

    fn enable_mfa(&self, serial: &str, user: &str, step: i64, now: i64) -> Result<()> {
        let n = self.write(|tx| {
            let user = canonical_name(tx, PrincipalKind::User, user)?;
            tx.execute(
                "UPDATE mfa_devices SET user_name = $1, enabled_at = $2, last_step = $3
                 WHERE serial = $4 AND user_name IS NULL",
                &[&user, &now, &step, &serial],
            )
        })?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "MFA device assignment",
                name: serial.to_owned(),
            });
        }
        Ok(())
    }

    fn deactivate_mfa(&self, serial: &str, user: &str) -> Result<()> {
        let n = self.write(|tx| {
            tx.execute(
                "UPDATE mfa_devices SET user_name = NULL, enabled_at = NULL
                 WHERE serial = $1 AND user_name = $2 COLLATE latchkey_nocase",
                &[&serial, &user],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "MFA device",
                name: serial.to_owned(),
            });
        }
        Ok(())
    }

    fn list_mfa_devices(&self, user: &str) -> Result<Vec<MfaDevice>> {
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT {MFA_COLUMNS} FROM mfa_devices WHERE user_name = $1 COLLATE latchkey_nocase
                     ORDER BY serial COLLATE \"C\""
                ),
                &[&user],
            )?
            .iter()
            .map(row_to_mfa)
            .collect()
        })
    }

    fn list_virtual_mfa_devices(&self) -> Result<Vec<MfaDevice>> {
        self.read(|c| {
            c.query(
                &format!("SELECT {MFA_COLUMNS} FROM mfa_devices ORDER BY serial COLLATE \"C\""),
                &[],
            )?
            .iter()
            .map(row_to_mfa)
            .collect()
        })
    }
}
