//! What Latchkey's database gateways share, whatever the wire protocol:
//!
//! - [`Gatekeeper`]: who gets in. Token verification, the endpoint and
//!   user checks, the `rds-db:connect` policy decision, blocked addresses,
//!   connection limits and rate limits; the audit records of logins and
//!   sessions; the sweep that ends sessions whose credential was revoked,
//!   and session deadlines.
//! - [`pool`]: idle upstream connections kept per (database, user,
//!   parameters), moved between session threads.
//! - [`net`]: the upstream connection, TCP or Unix socket, plain or TLS
//!   (libpq's `sslmode` meanings for both engines).
//! - [`relay`]: the relay loop over a protocol's framing
//!   (`latchkey-framing`).
//! - [`serve_on_threads`]: the accept loop handing connections to
//!   single-threaded session runtimes.
//!
//! The PostgreSQL and MySQL gateways are thin protocol layers over this.

pub mod activity;
pub mod dbca;
pub mod firewall;
pub mod gatekeeper;
pub mod limits;
pub mod net;
pub mod pipeline;
pub mod pool;
pub mod relay;
pub mod statements;
pub mod txpool;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};

pub use gatekeeper::{
    Attempt, Authenticated, Gatekeeper, Interrupt, LiveCounters, LiveView, SessionEnd, Watch,
};
pub use latchkey_framing::MessageBudget;
pub use pipeline::{
    Allowed, Denial, Gateway, Link, Login, Opening, Protocol, Relayed, Running, Session, TxLink,
    UpstreamFailure,
};

use crate::limits::{ConcurrencyLimits, RateLimit};
use crate::pool::PoolConfig;

/// Memory large client messages may take at once by default: one
/// message of the largest size allowed with what the SQL guard may take
/// for it ([`latchkey_framing::cost`] of 64 MiB is 1.6 GiB), with room
/// beside it.
pub const LARGE_MESSAGE_MEMORY: usize = 2 << 30;

/// Settings of one gateway listener.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Signing region tokens must use; part of the connect ARN.
    pub region: String,
    /// The port tokens must be signed for (the gateway's own).
    pub port: u16,
    /// Development only: accept clients without TLS.
    pub allow_plaintext: bool,
    /// From TCP accept to the first relayed byte (against slowloris).
    pub startup_timeout: Duration,
    /// Largest client message after login.
    pub max_message_size: usize,
    /// Memory that large client messages may take at once, shared by
    /// every gateway given the same budget (see
    /// [`latchkey_framing::MessageBudget`]).
    pub large_messages: std::sync::Arc<latchkey_framing::MessageBudget>,
    pub limits: ConcurrencyLimits,
    /// Token bucket on new connections from one source address.
    pub new_connections_per_ip: Option<RateLimit>,
    /// Token bucket on new sessions of one principal.
    pub new_connections_per_principal: Option<RateLimit>,
    pub pool: PoolConfig,
    /// Audit every statement.
    pub audit_statements: bool,
    /// Audit statements with their literals instead of `?`.
    pub audit_keep_literals: bool,
    /// End sessions whose credential is revoked (checked by
    /// [`Gatekeeper::maintain`]).
    pub end_sessions_on_revocation: bool,
    /// End sessions when the temporary credentials they logged in with
    /// expire.
    pub end_sessions_at_credential_expiry: bool,
    /// End sessions this long after login.
    pub max_session_duration: Option<Duration>,
    /// Threads serving sessions, each with its own single-threaded
    /// runtime.
    pub threads: usize,
}

impl GatewayConfig {
    /// Defaults for a gateway on `port` in `region`.
    pub fn new(region: &str, port: u16) -> Self {
        Self {
            region: region.to_owned(),
            port,
            allow_plaintext: false,
            startup_timeout: Duration::from_secs(10),
            max_message_size: 64 << 20,
            large_messages: latchkey_framing::MessageBudget::new(LARGE_MESSAGE_MEMORY),
            limits: ConcurrencyLimits {
                total: 10_000,
                per_ip: 1_000,
                per_principal: 1_000,
            },
            new_connections_per_ip: Some(RateLimit {
                per_second: 2_000.0,
                burst: 4_000.0,
            }),
            new_connections_per_principal: Some(RateLimit {
                per_second: 2_000.0,
                burst: 4_000.0,
            }),
            pool: PoolConfig {
                max_idle_per_key: 20,
                idle_timeout: Duration::from_secs(60),
                max_lifetime: Duration::from_secs(3600),
            },
            audit_statements: true,
            audit_keep_literals: false,
            end_sessions_on_revocation: true,
            end_sessions_at_credential_expiry: false,
            max_session_duration: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Accepts clients until `shutdown` resolves, handing each to one of
/// `threads` session threads in turn (named `NAME-N`). Each thread runs a
/// single-threaded runtime: a session's sockets and its task never leave
/// that thread, so relaying takes no cross-thread wake-ups (on a busy
/// 2-core machine the work-stealing runtime's futex and eventfd calls
/// were ~8% of the gateway's time). `handle` gets the connection, the
/// peer and the thread's index (for the pool).
pub async fn serve_on_threads<H, F>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    threads: usize,
    name: &str,
    handle: H,
) -> Result<()>
where
    H: Fn(TcpStream, SocketAddr, usize) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    const SESSION_THREAD_STACK: usize = 16 << 20;
    let threads = threads.max(1);
    let mut shards = Vec::with_capacity(threads);
    for shard in 0..threads {
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
        shards.push(tx);
        let handle = handle.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("{name}-{shard}"))
            // Statement policy parses client SQL on this thread, and
            // libpg_query's parser and tree decoding recurse: 100 levels
            // of nesting take about 0.5 MiB of stack in release builds and
            // over 2 MiB (the default) in debug ones. Only touched pages
            // cost memory.
            .stack_size(SESSION_THREAD_STACK)
            .spawn(move || {
                runtime.block_on(async move {
                    // Sessions outlive the listener: when it stops (a node
                    // draining), the thread runs until its last one ends.
                    let mut sessions = tokio::task::JoinSet::new();
                    loop {
                        tokio::select! {
                            next = rx.recv() => match next {
                                Some((std_tcp, peer)) => match TcpStream::from_std(std_tcp) {
                                    Ok(tcp) => {
                                        sessions.spawn(handle(tcp, peer, shard));
                                    }
                                    Err(e) => {
                                        tracing::warn!(%peer, error = %e, "taking a connection failed")
                                    }
                                },
                                None => break,
                            },
                            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                        }
                    }
                    while sessions.join_next().await.is_some() {}
                });
            })?;
    }
    let mut next = 0usize;
    latchkey_listen::accept_until(listener, shutdown, |tcp, peer| match tcp.into_std() {
        Ok(std_tcp) => {
            let _ = shards[next % shards.len()].send((std_tcp, peer));
            next = next.wrapping_add(1);
        }
        Err(e) => tracing::warn!(%peer, error = %e, "handing a connection over failed"),
    })
    .await;
    Ok(())
}
