//! Logging in to the real MySQL or MariaDB server as the database user,
//! with the password stored in Latchkey (`mysql_native_password`,
//! `caching_sha2_password`, `client_ed25519`), over TLS as the
//! database's `upstream_tls` mode asks; and resetting a connection for
//! the pool with `COM_RESET_CONNECTION`.

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use latchkey_gateway::net::{
    Credential, ServerAddr, Socket, TlsMode, UpstreamStream, start_tls, within_connect_timeout,
};
use latchkey_gateway::pool::{Pooled, RESET_TIMEOUT};
use latchkey_mywire::{self as wire, AuthStep, HandshakeResponse, SslRequest, UpstreamAuth};
use std::sync::Arc;

use latchkey_gateway::statements::ServerCatalog;
use latchkey_identity::AppState;
use latchkey_store::Database;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

/// Largest packet read while logging in or resetting.
const MAX_CONTROL_PACKET: usize = 1 << 20;
/// What the gateway tells servers it accepts in one packet.
const MAX_PACKET_SIZE: u32 = 1 << 30;

/// The server refused the login with an error of its own.
#[derive(Debug, Clone, thiserror::Error)]
#[error("upstream refused: {0}")]
pub struct Refused(pub wire::ErrInfo);

impl Refused {
    /// Whether the client may see this error as it is: the client is
    /// authenticated by now, so an unknown database or a full server is
    /// theirs to read; a refused login (1045 and its kin) is the
    /// gateway's configuration, not the client's doing.
    pub fn for_client(&self) -> bool {
        !matches!(self.0.code, 1044 | 1045 | 1251 | 1698 | 1862)
    }
}

/// A logged-in upstream connection, ready for commands.
pub struct Upstream {
    pub stream: UpstreamStream,
    pub addr: ServerAddr,
    /// The server's id for this connection (what `KILL` takes).
    pub thread_id: u32,
    /// Capabilities in force on this connection.
    pub caps: u64,
    pub server_version: String,
    /// Status flags of the login's OK.
    pub status: u16,
    /// The default schema of the login, selected again by [`reset`]
    /// (pooled connections always have one: it is part of their key).
    pub schema: Option<String>,
    /// What statement policy reads of the server as the connection
    /// opens (when the database has it on).
    pub catalog: Option<Arc<ServerCatalog>>,
    pub created: Instant,
}

impl Pooled for Upstream {
    fn created(&self) -> Instant {
        self.created
    }

    fn alive(&mut self) -> bool {
        latchkey_gateway::pool::stream_alive(&mut self.stream)
    }

    fn move_to_this_thread(&mut self) -> std::io::Result<()> {
        self.stream.move_to_this_thread()
    }
}

/// What the client asked for that the upstream login repeats.
pub struct LoginRequest<'a> {
    pub user: &'a str,
    pub schema: Option<&'a str>,
    pub charset: u8,
    /// Capabilities to ask for: the client's, less what the gateway
    /// withholds (LOCAL INFILE when policy does not allow it).
    pub caps: u64,
    pub attrs: wire::Attrs<'a>,
}

/// Reads one packet of at most `max` bytes: (sequence id, payload).
pub async fn read_packet<S: AsyncRead + Unpin + ?Sized>(
    s: &mut S,
    max: usize,
) -> Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if len > max || len >= wire::MAX_PACKET_PAYLOAD {
        bail!("a packet of {len} bytes where at most {max} are accepted");
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await?;
    Ok((header[3], payload))
}

/// Writes `payload` as packets from sequence id `seq`; returns the next id.
pub async fn write_packet<S: AsyncWrite + Unpin + ?Sized>(
    s: &mut S,
    seq: u8,
    payload: &[u8],
) -> Result<u8> {
    let mut out = Zeroizing::new(Vec::with_capacity(payload.len() + 4));
    let next = wire::split_payload(&mut out, seq, payload);
    s.write_all(&out).await?;
    s.flush().await?;
    Ok(next)
}

/// Connects to `db`'s server and logs in as the request says, for its
/// client user: as the login the gateway holds for that user, and if the
/// server refuses it, as the one a credential rotation set
/// ([`latchkey_gateway::net::login_upstream`]).
pub async fn connect(
    state: &Arc<AppState>,
    db: &Database,
    req: &LoginRequest<'_>,
) -> Result<Upstream> {
    latchkey_gateway::net::login_upstream(state, db, req.user, refused_credentials, |stored| {
        let credential = stored.map_or(Credential::Lazy, Credential::Stored);
        within_connect_timeout(login(state, db, req, credential))
    })
    .await
}

/// Whether a login failed because the server refused its credentials
/// (1045, access denied; 1698, access denied to a login without a
/// password).
fn refused_credentials(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Refused>()
        .is_some_and(|r| matches!(r.0.code, 1045 | 1698))
}

/// One login for the request's client user: as `credential`'s user when
/// it is a stored login, else as that user.
async fn login(
    state: &Arc<AppState>,
    db: &Database,
    req: &LoginRequest<'_>,
    credential: Credential<'_>,
) -> Result<Upstream> {
    let login_user = credential.login_user(req.user);
    let addr = ServerAddr::resolve(&db.upstream).await?;
    let mode = db.upstream_tls;
    let mut socket: Socket = addr.connect().await?;
    let (seq, payload) = read_packet(&mut socket, MAX_CONTROL_PACKET).await?;
    if payload.first() == Some(&0xff) {
        return Err(Refused(wire::parse_err(&payload).map_err(|e| anyhow!("{e}"))?).into());
    }
    let handshake = wire::parse_handshake_v10(&payload).map_err(|e| anyhow!("{e}"))?;
    let server_tls = handshake.capabilities & wire::CLIENT_SSL != 0;
    let use_tls = match mode {
        TlsMode::Disable => false,
        TlsMode::Prefer => server_tls,
        _ if server_tls => true,
        _ => bail!(
            "upstream {} does not offer TLS, and upstream TLS is {}",
            db.upstream,
            mode.as_str()
        ),
    };
    let mut caps = req.caps & handshake.capabilities & !wire::CLIENT_SSL;
    if req.schema.is_some() {
        caps |= wire::CLIENT_CONNECT_WITH_DB;
    } else {
        caps &= !wire::CLIENT_CONNECT_WITH_DB;
    }
    let mut seq = seq.wrapping_add(1);
    let mut stream = if use_tls {
        caps |= wire::CLIENT_SSL;
        let mut out = Vec::new();
        wire::ssl_request(
            &mut out,
            &SslRequest {
                capabilities: caps,
                max_packet_size: MAX_PACKET_SIZE,
                charset: req.charset,
            },
        );
        seq = write_packet(&mut socket, seq, &out).await?;
        start_tls(state, db, mode, login_user, socket).await?
    } else {
        UpstreamStream::Plain(socket)
    };
    let password = credential.password(state, db, req.user).await?;
    let (mut auth, response) = UpstreamAuth::start(&handshake, password.as_bytes(), use_tls, caps)
        .map_err(|e| anyhow!("upstream authentication: {e}"))?;
    let response = Zeroizing::new(response);
    let mut out = Zeroizing::new(Vec::new());
    wire::handshake_response(
        &mut out,
        &HandshakeResponse {
            capabilities: caps,
            max_packet_size: MAX_PACKET_SIZE,
            charset: req.charset,
            username: login_user,
            auth_response: &response,
            database: req.schema,
            auth_plugin: Some(auth.plugin()),
            attrs: req.attrs.clone(),
            zstd_level: None,
        },
    )
    .map_err(|e| anyhow!("{e}"))?;
    write_packet(&mut stream, seq, &out).await?;
    let ok = loop {
        let (seq, payload) = read_packet(&mut stream, MAX_CONTROL_PACKET).await?;
        match auth
            .on_server_packet(&payload)
            .map_err(|e| anyhow!("upstream authentication: {e}"))?
        {
            AuthStep::Send(data) => {
                let data = Zeroizing::new(data);
                write_packet(&mut stream, seq.wrapping_add(1), &data).await?;
            }
            AuthStep::Wait => {}
            AuthStep::Done(ok) => break ok,
            AuthStep::Failed(err) => return Err(Refused(err).into()),
        }
    };
    Ok(Upstream {
        stream,
        addr,
        thread_id: handshake.connection_id,
        caps,
        server_version: handshake.server_version,
        status: ok.status,
        schema: req.schema.map(str::to_owned),
        catalog: None,
        created: Instant::now(),
    })
}

/// Returns the connection to a fresh session's state with
/// `COM_RESET_CONNECTION` (it rolls back, drops prepared statements,
/// temporary tables, user variables, locks and session settings), then
/// selects the login's schema again, since the client may have changed
/// it.
pub async fn reset(upstream: &mut Upstream) -> Result<()> {
    let schema = upstream
        .schema
        .clone()
        .ok_or_else(|| anyhow!("a connection without a default schema is not pooled"))?;
    tokio::time::timeout(RESET_TIMEOUT, async {
        command(upstream, &[wire::COM_RESET_CONNECTION]).await?;
        let mut init_db = vec![wire::COM_INIT_DB];
        init_db.extend_from_slice(schema.as_bytes());
        command(upstream, &init_db).await
    })
    .await
    .map_err(|_| anyhow!("resetting the connection timed out"))?
}

/// Ends the server connection `thread_id` (and the statement it runs)
/// from a fresh login as `user`: for a session whose client is gone or
/// was ended mid-statement, whose connection cannot be reused anyway.
/// MySQL, unlike PostgreSQL, keeps running a statement whose client has
/// vanished until it next writes to it.
pub async fn kill(state: &Arc<AppState>, db: &Database, user: &str, thread_id: u32) -> Result<()> {
    let mut up = own_login(state, db, user).await?;
    let mut payload = vec![wire::COM_PROCESS_KILL];
    payload.extend_from_slice(&thread_id.to_le_bytes());
    tokio::time::timeout(RESET_TIMEOUT, command(&mut up, &payload))
        .await
        .map_err(|_| anyhow!("KILL timed out"))?
}

/// Runs `sql` in `schema` as `user` on a fresh login and returns its rows
/// as text (`None` for NULL): for the CLI's catalogue reads (`latchkey db
/// classify --suggest`), not for sessions.
pub async fn query_text(
    state: &Arc<AppState>,
    db: &Database,
    user: &str,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>> {
    let mut up = own_login(state, db, user).await?;
    rows(&mut up, sql).await
}

/// A login of the gateway's own (no client behind it) as `user`, with
/// `password` (as `user` itself, nothing else tried), or the stored
/// login when `None`: for credential rotation,
/// which tests and changes passwords Latchkey does not store (yet).
/// Run statements on it with [`query`].
pub async fn session(
    state: &Arc<AppState>,
    db: &Database,
    user: &str,
    password: Option<&str>,
) -> Result<Upstream> {
    let req = own_request(user);
    match password {
        Some(p) => within_connect_timeout(login(state, db, &req, Credential::Given(p))).await,
        None => connect(state, db, &req).await,
    }
}

/// Runs one statement on `up`: its rows as text (`None` for NULL), none
/// for a statement answered with OK; the server's error as
/// [`QueryFailed`].
pub async fn query(up: &mut Upstream, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    rows(up, sql).await
}

/// A statement the server answered with an error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("query failed: {0}")]
pub struct QueryFailed(pub wire::ErrInfo);

/// What statement policy needs of the server, read on a session's
/// upstream connection as it opens: whether table and database names
/// are compared without case.
pub async fn read_catalog(upstream: &mut Upstream) -> Result<ServerCatalog> {
    let rows = tokio::time::timeout(
        RESET_TIMEOUT,
        rows(upstream, "SELECT @@lower_case_table_names"),
    )
    .await
    .map_err(|_| anyhow!("reading lower_case_table_names timed out"))??;
    let value = match rows.as_slice() {
        [row] => match row.as_slice() {
            [Some(value)] => value.clone(),
            _ => bail!("lower_case_table_names: an unexpected row"),
        },
        _ => bail!("lower_case_table_names: {} rows", rows.len()),
    };
    let lower_case_table_names = match value.as_str() {
        "0" => false,
        "1" | "2" => true,
        other => bail!("lower_case_table_names is {other:?}"),
    };
    Ok(ServerCatalog {
        lower_case_table_names,
        ..ServerCatalog::default()
    })
}

/// Runs `sql` (one statement giving one result set) on `up` and returns
/// its rows as text (`None` for NULL), whichever way the connection ends
/// result sets (EOF packets, or an OK with `CLIENT_DEPRECATE_EOF`).
async fn rows(up: &mut Upstream, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    const MAX_ROW: usize = 1 << 20;
    let deprecate_eof = up.caps & wire::CLIENT_DEPRECATE_EOF != 0;
    // Wiped: statements that set passwords pass through it.
    let mut payload = Zeroizing::new(Vec::with_capacity(sql.len() + 1));
    payload.push(wire::COM_QUERY);
    payload.extend_from_slice(sql.as_bytes());
    write_packet(&mut up.stream, 0, &payload).await?;
    let (_, first) = read_packet(&mut up.stream, MAX_ROW).await?;
    match first.first() {
        Some(0xff) => {
            return Err(QueryFailed(wire::parse_err(&first).map_err(|e| anyhow!("{e}"))?).into());
        }
        // A statement without a result set.
        Some(0x00) => {
            up.status = wire::parse_ok(&first, up.caps)
                .map_err(|e| anyhow!("{e}"))?
                .status;
            return Ok(Vec::new());
        }
        _ => {}
    }
    let (columns, _) = wire::read_lenenc_int(&first).map_err(|e| anyhow!("{e}"))?;
    // Column definitions, then (without CLIENT_DEPRECATE_EOF) the EOF
    // that ends them.
    let definitions = if deprecate_eof { columns } else { columns + 1 };
    for _ in 0..definitions {
        read_packet(&mut up.stream, MAX_ROW).await?;
    }
    let mut rows = Vec::new();
    loop {
        let (_, packet) = read_packet(&mut up.stream, MAX_ROW).await?;
        match packet.first() {
            // An EOF, or the OK that replaces it (rows this small never
            // start with 0xfe).
            Some(0xfe) if deprecate_eof || packet.len() < 9 => {
                let status = if deprecate_eof {
                    wire::parse_ok(&packet, up.caps)
                        .map_err(|e| anyhow!("{e}"))?
                        .status
                } else {
                    packet
                        .get(3..5)
                        .map_or(up.status, |s| u16::from_le_bytes([s[0], s[1]]))
                };
                up.status = status;
                return Ok(rows);
            }
            Some(0xff) => {
                return Err(
                    QueryFailed(wire::parse_err(&packet).map_err(|e| anyhow!("{e}"))?).into(),
                );
            }
            _ => {}
        }
        let mut rest = packet.as_slice();
        let mut row = Vec::new();
        for _ in 0..columns {
            if rest.first() == Some(&0xfb) {
                row.push(None);
                rest = &rest[1..];
                continue;
            }
            let (value, after) = wire::read_lenenc_bytes(rest).map_err(|e| anyhow!("{e}"))?;
            row.push(Some(String::from_utf8_lossy(value).into_owned()));
            rest = after;
        }
        rows.push(row);
    }
}

/// A login of the gateway's own (no client behind it) as `user`, with no
/// default schema and the capabilities a plain command needs (no
/// `CLIENT_DEPRECATE_EOF`: result sets end with EOF packets).
async fn own_login(state: &Arc<AppState>, db: &Database, user: &str) -> Result<Upstream> {
    connect(state, db, &own_request(user)).await
}

fn own_request(user: &str) -> LoginRequest<'_> {
    let caps = wire::CLIENT_PROTOCOL_41
        | wire::CLIENT_SECURE_CONNECTION
        | wire::CLIENT_PLUGIN_AUTH
        | wire::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | wire::CLIENT_TRANSACTIONS;
    LoginRequest {
        user,
        schema: None,
        charset: wire::UTF8MB4_GENERAL_CI,
        caps,
        attrs: Vec::new(),
    }
}

/// Sends a command that gets OK or ERR, and reads the answer.
async fn command(upstream: &mut Upstream, payload: &[u8]) -> Result<()> {
    write_packet(&mut upstream.stream, 0, payload).await?;
    let (_, reply) = read_packet(&mut upstream.stream, MAX_CONTROL_PACKET).await?;
    match reply.first() {
        Some(0x00) => {
            let ok = wire::parse_ok(&reply, upstream.caps).map_err(|e| anyhow!("{e}"))?;
            upstream.status = ok.status;
            Ok(())
        }
        Some(0xff) => bail!(
            "{} failed: {}",
            wire::command_name(payload[0]),
            wire::parse_err(&reply).map_err(|e| anyhow!("{e}"))?
        ),
        _ => bail!("unexpected reply to {}", wire::command_name(payload[0])),
    }
}
