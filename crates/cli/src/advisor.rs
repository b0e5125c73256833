//! The access advisor: last uses kept current from the audit stream (an
//! observer on the trail, for `serve`), and `latchkey advisor
//! last-accessed|unused|rebuild`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use latchkey_advisor::{PermissionAccess, Uses};
use latchkey_audit::Event;
use latchkey_server::advisor::{self as store_advisor, Subject};
use latchkey_store::Store;
use serde_json::{Value, json};

use crate::config::ServerArgs;
use crate::exit;
use crate::output::{OutputFormat, now_or, print_json};

/// Gathers what each durable record used and writes it to the store once
/// per batch of records, so the advisor is current within a write interval
/// and costs one transaction per batch.
pub struct UsageRecorder {
    pub store: Arc<latchkey_identity::AppState>,
    uses: Uses,
}

impl UsageRecorder {
    pub fn new(store: Arc<latchkey_identity::AppState>) -> Self {
        Self {
            store,
            uses: Uses::default(),
        }
    }
}

/// Keeps only the latest use of each permission and credential.
fn latest_only(uses: &mut Uses) {
    uses.permissions.sort_by(|a, b| {
        (
            &a.principal,
            &a.action,
            &a.resource,
            std::cmp::Reverse(a.at),
        )
            .cmp(&(
                &b.principal,
                &b.action,
                &b.resource,
                std::cmp::Reverse(b.at),
            ))
    });
    uses.permissions.dedup_by(|a, b| {
        a.principal == b.principal && a.action == b.action && a.resource == b.resource
    });
    uses.credentials
        .sort_by(|a, b| (&a.id, std::cmp::Reverse(a.at)).cmp(&(&b.id, std::cmp::Reverse(b.at))));
    uses.credentials.dedup_by(|a, b| a.id == b.id);
}

impl latchkey_trail::Observer for UsageRecorder {
    fn observe(&mut self, _sequence: u64, _event_id: &str, event: &Event) -> Vec<Event> {
        latchkey_advisor::of_event(event, &mut self.uses);
        Vec::new()
    }

    fn end_batch(&mut self) {
        if self.uses.is_empty() {
            return;
        }
        latest_only(&mut self.uses);
        // Lost uses are only advisory data: `advisor rebuild` recovers them
        // from the trail, which holds every record.
        if let Err(e) = store_advisor::record(&self.store.store, &self.uses) {
            tracing::warn!(error = %e, "recording last uses for the access advisor failed");
        }
        self.uses.clear();
    }
}

#[derive(Subcommand, Debug)]
pub enum AdvisorCommand {
    /// For each permission a user's, group's, role's or policy's grants, when it was last used:
    /// by service, action and resource (database users, tables), "never" for unused grants.
    LastAccessed(LastAccessedArgs),
    /// Users, roles, access keys and passwords unused for --days, and granted permissions never used.
    Unused(UnusedArgs),
    /// Rebuild the last uses from the whole audit trail.
    Rebuild(RebuildArgs),
    /// Security checks (Trusted Advisor for Latchkey): keys, MFA, unused credentials, wide
    /// policies and trust, database and gateway settings, the audit trail, the master key,
    /// the data directory and secret rotation; each with a stable id, a status and the fix.
    Checks(ChecksArgs),
}

#[derive(Args, Debug)]
pub struct LastAccessedArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The user, group, role or managed policy ARN.
    #[arg(long)]
    principal: String,
    /// Rebuild the last uses from the audit trail first.
    #[arg(long)]
    rebuild: bool,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct UnusedArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Unused for at least this many days.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Judge as of this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct RebuildArgs {
    #[command(flatten)]
    server: ServerArgs,
}

pub fn run(cmd: AdvisorCommand) -> Result<u8> {
    match cmd {
        AdvisorCommand::LastAccessed(args) => last_accessed(&args),
        AdvisorCommand::Unused(args) => unused(&args),
        AdvisorCommand::Checks(args) => checks(&args),
        AdvisorCommand::Rebuild(args) => {
            let config = args.server.resolve()?;
            let store = config.open_store()?;
            let (records, uses) = rebuild(&store, &config.audit.dir)?;
            eprintln!("rebuilt the last uses from {records} audit records ({uses} uses)");
            Ok(exit::OK)
        }
    }
}

/// Forgets every last use and reads them again from the trail in `dir`.
/// Returns (records read, uses recorded).
pub fn rebuild(store: &Store, dir: &std::path::Path) -> Result<(u64, u64)> {
    if !dir.join("segments").exists() {
        bail!("no audit trail in {} (run latchkey serve)", dir.display());
    }
    // The users and roles there are now, by ARN: a record is credited
    // only to the entity that made it (its unique id), never to one made
    // later under the same name, nor to one deleted since.
    let mut entities: std::collections::HashMap<String, String> = store
        .list_users()?
        .into_iter()
        .map(|u| (u.arn.to_ascii_lowercase(), u.id))
        .collect();
    entities.extend(
        store
            .list_roles()?
            .into_iter()
            .map(|r| (r.arn.to_ascii_lowercase(), r.id)),
    );
    let made_by_current = |record: &Value| {
        latchkey_advisor::record_entity(record).is_some_and(|(arn, id)| {
            entities
                .get(&arn.to_ascii_lowercase())
                .is_some_and(|current| id.is_none_or(|id| id == current))
        })
    };
    store.clear_usage()?;
    let mut uses = Uses::default();
    let mut recorded = 0u64;
    let mut failed: Option<anyhow::Error> = None;
    let mut flush = |uses: &mut Uses, recorded: &mut u64| {
        latest_only(uses);
        *recorded += (uses.permissions.len() + uses.credentials.len()) as u64;
        if let Err(e) = store_advisor::record(store, uses)
            && failed.is_none()
        {
            failed = Some(e.into());
        }
        uses.clear();
    };
    let records = latchkey_trail::for_each_record(dir, |line| {
        if let Ok(record) = serde_json::from_slice::<Value>(line)
            && made_by_current(&record)
        {
            latchkey_advisor::of_record(&record, &mut uses);
        }
        if uses.permissions.len() + uses.credentials.len() >= 10_000 {
            flush(&mut uses, &mut recorded);
        }
    })?;
    flush(&mut uses, &mut recorded);
    if let Some(e) = failed {
        return Err(e.context("recording the rebuilt last uses"));
    }
    Ok((records, recorded))
}

fn when(at: Option<i64>) -> Value {
    at.map_or(Value::Null, |t| json!(latchkey_server::xml::timestamp(t)))
}

fn when_text(at: Option<i64>) -> String {
    at.map_or_else(|| "never".to_owned(), latchkey_server::xml::timestamp)
}

fn subject_of(store: &Store, arn: &str) -> Result<Subject> {
    store_advisor::subject(store, arn).with_context(|| format!("--principal {arn}"))
}

fn last_accessed(args: &LastAccessedArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    let store = config.open_store()?;
    if args.rebuild {
        rebuild(&store, &config.audit.dir)?;
    }
    let subject = subject_of(&store, &args.principal)?;
    let uses = store_advisor::uses(&store, &subject)?;
    let services = latchkey_advisor::services_accessed(&subject.granted(), &uses);
    let permissions = latchkey_advisor::permissions_accessed(&subject.policies, &uses);
    match args.output {
        OutputFormat::Json => {
            let services: Vec<Value> = services
                .iter()
                .map(|s| {
                    json!({
                        "ServiceNamespace": s.namespace,
                        "ServiceName": s.name,
                        "LastAuthenticated": when(s.last.as_ref().map(|a| a.at)),
                        "LastAuthenticatedEntity": s.last.as_ref().map(|a| a.entity.clone()),
                        "Actions": s.actions.iter().map(|a| json!({
                            "Action": a.action,
                            "LastAccessed": when(a.last.as_ref().map(|l| l.at)),
                            "LastAccessedEntity": a.last.as_ref().map(|l| l.entity.clone()),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            print_json(&json!({
                "Principal": subject.arn,
                "Services": services,
                "Permissions": permissions.iter().map(permission_json).collect::<Vec<_>>(),
            }))?;
        }
        OutputFormat::Text => {
            println!("{:<30} {:<26} {:<26} resource", "action", "last used", "by");
            for p in &permissions {
                println!(
                    "{:<30} {:<26} {:<26} {}",
                    p.action,
                    when_text(p.last.as_ref().map(|a| a.at)),
                    p.last
                        .as_ref()
                        .map_or("-", |a| a.entity.rsplit(':').next().unwrap_or("-")),
                    p.resource
                );
            }
        }
    }
    Ok(exit::OK)
}

fn permission_json(p: &PermissionAccess) -> Value {
    json!({
        "Action": p.action,
        "Resource": p.resource,
        "LastAccessed": when(p.last.as_ref().map(|a| a.at)),
        "LastAccessedEntity": p.last.as_ref().map(|a| a.entity.clone()),
    })
}

/// An entity or key unused since `cutoff`: never used and made before it,
/// or last used before it.
fn stale(created: i64, last: Option<i64>, cutoff: i64) -> bool {
    last.map_or(created < cutoff, |at| at < cutoff)
}

fn unused(args: &UnusedArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    let store = config.open_store()?;
    let now = now_or(args.at.as_deref())?.unix();
    let cutoff = now - i64::from(args.days) * 86_400;
    let last =
        |id: &str| -> Result<Option<i64>> { Ok(store.credential_last_use(id)?.map(|u| u.at)) };
    let mut users = Vec::new();
    let mut keys = Vec::new();
    let mut passwords = Vec::new();
    let mut permissions = Vec::new();
    let mut unused_permissions = |store: &Store, arn: &str| -> Result<()> {
        let subject = subject_of(store, arn)?;
        let uses = store_advisor::uses(store, &subject)?;
        for p in latchkey_advisor::permissions_accessed(&subject.policies, &uses) {
            if p.last.as_ref().is_none_or(|a| a.at < cutoff) {
                let mut v = permission_json(&p);
                v["Principal"] = json!(arn);
                permissions.push(v);
            }
        }
        Ok(())
    };
    for u in store.list_users()? {
        let used = last(&u.arn)?;
        if stale(u.created, used, cutoff) {
            users.push(json!({"UserName": u.name, "Arn": u.arn, "CreateDate": when(Some(u.created)), "LastUsed": when(used)}));
        }
        for k in store.list_access_keys(&u.name)? {
            let used = last(&k.id)?;
            if k.active && stale(k.created, used, cutoff) {
                keys.push(json!({"UserName": u.name, "AccessKeyId": k.id, "Status": "Active", "CreateDate": when(Some(k.created)), "LastUsed": when(used)}));
            }
        }
        if let Some(p) = store.login_profile(&u.name)?
            && stale(p.created, p.last_used, cutoff)
        {
            passwords.push(json!({"UserName": u.name, "Arn": u.arn, "CreateDate": when(Some(p.created)), "LastUsed": when(p.last_used)}));
        }
        unused_permissions(&store, &u.arn)?;
    }
    let mut roles = Vec::new();
    for r in store.list_roles()? {
        let used = last(&r.arn)?;
        if stale(r.created, used, cutoff) {
            roles.push(json!({"RoleName": r.name, "Arn": r.arn, "CreateDate": when(Some(r.created)), "LastUsed": when(used)}));
        }
        unused_permissions(&store, &r.arn)?;
    }
    let report = json!({
        "Days": args.days,
        "Since": when(Some(cutoff)),
        "Users": users,
        "Roles": roles,
        "AccessKeys": keys,
        "Passwords": passwords,
        "UnusedPermissions": permissions,
    });
    match args.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => {
            println!(
                "unused since {} ({} days):",
                when_text(Some(cutoff)),
                args.days
            );
            let rows = |title: &str, list: &Value, name: &str| {
                for v in list.as_array().into_iter().flatten() {
                    println!(
                        "{title:<12} {:<40} last used {}",
                        v[name].as_str().unwrap_or("-"),
                        v["LastUsed"].as_str().unwrap_or("never")
                    );
                }
            };
            rows("user", &report["Users"], "Arn");
            rows("role", &report["Roles"], "Arn");
            rows("access key", &report["AccessKeys"], "AccessKeyId");
            rows("password", &report["Passwords"], "Arn");
            for v in report["UnusedPermissions"].as_array().into_iter().flatten() {
                println!(
                    "{:<12} {:<40} {} on {}, last used {}",
                    "permission",
                    v["Principal"].as_str().unwrap_or("-"),
                    v["Action"].as_str().unwrap_or("-"),
                    v["Resource"].as_str().unwrap_or("-"),
                    v["LastAccessed"].as_str().unwrap_or("never")
                );
            }
        }
    }
    Ok(exit::OK)
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The user or role ARN whose recorded use the policy allows.
    #[arg(long)]
    principal: String,
    /// The window: a duration back from now (`30d`, `12h`) or an RFC 3339 time.
    #[arg(long, default_value = "90d")]
    since: String,
    /// Judge as of this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Also write the policy to this file.
    #[arg(long)]
    write: Option<std::path::PathBuf>,
    /// Text prints the policy document alone (a summary goes to standard error); JSON adds the checks.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// `latchkey policy generate`: a least-privilege policy from recorded use.
pub fn generate(args: &GenerateArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    let store = config.open_store()?;
    let now = now_or(args.at.as_deref())?.unix();
    let since = match humantime::parse_duration(&args.since) {
        Ok(back) => now - i64::try_from(back.as_secs()).unwrap_or(i64::MAX),
        Err(_) => humantime::parse_rfc3339_weak(&args.since)
            .with_context(|| {
                format!(
                    "--since {:?} is neither a duration like 30d nor an RFC 3339 time",
                    args.since
                )
            })?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    };
    let (subject, generated) = store_advisor::generate_policy(&store, &args.principal, since)
        .with_context(|| format!("generating a policy for {}", args.principal))?;
    let text = serde_json::to_string_pretty(&generated.policy)?;
    if let Some(path) = &args.write {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let use_json = |u: &latchkey_advisor::PermissionUse| json!({"Action": u.action, "Resource": u.resource, "LastAccessed": when(Some(u.at))});
    match args.output {
        OutputFormat::Json => print_json(&json!({
            "Principal": subject.arn,
            "Since": when(Some(since)),
            "Policy": generated.policy,
            "PolicySize": latchkey_advisor::generate::policy_chars(&generated.policy),
            "Verification": {
                "UsesAllowed": generated.allowed,
                "UsesNotAllowed": generated.not_allowed.iter().map(use_json).collect::<Vec<_>>(),
                "UsesNoLongerGranted": generated.ungranted.iter().map(use_json).collect::<Vec<_>>(),
                "UnusedGrantsRefused": generated.unused_refused,
                "UnusedGrantsStillAllowed": generated.unused_still_allowed.iter().map(|(a, r)| json!({"Action": a, "Resource": r})).collect::<Vec<_>>(),
                "MergedPrefixes": generated.merged,
            },
        }))?,
        OutputFormat::Text => {
            println!("{text}");
            eprintln!(
                "{} uses since {} allowed; {} unused grants refused; {} uses no current policy grants left out{}",
                generated.allowed,
                when_text(Some(since)),
                generated.unused_refused,
                generated.ungranted.len(),
                if generated.merged.is_empty() {
                    String::new()
                } else {
                    format!("; merged to fit: {}", generated.merged.join(", "))
                }
            );
        }
    }
    // A generated policy that refuses a use it was made from is a fault.
    Ok(if generated.not_allowed.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

#[derive(Args, Debug)]
pub struct ChecksArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Judge as of this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Exit 1 when a check is at this status or worse.
    #[arg(long, value_enum)]
    fail_on: Option<FailOn>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    Warning,
    Error,
}

/// The access key id in the administrator's credentials file.
fn administrator_key(data_dir: &std::path::Path) -> Option<String> {
    let dir = latchkey_server::bootstrap::DataDir::new(data_dir);
    let text = std::fs::read_to_string(dir.admin_credentials()).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "aws_access_key_id").then(|| v.trim().to_owned())
    })
}

/// Files and directories under `root` (two levels) that the group or
/// others may read, write or enter.
fn exposed_files(root: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut visit = vec![(root.to_owned(), 0)];
    while let Some((path, depth)) = visit.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            out.push(path.display().to_string());
        }
        if meta.is_dir()
            && depth < 2
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            visit.extend(entries.flatten().map(|e| (e.path(), depth + 1)));
        }
    }
    out.sort();
    out
}

fn mtime(path: &std::path::Path) -> Option<i64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
}

/// What the security checks read from the configuration (owned, for the
/// job `serve` runs).
#[derive(Clone, Debug)]
pub struct CheckSettings {
    data_dir: std::path::PathBuf,
    audit_dir: std::path::PathBuf,
    region: String,
    posture: GatewayPosture,
}

/// The gateway settings the checks judge. `serve` writes its own to
/// [`POSTURE_FILE`] at start, so that `latchkey advisor checks` judges the
/// server that runs on the data directory, not the flags it was given
/// itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct GatewayPosture {
    plaintext_allowed: bool,
    detection: bool,
    webhook: bool,
    statement_audit: bool,
}

/// In the data directory: the posture of the last `serve` started there.
const POSTURE_FILE: &str = "serve-posture.json";

impl CheckSettings {
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            data_dir: config.data_dir.clone(),
            audit_dir: config.audit.dir.clone(),
            region: config.region.clone(),
            posture: GatewayPosture {
                plaintext_allowed: config.postgres_gateway.allow_plaintext
                    || config.mysql_gateway.allow_plaintext,
                detection: config.detection.is_some(),
                webhook: config.webhook.is_some(),
                statement_audit: config.postgres_gateway.audit_statements
                    && config.mysql_gateway.audit_statements,
            },
        }
    }

    /// Records this server's posture in the data directory (private, and
    /// replaced whole so that no reader sees half of it).
    pub fn publish(&self) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.data_dir.join(POSTURE_FILE);
        let partial = self.data_dir.join(format!("{POSTURE_FILE}.partial"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("writing {}", partial.display()))?;
        file.write_all(&serde_json::to_vec(&self.posture)?)?;
        file.sync_all()?;
        std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The posture to judge: the server's, where one has published it in
    /// the data directory, else this configuration's.
    fn judged_posture(&self) -> GatewayPosture {
        std::fs::read(self.data_dir.join(POSTURE_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(self.posture)
    }
}

/// A node's report older than this says nothing of how the cluster is set
/// up now: the node is gone (or cut off), and serves no one.
const LIVE_NODE_SECS: i64 = 300;

/// How this node is set up, from its configuration (or the posture its
/// `serve` published) and its data directory: what it reports to the
/// other nodes, and what the checks judge of it.
pub fn node_settings(config: &CheckSettings) -> latchkey_advisor::checks::SettingsFacts {
    let dir = &config.audit_dir;
    let posture = config.judged_posture();
    latchkey_advisor::checks::SettingsFacts {
        plaintext_allowed: posture.plaintext_allowed,
        detection: posture.detection,
        webhook: posture.webhook,
        statement_audit: posture.statement_audit,
        last_digest: latchkey_trail::newest_digest_time(dir)
            .ok()
            .flatten()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok()),
        last_verified: latchkey_trail::last_verified(dir),
        master_key_since: mtime(
            &latchkey_server::bootstrap::DataDir::new(&config.data_dir).master_key(),
        ),
        exposed_files: exposed_files(&config.data_dir),
    }
}

/// Everything the security checks look at, from the store, the
/// configuration and the data directory of this node (`node`), and the
/// settings the other live nodes sharing the store reported.
pub fn gather_facts(
    config: &CheckSettings,
    node: &str,
    store: &Store,
    now: i64,
) -> Result<latchkey_advisor::checks::Facts> {
    use latchkey_advisor::checks::{
        DatabaseFacts, Facts, KeyFacts, PasswordFacts, RoleFacts, SecretFacts, UserFacts,
    };
    use latchkey_policy::PolicyKind;
    use latchkey_store::PrincipalKind;
    let admin_key = administrator_key(&config.data_dir);
    let last = |id: &str| -> Result<Option<latchkey_store::CredentialLastUse>> {
        Ok(store.credential_last_use(id)?)
    };
    let parse = |doc: &str, kind| latchkey_policy::parse(doc, kind).ok();
    let mut policies = Vec::new();
    let mut users = Vec::new();
    for u in store.list_users()? {
        let mut keys = Vec::new();
        for k in store.list_access_keys(&u.name)? {
            keys.push(KeyFacts {
                last_used: last(&k.id)?.map(|l| (l.at, l.service)),
                id: k.id,
                active: k.active,
                created: k.created,
            });
        }
        for (name, doc) in store.inline_policies(PrincipalKind::User, &u.name)? {
            policies.extend(
                parse(&doc, PolicyKind::Identity).map(|p| (format!("user/{}/{name}", u.name), p)),
            );
        }
        let administrator = admin_key
            .as_ref()
            .is_some_and(|a| keys.iter().any(|k| &k.id == a));
        // Only the administrator's database use is judged.
        let database_use = if administrator {
            store
                .last_accesses(&[u.arn.as_str()])?
                .into_iter()
                .filter(|a| a.action.eq_ignore_ascii_case("rds-db:connect"))
                .map(|a| a.at)
                .max()
        } else {
            None
        };
        users.push(UserFacts {
            administrator,
            database_use,
            last_used: last(&u.arn)?.map(|l| l.at),
            mfa: store
                .list_mfa_devices(&u.name)?
                .iter()
                .any(|d| d.enabled_at.is_some()),
            password: store.login_profile(&u.name)?.map(|p| PasswordFacts {
                created: p.created,
                last_used: p.last_used,
            }),
            has_permissions: !store
                .identity_policies(PrincipalKind::User, &u.name)?
                .is_empty(),
            keys,
            name: u.name,
            arn: u.arn,
            created: u.created,
        });
    }
    let mut roles = Vec::new();
    for r in store.list_roles()? {
        for (name, doc) in store.inline_policies(PrincipalKind::Role, &r.name)? {
            policies.extend(
                parse(&doc, PolicyKind::Identity).map(|p| (format!("role/{}/{name}", r.name), p)),
            );
        }
        roles.push(RoleFacts {
            last_used: last(&r.arn)?.map(|l| l.at),
            trust: parse(&r.trust_policy, PolicyKind::Trust),
            name: r.name,
            arn: r.arn,
            created: r.created,
        });
    }
    for g in store.list_groups()? {
        for (name, doc) in store.inline_policies(PrincipalKind::Group, &g.name)? {
            policies.extend(
                parse(&doc, PolicyKind::Identity).map(|p| (format!("group/{}/{name}", g.name), p)),
            );
        }
    }
    for m in store.list_policies()? {
        policies.extend(
            parse(&store.managed_policy(&m.arn)?, PolicyKind::Identity).map(|p| (m.arn.clone(), p)),
        );
    }
    let databases = store
        .list_databases()?
        .into_iter()
        .map(|d| DatabaseFacts {
            restricted: d.tags.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("restricted") || v.eq_ignore_ascii_case("restricted")
            }),
            upstream_auth: d.upstream_auth.as_str().to_owned(),
            upstream_tls: d.upstream_tls.as_str().to_owned(),
            statement_policy: d.statement_policy.as_str().to_owned(),
            name: d.name,
        })
        .collect();
    let secrets = store
        .list_secrets()?
        .iter()
        .filter_map(|s| serde_json::from_str::<latchkey_secrets::Secret>(&s.document).ok())
        .filter(|s| !s.is_deleted())
        .map(|s| SecretFacts {
            rotation_enabled: s.rotation.as_ref().is_some_and(|r| r.enabled),
            next_rotation: s.rotation.as_ref().and_then(|r| r.next_rotation),
            name: s.name,
        })
        .collect();
    // A node that reported nothing of its settings (an older version) is
    // not judged on them; one whose report does not parse is judged on
    // the defaults, which are flagged (no detection, no digest...).
    let other_nodes = store
        .nodes()?
        .into_iter()
        .filter(|n| n.node != node && now - n.seen <= LIVE_NODE_SECS && !n.posture.is_empty())
        .map(|n| {
            let settings = serde_json::from_str(&n.posture).unwrap_or_default();
            (n.node, settings)
        })
        .collect();
    Ok(Facts {
        now,
        region: config.region.clone(),
        account: store.account_id().to_owned(),
        users,
        roles,
        policies,
        databases,
        secrets,
        settings: node_settings(config),
        node: node.to_owned(),
        other_nodes,
    })
}

/// `latchkey advisor checks`.
fn checks(args: &ChecksArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    let store = config.open_store()?;
    let now = now_or(args.at.as_deref())?.unix();
    let node = config.data().node_id()?;
    let facts = gather_facts(&CheckSettings::of(&config), &node, &store, now)?;
    let results = latchkey_advisor::checks::run(&facts);
    let now_text = latchkey_server::xml::timestamp(now);
    match args.output {
        OutputFormat::Json => print_json(&json!({
            "checks": results.iter().map(|c| c.to_json(&now_text, &facts.region)).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Text => {
            for c in &results {
                println!("{:<10} {:<8} {}", c.id, c.status().as_str(), c.name);
                for f in &c.flagged {
                    println!(
                        "           {:<8} {}: {}",
                        f.status.as_str(),
                        f.resource,
                        f.reason
                    );
                }
                if !c.flagged.is_empty() {
                    println!("           fix: {}", c.fix);
                }
            }
        }
    }
    let worst = results
        .iter()
        .map(latchkey_advisor::checks::CheckResult::status)
        .max();
    let failing = match args.fail_on {
        None => false,
        Some(FailOn::Warning) => worst >= Some(latchkey_advisor::checks::Status::Warning),
        Some(FailOn::Error) => worst >= Some(latchkey_advisor::checks::Status::Error),
    };
    Ok(if failing { exit::FAILURE } else { exit::OK })
}

/// The security checks `serve` runs every `every` (first at start): a
/// gauge per check (`latchkey_security_check_status`: 0 ok, 1 warning, 2
/// error), and, with `findings`, a finding per check in error, stored, in
/// the trail when its status changes, and archived once the check is out
/// of error. Posture is not a threat: the findings are opt-in, so that
/// `latchkey findings` stays the detection rules' unless asked. Every node
/// sets its gauges; the findings come from one node at a time (the lease
/// [`CHECKS_LEASE`], held by `node`), so that several nodes sharing a
/// store raise each once (and post it to the webhook once).
pub fn spawn_checks(
    state: Arc<latchkey_identity::AppState>,
    settings: CheckSettings,
    every: std::time::Duration,
    findings: bool,
    node: String,
) -> Result<()> {
    let gauges = state.metrics.registry.gauge_family(
        "latchkey_security_check_status",
        "Each security check's status: 0 ok, 1 warning, 2 error.",
        ["check"],
        64,
    )?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
        let mut last: std::collections::HashMap<&'static str, latchkey_advisor::checks::Status> =
            std::collections::HashMap::new();
        // Held across a few runs, so that it moves only when its node stops.
        let lease_secs = i64::try_from(every.as_secs().saturating_mul(3))
            .unwrap_or(i64::MAX)
            .max(60);
        loop {
            tick.tick().await;
            let s = state.clone();
            let settings = settings.clone();
            let node = node.clone();
            let run = move || -> Result<(Vec<latchkey_advisor::checks::CheckResult>, bool)> {
                let now = latchkey_identity::clock::system_now();
                let facts = gather_facts(&settings, &node, &s.store, now)?;
                let leader =
                    findings && s.store.hold_lease(CHECKS_LEASE, &node, now, lease_secs)?;
                Ok((latchkey_advisor::checks::run(&facts), leader))
            };
            let (results, leader) = match tokio::task::spawn_blocking(run).await {
                Ok(Ok(results)) => results,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the security checks could not run");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the security checks stopped");
                    continue;
                }
            };
            for c in &results {
                let status = c.status();
                gauges.get_or_create(&[c.id]).set(status.level());
                let changed = last.insert(c.id, status) != Some(status);
                if !leader {
                    // Another node raises the findings: record a change
                    // here too once this node takes over.
                    last.remove(c.id);
                    continue;
                }
                if let Err(e) = check_finding(&state, c, changed) {
                    tracing::warn!(check = c.id, error = %e, "recording a security check's finding failed");
                }
            }
        }
    });
    Ok(())
}

pub use latchkey_advisor::checks::FINDING_KIND as SECURITY_CHECK_KIND;

/// The lease of the node that raises the security checks' findings.
pub const CHECKS_LEASE: &str = "security-checks";

/// The finding of a check in error (stored, and in the trail when its
/// status `changed`), or the old one archived once it is not.
fn check_finding(
    state: &latchkey_identity::AppState,
    c: &latchkey_advisor::checks::CheckResult,
    changed: bool,
) -> Result<()> {
    use latchkey_advisor::checks::Status;
    let id = format!("security-check-{}", c.id);
    // Warnings are the gauges' business; an error is an alarm.
    if c.status() != Status::Error {
        return clear_finding(state, &id);
    }
    let now = std::time::SystemTime::now();
    let finding = latchkey_audit::Finding {
        id,
        kind: format!("{SECURITY_CHECK_KIND}{}", c.id),
        severity: latchkey_audit::Severity::High,
        title: format!("Security check failing: {}", c.name),
        description: c
            .flagged
            .iter()
            .map(|f| format!("{}: {}", f.resource, f.reason))
            .collect::<Vec<_>>()
            .join("; ")
            + &format!(". Fix: {}", c.fix),
        resource: c
            .flagged
            .first()
            .map_or_else(|| "latchkey".to_owned(), |f| f.resource.clone()),
        principal: None,
        source_ip: None,
        first_seen: now,
        last_seen: now,
        count: c.flagged.len() as u64,
        evidence: Vec::new(),
        actions: Vec::new(),
    };
    raise_finding(state, finding, changed)
}

/// Stores `finding` open (its id replaces an earlier one's, archived or
/// not) and, when it is `new`, counts it and writes it to the trail,
/// whose detection observer posts it to the webhook once it is durable.
pub fn raise_finding(
    state: &latchkey_identity::AppState,
    finding: latchkey_audit::Finding,
    new: bool,
) -> Result<()> {
    let json = latchkey_audit::finding_json(&finding);
    let severity = finding.severity.as_str();
    state.store.put_finding(
        &finding.id,
        &finding.kind,
        severity,
        latchkey_identity::clock::system_now(),
        &json,
    )?;
    state
        .store
        .archive_findings(std::slice::from_ref(&finding.id), false)?;
    if new {
        state.metrics.finding(&finding.kind, severity);
        state
            .audit()
            .record(latchkey_audit::Event::Finding(Box::new(finding)));
    }
    Ok(())
}

/// Archives the finding `id`, if there is one.
pub fn clear_finding(state: &latchkey_identity::AppState, id: &str) -> Result<()> {
    if state.store.get_finding(id)?.is_some() {
        state.store.archive_findings(&[id.to_owned()], true)?;
    }
    Ok(())
}
