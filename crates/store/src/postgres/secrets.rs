//! [`Secrets`] on PostgreSQL, as SQLite's (`crate::sqlite::secrets`): one
//! row of metadata per secret, one sealed value per version.

use tokio_postgres::Row;
use zeroize::Zeroizing;

use super::{PgBackend, Sql};
use crate::backend::{Secrets, StoredSecret};
use crate::shared::secret_context as context;
use crate::{Result, StoreError};

fn stored(r: &Row) -> Result<StoredSecret> {
    Ok(StoredSecret {
        arn: r.try_get(0)?,
        name: r.try_get(1)?,
        revision: r.try_get(2)?,
        document: r.try_get(3)?,
    })
}

impl Secrets for PgBackend {
    fn create_secret(
        &self,
        arn: &str,
        name: &str,
        document: &str,
        value: Option<(&str, &[u8])>,
    ) -> Result<()> {
        let sealed = value
            .map(|(version, plain)| {
                self.vault()
                    .seal(plain, &context(arn, version))
                    .map(|s| (version, s))
            })
            .transpose()?;
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO secrets (arn, name, revision, document) VALUES ($1, $2, 1, $3) ON CONFLICT DO NOTHING",
                &[&arn, &name, &document],
            )?;
            if inserted == 0 {
                return Err(StoreError::EntityAlreadyExists {
                    kind: "secret",
                    name: name.to_owned(),
                });
            }
            if let Some((version, sealed)) = &sealed {
                tx.execute(
                    "INSERT INTO secret_values (arn, version, value) VALUES ($1, $2, $3)",
                    &[&arn, version, sealed],
                )?;
            }
            Ok(())
        })
    }

    fn secret_by_name(&self, name: &str) -> Result<Option<StoredSecret>> {
        self.read(|c| {
            c.query_opt(
                "SELECT arn, name, revision, document FROM secrets WHERE name = $1",
                &[&name],
            )?
            .as_ref()
            .map(stored)
            .transpose()
        })
    }

    fn secret_by_arn(&self, arn: &str) -> Result<Option<StoredSecret>> {
        self.read(|c| {
            c.query_opt(
                "SELECT arn, name, revision, document FROM secrets WHERE arn = $1",
                &[&arn],
            )?
            .as_ref()
            .map(stored)
            .transpose()
        })
    }

    fn list_secrets(&self) -> Result<Vec<StoredSecret>> {
        self.read(|c| {
            c.query(
                "SELECT arn, name, revision, document FROM secrets ORDER BY seq",
                &[],
            )?
            .iter()
            .map(stored)
            .collect::<Result<Vec<_>>>()
        })
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
            .map(|(version, plain)| {
                self.vault()
                    .seal(plain, &context(arn, version))
                    .map(|s| (version, s))
            })
            .transpose()?;
        self.write(|tx| {
            let updated = tx.execute(
                "UPDATE secrets SET document = $1, revision = revision + 1 WHERE arn = $2 AND revision = $3",
                &[&document, &arn, &revision],
            )?;
            if updated == 0 {
                return Ok(false);
            }
            if let Some((version, sealed)) = &sealed {
                tx.execute(
                    "INSERT INTO secret_values (arn, version, value) VALUES ($1, $2, $3)",
                    &[&arn, version, sealed],
                )?;
            }
            for version in dropped {
                tx.execute(
                    "DELETE FROM secret_values WHERE arn = $1 AND version = $2",
                    &[&arn, version],
                )?;
            }
            Ok(true)
        })
    }

    fn secret_value(&self, arn: &str, version: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let sealed: Option<Vec<u8>> = self.read(|c| {
            Ok(c.query_opt(
                "SELECT value FROM secret_values WHERE arn = $1 AND version = $2",
                &[&arn, &version],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
        })?;
        sealed
            .map(|sealed| Ok(self.vault().open(&sealed, &context(arn, version))?))
            .transpose()
    }

    fn purge_secret(&self, arn: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM secret_values WHERE arn = $1", &[&arn])?;
            tx.execute("DELETE FROM secrets WHERE arn = $1", &[&arn])?;
            Ok(())
        })
    }
}
