//! [`SessionKeys`] on PostgreSQL, as SQLite's (`crate::sqlite::session_keys`):
//! session revocations and cluster keys (sealed, context: the key id).

use zeroize::Zeroizing;

use super::{PgBackend, Sql};
use crate::backend::SessionKeys;
use crate::{Result, StoreError, VaultError, random};

/// A cluster key's id as stored.
fn key_id(id: i64) -> Result<u32> {
    u32::try_from(id).map_err(|_| StoreError::Postgres(format!("cluster key id {id} out of range")))
}

impl SessionKeys for PgBackend {
    fn revoke_sessions(&self, arn: &str, before: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO revocations (arn, not_before) VALUES ($1, $2)
                 ON CONFLICT (arn) DO UPDATE
                 SET not_before = GREATEST(revocations.not_before, EXCLUDED.not_before)",
                &[&arn, &before],
            )
        })?;
        Ok(())
    }

    fn revocations(&self) -> Result<Vec<(String, i64)>> {
        self.read(|c| {
            c.query(
                "SELECT arn, not_before FROM revocations ORDER BY arn COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }

    fn block_address(&self, ip: &str, until: i64, evidence: i64) -> Result<bool> {
        self.write(|tx| {
            let forgiven: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM unblocked_addresses WHERE ip = $1 AND at >= $2)",
                    &[&ip, &evidence],
                )?
                .try_get(0)?;
            if !forgiven {
                tx.execute(
                    "INSERT INTO blocked_addresses (ip, until) VALUES ($1, $2)
                     ON CONFLICT (ip) DO UPDATE
                     SET until = GREATEST(blocked_addresses.until, EXCLUDED.until)",
                    &[&ip, &until],
                )?;
            }
            Ok(!forgiven)
        })
    }

    fn blocked_addresses(&self, now: i64) -> Result<Vec<(String, i64)>> {
        // Expired rows go only when there are some: a delete that changes
        // nothing fires no notification, so idle reloads stay quiet.
        let expired: bool = self.read(|c| {
            Ok(c.query_one(
                "SELECT EXISTS (SELECT 1 FROM blocked_addresses WHERE until <= $1)",
                &[&now],
            )?
            .try_get(0)?)
        })?;
        if expired {
            self.write(|tx| {
                tx.execute("DELETE FROM blocked_addresses WHERE until <= $1", &[&now])
            })?;
        }
        self.read(|c| {
            c.query(
                "SELECT ip, until FROM blocked_addresses WHERE until > $1 ORDER BY ip COLLATE \"C\"",
                &[&now],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }

    fn unblock_address(&self, ip: &str, now: i64) -> Result<bool> {
        self.write(|tx| {
            let lifted = tx.execute("DELETE FROM blocked_addresses WHERE ip = $1", &[&ip])? == 1;
            tx.execute(
                "INSERT INTO unblocked_addresses (ip, at) VALUES ($1, $2)
                 ON CONFLICT (ip) DO UPDATE
                 SET at = GREATEST(unblocked_addresses.at, EXCLUDED.at)",
                &[&ip, &now],
            )?;
            Ok(lifted)
        })
    }

    fn cluster_keys(&self, now: i64) -> Result<Vec<(u32, Zeroizing<[u8; 32]>)>> {
        let rows: Vec<(i64, Vec<u8>)> = self.read(|c| {
            c.query("SELECT id, material FROM cluster_keys ORDER BY id", &[])?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_>>()
        })?;
        if rows.is_empty() {
            // A node losing the race to make key 1 gets an error (a
            // unique id); key 1 is there when it asks again.
            self.add_cluster_key(1, now)?;
            return self.cluster_keys(now);
        }
        let mut out = Vec::with_capacity(rows.len());
        for (id, sealed) in rows {
            let id = key_id(id)?;
            let material = self.vault().open(&sealed, &id.to_be_bytes())?;
            if material.len() != 32 {
                return Err(VaultError::Malformed.into());
            }
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&material);
            out.push((id, key));
        }
        Ok(out)
    }

    fn add_cluster_key(&self, id: u32, now: i64) -> Result<()> {
        let material = Zeroizing::new(random::<32>()?);
        let sealed = self.vault().seal(material.as_ref(), &id.to_be_bytes())?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO cluster_keys (id, material, created) VALUES ($1, $2, $3)",
                &[&i64::from(id), &sealed, &now],
            )
        })?;
        Ok(())
    }

    fn rotate_cluster_keys(&self, now: i64, every: i64, keep: i64) -> Result<bool> {
        // One transaction: of nodes rotating at once, one adds the key (the
        // others, retried, find it made) and the newest is never dropped.
        self.write(|tx| {
            let newest = tx
                .query_opt(
                    "SELECT id, created FROM cluster_keys ORDER BY id DESC LIMIT 1",
                    &[],
                )?
                .map(|r| Ok::<_, StoreError>((r.try_get::<_, i64>(0)?, r.try_get::<_, i64>(1)?)))
                .transpose()?;
            let mut changed = false;
            let newest_id = match newest {
                Some((id, created)) if now.saturating_sub(created) < every => id,
                Some((id, _)) => {
                    let next = id
                        .checked_add(1)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or(StoreError::InvalidInput("cluster key ids exhausted"))?;
                    let material = Zeroizing::new(random::<32>()?);
                    let sealed = self.vault().seal(material.as_ref(), &next.to_be_bytes())?;
                    changed |= tx.execute(
                        "INSERT INTO cluster_keys (id, material, created) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO NOTHING",
                        &[&i64::from(next), &sealed, &now],
                    )? == 1;
                    i64::from(next)
                }
                None => return Ok(false),
            };
            // A key retires when its successor is created: sessions it
            // sealed may live `keep` seconds beyond that.
            changed |= tx.execute(
                "DELETE FROM cluster_keys WHERE id < $2 AND
                   (SELECT created FROM cluster_keys n WHERE n.id > cluster_keys.id ORDER BY n.id LIMIT 1) < $1",
                &[&now.saturating_sub(keep), &newest_id],
            )? > 0;
            Ok(changed)
        })
    }
}
