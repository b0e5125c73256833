//! Access keys and virtual MFA devices; their secrets are sealed with the
//! key id or device serial as context.

use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::names;
use super::{SqliteBackend, base64_secret, unique_id};
use crate::backend::{Credentials, Identities};
use crate::model::valid_path;
use crate::{AccessKey, MfaDevice, PrincipalKind, Result, StoreError, random, valid_name};

impl Credentials for SqliteBackend {
    fn create_access_key(&self, user: &str, now: i64) -> Result<(AccessKey, Zeroizing<String>)> {
        let user = self.get_user(user)?;
        let existing: i64 = self.db().query_row(
            "SELECT COUNT(*) FROM access_keys WHERE user = ?1",
            [&user.name],
            |r| r.get(0),
        )?;
        if existing >= 2 {
            return Err(StoreError::LimitExceeded(
                "cannot exceed quota for AccessKeysPerUser: 2",
            ));
        }
        let id = unique_id("AKIA")?;
        let secret = Zeroizing::new(base64_secret(&random::<30>()?));
        let sealed = self.vault().seal(secret.as_bytes(), id.as_bytes())?;
        self.db().execute(
            "INSERT INTO access_keys (id, user, secret, active, created) VALUES (?1, ?2, ?3, 1, ?4)",
            params![id, user.name, sealed, now],
        )?;
        Ok((
            AccessKey {
                id,
                user: user.name,
                active: true,
                created: now,
            },
            secret,
        ))
    }

    fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>> {
        let db = self.reader();
        let user = names::canonical_name(&db, PrincipalKind::User, user)?;
        let mut stmt = db.prepare(
            "SELECT id, user, active, created FROM access_keys WHERE user = ?1 COLLATE NOCASE ORDER BY created",
        )?;
        let rows = stmt.query_map([&user], |r| {
            Ok(AccessKey {
                id: r.get(0)?,
                user: r.get(1)?,
                active: r.get::<_, i64>(2)? != 0,
                created: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn update_access_key(&self, id: &str, active: bool) -> Result<()> {
        let n = self.db().execute(
            "UPDATE access_keys SET active = ?1 WHERE id = ?2",
            params![i64::from(active), id],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "access key",
                name: id.to_owned(),
            });
        }
        Ok(())
    }

    fn delete_access_key(&self, id: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        // Remembered, so that a leaked key found later is known to be
        // dead rather than never issued.
        tx.execute(
            "INSERT OR REPLACE INTO deleted_access_keys (id, user, deleted) \
             SELECT id, user, CAST(strftime('%s', 'now') AS INTEGER) FROM access_keys WHERE id = ?1",
            [id],
        )?;
        if tx.execute("DELETE FROM access_keys WHERE id = ?1", [id])? == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "access key",
                name: id.to_owned(),
            });
        }
        tx.execute("DELETE FROM credential_last_used WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    fn deleted_access_key(&self, id: &str) -> Result<Option<(String, i64)>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT user, deleted FROM deleted_access_keys WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn access_key(&self, id: &str) -> Result<Option<AccessKey>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT id, user, active, created FROM access_keys WHERE id = ?1",
                [id],
                |r| {
                    Ok(AccessKey {
                        id: r.get(0)?,
                        user: r.get(1)?,
                        active: r.get::<_, i64>(2)? != 0,
                        created: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    fn access_key_secret(&self, id: &str) -> Result<Option<(AccessKey, Zeroizing<String>)>> {
        let row: Option<(String, Vec<u8>, i64, i64)> = self
            .reader()
            .query_row(
                "SELECT user, secret, active, created FROM access_keys WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((user, sealed, active, created)) = row else {
            return Ok(None);
        };
        let secret = self.vault().open(&sealed, id.as_bytes())?;
        let secret = Zeroizing::new(String::from_utf8_lossy(&secret).into_owned());
        Ok(Some((
            AccessKey {
                id: id.to_owned(),
                user,
                active: active != 0,
                created,
            },
            secret,
        )))
    }

    fn create_virtual_mfa(&self, name: &str, path: &str) -> Result<(String, Zeroizing<String>)> {
        if !valid_name(name, 128) || !valid_path(path) {
            return Err(StoreError::InvalidInput(
                "MFA device names are 1-128 characters of [A-Za-z0-9_+=,.@-]",
            ));
        }
        let serial = format!("arn:aws:iam::{}:mfa{path}{name}", self.account);
        let seed = Zeroizing::new(random::<20>()?);
        let sealed = self.vault().seal(seed.as_ref(), serial.as_bytes())?;
        let db = self.db();
        let taken = {
            let mut stmt = db.prepare("SELECT serial FROM mfa_devices")?;
            let serials = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut taken = false;
            for s in serials {
                taken |= crate::shared::same_mfa_name(&s?, name);
            }
            taken
        };
        let n = if taken {
            0
        } else {
            db.execute(
                "INSERT OR IGNORE INTO mfa_devices (serial, user, seed, enabled_at, last_step) VALUES (?1, NULL, ?2, NULL, NULL)",
                params![serial, sealed],
            )?
        };
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
        // (user, sealed seed, enabled at, last step)
        type MfaRow = (Option<String>, Vec<u8>, Option<i64>, Option<i64>);
        let row: Option<MfaRow> = self
            .db()
            .query_row(
                "SELECT user, seed, enabled_at, last_step FROM mfa_devices WHERE serial = ?1",
                [serial],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (user, sealed, enabled_at, last_step) =
            row.ok_or_else(|| StoreError::NoSuchEntity {
                kind: "MFA device",
                name: serial.to_owned(),
            })?;
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
        let n = self.db().execute(
            "UPDATE mfa_devices SET last_step = ?1 WHERE serial = ?2 AND (last_step IS NULL OR last_step < ?1)",
            params![step, serial],
        )?;
        Ok(n == 1)
    }

    fn enable_mfa(&self, serial: &str, user: &str, step: i64, now: i64) -> Result<()> {
        let db = self.db();
        let user = names::canonical_name(&db, PrincipalKind::User, user)?;
        let n = db.execute(
            "UPDATE mfa_devices SET user = ?1, enabled_at = ?2, last_step = ?3 WHERE serial = ?4 AND user IS NULL",
            params![user, now, step, serial],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "MFA device assignment",
                name: serial.to_owned(),
            });
        }
        Ok(())
    }

    fn deactivate_mfa(&self, serial: &str, user: &str) -> Result<()> {
        let n = self.db().execute(
            "UPDATE mfa_devices SET user = NULL, enabled_at = NULL WHERE serial = ?1 AND user = ?2 COLLATE NOCASE",
            params![serial, user],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "MFA device",
                name: serial.to_owned(),
            });
        }
        Ok(())
    }

    fn list_mfa_devices(&self, user: &str) -> Result<Vec<MfaDevice>> {
        let db = self.reader();
        let mut stmt = db.prepare(
            "SELECT serial, user, enabled_at FROM mfa_devices WHERE user = ?1 COLLATE NOCASE ORDER BY serial",
        )?;
        let rows = stmt.query_map([user], |r| {
            Ok(MfaDevice {
                serial: r.get(0)?,
                user: r.get(1)?,
                enabled_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn list_virtual_mfa_devices(&self) -> Result<Vec<MfaDevice>> {
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
