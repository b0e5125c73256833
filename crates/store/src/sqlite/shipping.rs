//! [`AuditShipping`] on SQLite (nodes sharing one store file), with the
//! rules of the trait: one transaction per batch, rows already there kept,
//! another trail of the same node refused.

use rusqlite::{OptionalExtension, params};

use super::SqliteBackend;
use crate::backend::{AuditQuery, AuditShipping, ShippedHead, ShippedRecord};
use crate::{Result, StoreError};

use crate::shared::{SHIPPED_HEAD as HEAD, sequence_from_sql as uint, sequence_to_sql as int};

fn head(r: &rusqlite::Row<'_>) -> rusqlite::Result<ShippedHead> {
    Ok(ShippedHead {
        node: r.get(0)?,
        trail_id: r.get(1)?,
        first_sequence: uint(r.get(2)?),
        last_sequence: uint(r.get(3)?),
        last_digest: uint(r.get(4)?),
    })
}

impl AuditShipping for SqliteBackend {
    fn shipped_head(&self, node: &str) -> Result<Option<ShippedHead>> {
        Ok(self
            .db()
            .query_row(&format!("{HEAD} WHERE t.node = ?1"), [node], head)
            .optional()?)
    }

    fn shipped_heads(&self) -> Result<Vec<ShippedHead>> {
        let db = self.db();
        let mut stmt = db.prepare(&format!("{HEAD} ORDER BY t.node"))?;
        let rows = stmt.query_map([], head)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn shipped_record_nodes(&self) -> Result<Vec<String>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT node FROM audit_records UNION SELECT node FROM audit_digests ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn ship_audit(
        &self,
        node: &str,
        trail_id: &str,
        records: &[ShippedRecord],
        digests: &[(u64, String)],
    ) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "INSERT INTO audit_trails (node, trail_id) VALUES (?1, ?2) ON CONFLICT (node) DO NOTHING",
            params![node, trail_id],
        )?;
        let held: String = tx.query_row(
            "SELECT trail_id FROM audit_trails WHERE node = ?1",
            [node],
            |r| r.get(0),
        )?;
        if held != trail_id {
            return Err(StoreError::OtherTrail {
                node: node.to_owned(),
                held,
            });
        }
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit_records (node, sequence, segment, time_ms, name, principal,
                     access_key_id, database, source_ip, error, line)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (node, sequence) DO NOTHING",
            )?;
            for r in records {
                insert.execute(params![
                    node,
                    int(r.sequence),
                    int(r.segment),
                    r.time_ms,
                    r.name,
                    r.principal,
                    r.access_key_id,
                    r.database,
                    r.source_ip,
                    r.error,
                    r.line
                ])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit_digests (node, sequence, document) VALUES (?1, ?2, ?3)
                 ON CONFLICT (node, sequence) DO NOTHING",
            )?;
            for (n, text) in digests {
                insert.execute(params![node, int(*n), text])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn forget_shipped_before(&self, node: &str, sequence: u64, digest: u64) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "DELETE FROM audit_records WHERE node = ?1 AND sequence < ?2",
            params![node, int(sequence)],
        )?;
        tx.execute(
            "DELETE FROM audit_digests WHERE node = ?1 AND sequence < ?2",
            params![node, int(digest)],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn forget_shipped(&self, node: &str) -> Result<u64> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let n = tx.execute("DELETE FROM audit_records WHERE node = ?1", [node])?;
        tx.execute("DELETE FROM audit_digests WHERE node = ?1", [node])?;
        tx.execute("DELETE FROM audit_trails WHERE node = ?1", [node])?;
        tx.commit()?;
        Ok(n as u64)
    }

    fn shipped_records(
        &self,
        node: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ShippedRecord>> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT segment, sequence, line, time_ms, name, principal, access_key_id,
                 database, source_ip, error
             FROM audit_records WHERE node = ?1 AND (?2 IS NULL OR sequence > ?2)
             ORDER BY sequence LIMIT ?3",
        )?;
        let after = after.map(|a| i64::try_from(a).unwrap_or(i64::MAX));
        let records = stmt
            .query_map(params![node, after, limit], |r| {
                Ok(ShippedRecord {
                    segment: uint(r.get(0)?),
                    sequence: uint(r.get(1)?),
                    line: r.get(2)?,
                    time_ms: r.get(3)?,
                    name: r.get(4)?,
                    principal: r.get(5)?,
                    access_key_id: r.get(6)?,
                    database: r.get(7)?,
                    source_ip: r.get(8)?,
                    error: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(records)
    }

    fn shipped_digests(&self, node: &str) -> Result<Vec<(u64, String)>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT sequence, document FROM audit_digests WHERE node = ?1 ORDER BY sequence",
        )?;
        let digests = stmt
            .query_map([node], |r| Ok((uint(r.get(0)?), r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(digests)
    }

    fn find_shipped(&self, q: &AuditQuery) -> Result<Vec<(String, String)>> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT node, line FROM audit_records
             WHERE (?1 IS NULL OR node = ?1) AND (?2 IS NULL OR node <> ?2)
               AND (?3 IS NULL OR principal = ?3) AND (?4 IS NULL OR name = ?4)
               AND (?5 IS NULL OR database = ?5) AND (?6 IS NULL OR source_ip = ?6)
               AND (?7 IS NULL OR access_key_id = ?7) AND (NOT ?8 OR error)
               AND (?9 IS NULL OR time_ms >= ?9) AND (?10 IS NULL OR time_ms <= ?10)
             ORDER BY time_ms DESC, node, sequence DESC LIMIT ?11",
        )?;
        let rows = stmt.query_map(
            params![
                q.node,
                q.except_node,
                q.principal,
                q.event_name,
                q.database,
                q.source_ip,
                q.access_key_id,
                q.errors_only,
                q.since_ms,
                q.until_ms,
                i64::from(q.limit)
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
