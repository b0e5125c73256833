//! Security checks (Trusted Advisor for Latchkey): each check has a
//! stable id, looks at a snapshot of the system ([`Facts`], gathered by
//! the caller: no I/O here), and flags resources with a status and the
//! fix. The result is shaped like Trusted Advisor's check results.

use latchkey_policy::{Policy, PolicyKind};
use serde_json::{Value, json};

/// The type of a failing security check's finding, before the check's id
/// (`latchkey serve` records one for each check in error).
pub const FINDING_KIND: &str = "Policy:Latchkey/SecurityCheck.";

/// A check's verdict, worst of its flagged resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warning,
    Error,
}

impl Status {
    /// Trusted Advisor's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Error => "error",
        }
    }

    /// For a Prometheus gauge: 0 ok, 1 warning, 2 error.
    pub fn level(self) -> i64 {
        self as i64
    }
}

/// An access key, as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    pub id: String,
    pub active: bool,
    pub created: i64,
    /// Last use: epoch seconds and service.
    pub last_used: Option<(i64, String)>,
}

/// A user, as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFacts {
    pub name: String,
    pub arn: String,
    pub created: i64,
    pub last_used: Option<i64>,
    pub mfa: bool,
    /// The console password (login profile), if the user has one.
    pub password: Option<PasswordFacts>,
    /// Any identity policy applies (its own, attached or a group's).
    pub has_permissions: bool,
    /// The administrator `latchkey init` made.
    pub administrator: bool,
    /// When the user's own credentials last signed a database token
    /// (`rds-db:connect`), whichever key it was and whatever came after.
    pub database_use: Option<i64>,
    pub keys: Vec<KeyFacts>,
}

/// A user's console password, as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordFacts {
    pub created: i64,
    /// The last sign-in with it.
    pub last_used: Option<i64>,
}

/// A role, as the checks see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleFacts {
    pub name: String,
    pub arn: String,
    pub created: i64,
    pub last_used: Option<i64>,
    pub trust: Option<Policy>,
}

/// A registered database, as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseFacts {
    pub name: String,
    /// `password`, `cert` or `trust`.
    pub upstream_auth: String,
    /// `disable` … `verify-full`.
    pub upstream_tls: String,
    /// `off`, `audit` or `enforce`.
    pub statement_policy: String,
    /// Tagged restricted (`classification=restricted`, or a tag
    /// `restricted`).
    pub restricted: bool,
}

/// A Secrets Manager secret, as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFacts {
    pub name: String,
    pub rotation_enabled: bool,
    /// When the next rotation is due, if rotation is on.
    pub next_rotation: Option<i64>,
}

/// How a node of the running system is set up. Nodes sharing a store
/// publish theirs in their reports (JSON), so that the checks judge every
/// node, not only the one they run on.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SettingsFacts {
    pub plaintext_allowed: bool,
    pub detection: bool,
    pub webhook: bool,
    pub statement_audit: bool,
    /// The newest signed digest of the audit trail.
    pub last_digest: Option<i64>,
    /// The last `latchkey audit verify` that passed.
    pub last_verified: Option<i64>,
    /// When the master key was last made or rotated.
    pub master_key_since: Option<i64>,
    /// Files in the data directory that its group or others may read.
    pub exposed_files: Vec<String>,
}

/// Everything the checks look at.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    pub now: i64,
    pub region: String,
    pub users: Vec<UserFacts>,
    pub roles: Vec<RoleFacts>,
    /// Every identity policy, by the name it is known by (managed
    /// policy ARN, or `user/NAME/POLICY` for an inline one).
    pub policies: Vec<(String, Policy)>,
    pub account: String,
    pub databases: Vec<DatabaseFacts>,
    pub secrets: Vec<SecretFacts>,
    /// This node's settings.
    pub settings: SettingsFacts,
    /// This node's id, which names its resources when there are others.
    pub node: String,
    /// The other live nodes sharing the store: id and settings.
    pub other_nodes: Vec<(String, SettingsFacts)>,
}

impl Facts {
    /// Every node's settings with the prefix of its resources: none on a
    /// lone node (`gateway`), the node's id where there are several
    /// (`node-a:gateway`, `node-a:/var/lib/latchkey/master.key`).
    fn nodes(&self) -> Vec<(String, &SettingsFacts)> {
        if self.other_nodes.is_empty() {
            return vec![(String::new(), &self.settings)];
        }
        std::iter::once((&self.node, &self.settings))
            .chain(self.other_nodes.iter().map(|(n, s)| (n, s)))
            .map(|(n, s)| (format!("{n}:"), s))
            .collect()
    }
}

/// One flagged resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flagged {
    pub status: Status,
    pub resource: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A check and its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub id: &'static str,
    pub name: &'static str,
    pub category: &'static str,
    pub fix: &'static str,
    pub processed: usize,
    pub flagged: Vec<Flagged>,
}

impl CheckResult {
    pub fn status(&self) -> Status {
        self.flagged
            .iter()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// Trusted Advisor's `TrustedAdvisorCheckResult` shape.
    pub fn to_json(&self, now_text: &str, region: &str) -> Value {
        json!({
            "checkId": self.id,
            "name": self.name,
            "category": self.category,
            "timestamp": now_text,
            "status": self.status().as_str(),
            "resourcesSummary": {
                "resourcesProcessed": self.processed,
                "resourcesFlagged": self.flagged.len(),
                "resourcesIgnored": 0,
                "resourcesSuppressed": 0,
            },
            "recommendedAction": self.fix,
            "flaggedResources": self.flagged.iter().map(|f| json!({
                "status": f.status.as_str(),
                "region": region,
                "resourceId": f.resource,
                "isSuppressed": false,
                "metadata": [f.resource, f.reason],
            })).collect::<Vec<_>>(),
        })
    }
}

const DAY: i64 = 86_400;

fn check(
    id: &'static str,
    name: &'static str,
    category: &'static str,
    fix: &'static str,
    processed: usize,
    flagged: Vec<Flagged>,
) -> CheckResult {
    CheckResult {
        id,
        name,
        category,
        fix,
        processed,
        flagged,
    }
}

fn flag(status: Status, resource: &str, reason: impl Into<String>) -> Flagged {
    Flagged {
        status,
        resource: resource.to_owned(),
        reason: reason.into(),
    }
}

fn days(seconds: i64) -> i64 {
    seconds.max(0) / DAY
}

fn administrator_key(f: &Facts) -> CheckResult {
    let mut flagged = Vec::new();
    for u in f.users.iter().filter(|u| u.administrator) {
        if let Some(at) = u.database_use {
            flagged.push(flag(
                Status::Error,
                &u.arn,
                format!(
                    "the administrator signed database tokens ({} days ago)",
                    days(f.now - at)
                ),
            ));
        }
        for k in &u.keys {
            if let Some((at, service)) = &k.last_used {
                if service == "rds-db" {
                    if u.database_use.is_some() {
                        continue;
                    }
                    flagged.push(flag(
                        Status::Error,
                        &k.id,
                        format!(
                            "the administrator's key signed database tokens ({} days ago)",
                            days(f.now - at)
                        ),
                    ));
                } else if f.now - at < 30 * DAY {
                    flagged.push(flag(
                        Status::Warning,
                        &k.id,
                        format!(
                            "the administrator's key was used {} days ago ({service})",
                            days(f.now - at)
                        ),
                    ));
                }
            }
        }
    }
    check(
        "LK-IAM-01",
        "Administrator access key in use",
        "security",
        "Keep the administrator's key for emergencies: give people and applications their own users and roles, and never sign database tokens with it.",
        f.users.iter().filter(|u| u.administrator).count(),
        flagged,
    )
}

fn access_key_rotation(f: &Facts) -> CheckResult {
    let mut flagged = Vec::new();
    let mut processed = 0;
    for u in &f.users {
        let active: Vec<&KeyFacts> = u.keys.iter().filter(|k| k.active).collect();
        processed += u.keys.len();
        for k in &active {
            let age = days(f.now - k.created);
            if age > 90 {
                flagged.push(flag(
                    Status::Warning,
                    &k.id,
                    format!("{}'s active key is {age} days old", u.name),
                ));
            }
        }
        if active.len() > 1 {
            flagged.push(flag(
                Status::Warning,
                &u.arn,
                format!("{} has {} active access keys", u.name, active.len()),
            ));
        }
    }
    check(
        "LK-IAM-02",
        "Access key rotation",
        "security",
        "Rotate access keys at least every 90 days (create a second key, move the application to it, deactivate and delete the first), and keep one active key per user.",
        processed,
        flagged,
    )
}

fn mfa(f: &Facts) -> CheckResult {
    let flagged = f
        .users
        .iter()
        .filter(|u| !u.mfa && (u.password.is_some() || u.has_permissions))
        .map(|u| {
            let why = if u.password.is_some() {
                "has a console password but no MFA device"
            } else {
                "has IAM permissions but no MFA device"
            };
            flag(
                if u.password.is_some() {
                    Status::Error
                } else {
                    Status::Warning
                },
                &u.arn,
                format!("{} {why}", u.name),
            )
        })
        .collect();
    check(
        "LK-IAM-03",
        "MFA on users",
        "security",
        "Enable a virtual MFA device for the user (aws iam create-virtual-mfa-device, enable-mfa-device) and require aws:MultiFactorAuthPresent for privileged actions.",
        f.users.len(),
        flagged,
    )
}

fn unused_credentials(f: &Facts) -> CheckResult {
    let cutoff = f.now - 90 * DAY;
    let stale = |created: i64, last: Option<i64>| last.map_or(created < cutoff, |at| at < cutoff);
    let mut flagged = Vec::new();
    for u in &f.users {
        if stale(u.created, u.last_used) {
            flagged.push(flag(
                Status::Warning,
                &u.arn,
                format!("user {} unused for 90 days", u.name),
            ));
        }
        if u.password
            .as_ref()
            .is_some_and(|p| stale(p.created, p.last_used))
        {
            flagged.push(flag(
                Status::Warning,
                &u.arn,
                format!("{}'s console password unused for 90 days", u.name),
            ));
        }
        for k in u.keys.iter().filter(|k| k.active) {
            if stale(k.created, k.last_used.as_ref().map(|(at, _)| *at)) {
                flagged.push(flag(
                    Status::Warning,
                    &k.id,
                    format!("{}'s key unused for 90 days", u.name),
                ));
            }
        }
    }
    for r in &f.roles {
        if stale(r.created, r.last_used) {
            flagged.push(flag(
                Status::Warning,
                &r.arn,
                format!("role {} unused for 90 days", r.name),
            ));
        }
    }
    check(
        "LK-IAM-04",
        "Unused credentials",
        "security",
        "Deactivate or delete users, roles, keys and console passwords unused for 90 days (latchkey advisor unused --days 90 lists them).",
        f.users.len() + f.roles.len(),
        flagged,
    )
}

/// A security finding of the policy analyser, as a flagged resource:
/// anything that opens to anyone, or grants everything, is an error.
fn analysed(at: &str, f: &latchkey_policy::analyze::AnalyzerFinding) -> Flagged {
    let status = match f.issue_code {
        "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES" | "TRUST_POLICY_OPEN_TO_ANYONE" => Status::Error,
        _ => Status::Warning,
    };
    flag(status, &format!("{at} {}", f.path), f.message.clone())
}

fn permissive_policies(f: &Facts) -> CheckResult {
    // The administrator's own policy allows everything by design; its use
    // is what LK-IAM-01 watches.
    let administrators: Vec<String> = f
        .users
        .iter()
        .filter(|u| u.administrator)
        .map(|u| format!("user/{}/", u.name))
        .collect();
    let flagged = f
        .policies
        .iter()
        .filter(|(name, _)| !administrators.iter().any(|a| name.starts_with(a.as_str())))
        .flat_map(|(name, policy)| {
            latchkey_policy::analyze::security_findings(
                policy,
                PolicyKind::Identity,
                &f.account,
                true,
            )
            .iter()
            .map(|finding| analysed(name, finding))
            .collect::<Vec<_>>()
        })
        .collect();
    check(
        "LK-IAM-05",
        "Overly permissive policies",
        "security",
        "Grant named actions on named resources (latchkey policy generate writes a policy from what a principal really did); avoid NotAction with Allow.",
        f.policies.len(),
        flagged,
    )
}

fn open_trust(f: &Facts) -> CheckResult {
    let flagged = f
        .roles
        .iter()
        .flat_map(|r| {
            r.trust
                .iter()
                .flat_map(|trust| {
                    latchkey_policy::analyze::security_findings(
                        trust,
                        PolicyKind::Trust,
                        &f.account,
                        true,
                    )
                })
                .filter(|finding| {
                    finding.issue_code.starts_with("TRUST_")
                        || finding.issue_code.starts_with("CROSS_ACCOUNT_")
                })
                .map(|finding| analysed(&r.arn, &finding))
                .collect::<Vec<_>>()
        })
        .collect();
    check(
        "LK-IAM-06",
        "Open role trust policies",
        "security",
        "Name the principals that may assume the role; for another account, require sts:ExternalId; never trust \"*\" without a condition.",
        f.roles.len(),
        flagged,
    )
}

fn databases(f: &Facts) -> CheckResult {
    let mut flagged = Vec::new();
    for d in &f.databases {
        if d.upstream_auth == "trust" {
            flagged.push(flag(
                Status::Error,
                &d.name,
                "the gateway logs in upstream with no credential (--auth trust)",
            ));
        }
        if d.upstream_tls != "verify-full" {
            flagged.push(flag(
                Status::Warning,
                &d.name,
                format!(
                    "upstream TLS is {}, weaker than verify-full",
                    d.upstream_tls
                ),
            ));
        }
        for (prefix, s) in f.nodes() {
            if !s.statement_audit {
                let on = prefix
                    .strip_suffix(':')
                    .map(|node| format!(" on node {node}"))
                    .unwrap_or_default();
                flagged.push(flag(
                    Status::Warning,
                    &d.name,
                    format!("statement audit is off{on} (--no-statement-audit)"),
                ));
            }
        }
        if d.restricted && d.statement_policy == "off" {
            flagged.push(flag(
                Status::Error,
                &d.name,
                "tagged restricted, but statement policy is off",
            ));
        }
    }
    check(
        "LK-DB-01",
        "Database gateway settings",
        "security",
        "Use password or certificate upstream logins over verify-full TLS (latchkey db update --auth ... --upstream-tls verify-full), keep statement audit on, and enforce statement policy on restricted databases.",
        f.databases.len(),
        flagged,
    )
}

fn gateway(f: &Facts) -> CheckResult {
    let mut flagged = Vec::new();
    let nodes = f.nodes();
    for (prefix, s) in &nodes {
        let mut flag_on = |status, resource: &str, reason: String| {
            flagged.push(flag(status, &format!("{prefix}{resource}"), reason));
        };
        if s.plaintext_allowed {
            flag_on(
                Status::Error,
                "gateway",
                "the PostgreSQL gateway accepts plaintext connections (tokens in the clear)".into(),
            );
        }
        if !s.detection {
            flag_on(
                Status::Warning,
                "detection",
                "threat detection is off".into(),
            );
        }
        if !s.webhook {
            flag_on(
                Status::Warning,
                "webhook",
                "no webhook: findings reach no one unless polled".into(),
            );
        }
        match s.last_digest {
            None => flag_on(
                Status::Warning,
                "audit",
                "the audit trail has no signed digest yet".into(),
            ),
            Some(at) if f.now - at > DAY => flag_on(
                Status::Warning,
                "audit",
                format!("the newest audit digest is {} days old", days(f.now - at)),
            ),
            Some(_) => {}
        }
        if s.last_verified.is_none_or(|at| f.now - at > DAY) {
            flag_on(
                Status::Warning,
                "audit",
                "the audit trail has not been verified in 24 hours (latchkey audit verify)".into(),
            );
        }
        if s.master_key_since.is_none_or(|at| f.now - at > 365 * DAY) {
            flag_on(
                Status::Warning,
                "master-key",
                "the master key has not been rotated in 365 days (latchkey rotate-master-key)"
                    .into(),
            );
        }
        for file in &s.exposed_files {
            flag_on(
                Status::Error,
                file,
                "readable by the group or other users".into(),
            );
        }
    }
    check(
        "LK-GW-01",
        "Gateway and data directory",
        "security",
        "Refuse plaintext, keep detection on with a webhook, verify the audit trail daily, rotate the master key yearly, and keep the data directory private (chmod 700, files 600).",
        nodes.len(),
        flagged,
    )
}

fn secrets(f: &Facts) -> CheckResult {
    let mut flagged = Vec::new();
    for s in &f.secrets {
        if !s.rotation_enabled {
            flagged.push(flag(Status::Warning, &s.name, "rotation is off"));
        } else if let Some(due) = s.next_rotation.filter(|due| *due < f.now - DAY) {
            flagged.push(flag(
                Status::Error,
                &s.name,
                format!("rotation is {} days overdue", days(f.now - due)),
            ));
        }
    }
    check(
        "LK-SM-01",
        "Secret rotation",
        "security",
        "Turn rotation on (aws secretsmanager rotate-secret --rotation-rules ...) and look at why an overdue rotation fails (latchkey findings).",
        f.secrets.len(),
        flagged,
    )
}

/// Every check, in id order.
pub fn run(f: &Facts) -> Vec<CheckResult> {
    vec![
        administrator_key(f),
        access_key_rotation(f),
        mfa(f),
        unused_credentials(f),
        permissive_policies(f),
        open_trust(f),
        databases(f),
        gateway(f),
        secrets(f),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_policy::{PolicyKind, parse};

    const NOW: i64 = 1_800_000_000;

    fn policy(text: &str, kind: PolicyKind) -> Policy {
        parse(text, kind).expect("valid")
    }

    fn key(id: &str, created_days_ago: i64, used: Option<(i64, &str)>) -> KeyFacts {
        KeyFacts {
            id: id.into(),
            active: true,
            created: NOW - created_days_ago * DAY,
            last_used: used.map(|(days_ago, s)| (NOW - days_ago * DAY, s.to_owned())),
        }
    }

    fn clean() -> Facts {
        Facts {
            now: NOW,
            region: "us-east-1".into(),
            account: "123456789012".into(),
            users: vec![UserFacts {
                name: "admin".into(),
                arn: "arn:aws:iam::123456789012:user/admin".into(),
                created: NOW - 10 * DAY,
                last_used: Some(NOW - 40 * DAY),
                mfa: true,
                password: None,
                has_permissions: true,
                administrator: true,
                database_use: None,
                keys: vec![key("AKIAADMIN", 10, Some((40, "iam")))],
            }],
            roles: vec![RoleFacts {
                name: "app".into(),
                arn: "arn:aws:iam::123456789012:role/app".into(),
                created: NOW - 10 * DAY,
                last_used: Some(NOW - DAY),
                trust: Some(policy(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/admin"},"Action":"sts:AssumeRole"}]}"#,
                    PolicyKind::Trust,
                )),
            }],
            policies: vec![
                (
                    "user/admin/AdministratorAccess".into(),
                    policy(
                        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
                        PolicyKind::Identity,
                    ),
                ),
                (
                    "user/admin/p".into(),
                    policy(
                        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:*:*:dbuser:*/app"}]}"#,
                        PolicyKind::Identity,
                    ),
                ),
            ],
            databases: vec![DatabaseFacts {
                name: "orders".into(),
                upstream_auth: "password".into(),
                upstream_tls: "verify-full".into(),
                statement_policy: "enforce".into(),
                restricted: true,
            }],
            secrets: vec![SecretFacts {
                name: "db".into(),
                rotation_enabled: true,
                next_rotation: Some(NOW + DAY),
            }],
            settings: SettingsFacts {
                plaintext_allowed: false,
                detection: true,
                webhook: true,
                statement_audit: true,
                last_digest: Some(NOW - 3600),
                last_verified: Some(NOW - 3600),
                master_key_since: Some(NOW - 30 * DAY),
                exposed_files: vec![],
            },
            node: "node-a".into(),
            other_nodes: vec![],
        }
    }

    #[test]
    fn every_node_sharing_the_store_is_judged() {
        let mut f = clean();
        let gateway = |f: &Facts| run(f).into_iter().find(|c| c.id == "LK-GW-01").unwrap();
        let database = |f: &Facts| run(f).into_iter().find(|c| c.id == "LK-DB-01").unwrap();
        let healthy = f.settings.clone();
        f.other_nodes.push(("node-b".into(), healthy.clone()));
        assert_eq!(gateway(&f).status(), Status::Ok);
        assert_eq!(gateway(&f).processed, 2);
        // A second node started with plaintext, without statement audit,
        // and with its data directory open: flagged under its id.
        f.other_nodes.push((
            "node-c".into(),
            SettingsFacts {
                plaintext_allowed: true,
                statement_audit: false,
                exposed_files: vec!["/var/lib/latchkey/master.key".into()],
                ..healthy.clone()
            },
        ));
        let flagged: Vec<(Status, String)> = gateway(&f)
            .flagged
            .into_iter()
            .map(|x| (x.status, x.resource))
            .collect();
        assert_eq!(
            flagged,
            [
                (Status::Error, "node-c:gateway".to_owned()),
                (
                    Status::Error,
                    "node-c:/var/lib/latchkey/master.key".to_owned()
                ),
            ]
        );
        let reasons: Vec<String> = database(&f).flagged.into_iter().map(|x| x.reason).collect();
        assert_eq!(
            reasons,
            ["statement audit is off on node node-c (--no-statement-audit)"]
        );
        // This node's own failings carry its id too once there are others.
        f.settings.detection = false;
        assert!(
            gateway(&f)
                .flagged
                .iter()
                .any(|x| x.resource == "node-a:detection")
        );
        // Alone, a node's resources are named as before.
        f.other_nodes.clear();
        assert_eq!(
            gateway(&f)
                .flagged
                .iter()
                .map(|x| x.resource.as_str())
                .collect::<Vec<_>>(),
            ["detection"]
        );
        // The settings travel as JSON in a node's report; what a newer
        // node adds, an older one ignores, and what is missing defaults.
        let text = serde_json::to_string(&f.settings).unwrap();
        assert_eq!(
            serde_json::from_str::<SettingsFacts>(&text).unwrap(),
            f.settings
        );
        let partial: SettingsFacts =
            serde_json::from_str(r#"{"plaintext_allowed":true,"new_field":1}"#).unwrap();
        assert!(partial.plaintext_allowed && partial.exposed_files.is_empty());
    }

    #[test]
    fn a_clean_system_passes_every_check() {
        for c in run(&clean()) {
            assert_eq!(c.status(), Status::Ok, "{c:?}");
        }
    }

    #[test]
    fn each_planted_misconfiguration_is_flagged_by_its_check() {
        let mut f = clean();
        f.users[0].keys[0].last_used = Some((NOW - DAY, "rds-db".into()));
        f.users.push(UserFacts {
            name: "bob".into(),
            arn: "arn:aws:iam::123456789012:user/bob".into(),
            created: NOW - 200 * DAY,
            last_used: None,
            mfa: false,
            password: None,
            has_permissions: true,
            administrator: false,
            database_use: None,
            keys: vec![key("AKIAOLD", 120, None), key("AKIANEW", 1, None)],
        });
        f.users.push(UserFacts {
            name: "carol".into(),
            arn: "arn:aws:iam::123456789012:user/carol".into(),
            created: NOW - 120 * DAY,
            last_used: Some(NOW - DAY),
            mfa: false,
            password: Some(PasswordFacts {
                created: NOW - 120 * DAY,
                last_used: None,
            }),
            has_permissions: false,
            administrator: false,
            database_use: None,
            keys: vec![],
        });
        f.roles.push(RoleFacts {
            name: "open".into(),
            arn: "arn:aws:iam::123456789012:role/open".into(),
            created: NOW - 100 * DAY,
            last_used: None,
            trust: Some(policy(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"},
                   {"Effect":"Allow","Principal":{"AWS":"999999999999"},"Action":"sts:AssumeRole"}]}"#,
                PolicyKind::Trust,
            )),
        });
        f.policies.push((
            "arn:aws:iam::123456789012:policy/wide".into(),
            policy(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},
                   {"Effect":"Allow","Action":"iam:PassRole","Resource":"*"},
                   {"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#,
                PolicyKind::Identity,
            ),
        ));
        f.databases[0].upstream_auth = "trust".into();
        f.databases[0].upstream_tls = "prefer".into();
        f.databases[0].statement_policy = "off".into();
        f.settings = SettingsFacts {
            plaintext_allowed: true,
            exposed_files: vec!["latchkey.db".into()],
            ..SettingsFacts::default()
        };
        f.secrets[0].next_rotation = Some(NOW - 5 * DAY);
        f.secrets.push(SecretFacts {
            name: "manual".into(),
            rotation_enabled: false,
            next_rotation: None,
        });
        let results = run(&f);
        let flagged = |id: &str| -> Vec<String> {
            results
                .iter()
                .find(|c| c.id == id)
                .expect("check")
                .flagged
                .iter()
                .map(|x| format!("{} {}", x.resource, x.reason))
                .collect()
        };
        assert_eq!(
            flagged("LK-IAM-01"),
            ["AKIAADMIN the administrator's key signed database tokens (1 days ago)"]
        );
        // A database token signed earlier, the key used for IAM since:
        // still flagged, on the user.
        let mut g = clean();
        g.users[0].keys[0].last_used = Some((NOW - DAY, "iam".into()));
        g.users[0].database_use = Some(NOW - 20 * DAY);
        let admin = run(&g)
            .into_iter()
            .find(|c| c.id == "LK-IAM-01")
            .expect("check");
        assert_eq!(admin.status(), Status::Error);
        let reasons: Vec<&str> = admin.flagged.iter().map(|x| x.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "the administrator signed database tokens (20 days ago)",
                "the administrator's key was used 1 days ago (iam)"
            ]
        );
        let rotation = flagged("LK-IAM-02");
        assert!(
            rotation
                .iter()
                .any(|r| r.starts_with("AKIAOLD") && r.contains("120 days"))
        );
        assert!(rotation.iter().any(|r| r.contains("2 active access keys")));
        assert_eq!(
            flagged("LK-IAM-03"),
            [
                "arn:aws:iam::123456789012:user/bob bob has IAM permissions but no MFA device",
                "arn:aws:iam::123456789012:user/carol carol has a console password but no MFA device"
            ]
        );
        let unused = flagged("LK-IAM-04");
        assert!(
            unused.iter().any(|r| r.contains("user bob"))
                && unused.iter().any(|r| r.starts_with("AKIAOLD"))
                && unused
                    .iter()
                    .any(|r| r.contains("carol's console password unused"))
        );
        assert!(
            !unused.iter().any(|r| r.contains("user carol")),
            "carol signs in with her key"
        );
        assert!(
            !unused.iter().any(|r| r.starts_with("AKIANEW")),
            "new, not unused"
        );
        assert!(unused.iter().any(|r| r.contains("role open")));
        let wide = flagged("LK-IAM-05");
        assert_eq!(wide.len(), 3, "{wide:?}");
        let trust = flagged("LK-IAM-06");
        assert!(
            trust[0].contains("anyone") && trust[1].contains("ExternalId"),
            "{trust:?}"
        );
        assert_eq!(flagged("LK-DB-01").len(), 4);
        let gw = flagged("LK-GW-01");
        assert!(
            gw.iter().any(|r| r.contains("plaintext"))
                && gw.iter().any(|r| r.starts_with("latchkey.db"))
        );
        assert!(
            gw.iter().any(|r| r.contains("detection")) && gw.iter().any(|r| r.contains("webhook"))
        );
        assert!(
            gw.iter().any(|r| r.contains("master key"))
                && gw.iter().any(|r| r.contains("verified"))
        );
        let sm = flagged("LK-SM-01");
        assert!(
            sm.iter().any(|r| r.contains("overdue"))
                && sm.iter().any(|r| r.contains("rotation is off"))
        );
        let statuses: Vec<Status> = results.iter().map(CheckResult::status).collect();
        assert!(statuses.iter().all(|s| *s != Status::Ok), "{statuses:?}");
        let json = results[0].to_json("2027-01-15T08:00:00Z", "us-east-1");
        assert_eq!(json["status"], "error");
        assert_eq!(json["resourcesSummary"]["resourcesFlagged"], 1);
        assert_eq!(json["flaggedResources"][0]["resourceId"], "AKIAADMIN");
    }
}
