//! The PostgreSQL gateway: a client connects with TLS and a database auth
//! token as its password; the gateway verifies the token, asks the policy
//! engine for `rds-db:connect`, connects upstream with credentials the
//! client never sees (or reuses a pooled connection), then relays
//! messages both ways, auditing every statement.
//!
//! A denied client learns only what RDS would say
//! (`FATAL 28P01 PAM authentication failed for user "..."`); the precise
//! reason goes to the audit log.

pub mod pool;
pub mod relay;
pub mod upstream;

pub use latchkey_gateway::{GatewayConfig, limits};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use latchkey_audit::{AuditSink, AuthResult, FailureKind, SessionInfo};
use latchkey_gateway::gatekeeper::SessionEnd;
use latchkey_gateway::limits::Slot;
use latchkey_gateway::{Attempt, Authenticated, Gatekeeper, Watch};
use latchkey_pgwire::{self as wire, Severity, Startup};
use latchkey_server::state::AppState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::pool::Pool;
use crate::relay::{End, Relay, RelayError};
use crate::upstream::Upstream;
use latchkey_pg_stream::{Audit, ScanError, Tracker};

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

pub struct Gateway {
    keeper: Gatekeeper,
    tls: TlsAcceptor,
    cancels: Mutex<HashMap<(u32, u32), CancelTarget>>,
    pool: Arc<Pool<Upstream>>,
}

/// A logged-in client, ready to relay.
struct Session<'a> {
    client: Box<dyn Stream>,
    upstream: Upstream,
    auth: Authenticated,
    info: Arc<SessionInfo>,
    pool_key: Option<String>,
    cancel_key: (u32, u32),
    /// Policy allows `latchkey:ChangeDatabasePassword`.
    password_changes: bool,
    /// Policy allows `latchkey:ExecuteDynamicSql`.
    dynamic_sql: bool,
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
        Ok(Self {
            tls: TlsAcceptor::from(Arc::new(tls)),
            pool: Arc::new(Pool::new(config.pool)),
            cancels: Mutex::new(HashMap::new()),
            keeper: Gatekeeper::new(state, config, "postgres", audit)?,
        })
    }

    /// Re-reads the registered databases (called on a timer by `serve`).
    pub fn reload_databases(&self) -> Result<()> {
        self.keeper.reload_databases()
    }

    /// Periodic upkeep (blocking; run it off the async threads): ends
    /// sessions whose credential was revoked or disabled, closes stale
    /// pooled connections and forgets refilled rate buckets.
    pub fn maintain(&self) {
        self.pool.sweep();
        self.keeper.maintain();
    }

    /// Idle pooled upstream connections.
    pub fn pooled_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Accepts clients until `shutdown` resolves, on
    /// [`GatewayConfig::threads`] session threads (see
    /// [`latchkey_gateway::serve_on_threads`]).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let threads = self.keeper.config.threads;
        latchkey_gateway::serve_on_threads(
            listener,
            shutdown,
            threads,
            "pg-sessions",
            move |tcp, peer, shard| {
                let gw = self.clone();
                async move {
                    if let Err(e) = gw.client(tcp, peer, shard).await {
                        tracing::debug!(%peer, error = %e, "postgres client ended");
                    }
                }
            },
        )
        .await
    }

    async fn client(&self, mut tcp: TcpStream, peer: SocketAddr, shard: usize) -> Result<()> {
        if self.keeper.refuse_early(peer).is_some() {
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
            self.keeper.config.startup_timeout,
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
                        if !self.keeper.config.allow_plaintext {
                            tcp.write_all(&error_message(
                                Severity::Fatal,
                                "28000",
                                "SSL connection is required: connect with sslmode=require or stronger",
                            ))
                            .await?;
                            tracing::info!(%peer, "postgres client refused: plaintext");
                            self.keeper.record_auth(
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
        if !self.keeper.audit_accepting(peer, &user, &attempt) {
            stream
                .write_all(&error_message(
                    Severity::Fatal,
                    "57P03",
                    "the database system is not accepting connections",
                ))
                .await?;
            return Ok(None);
        }
        let auth = match self.keeper.authenticate(
            password,
            &user,
            sni.as_deref(),
            secure,
            peer,
            &mut attempt,
        ) {
            Ok(auth) => auth,
            Err((kind, reason)) => {
                tracing::info!(%peer, user = %user, reason = %reason, "postgres login denied");
                self.keeper
                    .record_auth(peer, &user, attempt, AuthResult::Failure { kind, reason });
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
        let slot = match self.keeper.admit(&auth, peer, &user, &attempt) {
            Ok(slot) => slot,
            Err(limit) => {
                stream
                    .write_all(&error_message(Severity::Fatal, "53300", limit))
                    .await?;
                return Ok(None);
            }
        };
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
                let connected = upstream::connect(
                    &self.keeper.state.store,
                    &auth.db,
                    &user,
                    &database,
                    &forwarded,
                )
                .await;
                self.keeper
                    .state
                    .metrics
                    .upstream_connect
                    .observe(started.elapsed());
                match connected {
                    Ok(up) => up,
                    Err(e) => {
                        tracing::warn!(%peer, database = %auth.db.name, error = %e, "upstream login failed");
                        // The server refusing the stored credential (changed
                        // behind the gateway's back?) is not an outage.
                        let kind = match e.downcast_ref::<upstream::Refused>() {
                            Some(r) if matches!(r.code.as_str(), "28P01" | "28000") => {
                                FailureKind::UpstreamCredentialRefused
                            }
                            _ => FailureKind::UpstreamUnavailable,
                        };
                        self.keeper.record_auth(
                            peer,
                            &user,
                            attempt,
                            AuthResult::Failure {
                                kind,
                                reason: format!("upstream login: {e:#}"),
                            },
                        );
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
        let password_changes =
            self.keeper
                .allows(&auth, latchkey_sqlguard::CHANGE_PASSWORD_ACTION, secure);
        let dynamic_sql = self
            .keeper
            .allows(&auth, latchkey_sqlguard::DYNAMIC_SQL_ACTION, secure);
        let info = self
            .keeper
            .session_started(peer, attempt, &auth, database, user)?;
        Ok(Some(Session {
            client: stream,
            upstream,
            auth,
            info,
            pool_key,
            cancel_key,
            password_changes,
            dynamic_sql,
            _slot: slot,
        }))
    }

    /// A fresh cancel key for the client, pointing at `upstream`'s backend.
    fn issue_cancel_key(&self, upstream: &Upstream) -> Result<(u32, u32)> {
        let ours: [u8; 8] = latchkey_store::random()?;
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
            password_changes,
            dynamic_sql,
            _slot,
        } = session;
        let config = &self.keeper.config;
        let mut watch = self.keeper.watch(&info, &auth);
        let audit = config.audit_statements.then(|| Audit {
            sink: self.keeper.audit.clone(),
            session: info.clone(),
            keep_literals: config.audit_keep_literals,
        });
        let mut relay = Relay::new(
            client,
            upstream,
            Tracker::new(audit)
                .allow_password_changes(password_changes)
                .allow_dynamic_sql(dynamic_sql),
            config.max_message_size,
        );
        let expired = Watch::expired(watch.deadline);
        let outcome: Result<End, (String, Option<Vec<u8>>)> = tokio::select! {
            r = relay.run() => r.map_err(|e| {
                let reply = match &e {
                    RelayError::Scan(ScanError::TooLarge(n)) => Some(error_message(
                        Severity::Fatal,
                        "08P01",
                        &format!("message of {n} bytes exceeds the gateway's limit of {} bytes", config.max_message_size),
                    )),
                    RelayError::Scan(ScanError::Malformed) => Some(error_message(Severity::Fatal, "08P01", "invalid message length")),
                    _ => None,
                };
                (e.to_string(), reply)
            }),
            Ok(text) = &mut watch.revoked => Err(("credential revoked".into(), Some(error_message(Severity::Fatal, "57P01", text)))),
            () = expired => Err((
                "session lifetime reached".into(),
                Some(error_message(
                    Severity::Fatal,
                    "57P01",
                    "terminating connection: the session reached its maximum duration or its credential expired",
                )),
            )),
        };
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
        let (bytes_from_client, bytes_to_client) = relay.bytes();
        let lifetime_reached =
            matches!(&outcome, Err((why, _)) if why == "session lifetime reached");
        self.keeper.session_ended(
            watch,
            info,
            &auth.caller,
            SessionEnd {
                reason,
                lifetime_reached,
                bytes_from_client,
                bytes_to_client,
                statements: relay.tracker.statement_count,
            },
        );
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
