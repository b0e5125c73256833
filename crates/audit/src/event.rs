//! The audit event model: what happened, who did it, from where.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// CloudTrail's `userIdentity.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    IamUser,
    AssumedRole,
    Unknown,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::IamUser => "IAMUser",
            IdentityKind::AssumedRole => "AssumedRole",
            IdentityKind::Unknown => "Unknown",
        }
    }
}

/// Who made a call: CloudTrail's `userIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub kind: IdentityKind,
    /// User ARN, or `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// `AIDA...`, or `AROA...:session` for a role session.
    pub principal_id: String,
    pub account_id: String,
    pub access_key_id: String,
    /// Present for temporary credentials.
    pub session: Option<SessionContext>,
}

/// CloudTrail's `sessionContext`, for temporary credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    pub mfa_authenticated: bool,
    /// When the credentials were issued.
    pub creation_date: SystemTime,
    /// The role (`AssumeRole`) or user (`GetSessionToken`) behind them.
    pub issuer: SessionIssuer,
    /// The address that obtained the credentials. Not in CloudTrail's
    /// record; detection compares it with where they are used.
    pub source_ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIssuer {
    /// `Role` or `IAMUser`.
    pub kind: &'static str,
    pub arn: String,
    pub principal_id: String,
    pub account_id: String,
    /// The role's or user's name.
    pub user_name: String,
}

/// Who is connected, to what, from where: shared by every event of one
/// session, so statements do not copy it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Random, unique per session.
    pub session_id: String,
    /// `postgres` or `mysql`.
    pub engine: &'static str,
    pub identity: Identity,
    pub source_ip: IpAddr,
    /// The client's `application_name` or connection attributes.
    pub user_agent: Option<String>,
    /// The registered database's name.
    pub database: String,
    /// `arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/USER`.
    pub resource_arn: String,
    /// The database (schema) the client asked for.
    pub database_name: String,
    pub db_user: String,
    pub started: SystemTime,
}

/// A statement as it goes into the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Normalised; literals are `?` unless redaction is off.
    pub text: String,
    /// Groups statements that differ only in their literals.
    pub fingerprint: u64,
    /// The statement was cut short (too long, or it ended inside a
    /// literal) and the rest withheld.
    pub truncated: bool,
}

/// Simple `Query` or extended `Parse`/`Bind`/`Execute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Simple,
    Extended,
}

/// How statement policy (`sql:` actions) decided a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDecision {
    /// Every access the statement makes is allowed.
    pub allowed: bool,
    /// The database enforces statement policy (a denied statement was
    /// refused); false in `audit` mode, where nothing is refused.
    pub enforced: bool,
    /// The first denied access's action (`sql:Drop`), or the first
    /// access's when all are allowed; `None` for a statement that touches
    /// nothing (`BEGIN`).
    pub action: Option<&'static str>,
    /// That access's resource ARN.
    pub resource: String,
    /// The policy statements that decided it (`policy: Sid`), or why no
    /// statement did (`no statement allows it`).
    pub reason: String,
    /// How many accesses were decided.
    pub accesses: u32,
    /// Each distinct access an allowed statement makes, as its action and
    /// resource ARN (empty when denied): what the access advisor counts
    /// as used, down to the table.
    pub uses: Vec<(&'static str, String)>,
    /// Statement policy decided the statement. False when only the SQL
    /// firewall looked at it (the database's statement policy is off):
    /// `allowed` is then true and the fields above empty.
    pub evaluated: bool,
    /// The SQL firewall's verdict, when the database has it on.
    pub firewall: Option<FirewallVerdict>,
}

impl PolicyDecision {
    /// A statement only the SQL firewall looked at.
    pub fn firewall_only(verdict: FirewallVerdict) -> Self {
        Self {
            uses: Vec::new(),
            allowed: true,
            enforced: false,
            action: None,
            resource: String::new(),
            reason: String::new(),
            accesses: 0,
            evaluated: false,
            firewall: Some(verdict),
        }
    }
}

/// Where a principal's SQL firewall profile stood when it ran a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FirewallState {
    /// Learning its statement shapes.
    Learn,
    /// Unseen shapes raise findings.
    Alert,
    /// Unseen shapes (and tautologies, time probes) are refused.
    Block,
}

impl FirewallState {
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallState::Learn => "learn",
            FirewallState::Alert => "alert",
            FirewallState::Block => "block",
        }
    }
}

/// What the SQL firewall made of a statement. The flags are raised in
/// every mode, learning included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FirewallVerdict {
    pub mode: FirewallState,
    /// Not learning, and the principal was never seen running the
    /// statement's shape (fingerprint).
    pub unseen: bool,
    /// A constant comparison ORed into a condition (`OR 1=1`).
    pub tautology: bool,
    /// `pg_sleep`, `SLEEP()`, `BENCHMARK()`.
    pub time_probe: bool,
    /// A comment inside the statement.
    pub comment: bool,
    /// Several statements in one message from a principal that never
    /// sent any.
    pub stacked: bool,
    /// A `UNION` from a principal whose shapes never had one.
    pub union: bool,
    /// The firewall refused the statement (`block` mode).
    pub refused: bool,
}

impl FirewallVerdict {
    /// The raised flags' names, in a fixed order.
    pub fn signals(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            (self.tautology, "tautology"),
            (self.time_probe, "time_probe"),
            (self.stacked, "stacked"),
            (self.union, "union"),
            (self.comment, "comment"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }

    /// Anything for the firewall's findings.
    pub fn notable(&self) -> bool {
        self.unseen || self.signals().next().is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementEvent {
    pub session: Arc<SessionInfo>,
    pub statement: Arc<Statement>,
    pub protocol: Protocol,
    pub time: SystemTime,
    pub duration: Duration,
    /// `SELECT 1`, `INSERT 0 5`... as the server reported it.
    pub command_tag: Option<Arc<str>>,
    pub rows: Option<u64>,
    /// SQLSTATE when the statement failed.
    pub error_code: Option<String>,
    /// Statement policy's decision, when the database has it on.
    pub policy: Option<Arc<PolicyDecision>>,
}

/// Why a login was refused, in few enough kinds to count and to write
/// detection rules against. The precise reason travels beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Not a token, or not an `rds-db:connect` one.
    MalformedToken,
    /// Endpoint, port, TLS server name or database user do not match.
    WrongTarget,
    /// The access key id is not known (never existed, or deleted).
    UnknownKey,
    /// The access key exists but is inactive.
    InactiveKey,
    /// Temporary credentials past their expiry, or a token past its 15 minutes.
    Expired,
    /// The credentials' sessions were revoked.
    Revoked,
    BadSignature,
    PolicyDenied,
    /// Session limits or connection rate limits.
    Throttled,
    /// The source address is blocked by a detection response.
    Blocked,
    /// Plaintext when TLS is required.
    Plaintext,
    /// The audit trail cannot write, and the gateway fails closed.
    AuditUnavailable,
    /// The store did not answer (past `store_outage_grace`), and the
    /// gateway fails closed. Not about the client's credentials.
    StoreUnavailable,
    /// The client passed every check, but the gateway could not log in
    /// to the real server (down, refusing, misconfigured).
    UpstreamUnavailable,
    /// The client passed every check, but the real server refused the
    /// credential the gateway holds (PostgreSQL 28P01/28000, MySQL
    /// 1045): it was changed or removed behind the gateway's back, or
    /// the server's access rules no longer admit the gateway.
    UpstreamCredentialRefused,
    /// A console sign-in with a wrong password or MFA code (or for a user
    /// with no console password).
    BadPassword,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::MalformedToken => "malformed_token",
            FailureKind::WrongTarget => "wrong_target",
            FailureKind::UnknownKey => "unknown_key",
            FailureKind::InactiveKey => "inactive_key",
            FailureKind::Expired => "expired",
            FailureKind::Revoked => "revoked",
            FailureKind::BadSignature => "bad_signature",
            FailureKind::PolicyDenied => "policy_denied",
            FailureKind::Throttled => "throttled",
            FailureKind::Blocked => "blocked",
            FailureKind::Plaintext => "plaintext",
            FailureKind::AuditUnavailable => "audit_unavailable",
            FailureKind::StoreUnavailable => "store_unavailable",
            FailureKind::UpstreamUnavailable => "upstream_unavailable",
            FailureKind::UpstreamCredentialRefused => "upstream_credential_refused",
            FailureKind::BadPassword => "bad_password",
        }
    }

    pub const ALL: [FailureKind; 16] = [
        FailureKind::MalformedToken,
        FailureKind::WrongTarget,
        FailureKind::UnknownKey,
        FailureKind::InactiveKey,
        FailureKind::Expired,
        FailureKind::Revoked,
        FailureKind::BadSignature,
        FailureKind::PolicyDenied,
        FailureKind::Throttled,
        FailureKind::Blocked,
        FailureKind::Plaintext,
        FailureKind::AuditUnavailable,
        FailureKind::StoreUnavailable,
        FailureKind::UpstreamUnavailable,
        FailureKind::UpstreamCredentialRefused,
        FailureKind::BadPassword,
    ];
}

/// The result of a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    Success,
    /// The precise reason, which the client is never told.
    Failure {
        kind: FailureKind,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    pub engine: &'static str,
    pub time: SystemTime,
    pub source_ip: IpAddr,
    pub user_agent: Option<String>,
    pub db_user: String,
    /// The endpoint host the token was signed for, when it parsed.
    pub endpoint: Option<String>,
    /// The registered database the endpoint routed to.
    pub database: Option<String>,
    /// The `rds-db:connect` resource, once the caller's account is known.
    pub resource_arn: Option<String>,
    /// Known once the credentials were found.
    pub identity: Option<Identity>,
    /// From the token, even when the key is unknown.
    pub access_key_id: Option<String>,
    pub result: AuthResult,
    /// The client proved it holds the credential: a signature made with
    /// its secret verified, within the token's lifetime, and this was the
    /// first time that signature was presented (to a gateway or the API).
    /// True for a first presentation that logged in or was refused after
    /// that check (policy, limits, the upstream, an expired, revoked or
    /// inactive credential whose signature verified); false for refusals
    /// before or at it (malformed, wrong target, unknown key, bad
    /// signature, an expired token), and for any token presented before:
    /// a token is reusable for 15 minutes, so a repeat may be a replay by
    /// whoever saw it. Anyone who saw a token (a session token is inside
    /// every temporary credential's token) can cause the unproven kind,
    /// so only proven refusals may act against the principal (revoke its
    /// sessions). A login, proven or not, is a session someone holds:
    /// detection may act on it either way.
    pub possession_proven: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEndEvent {
    pub session: Arc<SessionInfo>,
    pub time: SystemTime,
    pub duration: Duration,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub statements: u64,
    /// Why it ended: `client closed`, `credential revoked`...
    pub reason: String,
}

/// The token service's APIs: STS and IAM (the Query protocol), Secrets
/// Manager, SSM Parameter Store and KMS (the JSON 1.1 protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiService {
    Sts,
    Iam,
    SecretsManager,
    Ssm,
    Kms,
    AccessAnalyzer,
    /// Console sign-in (`ConsoleLogin`).
    Signin,
    /// Findings (archived from the console).
    GuardDuty,
    /// Database registrations (registered and edited from the console).
    Rds,
    /// Latchkey's gateway: running sessions (ended from the console).
    Gateway,
}

impl ApiService {
    /// CloudTrail's `eventSource`.
    pub fn event_source(self) -> &'static str {
        match self {
            ApiService::Sts => "sts.amazonaws.com",
            ApiService::Iam => "iam.amazonaws.com",
            ApiService::SecretsManager => "secretsmanager.amazonaws.com",
            ApiService::Ssm => "ssm.amazonaws.com",
            ApiService::Kms => "kms.amazonaws.com",
            ApiService::AccessAnalyzer => "access-analyzer.amazonaws.com",
            ApiService::Signin => "signin.amazonaws.com",
            ApiService::GuardDuty => "guardduty.amazonaws.com",
            ApiService::Rds => "rds.amazonaws.com",
            // No AWS service does this; Latchkey's own name.
            ApiService::Gateway => "gateway.latchkey",
        }
    }

    /// The IAM action prefix (`secretsmanager` in
    /// `secretsmanager:GetSecretValue`), also the metrics' service label.
    pub fn name(self) -> &'static str {
        match self {
            ApiService::Sts => "sts",
            ApiService::Iam => "iam",
            ApiService::SecretsManager => "secretsmanager",
            ApiService::Ssm => "ssm",
            ApiService::Kms => "kms",
            ApiService::AccessAnalyzer => "access-analyzer",
            ApiService::Signin => "signin",
            ApiService::GuardDuty => "guardduty",
            ApiService::Rds => "rds",
            ApiService::Gateway => "latchkey",
        }
    }
}

/// A resource an event touched: CloudTrail's `resources[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub arn: String,
    /// `AWS::IAM::Role`, `AWS::RDS::DBUser`...
    pub kind: &'static str,
}

/// A call to the token service (STS, IAM, or a JSON 1.1 service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiEvent {
    pub time: SystemTime,
    pub service: ApiService,
    /// The action: `AssumeRole`, `CreateUser`...
    pub action: String,
    /// Absent when the caller could not be authenticated.
    pub identity: Option<Identity>,
    /// From the request's signature, even when the caller was not
    /// authenticated.
    pub access_key_id: Option<String>,
    pub source_ip: IpAddr,
    pub user_agent: Option<String>,
    /// JSON object text with every secret removed; `None` is `null`.
    pub request_parameters: Option<String>,
    /// JSON object text with every secret removed; `None` is `null`.
    pub response_elements: Option<String>,
    /// AWS's error code and the precise reason, on a refusal.
    pub error: Option<(String, String)>,
    /// The request's SigV4 signature verified with the caller's secret
    /// (within the allowed clock skew) and was presented for the first
    /// time: false for a refusal before or at that check and for a
    /// request sent again (a replay by whoever captured it, within the
    /// 15 minutes of skew; see [`AuthEvent::possession_proven`]).
    pub possession_proven: bool,
    pub request_id: String,
    pub read_only: bool,
    pub resources: Vec<Resource>,
}

/// Credentials stopped working while sessions used them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialChange {
    Revoked,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialEvent {
    pub time: SystemTime,
    pub change: CredentialChange,
    pub identity: Identity,
    /// The database sessions it ended.
    pub sessions_ended: u64,
}

/// GuardDuty's severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
        }
    }

    /// GuardDuty's numeric scale: 1–3.9 low, 4–6.9 medium, 7–8.9 high.
    pub fn score(self) -> f32 {
        match self {
            Severity::Low => 2.0,
            Severity::Medium => 5.0,
            Severity::High => 8.0,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            _ => None,
        }
    }
}

/// What a detection rule concluded, in GuardDuty's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable for one (type, resource, principal): repeats update it.
    pub id: String,
    /// `UnauthorizedAccess:IAMUser/...`, `CredentialAccess:RDS/...`.
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    pub description: String,
    /// What was attacked: a database, a source address, a key.
    pub resource: String,
    /// Who did it, when known.
    pub principal: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub first_seen: SystemTime,
    pub last_seen: SystemTime,
    pub count: u64,
    /// The `eventID`s of the events behind it (the latest few).
    pub evidence: Vec<String>,
    /// Responses taken: `blocked 203.0.113.9 for 3600s`...
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An STS or IAM call. Boxed, as logins and credential changes are:
    /// statements are most of the trail, and every queued record is as
    /// large as the largest variant held inline (520 bytes with these,
    /// 120 without).
    Api(Box<ApiEvent>),
    /// A database login, allowed or refused.
    Auth(Box<AuthEvent>),
    SessionStart(Arc<SessionInfo>),
    SessionEnd(SessionEndEvent),
    Statement(StatementEvent),
    Credential(Box<CredentialEvent>),
    Finding(Box<Finding>),
}

impl From<ApiEvent> for Event {
    fn from(call: ApiEvent) -> Self {
        Event::Api(Box::new(call))
    }
}

impl From<AuthEvent> for Event {
    fn from(login: AuthEvent) -> Self {
        Event::Auth(Box::new(login))
    }
}

impl From<CredentialEvent> for Event {
    fn from(change: CredentialEvent) -> Self {
        Event::Credential(Box::new(change))
    }
}

impl Event {
    /// The event's `eventName`.
    pub fn name(&self) -> &str {
        match self {
            Event::Api(a) => &a.action,
            Event::Auth(_) => "Connect",
            Event::SessionStart(_) => "SessionStart",
            Event::SessionEnd(_) => "SessionEnd",
            Event::Statement(_) => "Statement",
            Event::Credential(c) => match c.change {
                CredentialChange::Revoked => "CredentialRevoked",
                CredentialChange::Expired => "CredentialExpired",
            },
            Event::Finding(_) => "Finding",
        }
    }

    /// The event's `eventSource`.
    pub fn source(&self) -> &'static str {
        match self {
            Event::Api(a) => a.service.event_source(),
            Event::Auth(_)
            | Event::SessionStart(_)
            | Event::SessionEnd(_)
            | Event::Statement(_) => "rds-db.amazonaws.com",
            Event::Credential(_) => "sts.amazonaws.com",
            Event::Finding(_) => "detection.latchkey",
        }
    }

    pub fn time(&self) -> SystemTime {
        match self {
            Event::Api(a) => a.time,
            Event::Auth(a) => a.time,
            Event::SessionStart(s) => s.started,
            Event::SessionEnd(e) => e.time,
            Event::Statement(s) => s.time,
            Event::Credential(c) => c.time,
            Event::Finding(f) => f.last_seen,
        }
    }

    /// Who acted, when known.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Event::Api(a) => a.identity.as_ref(),
            Event::Auth(a) => a.identity.as_ref(),
            Event::SessionStart(s) => Some(&s.identity),
            Event::SessionEnd(e) => Some(&e.session.identity),
            Event::Statement(s) => Some(&s.session.identity),
            Event::Credential(c) => Some(&c.identity),
            Event::Finding(_) => None,
        }
    }

    /// The principal's ARN (the finding's principal for a finding).
    pub fn principal_arn(&self) -> Option<&str> {
        match self {
            Event::Finding(f) => f.principal.as_deref(),
            e => e.identity().map(|i| i.arn.as_str()),
        }
    }

    pub fn source_ip(&self) -> Option<IpAddr> {
        match self {
            Event::Api(a) => Some(a.source_ip),
            Event::Auth(a) => Some(a.source_ip),
            Event::SessionStart(s) => Some(s.source_ip),
            Event::SessionEnd(e) => Some(e.session.source_ip),
            Event::Statement(s) => Some(s.session.source_ip),
            Event::Credential(_) => None,
            Event::Finding(f) => f.source_ip,
        }
    }

    /// The registered database's name, for database events.
    pub fn database(&self) -> Option<&str> {
        match self {
            Event::SessionStart(s) => Some(&s.database),
            Event::SessionEnd(e) => Some(&e.session.database),
            Event::Statement(s) => Some(&s.session.database),
            Event::Auth(a) => a.database.as_deref(),
            _ => None,
        }
    }
}
