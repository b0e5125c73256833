//! Detection findings, stored as JSON documents.

use rusqlite::{OptionalExtension, params};

use super::SqliteBackend;
use crate::Result;
use crate::backend::Findings;

impl Findings for SqliteBackend {
    fn put_finding(
        &self,
        id: &str,
        kind: &str,
        severity: &str,
        last_seen: i64,
        document: &str,
    ) -> Result<()> {
        self.db().execute(
            "INSERT INTO findings (id, kind, severity, last_seen, document) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET kind = ?2, severity = ?3, last_seen = ?4, document = ?5",
            params![id, kind, severity, last_seen, document],
        )?;
        Ok(())
    }

    fn findings(
        &self,
        archived: bool,
        severity: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, bool)>> {
        let db = self.reader();
        let mut stmt = db.prepare(
            "SELECT document, archived FROM findings WHERE archived = ?1
             AND (?2 IS NULL OR severity = ?2) AND (?3 IS NULL OR kind = ?3)
             ORDER BY last_seen DESC LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![archived, severity, kind, limit], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn get_finding(&self, id: &str) -> Result<Option<(String, bool)>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT document, archived FROM findings WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn archive_findings(&self, ids: &[String], archived: bool) -> Result<usize> {
        let db = self.db();
        let mut n = 0;
        for id in ids {
            n += db.execute(
                "UPDATE findings SET archived = ?1 WHERE id = ?2",
                params![archived, id],
            )?;
        }
        Ok(n)
    }
}
