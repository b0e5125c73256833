//! The connection to a real database server: TCP or a Unix socket, plain
//! or TLS as the database's `upstream_tls` mode asks (libpq's `sslmode`
//! meanings, which the MySQL gateway shares), and able to move between
//! session threads when pooled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use crate::dbca::{self, DbCa};
use anyhow::{Context, Result, anyhow, bail};
use latchkey_identity::AppState;
use latchkey_store::{Database, Engine, Store, UpstreamAuth, UpstreamLogin, UpstreamLogins};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use zeroize::Zeroizing;

/// How long the upstream TCP connect and login may take.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection to the real server, plain or TLS.
pub enum UpstreamStream {
    Plain(Socket),
    Tls(Box<tokio_rustls::client::TlsStream<Socket>>),
}

impl UpstreamStream {
    /// Registers the socket with the current runtime's reactor: a pooled
    /// connection taken by a session on another thread moves with it, so
    /// its readiness events arrive where its task runs.
    pub fn move_to_this_thread(&mut self) -> std::io::Result<()> {
        let socket = match self {
            UpstreamStream::Plain(s) => s,
            UpstreamStream::Tls(tls) => tls.get_mut().0,
        };
        socket.0 = Some(match socket.0.take() {
            Some(Conn::Tcp(tcp)) => Conn::Tcp(TcpStream::from_std(tcp.into_std()?)?),
            Some(Conn::Unix(unix)) => Conn::Unix(UnixStream::from_std(unix.into_std()?)?),
            None => return Err(std::io::ErrorKind::NotConnected.into()),
        });
        Ok(())
    }
}

/// Where the server listens: `host:port`, or the path of its Unix socket
/// (an upstream that starts with `/`, such as
/// `/var/run/postgresql/.s.PGSQL.5432`) when it runs on the gateway's
/// machine, which spares the TCP stack on every message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddr {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

impl ServerAddr {
    pub async fn resolve(upstream: &str) -> Result<Self> {
        if upstream.starts_with('/') {
            return Ok(ServerAddr::Unix(upstream.into()));
        }
        Ok(ServerAddr::Tcp(
            tokio::net::lookup_host(upstream)
                .await?
                .next()
                .context("upstream address")?,
        ))
    }

    pub async fn connect(&self) -> std::io::Result<Socket> {
        Ok(Socket(Some(match self {
            ServerAddr::Tcp(addr) => {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Conn::Tcp(tcp)
            }
            ServerAddr::Unix(path) => Conn::Unix(UnixStream::connect(path).await?),
        })))
    }
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A connection to the server that can change runtimes (see
/// [`UpstreamStream::move_to_this_thread`]); empty only mid-move.
pub struct Socket(Option<Conn>);

/// Calls a poll method on whichever stream the socket holds.
macro_rules! on_conn {
    ($socket:expr, |$s:ident| $call:expr) => {
        match &mut $socket.0 {
            Some(Conn::Tcp($s)) => {
                let $s = Pin::new($s);
                $call
            }
            Some(Conn::Unix($s)) => {
                let $s = Pin::new($s);
                $call
            }
            None => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    };
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        on_conn!(self.get_mut(), |s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        on_conn!(self.get_mut(), |s| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        on_conn!(self.get_mut(), |s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        on_conn!(self.get_mut(), |s| s.poll_shutdown(cx))
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The upstream TLS mode, typed in the store (kept here under its old path).
pub use latchkey_store::TlsMode;

/// The host part of `host:port`, `[v6]:port` or a bare host.
pub fn upstream_host(upstream: &str) -> &str {
    if let Some(rest) = upstream.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match upstream.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => upstream,
    }
}

/// Checks a database's upstream settings as the gateway will use them:
/// the store's rules joining engine, authentication and TLS mode, then
/// the CA certificates (PEM), and for `verify-full` that the upstream
/// host is a valid DNS name or IP address. For registration, so that
/// mistakes show at once rather than as failed logins.
pub fn check_tls_settings(db: &Database) -> Result<()> {
    db.check_upstream()?;
    let mode = db.upstream_tls;
    if let Some(pem) = &db.upstream_ca {
        dbca::parse_pem_certs(pem).context("the upstream CA")?;
    }
    verifier(mode, db.upstream_ca.as_deref())?;
    server_name(mode, &db.upstream)?;
    Ok(())
}

/// Registers `wanted` (or, with `replace`, replaces the settings of the
/// database of that name, keeping its resource id and stored logins),
/// after checking its upstream TLS settings; makes Latchkey's database CA
/// when the database logs in with certificates, so that every node and
/// `db ca` agree from the start. Used by `latchkey db register` and the
/// console.
pub fn register_database(
    store: &Store,
    wanted: &Database,
    replace: bool,
    now: i64,
) -> Result<Database> {
    check_tls_settings(wanted)?;
    let db = match store.register_database(wanted, now) {
        Err(latchkey_store::StoreError::EntityAlreadyExists { .. }) if replace => {
            store.update_database(wanted)?
        }
        other => other?,
    };
    if db.upstream_auth == UpstreamAuth::Cert {
        DbCa::load_or_create(store, now)?;
    }
    Ok(db)
}

/// The crypto provider for upstream TLS: always aws-lc-rs, never the
/// process default.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    PROVIDER.clone()
}

fn server_name(mode: TlsMode, upstream: &str) -> Result<ServerName<'static>> {
    let host = upstream_host(upstream);
    match ServerName::try_from(host.to_owned()) {
        Ok(name) => Ok(name),
        Err(_) if mode != TlsMode::VerifyFull => {
            // Only verify-full checks the name; any valid one does here.
            Ok(ServerName::try_from("upstream.invalid")?)
        }
        Err(_) => {
            bail!("upstream host {host:?} is not a valid DNS name or IP address for verify-full")
        }
    }
}

fn roots(ca_pem: Option<&str>) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in dbca::parse_pem_certs(ca_pem.context("no upstream CA certificate")?)? {
        roots
            .add(cert)
            .map_err(|e| anyhow!("upstream CA certificate: {e}"))?;
    }
    Ok(Arc::new(roots))
}

fn verifier(mode: TlsMode, ca_pem: Option<&str>) -> Result<Arc<dyn ServerCertVerifier>> {
    let provider = provider();
    Ok(match mode {
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => Arc::new(ChainOnly {
            roots: None,
            provider,
        }),
        TlsMode::VerifyCa => Arc::new(ChainOnly {
            roots: Some(roots(ca_pem)?),
            provider,
        }),
        TlsMode::VerifyFull => {
            WebPkiServerVerifier::builder_with_provider(roots(ca_pem)?, provider)
                .build()
                .map_err(|e| anyhow!("upstream CA: {e}"))?
        }
    })
}

/// `verify-ca`: the certificate must chain to the CA (and be valid now);
/// its names are not checked. Without roots (`require`, `prefer`): any
/// certificate, as libpq. Either way the handshake signature is verified
/// against the certificate presented.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a cached client configuration was built from; a change rebuilds it.
#[derive(Clone, PartialEq, Eq)]
struct TlsSettings {
    mode: TlsMode,
    upstream: String,
    ca: Option<String>,
    cert: bool,
}

struct CachedConfig {
    settings: TlsSettings,
    config: Arc<ClientConfig>,
    /// Unix time after which it is rebuilt (a client certificate nearing expiry).
    refresh_at: i64,
}

/// Cache keys: (store account, database, user for `cert` auth or empty).
type ConfigKey = (String, String, String);

static CONFIGS: LazyLock<Mutex<HashMap<ConfigKey, CachedConfig>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// The database CA of each store (by account), loaded (or made) on first use.
static DB_CAS: LazyLock<Mutex<HashMap<String, Arc<DbCa>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// Cached configurations beyond this many are dropped.
const MAX_CONFIGS: usize = 10_000;

/// The store's database CA, loaded once per process.
pub fn database_ca(store: &Store, now: i64) -> Result<Arc<DbCa>> {
    let mut cas = DB_CAS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ca) = cas.get(store.account_id()) {
        return Ok(ca.clone());
    }
    let ca = Arc::new(DbCa::load_or_create(store, now)?);
    cas.insert(store.account_id().to_owned(), ca.clone());
    Ok(ca)
}

/// Runs `work` (a store read, or other blocking work) on the blocking
/// pool, not on the calling session thread: the store is one SQLite
/// connection behind a mutex, and a session thread that waits for it
/// stalls every session it carries.
pub async fn off_session_thread<T, F>(state: &Arc<AppState>, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&AppState) -> Result<T> + Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .map_err(|e| anyhow!("a store read failed: {e}"))?
}

/// What one upstream login attempt proves itself with (both engines).
pub enum Credential<'a> {
    /// A password to test, as the client user (rotation's test logins).
    Given(&'a str),
    /// A login the gateway holds: as its user, with its password.
    Stored(UpstreamLogin),
    /// As the client user, with the stored password read only if the
    /// server asks for one (nothing stored, or no password login).
    Lazy,
}

impl Credential<'_> {
    /// The user the login is made as: a stored login's, else the client's.
    pub fn login_user<'a>(&'a self, client_user: &'a str) -> &'a str {
        match self {
            Credential::Stored(login) => login.user.as_str(),
            Credential::Given(_) | Credential::Lazy => client_user,
        }
    }

    /// The password for the login, when the server asks: the given or
    /// stored one, else the one stored for `user` on `db` (none for a
    /// `trust` database).
    pub async fn password(
        &self,
        state: &Arc<AppState>,
        db: &Database,
        user: &str,
    ) -> Result<Zeroizing<String>> {
        match self {
            Credential::Given(p) => Ok(Zeroizing::new((*p).to_owned())),
            Credential::Stored(login) => Ok(login.password.clone()),
            Credential::Lazy if db.upstream_auth == UpstreamAuth::Trust => {
                Ok(Zeroizing::new(String::new()))
            }
            Credential::Lazy => upstream_password(state, &db.name, user).await,
        }
    }
}

/// `login` within the upstream connect timeout.
pub async fn within_connect_timeout<T>(
    login: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, login)
        .await
        .map_err(|_| anyhow!("upstream login timed out"))?
}

/// The password the gateway holds for `user` on `database`, read off the
/// session thread.
pub async fn upstream_password(
    state: &Arc<AppState>,
    database: &str,
    user: &str,
) -> Result<Zeroizing<String>> {
    let (database, user) = (database.to_owned(), user.to_owned());
    off_session_thread(state, move |state| {
        state
            .store
            .database_password(&database, &user)?
            .with_context(|| format!("no upstream password stored for {user} on {database}"))
    })
    .await
}

/// The logins the gateway holds for client user `user` on `database`
/// (`None` when nothing is stored), read off the session thread.
pub async fn upstream_logins(
    state: &Arc<AppState>,
    database: &str,
    user: &str,
) -> Result<Option<UpstreamLogins>> {
    let (database, user) = (database.to_owned(), user.to_owned());
    off_session_thread(state, move |state| {
        // Read lately, it serves while the store does not answer.
        let key = (database, user);
        Ok(state
            .upstream_logins
            .read(&key, state.now(), state.store_outage_grace(), || {
                state.store.database_logins(&key.0, &key.1)
            })?)
    })
    .await
}

/// Logs in upstream for client user `user` on `db` with the credentials
/// the gateway holds, by `attempt` (one fresh connection and login each
/// call, as the login it is given, or with `None`, as `user` with the
/// stored password read only if the server asks: nothing is stored, or
/// the database does not log in with a password).
///
/// The current login goes first. When the server refuses it (`refused`:
/// its credentials, not anything else) the logins are read again, since
/// a rotation may have changed the server's password and promoted its
/// next login meanwhile, and the current one then the next one of that
/// read are tried, each unless it is one already refused. Only when
/// every one is refused is the last refusal returned. Which login was
/// used is logged (the user, never the password).
pub async fn login_upstream<T, F, Fut>(
    state: &Arc<AppState>,
    db: &Database,
    user: &str,
    refused: impl Fn(&anyhow::Error) -> bool,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut(Option<UpstreamLogin>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    if db.upstream_auth != UpstreamAuth::Password {
        return attempt(None).await;
    }
    let Some(logins) = upstream_logins(state, &db.name, user).await? else {
        return attempt(None).await;
    };
    let mut tried = vec![logins.current.clone()];
    let mut last = match attempt(Some(logins.current)).await {
        Err(e) if refused(&e) => e,
        done => return done,
    };
    let Some(again) = upstream_logins(state, &db.name, user).await? else {
        return Err(last);
    };
    for login in std::iter::once(again.current).chain(again.next) {
        if tried.contains(&login) {
            continue;
        }
        let login_user = login.user.clone();
        tracing::info!(
            database = %db.name,
            user,
            login_user = %login_user,
            "upstream refused the current login; trying the one a rotation set"
        );
        match attempt(Some(login.clone())).await {
            Ok(up) => {
                tracing::info!(
                    database = %db.name,
                    user,
                    login_user = %login_user,
                    "logged in upstream with the login a rotation set"
                );
                return Ok(up);
            }
            Err(e) if refused(&e) => {
                last = e;
                tried.push(login);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The cache key of `db`'s TLS client configuration for `user`, and the
/// settings it was built from.
fn config_key(account: &str, db: &Database, mode: TlsMode, user: &str) -> (ConfigKey, TlsSettings) {
    let cert = db.upstream_auth == UpstreamAuth::Cert;
    let settings = TlsSettings {
        mode,
        upstream: db.upstream.clone(),
        ca: db.upstream_ca.clone(),
        cert,
    };
    let key = (
        account.to_owned(),
        db.name.clone(),
        if cert { user.to_owned() } else { String::new() },
    );
    (key, settings)
}

/// A cached configuration still built from `settings` and not due for
/// renewal: no store read, no signing.
fn cached_config(key: &ConfigKey, settings: &TlsSettings, now: i64) -> Option<Arc<ClientConfig>> {
    let configs = CONFIGS.lock().unwrap_or_else(|p| p.into_inner());
    configs
        .get(key)
        .filter(|c| c.settings == *settings && now < c.refresh_at)
        .map(|c| c.config.clone())
}

/// The TLS client configuration for `db` (and, with `cert` auth, `user`):
/// built once and cached until the database's settings change or the
/// client certificate is due for renewal.
pub fn client_config(
    store: &Store,
    db: &Database,
    mode: TlsMode,
    user: &str,
) -> Result<Arc<ClientConfig>> {
    let now = latchkey_identity::clock::system_now();
    let (key, settings) = config_key(store.account_id(), db, mode, user);
    if let Some(config) = cached_config(&key, &settings, now) {
        return Ok(config);
    }
    let cert = settings.cert;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier(mode, db.upstream_ca.as_deref())?);
    let (mut config, refresh_at) = if cert {
        let client = database_ca(store, now)?.client_cert(user, now)?;
        let config = builder
            .with_client_auth_cert(client.chain.clone(), client.key())
            .map_err(|e| anyhow!("client certificate for {user}: {e}"))?;
        (config, client.not_after - dbca::CLIENT_CERT_RENEW_BEFORE)
    } else {
        (builder.with_no_client_auth(), i64::MAX)
    };
    // PostgreSQL 17 checks the protocol when the client names one.
    if db.engine == Engine::Postgres {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    let config = Arc::new(config);
    let mut configs = CONFIGS.lock().unwrap_or_else(|p| p.into_inner());
    if configs.len() >= MAX_CONFIGS {
        configs.clear();
    }
    configs.insert(
        key,
        CachedConfig {
            settings,
            config: config.clone(),
            refresh_at,
        },
    );
    Ok(config)
}

/// Runs the TLS handshake on `socket` once the engine's own negotiation
/// (PostgreSQL's `SSLRequest`, MySQL's `SSLRequest` packet) has agreed to
/// it, checking the server as `mode` asks.
pub async fn start_tls(
    state: &Arc<AppState>,
    db: &Database,
    mode: TlsMode,
    user: &str,
    socket: Socket,
) -> Result<UpstreamStream> {
    // Built or renewed off the session thread: the database CA may come
    // from the store, and minting a client certificate signs.
    let now = latchkey_identity::clock::system_now();
    let (key, settings) = config_key(state.store.account_id(), db, mode, user);
    let config = match cached_config(&key, &settings, now) {
        Some(config) => config,
        None => {
            let (db, user) = (db.clone(), user.to_owned());
            off_session_thread(state, move |state| {
                client_config(&state.store, &db, mode, &user)
            })
            .await?
        }
    };
    let name = server_name(mode, &db.upstream)?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, socket)
        .await
        .map_err(|e| anyhow!("upstream TLS ({}) with {}: {e}", mode.as_str(), db.upstream))?;
    Ok(UpstreamStream::Tls(Box::new(tls)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn upstream_hosts() {
        assert_eq!(upstream_host("db.example:5432"), "db.example");
        assert_eq!(upstream_host("127.0.0.1:5432"), "127.0.0.1");
        assert_eq!(upstream_host("[::1]:5432"), "::1");
        assert_eq!(upstream_host("db.example"), "db.example");
        assert_eq!(upstream_host("::1"), "::1");
    }

    #[test]
    fn tls_settings_are_checked() {
        let db = |tls: &str, auth: &str, ca: Option<&str>| Database {
            name: "orders".into(),
            upstream: "db.example:5432".into(),
            upstream_tls: tls.parse().unwrap(),
            upstream_auth: auth.parse().unwrap(),
            upstream_ca: ca.map(str::to_owned),
            ..Default::default()
        };
        check_tls_settings(&db("prefer", "password", None)).unwrap();
        check_tls_settings(&db("require", "cert", None)).unwrap();
        let err = |d: Database| format!("{:#}", check_tls_settings(&d).unwrap_err());
        assert!(err(db("prefer", "cert", None)).contains("cert needs"));
        assert!(err(db("verify-full", "password", None)).contains("needs the upstream CA"));
        assert!(err(db("verify-ca", "password", Some("nope"))).contains("no PEM certificate"));
        let dir = std::env::temp_dir().join(format!("lk-upstream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(
            &dir.join("store.db"),
            latchkey_store::Vault::new(1, &[3; 32]),
        )
        .unwrap();
        let ca = database_ca(&store, 1_800_000_000).unwrap();
        let pem = ca.cert_pem().to_owned();
        check_tls_settings(&db("verify-full", "password", Some(&pem))).unwrap();
        let mut bad_host = db("verify-full", "cert", Some(&pem));
        bad_host.upstream = "bad_host!:5432".into();
        assert!(err(bad_host.clone()).contains("not a valid DNS name"));
        bad_host.upstream_tls = TlsMode::VerifyCa;
        check_tls_settings(&bad_host).unwrap();
        // Built once, then cached.
        let d = db("verify-full", "password", Some(&pem));
        let a = client_config(&store, &d, TlsMode::VerifyFull, "x").unwrap();
        let b = client_config(&store, &d, TlsMode::VerifyFull, "y").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // With cert auth, once per user.
        let d = db("require", "cert", None);
        let a = client_config(&store, &d, TlsMode::Require, "x").unwrap();
        let b = client_config(&store, &d, TlsMode::Require, "x").unwrap();
        let c = client_config(&store, &d, TlsMode::Require, "y").unwrap();
        assert!(Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &c));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The server refusing a login's credentials, in the fake logins of
    /// the [`login_upstream`] tests.
    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Refusal;

    struct Logins {
        state: Arc<AppState>,
        db: Database,
        _dir: tempfile::TempDir,
    }

    fn logins(auth: UpstreamAuth) -> Logins {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("store.db"),
            latchkey_store::Vault::new(1, &[3; 32]),
        )
        .unwrap();
        let db = store
            .register_database(
                &Database {
                    name: "orders".into(),
                    endpoints: vec!["orders.local".into()],
                    upstream: "127.0.0.1:5432".into(),
                    upstream_auth: auth,
                    upstream_tls: TlsMode::Disable,
                    ..Default::default()
                },
                0,
            )
            .unwrap();
        let keys = store.cluster_keys(0).unwrap();
        Logins {
            state: Arc::new(AppState::new(store, keys).unwrap()),
            db,
            _dir: dir,
        }
    }

    impl Logins {
        /// Logs in for `app` against a server that takes only the
        /// `accepted` passwords (and `None`, the lazy login, when
        /// `accepted` has ""), calling `on_try` on each attempt; the
        /// attempts as `user:password` ("-" for the lazy login).
        async fn run(
            &self,
            accepted: &[&str],
            on_try: impl Fn(&AppState, usize),
        ) -> (Result<String>, Vec<String>) {
            let tried = Mutex::new(Vec::new());
            let result = login_upstream(
                &self.state,
                &self.db,
                "app",
                |e| e.is::<Refusal>(),
                |login: Option<UpstreamLogin>| {
                    let mut tried = tried.lock().unwrap();
                    on_try(&self.state, tried.len());
                    let (shown, password) = match &login {
                        Some(l) => (
                            format!("{}:{}", l.user, l.password.as_str()),
                            l.password.as_str().to_owned(),
                        ),
                        None => ("-".to_owned(), String::new()),
                    };
                    tried.push(shown.clone());
                    let result = if password == "broken" {
                        Err(anyhow!("the server went away"))
                    } else if accepted.contains(&password.as_str()) {
                        Ok(shown)
                    } else {
                        Err(Refusal.into())
                    };
                    std::future::ready(result)
                },
            )
            .await;
            (result, tried.into_inner().unwrap())
        }

        fn store(&self) -> &Store {
            &self.state.store
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_current_login_goes_first_and_alone_when_accepted() {
        let l = logins(UpstreamAuth::Password);
        l.store()
            .set_database_password("orders", "app", "cur")
            .unwrap();
        l.store()
            .set_database_next_login("orders", "app", Some(("app_clone", "nxt")))
            .unwrap();
        let (got, tried) = l.run(&["cur", "nxt"], |_, _| {}).await;
        assert_eq!(got.unwrap(), "app:cur");
        assert_eq!(tried, ["app:cur"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_current_login_falls_back_to_the_next_one() {
        let l = logins(UpstreamAuth::Password);
        l.store()
            .set_database_login("orders", "app", "app_clone", "cur")
            .unwrap();
        l.store()
            .set_database_next_login("orders", "app", Some(("app", "nxt")))
            .unwrap();
        let (got, tried) = l.run(&["nxt"], |_, _| {}).await;
        assert_eq!(got.unwrap(), "app:nxt");
        assert_eq!(tried, ["app_clone:cur", "app:nxt"]);
        // Both refused: each is tried once, and the refusal stands.
        let (got, tried) = l.run(&[], |_, _| {}).await;
        assert!(got.unwrap_err().is::<Refusal>());
        assert_eq!(tried, ["app_clone:cur", "app:nxt"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refusal_rereads_the_logins_a_rotation_may_have_promoted() {
        let l = logins(UpstreamAuth::Password);
        l.store()
            .set_database_password("orders", "app", "old")
            .unwrap();
        l.store()
            .set_database_next_login("orders", "app", Some(("app", "new")))
            .unwrap();
        // While the first login runs, the rotation finishes: the server
        // takes only the new password, now current with no next.
        let promote = |state: &AppState, attempt: usize| {
            if attempt == 0 {
                state
                    .store
                    .set_database_password("orders", "app", "new")
                    .unwrap();
            }
        };
        let (got, tried) = l.run(&["new"], promote).await;
        assert_eq!(got.unwrap(), "app:new");
        assert_eq!(tried, ["app:old", "app:new"]);
        // Promoted before the first read: nothing left to fall back on.
        let (got, tried) = l.run(&["other"], |_, _| {}).await;
        assert!(got.unwrap_err().is::<Refusal>());
        assert_eq!(tried, ["app:new"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn only_refused_credentials_are_retried_and_never_twice() {
        let l = logins(UpstreamAuth::Password);
        // Another failure (the server gone) is not a refusal.
        l.store()
            .set_database_password("orders", "app", "broken")
            .unwrap();
        l.store()
            .set_database_next_login("orders", "app", Some(("app", "nxt")))
            .unwrap();
        let (got, tried) = l.run(&["nxt"], |_, _| {}).await;
        assert!(!got.unwrap_err().is::<Refusal>());
        assert_eq!(tried, ["app:broken"]);
        // A next login identical to the current one is not tried again.
        l.store()
            .set_database_next_login("orders", "fresh", Some(("fresh", "pw")))
            .unwrap();
        let tried = Mutex::new(0);
        let got = login_upstream(
            &l.state,
            &l.db,
            "fresh",
            |e| e.is::<Refusal>(),
            |_| {
                *tried.lock().unwrap() += 1;
                std::future::ready(Err::<(), _>(Refusal.into()))
            },
        )
        .await;
        assert!(got.is_err());
        assert_eq!(*tried.lock().unwrap(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_stored_logins_or_password_auth_the_login_is_lazy() {
        // Nothing stored: one lazy login, refused or not.
        let l = logins(UpstreamAuth::Password);
        let (got, tried) = l.run(&[""], |_, _| {}).await;
        assert_eq!(got.unwrap(), "-");
        assert_eq!(tried, ["-"]);
        let (_, tried) = l.run(&[], |_, _| {}).await;
        assert_eq!(tried, ["-"]);
        // Trust (and cert) logins never use the stored ones.
        let l = logins(UpstreamAuth::Trust);
        l.store()
            .set_database_password("orders", "app", "cur")
            .unwrap();
        let (got, tried) = l.run(&[""], |_, _| {}).await;
        assert_eq!(got.unwrap(), "-");
        assert_eq!(tried, ["-"]);
    }
}
