//! Where a PostgreSQL store is: a `postgres://` URL, read once at start.
//!
//! Latchkey checks the store server's certificate and its host name
//! (`sslmode=verify-full`, the default), against the CAs in `sslrootcert`;
//! it does not offer libpq's weaker modes (`prefer`, `require`,
//! `verify-ca`), which would let a network attacker read sealed blobs and
//! tamper with rows. `sslmode=disable` is for a local socket or a test.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// Connections the pool keeps at most [default: 16]; `pool_size=N` in the
/// URL overrides it.
const DEFAULT_POOL_SIZE: usize = 16;

/// How the connection to the store server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS, with the certificate's chain and host name checked.
    VerifyFull,
}

/// Why a store URL was refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PgLocationError {
    #[error("the store URL must start with postgres:// or postgresql://")]
    Scheme,
    #[error(
        "sslmode={0} is not offered: Latchkey checks the store's certificate and host name (sslmode=verify-full, the default), or uses none (sslmode=disable)"
    )]
    WeakSslMode(String),
    #[error("sslmode=verify-full needs sslrootcert=PATH (the CA certificates, PEM)")]
    NoRootCert,
    #[error("pool_size must be a number from 1 to 1000")]
    PoolSize,
    #[error("the store URL has a malformed query part near {0:?}")]
    Query(String),
    #[error("the store URL is malformed: {0}")]
    Malformed(String),
}

/// A parsed store URL. Its `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct PgLocation {
    config: tokio_postgres::Config,
    ssl: SslMode,
    root_cert: Option<PathBuf>,
    pool_size: usize,
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgLocation({self})")
    }
}

impl std::fmt::Display for PgLocation {
    /// `postgres://user@host:port/dbname?…`, without the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.config.get_user().unwrap_or("");
        let host = self
            .config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .unwrap_or_default();
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().unwrap_or("");
        write!(f, "postgres://{user}@{host}:{port}/{db}")?;
        let mut query = Vec::new();
        match (&self.ssl, &self.root_cert) {
            (SslMode::Disable, _) => query.push("sslmode=disable".to_owned()),
            (SslMode::VerifyFull, Some(root)) => {
                query.push(format!("sslrootcert={}", root.display()));
            }
            (SslMode::VerifyFull, None) => {}
        }
        if self.pool_size != DEFAULT_POOL_SIZE {
            query.push(format!("pool_size={}", self.pool_size));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

impl FromStr for PgLocation {
    type Err = PgLocationError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(PgLocationError::Scheme);
        }
        // Take out the parameters tokio-postgres does not know (or knows
        // with other meanings); pass the rest through.
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut ssl = SslMode::VerifyFull;
        let mut root_cert = None;
        let mut pool_size = DEFAULT_POOL_SIZE;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| PgLocationError::Query(pair.chars().take(32).collect()))?;
            match key {
                "sslmode" => {
                    ssl = match value {
                        "disable" => SslMode::Disable,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(PgLocationError::WeakSslMode(
                                other.chars().take(32).collect(),
                            ));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value))),
                "pool_size" => {
                    pool_size = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or(PgLocationError::PoolSize)?;
                }
                _ => kept.push(pair),
            }
        }
        if ssl == SslMode::VerifyFull && root_cert.is_none() {
            return Err(PgLocationError::NoRootCert);
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&rest)
            // tokio-postgres' message names the part, never the password.
            .map_err(|e| PgLocationError::Malformed(e.to_string()))?;
        config.ssl_mode(match ssl {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        if config.get_application_name().is_none() {
            config.application_name("latchkey");
        }
        config.connect_timeout(std::time::Duration::from_secs(5));
        Ok(Self {
            config,
            ssl,
            root_cert,
            pool_size,
        })
    }
}

/// `%XX` escapes of a URL's query value (a path may hold spaces).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PgLocation {
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl
    }

    /// Whether every host is a Unix socket or a loopback address: where
    /// going without TLS exposes nothing on a network.
    pub fn is_local(&self) -> bool {
        self.config.get_hosts().iter().all(|h| match h {
            tokio_postgres::config::Host::Unix(_) => true,
            tokio_postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        })
    }

    /// The connection pool, its connections driven on `runtime`.
    pub(crate) fn pool(
        &self,
        runtime: &tokio::runtime::Handle,
    ) -> crate::Result<deadpool_postgres::Pool> {
        let manager_config = deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        };
        let manager = match self.ssl {
            SslMode::Disable => deadpool_postgres::Manager::from_config(
                self.config.clone(),
                tokio_postgres::NoTls,
                manager_config,
            ),
            SslMode::VerifyFull => deadpool_postgres::Manager::from_config(
                self.config.clone(),
                self.tls()?,
                manager_config,
            ),
        };
        let _entered = runtime.enter();
        deadpool_postgres::Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .build()
            .map_err(|e| crate::StoreError::Postgres(format!("store pool: {e}")))
    }

    /// Listens on `channel` on a connection of its own, calling `on_note`
    /// with each notification's change until the connection ends (see
    /// [`listen_on`]).
    pub(crate) async fn listen(
        &self,
        channel: &str,
        on_note: &(dyn Fn(crate::StoreChange) + Send + Sync),
    ) -> crate::Result<()> {
        // Told apart from the pool's in `pg_stat_activity`.
        let mut config = self.config.clone();
        config.application_name(FEED_APPLICATION_NAME);
        match self.ssl {
            SslMode::Disable => listen_on(&config, tokio_postgres::NoTls, channel, on_note).await,
            SslMode::VerifyFull => listen_on(&config, self.tls()?, channel, on_note).await,
        }
    }

    fn tls(&self) -> crate::Result<tokio_postgres_rustls::MakeRustlsConnect> {
        let path = self
            .root_cert
            .as_ref()
            .ok_or_else(|| crate::StoreError::Postgres(PgLocationError::NoRootCert.to_string()))?;
        let pem = std::fs::read(path).map_err(|e| {
            crate::StoreError::Postgres(format!("reading sslrootcert {}: {e}", path.display()))
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| {
                crate::StoreError::Postgres(format!("sslrootcert {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                crate::StoreError::Postgres(format!("sslrootcert {}: {e}", path.display()))
            })?;
        }
        if roots.is_empty() {
            return Err(crate::StoreError::Postgres(format!(
                "sslrootcert {} holds no certificate",
                path.display()
            )));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| crate::StoreError::Postgres(format!("store TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// How often the feed's connection is checked: a connection that died
/// or stalled without a word (a stopped server or backend, a dropped
/// route) is noticed within this and [`PING_TIMEOUT`], under a second,
/// so that the caches stop serving unconfirmed entries in the time a
/// change is promised to reach every node.
const PING_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The change feed's connection's `application_name`.
pub const FEED_APPLICATION_NAME: &str = "latchkey change feed";

/// Listens on `channel` until the connection fails. Once listening, it
/// reports [`crate::StoreChange::Listening`] (what changed while it was
/// not is unknown), then each notification's change. `Ok`: it had been
/// listening when the connection ended; `Err`: it could not connect.
async fn listen_on<T>(
    config: &tokio_postgres::Config,
    tls: T,
    channel: &str,
    on_note: &(dyn Fn(crate::StoreChange) + Send + Sync),
) -> crate::Result<()>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (notes, mut received) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN to complete, and for
    // notifications to arrive: a task of its own forwards them.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(note))) => {
                    if notes.send(note.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    let listening = async {
        client.batch_execute(&format!("LISTEN {channel}")).await?;
        on_note(crate::StoreChange::Listening);
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                table = received.recv() => match table {
                    Some(table) => on_note(crate::StoreChange::of_table(&table)),
                    None => return Ok::<(), crate::StoreError>(()),
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(PING_TIMEOUT, client.batch_execute("")).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(e.into()),
                        Err(_) => {
                            return Err(crate::StoreError::Unavailable(
                                "the change feed's connection stopped answering".into(),
                            ));
                        }
                    }
                }
            }
        }
    };
    let outcome = listening.await;
    driver.abort();
    if let Err(e) = outcome {
        // Established, then lost: report, but retry at once.
        eprintln!("latchkey: store change feed: {e}; listening again");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_weak_tls_refused() {
        let l: PgLocation = "postgres://lk:pw@db.example:6543/latchkey?sslrootcert=/etc/ca.pem"
            .parse()
            .unwrap();
        assert_eq!(l.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(
            l.to_string(),
            "postgres://lk@db.example:6543/latchkey?sslrootcert=/etc/ca.pem"
        );
        assert!(!format!("{l:?}").contains("pw"));
        assert_eq!(
            "postgres://h/db".parse::<PgLocation>().unwrap_err(),
            PgLocationError::NoRootCert
        );
        for weak in ["require", "prefer", "allow", "verify-ca"] {
            assert_eq!(
                format!("postgres://h/db?sslmode={weak}")
                    .parse::<PgLocation>()
                    .unwrap_err(),
                PgLocationError::WeakSslMode(weak.into())
            );
        }
        let l: PgLocation = "postgresql://h/db?sslmode=disable&pool_size=4"
            .parse()
            .unwrap();
        assert_eq!((l.ssl_mode(), l.pool_size), (SslMode::Disable, 4));
        assert_eq!(
            "postgres://h/db?sslmode=disable&pool_size=0"
                .parse::<PgLocation>()
                .unwrap_err(),
            PgLocationError::PoolSize
        );
        assert_eq!(
            "mysql://h/db".parse::<PgLocation>().unwrap_err(),
            PgLocationError::Scheme
        );
        assert!(matches!(
            "postgres://h/db?sslmode=disable&junk".parse::<PgLocation>(),
            Err(PgLocationError::Query(_))
        ));
        let l: PgLocation = "postgres://h/db?sslrootcert=/a%20b/ca.pem".parse().unwrap();
        assert_eq!(l.root_cert.unwrap(), PathBuf::from("/a b/ca.pem"));
    }
}
