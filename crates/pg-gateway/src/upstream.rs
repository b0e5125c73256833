//! Logging in to the real PostgreSQL server as the database user, with
//! credentials the client never sees, over TLS as the database's
//! `upstream_tls` mode asks (libpq's `sslmode` meanings).

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use latchkey_gateway::net::{Credential, Socket, TlsMode, within_connect_timeout};
use latchkey_pgwire::{self as wire, AuthRequest};
use std::sync::Arc;

use latchkey_gateway::statements::ServerCatalog;
use latchkey_identity::AppState;
use latchkey_store::{Database, StatementPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use latchkey_gateway::net::{ServerAddr, UpstreamStream, check_tls_settings, upstream_host};

use crate::read_message;

/// The server refused the login with an error of its own.
#[derive(Debug, Clone, thiserror::Error)]
#[error("upstream refused: {code} {message}")]
pub struct Refused {
    pub code: String,
    pub message: String,
}

impl Refused {
    /// Whether the client may see this error as it is. The client is
    /// authenticated by now, so the server's word on a missing database
    /// or a full server is theirs to read; an authentication failure is
    /// the gateway's configuration, not the client's doing.
    pub fn for_client(&self) -> bool {
        !self.code.starts_with("28")
    }
}

/// A logged-in upstream session, ready for queries.
pub struct Upstream {
    pub stream: UpstreamStream,
    /// Where cancel requests for this backend go.
    pub addr: ServerAddr,
    /// The backend's own cancel key.
    pub pid: u32,
    pub key: u32,
    /// `ParameterStatus` values as the server last reported them.
    pub params: Vec<(String, String)>,
    pub created: Instant,
    /// What statement policy reads of the server's catalogue at login
    /// (when the database has it on).
    pub catalog: Option<Arc<ServerCatalog>>,
    /// Where a cancel of this backend goes (made once, shared with each
    /// client it is lent to).
    pub cancel: Arc<CancelTarget>,
    /// Transaction pooling: the carried settings a client set on this
    /// connection (absent: the session's default).
    pub carried: Vec<(&'static str, String)>,
    /// Transaction pooling: the statements the gateway prepared on it.
    pub statements: latchkey_pg_stream::prepared::ServerStatements,
}

/// Where a cancel request for one backend goes.
#[derive(Debug)]
pub struct CancelTarget {
    pub upstream: ServerAddr,
    pub pid: u32,
    pub key: u32,
}

impl latchkey_gateway::pool::Pooled for Upstream {
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

impl Upstream {
    /// Runs the gateway's own `sql` on this idle connection, the answers
    /// kept from any client: parameters it reports are recorded, the first
    /// row's text columns go to `row`, and it must end idle.
    pub async fn run_quietly(
        &mut self,
        sql: &str,
        row: Option<&mut Vec<Option<String>>>,
    ) -> Result<()> {
        let mut out = Vec::with_capacity(sql.len() + 8);
        wire::query(&mut out, sql);
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        self.read_replies(sql, row).await
    }

    /// Reads the answers to the gateway's own statements (`what`, for
    /// errors) up to `ReadyForQuery`, kept from any client: parameters
    /// the server reports are recorded, the first row's text columns go
    /// to `row`, and the connection must end idle.
    async fn read_replies(
        &mut self,
        what: &str,
        mut row: Option<&mut Vec<Option<String>>>,
    ) -> Result<()> {
        let mut failed = None;
        loop {
            let (tag, body) = read_message(&mut self.stream, 1 << 20).await?;
            match tag {
                b'S' => {
                    let (name, value) =
                        wire::parse_parameter_status(&body).map_err(|e| anyhow!("{e}"))?;
                    self.set_param(name, value);
                }
                b'D' => {
                    if let Some(row) = row.as_deref_mut()
                        && row.is_empty()
                    {
                        *row = wire::text_columns(&body).map_err(|e| anyhow!("{e}"))?;
                    }
                }
                b'E' => {
                    let (code, text) = wire::parse_error(&body);
                    failed.get_or_insert(format!("{code} {text}"));
                }
                // Descriptions, completions (parse, bind, command), no
                // data, notifications of a listener being reset, notices.
                b'T' | b'C' | b'1' | b'2' | b'n' | b'N' | b'I' | b'A' => {}
                b'Z' => {
                    if let Some(why) = failed {
                        bail!("{what}: {why}");
                    }
                    if body != b"I" {
                        bail!("the connection was not idle after {what}");
                    }
                    return Ok(());
                }
                other => bail!("unexpected reply to {what}: {}", char::from(other)),
            }
        }
    }

    /// Runs the gateway's own `statements` on this idle connection in one
    /// pipeline (`Parse`, `Bind`, `Execute` each, one `Sync`), each with its
    /// text parameters bound apart from the SQL, so that no value is ever
    /// read as SQL; the answers are kept from any client as
    /// [`Upstream::run_quietly`] keeps them. A statement that fails skips
    /// the rest, and the whole is an error.
    pub async fn run_bound(&mut self, statements: &[(&str, Vec<&str>)]) -> Result<()> {
        let mut out = Vec::new();
        for (sql, params) in statements {
            wire::parse_unnamed(&mut out, sql);
            wire::bind_unnamed_text(&mut out, params);
            wire::execute_unnamed(&mut out);
        }
        wire::sync(&mut out);
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        self.read_replies("the gateway's own statements", None)
            .await
    }

    /// Records a `ParameterStatus` the server sent.
    pub fn set_param(&mut self, name: &str, value: &str) {
        match self.params.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => self.params.push((name.to_owned(), value.to_owned())),
        }
    }
}

/// Connects to `db`'s server and logs in for client user `user` to
/// `database`, sending the client's other startup parameters along: as
/// the login the gateway holds for `user`, and if the server refuses it,
/// as the one a credential rotation set
/// ([`latchkey_gateway::net::login_upstream`]). Reads up to the first
/// `ReadyForQuery`.
pub async fn connect(
    state: &Arc<AppState>,
    db: &Database,
    user: &str,
    database: &str,
    forwarded: &[(String, String)],
) -> Result<Upstream> {
    stored_login(state, db, user, database, forwarded).await
}

/// A login of the gateway's own (no client behind it) as `user` to
/// `database`, with `password` (as `user` itself, nothing else tried),
/// or the stored login when `None`: for credential rotation, which tests
/// and changes passwords Latchkey does not store (yet).
/// `client_encoding` is UTF8, so statements are read as written.
pub async fn session(
    state: &Arc<AppState>,
    db: &Database,
    user: &str,
    database: &str,
    password: Option<&str>,
) -> Result<Upstream> {
    let forwarded = [("client_encoding".to_owned(), "UTF8".to_owned())];
    match password {
        Some(p) => {
            within_connect_timeout(login(
                state,
                db,
                user,
                database,
                &forwarded,
                Credential::Given(p),
            ))
            .await
        }
        None => stored_login(state, db, user, database, &forwarded).await,
    }
}

/// Whether a login failed because the server refused its credentials
/// (SQLSTATE class 28: a wrong password, an unknown role, no
/// `pg_hba.conf` entry).
fn refused_credentials(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Refused>()
        .is_some_and(|r| r.code.starts_with("28"))
}

/// Logs in for `user` with the logins the gateway holds, each try in a
/// fresh connection within the connect timeout.
async fn stored_login(
    state: &Arc<AppState>,
    db: &Database,
    user: &str,
    database: &str,
    forwarded: &[(String, String)],
) -> Result<Upstream> {
    latchkey_gateway::net::login_upstream(state, db, user, refused_credentials, |stored| {
        let credential = stored.map_or(Credential::Lazy, Credential::Stored);
        within_connect_timeout(login(state, db, user, database, forwarded, credential))
    })
    .await
}

/// One login for client user `user`: as `credential`'s user when it is a
/// stored login, else as `user`.
async fn login(
    state: &Arc<AppState>,
    db: &Database,
    user: &str,
    database: &str,
    forwarded: &[(String, String)],
    credential: Credential<'_>,
) -> Result<Upstream> {
    let given = matches!(credential, Credential::Given(_));
    let login_user = credential.login_user(user);
    let addr = ServerAddr::resolve(&db.upstream).await?;
    let mode = db.upstream_tls;
    let tcp = addr.connect().await?;
    let mut up = match mode {
        TlsMode::Disable => UpstreamStream::Plain(tcp),
        _ => start_tls(state, db, mode, login_user, tcp).await?,
    };
    let mut params: Vec<(&str, &str)> = vec![("user", login_user), ("database", database)];
    params.extend(forwarded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // Wiped on drop: it carries the password or its hash.
    let mut out = zeroize::Zeroizing::new(Vec::new());
    wire::startup_message(&mut out, &params);
    up.write_all(&out).await?;
    let password = || credential.password(state, db, user);
    let mut scram = None;
    let mut asked = false;
    loop {
        let (tag, body) = read_message(&mut up, 1 << 20).await?;
        out.clear();
        match tag {
            b'R' => match wire::parse_auth(&body).map_err(|e| anyhow!("{e}"))? {
                // A password given to be tested means nothing if the
                // server lets anyone in (trust, certificates).
                AuthRequest::Ok if given && !asked => {
                    bail!("the server accepted {user} without a password, so none can be tested")
                }
                AuthRequest::Ok => break,
                AuthRequest::Cleartext => {
                    asked = true;
                    wire::password_message(&mut out, password().await?.as_bytes());
                }
                AuthRequest::Md5 { salt } => {
                    asked = true;
                    let hash = postgres_protocol::authentication::md5_hash(
                        login_user.as_bytes(),
                        password().await?.as_bytes(),
                        salt,
                    );
                    wire::password_message(&mut out, hash.as_bytes());
                }
                AuthRequest::Sasl { mechanisms } => {
                    use postgres_protocol::authentication::sasl::{
                        ChannelBinding, SCRAM_SHA_256, ScramSha256,
                    };
                    if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                        bail!("upstream offers no SCRAM-SHA-256");
                    }
                    asked = true;
                    let s = ScramSha256::new(
                        password().await?.as_bytes(),
                        ChannelBinding::unsupported(),
                    );
                    wire::sasl_initial_response(&mut out, SCRAM_SHA_256, s.message());
                    scram = Some(s);
                }
                AuthRequest::SaslContinue(data) => {
                    let mut s = scram.take().context("SASL continue without SASL")?;
                    // 4,096 PBKDF2 iterations (~1-2 ms): off the session
                    // threads, which relay other clients meanwhile.
                    let s =
                        tokio::task::spawn_blocking(move || s.update(&data).map(|()| s)).await??;
                    wire::sasl_response(&mut out, s.message());
                    scram = Some(s);
                }
                AuthRequest::SaslFinal(data) => {
                    scram
                        .take()
                        .context("SASL final without SASL")?
                        .finish(&data)?;
                }
                AuthRequest::Other(code) => bail!("unsupported upstream authentication {code}"),
            },
            b'E' => {
                let (code, message) = wire::parse_error(&body);
                return Err(Refused { code, message }.into());
            }
            _ => bail!("unexpected upstream message {}", char::from(tag)),
        }
        if !out.is_empty() {
            up.write_all(&out).await?;
        }
    }
    let mut upstream = Upstream {
        stream: up,
        cancel: Arc::new(CancelTarget {
            upstream: addr.clone(),
            pid: 0,
            key: 0,
        }),
        addr,
        pid: 0,
        key: 0,
        params: Vec::new(),
        created: Instant::now(),
        catalog: None,
        carried: Vec::new(),
        statements: Default::default(),
    };
    // Parameters and the cancel key, up to ReadyForQuery.
    let (mut pid, mut key) = (0, 0);
    loop {
        let (tag, body) = read_message(&mut upstream.stream, 1 << 20).await?;
        match tag {
            b'S' => {
                let (name, value) =
                    wire::parse_parameter_status(&body).map_err(|e| anyhow!("{e}"))?;
                upstream.set_param(name, value);
            }
            b'K' if body.len() == 8 => {
                pid = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                key = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
            }
            b'Z' => break,
            b'N' => {}
            b'E' => {
                let (code, message) = wire::parse_error(&body);
                return Err(Refused { code, message }.into());
            }
            _ => bail!("unexpected upstream message {}", char::from(tag)),
        }
    }
    upstream.pid = pid;
    upstream.key = key;
    upstream.cancel = Arc::new(CancelTarget {
        upstream: upstream.addr.clone(),
        pid,
        key,
    });
    if db.statement_policy != StatementPolicy::Off {
        upstream.catalog = Some(Arc::new(read_catalog(&mut upstream.stream).await?));
    }
    Ok(upstream)
}

/// Runs `sql` as `user` in `database` on a fresh login and returns its
/// rows as text (`None` for NULL): for the CLI's catalogue reads
/// (`latchkey db classify --suggest`), not for sessions.
pub async fn query_text(
    state: &Arc<AppState>,
    db: &Database,
    user: &str,
    database: &str,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>> {
    let mut up = connect(state, db, user, database, &[]).await?;
    simple_query(&mut up, sql).await
}

/// Runs `sql` as one simple query on `up` and returns the rows of its
/// results as text (`None` for NULL), or the server's error as
/// [`Refused`]. Reads up to `ReadyForQuery` either way, so the session
/// can run the next statement (after an error inside a transaction
/// block, only `ROLLBACK`). The query buffer is wiped: statements that
/// set passwords pass through it.
pub async fn simple_query(up: &mut Upstream, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(sql.len() + 6));
    wire::query(&mut out, sql);
    up.stream.write_all(&out).await?;
    up.stream.flush().await?;
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let (tag, body) = read_message(&mut up.stream, 1 << 24).await?;
        match tag {
            b'D' => rows.push(wire::text_columns(&body).map_err(|e| anyhow!("{e}"))?),
            b'Z' => {
                return match error {
                    Some(e) => Err(e),
                    None => Ok(rows),
                };
            }
            b'E' => {
                let (code, message) = wire::parse_error(&body);
                error.get_or_insert(Refused { code, message }.into());
            }
            _ => {}
        }
    }
}

/// The effective `search_path` (existing schemas, as the session's role
/// and database set it), which relations each view reads, the names of
/// built-in functions that another schema overloads, and of functions
/// callable as `row.f`.
const CATALOG_QUERY: &str = "SELECT 'path', coalesce((SELECT string_agg(quote_ident(s), ', ') \
FROM unnest(current_schemas(false)) s), ''), '', '', ''; \
SELECT DISTINCT 'view', vn.nspname::text, v.relname::text, tn.nspname::text, t.relname::text \
FROM pg_rewrite r JOIN pg_class v ON v.oid = r.ev_class \
JOIN pg_namespace vn ON vn.oid = v.relnamespace \
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
AND d.refclassid = 'pg_class'::regclass \
JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
WHERE v.relkind IN ('v', 'm') AND t.oid <> v.oid \
AND vn.nspname NOT IN ('pg_catalog', 'information_schema'); \
SELECT DISTINCT 'function', p.proname::text, '', '', '' \
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
WHERE n.nspname <> 'pg_catalog' AND p.proname IN \
(SELECT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace); \
SELECT DISTINCT 'attribute', p.proname::text, '', '', '' \
FROM pg_proc p JOIN pg_type t ON t.oid = p.proargtypes[0] \
WHERE p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1 \
AND t.typtype IN ('c', 'p') AND p.pronamespace <> 'pg_catalog'::regnamespace";

/// What statement policy needs of the server's catalogue, read once per
/// upstream session.
async fn read_catalog(stream: &mut UpstreamStream) -> Result<ServerCatalog> {
    let mut out = Vec::new();
    wire::query(&mut out, CATALOG_QUERY);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut catalog = ServerCatalog::default();
    loop {
        let (tag, body) = read_message(stream, 1 << 24).await?;
        match tag {
            b'D' => {
                let row = wire::text_columns(&body).map_err(|e| anyhow!("{e}"))?;
                match row.as_slice() {
                    [Some(kind), Some(path), ..] if kind == "path" => {
                        catalog.search_path = Some(path.clone());
                    }
                    [
                        Some(kind),
                        Some(schema),
                        Some(view),
                        Some(read_schema),
                        Some(read_name),
                    ] if kind == "view" => {
                        catalog
                            .view_reads
                            .entry((schema.clone(), view.clone()))
                            .or_default()
                            .push((read_schema.clone(), read_name.clone()));
                    }
                    [Some(kind), Some(name), ..] if kind == "function" => {
                        catalog.overloaded_functions.push(name.clone());
                    }
                    [Some(kind), Some(name), ..] if kind == "attribute" => {
                        catalog.attribute_functions.push(name.clone());
                    }
                    _ => bail!("unexpected catalogue row"),
                }
            }
            b'Z' => break,
            b'E' => {
                let (code, message) = wire::parse_error(&body);
                return Err(Refused { code, message }.into());
            }
            _ => {}
        }
    }
    if catalog.search_path.is_none() {
        bail!("the server did not report its search_path");
    }
    Ok(catalog)
}

/// Sends `SSLRequest` and, if the server agrees, runs the TLS handshake.
/// With `prefer` a server without TLS gets a plaintext session; any
/// other mode refuses it.
async fn start_tls(
    state: &Arc<AppState>,
    db: &Database,
    mode: TlsMode,
    user: &str,
    mut tcp: Socket,
) -> Result<UpstreamStream> {
    let mut out = Vec::with_capacity(8);
    wire::ssl_request(&mut out);
    tcp.write_all(&out).await?;
    // Exactly one byte: anything after 'S' belongs to the TLS handshake,
    // never to the plaintext protocol.
    match tcp.read_u8().await? {
        b'S' => latchkey_gateway::net::start_tls(state, db, mode, user, tcp).await,
        b'N' if mode == TlsMode::Prefer => Ok(UpstreamStream::Plain(tcp)),
        b'N' => bail!(
            "upstream {} does not offer TLS, and upstream TLS is {}",
            db.upstream,
            mode.as_str()
        ),
        other => bail!(
            "unexpected answer {:?} from upstream {} to SSLRequest",
            char::from(other),
            db.upstream
        ),
    }
}
