//! The audit trail's anchor: the newest signed chain head, kept here so
//! that deleting trail files cannot hide how far the trail reached.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store};

impl Store {
    /// The stored audit anchor (its signed JSON document), if any.
    pub fn audit_anchor(&self) -> Result<Option<String>> {
        Ok(self
            .db()
            .query_row("SELECT document FROM audit_anchor WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Stores a newer anchor of trail `trail_id`. An anchor of the same
    /// trail with a lower sequence, or of another trail, never replaces
    /// the stored one (that would erase the evidence of a truncation).
    /// Returns whether it was stored.
    pub fn put_audit_anchor(
        &self,
        trail_id: &str,
        sequence: u64,
        document: &str,
        now: i64,
    ) -> Result<bool> {
        let sequence = i64::try_from(sequence)
            .map_err(|_| crate::StoreError::InvalidInput("anchor sequence out of range"))?;
        Ok(self.db().execute(
            "INSERT INTO audit_anchor (id, trail_id, sequence, document, updated) VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET sequence = excluded.sequence, document = excluded.document, updated = excluded.updated
             WHERE audit_anchor.trail_id = excluded.trail_id AND excluded.sequence >= audit_anchor.sequence",
            params![trail_id, sequence, document, now],
        )? == 1)
    }

    /// Removes the stored anchor, returning it: for an operator who starts
    /// a new trail on purpose (the old one moved or archived), since the
    /// server refuses to write a trail that does not reach its anchor.
    pub fn forget_audit_anchor(&self) -> Result<Option<String>> {
        let db = self.db();
        let document: Option<String> = db
            .query_row("SELECT document FROM audit_anchor WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        db.execute("DELETE FROM audit_anchor WHERE id = 1", [])?;
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, Vault};

    #[test]
    fn the_anchor_only_moves_forward_within_its_trail() -> crate::Result<()> {
        let dir = tempfile::tempdir().map_err(|_| crate::StoreError::InvalidInput("tempdir"))?;
        let store = Store::open(&dir.path().join("s.db"), Vault::new(1, &[7; 32]))?;
        assert_eq!(store.audit_anchor()?, None);
        assert!(store.put_audit_anchor("00000000000000aa", 10, "ten", 1)?);
        assert!(store.put_audit_anchor("00000000000000aa", 12, "twelve", 2)?);
        assert!(!store.put_audit_anchor("00000000000000aa", 11, "eleven", 3)?);
        assert!(!store.put_audit_anchor("00000000000000bb", 99, "other", 4)?);
        assert_eq!(store.audit_anchor()?.as_deref(), Some("twelve"));
        // Forgotten on purpose, another trail may be anchored.
        assert_eq!(store.forget_audit_anchor()?.as_deref(), Some("twelve"));
        assert!(store.put_audit_anchor("00000000000000bb", 1, "new", 5)?);
        assert_eq!(store.audit_anchor()?.as_deref(), Some("new"));
        Ok(())
    }
}
