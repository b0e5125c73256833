//! The rules, and what each remembers.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use latchkey_audit::{
    ApiEvent, ApiService, AuthEvent, AuthResult, FailureKind, Identity, SessionInfo, Severity,
    StatementEvent, rfc3339,
};

use crate::findings::{Hit, Proof};
use crate::lru::Lru;
use crate::{Detector, Outcome, classify, kind_index, kinds};

/// Source addresses tallied per connection-spike window, for the
/// description; more are counted but not named.
const MAX_WINDOW_SOURCES: usize = 1024;
/// Statement text quoted in a description, at most.
const MAX_QUOTED: usize = 300;

/// Milliseconds since the epoch; times before it count as the epoch.
pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The hour of the day, UTC.
fn hour_of(t: SystemTime) -> usize {
    ((millis(t) / 3_600_000) % 24) as usize
}

/// `*` matches any run of characters; ASCII case is ignored.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn quote(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `a, b, c and 2 more`.
fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>, shown: usize) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    let mut text = items
        .iter()
        .take(shown)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > shown {
        let _ = write!(text, " and {} more", items.len() - shown);
    }
    text
}

/// The principal whose history a login belongs to: a role session's role,
/// a session token's user, else the identity itself.
fn stable_principal(identity: &Identity) -> &str {
    identity
        .session
        .as_ref()
        .map_or(identity.arn.as_str(), |s| s.issuer.arn.as_str())
}

/// What a login was for, in a finding's `resource`.
fn auth_database(auth: &AuthEvent) -> String {
    auth.database
        .clone()
        .or_else(|| auth.endpoint.clone())
        .unwrap_or_else(|| "unknown database".to_owned())
}

fn role_note(identity: &Identity) -> String {
    match &identity.session {
        Some(s) if s.issuer.arn != identity.arn => format!(" (credentials of {})", s.issuer.arn),
        _ => String::new(),
    }
}

/// A failed login or sign-in, as rule 1 counts it.
pub(crate) struct Attempt {
    pub(crate) time: std::time::SystemTime,
    pub(crate) ip: IpAddr,
    pub(crate) kind: FailureKind,
    /// The refusal came after the credential's signature verified.
    pub(crate) proven: bool,
    /// Whose credentials, when known.
    pub(crate) principal: Option<String>,
    /// The access key presented, or the user name tried.
    pub(crate) key: Option<String>,
    /// What the description says of the latest attempt.
    pub(crate) latest: String,
}

struct Failure {
    ms: u64,
    kind: FailureKind,
    ip: IpAddr,
    event_id: Box<str>,
    /// The refusal came after the credential's signature verified.
    proven: bool,
}

/// The latest `threshold` counted failures of one address or principal.
#[derive(Default)]
pub(crate) struct FailureWindow {
    recent: VecDeque<Failure>,
    newest_ms: u64,
    /// Counted failures since this key was first tracked.
    total: u64,
}

impl FailureWindow {
    pub(crate) fn len(&self) -> usize {
        self.recent.len()
    }

    fn push(&mut self, failure: Failure, keep: usize) {
        self.newest_ms = self.newest_ms.max(failure.ms);
        self.total = self.total.saturating_add(1);
        self.recent.push_back(failure);
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
    }

    /// The window holds `threshold` failures no further apart than
    /// `window_ms` (times may arrive slightly out of order).
    fn full_within(&self, threshold: usize, window_ms: u64) -> bool {
        if self.recent.len() < threshold {
            return false;
        }
        let oldest = self.recent.iter().map(|f| f.ms).min().unwrap_or(0);
        let newest = self.recent.iter().map(|f| f.ms).max().unwrap_or(0);
        newest - oldest <= window_ms
    }

    /// `bad_signature ×7, unknown_key ×3`, most frequent first.
    fn kinds(&self) -> String {
        let mut counts: Vec<(FailureKind, usize)> = Vec::new();
        for f in &self.recent {
            match counts.iter_mut().find(|(k, _)| *k == f.kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((f.kind, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
        list(
            counts.iter().map(|(k, n)| format!("{} ×{n}", k.as_str())),
            usize::MAX,
        )
    }

    fn sources(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = Vec::new();
        for f in self.recent.iter().rev() {
            if !ips.contains(&f.ip) {
                ips.push(f.ip);
            }
        }
        ips
    }

    fn evidence(&self) -> Vec<String> {
        self.recent.iter().map(|f| f.event_id.to_string()).collect()
    }

    /// Proven only when every failure in the window is: one forged token
    /// among them is enough for the window to prove nothing.
    fn proof(&self) -> Proof {
        let mut unproven: Vec<IpAddr> = Vec::new();
        for f in self.recent.iter().filter(|f| !f.proven) {
            if !unproven.contains(&f.ip) {
                unproven.push(f.ip);
            }
        }
        if unproven.is_empty() {
            Proof::Proven
        } else {
            Proof::Unproven(unproven)
        }
    }
}

/// Forgets windows whose newest failure is older than the window.
fn expire<K: std::hash::Hash + Eq + Clone>(
    windows: &mut Lru<K, FailureWindow>,
    now_ms: u64,
    window_ms: u64,
) {
    while windows
        .oldest()
        .is_some_and(|w| w.newest_ms.saturating_add(window_ms) < now_ms)
    {
        windows.pop_oldest();
    }
}

/// A principal's login history.
pub(crate) struct Profile {
    logins: u64,
    hours: [u64; 24],
    ips: Lru<IpAddr, ()>,
}

impl Profile {
    pub(crate) fn ips(&self) -> usize {
        self.ips.len()
    }

    /// The `n` busiest hours, busiest first.
    fn usual_hours(&self, n: usize) -> String {
        let mut hours: Vec<(usize, u64)> = self
            .hours
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, c)| *c > 0)
            .collect();
        hours.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        list(hours.iter().map(|(h, _)| format!("{h:02}:00")), n)
    }
}

/// Sessions per window for one database.
pub(crate) struct Spike {
    /// The current window's number (time / window length).
    window: u64,
    count: u64,
    /// Previous windows' counts, oldest first, at most `baseline_windows`.
    history: VecDeque<u64>,
    /// The current window was reported already.
    reported: bool,
    sources: HashMap<IpAddr, u64>,
}

impl Spike {
    pub(crate) fn sources(&self) -> usize {
        self.sources.len()
    }

    fn top_sources(&self, n: usize) -> String {
        let mut top: Vec<(&IpAddr, &u64)> = self.sources.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        list(top.iter().map(|(ip, c)| format!("{ip} ({c})")), n)
    }
}

/// An access key seen deleted.
pub(crate) struct DeletedKey {
    user: Option<String>,
    at: SystemTime,
    event_id: String,
}

impl DeletedKey {
    fn describe(&self, key: &str) -> String {
        let user = self
            .user
            .as_deref()
            .map_or(String::new(), |u| format!(" of user {u}"));
        format!(
            "Access key {key}{user} was deleted at {} (event {}).",
            rfc3339(self.at),
            self.event_id
        )
    }
}

impl Detector {
    pub(crate) fn auth(&mut self, event_id: &str, auth: &AuthEvent, out: &mut Vec<Outcome>) {
        let ip = auth.source_ip.to_canonical();
        match &auth.result {
            AuthResult::Failure { kind, reason } => {
                if self.config.brute_force.enabled && self.counted[kind_index(*kind)] {
                    let attempt = Attempt {
                        time: auth.time,
                        ip,
                        kind: *kind,
                        proven: auth.possession_proven,
                        principal: auth.identity.as_ref().map(|i| i.arn.clone()),
                        key: auth.access_key_id.clone(),
                        latest: format!(
                            "The latest tried database user {:?} on {} ({}).",
                            auth.db_user,
                            auth_database(auth),
                            reason
                        ),
                    };
                    self.tally
                        .add(ip, *kind, millis(auth.time), self.config.max_tracked_keys);
                    self.brute_force(event_id, &attempt, out);
                }
                if self.config.disabled_key.enabled {
                    self.disabled_key_login(event_id, auth, ip, *kind, reason, out);
                }
                if self.config.stored_credential_refused.enabled
                    && *kind == FailureKind::UpstreamCredentialRefused
                {
                    self.stored_credential_refused(event_id, auth, ip, reason, out);
                }
            }
            AuthResult::Success => {
                let Some(identity) = &auth.identity else {
                    return;
                };
                if self.config.token_from_other_ip.enabled {
                    self.token_from_other_ip(event_id, auth, identity, ip, out);
                }
                if self.config.admin_credential.enabled {
                    self.admin_login(event_id, auth, identity, ip, out);
                }
                if self.config.new_source_ip.enabled || self.config.unusual_hour.enabled {
                    self.profile(event_id, auth, identity, ip, out);
                }
            }
        }
    }

    /// Rule 1, for database logins and console sign-ins alike.
    pub(crate) fn brute_force(
        &mut self,
        event_id: &str,
        attempt: &Attempt,
        out: &mut Vec<Outcome>,
    ) {
        let cfg = &self.config.brute_force;
        let threshold = cfg.threshold.max(1) as usize;
        let window_secs = cfg.window_secs.max(1);
        let window_ms = window_secs.saturating_mul(1000);
        let (response, block_secs) = (cfg.action, cfg.block_secs);
        let (ip, latest) = (attempt.ip, &attempt.latest);
        let now = millis(attempt.time);
        let failure = || Failure {
            ms: now,
            kind: attempt.kind,
            ip,
            event_id: event_id.into(),
            proven: attempt.proven,
        };
        let who = attempt
            .principal
            .clone()
            .or_else(|| attempt.key.clone())
            .unwrap_or_else(|| "none".to_owned());

        expire(&mut self.failures_by_ip, now, window_ms);
        let w = self
            .failures_by_ip
            .get_or_insert_with(&ip, FailureWindow::default);
        w.push(failure(), threshold);
        if w.full_within(threshold, window_ms) {
            let hit = Hit {
                kind: kinds::BRUTE_FORCE_SOURCE_IP,
                severity: Severity::High,
                title: format!(
                    "{} failed logins from {ip} in {window_secs} s",
                    w.recent.len()
                ),
                description: format!(
                    "{} failed logins from {ip} within {window_secs} s ({}); {} counted from this \
                     address so far. {latest} Credentials presented last: {who}.",
                    w.recent.len(),
                    w.kinds(),
                    w.total,
                ),
                resource: ip.to_string(),
                principal: None,
                source_ip: Some(ip),
                time: attempt.time,
                evidence: w.evidence(),
                response,
                block_secs,
            };
            let proof = w.proof();
            self.findings.report_with(hit, proof, out);
        }

        let principal = attempt.principal.clone();
        let Some(key) = principal.clone().or_else(|| attempt.key.clone()) else {
            return;
        };
        expire(&mut self.failures_by_principal, now, window_ms);
        let w = self
            .failures_by_principal
            .get_or_insert_with(&key, FailureWindow::default);
        w.push(failure(), threshold);
        if w.full_within(threshold, window_ms) {
            let what = if principal.is_some() {
                key.clone()
            } else {
                format!("access key {key}")
            };
            let hit = Hit {
                kind: kinds::BRUTE_FORCE_PRINCIPAL,
                severity: Severity::High,
                title: format!(
                    "{} failed logins for {what} in {window_secs} s",
                    w.recent.len()
                ),
                description: format!(
                    "{} failed logins for {what} within {window_secs} s ({}), from {}; {} counted \
                     so far. {latest}",
                    w.recent.len(),
                    w.kinds(),
                    list(w.sources(), 5),
                    w.total,
                ),
                resource: key,
                principal,
                source_ip: None,
                time: attempt.time,
                evidence: w.evidence(),
                response,
                block_secs,
            };
            let proof = w.proof();
            self.findings.report_with(hit, proof, out);
        }
    }

    /// Rule 7, at the database.
    fn disabled_key_login(
        &mut self,
        event_id: &str,
        auth: &AuthEvent,
        ip: IpAddr,
        kind: FailureKind,
        reason: &str,
        out: &mut Vec<Outcome>,
    ) {
        let key = auth
            .access_key_id
            .clone()
            .or_else(|| auth.identity.as_ref().map(|i| i.access_key_id.clone()));
        let (title, detail) = match (kind, key.as_deref()) {
            (FailureKind::InactiveKey, key) => {
                let key = key.unwrap_or("(unknown)");
                (
                    format!("Inactive access key {key} presented from {ip}"),
                    format!("Access key {key} is inactive ({reason})."),
                )
            }
            (FailureKind::UnknownKey, Some(key)) => match self.deleted_keys.peek(&key.to_owned()) {
                Some(deleted) => (
                    format!("Deleted access key {key} presented from {ip}"),
                    deleted.describe(key),
                ),
                None => return,
            },
            _ => return,
        };
        let principal = auth.identity.as_ref().map(|i| i.arn.clone());
        let cfg = &self.config.disabled_key;
        let hit = Hit {
            kind: kinds::DISABLED_KEY_USED,
            severity: Severity::High,
            title,
            description: format!(
                "{detail} It was used in a login from {ip} as database user {:?} on {}{}. Whoever \
                 holds it may hold other credentials too.",
                auth.db_user,
                auth_database(auth),
                principal
                    .as_deref()
                    .map_or(String::new(), |p| format!(" by {p}")),
            ),
            resource: key.unwrap_or_else(|| "unknown access key".to_owned()),
            principal,
            source_ip: Some(ip),
            time: auth.time,
            evidence: vec![event_id.to_owned()],
            response: cfg.action,
            block_secs: cfg.block_secs,
        };
        self.findings
            .report_with(hit, Proof::of(auth.possession_proven, ip), out);
    }

    /// Rule 3.
    fn token_from_other_ip(
        &mut self,
        event_id: &str,
        auth: &AuthEvent,
        identity: &Identity,
        ip: IpAddr,
        out: &mut Vec<Outcome>,
    ) {
        let Some(session) = &identity.session else {
            return;
        };
        let text = session.source_ip.trim();
        let Some(origin) = text
            .parse::<IpAddr>()
            .ok()
            .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
            .map(|ip| ip.to_canonical())
        else {
            return;
        };
        if origin == ip {
            return;
        }
        let trusted = |a: IpAddr| self.trusted.iter().any(|n| n.contains(a));
        if trusted(origin) && trusted(ip) {
            return;
        }
        let cfg = &self.config.token_from_other_ip;
        let hit = Hit {
            kind: kinds::TOKEN_FROM_OTHER_IP,
            severity: Severity::High,
            title: format!(
                "Temporary credentials of {} obtained from {origin} used from {ip}",
                identity.arn
            ),
            description: format!(
                "Access key {} was issued to {origin} at {} ({} {}) and used to log in from {ip} as \
                 database user {:?} on {}. Credentials used away from where they were obtained may \
                 have been stolen.",
                identity.access_key_id,
                rfc3339(session.creation_date),
                session.issuer.kind,
                session.issuer.arn,
                auth.db_user,
                auth_database(auth),
            ),
            resource: identity.access_key_id.clone(),
            principal: Some(identity.arn.clone()),
            source_ip: Some(ip),
            time: auth.time,
            evidence: vec![event_id.to_owned()],
            response: cfg.action,
            block_secs: cfg.block_secs,
        };
        self.findings.report(hit, out);
    }

    /// Rule 8.
    fn admin_login(
        &mut self,
        event_id: &str,
        auth: &AuthEvent,
        identity: &Identity,
        ip: IpAddr,
        out: &mut Vec<Outcome>,
    ) {
        let cfg = &self.config.admin_credential;
        let matches = |arn: &str| cfg.admin_principals.iter().any(|p| glob_match(p, arn));
        let issuer = identity.session.as_ref().map(|s| s.issuer.arn.as_str());
        if !(matches(&identity.arn) || issuer.is_some_and(matches)) {
            return;
        }
        let database = auth_database(auth);
        let hit = Hit {
            kind: kinds::ADMIN_CREDENTIAL_USED,
            severity: Severity::Medium,
            title: format!(
                "Administrator credentials {} used to log in to {database}",
                identity.arn
            ),
            description: format!(
                "{}{} logged in to {database} as database user {:?} from {ip}. The administrator's \
                 key is for managing IAM; databases should be reached with a least-privilege \
                 principal.",
                identity.arn,
                role_note(identity),
                auth.db_user,
            ),
            resource: database,
            principal: Some(identity.arn.clone()),
            source_ip: Some(ip),
            time: auth.time,
            evidence: vec![event_id.to_owned()],
            response: cfg.action,
            block_secs: cfg.block_secs,
        };
        self.findings.report(hit, out);
    }

    /// Rules 2 and 4, then learning the login.
    fn profile(
        &mut self,
        event_id: &str,
        auth: &AuthEvent,
        identity: &Identity,
        ip: IpAddr,
        out: &mut Vec<Outcome>,
    ) {
        let new_ip = &self.config.new_source_ip;
        let hours = &self.config.unusual_hour;
        let key = stable_principal(identity).to_owned();
        let max_ips = new_ip.max_ips_per_principal;
        let p = self.profiles.get_or_insert_with(&key, || Profile {
            logins: 0,
            hours: [0; 24],
            ips: Lru::new(max_ips),
        });
        let database = auth_database(auth);
        let mut hits = Vec::new();

        if new_ip.enabled && p.logins >= new_ip.min_history && !p.ips.contains(&ip) {
            hits.push(Hit {
                kind: kinds::NEW_SOURCE_IP,
                severity: Severity::Medium,
                title: format!("{} logged in from a new address, {ip}", identity.arn),
                description: format!(
                    "{}{} logged in to {database} as database user {:?} from {ip}, an address it \
                     has not used in {} logins before (recently: {}).",
                    identity.arn,
                    role_note(identity),
                    auth.db_user,
                    p.logins,
                    list(p.ips.keys_recent_first(), 3),
                ),
                resource: database.clone(),
                principal: Some(identity.arn.clone()),
                source_ip: Some(ip),
                time: auth.time,
                evidence: vec![event_id.to_owned()],
                response: new_ip.action,
                block_secs: new_ip.block_secs,
            });
        }

        let hour = hour_of(auth.time);
        if hours.enabled && p.logins >= hours.min_events {
            let share = p.hours[hour] as f64 / p.logins as f64;
            if share < hours.min_share {
                hits.push(Hit {
                    kind: kinds::UNUSUAL_HOUR,
                    severity: Severity::Low,
                    title: format!(
                        "{} logged in at {hour:02}:00–{:02}:00 UTC, an unusual hour",
                        identity.arn,
                        (hour + 1) % 24
                    ),
                    description: format!(
                        "{}{} logged in to {database} from {ip} at {}. {} of its {} earlier logins \
                         ({:.1}%) were between {hour:02}:00 and {:02}:00 UTC; it usually logs in \
                         at {}.",
                        identity.arn,
                        role_note(identity),
                        rfc3339(auth.time),
                        p.hours[hour],
                        p.logins,
                        share * 100.0,
                        (hour + 1) % 24,
                        p.usual_hours(3),
                    ),
                    resource: database.clone(),
                    principal: Some(identity.arn.clone()),
                    source_ip: Some(ip),
                    time: auth.time,
                    evidence: vec![event_id.to_owned()],
                    response: hours.action,
                    block_secs: hours.block_secs,
                });
            }
        }

        p.logins = p.logins.saturating_add(1);
        p.hours[hour] = p.hours[hour].saturating_add(1);
        p.ips.insert(ip, ());
        for hit in hits {
            self.findings.report(hit, out);
        }
    }

    /// Rule 7, at the token service: remembers deleted keys, and reports
    /// calls signed with one.
    pub(crate) fn api(&mut self, event_id: &str, api: &ApiEvent, out: &mut Vec<Outcome>) {
        if api.service == ApiService::Signin
            && let Some((_, reason)) = &api.error
            && self.config.brute_force.enabled
            && self.counted[kind_index(FailureKind::BadPassword)]
        {
            // A failed console sign-in: the user name tried is what is
            // attacked (the user's ARN is not given for a failure, so
            // that the trail does not say whether the user exists).
            let tried = api
                .request_parameters
                .as_deref()
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                .and_then(|p| p["userName"].as_str().map(|u| u.to_ascii_lowercase()));
            let attempt = Attempt {
                time: api.time,
                ip: api.source_ip.to_canonical(),
                kind: FailureKind::BadPassword,
                // A wrong password proves nothing about who sent it.
                proven: false,
                principal: None,
                key: tried.map(|u| format!("console user {u}")),
                latest: format!("The latest was a console sign-in ({reason})."),
            };
            self.brute_force(event_id, &attempt, out);
        }
        let cfg = &self.config.disabled_key;
        if !cfg.enabled {
            return;
        }
        if let Some(key) = &api.access_key_id
            && let Some(deleted) = self.deleted_keys.peek(key)
        {
            let principal = api.identity.as_ref().map(|i| i.arn.clone());
            let ip = api.source_ip.to_canonical();
            let hit = Hit {
                kind: kinds::DISABLED_KEY_USED,
                severity: Severity::High,
                title: format!("Deleted access key {key} presented from {ip}"),
                description: format!(
                    "{} It signed a call to {} {} from {ip}{}.",
                    deleted.describe(key),
                    api.service.event_source(),
                    api.action,
                    api.error
                        .as_ref()
                        .map_or(String::new(), |(code, _)| format!(", refused with {code}")),
                ),
                resource: key.clone(),
                principal,
                source_ip: Some(ip),
                time: api.time,
                evidence: vec![event_id.to_owned()],
                response: cfg.action,
                block_secs: cfg.block_secs,
            };
            self.findings
                .report_with(hit, Proof::of(api.possession_proven, ip), out);
        }

        if api.action == "DeleteAccessKey" && api.error.is_none() {
            let params = api
                .request_parameters
                .as_deref()
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
            let field = |name: &str| {
                params
                    .as_ref()
                    .and_then(|p| p.get(name))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            if let Some(key) = field("accessKeyId") {
                let user = field("userName");
                self.deleted_keys.insert(
                    key,
                    DeletedKey {
                        user,
                        at: api.time,
                        event_id: event_id.to_owned(),
                    },
                );
            }
        }
    }

    /// Rule 5.
    pub(crate) fn session_start(
        &mut self,
        event_id: &str,
        session: &Arc<SessionInfo>,
        out: &mut Vec<Outcome>,
    ) {
        let cfg = &self.config.connection_spike;
        if !cfg.enabled {
            return;
        }
        let window_secs = cfg.window_secs.max(1);
        let baseline = cfg.baseline_windows.max(1) as usize;
        let number = millis(session.started) / window_secs.saturating_mul(1000);
        let s = self
            .databases
            .get_or_insert_with(&session.database, || Spike {
                window: number,
                count: 0,
                history: VecDeque::new(),
                reported: false,
                sources: HashMap::new(),
            });
        // A later window: the current one joins the history, with any
        // empty ones in between. A session from an earlier window (events
        // arrive nearly in order) counts in the current one.
        if number > s.window {
            let empty = (number - s.window - 1).min(baseline as u64);
            s.history.push_back(s.count);
            s.history.extend((0..empty).map(|_| 0));
            while s.history.len() > baseline {
                s.history.pop_front();
            }
            s.window = number;
            s.count = 0;
            s.reported = false;
            s.sources.clear();
        }
        s.count += 1;
        let ip = session.source_ip.to_canonical();
        if let Some(n) = s.sources.get_mut(&ip) {
            *n += 1;
        } else if s.sources.len() < MAX_WINDOW_SOURCES {
            s.sources.insert(ip, 1);
        }

        if s.reported || s.history.len() < cfg.min_baseline_windows as usize {
            return;
        }
        let average = s.history.iter().sum::<u64>() as f64 / s.history.len().max(1) as f64;
        if s.count <= cfg.min_connections || s.count as f64 <= cfg.factor * average {
            return;
        }
        s.reported = true;
        let hit = Hit {
            kind: kinds::CONNECTION_SPIKE,
            severity: Severity::Medium,
            title: if average > 0.0 {
                format!(
                    "{} sessions to {} in {window_secs} s, {:.0}× the usual rate",
                    s.count,
                    session.database,
                    s.count as f64 / average
                )
            } else {
                format!(
                    "{} sessions to {} in {window_secs} s, up from none",
                    s.count, session.database
                )
            },
            description: format!(
                "{} sessions started on {} within {window_secs} s against an average of {average:.1} \
                 over the previous {} windows. Top sources: {}.",
                s.count,
                session.database,
                s.history.len(),
                s.top_sources(3),
            ),
            resource: session.database.clone(),
            principal: None,
            source_ip: None,
            time: session.started,
            evidence: vec![event_id.to_owned()],
            response: cfg.action,
            block_secs: cfg.block_secs,
        };
        self.findings.report(hit, out);
    }

    /// Rule 6.
    pub(crate) fn statement(
        &mut self,
        event_id: &str,
        event: &StatementEvent,
        out: &mut Vec<Outcome>,
    ) {
        self.destructive(event_id, event, out);
        self.firewall(event_id, event, out);
    }

    /// The SQL firewall's verdict: one finding per (type, database and
    /// fingerprint, principal), the principal being a role's sessions'
    /// role, as the firewall's profiles are.
    fn firewall(&mut self, event_id: &str, event: &StatementEvent, out: &mut Vec<Outcome>) {
        let cfg = &self.config.sql_firewall;
        let Some(verdict) = event.policy.as_ref().and_then(|p| p.firewall) else {
            return;
        };
        if !cfg.enabled || !verdict.notable() {
            return;
        }
        let session = &event.session;
        let identity = &session.identity;
        let principal = stable_principal(identity).to_owned();
        let fingerprint = format!("{:016x}", event.statement.fingerprint);
        let text = quote(&event.statement.text, MAX_QUOTED);
        let ip = session.source_ip.to_canonical();
        let outcome = if verdict.refused {
            "The firewall refused it (block mode)."
        } else {
            match verdict.mode {
                latchkey_audit::FirewallState::Learn => "The principal is still learning: it ran.",
                _ => "It ran (alert mode).",
            }
        };
        type Rule = (
            bool,
            bool,
            &'static str,
            Severity,
            &'static str,
            &'static str,
        );
        let rules: [Rule; 6] = [
            (
                verdict.unseen,
                cfg.unseen_shape,
                kinds::UNSEEN_STATEMENT_SHAPE,
                Severity::Medium,
                "Unseen statement shape",
                "a statement shape it never ran while learning",
            ),
            (
                verdict.tautology,
                cfg.tautology,
                kinds::TAUTOLOGY,
                Severity::High,
                "Tautology",
                "a tautology in a condition (OR 1=1), an injection probe",
            ),
            (
                verdict.time_probe,
                cfg.time_probe,
                kinds::TIME_BASED_PROBE,
                Severity::High,
                "Time-based probe",
                "a time-based probe (pg_sleep, SLEEP, BENCHMARK)",
            ),
            (
                verdict.stacked,
                cfg.stacked,
                kinds::STACKED_STATEMENTS,
                Severity::Medium,
                "Stacked statements",
                "stacked statements, which it never sends",
            ),
            (
                verdict.union,
                cfg.union,
                kinds::UNION_PROBE,
                Severity::Medium,
                "UNION probe",
                "a UNION, which its statements never have",
            ),
            (
                verdict.comment,
                cfg.comment,
                kinds::COMMENT_IN_STATEMENT,
                Severity::Low,
                "Comment in statement",
                "a comment inside a statement",
            ),
        ];
        for (raised, enabled, kind, severity, label, what) in rules {
            if !raised || !enabled {
                continue;
            }
            let mut description = format!(
                "{}{} ran {what} on {} (database {:?}, user {:?}) from {ip} in session {}: `{text}` (fingerprint {fingerprint}). {outcome}",
                identity.arn,
                role_note(identity),
                session.database,
                session.database_name,
                session.db_user,
                session.session_id,
            );
            if event.statement.truncated {
                description.push_str(" The logged text was cut short, so part of it is not shown.");
            }
            let hit = Hit {
                kind,
                severity,
                title: format!("{label} by {principal} on {}", session.database),
                description,
                resource: format!("{}/{fingerprint}", session.database),
                principal: Some(principal.clone()),
                source_ip: None,
                time: event.time,
                evidence: vec![event_id.to_owned()],
                response: cfg.action,
                block_secs: cfg.block_secs,
            };
            self.findings.report(hit, out);
        }
    }

    fn destructive(&mut self, event_id: &str, event: &StatementEvent, out: &mut Vec<Outcome>) {
        let cfg = &self.config.destructive_statement;
        if !cfg.enabled {
            return;
        }
        let Some((label, severity)) = classify::is_destructive(&event.statement.text) else {
            return;
        };
        let session = &event.session;
        let identity = &session.identity;
        let ip = session.source_ip.to_canonical();
        let mut description = format!(
            "{}{} ran `{}` on {} (database {:?}, user {:?}) from {ip} in session {}",
            identity.arn,
            role_note(identity),
            quote(&event.statement.text, MAX_QUOTED),
            session.database,
            session.database_name,
            session.db_user,
            session.session_id,
        );
        match (&event.error_code, event.rows) {
            (Some(code), _) => {
                let _ = write!(
                    description,
                    "; it failed with SQLSTATE {code}, so it may not have taken effect"
                );
            }
            (None, Some(rows)) => {
                let _ = write!(description, "; it affected {rows} rows");
            }
            (None, None) => {}
        }
        description.push('.');
        if event.statement.truncated {
            description.push_str(" The logged text was cut short, so part of it is not shown.");
        }
        let hit = Hit {
            kind: kinds::DESTRUCTIVE_STATEMENT,
            severity,
            title: format!(
                "{label}{} by {} on {}",
                if event.error_code.is_some() {
                    " (failed)"
                } else {
                    ""
                },
                identity.arn,
                session.database
            ),
            description,
            resource: session.database.clone(),
            principal: Some(identity.arn.clone()),
            source_ip: Some(ip),
            time: event.time,
            evidence: vec![event_id.to_owned()],
            response: cfg.action,
            block_secs: cfg.block_secs,
        };
        self.findings.report(hit, out);
    }
}
