//! [`Parameters`] on PostgreSQL, as SQLite's (`crate::sqlite::parameters`):
//! one row of metadata per parameter, one sealed value per version.

use tokio_postgres::Row;
use zeroize::Zeroizing;

use super::{PgBackend, Sql};
use crate::backend::{Parameters, StoredParameter};
use crate::shared::{parameter_context as context, sql_version};
use crate::{Result, StoreError};

fn stored(r: &Row) -> Result<StoredParameter> {
    Ok(StoredParameter {
        name: r.try_get(0)?,
        revision: r.try_get(1)?,
        document: r.try_get(2)?,
    })
}

impl Parameters for PgBackend {
    fn create_parameter(
        &self,
        name: &str,
        document: &str,
        version: u64,
        value: &[u8],
    ) -> Result<()> {
        let sealed = self.vault().seal(value, &context(name, version))?;
        let version = sql_version(version)?;
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO parameters (name, revision, document) VALUES ($1, 1, $2) ON CONFLICT DO NOTHING",
                &[&name, &document],
            )?;
            if inserted == 0 {
                return Err(StoreError::EntityAlreadyExists {
                    kind: "parameter",
                    name: name.to_owned(),
                });
            }
            // A value left behind by a parameter deleted mid-write is replaced.
            tx.execute(
                "INSERT INTO parameter_values (name, version, value) VALUES ($1, $2, $3)
                 ON CONFLICT (name, version) DO UPDATE SET value = EXCLUDED.value",
                &[&name, &version, &sealed],
            )?;
            Ok(())
        })
    }

    fn parameter(&self, name: &str) -> Result<Option<StoredParameter>> {
        self.read(|c| {
            c.query_opt(
                "SELECT name, revision, document FROM parameters WHERE name = $1",
                &[&name],
            )?
            .as_ref()
            .map(stored)
            .transpose()
        })
    }

    fn list_parameters(&self, prefix: &str) -> Result<Vec<StoredParameter>> {
        self.read(|c| {
            c.query(
                "SELECT name, revision, document FROM parameters WHERE starts_with(name, $1) ORDER BY name COLLATE \"C\"",
                &[&prefix],
            )?
            .iter()
            .map(stored)
            .collect()
        })
    }

    fn update_parameter(
        &self,
        name: &str,
        revision: i64,
        document: &str,
        value: Option<(u64, &[u8])>,
        dropped: &[u64],
    ) -> Result<bool> {
        let sealed = value
            .map(|(version, plain)| {
                let sealed = self.vault().seal(plain, &context(name, version))?;
                Ok::<_, StoreError>((sql_version(version)?, sealed))
            })
            .transpose()?;
        let dropped = dropped
            .iter()
            .map(|v| sql_version(*v))
            .collect::<Result<Vec<_>>>()?;
        self.write(|tx| {
            let updated = tx.execute(
                "UPDATE parameters SET document = $1, revision = revision + 1 WHERE name = $2 AND revision = $3",
                &[&document, &name, &revision],
            )?;
            if updated == 0 {
                return Ok(false);
            }
            if let Some((version, sealed)) = &sealed {
                tx.execute(
                    "INSERT INTO parameter_values (name, version, value) VALUES ($1, $2, $3)
                     ON CONFLICT (name, version) DO UPDATE SET value = EXCLUDED.value",
                    &[&name, version, sealed],
                )?;
            }
            for version in &dropped {
                tx.execute(
                    "DELETE FROM parameter_values WHERE name = $1 AND version = $2",
                    &[&name, version],
                )?;
            }
            Ok(true)
        })
    }

    fn parameter_value(&self, name: &str, version: u64) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let sql = sql_version(version)?;
        let sealed: Option<Vec<u8>> = self.read(|c| {
            Ok(c.query_opt(
                "SELECT value FROM parameter_values WHERE name = $1 AND version = $2",
                &[&name, &sql],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
        })?;
        sealed
            .map(|sealed| Ok(self.vault().open(&sealed, &context(name, version))?))
            .transpose()
    }

    fn delete_parameter(&self, name: &str) -> Result<bool> {
        self.write(|tx| {
            tx.execute("DELETE FROM parameter_values WHERE name = $1", &[&name])?;
            Ok(tx.execute("DELETE FROM parameters WHERE name = $1", &[&name])? > 0)
        })
    }
}
