//! Threat detection for `serve` (an observer on the audit trail), and
//! `latchkey findings list|get|archive` (GuardDuty's names).

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use latchkey_audit::{Event, finding_json};
use latchkey_detect::{Action, Detector};
use latchkey_identity::AppState;
use latchkey_identity::clock::system_now as now;
use latchkey_identity::login_gate::FAILURES_LEARNED_WITHIN;
use latchkey_store::Store;
use latchkey_webhook::Webhook;

use crate::config::ServerArgs;
use crate::exit;
use crate::output::{OutputFormat, print_json};

/// Runs the rules on every durable audit record and answers findings:
/// stores them, counts them, posts them to the webhook, and takes the
/// configured actions (block the source address, revoke sessions).
pub struct Detection {
    pub detector: Detector,
    pub state: Arc<AppState>,
    pub webhook: Option<Webhook>,
    /// On a shared store: failed logins exchanged with the other nodes,
    /// so that brute-force counting holds for the cluster.
    pub exchange: Option<Arc<FailureExchange>>,
}

/// The gauge kind failed-login tallies are exchanged under.
const FAILURES_GAUGE: &str = "detect/failures";

/// Counted failed logins, exchanged through the store with the session
/// gauges (every 500 ms): this node's tally goes out, and what grew in the
/// other nodes' waits here until the detector takes it up, before the
/// next event it observes (an attacker's next attempt on this node, say).
#[derive(Default)]
pub struct FailureExchange {
    mine: std::sync::Mutex<Vec<(String, u64)>>,
    theirs: std::sync::Mutex<Vec<(String, u64)>>,
    seen: std::sync::Mutex<latchkey_gateway::limits::TakenElsewhere>,
}

impl FailureExchange {
    /// This node's tally, as gauges.
    pub fn gauges(&self) -> Vec<(String, String, i64)> {
        self.mine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(key, n)| {
                (
                    FAILURES_GAUGE.to_owned(),
                    key.clone(),
                    i64::try_from(*n).unwrap_or(i64::MAX),
                )
            })
            .collect()
    }

    /// Takes up the other nodes' tallies (their sums, as exchanged): for
    /// the detector, and at once for the login gate.
    pub fn take_up(&self, gauges: &[(String, String, i64)], state: &AppState) {
        let sums = gauges
            .iter()
            .filter(|(kind, _, _)| kind == FAILURES_GAUGE)
            .map(|(_, key, n)| (key.as_str(), *n));
        let grown: Vec<(String, u64)> = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .growth(sums)
            .into_iter()
            .map(|(key, n)| (key.to_owned(), u64::try_from(n).unwrap_or(0)))
            .collect();
        let now = state.now();
        for (key, n) in &grown {
            if let Some((ip, kind)) = latchkey_detect::parse_tally_key(key) {
                state.login_gate.failed_elsewhere(ip, kind, *n, now);
            }
        }
        if !grown.is_empty() {
            self.theirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(grown);
        }
    }
}

/// Arms the gateways' login gate with the brute-force rule, when the
/// rule blocks: a burst then gets no more credential checks than the
/// rule's threshold before the block lands.
pub fn arm_login_gate(state: &AppState, rules: &latchkey_detect::DetectConfig) {
    let rule = &rules.brute_force;
    if rule.blocks() {
        state
            .login_gate
            .arm(latchkey_identity::login_gate::GateRule {
                threshold: rule.threshold,
                window_secs: i64::try_from(rule.window_secs).unwrap_or(i64::MAX),
                counted: rule.counted_kinds(),
                max_tracked: rules.max_tracked_keys,
                hold_secs: latchkey_identity::login_gate::HOLD_SECS,
            });
    }
}

/// The ARN whose sessions a revocation names: a role session's role.
fn revocation_arn(principal: &str) -> String {
    // arn:aws:sts::ACCT:assumed-role/ROLE/SESSION -> arn:aws:iam::ACCT:role/ROLE
    if let Some((head, rest)) = principal.split_once(":assumed-role/")
        && let Some(account) = head.strip_prefix("arn:aws:sts::")
    {
        let role = rest.split('/').next().unwrap_or_default();
        return format!("arn:aws:iam::{account}:role/{role}");
    }
    principal.to_owned()
}

impl latchkey_trail::Observer for Detection {
    fn observe(&mut self, _sequence: u64, event_id: &str, event: &Event) -> Vec<Event> {
        // A failing security check's finding (recorded by the checks job)
        // and a leaked key's (recorded by `RevokeLeakedAccessKey`) go to
        // the webhook too, once durable: an alarm needs no polling.
        if let Event::Finding(f) = event
            && (f.kind.starts_with(crate::advisor::SECURITY_CHECK_KIND)
                || f.kind == latchkey_server::LEAKED_KEY_KIND)
            && let Some(hook) = &self.webhook
        {
            hook.send(finding_json(f));
        }
        let mut out = Vec::new();
        let mut outcomes = Vec::new();
        if let Some(exchange) = &self.exchange {
            let theirs =
                std::mem::take(&mut *exchange.theirs.lock().unwrap_or_else(|p| p.into_inner()));
            let at = std::time::SystemTime::now();
            for (key, n) in theirs {
                outcomes.extend(self.detector.failures_elsewhere(&key, n, at));
            }
        }
        outcomes.extend(self.detector.observe(event_id, event));
        // Only a failure changes the tally: a successful login (the hot
        // path) leaves it as it was.
        if let (Some(exchange), Event::Auth(auth)) = (&self.exchange, event)
            && matches!(auth.result, latchkey_audit::AuthResult::Failure { .. })
        {
            let tally = self.detector.failure_tally(std::time::SystemTime::now());
            *exchange.mine.lock().unwrap_or_else(|p| p.into_inner()) = tally;
        }
        for outcome in outcomes {
            let f = outcome.finding;
            for action in &outcome.actions {
                match action {
                    Action::BlockSourceIp { ip, for_secs } => {
                        let until =
                            now().saturating_add(i64::try_from(*for_secs).unwrap_or(i64::MAX));
                        // When the failures were seen. Another node's are
                        // learned up to a second after (the gauge
                        // exchange): an unblock within that margin after
                        // this finding's last failure forgives it too.
                        let evidence = f
                            .last_seen
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                            .saturating_sub(FAILURES_LEARNED_WITHIN);
                        match self.state.block_ip(*ip, until, evidence) {
                            Ok(true) => {
                                tracing::warn!(finding = %f.id, %ip, for_secs, "blocked a source address");
                            }
                            Ok(false) => {
                                tracing::info!(finding = %f.id, %ip, "not blocking a source address: an operator unblocked it after these failures");
                            }
                            // Blocked here all the same; the other nodes
                            // learn of it only through the store.
                            Err(e) => {
                                tracing::error!(finding = %f.id, %ip, for_secs, error = %e, "blocked a source address on this node only: the store did not take it");
                            }
                        }
                    }
                    Action::RevokeSessions { principal_arn } => {
                        let arn = revocation_arn(principal_arn);
                        let revoked = self
                            .state
                            .store
                            .revoke_sessions(&arn, now())
                            .map_err(|e| e.to_string())
                            .and_then(|()| {
                                self.state.reload_revocations().map_err(|e| e.to_string())
                            });
                        match revoked {
                            Ok(()) => tracing::warn!(finding = %f.id, %arn, "revoked sessions"),
                            Err(e) => {
                                tracing::error!(finding = %f.id, %arn, error = %e, "revoking sessions failed")
                            }
                        }
                    }
                }
            }
            let json = finding_json(&f);
            self.state.metrics.finding(&f.kind, f.severity.as_str());
            let last_seen = f
                .last_seen
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            if let Err(e) =
                self.state
                    .store
                    .put_finding(&f.id, &f.kind, f.severity.as_str(), last_seen, &json)
            {
                tracing::error!(finding = %f.id, error = %e, "storing a finding failed");
            }
            tracing::warn!(finding = %f.id, kind = %f.kind, severity = f.severity.as_str(), title = %f.title, "threat finding");
            if let Some(hook) = &self.webhook {
                hook.send(json);
            }
            out.push(Event::Finding(Box::new(f)));
        }
        out
    }
}

#[derive(Subcommand, Debug)]
pub enum FindingsCommand {
    /// List findings, newest first.
    List(ListArgs),
    /// Show one finding.
    Get(GetArgs),
    /// Archive findings (or bring them back with --unarchive).
    Archive(ArchiveArgs),
    /// List the source addresses detection blocked, and until when.
    Blocked(BlockedArgs),
    /// Lift blocks before they run out (every node drops them within seconds); the failures seen until now no longer block.
    Unblock(UnblockArgs),
}

#[derive(Args, Debug)]
pub struct BlockedArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct UnblockArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Addresses to unblock (IPv4 or IPv6).
    #[arg(required = true)]
    ips: Vec<std::net::IpAddr>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Only this severity: Low, Medium or High.
    #[arg(long)]
    severity: Option<String>,
    /// Only this type, e.g. CredentialAccess:RDS/BruteForce.SourceIP.
    #[arg(long = "type")]
    kind: Option<String>,
    /// List archived findings instead.
    #[arg(long)]
    archived: bool,
    #[arg(long, default_value_t = 50)]
    max_results: u32,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The finding id.
    id: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct ArchiveArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Finding ids.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Unarchive instead.
    #[arg(long)]
    unarchive: bool,
}

fn open(server: &ServerArgs) -> Result<Store> {
    server.resolve()?.open_store()
}

fn with_archived(document: &str, archived: bool) -> Result<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_str(document)?;
    v["archived"] = archived.into();
    Ok(v)
}

fn text_line(v: &serde_json::Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
    format!(
        "{}  {:<6} {:<42} count {:<5} last {}  {}",
        s("id"),
        s("severity"),
        s("type"),
        v["count"],
        s("lastSeen"),
        s("title")
    )
}

pub fn run(cmd: FindingsCommand) -> Result<u8> {
    match cmd {
        FindingsCommand::List(args) => {
            let severity = match &args.severity {
                Some(s) => Some(
                    latchkey_audit::Severity::parse(s)
                        .with_context(|| format!("--severity {s:?}: use Low, Medium or High"))?
                        .as_str(),
                ),
                None => None,
            };
            let store = open(&args.server)?;
            let rows = store.findings(
                args.archived,
                severity,
                args.kind.as_deref(),
                args.max_results,
            )?;
            let list = rows
                .iter()
                .map(|(d, a)| with_archived(d, *a))
                .collect::<Result<Vec<_>>>()?;
            match args.output {
                OutputFormat::Json => print_json(&serde_json::json!({ "Findings": list }))?,
                OutputFormat::Text => {
                    for v in &list {
                        println!("{}", text_line(v));
                    }
                }
            }
            Ok(exit::OK)
        }
        FindingsCommand::Get(args) => {
            let store = open(&args.server)?;
            let Some((document, archived)) = store.get_finding(&args.id)? else {
                bail!("no finding {}", args.id);
            };
            let v = with_archived(&document, archived)?;
            match args.output {
                OutputFormat::Json => print_json(&v)?,
                OutputFormat::Text => {
                    println!("{}", text_line(&v));
                    println!("{}", v["description"].as_str().unwrap_or_default());
                    println!("evidence: {}", v["evidence"]);
                    println!("actions:  {}", v["actions"]);
                }
            }
            Ok(exit::OK)
        }
        FindingsCommand::Blocked(args) => {
            let store = open(&args.server)?;
            let now = latchkey_identity::clock::system_now();
            let blocked = store.blocked_addresses(now)?;
            match args.output {
                OutputFormat::Json => {
                    let list: Vec<serde_json::Value> = blocked
                        .iter()
                        .map(|(ip, until)| {
                            serde_json::json!({
                                "SourceIp": ip,
                                "BlockedUntil": latchkey_identity::iso8601(*until),
                            })
                        })
                        .collect();
                    print_json(&serde_json::json!({ "BlockedAddresses": list }))?;
                }
                OutputFormat::Text => {
                    for (ip, until) in &blocked {
                        println!("{ip}  until {}", latchkey_identity::iso8601(*until));
                    }
                }
            }
            Ok(exit::OK)
        }
        FindingsCommand::Unblock(args) => {
            let store = open(&args.server)?;
            let now = latchkey_identity::clock::system_now();
            let mut missing = Vec::new();
            for ip in &args.ips {
                if !store.unblock_address(&ip.to_string(), now)? {
                    missing.push(ip.to_string());
                }
            }
            if !missing.is_empty() {
                bail!("not blocked: {}", missing.join(", "));
            }
            Ok(exit::OK)
        }
        FindingsCommand::Archive(args) => {
            let store = open(&args.server)?;
            let n = store.archive_findings(&args.ids, !args.unarchive)?;
            if n < args.ids.len() {
                bail!("{} of {} findings exist", n, args.ids.len());
            }
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_sessions_are_revoked_by_role() {
        assert_eq!(
            revocation_arn("arn:aws:sts::123456789012:assumed-role/app/s1"),
            "arn:aws:iam::123456789012:role/app"
        );
        assert_eq!(
            revocation_arn("arn:aws:iam::123456789012:user/bob"),
            "arn:aws:iam::123456789012:user/bob"
        );
    }
}
