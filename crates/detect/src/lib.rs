//! Threat detection over Latchkey's audit trail, in GuardDuty's style, and
//! what to do about each finding.
//!
//! The trail hands every durable event, with its `eventID`, to
//! [`Detector::observe`], which returns the findings the event created or
//! updated. The caller records them in the trail (as [`Event::Finding`],
//! which the detector ignores when they come back) and carries out their
//! [`Action`]s: blocking a source address, revoking a principal's sessions.
//!
//! # Rules
//!
//! Every threshold is in [`DetectConfig`] (`[detection]` in
//! `latchkey.toml`), and every rule can be turned off.
//!
//! | Type | Severity | Fires on |
//! |---|---|---|
//! | `CredentialAccess:RDS/BruteForce.SourceIP` | High | ≥ `threshold` (10) failed logins from one address within `window_secs` (60). Only failures about credentials count: malformed token, bad signature, unknown or inactive key, expired, revoked, policy denied, and console sign-ins with a wrong password or MFA code (`bad_password`, counted per address and per user name tried); not throttling, blocking or an unavailable audit trail. |
//! | `CredentialAccess:RDS/BruteForce.Principal` | High | the same against one principal (its ARN when the key was found, else the access key id). |
//! | `UnauthorizedAccess:RDS/NewSourceIP` | Medium | a login from an address the principal never used, once it has `min_history` (5) logins. |
//! | `CredentialAccess:RDS/TokenFromOtherIP` | High | temporary credentials used from another address than the one that obtained them, unless both are in `trusted_networks`. |
//! | `Behavior:RDS/UnusualHour` | Low | a login in an hour of the day (UTC) with less than `min_share` (1%) of the principal's logins, once it has `min_events` (50). |
//! | `Behavior:RDS/ConnectionSpike` | Medium | more than `min_connections` (200) sessions to one database in a `window_secs` (10) window, and more than `factor` (5) times the average of the previous windows. |
//! | `Impact:RDS/DestructiveStatement` | Medium, High | see [`is_destructive`]. |
//! | `UnauthorizedAccess:RDS/DisabledKeyUsed` | High | an inactive key presented, or one deleted earlier in the trail (`DeleteAccessKey`). |
//! | `Policy:RDS/AdminCredentialUsed` | Medium | a login by a principal in `admin_principals` (`arn:aws:iam::*:user/admin`). |
//! | `CredentialAccess:RDS/StoredCredentialRefused` | High | the real server refused the credential the gateway holds for a database user (`upstream_credential_refused`: PostgreSQL 28P01/28000, MySQL 1045): changed behind the gateway's back, perhaps by someone who now logs in directly. `[detection.stored_credential_refused]`. |
//!
//! | `SQLInjection:Gateway/UnseenStatementShape` | Medium | the SQL firewall (`latchkey firewall`) saw a principal, past its learning window, run a statement shape (fingerprint) it never ran while learning and no operator approved; in `block` mode the statement was refused. Evidence: the normalised statement. `[detection.sql_firewall]`, as the five below (`unseen_shape`, `tautology`, `time_probe`, `stacked`, `union`, `comment` turn each off). |
//! | `SQLInjection:Gateway/Tautology` | High | a constant comparison ORed into a condition (`OR 1=1`, `OR 'a'='a'`), in any firewall mode. |
//! | `SQLInjection:Gateway/TimeBasedProbe` | High | `pg_sleep`, `SLEEP()`, `BENCHMARK()`, in any firewall mode. |
//! | `SQLInjection:Gateway/StackedStatements` | Medium | several statements in one message, of a shape not known, from a principal whose profile never stacked. |
//! | `SQLInjection:Gateway/UnionProbe` | Medium | a `UNION`, of a shape not known, from a principal whose profile never had one. |
//! | `SQLInjection:Gateway/CommentInStatement` | Low | a comment inside a statement (not only leading or trailing), in any firewall mode. |
//!
//! Logins are learned per principal: a role's sessions share their role's
//! history, whatever their session names.
//!
//! # Findings
//!
//! One finding per (type, resource, principal, source address); its id is
//! a hash of that key ([`finding_id`]), so it is stable across restarts.
//! A repeat bumps `count` and `last_seen` and adds its `eventID` to the
//! evidence (the last [`EVIDENCE_KEPT`] are kept). A new finding is always
//! returned; an update only when its count reaches a power of two (2, 4,
//! 8, ...) or its severity rises, so an attack cannot flood the trail.
//! Actions come only with a new finding, and only when the rule's `action`
//! asks for them.
//!
//! # Proof of possession
//!
//! `revoke_sessions` acts against a principal, so it acts only on evidence
//! that proves someone holds the principal's credential: a login, a
//! session or a statement (someone holds a live session, whatever the
//! token's freshness: ending it is the point), or a refusal after a
//! signature made with the credential's secret verified on its first
//! presentation (`possession_proven` on the audit event: a policy denial,
//! a limit, an expired, revoked or inactive credential whose signature
//! verified). Anyone who saw one of a session's database tokens (the
//! session token is inside it) or a key id can produce the other refusals
//! (bad signature, malformed, expired token, wrong target, an unknown
//! key, a revoked or expired credential with a wrong signature, or a
//! token or signed request presented before, replayed: the signature
//! verifies, but proves only that someone once signed it); a window with
//! even one of them proves nothing. On such
//! evidence the configured revocation degrades to blocking the addresses
//! that sent it (for the rule's `block_secs`), and the finding's actions
//! and description say so; the revocation follows on the first update
//! whose evidence is proven.
//!
//! # Why pure
//!
//! No I/O and no clock: time is the events' own. The same events give the
//! same findings, so a trail can be replayed through a detector to test a
//! configuration or to reproduce a finding, and the detector can be tested
//! with scripted attacks that take microseconds. Memory is bounded: every
//! table is a least-recently-used map capped by `max_tracked_keys` (and
//! `max_findings`, `max_ips_per_principal`), so an attacker spraying
//! addresses or key ids only makes the detector forget the oldest.

mod classify;
mod cluster;
mod config;
mod findings;
mod lru;
mod rules;
mod stored_credential;

use std::net::IpAddr;

use latchkey_audit::{Event, FailureKind, Finding};

pub use classify::is_destructive;
pub use cluster::{parse_tally_key, tally_key};
pub use config::{
    AdminCredential, BruteForce, ConfigError, ConnectionSpike, DestructiveStatement, DetectConfig,
    DisabledKey, NewSourceIp, Response, SqlFirewall, StoredCredentialRefused, TokenFromOtherIp,
    UnusualHour,
};
pub use findings::{EVIDENCE_KEPT, finding_id};

use config::{Cidr, parse_cidr, parse_failure_kind};
use findings::Findings;
use lru::Lru;
use rules::{DeletedKey, FailureWindow, Profile, Spike};

/// Finding types.
pub mod kinds {
    pub const BRUTE_FORCE_SOURCE_IP: &str = "CredentialAccess:RDS/BruteForce.SourceIP";
    pub const BRUTE_FORCE_PRINCIPAL: &str = "CredentialAccess:RDS/BruteForce.Principal";
    pub const NEW_SOURCE_IP: &str = "UnauthorizedAccess:RDS/NewSourceIP";
    pub const TOKEN_FROM_OTHER_IP: &str = "CredentialAccess:RDS/TokenFromOtherIP";
    pub const UNUSUAL_HOUR: &str = "Behavior:RDS/UnusualHour";
    pub const CONNECTION_SPIKE: &str = "Behavior:RDS/ConnectionSpike";
    pub const DESTRUCTIVE_STATEMENT: &str = "Impact:RDS/DestructiveStatement";
    pub const DISABLED_KEY_USED: &str = "UnauthorizedAccess:RDS/DisabledKeyUsed";
    pub const ADMIN_CREDENTIAL_USED: &str = "Policy:RDS/AdminCredentialUsed";
    pub const STORED_CREDENTIAL_REFUSED: &str = "CredentialAccess:RDS/StoredCredentialRefused";
    pub const UNSEEN_STATEMENT_SHAPE: &str = "SQLInjection:Gateway/UnseenStatementShape";
    pub const TAUTOLOGY: &str = "SQLInjection:Gateway/Tautology";
    pub const TIME_BASED_PROBE: &str = "SQLInjection:Gateway/TimeBasedProbe";
    pub const STACKED_STATEMENTS: &str = "SQLInjection:Gateway/StackedStatements";
    pub const UNION_PROBE: &str = "SQLInjection:Gateway/UnionProbe";
    pub const COMMENT_IN_STATEMENT: &str = "SQLInjection:Gateway/CommentInStatement";
}

/// A response the caller should carry out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Refuse connections and API calls from `ip` for `for_secs` seconds.
    BlockSourceIp { ip: IpAddr, for_secs: u64 },
    /// End the principal's sessions and refuse its current credentials.
    /// Only ever on evidence that proves possession of the credential.
    RevokeSessions { principal_arn: String },
}

/// A finding created or updated by an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The finding as it now stands.
    pub finding: Finding,
    /// Created by this event (else an update).
    pub new: bool,
    /// What to do: on a new finding, and on the update that brings the
    /// proof a degraded revocation waited for.
    pub actions: Vec<Action>,
}

/// How much the detector remembers, to check it stays within its caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tracked {
    /// Addresses with recent failed logins.
    pub failure_sources: usize,
    /// Principals and access keys with recent failed logins.
    pub failure_principals: usize,
    /// Failed logins held across all windows.
    pub failures: usize,
    /// Principals with a login history.
    pub principals: usize,
    /// The most addresses remembered for one principal.
    pub max_ips_per_principal: usize,
    /// Databases with connection counts.
    pub databases: usize,
    /// The most source addresses tallied in one database's window.
    pub max_window_sources: usize,
    /// Access keys seen deleted.
    pub deleted_keys: usize,
    /// Open findings.
    pub findings: usize,
}

/// The detection engine: feed it the trail's events in order.
pub struct Detector {
    config: DetectConfig,
    /// Indexed by position in [`FailureKind::ALL`].
    counted: [bool; FailureKind::ALL.len()],
    trusted: Vec<Cidr>,
    failures_by_ip: Lru<IpAddr, FailureWindow>,
    failures_by_principal: Lru<String, FailureWindow>,
    profiles: Lru<String, Profile>,
    databases: Lru<String, Spike>,
    deleted_keys: Lru<String, DeletedKey>,
    findings: Findings,
    /// Counted failures, for the other nodes sharing the store.
    tally: cluster::Tally,
}

impl Detector {
    /// A detector with `config`, which should have passed
    /// [`DetectConfig::validate`] (parsing does that); an invalid one does
    /// not panic: zero windows and caps count as 1, trusted networks and
    /// failure kinds that do not parse are ignored. See [`Detector::try_new`].
    pub fn new(config: DetectConfig) -> Self {
        let mut counted = [false; FailureKind::ALL.len()];
        for name in &config.brute_force.count_kinds {
            if let Some(kind) = parse_failure_kind(name) {
                counted[kind_index(kind)] = true;
            }
        }
        let trusted = config
            .token_from_other_ip
            .trusted_networks
            .iter()
            .filter_map(|n| parse_cidr(n).ok())
            .collect();
        let cap = config.max_tracked_keys;
        Self {
            counted,
            trusted,
            failures_by_ip: Lru::new(cap),
            failures_by_principal: Lru::new(cap),
            profiles: Lru::new(cap),
            databases: Lru::new(cap),
            deleted_keys: Lru::new(cap),
            findings: Findings::new(config.max_findings),
            tally: cluster::Tally::default(),
            config,
        }
    }

    /// [`Detector::new`] after [`DetectConfig::validate`].
    pub fn try_new(config: DetectConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::new(config))
    }

    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    /// Feeds one durable event, with its trail `eventID`. Returns the
    /// findings it created, and those it updated whose count reached a
    /// power of two or whose severity rose.
    pub fn observe(&mut self, event_id: &str, event: &Event) -> Vec<Outcome> {
        let mut out = Vec::new();
        match event {
            Event::Auth(auth) => self.auth(event_id, auth, &mut out),
            Event::Api(api) => self.api(event_id, api, &mut out),
            Event::SessionStart(session) => self.session_start(event_id, session, &mut out),
            Event::Statement(statement) => self.statement(event_id, statement, &mut out),
            // Findings are our own, coming back through the trail.
            Event::SessionEnd(_) | Event::Credential(_) | Event::Finding(_) => {}
        }
        out
    }

    /// The open findings, in no particular order.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter()
    }

    /// What the detector currently remembers.
    pub fn tracked(&self) -> Tracked {
        Tracked {
            failure_sources: self.failures_by_ip.len(),
            failure_principals: self.failures_by_principal.len(),
            failures: self
                .failures_by_ip
                .values()
                .chain(self.failures_by_principal.values())
                .map(FailureWindow::len)
                .sum(),
            principals: self.profiles.len(),
            max_ips_per_principal: self.profiles.values().map(Profile::ips).max().unwrap_or(0),
            databases: self.databases.len(),
            max_window_sources: self
                .databases
                .values()
                .map(Spike::sources)
                .max()
                .unwrap_or(0),
            deleted_keys: self.deleted_keys.len(),
            findings: self.findings.len(),
        }
    }
}

fn kind_index(kind: FailureKind) -> usize {
    FailureKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default()
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
