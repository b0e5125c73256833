//! Console sessions (sealed state, context: the row's key, kind, user and
//! creation time).

use rusqlite::{OptionalExtension, params};

use super::{SqliteBackend, parse_column};
use crate::backend::{
    ConsoleSessionKind, ConsoleSessionRow, ConsoleSessions, console_session_context,
};
use crate::{Result, StoreError, VaultError};

fn context(key: &[u8; 32], row: &ConsoleSessionRow) -> Vec<u8> {
    console_session_context(key, row.kind, &row.user, row.created)
}

impl ConsoleSessions for SqliteBackend {
    fn put_console_session(
        &self,
        key: &[u8; 32],
        row: &ConsoleSessionRow,
        idle_before: i64,
        created_before: i64,
        keep: usize,
    ) -> Result<()> {
        let sealed = self.vault().seal(&row.state, &context(key, row))?;
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "DELETE FROM console_sessions WHERE last_seen <= ?1 OR created <= ?2",
            params![idle_before, created_before],
        )?;
        if row.kind == ConsoleSessionKind::AwaitingMfa {
            tx.execute(
                "DELETE FROM console_sessions WHERE kind = ?1 AND user = ?2 COLLATE NOCASE",
                params![row.kind.as_str(), row.user],
            )?;
        }
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM console_sessions", [], |r| r.get(0))?;
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        if count >= keep {
            tx.execute(
                "DELETE FROM console_sessions WHERE key IN
                   (SELECT key FROM console_sessions ORDER BY last_seen LIMIT ?1)",
                params![count - keep + 1],
            )?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO console_sessions (key, kind, user, created, last_seen, failures, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                &key[..],
                row.kind.as_str(),
                row.user,
                row.created,
                row.last_seen,
                row.failures,
                sealed
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn update_console_session(&self, key: &[u8; 32], row: &ConsoleSessionRow) -> Result<bool> {
        let sealed = self.vault().seal(&row.state, &context(key, row))?;
        Ok(self.db().execute(
            "UPDATE console_sessions SET state = ?5
             WHERE key = ?1 AND kind = ?2 AND user = ?3 AND created = ?4",
            params![&key[..], row.kind.as_str(), row.user, row.created, sealed],
        )? == 1)
    }

    fn console_session(&self, key: &[u8; 32]) -> Result<Option<ConsoleSessionRow>> {
        let row = self
            .reader()
            .query_row(
                "SELECT kind, user, created, last_seen, failures, state FROM console_sessions WHERE key = ?1",
                params![&key[..]],
                |r| {
                    Ok((
                        parse_column(r, 0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, u32>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((kind, user, created, last_seen, failures, sealed)) = row else {
            return Ok(None);
        };
        match self
            .vault()
            .open(&sealed, &console_session_context(key, kind, &user, created))
        {
            Ok(state) => Ok(Some(ConsoleSessionRow {
                kind,
                user,
                created,
                last_seen,
                failures,
                state,
            })),
            Err(VaultError::Forged) => {
                self.end_console_session(key)?;
                Ok(None)
            }
            Err(e) => Err(StoreError::from(e)),
        }
    }

    fn touch_console_session(&self, key: &[u8; 32], now: i64) -> Result<()> {
        self.db().execute(
            "UPDATE console_sessions SET last_seen = ?2 WHERE key = ?1 AND last_seen < ?2",
            params![&key[..], now],
        )?;
        Ok(())
    }

    fn take_console_try(&self, key: &[u8; 32], limit: u32) -> Result<Option<u32>> {
        Ok(self
            .db()
            .query_row(
                "UPDATE console_sessions SET failures = failures + 1
                 WHERE key = ?1 AND kind = ?2 AND failures < ?3 RETURNING failures",
                params![&key[..], ConsoleSessionKind::AwaitingMfa.as_str(), limit],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn end_console_session(&self, key: &[u8; 32]) -> Result<bool> {
        Ok(self.db().execute(
            "DELETE FROM console_sessions WHERE key = ?1",
            params![&key[..]],
        )? == 1)
    }
}
