//! [`Findings`] on PostgreSQL: the same rules as `crate::sqlite::findings`.

use super::{PgBackend, Sql};
use crate::backend::Findings;
use crate::{Result, StoreError};

impl Findings for PgBackend {
    fn put_finding(
        &self,
        id: &str,
        kind: &str,
        severity: &str,
        last_seen: i64,
        document: &str,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO findings (id, kind, severity, last_seen, document) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, severity = EXCLUDED.severity,
                 last_seen = EXCLUDED.last_seen, document = EXCLUDED.document",
                &[&id, &kind, &severity, &last_seen, &document],
            )?;
            Ok(())
        })
    }

    fn findings(
        &self,
        archived: bool,
        severity: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, bool)>> {
        let limit = i64::from(limit);
        self.read(|c| {
            c.query(
                "SELECT document, archived FROM findings WHERE archived = $1
                 AND ($2::TEXT IS NULL OR severity = $2) AND ($3::TEXT IS NULL OR kind = $3)
                 ORDER BY last_seen DESC LIMIT $4",
                &[&archived, &severity, &kind, &limit],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }

    fn get_finding(&self, id: &str) -> Result<Option<(String, bool)>> {
        self.read(|c| {
            c.query_opt(
                "SELECT document, archived FROM findings WHERE id = $1",
                &[&id],
            )?
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
        })
    }

    fn archive_findings(&self, ids: &[String], archived: bool) -> Result<usize> {
        let n = self.write(|tx| {
            let mut n: u64 = 0;
            for id in ids {
                n += tx.execute(
                    "UPDATE findings SET archived = $1 WHERE id = $2",
                    &[&archived, id],
                )?;
            }
            Ok(n)
        })?;
        usize::try_from(n).map_err(|_| StoreError::Postgres(format!("{n} findings archived")))
    }
}
