//! [`Audit`] on PostgreSQL: the same rules as `crate::sqlite::audit`.

use zeroize::Zeroizing;

use super::{PgBackend, Sql};
use crate::backend::Audit;
use crate::shared::AUDIT_KEY_CONTEXT;
use crate::{Result, StoreError};

impl Audit for PgBackend {
    fn audit_signing_key(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let sealed: Option<Vec<u8>> = self.read(|c| {
            Ok(c.query_opt("SELECT key FROM audit_key WHERE id = 1", &[])?
                .map(|r| r.try_get(0))
                .transpose()?)
        })?;
        match sealed {
            Some(s) => Ok(Some(self.vault().open(&s, AUDIT_KEY_CONTEXT)?)),
            None => Ok(None),
        }
    }

    fn audit_public_key(&self) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            Ok(
                c.query_opt("SELECT public_key FROM audit_key WHERE id = 1", &[])?
                    .map(|r| r.try_get(0))
                    .transpose()?,
            )
        })
    }

    fn create_audit_signing_key(&self, pkcs8: &[u8], public_key: &[u8], now: i64) -> Result<bool> {
        let sealed = self.vault().seal(pkcs8, AUDIT_KEY_CONTEXT)?;
        self.write(|tx| {
            Ok(tx.execute(
                "INSERT INTO audit_key (id, public_key, key, created) VALUES (1, $1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&public_key, &sealed, &now],
            )? == 1)
        })
    }

    fn audit_anchor(&self, node: &str) -> Result<Option<String>> {
        self.read(|c| {
            Ok(c.query_opt(
                "SELECT document FROM audit_anchors WHERE node = $1",
                &[&node],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
        })
    }

    fn audit_anchors(&self) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            c.query(
                "SELECT node, document FROM audit_anchors ORDER BY node COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }

    fn put_audit_anchor(
        &self,
        node: &str,
        trail_id: &str,
        sequence: u64,
        document: &str,
        now: i64,
    ) -> Result<bool> {
        let sequence = i64::try_from(sequence)
            .map_err(|_| StoreError::InvalidInput("anchor sequence out of range"))?;
        self.write(|tx| {
            Ok(tx.execute(
                "INSERT INTO audit_anchors (node, trail_id, sequence, document, updated) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (node) DO UPDATE SET sequence = EXCLUDED.sequence, document = EXCLUDED.document, updated = EXCLUDED.updated
                 WHERE audit_anchors.trail_id = EXCLUDED.trail_id AND EXCLUDED.sequence >= audit_anchors.sequence",
                &[&node, &trail_id, &sequence, &document, &now],
            )? == 1)
        })
    }

    fn forget_audit_anchor(&self, node: &str) -> Result<Option<String>> {
        self.write(|tx| {
            Ok(tx
                .query_opt(
                    "DELETE FROM audit_anchors WHERE node = $1 RETURNING document",
                    &[&node],
                )?
                .map(|r| r.try_get(0))
                .transpose()?)
        })
    }

    fn claim_legacy_audit_anchor(&self, node: &str) -> Result<bool> {
        self.write(|tx| {
            let claimed = tx.execute(
                "INSERT INTO audit_anchors (node, trail_id, sequence, document, updated)
                 SELECT $1, trail_id, sequence, document, updated FROM audit_anchor WHERE id = 1
                 ON CONFLICT (node) DO NOTHING",
                &[&node],
            )?;
            tx.execute("DELETE FROM audit_anchor", &[])?;
            Ok(claimed == 1)
        })
    }
}
