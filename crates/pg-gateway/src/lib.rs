//! The PostgreSQL gateway: a client connects with TLS and a database auth
//! token as its password; the gateway verifies the token, asks the policy
//! engine for `rds-db:connect`, connects upstream with credentials the
//! client never sees, then relays bytes both ways.
//!
//! A denied client learns only what RDS would say
//! (`FATAL 28P01 PAM authentication failed for user "..."`); the precise
//! reason goes to the log.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use latchkey_dbtoken::{DbAuthToken, TokenAction, TokenVerifier};
use latchkey_pgwire::{self as wire, AuthRequest, Severity, Startup};
use latchkey_server::state::{AppState, now};
use latchkey_sigv4::AmzDate;
use latchkey_store::{Database, random};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// From TCP accept to the first relayed byte (against slowloris).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message accepted before authentication (tokens are ~1 KiB;
/// PostgreSQL clients must be able to send at least 2 KiB).
pub const MAX_AUTH_MESSAGE: usize = 16 * 1024;

/// A relayed session: client stream, upstream, the cancel key the
/// client holds, and its place in the connection limits.
type Session<'a> = (Box<dyn Stream>, TcpStream, Option<(u32, u32)>, Slot<'a>);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Where a client's cancel key really points.
#[derive(Clone, Copy)]
struct CancelTarget {
    upstream: SocketAddr,
    pid: u32,
    key: u32,
}

/// Gateway settings.
pub struct GatewayConfig {
    /// Signing region tokens must use; part of the connect ARN.
    pub region: String,
    /// The port tokens must be signed for (the gateway's own).
    pub port: u16,
    /// Development only: accept clients without TLS.
    pub allow_plaintext: bool,
    /// Sessions at once, in all.
    pub max_connections: u32,
    /// Sessions at once from one source address.
    pub max_per_ip: u32,
    /// Sessions at once for one principal (user or role session ARN).
    pub max_per_principal: u32,
}

/// Live session counts, for the connection limits.
#[derive(Default)]
struct Counts {
    total: u32,
    by_ip: HashMap<IpAddr, u32>,
    by_principal: HashMap<String, u32>,
}

/// A session's place in the counts, given back when it ends.
struct Slot<'a> {
    counts: &'a Mutex<Counts>,
    ip: IpAddr,
    principal: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        release(&mut c.by_ip, &self.ip);
        release(&mut c.by_principal, self.principal.as_str());
    }
}

/// Decrements a per-key count, dropping keys that reach zero.
fn release<K, Q>(map: &mut HashMap<K, u32>, key: &Q)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// Takes a session slot, or says which limit is full.
fn acquire<'a>(
    counts: &'a Mutex<Counts>,
    config: &GatewayConfig,
    ip: IpAddr,
    principal: &str,
) -> Result<Slot<'a>, &'static str> {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    if c.total >= config.max_connections {
        return Err("too many connections");
    }
    if c.by_ip.get(&ip).copied().unwrap_or(0) >= config.max_per_ip {
        return Err("too many connections from this address");
    }
    if c.by_principal.get(principal).copied().unwrap_or(0) >= config.max_per_principal {
        return Err("too many connections for this principal");
    }
    c.total += 1;
    *c.by_ip.entry(ip).or_default() += 1;
    *c.by_principal.entry(principal.to_owned()).or_default() += 1;
    Ok(Slot {
        counts,
        ip,
        principal: principal.to_owned(),
    })
}

pub struct Gateway {
    state: Arc<AppState>,
    tls: TlsAcceptor,
    verifier: TokenVerifier,
    config: GatewayConfig,
    databases: RwLock<Vec<Database>>,
    cancels: Mutex<HashMap<(u32, u32), CancelTarget>>,
    counts: Mutex<Counts>,
}

/// Why a client was refused: for the log only.
struct Denied(String);

impl Gateway {
    pub fn new(
        state: Arc<AppState>,
        tls: Arc<rustls::ServerConfig>,
        config: GatewayConfig,
    ) -> Result<Self> {
        // libpq 17 asks for ALPN "postgresql" (required for direct TLS).
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"postgresql".to_vec()];
        let gateway = Self {
            state,
            tls: TlsAcceptor::from(Arc::new(tls)),
            verifier: TokenVerifier::new(),
            config,
            databases: RwLock::new(Vec::new()),
            cancels: Mutex::new(HashMap::new()),
            counts: Mutex::new(Counts::default()),
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

    /// Accepts clients until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        latchkey_server::http::accept_until(listener, shutdown, |tcp, peer| {
            let gw = self.clone();
            tokio::spawn(async move {
                if let Err(e) = gw.client(tcp, peer).await {
                    tracing::debug!(%peer, error = %e, "postgres client ended");
                }
            });
        })
        .await;
        Ok(())
    }

    async fn client(&self, tcp: TcpStream, peer: SocketAddr) -> Result<()> {
        let session = tokio::time::timeout(STARTUP_TIMEOUT, self.handshake(tcp, peer))
            .await
            .map_err(|_| anyhow!("startup timed out"))??;
        let Some((mut client, mut upstream, cancel_key, _slot)) = session else {
            return Ok(());
        };
        let result = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        if let Some(k) = cancel_key {
            self.cancels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&k);
        }
        result.map(|_| ()).context("relay")
    }

    /// TLS, startup, token, policy and upstream login. `None` when the
    /// connection ended normally before relaying (cancel, denial).
    async fn handshake(&self, mut tcp: TcpStream, peer: SocketAddr) -> Result<Option<Session<'_>>> {
        let mut first = [0u8; 1];
        tcp.peek(&mut first).await?;
        let mut stream: Box<dyn Stream>;
        let mut sni = None;
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
                            let mut out = Vec::new();
                            wire::error_response(
                                &mut out,
                                Severity::Fatal,
                                "28000",
                                "SSL connection is required: connect with sslmode=require or stronger",
                            );
                            tcp.write_all(&out).await?;
                            tracing::info!(%peer, "postgres client refused: plaintext");
                            return Ok(None);
                        }
                        stream = Box::new(tcp);
                        break s;
                    }
                }
            }
        };
        let startup = match startup {
            Startup::Cancel { pid, key } => {
                self.cancel(pid, key).await;
                return Ok(None);
            }
            Startup::Startup { .. } => startup,
            _ => bail!("a second SSL or GSS request"),
        };
        let user = startup.param("user").unwrap_or_default().to_owned();
        let database = startup.param("database").unwrap_or(&user).to_owned();

        let mut out = Vec::new();
        wire::auth_cleartext(&mut out);
        stream.write_all(&out).await?;
        let (tag, body) = read_message(&mut stream, MAX_AUTH_MESSAGE).await?;
        if tag != b'p' {
            bail!("expected a password message");
        }
        let password = wire::parse_password(&body).map_err(|e| anyhow!("{e}"))?;
        let (db, principal) = match self.authenticate(password, &user, sni.as_deref(), peer) {
            Ok(found) => found,
            Err(Denied(reason)) => {
                tracing::info!(%peer, user = %user, reason = %reason, "postgres login denied");
                let mut out = Vec::new();
                wire::error_response(
                    &mut out,
                    Severity::Fatal,
                    "28P01",
                    &format!("PAM authentication failed for user \"{user}\""),
                );
                stream.write_all(&out).await?;
                return Ok(None);
            }
        };
        let slot = match acquire(&self.counts, &self.config, peer.ip(), &principal) {
            Ok(slot) => slot,
            Err(limit) => {
                tracing::info!(%peer, principal = %principal, limit, "postgres connection refused");
                let mut out = Vec::new();
                wire::error_response(&mut out, Severity::Fatal, "53300", limit);
                stream.write_all(&out).await?;
                return Ok(None);
            }
        };
        let forwarded: Vec<(String, String)> = match &startup {
            Startup::Startup { params } => params
                .iter()
                .filter(|(k, _)| k != "user" && k != "database")
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        match self
            .upstream_login(&db, &user, &database, &forwarded, &mut stream)
            .await
        {
            Ok((upstream, cancel_key)) => {
                tracing::info!(%peer, user = %user, database = %db.name, "postgres session started");
                Ok(Some((stream, upstream, cancel_key, slot)))
            }
            Err(e) => {
                tracing::warn!(%peer, database = %db.name, error = %e, "upstream login failed");
                let mut out = Vec::new();
                wire::error_response(
                    &mut out,
                    Severity::Fatal,
                    "08006",
                    "could not connect to the database server",
                );
                let _ = stream.write_all(&out).await;
                Ok(None)
            }
        }
    }

    /// Token, endpoint, user and policy checks.
    fn authenticate(
        &self,
        password: &[u8],
        user: &str,
        sni: Option<&str>,
        peer: SocketAddr,
    ) -> Result<(Database, String), Denied> {
        let deny = |r: String| Denied(r);
        let token = DbAuthToken::parse_bytes(password).map_err(|e| deny(format!("token: {e}")))?;
        if token.action != TokenAction::Connect {
            return Err(deny("token is not an rds-db connect token".into()));
        }
        let host = token.host.to_ascii_lowercase();
        if let Some(sni) = sni
            && !sni.eq_ignore_ascii_case(&host)
        {
            return Err(deny(format!(
                "token endpoint {host} does not match TLS server name {sni}"
            )));
        }
        if token.port != Some(self.config.port) {
            return Err(deny(format!(
                "token is for port {:?}, this gateway listens on {}",
                token.port, self.config.port
            )));
        }
        let db = self
            .databases
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|d| d.endpoints.contains(&host))
            .cloned()
            .ok_or_else(|| deny(format!("no database is registered for endpoint {host}")))?;
        if token.db_user.as_deref() != Some(user) {
            return Err(deny(format!(
                "token is for database user {:?}, the client asked for {user:?}",
                token.db_user
            )));
        }
        let t = now();
        let (caller, secret) = self
            .state
            .credentials(
                token.access_key_id(),
                token.presigned.security_token.as_deref(),
                t,
                &peer.ip().to_string(),
            )
            .map_err(|e| {
                deny(format!(
                    "credentials: {} {}",
                    e.code,
                    e.reason.unwrap_or_default()
                ))
            })?;
        let at = AmzDate::from_unix(t).ok_or_else(|| deny("clock out of range".into()))?;
        self.verifier
            .verify(&token, secret.as_bytes(), at, Some(&self.config.region))
            .map_err(|e| deny(format!("token: {e}")))?;
        let resource = format!(
            "arn:aws:rds-db:{}:{}:dbuser:{}/{}",
            self.config.region, caller.account, db.resource_id, user
        );
        let tags: Vec<(String, String)> = db
            .tags
            .iter()
            .map(|(k, v)| (format!("aws:ResourceTag/{k}"), v.clone()))
            .collect();
        self.state
            .authorize_with(&caller, "rds-db:connect", &resource, t, &tags)
            .map_err(|e| {
                deny(format!(
                    "policy: {} for {} on {resource}",
                    e.reason.unwrap_or_default(),
                    caller.arn
                ))
            })?;
        Ok((db, caller.arn))
    }

    /// Logs in upstream as `user`, sends the client AuthenticationOk and
    /// the server's parameters, and returns the upstream connection.
    async fn upstream_login(
        &self,
        db: &Database,
        user: &str,
        database: &str,
        forwarded: &[(String, String)],
        client: &mut Box<dyn Stream>,
    ) -> Result<(TcpStream, Option<(u32, u32)>)> {
        let addr: SocketAddr = tokio::net::lookup_host(&db.upstream)
            .await?
            .next()
            .context("upstream address")?;
        let mut up = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .context("upstream connect timed out")??;
        up.set_nodelay(true)?;
        let mut params: Vec<(&str, &str)> = vec![("user", user), ("database", database)];
        params.extend(forwarded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut out = Vec::new();
        wire::startup_message(&mut out, &params);
        up.write_all(&out).await?;
        let password = || -> Result<zeroize::Zeroizing<String>> {
            self.state
                .store
                .database_password(&db.name, user)?
                .with_context(|| format!("no upstream password stored for {user} on {}", db.name))
        };
        let mut scram = None;
        loop {
            let (tag, body) = read_message(&mut up, 1 << 20).await?;
            match tag {
                b'R' => match wire::parse_auth(&body).map_err(|e| anyhow!("{e}"))? {
                    AuthRequest::Ok => break,
                    AuthRequest::Cleartext => {
                        out.clear();
                        wire::password_message(&mut out, password()?.as_bytes());
                        up.write_all(&out).await?;
                    }
                    AuthRequest::Md5 { salt } => {
                        let hash = postgres_protocol::authentication::md5_hash(
                            user.as_bytes(),
                            password()?.as_bytes(),
                            salt,
                        );
                        out.clear();
                        wire::password_message(&mut out, hash.as_bytes());
                        up.write_all(&out).await?;
                    }
                    AuthRequest::Sasl { mechanisms } => {
                        use postgres_protocol::authentication::sasl::{
                            ChannelBinding, SCRAM_SHA_256, ScramSha256,
                        };
                        if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                            bail!("upstream offers no SCRAM-SHA-256");
                        }
                        let s =
                            ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                        out.clear();
                        wire::sasl_initial_response(&mut out, SCRAM_SHA_256, s.message());
                        up.write_all(&out).await?;
                        scram = Some(s);
                    }
                    AuthRequest::SaslContinue(data) => {
                        let s = scram.as_mut().context("SASL continue without SASL")?;
                        s.update(&data)?;
                        out.clear();
                        wire::sasl_response(&mut out, s.message());
                        up.write_all(&out).await?;
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
                    let (code, text) = wire::parse_error(&body);
                    bail!("upstream refused: {code} {text}");
                }
                _ => bail!("unexpected upstream message {}", char::from(tag)),
            }
        }
        out.clear();
        wire::auth_ok(&mut out);
        client.write_all(&out).await?;
        // Relay the server's parameters up to ReadyForQuery, giving the
        // client a cancel key of our own.
        let mut cancel_key = None;
        loop {
            let (tag, body) = read_message(&mut up, 1 << 20).await?;
            out.clear();
            if tag == b'K' && body.len() == 8 {
                let pid = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let key = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                let ours: [u8; 8] = random()?;
                let (opid, okey) = (
                    u32::from_be_bytes([ours[0], ours[1], ours[2], ours[3]]),
                    u32::from_be_bytes([ours[4], ours[5], ours[6], ours[7]]),
                );
                self.cancels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        (opid, okey),
                        CancelTarget {
                            upstream: addr,
                            pid,
                            key,
                        },
                    );
                cancel_key = Some((opid, okey));
                out.push(b'K');
                out.extend_from_slice(&12u32.to_be_bytes());
                out.extend_from_slice(&opid.to_be_bytes());
                out.extend_from_slice(&okey.to_be_bytes());
            } else {
                out.push(tag);
                out.extend_from_slice(
                    &u32::try_from(body.len() + 4)
                        .unwrap_or(u32::MAX)
                        .to_be_bytes(),
                );
                out.extend_from_slice(&body);
            }
            client.write_all(&out).await?;
            if tag == b'Z' {
                break;
            }
        }
        client.flush().await?;
        Ok((up, cancel_key))
    }

    /// Forwards a cancel for a key this gateway issued; anything else is
    /// ignored, as PostgreSQL does.
    async fn cancel(&self, pid: u32, key: u32) {
        let target = self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(pid, key))
            .copied();
        let Some(t) = target else {
            tracing::info!("ignored a cancel request with an unknown key");
            return;
        };
        let mut out = Vec::new();
        wire::cancel_request(&mut out, t.pid, t.key);
        if let Ok(mut up) = TcpStream::connect(t.upstream).await {
            let _ = up.write_all(&out).await;
        }
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

async fn read_message<S: AsyncRead + Unpin + ?Sized>(
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
