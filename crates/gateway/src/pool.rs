//! Session pooling: when a client leaves cleanly, its upstream connection
//! is reset (PostgreSQL's `DISCARD ALL`, MySQL's `COM_RESET_CONNECTION`;
//! the engine's gateway does that) and kept for the next client of the
//! same database, user and startup parameters. A pooled connection never
//! crosses users, so no privilege can leak between them.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use latchkey_store::{Database, StatementPolicy};
use tokio::io::{AsyncRead, ReadBuf};

use crate::net::UpstreamStream;

/// How long resetting a connection may take before it is dropped.
pub const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// A logged-in upstream connection the pool can keep.
pub trait Pooled: Send {
    /// When it logged in.
    fn created(&self) -> Instant;
    /// Whether the server has not closed it or sent anything unasked
    /// (see [`stream_alive`]).
    fn alive(&mut self) -> bool;
    /// Re-registers its socket with the calling thread's runtime.
    fn move_to_this_thread(&mut self) -> std::io::Result<()>;
}

#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    /// Idle connections kept per (database, user, parameters); 0 turns
    /// pooling off.
    pub max_idle_per_key: usize,
    /// Idle connections older than this are closed.
    pub idle_timeout: Duration,
    /// Connections older than this are closed instead of reused.
    pub max_lifetime: Duration,
}

struct Idle<C> {
    upstream: C,
    since: Instant,
    /// The session thread whose reactor the socket is registered with.
    thread: usize,
}

pub struct Pool<C> {
    config: PoolConfig,
    idle: Mutex<HashMap<String, Vec<Idle<C>>>>,
}

/// The pool key: everything the upstream session was started with,
/// including how the database is reached, so a changed registration
/// never hands out a connection made under the old one (nor one opened
/// without the catalogue reads that statement policy needs), and the
/// upstream credentials epoch
/// ([`latchkey_identity::AppState::upstream_credentials_epoch`], read
/// before the login reads the store), so neither does a credential
/// change: connections pooled under an older epoch are never taken
/// again and age out.
pub fn key(
    db: &Database,
    user: &str,
    dbname: &str,
    params: &[(String, String)],
    credentials_epoch: u64,
) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let ca = db.upstream_ca.as_deref().map_or(0, fnv1a);
    let catalog = db.statement_policy != StatementPolicy::Off;
    let mut k = format!(
        "{}\0{}\0{}\0{}\0{ca:x}\0{catalog}\0{credentials_epoch}\0{user}\0{dbname}",
        db.name, db.upstream, db.upstream_tls, db.upstream_auth
    );
    for (name, value) in sorted {
        k.push('\0');
        k.push_str(name);
        k.push('=');
        k.push_str(value);
    }
    k
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The connection has not been closed by the server and has sent nothing
/// unasked (an idle server only speaks to say it is going away).
pub fn stream_alive(stream: &mut UpstreamStream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}

impl<C: Pooled> Pool<C> {
    pub fn new(config: PoolConfig) -> Self {
        Self {
            config,
            idle: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.max_idle_per_key > 0
    }

    /// A live idle connection for `key`, most recently used first, moved
    /// to session thread `thread` if it lived on another.
    pub fn take(&self, key: &str, thread: usize) -> Option<C> {
        loop {
            let mut idle = {
                let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                let list = pool.get_mut(key)?;
                let idle = list.pop();
                if list.is_empty() {
                    pool.remove(key);
                }
                idle?
            };
            if idle.upstream.created().elapsed() < self.config.max_lifetime
                && idle.upstream.alive()
                && (idle.thread == thread || idle.upstream.move_to_this_thread().is_ok())
            {
                return Some(idle.upstream);
            }
            tracing::debug!("dropped a stale pooled connection");
        }
    }

    /// Keeps a reset connection of session thread `thread`, if there is
    /// room and it is young enough.
    pub fn put(&self, key: String, upstream: C, thread: usize) {
        if upstream.created().elapsed() >= self.config.max_lifetime {
            return;
        }
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = pool.entry(key).or_default();
        if list.len() < self.config.max_idle_per_key {
            list.push(Idle {
                upstream,
                since: Instant::now(),
                thread,
            });
        }
    }

    /// Closes connections idle too long, too old, or closed by the server.
    pub fn sweep(&self) {
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.config;
        for list in pool.values_mut() {
            list.retain_mut(|i| {
                i.since.elapsed() < config.idle_timeout
                    && i.upstream.created().elapsed() < config.max_lifetime
                    && i.upstream.alive()
            });
        }
        pool.retain(|_, list| !list.is_empty());
    }

    /// Idle connections held.
    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_parameter_order() {
        let db = Database {
            name: "orders".into(),
            upstream: "127.0.0.1:5432".into(),
            ..Default::default()
        };
        let a = key(
            &db,
            "app",
            "orders",
            &[("a".into(), "1".into()), ("b".into(), "2".into())],
            0,
        );
        let b = key(
            &db,
            "app",
            "orders",
            &[("b".into(), "2".into()), ("a".into(), "1".into())],
            0,
        );
        assert_eq!(a, b);
        assert_ne!(a, key(&db, "app2", "orders", &[], 0));
        // Separators keep fields apart.
        assert_ne!(key(&db, "a", "bc", &[], 0), key(&db, "ab", "c", &[], 0));
        // A changed registration gets new connections.
        let moved = Database {
            upstream: "127.0.0.1:5433".into(),
            ..db.clone()
        };
        assert_ne!(
            key(&db, "app", "orders", &[], 0),
            key(&moved, "app", "orders", &[], 0)
        );
        let ca = Database {
            upstream_ca: Some("PEM".into()),
            ..db.clone()
        };
        assert_ne!(
            key(&db, "app", "orders", &[], 0),
            key(&ca, "app", "orders", &[], 0)
        );
    }

    struct Conn(Instant);

    impl Pooled for Conn {
        fn created(&self) -> Instant {
            self.0
        }

        fn alive(&mut self) -> bool {
            true
        }

        fn move_to_this_thread(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_credential_change_drains_the_pool() {
        let db = Database {
            name: "orders".into(),
            upstream: "127.0.0.1:5432".into(),
            ..Default::default()
        };
        let before = key(&db, "app", "orders", &[], 7);
        let after = key(&db, "app", "orders", &[], 8);
        assert_ne!(before, after);
        let pool = Pool::new(PoolConfig {
            max_idle_per_key: 4,
            idle_timeout: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(3600),
        });
        pool.put(before.clone(), Conn(Instant::now()), 0);
        pool.put(before.clone(), Conn(Instant::now()), 0);
        // Taken under the key it was kept under...
        assert!(pool.take(&before, 0).is_some());
        // ...but not once the epoch moved on: it waits for the sweep.
        assert!(pool.take(&after, 0).is_none());
        assert_eq!(pool.idle_count(), 1);
    }
}
