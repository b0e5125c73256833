//! [`Databases`] on PostgreSQL, as SQLite's (`crate::sqlite::databases`):
//! registered databases, their upstream logins (sealed with context
//! `database/user`, the next one with `database/user/next`) and
//! Latchkey's database CA.

use std::str::FromStr;

use tokio_postgres::Row;
use zeroize::Zeroizing;

use super::{PgBackend, Sql};
use crate::backend::Databases;
use crate::shared::{
    DATABASE_CA_CONTEXT, current_login_context as current_context,
    next_login_context as next_context, no_database, other_user,
};
use crate::sqlite::{parse_tags, tags_json};
use crate::{
    Database, Result, RotationSchedule, StoreError, UpstreamLogin, UpstreamLogins, Vault, random,
};

const COLUMNS: &str = "name, engine, endpoints, upstream, upstream_auth, resource_id, tags, upstream_tls, upstream_ca, statement_policy, rotate_every_days, rotation_master, pooling";

/// A text column holding one of a closed set of values; an unknown one is
/// an error, not a guess.
fn parse_column<T>(r: &Row, i: usize) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text: String = r.try_get(i)?;
    text.parse()
        .map_err(|e| StoreError::Postgres(format!("column {i} of databases: {e}")))
}

/// A row of [`COLUMNS`].
fn row_to_database(r: &Row) -> Result<Database> {
    let rotation = match r.try_get::<_, Option<i64>>(10)? {
        Some(days) => Some(RotationSchedule {
            every_days: u32::try_from(days).map_err(|_| {
                StoreError::Postgres(format!("rotate_every_days {days} out of range"))
            })?,
            master_user: r.try_get(11)?,
        }),
        None => None,
    };
    Ok(Database {
        name: r.try_get(0)?,
        engine: parse_column(r, 1)?,
        endpoints: serde_json::from_str(&r.try_get::<_, String>(2)?).unwrap_or_default(),
        upstream: r.try_get(3)?,
        upstream_auth: parse_column(r, 4)?,
        resource_id: r.try_get(5)?,
        tags: parse_tags(&r.try_get::<_, String>(6)?),
        upstream_tls: parse_column(r, 7)?,
        upstream_ca: r.try_get(8)?,
        statement_policy: parse_column(r, 9)?,
        rotation,
        pooling: crate::Pooling::from_stored(r.try_get::<_, Option<String>>(12)?.as_deref())
            .map_err(StoreError::Postgres)?,
    })
}

/// Refuses an endpoint another database of the same engine answers to:
/// the gateway routes a login by its endpoint, so a second claim would
/// take the first database's logins. The database's own row is skipped.
fn check_endpoints_free(tx: &impl Sql, db: &Database) -> Result<()> {
    for row in tx.query(
        "SELECT name, endpoints FROM databases WHERE engine = $1",
        &[&db.engine.as_str()],
    )? {
        let (name, endpoints): (String, String) = (row.try_get(0)?, row.try_get(1)?);
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

/// The columns a registration or an update writes, in order.
struct Settings {
    endpoints: String,
    tags: String,
    rotate_every_days: Option<i64>,
    rotation_master: Option<String>,
    pooling: Option<String>,
}

impl Settings {
    fn of(db: &Database) -> Self {
        Self {
            endpoints: serde_json::to_string(&db.endpoints).unwrap_or_default(),
            tags: tags_json(&db.tags),
            rotate_every_days: db.rotation.as_ref().map(|r| i64::from(r.every_days)),
            rotation_master: db.rotation.as_ref().and_then(|r| r.master_user.clone()),
            pooling: db.pooling.to_stored(),
        }
    }
}

impl Databases for PgBackend {
    fn register_database(&self, db: &Database, now: i64) -> Result<Database> {
        let db = db.checked()?;
        let resource_id = format!(
            "db-{}",
            latchkey_session::base32(&random::<20>()?)[..26].to_owned()
        );
        let s = Settings::of(&db);
        // The endpoint check and the insert in one transaction: two nodes
        // cannot both claim an endpoint.
        let n = self.write(|tx| {
            check_endpoints_free(tx, &db)?;
            tx.execute(
                "INSERT INTO databases (name, engine, endpoints, upstream, upstream_auth, resource_id, tags, created, upstream_tls, upstream_ca, statement_policy, rotate_every_days, rotation_master, pooling)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
                &[
                    &db.name,
                    &db.engine.as_str(),
                    &s.endpoints,
                    &db.upstream,
                    &db.upstream_auth.as_str(),
                    &resource_id,
                    &s.tags,
                    &now,
                    &db.upstream_tls.as_str(),
                    &db.upstream_ca,
                    &db.statement_policy.as_str(),
                    &s.rotate_every_days,
                    &s.rotation_master,
                    &s.pooling,
                ],
            )
        })?;
        if n == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "database",
                name: db.name.clone(),
            });
        }
        Ok(Database { resource_id, ..db })
    }

    fn update_database(&self, db: &Database) -> Result<Database> {
        let db = db.checked()?;
        let s = Settings::of(&db);
        let resource_id: Option<String> = self.write(|tx| {
            check_endpoints_free(tx, &db)?;
            tx.query_opt(
                "UPDATE databases SET engine = $2, endpoints = $3, upstream = $4, upstream_auth = $5, tags = $6, upstream_tls = $7, upstream_ca = $8, statement_policy = $9, rotate_every_days = $10, rotation_master = $11, pooling = $12
                 WHERE name = $1 RETURNING resource_id",
                &[
                    &db.name,
                    &db.engine.as_str(),
                    &s.endpoints,
                    &db.upstream,
                    &db.upstream_auth.as_str(),
                    &s.tags,
                    &db.upstream_tls.as_str(),
                    &db.upstream_ca,
                    &db.statement_policy.as_str(),
                    &s.rotate_every_days,
                    &s.rotation_master,
                    &s.pooling,
                ],
            )?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(StoreError::from)
        })?;
        match resource_id {
            Some(resource_id) => Ok(Database { resource_id, ..db }),
            None => Err(no_database(&db.name)),
        }
    }

    fn list_databases(&self) -> Result<Vec<Database>> {
        self.read(|c| {
            c.query(
                &format!("SELECT {COLUMNS} FROM databases ORDER BY name COLLATE \"C\""),
                &[],
            )?
            .iter()
            .map(row_to_database)
            .collect()
        })
    }

    fn remove_database(&self, name: &str) -> Result<()> {
        self.write(|tx| {
            for table in [
                "database_passwords",
                "object_tags",
                "firewall_shapes",
                "firewall_profiles",
                "firewall_config",
            ] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE database = $1"),
                    &[&name],
                )?;
            }
            if tx.execute("DELETE FROM databases WHERE name = $1", &[&name])? == 0 {
                return Err(no_database(name));
            }
            Ok(())
        })
    }

    fn database_password(&self, database: &str, user: &str) -> Result<Option<Zeroizing<String>>> {
        let sealed: Option<Vec<u8>> = self.read(|c| {
            c.query_opt(
                "SELECT secret FROM database_passwords WHERE database = $1 AND user_name = $2",
                &[&database, &user],
            )?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(StoreError::from)
        })?;
        sealed
            .map(|sealed| open_password(&self.vault(), &sealed, &current_context(database, user)))
            .transpose()
    }

    fn database_logins(&self, database: &str, user: &str) -> Result<Option<UpstreamLogins>> {
        let row = self.read(|c| {
            c.query_opt(
                "SELECT secret, login_user, next_user, next_secret FROM database_passwords
                 WHERE database = $1 AND user_name = $2",
                &[&database, &user],
            )
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: Vec<u8> = row.try_get(0)?;
        let login_user: Option<String> = row.try_get(1)?;
        let next_user: Option<String> = row.try_get(2)?;
        let next_sealed: Option<Vec<u8>> = row.try_get(3)?;
        let current = UpstreamLogin {
            user: login_user.unwrap_or_else(|| user.to_owned()),
            password: open_password(&self.vault(), &sealed, &current_context(database, user))?,
        };
        let next = match next_sealed {
            Some(sealed) => Some(UpstreamLogin {
                user: next_user.unwrap_or_else(|| user.to_owned()),
                password: open_password(&self.vault(), &sealed, &next_context(database, user))?,
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
        let login_user = other_user(user, login_user);
        let n = self.write(|tx| {
            tx.execute(
                "INSERT INTO database_passwords (database, user_name, secret, login_user, next_user, next_secret)
                 SELECT $1::TEXT, $2::TEXT, $3::BYTEA, $4::TEXT, NULL::TEXT, NULL::BYTEA
                 WHERE EXISTS (SELECT 1 FROM databases WHERE name = $1::TEXT)
                 ON CONFLICT (database, user_name) DO UPDATE SET secret = EXCLUDED.secret,
                   login_user = EXCLUDED.login_user, next_user = NULL, next_secret = NULL",
                &[&database, &user, &sealed, &login_user],
            )
        })?;
        if n == 0 {
            return Err(no_database(database));
        }
        Ok(())
    }

    fn set_database_next_login(
        &self,
        database: &str,
        user: &str,
        next: Option<(&str, &str)>,
    ) -> Result<()> {
        let Some((login_user, password)) = next else {
            return self.write(|tx| {
                let exists: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM databases WHERE name = $1)",
                        &[&database],
                    )?
                    .try_get(0)?;
                if !exists {
                    return Err(no_database(database));
                }
                tx.execute(
                    "UPDATE database_passwords SET next_user = NULL, next_secret = NULL
                     WHERE database = $1 AND user_name = $2",
                    &[&database, &user],
                )?;
                Ok(())
            });
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
        let n = self.write(|tx| {
            tx.execute(
                "INSERT INTO database_passwords (database, user_name, secret, login_user, next_user, next_secret)
                 SELECT $1::TEXT, $2::TEXT, $3::BYTEA, $4::TEXT, $4::TEXT, $5::BYTEA
                 WHERE EXISTS (SELECT 1 FROM databases WHERE name = $1::TEXT)
                 ON CONFLICT (database, user_name) DO UPDATE SET next_user = EXCLUDED.next_user,
                   next_secret = EXCLUDED.next_secret",
                &[&database, &user, &current, &login_user, &next],
            )
        })?;
        if n == 0 {
            return Err(no_database(database));
        }
        Ok(())
    }

    fn bind_database_secret(&self, database: &str, user: &str, arn: &str) -> Result<()> {
        self.write(|tx| {
            // One binding per secret: a secret bound elsewhere before is
            // unbound.
            tx.execute(
                "UPDATE database_passwords SET secret_arn = NULL WHERE secret_arn = $1",
                &[&arn],
            )?;
            let n = tx.execute(
                "UPDATE database_passwords SET secret_arn = $3 WHERE database = $1 AND user_name = $2",
                &[&database, &user, &arn],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchEntity {
                    kind: "database login",
                    name: format!("{user} on {database}"),
                });
            }
            Ok(())
        })
    }

    fn database_secret_binding(&self, arn: &str) -> Result<Option<(String, String)>> {
        self.read(|c| {
            c.query_opt(
                "SELECT database, user_name FROM database_passwords WHERE secret_arn = $1 LIMIT 1",
                &[&arn],
            )?
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
        })
    }

    fn database_ca(&self) -> Result<Option<(String, Zeroizing<String>)>> {
        let row =
            self.read(|c| c.query_opt("SELECT cert, key FROM database_ca WHERE id = 1", &[]))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let cert: String = row.try_get(0)?;
        let sealed: Vec<u8> = row.try_get(1)?;
        let key = self.vault().open(&sealed, DATABASE_CA_CONTEXT)?;
        Ok(Some((
            cert,
            Zeroizing::new(String::from_utf8_lossy(&key).into_owned()),
        )))
    }

    fn create_database_ca(&self, cert_pem: &str, key_pem: &str, now: i64) -> Result<bool> {
        let sealed = self.vault().seal(key_pem.as_bytes(), DATABASE_CA_CONTEXT)?;
        // Of nodes making the CA at once, the first stored is kept.
        Ok(self.write(|tx| {
            tx.execute(
                "INSERT INTO database_ca (id, cert, key, created) VALUES (1, $1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&cert_pem, &sealed, &now],
            )
        })? == 1)
    }
}

/// Opens a sealed upstream password.
fn open_password(vault: &Vault, sealed: &[u8], context: &str) -> Result<Zeroizing<String>> {
    let plain = vault.open(sealed, context.as_bytes())?;
    Ok(Zeroizing::new(String::from_utf8_lossy(&plain).into_owned()))
}
