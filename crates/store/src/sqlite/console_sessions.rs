//! Console sessions (sealed state, context: the row's key).

use rusqlite::{OptionalExtension, params};

use super::{SqliteBackend, parse_column};
use crate::Result;
use crate::backend::{ConsoleSessionRow, ConsoleSessions, console_session_context};

impl ConsoleSessions for SqliteBackend {
    fn put_console_session(
        &self,
        key: &[u8; 32],
        row: &ConsoleSessionRow,
        idle_before: i64,
        created_before: i64,
        keep: usize,
    ) -> Result<()> {
        let sealed = self
            .vault()
            .seal(&row.state, &console_session_context(key))?;
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "DELETE FROM console_sessions WHERE last_seen <= ?1 OR created <= ?2",
            params![idle_before, created_before],
        )?;
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

    fn update_console_session(&self, key: &[u8; 32], state: &[u8]) -> Result<bool> {
        let sealed = self.vault().seal(state, &console_session_context(key))?;
        Ok(self.db().execute(
            "UPDATE console_sessions SET state = ?2 WHERE key = ?1",
            params![&key[..], sealed],
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
        let state = self.vault().open(&sealed, &console_session_context(key))?;
        Ok(Some(ConsoleSessionRow {
            kind,
            user,
            created,
            last_seen,
            failures,
            state,
        }))
    }

    fn touch_console_session(&self, key: &[u8; 32], now: i64) -> Result<()> {
        self.db().execute(
            "UPDATE console_sessions SET last_seen = ?2 WHERE key = ?1 AND last_seen < ?2",
            params![&key[..], now],
        )?;
        Ok(())
    }

    fn count_console_failure(&self, key: &[u8; 32]) -> Result<Option<u32>> {
        Ok(self
            .db()
            .query_row(
                "UPDATE console_sessions SET failures = failures + 1 WHERE key = ?1 RETURNING failures",
                params![&key[..]],
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
