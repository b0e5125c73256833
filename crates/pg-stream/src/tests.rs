use super::*;
use latchkey_audit::{AuditSink, Event, SessionInfo};
use std::sync::Mutex;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

struct Collect(Mutex<Vec<Event>>);

impl AuditSink for Collect {
    fn record(&self, event: Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A clock that stands still (the tracker reads none of its own).
/// The gateway's server name for statement 1, and for no statement.
static LK1: LazyLock<String> =
    LazyLock::new(|| String::from_utf8(crate::prepared::server_name(1)).unwrap());
static NONE: LazyLock<String> =
    LazyLock::new(|| String::from_utf8(crate::prepared::NO_STATEMENT.to_vec()).unwrap());

/// The Close that goes before a Bind or Describe of a statement the
/// client never prepared.
fn close_none() -> Vec<u8> {
    msg(b'C', format!("S{}\0", *NONE).as_bytes())
}

fn clock() -> Now {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    Now {
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        instant: *START,
    }
}

fn tracker() -> (Tracker, Arc<Collect>) {
    let sink = Arc::new(Collect(Mutex::new(Vec::new())));
    let session = Arc::new(SessionInfo {
        session_id: "s".into(),
        engine: "postgres",
        identity: latchkey_audit::Identity {
            kind: latchkey_audit::IdentityKind::IamUser,
            arn: "arn:aws:iam::123456789012:user/app".into(),
            principal_id: "AIDA".into(),
            account_id: "123456789012".into(),
            access_key_id: "AKIA".into(),
            session: None,
        },
        source_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        user_agent: None,
        database: "orders".into(),
        resource_arn: "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-X/app".into(),
        database_name: "orders".into(),
        db_user: "app".into(),
        started: UNIX_EPOCH,
    });
    let t = Tracker::new(Some(Audit {
        sink: sink.clone(),
        session,
        keep_literals: false,
        clock,
    }));
    (t, sink)
}

fn statements(sink: &Collect) -> Vec<(String, Option<String>, Option<String>)> {
    sink.0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|e| match e {
            Event::Statement(s) => Some((
                s.statement.text.clone(),
                s.command_tag.as_deref().map(str::to_owned),
                s.error_code.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn error(code: &str) -> Vec<u8> {
    error_saying(code, "boom")
}

fn error_saying(code: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (f, v) in [(b'S', "ERROR"), (b'C', code), (b'M', text)] {
        body.push(f);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    msg(b'E', &body)
}

#[test]
fn simple_queries_in_every_chunking() {
    let client = [msg(b'Q', b"SELECT 'secret', 42\0"), msg(b'X', b"")].concat();
    let server = [
        msg(b'T', b"\0\0"),
        msg(b'D', b"\0\0"),
        msg(b'C', b"SELECT 1\0"),
        msg(b'Z', b"I"),
    ]
    .concat();
    for chunk in [1, 2, 5, 7, 4096] {
        let (mut t, sink) = tracker();
        assert!(replay(&client, &server, chunk, &mut t, 1 << 20).unwrap_or(false));
        assert_eq!(
            statements(&sink),
            [("SELECT ?, ?".to_owned(), Some("SELECT 1".to_owned()), None)]
        );
    }
}

#[test]
fn extended_protocol_and_errors() {
    let client = [
        msg(b'P', b"s1\0SELECT $1 FROM t WHERE x = 'a'\0\0\0"),
        msg(b'B', b"\0s1\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'B', b"\0s1\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'S', b""),
    ]
    .concat();
    // The first execute fails; the server skips the second.
    let server = [
        msg(b'1', b""),
        msg(b'2', b""),
        error("42P01"),
        msg(b'Z', b"I"),
    ]
    .concat();
    let (mut t, sink) = tracker();
    assert!(replay(&client, &server, 3, &mut t, 1 << 20).unwrap_or(false));
    assert_eq!(
        statements(&sink),
        [(
            "SELECT $1 FROM t WHERE x = ?".to_owned(),
            None,
            Some("42P01".to_owned())
        )]
    );
}

#[test]
fn a_statement_that_fails_to_parse_is_audited() {
    let client = [
        msg(b'P', b"\0SELECT * FROM missing WHERE k = 'x'\0\0\0"),
        msg(b'B', b"\0\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'S', b""),
        // Then one that works, prepared once and executed.
        msg(b'P', b"\0SELECT 1\0\0\0"),
        msg(b'B', b"\0\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'S', b""),
    ]
    .concat();
    let server = [
        error("42P01"),
        msg(b'Z', b"I"),
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'D', b"\0\0"),
        msg(b'C', b"SELECT 1\0"),
        msg(b'Z', b"I"),
    ]
    .concat();
    for chunk in [3, 4096] {
        let (mut t, sink) = tracker();
        assert!(replay(&client, &server, chunk, &mut t, 1 << 20).unwrap_or(false));
        assert_eq!(
            statements(&sink),
            [
                (
                    "SELECT * FROM missing WHERE k = ?".to_owned(),
                    None,
                    Some("42P01".to_owned())
                ),
                ("SELECT ?".to_owned(), Some("SELECT 1".to_owned()), None),
            ]
        );
    }
}

#[test]
fn busy_or_in_a_transaction_is_not_reusable() {
    let (mut t, _) = tracker();
    // Two queries pipelined, one answered.
    let client = [msg(b'Q', b"SELECT 1\0"), msg(b'Q', b"SELECT 2\0")].concat();
    let one = [msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat();
    assert!(!replay(&client, &one, 4096, &mut t, 1 << 20).unwrap_or(true));
    // Parse without Sync.
    let (mut t, _) = tracker();
    assert!(!replay(&msg(b'P', b"\0SELECT 1\0\0\0"), b"", 4096, &mut t, 1 << 20).unwrap_or(true));
    // Inside a transaction.
    let (mut t, _) = tracker();
    let begin = [msg(b'C', b"BEGIN\0"), msg(b'Z', b"T")].concat();
    assert!(!replay(&msg(b'Q', b"BEGIN\0"), &begin, 4096, &mut t, 1 << 20).unwrap_or(true));
    // A server message cut short.
    let (mut t, _) = tracker();
    let cut = [
        msg(b'C', b"SELECT 1\0"),
        msg(b'Z', b"I"),
        msg(b'N', b"xyz")[..4].to_vec(),
    ]
    .concat();
    assert!(!replay(&msg(b'Q', b"SELECT 1\0"), &cut, 4096, &mut t, 1 << 20).unwrap_or(true));
}

#[test]
fn limits_and_malformed_headers() {
    let (mut t, _) = tracker();
    let big = msg(b'Q', &[b'x'; 100]);
    assert!(matches!(
        replay(&big, b"", 4096, &mut t, 50),
        Err(ScanError::TooLarge(100))
    ));
    let (mut t, _) = tracker();
    assert!(matches!(
        replay(&[b'Q', 0, 0, 0, 3], b"", 4096, &mut t, 50),
        Err(ScanError::Malformed)
    ));
}

/// What a buffer passes on for `client`, read `chunk` bytes at a time.
fn passed_on(client: &[u8], chunk: usize, t: &mut Tracker) -> Vec<u8> {
    passed(Direction::ToUpstream, client, chunk, t)
}

#[test]
fn password_changes_are_replaced_by_a_refusal() {
    let refusal = msg(b'Q', format!("{REFUSAL}\0").as_bytes());
    let padded = format!(
        "SELECT 1; /*{}*/ ALTER/**/ROLE app PASSWORD 'x'\0",
        " ".repeat(INSPECT_PREFIX * 2)
    );
    for sql in [
        "ALTER ROLE app PASSWORD 'secret'\0",
        "SELECT 1; alter user \"app\" with encrypted password 'x'\0",
        padded.as_str(),
    ] {
        let before = msg(b'Q', b"SELECT 1\0");
        let after = msg(b'Q', b"SELECT 2\0");
        let client = [before.clone(), msg(b'Q', sql.as_bytes()), after.clone()].concat();
        for chunk in [1, 7, 4096, 1 << 20] {
            let (mut t, sink) = tracker();
            let out = passed_on(&client, chunk, &mut t);
            assert_eq!(
                out,
                [before.clone(), refusal.clone(), after.clone()].concat()
            );
            assert_eq!(t.refused, 1);
            // The server's answer is audited against what was sent.
            let server = [
                msg(b'C', b"SELECT 1\0"),
                msg(b'Z', b"I"),
                error("42501"),
                msg(b'Z', b"I"),
            ]
            .concat();
            let mut down = Buffer::default();
            down.space()[..server.len()].copy_from_slice(&server);
            down.filled(server.len());
            assert!(down.scan(Direction::ToClient, &mut t, 1 << 20).is_ok());
            let logged = statements(&sink);
            assert_eq!(logged.len(), 2);
            if sql.len() < INSPECT_PREFIX {
                assert!(
                    logged[1].0.to_ascii_uppercase().contains("PASSWORD ?"),
                    "{logged:?}"
                );
            }
            assert_eq!(logged[1].2.as_deref(), Some("42501"));
        }
    }
    // Parse: the statement keeps its name and loses its parameter types.
    let parse = msg(b'P', b"s1\0ALTER ROLE app PASSWORD $1\0\0\x01\0\0\0\x19");
    let (mut t, _) = tracker();
    let out = passed_on(&parse, 3, &mut t);
    let mut want = b"s1\0".to_vec();
    want.extend_from_slice(REFUSAL.as_bytes());
    want.extend_from_slice(b"\0\0\0");
    assert_eq!(out, msg(b'P', &want));
    // With the policy's permission, nothing changes.
    let (t, _) = tracker();
    let mut t = t.allow_password_changes(true);
    let q = msg(b'Q', b"ALTER ROLE app PASSWORD 'x'\0");
    assert_eq!(passed_on(&q, 5, &mut t), q);
    // Ordinary statements pass unchanged.
    let (mut t, _) = tracker();
    let q = msg(b'Q', b"UPDATE users SET password = 'x' WHERE id = 1\0");
    assert_eq!(passed_on(&q, 5, &mut t), q);
}

#[test]
fn red_team_dynamic_sql_catalogue_writes_and_signals_are_replaced() {
    let cases = [
        (
            "DO $$BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''attacker-pw'''; END$$\0",
            REFUSAL,
        ),
        (
            // (`'ALTER ROLE app PASS'` alone is a role change, refused
            // as such.)
            "DO $$BEGIN EXECUTE 'ALTER RO'||'LE app PASSWORD ''x'''; END$$\0",
            REFUSAL_DYNAMIC_SQL,
        ),
        (
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$BEGIN EXECUTE format('SELECT %s', 1); END$f$\0",
            REFUSAL_DYNAMIC_SQL,
        ),
        ("UPDATE pg_authid SET rolpassword = NULL\0", REFUSAL),
        ("ALTER SYSTEM SET password_encryption = 'md5'\0", REFUSAL),
        (
            "select pg_terminate_backend(pid) from pg_stat_activity where usename='app'\0",
            REFUSAL_SIGNAL,
        ),
    ];
    for (sql, refusal) in cases {
        let q = msg(b'Q', sql.as_bytes());
        let (mut t, _) = tracker();
        let out = passed_on(&q, 7, &mut t);
        assert_eq!(out, msg(b'Q', format!("{refusal}\0").as_bytes()), "{sql}");
        assert_eq!(t.refused, 1);
    }
    // latchkey:ExecuteDynamicSql lets harmless dynamic SQL through;
    // signalling backends stays refused even with every permission.
    let (t, _) = tracker();
    let mut t = t.allow_dynamic_sql(true);
    let q = msg(b'Q', b"DO $$BEGIN EXECUTE 'SELECT ' || 1; END$$\0");
    assert_eq!(passed_on(&q, 5, &mut t), q);
    let (t, _) = tracker();
    let mut t = t.allow_dynamic_sql(true).allow_password_changes(true);
    let q = msg(b'Q', b"SELECT pg_cancel_backend(1)\0");
    assert_eq!(
        passed_on(&q, 5, &mut t),
        msg(b'Q', format!("{REFUSAL_SIGNAL}\0").as_bytes())
    );
}

#[test]
fn function_calls_of_signal_functions_are_replaced() {
    // FunctionCall: oid, argument formats, arguments, result format.
    let call = |oid: u32| {
        let mut body = oid.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 1, 0, 1, 0, 1, 0, 0, 0, 4]);
        body.extend_from_slice(&4242u32.to_be_bytes());
        body.extend_from_slice(&[0, 1]);
        msg(b'F', &body)
    };
    for oid in [2096, 2171] {
        let (mut t, _) = tracker();
        let out = passed_on(&call(oid), 3, &mut t);
        assert_eq!(out, msg(b'Q', format!("{REFUSAL_SIGNAL}\0").as_bytes()));
        assert_eq!(t.refused, 1);
        assert!(t.busy());
        // The server's error and ReadyForQuery settle it.
        let server = [error("42501"), msg(b'Z', b"I")].concat();
        let mut down = Buffer::default();
        down.space()[..server.len()].copy_from_slice(&server);
        down.filled(server.len());
        assert!(down.scan(Direction::ToClient, &mut t, 1 << 20).is_ok());
        assert!(t.idle());
    }
    // Functions that run SQL text, and server file access and
    // reload, unless the policy allows them.
    for (oid, refusal) in [
        (2924, REFUSAL_DYNAMIC_SQL),
        (3689, REFUSAL_DYNAMIC_SQL),
        (764, REFUSAL),
        (765, REFUSAL),
        (2621, REFUSAL),
        (3826, REFUSAL),
    ] {
        let (mut t, _) = tracker();
        let out = passed_on(&call(oid), 3, &mut t);
        assert_eq!(out, msg(b'Q', format!("{refusal}\0").as_bytes()), "{oid}");
        let (t, _) = tracker();
        let mut t = t.allow_dynamic_sql(true).allow_password_changes(true);
        assert_eq!(passed_on(&call(oid), 3, &mut t), call(oid), "{oid}");
    }
    // Other functions (large objects, through libpq's PQfn) pass.
    let (mut t, _) = tracker();
    let other = call(952);
    assert_eq!(passed_on(&other, 3, &mut t), other);
    assert_eq!(t.refused, 0);
}

#[test]
fn long_statements_are_cut_and_marked() {
    let sql = format!("SELECT '{}'\0", "y".repeat(INSPECT_PREFIX * 2));
    let client = msg(b'Q', sql.as_bytes());
    let server = [msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat();
    let (mut t, sink) = tracker();
    assert!(replay(&client, &server, 1000, &mut t, 1 << 20).unwrap_or(false));
    let events = sink.0.lock().unwrap_or_else(|p| p.into_inner());
    let Some(Event::Statement(s)) = events.first() else {
        panic!("no statement event");
    };
    assert!(s.statement.truncated);
    assert!(!s.statement.text.contains("yyyy"));
}

#[test]
fn statements_are_stamped_by_the_callers_clock() {
    let client = msg(b'Q', b"SELECT 1\0");
    let server = [msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat();
    let (mut t, sink) = tracker();
    assert!(replay(&client, &server, 3, &mut t, 1 << 20).unwrap_or(false));
    let events = sink.0.lock().unwrap_or_else(|p| p.into_inner());
    let Some(Event::Statement(s)) = events.first() else {
        panic!("no statement event");
    };
    assert_eq!(s.time, clock().wall);
    assert_eq!(s.duration, Duration::ZERO);
}

/// A statement gate for tests: refuses SQL holding `refuse`, and Binds of
/// statements named in `rebind_refused`.
struct StubGate {
    refuse: &'static str,
    rebind_refused: &'static [&'static str],
}

fn decision(allowed: bool) -> Arc<latchkey_audit::PolicyDecision> {
    Arc::new(latchkey_audit::PolicyDecision {
        uses: Vec::new(),
        allowed,
        enforced: true,
        action: Some("sql:Select"),
        resource: String::new(),
        reason: String::new(),
        accesses: 1,
        evaluated: true,
        firewall: None,
    })
}

fn refuse() -> Ruling {
    Ruling::Refuse {
        message: "permission denied by policy: sql:Unclassified".into(),
        decision: decision(false),
    }
}

impl StatementGate for StubGate {
    fn rule(&mut self, sql: &str) -> Ruling {
        if sql.contains(self.refuse) {
            refuse()
        } else {
            Ruling::Pass(decision(true))
        }
    }
    fn backslashes_differ(&mut self, _: bool) {}
    fn encoding_differs(&mut self, _: bool) {}
    fn database_changed(&mut self) {}
    fn rule_bind(&mut self, name: &str) -> Option<Ruling> {
        self.rebind_refused.contains(&name).then(refuse)
    }
}

fn gated(refuse: &'static str, rebind_refused: &'static [&'static str]) -> Tracker {
    Tracker::new(None).with_gate(Some(Box::new(StubGate {
        refuse,
        rebind_refused,
    })))
}

#[test]
fn function_calls_are_unclassified_under_statement_policy() {
    // A user function by OID (no SQL to classify): unclassified, and
    // refused when the policy does not allow that.
    let mut body = 16400u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
    let call = msg(b'F', &body);
    let mut t = gated("FunctionCall", &[]);
    let refusal = policy_refusal("permission denied by policy: sql:Unclassified");
    assert_eq!(
        passed_on(&call, 3, &mut t),
        msg(b'Q', format!("{refusal}\0").as_bytes())
    );
    assert_eq!(t.refused, 1);
    // Allowed by the policy: passed on as sent.
    let mut t = gated("never", &[]);
    assert_eq!(passed_on(&call, 3, &mut t), call);
}

#[test]
fn a_bind_the_gate_refuses_is_replaced_and_the_group_dropped() {
    let parse = |name: &str, sql: &str| msg(b'P', format!("{name}\0{sql}\0\0\0").as_bytes());
    let bind = |stmt: &str| msg(b'B', format!("\0{stmt}\0\0\0\0\0\0\0").as_bytes());
    let execute = msg(b'E', b"\0\0\0\0\0");
    let sync = msg(b'S', b"");
    let client = [
        parse("a", "SELECT 1"),
        bind("a"),
        execute.clone(),
        bind("old"),
        execute.clone(),
        msg(b'D', b"P\0"),
        sync.clone(),
        bind("a"),
        execute.clone(),
        sync.clone(),
    ]
    .concat();
    let mut t = gated("never", &["old"]);
    let out = passed_on(&client, 7, &mut t);
    let refusal = policy_refusal("permission denied by policy: sql:Unclassified");
    let want = [
        parse("a", "SELECT 1"),
        bind("a"),
        execute.clone(),
        refused_parse(&refusal),
        sync.clone(),
        bind("a"),
        execute,
        sync,
    ]
    .concat();
    assert_eq!(out, want);
    assert_eq!(t.refused, 1);
    // The server's answer: the client's ParseComplete and BindComplete
    // stay, the gateway's are removed, by count within the Sync group.
    let server = [
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'C', b"SELECT 1\0"),
        msg(b'1', b""),
        msg(b'2', b""),
        error("42501"),
        msg(b'Z', b"I"),
        msg(b'2', b""),
        msg(b'C', b"SELECT 1\0"),
        msg(b'Z', b"I"),
    ]
    .concat();
    let mut down = Buffer::default();
    down.space()[..server.len()].copy_from_slice(&server);
    down.filled(server.len());
    assert!(down.scan(Direction::ToClient, &mut t, 1 << 20).is_ok());
    let seen: Vec<u8> = down.writable().to_vec();
    let want = [
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'C', b"SELECT 1\0"),
        error("42501"),
        msg(b'Z', b"I"),
        msg(b'2', b""),
        msg(b'C', b"SELECT 1\0"),
        msg(b'Z', b"I"),
    ]
    .concat();
    assert_eq!(seen, want);
    assert!(t.idle());
}

#[test]
fn a_refused_parse_answered_before_sync_is_still_hidden() {
    // Parse (refused), Flush: the server answers the gateway's own Parse
    // and Bind at once, before the client's Sync is even sent.
    let parse = msg(b'P', b"\0SELECT pan FROM cards\0\0\0");
    let flush = msg(b'H', b"");
    let mut t = gated("cards", &[]);
    let out = passed_on(&[parse, flush].concat(), 5, &mut t);
    let refusal = policy_refusal("permission denied by policy: sql:Unclassified");
    // The Flush goes with the rest up to Sync (the server flushes its
    // error itself).
    assert_eq!(out, refused_parse(&refusal));
    let answer = |t: &mut Tracker, server: &[u8]| {
        let mut down = Buffer::default();
        down.space()[..server.len()].copy_from_slice(server);
        down.filled(server.len());
        assert!(down.scan(Direction::ToClient, t, 1 << 20).is_ok());
        down.writable().to_vec()
    };
    let early = [msg(b'1', b""), msg(b'2', b""), error("42501")].concat();
    assert_eq!(answer(&mut t, &early), error("42501"));
    // Then Sync, and the next group is counted afresh.
    let sync = msg(b'S', b"");
    let next = [
        sync.clone(),
        msg(b'P', b"\0SELECT 1\0\0\0"),
        msg(b'B', b"\0\0\0\0\0\0\0\0"),
        sync,
    ]
    .concat();
    assert_eq!(passed_on(&next, 5, &mut t), next);
    let rest = [
        msg(b'Z', b"I"),
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'Z', b"I"),
    ]
    .concat();
    assert_eq!(answer(&mut t, &rest), rest);
    assert!(t.idle());
}

/// Statement policy that refuses whatever names `cards`.
struct RefuseCards;

impl StatementGate for RefuseCards {
    fn rule(&mut self, sql: &str) -> Ruling {
        let decision = Arc::new(latchkey_audit::PolicyDecision {
            uses: Vec::new(),
            allowed: !sql.contains("cards"),
            enforced: true,
            action: Some("sql:Select"),
            resource: String::new(),
            reason: "test".into(),
            accesses: 1,
            evaluated: true,
            firewall: None,
        });
        if decision.allowed {
            Ruling::Pass(decision)
        } else {
            Ruling::Refuse {
                message: "permission denied by policy: sql:Select on table public.cards".into(),
                decision,
            }
        }
    }
    fn backslashes_differ(&mut self, _: bool) {}
    fn encoding_differs(&mut self, _: bool) {}
    fn database_changed(&mut self) {}
}

/// What a buffer passes on in `direction`, read `chunk` bytes at a time.
fn passed(direction: Direction, bytes: &[u8], chunk: usize, t: &mut Tracker) -> Vec<u8> {
    let mut half = Buffer::default();
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        half.make_room();
        let n = chunk.min(rest.len()).min(half.space().len());
        half.space()[..n].copy_from_slice(&rest[..n]);
        half.filled(n);
        rest = &rest[n..];
        assert!(half.scan(direction, t, 1 << 20).is_ok());
        out.extend_from_slice(half.writable());
        let w = half.writable().len();
        half.wrote(w);
    }
    out
}

#[test]
fn a_parse_refused_by_statement_policy_fails_in_place_and_nothing_bound_to_it_reaches_the_server() {
    let message = "permission denied by policy: sql:Select on table public.cards";
    for chunk in [1, 7, 4096] {
        let (t, sink) = tracker();
        let mut t = t.with_gate(Some(Box::new(RefuseCards)));
        let client = [
            msg(b'P', b"s1\0SELECT 1\0\0\0"),
            msg(b'B', b"\0s1\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'P', b"s2\0SELECT pan FROM cards WHERE id = $1\0\0\0"),
            msg(b'B', b"\0s2\0\0\0\0\0\0\0"),
            msg(b'D', b"P\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
            msg(b'Q', b"SELECT 2\0"),
        ]
        .concat();
        let up = passed(Direction::ToUpstream, &client, chunk, &mut t);
        let expected = [
            msg(b'P', b"s1\0SELECT 1\0\0\0"),
            msg(b'B', b"\0s1\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            refused_parse(&policy_refusal(message)),
            msg(b'S', b""),
            msg(b'Q', b"SELECT 2\0"),
        ]
        .concat();
        assert_eq!(up, expected, "chunk {chunk}");
        // The server answers s1's Parse, Bind and Execute, the gateway's
        // Parse and Bind, and fails the gateway's Execute.
        let server = [
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'C', b"SELECT 1\0"),
            msg(b'1', b""),
            msg(b'2', b""),
            error("42501"),
            msg(b'Z', b"I"),
            msg(b'C', b"SELECT 1\0"),
            msg(b'Z', b"I"),
        ]
        .concat();
        let down = passed(Direction::ToClient, &server, chunk, &mut t);
        let client_sees = [
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'C', b"SELECT 1\0"),
            error("42501"),
            msg(b'Z', b"I"),
            msg(b'C', b"SELECT 1\0"),
            msg(b'Z', b"I"),
        ]
        .concat();
        assert_eq!(down, client_sees, "chunk {chunk}");
        assert!(t.idle());
        let audited = statements(&sink);
        assert!(
            audited.contains(&(
                "SELECT pan FROM cards WHERE id = $1".to_owned(),
                None,
                Some("42501".to_owned())
            )),
            "{audited:?}"
        );
    }
}

#[test]
fn a_query_refused_by_statement_policy_is_raised_by_the_server() {
    let (t, _sink) = tracker();
    let mut t = t.with_gate(Some(Box::new(RefuseCards)));
    let up = passed(
        Direction::ToUpstream,
        &msg(b'Q', b"SELECT * FROM cards\0"),
        4096,
        &mut t,
    );
    let refusal = policy_refusal("permission denied by policy: sql:Select on table public.cards");
    assert_eq!(up, msg(b'Q', format!("{refusal}\0").as_bytes()));
    // Names come from the client: nothing can end the block early.
    let hostile = policy_refusal("on table public.\"x$latchkey$'; DROP TABLE t; --\"");
    assert_eq!(hostile.matches("$latchkey$").count(), 2, "{hostile}");
    assert_eq!(hostile.matches('\'').count(), 4, "{hostile}");
}

#[test]
fn client_encodings_the_classifier_reads_as_utf8() {
    for e in ["UTF8", "utf-8", "Unicode", "SQL_ASCII"] {
        assert!(reads_as_utf8(e), "{e}");
    }
    for e in ["LATIN1", "WIN1252", "SJIS", "EUC_JP", ""] {
        assert!(!reads_as_utf8(e), "{e}");
    }
}

/// A tracker in transaction pooling, sharing `book` with other clients.
fn pooled(book: &Arc<crate::prepared::StatementBook>) -> Tracker {
    Tracker::new(None).with_pooling(crate::Pooling::new(
        &["application_name"],
        false,
        book.clone(),
    ))
}

#[test]
fn prepared_statements_are_carried_between_server_connections() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let parse = msg(b'P', b"s1\0SELECT $1\0\0\0");
    let bind = msg(b'B', b"\0s1\0\0\0\0\0\0\0");
    let sync = msg(b'S', b"");
    let close_lk1 = msg(b'C', format!("S{}\0", *LK1).as_bytes());
    let parse_lk1 = msg(b'P', format!("{}\0SELECT $1\0\0\0", *LK1).as_bytes());
    let bind_lk1 = msg(b'B', format!("\0{}\0\0\0\0\0\0\0", *LK1).as_bytes());
    let parse_complete = msg(b'1', b"");
    let close_complete = msg(b'3', b"");
    let ready = msg(b'Z', b"I");
    for chunk in [1, 5, 4096] {
        // Client A prepares on server X: the gateway's name, a Close first.
        let mut a = pooled(&book);
        let sent = passed(
            Direction::ToUpstream,
            &[parse.clone(), sync.clone()].concat(),
            chunk,
            &mut a,
        );
        assert_eq!(
            sent,
            [close_lk1.clone(), parse_lk1.clone(), sync.clone()].concat()
        );
        let answered = passed(
            Direction::ToClient,
            &[
                close_complete.clone(),
                parse_complete.clone(),
                ready.clone(),
            ]
            .concat(),
            chunk,
            &mut a,
        );
        assert_eq!(
            answered,
            [parse_complete.clone(), ready.clone()].concat(),
            "the gateway's Close is its own"
        );
        // X has it now: A's Bind names it, nothing injected.
        let sent = passed(
            Direction::ToUpstream,
            &[bind.clone(), sync.clone()].concat(),
            chunk,
            &mut a,
        );
        assert_eq!(sent, [bind_lk1.clone(), sync.clone()].concat());
        let answered = passed(
            Direction::ToClient,
            &[msg(b'2', b""), ready.clone()].concat(),
            chunk,
            &mut a,
        );
        assert_eq!(answered, [msg(b'2', b""), ready.clone()].concat());
        let x = std::mem::take(&mut a.pooling_mut().unwrap().server);

        // Client B prepares the same statement on X: no Parse reaches the
        // server, yet B gets its ParseComplete.
        let mut b = pooled(&book);
        b.pooling_mut().unwrap().server = x;
        let sent = passed(
            Direction::ToUpstream,
            &[parse.clone(), sync.clone()].concat(),
            chunk,
            &mut b,
        );
        assert_eq!(
            sent,
            [msg(b'C', format!("S{}\0", *NONE).as_bytes()), sync.clone()].concat()
        );
        let answered = passed(
            Direction::ToClient,
            &[close_complete.clone(), ready.clone()].concat(),
            chunk,
            &mut b,
        );
        assert_eq!(answered, [parse_complete.clone(), ready.clone()].concat());

        // A lands on server Y, which lacks it: prepared before the Bind,
        // the answers to the gateway's messages dropped.
        a.pooling_mut().unwrap().server = Default::default();
        let sent = passed(
            Direction::ToUpstream,
            &[bind.clone(), sync.clone()].concat(),
            chunk,
            &mut a,
        );
        assert_eq!(
            sent,
            [
                close_lk1.clone(),
                parse_lk1.clone(),
                bind_lk1.clone(),
                sync.clone()
            ]
            .concat()
        );
        let answered = passed(
            Direction::ToClient,
            &[
                close_complete.clone(),
                parse_complete.clone(),
                msg(b'2', b""),
                ready.clone(),
            ]
            .concat(),
            chunk,
            &mut a,
        );
        assert_eq!(answered, [msg(b'2', b""), ready.clone()].concat());

        // A group that fails before its Parse completes: the server does
        // not have the statement, so the next Bind prepares it again.
        a.pooling_mut().unwrap().server = Default::default();
        let failing = msg(b'P', b"s2\0SELEC oops\0\0\0");
        passed(
            Direction::ToUpstream,
            &[failing, sync.clone()].concat(),
            chunk,
            &mut a,
        );
        assert_eq!(a.pooling().unwrap().server.len(), 1);
        passed(
            Direction::ToClient,
            &[close_complete.clone(), error("42601"), ready.clone()].concat(),
            chunk,
            &mut a,
        );
        assert!(
            a.pooling().unwrap().server.is_empty(),
            "a failed Parse is not on the server"
        );
        assert!(a.idle());

        // The client's Close keeps the statement for the others.
        let sent = passed(
            Direction::ToUpstream,
            &[msg(b'C', b"Ss1\0"), sync.clone()].concat(),
            chunk,
            &mut a,
        );
        assert_eq!(
            sent,
            [msg(b'C', format!("S{}\0", *NONE).as_bytes()), sync.clone()].concat()
        );
        let sent = passed(
            Direction::ToUpstream,
            &[bind.clone(), sync.clone()].concat(),
            chunk,
            &mut a,
        );
        assert_eq!(
            sent,
            [
                close_none(),
                msg(b'B', format!("\0{}\0\0\0\0\0\0\0", *NONE).as_bytes()),
                sync.clone()
            ]
            .concat(),
            "a closed statement exists nowhere"
        );
        // Another client's statement, by the gateway's name or the
        // unnamed one it left behind, is not this client's to run.
        let mut c = pooled(&book);
        c.pooling_mut().unwrap().server = std::mem::take(&mut b.pooling_mut().unwrap().server);
        for stolen in [
            format!("\0{}\0\0\0\0\0\0\0", *LK1).into_bytes(),
            b"\0\0\0\0\0\0\0\0".to_vec(),
        ] {
            let sent = passed(Direction::ToUpstream, &msg(b'B', &stolen), chunk, &mut c);
            assert_eq!(
                sent,
                [
                    close_none(),
                    msg(b'B', format!("\0{}\0\0\0\0\0\0\0", *NONE).as_bytes())
                ]
                .concat()
            );
        }
        let describe = passed(
            Direction::ToUpstream,
            &msg(b'D', format!("S{}\0", *LK1).as_bytes()),
            chunk,
            &mut c,
        );
        assert_eq!(
            describe,
            [close_none(), msg(b'D', format!("S{}\0", *NONE).as_bytes())].concat()
        );
        // Its own unnamed statement, parsed on this connection, is.
        let own = [
            msg(b'P', b"\0SELECT 1\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
        ]
        .concat();
        assert_eq!(passed(Direction::ToUpstream, &own, chunk, &mut c), own);
    }
}

#[test]
fn deallocating_a_carried_statement_clears_the_connection() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let mut t = pooled(&book);
    passed(
        Direction::ToUpstream,
        &msg(b'P', b"_pg3_0\0SELECT 1\0\0\0"),
        4096,
        &mut t,
    );
    assert_eq!(t.pooling().unwrap().server.len(), 1);
    let sent = passed(
        Direction::ToUpstream,
        &msg(b'Q', b"DEALLOCATE _pg3_0\0"),
        4096,
        &mut t,
    );
    assert_eq!(sent, msg(b'Q', b"DEALLOCATE ALL\0"));
    assert!(t.pooling().unwrap().server.is_empty());
    // Unknown to the gateway: passed on, and the connection's statements
    // forgotten all the same.
    passed(
        Direction::ToUpstream,
        &msg(b'P', b"s\0SELECT 1\0\0\0"),
        4096,
        &mut t,
    );
    let sent = passed(
        Direction::ToUpstream,
        &msg(b'Q', b"DEALLOCATE other\0"),
        4096,
        &mut t,
    );
    assert_eq!(sent, msg(b'Q', b"DEALLOCATE other\0"));
    assert!(t.pooling().unwrap().server.is_empty());
}

#[test]
fn the_server_waits_on_the_client_only_once_it_has_answered_what_was_asked() {
    let from_server = |t: &mut Tracker, bytes: &[u8]| passed(Direction::ToClient, bytes, 7, t);
    // A batch flushed but not synced: the server owes the Execute's
    // answer (a statement still running), then waits for the client.
    let (mut t, _) = tracker();
    let batch = [
        msg(b'P', b"\0SELECT pg_sleep(5)\0\0\0"),
        msg(b'B', b"\0\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'H', b""),
    ]
    .concat();
    passed_on(&batch, 5, &mut t);
    assert!(
        !t.waits_on_client(),
        "a flushed Execute is the server's to answer"
    );
    from_server(
        &mut t,
        &[msg(b'1', b""), msg(b'2', b""), msg(b'C', b"SELECT 1\0")].concat(),
    );
    assert!(
        t.waits_on_client(),
        "answered, and no Sync: the client's turn"
    );
    // An Execute never flushed: the client has not asked for the answer.
    passed_on(&msg(b'E', b"\0\0\0\0\0"), 5, &mut t);
    assert!(t.waits_on_client());
    // Flushed, then another Execute not flushed: the first is still owed.
    passed_on(
        &[msg(b'H', b""), msg(b'E', b"\0\0\0\0\0")].concat(),
        5,
        &mut t,
    );
    assert!(!t.waits_on_client());
    from_server(&mut t, &msg(b'C', b"SELECT 1\0"));
    assert!(t.waits_on_client(), "only the unflushed one is left");
    passed_on(&msg(b'S', b""), 5, &mut t);
    assert!(!t.waits_on_client());
    from_server(
        &mut t,
        &[msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat(),
    );
    assert!(
        t.idle() && !t.waits_on_client(),
        "idle outside a transaction"
    );

    // COPY FROM STDIN: the query is in flight, but the server waits for
    // data until CopyDone.
    let (mut t, _) = tracker();
    passed_on(&msg(b'Q', b"COPY t FROM STDIN\0"), 5, &mut t);
    assert!(!t.waits_on_client());
    from_server(&mut t, &msg(b'G', b"\0\0\0"));
    assert!(t.waits_on_client(), "the server waits for COPY data");
    passed_on(&[msg(b'd', b"1\n"), msg(b'c', b"")].concat(), 5, &mut t);
    assert!(!t.waits_on_client(), "CopyDone: the server's turn");
    from_server(&mut t, &[msg(b'C', b"COPY 1\0"), msg(b'Z', b"T")].concat());
    assert!(t.waits_on_client(), "in a transaction, answered");
}

#[test]
fn after_an_extended_protocol_error_the_server_waits_for_the_sync() {
    let from_server = |t: &mut Tracker, bytes: &[u8]| passed(Direction::ToClient, bytes, 7, t);
    let (mut t, _) = tracker();
    passed_on(&msg(b'Q', b"BEGIN\0"), 5, &mut t);
    from_server(&mut t, &[msg(b'C', b"BEGIN\0"), msg(b'Z', b"T")].concat());
    let batch = |sql: &[u8]| {
        [
            msg(b'P', &[b"\0", sql, b"\0\0\0"].concat()),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'H', b""),
        ]
        .concat()
    };
    passed_on(&batch(b"SELECT 1/0"), 5, &mut t);
    assert!(!t.waits_on_client());
    from_server(
        &mut t,
        &[msg(b'1', b""), msg(b'2', b""), error("22012")].concat(),
    );
    assert!(t.waits_on_client(), "the server discards until a Sync");
    // What the client sends before its Sync is discarded, never answered:
    // a flushed Execute, a simple query.
    passed_on(&batch(b"SELECT 1"), 5, &mut t);
    passed_on(&msg(b'Q', b"SELECT 2\0"), 5, &mut t);
    assert!(t.waits_on_client());
    passed_on(&msg(b'S', b""), 5, &mut t);
    assert!(!t.waits_on_client(), "the Sync is the server's to answer");
    from_server(&mut t, &msg(b'Z', b"E"));
    assert!(t.waits_on_client(), "in a failed transaction, answered");
    assert!(!t.busy());
    passed_on(&msg(b'Q', b"ROLLBACK\0"), 5, &mut t);
    from_server(
        &mut t,
        &[msg(b'C', b"ROLLBACK\0"), msg(b'Z', b"I")].concat(),
    );
    assert!(t.idle(), "nothing left counted as unanswered");
}

#[test]
fn large_object_calls_do_not_pin_other_function_calls_pin_or_are_refused_and_all_are_audited() {
    let call = |oid: u32| {
        let mut body = oid.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        msg(b'F', &body)
    };
    let book = Arc::new(crate::prepared::StatementBook::default());
    let mut t = pooled(&book);
    // lo_open, loread: descriptors end with the transaction.
    for oid in [952, 954] {
        assert_eq!(passed_on(&call(oid), 3, &mut t), call(oid));
    }
    assert!(t.pooling().unwrap().pinned.is_none());
    // Any other function named by OID pins...
    passed_on(&call(2_000), 3, &mut t);
    assert_eq!(
        t.pooling().unwrap().pinned,
        Some(latchkey_sqlguard::PinCause::FunctionCall)
    );
    // ...or, where session state is refused, is replaced by the refusal.
    let mut t = pooled(&book);
    t.pooling_mut().unwrap().refuse = true;
    let out = passed_on(&call(2_000), 3, &mut t);
    assert_eq!(out[0], b'Q');
    assert!(
        String::from_utf8_lossy(&out).contains("a FunctionCall message may change session state"),
        "told why, not another cause's words"
    );
    assert!(t.pooling().unwrap().pinned.is_none());
    assert_eq!(t.refused, 1);

    // Audited: each call is a statement naming its function.
    let (t, sink) = tracker();
    let mut t = t;
    passed_on(&call(954), 3, &mut t);
    passed(
        Direction::ToClient,
        &[msg(b'V', b"\0\0\0\0"), msg(b'Z', b"T")].concat(),
        7,
        &mut t,
    );
    let recorded = sink.0.lock().unwrap();
    assert!(
        recorded
            .iter()
            .any(|e| format!("{e:?}").contains("oid_954")),
        "{recorded:?}"
    );
}

#[test]
fn a_prepared_statement_gone_from_the_server_is_prepared_again() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let mut t = pooled(&book);
    t.pooling_mut().unwrap().server.insert(1);
    passed(Direction::ToClient, &error("26000"), 7, &mut t);
    assert!(t.pooling().unwrap().server.is_empty());
}

fn missing_statement(name: &str) -> Vec<u8> {
    error_saying(
        "26000",
        &format!("prepared statement \"{name}\" does not exist"),
    )
}

/// The gateway's server name for the statement with this Parse body.
fn server_name_of(book: &crate::prepared::StatementBook, body: &[u8]) -> String {
    String::from_utf8(crate::prepared::server_name(book.intern(body).id)).unwrap()
}

/// The server's answers to a group whose Bind or Describe named a
/// statement the client never prepared: the gateway's Close of it, then
/// "does not exist", then ReadyForQuery.
fn unknown_group_answers() -> Vec<u8> {
    [msg(b'3', b""), missing_statement(&NONE), msg(b'Z', b"I")].concat()
}

#[test]
fn a_statement_the_client_never_prepared_is_reported_in_its_own_name() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let sync = msg(b'S', b"");
    let ready = msg(b'Z', b"I");
    for chunk in [1, 7, usize::MAX] {
        let mut t = pooled(&book);
        // Three groups in flight: an unknown name, a good query, the
        // unnamed statement (another client's on this connection).
        let sent = passed(
            Direction::ToUpstream,
            &[
                msg(b'B', b"\0mine\0\0\0\0\0\0\0"),
                msg(b'D', b"Salso_unknown\0"),
                sync.clone(),
                msg(b'Q', b"SELECT 1\0"),
                msg(b'D', b"S\0"),
                sync.clone(),
            ]
            .concat(),
            chunk,
            &mut t,
        );
        assert!(
            !String::from_utf8_lossy(&sent).contains("mine"),
            "the name is not sent on"
        );
        let told = passed(
            Direction::ToClient,
            &[
                unknown_group_answers(),
                msg(b'C', b"SELECT 1\0"),
                ready.clone(),
                unknown_group_answers(),
            ]
            .concat(),
            chunk,
            &mut t,
        );
        assert_eq!(
            told,
            [
                missing_statement("mine"),
                ready.clone(),
                msg(b'C', b"SELECT 1\0"),
                ready.clone(),
                error_saying("26000", "unnamed prepared statement does not exist"),
                ready.clone(),
            ]
            .concat(),
            "chunk {chunk}"
        );
        assert!(t.idle());
        // A server error that merely quotes the name, with nothing owed,
        // goes on untouched.
        let quoted = missing_statement(&NONE);
        passed(
            Direction::ToUpstream,
            &msg(b'Q', b"EXECUTE _lk_none\0"),
            chunk,
            &mut t,
        );
        assert_eq!(passed(Direction::ToClient, &quoted, chunk, &mut t), quoted);
    }
}

#[test]
fn a_query_after_a_failing_extended_message_is_skipped_not_owed() {
    // Red team: Bind, Query, Bind, Sync in one write, the first Bind
    // failing. PostgreSQL skips the rest up to the Sync, the query
    // included, and answers one ReadyForQuery.
    let sync = msg(b'S', b"");
    let ready = msg(b'Z', b"I");
    let client = [
        msg(b'B', b"\0xx\0\0\0\0\0\0\0"),
        msg(b'Q', b"SELECT 1\0"),
        msg(b'B', b"\0yy\0\0\0\0\0\0\0"),
        sync.clone(),
    ]
    .concat();
    for chunk in [1, 5, usize::MAX] {
        let (mut t, sink) = tracker();
        passed(Direction::ToUpstream, &client, chunk, &mut t);
        passed(
            Direction::ToClient,
            &[missing_statement("xx"), ready.clone()].concat(),
            chunk,
            &mut t,
        );
        assert!(t.idle(), "chunk {chunk}: nothing is owed any more");
        assert!(
            statements(&sink).is_empty(),
            "the skipped query never ran: {:?}",
            statements(&sink)
        );
        // The session goes on in step: a query is answered and audited
        // as itself.
        passed(
            Direction::ToUpstream,
            &msg(b'Q', b"SELECT 2\0"),
            chunk,
            &mut t,
        );
        assert!(!t.idle());
        passed(
            Direction::ToClient,
            &[msg(b'C', b"SELECT 1\0"), ready.clone()].concat(),
            chunk,
            &mut t,
        );
        assert!(t.idle());
        let seen = statements(&sink);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].2, None, "no error: {seen:?}");
    }
}

#[test]
fn a_query_after_a_close_in_the_same_batch_is_its_own_error() {
    // pgjdbc closes dead statements in front of the next query, simple
    // ones included: Close, Query, Sync. The query's own error is the
    // query's; the session stays in step.
    let ready = msg(b'Z', b"I");
    let sync = msg(b'S', b"");
    let exchange = |t: &mut Tracker, client: &[Vec<u8>], server: &[Vec<u8>], chunk: usize| {
        passed(Direction::ToUpstream, &client.concat(), chunk, t);
        passed(Direction::ToClient, &server.concat(), chunk, t);
        assert!(t.idle(), "chunk {chunk}");
    };
    for chunk in [1, 5, usize::MAX] {
        let (mut t, sink) = tracker();
        exchange(
            &mut t,
            &[
                msg(b'C', b"Sold\0"),
                msg(b'Q', b"SELEC oops\0"),
                sync.clone(),
            ],
            &[msg(b'3', b""), error("42601"), ready.clone(), ready.clone()],
            chunk,
        );
        let seen = statements(&sink);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].2.as_deref(), Some("42601"), "{seen:?}");
        // A Describe answered by NoData, then a query's own rows described:
        // each answer goes to its own message.
        exchange(
            &mut t,
            &[msg(b'D', b"Sold\0"), msg(b'Q', b"SELECT 1\0"), sync.clone()],
            &[
                msg(b't', b"\0\0"),
                msg(b'n', b""),
                msg(b'T', b"\0\0"),
                msg(b'C', b"SELECT 1\0"),
                ready.clone(),
                ready.clone(),
            ],
            chunk,
        );
        assert_eq!(statements(&sink).len(), 2);
    }
}

#[test]
fn a_deallocated_statement_is_reported_in_the_clients_name() {
    // A function ran DEALLOCATE ALL: the server's 26000 names the
    // gateway's statement, retold as the client's.
    let book = Arc::new(crate::prepared::StatementBook::default());
    let mut t = pooled(&book);
    let sync = msg(b'S', b"");
    passed(
        Direction::ToUpstream,
        &[msg(b'P', b"mine\0SELECT 1\0\0\0"), sync.clone()].concat(),
        usize::MAX,
        &mut t,
    );
    passed(
        Direction::ToClient,
        &[msg(b'3', b""), msg(b'1', b""), msg(b'Z', b"I")].concat(),
        usize::MAX,
        &mut t,
    );
    let server = server_name_of(&book, b"SELECT 1\0\0\0");
    passed(
        Direction::ToUpstream,
        &[msg(b'B', b"\0mine\0\0\0\0\0\0\0"), sync.clone()].concat(),
        usize::MAX,
        &mut t,
    );
    let told = passed(
        Direction::ToClient,
        &[missing_statement(&server), msg(b'Z', b"I")].concat(),
        usize::MAX,
        &mut t,
    );
    assert_eq!(told, [missing_statement("mine"), msg(b'Z', b"I")].concat());
    assert!(t.idle());
}

#[test]
fn red_team_round_2_copy_syncs_groups_shared_names_and_bind_errors() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let sync = msg(b'S', b"");
    let ready = msg(b'Z', b"I");
    for chunk in [1, 6, usize::MAX] {
        // libpq's COPY FROM STDIN by the extended protocol: a Sync right
        // after the Execute, which the server ignores in copy-in mode,
        // and one after CopyDone, the one it answers.
        let mut t = pooled(&book);
        passed(
            Direction::ToUpstream,
            &[
                msg(b'P', b"\0COPY t FROM STDIN\0\0\0"),
                msg(b'B', b"\0\0\0\0\0\0\0\0"),
                msg(b'D', b"P\0"),
                msg(b'E', b"\0\0\0\0\0"),
                sync.clone(),
            ]
            .concat(),
            chunk,
            &mut t,
        );
        passed(
            Direction::ToClient,
            &[
                msg(b'1', b""),
                msg(b'2', b""),
                msg(b'n', b""),
                msg(b'G', b"\0\0\0"),
            ]
            .concat(),
            chunk,
            &mut t,
        );
        // Round 3: nothing is owed, but the COPY runs: not to be lent.
        assert!(!t.idle(), "chunk {chunk}: mid-COPY");
        passed(
            Direction::ToUpstream,
            &[msg(b'd', b"1\n"), msg(b'c', b""), sync.clone()].concat(),
            chunk,
            &mut t,
        );
        passed(
            Direction::ToClient,
            &[msg(b'C', b"COPY 1\0"), ready.clone()].concat(),
            chunk,
            &mut t,
        );
        assert!(t.idle(), "chunk {chunk}: the connection can go back");

        // Unknown names in groups with a query the server skips: each
        // error is told with its own group's name.
        let mut t = pooled(&book);
        passed(
            Direction::ToUpstream,
            &[
                msg(b'B', b"\0bad1\0\0\0\0\0\0\0"),
                msg(b'Q', b"SELECT 1\0"),
                sync.clone(),
                msg(b'B', b"\0bad2\0\0\0\0\0\0\0"),
                msg(b'E', b"\0\0\0\0\0"),
                sync.clone(),
            ]
            .concat(),
            chunk,
            &mut t,
        );
        let told = passed(
            Direction::ToClient,
            &[unknown_group_answers(), unknown_group_answers()].concat(),
            chunk,
            &mut t,
        );
        assert_eq!(
            told,
            [
                missing_statement("bad1"),
                ready.clone(),
                missing_statement("bad2"),
                ready.clone()
            ]
            .concat(),
            "chunk {chunk}"
        );
        passed(
            Direction::ToUpstream,
            &[msg(b'B', b"\0bad3\0\0\0\0\0\0\0"), sync.clone()].concat(),
            chunk,
            &mut t,
        );
        let told = passed(Direction::ToClient, &unknown_group_answers(), chunk, &mut t);
        assert_eq!(told, [missing_statement("bad3"), ready.clone()].concat());
        assert!(t.idle());
    }

    // Two names for one text share a server statement: a 26000 for it is
    // not told under the wrong one.
    let mut t = pooled(&book);
    passed(
        Direction::ToUpstream,
        &[
            msg(b'P', b"alpha\0SELECT 42\0\0\0"),
            msg(b'P', b"bravo\0SELECT 42\0\0\0"),
            sync.clone(),
        ]
        .concat(),
        usize::MAX,
        &mut t,
    );
    let server = server_name_of(&book, b"SELECT 42\0\0\0");
    passed(
        Direction::ToUpstream,
        &[msg(b'B', b"\0bravo\0\0\0\0\0\0\0"), sync.clone()].concat(),
        usize::MAX,
        &mut t,
    );
    let told = passed(
        Direction::ToClient,
        &missing_statement(&server),
        usize::MAX,
        &mut t,
    );
    assert!(!String::from_utf8_lossy(&told).contains("alpha"));

    // A statement that fails at Bind (planned there) is audited with its
    // error.
    let (mut t, sink) = tracker();
    passed(
        Direction::ToUpstream,
        &[
            msg(b'P', b"\0SELECT 1/0\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            sync.clone(),
        ]
        .concat(),
        usize::MAX,
        &mut t,
    );
    passed(
        Direction::ToClient,
        &[msg(b'1', b""), error("22012"), ready.clone()].concat(),
        usize::MAX,
        &mut t,
    );
    let seen = statements(&sink);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].2.as_deref(), Some("22012"), "{seen:?}");
    assert!(t.idle());
}

#[test]
fn red_team_round_3_a_sync_during_copy_holds_the_connection_and_a_bind_error_names_its_own_statement()
 {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let ready = msg(b'Z', b"I");
    // A Sync sent during COPY behind a bad row: the server answers it or
    // not (depending on when the COPY failed), so the connection is
    // never idle again.
    let mut t = pooled(&book);
    passed(
        Direction::ToUpstream,
        &msg(b'Q', b"COPY t FROM STDIN\0"),
        usize::MAX,
        &mut t,
    );
    passed(
        Direction::ToClient,
        &msg(b'G', b"\0\0\0"),
        usize::MAX,
        &mut t,
    );
    passed(
        Direction::ToUpstream,
        &[msg(b'd', b"notanint\n"), msg(b'S', b"")].concat(),
        usize::MAX,
        &mut t,
    );
    passed(
        Direction::ToClient,
        &[error("22P02"), ready.clone(), ready.clone()].concat(),
        usize::MAX,
        &mut t,
    );
    assert!(!t.idle(), "out of step: held, never lent");

    // Parse p2; Bind p1 (fails); Bind p2; Execute; Sync: the error is
    // p1's Bind's, and p2's Execute never ran.
    let (mut t, sink) = tracker();
    passed(
        Direction::ToUpstream,
        &[msg(b'P', b"p1\0SELECT $1::int\0\0\0"), msg(b'S', b"")].concat(),
        usize::MAX,
        &mut t,
    );
    passed(
        Direction::ToClient,
        &[msg(b'1', b""), ready.clone()].concat(),
        usize::MAX,
        &mut t,
    );
    passed(
        Direction::ToUpstream,
        &[
            msg(b'P', b"p2\0SELECT 2\0\0\0"),
            msg(b'B', b"\0p1\0\0\0\0\x01\0\0\0\x03abc\0\0"),
            msg(b'B', b"\0p2\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat(),
        usize::MAX,
        &mut t,
    );
    passed(
        Direction::ToClient,
        &[msg(b'1', b""), error("22P02"), ready.clone()].concat(),
        usize::MAX,
        &mut t,
    );
    assert!(t.idle());
    let seen = statements(&sink);
    assert!(seen.is_empty(), "neither ran: {seen:?}");
}

#[test]
fn red_team_round_4_an_extended_copy_ended_without_sync_is_still_owed() {
    // Extended COPY as libpq sends it, then CopyDone (or CopyFail) with
    // no Sync yet: the server answers the COPY only at the next Sync, so
    // the connection is not idle until that Sync is answered.
    let book = Arc::new(crate::prepared::StatementBook::default());
    for end in [msg(b'c', b""), msg(b'f', b"no\0")] {
        let mut t = pooled(&book);
        passed(
            Direction::ToUpstream,
            &[
                msg(b'P', b"\0COPY t FROM STDIN\0\0\0"),
                msg(b'B', b"\0\0\0\0\0\0\0\0"),
                msg(b'E', b"\0\0\0\0\0"),
                msg(b'S', b""),
            ]
            .concat(),
            usize::MAX,
            &mut t,
        );
        passed(
            Direction::ToClient,
            &[msg(b'1', b""), msg(b'2', b""), msg(b'G', b"\0\0\0")].concat(),
            usize::MAX,
            &mut t,
        );
        passed(
            Direction::ToUpstream,
            &[msg(b'd', b"7\n"), end.clone()].concat(),
            usize::MAX,
            &mut t,
        );
        assert!(!t.idle(), "the COPY's answer waits for a Sync");
        passed(Direction::ToUpstream, &msg(b'S', b""), usize::MAX, &mut t);
        assert!(!t.idle());
        passed(
            Direction::ToClient,
            &[msg(b'C', b"COPY 1\0"), msg(b'Z', b"I")].concat(),
            usize::MAX,
            &mut t,
        );
        assert!(t.idle(), "answered");
    }
}

#[test]
fn an_idle_tracker_gives_its_queues_back_and_follows_the_next_transaction() {
    let query = |sql: &str| msg(b'Q', format!("{sql}\0").as_bytes());
    let answer = [msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat();
    let (mut t, sink) = tracker();
    for round in 0..2 {
        passed_on(&query("SELECT 1"), 4096, &mut t);
        assert!(!t.idle(), "round {round}: answer awaited");
        t.shrink_idle();
        assert!(!t.idle(), "round {round}: nothing given back while waiting");
        passed(Direction::ToClient, &answer, 4096, &mut t);
        assert!(t.idle(), "round {round}");
        t.shrink_idle();
        assert_eq!(t.queues_capacity(), 0, "round {round}");
    }
    assert_eq!(statements(&sink).len(), 2);
}

#[test]
fn a_client_far_ahead_of_its_answers_is_backlogged_until_they_come() {
    let from_server = |t: &mut Tracker, bytes: &[u8]| passed(Direction::ToClient, bytes, 4096, t);
    let select = msg(b'Q', b"SELECT 1\0");
    let answer = [msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat();
    let (mut t, _) = tracker();
    passed_on(&select.repeat(MAX_AWAITED - 1), 4096, &mut t);
    assert!(!t.backlogged());
    passed_on(&select, 4096, &mut t);
    assert!(t.backlogged(), "{MAX_AWAITED} queries await their answers");
    from_server(&mut t, &answer);
    assert!(!t.backlogged());
    from_server(&mut t, &answer.repeat(MAX_AWAITED - 1));
    assert!(t.idle());

    // While the server waits for COPY data, the client is read whatever
    // it awaits.
    passed_on(&msg(b'Q', b"COPY t FROM STDIN\0"), 4096, &mut t);
    passed_on(&select.repeat(MAX_AWAITED), 4096, &mut t);
    assert!(t.backlogged());
    from_server(&mut t, &msg(b'G', b"\0\0\0"));
    assert!(!t.backlogged());

    // After an extended-protocol error the server skips everything up to
    // the client's Sync: nothing is awaited of it, so however long the
    // client goes on before its Sync, it is read.
    let (mut t, _) = tracker();
    passed_on(&msg(b'P', b"\0SELEC 1\0\0\0"), 4096, &mut t);
    from_server(&mut t, &error("42601"));
    let bind_execute = [msg(b'B', b"\0\0\0\0\0\0\0\0"), msg(b'E', b"\0\0\0\0\0")].concat();
    passed_on(&bind_execute.repeat(MAX_AWAITED), 4096, &mut t);
    assert!(!t.backlogged(), "what the server skips is not awaited");
    passed_on(&msg(b'S', b""), 4096, &mut t);
    from_server(&mut t, &msg(b'Z', b"I"));
    assert!(t.idle());
}

/// Sends `bytes` to the server through `t`; what went on.
fn to_server(t: &mut Tracker, bytes: &[u8]) -> Vec<u8> {
    passed(Direction::ToUpstream, bytes, usize::MAX, t)
}

/// Passes the server's `bytes` to the client through `t`.
fn from_server(t: &mut Tracker, bytes: &[u8]) -> Vec<u8> {
    passed(Direction::ToClient, bytes, usize::MAX, t)
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    msg(b'P', format!("{name}\0{sql}\0\0\0").as_bytes())
}

fn bind_execute(name: &str) -> Vec<u8> {
    [
        msg(b'B', format!("\0{name}\0\0\0\0\0\0\0").as_bytes()),
        msg(b'E', b"\0\0\0\0\0"),
    ]
    .concat()
}

/// Answers of a Bind and an Execute of a one-row SELECT, and a Sync's.
fn ran() -> Vec<u8> {
    [
        msg(b'2', b""),
        msg(b'D', b"\0\x01\0\0\0\x011"),
        msg(b'C', b"SELECT 1\0"),
        msg(b'Z', b"I"),
    ]
    .concat()
}

#[test]
fn red_team_round_5_what_the_server_skips_is_not_sent_and_renames_nothing() {
    for pooling in [false, true] {
        let book = Arc::new(crate::prepared::StatementBook::default());
        let (t, sink) = tracker();
        let mut t = if pooling {
            t.with_pooling(crate::Pooling::new(&[], false, book.clone()))
        } else {
            t
        };
        let sync = msg(b'S', b"");
        let prepared = to_server(
            &mut t,
            &[parse("acct", "SELECT 'alice'"), sync.clone()].concat(),
        );
        from_server(
            &mut t,
            &[
                msg(if pooling { b'3' } else { b'1' }, b""),
                msg(b'1', b""),
                msg(b'Z', b"I"),
            ][usize::from(!pooling)..]
                .concat(),
        );
        assert!(!prepared.is_empty());
        // An error, and no Sync yet: the server skips what follows.
        to_server(&mut t, &[parse("", "SELECT 1/0"), msg(b'H', b"")].concat());
        from_server(&mut t, &error("22012"));
        let skipped = [
            parse("acct", "SELECT 'mallory'"),
            msg(b'C', b"Sacct\0"),
            bind_execute("acct"),
            msg(b'D', b"Sacct\0"),
            msg(b'c', b""),
        ]
        .concat();
        let sent = to_server(&mut t, &skipped);
        assert_eq!(
            sent,
            msg(b'c', b""),
            "pooling {pooling}: only what the tracker never reads"
        );
        assert_eq!(to_server(&mut t, &sync), sync);
        from_server(&mut t, &msg(b'Z', b"I"));
        assert!(
            t.idle(),
            "pooling {pooling}: nothing awaited of what was skipped"
        );
        // The name still stands for what the server prepared under it.
        let sent = to_server(&mut t, &[bind_execute("acct"), sync.clone()].concat());
        assert!(!sent.is_empty());
        let answers = from_server(&mut t, &ran());
        assert!(answers.ends_with(&msg(b'Z', b"I")));
        let audited = statements(&sink);
        assert_eq!(
            audited.last().map(|s| s.0.as_str()),
            Some("SELECT ?"),
            "pooling {pooling}: {audited:?}"
        );
        assert!(
            !audited.iter().any(|s| s.0.contains("mallory")),
            "pooling {pooling}: {audited:?}"
        );
    }
}

#[test]
fn red_team_round_5_a_refused_parse_of_a_taken_name_leaves_the_name_as_it_was() {
    let (mut t, sink) = tracker();
    let sync = msg(b'S', b"");
    to_server(
        &mut t,
        &[parse("s", "SELECT relname FROM pg_class"), sync.clone()].concat(),
    );
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    // The name is taken: PostgreSQL refuses the Parse (42P05) and keeps
    // its statement, which the next group runs.
    to_server(
        &mut t,
        &[parse("s", "SELECT 'harmless'"), sync.clone()].concat(),
    );
    from_server(&mut t, &[error("42P05"), msg(b'Z', b"I")].concat());
    to_server(&mut t, &[bind_execute("s"), sync.clone()].concat());
    from_server(&mut t, &ran());
    let audited = statements(&sink);
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(audited[0].0, "SELECT ?", "the refused Parse: {audited:?}");
    assert_eq!(audited[0].2.as_deref(), Some("42P05"));
    assert_eq!(audited[1].0, "SELECT relname FROM pg_class", "{audited:?}");

    // A Parse of the name sent before the refusal came back (after a
    // Close) names it, whatever becomes of the first.
    let (mut t, sink) = tracker();
    to_server(&mut t, &[parse("s", "SELECT 1"), sync.clone()].concat());
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    to_server(
        &mut t,
        &[
            parse("s", "SELECT 2"),
            sync.clone(),
            msg(b'C', b"Ss\0"),
            sync.clone(),
            parse("s", "SELECT relname FROM pg_class"),
            sync.clone(),
            bind_execute("s"),
            sync.clone(),
        ]
        .concat(),
    );
    from_server(
        &mut t,
        &[
            error("42P05"),
            msg(b'Z', b"I"),
            msg(b'3', b""),
            msg(b'Z', b"I"),
            msg(b'1', b""),
            msg(b'Z', b"I"),
        ]
        .concat(),
    );
    from_server(&mut t, &ran());
    let audited = statements(&sink);
    assert_eq!(
        audited.last().map(|s| s.0.as_str()),
        Some("SELECT relname FROM pg_class"),
        "{audited:?}"
    );
}

/// The last statement audited.
fn last_audited(sink: &Collect) -> String {
    statements(sink)
        .last()
        .map(|s| s.0.clone())
        .unwrap_or_default()
}

#[test]
fn red_team_round_6_names_are_told_apart_by_their_first_63_bytes_as_the_server_does() {
    let long = |c: char| format!("{}{c}", "L".repeat(63));
    let sync = msg(b'S', b"");
    let (mut t, sink) = tracker();
    to_server(
        &mut t,
        &[parse(&long('A'), "SELECT 1 FROM pg_class"), sync.clone()].concat(),
    );
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    // To the server, B's name is A's: the Close closes it, and the Parse
    // names it again.
    to_server(
        &mut t,
        &[
            msg(b'C', format!("S{}\0", long('B')).as_bytes()),
            sync.clone(),
        ]
        .concat(),
    );
    from_server(&mut t, &[msg(b'3', b""), msg(b'Z', b"I")].concat());
    to_server(
        &mut t,
        &[parse(&long('B'), "DELETE FROM t"), sync.clone()].concat(),
    );
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    to_server(&mut t, &[bind_execute(&long('A')), sync.clone()].concat());
    from_server(
        &mut t,
        &[msg(b'2', b""), msg(b'C', b"DELETE 9\0"), msg(b'Z', b"I")].concat(),
    );
    assert_eq!(last_audited(&sink), "DELETE FROM t");
    // Portals too.
    to_server(
        &mut t,
        &[
            msg(
                b'B',
                format!("{}\0{}\0\0\0\0\0\0\0", long('P'), long('B')).as_bytes(),
            ),
            msg(b'E', format!("{}\0\0\0\0\0", long('Q')).as_bytes()),
            sync.clone(),
        ]
        .concat(),
    );
    from_server(
        &mut t,
        &[msg(b'2', b""), msg(b'C', b"DELETE 13\0"), msg(b'Z', b"I")].concat(),
    );
    assert_eq!(last_audited(&sink), "DELETE FROM t");
}

/// A group whose third message fails (`22012`): the server skips what
/// follows it up to the client's `Sync`.
fn failing_group() -> Vec<u8> {
    [
        parse("f", "SELECT 1/0"),
        msg(b'B', b"\0f\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
    ]
    .concat()
}

/// The server's answers to [`failing_group`] and its `Sync`.
fn failing_answers() -> Vec<u8> {
    [
        msg(b'1', b""),
        msg(b'2', b""),
        error("22012"),
        msg(b'Z', b"I"),
    ]
    .concat()
}

/// A session whose statement `name` holds `DELETE FROM victim`, taken by
/// the server.
fn holding_delete(name: &str) -> (Tracker, Arc<Collect>) {
    let (mut t, sink) = tracker();
    to_server(
        &mut t,
        &[parse(name, "DELETE FROM victim"), msg(b'S', b"")].concat(),
    );
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    (t, sink)
}

/// The answers to a `Bind`, an `Execute` that deleted five rows, a `Sync`.
fn deleted_answers() -> Vec<u8> {
    [msg(b'2', b""), msg(b'C', b"DELETE 5\0"), msg(b'Z', b"I")].concat()
}

#[test]
fn red_team_round_6_what_the_server_skipped_before_its_error_came_renames_nothing() {
    let sync = msg(b'S', b"");
    let failing = [
        parse("", "SELECT 1/0"),
        msg(b'B', b"\0\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
    ]
    .concat();
    let fails = failing_answers();
    let deleted = deleted_answers();
    // A Parse sent in the same write as the failing one, so before its
    // error came: the server skipped it.
    let (mut t, sink) = tracker();
    to_server(
        &mut t,
        &[parse("s4", "DELETE FROM victim"), sync.clone()].concat(),
    );
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    to_server(
        &mut t,
        &[
            failing.clone(),
            parse("s4", "SELECT 'harmless'"),
            sync.clone(),
        ]
        .concat(),
    );
    from_server(&mut t, &fails);
    to_server(&mut t, &[bind_execute("s4"), sync.clone()].concat());
    from_server(&mut t, &deleted);
    assert_eq!(last_audited(&sink), "DELETE FROM victim");
    // A Close the server skipped closed nothing.
    to_server(
        &mut t,
        &[failing.clone(), msg(b'C', b"Ss4\0"), sync.clone()].concat(),
    );
    from_server(&mut t, &fails);
    to_server(&mut t, &[bind_execute("s4"), sync.clone()].concat());
    from_server(&mut t, &deleted);
    assert_eq!(last_audited(&sink), "DELETE FROM victim");
    // Nor the unnamed statement, which outlives transactions: skipped,
    // the server keeps the one it had.
    let (mut t, sink) = tracker();
    to_server(
        &mut t,
        &[parse("", "DELETE FROM victim"), sync.clone()].concat(),
    );
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    to_server(
        &mut t,
        &[
            parse("f", "SELECT 1/0"),
            msg(b'B', b"\0f\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            parse("", "SELECT 'harmless'"),
            sync.clone(),
        ]
        .concat(),
    );
    from_server(&mut t, &fails);
    to_server(&mut t, &[bind_execute(""), sync.clone()].concat());
    from_server(&mut t, &deleted);
    assert_eq!(last_audited(&sink), "DELETE FROM victim");
}

/// Statement policy that passes everything and notes each `Parse` it
/// rules on: the name, and whether it replaces the unnamed statement.
struct Noting(Arc<Mutex<Vec<(String, bool)>>>);

impl StatementGate for Noting {
    fn rule(&mut self, _: &str) -> Ruling {
        Ruling::Pass(decision(true))
    }
    fn rule_parse(&mut self, name: &str, sql: &str, replaces: bool) -> Ruling {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_owned(), replaces));
        self.rule(sql)
    }
    fn backslashes_differ(&mut self, _: bool) {}
    fn encoding_differs(&mut self, _: bool) {}
    fn database_changed(&mut self) {}
}

#[test]
fn red_team_round_7_a_malformed_parse_replaces_no_unnamed_statement() {
    let noted = Arc::new(Mutex::new(Vec::new()));
    let mut t = Tracker::new(None).with_gate(Some(Box::new(Noting(noted.clone()))));
    // The server reads a Parse whole before it drops the unnamed
    // statement: trailing bytes, or a wrong parameter count, and it
    // refuses the message (08P01) with the old statement in place.
    let junk = msg(b'P', b"\0SELECT 'x'\0\0\0junk");
    to_server(&mut t, &[junk, msg(b'S', b"")].concat());
    from_server(&mut t, &[error("08P01"), msg(b'Z', b"I")].concat());
    to_server(&mut t, &[parse("", "SELECT 1"), msg(b'S', b"")].concat());
    assert_eq!(
        *noted.lock().unwrap_or_else(|p| p.into_inner()),
        [(String::new(), false), (String::new(), true)]
    );
}

#[test]
fn red_team_round_7_names_outside_ascii_are_refused_where_the_server_converts_them() {
    let long = [vec![0xe9u8; 40], b"A".to_vec()].concat();
    let parse_long = msg(b'P', &[&long[..], b"\0SELECT 1\0\0\0"].concat());
    let bind_long = msg(b'B', &[&long[..], b"\0s\0\0\0\0\0\0\0"].concat());
    // A UTF-8 client: names as they are.
    let (mut t, _) = tracker();
    assert_eq!(to_server(&mut t, &parse_long), parse_long);
    assert_eq!(to_server(&mut t, &bind_long), bind_long);
    // LATIN1: each byte past ASCII becomes two on the server, which keeps
    // the first 63 of those; refused, as is a Bind of such a portal.
    let (mut t, _) = tracker();
    from_server(&mut t, &msg(b'S', b"client_encoding\0LATIN1\0"));
    for message in [&parse_long, &bind_long] {
        let sent = String::from_utf8_lossy(&to_server(&mut t, message)).into_owned();
        assert!(
            sent.contains("42602") && sent.contains("outside ASCII"),
            "{sent}"
        );
        to_server(&mut t, &msg(b'S', b""));
    }
    // ASCII names are the same in every encoding the server has.
    let ascii = msg(
        b'P',
        format!("{}\0SELECT 1\0\0\0", "n".repeat(70)).as_bytes(),
    );
    assert_eq!(to_server(&mut t, &ascii), ascii);
    // A server that is not UTF-8 converts too.
    let (t, _) = tracker();
    let mut t = t.encodings(false, true);
    let sent = String::from_utf8_lossy(&to_server(&mut t, &parse_long)).into_owned();
    assert!(sent.contains("42602"), "{sent}");
}

#[test]
fn red_team_round_7_a_skipped_unnamed_parse_leaves_no_unnamed_statement_to_run() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let mut t = pooled(&book);
    if let Some(p) = t.pooling_mut() {
        p.lent();
    }
    // A failing Parse, then one of the unnamed statement the server
    // skips: what the connection holds as unnamed is another client's.
    to_server(
        &mut t,
        &[
            parse("zz", "SELEC"),
            parse("", "SELECT 'mine'"),
            msg(b'S', b""),
        ]
        .concat(),
    );
    from_server(&mut t, &[error("42601"), msg(b'Z', b"I")].concat());
    let sent = to_server(&mut t, &[bind_execute(""), msg(b'S', b"")].concat());
    assert!(sent.starts_with(&close_none()), "{sent:?}");
}

#[test]
fn red_team_round_7_an_unnamed_parse_that_may_be_skipped_claims_no_unnamed_statement() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let lent = |book: &Arc<crate::prepared::StatementBook>| {
        let mut t = pooled(book);
        if let Some(p) = t.pooling_mut() {
            p.lent();
        }
        t
    };
    // In one write, before any answer: a Parse of the unnamed statement
    // after one that may fail, then, in the next group, a Bind of it. The
    // server may skip the Parse, and hold another client's.
    let mut t = lent(&book);
    let sent = to_server(
        &mut t,
        &[
            parse("zz", "SELECT nosuchcol"),
            parse("", "SELECT 'mine'"),
            msg(b'S', b""),
        ]
        .concat(),
    );
    assert!(!sent.is_empty());
    let sent = to_server(&mut t, &[bind_execute(""), msg(b'S', b"")].concat());
    assert!(sent.starts_with(&close_none()), "{sent:?}");
    // A malformed one first in its group leaves the old one too.
    let mut t = lent(&book);
    to_server(
        &mut t,
        &[msg(b'P', b"\0SELECT 1\0\0\0junk"), msg(b'S', b"")].concat(),
    );
    let sent = to_server(&mut t, &[bind_execute(""), msg(b'S', b"")].concat());
    assert!(sent.starts_with(&close_none()), "{sent:?}");
    // First in its group and well formed: the server drops the old one
    // before anything can fail, and a Bind in the same group or a later
    // one names the client's.
    let mut t = lent(&book);
    let group = [parse("", "SELECT 1"), bind_execute(""), msg(b'S', b"")].concat();
    assert_eq!(to_server(&mut t, &group), group);
    let again = [bind_execute(""), msg(b'S', b"")].concat();
    assert_eq!(to_server(&mut t, &again), again);
    // Later in a group (after a Flush), a Bind in that group goes with
    // its Parse; in the next group, not.
    let mut t = lent(&book);
    let group = [
        msg(b'H', b""),
        parse("", "SELECT 2"),
        bind_execute(""),
        msg(b'S', b""),
    ]
    .concat();
    assert_eq!(to_server(&mut t, &group), group);
    let sent = to_server(&mut t, &[bind_execute(""), msg(b'S', b"")].concat());
    assert!(sent.starts_with(&close_none()), "{sent:?}");
}

#[test]
fn red_team_round_8_a_portal_bound_behind_a_skipped_parse_runs_what_the_server_kept() {
    let sync = msg(b'S', b"");
    let failing = failing_group();
    let fails = failing_answers();
    let deleted = deleted_answers();
    for name in ["", "s4"] {
        let (mut t, sink) = holding_delete(name);
        // The Bind and Execute go out before the error of the group
        // whose Parse the server skips: the portal is bound (and the
        // execution labelled) from the Parse the server never took.
        to_server(
            &mut t,
            &[
                failing.clone(),
                parse(name, "SELECT 'harmless'"),
                sync.clone(),
                bind_execute(name),
                sync.clone(),
            ]
            .concat(),
        );
        from_server(&mut t, &fails);
        from_server(&mut t, &deleted);
        assert_eq!(last_audited(&sink), "DELETE FROM victim", "{name:?}");
        // The portal itself, executed again later, as well.
        let named_portal = msg(b'B', format!("p\0{name}\0\0\0\0\0\0\0").as_bytes());
        to_server(
            &mut t,
            &[
                failing.clone(),
                parse(name, "SELECT 'harmless'"),
                sync.clone(),
                named_portal,
                sync.clone(),
            ]
            .concat(),
        );
        from_server(&mut t, &fails);
        from_server(&mut t, &[msg(b'2', b""), msg(b'Z', b"I")].concat());
        to_server(&mut t, &[msg(b'E', b"p\0\0\0\0\0"), sync.clone()].concat());
        from_server(
            &mut t,
            &[msg(b'C', b"DELETE 5\0"), msg(b'Z', b"I")].concat(),
        );
        assert_eq!(
            last_audited(&sink),
            "DELETE FROM victim",
            "{name:?} portal p"
        );
    }
}

#[test]
fn red_team_round_8_a_name_sql_deallocates_or_prepares_is_no_longer_the_sql_parsed_under_it() {
    let sync = msg(b'S', b"");
    let query = |sql: &str| msg(b'Q', format!("{sql}\0").as_bytes());
    let deleted = deleted_answers();
    let unknown = "(statement not known to the gateway)";
    for sql in [
        "DEALLOCATE s4; PREPARE S4 AS DELETE FROM victim",
        "DISCARD ALL; PREPARE s4 AS DELETE FROM victim",
        "DO $$BEGIN EXECUTE 'DEALLOCATE s4'; EXECUTE 'PREPARE s4 AS DELETE FROM victim'; END$$",
    ] {
        let (mut t, sink) = tracker();
        to_server(
            &mut t,
            &[
                parse("s4", "SELECT 'harmless'"),
                parse("", "SELECT 2"),
                sync.clone(),
            ]
            .concat(),
        );
        from_server(
            &mut t,
            &[msg(b'1', b""), msg(b'1', b""), msg(b'Z', b"I")].concat(),
        );
        to_server(&mut t, &query(sql));
        from_server(&mut t, &[msg(b'C', b"PREPARE\0"), msg(b'Z', b"I")].concat());
        to_server(&mut t, &[bind_execute("s4"), sync.clone()].concat());
        from_server(&mut t, &deleted);
        assert_eq!(last_audited(&sink), unknown, "{sql}");
        // The unnamed statement is not a prepared statement SQL can name.
        to_server(&mut t, &[bind_execute(""), sync.clone()].concat());
        from_server(&mut t, &deleted);
        assert_eq!(last_audited(&sink), "SELECT ?", "{sql}");
    }
    // Other names keep their SQL.
    let (mut t, sink) = tracker();
    to_server(
        &mut t,
        &[parse("s5", "SELECT 'kept'"), sync.clone()].concat(),
    );
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    to_server(&mut t, &query("PREPARE s4 AS DELETE FROM victim"));
    from_server(&mut t, &[msg(b'C', b"PREPARE\0"), msg(b'Z', b"I")].concat());
    to_server(&mut t, &[bind_execute("s5"), sync.clone()].concat());
    from_server(&mut t, &deleted);
    assert_eq!(last_audited(&sink), "SELECT ?");
}

#[test]
fn red_team_round_8_statements_past_the_carried_bound_run_on_the_pinned_connection() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let mut t = pooled(&book);
    let sync = msg(b'S', b"");
    // Carried, up to the bound: each sent under the gateway's name.
    for i in 0..crate::MAX_NAMES {
        to_server(&mut t, &parse(&format!("s{i}"), &format!("SELECT {i}")));
    }
    to_server(&mut t, &sync);
    assert!(t.pooling().is_some_and(|p| p.pinned.is_none()));
    // Past it: the client's own name on the connection it now keeps.
    let mine = parse("mine", "SELECT 'mine'");
    assert_eq!(to_server(&mut t, &mine), mine);
    assert_eq!(
        t.pooling().and_then(|p| p.pinned),
        Some(latchkey_sqlguard::PinCause::NamedStatement)
    );
    for message in [
        msg(b'B', b"\0mine\0\0\0\0\0\0\0"),
        msg(b'D', b"Smine\0"),
        msg(b'C', b"Smine\0"),
    ] {
        assert_eq!(to_server(&mut t, &message), message);
    }
    // Carried ones are still renamed; the gateway's names stay out of
    // reach, and cannot be taken by a Parse the gateway does not carry.
    let sent = to_server(&mut t, &msg(b'B', b"\0s7\0\0\0\0\0\0\0"));
    assert!(!sent.windows(3).any(|w| w == b"s7\0"), "{sent:?}");
    let lk = msg(b'B', format!("\0{}\0\0\0\0\0\0\0", *LK1).as_bytes());
    let sent = to_server(&mut t, &lk);
    assert_ne!(sent, lk);
    let sent =
        String::from_utf8_lossy(&to_server(&mut t, &parse("_lk_1", "SELECT 'x'"))).into_owned();
    assert!(
        sent.contains("42P05") && sent.contains("reserved by the gateway"),
        "{sent}"
    );
}

#[test]
fn statements_past_the_carried_bytes_pin_and_the_book_shares_only_small_ones() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let mut t = pooled(&book);
    let sync = msg(b'S', b"");
    // 100 KiB statements, distinct: carried until 4 MiB of them.
    let text = |i: usize| format!("SELECT '{}' AS c{i}", "x".repeat(100 << 10));
    let carried = crate::prepared::MAX_CARRIED_BYTES / (100 << 10) + 1;
    for i in 0..carried {
        let sent = to_server(&mut t, &parse(&format!("s{i}"), &text(i)));
        // Sent under the gateway's name.
        assert!(
            sent.windows(4).any(|w| w == b"_lk_"),
            "s{i} {:?}",
            String::from_utf8_lossy(&sent[..sent.len().min(60)])
        );
    }
    to_server(&mut t, &sync);
    assert!(t.pooling().is_some_and(|p| p.pinned.is_none()));
    // The next is the client's own, on the connection it now keeps.
    let mine = parse("mine", &text(carried));
    assert_eq!(to_server(&mut t, &mine), mine);
    assert_eq!(
        t.pooling().and_then(|p| p.pinned),
        Some(latchkey_sqlguard::PinCause::NamedStatement)
    );
    // None of them was large enough to share; a small one is.
    assert_eq!(book.shared_bytes(), 0);
    let mut other = pooled(&book);
    to_server(&mut other, &parse("small", "SELECT 1"));
    assert!(book.shared_bytes() > 0);
}

#[test]
fn a_deallocate_sent_by_the_extended_protocol_stays_a_parse_in_transaction_pooling() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let mut t = pooled(&book);
    let sync = msg(b'S', b"");
    to_server(&mut t, &[parse("s1", "SELECT 1"), sync.clone()].concat());
    from_server(
        &mut t,
        &[msg(b'3', b""), msg(b'1', b""), msg(b'Z', b"I")].concat(),
    );
    let sent = to_server(
        &mut t,
        &[parse("", "DEALLOCATE s1"), bind_execute(""), sync.clone()].concat(),
    );
    // A Parse of the unnamed statement still: the server answers it with
    // ParseComplete, as the client expects, not as a simple query.
    assert_eq!(
        sent,
        [parse("", "DEALLOCATE ALL"), bind_execute(""), sync.clone()].concat()
    );
    let answers = [
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'C', b"DEALLOCATE ALL\0"),
        msg(b'Z', b"I"),
    ]
    .concat();
    assert_eq!(from_server(&mut t, &answers), answers);
    // The client's name is gone, as on the server.
    let sent = to_server(&mut t, &[bind_execute("s1"), sync].concat());
    assert!(sent.windows(8).any(|w| w == b"_lk_none"), "{sent:?}");
}

#[test]
fn red_team_round_8_a_pinned_client_cannot_execute_the_gateways_statements_by_sql() {
    let book = Arc::new(crate::prepared::StatementBook::default());
    let mut t = pooled(&book);
    let query = |sql: &str| msg(b'Q', format!("{sql}\0").as_bytes());
    // Its own statement by SQL: pinned, and its EXECUTE runs.
    let own = query("PREPARE mine AS SELECT 1");
    assert_eq!(to_server(&mut t, &own), own);
    from_server(&mut t, &[msg(b'C', b"PREPARE\0"), msg(b'Z', b"I")].concat());
    let run = query("EXECUTE mine");
    assert_eq!(to_server(&mut t, &run), run);
    from_server(
        &mut t,
        &[msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat(),
    );
    // Another session's, prepared on this connection under the gateway's
    // name: as if it did not exist, however it is spelt.
    for sql in [
        "EXECUTE _lk_1(3)",
        "EXPLAIN ANALYZE EXECUTE _LK_1(5)",
        "CREATE TABLE stolen AS EXECUTE \"_lk_1\"",
        "EXECUTE U&\"\\005flk_1\"",
    ] {
        let sent = String::from_utf8_lossy(&to_server(&mut t, &query(sql))).into_owned();
        assert!(sent.contains("26000"), "{sql}: {sent}");
        from_server(&mut t, &[error("26000"), msg(b'Z', b"I")].concat());
    }
}

#[test]
fn red_team_round_8_nested_skipped_parses_restore_what_the_server_kept() {
    let sync = msg(b'S', b"");
    let failing = failing_group();
    let fails = failing_answers();
    let deleted = deleted_answers();
    for name in ["", "s4"] {
        let (mut t, sink) = holding_delete(name);
        to_server(
            &mut t,
            &[
                failing.clone(),
                parse(name, "SELECT 'x'"),
                sync.clone(),
                failing.clone(),
                parse(name, "SELECT 'y', 2"),
                sync.clone(),
                bind_execute(name),
                sync.clone(),
            ]
            .concat(),
        );
        from_server(&mut t, &fails);
        from_server(&mut t, &fails);
        from_server(&mut t, &deleted);
        assert_eq!(last_audited(&sink), "DELETE FROM victim", "{name:?}");
        to_server(&mut t, &[bind_execute(name), sync.clone()].concat());
        from_server(&mut t, &deleted);
        assert_eq!(last_audited(&sink), "DELETE FROM victim", "{name:?} later");
    }
}

#[test]
fn red_team_round_8_sql_names_are_followed_when_run_and_truncated_as_the_server_does() {
    let sync = msg(b'S', b"");
    let deleted = deleted_answers();
    let unknown = "(statement not known to the gateway)";
    // PREPARE and DEALLOCATE parsed first, run after s4 is parsed again.
    let (mut t, sink) = tracker();
    to_server(
        &mut t,
        &[
            parse("t", "PREPARE s4 AS DELETE FROM victim"),
            parse("u", "DEALLOCATE s4"),
            sync.clone(),
        ]
        .concat(),
    );
    from_server(
        &mut t,
        &[msg(b'1', b""), msg(b'1', b""), msg(b'Z', b"I")].concat(),
    );
    to_server(
        &mut t,
        &[parse("s4", "SELECT 'harmless'"), sync.clone()].concat(),
    );
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    to_server(
        &mut t,
        &[bind_execute("u"), bind_execute("t"), sync.clone()].concat(),
    );
    from_server(
        &mut t,
        &[
            msg(b'2', b""),
            msg(b'C', b"DEALLOCATE\0"),
            msg(b'2', b""),
            msg(b'C', b"PREPARE\0"),
            msg(b'Z', b"I"),
        ]
        .concat(),
    );
    to_server(&mut t, &[bind_execute("s4"), sync.clone()].concat());
    from_server(&mut t, &deleted);
    assert_eq!(last_audited(&sink), unknown);
    // SQL identifiers are cut to 63 bytes on a character boundary: "a"×62
    // and "é" is "a"×62 to the server.
    let (mut t, sink) = tracker();
    let short = "a".repeat(62);
    to_server(
        &mut t,
        &[parse(&short, "SELECT 'harmless'"), sync.clone()].concat(),
    );
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    let sql = format!("DEALLOCATE \"{short}é\"; PREPARE \"{short}é\" AS DELETE FROM victim");
    to_server(&mut t, &msg(b'Q', format!("{sql}\0").as_bytes()));
    from_server(&mut t, &[msg(b'C', b"PREPARE\0"), msg(b'Z', b"I")].concat());
    to_server(&mut t, &[bind_execute(&short), sync.clone()].concat());
    from_server(&mut t, &deleted);
    assert_eq!(last_audited(&sink), unknown);
}

#[test]
fn red_team_round_8_the_audit_reads_backslashes_as_the_session_does() {
    let hiding = "SELECT 'a\\''; DELETE FROM victim WHERE id = 4; SELECT 'z' --'";
    let query = msg(b'Q', format!("{hiding}\0").as_bytes());
    let answers = [msg(b'C', b"SELECT 1\0"), msg(b'Z', b"I")].concat();
    // standard_conforming_strings on: one string, as the server reads it.
    let (mut t, sink) = tracker();
    to_server(&mut t, &query);
    from_server(&mut t, &answers);
    assert!(
        !last_audited(&sink).contains("DELETE"),
        "{}",
        last_audited(&sink)
    );
    // Off, reported during the session or at its start: the DELETE the
    // server runs is in the audit's text.
    let (mut t, sink) = tracker();
    from_server(&mut t, &msg(b'S', b"standard_conforming_strings\0off\0"));
    to_server(&mut t, &query);
    from_server(&mut t, &answers);
    assert!(
        last_audited(&sink).contains("DELETE FROM victim"),
        "{}",
        last_audited(&sink)
    );
    let (t, sink) = tracker();
    let mut t = t.server_params([("standard_conforming_strings", "off")]);
    to_server(&mut t, &query);
    from_server(&mut t, &answers);
    assert!(
        last_audited(&sink).contains("DELETE FROM victim"),
        "{}",
        last_audited(&sink)
    );
}

/// Statement policy that passes everything and notes the statements the
/// server confirmed closed.
struct NotingClosed(Arc<Mutex<Vec<String>>>);

impl StatementGate for NotingClosed {
    fn rule(&mut self, _: &str) -> Ruling {
        Ruling::Pass(decision(true))
    }
    fn backslashes_differ(&mut self, _: bool) {}
    fn encoding_differs(&mut self, _: bool) {}
    fn database_changed(&mut self) {}
    fn closed(&mut self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_owned());
    }
}

#[test]
fn statement_policy_hears_of_a_close_the_server_confirmed() {
    let closed = Arc::new(Mutex::new(Vec::new()));
    // Audit off: the gate hears of it all the same.
    let mut t = Tracker::new(None).with_gate(Some(Box::new(NotingClosed(closed.clone()))));
    let sync = msg(b'S', b"");
    to_server(&mut t, &[parse("s1", "SELECT 1"), sync.clone()].concat());
    from_server(&mut t, &[msg(b'1', b""), msg(b'Z', b"I")].concat());
    // Skipped after an error: still there.
    to_server(
        &mut t,
        &[failing_group(), msg(b'C', b"Ss1\0"), sync.clone()].concat(),
    );
    from_server(&mut t, &failing_answers());
    assert!(closed.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
    // Confirmed: gone.
    to_server(&mut t, &[msg(b'C', b"Ss1\0"), sync.clone()].concat());
    from_server(&mut t, &[msg(b'3', b""), msg(b'Z', b"I")].concat());
    assert_eq!(*closed.lock().unwrap_or_else(|p| p.into_inner()), ["s1"]);
}
