//! The audit trail's signing key (sealed) and its anchor: the newest
//! signed chain head, kept here so that deleting trail files cannot hide
//! how far the trail reached.

use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::{AUDIT_KEY_CONTEXT, SqliteBackend};
use crate::backend::Audit;
use crate::{Result, StoreError};

impl Audit for SqliteBackend {
    fn audit_signing_key(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let sealed: Option<Vec<u8>> = self
            .db()
            .query_row("SELECT key FROM audit_key WHERE id = 1", [], |r| r.get(0))
            .optional()?;
        match sealed {
            Some(s) => Ok(Some(self.vault().open(&s, AUDIT_KEY_CONTEXT)?)),
            None => Ok(None),
        }
    }

    fn audit_public_key(&self) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db()
            .query_row("SELECT public_key FROM audit_key WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn create_audit_signing_key(&self, pkcs8: &[u8], public_key: &[u8], now: i64) -> Result<bool> {
        let sealed = self.vault().seal(pkcs8, AUDIT_KEY_CONTEXT)?;
        Ok(self.db().execute(
            "INSERT OR IGNORE INTO audit_key (id, public_key, key, created) VALUES (1, ?1, ?2, ?3)",
            params![public_key, sealed, now],
        )? == 1)
    }

    fn audit_anchor(&self, node: &str) -> Result<Option<String>> {
        Ok(self
            .db()
            .query_row(
                "SELECT document FROM audit_anchors WHERE node = ?1",
                [node],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn audit_anchors(&self) -> Result<Vec<(String, String)>> {
        let db = self.db();
        let mut stmt = db.prepare("SELECT node, document FROM audit_anchors ORDER BY node")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
        Ok(self.db().execute(
            "INSERT INTO audit_anchors (node, trail_id, sequence, document, updated) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (node) DO UPDATE SET sequence = excluded.sequence, document = excluded.document, updated = excluded.updated
             WHERE audit_anchors.trail_id = excluded.trail_id AND excluded.sequence >= audit_anchors.sequence",
            params![node, trail_id, sequence, document, now],
        )? == 1)
    }

    fn forget_audit_anchor(&self, node: &str) -> Result<Option<String>> {
        let db = self.db();
        let document: Option<String> = db
            .query_row(
                "SELECT document FROM audit_anchors WHERE node = ?1",
                [node],
                |r| r.get(0),
            )
            .optional()?;
        db.execute("DELETE FROM audit_anchors WHERE node = ?1", [node])?;
        Ok(document)
    }

    fn claim_legacy_audit_anchor(&self, node: &str) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let claimed = tx.execute(
            "INSERT INTO audit_anchors (node, trail_id, sequence, document, updated)
             SELECT ?1, trail_id, sequence, document, updated FROM audit_anchor WHERE id = 1
             ON CONFLICT (node) DO NOTHING",
            [node],
        )?;
        tx.execute("DELETE FROM audit_anchor", [])?;
        tx.commit()?;
        Ok(claimed == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, Vault};

    #[test]
    fn the_anchor_only_moves_forward_within_its_trail() -> crate::Result<()> {
        let dir = tempfile::tempdir().map_err(|_| crate::StoreError::InvalidInput("tempdir"))?;
        let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[7; 32]))?;
        assert_eq!(store.audit_anchor("n1")?, None);
        assert!(store.put_audit_anchor("n1", "00000000000000aa", 10, "ten", 1)?);
        assert!(store.put_audit_anchor("n1", "00000000000000aa", 12, "twelve", 2)?);
        assert!(!store.put_audit_anchor("n1", "00000000000000aa", 11, "eleven", 3)?);
        assert!(!store.put_audit_anchor("n1", "00000000000000bb", 99, "other", 4)?);
        assert_eq!(store.audit_anchor("n1")?.as_deref(), Some("twelve"));
        // Another node has its own.
        assert!(store.put_audit_anchor("n2", "00000000000000cc", 3, "three", 4)?);
        assert_eq!(
            store.audit_anchors()?,
            [
                ("n1".into(), "twelve".into()),
                ("n2".into(), "three".into())
            ]
        );
        // Forgotten on purpose, another trail may be anchored.
        assert_eq!(store.forget_audit_anchor("n1")?.as_deref(), Some("twelve"));
        assert!(store.put_audit_anchor("n1", "00000000000000bb", 1, "new", 5)?);
        assert_eq!(store.audit_anchor("n1")?.as_deref(), Some("new"));
        Ok(())
    }
}
