//! Registered databases, their sealed upstream passwords (context:
//! `database/user`) and Latchkey's database CA.

use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::{DATABASE_CA_CONTEXT, SqliteBackend, parse_column, parse_tags, tags_json};
use crate::backend::Databases;
use crate::{Database, Result, StoreError, random};

impl Databases for SqliteBackend {
    fn register_database(&self, db: &Database, now: i64) -> Result<Database> {
        let db = db.checked()?;
        let resource_id = format!(
            "db-{}",
            latchkey_session::base32(&random::<20>()?)[..26].to_owned()
        );
        let n = self.db().execute(
            "INSERT OR IGNORE INTO databases (name, engine, endpoints, upstream, upstream_auth, resource_id, tags, created, upstream_tls, upstream_ca, statement_policy)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![db.name, db.engine.as_str(), serde_json::to_string(&db.endpoints).unwrap_or_default(), db.upstream, db.upstream_auth.as_str(), resource_id, tags_json(&db.tags), now, db.upstream_tls.as_str(), db.upstream_ca, db.statement_policy.as_str()],
        )?;
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
        let resource_id: Option<String> = {
            let conn = self.db();
            let n = conn.execute(
                "UPDATE databases SET engine = ?2, endpoints = ?3, upstream = ?4, upstream_auth = ?5, tags = ?6, upstream_tls = ?7, upstream_ca = ?8, statement_policy = ?9
                 WHERE name = ?1",
                params![db.name, db.engine.as_str(), serde_json::to_string(&db.endpoints).unwrap_or_default(), db.upstream, db.upstream_auth.as_str(), tags_json(&db.tags), db.upstream_tls.as_str(), db.upstream_ca, db.statement_policy.as_str()],
            )?;
            if n == 0 {
                None
            } else {
                Some(conn.query_row(
                    "SELECT resource_id FROM databases WHERE name = ?1",
                    [&db.name],
                    |r| r.get(0),
                )?)
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
        let db = self.db();
        let mut stmt = db.prepare("SELECT name, engine, endpoints, upstream, upstream_auth, resource_id, tags, upstream_tls, upstream_ca, statement_policy FROM databases ORDER BY name")?;
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

    fn set_database_password(&self, database: &str, user: &str, password: &str) -> Result<()> {
        let context = format!("{database}/{user}");
        let sealed = self.vault().seal(password.as_bytes(), context.as_bytes())?;
        let n = self.db().execute(
            "INSERT INTO database_passwords (database, user, secret) SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM databases WHERE name = ?1)
             ON CONFLICT(database, user) DO UPDATE SET secret = excluded.secret",
            params![database, user, sealed],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchEntity {
                kind: "database",
                name: database.to_owned(),
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
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let context = format!("{database}/{user}");
        let plain = self.vault().open(&sealed, context.as_bytes())?;
        Ok(Some(Zeroizing::new(
            String::from_utf8_lossy(&plain).into_owned(),
        )))
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
