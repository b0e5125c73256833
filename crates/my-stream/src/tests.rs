//! Conversations built with mywire's builders, replayed in reads of many
//! sizes, checking what is forwarded byte for byte, what is audited, and
//! when the upstream is reusable.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use latchkey_audit::{AuditSink, Event, Protocol, SessionInfo, StatementEvent};

use latchkey_mywire::{
    CLIENT_DEPRECATE_EOF, CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS, CLIENT_PLUGIN_AUTH,
    CLIENT_PROTOCOL_41, CLIENT_PS_MULTI_RESULTS, CLIENT_QUERY_ATTRIBUTES, CLIENT_SECURE_CONNECTION,
    CLIENT_TRANSACTIONS, ColumnCount, ColumnDefinition, MYSQL_TYPE_LONG, MYSQL_TYPE_VAR_STRING,
    QueryAttribute, SERVER_MORE_RESULTS_EXISTS, column_count, column_definition, eof_packet,
    err_packet, frame, local_infile_request, ok_eof_packet, ok_packet, prepare_ok, split_payload,
    write_lenenc_bytes,
};
use latchkey_mywire::{
    COM_CHANGE_USER, COM_PING, COM_SET_OPTION, COM_STATISTICS, COM_STMT_PREPARE, ErrInfo,
    HEADER_LEN, OkInfo, PrepareOk, SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS,
};

use super::*;

const CAPS: u64 = CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_TRANSACTIONS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH;
const DEP: u64 = CAPS | CLIENT_DEPRECATE_EOF;
const MULTI: u64 = DEP | CLIENT_MULTI_STATEMENTS;
const CHUNKS: [usize; 5] = [1, 2, 5, 7, 4096];
const AUTOCOMMIT: u16 = SERVER_STATUS_AUTOCOMMIT;
const LIMIT: usize = 1 << 26;

struct Collect(Mutex<Vec<Event>>);

impl AuditSink for Collect {
    fn record(&self, event: Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

fn session() -> Arc<SessionInfo> {
    Arc::new(SessionInfo {
        session_id: "s".into(),
        engine: "mysql",
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
    })
}

/// The time the tracker is told: it reads no clock of its own.
fn clock() -> Now {
    static SENT: LazyLock<Instant> = LazyLock::new(Instant::now);
    let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    Now {
        wall,
        instant: *SENT,
    }
}

fn tracker_with(caps: u64, local_infile: bool) -> (Tracker, Arc<Collect>) {
    let sink = Arc::new(Collect(Mutex::new(Vec::new())));
    let audit = Audit {
        sink: sink.clone(),
        session: session(),
        keep_literals: false,
        clock,
    };
    (Tracker::new(caps, Some(audit), local_infile), sink)
}

fn tracker(caps: u64) -> (Tracker, Arc<Collect>) {
    tracker_with(caps, false)
}

type Row = (String, Option<String>, Option<u64>, Option<String>);

fn events(sink: &Collect) -> Vec<StatementEvent> {
    sink.0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|e| match e {
            Event::Statement(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// (text, tag, rows, error) of each statement event.
fn statements(sink: &Collect) -> Vec<Row> {
    events(sink)
        .into_iter()
        .map(|s| {
            (
                s.statement.text.clone(),
                s.command_tag.as_deref().map(str::to_owned),
                s.rows,
                s.error_code,
            )
        })
        .collect()
}

fn row(text: &str, tag: Option<&str>, rows: Option<u64>, error: Option<&str>) -> Row {
    (
        text.to_owned(),
        tag.map(str::to_owned),
        rows,
        error.map(str::to_owned),
    )
}

/// A client command, framed from sequence id 0.
fn cmd(c: &Command<'_>, caps: u64) -> Vec<u8> {
    let mut out = Vec::new();
    frame(&mut out, 0, |b| c.write(b, caps).unwrap());
    out
}

fn query(sql: &str) -> Vec<u8> {
    cmd(
        &Command::Query {
            sql: sql.as_bytes(),
            attributes: Vec::new(),
        },
        CAPS,
    )
}

fn raw(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    split_payload(&mut out, seq, payload);
    out
}

/// Server packets, numbered on from a command's last sequence id.
struct Server {
    out: Vec<u8>,
    seq: u8,
    caps: u64,
}

impl Server {
    fn new(caps: u64) -> Self {
        Self {
            out: Vec::new(),
            seq: 1,
            caps,
        }
    }

    /// The next command's response starts at `seq`.
    fn next(&mut self, seq: u8) -> &mut Self {
        self.seq = seq;
        self
    }

    fn push(&mut self, build: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.seq = frame(&mut self.out, self.seq, build);
        self
    }

    fn ok(&mut self, affected: u64, status: u16) -> &mut Self {
        let caps = self.caps;
        let ok = OkInfo {
            affected_rows: affected,
            status,
            ..OkInfo::default()
        };
        self.push(|b| ok_packet(b, &ok, caps))
    }

    fn err(&mut self, code: u16, sqlstate: &[u8; 5], message: &str) -> &mut Self {
        self.push(|b| err_packet(b, code, sqlstate, message))
    }

    fn def(&mut self, name: &str, column_type: u8) -> &mut Self {
        let caps = self.caps;
        let c = ColumnDefinition {
            catalog: b"def",
            schema: b"orders",
            table: b"t",
            org_table: b"t",
            name: name.as_bytes(),
            org_name: name.as_bytes(),
            charset: 45,
            column_length: 255,
            column_type,
            ..ColumnDefinition::default()
        };
        self.push(|b| column_definition(b, &c, caps))
    }

    /// The EOF after definitions, when EOFs are not deprecated.
    fn defs_end(&mut self) -> &mut Self {
        if self.caps & CLIENT_DEPRECATE_EOF == 0 {
            self.push(|b| eof_packet(b, 0, AUTOCOMMIT));
        }
        self
    }

    /// The packet that ends rows.
    fn rows_end(&mut self, status: u16) -> &mut Self {
        let caps = self.caps;
        if caps & CLIENT_DEPRECATE_EOF == 0 {
            self.push(|b| eof_packet(b, 0, status))
        } else {
            let ok = OkInfo {
                status,
                ..OkInfo::default()
            };
            self.push(|b| ok_eof_packet(b, &ok, caps))
        }
    }

    /// A text result set of one column.
    fn text(&mut self, values: &[&[u8]], status: u16) -> &mut Self {
        let caps = self.caps;
        let count = ColumnCount {
            columns: 1,
            metadata_follows: true,
        };
        self.push(|b| column_count(b, count, caps));
        self.def("name", MYSQL_TYPE_VAR_STRING).defs_end();
        for v in values {
            self.push(|b| write_lenenc_bytes(b, v));
        }
        self.rows_end(status)
    }
}

/// Replays in reads of `chunk` bytes and checks that every byte was
/// forwarded unchanged except the intercepted commands.
fn run(
    client: &[u8],
    server: &[u8],
    chunk: usize,
    tracker: &mut Tracker,
    max: usize,
) -> (Result<bool, ScanError>, Transcript) {
    let mut t = Transcript::default();
    let r = drive(client, server, chunk, tracker, max, Some(&mut t));
    if r.is_ok() {
        assert_eq!(t.to_client, server, "chunk {chunk}: server bytes changed");
    }
    (r, t)
}

#[test]
fn text_result_sets_with_and_without_deprecate_eof() {
    let client = query("SELECT name FROM users WHERE id = 42");
    for caps in [CAPS, DEP] {
        let mut server = Server::new(caps);
        server.text(&[b"ann", b"", b"\xfb"], AUTOCOMMIT);
        for chunk in CHUNKS {
            let (mut t, sink) = tracker(caps);
            let (r, out) = run(&client, &server.out, chunk, &mut t, LIMIT);
            assert_eq!(r, Ok(true), "chunk {chunk}");
            assert_eq!(out.to_upstream, client);
            assert_eq!(
                statements(&sink),
                [row(
                    "SELECT name FROM users WHERE id = ?",
                    Some("SELECT 3"),
                    Some(3),
                    None
                )]
            );
            let e = &events(&sink)[0];
            assert_eq!(e.protocol, Protocol::Simple);
            assert!(!e.statement.truncated);
            assert_eq!(t.statement_count, 1);
        }
    }
}

#[test]
fn errors_are_audited_with_their_sqlstate_or_code() {
    let client = [query("SELECT * FROM nope"), query("DELETE FROM t")].concat();
    let mut server = Server::new(DEP);
    server.err(1146, b"42S02", "Table 'orders.nope' doesn't exist");
    // A pre-4.1 error has no SQLSTATE.
    server.next(1).push(|b| {
        b.extend_from_slice(&[0xff, 0x7a, 0x04]);
        b.extend_from_slice(b"no state");
    });
    for chunk in CHUNKS {
        let (mut t, sink) = tracker(DEP);
        // Autocommit, one statement: a failure leaves no transaction.
        assert_eq!(run(&client, &server.out, chunk, &mut t, LIMIT).0, Ok(true));
        assert_eq!(
            statements(&sink),
            [
                row("SELECT * FROM nope", None, None, Some("42S02")),
                row("DELETE FROM t", None, None, Some("1146")),
            ]
        );
    }
}

#[test]
fn multi_statement_results_are_one_event() {
    let more = AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS;
    let client = [
        query("SELECT 'a'; SELECT 'b'"),
        query("UPDATE t SET a = 1; UPDATE t SET b = 2"),
        query("SELECT 1; SELECT * FROM nope"),
        cmd(&Command::Ping, MULTI),
    ]
    .concat();
    for caps in [MULTI, MULTI & !CLIENT_DEPRECATE_EOF] {
        let mut server = Server::new(caps);
        server.text(&[b"a"], more).text(&[b"b", b"c"], AUTOCOMMIT);
        server.next(1).ok(1, more).ok(3, AUTOCOMMIT);
        server
            .next(1)
            .text(&[b"1"], more)
            .err(1146, b"42S02", "no such table");
        let before_ping = server.out.clone();
        server.next(1).ok(0, AUTOCOMMIT);
        for chunk in CHUNKS {
            let (mut t, sink) = tracker(caps);
            assert_eq!(run(&client, &server.out, chunk, &mut t, LIMIT).0, Ok(true));
            assert_eq!(
                statements(&sink),
                [
                    row("SELECT ?; SELECT ?", Some("SELECT 3"), Some(3), None),
                    row(
                        "UPDATE t SET a = ?; UPDATE t SET b = ?",
                        Some("UPDATE 3"),
                        Some(3),
                        None
                    ),
                    row("SELECT ?; SELECT * FROM nope", None, None, Some("42S02")),
                ]
            );
            // Without the ping's OK, the failed multi-statement leaves the
            // transaction state unknown: not reusable.
            let (mut t, _) = tracker(caps);
            let unpinged = &client[..client.len() - 5];
            let (r, _) = run(unpinged, &before_ping, chunk, &mut t, LIMIT);
            assert_eq!(r, Ok(false));
            assert!(!t.busy());
        }
    }
}

#[test]
fn prepared_statements_are_audited_with_their_sql() {
    for caps in [CAPS, DEP] {
        let prepare = cmd(
            &Command::StmtPrepare {
                sql: b"SELECT name FROM t WHERE id = ? AND kind = 'x'",
            },
            caps,
        );
        let execute = cmd(
            &Command::StmtExecute {
                statement_id: 7,
                flags: 0,
                iteration_count: 1,
                params: b"\x00\x01\x03\x00\x2a\x00\x00\x00",
            },
            caps,
        );
        let close = cmd(&Command::StmtClose { statement_id: 7 }, caps);
        let bad = cmd(
            &Command::StmtPrepare {
                sql: b"SELEC 'oops'",
            },
            caps,
        );
        let client = [
            prepare,
            execute.clone(),
            close,
            execute,
            bad,
            cmd(&Command::Ping, caps),
        ]
        .concat();
        let mut server = Server::new(caps);
        let p = PrepareOk {
            statement_id: 7,
            num_columns: 1,
            num_params: 1,
            warnings: 0,
            metadata_follows: true,
        };
        server.push(|b| prepare_ok(b, &p, caps));
        server.def("?", MYSQL_TYPE_LONG).defs_end();
        server.def("name", MYSQL_TYPE_VAR_STRING).defs_end();
        // The binary result.
        server.next(1).push(|b| b.push(1));
        server.def("name", MYSQL_TYPE_VAR_STRING).defs_end();
        server.push(|b| b.extend_from_slice(b"\x00\x00\x03ann"));
        server.rows_end(AUTOCOMMIT);
        // Closed: the second execute fails.
        server
            .next(1)
            .err(1243, b"HY000", "Unknown prepared statement handler");
        server.next(1).err(1064, b"42000", "syntax error");
        server.next(1).ok(0, AUTOCOMMIT);
        for chunk in CHUNKS {
            let (mut t, sink) = tracker(caps);
            let (r, out) = run(&client, &server.out, chunk, &mut t, LIMIT);
            assert_eq!(r, Ok(true), "chunk {chunk}");
            assert_eq!(out.to_upstream, client);
            assert_eq!(
                statements(&sink),
                [
                    row(
                        "SELECT name FROM t WHERE id = ? AND kind = ?",
                        Some("SELECT 1"),
                        Some(1),
                        None
                    ),
                    row(
                        "(statement not known to the gateway)",
                        None,
                        None,
                        Some("HY000")
                    ),
                    row("SELEC ?", None, None, Some("42000")),
                ]
            );
            assert!(
                events(&sink)
                    .iter()
                    .all(|e| e.protocol == Protocol::Extended)
            );
            assert_eq!(t.statement_count, 3);
            assert!(t.prepared.is_empty());
        }
    }
}

#[test]
fn reset_connection_forgets_prepared_statements() {
    let client = [
        cmd(&Command::StmtPrepare { sql: b"SELECT 1" }, DEP),
        cmd(&Command::ResetConnection, DEP),
        cmd(
            &Command::StmtExecute {
                statement_id: 1,
                flags: 0,
                iteration_count: 1,
                params: b"",
            },
            DEP,
        ),
    ]
    .concat();
    let mut server = Server::new(DEP);
    let p = PrepareOk {
        statement_id: 1,
        num_columns: 0,
        num_params: 0,
        warnings: 0,
        metadata_follows: true,
    };
    server.push(|b| prepare_ok(b, &p, DEP));
    server.next(1).ok(0, AUTOCOMMIT);
    server
        .next(1)
        .err(1243, b"HY000", "Unknown prepared statement handler");
    let (mut t, sink) = tracker(DEP);
    assert!(run(&client, &server.out, 3, &mut t, LIMIT).0.is_ok());
    assert_eq!(
        statements(&sink),
        [row(
            "(statement not known to the gateway)",
            None,
            None,
            Some("HY000")
        )]
    );
}

/// `LOAD DATA LOCAL`: the query, the server's request, the file in two
/// packets (one longer than a buffer) and the empty packet that ends it,
/// then the server's OK.
fn load_data() -> (Vec<u8>, Vec<u8>) {
    let big = vec![b'x'; 100_000];
    let client = [
        query("LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t"),
        raw(2, b"1,a\n2,b\n"),
        raw(3, &big),
        raw(4, b""),
    ]
    .concat();
    let mut server = Server::new(DEP);
    server.push(|b| local_infile_request(b, b"/tmp/x.csv"));
    server.next(5).ok(3, AUTOCOMMIT);
    (client, server.out)
}

#[test]
fn local_infile_uploads_when_allowed() {
    let (client, server) = load_data();
    for chunk in CHUNKS {
        let (mut t, sink) = tracker_with(DEP, true);
        let (r, out) = run(&client, &server, chunk, &mut t, LIMIT);
        assert_eq!(r, Ok(true), "chunk {chunk}");
        assert_eq!(out.to_upstream, client);
        assert_eq!(
            statements(&sink),
            [row(
                "LOAD DATA LOCAL INFILE ? INTO TABLE t",
                Some("LOAD 3"),
                Some(3),
                None
            )]
        );
        assert!(out.max_buffer <= HEADER_LEN + WHOLE_PAYLOAD);
    }
    // Upload packets out of sequence.
    let mut bad = client.clone();
    let second = query("LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t").len();
    bad[second + 3] = 9;
    let (mut t, _) = tracker_with(DEP, true);
    assert!(matches!(
        run(&bad, &server, 4096, &mut t, LIMIT).0,
        Err(ScanError::Malformed(_))
    ));
}

#[test]
fn local_infile_refused_never_reaches_the_client() {
    let (client, server) = load_data();
    for chunk in CHUNKS {
        let (mut t, sink) = tracker_with(DEP, false);
        let (r, out) = run(&client, &server, chunk, &mut t, LIMIT);
        assert_eq!(r, Err(ScanError::LocalInfileRefused));
        assert!(out.to_client.is_empty());
        assert!(statements(&sink).is_empty());
    }
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let client = [
        query("SELECT 1"),
        query("INSERT INTO t VALUES (1), (2)"),
        cmd(&Command::Ping, DEP),
    ]
    .concat();
    let mut server = Server::new(DEP);
    server.text(&[b"1"], AUTOCOMMIT);
    server.next(1).ok(2, AUTOCOMMIT);
    server.next(1).ok(0, AUTOCOMMIT);
    for chunk in CHUNKS {
        let (mut t, sink) = tracker(DEP);
        assert_eq!(run(&client, &server.out, chunk, &mut t, LIMIT).0, Ok(true));
        assert_eq!(
            statements(&sink),
            [
                row("SELECT ?", Some("SELECT 1"), Some(1), None),
                row(
                    "INSERT INTO t VALUES (?), (?)",
                    Some("INSERT 2"),
                    Some(2),
                    None
                ),
            ]
        );
    }
    // All three sent before any answer.
    let (mut t, _) = tracker(DEP);
    let mut up = Buffer::default();
    up.space()[..client.len()].copy_from_slice(&client);
    up.filled(client.len());
    assert_eq!(up.scan(Direction::ToUpstream, &mut t, LIMIT), Ok(None));
    assert_eq!(up.writable(), client);
    assert_eq!(t.queue.len(), 3);
    assert!(t.busy() && !t.idle());
    let mut down = Buffer::default();
    let first_two = server.out.len() - 11;
    down.space()[..first_two].copy_from_slice(&server.out[..first_two]);
    down.filled(first_two);
    assert_eq!(down.scan(Direction::ToClient, &mut t, LIMIT), Ok(None));
    assert!(t.busy());
    let rest = &server.out[first_two..];
    down.make_room();
    down.space()[..rest.len()].copy_from_slice(rest);
    down.filled(rest.len());
    assert_eq!(down.scan(Direction::ToClient, &mut t, LIMIT), Ok(None));
    assert!(t.idle());
}

#[test]
fn quit_ends_the_client_stream() {
    let first = query("SELECT 1");
    let client = [
        first.clone(),
        cmd(&Command::Quit, DEP),
        query("DROP TABLE t"),
    ]
    .concat();
    let mut server = Server::new(DEP);
    server.text(&[b"1"], AUTOCOMMIT);
    for chunk in CHUNKS {
        let (mut t, sink) = tracker(DEP);
        let (r, out) = run(&client, &server.out, chunk, &mut t, LIMIT);
        assert_eq!(r, Ok(true));
        assert_eq!(out.to_upstream, first);
        assert_eq!(statements(&sink).len(), 1);
    }
    let mut up = Buffer::default();
    up.space()[..client.len()].copy_from_slice(&client);
    up.filled(client.len());
    let (mut t, _) = tracker(DEP);
    assert_eq!(up.scan(Direction::ToUpstream, &mut t, LIMIT), Ok(None));
    assert!(up.terminated());
    assert_eq!(up.writable(), first);
}

#[test]
fn change_user_and_kills_are_intercepted() {
    let change_user = raw(0, b"\x11bob\x00\x00orders\x00");
    let process_kill = cmd(&Command::ProcessKill { connection_id: 9 }, DEP);
    let kill = query("  kill query 5 ;");
    let first = query("SELECT 1");
    // Not a KILL the gateway can map: refused, never passed on.
    let unmappable = query("KILL QUERY ID 5");
    let last = query("SELECT 2");
    let client = [
        first.clone(),
        change_user.clone(),
        process_kill.clone(),
        kill.clone(),
        unmappable.clone(),
        last.clone(),
    ]
    .concat();
    let mut server = Server::new(DEP);
    server.text(&[b"1"], AUTOCOMMIT);
    server.next(1).text(&[b"2"], AUTOCOMMIT);
    for chunk in CHUNKS {
        let (mut t, sink) = tracker(DEP);
        let (r, out) = run(&client, &server.out, chunk, &mut t, LIMIT);
        assert_eq!(r, Ok(true), "chunk {chunk}");
        assert_eq!(out.to_upstream, [first.clone(), last.clone()].concat());
        assert_eq!(
            out.intercepted,
            [
                &change_user[4..],
                &process_kill[4..],
                &kill[4..],
                &unmappable[4..]
            ]
        );
        assert_eq!(
            statements(&sink),
            [
                row("SELECT ?", Some("SELECT 1"), Some(1), None),
                row("SELECT ?", Some("SELECT 1"), Some(1), None),
            ]
        );
    }

    // Scanning stops at each: what came before is writable, the
    // intercepted bytes never are.
    let (mut t, sink) = tracker(DEP);
    let mut up = Buffer::default();
    up.space()[..client.len()].copy_from_slice(&client);
    up.filled(client.len());
    let got = up.scan(Direction::ToUpstream, &mut t, LIMIT);
    assert_eq!(
        got,
        Ok(Some(Intercepted {
            payload: change_user[4..].to_vec(),
            what: Interception::ChangeUser,
        }))
    );
    assert_eq!(up.writable(), first);
    up.wrote(first.len());
    assert!(up.nothing_in_flight() && !up.at_boundary());
    let got = up.scan(Direction::ToUpstream, &mut t, LIMIT);
    assert_eq!(
        got.map(|i| i.map(|i| i.payload)),
        Ok(Some(vec![12, 9, 0, 0, 0]))
    );
    assert!(up.writable().is_empty());
    let got = up.scan(Direction::ToUpstream, &mut t, LIMIT);
    assert_eq!(
        got.map(|i| i.map(|i| i.what)),
        Ok(Some(Interception::Kill(Kill {
            force: None,
            scope: Some(KillScope::Query),
            id: 5
        })))
    );
    // The gateway sends its own, rewritten KILL; its answer is followed.
    t.forwarded(b"\x03KILL QUERY 1234");
    let got = up.scan(Direction::ToUpstream, &mut t, LIMIT);
    assert_eq!(
        got.map(|i| i.map(|i| i.what)),
        Ok(Some(Interception::Refused(Refusal::Kill)))
    );
    // The gateway refuses it: audited as failed.
    t.refused(
        &unmappable[4..],
        ErrInfo {
            code: 1227,
            sqlstate: Some("42000".into()),
            message: "refused".into(),
        },
    );
    assert_eq!(up.scan(Direction::ToUpstream, &mut t, LIMIT), Ok(None));
    assert_eq!(up.writable(), last);
    assert_eq!(t.queue.len(), 3);
    let mut answers = Server::new(DEP);
    answers.text(&[b"1"], AUTOCOMMIT);
    answers.next(1).ok(0, AUTOCOMMIT);
    answers.next(1).ok(0, AUTOCOMMIT);
    let mut down = Buffer::default();
    down.space()[..answers.out.len()].copy_from_slice(&answers.out);
    down.filled(answers.out.len());
    assert_eq!(down.scan(Direction::ToClient, &mut t, LIMIT), Ok(None));
    assert!(t.idle());
    // (Refused here before the answers above came in.)
    assert_eq!(
        statements(&sink)[0],
        row("KILL QUERY ID ?", None, None, Some("42000"))
    );
    assert_eq!(
        statements(&sink)[2],
        row("KILL QUERY ?", Some("KILL 0"), Some(0), None)
    );
}

#[test]
fn large_intercepted_commands_are_refused_and_kills_with_attributes_found() {
    let mut huge = vec![COM_CHANGE_USER];
    huge.resize(WHOLE_PAYLOAD + 1, b'a');
    let (mut t, _) = tracker(DEP);
    assert!(matches!(
        replay(&raw(0, &huge), b"", 4096, &mut t, LIMIT),
        Err(ScanError::Malformed(_))
    ));
    // A KILL padded past the audit's prefix is still seen whole.
    let padded = query(&format!("KILL {}5", " ".repeat(INSPECT_PREFIX + 10)));
    let (mut t, _) = tracker(DEP);
    let (r, out) = run(&padded, b"", 4096, &mut t, LIMIT);
    assert_eq!(r, Ok(true));
    assert!(out.to_upstream.is_empty());
    assert_eq!(out.intercepted.len(), 1);
    // With query attributes negotiated the SQL follows them.
    let caps = DEP | CLIENT_QUERY_ATTRIBUTES;
    let with_attrs = cmd(
        &Command::Query {
            sql: b"KILL 77",
            attributes: vec![QueryAttribute {
                name: b"trace",
                type_and_flag: u16::from(MYSQL_TYPE_VAR_STRING),
                value: Some(b"\x02id"),
            }],
        },
        caps,
    );
    let (mut t, _) = tracker(caps);
    let (r, out) = run(&with_attrs, b"", 7, &mut t, LIMIT);
    assert_eq!(r, Ok(true));
    assert_eq!(out.intercepted, [&with_attrs[4..]]);
}

#[test]
fn transactions_keep_the_connection() {
    let in_trans = AUTOCOMMIT | SERVER_STATUS_IN_TRANS;
    for chunk in CHUNKS {
        let (mut t, sink) = tracker(DEP);
        let steps: [(&str, u64, u16, bool); 3] = [
            ("BEGIN", 0, in_trans, false),
            ("INSERT INTO t VALUES (1)", 1, in_trans, false),
            ("COMMIT", 0, AUTOCOMMIT, true),
        ];
        for (sql, affected, status, reusable) in steps {
            let mut server = Server::new(DEP);
            server.ok(affected, status);
            assert_eq!(
                run(&query(sql), &server.out, chunk, &mut t, LIMIT).0,
                Ok(reusable),
                "{sql}"
            );
        }
        assert_eq!(
            statements(&sink)
                .into_iter()
                .map(|r| r.1.unwrap_or_default())
                .collect::<Vec<_>>(),
            ["BEGIN 0", "INSERT 1", "COMMIT 0"]
        );
        // Autocommit off: a failed statement may have opened a
        // transaction, until an OK says otherwise.
        let mut server = Server::new(DEP);
        server.ok(0, 0);
        assert_eq!(
            run(
                &query("SET autocommit = 0"),
                &server.out,
                chunk,
                &mut t,
                LIMIT
            )
            .0,
            Ok(true)
        );
        let mut server = Server::new(DEP);
        server.err(1062, b"23000", "Duplicate entry");
        assert_eq!(
            run(
                &query("INSERT INTO t VALUES (1)"),
                &server.out,
                chunk,
                &mut t,
                LIMIT
            )
            .0,
            Ok(false)
        );
        let mut server = Server::new(DEP);
        server.ok(0, 0);
        assert_eq!(
            run(&cmd(&Command::Ping, DEP), &server.out, chunk, &mut t, LIMIT).0,
            Ok(true)
        );
    }
}

#[test]
fn large_rows_stream_through() {
    let big = vec![b'r'; 100_000];
    let bigger = vec![b's'; 300_000];
    let client = query("SELECT body FROM blobs");
    for caps in [CAPS, DEP] {
        let mut server = Server::new(caps);
        server.text(&[&big, b"small", &bigger], AUTOCOMMIT);
        for chunk in CHUNKS {
            let (mut t, sink) = tracker(caps);
            let (r, out) = run(&client, &server.out, chunk, &mut t, LIMIT);
            assert_eq!(r, Ok(true), "chunk {chunk}");
            assert!(out.max_buffer <= HEADER_LEN + WHOLE_PAYLOAD);
            assert_eq!(
                statements(&sink),
                [row(
                    "SELECT body FROM blobs",
                    Some("SELECT 3"),
                    Some(3),
                    None
                )]
            );
        }
    }
    // A row over 16 MiB, split over packets, starting with 0xFE.
    let huge = vec![b'h'; 1 << 24];
    let mut server = Server::new(DEP);
    server.text(&[&huge], AUTOCOMMIT);
    for chunk in [4096, 1 << 20] {
        let (mut t, sink) = tracker(DEP);
        let (r, out) = run(&client, &server.out, chunk, &mut t, LIMIT);
        assert_eq!(r, Ok(true));
        assert!(out.max_buffer <= HEADER_LEN + WHOLE_PAYLOAD);
        assert_eq!(statements(&sink)[0].2, Some(1));
    }
    // Anything else that large cannot be followed.
    let mut server = Server::new(DEP);
    server.err(1064, b"42000", &"e".repeat(WHOLE_PAYLOAD));
    let (mut t, _) = tracker(DEP);
    assert!(matches!(
        replay(&client, &server.out, 4096, &mut t, LIMIT),
        Err(ScanError::Malformed(_))
    ));
}

#[test]
fn long_statements_are_cut_and_marked() {
    let sql = format!("SELECT '{}' FROM t", "y".repeat(INSPECT_PREFIX * 3));
    let client = query(&sql);
    let mut server = Server::new(DEP);
    server.text(&[b"1"], AUTOCOMMIT);
    for chunk in [1000, 4096] {
        let (mut t, sink) = tracker(DEP);
        let (r, out) = run(&client, &server.out, chunk, &mut t, LIMIT);
        assert_eq!(r, Ok(true));
        assert_eq!(out.to_upstream, client);
        let e = &events(&sink)[0];
        assert!(e.statement.truncated);
        assert!(!e.statement.text.contains("yyyy"));
    }
}

#[test]
fn limits() {
    let (mut t, _) = tracker(DEP);
    let client = query(&"x".repeat(100));
    assert_eq!(
        replay(&client, b"", 4096, &mut t, 50),
        Err(ScanError::TooLarge(101))
    );
    // Split commands are limited by the sum of their packets.
    let mut payload = vec![COM_QUERY];
    payload.resize(MAX_PACKET_PAYLOAD + 20, b' ');
    let client = raw(0, &payload);
    let (mut t, _) = tracker(DEP);
    assert_eq!(
        replay(&client, b"", 1 << 20, &mut t, MAX_PACKET_PAYLOAD + 10),
        Err(ScanError::TooLarge(MAX_PACKET_PAYLOAD + 20))
    );
    // Under the limit it is forwarded whole, its response on sequence 2.
    let mut server = Server::new(DEP);
    server.next(2).ok(0, AUTOCOMMIT);
    let (mut t, sink) = tracker(DEP);
    let (r, out) = run(&client, &server.out, 1 << 20, &mut t, LIMIT);
    assert_eq!(r, Ok(true));
    assert_eq!(out.to_upstream, client);
    assert_eq!(statements(&sink).len(), 1);
}

#[test]
fn sequence_ids_are_checked() {
    let (mut t, _) = tracker(DEP);
    assert!(matches!(
        replay(&raw(1, b"\x0e"), b"", 4096, &mut t, LIMIT),
        Err(ScanError::Malformed(_))
    ));
    let mut server = Server::new(DEP);
    server.next(2).ok(0, AUTOCOMMIT);
    let (mut t, _) = tracker(DEP);
    assert!(matches!(
        replay(&query("SELECT 1"), &server.out, 4096, &mut t, LIMIT),
        Err(ScanError::Malformed(_))
    ));
    // A second OK for a completed command.
    let mut server = Server::new(DEP);
    server.ok(0, AUTOCOMMIT).ok(0, AUTOCOMMIT);
    let (mut t, _) = tracker(DEP);
    let (r, out) = run(&query("SELECT 1"), &server.out, 4096, &mut t, LIMIT);
    // Passed on as unsolicited, never reusable.
    assert_eq!(r, Ok(false));
    assert_eq!(out.to_client, server.out);
}

#[test]
fn unsolicited_server_errors_pass_through() {
    // The server's notice before it closes an idle connection.
    let mut server = Server::new(DEP);
    server
        .next(0)
        .err(4031, b"HY000", "The client was disconnected by the server");
    for chunk in CHUNKS {
        let (mut t, _) = tracker(DEP);
        let (r, out) = run(b"", &server.out, chunk, &mut t, LIMIT);
        assert_eq!(r, Ok(false));
        assert_eq!(out.to_client, server.out);
    }
}

#[test]
fn commands_without_responses_are_not_awaited() {
    let client = [
        cmd(
            &Command::StmtSendLongData {
                statement_id: 3,
                param_id: 0,
                data: &[b'd'; 70_000],
            },
            DEP,
        ),
        cmd(&Command::StmtClose { statement_id: 3 }, DEP),
    ]
    .concat();
    for chunk in CHUNKS {
        let (mut t, _) = tracker(DEP);
        let (r, out) = run(&client, b"", chunk, &mut t, LIMIT);
        assert_eq!(r, Ok(true));
        assert_eq!(out.to_upstream, client);
        assert!(!t.busy());
    }
}

#[test]
fn audit_off_still_counts() {
    let client = [query("SELECT 1"), query("SELECT * FROM nope")].concat();
    let mut server = Server::new(DEP);
    server.text(&[b"1"], AUTOCOMMIT);
    server.next(1).err(1146, b"42S02", "no such table");
    let mut t = Tracker::new(DEP, None, false);
    assert_eq!(replay(&client, &server.out, 5, &mut t, LIMIT), Ok(true));
    assert_eq!(t.statement_count, 2);
}

#[test]
fn keep_literals_logs_the_sql_as_sent() {
    let sink = Arc::new(Collect(Mutex::new(Vec::new())));
    let audit = Audit {
        sink: sink.clone(),
        session: session(),
        keep_literals: true,
        clock,
    };
    let mut t = Tracker::new(DEP, Some(audit), false);
    let mut server = Server::new(DEP);
    server.ok(1, AUTOCOMMIT);
    let sql = "UPDATE t SET secret = 'x'  WHERE id = 1";
    assert_eq!(replay(&query(sql), &server.out, 7, &mut t, LIMIT), Ok(true));
    assert_eq!(statements(&sink)[0].0, sql);
}

#[test]
fn kill_statements() {
    use KillForce::*;
    use KillScope::*;
    let yes = [
        ("KILL 5", None, None, 5),
        ("kill query 5", None, Some(Query), 5),
        ("  Kill\tConnection\n 12 ;  ", None, Some(Connection), 12),
        ("KILL HARD QUERY 7;", Some(Hard), Some(Query), 7),
        ("kill soft 0018", Some(Soft), None, 18),
        ("KILL SOFT CONNECTION 1", Some(Soft), Some(Connection), 1),
        ("KILL 18446744073709551615", None, None, u64::MAX),
        // An empty statement after it runs nothing.
        ("KILL 5;;", None, None, 5),
        // Comments go first, as the server reads them.
        ("KILL/**/5", None, None, 5),
        ("KILL CONNECTION/*x*/5", None, Some(Connection), 5),
        ("/*!KILL 5*/", None, None, 5),
        ("/*!50000 KILL 5*/", None, None, 5),
    ];
    for (sql, force, scope, id) in yes {
        assert_eq!(
            parse_kill(sql.as_bytes()),
            Some(Kill { force, scope, id }),
            "{sql}"
        );
    }
    let no = [
        "",
        "KILL",
        "KILL ;",
        "KILL QUERY",
        "KILL QUERY ID 5",
        "KILL USER bob",
        "KILL 5 6",
        "KILL 5; SELECT 1",
        "KILL CONNECTION QUERY 5",
        "KILL QUERY HARD 5",
        "KILL HARD SOFT 5",
        "KILL 18446744073709551616",
        "KILL -5",
        "KILL 5a",
        "KILL 0x5",
        "KILL CONNECTION_ID()",
        "KILLS 5",
        "SELECT 5",
        "KILL\u{a0}5",
    ];
    for sql in no {
        assert_eq!(parse_kill(sql.as_bytes()), None, "{sql}");
    }
    assert_eq!(parse_kill(b"KILL \xff"), None);
}

#[test]
fn kills_the_gateway_cannot_map_and_password_changes_are_refused() {
    for (sql, refusal) in [
        ("SELECT 1; KILL 5", Refusal::Kill),
        ("KILL QUERY ID 5", Refusal::Kill),
        ("/*!KILL 5*/; SELECT 1", Refusal::Kill),
        ("SET PASSWORD = 'x'", Refusal::PasswordChange),
        (
            "/*!ALTER USER app IDENTIFIED BY 'x'*/",
            Refusal::PasswordChange,
        ),
        (
            "SELECT 1; ALTER USER app IDENTIFIED BY 'x'",
            Refusal::PasswordChange,
        ),
    ] {
        for code in [COM_QUERY, COM_STMT_PREPARE] {
            let mut payload = vec![code];
            payload.extend_from_slice(sql.as_bytes());
            let mut framed = Vec::new();
            frame(&mut framed, 0, |p| p.extend_from_slice(&payload));
            let (mut t, _) = tracker(DEP);
            let (r, out) = run(&framed, b"", 5, &mut t, LIMIT);
            assert_eq!(r, Ok(true), "{sql}");
            assert!(out.to_upstream.is_empty(), "{sql}");
            assert_eq!(out.intercepted, [payload.clone()], "{sql}");
            let mut up = Buffer::default();
            up.space()[..framed.len()].copy_from_slice(&framed);
            up.filled(framed.len());
            let got = up.scan(Direction::ToUpstream, &mut t, LIMIT);
            assert_eq!(
                got.map(|i| i.map(|i| i.what)),
                Ok(Some(Interception::Refused(refusal))),
                "{sql}"
            );
        }
    }
    // A prepared lone KILL would run with a raw id.
    let mut payload = vec![COM_STMT_PREPARE];
    payload.extend_from_slice(b"KILL 5");
    let mut framed = Vec::new();
    frame(&mut framed, 0, |p| p.extend_from_slice(&payload));
    let (mut t, _) = tracker(DEP);
    let mut up = Buffer::default();
    up.space()[..framed.len()].copy_from_slice(&framed);
    up.filled(framed.len());
    assert_eq!(
        up.scan(Direction::ToUpstream, &mut t, LIMIT)
            .map(|i| i.map(|i| i.what)),
        Ok(Some(Interception::Refused(Refusal::Kill)))
    );
    // With the policy's permission, password changes go through.
    let (t, _) = tracker(DEP);
    let mut t = t.allow_password_changes(true);
    let sql = query("SET PASSWORD = 'x'");
    let mut server = Server::new(DEP);
    server.ok(0, AUTOCOMMIT);
    let (r, out) = run(&sql, &server.out, 5, &mut t, LIMIT);
    assert_eq!(r, Ok(true));
    assert_eq!(out.to_upstream, sql);
}

#[test]
fn a_long_padded_statement_is_checked_whole() {
    // Padding past every inspection prefix hides nothing.
    let sql = format!("SELECT 1; /*{}*/ KILL 5", " ".repeat(WHOLE_PAYLOAD * 2));
    let (mut t, _) = tracker(MULTI);
    let (r, out) = run(&query(&sql), b"", 4096, &mut t, 1 << 20);
    assert_eq!(r, Ok(true));
    assert!(out.to_upstream.is_empty());
    assert_eq!(out.intercepted.len(), 1);
}

/// A small deterministic generator: no panics on garbage, truncations or
/// flipped bytes of real conversations.
#[test]
fn never_panics() {
    let (client, server) = load_data();
    let mut seeds = vec![(client, server)];
    let mut s = Server::new(DEP);
    s.text(&[b"a", b"b"], AUTOCOMMIT);
    seeds.push((
        [query("SELECT 1"), cmd(&Command::Ping, DEP)].concat(),
        s.out.clone(),
    ));
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (client, server) in &seeds {
        let client: Vec<u8> = client.iter().take(400).copied().collect();
        let whole = [&client[..], server].concat();
        for i in 0..whole.len() {
            for op in 0..3u64 {
                let mut bytes = whole.clone();
                match op {
                    0 => bytes[i] ^= 0xff,
                    1 => bytes[i] = next() as u8,
                    _ => bytes.truncate(i),
                }
                let (c, sv) = bytes.split_at(client.len().min(bytes.len()));
                for caps in [CAPS, MULTI | CLIENT_QUERY_ATTRIBUTES] {
                    let (mut t, _) = tracker_with(caps, next() % 2 == 0);
                    let chunk = (next() % 9 + 1) as usize;
                    let _ = replay(c, sv, chunk, &mut t, 1 << 16);
                }
            }
        }
    }
    for _ in 0..2000 {
        let len = (next() % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let split = (next() as usize) % (len + 1);
        let (mut t, _) = tracker_with(DEP, true);
        let _ = replay(&bytes[..split], &bytes[split..], 3, &mut t, 1 << 16);
        let _ = parse_kill(&bytes);
    }
}

#[test]
fn pipelined_prepare_and_execute_of_the_last_statement() {
    // MariaDB connectors send the prepare and an execute of statement
    // 0xFFFFFFFF ("the one just prepared") without waiting.
    let execute = |statement_id| {
        cmd(
            &Command::StmtExecute {
                statement_id,
                flags: 0,
                iteration_count: 1,
                params: b"",
            },
            DEP,
        )
    };
    let client = [
        cmd(
            &Command::StmtPrepare {
                sql: b"DELETE FROM t",
            },
            DEP,
        ),
        execute(u32::MAX),
        cmd(&Command::StmtClose { statement_id: 4 }, DEP),
        execute(4),
    ]
    .concat();
    let mut server = Server::new(DEP);
    let p = PrepareOk {
        statement_id: 4,
        num_columns: 0,
        num_params: 0,
        warnings: 0,
        metadata_follows: true,
    };
    server.push(|b| prepare_ok(b, &p, DEP));
    server.next(1).ok(5, AUTOCOMMIT);
    server
        .next(1)
        .err(1243, b"HY000", "Unknown prepared statement handler");
    let (mut t, sink) = tracker(DEP);
    let mut up = Buffer::default();
    up.space()[..client.len()].copy_from_slice(&client);
    up.filled(client.len());
    assert_eq!(up.scan(Direction::ToUpstream, &mut t, LIMIT), Ok(None));
    assert_eq!(up.writable(), client);
    let mut down = Buffer::default();
    down.space()[..server.out.len()].copy_from_slice(&server.out);
    down.filled(server.out.len());
    assert_eq!(down.scan(Direction::ToClient, &mut t, LIMIT), Ok(None));
    assert_eq!(
        statements(&sink),
        [
            row("DELETE FROM t", Some("DELETE 5"), Some(5), None),
            row(
                "(statement not known to the gateway)",
                None,
                None,
                Some("HY000")
            ),
        ]
    );
    assert!(t.prepared.is_empty() && t.last_prepared.is_none());
}

#[test]
fn red_team_dynamic_sql_routines_and_catalogue_writes_are_intercepted() {
    for (sql, refusal) in [
        (
            "EXECUTE IMMEDIATE CONCAT('SET PASS','WORD = PASSWORD(''x'')')",
            Refusal::DynamicSql,
        ),
        (
            "SET @q='SET PASSWORD = PASSWORD(\"x\")'; PREPARE s FROM @q; EXECUTE s",
            Refusal::DynamicSql,
        ),
        (
            "EXECUTE IMMEDIATE CONCAT('KI','LL ', 5)",
            Refusal::DynamicSql,
        ),
        ("PREPARE k FROM @k", Refusal::DynamicSql),
        (
            "CREATE PROCEDURE pp() SET PASSWORD = PASSWORD('x')",
            Refusal::PasswordChange,
        ),
        (
            "UPDATE mysql.global_priv SET Priv=JSON_SET(Priv, '$.authentication_string', '') WHERE User='app'",
            Refusal::PasswordChange,
        ),
        (
            "UPDATE mysql.user SET authentication_string = ''",
            Refusal::PasswordChange,
        ),
    ] {
        for code in [COM_QUERY, COM_STMT_PREPARE] {
            let mut payload = vec![code];
            payload.extend_from_slice(sql.as_bytes());
            let mut framed = Vec::new();
            frame(&mut framed, 0, |p| p.extend_from_slice(&payload));
            let (mut t, _) = tracker(MULTI);
            let (r, out) = run(&framed, b"", 5, &mut t, LIMIT);
            assert_eq!(r, Ok(true), "{sql}");
            assert!(out.to_upstream.is_empty(), "{sql}");
            let (mut t, _) = tracker(MULTI);
            let mut up = Buffer::default();
            up.space()[..framed.len()].copy_from_slice(&framed);
            up.filled(framed.len());
            assert_eq!(
                up.scan(Direction::ToUpstream, &mut t, LIMIT)
                    .map(|i| i.map(|i| i.what)),
                Ok(Some(Interception::Refused(refusal))),
                "{sql}"
            );
        }
    }
    // With latchkey:ExecuteDynamicSql, dynamic SQL goes through.
    let (t, _) = tracker(DEP);
    let mut t = t.allow_dynamic_sql(true);
    let sql = query("EXECUTE IMMEDIATE CONCAT('SELECT ', 1)");
    let mut server = Server::new(DEP);
    server.ok(0, AUTOCOMMIT);
    let (r, out) = run(&sql, &server.out, 5, &mut t, LIMIT);
    assert_eq!(r, Ok(true));
    assert_eq!(out.to_upstream, sql);
}

#[test]
fn admin_command_packets_are_refused_whatever_the_policy() {
    for payload in [
        vec![COM_SHUTDOWN],
        vec![COM_SHUTDOWN, 0],
        vec![COM_DEBUG],
        vec![COM_REFRESH, 0x80],
        vec![COM_BINLOG_DUMP, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        vec![COM_REGISTER_SLAVE, 1, 0, 0, 0],
    ] {
        let mut framed = Vec::new();
        frame(&mut framed, 0, |p| p.extend_from_slice(&payload));
        let (t, _) = tracker(DEP);
        let mut t = t.allow_password_changes(true).allow_dynamic_sql(true);
        let (r, out) = run(&framed, b"", 5, &mut t, LIMIT);
        assert_eq!(r, Ok(true), "{payload:?}");
        assert!(out.to_upstream.is_empty(), "{payload:?}");
        assert_eq!(out.intercepted, std::slice::from_ref(&payload));
        let mut up = Buffer::default();
        up.space()[..framed.len()].copy_from_slice(&framed);
        up.filled(framed.len());
        assert_eq!(
            up.scan(Direction::ToUpstream, &mut t, LIMIT)
                .map(|i| i.map(|i| i.what)),
            Ok(Some(Interception::Refused(Refusal::SignalBackend))),
            "{payload:?}"
        );
    }
    // COM_PING, COM_SET_OPTION, COM_STATISTICS pass.
    for code in [COM_PING, COM_SET_OPTION, COM_STATISTICS] {
        assert!(!admin_command(code));
    }
}

#[test]
fn statements_are_stamped_by_the_callers_clock() {
    let mut server = Server::new(DEP);
    server.ok(1, AUTOCOMMIT);
    let (mut t, sink) = tracker(DEP);
    assert_eq!(
        replay(&query("DO 1"), &server.out, 3, &mut t, LIMIT),
        Ok(true)
    );
    let events = sink.0.lock().unwrap_or_else(|p| p.into_inner());
    let Some(Event::Statement(s)) = events.first() else {
        panic!("no statement event");
    };
    assert_eq!((s.time, s.duration), (clock().wall, Duration::ZERO));
}

/// Statement policy's ruling, allowed or not.
fn ruling(allowed: bool) -> latchkey_framing::Ruling {
    let decision = Arc::new(latchkey_audit::PolicyDecision {
        uses: Vec::new(),
        allowed,
        enforced: true,
        action: None,
        resource: String::new(),
        reason: String::new(),
        accesses: 1,
        evaluated: true,
        firewall: None,
    });
    if allowed {
        latchkey_framing::Ruling::Pass(decision)
    } else {
        latchkey_framing::Ruling::Refuse {
            message: "permission denied by policy: sql:Unclassified".into(),
            decision,
        }
    }
}

/// Refuses the gate's marker for SQL it cannot see whole, passes the rest.
struct PartialGate;

impl latchkey_framing::StatementGate for PartialGate {
    fn rule(&mut self, sql: &str) -> latchkey_framing::Ruling {
        ruling(sql != latchkey_framing::PARTIAL_SQL)
    }
    fn backslashes_differ(&mut self, _: bool) {}
    fn encoding_differs(&mut self, _: bool) {}
    fn database_changed(&mut self) {}
}

#[test]
fn a_statement_over_16_mib_is_decided_as_unclassified() {
    // Without CLIENT_MULTI_STATEMENTS: the first packet, `SELECT 1` and
    // padding, is harmless; the next could add `, (SELECT pan FROM cards)`.
    let caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
    let mut payload = vec![latchkey_mywire::COM_QUERY];
    payload.extend_from_slice(b"SELECT 1   ");
    let mut t = Tracker::new(caps, None, false).with_gate(Some(Box::new(PartialGate)));
    assert!(matches!(
        t.intercepts(&payload, false),
        Some(crate::Interception::Denied(_))
    ));
    // Whole, it is decided on its SQL.
    let mut t = Tracker::new(caps, None, false).with_gate(Some(Box::new(PartialGate)));
    assert!(t.intercepts(&payload, true).is_none());
}

/// Scans `bytes` in `direction` a window at a time, passing them on.
fn feed(direction: Direction, bytes: &[u8], t: &mut Tracker) {
    let mut half = Buffer::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        half.make_room();
        let n = rest.len().min(half.space().len());
        half.space()[..n].copy_from_slice(&rest[..n]);
        half.filled(n);
        rest = &rest[n..];
        assert_eq!(half.scan(direction, t, LIMIT), Ok(None));
        let w = half.writable().len();
        half.wrote(w);
    }
}

#[test]
fn a_client_far_ahead_of_its_answers_is_backlogged_until_they_come() {
    let (mut t, _) = tracker(DEP);
    let ping = cmd(&Command::Ping, DEP);
    feed(Direction::ToUpstream, &ping.repeat(MAX_AWAITED - 1), &mut t);
    assert!(!t.backlogged());
    feed(Direction::ToUpstream, &ping, &mut t);
    assert!(t.backlogged(), "{MAX_AWAITED} commands await their answers");
    let mut server = Server::new(DEP);
    server.ok(0, AUTOCOMMIT);
    feed(Direction::ToClient, &server.out, &mut t);
    assert!(!t.backlogged());
}

#[test]
fn the_audit_reads_backslashes_as_the_server_does() {
    // Under NO_BACKSLASH_ESCAPES the backslash ends nothing: the string
    // is 'a\', and the DELETE the server runs is the audit's to name.
    let hiding = query("SELECT 'a\\'; DELETE FROM victim; SELECT '");
    let no_escapes = AUTOCOMMIT | latchkey_mywire::SERVER_STATUS_NO_BACKSLASH_ESCAPES;
    for (status, read) in [
        (
            AUTOCOMMIT,
            "SELECT ? /* under NO_BACKSLASH_ESCAPES: SELECT ?; DELETE FROM victim",
        ),
        (
            no_escapes,
            "SELECT ?; DELETE FROM victim; SELECT ? /* under backslash escapes: SELECT ? */",
        ),
    ] {
        let (t, sink) = tracker(CAPS);
        let mut t = t.server_status(status);
        let mut server = Server::new(CAPS);
        server.ok(0, status);
        let (r, _) = run(&hiding, &server.out, usize::MAX, &mut t, LIMIT);
        assert_eq!(r, Ok(true));
        // Read as the server does first; with what the other backslash
        // mode would read, as a message of several statements may set it.
        let text = statements(&sink).pop().map(|s| s.0).unwrap_or_default();
        assert!(text.starts_with(read), "{text}");
    }
}

/// Statement policy that allows everything until a second, on a clock
/// the test moves, and rules on a prepared statement again (by the name
/// it was prepared under) in a later second, as the gateway's does.
struct UntilGate {
    now: Arc<std::sync::atomic::AtomicI64>,
    until: i64,
    prepared: std::collections::HashMap<String, i64>,
    closed: Arc<Mutex<Vec<String>>>,
}

impl UntilGate {
    fn second(&self) -> i64 {
        self.now.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl latchkey_framing::StatementGate for UntilGate {
    fn rule(&mut self, _: &str) -> latchkey_framing::Ruling {
        ruling(self.second() <= self.until)
    }
    fn rule_parse(&mut self, name: &str, sql: &str, _: bool) -> latchkey_framing::Ruling {
        self.prepared.insert(name.to_owned(), self.second());
        self.rule(sql)
    }
    fn rule_bind(&mut self, name: &str) -> Option<latchkey_framing::Ruling> {
        let second = self.second();
        let decided = self.prepared.get_mut(name)?;
        if *decided == second {
            return None;
        }
        *decided = second;
        Some(ruling(second <= self.until))
    }
    fn backslashes_differ(&mut self, _: bool) {}
    fn encoding_differs(&mut self, _: bool) {}
    fn database_changed(&mut self) {}
    fn policy_second(&mut self) -> i64 {
        self.second()
    }
    fn closed(&mut self, name: &str) {
        self.prepared.remove(name);
        self.closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_owned());
    }
}

#[test]
fn a_statement_prepared_while_policy_allowed_it_is_decided_again_when_it_runs_later() {
    let now = Arc::new(std::sync::atomic::AtomicI64::new(10));
    let closed = Arc::new(Mutex::new(Vec::new()));
    let gate = UntilGate {
        now: now.clone(),
        until: 15,
        prepared: std::collections::HashMap::new(),
        closed: closed.clone(),
    };
    let mut t = Tracker::new(DEP, None, false).with_gate(Some(Box::new(gate)));
    let prepare = cmd(
        &Command::StmtPrepare {
            sql: b"DELETE FROM log",
        },
        DEP,
    );
    feed(Direction::ToUpstream, &prepare, &mut t);
    let mut server = Server::new(DEP);
    let p = PrepareOk {
        statement_id: 3,
        num_columns: 0,
        num_params: 0,
        warnings: 0,
        metadata_follows: true,
    };
    server.push(|b| prepare_ok(b, &p, DEP));
    feed(Direction::ToClient, &server.out, &mut t);
    let execute = cmd(
        &Command::StmtExecute {
            statement_id: 3,
            flags: 0,
            iteration_count: 1,
            params: b"",
        },
        DEP,
    );
    // The payload, as the relay hands it over.
    let payload = &execute[HEADER_LEN..];
    // Within the second it was decided in, and within the window.
    assert!(t.intercepts(payload, true).is_none());
    now.store(14, std::sync::atomic::Ordering::Relaxed);
    assert!(t.intercepts(payload, true).is_none());
    // Past it: refused, though prepared while allowed.
    now.store(16, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        t.intercepts(payload, true),
        Some(crate::Interception::Denied(_))
    ));
    // Closed: the gate lets go of its name (churn must not push out the
    // statements a client keeps).
    let close = cmd(&Command::StmtClose { statement_id: 3 }, DEP);
    feed(
        Direction::ToUpstream,
        &[close, cmd(&Command::Ping, DEP)].concat(),
        &mut t,
    );
    let mut server = Server::new(DEP);
    server.ok(0, AUTOCOMMIT);
    feed(Direction::ToClient, &server.out, &mut t);
    assert_eq!(
        *closed.lock().unwrap_or_else(|p| p.into_inner()),
        ["\0mysql-1"]
    );
}
