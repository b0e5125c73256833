//! A self-signed CA and a server certificate made on first start, and the
//! rustls configuration that serves them.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::files::write_private;

const CA_CN: &str = "Latchkey local CA";

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_CN);
    dn.push(DnType::OrganizationName, "Latchkey");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Paths of the PEM files in the data directory.
pub struct TlsFiles {
    pub ca_cert: std::path::PathBuf,
    pub ca_key: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
}

impl TlsFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// Creates the CA (once) and a server certificate for `names` (localhost,
/// 127.0.0.1 and ::1 are always included) unless one exists.
pub fn ensure_certificates(files: &TlsFiles, names: &[String]) -> Result<()> {
    if !files.ca_key.exists() {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&files.ca_key, key.serialize_pem().as_bytes())?;
        std::fs::write(&files.ca_cert, cert.pem())?;
        // A new CA invalidates any old server certificate.
        let _ = std::fs::remove_file(&files.server_cert);
    }
    if files.server_cert.exists() && files.server_key.exists() {
        return Ok(());
    }
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&files.ca_key)?)
        .context("reading the CA key")?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "latchkey");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write_private(&files.server_key, key.serialize_pem().as_bytes())?;
    std::fs::write(&files.server_cert, cert.pem())?;
    Ok(())
}

/// The rustls server configuration (aws-lc-rs, TLS 1.2 and 1.3, h2 and http/1.1).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>> {
    // The server certificate alone: clients hold the CA as their trust
    // anchor, and a root in the chain is bytes every handshake sends and
    // every client parses for nothing.
    let path = &files.server_cert;
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let chain = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<CertificateDer<'static>>, _>>()?;
    let key_pem = std::fs::read(&files.server_key)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())?
        .context("no private key in server.key")?;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // AES-128-GCM with SHA-256 first: as strong as clients need, and its
    // key schedule runs on SHA-256 instructions where the SHA-384 one
    // (OpenSSL clients ask for it first) is software-only on most CPUs,
    // a measurable share of a handshake.
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.ignore_client_order = true;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
