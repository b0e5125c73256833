//! Session revocations and cluster keys (sealed, context: the key id).

use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::SqliteBackend;
use crate::backend::SessionKeys;
use crate::{Result, StoreError, VaultError, random};

impl SessionKeys for SqliteBackend {
    fn revoke_sessions(&self, arn: &str, before: i64) -> Result<()> {
        self.db().execute(
            "INSERT INTO revocations (arn, not_before) VALUES (?1, ?2)
             ON CONFLICT(arn) DO UPDATE SET not_before = MAX(not_before, excluded.not_before)",
            params![arn, before],
        )?;
        Ok(())
    }

    fn revocations(&self) -> Result<Vec<(String, i64)>> {
        let db = self.db();
        let mut stmt = db.prepare("SELECT arn, not_before FROM revocations")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn block_address(&self, ip: &str, until: i64, evidence: i64) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let forgiven: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM unblocked_addresses WHERE ip = ?1 AND at >= ?2)",
            params![ip, evidence],
            |r| r.get(0),
        )?;
        if !forgiven {
            tx.execute(
                "INSERT INTO blocked_addresses (ip, until) VALUES (?1, ?2)
                 ON CONFLICT(ip) DO UPDATE SET until = MAX(until, excluded.until)",
                params![ip, until],
            )?;
        }
        tx.commit()?;
        Ok(!forgiven)
    }

    fn blocked_addresses(&self, now: i64) -> Result<Vec<(String, i64)>> {
        let db = self.db();
        // Written only when some ran out: a reload every few seconds must
        // not take the write lock from the processes sharing the file.
        let expired: bool = db.query_row(
            "SELECT EXISTS (SELECT 1 FROM blocked_addresses WHERE until <= ?1)",
            params![now],
            |r| r.get(0),
        )?;
        if expired {
            db.execute(
                "DELETE FROM blocked_addresses WHERE until <= ?1",
                params![now],
            )?;
        }
        let mut stmt =
            db.prepare("SELECT ip, until FROM blocked_addresses WHERE until > ?1 ORDER BY ip")?;
        let rows = stmt.query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn unblock_address(&self, ip: &str, now: i64) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let lifted = tx.execute("DELETE FROM blocked_addresses WHERE ip = ?1", params![ip])? == 1;
        tx.execute(
            "INSERT INTO unblocked_addresses (ip, at) VALUES (?1, ?2)
             ON CONFLICT(ip) DO UPDATE SET at = MAX(at, excluded.at)",
            params![ip, now],
        )?;
        tx.commit()?;
        Ok(lifted)
    }

    fn cluster_keys(&self, now: i64) -> Result<Vec<(u32, Zeroizing<[u8; 32]>)>> {
        let rows: Vec<(i64, Vec<u8>)> = {
            let db = self.db();
            let mut stmt = db.prepare("SELECT id, material FROM cluster_keys ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if rows.is_empty() {
            self.add_cluster_key(1, now)?;
            return self.cluster_keys(now);
        }
        let mut out = Vec::with_capacity(rows.len());
        for (id, sealed) in rows {
            let id = u32::try_from(id).map_err(|_| StoreError::InvalidInput("cluster key id"))?;
            let material = self.vault().open(&sealed, &id.to_be_bytes())?;
            let mut key = Zeroizing::new([0u8; 32]);
            if material.len() != 32 {
                return Err(VaultError::Malformed.into());
            }
            key.copy_from_slice(&material);
            out.push((id, key));
        }
        Ok(out)
    }

    fn add_cluster_key(&self, id: u32, now: i64) -> Result<()> {
        let material = Zeroizing::new(random::<32>()?);
        let sealed = self.vault().seal(material.as_ref(), &id.to_be_bytes())?;
        self.db().execute(
            "INSERT INTO cluster_keys (id, material, created) VALUES (?1, ?2, ?3)",
            params![i64::from(id), sealed, now],
        )?;
        Ok(())
    }

    fn rotate_cluster_keys(&self, now: i64, every: i64, keep: i64) -> Result<bool> {
        let newest: Option<(i64, i64)> = self
            .db()
            .query_row(
                "SELECT id, created FROM cluster_keys ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let mut changed = false;
        let newest_id = match newest {
            Some((id, created)) if now - created < every => id,
            Some((id, _)) => {
                let next = u32::try_from(id + 1)
                    .map_err(|_| StoreError::InvalidInput("cluster key ids exhausted"))?;
                let material = Zeroizing::new(random::<32>()?);
                let sealed = self.vault().seal(material.as_ref(), &next.to_be_bytes())?;
                changed |= self.db().execute(
                    "INSERT OR IGNORE INTO cluster_keys (id, material, created) VALUES (?1, ?2, ?3)",
                    params![i64::from(next), sealed, now],
                )? == 1;
                i64::from(next)
            }
            None => return Ok(false),
        };
        // A key retires when its successor is created: sessions it sealed
        // may live `keep` seconds beyond that.
        changed |= self.db().execute(
            "DELETE FROM cluster_keys WHERE id < ?2 AND
               (SELECT created FROM cluster_keys n WHERE n.id > cluster_keys.id ORDER BY n.id LIMIT 1) < ?1",
            params![now - keep, newest_id],
        )? > 0;
        Ok(changed)
    }
}
