//! The PostgreSQL gateway: a client connects with TLS and a database auth
//! token as its password; the gateway verifies the token, asks the policy
//! engine for `rds-db:connect`, connects upstream with credentials the
//! client never sees (or reuses a pooled connection), then relays
//! messages both ways, auditing every statement.
//!
//! A denied client learns only what RDS would say
//! (`FATAL 28P01 PAM authentication failed for user "..."`); the precise
//! reason goes to the audit log.

pub mod limits;
pub mod pool;
pub mod relay;
pub mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, anyhow, bail};
use latchkey_audit::{
    AuditSink, AuthEvent, AuthResult, CredentialChange, CredentialEvent, Event, FailureKind,
    SessionEndEvent, SessionInfo,
};
use latchkey_dbtoken::{DbAuthToken, TokenAction, TokenVerifier};
use latchkey_pgwire::{self as wire, Severity, Startup};
use latchkey_server::state::{AppState, Caller, now};
use latchkey_sigv4::AmzDate;
use latchkey_store::{Database, random};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

use crate::limits::{Buckets, ConcurrencyLimits, Counts, RateLimit, Slot, acquire};
use crate::pool::{Pool, PoolConfig};
use crate::relay::{End, Relay, RelayError};
use crate::upstream::Upstream;
use latchkey_pg_stream::{Audit, Tracker};

/// Largest message accepted before authentication (tokens are ~1 KiB;
/// PostgreSQL clients must be able to send at least 2 KiB).
pub const MAX_AUTH_MESSAGE: usize = 16 * 1024;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Where a client's cancel key really points.
#[derive(Clone)]
struct CancelTarget {
    upstream: upstream::ServerAddr,
    pid: u32,
    key: u32,
}

impl CancelTarget {
    /// The backend `upstream` is logged in to.
    fn of(upstream: &Upstream) -> Self {
        Self {
            upstream: upstream.addr.clone(),
            pid: upstream.pid,
            key: upstream.key,
        }
    }
}

/// Gateway settings.
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
    /// [`Gateway::maintain`]).
    pub end_sessions_on_revocation: bool,
    /// End sessions when the temporary credentials they logged in with
    /// expire.
    pub end_sessions_at_credential_expiry: bool,
    /// End sessions this long after login.
    pub max_session_duration: Option<Duration>,
    /// Threads serving sessions, each with its own single-threaded
    /// runtime and connection pool.
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

/// A session the revocation sweep watches.
struct LiveSession {
    info: Arc<SessionInfo>,
    access_key_id: String,
    session_token: Option<Zeroizing<String>>,
    source_ip: String,
    end: Option<tokio::sync::oneshot::Sender<&'static str>>,
}

pub struct Gateway {
    state: Arc<AppState>,
    tls: TlsAcceptor,
    verifier: TokenVerifier,
    config: GatewayConfig,
    databases: RwLock<Vec<Database>>,
    cancels: Mutex<HashMap<(u32, u32), CancelTarget>>,
    counts: Mutex<Counts>,
    ip_rate: Buckets<IpAddr>,
    principal_rate: Buckets<String>,
    pool: Arc<Pool>,
    audit: Arc<dyn AuditSink>,
    live: Mutex<HashMap<u64, LiveSession>>,
    next_session: AtomicU64,
}

/// A login attempt, filled in as it goes, for the audit log.
#[derive(Default, Clone)]
struct Attempt {
    endpoint: Option<String>,
    access_key_id: Option<String>,
    identity: Option<latchkey_audit::Identity>,
    database: Option<String>,
    resource_arn: Option<String>,
    /// The client's `application_name`.
    user_agent: Option<String>,
}

/// A client that passed authentication.
struct Authenticated {
    db: Database,
    caller: Caller,
    session_token: Option<Zeroizing<String>>,
}

/// A logged-in client, ready to relay.
struct Session<'a> {
    client: Box<dyn Stream>,
    upstream: Upstream,
    auth: Authenticated,
    info: Arc<SessionInfo>,
    pool_key: Option<String>,
    cancel_key: (u32, u32),
    _slot: Slot<'a>,
}

fn error_message(severity: Severity, code: &str, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    wire::error_response(&mut out, severity, code, text);
    out
}

impl Gateway {
    pub fn new(
        state: Arc<AppState>,
        tls: Arc<rustls::ServerConfig>,
        config: GatewayConfig,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Self> {
        // libpq 17 asks for ALPN "postgresql" (required for direct TLS).
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"postgresql".to_vec()];
        let gateway = Self {
            state,
            tls: TlsAcceptor::from(Arc::new(tls)),
            verifier: TokenVerifier::new(),
            ip_rate: Buckets::new(config.new_connections_per_ip),
            principal_rate: Buckets::new(config.new_connections_per_principal),
            pool: Arc::new(Pool::new(config.pool)),
            config,
            databases: RwLock::new(Vec::new()),
            cancels: Mutex::new(HashMap::new()),
            counts: Mutex::new(Counts::default()),
            audit,
            live: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
        };
        gateway.reload_databases()?;
        Ok(gateway)
    }

    /// Re-reads the registered databases (called on a timer by `serve`).
    pub fn reload_databases(&self) -> Result<()> {
        let dbs: Vec<Database> = self
            .state
            .store
            .list_databases()?
            .into_iter()
            .filter(|d| d.engine == "postgres")
            .collect();
        *self.databases.write().unwrap_or_else(|p| p.into_inner()) = dbs;
        Ok(())
    }

    /// Periodic upkeep (blocking; run it off the async threads): ends
    /// sessions whose credential was revoked or disabled, closes stale
    /// pooled connections and forgets refilled rate buckets.
    pub fn maintain(&self) {
        self.pool.sweep();
        let now_instant = Instant::now();
        self.ip_rate.sweep(now_instant);
        self.principal_rate.sweep(now_instant);
        if !self.config.end_sessions_on_revocation {
            return;
        }
        let t = now();
        type Watched = (
            u64,
            String,
            Option<Zeroizing<String>>,
            String,
            Arc<SessionInfo>,
        );
        let snapshot: Vec<Watched> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, s)| {
                (
                    *id,
                    s.access_key_id.clone(),
                    s.session_token.clone(),
                    s.source_ip.clone(),
                    s.info.clone(),
                )
            })
            .collect();
        // Sessions ended, by credential, for one audit record each.
        let mut ended: HashMap<String, (latchkey_audit::Identity, u64)> = HashMap::new();
        for (id, akid, token, ip, info) in snapshot {
            match self
                .state
                .credentials(&akid, token.as_ref().map(|t| t.as_str()), t, &ip)
            {
                Ok(_) => {}
                // Expiry is the session deadline's business.
                Err(e) if e.code == "ExpiredToken" => {}
                Err(e) => {
                    tracing::info!(
                        session = id,
                        access_key_id = %akid,
                        reason = %e.reason.unwrap_or_default(),
                        "ending a session: its credential is no longer valid"
                    );
                    let end = self
                        .live
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&id)
                        .and_then(|s| s.end.take());
                    if let Some(end) = end {
                        let _ = end.send("terminating connection: the credential this session logged in with was revoked");
                        ended
                            .entry(akid)
                            .or_insert_with(|| (info.identity.clone(), 0))
                            .1 += 1;
                    }
                }
            }
        }
        for (_, (identity, sessions_ended)) in ended {
            self.audit.record(Event::Credential(CredentialEvent {
                time: SystemTime::now(),
                change: CredentialChange::Revoked,
                identity,
                sessions_ended,
            }));
        }
    }

    /// Idle pooled upstream connections.
    pub fn pooled_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Accepts clients until `shutdown` resolves, handing each to one of
    /// [`GatewayConfig::threads`] session threads in turn. Each thread
    /// runs a single-threaded runtime: a session's sockets and its task
    /// never leave that thread, so relaying takes no cross-thread
    /// wake-ups (on a busy 2-core machine the work-stealing runtime's
    /// futex and eventfd calls were ~8% of the gateway's time). A pooled
    /// upstream connection taken on another thread moves there.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let threads = self.config.threads.max(1);
        let mut shards = Vec::with_capacity(threads);
        for shard in 0..threads {
            let (tx, mut rx) =
                tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
            shards.push(tx);
            let gw = self.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("pg-sessions-{shard}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some((std_tcp, peer)) = rx.recv().await {
                            let tcp = match TcpStream::from_std(std_tcp) {
                                Ok(tcp) => tcp,
                                Err(e) => {
                                    tracing::warn!(%peer, error = %e, "taking a connection failed");
                                    continue;
                                }
                            };
                            let gw = gw.clone();
                            tokio::spawn(async move {
                                if let Err(e) = gw.client(tcp, peer, shard).await {
                                    tracing::debug!(%peer, error = %e, "postgres client ended");
                                }
                            });
                        }
                    });
                })?;
        }
        let mut next = 0usize;
        latchkey_server::http::accept_until(listener, shutdown, |tcp, peer| match tcp.into_std() {
            Ok(std_tcp) => {
                let _ = shards[next % shards.len()].send((std_tcp, peer));
                next = next.wrapping_add(1);
            }
            Err(e) => tracing::warn!(%peer, error = %e, "handing a connection over failed"),
        })
        .await;
        Ok(())
    }

    fn record_auth(&self, peer: SocketAddr, user: &str, attempt: Attempt, result: AuthResult) {
        self.state.metrics.auth("postgres", &result);
        self.audit.record(Event::Auth(AuthEvent {
            engine: "postgres",
            time: SystemTime::now(),
            source_ip: peer.ip(),
            user_agent: attempt.user_agent,
            db_user: user.to_owned(),
            endpoint: attempt.endpoint,
            database: attempt.database,
            resource_arn: attempt.resource_arn,
            identity: attempt.identity,
            access_key_id: attempt.access_key_id,
            result,
        }));
    }

    async fn client(&self, mut tcp: TcpStream, peer: SocketAddr, shard: usize) -> Result<()> {
        self.state.metrics.connection("postgres");
        let refused = if self.state.is_blocked(peer.ip(), now()) {
            Some((
                FailureKind::Blocked,
                "the source address is blocked by a detection response",
            ))
        } else if !self.ip_rate.allow(&peer.ip(), Instant::now()) {
            Some((
                FailureKind::Throttled,
                "new connection rate limit for the source address",
            ))
        } else {
            None
        };
        if let Some((kind, reason)) = refused {
            tracing::info!(%peer, reason, "postgres connection refused");
            self.record_auth(
                peer,
                "",
                Attempt::default(),
                AuthResult::Failure {
                    kind,
                    reason: reason.into(),
                },
            );
            // Answer a plaintext SSLRequest or startup as PostgreSQL does
            // when it cannot take a connection.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let mut first = [0u8; 1];
                tcp.peek(&mut first).await?;
                if first[0] != 0x16 {
                    read_startup(&mut tcp).await?;
                    tcp.write_all(&error_message(
                        Severity::Fatal,
                        "53300",
                        "too many connection attempts from this address",
                    ))
                    .await?;
                }
                anyhow::Ok(())
            })
            .await;
            return Ok(());
        }
        let session = tokio::time::timeout(
            self.config.startup_timeout,
            self.handshake(tcp, peer, shard),
        )
        .await
        .map_err(|_| anyhow!("startup timed out"))??;
        match session {
            Some(session) => self.run(session, shard).await,
            None => Ok(()),
        }
    }

    /// TLS, startup, token, policy and upstream login. `None` when the
    /// connection ended normally before relaying (cancel, denial).
    async fn handshake(
        &self,
        mut tcp: TcpStream,
        peer: SocketAddr,
        shard: usize,
    ) -> Result<Option<Session<'_>>> {
        let mut first = [0u8; 1];
        tcp.peek(&mut first).await?;
        let mut stream: Box<dyn Stream>;
        let mut sni = None;
        // For `aws:SecureTransport`: false only for a plaintext client
        // let in by `--pg-allow-plaintext`.
        let mut secure = true;
        let startup = if first[0] == 0x16 {
            // PostgreSQL 17 direct TLS: the client starts with a ClientHello.
            let tls = self.tls.accept(tcp).await?;
            sni = tls.get_ref().1.server_name().map(str::to_owned);
            stream = Box::new(tls);
            read_startup(&mut stream).await?
        } else {
            loop {
                match read_startup(&mut tcp).await? {
                    Startup::Ssl => {
                        tcp.write_all(b"S").await?;
                        let tls = self.tls.accept(tcp).await?;
                        sni = tls.get_ref().1.server_name().map(str::to_owned);
                        stream = Box::new(tls);
                        break read_startup(&mut stream).await?;
                    }
                    Startup::GssEnc => tcp.write_all(b"N").await?,
                    Startup::Cancel { pid, key } => {
                        self.cancel(pid, key).await;
                        return Ok(None);
                    }
                    s @ Startup::Startup { .. } => {
                        if !self.config.allow_plaintext {
                            tcp.write_all(&error_message(
                                Severity::Fatal,
                                "28000",
                                "SSL connection is required: connect with sslmode=require or stronger",
                            ))
                            .await?;
                            tracing::info!(%peer, "postgres client refused: plaintext");
                            self.record_auth(
                                peer,
                                s.param("user").unwrap_or_default(),
                                Attempt::default(),
                                AuthResult::Failure {
                                    kind: FailureKind::Plaintext,
                                    reason: "plaintext connection refused".into(),
                                },
                            );
                            return Ok(None);
                        }
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
                return Ok(None);
            }
            Startup::Startup { params } => params,
            _ => bail!("a second SSL or GSS request"),
        };
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let user = param("user").cloned().unwrap_or_default();
        let database = param("database").unwrap_or(&user).clone();

        stream
            .write_all(&{
                let mut out = Vec::new();
                wire::auth_cleartext(&mut out);
                out
            })
            .await?;
        let (tag, body) = read_message(&mut stream, MAX_AUTH_MESSAGE).await?;
        if tag != b'p' {
            bail!("expected a password message");
        }
        let password = wire::parse_password(&body).map_err(|e| anyhow!("{e}"))?;
        let mut attempt = Attempt {
            user_agent: param("application_name").cloned(),
            ..Attempt::default()
        };
        if !self.audit.accepting() {
            // Fail closed: nobody gets in unrecorded.
            tracing::warn!(%peer, "postgres login refused: the audit trail cannot write");
            self.record_auth(
                peer,
                &user,
                attempt,
                AuthResult::Failure {
                    kind: FailureKind::AuditUnavailable,
                    reason: "the audit trail cannot write".into(),
                },
            );
            stream
                .write_all(&error_message(
                    Severity::Fatal,
                    "57P03",
                    "the database system is not accepting connections",
                ))
                .await?;
            return Ok(None);
        }
        let auth =
            match self.authenticate(password, &user, sni.as_deref(), secure, peer, &mut attempt) {
                Ok(auth) => auth,
                Err((kind, reason)) => {
                    tracing::info!(%peer, user = %user, reason = %reason, "postgres login denied");
                    self.record_auth(peer, &user, attempt, AuthResult::Failure { kind, reason });
                    stream
                        .write_all(&error_message(
                            Severity::Fatal,
                            "28P01",
                            &format!("PAM authentication failed for user \"{user}\""),
                        ))
                        .await?;
                    return Ok(None);
                }
            };
        let refuse = |reason: &'static str| {
            tracing::info!(%peer, principal = %auth.caller.arn, reason, "postgres connection refused");
            self.record_auth(
                peer,
                &user,
                attempt.clone(),
                AuthResult::Failure {
                    kind: FailureKind::Throttled,
                    reason: reason.to_owned(),
                },
            );
            error_message(Severity::Fatal, "53300", reason)
        };
        let slot = match acquire(
            &self.counts,
            self.config.limits,
            peer.ip(),
            &auth.caller.arn,
        ) {
            Ok(slot) => slot,
            Err(limit) => {
                stream.write_all(&refuse(limit)).await?;
                return Ok(None);
            }
        };
        if !self
            .principal_rate
            .allow(auth.caller.arn.as_str(), Instant::now())
        {
            stream
                .write_all(&refuse("too many new connections for this principal"))
                .await?;
            return Ok(None);
        }
        let forwarded: Vec<(String, String)> = params
            .into_iter()
            .filter(|(k, _)| k != "user" && k != "database")
            .collect();
        // Replication connections are never pooled.
        let pool_key = (self.pool.enabled() && !forwarded.iter().any(|(k, _)| k == "replication"))
            .then(|| pool::key(&auth.db, &user, &database, &forwarded));
        let pooled = pool_key.as_deref().and_then(|k| self.pool.take(k, shard));
        let upstream = match pooled {
            Some(up) => up,
            None => {
                let started = Instant::now();
                let connected =
                    upstream::connect(&self.state.store, &auth.db, &user, &database, &forwarded)
                        .await;
                self.state
                    .metrics
                    .upstream_connect
                    .observe(started.elapsed());
                match connected {
                    Ok(up) => up,
                    Err(e) => {
                        tracing::warn!(%peer, database = %auth.db.name, error = %e, "upstream login failed");
                        let reply = match e.downcast_ref::<upstream::Refused>() {
                            Some(r) if r.for_client() => {
                                error_message(Severity::Fatal, &r.code, &r.message)
                            }
                            _ => error_message(
                                Severity::Fatal,
                                "08006",
                                "could not connect to the database server",
                            ),
                        };
                        let _ = stream.write_all(&reply).await;
                        return Ok(None);
                    }
                }
            }
        };
        let cancel_key = self.issue_cancel_key(&upstream)?;
        let mut out = Vec::with_capacity(512);
        wire::auth_ok(&mut out);
        for (name, value) in &upstream.params {
            wire::parameter_status(&mut out, name, value);
        }
        wire::backend_key_data(&mut out, cancel_key.0, cancel_key.1);
        wire::ready_for_query(&mut out, b'I');
        stream.write_all(&out).await?;
        stream.flush().await?;
        let session_id: [u8; 8] = random()?;
        let info = Arc::new(SessionInfo {
            session_id: session_id.iter().map(|b| format!("{b:02x}")).collect(),
            engine: "postgres",
            identity: attempt
                .identity
                .clone()
                .unwrap_or_else(|| auth.caller.audit_identity()),
            source_ip: peer.ip(),
            user_agent: attempt.user_agent.clone(),
            database: auth.db.name.clone(),
            resource_arn: attempt.resource_arn.clone().unwrap_or_default(),
            database_name: database,
            db_user: user,
            started: SystemTime::now(),
        });
        self.record_auth(peer, &info.db_user, attempt, AuthResult::Success);
        self.audit.record(Event::SessionStart(info.clone()));
        Ok(Some(Session {
            client: stream,
            upstream,
            auth,
            info,
            pool_key,
            cancel_key,
            _slot: slot,
        }))
    }

    /// A fresh cancel key for the client, pointing at `upstream`'s backend.
    fn issue_cancel_key(&self, upstream: &Upstream) -> Result<(u32, u32)> {
        let ours: [u8; 8] = random()?;
        let key = (
            u32::from_be_bytes([ours[0], ours[1], ours[2], ours[3]]),
            u32::from_be_bytes([ours[4], ours[5], ours[6], ours[7]]),
        );
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, CancelTarget::of(upstream));
        Ok(key)
    }

    /// When the session must end regardless of the client.
    fn deadline(&self, caller: &Caller) -> Option<tokio::time::Instant> {
        let mut at: Option<tokio::time::Instant> = self
            .config
            .max_session_duration
            .map(|d| tokio::time::Instant::now() + d);
        if self.config.end_sessions_at_credential_expiry
            && let Some(claims) = &caller.session
        {
            let left = claims.expires.saturating_sub(now());
            let expiry =
                tokio::time::Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0));
            at = Some(at.map_or(expiry, |a| a.min(expiry)));
        }
        at
    }

    /// Relays a logged-in session to its end, then returns the upstream
    /// connection to the pool if it is clean.
    async fn run(&self, session: Session<'_>, shard: usize) -> Result<()> {
        let Session {
            client,
            upstream,
            auth,
            info,
            pool_key,
            cancel_key,
            _slot,
        } = session;
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (end_tx, end_rx) = tokio::sync::oneshot::channel();
        if self.config.end_sessions_on_revocation {
            self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(
                id,
                LiveSession {
                    info: info.clone(),
                    access_key_id: auth.caller.access_key_id.clone(),
                    session_token: auth.session_token.clone(),
                    source_ip: auth.caller.source_ip.clone(),
                    end: Some(end_tx),
                },
            );
        }
        let deadline = self.deadline(&auth.caller);
        let active = self.state.metrics.sessions("postgres");
        active.inc();
        let audit = self.config.audit_statements.then(|| Audit {
            sink: self.audit.clone(),
            session: info.clone(),
            keep_literals: self.config.audit_keep_literals,
        });
        let mut relay = Relay::new(
            client,
            upstream,
            Tracker::new(audit),
            self.config.max_message_size,
        );
        let started = Instant::now();
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let outcome: Result<End, (String, Option<Vec<u8>>)> = tokio::select! {
            r = relay.run() => r.map_err(|e| {
                let reply = match &e {
                    RelayError::TooLarge(n) => Some(error_message(
                        Severity::Fatal,
                        "08P01",
                        &format!("message of {n} bytes exceeds the gateway's limit of {} bytes", self.config.max_message_size),
                    )),
                    RelayError::Malformed => Some(error_message(Severity::Fatal, "08P01", "invalid message length")),
                    _ => None,
                };
                (e.to_string(), reply)
            }),
            Ok(text) = end_rx => Err(("credential revoked".into(), Some(error_message(Severity::Fatal, "57P01", text)))),
            () = expired => Err((
                "session lifetime reached".into(),
                Some(error_message(
                    Severity::Fatal,
                    "57P01",
                    "terminating connection: the session reached its maximum duration or its credential expired",
                )),
            )),
        };
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&cancel_key);
        let reason = match &outcome {
            Ok(End::ClientTerminated) => "client terminated".to_owned(),
            Ok(End::ClientClosed) => "client closed the connection".to_owned(),
            Ok(End::UpstreamClosed) => "server closed the connection".to_owned(),
            Err((why, _)) => why.clone(),
        };
        if let Err((_, Some(reply))) = &outcome {
            // Only between whole messages, or the client would misread it.
            if relay.client_at_boundary() {
                let _ = relay.client.write_all(reply).await;
                let _ = relay.client.flush().await;
            }
            if relay.tracker.busy() {
                send_cancel(CancelTarget::of(&relay.upstream)).await;
            }
        }
        let (from_client, to_client) = relay.bytes();
        active.dec();
        self.state
            .metrics
            .relayed("postgres", from_client, to_client);
        let credential_expired = auth
            .caller
            .session
            .as_ref()
            .is_some_and(|c| now() >= c.expires);
        if matches!(&outcome, Err((why, _)) if why == "session lifetime reached")
            && credential_expired
        {
            self.audit.record(Event::Credential(CredentialEvent {
                time: SystemTime::now(),
                change: CredentialChange::Expired,
                identity: info.identity.clone(),
                sessions_ended: 1,
            }));
        }
        self.audit.record(Event::SessionEnd(SessionEndEvent {
            session: info,
            time: SystemTime::now(),
            duration: started.elapsed(),
            bytes_from_client: from_client,
            bytes_to_client: to_client,
            statements: relay.tracker.statement_count,
            reason,
        }));
        let reusable =
            matches!(outcome, Ok(End::ClientTerminated | End::ClientClosed)) && relay.reusable();
        let Relay {
            mut upstream,
            tracker,
            mut client,
            ..
        } = relay;
        let _ = client.shutdown().await;
        drop(client);
        if let (true, Some(key)) = (reusable, pool_key) {
            for (name, value) in &tracker.parameter_changes {
                upstream.set_param(name, value);
            }
            let pool = self.pool.clone();
            tokio::spawn(async move {
                match pool::reset(&mut upstream).await {
                    Ok(()) => pool.put(key, upstream, shard),
                    Err(e) => tracing::debug!(error = %e, "not pooling an upstream connection"),
                }
            });
        }
        Ok(())
    }

    /// Token, endpoint, user and policy checks. The error is the kind of
    /// refusal and the precise reason, for the audit log only.
    fn authenticate(
        &self,
        password: &[u8],
        user: &str,
        sni: Option<&str>,
        secure: bool,
        peer: SocketAddr,
        attempt: &mut Attempt,
    ) -> Result<Authenticated, (FailureKind, String)> {
        use FailureKind::*;
        let token = DbAuthToken::parse_bytes(password)
            .map_err(|e| (MalformedToken, format!("token: {e}")))?;
        attempt.access_key_id = Some(token.access_key_id().to_owned());
        if token.action != TokenAction::Connect {
            return Err((
                MalformedToken,
                "token is not an rds-db connect token".into(),
            ));
        }
        let host = token.host.to_ascii_lowercase();
        attempt.endpoint = Some(host.clone());
        if let Some(sni) = sni
            && !sni.eq_ignore_ascii_case(&host)
        {
            return Err((
                WrongTarget,
                format!("token endpoint {host} does not match TLS server name {sni}"),
            ));
        }
        if token.port != Some(self.config.port) {
            return Err((
                WrongTarget,
                format!(
                    "token is for port {:?}, this gateway listens on {}",
                    token.port, self.config.port
                ),
            ));
        }
        let db = self
            .databases
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|d| d.endpoints.contains(&host))
            .cloned()
            .ok_or_else(|| {
                (
                    WrongTarget,
                    format!("no database is registered for endpoint {host}"),
                )
            })?;
        attempt.database = Some(db.name.clone());
        if token.db_user.as_deref() != Some(user) {
            return Err((
                WrongTarget,
                format!(
                    "token is for database user {:?}, the client asked for {user:?}",
                    token.db_user
                ),
            ));
        }
        let t = now();
        let session_token = token.presigned.security_token.as_deref();
        let (caller, secret) = self
            .state
            .credentials(
                token.access_key_id(),
                session_token,
                t,
                &peer.ip().to_string(),
            )
            .map_err(|e| {
                (
                    e.failure.unwrap_or(UnknownKey),
                    format!("credentials: {} {}", e.code, e.reason.unwrap_or_default()),
                )
            })?;
        attempt.identity = Some(caller.audit_identity());
        let resource = format!(
            "arn:aws:rds-db:{}:{}:dbuser:{}/{}",
            self.config.region, caller.account, db.resource_id, user
        );
        attempt.resource_arn = Some(resource.clone());
        let at = AmzDate::from_unix(t).ok_or_else(|| (Expired, "clock out of range".to_owned()))?;
        let started = Instant::now();
        let verified = self
            .verifier
            .verify(&token, secret.as_bytes(), at, Some(&self.config.region))
            .map_err(|e| {
                let kind = match e.code() {
                    "Expired" | "NotYetValid" | "ClockSkew" => Expired,
                    "SignatureMismatch" => BadSignature,
                    "WrongRegion" | "WrongService" => WrongTarget,
                    _ => MalformedToken,
                };
                (kind, format!("token: {e}"))
            });
        self.state.metrics.token_verify.observe(started.elapsed());
        verified?;
        let mut context: Vec<(String, String)> = db
            .tags
            .iter()
            .map(|(k, v)| (format!("aws:ResourceTag/{k}"), v.clone()))
            .collect();
        context.push(("aws:SecureTransport".into(), secure.to_string()));
        let started = Instant::now();
        let decided = self
            .state
            .authorize_with(&caller, "rds-db:connect", &resource, t, &context);
        self.state.metrics.policy_eval.observe(started.elapsed());
        decided.map_err(|e| {
            (
                PolicyDenied,
                format!(
                    "policy: {} for {} on {resource}",
                    e.reason.unwrap_or_default(),
                    caller.arn
                ),
            )
        })?;
        Ok(Authenticated {
            db,
            session_token: session_token.map(|s| Zeroizing::new(s.to_owned())),
            caller,
        })
    }

    /// Forwards a cancel for a key this gateway issued; anything else is
    /// ignored, as PostgreSQL does.
    async fn cancel(&self, pid: u32, key: u32) {
        let target = self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(pid, key))
            .cloned();
        match target {
            Some(t) => send_cancel(t).await,
            None => tracing::info!("ignored a cancel request with an unknown key"),
        }
    }
}

async fn send_cancel(t: CancelTarget) {
    let mut out = Vec::new();
    wire::cancel_request(&mut out, t.pid, t.key);
    if let Ok(Ok(mut up)) = tokio::time::timeout(Duration::from_secs(5), t.upstream.connect()).await
    {
        let _ = up.write_all(&out).await;
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
