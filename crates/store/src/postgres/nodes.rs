//! [`Nodes`] on PostgreSQL: the same rules as `crate::sqlite::nodes`.

use super::{PgBackend, Sql};
use crate::Result;
use crate::backend::{NodeReport, Nodes, PublishedSession};

/// A node that has not exchanged gauges for this long is forgotten.
const GONE_SECS: i64 = 3600;

/// The `meta` key of the master key every node seals with.
pub(super) const SEALING_KEY: &str = "master_key_sealing";

impl Nodes for PgBackend {
    fn report_node(&self, r: &NodeReport) -> Result<()> {
        let sealing = i64::from(r.sealing_key);
        let sealed = i64::try_from(r.sealed).unwrap_or(i64::MAX);
        let keys = r.keys_text();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO nodes (node, started, seen, version, master_keys, sealing_key, sealed, posture)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (node) DO UPDATE SET started = EXCLUDED.started, seen = EXCLUDED.seen,
                 version = EXCLUDED.version, master_keys = EXCLUDED.master_keys,
                 sealing_key = EXCLUDED.sealing_key, sealed = EXCLUDED.sealed, posture = EXCLUDED.posture",
                &[
                    &r.node, &r.started, &r.seen, &r.version, &keys, &sealing, &sealed,
                    &r.posture,
                ],
            )?;
            Ok(())
        })
    }

    fn nodes(&self) -> Result<Vec<NodeReport>> {
        self.read(|c| {
            c.query(
                "SELECT node, started, seen, version, master_keys, sealing_key, sealed, posture FROM nodes ORDER BY node",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(NodeReport {
                    node: r.try_get(0)?,
                    started: r.try_get(1)?,
                    seen: r.try_get(2)?,
                    version: r.try_get(3)?,
                    master_keys: NodeReport::parse_keys(&r.try_get::<_, String>(4)?),
                    sealing_key: u32::try_from(r.try_get::<_, i64>(5)?).unwrap_or(0),
                    sealed: u64::try_from(r.try_get::<_, i64>(6)?).unwrap_or(0),
                    posture: r.try_get(7)?,
                })
            })
            .collect()
        })
    }

    fn forget_node(&self, node: &str) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("DELETE FROM nodes WHERE node = $1", &[&node])? == 1))
    }

    fn sealing_master_key(&self) -> Result<Option<u32>> {
        let value: Option<String> = self.read(|c| {
            Ok(
                c.query_opt("SELECT value FROM meta WHERE key = $1", &[&SEALING_KEY])?
                    .map(|r| r.try_get(0))
                    .transpose()?,
            )
        })?;
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
        self.write(|tx| {
            if fresh {
                tx.execute("DELETE FROM node_gauges WHERE node = $1", &[&node])?;
                // Nodes gone for an hour (replaced, with new ids) leave.
                let gone = now - GONE_SECS;
                tx.execute(
                    "DELETE FROM node_gauges WHERE node IN
                     (SELECT node FROM gauge_nodes WHERE alive < $1)",
                    &[&gone],
                )?;
                tx.execute("DELETE FROM gauge_nodes WHERE alive < $1", &[&gone])?;
            }
            for (kind, key, value) in changed {
                if *value == 0 {
                    tx.execute(
                        "DELETE FROM node_gauges WHERE node = $1 AND kind = $2 AND key = $3",
                        &[&node, kind, key],
                    )?;
                } else {
                    tx.execute(
                        "INSERT INTO node_gauges (node, kind, key, value) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (node, kind, key) DO UPDATE SET value = EXCLUDED.value",
                        &[&node, kind, key, value],
                    )?;
                }
            }
            tx.execute(
                "INSERT INTO gauge_nodes (node, alive) VALUES ($1, $2)
                 ON CONFLICT (node) DO UPDATE SET alive = EXCLUDED.alive",
                &[&node, &now],
            )?;
            Ok(())
        })?;
        // Read apart from the write: nodes exchanging at once do not make
        // each other's transactions fail.
        self.read(|c| {
            c.query(
                "SELECT g.kind, g.key, SUM(g.value)::BIGINT FROM node_gauges g
                 JOIN gauge_nodes n ON n.node = g.node
                 WHERE g.node <> $1 AND n.alive > $2
                 GROUP BY g.kind, g.key",
                &[&node, &alive_after],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
        })
    }

    fn set_sealing_master_key(&self, id: u32) -> Result<()> {
        let value = id.to_string();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&SEALING_KEY, &value],
            )?;
            Ok(())
        })
    }

    fn publish_live_sessions(
        &self,
        node: &str,
        fresh: bool,
        upsert: &[PublishedSession],
        ended: &[String],
    ) -> Result<Vec<String>> {
        self.write(|tx| {
            if fresh {
                tx.execute("DELETE FROM live_sessions WHERE node = $1", &[&node])?;
                for table in ["live_sessions", "session_end_requests"] {
                    tx.execute(
                        &format!(
                            "DELETE FROM {table} WHERE node <> $1 AND node NOT IN (SELECT node FROM gauge_nodes)"
                        ),
                        &[&node],
                    )?;
                }
            }
            for s in upsert {
                tx.execute(
                    "INSERT INTO live_sessions (node, session_id, database, document) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (node, session_id) DO UPDATE SET database = EXCLUDED.database, document = EXCLUDED.document",
                    &[&node, &s.session_id, &s.database, &s.document],
                )?;
            }
            for id in ended {
                tx.execute(
                    "DELETE FROM live_sessions WHERE node = $1 AND session_id = $2",
                    &[&node, id],
                )?;
            }
            tx.query(
                "DELETE FROM session_end_requests WHERE node = $1 RETURNING session_id",
                &[&node],
            )?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        })
    }

    fn published_sessions(&self, except: &str, alive_after: i64) -> Result<Vec<PublishedSession>> {
        self.read(|c| {
            c.query(
                "SELECT s.node, s.session_id, s.database, s.document FROM live_sessions s
                 JOIN gauge_nodes n ON n.node = s.node
                 WHERE s.node <> $1 AND n.alive > $2
                 ORDER BY s.node COLLATE \"C\", s.session_id COLLATE \"C\"",
                &[&except, &alive_after],
            )?
            .iter()
            .map(|r| {
                Ok(PublishedSession {
                    node: r.try_get(0)?,
                    session_id: r.try_get(1)?,
                    database: r.try_get(2)?,
                    document: r.try_get(3)?,
                })
            })
            .collect()
        })
    }

    fn request_session_end(&self, node: &str, session_id: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO session_end_requests (node, session_id, requested) VALUES ($1, $2, $3)
                 ON CONFLICT (node, session_id) DO NOTHING",
                &[&node, &session_id, &now],
            )
        })?;
        Ok(())
    }
}
