//! Arbitrary event streams: no panics, bounded memory, sane outcomes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use latchkey_audit::{
    ApiEvent, ApiService, AuthEvent, AuthResult, Event, FailureKind, Identity, IdentityKind,
    Protocol, SessionContext, SessionInfo, SessionIssuer, Severity, Statement, StatementEvent,
};
use proptest::prelude::*;

use super::*;

fn time(secs: i64, millis: u64) -> SystemTime {
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    t.unwrap_or(UNIX_EPOCH) + Duration::from_millis(millis)
}

fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        // A few addresses, to collide.
        (0u8..6).prop_map(|n| IpAddr::V4(Ipv4Addr::new(203, 0, 113, n))),
        (0u8..3).prop_map(|n| IpAddr::V6(Ipv4Addr::new(203, 0, 113, n).to_ipv6_mapped())),
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z]{1,3}",
        ".{0,12}",
        Just("10.0.0.1".to_owned()),
        Just("203.0.113.1".to_owned()),
    ]
}

fn identity() -> impl Strategy<Value = Identity> {
    (
        prop_oneof![
            Just("arn:aws:iam::1:user/admin".to_owned()),
            "arn:aws:iam::1:user/[a-c]",
            ".{0,8}"
        ],
        "AKIA[A-C]{1}",
        proptest::option::of((text(), "arn:aws:iam::1:role/[a-b]")),
        0i64..2_000_000_000,
    )
        .prop_map(|(arn, key, session, created)| Identity {
            kind: if session.is_some() {
                IdentityKind::AssumedRole
            } else {
                IdentityKind::IamUser
            },
            arn,
            principal_id: "AIDA".into(),
            account_id: "1".into(),
            access_key_id: key,
            session: session.map(|(source_ip, role)| SessionContext {
                mfa_authenticated: false,
                creation_date: time(created, 0),
                issuer: SessionIssuer {
                    kind: "Role",
                    arn: role,
                    principal_id: "AROA".into(),
                    account_id: "1".into(),
                    user_name: "r".into(),
                },
                source_ip,
            }),
        })
}

fn statement_text() -> impl Strategy<Value = String> {
    let words = prop_oneof![
        Just("DELETE"),
        Just("UPDATE"),
        Just("DROP"),
        Just("TRUNCATE"),
        Just("WITH"),
        Just("EXPLAIN"),
        Just("ANALYZE"),
        Just("WHERE"),
        Just("AS"),
        Just("("),
        Just(")"),
        Just(";"),
        Just("'"),
        Just("\""),
        Just("$$"),
        Just("$a$"),
        Just("--"),
        Just("/*"),
        Just("*/"),
        Just("?"),
        Just("t"),
        Just("é"),
    ];
    prop_oneof![
        proptest::collection::vec(words, 0..16).prop_map(|w| w.join(" ")),
        proptest::collection::vec(
            prop_oneof![
                Just("DELETE"),
                Just("("),
                Just("WHERE"),
                Just(")"),
                Just("'")
            ],
            0..12
        )
        .prop_map(|w| w.concat()),
        any::<String>(),
    ]
}

/// Mostly within ten minutes; sometimes anywhere from before the epoch to
/// the year 5138.
fn when() -> impl Strategy<Value = SystemTime> {
    (
        prop_oneof![
            4 => 1_700_000_000i64..1_700_000_600,
            1 => -10_000_000_000i64..100_000_000_000
        ],
        0u64..1000,
    )
        .prop_map(|(s, ms)| time(s, ms))
}

fn session_info() -> impl Strategy<Value = Arc<SessionInfo>> {
    (when(), address(), identity(), "[a-e]").prop_map(|(started, source_ip, identity, database)| {
        Arc::new(SessionInfo {
            session_id: "s".into(),
            engine: "postgres",
            identity,
            source_ip,
            user_agent: None,
            database: database.clone(),
            resource_arn: String::new(),
            database_name: database,
            db_user: "u".into(),
            started,
        })
    })
}

fn event() -> impl Strategy<Value = Event> {
    let kind = proptest::sample::select(FailureKind::ALL.to_vec());
    let auth = (
        when(),
        address(),
        proptest::option::of(identity()),
        proptest::option::of(prop_oneof!["AKIA[A-C]{1}", ".{0,6}"]),
        proptest::option::of((kind, ".{0,8}")),
        proptest::option::of("[a-c]"),
        any::<bool>(),
    )
        .prop_map(
            |(time, source_ip, identity, key, failure, database, proven)| {
                Event::from(AuthEvent {
                    engine: "postgres",
                    time,
                    source_ip,
                    user_agent: None,
                    db_user: "u".into(),
                    endpoint: None,
                    database,
                    resource_arn: None,
                    identity,
                    access_key_id: key,
                    // A success may be unproven too (a reused token).
                    possession_proven: proven,
                    result: match failure {
                        Some((kind, reason)) => AuthResult::Failure { kind, reason },
                        None => AuthResult::Success,
                    },
                })
            },
        );
    let statement = (
        session_info(),
        statement_text(),
        when(),
        any::<bool>(),
        proptest::option::of("[0-9A-Z]{5}"),
    )
        .prop_map(|(session, text, time, truncated, error_code)| {
            Event::Statement(StatementEvent {
                session,
                statement: Arc::new(Statement {
                    text,
                    fingerprint: 0,
                    truncated,
                }),
                protocol: Protocol::Simple,
                time,
                duration: Duration::ZERO,
                command_tag: None,
                rows: None,
                error_code,
                policy: None,
            })
        });
    let api = (
        when(),
        prop_oneof![
            Just("DeleteAccessKey".to_owned()),
            Just("AssumeRole".to_owned()),
            ".{0,6}"
        ],
        proptest::option::of("AKIA[A-C]{1}"),
        proptest::option::of(prop_oneof![
            "\\{\"accessKeyId\":\"AKIA[A-F]\",\"userName\":\"[a-z]{0,3}\"\\}",
            ".{0,20}"
        ]),
        any::<bool>(),
        address(),
        any::<bool>(),
    )
        .prop_map(|(time, action, key, params, failed, source_ip, proven)| {
            Event::from(ApiEvent {
                time,
                service: ApiService::Iam,
                action,
                identity: None,
                access_key_id: key,
                source_ip,
                user_agent: None,
                request_parameters: params,
                response_elements: None,
                error: failed.then(|| ("E".to_owned(), "e".to_owned())),
                possession_proven: proven,
                request_id: String::new(),
                read_only: false,
                resources: Vec::new(),
            })
        });
    prop_oneof![
        4 => auth,
        2 => session_info().prop_map(Event::SessionStart),
        2 => statement,
        2 => api,
    ]
}

/// Small caps and hair triggers, so that every table fills and every rule
/// fires.
fn tight(action: Response) -> DetectConfig {
    let mut c = DetectConfig {
        max_tracked_keys: 4,
        max_findings: 3,
        ..DetectConfig::default()
    };
    c.brute_force.threshold = 3;
    c.brute_force.window_secs = 5;
    c.brute_force.action = action;
    c.new_source_ip.min_history = 1;
    c.new_source_ip.max_ips_per_principal = 2;
    c.new_source_ip.action = action;
    c.token_from_other_ip.trusted_networks = vec!["203.0.113.0/30".into()];
    c.token_from_other_ip.action = action;
    c.unusual_hour.min_events = 2;
    c.unusual_hour.min_share = 0.5;
    c.unusual_hour.action = action;
    c.connection_spike.window_secs = 1;
    c.connection_spike.factor = 1.0;
    c.connection_spike.min_connections = 1;
    c.connection_spike.baseline_windows = 3;
    c.connection_spike.min_baseline_windows = 0;
    c.connection_spike.action = action;
    c.destructive_statement.action = action;
    c.disabled_key.action = action;
    c.admin_credential.admin_principals = vec!["*user/a*".into(), "*".into()];
    c.admin_credential.action = action;
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn observe_is_total_and_bounded(
        events in proptest::collection::vec(event(), 0..150),
        action in proptest::sample::select(vec![Response::None, Response::BlockIp, Response::RevokeSessions]),
    ) {
        let config = tight(action);
        config.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut d = Detector::new(config);
        let mut fired = 0usize;
        for (n, event) in events.iter().enumerate() {
            let id = format!("ev-{n}");
            for o in d.observe(&id, event) {
                fired += 1;
                let f = &o.finding;
                prop_assert_eq!(&f.id, &finding_id(&f.kind, &f.resource, f.principal.as_deref(), f.source_ip));
                prop_assert!(f.count >= 1);
                prop_assert!(f.first_seen <= f.last_seen);
                prop_assert!(!f.evidence.is_empty() && f.evidence.len() <= EVIDENCE_KEPT);
                prop_assert_eq!(f.evidence.last(), Some(&id));
                if o.new {
                    prop_assert_eq!(f.count, 1);
                    prop_assert_eq!(f.actions.len(), o.actions.len());
                    if action == Response::None {
                        prop_assert!(o.actions.is_empty());
                    }
                } else {
                    // An update acts only to revoke, once, when proven
                    // evidence follows a degraded revocation, or to block
                    // an address again while failures go on.
                    let revocations = o.actions.iter().filter(|a| matches!(a, Action::RevokeSessions { .. })).count();
                    let blocks = o.actions.iter().filter(|a| matches!(a, Action::BlockSourceIp { .. })).count();
                    prop_assert_eq!(revocations + blocks, o.actions.len());
                    prop_assert!(revocations <= 1);
                    prop_assert!(f.count >= 2);
                }
                // Never a revocation on an event that proves nothing. A
                // login is a live session whoever presented the token, so
                // rules on successes may revoke on a reused token.
                let unproven = match event {
                    Event::Auth(a) => !a.possession_proven && a.result != AuthResult::Success,
                    Event::Api(a) => !a.possession_proven,
                    _ => false,
                };
                if unproven {
                    let revoked = o.actions.iter().any(|a| matches!(a, Action::RevokeSessions { .. }));
                    prop_assert!(!revoked, "revoked on an unproven event");
                }
            }
            let t = d.tracked();
            prop_assert!(t.failure_sources <= 4, "{:?}", t);
            prop_assert!(t.failure_principals <= 4, "{:?}", t);
            prop_assert!(t.failures <= 8 * 3, "{:?}", t);
            prop_assert!(t.principals <= 4, "{:?}", t);
            prop_assert!(t.max_ips_per_principal <= 2, "{:?}", t);
            prop_assert!(t.databases <= 4, "{:?}", t);
            prop_assert!(t.max_window_sources <= 1024, "{:?}", t);
            prop_assert!(t.deleted_keys <= 4, "{:?}", t);
            prop_assert!(t.findings <= 3, "{:?}", t);
        }
        // With hair triggers, anything but an empty stream of statements
        // and refusals fires something; guard against a silent detector.
        let has_login = events.iter().any(|e| matches!(e, Event::Auth(a) if a.result == AuthResult::Success && a.identity.is_some()));
        if has_login {
            prop_assert!(fired > 0, "the catch-all admin pattern must fire on a login");
        }
    }

    #[test]
    fn default_detector_is_total(events in proptest::collection::vec(event(), 0..150)) {
        let mut d = Detector::new(DetectConfig::default());
        for (n, event) in events.iter().enumerate() {
            for o in d.observe(&n.to_string(), event) {
                prop_assert!(o.finding.evidence.len() <= EVIDENCE_KEPT);
            }
        }
    }

    #[test]
    fn classifier_is_total(sql in any::<String>(), sql2 in statement_text()) {
        let _ = is_destructive(&sql);
        let _ = is_destructive(&sql2);
    }

    /// Text after a top-level WHERE cannot make a DELETE "without WHERE",
    /// and nothing inside parentheses can supply its WHERE.
    #[test]
    fn where_depth(inner in "[a-z ?=]{0,20}", tail in "[a-z ?=]{0,20}") {
        let with = format!("DELETE FROM t WHERE {tail}");
        prop_assert_eq!(is_destructive(&with), None);
        let nested = format!("DELETE FROM t USING (SELECT 1 WHERE {inner}) s");
        prop_assert_eq!(is_destructive(&nested), Some(("DELETE without WHERE", Severity::High)));
    }
}
