//! Secrets Manager's secrets: one row of metadata per secret, one sealed
//! value per version.

use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::SqliteBackend;
use crate::backend::{Secrets, StoredSecret};
use crate::shared::secret_context as context;
use crate::{Result, StoreError};

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSecret> {
    Ok(StoredSecret {
        arn: r.get(0)?,
        name: r.get(1)?,
        revision: r.get(2)?,
        document: r.get(3)?,
    })
}

const COLUMNS: &str = "SELECT arn, name, revision, document FROM secrets";

impl Secrets for SqliteBackend {
    fn create_secret(
        &self,
        arn: &str,
        name: &str,
        document: &str,
        value: Option<(&str, &[u8])>,
    ) -> Result<()> {
        let sealed = value
            .map(|(version, plain)| self.vault().seal(plain, &context(arn, version)))
            .transpose()?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO secrets (arn, name, revision, document) VALUES (?1, ?2, 1, ?3) ON CONFLICT DO NOTHING",
            params![arn, name, document],
        )?;
        if inserted == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "secret",
                name: name.to_owned(),
            });
        }
        if let (Some((version, _)), Some(sealed)) = (value, sealed) {
            tx.execute(
                "INSERT INTO secret_values (arn, version, value) VALUES (?1, ?2, ?3)",
                params![arn, version, sealed],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn secret_by_name(&self, name: &str) -> Result<Option<StoredSecret>> {
        Ok(self
            .reader()
            .prepare_cached("SELECT arn, name, revision, document FROM secrets WHERE name = ?1")?
            .query_row([name], stored)
            .optional()?)
    }

    fn secret_by_arn(&self, arn: &str) -> Result<Option<StoredSecret>> {
        Ok(self
            .reader()
            .prepare_cached("SELECT arn, name, revision, document FROM secrets WHERE arn = ?1")?
            .query_row([arn], stored)
            .optional()?)
    }

    fn list_secrets(&self) -> Result<Vec<StoredSecret>> {
        let db = self.reader();
        let mut stmt = db.prepare(&format!("{COLUMNS} ORDER BY rowid"))?;
        let rows = stmt.query_map([], stored)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn update_secret(
        &self,
        arn: &str,
        revision: i64,
        document: &str,
        value: Option<(&str, &[u8])>,
        dropped: &[String],
    ) -> Result<bool> {
        let sealed = value
            .map(|(version, plain)| self.vault().seal(plain, &context(arn, version)))
            .transpose()?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let updated = tx.execute(
            "UPDATE secrets SET document = ?1, revision = revision + 1 WHERE arn = ?2 AND revision = ?3",
            params![document, arn, revision],
        )?;
        if updated == 0 {
            return Ok(false);
        }
        if let (Some((version, _)), Some(sealed)) = (value, sealed) {
            tx.execute(
                "INSERT INTO secret_values (arn, version, value) VALUES (?1, ?2, ?3)",
                params![arn, version, sealed],
            )?;
        }
        for version in dropped {
            tx.execute(
                "DELETE FROM secret_values WHERE arn = ?1 AND version = ?2",
                params![arn, version],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn secret_value(&self, arn: &str, version: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let sealed: Option<Vec<u8>> = self
            .reader()
            .prepare_cached("SELECT value FROM secret_values WHERE arn = ?1 AND version = ?2")?
            .query_row([arn, version], |r| r.get(0))
            .optional()?;
        sealed
            .map(|sealed| Ok(self.vault().open(&sealed, &context(arn, version))?))
            .transpose()
    }

    fn purge_secret(&self, arn: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM secret_values WHERE arn = ?1", [arn])?;
        tx.execute("DELETE FROM secrets WHERE arn = ?1", [arn])?;
        tx.commit()?;
        Ok(())
    }
}
