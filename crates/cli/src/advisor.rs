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
        if let Ok(record) = serde_json::from_slice::<Value>(line) {
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
        // Console passwords do not exist yet: nothing to list.
        "Passwords": [],
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
