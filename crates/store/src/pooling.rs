//! How a registered database's server connections are shared between
//! clients (transaction pooling, issue 23): the mode, per database and
//! per database user, and the transaction pool's sizes and timeouts. Kept
//! with the database's registration (one JSON column, `pooling`), so every
//! node of a cluster pools alike.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{PoolMode, SessionState};

/// A database's pooling. Every field has a default (below), so a stored
/// value names only what differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pooling {
    /// The mode for every database user not named in `user_modes`.
    pub mode: PoolMode,
    /// Database users pooled in another mode than `mode`.
    pub user_modes: BTreeMap<String, PoolMode>,
    /// Server connections one transaction pool (database, user, startup
    /// parameters) opens at most. Default 20.
    pub size: u32,
    /// Connections beyond `size` a pool may open for clients that waited
    /// `reserve_after_ms`. Default 0.
    pub reserve: u32,
    /// Default 5,000 ms (PgBouncer's `reserve_pool_timeout`).
    pub reserve_after_ms: u32,
    /// How long a client waits for a server connection before `FATAL
    /// 53300`. Default 30,000 ms.
    pub queue_timeout_ms: u32,
    /// An idle server connection is closed after this. Default 600 s.
    pub idle_timeout_s: u32,
    /// A server connection is closed after this, once idle. Default 3,600 s.
    pub lifetime_s: u32,
    /// A client that keeps its lent connection waiting this long inside
    /// a transaction (or an unsynced batch) is ended with `FATAL 25P03`
    /// and the connection closed, so that it cannot hold the pool's
    /// connections. Default 0: never (as PgBouncer's
    /// `idle_transaction_timeout`).
    pub idle_transaction_timeout_s: u32,
    /// Pin or refuse session state. Default pin.
    pub session_state: SessionState,
}

impl Default for Pooling {
    fn default() -> Self {
        Self {
            mode: PoolMode::Session,
            user_modes: BTreeMap::new(),
            size: 20,
            reserve: 0,
            reserve_after_ms: 5_000,
            queue_timeout_ms: 30_000,
            idle_timeout_s: 600,
            lifetime_s: 3_600,
            idle_transaction_timeout_s: 0,
            session_state: SessionState::Pin,
        }
    }
}

/// Why pooling settings are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolingError {
    #[error(
        "transaction pooling is for postgres databases only (MySQL sessions carry state a pool cannot move)"
    )]
    NotForEngine,
    #[error("pool size is 1 to 10000 and the reserve at most 10000")]
    Size,
    #[error(
        "pool timeouts are 1 ms to 1 day (idle timeout and lifetime 1 s to 1 year; idle transaction timeout 0, off, to 1 day)"
    )]
    Timeout,
    #[error("a per-user pool mode names a database user of 1-63 characters")]
    User,
}

impl PoolingError {
    pub fn message(self) -> &'static str {
        match self {
            PoolingError::NotForEngine => {
                "transaction pooling is for postgres databases only (MySQL sessions carry state a pool cannot move)"
            }
            PoolingError::Size => "pool size is 1 to 10000 and the reserve at most 10000",
            PoolingError::Timeout => {
                "pool timeouts are 1 ms to 1 day (idle timeout and lifetime 1 s to 1 year; idle transaction timeout 0, off, to 1 day)"
            }
            PoolingError::User => "a per-user pool mode names a database user of 1-63 characters",
        }
    }
}

impl Pooling {
    /// The mode for database user `user`.
    pub fn mode_for(&self, user: &str) -> PoolMode {
        self.user_modes.get(user).copied().unwrap_or(self.mode)
    }

    /// Whether any user of the database is pooled by transaction.
    pub fn any_transaction(&self) -> bool {
        self.mode == PoolMode::Transaction
            || self
                .user_modes
                .values()
                .any(|m| *m == PoolMode::Transaction)
    }

    /// Checks the settings for a database of `engine`.
    pub fn check(&self, engine: crate::Engine) -> Result<(), PoolingError> {
        if engine != crate::Engine::Postgres && self.any_transaction() {
            return Err(PoolingError::NotForEngine);
        }
        if !(1..=10_000).contains(&self.size) || self.reserve > 10_000 {
            return Err(PoolingError::Size);
        }
        const DAY_MS: u32 = 86_400_000;
        const YEAR_S: u32 = 366 * 86_400;
        if !(1..=DAY_MS).contains(&self.reserve_after_ms)
            || !(1..=DAY_MS).contains(&self.queue_timeout_ms)
            || !(1..=YEAR_S).contains(&self.idle_timeout_s)
            || !(1..=YEAR_S).contains(&self.lifetime_s)
            || self.idle_transaction_timeout_s > DAY_MS / 1000
        {
            return Err(PoolingError::Timeout);
        }
        let bad_user = |u: &str| u.is_empty() || u.len() > 63 || u.contains('\0');
        if self.user_modes.keys().any(|u| bad_user(u)) {
            return Err(PoolingError::User);
        }
        Ok(())
    }

    pub fn reserve_after(&self) -> Duration {
        Duration::from_millis(u64::from(self.reserve_after_ms))
    }
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.queue_timeout_ms))
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.idle_timeout_s))
    }
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.lifetime_s))
    }
    /// `None` when off.
    pub fn idle_transaction_timeout(&self) -> Option<Duration> {
        (self.idle_transaction_timeout_s > 0)
            .then(|| Duration::from_secs(u64::from(self.idle_transaction_timeout_s)))
    }

    /// The stored form: `None` for the defaults, else JSON naming every
    /// field.
    pub fn to_stored(&self) -> Option<String> {
        (*self != Pooling::default()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// Reads the stored form; an unreadable value is an error, not the
    /// defaults (a database silently pooled otherwise than registered
    /// would surprise its owner).
    pub fn from_stored(text: Option<&str>) -> Result<Self, String> {
        match text {
            None => Ok(Pooling::default()),
            Some(text) => serde_json::from_str(text).map_err(|e| format!("pooling: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Engine;

    #[test]
    fn defaults_are_stored_as_nothing_and_others_round_trip() {
        assert_eq!(Pooling::default().to_stored(), None);
        assert_eq!(Pooling::from_stored(None).unwrap(), Pooling::default());
        let p = Pooling {
            mode: PoolMode::Transaction,
            user_modes: [("admin".to_owned(), PoolMode::Session)].into(),
            size: 5,
            reserve: 2,
            queue_timeout_ms: 900,
            ..Pooling::default()
        };
        let stored = p.to_stored().unwrap();
        assert_eq!(Pooling::from_stored(Some(&stored)).unwrap(), p);
        assert!(Pooling::from_stored(Some("{\"mode\":\"statement\"}")).is_err());
        assert!(Pooling::from_stored(Some("{\"extra\":1}")).is_err());
        assert_eq!(p.mode_for("admin"), PoolMode::Session);
        assert_eq!(p.mode_for("app"), PoolMode::Transaction);
    }

    #[test]
    fn settings_are_checked() {
        let tx = Pooling {
            mode: PoolMode::Transaction,
            ..Pooling::default()
        };
        assert_eq!(tx.check(Engine::Postgres), Ok(()));
        assert_eq!(tx.check(Engine::Mysql), Err(PoolingError::NotForEngine));
        let per_user = Pooling {
            user_modes: [("app".to_owned(), PoolMode::Transaction)].into(),
            ..Pooling::default()
        };
        assert_eq!(
            per_user.check(Engine::Mysql),
            Err(PoolingError::NotForEngine)
        );
        for bad in [
            Pooling {
                size: 0,
                ..Pooling::default()
            },
            Pooling {
                reserve: 10_001,
                ..Pooling::default()
            },
        ] {
            assert_eq!(bad.check(Engine::Postgres), Err(PoolingError::Size));
        }
        assert_eq!(
            Pooling {
                queue_timeout_ms: 0,
                ..Pooling::default()
            }
            .check(Engine::Postgres),
            Err(PoolingError::Timeout)
        );
        assert_eq!(
            Pooling {
                idle_transaction_timeout_s: 86_401,
                ..Pooling::default()
            }
            .check(Engine::Postgres),
            Err(PoolingError::Timeout)
        );
        let held = Pooling {
            idle_transaction_timeout_s: 86_400,
            ..tx
        };
        assert_eq!(held.check(Engine::Postgres), Ok(()));
        assert_eq!(
            held.idle_transaction_timeout(),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(Pooling::default().idle_transaction_timeout(), None);
        assert_eq!(
            Pooling {
                user_modes: [(String::new(), PoolMode::Session)].into(),
                ..Pooling::default()
            }
            .check(Engine::Postgres),
            Err(PoolingError::User)
        );
        for e in [
            PoolingError::NotForEngine,
            PoolingError::Size,
            PoolingError::Timeout,
            PoolingError::User,
        ] {
            assert_eq!(e.message(), e.to_string());
        }
    }
}
