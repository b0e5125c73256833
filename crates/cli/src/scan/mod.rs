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

use std::collections::HashSet;
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

/// The baseline a scan reads when none is named, in the current directory.
const DEFAULT_BASELINE: &str = ".latchkey-scan-baseline.json";

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
    /// Skip paths matching this glob (gitignore syntax); repeatable.
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Findings whose fingerprint is in this file are not reported
    /// [default: ./.latchkey-scan-baseline.json if it exists].
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Write every current finding to the baseline (accepting them), and
    /// report nothing.
    #[arg(long)]
    update_baseline: bool,
    /// Do not check found keys against the store.
    #[arg(long, conflicts_with = "revoke")]
    no_verify: bool,
    /// Deactivate every live key found, through the token service
    /// (`RevokeLeakedAccessKey`, authorised as iam:UpdateAccessKey on the
    /// key's user, with your credentials), which raises a finding
    /// (CredentialAccess:Repository/LeakedKey) saying where it was found.
    #[arg(long)]
    revoke: bool,
    /// The token service, for --revoke [env AWS_ENDPOINT_URL, or the
    /// profile's endpoint_url, default https://localhost:PORT of the
    /// configuration's listen address].
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Its CA certificate [env AWS_CA_BUNDLE, or the profile's ca_bundle,
    /// default DATA_DIR/ca.pem].
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// The credentials profile that revokes [default: the AWS CLI's chain].
    #[arg(long)]
    profile: Option<String>,
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
    /// The severity that refuses a commit.
    #[arg(long, default_value = "high", value_parser = parse_severity)]
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
    let hooks = repo.path().join("hooks");
    std::fs::create_dir_all(&hooks).with_context(|| format!("creating {}", hooks.display()))?;
    let hook = hooks.join("pre-commit");
    if hook.exists() && !args.force {
        bail!(
            "{} exists: add `latchkey scan --staged --fail-on {}` to it, or use --force to replace it",
            hook.display(),
            args.fail_on.as_str()
        );
    }
    let exe = std::env::current_exe().context("finding the latchkey binary")?;
    let script = format!(
        "#!/bin/sh\n# Installed by `latchkey scan install-hook`: refuses a commit that holds a secret.\n\
         # Skip once with `git commit --no-verify`.\n\
         exec '{}' scan --staged --fail-on {}\n",
        exe.display().to_string().replace('\'', "'\\''"),
        args.fail_on.as_str()
    );
    std::fs::write(&hook, script).with_context(|| format!("writing {}", hook.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    }
    println!("installed {}", hook.display());
    eprintln!(
        "With the pre-commit framework instead, in .pre-commit-config.yaml:\n\
         repos:\n  - repo: local\n    hooks:\n      - id: latchkey-scan\n        name: latchkey scan\n\
         \x20       entry: latchkey scan --staged --fail-on {}\n        language: system\n        pass_filenames: false",
        args.fail_on.as_str()
    );
    Ok(exit::OK)
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

/// The findings in one file's bytes, unless it is binary and binaries are
/// not wanted.
pub(crate) fn scan_bytes(
    scanner: &Scanner,
    bytes: &[u8],
    place: &Place,
    include_binary: bool,
    totals: &Totals,
) -> Vec<(Finding, Place)> {
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

fn walk(args: &ScanArgs, scanner: &Scanner, totals: &Totals) -> Result<Vec<(Finding, Place)>> {
    let roots: Vec<PathBuf> = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    for root in &roots {
        if !root.exists() {
            bail!("{}: no such file or directory", root.display());
        }
    }
    let mut builder = ignore::WalkBuilder::new(&roots[0]);
    for root in &roots[1..] {
        builder.add(root);
    }
    let mut overrides = ignore::overrides::OverrideBuilder::new(".");
    for glob in &args.excludes {
        overrides
            .add(&format!("!{glob}"))
            .with_context(|| format!("--exclude {glob:?}"))?;
    }
    builder
        .hidden(false)
        .git_global(false)
        .require_git(false)
        .overrides(overrides.build().context("--exclude")?)
        .filter_entry(|e| e.file_name() != ".git");
    let found = Mutex::new(Vec::new());
    builder.build_parallel().run(|| {
        let found = &found;
        Box::new(move |entry| {
            let Ok(entry) = entry else {
                totals.unreadable.fetch_add(1, Ordering::Relaxed);
                return ignore::WalkState::Continue;
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                return ignore::WalkState::Continue;
            }
            let path = entry.path();
            let large = entry.metadata().is_ok_and(|m| m.len() > args.max_file_size);
            if large && !args.include_large {
                totals.skipped_large.fetch_add(1, Ordering::Relaxed);
                return ignore::WalkState::Continue;
            }
            let Ok(bytes) = std::fs::read(path) else {
                totals.unreadable.fetch_add(1, Ordering::Relaxed);
                return ignore::WalkState::Continue;
            };
            let place = Place {
                path: display_path(path),
                commit: None,
            };
            let hits = scan_bytes(scanner, &bytes, &place, args.include_binary, totals);
            if !hits.is_empty() {
                found.lock().unwrap_or_else(|p| p.into_inner()).extend(hits);
            }
            ignore::WalkState::Continue
        })
    });
    Ok(found.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// A path as reported: relative as walked, without a leading `./`.
fn display_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    text.strip_prefix("./").unwrap_or(&text).to_owned()
}

/// What the store says of the key in `f`.
fn verify(store: &Store, f: &Finding) -> Result<Verification> {
    let Some(id) = f.key_id.as_deref() else {
        return Ok(Verification::NotChecked);
    };
    // A temporary key is derived from its session token, not stored.
    if !id.starts_with("AKIA") {
        return Ok(Verification::NotChecked);
    }
    let paired = matches!(
        f.detector,
        Detector::AwsAccessKey | Detector::CredentialsFile
    ) && f.secret.expose() != id;
    Ok(match store.access_key_secret(id)? {
        Some((key, secret)) => {
            if paired && !bool::from(secret.as_bytes().ct_eq(f.secret.expose().as_bytes())) {
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

/// Deactivates each live long-term key in `results` once (at its first
/// place), through the token service; marks the findings revoked.
fn revoke(args: &ScanArgs, config: &crate::config::Config, results: &mut [Located]) -> Result<()> {
    use latchkey_awsconfig::{Environment, resolve_credentials, resolve_region, resolve_setting};
    use latchkey_client::{Endpoint, form, interpret, send, signed_post, tls_connector};
    let live: Vec<usize> = (0..results.len())
        .filter(|&i| {
            results[i].verification == Verification::Live
                && results[i]
                    .finding
                    .key_id
                    .as_deref()
                    .is_some_and(|k| k.starts_with("AKIA"))
        })
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    let env = Environment::from_process();
    let credentials = resolve_credentials(&env, args.profile.as_deref())
        .context("--revoke calls the token service with your credentials")?
        .credentials;
    let region =
        resolve_region(&env, None, args.profile.as_deref()).unwrap_or_else(|_| "us-east-1".into());
    let profile = args.profile.as_deref();
    let endpoint_url = resolve_setting(
        &env,
        args.endpoint_url.as_deref(),
        "AWS_ENDPOINT_URL",
        "endpoint_url",
        profile,
    )?
    .unwrap_or_else(|| format!("https://localhost:{}", config.listen.port()));
    let endpoint = Endpoint::parse(&endpoint_url)?;
    let explicit_ca = args.ca_bundle.as_deref().and_then(Path::to_str);
    let ca = resolve_setting(&env, explicit_ca, "AWS_CA_BUNDLE", "ca_bundle", profile)?
        .map_or_else(|| config.data_dir.join("ca.pem"), PathBuf::from);
    let tls = tls_connector(&ca)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut done: Vec<String> = Vec::new();
    for i in live {
        let r = &results[i];
        let Some(key) = r.finding.key_id.clone() else {
            continue;
        };
        if done.contains(&key) {
            results[i].revoked = true;
            continue;
        }
        let mut location = format!("{}:{}", r.place.path, r.finding.line);
        if let Some((commit, _)) = &r.place.commit {
            location.push_str(&format!(" in commit {commit}"));
        }
        let params = [
            ("AccessKeyId".to_owned(), key.clone()),
            ("Location".to_owned(), location),
            ("Detector".to_owned(), r.finding.detector.id().to_owned()),
        ];
        let request = signed_post(
            &endpoint,
            "iam",
            &region,
            form("RevokeLeakedAccessKey", "2010-05-08", &params),
            &credentials,
            crate::output::now_or(None)?,
        )?;
        let (status, body) = runtime.block_on(send(&tls, &endpoint, request))?;
        interpret("RevokeLeakedAccessKey", status, &body)
            .with_context(|| format!("revoking {key}"))?;
        results[i].revoked = true;
        done.push(key);
    }
    Ok(())
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

fn write_baseline(path: &Path, results: &[Located]) -> Result<()> {
    let mut findings: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "fingerprint": r.finding.fingerprint(),
                "detector": r.finding.detector.id(),
                "path": r.place.path,
                "masked": r.finding.secret.masked(),
            })
        })
        .collect();
    findings.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    findings.dedup_by(|a, b| a["fingerprint"] == b["fingerprint"]);
    let text = serde_json::to_string_pretty(&json!({"version": 1, "findings": findings}))?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
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
    let scanner = Scanner::new();
    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let stop = progress(&totals);
    let hits = if args.stdin {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        let place = Place {
            path: "-".to_owned(),
            commit: None,
        };
        scan_bytes(&scanner, &bytes, &place, true, &totals)
    } else if args.git || args.staged {
        let path = args.paths.first().map_or(Path::new("."), PathBuf::as_path);
        let part = if args.git {
            git::Part::History
        } else {
            git::Part::Staged
        };
        let max = (!args.include_large).then_some(args.max_file_size);
        git::scan_repository(path, part, &scanner, args.include_binary, max, &totals)?
    } else {
        walk(args, &scanner, &totals)?
    };
    drop(stop);
    let elapsed = started.elapsed();

    // Verification against the store, when there is one to read.
    let (config, store) = if args.no_verify {
        (None, None)
    } else {
        let explicit = args.server.flags.general.data_dir.is_some() || args.revoke;
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
    let mut results = Vec::with_capacity(hits.len());
    for (finding, place) in hits {
        let verification = match &store {
            Some(store) => verify(store, &finding)?,
            None => Verification::NotChecked,
        };
        results.push(Located {
            finding,
            place,
            verification,
            revoked: false,
        });
    }
    results.sort_by(|a, b| {
        (&a.place.path, a.finding.line, a.finding.column).cmp(&(
            &b.place.path,
            b.finding.line,
            b.finding.column,
        ))
    });
    if args.revoke
        && let Some(config) = &config
    {
        revoke(args, config, &mut results)?;
    }

    let baseline_path = args.baseline.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_BASELINE);
        default.exists().then_some(default)
    });
    if args.update_baseline {
        let path = baseline_path.unwrap_or_else(|| PathBuf::from(DEFAULT_BASELINE));
        write_baseline(&path, &results)?;
        eprintln!("{} findings written to {}", results.len(), path.display());
        return Ok(exit::OK);
    }
    let accepted = match &baseline_path {
        Some(path) => read_baseline(path)?,
        None => HashSet::new(),
    };
    let before = results.len();
    results.retain(|r| !accepted.contains(&r.finding.fingerprint()));
    let baselined = before - results.len();

    match args.output {
        ScanOutput::Text => {
            for r in &results {
                let f = &r.finding;
                let at = match &r.place.commit {
                    Some((commit, _)) => {
                        format!("{}:{}:{} @{commit}", r.place.path, f.line, f.column)
                    }
                    None => format!("{}:{}:{}", r.place.path, f.line, f.column),
                };
                println!(
                    "{at}  {}  {}  {}  {}{}",
                    f.detector.id(),
                    r.severity().as_str(),
                    f.secret.masked(),
                    r.verification.as_str(),
                    if r.revoked { "  revoked" } else { "" }
                );
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
        ))?,
    }
    let bytes = totals.bytes.load(Ordering::Relaxed);
    eprintln!(
        "{} findings in {} files ({:.1} MB, {:.0} MB/s){}{}",
        results.len(),
        totals.files.load(Ordering::Relaxed),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-6),
        if baselined > 0 {
            format!("; {baselined} in the baseline")
        } else {
            String::new()
        },
        if store.is_none() && !args.no_verify {
            "; keys not verified (no data directory)"
        } else {
            ""
        }
    );
    Ok(if results.iter().any(|r| r.severity() >= args.fail_on) {
        exit::FAILURE
    } else {
        exit::OK
    })
}
