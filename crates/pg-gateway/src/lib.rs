//! The PostgreSQL gateway: a client connects with TLS and a database auth
//! token as its password; the gateway verifies the token, asks the policy
//! engine for `rds-db:connect`, connects upstream with credentials the
//! client never sees (or reuses a pooled connection), then relays
//! messages both ways, auditing every statement.
//!
//! Only the wire protocol is here ([`Postgres`], a
//! [`latchkey_gateway::Protocol`]): the login pipeline, limits, pooling,
//! session records and lifetime are `latchkey-gateway`'s, shared with the
//! MySQL gateway.
//!
//! A denied client learns only what RDS would say
//! (`FATAL 28P01 PAM authentication failed for user "..."`); the precise
//! reason goes to the audit log.

pub mod pool;
pub mod relay;
pub mod rotation;
pub mod txn;
pub mod upstream;

pub use latchkey_gateway::{GatewayConfig, limits};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use latchkey_gateway::statements::ServerCatalog;
use latchkey_gateway::{
    Authenticated, Denial, Gatekeeper, Link, Login, Opening, Protocol, Relayed, Session,
    UpstreamFailure,
};
use latchkey_pgwire::{self as wire, Severity, Startup};
use latchkey_store::Engine;
use latchkey_tls_server::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::relay::{End, PgRelay, Relay, RelayError};
use crate::upstream::{CancelTarget, Refused, Upstream};
use latchkey_pg_stream::{Guarded as _, ScanError, Tracker};

/// The PostgreSQL gateway.
pub type Gateway = latchkey_gateway::Gateway<Postgres>;

/// Largest message accepted before authentication (tokens are ~1 KiB;
/// PostgreSQL clients must be able to send at least 2 KiB).
pub const MAX_AUTH_MESSAGE: usize = 16 * 1024;

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Where a client's cancel key points: the backend its statements run
/// on now. In transaction pooling that changes with each transaction and
/// is none between them, so a cancel reaches the connection the client is
/// using at that moment and nothing else.
#[derive(Default)]
pub struct CancelSlot {
    target: Mutex<Option<Arc<CancelTarget>>>,
    /// Cancels read from the slot and not yet delivered.
    in_flight: std::sync::atomic::AtomicU32,
    delivered: tokio::sync::Notify,
}

impl CancelSlot {
    fn pointing_at(target: Arc<CancelTarget>) -> Self {
        Self {
            target: Mutex::new(Some(target)),
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<CancelTarget>>> {
        self.target.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client's statements now run on `target`.
    pub fn attach(&self, target: Arc<CancelTarget>) {
        *self.lock() = Some(target);
    }

    /// The client's connection is about to serve someone else: no cancel
    /// may be sent to it any more, and any already on their way must have
    /// been delivered.
    pub async fn detach(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.detach_at_once() {
            return;
        }
        while self.in_flight.load(SeqCst) > 0 {
            let delivered = self.delivered.notified();
            if self.in_flight.load(SeqCst) == 0 {
                break;
            }
            delivered.await;
        }
    }

    /// [`CancelSlot::detach`] when no cancel is on its way: true, and none
    /// may be sent to the connection any more. False when one is: the
    /// caller must wait for it with `detach`.
    pub fn detach_at_once(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        *self.lock() = None;
        self.in_flight.load(SeqCst) == 0
    }

    /// Sends a cancel to where the client's statements run now, if
    /// anywhere. Counted in flight before the target is read, so that a
    /// detach after the read waits for the delivery.
    async fn cancel(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.in_flight.fetch_add(1, SeqCst);
        let target = self.lock().clone();
        if let Some(target) = target {
            send_cancel(&target).await;
        }
        self.in_flight.fetch_sub(1, SeqCst);
        self.delivered.notify_waiters();
    }
}

/// The PostgreSQL wire protocol, version 3.
pub struct Postgres {
    tls: TlsAcceptor,
    /// Cancel keys handed to clients, and where their statements run.
    cancels: Mutex<HashMap<(u32, u32), Arc<CancelSlot>>>,
    /// Transaction pooling: statement ids shared by every client.
    book: Arc<latchkey_pg_stream::prepared::StatementBook>,
}

/// What the startup message said.
pub struct PgStartup {
    /// Startup parameters to pass upstream (all but `user` and `database`).
    forwarded: Vec<(String, String)>,
}

/// A session's relay, set up (see `Postgres::start_relay`).
enum StartedRelay<'k, 's> {
    Transactions(Box<txn::TxRelay<'k, 's>>),
    Session(Box<Relay<Box<dyn Stream>>>),
}

/// A client past its startup, with the cancel key it was given.
pub struct PgClient {
    stream: Box<dyn Stream>,
    cancel_key: Option<((u32, u32), Arc<CancelSlot>)>,
}

fn error_message(severity: Severity, code: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    wire::error_response(&mut out, severity, code, text);
    out
}

impl Postgres {
    pub fn new(tls: Arc<rustls::ServerConfig>) -> Self {
        // libpq 17 asks for ALPN "postgresql" (required for direct TLS).
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"postgresql".to_vec()];
        Self {
            tls: TlsAcceptor::new(tls),
            cancels: Mutex::new(HashMap::new()),
            book: Arc::default(),
        }
    }

    /// A fresh cancel key for the client, pointing at `upstream`'s backend.
    fn issue_cancel_key(&self, upstream: &Upstream) -> Result<((u32, u32), Arc<CancelSlot>)> {
        let ours: [u8; 8] = latchkey_store::random()?;
        let key = (
            u32::from_be_bytes([ours[0], ours[1], ours[2], ours[3]]),
            u32::from_be_bytes([ours[4], ours[5], ours[6], ours[7]]),
        );
        let slot = Arc::new(CancelSlot::pointing_at(upstream.cancel.clone()));
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, slot.clone());
        Ok((key, slot))
    }

    /// A session's relay, set up: its tracker, and the transaction relay
    /// or the session's own, boxed (held across several awaits, inline it
    /// would be reserved in every session's task, whichever relay it runs).
    #[allow(clippy::type_complexity)]
    fn start_relay<'k, 's>(
        &self,
        keeper: &'k Gatekeeper,
        session: Session<'s, Self>,
        watch: &latchkey_gateway::Watch,
    ) -> (StartedRelay<'k, 's>, Option<((u32, u32), Arc<CancelSlot>)>) {
        let Session {
            client,
            upstream,
            info,
            allowed,
            gate,
            auth,
            login,
        } = session;
        let config = &keeper.config;
        let audit = keeper.statement_audit(info);
        let PgClient { stream, cancel_key } = client;
        // The session may start with `standard_conforming_strings` off
        // (`options=-c standard_conforming_strings=off`, a role or database
        // setting), or in another encoding: the server then reads
        // backslashes and names otherwise, from the first statement on.
        let params = &upstream.conn().params;
        let tracker = Tracker::new(audit)
            .allow_password_changes(allowed.password_changes)
            .allow_dynamic_sql(allowed.dynamic_sql)
            .with_gate(gate)
            .server_params(params.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let upstream = match upstream {
            Link::Session(upstream) => upstream,
            Link::Transaction(link) => {
                let tracker = tracker.with_pooling(latchkey_pg_stream::Pooling::new(
                    txn::CARRIED,
                    link.session_state == latchkey_store::SessionState::Refuse,
                    self.book.clone(),
                ));
                let relay = Box::new(txn::TxRelay::new(
                    stream,
                    link,
                    tracker,
                    config.max_message_size,
                    watch.counters(),
                    cancel_key
                        .as_ref()
                        .map_or_else(Default::default, |(_, s)| s.clone()),
                    keeper,
                    auth,
                    login,
                ));
                return (StartedRelay::Transactions(relay), cancel_key);
            }
        };
        let relay = Box::new(Relay::new(
            stream,
            upstream,
            tracker,
            config.max_message_size,
            config.large_messages.share_of(auth.caller.principal_id()),
            watch.counters(),
        ));
        (StartedRelay::Session(relay), cancel_key)
    }

    /// Relays a session on its own upstream connection to its end.
    async fn relay_session(
        &self,
        keeper: &Gatekeeper,
        mut relay: Box<Relay<Box<dyn Stream>>>,
        cancel_key: Option<((u32, u32), Arc<CancelSlot>)>,
        watch: &mut latchkey_gateway::Watch,
    ) -> Relayed<Upstream> {
        let config = &keeper.config;
        // Set when the watch ended the session.
        let mut interrupted = None;
        let guarded = watch.guard(std::pin::pin!(relay.run())).await;
        let outcome = match guarded {
            Ok(Ok(end)) => Ok(end),
            Ok(Err(e)) => Err((
                e.to_string(),
                relay_error_reply(&e, config.max_message_size),
            )),
            Err(interrupt) => {
                interrupted = Some(interrupt);
                Err((
                    interrupt.reason().to_owned(),
                    Some(error_message(Severity::Fatal, "57P01", interrupt.message())),
                ))
            }
        };
        self.forget_cancel_key(cancel_key);
        let reason = end_reason(&outcome);
        if let Err((_, Some(reply))) = &outcome {
            // Only between whole messages, or the client would misread it.
            if relay.client_at_boundary() {
                let _ = relay.client.write_all(reply).await;
                let _ = relay.client.flush().await;
            }
            if relay.tracker.busy() {
                send_cancel(&relay.upstream.cancel).await;
            }
        }
        let reusable =
            matches!(outcome, Ok(End::ClientTerminated | End::ClientClosed)) && relay.reusable();
        // The settings the session changed are what a reset connection
        // reports until `DISCARD ALL` tells otherwise.
        for (name, value) in &relay.tracker.parameter_changes {
            relay.upstream.set_param(name, value);
        }
        let statements = relay.tracker.statement_count;
        let (mut client, relayed) = relay.finish(reason, interrupted, statements, reusable);
        let _ = client.shutdown().await;
        relayed
    }

    fn forget_cancel_key(&self, key: Option<((u32, u32), Arc<CancelSlot>)>) {
        if let Some((key, _)) = key {
            self.cancels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
    }

    /// Relays a transaction-pooled session to its end (see [`txn`]).
    async fn relay_transactions(
        &self,
        keeper: &Gatekeeper,
        relay: &mut txn::TxRelay<'_, '_>,
        watch: &mut latchkey_gateway::Watch,
    ) -> Relayed<Upstream> {
        let max = keeper.config.max_message_size;
        let mut interrupted = None;
        let guarded = watch.guard(std::pin::pin!(relay.run())).await;
        let outcome = match guarded {
            Ok(Ok(end)) => Ok(end),
            Ok(Err(e)) => {
                let reply = match &e {
                    txn::TxError::Relay(e) => relay_error_reply(e, max),
                    txn::TxError::QueueTimeout(_) => Some(error_message(
                        Severity::Fatal,
                        "53300",
                        latchkey_gateway::pipeline::QUEUE_TIMEOUT,
                    )),
                    txn::TxError::IdleInTransaction(_) => Some(error_message(
                        Severity::Fatal,
                        "25P03",
                        "terminating connection due to idle-in-transaction timeout",
                    )),
                    txn::TxError::Server(_) => Some(error_message(
                        Severity::Fatal,
                        "08006",
                        "could not connect to the database server",
                    )),
                };
                Err((e.to_string(), reply))
            }
            Err(interrupt) => {
                interrupted = Some(interrupt);
                Err((
                    interrupt.reason().to_owned(),
                    Some(error_message(Severity::Fatal, "57P01", interrupt.message())),
                ))
            }
        };
        let mut reason = end_reason(&outcome);
        let reply = match &outcome {
            Err((_, reply)) => reply.clone(),
            // A server that went away in the middle of a transaction: the
            // client is told, as it would be by the server itself.
            Ok(End::UpstreamClosed) => Some(error_message(
                Severity::Fatal,
                "08006",
                "server closed the connection unexpectedly",
            )),
            Ok(_) => None,
        };
        if let Some(reply) = reply
            && relay.client_at_boundary()
        {
            let _ = relay.client.write_all(&reply).await;
            let _ = relay.client.flush().await;
        }
        if let Some(cause) = relay.tracker.pooling().and_then(|p| p.pinned) {
            keeper.state.metrics.pinned(cause.as_str());
            reason.push_str(&format!(" (pinned: {})", cause.as_str()));
        }
        let clean = matches!(outcome, Ok(End::ClientTerminated | End::ClientClosed));
        if clean && relay.server.is_some() {
            // Boxed, as the cancel below: once per session, and inline
            // they would size every idle session's task.
            if let Err(e) = Box::pin(relay.give_back_at_end()).await {
                tracing::debug!(error = %e, "a lent connection was not given back");
            }
        } else if relay.server.is_some() {
            if relay.tracker.busy() {
                // Its statement must not run on for nobody.
                Box::pin(relay.cancel.cancel()).await;
            }
            // Closed, not given back: its state is not known.
            relay.server = None;
        }
        let (bytes_from_client, bytes_to_client) = relay.bytes();
        let _ = relay.client.shutdown().await;
        Relayed {
            upstream: None,
            end: latchkey_gateway::SessionEnd {
                reason,
                lifetime_reached: interrupted == Some(latchkey_gateway::Interrupt::LifetimeReached),
                bytes_from_client,
                bytes_to_client,
                statements: relay.tracker.statement_count,
            },
            reusable: false,
        }
    }

    /// Forwards a cancel for a key this gateway issued; anything else is
    /// ignored, as PostgreSQL does.
    async fn cancel(&self, pid: u32, key: u32) {
        let slot = self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(pid, key))
            .cloned();
        match slot {
            Some(slot) => slot.cancel().await,
            None => tracing::info!("ignored a cancel request with an unknown key"),
        }
    }
}

impl Protocol for Postgres {
    const ENGINE: Engine = Engine::Postgres;
    const THREADS: &'static str = "pg-sessions";
    type Transport = TcpStream;
    type Client = PgClient;
    type Startup = PgStartup;
    type Upstream = Upstream;
    type ServerRefusal = Refused;
    const TRANSACTION_POOLING: bool = true;

    async fn refuse_early(&self, mut tcp: TcpStream) {
        // Answer a plaintext SSLRequest or startup as PostgreSQL does
        // when it cannot take a connection, in its words: whether the
        // address is blocked or throttled goes to the audit, not to it.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let mut first = [0u8; 1];
            tcp.peek(&mut first).await?;
            if first[0] != 0x16 {
                read_startup(&mut tcp).await?;
                tcp.write_all(&error_message(
                    Severity::Fatal,
                    "53300",
                    "sorry, too many clients already",
                ))
                .await?;
            }
            anyhow::Ok(())
        })
        .await;
    }

    async fn open(
        &self,
        keeper: &Gatekeeper,
        mut tcp: TcpStream,
        peer: SocketAddr,
    ) -> Result<Opening<Self>> {
        let mut first = [0u8; 1];
        tcp.peek(&mut first).await?;
        let mut stream: Box<dyn Stream>;
        let mut sni = None;
        // For `aws:SecureTransport`: false only for a plaintext client
        // let in by `allow_plaintext`.
        let mut secure = true;
        let startup = if first[0] == 0x16 {
            // PostgreSQL 17 direct TLS: the client starts with a ClientHello.
            let (tls, name) = self.tls.accept(tcp).await?;
            sni = name;
            stream = Box::new(tls);
            read_startup(&mut stream).await?
        } else {
            loop {
                match read_startup(&mut tcp).await? {
                    Startup::Ssl => {
                        tcp.write_all(b"S").await?;
                        let (tls, name) = self.tls.accept(tcp).await?;
                        sni = name;
                        stream = Box::new(tls);
                        break read_startup(&mut stream).await?;
                    }
                    Startup::GssEnc => tcp.write_all(b"N").await?,
                    Startup::Cancel { pid, key } => {
                        self.cancel(pid, key).await;
                        return Ok(Opening::Done);
                    }
                    s @ Startup::Startup { .. } => {
                        if !keeper.config.allow_plaintext {
                            tcp.write_all(&error_message(
                                Severity::Fatal,
                                "28000",
                                "SSL connection is required: connect with sslmode=require or stronger",
                            ))
                            .await?;
                            return Ok(Opening::Plaintext {
                                user: s.param("user").unwrap_or_default().to_owned(),
                            });
                        }
                        tracing::debug!(%peer, "plaintext postgres client let in");
                        secure = false;
                        stream = Box::new(tcp);
                        break s;
                    }
                }
            }
        };
        let params = match startup {
            Startup::Cancel { pid, key } => {
                self.cancel(pid, key).await;
                // As PostgreSQL does: libpq 17's cancel calls count an end
                // without close_notify as a failed cancel.
                let _ = stream.shutdown().await;
                return Ok(Opening::Done);
            }
            Startup::Startup { params } => params,
            _ => bail!("a second SSL or GSS request"),
        };
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let user = param("user").cloned().unwrap_or_default();
        let database = param("database").unwrap_or(&user).clone();
        let user_agent = param("application_name").cloned();
        stream
            .write_all(&{
                let mut out = Vec::new();
                wire::auth_cleartext(&mut out);
                out
            })
            .await?;
        let (tag, body) = read_message(&mut stream, MAX_AUTH_MESSAGE).await?;
        // It carries the token: wiped when dropped.
        let body = zeroize::Zeroizing::new(body);
        if tag != b'p' {
            bail!("expected a password message");
        }
        let password = wire::parse_password(&body)
            .map(|p| zeroize::Zeroizing::new(p.to_vec()))
            .map_err(|e| e.to_string());
        let forwarded = params
            .into_iter()
            .filter(|(k, _)| k != "user" && k != "database")
            .collect();
        Ok(Opening::Login {
            client: PgClient {
                stream,
                cancel_key: None,
            },
            login: Login {
                user,
                database,
                password,
                sni,
                secure,
                user_agent,
                startup: PgStartup { forwarded },
            },
        })
    }

    async fn deny(
        &self,
        client: &mut PgClient,
        denial: Denial<'_, Refused>,
    ) -> std::io::Result<()> {
        let reply = match denial {
            Denial::Unavailable => error_message(
                Severity::Fatal,
                "57P03",
                "the database system is not accepting connections",
            ),
            Denial::LoginRefused { user, .. } => error_message(
                Severity::Fatal,
                "28P01",
                &format!("PAM authentication failed for user \"{user}\""),
            ),
            Denial::Throttled(limit) => error_message(Severity::Fatal, "53300", limit),
            Denial::Upstream(failure) => match &failure.server {
                Some(r) if r.for_client() => error_message(Severity::Fatal, &r.code, &r.message),
                _ => error_message(
                    Severity::Fatal,
                    "08006",
                    "could not connect to the database server",
                ),
            },
        };
        client.stream.write_all(&reply).await
    }

    /// With statement policy on, a role or session authorization set at
    /// login (`options=-c role=…`) is `SET ROLE` before the first
    /// statement: it needs `sql:Admin`, and without it is not passed on.
    fn authorized(&self, keeper: &Gatekeeper, auth: &Authenticated, login: &mut Login<PgStartup>) {
        if auth.db.statement_policy == latchkey_store::StatementPolicy::Off
            || !sets_role(&login.startup.forwarded)
            || keeper.allows_sql_admin(auth, &login.database, login.secure)
        {
            return;
        }
        strip_role_settings(&mut login.startup.forwarded);
        tracing::info!(
            user = %login.user,
            "a role set at login was not passed on: statement policy does not allow sql:Admin"
        );
    }

    fn pool_key(
        &self,
        keeper: &Gatekeeper,
        auth: &Authenticated,
        login: &Login<PgStartup>,
    ) -> Option<String> {
        let forwarded = &upstream_startup(auth, login);
        // Replication connections are never pooled.
        (!forwarded.iter().any(|(k, _)| k == "replication")).then(|| {
            pool::key(
                &auth.db,
                &login.user,
                &login.database,
                forwarded,
                keeper.state.upstream_credentials_epoch(),
            )
        })
    }

    async fn connect(
        &self,
        keeper: &Gatekeeper,
        auth: &Authenticated,
        login: &Login<PgStartup>,
    ) -> Result<Upstream, UpstreamFailure<Refused>> {
        connect_upstream(keeper, auth, login).await.map_err(|e| {
            let refused = e.downcast_ref::<Refused>().cloned();
            let of_credential = refused
                .as_ref()
                .is_some_and(|r| matches!(r.code.as_str(), "28P01" | "28000"));
            UpstreamFailure::login(&e, refused, of_credential)
        })
    }

    async fn welcome(
        &self,
        client: &mut PgClient,
        login: &Login<PgStartup>,
        upstream: &mut Upstream,
        auth: &Authenticated,
    ) -> Result<()> {
        if transaction_pooled(auth, login) {
            // The connection was opened without the client's carried
            // settings (they are not part of the pool key): it gets them
            // now, and reports them as the server words them.
            txn::replay(upstream, &txn::startup_carried(&login.startup.forwarded)).await?;
        }
        let (cancel_key, slot) = self.issue_cancel_key(upstream)?;
        client.cancel_key = Some((cancel_key, slot));
        let mut out = Vec::with_capacity(512);
        wire::auth_ok(&mut out);
        for (name, value) in &upstream.params {
            wire::parameter_status(&mut out, name, value);
        }
        wire::backend_key_data(&mut out, cancel_key.0, cancel_key.1);
        wire::ready_for_query(&mut out, b'I');
        let written = async {
            client.stream.write_all(&out).await?;
            client.stream.flush().await
        }
        .await;
        if let Err(e) = written {
            self.forget_cancel_key(client.cancel_key.take());
            return Err(e.into());
        }
        Ok(())
    }

    fn relay<'g, 'k, 's, 'w>(
        &'g self,
        keeper: &'k Gatekeeper,
        session: Session<'s, Self>,
        watch: &'w mut latchkey_gateway::Watch,
    ) -> impl Future<Output = Relayed<Upstream>> + Send + use<'g, 'k, 's, 'w> {
        // Set up before the future: moved into it, the session would be
        // held twice for the session's life (as the argument and as the
        // locals it is taken apart into).
        let (started, cancel_key) = self.start_relay(keeper, session, watch);
        async move {
            match started {
                StartedRelay::Transactions(mut relay) => {
                    // Lent, not moved: a future that took it by value
                    // would hold a second copy for the session's life.
                    let relayed = self.relay_transactions(keeper, &mut relay, watch).await;
                    self.forget_cancel_key(cancel_key);
                    relayed
                }
                StartedRelay::Session(relay) => {
                    self.relay_session(keeper, relay, cancel_key, watch).await
                }
            }
        }
    }

    async fn reset(upstream: &mut Upstream) -> Result<()> {
        pool::reset(upstream).await
    }

    fn catalog(upstream: &Upstream) -> Option<Arc<ServerCatalog>> {
        upstream.catalog.clone()
    }
}

/// A fresh upstream login for `login`'s client (with the startup
/// parameters its pool mode sends).
pub(crate) async fn connect_upstream(
    keeper: &Gatekeeper,
    auth: &Authenticated,
    login: &Login<PgStartup>,
) -> Result<Upstream> {
    upstream::connect(
        &keeper.state,
        &auth.db,
        &login.user,
        &login.database,
        &upstream_startup(auth, login),
    )
    .await
}

/// Whether the client's connections are lent per transaction.
pub(crate) fn transaction_pooled(auth: &Authenticated, login: &Login<PgStartup>) -> bool {
    auth.db.pooling.mode_for(&login.user) == latchkey_store::PoolMode::Transaction
}

/// The startup parameters the gateway's upstream login sends: the
/// client's, less (in transaction pooling) the carried settings, which
/// are the client's own and given to each connection it is lent.
pub(crate) fn upstream_startup<'a>(
    auth: &Authenticated,
    login: &'a Login<PgStartup>,
) -> std::borrow::Cow<'a, [(String, String)]> {
    if transaction_pooled(auth, login) {
        txn::without_carried(&login.startup.forwarded).into()
    } else {
        (&login.startup.forwarded[..]).into()
    }
}

/// What the client is told when the gateway ends its session over a
/// relay error (only between whole messages).
fn relay_error_reply(e: &RelayError, max_message_size: usize) -> Option<Vec<u8>> {
    match e {
        RelayError::Scan(ScanError::TooLarge(n)) => Some(error_message(
            Severity::Fatal,
            "08P01",
            &format!(
                "message of {n} bytes exceeds the gateway's limit of {max_message_size} bytes"
            ),
        )),
        RelayError::Scan(ScanError::Malformed) => Some(error_message(
            Severity::Fatal,
            "08P01",
            "invalid message length",
        )),
        e if e.is_overdue() => Some(error_message(
            Severity::Fatal,
            "08P01",
            &latchkey_gateway::relay::Overdue.to_string(),
        )),
        _ => None,
    }
}

/// The session's end as its audit record says it.
fn end_reason(outcome: &Result<End, (String, Option<Vec<u8>>)>) -> String {
    match outcome {
        Ok(End::ClientTerminated) => "client terminated".to_owned(),
        Ok(End::ClientClosed) => "client closed the connection".to_owned(),
        Ok(End::UpstreamClosed) => "server closed the connection".to_owned(),
        Err((why, _)) => why.clone(),
    }
}

async fn send_cancel(t: &CancelTarget) {
    let mut out = Vec::new();
    wire::cancel_request(&mut out, t.pid, t.key);
    // Boxed: a connect (TLS and all) is rare, and inline it would size
    // every session's task, idle or not.
    let connecting = Box::pin(tokio::time::timeout(
        Duration::from_secs(5),
        t.upstream.connect(),
    ));
    if let Ok(Ok(mut up)) = connecting.await
        && up.write_all(&out).await.is_ok()
        && up.flush().await.is_ok()
    {
        // The server closes the connection once it has signalled the
        // backend; until then the cancel may still land, on whatever the
        // backend runs next (another client's statement). A signal that
        // reaches an idle backend is dropped.
        let mut sink = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(n) = up.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

async fn read_startup<S: AsyncRead + Unpin + ?Sized>(s: &mut S) -> Result<Startup> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let len = wire::startup_length(len).map_err(|e| anyhow!("{e}"))?;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).await?;
    wire::parse_startup(&body).map_err(|e| anyhow!("{e}"))
}

pub(crate) async fn read_message<S: AsyncRead + Unpin + ?Sized>(
    s: &mut S,
    max: usize,
) -> Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).await?;
    let (tag, len) = wire::message_header(header, max).map_err(|e| anyhow!("{e}"))?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// Settings that change whose privileges a session runs with.
fn is_role_setting(name: &str) -> bool {
    let name = name.replace('-', "_").to_ascii_lowercase();
    name == "role" || name == "session_authorization"
}

/// The words of a startup `options` value, as the server splits them
/// (whitespace, with `\\` escaping the next character).
fn option_words(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The setting a word (`-c name=value` split in two, `-cname=value`,
/// `--name=value`) assigns, if any.
fn option_setting(word: &str) -> Option<&str> {
    let assignment = word
        .strip_prefix("--")
        .or_else(|| word.strip_prefix("-c"))?;
    assignment.split('=').next()
}

/// Whether startup parameters set a role or session authorization,
/// directly or through `options`.
pub(crate) fn sets_role(forwarded: &[(String, String)]) -> bool {
    forwarded.iter().any(|(name, value)| {
        is_role_setting(name)
            || (name == "options" && {
                let words = option_words(value);
                words.iter().enumerate().any(|(i, w)| {
                    let setting = if w == "-c" {
                        words
                            .get(i + 1)
                            .map(|next| next.split('=').next().unwrap_or(""))
                    } else {
                        option_setting(w)
                    };
                    setting.is_some_and(is_role_setting)
                })
            })
    })
}

/// Drops role and session-authorization settings from the startup
/// parameters (other options stay, re-escaped).
pub(crate) fn strip_role_settings(forwarded: &mut Vec<(String, String)>) {
    forwarded.retain(|(name, _)| !is_role_setting(name));
    for (name, value) in forwarded.iter_mut() {
        if name != "options" {
            continue;
        }
        let words = option_words(value);
        let mut kept = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let w = &words[i];
            if w == "-c" {
                let next = words.get(i + 1).map(String::as_str).unwrap_or("");
                if !is_role_setting(next.split('=').next().unwrap_or("")) {
                    kept.push(w.clone());
                    kept.extend(words.get(i + 1).cloned());
                }
                i += 2;
                continue;
            }
            if !option_setting(w).is_some_and(is_role_setting) {
                kept.push(w.clone());
            }
            i += 1;
        }
        *value = kept
            .iter()
            .map(|w| w.replace('\\', "\\\\").replace(' ', "\\ "))
            .collect::<Vec<_>>()
            .join(" ");
    }
}

#[cfg(test)]
mod role_setting_tests {
    use super::*;

    fn params(options: &str) -> Vec<(String, String)> {
        vec![
            ("application_name".into(), "app".into()),
            ("options".into(), options.into()),
        ]
    }

    #[test]
    fn roles_set_at_login_are_found_and_dropped_with_the_rest_kept() {
        for options in [
            "-c role=admin",
            "-crole=admin",
            "--role=admin",
            "-c statement_timeout=5s -c session_authorization=postgres",
            "--session-authorization=postgres",
            "-c ROLE=admin",
        ] {
            let mut p = params(options);
            assert!(sets_role(&p), "{options}");
            strip_role_settings(&mut p);
            assert!(!sets_role(&p), "{options} -> {p:?}");
        }
        let mut p = params("-c statement_timeout=5s -c role=admin -c search_path=a\\ b");
        strip_role_settings(&mut p);
        assert_eq!(p[1].1, "-c statement_timeout=5s -c search_path=a\\ b");
        assert!(!sets_role(&params(
            "-c statement_timeout=5s --search_path=public"
        )));
        let mut direct = vec![("role".to_owned(), "admin".to_owned())];
        assert!(sets_role(&direct));
        strip_role_settings(&mut direct);
        assert!(direct.is_empty());
    }
}
