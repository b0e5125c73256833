//! The MySQL/MariaDB gateway: a client connects with TLS and a database
//! auth token as its password (`mysql_clear_password`, as RDS IAM
//! authentication asks); the gateway verifies the token, asks the policy
//! engine for `rds-db:connect`, logs in upstream with the password it
//! holds (or reuses a pooled connection), then relays packets both ways,
//! auditing every statement.
//!
//! Everything that is not wire protocol (token and policy checks, limits,
//! session records and lifetime, the pool, upstream TLS) is
//! `latchkey-gateway`, shared with the PostgreSQL gateway.
//!
//! A denied client learns only what RDS would say (ERR 1045 `Access
//! denied for user '...'@'...'`); the precise reason goes to the audit
//! log.

pub mod relay;
pub mod upstream;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Result, anyhow};
use latchkey_audit::{AuditSink, AuthResult, FailureKind, SessionInfo};
use latchkey_gateway::gatekeeper::SessionEnd;
use latchkey_gateway::limits::Slot;
use latchkey_gateway::net::ServerAddr;
use latchkey_gateway::pool::{Pool, key};
use latchkey_gateway::{Attempt, Authenticated, Gatekeeper, GatewayConfig, Watch};
use latchkey_my_stream::{Audit, Intercepted, Interception, Tracker};
use latchkey_mywire::{self as wire, ClientHello, HandshakeV10, OkInfo};
use latchkey_server::state::AppState;
use latchkey_sqlguard::{CHANGE_PASSWORD_ACTION, DYNAMIC_SQL_ACTION, Refusal};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

use crate::relay::{Relay, RelayError, Stop};
use crate::upstream::{LoginRequest, Upstream, read_packet, write_packet};

/// The policy action a session needs for `LOAD DATA LOCAL INFILE`
/// (uploads from the client's disk), on its `rds-db:connect` resource.
pub const LOAD_DATA_LOCAL_ACTION: &str = "latchkey:LoadDataLocalInfile";

/// Largest packet accepted before authentication (tokens are ~1-2 KiB).
pub const MAX_AUTH_PACKET: usize = 16 * 1024;

/// The version the gateway announces before it knows which server a
/// client is for.
pub const SERVER_VERSION: &str = "8.0.36-Latchkey";

/// Capabilities the gateway offers clients: those every MySQL 5.7+ and
/// MariaDB 10.2+ server has, so that whatever a client picks, its
/// server can follow. No compression, no MariaDB extensions, no query
/// attributes.
pub const GATEWAY_CAPS: u64 = wire::CLIENT_LONG_PASSWORD
    | wire::CLIENT_FOUND_ROWS
    | wire::CLIENT_LONG_FLAG
    | wire::CLIENT_CONNECT_WITH_DB
    | wire::CLIENT_LOCAL_FILES
    | wire::CLIENT_IGNORE_SPACE
    | wire::CLIENT_PROTOCOL_41
    | wire::CLIENT_INTERACTIVE
    | wire::CLIENT_SSL
    | wire::CLIENT_TRANSACTIONS
    | wire::CLIENT_SECURE_CONNECTION
    | wire::CLIENT_MULTI_STATEMENTS
    | wire::CLIENT_MULTI_RESULTS
    | wire::CLIENT_PS_MULTI_RESULTS
    | wire::CLIENT_PLUGIN_AUTH
    | wire::CLIENT_CONNECT_ATTRS
    | wire::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | wire::CLIENT_SESSION_TRACK
    | wire::CLIENT_DEPRECATE_EOF;

/// Capabilities that change what packets look like: client and server
/// must agree on them, since the relay passes packets unchanged.
const PROTOCOL_CAPS: u64 = wire::CLIENT_PROTOCOL_41
    | wire::CLIENT_DEPRECATE_EOF
    | wire::CLIENT_SESSION_TRACK
    | wire::CLIENT_MULTI_RESULTS
    | wire::CLIENT_PS_MULTI_RESULTS;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Where a gateway connection id really points, for `KILL`.
struct KillTarget {
    /// The caller ARN of the session (a user's, or an assumed role's
    /// with its session name): only the same principal may kill it.
    principal: String,
    database: String,
    addr: ServerAddr,
    thread_id: u32,
}

pub struct Gateway {
    keeper: Gatekeeper,
    tls: TlsAcceptor,
    pool: Arc<Pool<Upstream>>,
    kills: Mutex<HashMap<u32, KillTarget>>,
    next_connection: AtomicU32,
}

/// A logged-in client, ready to relay.
struct Session<'a> {
    client: Box<dyn Stream>,
    upstream: Upstream,
    auth: Authenticated,
    info: Arc<SessionInfo>,
    /// With the schema to select again before the connection is reused.
    pool_key: Option<(String, String)>,
    connection_id: u32,
    local_infile: bool,
    /// Policy allows `latchkey:ChangeDatabasePassword`.
    password_changes: bool,
    /// Policy allows `latchkey:ExecuteDynamicSql`.
    dynamic_sql: bool,
    _slot: Slot<'a>,
}

/// An ERR packet as a whole frame.
fn err_frame(seq: u8, code: u16, sqlstate: &[u8; 5], message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    wire::frame(&mut out, seq, |p| {
        wire::err_packet(p, code, sqlstate, message)
    });
    out
}

/// What to do after the gateway answered an intercepted command.
enum Next {
    Relay,
    End(String),
}

impl Gateway {
    pub fn new(
        state: Arc<AppState>,
        tls: Arc<rustls::ServerConfig>,
        config: GatewayConfig,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Self> {
        let mut tls = (*tls).clone();
        tls.alpn_protocols = Vec::new();
        let first_id: [u8; 2] = latchkey_store::random()?;
        Ok(Self {
            tls: TlsAcceptor::from(Arc::new(tls)),
            pool: Arc::new(Pool::new(config.pool)),
            kills: Mutex::new(HashMap::new()),
            // Ids start anywhere in the first 64Ki so that restarts do
            // not hand out the same ones.
            next_connection: AtomicU32::new(u32::from(u16::from_le_bytes(first_id)) + 1),
            keeper: Gatekeeper::new(state, config, "mysql", audit)?,
        })
    }

    /// Re-reads the registered databases (called on a timer by `serve`).
    pub fn reload_databases(&self) -> Result<()> {
        self.keeper.reload_databases()
    }

    /// Periodic upkeep (blocking): ends revoked sessions, closes stale
    /// pooled connections, forgets refilled rate buckets.
    pub fn maintain(&self) {
        self.pool.sweep();
        self.keeper.maintain();
    }

    /// Idle pooled upstream connections.
    pub fn pooled_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Accepts clients until `shutdown` resolves.
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
            "mysql-sessions",
            move |tcp, peer, shard| {
                let gw = self.clone();
                async move {
                    if let Err(e) = gw.client(tcp, peer, shard).await {
                        tracing::debug!(%peer, error = %e, "mysql client ended");
                    }
                }
            },
        )
        .await
    }

    async fn client(&self, mut tcp: TcpStream, peer: SocketAddr, shard: usize) -> Result<()> {
        let _ = tcp.set_nodelay(true);
        if self.keeper.refuse_early(peer).is_some() {
            // A server that cannot take a connection says so instead of
            // its handshake.
            let _ = tcp
                .write_all(&err_frame(
                    0,
                    1040,
                    b"08004",
                    "Too many connection attempts from this address",
                ))
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

    /// Handshake, TLS, token, policy and upstream login. `None` when the
    /// connection ended normally before relaying (a denial).
    async fn handshake(
        &self,
        mut tcp: TcpStream,
        peer: SocketAddr,
        shard: usize,
    ) -> Result<Option<Session<'_>>> {
        let connection_id = self.next_connection.fetch_add(1, Ordering::Relaxed).max(1);
        let scramble = wire::scramble_from_random(latchkey_store::random()?);
        let mut out = Vec::new();
        wire::try_frame(&mut out, 0, |p| {
            wire::handshake_v10(
                p,
                &HandshakeV10 {
                    server_version: SERVER_VERSION.into(),
                    connection_id,
                    scramble: scramble.to_vec(),
                    capabilities: GATEWAY_CAPS,
                    charset: wire::UTF8MB4_GENERAL_CI,
                    status: wire::SERVER_STATUS_AUTOCOMMIT,
                    auth_plugin: wire::MYSQL_NATIVE_PASSWORD.into(),
                },
            )
        })
        .map_err(|e| anyhow!("{e}"))?;
        tcp.write_all(&out).await?;
        let (seq, hello) = read_packet(&mut tcp, MAX_AUTH_PACKET).await?;
        match wire::parse_client_hello(&hello).map_err(|e| anyhow!("{e}"))? {
            ClientHello::SslRequest(_) => {}
            ClientHello::Response(r) => {
                let user = r.username.to_owned();
                tcp.write_all(&err_frame(
                    seq.wrapping_add(1),
                    3159,
                    b"HY000",
                    "Connections using insecure transport are prohibited: connect with TLS (--ssl)",
                ))
                .await?;
                tracing::info!(%peer, "mysql client refused: plaintext");
                self.keeper.record_auth(
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
        }
        let tls = self.tls.accept(tcp).await?;
        let sni = tls.get_ref().1.server_name().map(str::to_owned);
        let mut stream: Box<dyn Stream> = Box::new(tls);
        let (seq, payload) = read_packet(&mut stream, MAX_AUTH_PACKET).await?;
        // It may carry the token: wiped when dropped.
        let payload = Zeroizing::new(payload);
        let response = wire::parse_handshake_response(&payload).map_err(|e| anyhow!("{e}"))?;
        let user = response.username.to_owned();
        let schema = response
            .database
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let charset = response.charset;
        let client_caps = response.capabilities & GATEWAY_CAPS;
        let attrs: wire::Attrs<'static> = response
            .attrs
            .iter()
            .map(|(k, v)| (Cow::Owned(k.to_string()), Cow::Owned(v.to_string())))
            .collect();
        let user_agent = response
            .attr("program_name")
            .or(response.attr("_client_name"))
            .map(str::to_owned);
        let offered_clear = response.auth_plugin == Some(wire::MYSQL_CLEAR_PASSWORD)
            && !response.auth_response.is_empty();
        let mut token = Zeroizing::new(response.auth_response.to_vec());
        drop(response);
        let mut seq = seq.wrapping_add(1);
        if !offered_clear {
            // RDS's way: the client's default plugin is switched to
            // mysql_clear_password, which carries the token (over TLS).
            let mut switch = Vec::new();
            wire::auth_switch_request(&mut switch, wire::MYSQL_CLEAR_PASSWORD, &[])
                .map_err(|e| anyhow!("{e}"))?;
            write_packet(&mut stream, seq, &switch).await?;
            let (s, data) = read_packet(&mut stream, MAX_AUTH_PACKET).await?;
            token = Zeroizing::new(data);
            seq = s.wrapping_add(1);
        }
        let mut attempt = Attempt {
            user_agent,
            ..Attempt::default()
        };
        if !self.keeper.audit_accepting(peer, &user, &attempt) {
            stream
                .write_all(&err_frame(
                    seq,
                    1105,
                    b"08004",
                    "the server is not accepting connections",
                ))
                .await?;
            return Ok(None);
        }
        let checked = match wire::parse_clear_password(&token) {
            Ok(password) => {
                self.keeper
                    .authenticate(password, &user, sni.as_deref(), true, peer, &mut attempt)
            }
            Err(e) => Err((FailureKind::MalformedToken, format!("token: {e}"))),
        };
        drop(token);
        let auth = match checked {
            Ok(auth) => auth,
            Err((kind, reason)) => {
                tracing::info!(%peer, user = %user, reason = %reason, "mysql login denied");
                self.keeper
                    .record_auth(peer, &user, attempt, AuthResult::Failure { kind, reason });
                stream
                    .write_all(&err_frame(
                        seq,
                        1045,
                        b"28000",
                        &format!(
                            "Access denied for user '{user}'@'{}' (using password: YES)",
                            peer.ip()
                        ),
                    ))
                    .await?;
                return Ok(None);
            }
        };
        let slot = match self.keeper.admit(&auth, peer, &user, &attempt) {
            Ok(slot) => slot,
            Err(limit) => {
                stream
                    .write_all(&err_frame(seq, 1040, b"08004", limit))
                    .await?;
                return Ok(None);
            }
        };
        // LOAD DATA LOCAL INFILE only where policy allows it: otherwise
        // the server is never told the client can upload, so it refuses
        // the statement itself.
        let local_infile = client_caps & wire::CLIENT_LOCAL_FILES != 0
            && self.keeper.allows(&auth, LOAD_DATA_LOCAL_ACTION, true);
        let mut upstream_caps = client_caps & !wire::CLIENT_SSL;
        if !local_infile {
            upstream_caps &= !wire::CLIENT_LOCAL_FILES;
        }
        let pool_key = match (&schema, self.pool.enabled()) {
            (Some(s), true) => Some((
                key(
                    &auth.db,
                    &user,
                    s,
                    &[
                        ("caps".into(), format!("{upstream_caps:x}")),
                        ("charset".into(), charset.to_string()),
                    ],
                ),
                s.clone(),
            )),
            _ => None,
        };
        let pooled = pool_key
            .as_ref()
            .and_then(|(k, _)| self.pool.take(k, shard));
        let upstream = match pooled {
            Some(up) => up,
            None => {
                let started = Instant::now();
                let connected = upstream::connect(
                    &self.keeper.state.store,
                    &auth.db,
                    &LoginRequest {
                        user: &user,
                        schema: schema.as_deref(),
                        charset,
                        caps: upstream_caps,
                        attrs,
                    },
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
                        self.keeper.record_auth(
                            peer,
                            &user,
                            attempt,
                            AuthResult::Failure {
                                kind: upstream_failure_kind(&e),
                                reason: format!("upstream login: {e:#}"),
                            },
                        );
                        let reply = match e.downcast_ref::<upstream::Refused>() {
                            Some(r) if r.for_client() => err_frame(
                                seq,
                                r.0.code,
                                &sqlstate(r.0.sqlstate.as_deref()),
                                &r.0.message,
                            ),
                            _ => err_frame(
                                seq,
                                1105,
                                b"08S01",
                                "could not connect to the database server",
                            ),
                        };
                        let _ = stream.write_all(&reply).await;
                        return Ok(None);
                    }
                }
            }
        };
        let missing = (client_caps & PROTOCOL_CAPS) ^ (upstream.caps & PROTOCOL_CAPS);
        if missing != 0 {
            tracing::warn!(%peer, database = %auth.db.name, missing = format!("{missing:#x}"), "upstream lacks protocol capabilities the client uses");
            self.keeper.upstream_failed(
                peer,
                &user,
                attempt,
                format!("the client and the server disagree on protocol capabilities {missing:#x}"),
            );
            let _ = stream
                .write_all(&err_frame(
                    seq,
                    1105,
                    b"08S01",
                    "the database server does not support the protocol features this client uses",
                ))
                .await;
            return Ok(None);
        }
        self.kills.lock().unwrap_or_else(|p| p.into_inner()).insert(
            connection_id,
            KillTarget {
                principal: auth.caller.arn.clone(),
                database: auth.db.name.clone(),
                addr: upstream.addr.clone(),
                thread_id: upstream.thread_id,
            },
        );
        let mut ok = Vec::new();
        wire::frame(&mut ok, seq, |p| {
            wire::ok_packet(
                p,
                &OkInfo {
                    status: upstream.status,
                    ..OkInfo::default()
                },
                client_caps,
            )
        });
        if let Err(e) = stream.write_all(&ok).await {
            self.forget(connection_id);
            return Err(e.into());
        }
        let password_changes = self.keeper.allows(&auth, CHANGE_PASSWORD_ACTION, true);
        let dynamic_sql = self.keeper.allows(&auth, DYNAMIC_SQL_ACTION, true);
        let info =
            self.keeper
                .session_started(peer, attempt, &auth, schema.unwrap_or_default(), user)?;
        Ok(Some(Session {
            client: stream,
            upstream,
            auth,
            info,
            pool_key,
            connection_id,
            local_infile,
            password_changes,
            dynamic_sql,
            _slot: slot,
        }))
    }

    fn forget(&self, connection_id: u32) {
        self.kills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&connection_id);
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
            connection_id,
            local_infile,
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
        let caps = upstream.caps;
        let mut relay = Relay::new(
            client,
            upstream,
            Tracker::new(caps, audit, local_infile)
                .allow_password_changes(password_changes)
                .allow_dynamic_sql(dynamic_sql),
            config.max_message_size,
        );
        let expired = Watch::expired(watch.deadline);
        tokio::pin!(expired);
        // Err: why the gateway ended the session, and what to tell the
        // client (code, SQLSTATE, text) if it is waiting for nothing.
        type Ended = (String, Option<(u16, &'static [u8; 5], String)>);
        let outcome: Result<Stop, Ended> = loop {
            let stop = tokio::select! {
                r = relay.run() => r,
                Ok(text) = &mut watch.revoked => break Err(("credential revoked".into(), Some((1927, b"70100", text.to_owned())))),
                () = &mut expired => break Err((
                    "session lifetime reached".into(),
                    Some((1927, b"70100", "terminating connection: the session reached its maximum duration or its credential expired".into())),
                )),
            };
            match stop {
                Ok(Stop::Intercepted(taken)) => {
                    match self.intercepted(&mut relay, &taken, &auth, &info).await {
                        Ok(Next::Relay) => {}
                        Ok(Next::End(why)) => break Err((why, None)),
                        Err(e) => break Err((e.to_string(), None)),
                    }
                }
                Ok(stop) => break Ok(stop),
                Err(e) => {
                    let reply = match &e {
                        RelayError::Scan(latchkey_my_stream::ScanError::Unchecked) => Some((
                            1227,
                            b"42000",
                            "Access denied: a statement of over 16 MiB that Latchkey cannot check"
                                .into(),
                        )),
                        RelayError::Scan(latchkey_my_stream::ScanError::TooLarge(n)) => Some((
                            1153,
                            b"08S01",
                            format!(
                                "Got a packet bigger than the gateway's limit: {n} bytes, limit {} bytes",
                                config.max_message_size
                            ),
                        )),
                        _ => None,
                    };
                    break Err((e.to_string(), reply));
                }
            }
        };
        self.forget(connection_id);
        let reason = match &outcome {
            Ok(Stop::ClientQuit) => "client quit".to_owned(),
            Ok(Stop::ClientClosed) => "client closed the connection".to_owned(),
            Ok(Stop::UpstreamClosed) => "server closed the connection".to_owned(),
            Ok(Stop::Intercepted(_)) => "intercepted".to_owned(),
            Err((why, _)) => why.clone(),
        };
        if let Err((_, Some((code, state, text)))) = &outcome
            && relay.client_idle()
        {
            // Unasked, as servers announce a killed connection.
            let _ = relay
                .client
                .write_all(&err_frame(0, *code, state, text))
                .await;
            let _ = relay.client.flush().await;
        }
        if relay.tracker.busy() {
            let (store, db, user, thread_id) = (
                self.keeper.state.clone(),
                auth.db.clone(),
                info.db_user.clone(),
                relay.upstream.thread_id,
            );
            tokio::spawn(async move {
                if let Err(e) = upstream::kill(&store.store, &db, &user, thread_id).await {
                    tracing::warn!(database = %db.name, thread_id, error = %e, "could not stop an abandoned statement");
                }
            });
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
            matches!(outcome, Ok(Stop::ClientQuit | Stop::ClientClosed)) && relay.reusable();
        let Relay {
            mut upstream,
            mut client,
            ..
        } = relay;
        let _ = client.shutdown().await;
        drop(client);
        if let (true, Some((key, schema))) = (reusable, pool_key) {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                match upstream::reset(&mut upstream, &schema).await {
                    Ok(()) => pool.put(key, upstream, shard),
                    Err(e) => tracing::debug!(error = %e, "not pooling an upstream connection"),
                }
            });
        }
        Ok(())
    }

    /// Answers a command the relay took out: `COM_CHANGE_USER` is
    /// refused (a session never changes user), `KILL` is pointed at the
    /// server's id for the gateway connection it names, SQL the session
    /// may not run gets an access-denied error (and is audited).
    async fn intercepted<C: AsyncRead + AsyncWrite + Unpin>(
        &self,
        relay: &mut Relay<C>,
        taken: &Intercepted,
        auth: &Authenticated,
        info: &SessionInfo,
    ) -> Result<Next> {
        let payload = taken.payload.as_slice();
        let (query, id) = match &taken.what {
            Interception::Refused(refusal) => {
                let message = match refusal {
                    Refusal::PasswordChange => format!(
                        "Access denied; you need the {CHANGE_PASSWORD_ACTION} permission to change passwords or authentication through Latchkey"
                    ),
                    Refusal::Kill => "Access denied; through Latchkey, KILL must stand alone as KILL [HARD|SOFT] [CONNECTION|QUERY] <id>, with the connection id the client saw".to_owned(),
                    Refusal::DynamicSql => format!(
                        "Access denied; you need the {DYNAMIC_SQL_ACTION} permission to run SQL built at run time (EXECUTE IMMEDIATE, PREPARE ... FROM an expression) through Latchkey"
                    ),
                    Refusal::SignalBackend => "Access denied; through Latchkey, sessions may not signal other server threads or shut the server down (SHUTDOWN, administrative commands)".to_owned(),
                };
                tracing::info!(session = %info.session_id, ?refusal, "statement refused");
                relay.tracker.refused(
                    payload,
                    wire::ErrInfo {
                        code: 1227,
                        sqlstate: Some("42000".into()),
                        message: message.clone(),
                    },
                );
                relay
                    .client
                    .write_all(&err_frame(1, 1227, b"42000", &message))
                    .await?;
                relay.client.flush().await?;
                return Ok(Next::Relay);
            }
            Interception::ChangeUser => {
                let to = wire::parse_command(payload, relay.upstream.caps)
                    .ok()
                    .and_then(|c| match c {
                        wire::Command::ChangeUser(c) => Some(c.user.to_owned()),
                        _ => None,
                    })
                    .unwrap_or_default();
                self.keeper.record_auth(
                    SocketAddr::new(info.source_ip, 0),
                    &to,
                    Attempt {
                        identity: Some(info.identity.clone()),
                        database: Some(info.database.clone()),
                        user_agent: info.user_agent.clone(),
                        // The session logged in with a verified token.
                        possession_proven: true,
                        ..Attempt::default()
                    },
                    AuthResult::Failure {
                        kind: FailureKind::WrongTarget,
                        reason: format!(
                            "COM_CHANGE_USER from {} to {to:?} refused: a session keeps the user its token was for",
                            info.db_user
                        ),
                    },
                );
                relay
                    .client
                    .write_all(&err_frame(
                        1,
                        1045,
                        b"28000",
                        "COM_CHANGE_USER is not supported through Latchkey: connect again with a token for the other user",
                    ))
                    .await?;
                relay.client.flush().await?;
                return Ok(Next::End("client asked to change user".into()));
            }
            Interception::ProcessKill => match wire::parse_command(payload, 0) {
                Ok(wire::Command::ProcessKill { connection_id }) => {
                    (None, u64::from(connection_id))
                }
                _ => return Ok(Next::End("malformed COM_PROCESS_KILL".into())),
            },
            Interception::Kill(kill) => (Some(*kill), kill.id),
        };
        let target = u32::try_from(id).ok().and_then(|id| {
            self.kills
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                // Another principal's session is answered as a nonexistent
                // one: nothing tells the caller that it exists.
                .filter(|t| {
                    t.principal == auth.caller.arn
                        && t.database == auth.db.name
                        && t.addr == relay.upstream.addr
                })
                .map(|t| t.thread_id)
        });
        let Some(thread_id) = target else {
            relay
                .client
                .write_all(&err_frame(
                    1,
                    1094,
                    b"HY000",
                    &format!("Unknown thread id: {id}"),
                ))
                .await?;
            relay.client.flush().await?;
            return Ok(Next::Relay);
        };
        let mut rewritten = Vec::new();
        match query {
            Some(kill) => {
                rewritten.push(wire::COM_QUERY);
                rewritten.extend_from_slice(kill.statement(thread_id).as_bytes());
            }
            None => {
                rewritten.push(wire::COM_PROCESS_KILL);
                rewritten.extend_from_slice(&thread_id.to_le_bytes());
            }
        }
        write_packet(&mut relay.upstream.stream, 0, &rewritten).await?;
        relay.tracker.forwarded(&rewritten);
        Ok(Next::Relay)
    }
}

/// Why an upstream login failed, for the audit: the server refused the
/// stored credential (changed behind the gateway's back?), or could not
/// be reached or used.
fn upstream_failure_kind(e: &anyhow::Error) -> FailureKind {
    match e.downcast_ref::<upstream::Refused>() {
        Some(r) if matches!(r.0.code, 1045 | 1698 | 1862) => FailureKind::UpstreamCredentialRefused,
        _ => FailureKind::UpstreamUnavailable,
    }
}

/// A server's SQLSTATE as five bytes (`HY000` when it sent none).
fn sqlstate(state: Option<&str>) -> [u8; 5] {
    state
        .and_then(|s| s.as_bytes().try_into().ok())
        .unwrap_or(*b"HY000")
}
