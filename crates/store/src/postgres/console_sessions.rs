//! [`ConsoleSessions`] on PostgreSQL, as SQLite's
//! (`crate::sqlite::console_sessions`): sealed state, context: the row's
//! key, kind, user and creation time.

use super::{PgBackend, Sql};
use crate::backend::{
    ConsoleSessionKind, ConsoleSessionRow, ConsoleSessions, console_session_context,
};
use crate::{Result, StoreError, VaultError};

fn context(key: &[u8; 32], row: &ConsoleSessionRow) -> Vec<u8> {
    console_session_context(key, row.kind, &row.user, row.created)
}

fn tries(count: i64) -> Result<u32> {
    u32::try_from(count)
        .map_err(|_| StoreError::Postgres(format!("console session failures {count} out of range")))
}

impl ConsoleSessions for PgBackend {
    fn put_console_session(
        &self,
        key: &[u8; 32],
        row: &ConsoleSessionRow,
        idle_before: i64,
        created_before: i64,
        keep: usize,
    ) -> Result<()> {
        let sealed = self.vault().seal(&row.state, &context(key, row))?;
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let key = &key[..];
        self.write(|tx| {
            tx.execute(
                "DELETE FROM console_sessions WHERE last_seen <= $1 OR created <= $2",
                &[&idle_before, &created_before],
            )?;
            if row.kind == ConsoleSessionKind::AwaitingMfa {
                tx.execute(
                    "DELETE FROM console_sessions WHERE kind = $1 AND user_name = $2 COLLATE latchkey_nocase",
                    &[&row.kind.as_str(), &row.user],
                )?;
            }
            let count: i64 = tx
                .query_one("SELECT COUNT(*) FROM console_sessions", &[])?
                .try_get(0)?;
            if count >= keep {
                tx.execute(
                    "DELETE FROM console_sessions WHERE key IN
                       (SELECT key FROM console_sessions ORDER BY last_seen LIMIT $1)",
                    &[&(count - keep + 1)],
                )?;
            }
            tx.execute(
                "INSERT INTO console_sessions (key, kind, user_name, created, last_seen, failures, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, user_name = EXCLUDED.user_name,
                   created = EXCLUDED.created, last_seen = EXCLUDED.last_seen,
                   failures = EXCLUDED.failures, state = EXCLUDED.state",
                &[
                    &key,
                    &row.kind.as_str(),
                    &row.user,
                    &row.created,
                    &row.last_seen,
                    &i64::from(row.failures),
                    &sealed,
                ],
            )?;
            Ok(())
        })
    }

    fn update_console_session(&self, key: &[u8; 32], row: &ConsoleSessionRow) -> Result<bool> {
        let sealed = self.vault().seal(&row.state, &context(key, row))?;
        let key = &key[..];
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE console_sessions SET state = $5
                 WHERE key = $1 AND kind = $2 AND user_name = $3 AND created = $4",
                &[&key, &row.kind.as_str(), &row.user, &row.created, &sealed],
            )? == 1)
        })
    }

    fn console_session(&self, key: &[u8; 32]) -> Result<Option<ConsoleSessionRow>> {
        let key_bytes = &key[..];
        let Some(r) = self.read(|c| {
            c.query_opt(
                "SELECT kind, user_name, created, last_seen, failures, state
                 FROM console_sessions WHERE key = $1",
                &[&key_bytes],
            )
        })?
        else {
            return Ok(None);
        };
        let kind: String = r.try_get(0)?;
        let kind: ConsoleSessionKind = kind
            .parse()
            .map_err(|e| StoreError::Postgres(format!("console_sessions.kind: {e}")))?;
        let user: String = r.try_get(1)?;
        let created: i64 = r.try_get(2)?;
        let sealed: Vec<u8> = r.try_get(5)?;
        match self
            .vault()
            .open(&sealed, &console_session_context(key, kind, &user, created))
        {
            Ok(state) => Ok(Some(ConsoleSessionRow {
                kind,
                user,
                created,
                last_seen: r.try_get(3)?,
                failures: tries(r.try_get(4)?)?,
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
        let key = &key[..];
        self.write(|tx| {
            tx.execute(
                "UPDATE console_sessions SET last_seen = $2 WHERE key = $1 AND last_seen < $2",
                &[&key, &now],
            )
        })?;
        Ok(())
    }

    fn take_console_try(&self, key: &[u8; 32], limit: u32) -> Result<Option<u32>> {
        let key = &key[..];
        let limit = i64::from(limit);
        self.write(|tx| {
            tx.query_opt(
                "UPDATE console_sessions SET failures = failures + 1
                 WHERE key = $1 AND kind = $2 AND failures < $3 RETURNING failures",
                &[&key, &ConsoleSessionKind::AwaitingMfa.as_str(), &limit],
            )?
            .map(|r| tries(r.try_get(0)?))
            .transpose()
        })
    }

    fn end_console_session(&self, key: &[u8; 32]) -> Result<bool> {
        let key = &key[..];
        self.write(|tx| {
            Ok(tx.execute("DELETE FROM console_sessions WHERE key = $1", &[&key])? == 1)
        })
    }
}
