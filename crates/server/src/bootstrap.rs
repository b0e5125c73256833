//! First start: the data directory with its master key, store, CA and
//! server certificate, and an administrator with an access key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use latchkey_store::{PrincipalKind, Store, Vault, random};
use zeroize::Zeroizing;

pub use crate::files::private_tree;
use crate::files::{private_dir, private_file, set_mode, write_private};
use crate::tls::{TlsFiles, ensure_certificates};
use latchkey_identity::clock::system_now as now;

/// The administrator every new installation gets.
pub const ADMIN_USER: &str = "admin";
const ADMIN_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AdministratorAccess","Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// Where things live in the data directory.
pub struct DataDir {
    pub root: PathBuf,
    /// A PostgreSQL store shared by several nodes, in place of the
    /// embedded one in the directory.
    pub shared_store: Option<latchkey_store::postgres::PgLocation>,
}

impl DataDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            shared_store: None,
        }
    }

    /// With the store at `location` (none: the embedded one).
    pub fn with_store(mut self, location: Option<latchkey_store::postgres::PgLocation>) -> Self {
        self.shared_store = location;
        self
    }

    /// Opens the store: the shared one if there is one, else the embedded
    /// one in the directory.
    pub fn open_store(&self, vault: Vault) -> latchkey_store::Result<Store> {
        match &self.shared_store {
            Some(location) => Store::open_postgres(location, vault),
            None => Store::open(&self.store(), vault),
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
    /// This node's id: random, made once and kept in `node.id`, so that
    /// it stays the same across restarts (leases of background jobs, and
    /// which node's trail a record is in).
    pub fn node_id(&self) -> Result<String> {
        let path = self.root.join("node.id");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let id = text.trim();
            if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(id.to_owned());
            }
        }
        let id: String = random::<8>()?.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, format!("{id}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(id)
    }

    /// Every file the server makes here but the master key, which must be
    /// private already (see [`read_master_keys`]): the store and SQLite's
    /// files beside it, the TLS keys and certificates, the credentials
    /// and AWS config files.
    pub fn private_files(&self) -> Vec<PathBuf> {
        let tls = self.tls();
        let store = self.store();
        let beside = |suffix: &str| {
            let mut name = store.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        vec![
            beside("-wal"),
            beside("-shm"),
            beside("-journal"),
            store,
            tls.ca_key,
            tls.ca_cert,
            tls.server_key,
            tls.server_cert,
            self.admin_credentials(),
            self.aws_config(),
        ]
    }
    /// 0700 on the directory and 0600 on [`DataDir::private_files`],
    /// whatever their modes were.
    pub fn tighten(&self) -> Result<()> {
        private_dir(&self.root)
            .with_context(|| format!("making {} private", self.root.display()))?;
        for path in self.private_files() {
            set_mode(&path, 0o600).with_context(|| format!("making {} private", path.display()))?;
        }
        Ok(())
    }
}

/// What `init` did.
pub struct InitReport {
    pub account: String,
    /// Set only when the administrator was created now: shown once.
    pub admin_key: Option<(String, Zeroizing<String>)>,
}

pub(crate) type MasterKeys = Vec<(u32, Zeroizing<[u8; 32]>)>;

/// Reads `master.key`: one key per line as `ID HEX`, oldest first (the last
/// seals); a single bare hex line is key 1. Refuses a file its group or
/// other users can read or write: unlike the other files it is not
/// silently tightened, since a key others could read may have leaked.
pub fn read_master_keys(path: &Path) -> Result<MasterKeys> {
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "refusing to use the master key {}: its mode is {:o}, so its group or other users can read or write it; run `chmod 600 {}` (and, if someone else may have read it, `latchkey rotate-master-key`)",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    let mut keys = Vec::new();
    for (n, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
    {
        let (id, hex_key) = match line.split_once(' ') {
            Some((id, k)) => (
                id.parse::<u32>()
                    .with_context(|| format!("{} line {}: bad key id", path.display(), n + 1))?,
                k.trim(),
            ),
            None => (1, line),
        };
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_key, key.as_mut()).with_context(|| {
            format!(
                "{} line {}: a key must be 64 hex digits",
                path.display(),
                n + 1
            )
        })?;
        keys.push((id, key));
    }
    if keys.is_empty() {
        bail!("{} holds no key", path.display());
    }
    Ok(keys)
}

pub(crate) fn write_master_keys(path: &Path, keys: &[(u32, Zeroizing<[u8; 32]>)]) -> Result<()> {
    let mut text = Zeroizing::new(String::from(
        "# Latchkey master keys: ID HEX, newest last. Keep this file secret and backed up.\n",
    ));
    for (id, key) in keys {
        text.push_str(&format!("{id} {}\n", hex::encode(key.as_ref())));
    }
    // Write aside, then rename: a crash never leaves a half-written key file.
    let tmp = path.with_extension("key.tmp");
    write_private(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The vault for the keys in `master.key`.
pub fn load_vault(path: &Path) -> Result<Vault> {
    let keys = read_master_keys(path)?;
    let mut it = keys.iter();
    let (id, key) = it.next().context("no master key")?;
    let mut vault = Vault::new(*id, key);
    for (id, key) in it {
        vault.add(*id, key);
    }
    Ok(vault)
}

fn load_master_key(path: &Path) -> Result<Vault> {
    if !path.exists() {
        write_master_keys(path, &[(1, Zeroizing::new(random::<32>()?))])?;
    }
    load_vault(path)
}

/// Replaces the master key with no downtime: add a new key to
/// `master.key`, give running servers `settle` to take it up (they re-read
/// the file every few seconds), re-wrap every secret with it, give them
/// `settle` again, then drop the old keys from the file. Returns the new
/// key id and how many secrets were re-wrapped.
pub fn rotate_master_key(
    dir: &DataDir,
    settle: std::time::Duration,
    mut progress: impl FnMut(&str),
) -> Result<(u32, usize)> {
    let path = dir.master_key();
    let mut keys = read_master_keys(&path)?;
    let next = keys.iter().map(|(id, _)| *id).max().unwrap_or(0) + 1;
    keys.push((next, Zeroizing::new(random::<32>()?)));
    write_master_keys(&path, &keys)?;
    // Running servers seal with the new key as they re-read the file (the
    // store says which key to seal with: never one a server lacks).
    let store = dir.open_store(load_vault(&path)?)?;
    store.set_sealing_master_key(next)?;
    store.set_vault(load_vault(&path)?)?;
    progress(&format!(
        "added master key {next}; waiting {}s for running servers to load it",
        settle.as_secs()
    ));
    std::thread::sleep(settle);
    let count = store.rewrap_all()?;
    progress(&format!(
        "re-wrapped {count} secrets with key {next}; waiting {}s before retiring the old keys",
        settle.as_secs()
    ));
    std::thread::sleep(settle);
    keys.retain(|(id, _)| *id == next);
    write_master_keys(&path, &keys)?;
    progress(&format!("master key {next} is now the only key"));
    Ok((next, count))
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
    // Made private before SQLite opens it: its -wal and -shm files take
    // the database file's mode.
    private_file(&dir.store()).with_context(|| format!("creating {}", dir.store().display()))?;
    let store = dir.open_store(vault).context("opening the store")?;
    // Nodes starting together on a new shared store race to make key 1:
    // the loser finds the winner's when it asks again.
    match store.cluster_keys(now()) {
        Err(latchkey_store::StoreError::UniqueViolation) => {
            store.cluster_keys(now())?;
        }
        other => {
            other?;
        }
    }
    ensure_certificates(&dir.tls(), server_names).context("creating TLS certificates")?;
    let mut admin_key = None;
    // Nodes starting together on a new shared store race to make the
    // administrator: the one that loses leaves it to the winner.
    let made_admin = store.list_users()?.is_empty()
        && match store.create_user(ADMIN_USER, "/", &[], now()) {
            Ok(_) => true,
            Err(latchkey_store::StoreError::EntityAlreadyExists { .. }) => false,
            Err(e) => return Err(e.into()),
        };
    if made_admin {
        let t = now();
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
    // cli_follow_urlparam: AWS CLI v1 would otherwise fetch a parameter
    // that is an http(s) URL (a rotation webhook's) instead of sending it.
    let config = format!(
        "[default]\nregion = {region}\nendpoint_url = {endpoint}\nca_bundle = {}\ncli_follow_urlparam = false\n",
        ca.display()
    );
    write_private(&dir.aws_config(), config.as_bytes())?;
    dir.tighten()?;
    let account = store.account_id().to_owned();
    Ok((store, InitReport { account, admin_key }))
}
