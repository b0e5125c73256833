//! Latchkey's database CA, and the PEM handling of upstream TLS settings.
//!
//! With upstream authentication `cert` the gateway logs in to the real
//! PostgreSQL server with a client certificate whose common name is the
//! database user. Those certificates come from a CA of Latchkey's own, made
//! on first use: its private key lives sealed in the store (so every node
//! has it and master-key rotation re-wraps it), its certificate goes into
//! the server's `ssl_ca_file` (`latchkey db ca`). Client certificates are
//! minted in memory for a day and re-minted an hour before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use latchkey_store::{Store, random};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// How long a minted client certificate is valid.
pub const CLIENT_CERT_LIFETIME: i64 = 24 * 3600;
/// A cached client certificate is re-minted when it has less than this left.
pub const CLIENT_CERT_RENEW_BEFORE: i64 = 3600;
/// Minted certificates start this long before `now`, for clock skew.
const BACKDATE: i64 = 300;
/// How long the CA is valid.
const CA_LIFETIME: i64 = 10 * 366 * 24 * 3600;
/// Cached client certificates beyond this many are dropped (expired first).
const MAX_CACHED: usize = 10_000;

/// A client certificate for one database user, with its private key.
pub struct ClientCert {
    /// The certificate (the CA is not sent: the server has it).
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    /// Unix time the certificate expires.
    pub not_after: i64,
}

impl ClientCert {
    /// The private key, for `with_client_auth_cert`.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The database CA, able to mint client certificates.
pub struct DbCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    minted: Mutex<HashMap<String, Arc<ClientCert>>>,
}

impl std::fmt::Debug for DbCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCa").finish_non_exhaustive()
    }
}

fn time_at(unix: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix).context("time out of range")
}

fn serial() -> Result<SerialNumber> {
    let mut bytes = random::<16>()?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and without a leading zero byte
    Ok(SerialNumber::from_slice(&bytes))
}

/// The CA's parameters. The name carries the account id, so that the CAs
/// of two Latchkey installations are told apart; it must not change, as
/// minted certificates name their issuer with it.
fn ca_params(account: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("Latchkey database CA {account}"),
    );
    dn.push(DnType::OrganizationName, "Latchkey");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl DbCa {
    /// Loads the store's database CA, making it first if there is none.
    /// Safe when several processes race: the first one stored wins.
    pub fn load_or_create(store: &Store, now: i64) -> Result<Self> {
        let account = store.account_id();
        if store.database_ca()?.is_none() {
            let key = KeyPair::generate()?;
            let mut params = ca_params(account)?;
            params.serial_number = Some(serial()?);
            params.not_before = time_at(now - BACKDATE)?;
            params.not_after = time_at(now + CA_LIFETIME)?;
            let cert = params.self_signed(&key)?;
            let key_pem = zeroize::Zeroizing::new(key.serialize_pem());
            store.create_database_ca(&cert.pem(), &key_pem, now)?;
        }
        let (cert_pem, key_pem) = store
            .database_ca()?
            .context("the database CA vanished from the store")?;
        let key = KeyPair::from_pem(&key_pem).context("reading the database CA key")?;
        Ok(Self {
            cert_pem,
            issuer: Issuer::new(ca_params(account)?, key),
            minted: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate (PEM), for PostgreSQL's `ssl_ca_file`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A client certificate for `user` (common name = `user`), from the
    /// cache while it has more than [`CLIENT_CERT_RENEW_BEFORE`] left.
    pub fn client_cert(&self, user: &str, now: i64) -> Result<Arc<ClientCert>> {
        let mut minted = self.minted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cert) = minted.get(user)
            && cert.not_after - now > CLIENT_CERT_RENEW_BEFORE
        {
            return Ok(cert.clone());
        }
        let cert = Arc::new(self.mint(user, now)?);
        if minted.len() >= MAX_CACHED {
            minted.retain(|_, c| c.not_after - now > CLIENT_CERT_RENEW_BEFORE);
            if minted.len() >= MAX_CACHED {
                minted.clear();
            }
        }
        minted.insert(user.to_owned(), cert.clone());
        Ok(cert)
    }

    /// A new client certificate for `user`, valid for a day from `now`.
    pub fn mint(&self, user: &str, now: i64) -> Result<ClientCert> {
        if user.is_empty() || user.len() > 63 || user.contains('\0') {
            bail!("database user names for certificates are 1-63 characters");
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, user);
        params.serial_number = Some(serial()?);
        params.not_before = time_at(now - BACKDATE)?;
        params.not_after = time_at(now + CLIENT_CERT_LIFETIME)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ClientCert {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            not_after: now + CLIENT_CERT_LIFETIME,
        })
    }
}

/// The certificates in a PEM text, with a clear error for anything else.
pub fn parse_pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let mut certs = Vec::new();
    for item in rustls_pemfile::read_all(&mut pem.as_bytes()) {
        match item.context("the CA file is not valid PEM")? {
            rustls_pemfile::Item::X509Certificate(c) => certs.push(c),
            _ => bail!("the CA file holds something other than certificates (a private key?)"),
        }
    }
    if certs.is_empty() {
        bail!("the CA file holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    // Each must be usable as a trust anchor.
    for (i, c) in certs.iter().enumerate() {
        webpki_anchor(c).with_context(|| format!("certificate {} of the CA file", i + 1))?;
    }
    Ok(certs)
}

fn webpki_anchor(cert: &CertificateDer<'_>) -> Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.clone())
        .map_err(|e| anyhow::anyhow!("not a usable X.509 certificate: {e}"))?;
    Ok(())
}

/// SHA-256 fingerprints (uppercase hex, colon-separated, as `openssl x509
/// -fingerprint -sha256` prints them) of the certificates in a PEM text.
pub fn pem_fingerprints(pem: &str) -> Vec<String> {
    parse_pem_certs(pem)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            Sha256::digest(c.as_ref())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use latchkey_store::Vault;

    const NOW: i64 = 1_800_000_000;

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("store.db"), Vault::new(1, &[7; 32])).unwrap()
    }

    /// Verifies `cert` as a client certificate chaining to `ca_pem` at `at`.
    fn verify(ca_pem: &str, cert: &ClientCert, at: i64) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        for c in parse_pem_certs(ca_pem).unwrap() {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        verifier
            .verify_client_cert(
                &cert.chain[0],
                &[],
                rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    u64::try_from(at).unwrap(),
                )),
            )
            .map(|_| ())
    }

    #[test]
    fn mints_client_certificates_that_chain_to_the_stored_ca() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let ca = DbCa::load_or_create(&store, NOW).unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(pem_fingerprints(ca.cert_pem()).len(), 1);

        let cert = ca.client_cert("certuser", NOW).unwrap();
        assert_eq!(cert.not_after, NOW + CLIENT_CERT_LIFETIME);
        verify(ca.cert_pem(), &cert, NOW).unwrap();
        verify(ca.cert_pem(), &cert, NOW + CLIENT_CERT_LIFETIME - 1).unwrap();
        assert!(verify(ca.cert_pem(), &cert, NOW + CLIENT_CERT_LIFETIME + 1).is_err());
        // The common name is the user (DER: OID 2.5.4.3, then the string).
        let der = cert.chain[0].as_ref();
        assert!(
            der.windows(3 + 2 + 8)
                .any(|w| w[..3] == [0x55, 0x04, 0x03] && &w[5..] == b"certuser")
        );
        // The key is usable by rustls.
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.key_provider.load_private_key(cert.key()).unwrap();

        // Cached while fresh, re-minted near expiry.
        let again = ca.client_cert("certuser", NOW + 60).unwrap();
        assert!(Arc::ptr_eq(&cert, &again));
        let renewed = ca
            .client_cert("certuser", NOW + CLIENT_CERT_LIFETIME - 60)
            .unwrap();
        assert!(!Arc::ptr_eq(&cert, &renewed));
        assert_ne!(renewed.chain[0], cert.chain[0]);
        assert!(ca.client_cert("", NOW).is_err());

        // Another process (or node) loads the same CA from the store; its
        // certificates verify against the first one's CA certificate.
        let other = DbCa::load_or_create(&store, NOW + 10).unwrap();
        assert_eq!(other.cert_pem(), ca.cert_pem());
        verify(
            ca.cert_pem(),
            &other.mint("app", NOW + 10).unwrap(),
            NOW + 20,
        )
        .unwrap();

        // A different store's CA does not vouch for them.
        let dir2 = tempfile::tempdir().unwrap();
        let foreign = DbCa::load_or_create(&self::store(&dir2), NOW).unwrap();
        assert!(verify(foreign.cert_pem(), &cert, NOW).is_err());
    }

    #[test]
    fn pem_parsing_gives_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DbCa::load_or_create(&store(&dir), NOW).unwrap();
        let two = format!("{}{}", ca.cert_pem(), ca.cert_pem());
        assert_eq!(parse_pem_certs(&two).unwrap().len(), 2);
        let err = |pem: &str| format!("{:#}", parse_pem_certs(pem).unwrap_err());
        assert!(err("hello").contains("no PEM certificate"));
        assert!(err("").contains("no PEM certificate"));
        let key = KeyPair::generate().unwrap().serialize_pem();
        assert!(err(&key).contains("other than certificates"));
        assert!(
            err("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
                .contains("certificate 1")
        );
    }
}
