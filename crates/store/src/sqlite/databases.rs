//! Registered databases, their upstream logins (the user logged in as,
//! `NULL` when it is the client user, and the password sealed with
//! context `database/user`; during a rotation the next login too, sealed
//! with `database/user/next`) and Latchkey's database CA.

use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::{DATABASE_CA_CONTEXT, SqliteBackend, parse_column, parse_tags, tags_json};
use crate::backend::Databases;
use crate::shared::{
    current_login_context as current_context, next_login_context as next_context, no_database,
    other_user,
};
use crate::{Database, Result, StoreError, UpstreamLogin, UpstreamLogins, random};

/// Refuses an endpoint another database of the same engine answers to:
/// the gateway routes a login by its endpoint, so a second claim would
/// take the first database's logins. The database's own row is skipped.
fn check_endpoints_free(conn: &rusqlite::Connection, db: &Database) -> Result<()> {
    let mut stmt = conn.prepare("SELECT name, endpoints FROM databases WHERE engine = ?1")?;
    let rows = stmt.query_map([db.engine.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (name, endpoints) = row?;
        if name == db.name {
            continue;
        }
        let taken: Vec<String> = serde_json::from_str(&endpoints).unwrap_or_default();
        if db
            .endpoints
            .iter()
            .any(|e| taken.iter().any(|t| t.eq_ignore_ascii_case(e)))
        {
            return Err(StoreError::InvalidInput(
                "an endpoint of this database is already another database's",
            ));
        }
    }
    Ok(())
}

impl Databases for SqliteBackend {
    fn register_database(&self, db: &Database, now: i64) -> Result<Database> {
        let db = db.checked()?;
        let resource_id = format!(
            "db-{}",
            latchkey_session::base32(&random::<20>()?)[..26].to_owned()
        );
        let mut conn = self.db();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        check_endpoints_free(&tx, &db)?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO databases (name, engine, endpoints, upstream, upstream_auth, resource_id, tags, created, upstream_tls, upstream_ca, statement_policy, rotate_every_days, rotation_master, pooling)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![db.name, db.engine.as_str(), serde_json::to_string(&db.endpoints).unwrap_or_default(), db.upstream, db.upstream_auth.as_str(), resource_id, tags_json(&db.tags), now, db.upstream_tls.as_str(), db.upstream_ca, db.statement_policy.as_str(), db.rotation.as_ref().map(|r| r.every_days), db.rotation.as_ref().and_then(|r| r.master_user.clone()), db.pooling.to_stored()],
        )?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "database",
                name: db.name.clone(),
            });
        }
        tx.commit()?;
        Ok(Database { resource_id, ..db })
    }

    fn update_database(&self, db: &Database) -> Result<Database> {
        let db = db.checked()?;
        let resource_id: Option<String> = {
            let mut conn = self.db();
            let conn = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            check_endpoints_free(&conn, &db)?;
            let n = conn.execute(
                "UPDATE databases SET engine = ?2, endpoints = ?3, upstream = ?4, upstream_auth = ?5, tags = ?6, upstream_tls = ?7, upstream_ca = ?8, statement_policy = ?9, rotate_every_days = ?10, rotation_master = ?11, pooling = ?12
                 WHERE name = ?1",
                params![db.name, db.engine.as_str(), serde_json::to_string(&db.endpoints).unwrap_or_default(), db.upstream, db.upstream_auth.as_str(), tags_json(&db.tags), db.upstream_tls.as_str(), db.upstream_ca, db.statement_policy.as_str(), db.rotation.as_ref().map(|r| r.every_days), db.rotation.as_ref().and_then(|r| r.master_user.clone()), db.pooling.to_stored()],
            )?;
            if n == 0 {
                None
            } else {
                let id = conn.query_row(
                    "SELECT resource_id FROM databases WHERE name = ?1",
                    [&db.name],
                    |r| r.get(0),
                )?;
                conn.commit()?;
                Some(id)
            }
        };
        match resource_id {
            Some(resource_id) => Ok(Database { resource_id, ..db }),
            None => Err(StoreError::NoSuchEntity {
                kind: "database",
                name: db.name,
            }),
        }
    }

    fn list_databases(&self) -> Result<Vec<Database>> {
        let db = self.reader();
        let mut stmt = db.prepare("SELECT name, engine, endpoints, upstream, upstream_auth, resource_id, tags, upstream_tls, upstream_ca, statement_policy, rotate_every_days, rotation_master, pooling FROM databases ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(Database {
                name: r.get(0)?,
                engine: parse_column(r, 1)?,
                endpoints: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                upstream: r.get(3)?,
                upstream_auth: parse_column(r, 4)?,
                resource_id: r.get(5)?,
                tags: parse_tags(&r.get::<_, String>(6)?),
                upstream_tls: parse_column(r, 7)?,
                upstream_ca: r.get(8)?,
                statement_policy: parse_column(r, 9)?,
                rotation: r
                    .get::<_, Option<u32>>(10)?
                    .map(|every_days| crate::RotationSchedule {
                        every_days,
                        master_user: r.get(11).ok().flatten(),
                    }),
                pooling: crate::Pooling::from_stored(r.get::<_, Option<String>>(12)?.as_deref())
                    .map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            12,
                            rusqlite::types::Type::Text,
                            e.into(),
                        )
                    })?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn remove_database(&self, name: &str) -> Result<()> {
        let db = self.db();
        db.execute("DELETE FROM database_passwords WHERE database = ?1", [name])?;
        db.execute("DELETE FROM object_tags WHERE database = ?1", [name])?;
        for table in ["firewall_shapes", "firewall_profiles", "firewall_config"] {
            db.execute(&format!("DELETE FROM {table} WHERE database = ?1"), [name])?;
        }
        if db.execute("DELETE FROM databases WHERE name = ?1", [name])? == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "database",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn database_password(&self, database: &str, user: &str) -> Result<Option<Zeroizing<String>>> {
        let sealed: Option<Vec<u8>> = self
            .db()
            .query_row(
                "SELECT secret FROM database_passwords WHERE database = ?1 AND user = ?2",
                [database, user],
                |r| r.get(0),
            )
            .optional()?;
        sealed
            .map(|sealed| self.open_password(&sealed, &current_context(database, user)))
            .transpose()
    }

    fn database_logins(&self, database: &str, user: &str) -> Result<Option<UpstreamLogins>> {
        type Row = (Vec<u8>, Option<String>, Option<String>, Option<Vec<u8>>);
        let row: Option<Row> = self
            .db()
            .query_row(
                "SELECT secret, login_user, next_user, next_secret FROM database_passwords WHERE database = ?1 AND user = ?2",
                [database, user],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((sealed, login_user, next_user, next_sealed)) = row else {
            return Ok(None);
        };
        let current = UpstreamLogin {
            user: login_user.unwrap_or_else(|| user.to_owned()),
            password: self.open_password(&sealed, &current_context(database, user))?,
        };
        let next = match next_sealed {
            Some(sealed) => Some(UpstreamLogin {
                user: next_user.unwrap_or_else(|| user.to_owned()),
                password: self.open_password(&sealed, &next_context(database, user))?,
            }),
            None => None,
        };
        Ok(Some(UpstreamLogins { current, next }))
    }

    fn set_database_login(
        &self,
        database: &str,
        user: &str,
        login_user: &str,
        password: &str,
    ) -> Result<()> {
        let sealed = self.vault().seal(
            password.as_bytes(),
            current_context(database, user).as_bytes(),
        )?;
        let n = self.db().execute(
            "INSERT INTO database_passwords (database, user, secret, login_user, next_user, next_secret)
             SELECT ?1, ?2, ?3, ?4, NULL, NULL WHERE EXISTS (SELECT 1 FROM databases WHERE name = ?1)
             ON CONFLICT(database, user) DO UPDATE SET secret = excluded.secret, login_user = excluded.login_user, next_user = NULL, next_secret = NULL",
            params![database, user, sealed, other_user(user, login_user)],
        )?;
        if n == 0 {
            return Err(no_database(database));
        }
        Ok(())
    }

    fn bind_database_secret(&self, database: &str, user: &str, arn: &str) -> Result<()> {
        let db = self.db();
        // One binding per secret: a secret bound elsewhere before is unbound.
        db.execute(
            "UPDATE database_passwords SET secret_arn = NULL WHERE secret_arn = ?1",
            [arn],
        )?;
        let n = db.execute(
            "UPDATE database_passwords SET secret_arn = ?3 WHERE database = ?1 AND user = ?2",
            [database, user, arn],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "database login",
                name: format!("{user} on {database}"),
            });
        }
        Ok(())
    }

    fn database_secret_binding(&self, arn: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .db()
            .query_row(
                "SELECT database, user FROM database_passwords WHERE secret_arn = ?1",
                [arn],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn set_database_next_login(
        &self,
        database: &str,
        user: &str,
        next: Option<(&str, &str)>,
    ) -> Result<()> {
        let Some((login_user, password)) = next else {
            let db = self.db();
            let exists: bool = db.query_row(
                "SELECT EXISTS (SELECT 1 FROM databases WHERE name = ?1)",
                [database],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(no_database(database));
            }
            db.execute(
                "UPDATE database_passwords SET next_user = NULL, next_secret = NULL WHERE database = ?1 AND user = ?2",
                [database, user],
            )?;
            return Ok(());
        };
        let (current, next) = {
            let vault = self.vault();
            (
                vault.seal(
                    password.as_bytes(),
                    current_context(database, user).as_bytes(),
                )?,
                vault.seal(password.as_bytes(), next_context(database, user).as_bytes())?,
            )
        };
        let login_user = other_user(user, login_user);
        // A row made here logs in with this login now, too.
        let n = self.db().execute(
            "INSERT INTO database_passwords (database, user, secret, login_user, next_user, next_secret)
             SELECT ?1, ?2, ?3, ?4, ?4, ?5 WHERE EXISTS (SELECT 1 FROM databases WHERE name = ?1)
             ON CONFLICT(database, user) DO UPDATE SET next_user = excluded.next_user, next_secret = excluded.next_secret",
            params![database, user, current, login_user, next],
        )?;
        if n == 0 {
            return Err(no_database(database));
        }
        Ok(())
    }

    fn database_ca(&self) -> Result<Option<(String, Zeroizing<String>)>> {
        let row: Option<(String, Vec<u8>)> = self
            .db()
            .query_row("SELECT cert, key FROM database_ca WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((cert, sealed)) = row else {
            return Ok(None);
        };
        let key = self.vault().open(&sealed, DATABASE_CA_CONTEXT)?;
        Ok(Some((
            cert,
            Zeroizing::new(String::from_utf8_lossy(&key).into_owned()),
        )))
    }

    fn create_database_ca(&self, cert_pem: &str, key_pem: &str, now: i64) -> Result<bool> {
        let sealed = self.vault().seal(key_pem.as_bytes(), DATABASE_CA_CONTEXT)?;
        Ok(self.db().execute(
            "INSERT OR IGNORE INTO database_ca (id, cert, key, created) VALUES (1, ?1, ?2, ?3)",
            params![cert_pem, sealed, now],
        )? == 1)
    }
}

impl SqliteBackend {
    /// Opens a sealed upstream password.
    fn open_password(&self, sealed: &[u8], context: &str) -> Result<Zeroizing<String>> {
        let plain = self.vault().open(sealed, context.as_bytes())?;
        Ok(Zeroizing::new(String::from_utf8_lossy(&plain).into_owned()))
    }
}
