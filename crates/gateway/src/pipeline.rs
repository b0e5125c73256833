//! The login pipeline every gateway runs, whatever its wire protocol:
//!
//! ```text
//! accept ─ blocked or throttled? ─ TLS and the opening (Protocol::open)
//!   ─ audit trail accepting? ─ token, endpoint, user, policy (Gatekeeper::authenticate)
//!   ─ session limits (Gatekeeper::admit) ─ pooled connection or upstream login
//!   ─ welcome ─ session start recorded ─ relay (Protocol::relay) under the Watch
//!   ─ session end recorded ─ clean connection reset and pooled
//! ```
//!
//! A wire protocol implements [`Protocol`]: how to read its opening and
//! the token, how to say no in its own words, how to log in upstream and
//! reset a pooled connection, how to say "ready" and relay. Everything
//! else (the order of the checks, what is recorded, limits, pooling
//! decisions, timeouts, lifetime) happens here, once, for every engine.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use latchkey_audit::{AuditSink, AuthResult, FailureKind, SessionInfo};
use latchkey_identity::AppState;
use latchkey_store::{Engine, PoolMode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

use crate::gatekeeper::SessionEnd;
use crate::limits::Slot;
use crate::pool::{Pool, Pooled};
use crate::txpool::{AcquireError, Lease, TxPool, TxPoolConfig, TxPools, Waiter};
use crate::{Attempt, Authenticated, Gatekeeper, GatewayConfig, Watch};

/// A wire protocol, as the pipeline drives it.
pub trait Protocol: Send + Sync + Sized + 'static {
    /// Which registered databases the gateway serves, and the engine in
    /// audit records and metrics.
    const ENGINE: Engine;
    /// The session threads' name (`NAME-N`).
    const THREADS: &'static str;
    /// The client's byte stream as accepted (TCP; a duplex in tests).
    type Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A client past the protocol's opening, with whatever the protocol
    /// keeps about it (the stream after TLS, a sequence number).
    type Client: Send;
    /// What the opening said that the upstream login needs.
    type Startup: Send + Sync;
    /// A logged-in upstream connection.
    type Upstream: Pooled + Send + 'static;
    /// What the real server said when it refused the gateway's login.
    type ServerRefusal: Send + Sync;
    /// Whether the protocol can lend a server connection per transaction
    /// ([`Link::Transaction`]); the others always get [`Link::Session`].
    const TRANSACTION_POOLING: bool = false;

    /// Answers a connection turned away before anything was read from it
    /// (a blocked address, too many new connections).
    fn refuse_early(&self, transport: Self::Transport) -> impl Future<Output = ()> + Send;

    /// TLS and the protocol's opening, up to the token.
    fn open(
        &self,
        keeper: &Gatekeeper,
        transport: Self::Transport,
        peer: SocketAddr,
    ) -> impl Future<Output = Result<Opening<Self>>> + Send;

    /// Tells the client it is turned away, in the protocol's words. A
    /// refused login learns only what RDS would say.
    fn deny(
        &self,
        client: &mut Self::Client,
        denial: Denial<'_, Self::ServerRefusal>,
    ) -> impl Future<Output = std::io::Result<()>> + Send;

    /// Settles, once, what the session's policy decides about its
    /// upstream login (MySQL: whether the server is told the client may
    /// upload files), before the pool key and the login read it.
    fn authorized(
        &self,
        _keeper: &Gatekeeper,
        _auth: &Authenticated,
        _login: &mut Login<Self::Startup>,
    ) {
    }

    /// The key under which the upstream connection may be pooled; `None`
    /// when it must not be.
    fn pool_key(
        &self,
        keeper: &Gatekeeper,
        auth: &Authenticated,
        login: &Login<Self::Startup>,
    ) -> Option<String>;

    /// Logs in to the real server with the credential the gateway holds.
    fn connect(
        &self,
        keeper: &Gatekeeper,
        auth: &Authenticated,
        login: &Login<Self::Startup>,
    ) -> impl Future<Output = Result<Self::Upstream, UpstreamFailure<Self::ServerRefusal>>> + Send;

    /// Whether a connection (fresh or pooled) suits this client.
    fn check_fit(
        &self,
        _login: &Login<Self::Startup>,
        _upstream: &Self::Upstream,
    ) -> Result<(), UpstreamFailure<Self::ServerRefusal>> {
        Ok(())
    }

    /// Tells the client it is logged in and ready (and, in transaction
    /// pooling, first gives the lent connection the client's settings).
    fn welcome(
        &self,
        client: &mut Self::Client,
        login: &Login<Self::Startup>,
        upstream: &mut Self::Upstream,
        auth: &Authenticated,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Relays a logged-in session until it ends, ending it early when
    /// the watch says so ([`Watch::guard`]).
    fn relay(
        &self,
        keeper: &Gatekeeper,
        session: Session<'_, Self>,
        watch: &mut Watch,
    ) -> impl Future<Output = Relayed<Self::Upstream>> + Send;

    /// Makes an idle upstream connection fit for another client.
    fn reset(upstream: &mut Self::Upstream) -> impl Future<Output = Result<()>> + Send;

    /// What was read of the server's catalogue as the upstream session
    /// began (PostgreSQL, when statement policy is on): `search_path`
    /// and view dependencies.
    fn catalog(_upstream: &Self::Upstream) -> Option<Arc<crate::statements::ServerCatalog>> {
        None
    }
}

/// What a client that waited a transaction pool's whole queue timeout is
/// told (PostgreSQL: `FATAL 53300`).
pub const QUEUE_TIMEOUT: &str = "no server connection became free within the pool's queue timeout (the pool is busy; try again)";

/// How the protocol's opening ended.
pub enum Opening<P: Protocol> {
    /// Nothing more to do: a cancel request, a connection that ended.
    Done,
    /// A plaintext client the protocol turned away (told already).
    Plaintext { user: String },
    /// A login to check.
    Login {
        client: P::Client,
        login: Login<P::Startup>,
    },
}

/// A login as the client asked for it.
pub struct Login<S> {
    /// The database user.
    pub user: String,
    /// The database (PostgreSQL) or default schema (MySQL) asked for, as
    /// the audit record names it.
    pub database: String,
    /// The token, or why it could not be read from the protocol's
    /// password packet. Wiped when dropped, and taken (and so dropped)
    /// as soon as it has been checked.
    pub password: Result<Zeroizing<Vec<u8>>, String>,
    /// The TLS server name the client sent.
    pub sni: Option<String>,
    /// Over TLS (`aws:SecureTransport`); false only for a plaintext
    /// client let in by configuration.
    pub secure: bool,
    /// What the client calls itself.
    pub user_agent: Option<String>,
    pub startup: S,
}

/// Why a client is turned away after its opening.
pub enum Denial<'a, R> {
    /// The node cannot serve logins: its audit trail cannot write (nobody
    /// gets in unrecorded), or its store does not answer.
    Unavailable,
    /// The token, its credential or the policy said no (one answer for
    /// all, as RDS gives).
    LoginRefused { user: &'a str, peer: SocketAddr },
    /// A session limit or new-connection rate.
    Throttled(&'static str),
    /// The upstream login failed.
    Upstream(&'a UpstreamFailure<R>),
}

/// An upstream login that failed.
#[derive(Debug)]
pub struct UpstreamFailure<R> {
    /// `UpstreamCredentialRefused` or `UpstreamUnavailable`.
    pub kind: FailureKind,
    /// For the audit log.
    pub reason: String,
    /// The server's own refusal, for the protocol to pass on if it may.
    pub server: Option<R>,
}

impl<R> UpstreamFailure<R> {
    /// The upstream login failed with `error`. `server` is the server's
    /// own refusal, if it sent one; `of_credential` says whether it
    /// refused the credential the gateway holds (changed behind its back?),
    /// which is not an outage.
    pub fn login(error: &anyhow::Error, server: Option<R>, of_credential: bool) -> Self {
        Self {
            kind: if of_credential {
                FailureKind::UpstreamCredentialRefused
            } else {
                FailureKind::UpstreamUnavailable
            },
            reason: format!("upstream login: {error:#}"),
            server,
        }
    }

    /// The server could not be reached or used.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::UpstreamUnavailable,
            reason: reason.into(),
            server: None,
        }
    }
}

/// What policy lets a session do beyond its statements' own rights.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allowed {
    /// `latchkey:ChangeDatabasePassword`.
    pub password_changes: bool,
    /// `latchkey:ExecuteDynamicSql`.
    pub dynamic_sql: bool,
}

/// The server side of a session.
pub enum Link<C: Pooled> {
    /// One server connection for the whole session.
    Session(C),
    /// Transaction pooling: a connection lent per transaction.
    Transaction(TxLink<C>),
}

impl<C: Pooled> Link<C> {
    /// The connection the session holds now.
    pub fn conn(&self) -> &C {
        match self {
            Link::Session(c) => c,
            Link::Transaction(t) => t.lease.get(),
        }
    }

    pub fn conn_mut(&mut self) -> &mut C {
        match self {
            Link::Session(c) => c,
            Link::Transaction(t) => t.lease.conn(),
        }
    }
}

/// A transaction-pooled session's pool, and the connection its login
/// used, still lent to it.
pub struct TxLink<C: Pooled> {
    pub pool: Arc<TxPool<C>>,
    pub lease: Lease<C>,
    /// The session's place in the pool's queue.
    pub waiter: Arc<Waiter<C>>,
    /// The session thread (the pool's shard).
    pub thread: usize,
    /// What a client that leaves session state gets.
    pub session_state: latchkey_store::SessionState,
}

/// A logged-in session, handed to [`Protocol::relay`].
pub struct Session<'a, P: Protocol> {
    pub client: P::Client,
    pub upstream: Link<P::Upstream>,
    pub auth: &'a Authenticated,
    pub info: &'a Arc<SessionInfo>,
    pub login: &'a Login<P::Startup>,
    pub allowed: Allowed,
    /// Statement policy, when the database has it on.
    pub gate: Option<Box<dyn latchkey_framing::StatementGate>>,
}

/// How a relay ended.
pub struct Relayed<U> {
    /// The session's own connection, for the session pool (none in
    /// transaction pooling, where connections went back as it went).
    pub upstream: Option<U>,
    pub end: SessionEnd,
    /// The upstream connection is clean and may be pooled.
    pub reusable: bool,
}

/// A gateway: the pipeline over one wire protocol.
pub struct Gateway<P: Protocol> {
    pub keeper: Gatekeeper,
    pub protocol: P,
    pool: Arc<Pool<P::Upstream>>,
    tx_pools: TxPools<P::Upstream>,
}

/// Time kept at the end of a login's startup time to tell it that no
/// pooled connection became free.
const STARTUP_REPLY_MARGIN: Duration = Duration::from_millis(250);

/// A session past its handshake, ready to relay.
///
/// Boxed, as its `auth` is: an idle session's task holds only what it
/// must (moved from one future into the next, a large value would be
/// held in both).
struct Admitted<'g, P: Protocol> {
    client: P::Client,
    upstream: Link<P::Upstream>,
    auth: Box<Authenticated>,
    info: Arc<SessionInfo>,
    login: Login<P::Startup>,
    pool_key: Option<String>,
    allowed: Allowed,
    gate: Option<Box<dyn latchkey_framing::StatementGate>>,
    /// Whether the gate holds the SQL firewall.
    firewalled: bool,
    _slot: Slot<'g>,
}

/// Moves a value out of its box and frees the box. Moving out with `*`
/// in an async function would free the box only when the function's
/// variable goes out of scope: at the session's end.
#[allow(clippy::boxed_local)] // taking the box is the point: it is freed here
fn unbox<T>(boxed: Box<T>) -> T {
    *boxed
}

/// What the console sees of a running gateway, whatever its protocol.
pub trait Running: Send + Sync {
    fn keeper(&self) -> &Gatekeeper;
}

impl<P: Protocol> Running for Gateway<P> {
    fn keeper(&self) -> &Gatekeeper {
        &self.keeper
    }
}

impl<P: Protocol> Gateway<P> {
    pub fn new(
        protocol: P,
        state: Arc<AppState>,
        config: GatewayConfig,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Self> {
        Ok(Self {
            pool: Arc::new(Pool::new(config.pool)),
            tx_pools: TxPools::new(config.threads),
            keeper: Gatekeeper::new(state, config, P::ENGINE, audit)?,
            protocol,
        })
    }

    /// Re-reads the registered databases (called on a timer by `serve`).
    pub fn reload_databases(&self) -> Result<()> {
        self.keeper.reload_databases()
    }

    /// Periodic upkeep (blocking; run it off the session threads): ends
    /// sessions whose credential was revoked or disabled, closes stale
    /// pooled connections and forgets refilled rate buckets.
    pub fn maintain(&self) {
        self.pool.sweep();
        self.tx_pools.sweep();
        self.keeper.maintain();
    }

    /// Idle pooled upstream connections.
    pub fn pooled_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// The transaction pools' figures, summed over every pool.
    pub fn transaction_pools(&self) -> crate::txpool::TxPoolStats {
        self.tx_pools.stats()
    }

    /// One client, from its first byte to its session's end.
    pub async fn client(
        &self,
        transport: P::Transport,
        peer: SocketAddr,
        shard: usize,
    ) -> Result<()> {
        if self.keeper.refuse_early(peer).is_some() {
            self.protocol.refuse_early(transport).await;
            return Ok(());
        }
        // Boxed: the opening's state (TLS handshake, token check, upstream
        // login) is the larger part of a session's, and is freed once it
        // is done rather than held in the task for the session's life.
        let deadline = tokio::time::Instant::now() + self.keeper.config.startup_timeout;
        let admitted = tokio::time::timeout_at(
            deadline,
            Box::pin(self.handshake(transport, peer, shard, deadline)),
        )
        .await
        .map_err(|_| anyhow!("startup timed out"))??;
        match admitted {
            Some(session) => {
                self.run(session, shard).await;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The opening, the checks and the upstream login. `None` when the
    /// connection ended before relaying (a cancel request, a denial).
    async fn handshake(
        &self,
        transport: P::Transport,
        peer: SocketAddr,
        shard: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Box<Admitted<'_, P>>>> {
        let keeper = &self.keeper;
        let (mut client, mut login) = match self.protocol.open(keeper, transport, peer).await? {
            Opening::Done => return Ok(None),
            Opening::Plaintext { user } => {
                tracing::info!(%peer, engine = P::ENGINE.as_str(), "client refused: plaintext");
                keeper.record_auth(
                    peer,
                    &user,
                    Attempt::default(),
                    AuthResult::Failure {
                        kind: FailureKind::Plaintext,
                        reason: "plaintext connection refused".into(),
                    },
                );
                return Ok(None);
            }
            Opening::Login { client, login } => (client, login),
        };
        let mut attempt = Attempt {
            user_agent: login.user_agent.clone(),
            ..Attempt::default()
        };
        if !keeper.audit_accepting(peer, &login.user, &attempt) {
            self.protocol.deny(&mut client, Denial::Unavailable).await?;
            return Ok(None);
        }
        let Some(check) = keeper.begin_check(peer, &login.user, &attempt) else {
            let user = login.user.as_str();
            self.protocol
                .deny(&mut client, Denial::LoginRefused { user, peer })
                .await?;
            return Ok(None);
        };
        // The token is wiped once checked, not held for the session.
        let token = std::mem::replace(&mut login.password, Err(String::new()));
        let checked = match &token {
            Ok(password) => keeper.authenticate(
                password,
                &login.user,
                login.sni.as_deref(),
                login.secure,
                peer,
                &mut attempt,
            ),
            Err(why) => Err((FailureKind::MalformedToken, format!("token: {why}"))),
        };
        drop(token);
        let auth = match checked {
            Ok(auth) => {
                drop(check);
                auth
            }
            Err((kind, reason)) => {
                tracing::info!(%peer, engine = P::ENGINE.as_str(), user = %login.user, reason = %reason, "login denied");
                keeper.record_auth(
                    peer,
                    &login.user,
                    attempt,
                    AuthResult::Failure { kind, reason },
                );
                // Ends the check only now that its failure counts.
                drop(check);
                let user = login.user.as_str();
                let denial = if kind == FailureKind::StoreUnavailable {
                    Denial::Unavailable
                } else {
                    Denial::LoginRefused { user, peer }
                };
                self.protocol.deny(&mut client, denial).await?;
                return Ok(None);
            }
        };
        let slot = match keeper.admit(&auth, peer, &login.user, &attempt) {
            Ok(slot) => slot,
            Err(limit) => {
                self.protocol
                    .deny(&mut client, Denial::Throttled(limit))
                    .await?;
                return Ok(None);
            }
        };
        self.protocol.authorized(keeper, &auth, &mut login);
        let key = self.protocol.pool_key(keeper, &auth, &login);
        let tx_pool = key
            .as_deref()
            .filter(|_| {
                P::TRANSACTION_POOLING
                    && auth.db.pooling.mode_for(&login.user) == PoolMode::Transaction
            })
            .map(|key| {
                // A transaction pool serves one principal: a server
                // connection's prepared statements and what functions
                // leave on it are then never another principal's.
                let key = format!("{key}\0{}", auth.caller.principal_id());
                self.tx_pools.pool(&key, TxPoolConfig::of(&auth.db.pooling))
            });
        let pool_key = key.filter(|_| tx_pool.is_none() && self.pool.enabled());
        // A fresh upstream login, timed (a pooled connection is not).
        let connect = || async {
            let started = Instant::now();
            let connected = self.protocol.connect(keeper, &auth, &login).await;
            keeper
                .state
                .metrics
                .upstream_connect
                .observe(started.elapsed());
            connected
        };
        let upstream = match tx_pool {
            Some(pool) => {
                let waiter = Arc::new(Waiter::default());
                let started = Instant::now();
                // A login waits for a connection within its startup time,
                // and hears why it got none before that time is up.
                let acquired = match tokio::time::timeout_at(
                    deadline
                        .checked_sub(STARTUP_REPLY_MARGIN)
                        .unwrap_or(deadline),
                    pool.acquire(shard, &waiter, connect),
                )
                .await
                {
                    Ok(acquired) => acquired,
                    Err(_) => Err(AcquireError::QueueTimeout(started.elapsed())),
                };
                keeper.state.metrics.pool_wait.observe(started.elapsed());
                match acquired {
                    Ok(lease) => Ok(Link::Transaction(TxLink {
                        pool,
                        lease,
                        waiter,
                        thread: shard,
                        session_state: auth.db.pooling.session_state,
                    })),
                    Err(AcquireError::Connect(failure)) => Err((failure, false)),
                    Err(AcquireError::QueueTimeout(waited)) => Err((
                        {
                            keeper.state.metrics.pool_queue_timeouts.inc();
                            UpstreamFailure::unavailable(format!(
                                "transaction pool: no server connection became free within {waited:?}"
                            ))
                        },
                        true,
                    )),
                }
            }
            None => match pool_key.as_deref().and_then(|k| self.pool.take(k, shard)) {
                Some(upstream) => Ok(Link::Session(upstream)),
                None => connect()
                    .await
                    .map(Link::Session)
                    .map_err(|failure| (failure, false)),
            },
        }
        .and_then(|link| {
            self.protocol
                .check_fit(&login, link.conn())
                .map(|()| link)
                .map_err(|failure| (failure, false))
        });
        let upstream = match upstream {
            Ok(upstream) => upstream,
            Err((failure, queue_timeout)) => {
                tracing::warn!(%peer, engine = P::ENGINE.as_str(), database = %auth.db.name, reason = %failure.reason, "upstream login failed");
                keeper.record_auth(
                    peer,
                    &login.user,
                    attempt,
                    AuthResult::Failure {
                        kind: failure.kind,
                        reason: failure.reason.clone(),
                    },
                );
                let denial = if queue_timeout {
                    Denial::Throttled(QUEUE_TIMEOUT)
                } else {
                    Denial::Upstream(&failure)
                };
                let _ = self.protocol.deny(&mut client, denial).await;
                return Ok(None);
            }
        };
        let mut upstream = upstream;
        self.protocol
            .welcome(&mut client, &login, upstream.conn_mut(), &auth)
            .await?;
        let allowed = Allowed {
            password_changes: keeper.allows(
                &auth,
                latchkey_sqlguard::CHANGE_PASSWORD_ACTION,
                login.secure,
            ),
            dynamic_sql: keeper.allows(&auth, latchkey_sqlguard::DYNAMIC_SQL_ACTION, login.secure),
        };
        let (gate, firewalled) = keeper.statement_gate(
            &auth,
            login.secure,
            &login.database,
            &login.user,
            P::catalog(upstream.conn()),
        );
        let info = keeper.session_started(
            peer,
            attempt,
            &auth,
            login.database.clone(),
            login.user.clone(),
        )?;
        Ok(Some(Box::new(Admitted {
            client,
            upstream,
            auth: Box::new(auth),
            info,
            login,
            pool_key,
            allowed,
            gate,
            firewalled,
            _slot: slot,
        })))
    }

    /// Relays a logged-in session to its end, records the end, and pools
    /// the upstream connection if it is clean.
    async fn run(&self, admitted: Box<Admitted<'_, P>>, shard: usize) {
        let Admitted {
            client,
            upstream,
            auth,
            info,
            login,
            pool_key,
            allowed,
            gate,
            firewalled,
            _slot,
        } = unbox(admitted);
        let mut watch = self.keeper.watch(&info, &auth, firewalled);
        let session = Session {
            client,
            upstream,
            auth: &auth,
            info: &info,
            login: &login,
            allowed,
            gate,
        };
        let relayed = self.protocol.relay(&self.keeper, session, &mut watch).await;
        self.keeper
            .session_ended(watch, info.clone(), &auth.caller, relayed.end);
        if let (true, Some(key), Some(mut upstream)) =
            (relayed.reusable, pool_key, relayed.upstream)
        {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                match P::reset(&mut upstream).await {
                    Ok(()) => pool.put(key, upstream, shard),
                    Err(e) => tracing::debug!(error = %e, "not pooling an upstream connection"),
                }
            });
        }
    }
}

impl<P: Protocol<Transport = TcpStream>> Gateway<P> {
    /// Accepts clients until `shutdown` resolves, on
    /// [`GatewayConfig::threads`] session threads (see
    /// [`crate::serve_on_threads`]).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let threads = self.keeper.config.threads;
        crate::serve_on_threads(
            listener,
            shutdown,
            threads,
            P::THREADS,
            move |tcp, peer, shard| {
                let gateway = self.clone();
                async move {
                    if let Err(e) = gateway.client(tcp, peer, shard).await {
                        tracing::debug!(%peer, engine = P::ENGINE.as_str(), error = %e, "client ended");
                    }
                }
            },
        )
        .await
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
