//! Parameter Store's parameters: one row of metadata per parameter, one
//! sealed value per version.

use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::SqliteBackend;
use crate::backend::{Parameters, StoredParameter};
use crate::shared::{parameter_context as context, sql_version};
use crate::{Result, StoreError};

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredParameter> {
    Ok(StoredParameter {
        name: r.get(0)?,
        revision: r.get(1)?,
        document: r.get(2)?,
    })
}

impl Parameters for SqliteBackend {
    fn create_parameter(
        &self,
        name: &str,
        document: &str,
        version: u64,
        value: &[u8],
    ) -> Result<()> {
        let sealed = self.vault().seal(value, &context(name, version))?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO parameters (name, revision, document) VALUES (?1, 1, ?2) ON CONFLICT DO NOTHING",
            params![name, document],
        )?;
        if inserted == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "parameter",
                name: name.to_owned(),
            });
        }
        // A value left behind by a parameter deleted mid-write is replaced.
        tx.execute(
            "INSERT OR REPLACE INTO parameter_values (name, version, value) VALUES (?1, ?2, ?3)",
            params![name, sql_version(version)?, sealed],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn parameter(&self, name: &str) -> Result<Option<StoredParameter>> {
        Ok(self
            .reader()
            .prepare_cached("SELECT name, revision, document FROM parameters WHERE name = ?1")?
            .query_row([name], stored)
            .optional()?)
    }

    fn list_parameters(&self, prefix: &str) -> Result<Vec<StoredParameter>> {
        let db = self.reader();
        let mut stmt = db.prepare_cached(
            "SELECT name, revision, document FROM parameters WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([prefix], stored)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
            .map(|(version, plain)| self.vault().seal(plain, &context(name, version)))
            .transpose()?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let updated = tx.execute(
            "UPDATE parameters SET document = ?1, revision = revision + 1 WHERE name = ?2 AND revision = ?3",
            params![document, name, revision],
        )?;
        if updated == 0 {
            return Ok(false);
        }
        if let (Some((version, _)), Some(sealed)) = (value, sealed) {
            tx.execute(
                "INSERT OR REPLACE INTO parameter_values (name, version, value) VALUES (?1, ?2, ?3)",
                params![name, sql_version(version)?, sealed],
            )?;
        }
        for version in dropped {
            tx.execute(
                "DELETE FROM parameter_values WHERE name = ?1 AND version = ?2",
                params![name, sql_version(*version)?],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn parameter_value(&self, name: &str, version: u64) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let sealed: Option<Vec<u8>> = self
            .reader()
            .prepare_cached("SELECT value FROM parameter_values WHERE name = ?1 AND version = ?2")?
            .query_row(params![name, sql_version(version)?], |r| r.get(0))
            .optional()?;
        sealed
            .map(|sealed| Ok(self.vault().open(&sealed, &context(name, version))?))
            .transpose()
    }

    fn delete_parameter(&self, name: &str) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM parameter_values WHERE name = ?1", [name])?;
        let deleted = tx.execute("DELETE FROM parameters WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(deleted > 0)
    }
}
