//! `latchkey audit verify|lookup|public-key|export-anchor`, and opening the
//! trail for `serve`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use latchkey_audit::anchor::{self, Anchor};
use latchkey_audit::trail::{self, Problem, SigningKey, Window};
use latchkey_identity::AppState;
use latchkey_store::Store;
use latchkey_trail::{AnchorKeeper, Filter, Index, Trail, TrailConfig, TrailFiles, TrailMetrics};
use serde_json::json;

use crate::config::ServerArgs;
use crate::exit;
use crate::output::{OutputFormat, print_json, print_rows};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the trail's hash chain and signed digests, as CloudTrail log-file validation does; name every record or file that was modified, deleted, inserted or reordered.
    Verify(VerifyArgs),
    /// Find trail records, newest first (like `aws cloudtrail lookup-events`).
    Lookup(LookupArgs),
    /// Print the public key that signs the trail's digests (PEM), to verify elsewhere with --public-key.
    PublicKey(PublicKeyArgs),
    /// Print (or write to --out) the trail's signed anchor: the last sealed record and the newest digest. Keep copies away from this machine and check the trail against one with `audit verify --anchor FILE`: deleting the newest segments and digests cannot hide from it.
    ExportAnchor(ExportAnchorArgs),
    /// Remove the store's anchor, to start a new trail on purpose (the old one archived or moved): `serve` refuses to write a trail that does not reach the anchor, as a truncated trail would. The anchor is printed (or written to --out) first, to keep as evidence.
    ForgetAnchor(ForgetAnchorArgs),
}

#[derive(Args, Debug)]
pub struct ForgetAnchorArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Write the removed anchor (JSON) to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Confirm: without it nothing is removed.
    #[arg(long)]
    yes: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Only records written at or after this time (RFC 3339, or a duration ago such as 1h).
    #[arg(long)]
    from: Option<String>,
    /// Only records written at or before this time (RFC 3339, or a duration ago).
    #[arg(long)]
    to: Option<String>,
    /// The public key (PEM or hex) to check digests with, instead of the one in the store. Use a copy kept away from this machine.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// An anchor from `audit export-anchor` (repeatable): the trail must still reach the record and digest it vouches for. The store's anchor is always checked when the store can be opened.
    #[arg(long, value_name = "FILE")]
    anchor: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct ExportAnchorArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Write the anchor (JSON) to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// json: the signed anchor document itself; text: what it vouches for, for people.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct LookupArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Principal ARN, e.g. arn:aws:iam::123456789012:user/app.
    #[arg(long)]
    principal: Option<String>,
    /// Event name: Connect, SessionStart, SessionEnd, Statement, AssumeRole, CreateUser, Finding...
    #[arg(long)]
    event_name: Option<String>,
    /// Registered database name.
    #[arg(long)]
    db: Option<String>,
    /// Source IP address.
    #[arg(long)]
    source_ip: Option<String>,
    /// Access key id.
    #[arg(long)]
    access_key_id: Option<String>,
    /// Only refused or failed events.
    #[arg(long)]
    errors_only: bool,
    /// From this long ago (e.g. 1h, 7days) or this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Until this long ago or this RFC 3339 time [default: now].
    #[arg(long)]
    until: Option<String>,
    /// Only records of this node (its `node.id`). On a shared store a lookup sees every node: this node's records from its trail, the others' from their copies in the store.
    #[arg(long)]
    node: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    max_results: u32,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct PublicKeyArgs {
    #[command(flatten)]
    server: ServerArgs,
}

/// The signing key from the store, made and stored (sealed) on first use.
fn signing_key(store: &Store) -> Result<SigningKey> {
    if let Some(pkcs8) = store.audit_signing_key()? {
        return Ok(SigningKey::from_pkcs8(&pkcs8)?);
    }
    let (key, pkcs8) = SigningKey::generate()?;
    let now = latchkey_identity::clock::system_now();
    if !store.create_audit_signing_key(&pkcs8, &key.public_key(), now)? {
        // Another process stored one first.
        return signing_key(store);
    }
    Ok(key)
}

/// Keeps this node's trail's anchor in the store.
struct StoreAnchor {
    state: Arc<AppState>,
    node: String,
}

/// This node's anchor in the store, after taking over the one anchor a
/// store from before per-node anchors held (it was this data directory's).
fn node_anchor(config: &crate::config::Config, store: &Store) -> Result<(String, Option<String>)> {
    let node = config.data().node_id()?;
    store.claim_legacy_audit_anchor(&node)?;
    let anchor = store.audit_anchor(&node)?;
    Ok((node, anchor))
}

impl AnchorKeeper for StoreAnchor {
    fn load(&mut self) -> std::result::Result<Option<String>, String> {
        self.state
            .store
            .audit_anchor(&self.node)
            .map_err(|e| e.to_string())
    }

    fn save(&mut self, anchor: &Anchor) -> std::result::Result<(), String> {
        let stored = self
            .state
            .store
            .put_audit_anchor(
                &self.node,
                &format!("{:016x}", anchor.body.trail_id),
                anchor.body.sequence,
                &anchor.to_json(),
                latchkey_identity::clock::system_now(),
            )
            .map_err(|e| e.to_string())?;
        if stored {
            Ok(())
        } else {
            Err("the store holds a newer anchor, or one of another trail".into())
        }
    }
}

/// Opens the trail `serve` records into, held to the store's anchor.
pub fn open_trail(
    state: &Arc<AppState>,
    node: &str,
    mut config: TrailConfig,
    metrics: TrailMetrics,
    observers: Vec<Box<dyn latchkey_trail::Observer>>,
) -> Result<Arc<Trail>> {
    let dir = config.dir.clone();
    config.node_id = Some(node.to_owned());
    let key = signing_key(&state.store)?;
    state.store.claim_legacy_audit_anchor(node)?;
    let keeper: Box<dyn AnchorKeeper> = Box::new(StoreAnchor {
        state: state.clone(),
        node: node.to_owned(),
    });
    let trail = Trail::open_anchored(config, key, metrics, observers, Some(keeper))
        .with_context(|| format!("opening the audit trail in {}", dir.display()))?;
    Ok(Arc::new(trail))
}

pub fn run(cmd: AuditCommand) -> Result<u8> {
    match cmd {
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::Lookup(args) => lookup(&args),
        AuditCommand::PublicKey(args) => {
            let key = public_key(&args.server)?;
            print!("{}", trail::public_key_pem(&key));
            Ok(exit::OK)
        }
        AuditCommand::ExportAnchor(args) => export_anchor(&args),
        AuditCommand::ForgetAnchor(args) => forget_anchor(&args),
    }
}

fn forget_anchor(args: &ForgetAnchorArgs) -> Result<u8> {
    if !args.yes {
        bail!(
            "forgetting the anchor lets a truncated trail pass unnoticed: give --yes to confirm (export it first with `latchkey audit export-anchor`)"
        );
    }
    let config = args.server.resolve()?;
    let store = config.open_store()?;
    let node = config.data().node_id()?;
    store.claim_legacy_audit_anchor(&node)?;
    let Some(document) = store.forget_audit_anchor(&node)? else {
        eprintln!("latchkey: the store holds no audit anchor");
        return Ok(exit::OK);
    };
    match &args.out {
        Some(path) => std::fs::write(path, format!("{document}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{document}"),
    }
    // The copy of the old trail in a shared store goes too: the new trail
    // could not be copied beside it (the old one stays on this node's disk).
    let dropped = store.forget_shipped(&node)?;
    if dropped > 0 {
        eprintln!(
            "latchkey: removed the store's copy of this node's old trail ({dropped} records)"
        );
    }
    eprintln!(
        "latchkey: audit anchor removed; the next `latchkey serve` anchors the trail it finds"
    );
    Ok(exit::OK)
}

fn public_key(server: &ServerArgs) -> Result<[u8; 32]> {
    stored_public_key(&server.resolve()?.open_store()?)
}

/// The trail in `dir`, its chain and digests checked with `key` and held
/// to the anchor `documents` (source, bytes; the store's first): the
/// report, with the anchors that opened. An anchor that does not open is
/// itself a problem (forged, altered or from another installation).
fn verify_trail(
    dir: &std::path::Path,
    key: &[u8; 32],
    documents: Vec<(String, Vec<u8>)>,
    window: Window,
    progress: bool,
) -> Result<(trail::Report, Vec<(String, Anchor)>)> {
    let mut anchor_problems = Vec::new();
    let mut anchors: Vec<(String, Anchor)> = Vec::new();
    for (source, bytes) in documents {
        match anchor::open_anchor(&bytes, key) {
            Ok(a) => anchors.push((source, a)),
            Err(e) => anchor_problems.push(Problem::AnchorInvalid {
                source,
                reason: e.to_string(),
            }),
        }
    }
    let held_to = trail::Anchors {
        trail_id: latchkey_trail::read_trail_id(dir)?,
        anchors: anchors.iter().map(|(s, a)| (s.as_str(), &a.body)).collect(),
    };
    let mut report = TrailFiles::verify_dir(dir, key, window, &held_to, |i, count, name| {
        if progress {
            eprintln!(
                "latchkey: checking segment {} of {count} ({name}) in {}",
                i + 1,
                dir.display()
            );
        }
    })
    .with_context(|| format!("reading the trail in {}", dir.display()))?;
    report.problems.extend(anchor_problems);
    Ok((report, anchors))
}

/// The store's anchor as an anchor document (source, bytes), if it has
/// one.
fn store_document(anchor: Option<String>) -> Vec<(String, Vec<u8>)> {
    anchor
        .map(|doc| ("store".to_owned(), doc.into_bytes()))
        .into_iter()
        .collect()
}

/// `node`'s whole trail in `dir` checked as `latchkey audit verify`
/// checks it with no options (the store's key and anchor), and, when
/// intact, the time recorded as its last verification: what `serve` does
/// every `audit.verify_every`.
pub fn verify_own_trail(dir: &std::path::Path, node: &str, store: &Store) -> Result<trail::Report> {
    let key = stored_public_key(store)?;
    let documents = store_document(store.audit_anchor(node)?);
    let (report, _) = verify_trail(dir, &key, documents, Window::default(), false)?;
    if report.ok() {
        latchkey_trail::record_verified(dir, latchkey_identity::clock::system_now())?;
    }
    Ok(report)
}

fn stored_public_key(store: &Store) -> Result<[u8; 32]> {
    let key = match store.audit_public_key()? {
        Some(k) => k,
        None => bail!("this data directory has no audit trail yet (run latchkey serve)"),
    };
    key.try_into()
        .map_err(|_| anyhow::anyhow!("the stored audit public key is not 32 bytes"))
}

/// `1h`, `7days` (that long ago) or an RFC 3339 time.
fn parse_when(text: &str) -> Result<SystemTime> {
    let at = latchkey_trail::parse_when_ms(text, ms(SystemTime::now()))?;
    Ok(UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at).unwrap_or(0)))
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn export_anchor(args: &ExportAnchorArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    let store = config.open_store()?;
    let key = stored_public_key(&store)?;
    let Some(document) = node_anchor(&config, &store)?.1 else {
        bail!(
            "the store holds no audit anchor yet: `latchkey serve` anchors the trail once it has records"
        );
    };
    let anchor = anchor::open_anchor(document.as_bytes(), &key).context(
        "the store's audit anchor is not valid (the store was tampered with); run `latchkey audit verify`",
    )?;
    let text = match args.output {
        OutputFormat::Json => format!("{}\n", anchor.to_json()),
        OutputFormat::Text => anchor_rows(&anchor)
            .iter()
            .map(|(k, v)| format!("{k:<16} {v}\n"))
            .collect(),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "latchkey: anchored record {} and digest {} in {}",
                anchor.body.sequence,
                anchor.body.digest_sequence,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(exit::OK)
}

fn anchor_rows(a: &Anchor) -> Vec<(&'static str, String)> {
    let doc: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap_or_default();
    let field = |k: &str| match &doc[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        v => v.to_string(),
    };
    vec![
        ("trail", field("trailId")),
        ("sequence", field("sequence")),
        ("record hash", field("recordHash")),
        ("digest", field("digestSequence")),
        ("digest hash", field("digestHash")),
        ("time", field("time")),
        ("public key", field("publicKey")),
    ]
}

/// A warning when the newest digest is overdue while a writer holds the
/// trail open (`serve` is running).
fn digest_warning(dir: &std::path::Path, report: &trail::Report) -> Result<Option<String>> {
    let Some(writer) = latchkey_trail::running_writer(dir)? else {
        return Ok(None);
    };
    let newest = report
        .last_digest_time
        .as_deref()
        .and_then(trail::parse_time_ms);
    let now = ms(SystemTime::now());
    Ok(anchor::digest_overdue(newest, writer.started_ms, writer.digest_interval_ms, now).map(
        |age| {
            format!(
                "the newest digest is {}s old, but the server (pid {}) claims to run and signs one every {}s: its trail writer is stuck, or digests are being deleted",
                age / 1000,
                writer.pid,
                writer.digest_interval_ms / 1000
            )
        },
    ))
}

fn verify(args: &VerifyArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    // The store, for its public key and anchor; with --public-key the
    // trail can be checked where there is no store.
    let store = match (&args.public_key, config.open_store()) {
        (_, Ok(s)) => Some(s),
        (Some(_), Err(e)) => {
            eprintln!("latchkey: not checking the store's anchor: {e:#}");
            None
        }
        (None, Err(e)) => return Err(e),
    };
    let key = match (&args.public_key, &store) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            trail::parse_public_key(&text)?
        }
        (None, Some(store)) => stored_public_key(store)?,
        (None, None) => bail!("no public key to check the trail with"),
    };
    // Anchors: the store's, then each file's.
    let mut documents = Vec::new();
    let own_node = match &store {
        Some(store) => {
            let (node, doc) = node_anchor(&config, store)?;
            documents.extend(store_document(doc));
            Some(node)
        }
        None => None,
    };
    for path in &args.anchor {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the anchor {}", path.display()))?;
        documents.push((path.display().to_string(), bytes));
    }
    let window = Window {
        from: args.from.as_deref().map(parse_when).transpose()?,
        to: args.to.as_deref().map(parse_when).transpose()?,
    };
    let (report, anchors) = verify_trail(&config.audit.dir, &key, documents, window, true)?;
    let mut warnings: Vec<String> = digest_warning(&config.audit.dir, &report)?
        .into_iter()
        .collect();
    // Every other node's trail, from its copy in the store: a node whose
    // disk is gone is verified all the same, and one whose records never
    // reached the store is a problem, not a silence.
    let nodes = match (&store, &own_node) {
        (Some(store), Some(own)) if config.store.is_some() => {
            let seen = crate::peers::load(&config.data_dir)?;
            crate::cluster_audit::verify_nodes(store, &key, own, window, &seen)?
        }
        _ => Vec::new(),
    };
    // Nodes sharing an embedded store's file copy nothing to it: named,
    // never silently skipped.
    if let (Some(store), Some(own), false) = (&store, &own_node, config.store.is_some()) {
        for (other, _) in store.audit_anchors()? {
            if other != *own {
                warnings.push(format!(
                    "node {other} shares this store; its trail is on that node and was not verified here: run `latchkey audit verify` there"
                ));
            }
        }
    }
    for n in &nodes {
        warnings.extend(n.warnings.iter().cloned());
        if !n.alive {
            warnings.push(format!(
                "node {} is gone ({}); its trail was verified from its copy in the store",
                n.node,
                n.last_seen.map_or_else(
                    || "never reported".to_owned(),
                    |t| format!("last seen {}", crate::cluster_audit::rfc3339(t))
                )
            ));
        }
    }
    let all_ok = report.ok() && nodes.iter().all(|n| n.report.ok());
    match args.output {
        OutputFormat::Json => {
            let mut v = serde_json::to_value(&report)?;
            v["anchors"] = anchors
                .iter()
                .map(|(source, a)| {
                    json!({
                        "source": source,
                        "sequence": a.body.sequence,
                        "digestSequence": a.body.digest_sequence,
                        "time": a.body.time,
                    })
                })
                .collect();
            v["warnings"] = json!(warnings);
            v["node"] = json!(own_node);
            v["nodes"] = nodes
                .iter()
                .map(crate::cluster_audit::NodeCheck::to_json)
                .collect();
            v["intact"] = json!(all_ok);
            print_json(&v)?;
        }
        OutputFormat::Text => {
            print_rows(&[
                ("digests", report.digests_valid.to_string()),
                ("records", report.records.to_string()),
                ("verified", report.records_verified.to_string()),
                (
                    "unsigned",
                    format!("{} (after the newest digest)", report.records_unsigned),
                ),
                ("unverifiable", report.records_unverifiable.to_string()),
                (
                    "newest digest",
                    report
                        .last_digest_time
                        .clone()
                        .unwrap_or_else(|| "none".into()),
                ),
            ]);
            for (source, a) in &anchors {
                println!(
                    "anchor   {source}: record {}, digest {} ({})",
                    a.body.sequence, a.body.digest_sequence, a.body.time
                );
            }
            for w in &warnings {
                println!("WARNING  {w}");
            }
            for p in &report.problems {
                println!("PROBLEM  {p}");
            }
            for n in &nodes {
                println!(
                    "node     {}{}: {} records in the store, {} verified, {} unsigned{}",
                    n.node,
                    if n.this_node {
                        " (this node's copy)"
                    } else {
                        ""
                    },
                    n.report.records,
                    n.report.records_verified,
                    n.report.records_unsigned,
                    if n.alive { "" } else { " (gone)" }
                );
                for p in &n.report.problems {
                    println!("PROBLEM  node {}: {p}", n.node);
                }
            }
            println!(
                "{}",
                if all_ok {
                    "The trail is intact."
                } else {
                    "The trail was tampered with."
                }
            );
        }
    }
    // A whole trail found intact: the security checks want to know when.
    if report.ok()
        && args.from.is_none()
        && args.to.is_none()
        && let Err(e) = latchkey_trail::record_verified(
            &config.audit.dir,
            latchkey_identity::clock::system_now(),
        )
    {
        eprintln!("latchkey: could not record the verification's time: {e}");
    }
    Ok(if all_ok { exit::OK } else { exit::FAILURE })
}

fn lookup(args: &LookupArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    let dir = &config.audit.dir;
    let since_ms = args.since.as_deref().map(parse_when).transpose()?.map(ms);
    let until_ms = args.until.as_deref().map(parse_when).transpose()?.map(ms);
    let own = config.data().node_id()?;
    let mine = args.node.as_ref().is_none_or(|n| *n == own);
    let filter = Filter {
        principal: args.principal.clone(),
        event_name: args.event_name.clone(),
        database: args.db.clone(),
        source_ip: args.source_ip.clone(),
        access_key_id: args.access_key_id.clone(),
        errors_only: args.errors_only,
        since_ms,
        until_ms,
        sequence: None,
        limit: args.max_results,
    };
    let mut records = Vec::new();
    if mine {
        if !Index::path(dir).exists() {
            bail!("no audit trail in {} (run latchkey serve)", dir.display());
        }
        let index = Index::open_read_only(dir)?;
        records = latchkey_trail::find(dir, &index, &filter)?;
    }
    // The other nodes sharing the store, from their copies there.
    if config.store.is_some() && args.node.as_ref() != Some(&own) {
        let query = crate::cluster_audit::query_of(&filter, args.node.clone(), &own);
        match config
            .open_store()
            .and_then(|store| crate::cluster_audit::find_elsewhere(&store, &query))
        {
            Ok(found) => records.extend(found),
            Err(e) if mine => {
                eprintln!("latchkey: only this node's records: the store did not answer ({e:#})");
            }
            Err(e) => return Err(e),
        }
    }
    let mut events: Vec<(serde_json::Value, String)> = records
        .into_iter()
        .filter_map(|r| {
            serde_json::from_str::<serde_json::Value>(&r)
                .ok()
                .map(|v| (v, r))
        })
        .collect();
    // Newest first across nodes (eventTime is fixed-width UTC).
    events.sort_by(|(a, _), (b, _)| {
        b["eventTime"]
            .as_str()
            .unwrap_or("")
            .cmp(a["eventTime"].as_str().unwrap_or(""))
    });
    events.truncate(args.max_results as usize);
    let (events, records): (Vec<serde_json::Value>, Vec<String>) = events.into_iter().unzip();
    match args.output {
        OutputFormat::Json => {
            // The shape of `aws cloudtrail lookup-events`.
            let list: Vec<serde_json::Value> = events
                .iter()
                .zip(&records)
                .map(|(v, raw)| {
                    json!({
                        "EventId": v["eventID"],
                        "EventName": v["eventName"],
                        "ReadOnly": v["readOnly"].as_bool().map(|b| b.to_string()),
                        "AccessKeyId": v["userIdentity"]["accessKeyId"],
                        "EventTime": v["eventTime"],
                        "EventSource": v["eventSource"],
                        "Username": v["userIdentity"]["arn"],
                        "Resources": v["resources"].as_array().map(|rs| rs.iter().map(|r| json!({
                            "ResourceType": r["type"],
                            "ResourceName": r["ARN"],
                        })).collect::<Vec<_>>()),
                        "CloudTrailEvent": raw,
                    })
                })
                .collect();
            print_json(&json!({ "Events": list }))?;
        }
        OutputFormat::Text => {
            for v in &events {
                let s = |p: &str| {
                    v.pointer(p)
                        .and_then(|x| x.as_str())
                        .unwrap_or("-")
                        .to_owned()
                };
                let detail = match v["eventName"].as_str() {
                    Some("Statement") => s("/database/statement"),
                    Some("Finding") => s("/serviceEventDetails/title"),
                    _ => v
                        .get("errorMessage")
                        .and_then(|x| x.as_str())
                        .map_or(String::new(), |m| format!("error: {m}")),
                };
                println!(
                    "{}  {:<16} {:<50} {:<15} {:<10} {}",
                    s("/eventTime"),
                    s("/eventName"),
                    s("/userIdentity/arn"),
                    s("/sourceIPAddress"),
                    v.pointer("/database/name")
                        .and_then(|x| x.as_str())
                        .unwrap_or("-"),
                    detail
                );
            }
        }
    }
    Ok(exit::OK)
}

/// The finding of a trail that `serve`'s own check found not intact.
pub const TRAIL_ALTERED_KIND: &str = "Stealth:Latchkey/AuditTrailAltered";

/// Verifies this node's trail every `every` (not at start), as
/// `latchkey audit verify` would: when intact, the time is recorded and
/// an earlier finding archived; when not, a High finding names the first
/// problems (raised once, updated while it lasts). Zero: never.
pub fn spawn_trail_checks(
    state: Arc<AppState>,
    dir: PathBuf,
    node: String,
    every: std::time::Duration,
) -> Result<()> {
    if every.is_zero() {
        return Ok(());
    }
    let intact = state.metrics.registry.gauge(
        "latchkey_audit_trail_intact",
        "1 when this node's last check of its own trail found it intact, 0 when not (absent checks: 1).",
    )?;
    intact.set(1);
    let id = format!("audit-trail-{node}");
    tokio::spawn(async move {
        let mut was_intact = true;
        loop {
            tokio::time::sleep(every).await;
            let (s, d, n) = (state.clone(), dir.clone(), node.clone());
            let checked = tokio::task::spawn_blocking(move || -> Result<trail::Report> {
                let first = verify_own_trail(&d, &n, &s.store)?;
                if first.ok() {
                    return Ok(first);
                }
                // A batch being appended as the files were read can look
                // torn: a problem counts once a second look sees it too.
                std::thread::sleep(std::time::Duration::from_secs(1));
                verify_own_trail(&d, &n, &s.store)
            })
            .await;
            let report = match checked {
                Ok(Ok(report)) => report,
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "the trail could not be checked");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the trail check stopped");
                    continue;
                }
            };
            let done = if report.ok() {
                intact.set(1);
                was_intact = true;
                crate::advisor::clear_finding(&state, &id)
            } else {
                intact.set(0);
                tracing::error!(
                    problems = report.problems.len(),
                    "this node's audit trail is not intact: run latchkey audit verify"
                );
                let new = std::mem::replace(&mut was_intact, false);
                crate::advisor::raise_finding(&state, altered_trail(&id, &node, &report), new)
            };
            if let Err(e) = done {
                tracing::warn!(error = %format!("{e:#}"), "recording the trail check failed");
            }
        }
    });
    Ok(())
}

/// The finding of a trail that is not intact: its first problems, and
/// what to run.
fn altered_trail(id: &str, node: &str, report: &trail::Report) -> latchkey_audit::Finding {
    const SHOWN: usize = 5;
    let mut problems: Vec<String> = report
        .problems
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect();
    if report.problems.len() > SHOWN {
        problems.push(format!("and {} more", report.problems.len() - SHOWN));
    }
    let now = SystemTime::now();
    latchkey_audit::Finding {
        id: id.to_owned(),
        kind: TRAIL_ALTERED_KIND.to_owned(),
        severity: latchkey_audit::Severity::High,
        title: format!("The audit trail of node {node} is not intact"),
        description: format!(
            "{}. Run `latchkey audit verify` on that node for every problem, and compare with an exported anchor.",
            problems.join("; ")
        ),
        resource: format!("audit-trail/{node}"),
        principal: None,
        source_ip: None,
        first_seen: now,
        last_seen: now,
        count: report.problems.len() as u64,
        evidence: Vec::new(),
        actions: Vec::new(),
    }
}
