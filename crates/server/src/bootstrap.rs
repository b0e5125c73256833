//! First start: the data directory with its master key, store, CA and
//! server certificate, and an administrator with an access key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use latchkey_store::{PrincipalKind, Store, Vault, random};
use zeroize::Zeroizing;

use crate::files::{private_dir, write_private};
use crate::state::now;
use crate::tls::{TlsFiles, ensure_certificates};

/// The administrator every new installation gets.
pub const ADMIN_USER: &str = "admin";
const ADMIN_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AdministratorAccess","Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// Where things live in the data directory.
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }
    pub fn master_key(&self) -> PathBuf {
        self.root.join("master.key")
    }
    pub fn store(&self) -> PathBuf {
        self.root.join("latchkey.db")
    }
    pub fn tls(&self) -> TlsFiles {
        TlsFiles::in_dir(&self.root)
    }
    /// AWS shared-credentials file with the administrator's key.
    pub fn admin_credentials(&self) -> PathBuf {
        self.root.join("admin.credentials")
    }
    /// AWS config file pointing the AWS CLI at this server.
    pub fn aws_config(&self) -> PathBuf {
        self.root.join("aws.config")
    }
}

/// What `init` did.
pub struct InitReport {
    pub account: String,
    /// Set only when the administrator was created now: shown once.
    pub admin_key: Option<(String, Zeroizing<String>)>,
}

fn load_master_key(path: &Path) -> Result<Vault> {
    if !path.exists() {
        let key = Zeroizing::new(random::<32>()?);
        write_private(path, hex::encode(key.as_ref()).as_bytes())?;
    }
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by other users (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), key.as_mut())
        .with_context(|| format!("{} must hold 64 hex digits", path.display()))?;
    Ok(Vault::new(1, &key))
}

/// Creates whatever is missing and opens the store. Idempotent.
pub fn init(
    dir: &DataDir,
    server_names: &[String],
    endpoint: &str,
    region: &str,
) -> Result<(Store, InitReport)> {
    private_dir(&dir.root).with_context(|| format!("creating {}", dir.root.display()))?;
    let vault = load_master_key(&dir.master_key())?;
    let store = Store::open(&dir.store(), vault).context("opening the store")?;
    store.cluster_keys(now())?;
    ensure_certificates(&dir.tls(), server_names).context("creating TLS certificates")?;
    let mut admin_key = None;
    if store.list_users()?.is_empty() {
        let t = now();
        store.create_user(ADMIN_USER, "/", &[], t)?;
        store.put_inline_policy(
            PrincipalKind::User,
            ADMIN_USER,
            "AdministratorAccess",
            ADMIN_POLICY,
        )?;
        let (key, secret) = store.create_access_key(ADMIN_USER, t)?;
        let file = format!(
            "# Latchkey administrator ({ADMIN_USER}); created {}\n[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            crate::xml::timestamp(t),
            key.id,
            secret.as_str()
        );
        write_private(&dir.admin_credentials(), file.as_bytes())?;
        admin_key = Some((key.id, secret));
    }
    let ca = std::fs::canonicalize(dir.tls().ca_cert)?;
    let config = format!(
        "[default]\nregion = {region}\nendpoint_url = {endpoint}\nca_bundle = {}\n",
        ca.display()
    );
    std::fs::write(dir.aws_config(), config)?;
    let account = store.account_id().to_owned();
    Ok((store, InitReport { account, admin_key }))
}
