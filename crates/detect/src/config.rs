//! The `[detection]` section of `latchkey.toml`.

use latchkey_audit::FailureKind;
use serde::Deserialize;

/// The longest window any rule accepts: a year, in seconds.
const MAX_WINDOW_SECS: u64 = 366 * 24 * 3600;
/// Brute-force windows keep this many failures per key at most.
const MAX_THRESHOLD: u32 = 1000;
/// Connection-spike baselines keep this many window counts at most.
const MAX_BASELINE_WINDOWS: u32 = 10_000;

/// A setting that makes no sense, named by its key under `[detection]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("detection.{key}: {problem}")]
pub struct ConfigError {
    /// `brute_force.window_secs`...
    pub key: &'static str,
    pub problem: String,
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        problem: problem.into(),
    }
}

/// What to do about a new finding of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Report only.
    #[default]
    None,
    /// Block the finding's source address for the rule's `block_secs`
    /// (findings without a single source address get no action).
    BlockIp,
    /// Revoke the sessions of the finding's principal (findings without a
    /// known principal get no action). Only on evidence that proves
    /// possession of the credential; otherwise it blocks the addresses
    /// that sent the evidence instead, for `block_secs`.
    RevokeSessions,
}

fn yes() -> bool {
    true
}

fn default_block_secs() -> u64 {
    3600
}

macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty = $default:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// The rule runs [default: true].
            pub enabled: bool,
            /// `none`, `block_ip` or `revoke_sessions` [default: none].
            pub action: Response,
            /// How long `block_ip` blocks [default: 3600].
            pub block_secs: u64,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    enabled: yes(),
                    action: Response::None,
                    block_secs: default_block_secs(),
                    $( $field: $default, )*
                }
            }
        }
    };
}

section! {
    /// Rule 1: many failed logins from one address, or against one
    /// principal or access key.
    pub struct BruteForce {
        /// Failures that make a finding [default: 10].
        pub threshold: u32 = 10,
        /// ...within this many seconds [default: 60].
        pub window_secs: u64 = 60,
        /// The failure kinds that count: the ones about credentials
        /// [default: malformed_token, bad_signature, unknown_key,
        /// inactive_key, expired, revoked, policy_denied, bad_password].
        pub count_kinds: Vec<String> = [
            FailureKind::MalformedToken,
            FailureKind::BadSignature,
            FailureKind::UnknownKey,
            FailureKind::InactiveKey,
            FailureKind::Expired,
            FailureKind::Revoked,
            FailureKind::PolicyDenied,
            FailureKind::BadPassword,
        ]
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect(),
    }
}

section! {
    /// Rule 2: a principal logs in from an address it never used.
    pub struct NewSourceIp {
        /// Successful logins before new addresses are reported [default: 5].
        pub min_history: u64 = 5,
        /// Addresses remembered per principal, least recent forgotten
        /// first [default: 256].
        pub max_ips_per_principal: usize = 256,
    }
}

section! {
    /// Rule 3: temporary credentials used from another address than the
    /// one that obtained them.
    pub struct TokenFromOtherIp {
        /// Addresses or CIDR blocks (`10.0.0.0/8`, `203.0.113.9`): a login
        /// is not reported when both the obtaining and the using address
        /// are in this list (NAT, proxies) [default: empty].
        pub trusted_networks: Vec<String> = Vec::new(),
    }
}

section! {
    /// Rule 4: a login at an hour of the day (UTC) the principal rarely
    /// logs in at.
    pub struct UnusualHour {
        /// Logins learned before any is reported [default: 50].
        pub min_events: u64 = 50,
        /// An hour with less than this share of the logins is unusual
        /// [default: 0.01].
        pub min_share: f64 = 0.01,
    }
}

section! {
    /// Rule 5: many more sessions to one database than usual.
    pub struct ConnectionSpike {
        /// Sessions are counted per window of this many seconds [default: 10].
        pub window_secs: u64 = 10,
        /// A window is a spike above this multiple of the average of the
        /// previous windows [default: 5.0]...
        pub factor: f64 = 5.0,
        /// ...and above this many sessions [default: 200].
        pub min_connections: u64 = 200,
        /// The average is over this many previous windows [default: 30].
        pub baseline_windows: u32 = 30,
        /// Windows seen before spikes are reported [default: 3].
        pub min_baseline_windows: u32 = 3,
    }
}

section! {
    /// Rule 6: DROP, TRUNCATE, DELETE or UPDATE without WHERE, GRANT,
    /// REVOKE, ALTER ROLE/USER, CREATE ROLE/USER ... SUPERUSER.
    pub struct DestructiveStatement {}
}

section! {
    /// Rule 7: an inactive access key, or one deleted earlier in the
    /// trail, presented.
    pub struct DisabledKey {}
}

section! {
    /// Rule 8: the administrator's credentials used to log in to a
    /// database.
    pub struct AdminCredential {
        /// Principal ARNs, `*` matching any run of characters, compared
        /// ignoring ASCII case [default: arn:aws:iam::*:user/admin].
        pub admin_principals: Vec<String> = vec!["arn:aws:iam::*:user/admin".to_owned()],
    }
}

section! {
    /// Rule 9: the real server refused the credential the gateway holds
    /// for a database user (failure kind `upstream_credential_refused`).
    pub struct StoredCredentialRefused {}
}

section! {
    /// Rules 10-15: the SQL firewall's verdicts on statements (the
    /// gateway's, in each statement's audit record), one switch per
    /// finding type.
    pub struct SqlFirewall {
        /// `SQLInjection:Gateway/UnseenStatementShape` [default: true].
        pub unseen_shape: bool = true,
        /// `SQLInjection:Gateway/Tautology` [default: true].
        pub tautology: bool = true,
        /// `SQLInjection:Gateway/TimeBasedProbe` [default: true].
        pub time_probe: bool = true,
        /// `SQLInjection:Gateway/StackedStatements` [default: true].
        pub stacked: bool = true,
        /// `SQLInjection:Gateway/UnionProbe` [default: true].
        pub union: bool = true,
        /// `SQLInjection:Gateway/CommentInStatement` [default: true].
        pub comment: bool = true,
    }
}

/// Every detection threshold, as `[detection]` in `latchkey.toml`: one
/// table per rule (`[detection.brute_force]`...). Parsing rejects unknown
/// keys and nonsense values (see [`DetectConfig::validate`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct DetectConfig {
    /// Keys each rule tracks at most (addresses, principals, access keys,
    /// databases), least recently used forgotten first [default: 100000].
    pub max_tracked_keys: usize,
    /// Open findings kept for deduplication [default: 10000].
    pub max_findings: usize,
    pub brute_force: BruteForce,
    pub new_source_ip: NewSourceIp,
    pub token_from_other_ip: TokenFromOtherIp,
    pub unusual_hour: UnusualHour,
    pub connection_spike: ConnectionSpike,
    pub destructive_statement: DestructiveStatement,
    pub disabled_key: DisabledKey,
    pub admin_credential: AdminCredential,
    pub stored_credential_refused: StoredCredentialRefused,
    pub sql_firewall: SqlFirewall,
}

impl Default for DetectConfig {
    fn default() -> Self {
        let raw = RawConfig::default();
        Self {
            max_tracked_keys: raw.max_tracked_keys,
            max_findings: raw.max_findings,
            brute_force: raw.brute_force,
            new_source_ip: raw.new_source_ip,
            token_from_other_ip: raw.token_from_other_ip,
            unusual_hour: raw.unusual_hour,
            connection_spike: raw.connection_spike,
            destructive_statement: raw.destructive_statement,
            disabled_key: raw.disabled_key,
            admin_credential: raw.admin_credential,
            stored_credential_refused: raw.stored_credential_refused,
            sql_firewall: raw.sql_firewall,
        }
    }
}

/// [`DetectConfig`] before validation.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    max_tracked_keys: usize,
    max_findings: usize,
    brute_force: BruteForce,
    new_source_ip: NewSourceIp,
    token_from_other_ip: TokenFromOtherIp,
    unusual_hour: UnusualHour,
    connection_spike: ConnectionSpike,
    destructive_statement: DestructiveStatement,
    disabled_key: DisabledKey,
    admin_credential: AdminCredential,
    stored_credential_refused: StoredCredentialRefused,
    sql_firewall: SqlFirewall,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            max_tracked_keys: 100_000,
            max_findings: 10_000,
            brute_force: BruteForce::default(),
            new_source_ip: NewSourceIp::default(),
            token_from_other_ip: TokenFromOtherIp::default(),
            unusual_hour: UnusualHour::default(),
            connection_spike: ConnectionSpike::default(),
            destructive_statement: DestructiveStatement::default(),
            disabled_key: DisabledKey::default(),
            admin_credential: AdminCredential::default(),
            stored_credential_refused: StoredCredentialRefused::default(),
            sql_firewall: SqlFirewall::default(),
        }
    }
}

impl TryFrom<RawConfig> for DetectConfig {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let config = Self {
            max_tracked_keys: raw.max_tracked_keys,
            max_findings: raw.max_findings,
            brute_force: raw.brute_force,
            new_source_ip: raw.new_source_ip,
            token_from_other_ip: raw.token_from_other_ip,
            unusual_hour: raw.unusual_hour,
            connection_spike: raw.connection_spike,
            destructive_statement: raw.destructive_statement,
            disabled_key: raw.disabled_key,
            admin_credential: raw.admin_credential,
            stored_credential_refused: raw.stored_credential_refused,
            sql_firewall: raw.sql_firewall,
        };
        config.validate()?;
        Ok(config)
    }
}

fn window(key: &'static str, secs: u64) -> Result<(), ConfigError> {
    if secs == 0 {
        return Err(invalid(key, "a window must be at least 1 second"));
    }
    if secs > MAX_WINDOW_SECS {
        return Err(invalid(
            key,
            format!("{secs} seconds is longer than a year ({MAX_WINDOW_SECS})"),
        ));
    }
    Ok(())
}

fn response(key: &'static str, action: Response, block_secs: u64) -> Result<(), ConfigError> {
    if action == Response::BlockIp && block_secs == 0 {
        return Err(invalid(key, "block_ip needs block_secs of at least 1"));
    }
    Ok(())
}

impl DetectConfig {
    /// Rejects settings that make no sense: zero windows or caps, a spike
    /// factor below 1, shares outside (0, 1], unknown failure kinds,
    /// addresses that do not parse, empty patterns.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_tracked_keys == 0 {
            return Err(invalid("max_tracked_keys", "must be at least 1"));
        }
        if self.max_findings == 0 {
            return Err(invalid("max_findings", "must be at least 1"));
        }

        let b = &self.brute_force;
        response("brute_force.block_secs", b.action, b.block_secs)?;
        window("brute_force.window_secs", b.window_secs)?;
        if b.threshold == 0 || b.threshold > MAX_THRESHOLD {
            return Err(invalid(
                "brute_force.threshold",
                format!("must be between 1 and {MAX_THRESHOLD}, not {}", b.threshold),
            ));
        }
        if b.enabled && b.count_kinds.is_empty() {
            return Err(invalid(
                "brute_force.count_kinds",
                "no failure kind would count; disable the rule instead",
            ));
        }
        for name in &b.count_kinds {
            if parse_failure_kind(name).is_none() {
                let known: Vec<&str> = FailureKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(invalid(
                    "brute_force.count_kinds",
                    format!(
                        "unknown failure kind {name:?} (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }

        let n = &self.new_source_ip;
        response("new_source_ip.block_secs", n.action, n.block_secs)?;
        if n.max_ips_per_principal == 0 {
            return Err(invalid(
                "new_source_ip.max_ips_per_principal",
                "must be at least 1",
            ));
        }

        let t = &self.token_from_other_ip;
        response("token_from_other_ip.block_secs", t.action, t.block_secs)?;
        for net in &t.trusted_networks {
            parse_cidr(net).map_err(|e| invalid("token_from_other_ip.trusted_networks", e))?;
        }

        let u = &self.unusual_hour;
        response("unusual_hour.block_secs", u.action, u.block_secs)?;
        if u.min_events == 0 {
            return Err(invalid("unusual_hour.min_events", "must be at least 1"));
        }
        if !(u.min_share > 0.0 && u.min_share <= 1.0) {
            return Err(invalid(
                "unusual_hour.min_share",
                format!(
                    "must be a share above 0 and at most 1 (0.01 is 1%), not {}",
                    u.min_share
                ),
            ));
        }

        let c = &self.connection_spike;
        response("connection_spike.block_secs", c.action, c.block_secs)?;
        window("connection_spike.window_secs", c.window_secs)?;
        if !(c.factor.is_finite() && c.factor >= 1.0) {
            return Err(invalid(
                "connection_spike.factor",
                format!(
                    "must be at least 1 (a spike is a multiple of the usual rate), not {}",
                    c.factor
                ),
            ));
        }
        if c.baseline_windows == 0 || c.baseline_windows > MAX_BASELINE_WINDOWS {
            return Err(invalid(
                "connection_spike.baseline_windows",
                format!(
                    "must be between 1 and {MAX_BASELINE_WINDOWS}, not {}",
                    c.baseline_windows
                ),
            ));
        }
        if c.min_baseline_windows > c.baseline_windows {
            return Err(invalid(
                "connection_spike.min_baseline_windows",
                format!(
                    "{} is more than baseline_windows ({})",
                    c.min_baseline_windows, c.baseline_windows
                ),
            ));
        }

        let d = &self.destructive_statement;
        response("destructive_statement.block_secs", d.action, d.block_secs)?;
        let k = &self.disabled_key;
        response("disabled_key.block_secs", k.action, k.block_secs)?;

        let s = &self.stored_credential_refused;
        response(
            "stored_credential_refused.block_secs",
            s.action,
            s.block_secs,
        )?;

        let f = &self.sql_firewall;
        response("sql_firewall.block_secs", f.action, f.block_secs)?;

        let a = &self.admin_credential;
        response("admin_credential.block_secs", a.action, a.block_secs)?;
        if a.admin_principals.iter().any(|p| p.trim().is_empty()) {
            return Err(invalid(
                "admin_credential.admin_principals",
                "an empty pattern matches nothing; remove it",
            ));
        }
        Ok(())
    }
}

impl BruteForce {
    /// The failure kinds the rule counts (a name that does not parse
    /// counts nothing; validation refuses it).
    pub fn counted_kinds(&self) -> Vec<FailureKind> {
        self.count_kinds
            .iter()
            .filter_map(|name| parse_failure_kind(name))
            .collect()
    }

    /// Whether the rule runs and blocks what it finds (`revoke_sessions`
    /// blocks the addresses when its evidence proves nothing).
    pub fn blocks(&self) -> bool {
        self.enabled && self.action != Response::None
    }
}

pub(crate) fn parse_failure_kind(name: &str) -> Option<FailureKind> {
    FailureKind::ALL
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(name.trim()))
}

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (the
/// policy engine's `aws:SourceIp` type).
pub(crate) use latchkey_policy::condition::Cidr;

/// Reads a trusted network, saying what is wrong with it.
pub(crate) fn parse_cidr(text: &str) -> Result<Cidr, String> {
    Cidr::parse(text.trim()).ok_or_else(|| {
        format!(
            "{text:?} is not an address or CIDR block (a prefix of 0 to 32, or to 128 for IPv6)"
        )
    })
}
