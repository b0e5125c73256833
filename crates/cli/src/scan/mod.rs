//! `latchkey scan`: leaked credentials in a tree or on standard input,
//! each key found checked against the store (`live`, `inactive`,
//! `deleted`, `unknown`), as text, JSON or SARIF, with a baseline and an
//! exit status for CI.
//!
//! The detectors are `latchkey-scan`'s; this module walks (the `ignore`
//! crate's parallel walker: `.gitignore` respected, `.git` skipped, every
//! core used) or reads a repository's history or staged changes
//! ([`git`]), verifies and reports.

mod git;

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use latchkey_scan::{Detector, Finding, Located, Place, Scanner, Severity, Verification};
use latchkey_store::Store;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::config::ServerArgs;
use crate::exit;
use crate::output::print_json;

/// The baseline a scan reads when none is named, at the scan's root (the
/// repository's work tree, else the scanned directory).
const DEFAULT_BASELINE: &str = ".latchkey-scan-baseline.json";

/// Checks `--endpoint-url` makes of one key id, and of all, in one run.
const REMOTE_CHECKS_PER_KEY: usize = 10;
const REMOTE_CHECKS: usize = 500;

/// How much of a file is looked at to call it binary (a NUL byte in it).
const BINARY_SNIFF: usize = 8000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ScanOutput {
    #[default]
    Text,
    Json,
    /// SARIF 2.1.0, for code scanning in CI.
    Sarif,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ScanArgs {
    #[command(subcommand)]
    command: Option<ScanCommand>,
    /// Files and directories to scan [default: .]. Directories are walked
    /// with .gitignore respected and .git skipped.
    paths: Vec<PathBuf>,
    /// Scan standard input instead (reported as `-`).
    #[arg(long, conflicts_with_all = ["paths", "git", "staged"])]
    stdin: bool,
    /// Scan the whole history of the git repository at PATH [default: .]:
    /// every blob reachable from every ref, once, reported at the commit
    /// that brought it.
    #[arg(long, conflicts_with = "staged")]
    git: bool,
    /// Scan what is staged in the git repository at PATH [default: .]
    /// (for a pre-commit hook).
    #[arg(long)]
    staged: bool,
    /// Files larger than this many bytes are skipped.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    max_file_size: u64,
    /// Scan files over --max-file-size too.
    #[arg(long)]
    include_large: bool,
    /// Scan binary files too (those with a NUL byte in their first 8000 bytes).
    #[arg(long)]
    include_binary: bool,
    /// Skip paths matching this glob (gitignore syntax); repeatable. A
    /// repository can list its own in .latchkey-scan.toml at its root:
    /// exclude = ["vendor/**", "*.lock"].
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Findings whose fingerprint is in this file are not reported
    /// [default: .latchkey-scan-baseline.json at the repository's root
    /// (else the scanned directory's) if it exists].
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Write every current finding to the baseline (accepting them), and
    /// report nothing. Entries of files this scan did not cover stay.
    #[arg(long)]
    update_baseline: bool,
    /// Do not check found keys against the store.
    #[arg(long, conflicts_with = "revoke")]
    no_verify: bool,
    /// Deactivate every live key found with its secret, and revoke the
    /// sessions of every temporary key found with its session token,
    /// through the token service with your credentials
    /// (`RevokeLeakedAccessKey`, authorised as iam:UpdateAccessKey on the
    /// key's user, or iam:RevokeSessions on the session's role or user),
    /// which raises a finding (CredentialAccess:Repository/LeakedKey)
    /// saying where it was found.
    #[arg(long)]
    revoke: bool,
    /// The token service, for --revoke [env AWS_ENDPOINT_URL, or the
    /// profile's endpoint_url, default https://localhost:PORT of the
    /// configuration's listen address]. Given here, it also verifies keys
    /// instead of the store: a GetCallerIdentity signed with each key and
    /// secret found says live or unknown.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Its CA certificate [env AWS_CA_BUNDLE, or the profile's ca_bundle,
    /// default DATA_DIR/ca.pem].
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// The credentials profile that revokes [default: the AWS CLI's chain].
    #[arg(long)]
    profile: Option<String>,
    /// Bits of entropy per character a value assigned to a secret-sounding
    /// name must reach to be a generic-secret finding (0 to 8; lower finds
    /// plainer passwords, and more that are not).
    #[arg(long, value_name = "BITS", default_value_t = latchkey_scan::GENERIC_ENTROPY_BITS, value_parser = parse_bits)]
    generic_entropy: f64,
    /// Exit 1 when a finding at or above this severity remains
    /// (info, low, medium, high, critical).
    #[arg(long, default_value = "low", value_parser = parse_severity)]
    fail_on: Severity,
    #[arg(long, value_enum, default_value_t)]
    output: ScanOutput,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Subcommand, Debug)]
pub enum ScanCommand {
    /// Install a git pre-commit hook that refuses a commit whose staged
    /// changes hold a secret at or above --fail-on.
    InstallHook(HookArgs),
}

#[derive(Args, Debug)]
pub struct HookArgs {
    /// The repository [default: .].
    repository: Option<PathBuf>,
    /// The severity that refuses a commit (as `latchkey scan`'s own
    /// default: a generic secret or an encrypted key refuses it too).
    #[arg(long, default_value = "low", value_parser = parse_severity)]
    fail_on: Severity,
    /// Replace a pre-commit hook that is already there.
    #[arg(long)]
    force: bool,
}

/// Writes `.git/hooks/pre-commit`: `latchkey scan --staged`, by this
/// binary's absolute path, and says how to use the `pre-commit` framework
/// instead.
fn install_hook(args: &HookArgs) -> Result<u8> {
    let at = args
        .repository
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let repo = ::git2::Repository::discover(&at)
        .with_context(|| format!("{} is not in a git repository", at.display()))?;
    // Where git runs hooks from: core.hooksPath (relative to the work
    // tree), else the common directory's (a linked worktree shares it).
    let hooks = match repo.config()?.get_path("core.hooksPath") {
        Ok(path) if path.is_absolute() => path,
        Ok(path) => repo.workdir().unwrap_or_else(|| repo.path()).join(path),
        Err(_) => repo.commondir().join("hooks"),
    };
    std::fs::create_dir_all(&hooks).with_context(|| format!("creating {}", hooks.display()))?;
    // A merge commit runs pre-merge-commit, not pre-commit: both check
    // what the commit adds.
    let names = ["pre-commit", "pre-merge-commit"];
    for name in names {
        let hook = hooks.join(name);
        if hook.exists() && !args.force {
            bail!(
                "{} exists: add `latchkey scan --staged --fail-on {}` to it, or use --force to replace it",
                hook.display(),
                args.fail_on.as_str()
            );
        }
    }
    let exe = std::env::current_exe().context("finding the latchkey binary")?;
    let script = format!(
        "#!/bin/sh\n# Installed by `latchkey scan install-hook`: refuses a commit that holds a secret.\n\
         # Skip once with `git commit --no-verify`.\n\
         exec '{}' scan --staged --fail-on {}\n",
        exe.display().to_string().replace('\'', "'\\''"),
        args.fail_on.as_str()
    );
    for name in names {
        let hook = hooks.join(name);
        std::fs::write(&hook, &script).with_context(|| format!("writing {}", hook.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
        }
        println!("installed {}", hook.display());
    }
    eprintln!(
        "With the pre-commit framework instead, in .pre-commit-config.yaml:\n\
         repos:\n  - repo: local\n    hooks:\n      - id: latchkey-scan\n        name: latchkey scan\n\
         \x20       entry: latchkey scan --staged --fail-on {}\n        language: system\n        pass_filenames: false",
        args.fail_on.as_str()
    );
    Ok(exit::OK)
}

fn parse_bits(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(bits) if (0.0..=8.0).contains(&bits) => Ok(bits),
        _ => Err(format!("{s:?} is not a number of bits from 0 to 8")),
    }
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
        .map_err(|e: latchkey_scan::UnknownSeverity| e.to_string())
}

/// What a walk read.
#[derive(Default)]
pub(crate) struct Totals {
    files: AtomicU64,
    bytes: AtomicU64,
    skipped_large: AtomicU64,
    skipped_binary: AtomicU64,
    unreadable: AtomicU64,
}

/// Whether `bytes` begin UTF-16 text (what Windows PowerShell writes: a
/// byte-order mark, or ASCII with a NUL after every character): its byte
/// order (little-endian?) and the mark's length.
fn utf16_order(bytes: &[u8]) -> Option<(bool, usize)> {
    match bytes {
        [0xFF, 0xFE, ..] => Some((true, 2)),
        [0xFE, 0xFF, ..] => Some((false, 2)),
        _ => {
            let sample = &bytes[..bytes.len().min(256) & !1];
            let ascii_le = sample.len() >= 8
                && sample
                    .chunks_exact(2)
                    .all(|c| c[1] == 0 && c[0] != 0 && c[0].is_ascii());
            ascii_le.then_some((true, 0))
        }
    }
}

/// UTF-16 decoded as it arrives: an odd byte, or the first half of a
/// surrogate pair, waits for the next piece.
struct Utf16Decoder {
    little_endian: bool,
    carry: Vec<u8>,
}

impl Utf16Decoder {
    fn decode(&mut self, bytes: &[u8], end: bool) -> Vec<u8> {
        self.carry.extend_from_slice(bytes);
        let unit = |c: &[u8]| {
            if self.little_endian {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        };
        let mut whole = self.carry.len() & !1;
        if !end && whole >= 2 && (0xD800..0xDC00).contains(&unit(&self.carry[whole - 2..whole])) {
            whole -= 2;
        }
        let text: String = char::decode_utf16(self.carry[..whole].chunks_exact(2).map(unit))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        self.carry.drain(..whole);
        text.into_bytes()
    }
}

/// UTF-16 text as UTF-8; `None` for anything else.
fn utf16_as_utf8(bytes: &[u8]) -> Option<Vec<u8>> {
    let (little_endian, mark) = utf16_order(bytes)?;
    let mut decoder = Utf16Decoder {
        little_endian,
        carry: Vec::new(),
    };
    Some(decoder.decode(&bytes[mark..], true))
}

/// The findings in one file's bytes (UTF-16 read as the text it is),
/// unless it is binary and binaries are not wanted.
pub(crate) fn scan_bytes(
    scanner: &Scanner,
    bytes: &[u8],
    place: &Place,
    include_binary: bool,
    totals: &Totals,
) -> Vec<(Finding, Place)> {
    let decoded = utf16_as_utf8(bytes);
    let bytes = decoded.as_deref().unwrap_or(bytes);
    if !include_binary && bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
        totals.skipped_binary.fetch_add(1, Ordering::Relaxed);
        return Vec::new();
    }
    totals.files.fetch_add(1, Ordering::Relaxed);
    totals
        .bytes
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    scanner
        .scan(bytes)
        .into_iter()
        .map(|f| (f, place.clone()))
        .collect()
}

/// Files larger than this are read and scanned in pieces
/// ([`latchkey_scan::StreamScan`]) rather than held whole.
const STREAM_ABOVE: u64 = 16 << 20;

/// The findings in what `reader` gives (a large file, standard input),
/// read, decoded (UTF-16 as the text it is) and scanned in pieces, never
/// held whole; binary is told from its first bytes.
pub(crate) fn scan_reader(
    scanner: &Scanner,
    mut reader: impl Read,
    place: &Place,
    include_binary: bool,
    totals: &Totals,
) -> std::io::Result<Vec<(Finding, Place)>> {
    let mut raw = Vec::with_capacity(BINARY_SNIFF);
    (&mut reader)
        .take(BINARY_SNIFF as u64)
        .read_to_end(&mut raw)?;
    let mut utf16 = utf16_order(&raw).map(|(little_endian, mark)| {
        raw.drain(..mark);
        Utf16Decoder {
            little_endian,
            carry: Vec::new(),
        }
    });
    let head = match &mut utf16 {
        Some(decoder) => decoder.decode(&raw, false),
        None => raw,
    };
    if !include_binary && head.contains(&0) {
        totals.skipped_binary.fetch_add(1, Ordering::Relaxed);
        return Ok(Vec::new());
    }
    totals.files.fetch_add(1, Ordering::Relaxed);
    let mut stream = latchkey_scan::StreamScan::new(scanner);
    let mut found = stream.push(&head);
    let mut piece = vec![0u8; 1 << 20];
    let mut read = head.len();
    loop {
        let n = match reader.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        match &mut utf16 {
            Some(decoder) => {
                let text = decoder.decode(&piece[..n], false);
                read += text.len();
                found.extend(stream.push(&text));
            }
            None => {
                read += n;
                found.extend(stream.push(&piece[..n]));
            }
        }
    }
    if let Some(decoder) = &mut utf16 {
        let text = decoder.decode(&[], true);
        read += text.len();
        found.extend(stream.push(&text));
    }
    found.extend(stream.finish());
    totals.bytes.fetch_add(read as u64, Ordering::Relaxed);
    Ok(found.into_iter().map(|f| (f, place.clone())).collect())
}

/// The findings in the file at `path` of `size` bytes: read whole, or
/// in pieces when large.
fn scan_file(
    scanner: &Scanner,
    path: &Path,
    size: u64,
    place: &Place,
    include_binary: bool,
    totals: &Totals,
) -> std::io::Result<Vec<(Finding, Place)>> {
    if size > STREAM_ABOVE {
        let file = std::fs::File::open(path)?;
        scan_reader(scanner, file, place, include_binary, totals)
    } else {
        let bytes = std::fs::read(path)?;
        Ok(scan_bytes(scanner, &bytes, place, include_binary, totals))
    }
}

/// The paths a walk starts from: those given, or `.`.
fn roots(args: &ScanArgs) -> Vec<PathBuf> {
    if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    }
}

/// The directory a scan of `path` belongs to, absolute: the work tree of
/// the git repository it is in, else the directory itself (a file's own).
/// Its `.latchkey-scan.toml` and baseline are the scan's, and fingerprints
/// are of paths relative to it.
fn scan_root(path: &Path) -> PathBuf {
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Ok(repo) = ::git2::Repository::discover(&abs)
        && let Some(workdir) = repo.workdir()
    {
        return workdir
            .canonicalize()
            .unwrap_or_else(|_| workdir.to_path_buf());
    }
    if abs.is_dir() {
        abs
    } else {
        abs.parent().map_or(abs.clone(), Path::to_path_buf)
    }
}

/// Each root walked on every core, with its own repository's exclusions.
fn walk(args: &ScanArgs, scanner: &Scanner, totals: &Totals) -> Result<Vec<(Finding, Place)>> {
    let roots = roots(args);
    for root in &roots {
        if !root.exists() {
            bail!("{}: no such file or directory", root.display());
        }
    }
    let found = Mutex::new(Vec::new());
    for root in &roots {
        // Walked absolute, so that the exclusions (relative to the
        // repository's root) match wherever the scan runs from; reported
        // as given.
        let abs = root.canonicalize()?;
        let overrides = excludes(args, &scan_root(root))?;
        let mut builder = ignore::WalkBuilder::new(&abs);
        // Only .gitignore decides what a repository leaves out: a
        // committed `.ignore` (ripgrep's) must not hide its files here.
        builder
            .hidden(false)
            .ignore(false)
            .git_global(false)
            .require_git(false)
            .overrides(overrides)
            .filter_entry(|e| e.file_name() != ".git");
        builder.build_parallel().run(|| {
            let (found, abs) = (&found, &abs);
            Box::new(move |entry| {
                let Ok(entry) = entry else {
                    totals.unreadable.fetch_add(1, Ordering::Relaxed);
                    return ignore::WalkState::Continue;
                };
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return ignore::WalkState::Continue;
                }
                let path = entry.path();
                let size = entry.metadata().map_or(0, |m| m.len());
                if size > args.max_file_size && !args.include_large {
                    totals.skipped_large.fetch_add(1, Ordering::Relaxed);
                    return ignore::WalkState::Continue;
                }
                let shown = match path.strip_prefix(abs) {
                    Ok(rel) if !rel.as_os_str().is_empty() => root.join(rel),
                    _ => root.clone(),
                };
                let place = Place {
                    path: display_path(&shown),
                    commit: None,
                };
                let read = scan_file(scanner, path, size, &place, args.include_binary, totals);
                let Ok(hits) = read else {
                    totals.unreadable.fetch_add(1, Ordering::Relaxed);
                    return ignore::WalkState::Continue;
                };
                if !hits.is_empty() {
                    found.lock().unwrap_or_else(|p| p.into_inner()).extend(hits);
                }
                ignore::WalkState::Continue
            })
        });
    }
    let mut found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    for root in &roots {
        found.extend(tracked_but_ignored(args, root, scanner, totals)?);
    }
    Ok(found)
}

/// Files a repository tracks although its `.gitignore` names them (a
/// `.env` added with `git add -f`): the walk skipped them, but they are
/// committed, so they are scanned too.
fn tracked_but_ignored(
    args: &ScanArgs,
    root: &Path,
    scanner: &Scanner,
    totals: &Totals,
) -> Result<Vec<(Finding, Place)>> {
    let Ok(repo) = ::git2::Repository::discover(root) else {
        return Ok(Vec::new());
    };
    let (Some(workdir), Ok(root_abs)) = (repo.workdir(), root.canonicalize()) else {
        return Ok(Vec::new());
    };
    let workdir = workdir.canonicalize()?;
    let skip = excludes(args, &workdir)?;
    let mut found = Vec::new();
    for entry in repo.index()?.iter() {
        let rel = PathBuf::from(String::from_utf8_lossy(&entry.path).into_owned());
        let abs = workdir.join(&rel);
        let Ok(under_root) = abs.strip_prefix(&root_abs) else {
            continue;
        };
        let shown = if under_root.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(under_root)
        };
        if !repo.status_should_ignore(&rel).unwrap_or(false)
            || skip.matched(&abs, false).is_ignore()
            || !abs.is_file()
        {
            continue;
        }
        let size = abs.metadata().map_or(0, |m| m.len());
        if size > args.max_file_size && !args.include_large {
            totals.skipped_large.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let place = Place {
            path: display_path(&shown),
            commit: None,
        };
        match scan_file(scanner, &abs, size, &place, args.include_binary, totals) {
            Ok(hits) => found.extend(hits),
            Err(_) => {
                totals.unreadable.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(found)
}

/// The file a repository keeps its scan settings in, at its root.
const REPO_CONFIG: &str = ".latchkey-scan.toml";

/// The repository's scan settings: `exclude = ["glob", ...]`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RepoConfig {
    #[serde(default)]
    exclude: Vec<String>,
}

/// The paths not to scan: `--exclude` flags and the `exclude` globs of
/// `.latchkey-scan.toml` at `root`, the scan's root (gitignore syntax,
/// relative to it).
fn excludes(args: &ScanArgs, root: &Path) -> Result<ignore::overrides::Override> {
    let base = root;
    let config_path = base.join(REPO_CONFIG);
    let config: RepoConfig = match std::fs::read_to_string(&config_path) {
        // The parser quotes the file: its text is anyone's, and is
        // escaped before it reaches a terminal.
        Ok(text) => toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not valid: {}",
                printable(&config_path.display().to_string()),
                printable(&e.to_string())
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RepoConfig::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", config_path.display())),
    };
    let mut overrides = ignore::overrides::OverrideBuilder::new(base);
    for glob in args.excludes.iter().chain(&config.exclude) {
        overrides
            .add(&format!("!{glob}"))
            .with_context(|| format!("exclude glob {glob:?}"))?;
    }
    Ok(overrides.build()?)
}

/// Text for a terminal: control characters (escape sequences, new lines)
/// and bidirectional overrides as `\u{..}`.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || latchkey_server::is_hidden_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A path as reported: relative as walked, without a leading `./`.
fn display_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    text.strip_prefix("./").unwrap_or(&text).to_owned()
}

/// What the store says of the key in `f`. When the secret is not the
/// paired id's, each other id near it is tried: a decoy id standing
/// nearer must not hide the key whose secret it is (the finding then
/// names that key).
fn verify(store: &Store, f: &mut Finding) -> Result<Verification> {
    let Some(id) = f.key_id.clone() else {
        return Ok(Verification::NotChecked);
    };
    // A temporary key is derived from its session token, not stored; and
    // a key id alone is no credential: only an id with a secret is
    // checked (and can be revoked).
    if !id.starts_with("AKIA") || !f.holds_key_secret() {
        return Ok(Verification::NotChecked);
    }
    let status = check_long_term(store, &id, f)?;
    if status == Verification::Unknown {
        for other in f.other_key_ids.clone() {
            if !other.starts_with("AKIA") {
                continue;
            }
            let theirs = check_long_term(store, &other, f)?;
            // Only a secret the store matched says whose it is.
            if matches!(theirs, Verification::Live | Verification::Inactive) {
                f.key_id = Some(other);
                return Ok(theirs);
            }
        }
    }
    Ok(status)
}

/// The store's word on long-term key `id` with the secret of `f`.
fn check_long_term(store: &Store, id: &str, f: &Finding) -> Result<Verification> {
    Ok(match store.access_key_secret(id)? {
        Some((key, secret)) => {
            if !bool::from(secret.as_bytes().ct_eq(f.secret.expose().as_bytes())) {
                // Not this key's secret: nothing that works leaked.
                Verification::Unknown
            } else if key.active {
                Verification::Live
            } else {
                Verification::Inactive
            }
        }
        None if store.deleted_access_key(id)?.is_some() => Verification::Deleted,
        None => Verification::Unknown,
    })
}

/// Session credentials found, checked with the cluster keys: a session
/// token that opens names its temporary key and is `live`, `expired`,
/// `revoked` or `deleted` (its role or user gone); one that does not is
/// `unknown` (another cluster's, AWS's, or no token). A temporary key
/// with its secret takes the verification of its own token near it
/// (within five lines), when the secret is the session's.
fn verify_sessions(
    config: &crate::config::Config,
    store: &Store,
    results: &mut [Located],
) -> Result<()> {
    use latchkey_identity::CredentialFailure;
    let is_session_key = |f: &Finding| {
        f.holds_key_secret() && f.key_id.as_deref().is_some_and(|id| id.starts_with("ASIA"))
    };
    if !results
        .iter()
        .any(|r| r.finding.detector == Detector::SessionToken || is_session_key(&r.finding))
    {
        return Ok(());
    }
    let now = latchkey_identity::clock::system_now();
    let state = latchkey_identity::AppState::new(config.open_store()?, store.cluster_keys(now)?)?;
    let check = |id: &str, token: &str| match state.find_credentials(id, Some(token), now, "") {
        Ok(found) => {
            let verification = match found.refusal.map(|e| e.failure) {
                // Its role or user deleted (or re-created) since: over.
                None => match state.check_bound(&found.caller) {
                    Ok(_) => Verification::Live,
                    Err(latchkey_identity::IdentityError::Credential(e))
                        if e.failure == CredentialFailure::PrincipalGone =>
                    {
                        Verification::Deleted
                    }
                    Err(_) => Verification::Unknown,
                },
                Some(CredentialFailure::Expired) => Verification::Expired,
                Some(CredentialFailure::SessionRevoked) => Verification::Revoked,
                Some(CredentialFailure::PrincipalGone) => Verification::Deleted,
                Some(_) => Verification::Unknown,
            };
            (verification, Some(found.secret))
        }
        Err(_) => (Verification::Unknown, None),
    };
    for r in results.iter_mut() {
        if r.finding.detector != Detector::SessionToken {
            continue;
        }
        let token = r.finding.secret.expose().to_owned();
        r.verification = match state.session_access_key_id(&token) {
            Some(id) => {
                let (verification, _) = check(&id, &token);
                r.finding.key_id = Some(id);
                verification
            }
            None => Verification::Unknown,
        };
    }
    for i in 0..results.len() {
        if !is_session_key(&results[i].finding) {
            continue;
        }
        // Its token names its key: the paired id's, or another near it
        // (a decoy id may stand nearer the secret).
        let ids: Vec<String> = results[i]
            .finding
            .key_id
            .iter()
            .chain(&results[i].finding.other_key_ids)
            .cloned()
            .collect();
        let own_token = ids.iter().find_map(|id| {
            results.iter().find(|o| {
                o.finding.detector == Detector::SessionToken
                    && o.finding.key_id.as_deref() == Some(id.as_str())
                    && o.place == results[i].place
                    && o.finding.line.abs_diff(results[i].finding.line) <= PAIR_LINES
            })
        });
        let Some((id, token)) = own_token.and_then(|o| {
            Some((
                o.finding.key_id.clone()?,
                o.finding.secret.expose().to_owned(),
            ))
        }) else {
            // Without its token a temporary key cannot be checked.
            continue;
        };
        let (verification, secret) = check(&id, &token);
        let secret_matches = secret.is_some_and(|s| {
            bool::from(
                s.as_bytes()
                    .ct_eq(results[i].finding.secret.expose().as_bytes()),
            )
        });
        results[i].verification = if secret_matches {
            results[i].finding.key_id = Some(id);
            verification
        } else {
            Verification::Unknown
        };
    }
    Ok(())
}

/// How many lines from a temporary key its session token may be.
const PAIR_LINES: usize = 5;

/// The token service, as the AWS CLI finds it: `--endpoint-url` or
/// `AWS_ENDPOINT_URL` or the profile's `endpoint_url` (else the
/// configuration's listen address), and its CA likewise.
struct Api {
    env: latchkey_awsconfig::Environment,
    endpoint: latchkey_client::Endpoint,
    tls: latchkey_client::TlsConnector,
    region: String,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    fn new(args: &ScanArgs, config: Option<&crate::config::Config>) -> Result<Self> {
        use latchkey_awsconfig::{Environment, resolve_region, resolve_setting};
        let env = Environment::from_process();
        let profile = args.profile.as_deref();
        let region = resolve_region(&env, None, profile).unwrap_or_else(|_| "us-east-1".into());
        let endpoint_url = resolve_setting(
            &env,
            args.endpoint_url.as_deref(),
            "AWS_ENDPOINT_URL",
            "endpoint_url",
            profile,
        )?
        .or_else(|| config.map(|c| format!("https://localhost:{}", c.listen.port())))
        .context("no token service: give --endpoint-url")?;
        let endpoint = latchkey_client::Endpoint::parse(&endpoint_url)?;
        let explicit_ca = args.ca_bundle.as_deref().and_then(Path::to_str);
        let ca = resolve_setting(&env, explicit_ca, "AWS_CA_BUNDLE", "ca_bundle", profile)?
            .map(PathBuf::from)
            .or_else(|| config.map(|c| c.data_dir.join("ca.pem")))
            .context("no CA certificate for the token service: give --ca-bundle")?;
        let tls = latchkey_client::tls_connector(&ca)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            env,
            endpoint,
            tls,
            region,
            runtime,
        })
    }

    /// The operator's credentials (the AWS CLI's chain).
    fn operator(&self, args: &ScanArgs) -> Result<latchkey_sigv4::Credentials> {
        Ok(
            latchkey_awsconfig::resolve_credentials(&self.env, args.profile.as_deref())
                .context("--revoke calls the token service with your credentials")?
                .credentials,
        )
    }

    /// One Query call; the service's refusal is `Ok(Err(..))`.
    fn call(
        &self,
        service: &str,
        action: &str,
        params: &[(String, String)],
        credentials: &latchkey_sigv4::Credentials,
    ) -> Result<Result<Value, latchkey_client::ClientError>> {
        let version = if service == "sts" {
            "2011-06-15"
        } else {
            "2010-05-08"
        };
        let request = latchkey_client::signed_post(
            &self.endpoint,
            service,
            &self.region,
            latchkey_client::form(action, version, params),
            credentials,
            crate::output::now_or(None)?,
        )?;
        let (status, body) =
            self.runtime
                .block_on(latchkey_client::send(&self.tls, &self.endpoint, request))?;
        Ok(latchkey_client::interpret(action, status, &body))
    }
}

/// What the token service says of the credential `f` holds, by a call
/// signed with it that reveals nothing (`GetCallerIdentity`): `live`, or
/// `unknown` (from outside, an inactive, deleted and never-issued key look
/// alike). A key id alone is not checked.
fn verify_remote(api: &Api, results: &[Located], i: usize) -> Result<Verification> {
    let f = &results[i].finding;
    let Some(id) = f.key_id.clone().filter(|_| f.holds_key_secret()) else {
        return Ok(Verification::NotChecked);
    };
    let tokens: Vec<Option<String>> = if id.starts_with("ASIA") {
        let near = session_tokens_near(results, i);
        if near.is_empty() {
            return Ok(Verification::NotChecked);
        }
        near.into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    for token in tokens {
        let credentials = latchkey_sigv4::Credentials {
            access_key_id: id.clone(),
            secret_access_key: zeroize::Zeroizing::new(f.secret.expose().to_owned()),
            session_token: token,
        };
        match api.call("sts", "GetCallerIdentity", &[], &credentials)? {
            Ok(_) => return Ok(Verification::Live),
            Err(latchkey_client::ClientError::Service { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Verification::Unknown)
}

/// The session tokens found near a temporary key's finding `i` (within
/// five lines, in the same file and commit), nearest first: which one is
/// the key's, only the token service can tell.
fn session_tokens_near(results: &[Located], i: usize) -> Vec<String> {
    let r = &results[i];
    let mut near: Vec<(usize, String)> = results
        .iter()
        .filter(|o| {
            o.finding.detector == Detector::SessionToken
                && o.place == r.place
                && o.finding.line.abs_diff(r.finding.line) <= PAIR_LINES
        })
        .map(|o| {
            (
                o.finding.line.abs_diff(r.finding.line),
                o.finding.secret.expose().to_owned(),
            )
        })
        .collect();
    near.sort_by_key(|(distance, _)| *distance);
    near.into_iter().map(|(_, token)| token).collect()
}

/// Through the token service, once per key (at its first place): each
/// live long-term key is deactivated, and each temporary key found with
/// its session token (or a session token found alone, which names its
/// key) has its role's (or user's) sessions revoked; marks the findings
/// revoked. A key the service does not know is left as it is; the keys
/// that could not be revoked are returned, with why.
fn revoke(
    args: &ScanArgs,
    config: Option<&crate::config::Config>,
    results: &mut [Located],
) -> Result<Vec<String>> {
    use latchkey_client::ClientError;
    // Only what may still let someone in: a session known to be over
    // (expired, revoked, another cluster's) is left alone, for revoking
    // its role's sessions would end only the live ones, which did not
    // leak.
    let may_be_live = |v: Verification| matches!(v, Verification::Live | Verification::NotChecked);
    let mut candidates: Vec<(usize, Vec<String>)> = (0..results.len())
        .filter_map(|i| {
            let r = &results[i];
            if r.finding.detector == Detector::SessionToken {
                return may_be_live(r.verification)
                    .then(|| (i, vec![r.finding.secret.expose().to_owned()]));
            }
            let key = r.finding.key_id.as_deref()?;
            let paired = r.finding.holds_key_secret();
            if key.starts_with("AKIA") && paired && r.verification == Verification::Live {
                Some((i, Vec::new()))
            } else if key.starts_with("ASIA") && paired && may_be_live(r.verification) {
                let tokens = session_tokens_near(results, i);
                (!tokens.is_empty()).then_some((i, tokens))
            } else {
                None
            }
        })
        .collect();
    // Long-term keys, then temporary keys with their tokens, then tokens
    // (one whose key was revoked with its pair is marked so, not sent
    // again): revoking a role's sessions may end the session this scan
    // revokes with.
    let order = |i: usize| match results[i].finding.detector {
        Detector::SessionToken => 2,
        _ if results[i]
            .finding
            .key_id
            .as_deref()
            .is_some_and(|k| k.starts_with("ASIA")) =>
        {
            1
        }
        _ => 0,
    };
    candidates.sort_by_key(|(i, _)| order(*i));
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let api = Api::new(args, config)?;
    let credentials = api.operator(args)?;
    let mut done: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    for (i, tokens) in candidates {
        let r = &results[i];
        // A token alone whose key is not known here is named by its ends
        // (and told apart by its digest) until the service says which
        // key it is.
        let (key, once) = match r.finding.key_id.clone() {
            Some(key) => (key.clone(), key),
            None if r.finding.detector == Detector::SessionToken => (
                format!("the session token {}", r.finding.secret.masked()),
                r.finding.secret.digest(),
            ),
            None => continue,
        };
        if done.contains(&once) {
            results[i].revoked = true;
            continue;
        }
        // A file's name is anyone's text: control characters become `?`
        // and it is cut to what the service takes.
        let path: String = r
            .place
            .path
            .chars()
            .map(|c| {
                if c.is_control() || latchkey_server::is_hidden_char(c) {
                    '?'
                } else {
                    c
                }
            })
            .take(900)
            .collect();
        let mut location = format!("{path}:{}", r.finding.line);
        if let Some((commit, _)) = &r.place.commit {
            location.push_str(&format!(" in commit {commit}"));
        }
        let mut params = vec![
            ("Location".to_owned(), location),
            ("Detector".to_owned(), r.finding.detector.id().to_owned()),
        ];
        if let Some(id) = &r.finding.key_id {
            params.push(("AccessKeyId".to_owned(), id.clone()));
        }
        // A long-term key once; a temporary one with each token near it
        // until one is its own.
        let attempts: Vec<Option<String>> = if tokens.is_empty() {
            vec![None]
        } else {
            tokens.into_iter().map(Some).collect()
        };
        let is_session = attempts.iter().any(Option::is_some);
        let mut revoked = false;
        let mut over = false;
        for token in attempts {
            let mut params = params.clone();
            if let Some(token) = token {
                params.push(("SessionToken".to_owned(), token));
            }
            match api.call("iam", "RevokeLeakedAccessKey", &params, &credentials)? {
                Ok(answer) => {
                    revoked = true;
                    // A token alone: the service says whose key it was.
                    if results[i].finding.key_id.is_none()
                        && let Some(id) = answer["AccessKeyId"].as_str()
                    {
                        results[i].finding.key_id = Some(id.to_owned());
                    }
                    break;
                }
                Err(ClientError::Service { code, .. }) if code == "NoSuchEntity" => {}
                // Over already: nothing to revoke, and nothing to fear.
                Err(ClientError::Service { code, message, .. }) if code == "SessionNotLive" => {
                    eprintln!("{key}: {message}");
                    over = true;
                    break;
                }
                // One key that cannot be revoked stops none of the others.
                Err(e) => {
                    failures.push(format!("revoking {key}: {e}"));
                    break;
                }
            }
        }
        if revoked {
            results[i].revoked = true;
            // A session that opened was live.
            results[i].verification = Verification::Live;
            done.push(once);
        } else if is_session && !over {
            eprintln!("{key}: none of the session tokens near it is its own; not revoked");
        }
    }
    Ok(failures)
}

/// What the reported paths are relative to, as a `file://` URI ending in
/// `/`: the repository's work tree for `--git` and `--staged` (paths in
/// history are the repository's), else the current directory (a walk
/// reports paths as given).
fn source_root(args: &ScanArgs) -> Option<String> {
    let dir = if args.git || args.staged {
        let at = args.paths.first().map_or(Path::new("."), PathBuf::as_path);
        ::git2::Repository::discover(at)
            .ok()?
            .workdir()?
            .canonicalize()
            .ok()?
    } else {
        std::env::current_dir().ok()?
    };
    let text = dir.to_str()?;
    let mut uri = format!("file://{}", latchkey_scan::report::uri_path(text));
    if !uri.ends_with('/') {
        uri.push('/');
    }
    Some(uri)
}

/// Fingerprints a baseline accepts.
fn read_baseline(path: &Path) -> Result<HashSet<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a scan baseline (JSON)", path.display()))?;
    let list = v["findings"]
        .as_array()
        .with_context(|| format!("{}: no \"findings\" list", path.display()))?;
    list.iter()
        .map(|f| {
            f["fingerprint"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{}: a finding without a fingerprint", path.display()))
        })
        .collect()
}

/// Each finding's path relative to the scan root of the path it was
/// walked from (see [`scan_root`]), so that a fingerprint is the same from
/// any directory: history and staged paths are the repository's already.
struct FingerprintPaths {
    /// The first path's scan root, where the baseline is by default.
    root: PathBuf,
    /// Paths in a repository's own terms (history, staged, stdin).
    as_reported: bool,
    /// Each walked path, absolute, and its scan root.
    walked: Vec<(PathBuf, PathBuf)>,
}

impl FingerprintPaths {
    fn new(args: &ScanArgs) -> Self {
        let first = args.paths.first().map_or(Path::new("."), PathBuf::as_path);
        let as_reported = args.stdin || args.git || args.staged;
        let walked = if as_reported {
            Vec::new()
        } else {
            roots(args)
                .iter()
                .filter_map(|r| Some((r.canonicalize().ok()?, scan_root(r))))
                .collect()
        };
        Self {
            root: if args.stdin {
                std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
            } else {
                scan_root(first)
            },
            as_reported,
            walked,
        }
    }

    fn of(&self, place: &Place) -> String {
        if self.as_reported {
            return place.path.clone();
        }
        let Ok(abs) = Path::new(&place.path).canonicalize() else {
            return place.path.clone();
        };
        self.walked
            .iter()
            .find(|(walked, _)| abs.starts_with(walked))
            .and_then(|(_, root)| abs.strip_prefix(root).ok())
            .map_or(place.path.clone(), |rel| rel.to_string_lossy().into_owned())
    }

    /// The files this run covered, in fingerprint paths, for
    /// `--update-baseline` to replace the entries of.
    fn scope(&self, args: &ScanArgs) -> Scope {
        if args.git {
            Scope::Everything
        } else if args.stdin || args.staged {
            Scope::Nothing
        } else {
            let prefixes = roots(args)
                .iter()
                .map(|root| {
                    let abs = root.canonicalize().unwrap_or_else(|_| root.clone());
                    abs.strip_prefix(scan_root(root))
                        .map_or(display_path(root), |rel| rel.to_string_lossy().into_owned())
                })
                .collect();
            Scope::Under(prefixes)
        }
    }
}

/// What a scan read, for the baseline entries it replaces.
enum Scope {
    /// A repository's whole history.
    Everything,
    /// Files under these paths (relative to the scan root; empty for all
    /// of it).
    Under(Vec<String>),
    /// No whole file (staged lines, standard input): entries are added.
    Nothing,
}

impl Scope {
    fn covers(&self, path: &str) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Nothing => false,
            Scope::Under(prefixes) => prefixes.iter().any(|p| {
                p.is_empty()
                    || p == "."
                    || path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }),
        }
    }
}

/// Writes today's findings to the baseline, keeping the entries of files
/// this scan did not cover (a scan of `src/` keeps `tests/`'s); returns
/// how many were kept and how many written in all.
fn write_baseline(path: &Path, results: &[Located], scope: &Scope) -> Result<(usize, usize)> {
    let mut findings: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "fingerprint": r.fingerprint(),
                "detector": r.finding.detector.id(),
                "path": r.fingerprint_path,
                "masked": r.finding.secret.masked(),
            })
        })
        .collect();
    let mut kept = 0;
    if path.exists() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let old: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a scan baseline (JSON)", path.display()))?;
        for entry in old["findings"].as_array().into_iter().flatten() {
            let covered = entry["path"].as_str().is_some_and(|p| scope.covers(p));
            if !covered && entry["fingerprint"].is_string() {
                findings.push(entry.clone());
                kept += 1;
            }
        }
    }
    findings.sort_by(|a, b| {
        (a["path"].as_str(), a["fingerprint"].as_str())
            .cmp(&(b["path"].as_str(), b["fingerprint"].as_str()))
    });
    findings.dedup_by(|a, b| a["fingerprint"] == b["fingerprint"]);
    let written = findings.len();
    let text = serde_json::to_string_pretty(&json!({"version": 1, "findings": findings}))?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok((kept, written))
}

/// Prints "scanned N files" on a terminal while a long scan runs.
fn progress(totals: &Arc<Totals>) -> Option<std::sync::mpsc::Sender<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let totals = totals.clone();
    std::thread::spawn(move || {
        while stopped
            .recv_timeout(std::time::Duration::from_secs(1))
            .is_err_and(|e| e == std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            eprint!(
                "\rscanned {} files, {} MB",
                totals.files.load(Ordering::Relaxed),
                totals.bytes.load(Ordering::Relaxed) / 1_000_000
            );
        }
        eprint!("\r\x1b[K");
    });
    Some(stop)
}

pub fn run(args: &ScanArgs) -> Result<u8> {
    if let Some(ScanCommand::InstallHook(hook)) = &args.command {
        return install_hook(hook);
    }
    let scanner = Scanner::new().with_generic_entropy(args.generic_entropy);
    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let stop = progress(&totals);
    let hits = if args.stdin {
        let place = Place {
            path: "-".to_owned(),
            commit: None,
        };
        scan_reader(&scanner, std::io::stdin().lock(), &place, true, &totals)
            .context("reading standard input")?
    } else if args.git || args.staged {
        let path = args.paths.first().map_or(Path::new("."), PathBuf::as_path);
        let part = if args.git {
            git::Part::History
        } else {
            git::Part::Staged
        };
        let max = (!args.include_large).then_some(args.max_file_size);
        let skip = excludes(args, &scan_root(path))?;
        git::scan_repository(
            path,
            part,
            &scanner,
            args.include_binary,
            max,
            &skip,
            &totals,
        )?
    } else {
        walk(args, &scanner, &totals)?
    };
    drop(stop);
    let elapsed = started.elapsed();

    // Verification against the store, when there is one to read.
    let (config, store) = if args.no_verify {
        (None, None)
    } else {
        let explicit = args.server.flags.general.data_dir.is_some()
            || (args.revoke && args.endpoint_url.is_none());
        let opened = args
            .server
            .resolve()
            .map_err(anyhow::Error::from)
            .and_then(|c| c.open_store().map(|s| (c, s)));
        match opened {
            Ok((config, store)) => (Some(config), Some(store)),
            Err(e) if explicit => return Err(e.context("opening the store to verify keys")),
            Err(_) => (None, None),
        }
    };
    // With --endpoint-url the token service judges, not the store.
    let mut results = Vec::with_capacity(hits.len());
    let fingerprint_paths = FingerprintPaths::new(args);
    for (mut finding, place) in hits {
        let verification = match &store {
            Some(store) if args.endpoint_url.is_none() => verify(store, &mut finding)?,
            _ => Verification::NotChecked,
        };
        let fingerprint_path = fingerprint_paths.of(&place);
        results.push(Located {
            finding,
            place,
            verification,
            revoked: false,
            fingerprint_path,
        });
    }
    if let (Some(config), Some(store), None) = (&config, &store, &args.endpoint_url) {
        verify_sessions(config, store, &mut results)?;
    }
    // In order of place, so that capped checks and revocations take the
    // same findings every run.
    results.sort_by(|a, b| {
        (&a.place.path, a.finding.line, a.finding.column).cmp(&(
            &b.place.path,
            b.finding.line,
            b.finding.column,
        ))
    });
    if args.endpoint_url.is_some() && !args.no_verify {
        let api = Api::new(args, config.as_ref())?;
        // Each check is a signed request in the trail under the key id:
        // a file of one id and thousands of would-be secrets checks a few.
        let mut checks: HashMap<String, usize> = HashMap::new();
        let mut total = 0;
        let mut capped = 0;
        for i in 0..results.len() {
            let Some(id) = results[i].finding.key_id.clone() else {
                continue;
            };
            let count = checks.entry(id).or_default();
            if *count >= REMOTE_CHECKS_PER_KEY || total >= REMOTE_CHECKS {
                if results[i].finding.holds_key_secret() {
                    capped += 1;
                }
                continue;
            }
            results[i].verification = verify_remote(&api, &results, i)?;
            if results[i].verification != Verification::NotChecked {
                *count += 1;
                total += 1;
            }
            // Not the paired id's secret: perhaps one of the other ids
            // near it (a few, each a signed call).
            if results[i].verification == Verification::Unknown {
                let paired = results[i].finding.key_id.clone();
                for other in results[i].finding.other_key_ids.clone().into_iter().take(3) {
                    results[i].finding.key_id = Some(other);
                    total += 1;
                    if verify_remote(&api, &results, i)? == Verification::Live {
                        results[i].verification = Verification::Live;
                        break;
                    }
                }
                if results[i].verification != Verification::Live {
                    results[i].finding.key_id = paired;
                }
            }
        }
        // Said, not silent: --revoke acts only on keys checked live.
        if capped > 0 {
            eprintln!(
                "{capped} keys found with a secret were not checked (at most \
                 {REMOTE_CHECKS_PER_KEY} checks per key id and {REMOTE_CHECKS} per run): \
                 they show not-checked{}; scan fewer files at a time, or verify with --data-dir",
                if args.revoke {
                    " and are not revoked"
                } else {
                    ""
                }
            );
        }
    }
    let revoke_failures = if args.revoke {
        revoke(args, config.as_ref(), &mut results)?
    } else {
        Vec::new()
    };

    let default_baseline = fingerprint_paths.root.join(DEFAULT_BASELINE);
    let baseline_path = args.baseline.clone().or_else(|| {
        default_baseline
            .exists()
            .then_some(default_baseline.clone())
    });
    if args.update_baseline {
        let path = baseline_path.unwrap_or(default_baseline);
        let (kept, written) = write_baseline(&path, &results, &fingerprint_paths.scope(args))?;
        eprintln!(
            "{written} findings written to {}{}",
            path.display(),
            if kept > 0 {
                format!(" ({kept} kept from files this scan did not cover)")
            } else {
                String::new()
            }
        );
        return Ok(exit::OK);
    }
    let accepted = match &baseline_path {
        Some(path) => read_baseline(path)?,
        None => HashSet::new(),
    };
    let before = results.len();
    results.retain(|r| !accepted.contains(&r.fingerprint()));
    let baselined = before - results.len();

    match args.output {
        ScanOutput::Text => {
            for r in &results {
                // A file's name is anyone's text: no escape sequence of it
                // reaches the terminal or the CI log.
                println!("{}", r.to_text(printable));
            }
        }
        ScanOutput::Json => print_json(&json!({
            "findings": results.iter().map(Located::to_json).collect::<Vec<_>>(),
            "filesScanned": totals.files.load(Ordering::Relaxed),
            "bytesScanned": totals.bytes.load(Ordering::Relaxed),
            "skipped": {
                "large": totals.skipped_large.load(Ordering::Relaxed),
                "binary": totals.skipped_binary.load(Ordering::Relaxed),
                "unreadable": totals.unreadable.load(Ordering::Relaxed),
            },
            "baselined": baselined,
        }))?,
        ScanOutput::Sarif => print_json(&latchkey_scan::report::sarif(
            &results,
            env!("CARGO_PKG_VERSION"),
            source_root(args).as_deref(),
        ))?,
    }
    let bytes = totals.bytes.load(Ordering::Relaxed);
    // What was not read is said, not only counted in JSON: a file that
    // could not be read (a path too long, no permission) may hold a leak.
    let mut skipped = Vec::new();
    for (count, what) in [
        (&totals.skipped_large, "skipped as large (--include-large)"),
        (
            &totals.skipped_binary,
            "skipped as binary (--include-binary)",
        ),
        (&totals.unreadable, "unreadable"),
    ] {
        let n = count.load(Ordering::Relaxed);
        if n > 0 {
            skipped.push(format!("{n} {what}"));
        }
    }
    eprintln!(
        "{} findings in {} files ({:.1} MB, {:.0} MB/s){}{}{}",
        results.len(),
        totals.files.load(Ordering::Relaxed),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-6),
        if baselined > 0 {
            format!("; {baselined} in the baseline")
        } else {
            String::new()
        },
        if store.is_none() && !args.no_verify && args.endpoint_url.is_none() {
            "; keys not verified (no data directory)"
        } else {
            ""
        },
        if skipped.is_empty() {
            String::new()
        } else {
            format!("; {}", skipped.join(", "))
        }
    );
    if !revoke_failures.is_empty() {
        bail!(
            "{} of the live keys found could not be revoked:\n  {}",
            revoke_failures.len(),
            revoke_failures.join("\n  ")
        );
    }
    Ok(if results.iter().any(|r| r.severity() >= args.fail_on) {
        exit::FAILURE
    } else {
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    use super::{Utf16Decoder, utf16_as_utf8};

    #[test]
    fn utf16_arriving_a_byte_at_a_time_decodes_alike() {
        let text = "aws_secret_access_key = x 🔑 é\r\n";
        for little_endian in [true, false] {
            let bytes: Vec<u8> = text
                .encode_utf16()
                .flat_map(|u| {
                    if little_endian {
                        u.to_le_bytes()
                    } else {
                        u.to_be_bytes()
                    }
                })
                .collect();
            let mut decoder = Utf16Decoder {
                little_endian,
                carry: Vec::new(),
            };
            let mut out = Vec::new();
            for b in &bytes {
                out.extend(decoder.decode(std::slice::from_ref(b), false));
            }
            out.extend(decoder.decode(&[], true));
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn utf16_text_is_read_as_text() {
        let text = "aws_secret_access_key = x\r\n";
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(utf16_as_utf8(&le).as_deref(), Some(text.as_bytes()));
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(utf16_as_utf8(&be).as_deref(), Some(text.as_bytes()));
        let bare: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(utf16_as_utf8(&bare).as_deref(), Some(text.as_bytes()));
        assert_eq!(utf16_as_utf8(b"plain text"), None);
        assert_eq!(utf16_as_utf8(&[0, 1, 2, 3, 0, 0, 0, 0, 9]), None);
    }
}
