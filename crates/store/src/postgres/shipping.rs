//! [`AuditShipping`] on PostgreSQL: the same rules as
//! `crate::sqlite::shipping`; a batch goes in as one multi-row insert.

use super::{PgBackend, Sql};
use crate::backend::{AuditQuery, AuditShipping, ShippedHead, ShippedRecord};
use crate::{Result, StoreError};

use crate::shared::{SHIPPED_HEAD as HEAD, sequence_from_sql as uint, sequence_to_sql as int};

fn head(r: &tokio_postgres::Row) -> Result<ShippedHead> {
    Ok(ShippedHead {
        node: r.try_get(0)?,
        trail_id: r.try_get(1)?,
        first_sequence: uint(r.try_get(2)?),
        last_sequence: uint(r.try_get(3)?),
        last_digest: uint(r.try_get(4)?),
    })
}

impl AuditShipping for PgBackend {
    fn shipped_head(&self, node: &str) -> Result<Option<ShippedHead>> {
        self.read(|c| {
            c.query_opt(&format!("{HEAD} WHERE t.node = $1"), &[&node])?
                .as_ref()
                .map(head)
                .transpose()
        })
    }

    fn shipped_heads(&self) -> Result<Vec<ShippedHead>> {
        self.read(|c| {
            c.query(&format!("{HEAD} ORDER BY t.node"), &[])?
                .iter()
                .map(head)
                .collect()
        })
    }

    fn shipped_record_nodes(&self) -> Result<Vec<String>> {
        self.read(|c| {
            c.query(
                "SELECT node FROM audit_records UNION SELECT node FROM audit_digests ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        })
    }

    fn ship_audit(
        &self,
        node: &str,
        trail_id: &str,
        records: &[ShippedRecord],
        digests: &[(u64, String)],
    ) -> Result<()> {
        let sequences: Vec<i64> = records.iter().map(|r| int(r.sequence)).collect();
        let segments: Vec<i64> = records.iter().map(|r| int(r.segment)).collect();
        let times: Vec<i64> = records.iter().map(|r| r.time_ms).collect();
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        let principals: Vec<Option<&str>> =
            records.iter().map(|r| r.principal.as_deref()).collect();
        let keys: Vec<Option<&str>> = records.iter().map(|r| r.access_key_id.as_deref()).collect();
        let databases: Vec<Option<&str>> = records.iter().map(|r| r.database.as_deref()).collect();
        let sources: Vec<Option<&str>> = records.iter().map(|r| r.source_ip.as_deref()).collect();
        let errors: Vec<bool> = records.iter().map(|r| r.error).collect();
        let lines: Vec<&str> = records.iter().map(|r| r.line.as_str()).collect();
        let digest_numbers: Vec<i64> = digests.iter().map(|(n, _)| int(*n)).collect();
        let digest_texts: Vec<&str> = digests.iter().map(|(_, t)| t.as_str()).collect();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO audit_trails (node, trail_id) VALUES ($1, $2) ON CONFLICT (node) DO NOTHING",
                &[&node, &trail_id],
            )?;
            let held: String = tx
                .query_opt("SELECT trail_id FROM audit_trails WHERE node = $1", &[&node])?
                .ok_or_else(|| StoreError::Postgres("the audit trail row went away".into()))?
                .try_get(0)?;
            if held != trail_id {
                return Err(StoreError::OtherTrail {
                    node: node.to_owned(),
                    held,
                });
            }
            if !records.is_empty() {
                tx.execute(
                    "INSERT INTO audit_records (node, sequence, segment, time_ms, name, principal,
                         access_key_id, database, source_ip, error, line)
                     SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], $11::text[])
                     ON CONFLICT (node, sequence) DO NOTHING",
                    &[
                        &node,
                        &sequences,
                        &segments,
                        &times,
                        &names,
                        &principals,
                        &keys,
                        &databases,
                        &sources,
                        &errors,
                        &lines,
                    ],
                )?;
            }
            if !digests.is_empty() {
                tx.execute(
                    "INSERT INTO audit_digests (node, sequence, document)
                     SELECT $1, * FROM unnest($2::bigint[], $3::text[])
                     ON CONFLICT (node, sequence) DO NOTHING",
                    &[&node, &digest_numbers, &digest_texts],
                )?;
            }
            Ok(())
        })
    }

    fn forget_shipped_before(&self, node: &str, sequence: u64, digest: u64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM audit_records WHERE node = $1 AND sequence < $2",
                &[&node, &int(sequence)],
            )?;
            tx.execute(
                "DELETE FROM audit_digests WHERE node = $1 AND sequence < $2",
                &[&node, &int(digest)],
            )?;
            Ok(())
        })
    }

    fn forget_shipped(&self, node: &str) -> Result<u64> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM audit_records WHERE node = $1", &[&node])?;
            tx.execute("DELETE FROM audit_digests WHERE node = $1", &[&node])?;
            tx.execute("DELETE FROM audit_trails WHERE node = $1", &[&node])?;
            Ok(n)
        })
    }

    fn shipped_records(
        &self,
        node: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ShippedRecord>> {
        let after = after.map(|a| i64::try_from(a).unwrap_or(i64::MAX));
        let limit = i64::from(limit);
        self.read(|c| {
            c.query(
                "SELECT segment, sequence, line, time_ms, name, principal, access_key_id,
                     database, source_ip, error
                 FROM audit_records WHERE node = $1 AND ($2::BIGINT IS NULL OR sequence > $2)
                 ORDER BY sequence LIMIT $3",
                &[&node, &after, &limit],
            )?
            .iter()
            .map(|r| {
                Ok(ShippedRecord {
                    segment: uint(r.try_get(0)?),
                    sequence: uint(r.try_get(1)?),
                    line: r.try_get(2)?,
                    time_ms: r.try_get(3)?,
                    name: r.try_get(4)?,
                    principal: r.try_get(5)?,
                    access_key_id: r.try_get(6)?,
                    database: r.try_get(7)?,
                    source_ip: r.try_get(8)?,
                    error: r.try_get(9)?,
                })
            })
            .collect()
        })
    }

    fn shipped_digests(&self, node: &str) -> Result<Vec<(u64, String)>> {
        self.read(|c| {
            c.query(
                "SELECT sequence, document FROM audit_digests WHERE node = $1 ORDER BY sequence",
                &[&node],
            )?
            .iter()
            .map(|r| Ok((uint(r.try_get(0)?), r.try_get(1)?)))
            .collect()
        })
    }

    fn find_shipped(&self, q: &AuditQuery) -> Result<Vec<(String, String)>> {
        let limit = i64::from(q.limit);
        self.read(|c| {
            c.query(
                "SELECT node, line FROM audit_records
                 WHERE ($1::text IS NULL OR node = $1) AND ($2::text IS NULL OR node <> $2)
                   AND ($3::text IS NULL OR principal = $3) AND ($4::text IS NULL OR name = $4)
                   AND ($5::text IS NULL OR database = $5) AND ($6::text IS NULL OR source_ip = $6)
                   AND ($7::text IS NULL OR access_key_id = $7) AND (NOT $8 OR error)
                   AND ($9::bigint IS NULL OR time_ms >= $9) AND ($10::bigint IS NULL OR time_ms <= $10)
                 ORDER BY time_ms DESC, node, sequence DESC LIMIT $11",
                &[
                    &q.node,
                    &q.except_node,
                    &q.principal,
                    &q.event_name,
                    &q.database,
                    &q.source_ip,
                    &q.access_key_id,
                    &q.errors_only,
                    &q.since_ms,
                    &q.until_ms,
                    &limit,
                ],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }
}
