//! The MySQL/MariaDB gateway: a client connects with TLS and a database
//! auth token as its password (`mysql_clear_password`, as RDS IAM
//! authentication asks); the gateway verifies the token, asks the policy
//! engine for `rds-db:connect`, logs in upstream with the password it
//! holds (or reuses a pooled connection), then relays packets both ways,
//! auditing every statement.
//!
//! Only the wire protocol is here ([`Mysql`], a
//! [`latchkey_gateway::Protocol`]). Everything else (the login pipeline,
//! token and policy checks, limits, session records and lifetime, the
//! pool, upstream TLS) is `latchkey-gateway`, shared with the PostgreSQL
//! gateway.
//!
//! A denied client learns only what RDS would say (ERR 1045 `Access
//! denied for user '...'@'...'`); the precise reason goes to the audit
//! log.

pub mod relay;
pub mod rotation;
pub mod upstream;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use latchkey_audit::{AuthResult, FailureKind, SessionInfo};
use latchkey_gateway::net::ServerAddr;
use latchkey_gateway::pool::key;
use latchkey_gateway::statements::ServerCatalog;
use latchkey_gateway::{
    Attempt, Authenticated, Denial, Gatekeeper, Login, Opening, Protocol, Relayed, Session,
    UpstreamFailure, Watch,
};
use latchkey_my_stream::{Guarded as _, Intercepted, Interception, Tracker};
use latchkey_mywire::{self as wire, ClientHello, HandshakeV10, OkInfo};
use latchkey_sqlguard::{CHANGE_PASSWORD_ACTION, DYNAMIC_SQL_ACTION, Refusal};
use latchkey_store::{Engine, StatementPolicy};
use latchkey_tls_server::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::relay::{MyRelay, Relay, RelayError, Stop};
use crate::upstream::{LoginRequest, Upstream, read_packet, write_packet};

/// The MySQL gateway.
pub type Gateway = latchkey_gateway::Gateway<Mysql>;

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

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
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

/// The MySQL client/server protocol (MySQL 5.7+, MariaDB 10.2+).
pub struct Mysql {
    tls: TlsAcceptor,
    /// Gateway connection ids handed to clients, and the server threads
    /// they stand for (for `KILL`).
    kills: Mutex<HashMap<u32, KillTarget>>,
    next_connection: AtomicU32,
}

/// What the handshake response said.
pub struct MyStartup {
    /// The default schema asked for.
    schema: Option<String>,
    charset: u8,
    /// The client's capabilities that the gateway offers.
    client_caps: u64,
    /// What the upstream login asks for: the client's, less TLS (the
    /// gateway's own business) and, unless policy allows it, LOCAL INFILE
    /// (then the server is never told the client can upload, so it
    /// refuses the statement itself). Settled once, in `authorized`.
    upstream_caps: u64,
    attrs: wire::Attrs<'static>,
}

/// A client past its handshake.
pub struct MyClient {
    stream: Box<dyn Stream>,
    /// The next packet's sequence id.
    seq: u8,
    connection_id: u32,
}

/// What the server said when it refused the gateway, or why a server
/// cannot serve this client.
pub enum MyRefusal {
    Server(upstream::Refused),
    /// Client and server disagree on capabilities that shape packets.
    Incompatible,
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

impl Mysql {
    pub fn new(tls: Arc<rustls::ServerConfig>) -> Result<Self> {
        let mut tls = (*tls).clone();
        tls.alpn_protocols = Vec::new();
        let first_id: [u8; 2] = latchkey_store::random()?;
        Ok(Self {
            tls: TlsAcceptor::new(tls),
            kills: Mutex::new(HashMap::new()),
            // Ids start anywhere in the first 64Ki so that restarts do
            // not hand out the same ones.
            next_connection: AtomicU32::new(u32::from(u16::from_le_bytes(first_id)) + 1),
        })
    }

    fn forget(&self, connection_id: u32) {
        self.kills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&connection_id);
    }
}

impl Protocol for Mysql {
    const ENGINE: Engine = Engine::Mysql;
    const THREADS: &'static str = "mysql-sessions";
    type Transport = TcpStream;
    type Client = MyClient;
    type Startup = MyStartup;
    type Upstream = Upstream;
    type ServerRefusal = MyRefusal;

    async fn refuse_early(&self, mut tcp: TcpStream) {
        // A server that cannot take a connection says so instead of its
        // handshake, in MySQL's words: whether the address is blocked or
        // throttled goes to the audit, not to it.
        let _ = tcp
            .write_all(&err_frame(0, 1040, b"08004", "Too many connections"))
            .await;
    }

    async fn open(
        &self,
        _keeper: &Gatekeeper,
        mut tcp: TcpStream,
        _peer: SocketAddr,
    ) -> Result<Opening<Self>> {
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
                return Ok(Opening::Plaintext { user });
            }
        }
        let (tls, sni) = self.tls.accept(tcp).await?;
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
        let password = wire::parse_clear_password(&token)
            .map(|p| Zeroizing::new(p.to_vec()))
            .map_err(|e| e.to_string());
        drop(token);
        // Whether LOCAL INFILE may be asked for is decided once the
        // session is authenticated (see `authorized`).
        Ok(Opening::Login {
            client: MyClient {
                stream,
                seq,
                connection_id,
            },
            login: Login {
                database: schema.clone().unwrap_or_default(),
                user,
                password,
                sni,
                secure: true,
                user_agent,
                startup: MyStartup {
                    schema,
                    charset,
                    client_caps,
                    upstream_caps: client_caps & !wire::CLIENT_SSL,
                    attrs,
                },
            },
        })
    }

    async fn deny(
        &self,
        client: &mut MyClient,
        denial: Denial<'_, MyRefusal>,
    ) -> std::io::Result<()> {
        let seq = client.seq;
        let reply = match denial {
            Denial::Unavailable => err_frame(
                seq,
                1105,
                b"08004",
                "the server is not accepting connections",
            ),
            Denial::LoginRefused { user, peer } => err_frame(
                seq,
                1045,
                b"28000",
                &format!(
                    "Access denied for user '{user}'@'{}' (using password: YES)",
                    peer.ip()
                ),
            ),
            Denial::Throttled(limit) => err_frame(seq, 1040, b"08004", limit),
            Denial::Upstream(failure) => match &failure.server {
                Some(MyRefusal::Server(r)) if r.for_client() => err_frame(
                    seq,
                    r.0.code,
                    &sqlstate(r.0.sqlstate.as_deref()),
                    &r.0.message,
                ),
                Some(MyRefusal::Incompatible) => err_frame(
                    seq,
                    1105,
                    b"08S01",
                    "the database server does not support the protocol features this client uses",
                ),
                _ => err_frame(
                    seq,
                    1105,
                    b"08S01",
                    "could not connect to the database server",
                ),
            },
        };
        client.stream.write_all(&reply).await
    }

    fn authorized(&self, keeper: &Gatekeeper, auth: &Authenticated, login: &mut Login<MyStartup>) {
        let startup = &mut login.startup;
        let local_infile = startup.client_caps & wire::CLIENT_LOCAL_FILES != 0
            && keeper.allows(auth, LOAD_DATA_LOCAL_ACTION, true);
        if !local_infile {
            startup.upstream_caps &= !wire::CLIENT_LOCAL_FILES;
        }
    }

    fn pool_key(
        &self,
        keeper: &Gatekeeper,
        auth: &Authenticated,
        login: &Login<MyStartup>,
    ) -> Option<String> {
        let startup = &login.startup;
        let schema = startup.schema.as_deref()?;
        let upstream_caps = startup.upstream_caps;
        Some(key(
            &auth.db,
            &login.user,
            schema,
            &[
                ("caps".into(), format!("{upstream_caps:x}")),
                ("charset".into(), startup.charset.to_string()),
            ],
            keeper.state.upstream_credentials_epoch(),
        ))
    }

    async fn connect(
        &self,
        keeper: &Gatekeeper,
        auth: &Authenticated,
        login: &Login<MyStartup>,
    ) -> Result<Upstream, UpstreamFailure<MyRefusal>> {
        let startup = &login.startup;
        let mut upstream = upstream::connect(
            &keeper.state,
            &auth.db,
            &LoginRequest {
                user: &login.user,
                schema: startup.schema.as_deref(),
                charset: startup.charset,
                caps: startup.upstream_caps,
                attrs: startup.attrs.clone(),
            },
        )
        .await
        .map_err(|e| {
            let refused = e.downcast_ref::<upstream::Refused>().cloned();
            let of_credential = refused
                .as_ref()
                .is_some_and(|r| matches!(r.0.code, 1045 | 1698 | 1862));
            UpstreamFailure::login(&e, refused.map(MyRefusal::Server), of_credential)
        })?;
        if auth.db.statement_policy != StatementPolicy::Off {
            // Without it names could not be made into ARNs: fail closed.
            let catalog =
                upstream::read_catalog(&mut upstream)
                    .await
                    .map_err(|e| UpstreamFailure {
                        kind: FailureKind::UpstreamUnavailable,
                        reason: format!("reading the server's settings for statement policy: {e}"),
                        server: None,
                    })?;
            upstream.catalog = Some(Arc::new(catalog));
        }
        Ok(upstream)
    }

    fn check_fit(
        &self,
        login: &Login<MyStartup>,
        upstream: &Upstream,
    ) -> Result<(), UpstreamFailure<MyRefusal>> {
        let missing = (login.startup.client_caps & PROTOCOL_CAPS) ^ (upstream.caps & PROTOCOL_CAPS);
        if missing == 0 {
            return Ok(());
        }
        Err(UpstreamFailure {
            kind: FailureKind::UpstreamUnavailable,
            reason: format!(
                "the client and the server disagree on protocol capabilities {missing:#x}"
            ),
            server: Some(MyRefusal::Incompatible),
        })
    }

    async fn welcome(
        &self,
        client: &mut MyClient,
        login: &Login<MyStartup>,
        upstream: &mut Upstream,
        auth: &Authenticated,
    ) -> Result<()> {
        self.kills.lock().unwrap_or_else(|p| p.into_inner()).insert(
            client.connection_id,
            KillTarget {
                principal: auth.caller.arn.clone(),
                database: auth.db.name.clone(),
                addr: upstream.addr.clone(),
                thread_id: upstream.thread_id,
            },
        );
        let mut ok = Vec::new();
        wire::frame(&mut ok, client.seq, |p| {
            wire::ok_packet(
                p,
                &OkInfo {
                    status: upstream.status,
                    ..OkInfo::default()
                },
                login.startup.client_caps,
            )
        });
        if let Err(e) = client.stream.write_all(&ok).await {
            self.forget(client.connection_id);
            return Err(e.into());
        }
        Ok(())
    }

    async fn relay(
        &self,
        keeper: &Gatekeeper,
        session: Session<'_, Self>,
        watch: &mut Watch,
    ) -> Relayed<Upstream> {
        let Session {
            client,
            upstream,
            auth,
            info,
            login,
            allowed,
            gate,
        } = session;
        // MySQL keeps session pooling (registration refuses transaction
        // pooling for it), so a lent connection never reaches here.
        let upstream = match upstream {
            latchkey_gateway::Link::Session(upstream) => upstream,
            latchkey_gateway::Link::Transaction(_) => {
                return Relayed {
                    upstream: None,
                    end: latchkey_gateway::SessionEnd {
                        reason: "transaction pooling is not available for MySQL".into(),
                        lifetime_reached: false,
                        bytes_from_client: 0,
                        bytes_to_client: 0,
                        statements: 0,
                    },
                    reusable: false,
                };
            }
        };
        let config = &keeper.config;
        let audit = keeper.statement_audit(info);
        let caps = upstream.caps;
        let status = upstream.status;
        let local_infile = login.startup.upstream_caps & wire::CLIENT_LOCAL_FILES != 0;
        let connection_id = client.connection_id;
        // Boxed: held across every await of the session, inline it would
        // be reserved in the task beside them.
        let mut relay = Box::new(Relay::new(
            client.stream,
            upstream,
            Tracker::new(caps, audit, local_infile)
                .allow_password_changes(allowed.password_changes)
                .allow_dynamic_sql(allowed.dynamic_sql)
                .with_gate(gate)
                .server_status(status),
            config.max_message_size,
            config.large_messages.share_of(auth.caller.principal_id()),
            watch.counters(),
        ));
        // Err: why the gateway ended the session, and what to tell the
        // client (code, SQLSTATE, text) if it is waiting for nothing.
        type Ended = (String, Option<(u16, &'static [u8; 5], String)>);
        // Set when the watch ended the session.
        let mut interrupted = None;
        let outcome: Result<Stop, Ended> = loop {
            let guarded = watch.guard(std::pin::pin!(relay.run())).await;
            let stop = match guarded {
                Ok(stop) => stop,
                Err(interrupt) => {
                    interrupted = Some(interrupt);
                    break Err((
                        interrupt.reason().to_owned(),
                        Some((1927, b"70100", interrupt.message().to_owned())),
                    ));
                }
            };
            match stop {
                Ok(Stop::Intercepted(taken)) => {
                    match self
                        .intercepted(keeper, &mut relay, &taken, auth, info)
                        .await
                    {
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
                        // MySQL's own error for a client that stops
                        // sending in the middle of a packet.
                        e if e.is_overdue() => Some((
                            1159,
                            b"08S01",
                            "Got timeout reading communication packets".into(),
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
            let (state, db, user, thread_id) = (
                keeper.state.clone(),
                auth.db.clone(),
                info.db_user.clone(),
                relay.upstream.thread_id,
            );
            tokio::spawn(async move {
                if let Err(e) = upstream::kill(&state, &db, &user, thread_id).await {
                    tracing::warn!(database = %db.name, thread_id, error = %e, "could not stop an abandoned statement");
                }
            });
        }
        let reusable =
            matches!(outcome, Ok(Stop::ClientQuit | Stop::ClientClosed)) && relay.reusable();
        let statements = relay.tracker.statement_count;
        let (mut client, relayed) = relay.finish(reason, interrupted, statements, reusable);
        let _ = client.shutdown().await;
        relayed
    }

    async fn reset(upstream: &mut Upstream) -> Result<()> {
        upstream::reset(upstream).await
    }

    fn catalog(upstream: &Upstream) -> Option<Arc<ServerCatalog>> {
        upstream.catalog.clone()
    }
}

impl Mysql {
    /// Answers a command the relay took out: `COM_CHANGE_USER` is
    /// refused (a session never changes user), `KILL` is pointed at the
    /// server's id for the gateway connection it names, SQL the session
    /// may not run gets an access-denied error (and is audited).
    async fn intercepted<C: AsyncRead + AsyncWrite + Unpin>(
        &self,
        keeper: &Gatekeeper,
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
            Interception::Denied(message) => {
                // As MySQL's own ER_TABLEACCESS_DENIED_ERROR: the client
                // learns the action and the object, the audit the rest.
                tracing::info!(session = %info.session_id, "statement denied by statement policy");
                relay.tracker.refused(
                    payload,
                    wire::ErrInfo {
                        code: 1142,
                        sqlstate: Some("42000".into()),
                        message: message.to_string(),
                    },
                );
                relay
                    .client
                    .write_all(&err_frame(1, 1142, b"42000", message))
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
                keeper.record_auth(
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

/// A server's SQLSTATE as five bytes (`HY000` when it sent none).
fn sqlstate(state: Option<&str>) -> [u8; 5] {
    state
        .and_then(|s| s.as_bytes().try_into().ok())
        .unwrap_or(*b"HY000")
}
