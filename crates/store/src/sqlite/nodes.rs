//! [`Nodes`] on SQLite: the nodes' reports and the agreed sealing key.

use rusqlite::{OptionalExtension, params};

use super::SqliteBackend;
use crate::Result;
use crate::backend::{NodeReport, Nodes, PublishedSession};

/// A node that has not exchanged gauges for this long is forgotten.
const GONE_SECS: i64 = 3600;

/// The `meta` key of the master key every node seals with.
const SEALING_KEY: &str = "master_key_sealing";

impl Nodes for SqliteBackend {
    fn report_node(&self, r: &NodeReport) -> Result<()> {
        self.db().execute(
            "INSERT INTO nodes (node, started, seen, version, master_keys, sealing_key, sealed, posture)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (node) DO UPDATE SET started = excluded.started, seen = excluded.seen,
             version = excluded.version, master_keys = excluded.master_keys,
             sealing_key = excluded.sealing_key, sealed = excluded.sealed, posture = excluded.posture",
            params![
                r.node,
                r.started,
                r.seen,
                r.version,
                r.keys_text(),
                i64::from(r.sealing_key),
                i64::try_from(r.sealed).unwrap_or(i64::MAX),
                r.posture
            ],
        )?;
        Ok(())
    }

    fn nodes(&self) -> Result<Vec<NodeReport>> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT node, started, seen, version, master_keys, sealing_key, sealed, posture FROM nodes ORDER BY node",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(NodeReport {
                node: r.get(0)?,
                started: r.get(1)?,
                seen: r.get(2)?,
                version: r.get(3)?,
                master_keys: NodeReport::parse_keys(&r.get::<_, String>(4)?),
                sealing_key: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                sealed: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                posture: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn forget_node(&self, node: &str) -> Result<bool> {
        Ok(self
            .db()
            .execute("DELETE FROM nodes WHERE node = ?1", params![node])?
            == 1)
    }

    fn sealing_master_key(&self) -> Result<Option<u32>> {
        let value: Option<String> = self
            .db()
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![SEALING_KEY],
                |r| r.get(0),
            )
            .optional()?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    fn exchange_gauges(
        &self,
        node: &str,
        now: i64,
        fresh: bool,
        changed: &[(String, String, i64)],
        alive_after: i64,
    ) -> Result<Vec<(String, String, i64)>> {
        let mut db = self.db();
        let tx = db.transaction()?;
        if fresh {
            tx.execute("DELETE FROM node_gauges WHERE node = ?1", params![node])?;
            // Nodes gone for an hour (replaced, with new ids) leave.
            let gone = now - GONE_SECS;
            tx.execute(
                "DELETE FROM node_gauges WHERE node IN (SELECT node FROM gauge_nodes WHERE alive < ?1)",
                params![gone],
            )?;
            tx.execute("DELETE FROM gauge_nodes WHERE alive < ?1", params![gone])?;
        }
        for (kind, key, value) in changed {
            if *value == 0 {
                tx.execute(
                    "DELETE FROM node_gauges WHERE node = ?1 AND kind = ?2 AND key = ?3",
                    params![node, kind, key],
                )?;
            } else {
                tx.execute(
                    "INSERT INTO node_gauges (node, kind, key, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (node, kind, key) DO UPDATE SET value = excluded.value",
                    params![node, kind, key, value],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO gauge_nodes (node, alive) VALUES (?1, ?2)
             ON CONFLICT (node) DO UPDATE SET alive = excluded.alive",
            params![node, now],
        )?;
        let others = {
            let mut stmt = tx.prepare(
                "SELECT g.kind, g.key, SUM(g.value) FROM node_gauges g
                 JOIN gauge_nodes n ON n.node = g.node
                 WHERE g.node <> ?1 AND n.alive > ?2
                 GROUP BY g.kind, g.key",
            )?;
            let rows = stmt.query_map(params![node, alive_after], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(others)
    }

    fn set_sealing_master_key(&self, id: u32) -> Result<()> {
        self.db().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![SEALING_KEY, id.to_string()],
        )?;
        Ok(())
    }

    fn publish_live_sessions(
        &self,
        node: &str,
        fresh: bool,
        upsert: &[PublishedSession],
        ended: &[String],
    ) -> Result<Vec<String>> {
        let mut db = self.db();
        let tx = db.transaction()?;
        if fresh {
            tx.execute("DELETE FROM live_sessions WHERE node = ?1", params![node])?;
            for table in ["live_sessions", "session_end_requests"] {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE node <> ?1 AND node NOT IN (SELECT node FROM gauge_nodes)"
                    ),
                    params![node],
                )?;
            }
        }
        for s in upsert {
            tx.execute(
                "INSERT INTO live_sessions (node, session_id, database, document) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (node, session_id) DO UPDATE SET database = excluded.database, document = excluded.document",
                params![node, s.session_id, s.database, s.document],
            )?;
        }
        for id in ended {
            tx.execute(
                "DELETE FROM live_sessions WHERE node = ?1 AND session_id = ?2",
                params![node, id],
            )?;
        }
        let requests = {
            let mut stmt = tx
                .prepare("DELETE FROM session_end_requests WHERE node = ?1 RETURNING session_id")?;
            let rows = stmt.query_map(params![node], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()?
        };
        tx.commit()?;
        Ok(requests)
    }

    fn published_sessions(&self, except: &str, alive_after: i64) -> Result<Vec<PublishedSession>> {
        let db = self.reader();
        let mut stmt = db.prepare(
            "SELECT s.node, s.session_id, s.database, s.document FROM live_sessions s
             JOIN gauge_nodes n ON n.node = s.node
             WHERE s.node <> ?1 AND n.alive > ?2
             ORDER BY s.node, s.session_id",
        )?;
        let rows = stmt.query_map(params![except, alive_after], |r| {
            Ok(PublishedSession {
                node: r.get(0)?,
                session_id: r.get(1)?,
                database: r.get(2)?,
                document: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn request_session_end(&self, node: &str, session_id: &str, now: i64) -> Result<()> {
        self.db().execute(
            "INSERT INTO session_end_requests (node, session_id, requested) VALUES (?1, ?2, ?3)
             ON CONFLICT (node, session_id) DO NOTHING",
            params![node, session_id, now],
        )?;
        Ok(())
    }
}
