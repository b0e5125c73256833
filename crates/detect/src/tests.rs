//! Scripted attacks that must fire, and benign replays that must not.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use latchkey_audit::{
    ApiEvent, ApiService, AuthEvent, AuthResult, Event, FailureKind, FirewallState,
    FirewallVerdict, Identity, IdentityKind, PolicyDecision, Protocol, SessionContext, SessionInfo,
    SessionIssuer, Severity, Statement, StatementEvent,
};

use super::*;

/// 2023-11-14T00:00:00Z.
const MIDNIGHT: u64 = 1_699_920_000;
const ACCOUNT: &str = "123456789012";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(MIDNIGHT + secs)
}

/// Day `day` after [`MIDNIGHT`], at `hour`:`minute` UTC.
fn on(day: u64, hour: u64, minute: u64) -> SystemTime {
    at(day * 86_400 + hour * 3600 + minute * 60)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn user(name: &str) -> Identity {
    Identity {
        kind: IdentityKind::IamUser,
        arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
        principal_id: format!("AIDA{}", name.to_uppercase()),
        account_id: ACCOUNT.into(),
        access_key_id: format!("AKIA{}", name.to_uppercase()),
        session: None,
    }
}

fn role_session(role: &str, session: &str, obtained_from: &str) -> Identity {
    Identity {
        kind: IdentityKind::AssumedRole,
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"),
        principal_id: format!("AROA{}:{session}", role.to_uppercase()),
        account_id: ACCOUNT.into(),
        access_key_id: format!("ASIA{}", session.to_uppercase()),
        session: Some(SessionContext {
            mfa_authenticated: false,
            creation_date: at(0),
            issuer: SessionIssuer {
                kind: "Role",
                arn: format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
                principal_id: format!("AROA{}", role.to_uppercase()),
                account_id: ACCOUNT.into(),
                user_name: role.into(),
            },
            source_ip: obtained_from.into(),
        }),
    }
}

fn auth(identity: Option<&Identity>, from: &str, time: SystemTime, result: AuthResult) -> Event {
    Event::from(AuthEvent {
        engine: "postgres",
        time,
        source_ip: ip(from),
        user_agent: Some("psql".into()),
        db_user: "app".into(),
        endpoint: Some("orders.db.example".into()),
        database: Some("orders".into()),
        resource_arn: None,
        identity: identity.cloned(),
        access_key_id: identity.map(|i| i.access_key_id.clone()),
        possession_proven: match &result {
            AuthResult::Success => true,
            AuthResult::Failure { kind, .. } => proven_by_default(*kind),
        },
        result,
    })
}

/// Whether a refusal of this kind proves possession in these tests (as
/// the gateway records it): refusals after the signature check do; the
/// rest are what anyone can cause with a leaked token or a key id, and
/// [`proven_refusal`] makes the other case.
fn proven_by_default(kind: FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::PolicyDenied | FailureKind::Throttled | FailureKind::UpstreamUnavailable
    )
}

/// A failed login whose signature verified (an expired, revoked or
/// inactive credential used by whoever holds its secret).
fn proven_refusal(identity: &Identity, from: &str, time: SystemTime, kind: FailureKind) -> Event {
    let Event::Auth(mut a) = auth(Some(identity), from, time, failure(kind)) else {
        unreachable!()
    };
    a.possession_proven = true;
    Event::Auth(a)
}

fn login(identity: &Identity, from: &str, time: SystemTime) -> Event {
    auth(Some(identity), from, time, AuthResult::Success)
}

fn failure(kind: FailureKind) -> AuthResult {
    AuthResult::Failure {
        kind,
        reason: format!("test {}", kind.as_str()),
    }
}

/// A failed login for `identity` (the key was found).
fn refused(identity: &Identity, from: &str, time: SystemTime, kind: FailureKind) -> Event {
    auth(Some(identity), from, time, failure(kind))
}

/// A failed login with a key the gateway does not know.
fn refused_key(key: &str, from: &str, time: SystemTime, kind: FailureKind) -> Event {
    let Event::Auth(mut a) = auth(None, from, time, failure(kind)) else {
        unreachable!()
    };
    a.access_key_id = Some(key.into());
    Event::Auth(a)
}

fn session_on(
    database: &str,
    identity: &Identity,
    from: &str,
    started: SystemTime,
) -> Arc<SessionInfo> {
    Arc::new(SessionInfo {
        session_id: format!("sess-{}", millis_of(started)),
        engine: "postgres",
        identity: identity.clone(),
        source_ip: ip(from),
        user_agent: None,
        database: database.into(),
        resource_arn: format!("arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:db-X/app"),
        database_name: database.into(),
        db_user: "app".into(),
        started,
    })
}

fn millis_of(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn statement(text: &str, identity: &Identity, time: SystemTime, error: Option<&str>) -> Event {
    Event::Statement(StatementEvent {
        session: session_on("orders", identity, "10.0.0.5", at(0)),
        statement: Arc::new(Statement {
            text: text.into(),
            fingerprint: 1,
            truncated: false,
        }),
        protocol: Protocol::Simple,
        time,
        duration: Duration::from_millis(3),
        command_tag: None,
        rows: None,
        error_code: error.map(str::to_owned),
        policy: None,
    })
}

fn api(action: &str, params: Option<&str>, key: Option<&str>, time: SystemTime) -> Event {
    Event::from(ApiEvent {
        time,
        service: ApiService::Iam,
        action: action.into(),
        identity: Some(user("admin")),
        access_key_id: key.map(str::to_owned),
        source_ip: ip("192.0.2.10"),
        user_agent: None,
        request_parameters: params.map(str::to_owned),
        response_elements: None,
        error: None,
        possession_proven: true,
        request_id: "req".into(),
        read_only: false,
        resources: Vec::new(),
    })
}

/// A detector fed events with ids `ev-1`, `ev-2`...
struct Script {
    d: Detector,
    n: u64,
}

impl Script {
    fn new(config: DetectConfig) -> Self {
        Self {
            d: Detector::try_new(config).expect("valid config"),
            n: 0,
        }
    }

    fn default() -> Self {
        Self::new(DetectConfig::default())
    }

    fn send(&mut self, event: Event) -> Vec<Outcome> {
        self.n += 1;
        self.d.observe(&format!("ev-{}", self.n), &event)
    }

    /// Sends all, returning every outcome.
    fn send_all(&mut self, events: impl IntoIterator<Item = Event>) -> Vec<Outcome> {
        events.into_iter().flat_map(|e| self.send(e)).collect()
    }

    fn of_kind(&self, kind: &str) -> Vec<&Finding> {
        self.d.findings().filter(|f| f.kind == kind).collect()
    }
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|n| format!("ev-{n}")).collect()
}

fn only<'a>(outcomes: &'a [Outcome], kind: &str) -> Vec<&'a Outcome> {
    outcomes.iter().filter(|o| o.finding.kind == kind).collect()
}

// ---------------------------------------------------------------- rule 1

#[test]
fn brute_force_from_one_address_fires_at_the_threshold() {
    let mut s = Script::default();
    let alice = user("alice");
    for i in 0..9 {
        let kind = if i % 3 == 0 {
            FailureKind::Expired
        } else {
            FailureKind::BadSignature
        };
        let out = s.send(refused(&alice, "203.0.113.9", at(i * 5), kind));
        assert!(out.is_empty(), "failure {} fired early: {out:?}", i + 1);
    }
    let out = s.send(refused(
        &alice,
        "203.0.113.9",
        at(45),
        FailureKind::BadSignature,
    ));
    let by_ip = only(&out, kinds::BRUTE_FORCE_SOURCE_IP);
    assert_eq!(by_ip.len(), 1, "{out:?}");
    let o = by_ip[0];
    let f = &o.finding;
    assert!(o.new);
    assert!(o.actions.is_empty(), "no action unless configured");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.count, 1);
    assert_eq!(f.evidence, ids(1..=10));
    assert_eq!(f.title, "10 failed logins from 203.0.113.9 in 60 s");
    assert!(
        f.description.contains("bad_signature ×7, expired ×3"),
        "{}",
        f.description
    );
    assert_eq!(f.resource, "203.0.113.9");
    assert_eq!(f.source_ip, Some(ip("203.0.113.9")));
    assert_eq!(f.principal, None);
    assert_eq!(f.first_seen, at(45));
    assert_eq!(
        f.id,
        finding_id(
            kinds::BRUTE_FORCE_SOURCE_IP,
            "203.0.113.9",
            None,
            Some(ip("203.0.113.9"))
        )
    );
    // The same ten failures were all against alice.
    let by_principal = only(&out, kinds::BRUTE_FORCE_PRINCIPAL);
    assert_eq!(by_principal.len(), 1);
    assert_eq!(by_principal[0].finding.resource, alice.arn);
    assert_eq!(
        by_principal[0].finding.principal.as_deref(),
        Some(alice.arn.as_str())
    );
    assert_eq!(by_principal[0].finding.source_ip, None);
}

/// A failed console sign-in, as the console records it.
fn sign_in_failed(user: &str, from: &str, time: SystemTime) -> Event {
    Event::from(ApiEvent {
        time,
        service: ApiService::Signin,
        action: "ConsoleLogin".into(),
        identity: None,
        access_key_id: None,
        source_ip: ip(from),
        user_agent: Some("Mozilla/5.0".into()),
        request_parameters: Some(format!(r#"{{"userName":"{user}"}}"#)),
        response_elements: Some(r#"{"ConsoleLogin":"Failure","MFAUsed":"No"}"#.into()),
        error: Some(("Failed authentication".into(), "wrong password".into())),
        possession_proven: false,
        request_id: "req".into(),
        read_only: false,
        resources: Vec::new(),
    })
}

#[test]
fn console_password_guessing_is_brute_force_too() {
    let mut s = Script::default();
    // Ten guesses at alice's password (in any case) from one address.
    let out = s.send_all((0..10).map(|i| {
        let name = if i % 2 == 0 { "alice" } else { "ALICE" };
        sign_in_failed(name, "203.0.113.7", at(i * 3))
    }));
    let by_ip = only(&out, kinds::BRUTE_FORCE_SOURCE_IP);
    assert_eq!(by_ip.len(), 1, "{out:?}");
    assert!(
        by_ip[0].finding.description.contains("bad_password ×10"),
        "{}",
        by_ip[0].finding.description
    );
    let by_user = only(&out, kinds::BRUTE_FORCE_PRINCIPAL);
    assert_eq!(by_user.len(), 1, "{out:?}");
    assert_eq!(by_user[0].finding.resource, "console user alice");
    // Unproven: no response acts against the user for someone's guesses.
    assert_eq!(by_user[0].finding.principal, None);
    // A successful sign-in counts nothing.
    let mut ok = sign_in_failed("bob", "203.0.113.8", at(100));
    if let Event::Api(a) = &mut ok {
        a.error = None;
    }
    let mut s = Script::default();
    assert!(s.send_all((0..20).map(|_| ok.clone())).is_empty());
}

#[test]
fn brute_force_repeats_update_one_finding_on_powers_of_two() {
    let mut s = Script::default();
    let mallory = "203.0.113.66";
    // Unknown keys, a new one each time: only the address finding.
    let mut reported = Vec::new();
    for i in 0..40u64 {
        let out = s.send(refused_key(
            &format!("AKIAGUESS{i}"),
            mallory,
            at(i),
            FailureKind::UnknownKey,
        ));
        assert!(only(&out, kinds::BRUTE_FORCE_PRINCIPAL).is_empty());
        for o in only(&out, kinds::BRUTE_FORCE_SOURCE_IP) {
            reported.push((i + 1, o.new, o.finding.count, o.finding.clone()));
        }
    }
    // Failure 10 creates it (count 1); failures 11, 13, 17, 25 bring the
    // count to 2, 4, 8, 16; count 32 needs failure 41.
    let seen: Vec<(u64, bool, u64)> = reported
        .iter()
        .map(|(n, new, c, _)| (*n, *new, *c))
        .collect();
    assert_eq!(
        seen,
        vec![
            (10, true, 1),
            (11, false, 2),
            (13, false, 4),
            (17, false, 8),
            (25, false, 16)
        ]
    );
    let ids_seen: Vec<&str> = reported.iter().map(|r| r.3.id.as_str()).collect();
    assert!(ids_seen.windows(2).all(|w| w[0] == w[1]), "one finding");
    // Evidence: the ten, then one per repeat, the last 20 kept.
    assert_eq!(reported[1].3.evidence, ids(1..=11));
    assert_eq!(reported[4].3.evidence, ids(6..=25));
    assert!(reported.iter().skip(1).all(|r| r.3.actions.is_empty()));
    let open = s.of_kind(kinds::BRUTE_FORCE_SOURCE_IP);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].count, 31);
    assert_eq!(open[0].evidence.len(), EVIDENCE_KEPT);
    assert_eq!(open[0].evidence.last().map(String::as_str), Some("ev-40"));
    assert_eq!(open[0].first_seen, at(9));
    assert_eq!(open[0].last_seen, at(39));
    assert!(
        open[0].description.contains("unknown_key ×10"),
        "{}",
        open[0].description
    );
    assert!(
        open[0].description.contains("40 counted"),
        "{}",
        open[0].description
    );
}

#[test]
fn brute_force_against_one_principal_from_many_addresses() {
    let mut s = Script::default();
    let bob = user("bob");
    let out = s.send_all((0..10).map(|i| {
        refused(
            &bob,
            &format!("198.51.100.{i}"),
            at(i * 2),
            FailureKind::PolicyDenied,
        )
    }));
    assert!(only(&out, kinds::BRUTE_FORCE_SOURCE_IP).is_empty());
    let f = &only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0].finding;
    assert_eq!(f.title, format!("10 failed logins for {} in 60 s", bob.arn));
    assert!(
        f.description.contains("policy_denied ×10"),
        "{}",
        f.description
    );
    assert!(
        f.description.contains(
            "198.51.100.9, 198.51.100.8, 198.51.100.7, 198.51.100.6, 198.51.100.5 and 5 more"
        ),
        "{}",
        f.description
    );
    assert_eq!(f.evidence, ids(1..=10));

    // An unknown key: the access key id stands for the principal.
    let out = s.send_all((0..10).map(|i| {
        refused_key(
            "AKIANOSUCH",
            &format!("192.0.2.{i}"),
            at(100 + i),
            FailureKind::UnknownKey,
        )
    }));
    let f = &only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0].finding;
    assert_eq!(f.resource, "AKIANOSUCH");
    assert_eq!(f.principal, None);
    assert!(f.title.contains("access key AKIANOSUCH"), "{}", f.title);
}

#[test]
fn brute_force_actions_only_where_they_apply_and_only_when_new() {
    let mut config = DetectConfig::default();
    config.brute_force.action = Response::BlockIp;
    config.brute_force.block_secs = 600;
    let mut s = Script::new(config);
    let carol = user("carol");
    let out = s.send_all(
        (0..10).map(|i| refused(&carol, "203.0.113.9", at(i), FailureKind::BadSignature)),
    );
    let o = only(&out, kinds::BRUTE_FORCE_SOURCE_IP)[0];
    assert_eq!(
        o.actions,
        vec![Action::BlockSourceIp {
            ip: ip("203.0.113.9"),
            for_secs: 600
        }]
    );
    assert_eq!(
        o.finding.actions,
        vec!["block 203.0.113.9 for 600s".to_owned()]
    );
    // No single address to block for the principal finding.
    let p = only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0];
    assert!(p.new && p.actions.is_empty() && p.finding.actions.is_empty());
    // The update (count 2) carries no action, but the finding keeps its text.
    let out = s.send(refused(
        &carol,
        "203.0.113.9",
        at(10),
        FailureKind::BadSignature,
    ));
    let o = only(&out, kinds::BRUTE_FORCE_SOURCE_IP)[0];
    assert!(!o.new && o.actions.is_empty());
    assert_eq!(
        o.finding.actions,
        vec!["block 203.0.113.9 for 600s".to_owned()]
    );
    // Failures going on 10 s after the block (it was lifted, or ran out:
    // a blocked address's refusals are not counted) block it again; the
    // next one within 10 s does not.
    let out = s.send(refused(
        &carol,
        "203.0.113.9",
        at(19),
        FailureKind::BadSignature,
    ));
    let o = only(&out, kinds::BRUTE_FORCE_SOURCE_IP)[0];
    assert_eq!(
        o.actions,
        vec![Action::BlockSourceIp {
            ip: ip("203.0.113.9"),
            for_secs: 600
        }]
    );
    let out = s.send(refused(
        &carol,
        "203.0.113.9",
        at(20),
        FailureKind::BadSignature,
    ));
    assert!(
        out.iter().all(|o| o.actions.is_empty()),
        "blocked again within 10 s"
    );

    // Revocation needs refusals that prove possession (here, a policy
    // that denies whoever holds carol's key; see the tests below for the
    // forged kind).
    let mut config = DetectConfig::default();
    config.brute_force.action = Response::RevokeSessions;
    let mut s = Script::new(config);
    let out = s.send_all(
        (0..10).map(|i| refused(&carol, "203.0.113.9", at(i), FailureKind::PolicyDenied)),
    );
    assert!(
        only(&out, kinds::BRUTE_FORCE_SOURCE_IP)[0]
            .actions
            .is_empty()
    );
    assert_eq!(
        only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0].actions,
        vec![Action::RevokeSessions {
            principal_arn: carol.arn.clone()
        }]
    );
    assert_eq!(
        only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0].finding.actions,
        vec![format!("revoke sessions of {}", carol.arn)]
    );
}

/// Issue 14 item 7: whoever saw one of a role session's tokens (the
/// session token is inside every RDS token) or a key id can make failed
/// logins that name the principal; they must never revoke it.
#[test]
fn forged_failures_never_revoke_and_degrade_to_blocking() {
    let mut config = DetectConfig::default();
    config.brute_force.action = Response::RevokeSessions;
    config.brute_force.block_secs = 900;
    let session = role_session("payments", "worker-1", "10.0.0.5");
    let mut s = Script::new(config);
    let out = s.send_all((0..12).map(|i| {
        let kind = match i % 4 {
            0 => FailureKind::BadSignature,
            // A leaked token replayed late, a revoked or expired session
            // presented with a wrong signature: unproven too.
            1 => FailureKind::Expired,
            2 => FailureKind::Revoked,
            _ => FailureKind::MalformedToken,
        };
        refused(&session, "203.0.113.66", at(i), kind)
    }));
    assert!(
        out.iter()
            .flat_map(|o| &o.actions)
            .all(|a| !matches!(a, Action::RevokeSessions { .. })),
        "{out:#?}"
    );
    let p = only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0];
    assert!(p.new);
    assert_eq!(
        p.actions,
        vec![Action::BlockSourceIp {
            ip: ip("203.0.113.66"),
            for_secs: 900
        }]
    );
    assert_eq!(
        p.finding.actions,
        vec![format!(
            "block 203.0.113.66 for 900s instead of revoking sessions of {}: possession not proven",
            session.arn
        )]
    );
    assert!(
        p.finding
            .description
            .contains("revoke_sessions degraded to block_ip"),
        "{}",
        p.finding.description
    );
    // Updates keep saying so, and never revoke; while the failures go on
    // (the address's block lifted or run out) they block it again, at
    // most every 10 s.
    let out = s.send_all(
        (12..40).map(|i| refused(&session, "203.0.113.66", at(i), FailureKind::BadSignature)),
    );
    let mut reblocks = 0;
    for o in only(&out, kinds::BRUTE_FORCE_PRINCIPAL) {
        assert!(
            o.actions
                .iter()
                .all(|a| matches!(a, Action::BlockSourceIp { .. }))
        );
        reblocks += o.actions.len();
        assert!(o.finding.description.contains("were not revoked"));
    }
    assert!((1..=3).contains(&reblocks), "{reblocks} blocks in 28 s");

    // A long-term key id alone: the key is found, the signature is wrong.
    let mut config = DetectConfig::default();
    config.brute_force.action = Response::RevokeSessions;
    let mut s = Script::new(config);
    let dave = user("dave");
    let out = s.send_all(
        (0..12).map(|i| refused(&dave, "198.51.100.7", at(i), FailureKind::BadSignature)),
    );
    let p = only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0];
    assert_eq!(
        p.actions,
        vec![Action::BlockSourceIp {
            ip: ip("198.51.100.7"),
            for_secs: 3600
        }]
    );
    // An unknown key names no principal: nothing to revoke or degrade.
    let out = s.send_all((0..12).map(|i| {
        refused_key(
            "AKIAUNKNOWN",
            "198.51.100.8",
            at(i),
            FailureKind::UnknownKey,
        )
    }));
    assert!(out.iter().all(|o| o.actions.is_empty()), "{out:#?}");
}

#[test]
fn proven_refusals_revoke_and_a_single_forgery_spoils_the_window() {
    let mut config = DetectConfig::default();
    config.brute_force.action = Response::RevokeSessions;
    let session = role_session("payments", "worker-1", "10.0.0.5");
    let revoke = Action::RevokeSessions {
        principal_arn: session.arn.clone(),
    };

    // The holder of a revoked session's secret keeps logging in with it.
    let mut s = Script::new(config.clone());
    let out = s.send_all(
        (0..10).map(|i| proven_refusal(&session, "10.0.0.5", at(i), FailureKind::Revoked)),
    );
    assert_eq!(
        only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0].actions,
        vec![revoke.clone()]
    );

    // Nine proven and one forged: blocked, not revoked; the revocation
    // follows once a window of proven refusals fills, and only once.
    let mut s = Script::new(config);
    let mut events: Vec<Event> = (0..9)
        .map(|i| proven_refusal(&session, "10.0.0.5", at(i), FailureKind::Expired))
        .collect();
    events.push(refused(
        &session,
        "203.0.113.66",
        at(9),
        FailureKind::BadSignature,
    ));
    let out = s.send_all(events);
    let p = only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0];
    assert_eq!(
        p.actions,
        vec![Action::BlockSourceIp {
            ip: ip("203.0.113.66"),
            for_secs: 3600
        }]
    );
    let out = s.send_all(
        (10..19).map(|i| proven_refusal(&session, "10.0.0.5", at(i), FailureKind::Expired)),
    );
    assert!(
        only(&out, kinds::BRUTE_FORCE_PRINCIPAL)
            .iter()
            .all(|o| o.actions.is_empty())
    );
    let out = s.send(proven_refusal(
        &session,
        "10.0.0.5",
        at(19),
        FailureKind::Expired,
    ));
    let p = only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0];
    assert!(!p.new);
    assert_eq!(p.actions, vec![revoke]);
    assert_eq!(
        p.finding.actions.last(),
        Some(&format!("revoke sessions of {}", session.arn))
    );
    assert!(!p.finding.description.contains("not revoked"));
    let out = s.send_all(
        (20..60).map(|i| proven_refusal(&session, "10.0.0.5", at(i), FailureKind::Expired)),
    );
    assert!(out.iter().all(|o| o.actions.is_empty()));
}

#[test]
fn disabled_key_revokes_only_on_proof() {
    let mut config = DetectConfig::default();
    config.disabled_key.action = Response::RevokeSessions;
    let mia = user("mia");
    let mut s = Script::new(config.clone());
    let out = s.send(refused(
        &mia,
        "203.0.113.4",
        at(0),
        FailureKind::InactiveKey,
    ));
    let o = only(&out, kinds::DISABLED_KEY_USED)[0];
    assert_eq!(
        o.actions,
        vec![Action::BlockSourceIp {
            ip: ip("203.0.113.4"),
            for_secs: 3600
        }]
    );
    let mut s = Script::new(config.clone());
    let out = s.send(proven_refusal(
        &mia,
        "203.0.113.4",
        at(0),
        FailureKind::InactiveKey,
    ));
    assert_eq!(
        only(&out, kinds::DISABLED_KEY_USED)[0].actions,
        vec![Action::RevokeSessions {
            principal_arn: mia.arn.clone()
        }]
    );

    // At the API: a call signed with a deleted key proves nothing.
    let mut s = Script::new(config);
    s.send(api(
        "DeleteAccessKey",
        Some(r#"{"accessKeyId":"AKIAOLD","userName":"mia"}"#),
        Some("AKIAADMIN"),
        at(0),
    ));
    let Event::Api(mut call) = api("ListUsers", None, Some("AKIAOLD"), at(5)) else {
        unreachable!()
    };
    call.error = Some(("InvalidClientTokenId".into(), "unknown access key".into()));
    call.possession_proven = false;
    let out = s.send(Event::Api(call));
    let o = only(&out, kinds::DISABLED_KEY_USED)[0];
    assert_eq!(
        o.actions,
        vec![Action::BlockSourceIp {
            ip: ip("192.0.2.10"),
            for_secs: 3600
        }]
    );
}

#[test]
fn brute_force_window_boundary_is_inclusive() {
    // Ten failures spanning exactly 60 s fire...
    let mut s = Script::default();
    let mut times: Vec<u64> = (0..9).collect();
    times.push(60);
    let out = s.send_all(
        times
            .iter()
            .map(|t| refused_key("AKIAX", "203.0.113.1", at(*t), FailureKind::BadSignature)),
    );
    assert_eq!(only(&out, kinds::BRUTE_FORCE_SOURCE_IP).len(), 1);
    // ...spanning 61 s do not.
    let mut s = Script::default();
    times[9] = 61;
    let out = s.send_all(
        times
            .iter()
            .map(|t| refused_key("AKIAX", "203.0.113.1", at(*t), FailureKind::BadSignature)),
    );
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn brute_force_stays_quiet_on_slow_failures_and_non_credential_refusals() {
    let mut s = Script::default();
    let dave = user("dave");
    // Nine failures over ten minutes.
    let out = s.send_all(
        (0..9).map(|i| refused(&dave, "10.0.0.8", at(i * 70), FailureKind::BadSignature)),
    );
    assert!(out.is_empty());
    // Twenty, one every 30 s: any ten span 270 s.
    let out = s.send_all(
        (0..20).map(|i| refused(&dave, "10.0.0.9", at(1000 + i * 30), FailureKind::Expired)),
    );
    assert!(out.is_empty());
    // Throttling, blocking, an unavailable trail, plaintext, wrong target:
    // not about credentials.
    for kind in [
        FailureKind::Throttled,
        FailureKind::Blocked,
        FailureKind::AuditUnavailable,
        FailureKind::StoreUnavailable,
        FailureKind::UpstreamUnavailable,
        FailureKind::Plaintext,
        FailureKind::WrongTarget,
    ] {
        let out = s.send_all((0..50).map(|i| refused(&dave, "10.0.0.10", at(5000 + i), kind)));
        assert!(out.is_empty(), "{kind:?}: {out:?}");
    }
    // Turned off.
    let mut config = DetectConfig::default();
    config.brute_force.enabled = false;
    let mut s = Script::new(config);
    let out =
        s.send_all((0..50).map(|i| refused(&dave, "10.0.0.8", at(i), FailureKind::BadSignature)));
    assert!(out.is_empty());
}

#[test]
fn brute_force_memory_is_capped_and_expires() {
    let config = DetectConfig {
        max_tracked_keys: 3,
        ..DetectConfig::default()
    };
    let mut s = Script::new(config);
    for i in 0..10u64 {
        s.send(refused_key(
            &format!("AKIA{i}"),
            &format!("192.0.2.{i}"),
            at(i),
            FailureKind::UnknownKey,
        ));
        let t = s.d.tracked();
        assert!(t.failure_sources <= 3 && t.failure_principals <= 3, "{t:?}");
    }
    assert_eq!(s.d.tracked().failure_sources, 3);
    // A failure long after the window forgets the rest.
    s.send(refused_key(
        "AKIAZ",
        "192.0.2.200",
        at(1000),
        FailureKind::UnknownKey,
    ));
    let t = s.d.tracked();
    assert_eq!(
        (t.failure_sources, t.failure_principals, t.failures),
        (1, 1, 2)
    );
}

// ---------------------------------------------------------------- rule 2

#[test]
fn new_source_ip_after_history() {
    let mut s = Script::default();
    let erin = user("erin");
    let usual = ["10.0.0.1", "10.0.0.2"];
    let out = s.send_all((0..5).map(|i| login(&erin, usual[i % 2], on(0, 10, i as u64))));
    assert!(out.is_empty());
    let out = s.send(login(&erin, "203.0.113.50", on(0, 11, 0)));
    let news = only(&out, kinds::NEW_SOURCE_IP);
    assert_eq!(news.len(), 1, "{out:?}");
    let f = &news[0].finding;
    assert!(news[0].new);
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.source_ip, Some(ip("203.0.113.50")));
    assert_eq!(f.principal.as_deref(), Some(erin.arn.as_str()));
    assert_eq!(f.resource, "orders");
    assert_eq!(f.evidence, ids(6..=6));
    assert_eq!(
        f.title,
        format!("{} logged in from a new address, 203.0.113.50", erin.arn)
    );
    assert!(
        f.description
            .contains("5 logins before (recently: 10.0.0.1, 10.0.0.2)"),
        "{}",
        f.description
    );
    // Known now.
    assert!(
        s.send(login(&erin, "203.0.113.50", on(0, 11, 5)))
            .is_empty()
    );
    // Another new address is another finding.
    let out = s.send(login(&erin, "203.0.113.51", on(0, 12, 0)));
    assert_eq!(only(&out, kinds::NEW_SOURCE_IP).len(), 1);
    assert_eq!(s.of_kind(kinds::NEW_SOURCE_IP).len(), 2);
}

#[test]
fn new_source_ip_quiet_before_history_and_from_usual_addresses() {
    let mut s = Script::default();
    let frank = user("frank");
    // Five different addresses while the history is short.
    let out = s.send_all((0..5).map(|i| login(&frank, &format!("10.0.1.{i}"), on(0, 9, i))));
    assert!(out.is_empty());
    // Then any of them, a hundred times, at usual hours.
    let out = s.send_all((0..100).map(|i| {
        login(
            &frank,
            &format!("10.0.1.{}", i % 5),
            on(1 + i / 10, 9 + i % 8, 0),
        )
    }));
    assert!(out.is_empty(), "{out:?}");
    // An IPv4-mapped IPv6 form of a known address is not new.
    assert!(
        s.send(login(&frank, "::ffff:10.0.1.3", on(20, 10, 0)))
            .is_empty()
    );
}

#[test]
fn new_source_ip_history_is_per_role_not_per_session_name() {
    let mut s = Script::default();
    let out = s.send_all((0..5).map(|i| {
        let who = role_session("etl", &format!("run{i}"), "10.0.0.1");
        login(&who, "10.0.0.1", on(0, 10, i))
    }));
    assert!(out.is_empty());
    let known = role_session("etl", "run6", "10.0.0.1");
    assert!(s.send(login(&known, "10.0.0.1", on(0, 10, 30))).is_empty());
    let stranger = role_session("etl", "run7", "10.0.0.77");
    let out = s.send(login(&stranger, "10.0.0.77", on(0, 10, 40)));
    let f = &only(&out, kinds::NEW_SOURCE_IP)[0].finding;
    assert_eq!(f.principal.as_deref(), Some(stranger.arn.as_str()));
    assert!(
        f.description
            .contains("credentials of arn:aws:iam::123456789012:role/etl"),
        "{}",
        f.description
    );
}

#[test]
fn new_source_ip_memory_per_principal_is_capped() {
    let mut config = DetectConfig::default();
    config.new_source_ip.max_ips_per_principal = 2;
    config.new_source_ip.min_history = 1;
    let mut s = Script::new(config);
    let gina = user("gina");
    s.send(login(&gina, "10.0.0.1", on(0, 10, 0)));
    s.send(login(&gina, "10.0.0.2", on(0, 10, 1)));
    s.send(login(&gina, "10.0.0.3", on(0, 10, 2)));
    assert_eq!(s.d.tracked().max_ips_per_principal, 2);
    // 10.0.0.1 was forgotten, so it is new again (and a new finding key).
    let out = s.send(login(&gina, "10.0.0.1", on(0, 10, 3)));
    assert_eq!(only(&out, kinds::NEW_SOURCE_IP).len(), 1);
}

// ---------------------------------------------------------------- rule 3

#[test]
fn token_from_other_ip_fires_and_dedups() {
    let mut config = DetectConfig::default();
    config.token_from_other_ip.action = Response::RevokeSessions;
    let mut s = Script::new(config);
    let stolen = role_session("app", "web1", "198.51.100.7");
    let out = s.send(login(&stolen, "203.0.113.9", at(100)));
    let o = only(&out, kinds::TOKEN_FROM_OTHER_IP)[0];
    assert!(o.new);
    assert_eq!(o.finding.severity, Severity::High);
    assert_eq!(o.finding.resource, "ASIAWEB1");
    assert_eq!(o.finding.source_ip, Some(ip("203.0.113.9")));
    assert_eq!(
        o.actions,
        vec![Action::RevokeSessions {
            principal_arn: stolen.arn.clone()
        }]
    );
    assert_eq!(
        o.finding.title,
        format!(
            "Temporary credentials of {} obtained from 198.51.100.7 used from 203.0.113.9",
            stolen.arn
        )
    );
    assert!(
        o.finding
            .description
            .contains("Role arn:aws:iam::123456789012:role/app")
    );
    // Again: count 2, reported, no action.
    let out = s.send(login(&stolen, "203.0.113.9", at(160)));
    let o = only(&out, kinds::TOKEN_FROM_OTHER_IP)[0];
    assert!(!o.new && o.actions.is_empty());
    assert_eq!(o.finding.count, 2);
    assert_eq!(o.finding.evidence, ids(1..=2));
    assert_eq!(o.finding.last_seen, at(160));
    // Count 3: not reported.
    assert!(
        only(
            &s.send(login(&stolen, "203.0.113.9", at(170))),
            kinds::TOKEN_FROM_OTHER_IP
        )
        .is_empty()
    );
}

/// F3: a captured token that the victim's policy refuses from the
/// attacker's address, replayed. Its signature verifies, but the gateway
/// records every presentation after the first as unproven (the token was
/// seen before), so the replays block the address and never revoke; and
/// refusals, replayed or not, never raise rule 3, which acts only on a
/// login. A reused token that does log in from another address is a
/// session in someone else's hands: rule 3 still revokes.
#[test]
fn replayed_tokens_refused_by_policy_never_revoke() {
    let mut config = DetectConfig::default();
    config.brute_force.action = Response::RevokeSessions;
    config.brute_force.block_secs = 900;
    config.token_from_other_ip.action = Response::RevokeSessions;
    config.stored_credential_refused.action = Response::RevokeSessions;
    let victim = role_session("payments", "worker-1", "10.1.0.5");
    let mut s = Script::new(config);
    let out = s.send_all((0..12).map(|i| {
        let Event::Auth(mut a) = refused(&victim, "203.0.113.66", at(i), FailureKind::PolicyDenied)
        else {
            unreachable!()
        };
        // The attacker's first presentation may be the token's first.
        a.possession_proven = i == 0;
        Event::Auth(a)
    }));
    assert!(
        out.iter()
            .flat_map(|o| &o.actions)
            .all(|a| !matches!(a, Action::RevokeSessions { .. })),
        "{out:#?}"
    );
    assert!(only(&out, kinds::TOKEN_FROM_OTHER_IP).is_empty());
    let p = only(&out, kinds::BRUTE_FORCE_PRINCIPAL)[0];
    assert_eq!(
        p.actions,
        vec![Action::BlockSourceIp {
            ip: ip("203.0.113.66"),
            for_secs: 900
        }]
    );

    // Let in by policy but refused by the real server (rule 9): a replay
    // proves nothing there either.
    let Event::Auth(mut a) = refused(
        &victim,
        "203.0.113.67",
        at(15),
        FailureKind::UpstreamCredentialRefused,
    ) else {
        unreachable!()
    };
    a.possession_proven = false;
    let out = s.send(Event::Auth(a));
    let o = only(&out, kinds::STORED_CREDENTIAL_REFUSED)[0];
    assert_eq!(
        o.actions,
        vec![Action::BlockSourceIp {
            ip: ip("203.0.113.67"),
            for_secs: 3600
        }]
    );

    // The same replay, let in from elsewhere: rule 3 revokes.
    let Event::Auth(mut a) = login(&victim, "198.51.100.9", at(20)) else {
        unreachable!()
    };
    a.possession_proven = false;
    let out = s.send(Event::Auth(a));
    assert_eq!(
        only(&out, kinds::TOKEN_FROM_OTHER_IP)[0].actions,
        vec![Action::RevokeSessions {
            principal_arn: victim.arn.clone()
        }]
    );
}

#[test]
fn token_from_other_ip_quiet_cases() {
    let mut config = DetectConfig::default();
    config.token_from_other_ip.trusted_networks = vec!["10.0.0.0/8".into(), "198.51.100.1".into()];
    let mut s = Script::new(config);
    // Same address, also in another spelling.
    assert!(
        s.send(login(
            &role_session("app", "a", "203.0.113.5"),
            "203.0.113.5",
            at(0)
        ))
        .is_empty()
    );
    assert!(
        s.send(login(
            &role_session("app", "b", "203.0.113.5"),
            "::ffff:203.0.113.5",
            at(1)
        ))
        .is_empty()
    );
    // Long-term keys have no origin to compare.
    assert!(
        s.send(login(&user("henry"), "203.0.113.5", at(2)))
            .is_empty()
    );
    // Obtained through the NAT, used from inside: both trusted.
    assert!(
        s.send(login(
            &role_session("app", "c", "198.51.100.1"),
            "10.2.3.4",
            at(3)
        ))
        .is_empty()
    );
    // An origin that is not an address.
    assert!(
        s.send(login(&role_session("app", "d", ""), "10.2.3.4", at(4)))
            .is_empty()
    );
    // Only one side trusted: still reported.
    let out = s.send(login(
        &role_session("app", "e", "198.51.100.1"),
        "203.0.113.77",
        at(5),
    ));
    assert_eq!(only(&out, kinds::TOKEN_FROM_OTHER_IP).len(), 1);
}

// ---------------------------------------------------------------- rule 4

/// Fifty logins on weekdays between 09:00 and 17:00 from one address.
fn office_hours(who: &Identity) -> Vec<Event> {
    (0..50u64)
        .map(|i| login(who, "10.0.0.1", on(i / 8, 9 + i % 8, 15)))
        .collect()
}

#[test]
fn unusual_hour_after_enough_history() {
    let mut s = Script::default();
    let ivan = user("ivan");
    assert!(s.send_all(office_hours(&ivan)).is_empty());
    let out = s.send(login(&ivan, "10.0.0.1", on(7, 3, 12)));
    let o = only(&out, kinds::UNUSUAL_HOUR);
    assert_eq!(o.len(), 1, "{out:?}");
    let f = &o[0].finding;
    assert_eq!(f.severity, Severity::Low);
    assert_eq!(
        f.title,
        format!("{} logged in at 03:00–04:00 UTC, an unusual hour", ivan.arn)
    );
    assert!(
        f.description.contains("0 of its 50 earlier logins (0.0%)"),
        "{}",
        f.description
    );
    assert!(
        f.description.contains("usually logs in at 09:00, 10:00"),
        "{}",
        f.description
    );
    assert_eq!(f.evidence, ids(51..=51));
}

#[test]
fn unusual_hour_quiet_at_usual_hours_and_before_min_events() {
    let mut s = Script::default();
    let judy = user("judy");
    let mut events = office_hours(&judy);
    events.truncate(49);
    assert!(s.send_all(events).is_empty());
    // 49 logins: still learning.
    assert!(s.send(login(&judy, "10.0.0.1", on(8, 3, 0))).is_empty());
    // Usual hours.
    assert!(
        s.send_all((0..20).map(|i| login(&judy, "10.0.0.1", on(9 + i, 9 + i % 8, 0))))
            .is_empty()
    );
}

#[test]
fn unusual_hour_share_threshold_is_strict() {
    let mut config = DetectConfig::default();
    config.unusual_hour.min_events = 100;
    let mut s = Script::new(config);
    let kim = user("kim");
    // 99 at 10:00 and one at 03:00: 03:00 holds exactly 1%.
    s.send_all((0..99).map(|i| login(&kim, "10.0.0.1", on(i, 10, 0))));
    assert!(
        s.send(login(&kim, "10.0.0.1", on(100, 3, 0))).is_empty(),
        "still learning"
    );
    assert!(
        s.send(login(&kim, "10.0.0.1", on(101, 3, 0))).is_empty(),
        "1 of 100 is not below 1%"
    );
    assert_eq!(
        only(
            &s.send(login(&kim, "10.0.0.1", on(102, 4, 0))),
            kinds::UNUSUAL_HOUR
        )
        .len(),
        1
    );
}

// ---------------------------------------------------------------- rule 5

fn sessions(s: &mut Script, db: &str, window: u64, n: u64) -> Vec<Outcome> {
    let app = user("app");
    s.send_all((0..n).map(|i| {
        let t = at(window * 10) + Duration::from_millis(i * 9_000 / n.max(1));
        Event::SessionStart(session_on(
            db,
            &app,
            &format!("10.0.{}.{}", i % 3, i % 200),
            t,
        ))
    }))
}

#[test]
fn connection_spike_fires_once_per_window() {
    let mut s = Script::default();
    for w in 0..10 {
        assert!(sessions(&mut s, "orders", w, 20).is_empty());
    }
    let before = s.n;
    let out = sessions(&mut s, "orders", 10, 250);
    assert_eq!(out.len(), 1, "{out:?}");
    let f = &out[0].finding;
    assert!(out[0].new);
    assert_eq!(f.kind, kinds::CONNECTION_SPIKE);
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.resource, "orders");
    assert_eq!(f.principal, None);
    // The 201st session crossed both 200 and 5 × 20.
    assert_eq!(f.evidence, vec![format!("ev-{}", before + 201)]);
    assert_eq!(
        f.title,
        "201 sessions to orders in 10 s, 10× the usual rate"
    );
    assert!(
        f.description
            .contains("average of 20.0 over the previous 10 windows"),
        "{}",
        f.description
    );
    assert!(
        f.description.contains("Top sources: 10.0.0."),
        "{}",
        f.description
    );
    // The next window spikes again: the average is (10×20 + 250)/11 ≈ 40.9,
    // so 205 is the first above 5×.
    let before = s.n;
    let out = sessions(&mut s, "orders", 11, 250);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(!out[0].new);
    assert_eq!(out[0].finding.count, 2);
    assert_eq!(
        out[0].finding.evidence.last(),
        Some(&format!("ev-{}", before + 205))
    );
}

#[test]
fn connection_spike_quiet_on_steady_or_small_load() {
    let mut s = Script::default();
    // Steady and busy: above min_connections but never 5× the average.
    for w in 0..30 {
        assert!(sessions(&mut s, "busy", w, 300 + (w % 3) * 50).is_empty());
    }
    // Small: 5× the average but not above 200.
    for w in 0..10 {
        assert!(sessions(&mut s, "small", w, 10).is_empty());
    }
    assert!(sessions(&mut s, "small", 10, 200).is_empty());
    // No baseline yet: the first windows of a database are never a spike.
    assert!(sessions(&mut s, "fresh", 0, 500).is_empty());
    assert!(sessions(&mut s, "fresh", 1, 500).is_empty());
}

#[test]
fn connection_spike_after_idle_hour() {
    let mut s = Script::default();
    for w in 0..5 {
        sessions(&mut s, "quiet", w, 2);
    }
    // An hour later: the baseline is all empty windows.
    let out = sessions(&mut s, "quiet", 400, 201);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].finding.title,
        "201 sessions to quiet in 10 s, up from none"
    );
}

// ---------------------------------------------------------------- rule 6

#[test]
fn classifier() {
    let cases: &[(&str, Option<(&str, Severity)>)] = &[
        ("DROP TABLE t", Some(("DROP TABLE", Severity::Medium))),
        (
            "drop table if exists t",
            Some(("DROP TABLE", Severity::Medium)),
        ),
        (
            "DROP DATABASE shop",
            Some(("DROP DATABASE", Severity::High)),
        ),
        (
            "DROP SCHEMA s CASCADE",
            Some(("DROP SCHEMA", Severity::High)),
        ),
        (
            "DROP TEMPORARY TABLE t",
            Some(("DROP TABLE", Severity::Medium)),
        ),
        (
            "DROP MATERIALIZED VIEW v",
            Some(("DROP VIEW", Severity::Medium)),
        ),
        ("DROP POLICY p ON t", Some(("DROP", Severity::Medium))),
        ("TRUNCATE orders", Some(("TRUNCATE", Severity::High))),
        ("truncate table orders", Some(("TRUNCATE", Severity::High))),
        (
            "DELETE FROM t",
            Some(("DELETE without WHERE", Severity::High)),
        ),
        ("DELETE FROM t WHERE id = ?", None),
        (
            "delete from t where id in (select id from u where x = ?)",
            None,
        ),
        (
            "DELETE FROM t USING (SELECT id FROM u WHERE x = ?) s",
            Some(("DELETE without WHERE", Severity::High)),
        ),
        (
            "UPDATE t SET a = ?",
            Some(("UPDATE without WHERE", Severity::Medium)),
        ),
        ("UPDATE t SET a = ? WHERE id = ?", None),
        (
            "UPDATE t SET a = (SELECT b FROM u WHERE u.id = t.id)",
            Some(("UPDATE without WHERE", Severity::Medium)),
        ),
        (
            "UPDATE t SET a = (SELECT b FROM u WHERE u.id = t.id) WHERE t.x = ?",
            None,
        ),
        (
            "UPDATE \"where\" SET a = ?",
            Some(("UPDATE without WHERE", Severity::Medium)),
        ),
        (
            "UPDATE t SET a = 'x WHERE y'",
            Some(("UPDATE without WHERE", Severity::Medium)),
        ),
        (
            "UPDATE t SET a = ? -- WHERE id = 1",
            Some(("UPDATE without WHERE", Severity::Medium)),
        ),
        (
            "UPDATE t SET a = $$ WHERE $$",
            Some(("UPDATE without WHERE", Severity::Medium)),
        ),
        ("UPDATE t SET a = $1 WHERE id = $2", None),
        (
            "GRANT ALL ON t TO PUBLIC",
            Some(("GRANT", Severity::Medium)),
        ),
        (
            "revoke select on t from bob",
            Some(("REVOKE", Severity::Medium)),
        ),
        (
            "ALTER ROLE bob PASSWORD ?",
            Some(("password or authentication change", Severity::High)),
        ),
        (
            "ALTER USER bob WITH SUPERUSER",
            Some(("ALTER USER", Severity::Medium)),
        ),
        ("ALTER TABLE t ADD COLUMN c int", None),
        (
            "CREATE ROLE eve SUPERUSER LOGIN",
            Some(("CREATE ROLE ... SUPERUSER", Severity::Medium)),
        ),
        (
            "CREATE USER eve WITH SUPERUSER",
            Some(("CREATE USER ... SUPERUSER", Severity::Medium)),
        ),
        ("CREATE ROLE eve NOSUPERUSER LOGIN", None),
        ("CREATE TABLE superuser (a int)", None),
        ("SELECT * FROM t", None),
        (
            "SELECT 1; DROP TABLE t",
            Some(("DROP TABLE", Severity::Medium)),
        ),
        (
            "DROP TABLE a; TRUNCATE b",
            Some(("TRUNCATE", Severity::High)),
        ),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            Some(("DELETE without WHERE", Severity::High)),
        ),
        (
            "WITH x AS (SELECT id FROM u WHERE a = ?) DELETE FROM t",
            Some(("DELETE without WHERE", Severity::High)),
        ),
        (
            "WITH x AS (SELECT id FROM u) DELETE FROM t WHERE id IN (SELECT id FROM x)",
            None,
        ),
        (
            "WITH x(a, b) AS MATERIALIZED (SELECT ?, ?) UPDATE t SET a = ?",
            Some(("UPDATE without WHERE", Severity::Medium)),
        ),
        ("EXPLAIN DELETE FROM t", None),
        (
            "EXPLAIN ANALYZE DELETE FROM t",
            Some(("DELETE without WHERE", Severity::High)),
        ),
        (
            "EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = ?",
            Some(("UPDATE without WHERE", Severity::Medium)),
        ),
        (
            "(DELETE FROM t)",
            Some(("DELETE without WHERE", Severity::High)),
        ),
        (
            "INSERT INTO t VALUES (?) ON CONFLICT (id) DO UPDATE SET a = ?",
            None,
        ),
        ("", None),
        (";;", None),
        ("DELETE", Some(("DELETE without WHERE", Severity::High))),
        ("DELETE FROM t WHERE (", None),
        (
            "UPDATE t SET a = ((( WHERE",
            Some(("UPDATE without WHERE", Severity::Medium)),
        ),
        ("UPDATE t SET a = ?)) WHERE id = ?", None),
        (
            "DELETE FROM café",
            Some(("DELETE without WHERE", Severity::High)),
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(is_destructive(sql), *expected, "{sql:?}");
    }
}

fn firewall_statement(
    text: &str,
    fingerprint: u64,
    identity: &Identity,
    time: SystemTime,
    verdict: FirewallVerdict,
) -> Event {
    let Event::Statement(mut s) = statement(text, identity, time, None) else {
        unreachable!()
    };
    Arc::make_mut(&mut s.statement).fingerprint = fingerprint;
    s.policy = Some(Arc::new(PolicyDecision::firewall_only(verdict)));
    Event::Statement(s)
}

const QUIET: FirewallVerdict = FirewallVerdict {
    mode: FirewallState::Alert,
    unseen: false,
    tautology: false,
    time_probe: false,
    comment: false,
    stacked: false,
    union: false,
    refused: false,
};

#[test]
fn firewall_verdicts_become_findings_per_shape_and_principal() {
    let mut s = Script::default();
    let app = role_session("app", "s1", "10.0.0.5");
    let app2 = role_session("app", "s2", "10.0.0.6");
    // Nothing notable: nothing.
    assert!(
        s.send(firewall_statement("SELECT ? FROM t", 1, &app, at(1), QUIET))
            .is_empty()
    );
    let injected = FirewallVerdict {
        unseen: true,
        tautology: true,
        ..QUIET
    };
    let text = "SELECT total FROM orders WHERE id = ? OR ? = ?";
    let out = s.send(firewall_statement(text, 2, &app, at(2), injected));
    let kinds_seen: Vec<&str> = out.iter().map(|o| o.finding.kind.as_str()).collect();
    assert_eq!(
        kinds_seen,
        [kinds::UNSEEN_STATEMENT_SHAPE, kinds::TAUTOLOGY]
    );
    let unseen = &out[0].finding;
    assert_eq!(unseen.severity, Severity::Medium);
    assert_eq!(out[1].finding.severity, Severity::High);
    assert!(unseen.description.contains(text), "{}", unseen.description);
    assert!(unseen.description.contains("0000000000000002"));
    assert!(unseen.description.contains("It ran (alert mode)."));
    // The role's principal, whatever the session.
    assert_eq!(
        unseen.principal.as_deref(),
        Some("arn:aws:iam::123456789012:role/app")
    );
    assert_eq!(unseen.resource, "orders/0000000000000002");
    // Another session of the role, refused in block mode: the same
    // findings, counted.
    let blocked = FirewallVerdict {
        mode: FirewallState::Block,
        refused: true,
        ..injected
    };
    let out = s.send(firewall_statement(text, 2, &app2, at(3), blocked));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| !o.new && o.finding.count == 2));
    // Another shape: new findings.
    let out = s.send(firewall_statement(
        "SELECT ? UNION SELECT ?",
        3,
        &app,
        at(4),
        FirewallVerdict {
            union: true,
            comment: true,
            time_probe: true,
            stacked: true,
            ..QUIET
        },
    ));
    let kinds_seen: Vec<&str> = out.iter().map(|o| o.finding.kind.as_str()).collect();
    assert_eq!(
        kinds_seen,
        [
            kinds::TIME_BASED_PROBE,
            kinds::STACKED_STATEMENTS,
            kinds::UNION_PROBE,
            kinds::COMMENT_IN_STATEMENT
        ]
    );
}

#[test]
fn firewall_findings_can_be_turned_off() {
    let mut config = DetectConfig::default();
    config.sql_firewall.tautology = false;
    let mut s = Script::new(config);
    let lee = user("lee");
    let out = s.send(firewall_statement(
        "q",
        2,
        &lee,
        at(2),
        FirewallVerdict {
            unseen: true,
            tautology: true,
            ..QUIET
        },
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].finding.kind, kinds::UNSEEN_STATEMENT_SHAPE);
    let mut config = DetectConfig::default();
    config.sql_firewall.enabled = false;
    let mut s = Script::new(config);
    assert!(
        s.send(firewall_statement(
            "q",
            2,
            &lee,
            at(2),
            FirewallVerdict {
                unseen: true,
                ..QUIET
            }
        ))
        .is_empty()
    );
    let parsed: DetectConfig = toml::from_str("[sql_firewall]\ncomment = false\n").unwrap();
    assert!(!parsed.sql_firewall.comment && parsed.sql_firewall.unseen_shape);
}

#[test]
fn destructive_statements_report_escalate_and_say_when_they_failed() {
    let mut s = Script::default();
    let lee = user("lee");
    let out = s.send(statement("DROP TABLE audit_copy", &lee, at(10), None));
    let o = &out[0];
    assert!(o.new);
    assert_eq!(o.finding.kind, kinds::DESTRUCTIVE_STATEMENT);
    assert_eq!(o.finding.severity, Severity::Medium);
    assert_eq!(
        o.finding.title,
        format!("DROP TABLE by {} on orders", lee.arn)
    );
    assert!(
        o.finding
            .description
            .contains("ran `DROP TABLE audit_copy` on orders"),
        "{}",
        o.finding.description
    );
    assert_eq!(o.finding.evidence, ids(1..=1));
    assert_eq!(o.finding.source_ip, Some(ip("10.0.0.5")));
    // A GRANT by the same principal: same finding, count 2 (reported).
    let out = s.send(statement("GRANT ALL ON t TO bob", &lee, at(15), None));
    assert_eq!((out.len(), out[0].new, out[0].finding.count), (1, false, 2));
    assert_eq!(out[0].finding.severity, Severity::Medium);
    // A failed TRUNCATE: count 3, not a power of two, but the severity
    // rises to High, so it is reported.
    let out = s.send(statement("TRUNCATE orders", &lee, at(20), Some("42501")));
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert!(!o.new);
    assert_eq!(o.finding.count, 3);
    assert_eq!(o.finding.severity, Severity::High);
    assert_eq!(o.finding.evidence, ids(1..=3));
    assert_eq!(o.finding.first_seen, at(10));
    assert_eq!(o.finding.last_seen, at(20));
    assert_eq!(
        o.finding.title,
        format!("TRUNCATE (failed) by {} on orders", lee.arn)
    );
    assert!(
        o.finding.description.contains("failed with SQLSTATE 42501"),
        "{}",
        o.finding.description
    );
    // Count 4: reported; count 5, a Medium one: quiet, and still High.
    let out = s.send(statement("DELETE FROM t", &lee, at(40), None));
    assert_eq!(out[0].finding.count, 4);
    assert!(
        s.send(statement("DROP TABLE x", &lee, at(50), None))
            .is_empty()
    );
    assert_eq!(
        s.of_kind(kinds::DESTRUCTIVE_STATEMENT)[0].severity,
        Severity::High
    );
    // Another principal is another finding.
    let out = s.send(statement("DROP TABLE y", &user("max"), at(60), None));
    assert!(out[0].new);
}

#[test]
fn destructive_statements_quiet_on_ordinary_work() {
    let mut s = Script::default();
    let lee = user("lee");
    let out = s.send_all(
        [
            "SELECT * FROM orders WHERE id = ?",
            "UPDATE orders SET status = ? WHERE id = ?",
            "DELETE FROM carts WHERE id IN (SELECT id FROM carts WHERE expires < now())",
            "delete from sessions where expires < ?",
            "INSERT INTO t (a) VALUES (?)",
            "CREATE TABLE t (id int)",
            "ALTER TABLE t ADD COLUMN c text",
            "BEGIN",
            "COMMIT",
        ]
        .into_iter()
        .map(|t| statement(t, &lee, at(0), None)),
    );
    assert!(out.is_empty(), "{out:?}");
}

// ---------------------------------------------------------------- rule 7

#[test]
fn inactive_key_presented() {
    let mut config = DetectConfig::default();
    config.disabled_key.action = Response::BlockIp;
    let mut s = Script::new(config);
    let mia = user("mia");
    let out = s.send(refused(
        &mia,
        "203.0.113.4",
        at(0),
        FailureKind::InactiveKey,
    ));
    let o = only(&out, kinds::DISABLED_KEY_USED)[0];
    assert!(o.new);
    assert_eq!(o.finding.severity, Severity::High);
    assert_eq!(o.finding.resource, "AKIAMIA");
    assert_eq!(
        o.finding.title,
        "Inactive access key AKIAMIA presented from 203.0.113.4"
    );
    assert_eq!(
        o.actions,
        vec![Action::BlockSourceIp {
            ip: ip("203.0.113.4"),
            for_secs: 3600
        }]
    );
    assert_eq!(
        o.finding.actions,
        vec!["block 203.0.113.4 for 3600s".to_owned()]
    );
}

#[test]
fn deleted_key_presented() {
    let mut s = Script::default();
    assert!(
        s.send(api(
            "DeleteAccessKey",
            Some(r#"{"accessKeyId":"AKIAOLD","userName":"bob"}"#),
            Some("AKIAADMIN"),
            at(0),
        ))
        .is_empty()
    );
    assert_eq!(s.d.tracked().deleted_keys, 1);
    let out = s.send(refused_key(
        "AKIAOLD",
        "203.0.113.8",
        at(60),
        FailureKind::UnknownKey,
    ));
    let f = &only(&out, kinds::DISABLED_KEY_USED)[0].finding;
    assert_eq!(
        f.title,
        "Deleted access key AKIAOLD presented from 203.0.113.8"
    );
    assert!(
        f.description.contains(
            "Access key AKIAOLD of user bob was deleted at 2023-11-14T00:00:00.000Z (event ev-1)"
        ),
        "{}",
        f.description
    );
    assert_eq!(f.evidence, ids(2..=2));
    // Signing an STS call with it is reported too (another resource key
    // part is the same, the source address differs: a second finding).
    let out = s.send(api("GetCallerIdentity", None, Some("AKIAOLD"), at(70)));
    let f = &only(&out, kinds::DISABLED_KEY_USED)[0].finding;
    assert!(
        f.description
            .contains("iam.amazonaws.com GetCallerIdentity"),
        "{}",
        f.description
    );
}

#[test]
fn disabled_key_quiet_cases() {
    let mut s = Script::default();
    // A key never seen deleted.
    assert!(
        s.send(refused_key(
            "AKIATYPO",
            "10.0.0.1",
            at(0),
            FailureKind::UnknownKey
        ))
        .is_empty()
    );
    // A refused deletion does not delete.
    let Event::Api(mut refused_delete) = api(
        "DeleteAccessKey",
        Some(r#"{"accessKeyId":"AKIAKEEP"}"#),
        Some("AKIAADMIN"),
        at(1),
    ) else {
        unreachable!()
    };
    refused_delete.error = Some(("AccessDenied".into(), "no".into()));
    s.send(Event::Api(refused_delete));
    // Nonsense parameters.
    s.send(api("DeleteAccessKey", Some("not json"), None, at(2)));
    s.send(api(
        "DeleteAccessKey",
        Some(r#"{"accessKeyId":7}"#),
        None,
        at(3),
    ));
    s.send(api("DeleteAccessKey", None, None, at(4)));
    assert_eq!(s.d.tracked().deleted_keys, 0);
    assert!(
        s.send(refused_key(
            "AKIAKEEP",
            "10.0.0.1",
            at(5),
            FailureKind::UnknownKey
        ))
        .is_empty()
    );
    // Other failures with a deleted key are not this rule.
    s.send(api(
        "DeleteAccessKey",
        Some(r#"{"accessKeyId":"AKIAGONE"}"#),
        None,
        at(6),
    ));
    let out = s.send(refused_key(
        "AKIAGONE",
        "10.0.0.1",
        at(7),
        FailureKind::MalformedToken,
    ));
    assert!(only(&out, kinds::DISABLED_KEY_USED).is_empty());
}

// ---------------------------------------------------------------- rule 8

#[test]
fn admin_credentials_used_for_a_database() {
    let mut s = Script::default();
    let admin = user("admin");
    let out = s.send(login(&admin, "10.0.0.1", at(0)));
    let o = only(&out, kinds::ADMIN_CREDENTIAL_USED)[0];
    assert_eq!(o.finding.severity, Severity::Medium);
    assert_eq!(o.finding.resource, "orders");
    assert_eq!(
        o.finding.title,
        format!(
            "Administrator credentials {} used to log in to orders",
            admin.arn
        )
    );
    // Repeats: counts 2 (reported), 3 (quiet), 4 (reported).
    let counts: Vec<u64> = (1..=3)
        .flat_map(|i| s.send(login(&admin, "10.0.0.1", at(i))))
        .map(|o| o.finding.count)
        .collect();
    assert_eq!(counts, vec![2, 4]);
}

#[test]
fn admin_patterns() {
    let mut config = DetectConfig::default();
    config.admin_credential.admin_principals = vec![
        "*:user/admin".into(),
        "arn:aws:iam::*:role/break-glass".into(),
    ];
    let mut s = Script::new(config);
    assert_eq!(
        s.send(login(&user("Admin"), "10.0.0.1", at(0))).len(),
        1,
        "case"
    );
    assert!(
        s.send(login(&user("administrator"), "10.0.0.1", at(0)))
            .is_empty()
    );
    assert!(
        s.send(login(&user("notadmin"), "10.0.0.1", at(0)))
            .is_empty()
    );
    // A role session is matched by its role.
    let out = s.send(login(
        &role_session("break-glass", "x", "10.0.0.1"),
        "10.0.0.1",
        at(0),
    ));
    assert_eq!(only(&out, kinds::ADMIN_CREDENTIAL_USED).len(), 1);
    // A failed login is not use.
    assert!(
        only(
            &s.send(refused(
                &user("admin"),
                "10.0.0.1",
                at(0),
                FailureKind::BadSignature
            )),
            kinds::ADMIN_CREDENTIAL_USED
        )
        .is_empty()
    );

    use crate::rules::glob_match;
    assert!(glob_match("a*b*c", "aXXbYYc"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("a*b", "aXXc"));
    assert!(glob_match(
        "arn:aws:iam::*:user/admin",
        "arn:aws:iam::123456789012:user/admin"
    ));
    assert!(!glob_match(
        "arn:aws:iam::*:user/admin",
        "arn:aws:iam::123456789012:user/admin2"
    ));
}

// ---------------------------------------------------------------- the rest

#[test]
fn detector_can_move_to_the_trail_observer_thread() {
    fn send<T: Send + 'static>(_: &T) {}
    send(&Detector::new(DetectConfig::default()));
}

#[test]
fn finding_ids_are_stable_and_distinct() {
    let a = finding_id("T", "r", Some("p"), Some(ip("10.0.0.1")));
    assert_eq!(a.len(), 32);
    assert_eq!(
        a,
        finding_id("T", "r", Some("p"), Some(ip("::ffff:10.0.0.1")))
    );
    for other in [
        finding_id("T2", "r", Some("p"), Some(ip("10.0.0.1"))),
        finding_id("T", "r2", Some("p"), Some(ip("10.0.0.1"))),
        finding_id("T", "r", Some(""), Some(ip("10.0.0.1"))),
        finding_id("T", "r", None, Some(ip("10.0.0.1"))),
        finding_id("T", "r", Some("p"), None),
        finding_id("T", "rp", Some(""), Some(ip("10.0.0.1"))),
    ] {
        assert_ne!(a, other);
    }
}

#[test]
fn findings_and_other_events_are_ignored() {
    let mut s = Script::default();
    let f = Finding {
        id: "x".into(),
        kind: kinds::BRUTE_FORCE_SOURCE_IP.into(),
        severity: Severity::High,
        title: String::new(),
        description: String::new(),
        resource: String::new(),
        principal: None,
        source_ip: None,
        first_seen: at(0),
        last_seen: at(0),
        count: 1,
        evidence: Vec::new(),
        actions: Vec::new(),
    };
    assert!(s.send(Event::Finding(Box::new(f))).is_empty());
    assert_eq!(s.d.tracked(), Tracked::default());
}

#[test]
fn findings_table_is_capped() {
    let config = DetectConfig {
        max_findings: 2,
        ..DetectConfig::default()
    };
    let mut s = Script::new(config);
    for i in 0..5 {
        s.send(refused(
            &user(&format!("u{i}")),
            "10.0.0.1",
            at(i),
            FailureKind::InactiveKey,
        ));
        assert!(s.d.tracked().findings <= 2);
    }
}

#[derive(serde::Deserialize)]
struct File {
    detection: DetectConfig,
}

fn parse(text: &str) -> Result<DetectConfig, String> {
    toml::from_str::<File>(text)
        .map(|f| f.detection)
        .map_err(|e| e.to_string())
}

#[test]
fn config_parses_with_defaults() {
    assert_eq!(parse("[detection]\n"), Ok(DetectConfig::default()));
    let c = parse(
        r#"
        [detection]
        max_tracked_keys = 5000
        [detection.brute_force]
        threshold = 20
        window_secs = 120
        action = "block_ip"
        block_secs = 900
        count_kinds = ["bad_signature", "UNKNOWN_KEY"]
        [detection.token_from_other_ip]
        trusted_networks = ["10.0.0.0/8", "2001:db8::/32", "203.0.113.9"]
        action = "revoke_sessions"
        [detection.connection_spike]
        factor = 3.5
        [detection.destructive_statement]
        enabled = false
        [detection.admin_credential]
        admin_principals = ["*:user/admin", "*:user/root"]
        "#,
    )
    .expect("valid");
    assert_eq!(c.max_tracked_keys, 5000);
    assert_eq!(c.brute_force.threshold, 20);
    assert_eq!(c.brute_force.action, Response::BlockIp);
    assert_eq!(c.brute_force.block_secs, 900);
    assert_eq!(c.token_from_other_ip.action, Response::RevokeSessions);
    assert_eq!(c.connection_spike.factor, 3.5);
    assert_eq!(c.connection_spike.window_secs, 10);
    assert!(!c.destructive_statement.enabled);
    assert_eq!(c.admin_credential.admin_principals.len(), 2);
    assert_eq!(c.unusual_hour, UnusualHour::default());
    // Counted kinds take effect: an expired token no longer counts.
    let mut s = Script::new(c);
    let out =
        s.send_all((0..30).map(|i| refused_key("AKIAE", "10.0.0.1", at(i), FailureKind::Expired)));
    assert!(out.is_empty());
}

#[test]
fn config_rejects_nonsense() {
    for (text, expected) in [
        (
            "[detection.brute_force]\nwindow_secs = 0",
            "detection.brute_force.window_secs",
        ),
        (
            "[detection.brute_force]\nthreshold = 0",
            "detection.brute_force.threshold",
        ),
        (
            "[detection.brute_force]\ncount_kinds = [\"throttle\"]",
            "unknown failure kind \"throttle\"",
        ),
        (
            "[detection.brute_force]\ncount_kinds = []",
            "detection.brute_force.count_kinds",
        ),
        (
            "[detection.brute_force]\naction = \"block_ip\"\nblock_secs = 0",
            "block_ip needs block_secs",
        ),
        (
            "[detection.brute_force]\naction = \"shout\"",
            "unknown variant `shout`",
        ),
        (
            "[detection.connection_spike]\nfactor = 0.5",
            "detection.connection_spike.factor: must be at least 1",
        ),
        (
            "[detection.connection_spike]\nfactor = nan",
            "detection.connection_spike.factor",
        ),
        (
            "[detection.connection_spike]\nwindow_secs = 0",
            "detection.connection_spike.window_secs",
        ),
        (
            "[detection.connection_spike]\nbaseline_windows = 2\nmin_baseline_windows = 3",
            "min_baseline_windows",
        ),
        (
            "[detection.unusual_hour]\nmin_share = 0.0",
            "detection.unusual_hour.min_share",
        ),
        (
            "[detection.unusual_hour]\nmin_share = 1.5",
            "detection.unusual_hour.min_share",
        ),
        (
            "[detection.unusual_hour]\nmin_events = 0",
            "detection.unusual_hour.min_events",
        ),
        (
            "[detection.new_source_ip]\nmax_ips_per_principal = 0",
            "max_ips_per_principal",
        ),
        (
            "[detection.token_from_other_ip]\ntrusted_networks = [\"10.0.0.0/33\"]",
            "not an address or CIDR block",
        ),
        (
            "[detection.token_from_other_ip]\ntrusted_networks = [\"nat-gw\"]",
            "\"nat-gw\" is not an address",
        ),
        (
            "[detection.admin_credential]\nadmin_principals = [\"\"]",
            "empty pattern",
        ),
        ("[detection]\nmax_findings = 0", "detection.max_findings"),
        (
            "[detection]\nbrute_froce = {}",
            "unknown field `brute_froce`",
        ),
        (
            "[detection.brute_force]\nwindow = 60",
            "unknown field `window`",
        ),
    ] {
        let text = if text.starts_with("[detection]") {
            text.to_owned()
        } else {
            format!("[detection]\n{text}")
        };
        match parse(&text) {
            Ok(c) => panic!("{text:?} parsed: {c:?}"),
            Err(e) => assert!(e.contains(expected), "{text:?}: {e}"),
        }
    }
    let mut c = DetectConfig::default();
    c.connection_spike.factor = 0.9;
    assert!(Detector::try_new(c.clone()).is_err());
    // `new` takes it anyway, without panicking.
    let mut d = Detector::new(c);
    assert!(
        d.observe("e", &login(&user("a"), "10.0.0.1", at(0)))
            .is_empty()
    );
}

#[test]
fn cidr() {
    use crate::config::parse_cidr;
    let net = parse_cidr("10.0.0.0/8").expect("cidr");
    assert!(net.contains(ip("10.255.0.1")));
    assert!(net.contains(ip("::ffff:10.1.2.3")));
    assert!(!net.contains(ip("11.0.0.1")));
    assert!(
        parse_cidr("0.0.0.0/0")
            .expect("all")
            .contains(ip("192.0.2.1"))
    );
    let v6 = parse_cidr("2001:db8::/32").expect("v6");
    assert!(v6.contains(ip("2001:db8:1::1")));
    assert!(!v6.contains(ip("2001:db9::1")));
    assert!(!v6.contains(ip("10.0.0.1")));
    assert!(
        parse_cidr("192.0.2.7")
            .expect("one")
            .contains(ip("192.0.2.7"))
    );
    assert!(
        !parse_cidr("192.0.2.7")
            .expect("one")
            .contains(ip("192.0.2.8"))
    );
    assert!(parse_cidr("10.0.0.0/x").is_err());
}

#[test]
fn failures_counted_on_other_nodes_fill_this_node_s_window() {
    let mut here = Script::default();
    let mut there = Script::default();
    let alice = user("alice");
    // Six failures on the other node, four here: ten in the cluster.
    for i in 0..6 {
        there.send(refused(
            &alice,
            "203.0.113.9",
            at(i),
            FailureKind::BadSignature,
        ));
    }
    let tally = there.d.failure_tally(at(6));
    assert_eq!(
        tally,
        [(tally_key(ip("203.0.113.9"), FailureKind::BadSignature), 6)]
    );
    for (key, n) in &tally {
        assert!(here.d.failures_elsewhere(key, *n, at(7)).is_empty());
    }
    for i in 0..3 {
        let out = here.send(refused(
            &alice,
            "203.0.113.9",
            at(8 + i),
            FailureKind::BadSignature,
        ));
        assert!(out.is_empty(), "fired early: {out:?}");
    }
    let out = here.send(refused(
        &alice,
        "203.0.113.9",
        at(12),
        FailureKind::BadSignature,
    ));
    assert_eq!(only(&out, kinds::BRUTE_FORCE_SOURCE_IP).len(), 1, "{out:?}");
    // Kinds not counted, and keys that do not parse, count for nothing.
    let mut quiet = Script::default();
    let throttled = tally_key(ip("203.0.113.10"), FailureKind::Throttled);
    assert!(
        quiet
            .d
            .failures_elsewhere(&throttled, 100, at(1))
            .is_empty()
    );
    assert!(
        quiet
            .d
            .failures_elsewhere("not a key", 100, at(1))
            .is_empty()
    );
    assert!(
        quiet
            .d
            .failures_elsewhere("203.0.113.11 no_such_kind", 100, at(1))
            .is_empty()
    );
    // A quiet address leaves the tally after a window.
    assert!(there.d.failure_tally(at(6 + 61)).is_empty());
}
