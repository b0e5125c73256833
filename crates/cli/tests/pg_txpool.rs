#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Transaction pooling (issue 23) against a throwaway PostgreSQL, with
//! pgbench, psql and psycopg through the gateway over TLS: clients far
//! outnumbering the pool, interleaved transactions checked by content,
//! carried settings, each pinning cause, refusal by configuration, the
//! queue timeout, cancel, a server dying mid-transaction, revocation, and
//! the audit naming each statement's own principal.

mod common;
use common::*;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A gateway whose database `orders` pools by transaction with `pooling`
/// flags (`db register`), and its metrics port.
fn start(root: &Path, pg: &Postgres, pooling: &[&str]) -> (Latchkey, u16) {
    start_with(root, pg, pooling, &[])
}

/// [`start`], with more flags for `serve`.
fn start_with(root: &Path, pg: &Postgres, pooling: &[&str], serve: &[&str]) -> (Latchkey, u16) {
    let (data, api) = init_latchkey(root, &[]);
    let upstream = format!("127.0.0.1:{}", pg.port);
    let mut args = vec![
        "--name",
        "orders",
        "--endpoint",
        "localhost",
        "--upstream",
        &upstream,
        "--pool-mode",
        "transaction",
    ];
    args.extend(pooling);
    let registered = register_db(&data, &args);
    assert_eq!(registered["pooling"]["mode"], "transaction");
    set_db_password(&data, "orders", "app", "app-secret");
    let metrics = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics}");
    let mut serve_args = vec!["--metrics-listen", &metrics_listen];
    serve_args.extend(serve);
    let lk = serve_latchkey(root, &data, &api, &serve_args);
    (lk, metrics)
}

/// The value of a metric line (`name{labels}`), 0 when absent.
fn metric(port: u16, series: &str) -> f64 {
    metric_at(port, series).unwrap_or(0.0)
}

/// Server backends of `app` now (the pool's, seen from the server).
fn app_backends(dir: &Path, port: u16) -> u32 {
    stdout_ok(&superuser_sql(
        dir,
        port,
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'",
    ))
    .parse()
    .unwrap()
}

fn superuser_sql(dir: &Path, port: u16, database: &str, sql: &str) -> std::process::Output {
    as_pg_user(Path::new("/usr/bin/psql"))
        .args(["-h", dir.to_str().unwrap(), "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", database, "-XAt", "-c", sql])
        .output()
        .unwrap()
}

fn pgbench(lk: &Latchkey, token: &str, args: &[&str]) -> String {
    let out = Command::new("pgbench")
        .arg(conninfo(lk, "app", "verify-full"))
        .args(args)
        .env("PGPASSWORD", token)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?}: {text}");
    assert!(
        text.contains("number of failed transactions: 0 (0.000%)"),
        "pgbench {args:?}: {text}"
    );
    text
}

/// Runs a psycopg scenario of [`PSYCOPG`]; its JSON result.
fn psycopg(
    lk: &Latchkey,
    pg: &Postgres,
    scenario: &str,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("txpool.py");
    std::fs::write(&script, PSYCOPG).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(scenario)
        .env("LK_CONNINFO", conninfo(lk, "app", "verify-full"))
        .env(
            "LK_DIRECT",
            format!(
                "host={} port={} user=postgres dbname=orders",
                pg.dir.display(),
                pg.port
            ),
        )
        .envs(env.iter().copied())
        .output()
        .expect("python3 with psycopg (scripts/test installs it)");
    let text = stdout_ok(&out);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

const PSYCOPG: &str = concat!(
    include_str!("common/rawtls.py"),
    r#"
import json, os, sys, threading, time
import psycopg
from psycopg import errors

CONNINFO = os.environ["LK_CONNINFO"]

def connect(token="LK_TOKEN", **kw):
    # No server-side prepares unless a scenario asks: named statements pin.
    kw.setdefault("prepare_threshold", None)
    return psycopg.connect(CONNINFO, password=os.environ[token], **kw)

def message(tag, body):
    import struct
    return tag + struct.pack("!I", len(body) + 4) + body

def raw_login():
    """A session logged in by hand over TLS (RawTls), with a count of the
    messages received by tag and `until(done)` to pump until `done()`."""
    import socket, struct
    info = psycopg.conninfo.conninfo_to_dict(CONNINFO)
    sock = socket.create_connection(("127.0.0.1", int(info["port"])), timeout=10)
    sock.sendall(struct.pack("!II", 8, 80877103))
    assert sock.recv(1) == b"S"
    raw = RawTls(sock, info["host"], info["sslrootcert"])
    counts = {}
    def take(plain):
        # Counts whole messages by tag; answers the password request.
        at = 0
        while len(plain) - at >= 5:
            size = 1 + struct.unpack_from("!I", plain, at + 1)[0]
            if len(plain) - at < size:
                break
            tag = chr(plain[at])
            counts[tag] = counts.get(tag, 0) + 1
            if tag == "R" and struct.unpack_from("!I", plain, at + 5)[0] == 3:
                raw.write(message(b"p", os.environ["LK_TOKEN"].encode() + b"\0"))
            at += size
        del plain[:at]
    def until(done, seconds=60):
        raw.until(done, take, seconds)
    startup = struct.pack("!I", 196608) + b"user\0" + info["user"].encode() + b"\0database\0" + info["dbname"].encode() + b"\0\0"
    raw.write(struct.pack("!I", len(startup) + 4) + startup)
    until(lambda: counts.get("Z") == 1)
    return raw, counts, until

result = {}
scenario = sys.argv[1]

if scenario == "owned_rows":
    # Clients far outnumbering the pool, each writing and reading its own
    # rows in transactions, with a setting of its own carried along.
    with connect(autocommit=True) as c:
        c.execute("CREATE TABLE owned (client int, n int)")
    clients, rounds = 40, 12
    failures = []
    def client(i):
        try:
            with connect() as c:
                c.execute(f"SET application_name = 'client-{i}'")
                c.commit()
                for n in range(rounds):
                    c.execute("INSERT INTO owned VALUES (%s, %s)", (i, n))
                    name, count = c.execute(
                        "SELECT current_setting('application_name'), count(*) FROM owned WHERE client = %s", (i,)
                    ).fetchone()
                    if name != f"client-{i}" or count != n + 1:
                        failures.append(f"client {i} round {n}: {name} {count}")
                    c.commit()
        except Exception as e:
            failures.append(f"client {i}: {e!r}")
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads: t.start()
    for t in threads: t.join()
    with connect(autocommit=True) as c:
        rows = c.execute("SELECT client, array_agg(n ORDER BY n) FROM owned GROUP BY client ORDER BY client").fetchall()
    result["failures"] = failures[:5]
    result["clients"] = len(rows)
    result["all_rows_own"] = all(ns == list(range(rounds)) for _, ns in rows)

elif scenario == "carried":
    # A pool of one: both clients are served by the same backend, each
    # with its own settings.
    a = connect(autocommit=True)
    b = connect(autocommit=True)
    a.execute("SET search_path TO lk_a, public")
    b.execute("SET TIME ZONE 'Asia/Tokyo'")
    one = lambda c, sql: c.execute(sql).fetchone()[0]
    result["same_backend"] = one(a, "SELECT pg_backend_pid()") == one(b, "SELECT pg_backend_pid()")
    result["a_search_path"] = one(a, "SHOW search_path")
    result["b_search_path"] = one(b, "SHOW search_path")
    result["a_timezone"] = one(a, "SHOW TimeZone")
    result["b_timezone"] = one(b, "SHOW TimeZone")
    a.execute("RESET ALL")
    result["a_after_reset"] = one(a, "SHOW search_path")
    result["b_after_a_reset"] = one(b, "SHOW TimeZone")
    # SET LOCAL ends with its transaction and pins nothing.
    with b.transaction():
        b.execute("SET LOCAL statement_timeout = '1234ms'")
        result["b_local"] = one(b, "SHOW statement_timeout")
    result["a_after_local"] = one(a, "SHOW statement_timeout")
    # The one backend holds a's prepared statement under the gateway's
    # name: b cannot run it, by protocol or by SQL.
    ap = connect(autocommit=True, prepare_threshold=0)
    result["a_prepared"] = ap.execute("SELECT 'only-a'", prepare=True).fetchone()[0]
    # b reads the backend's statement names (its own backend too) and
    # tries each, by protocol and by SQL.
    names = [r[0] for r in b.execute("SELECT name FROM pg_prepared_statements").fetchall()]
    result["server_names"] = names
    stolen = []
    for name in names:
        res = b.pgconn.exec_prepared(name.encode(), [])
        result.setdefault("stolen_message", res.error_message.decode())
        stolen.append(res.error_field(psycopg.pq.DiagnosticField.SQLSTATE).decode() if res.error_field(psycopg.pq.DiagnosticField.SQLSTATE) else "ran")
        try:
            b.execute(f'EXECUTE "{name}"')
            stolen.append("ran")
        except psycopg.Error as e:
            stolen.append(e.sqlstate)
            b.rollback() if not b.autocommit else None
    result["stolen"] = sorted(set(stolen))
    # The unnamed statement a left on the backend is not b's either, and
    # the error says so in PostgreSQL's words.
    a.execute("SELECT 'only-a, unnamed'")
    res = b.pgconn.exec_prepared(b"", [])
    result["unnamed_message"] = res.error_message.decode()
    # libpq's COPY FROM STDIN by the extended protocol sends a Sync the
    # server ignores in copy-in mode (red team): the client still gives
    # its connection back, so b (same pool of one) is served.
    a.execute("CREATE TABLE copied (x int)")
    raw = psycopg.pq.PGconn.connect(f"{CONNINFO} password={os.environ['LK_TOKEN']}".encode())
    raw.send_query_params(b"COPY copied FROM STDIN", None)
    res = raw.get_result()
    result["copy_in"] = res.status == psycopg.pq.ExecStatus.COPY_IN
    # Mid-COPY the connection is not lent (red team: b's query landed in
    # the COPY): b waits for it.
    during = {}
    def b_during_copy():
        try:
            during["b"] = one(b, "SELECT 'b-during-copy'")
        except psycopg.Error as e:
            during["b"] = e.sqlstate
    waiter = threading.Thread(target=b_during_copy)
    waiter.start()
    time.sleep(0.5)
    raw.put_copy_data(b"7\n")
    raw.put_copy_end()
    result["copy_done"] = raw.get_result().status == psycopg.pq.ExecStatus.COMMAND_OK
    raw.get_result()
    waiter.join()
    result["b_during_copy"] = during.get("b")
    result["copied_seen_by_b"] = one(b, "SELECT sum(x) FROM copied")
    raw.finish()
    # A DEALLOCATE of a carried statement sent by the extended protocol
    # (psycopg's pipeline mode sends every statement so): still a Parse,
    # answered in step.
    pp = connect(autocommit=True, prepare_threshold=0)
    result["before_deallocation"] = pp.execute("SELECT %s::int * 3", (3,), prepare=True).fetchone()[0]
    import signal
    signal.alarm(30)  # out of step, the client would wait for ever
    with pp.pipeline():
        gone = pp.execute("DEALLOCATE _pg3_0")
        after = pp.execute("SELECT 'after'")
    signal.alarm(0)
    result["deallocated"] = gone.statusmessage
    result["after_deallocation"] = after.fetchone()[0]

elif scenario == "pinned":
    # Session state pins: the client keeps its backend, the others are
    # served by the rest of the pool.
    a = connect(autocommit=True)
    b = connect(autocommit=True)
    one = lambda c, sql, params=None, **kw: c.execute(sql, params, **kw).fetchone()[0]
    a.execute("SET work_mem = '7MB'")
    pinned = one(a, "SELECT pg_backend_pid()")
    result["a_work_mem"] = [one(a, "SHOW work_mem") for _ in range(3)]
    result["a_kept_backend"] = all(one(a, "SELECT pg_backend_pid()") == pinned for _ in range(5))
    result["b_work_mem"] = one(b, "SHOW work_mem")
    result["b_other_backend"] = one(b, "SELECT pg_backend_pid()") != pinned
    # Server-side prepared statements (named Parse) pin too.
    c = connect(autocommit=True)
    result["prepared"] = [one(c, "SELECT %s::int * 2", (i,), prepare=True) for i in range(3)]

elif scenario == "refused":
    c = connect(autocommit=True)
    one = lambda sql: c.execute(sql).fetchone()[0]
    refused = {}
    for sql in ["SET work_mem = '7MB'", "LISTEN jobs", "SELECT pg_advisory_lock(1)",
                "CREATE TEMP TABLE t (a int)", "PREPARE p AS SELECT 1"]:
        try:
            c.execute(sql)
            refused[sql] = "ran"
        except errors.FeatureNotSupported as e:
            refused[sql] = e.sqlstate
    result["refused"] = refused
    with c.transaction():
        c.execute("SET LOCAL work_mem = '9MB'")
        result["local"] = one("SHOW work_mem")
    c.execute("SET application_name = 'carried'")
    result["carried"] = one("SHOW application_name")

elif scenario == "queue_cancel_dying":
    a = connect()
    a.execute("SELECT 1")  # a transaction: the pool's one connection is lent
    started = time.time()
    try:
        connect()
        result["queue"] = "connected"
    except psycopg.OperationalError as e:
        result["queue"] = str(e)
    result["queue_waited"] = time.time() - started
    a.commit()
    # A cancel reaches the statement running now.
    def cancel_later():
        time.sleep(0.7)
        a.cancel()
    threading.Thread(target=cancel_later).start()
    started = time.time()
    try:
        a.execute("SELECT pg_sleep(20)")
        result["cancel"] = "not cancelled"
    except errors.QueryCanceled as e:
        result["cancel"] = e.sqlstate
    result["cancel_after"] = time.time() - started
    a.rollback()
    # libpq 17's cancel (psycopg's cancel_safe) also wants the cancel
    # connection to end cleanly: a TLS close_notify, as PostgreSQL sends.
    def cancel_safe_later():
        time.sleep(0.7)
        try:
            a.cancel_safe(timeout=5)
            result["cancel_safe"] = "ok"
        except Exception as e:
            result["cancel_safe"] = str(e)
    canceller = threading.Thread(target=cancel_safe_later)
    canceller.start()
    try:
        a.execute("SELECT pg_sleep(20)")
        result["cancel_safe_query"] = "not cancelled"
    except errors.QueryCanceled as e:
        result["cancel_safe_query"] = e.sqlstate
    canceller.join()
    a.rollback()
    with connect(autocommit=True) as b:
        result["after_cancel"] = b.execute("SELECT 42").fetchone()[0]
    # The backend dies mid-transaction: this client is told, others go on.
    pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(os.environ["LK_DIRECT"], autocommit=True) as direct:
        direct.execute("SELECT pg_terminate_backend(%s)", (pid,))
    try:
        a.execute("SELECT 1")
        result["dead"] = "survived"
    except psycopg.OperationalError as e:
        result["dead"] = str(e)
    with connect(autocommit=True) as b:
        result["after_death"] = b.execute("SELECT 7").fetchone()[0]

elif scenario == "long_queries":
    # Longer than the relay's 16 KiB window: each reaches the gateway in
    # many reads, and a transaction starts on a message's first part. A
    # thread with a deadline, so that a wedged gateway fails the test
    # rather than hanging it.
    sizes = [20_000, 100_000, 300_000, 1_000_000, 100_000, 100_000]
    lengths = []
    def run():
        try:
            with connect(autocommit=True) as c:
                for size in sizes:
                    query = c.execute("SELECT length(%s)", ("x" * size,))
                    lengths.append(query.fetchone()[0])
                # No parameters: psycopg sends a simple query.
                for size in sizes:
                    query = c.execute("SELECT length('" + "y" * size + "')")
                    lengths.append(query.fetchone()[0])
        except Exception as e:
            result["error"] = str(e)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    result["sizes"] = sizes + sizes
    result["lengths"] = lengths

elif scenario == "split_message":
    # By hand over TLS: a whole query and the first bytes of the next, a
    # pause, then the rest. A transaction started on the second's first
    # part used to give the connection back and take it again without
    # ever waiting: the session thread spun and the client was never
    # answered.
    import socket, ssl, struct
    info = psycopg.conninfo.conninfo_to_dict(CONNINFO)
    def message(tag, body):
        return tag + struct.pack("!I", len(body) + 4) + body
    def query(sql):
        return message(b"Q", sql.encode() + b"\0")
    raw = socket.create_connection(("127.0.0.1", int(info["port"])), timeout=10)
    raw.sendall(struct.pack("!II", 8, 80877103))
    assert raw.recv(1) == b"S"
    tls = ssl.create_default_context(cafile=info["sslrootcert"])
    sock = tls.wrap_socket(raw, server_hostname=info["host"])
    pending = b""
    def read():
        global pending
        while len(pending) < 5 or len(pending) < 1 + struct.unpack("!I", pending[1:5])[0]:
            data = sock.recv(65536)
            if not data:
                raise EOFError("the gateway closed the connection")
            pending += data
        size = 1 + struct.unpack("!I", pending[1:5])[0]
        tag, body, pending = pending[:1], pending[5:size], pending[size:]
        return tag, body
    startup = struct.pack("!I", 196608) + b"user\0" + info["user"].encode() + b"\0database\0" + info["dbname"].encode() + b"\0\0"
    sock.sendall(struct.pack("!I", len(startup) + 4) + startup)
    while True:
        tag, body = read()
        if tag == b"R" and struct.unpack("!I", body[:4])[0] == 3:
            sock.sendall(message(b"p", os.environ["LK_TOKEN"].encode() + b"\0"))
        elif tag == b"E":
            raise SystemExit(body)
        elif tag == b"Z":
            break
    first, second = query("SELECT 'first'"), query("SELECT 'second'")
    answers = []
    try:
        for part in (3, 1, 5):
            sock.sendall(first + second[:part])
            time.sleep(0.5)
            sock.sendall(second[part:])
            ready = 0
            while ready < 2:
                tag, body = read()
                if tag == b"D":
                    answers.append(body[6:].decode())
                ready += tag == b"Z"
    except Exception as e:
        result["error"] = repr(e)
    result["answers"] = answers

elif scenario == "never_reads":
    raw, counts, until = raw_login()
    try:
        # A million queries written without reading an answer, until the
        # gateway has taken none for two seconds: it holds a record of
        # each it has read until answered, so it must stop reading.
        before = rss_kb(os.environ["LK_PID"])
        result["queries"] = queries = raw.flood(message(b"Q", b"SELECT 1\0") * 1000, 1000, 1_000_000)
        result["rss_growth_kb"] = rss_kb(os.environ["LK_PID"]) - before
        # Then every answer is read, in order.
        until(lambda: counts.get("Z", 0) == 1 + queries)
        result["answered"] = counts["Z"] - 1
        # A batch of the extended protocol, with no Sync until the end,
        # read while it is written: well past the mark the gateway stops
        # reading the client at, which it must not wait on forever (the
        # server sends what it holds once 8 KiB of it wait).
        counts.clear()
        bind_execute = message(b"B", b"\0\0\0\0\0\0\0\0") + message(b"E", b"\0\0\0\0\0")
        raw.write(message(b"P", b"\0SELECT 1\0\0\0"))
        for _ in range(20):
            raw.write(bind_execute * 1000)
            raw.pump()
        until(lambda: counts.get("C", 0) >= 19_000, seconds=30)
        raw.write(message(b"S", b""))
        until(lambda: counts.get("Z", 0) == 1)
        result["batch"] = dict(counts)
        # The same after an error: the server skips the rest of the batch.
        counts.clear()
        raw.write(message(b"P", b"\0SELEC 1\0\0\0"))
        for _ in range(20):
            raw.write(bind_execute * 1000)
            raw.pump()
        until(lambda: counts.get("E", 0) == 1 and not raw.unsent, seconds=30)
        raw.write(message(b"S", b""))
        until(lambda: counts.get("Z", 0) == 1)
        result["failed_batch"] = dict(counts)
    except Exception as e:
        result["error"] = repr(e)
        result["counts"] = counts

elif scenario == "large_messages":
    # Each 2 MiB message may cost 25 times its size (52 MB): the
    # gateway's budget holds four, and a principal's share one.
    import urllib.request
    def metric(name):
        url = f"http://127.0.0.1:{os.environ['LK_METRICS']}/metrics"
        for line in urllib.request.urlopen(url).read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0
    def wait_for(done, seconds=30):
        deadline = time.time() + seconds
        while not done():
            if time.time() > deadline:
                raise TimeoutError(f"waited {seconds} s")
            time.sleep(0.05)
    big = "SELECT length('" + "x" * (2 << 20) + "')"
    body = big.encode() + b"\0"
    query = message(b"Q", body)
    result["cost"] = 25 * (5 + len(body))
    raw, counts, until = raw_login()
    answers = {}
    try:
        # A sends all of its message but the last 64 KiB: the gateway
        # holds room for it meanwhile.
        raw.write(query[:-65536])
        until(lambda: not raw.unsent)
        wait_for(lambda: metric("latchkey_gateway_large_message_bytes") > 0)
        result["leased_for_a"] = metric("latchkey_gateway_large_message_bytes")
        # B's message of the same size waits for A's to be done.
        def b():
            with connect(autocommit=True) as c:
                answers["b"] = c.execute(big).fetchone()[0]
        t = threading.Thread(target=b)
        t.start()
        wait_for(lambda: metric("latchkey_gateway_large_message_waiting") == 1)
        time.sleep(0.5)
        result["b_answered_while_a_holds"] = "b" in answers
        # Small messages are not held up, nor are another principal's
        # large ones: A's principal holds its share.
        with connect(autocommit=True) as c:
            result["small"] = c.execute("SELECT 7").fetchone()[0]
        with connect(token="LK_BOB", autocommit=True) as c:
            result["bob"] = c.execute(big).fetchone()[0]
        result["b_answered_before_a"] = "b" in answers
        # A's last bytes: A is answered, then B.
        raw.write(query[-65536:])
        until(lambda: counts.get("Z") == 2)
        result["a_rows"] = counts.get("D")
        t.join(60)
        result["b"] = answers.get("b")
        wait_for(lambda: metric("latchkey_gateway_large_message_bytes") == 0)
        result["waiting_after"] = metric("latchkey_gateway_large_message_waiting")
        # A client that stops in the middle of one is told, after 10 s and
        # a second per MiB, and its room is given back.
        stalled, stalled_counts, stalled_until = raw_login()
        stalled.write(query[: len(query) // 2])
        stalled_until(lambda: not stalled.unsent)
        started = time.time()
        # A second one waits for the first's room (its principal's share),
        # then holds it and is told in its turn (it was read unleased,
        # and never told, in transaction pooling).
        result["step"] = "first leased"
        wait_for(lambda: metric("latchkey_gateway_large_message_bytes") > 0)
        result["step"] = "second waits"
        second, second_counts, second_until = raw_login()
        second.write(query[: len(query) // 2])
        for _ in range(20):
            second.send_some(0.05)
        wait_for(lambda: metric("latchkey_gateway_large_message_waiting") == 1)
        result["step"] = "first told"
        stalled_until(lambda: stalled_counts.get("E") == 1, seconds=40)
        result["stalled_for"] = time.time() - started
        result["step"] = "second leased"
        # The first's lease may still be held as it is told: wait for the
        # second's, alone.
        wait_for(lambda: metric("latchkey_gateway_large_message_bytes") == result["cost"])
        result["second_leased"] = metric("latchkey_gateway_large_message_bytes")
        started = time.time()
        second_until(lambda: second_counts.get("E") == 1, seconds=40)
        result["second_stalled_for"] = time.time() - started
        result["stalled_leased_after"] = metric("latchkey_gateway_large_message_bytes")
    except Exception as e:
        result["error"] = repr(e)

elif scenario == "large_prepared":
    # Named statements longer than what the audit keeps of one (32 KiB)
    # are carried as any other, from client to client.
    big = "SELECT length('" + "x" * (40 << 10) + "') + %s"
    answers = []
    try:
        for i in range(3):
            with connect(autocommit=True, prepare_threshold=0) as c:
                for n in range(2):
                    answers.append(c.execute(big, (n,), prepare=True).fetchone()[0])
    except Exception as e:
        result["error"] = repr(e)
    result["answers"] = answers

elif scenario == "held_in_transaction":
    # A statement that runs long inside a transaction is not idle...
    a = connect()
    a.execute("SELECT pg_sleep(4)")
    result["busy_survived"] = a.execute("SELECT 3").fetchone()[0]
    # ...but a client that leaves its transaction open holds the pool's
    # one connection: it is ended, and the connection serves others.
    time.sleep(4)
    try:
        a.execute("SELECT 2")
        result["held"] = "survived"
    except psycopg.Error as e:
        result["held"] = str(e)
    with connect(autocommit=True) as b:
        result["after_held"] = b.execute("SELECT 8").fetchone()[0]
        # Its transaction was rolled back with its connection.
        result["open_transactions"] = b.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
        ).fetchone()[0]
        b.execute("CREATE TABLE IF NOT EXISTS copied(x int)")
    # Pipeline mode (Flush, no Sync until the end): a statement still
    # running is the server's wait, not the client's.
    with connect(autocommit=True) as p:
        with p.pipeline():
            result["pipeline_survived"] = p.execute("SELECT 6 FROM pg_sleep(4)").fetchall()[0][0]
    # A COPY FROM STDIN left waiting for its data holds the connection
    # as an open transaction does.
    c = connect(autocommit=True)
    try:
        with c.cursor().copy("COPY copied FROM STDIN") as copy:
            copy.write_row((1,))
            time.sleep(4)
            copy.write_row((2,))
        result["copy_held"] = "survived"
    except psycopg.Error as e:
        result["copy_held"] = str(e)

elif scenario == "two_principals":
    alice = connect("LK_ALICE", autocommit=True)
    bob = connect("LK_BOB", autocommit=True)
    for i in range(10):
        alice.execute("SELECT 1 AS alice_mark")
        bob.execute("SELECT 1 AS bob_mark")
    result["same_backend"] = (
        alice.execute("SELECT pg_backend_pid()").fetchone()[0]
        == bob.execute("SELECT pg_backend_pid()").fetchone()[0]
    )
    # What the red team did: bob's prepared statement, and a function of
    # alice's that replaces it on the connection it lands on. Principals
    # have pools of their own, so it never is bob's connection.
    bob_p = connect("LK_BOB", autocommit=True, prepare_threshold=0)
    bob_p.execute("CREATE TABLE IF NOT EXISTS loot(x text)")
    bob_p.execute("SELECT %s::int AS bob_prepared", (1,), prepare=True)
    name = bob_p.execute(
        "SELECT name FROM pg_prepared_statements WHERE statement LIKE '%%bob_prepared%%'"
    ).fetchone()[0]
    alice.execute(
        "CREATE OR REPLACE FUNCTION evil() RETURNS void LANGUAGE sql AS $f$DEALLOCATE ALL; "
        f"PREPARE {name}(int4) AS WITH l AS (INSERT INTO loot VALUES ('stolen ' || $1)) SELECT 666$f$"
    )
    alice.execute("SELECT evil()")
    result["bob_after"] = [
        bob_p.execute("SELECT %s::int AS bob_prepared", (i,), prepare=True).fetchone()[0]
        for i in range(2, 5)
    ]
    result["loot"] = bob_p.execute("SELECT count(*) FROM loot").fetchone()[0]
    # Within one principal, a function that drops every prepared
    # statement costs at most one error: the gateway prepares again.
    alice2 = connect("LK_ALICE", autocommit=True, prepare_threshold=0)
    alice2.execute("SELECT %s::int AS alice_prepared", (1,), prepare=True)
    # It also puts a statement of its own under the name a statement the
    # client never prepared is sent to (red team): the gateway closes that
    # name first, so it is still "does not exist".
    alice.execute(
        "CREATE OR REPLACE FUNCTION wipe() RETURNS void LANGUAGE sql AS "
        "$f$DEALLOCATE ALL; PREPARE _lk_none AS SELECT 667$f$"
    )
    alice.execute("SELECT wipe()")
    res = alice2.pgconn.exec_prepared(b"never_prepared", [])
    result["planted_none"] = res.error_field(psycopg.pq.DiagnosticField.SQLSTATE).decode()
    errors, values = 0, []
    for i in range(5):
        try:
            values.append(alice2.execute("SELECT %s::int AS alice_prepared", (i,), prepare=True).fetchone()[0])
        except psycopg.Error as e:
            errors += 1
            result["wipe_error"] = e.sqlstate
    result["wipe_errors"] = errors
    result["wipe_values"] = values

elif scenario == "smuggled_state":
    # What the red team did. First: a carried value that the previous
    # client's encoding (SJIS swallows the backslash after 0x81) would
    # read as SQL, were it written into the replayed statement.
    direct = psycopg.connect(os.environ["LK_DIRECT"], autocommit=True)
    direct.execute("ALTER DATABASE orders SET backslash_quote = on")
    password = "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'"
    before = direct.execute(password).fetchone()[0]
    a1 = connect(autocommit=True)
    a1.execute("SELECT set_config('search_path', chr(193) || $q$\\',false);"
               "ALTER/**/ROLE/**/app/**/PASSWORD/**/$p$pwned$p$;--$q$, false)")
    a2 = connect(autocommit=True)
    a2.execute("SET client_encoding = 'SJIS'")
    result["same_backend"] = (
        a1.execute("SELECT pg_backend_pid()").fetchone()[0]
        == a2.execute("SELECT pg_backend_pid()").fetchone()[0]
    )
    a1.execute("SELECT 1")
    a2.execute("SELECT 1")
    result["a1_path"] = a1.execute("SHOW search_path").fetchone()[0]
    result["password_kept"] = direct.execute(password).fetchone()[0] == before
    direct.execute("ALTER DATABASE orders RESET backslash_quote")
    a1.close()
    a2.close()
    direct.close()

elif scenario == "cancel_race":
    # One client cancels its own statements over and over while another
    # runs on the same server connection: no cancel may reach the other's.
    a = connect(autocommit=True)
    b = connect(autocommit=True)
    stop = time.time() + 3
    def own_statements():
        while time.time() < stop:
            try:
                a.execute("SELECT 1")
            except errors.QueryCanceled:
                pass
    def cancels():
        while time.time() < stop:
            a.cancel()
            time.sleep(0.002)
    threads = [threading.Thread(target=own_statements), threading.Thread(target=cancels)]
    for t in threads:
        t.start()
    ran, cancelled = 0, 0
    while time.time() < stop:
        try:
            b.execute("SELECT pg_sleep(0.05)")
            ran += 1
        except errors.QueryCanceled:
            cancelled += 1
    for t in threads:
        t.join()
    result["b_ran"], result["b_cancelled"] = ran, cancelled

elif scenario == "pin_share":
    # Half the pool at most is pinned: past that, session state is
    # refused, and the others still get a connection.
    a = connect(autocommit=True)
    a.execute("SET work_mem = '5MB'")
    b = connect(autocommit=True)
    try:
        b.execute("SET work_mem = '6MB'")
        result["b"] = "pinned"
    except errors.FeatureNotSupported as e:
        result["b"] = e.sqlstate
    with connect(autocommit=True) as c:
        result["c"] = c.execute("SELECT 5").fetchone()[0]
    a.close()
    time.sleep(0.5)
    b.execute("SET work_mem = '6MB'")
    result["b_after"] = b.execute("SHOW work_mem").fetchone()[0]
    b.close()

elif scenario == "hidden_state":
    # A setting and a temporary table hidden from the reading
    # (a Unicode-escaped set_config, pg_temp.), which must pin their
    # client rather than reach the next one.
    c1 = connect(autocommit=True)
    c1.execute('SELECT U&"set\\005fconfig"(\'work_mem\', \'77MB\', false)')
    c1.execute("CREATE TABLE pg_temp.stolen AS SELECT 'c1-private' AS secret")
    with connect(autocommit=True) as c2:
        result["c2_work_mem"] = c2.execute("SHOW work_mem").fetchone()[0]
        try:
            result["c2_reads"] = c2.execute("SELECT secret FROM stolen").fetchone()[0]
        except errors.UndefinedTable as e:
            result["c2_reads"] = e.sqlstate
    result["c1_work_mem"] = c1.execute("SHOW work_mem").fetchone()[0]
    result["c1_reads"] = c1.execute("SELECT secret FROM stolen").fetchone()[0]
    c1.close()

print(json.dumps(result))
"#
);

#[test]
fn many_clients_share_a_few_server_connections() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let (lk, metrics_port) = start(root.path(), &pg, &["--pool-size", "4"]);
    let token = aws_token(&lk, &[], "localhost", "app");
    let init = Command::new("pgbench")
        .args([
            "-i",
            "-s",
            "1",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "app",
            "orders",
        ])
        .env("PGPASSWORD", "app-secret")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    // 40 clients on 4 connections, simple, extended and TPC-B-like, while
    // the server's backends are counted.
    let sampler = {
        let (dir, port) = (pg.dir.clone(), pg.port);
        std::thread::spawn(move || {
            let mut most = 0;
            let until = Instant::now() + Duration::from_secs(6);
            while Instant::now() < until {
                most = most.max(app_backends(&dir, port));
                std::thread::sleep(Duration::from_millis(100));
            }
            most
        })
    };
    pgbench(&lk, &token, &["-n", "-S", "-c", "40", "-j", "2", "-T", "3"]);
    pgbench(
        &lk,
        &token,
        &[
            "-n", "-S", "-M", "extended", "-c", "40", "-j", "2", "-t", "50",
        ],
    );
    let most = sampler.join().unwrap();
    assert!(most <= 4, "{most} server backends for a pool of 4");
    assert!(most >= 1);
    pgbench(&lk, &token, &["-n", "-c", "20", "-j", "2", "-t", "40"]);
    // TPC-B's invariant: every transaction's change landed whole.
    let sums = stdout_ok(&superuser_sql(
        &pg.dir,
        pg.port,
        "orders",
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT sum(bbalance) FROM pgbench_branches) || ' ' || (SELECT sum(tbalance) FROM pgbench_tellers) || ' ' || (SELECT sum(delta) FROM pgbench_history) || ' ' || (SELECT count(*) FROM pgbench_history)",
    ));
    let sums: Vec<&str> = sums.split(' ').collect();
    assert_eq!(sums[4], "800", "every transaction recorded once");
    assert!(
        sums[..4].iter().all(|s| *s == sums[0]),
        "TPC-B sums differ: {sums:?}"
    );

    // psycopg clients writing their own rows, each with its own
    // application_name, on the same four connections.
    let r = psycopg(&lk, &pg, "owned_rows", &[("LK_TOKEN", &token)]);
    assert_eq!(r["failures"], serde_json::json!([]), "{r}");
    assert_eq!(r["clients"], 40);
    assert_eq!(r["all_rows_own"], true);
    assert!(app_backends(&pg.dir, pg.port) <= 4);

    // Server-side prepared statements: pgbench -M prepared, select-only
    // and TPC-B-like (one thread per client: PostgreSQL 15's pgbench
    // prepares lazily and waits, so a thread driving several clients
    // would wait for a connection its other clients hold, under any
    // transaction pooler), and JDBC from the first execution.
    pgbench(
        &lk,
        &token,
        &[
            "-n", "-S", "-M", "prepared", "-c", "40", "-j", "2", "-T", "2",
        ],
    );
    pgbench(
        &lk,
        &token,
        &["-n", "-M", "prepared", "-c", "12", "-j", "12", "-t", "30"],
    );
    let sums = stdout_ok(&superuser_sql(
        &pg.dir,
        pg.port,
        "orders",
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT sum(delta) FROM pgbench_history) || ' ' || (SELECT count(*) FROM pgbench_history)",
    ));
    let sums: Vec<&str> = sums.split(' ').collect();
    assert_eq!(sums[0], sums[1], "TPC-B sums differ: {sums:?}");
    assert_eq!(sums[2], "1160");
    let classes = root.path().join("classes");
    let jar = "/usr/share/java/postgresql.jar";
    let javac = Command::new("javac")
        .args(["-d", classes.to_str().unwrap(), "-cp", jar])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/java/PgJdbcTxPool.java"
        ))
        .output()
        .expect("javac (scripts/test installs a JDK and libpostgresql-jdbc-java)");
    stdout_ok(&javac);
    let java = Command::new("java")
        .args(["-cp", &format!("{jar}:{}", classes.display())])
        .args([
            "PgJdbcTxPool",
            &lk.pg_port.to_string(),
            &token,
            lk.data.join("ca.pem").to_str().unwrap(),
            "16",
            "25",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout_ok(&java), "ok 400");
    assert_eq!(
        metric(
            metrics_port,
            "latchkey_pool_pinned_sessions_total{cause=\"named_statement\"}"
        ),
        0.0,
        "prepared statements are carried, not pinned: {}",
        metrics_text(metrics_port)
    );
    assert_eq!(
        metric(metrics_port, "latchkey_pool_queue_timeouts_total"),
        0.0
    );
    assert!(metric(metrics_port, "latchkey_pool_server_connections") <= 4.0);
}

#[test]
fn settings_are_carried_and_session_state_pins_or_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    pg.sql("CREATE SCHEMA lk_a AUTHORIZATION app");
    let (lk, metrics_port) = start(root.path(), &pg, &["--pool-size", "1"]);
    let token = aws_token(&lk, &[], "localhost", "app");

    let r = psycopg(&lk, &pg, "carried", &[("LK_TOKEN", &token)]);
    assert_eq!(r["same_backend"], true, "{r}");
    assert_eq!(r["a_search_path"], "lk_a, public", "{r}");
    assert_eq!(r["b_search_path"], "\"$user\", public", "{r}");
    assert_eq!(r["b_timezone"], "Asia/Tokyo", "{r}");
    assert_ne!(r["a_timezone"], "Asia/Tokyo", "{r}");
    assert_eq!(r["a_after_reset"], "\"$user\", public", "{r}");
    assert_eq!(r["b_after_a_reset"], "Asia/Tokyo", "{r}");
    assert_eq!(r["b_local"], "1234ms", "{r}");
    assert_eq!(r["a_after_local"], "0", "{r}");
    assert_eq!(r["a_prepared"], "only-a", "{r}");
    assert_eq!(r["stolen"], serde_json::json!(["26000"]), "{r}");
    // A protocol-level try is told in the client's own words, never run.
    let names = r["server_names"].as_array().unwrap();
    assert!(!names.is_empty(), "{r}");
    assert!(
        r["stolen_message"].as_str().unwrap().contains(&format!(
            "prepared statement \"{}\" does not exist",
            names[0].as_str().unwrap()
        )),
        "{r}"
    );
    assert_eq!(r["copy_in"], true, "{r}");
    assert_eq!(r["copy_done"], true, "{r}");
    assert_eq!(r["copied_seen_by_b"], 7, "{r}");
    assert_eq!(r["b_during_copy"], "b-during-copy", "{r}");
    assert_eq!(r["before_deallocation"], 9, "{r}");
    assert_eq!(r["deallocated"], "DEALLOCATE ALL", "{r}");
    assert_eq!(r["after_deallocation"], "after", "{r}");
    assert!(
        r["unnamed_message"]
            .as_str()
            .unwrap()
            .contains("unnamed prepared statement does not exist"),
        "{r}"
    );
    assert_eq!(
        metric(
            metrics_port,
            "latchkey_pool_pinned_sessions_total{cause=\"set\"}"
        ),
        0.0
    );

    // Pinning needs a second connection for the others.
    let root2 = tempfile::tempdir().unwrap();
    let (lk2, metrics2) = start(root2.path(), &pg, &["--pool-size", "2"]);
    let token2 = aws_token(&lk2, &[], "localhost", "app");
    let r = psycopg(&lk2, &pg, "pinned", &[("LK_TOKEN", &token2)]);
    assert_eq!(
        r["a_work_mem"],
        serde_json::json!(["7MB", "7MB", "7MB"]),
        "{r}"
    );
    assert_eq!(r["a_kept_backend"], true, "{r}");
    assert_eq!(r["b_work_mem"], "4MB", "{r}");
    assert_eq!(r["b_other_backend"], true, "{r}");
    assert_eq!(r["prepared"], serde_json::json!([0, 2, 4]), "{r}");
    // Each cause of pinning, with psql (one session each).
    for (sql, cause) in [
        ("LISTEN jobs; SELECT 1", "listen"),
        ("SELECT pg_advisory_lock(7); SELECT 1", "advisory_lock"),
        (
            "CREATE TEMP TABLE scratch (a int); SELECT 1",
            "temporary_object",
        ),
        (
            "BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT; SELECT 1",
            "hold_cursor",
        ),
        ("PREPARE q AS SELECT 1; EXECUTE q", "prepare"),
        ("SET ROLE app; SELECT 1", "role"),
    ] {
        let out = psql(&lk2, "app", &token2, "verify-full", sql);
        stdout_ok(&out);
        let series = format!("latchkey_pool_pinned_sessions_total{{cause=\"{cause}\"}}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while metric(metrics2, &series) < 1.0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            metric(metrics2, &series),
            1.0,
            "{sql}: {}",
            metrics_text(metrics2)
        );
    }
    // A pinned client's temporary table and lock left with its
    // connection: nobody else sees them.
    let other = psql(
        &lk2,
        "app",
        &token2,
        "verify-full",
        "SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't'",
    );
    assert_eq!(stdout_ok(&other), "0");

    // Refused by configuration instead: 0A000, while SET LOCAL and
    // carried settings still work.
    let root3 = tempfile::tempdir().unwrap();
    let (lk3, _) = start(
        root3.path(),
        &pg,
        &["--pool-size", "1", "--session-state", "refuse"],
    );
    let token3 = aws_token(&lk3, &[], "localhost", "app");
    let r = psycopg(&lk3, &pg, "refused", &[("LK_TOKEN", &token3)]);
    for (_, outcome) in r["refused"].as_object().unwrap() {
        assert_eq!(outcome, "0A000", "{r}");
    }
    assert_eq!(r["local"], "9MB", "{r}");
    assert_eq!(r["carried"], "carried", "{r}");

    // What a red team smuggled past the pool: a carried value read as SQL
    // under another client's encoding (it stays a value: the password is
    // not changed), and state hidden from the reading (it pins its
    // client: the next one sees neither the setting nor the table).
    let root4 = tempfile::tempdir().unwrap();
    let (lk4, _) = start(root4.path(), &pg, &["--pool-size", "1"]);
    let token4 = aws_token(&lk4, &[], "localhost", "app");
    let r = psycopg(&lk4, &pg, "smuggled_state", &[("LK_TOKEN", &token4)]);
    assert_eq!(r["same_backend"], true, "{r}");
    assert_eq!(r["password_kept"], true, "{r}");
    assert!(
        r["a1_path"].as_str().unwrap().contains("ALTER/**/ROLE"),
        "the value arrived whole: {r}"
    );
    // A cancel lands before its server connection serves anyone else.
    let r = psycopg(&lk4, &pg, "cancel_race", &[("LK_TOKEN", &token4)]);
    assert_eq!(r["b_cancelled"], 0, "{r}");
    assert!(r["b_ran"].as_u64().unwrap() >= 5, "{r}");
    let r = psycopg(&lk2, &pg, "pin_share", &[("LK_TOKEN", &token2)]);
    assert_eq!(r["b"], "0A000", "{r}");
    assert_eq!(r["c"], 5, "{r}");
    assert_eq!(r["b_after"], "6MB", "{r}");
    let r = psycopg(&lk2, &pg, "hidden_state", &[("LK_TOKEN", &token2)]);
    assert_eq!(r["c1_work_mem"], "77MB", "{r}");
    assert_eq!(r["c1_reads"], "c1-private", "{r}");
    assert_eq!(r["c2_work_mem"], "4MB", "{r}");
    assert_eq!(r["c2_reads"], "42P01", "{r}");
}

#[test]
fn the_queue_and_idle_transactions_time_out_cancels_reach_the_current_backend_and_a_dead_one_is_told()
 {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    // The pool's queue timeout is the default 30 s: a login's wait ends
    // within its startup time, with the pool's answer.
    let (lk, metrics_port) = start_with(
        root.path(),
        &pg,
        &["--pool-size", "1", "--idle-transaction-timeout", "3s"],
        &["--gateway-startup-timeout", "2s"],
    );
    let token = aws_token(&lk, &[], "localhost", "app");
    let r = psycopg(&lk, &pg, "held_in_transaction", &[("LK_TOKEN", &token)]);
    assert_eq!(r["busy_survived"], 3, "{r}");
    assert!(
        r["held"]
            .as_str()
            .unwrap()
            .contains("idle-in-transaction timeout"),
        "{r}"
    );
    assert_eq!(r["after_held"], 8, "{r}");
    assert_eq!(r["open_transactions"], 0, "{r}");
    assert_eq!(r["pipeline_survived"], 6, "{r}");
    assert!(
        r["copy_held"]
            .as_str()
            .unwrap()
            .contains("idle-in-transaction timeout"),
        "{r}"
    );
    assert_eq!(
        metric(
            metrics_port,
            "latchkey_pool_idle_transaction_timeouts_total"
        ),
        2.0
    );
    let r = psycopg(&lk, &pg, "queue_cancel_dying", &[("LK_TOKEN", &token)]);
    let queue = r["queue"].as_str().unwrap();
    assert!(queue.contains("no server connection became free"), "{r}");
    let waited = r["queue_waited"].as_f64().unwrap();
    assert!((1.5..5.0).contains(&waited), "{r}");
    assert_eq!(r["cancel"], "57014", "{r}");
    assert!(r["cancel_after"].as_f64().unwrap() < 5.0, "{r}");
    assert_eq!(r["after_cancel"], 42, "{r}");
    assert_eq!(r["cancel_safe_query"], "57014", "{r}");
    assert_eq!(r["cancel_safe"], "ok", "{r}");
    assert!(r["dead"].as_str().unwrap() != "survived", "{r}");
    assert_eq!(r["after_death"], 7, "{r}");
    assert_eq!(
        metric(metrics_port, "latchkey_pool_queue_timeouts_total"),
        1.0
    );

    // Queries longer than the relay's window, by the extended protocol
    // (a parameter) and the simple one (a literal): each is answered. A
    // transaction started on a message's first part used to give the
    // connection back and take it again without ever waiting, spinning a
    // session thread.
    let r = psycopg(&lk, &pg, "long_queries", &[("LK_TOKEN", &token)]);
    assert_eq!(r["lengths"], r["sizes"], "{r}");
    let r = psycopg(&lk, &pg, "split_message", &[("LK_TOKEN", &token)]);
    assert_eq!(
        r["answers"],
        serde_json::json!(["first", "second", "first", "second", "first", "second"]),
        "{r}"
    );

    // A refused login is audited with the reason; the client only learns
    // the pool was busy.
    let events = audit_events(&lk, |e| {
        e.iter().any(|e| {
            e["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains("transaction pool"))
        })
    });
    assert!(
        events.iter().any(|e| e["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("transaction pool: no server connection"))),
        "no audited queue timeout"
    );
}

#[test]
fn a_client_that_never_reads_is_not_read_past_the_answers_it_awaits() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    // Statement audit off: the trail's queue of records for what was
    // answered meanwhile would be measured with the relay.
    let (lk, _) = start_with(
        root.path(),
        &pg,
        &["--pool-size", "2"],
        &["--no-statement-audit"],
    );
    let token = aws_token(&lk, &[], "localhost", "app");
    let pid = lk.child.id().to_string();
    let r = psycopg(
        &lk,
        &pg,
        "never_reads",
        &[("LK_TOKEN", &token), ("LK_PID", &pid)],
    );
    assert!(r.get("error").is_none(), "{r}");
    // The gateway stopped reading: the client could not write them all.
    let queries = r["queries"].as_u64().unwrap();
    assert!(queries < 1_000_000, "{r}");
    assert_eq!(r["answered"], queries, "{r}");
    // Each query read and not yet answered is a record in the gateway:
    // unbounded, it read on until the socket buffers were full (about
    // 640,000 queries, 26 MB more).
    assert!(r["rss_growth_kb"].as_i64().unwrap() < 4_000, "{r}");
    // A batch not synced until its end, and one failing at its start.
    assert_eq!(r["batch"]["1"], 1, "{r}");
    assert_eq!(r["batch"]["2"], 20_000, "{r}");
    assert_eq!(r["batch"]["C"], 20_000, "{r}");
    assert_eq!(r["failed_batch"]["E"], 1, "{r}");
    assert_eq!(r["failed_batch"]["Z"], 1, "{r}");
    assert!(r["failed_batch"].get("2").is_none(), "{r}");
}

#[test]
fn large_messages_wait_for_room_in_the_gateways_budget() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    // Room for four 2 MiB messages (25 times its size is 52 MB), a
    // principal's share for one.
    let (lk, metrics) = start_with(
        root.path(),
        &pg,
        &["--pool-size", "4"],
        &["--gateway-large-message-memory", "240000000"],
    );
    let token = aws_token(&lk, &[], "localhost", "app");
    let bob = user_with_policy(
        &lk,
        "bob",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
    );
    let bob_token = token_with(&lk, &bob);
    let metrics = metrics.to_string();
    let r = psycopg(
        &lk,
        &pg,
        "large_messages",
        &[
            ("LK_TOKEN", &token),
            ("LK_BOB", &bob_token),
            ("LK_METRICS", &metrics),
        ],
    );
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["leased_for_a"].as_f64(), r["cost"].as_f64(), "{r}");
    assert_eq!(r["b_answered_while_a_holds"], false, "{r}");
    assert_eq!(r["small"], 7, "{r}");
    // Another principal's large message is not held up by the first
    // one's, which waits for A's.
    assert_eq!(r["bob"], 2 << 20, "{r}");
    assert_eq!(r["b_answered_before_a"], false, "{r}");
    assert_eq!(r["a_rows"], 1, "{r}");
    assert_eq!(r["b"], 2 << 20, "{r}");
    assert_eq!(r["waiting_after"], 0.0, "{r}");
    // 10 s and a second per MiB (2), then FATAL 08P01.
    let stalled = r["stalled_for"].as_f64().unwrap();
    assert!((11.0..20.0).contains(&stalled), "{r}");
    assert_eq!(r["second_leased"].as_f64(), r["cost"].as_f64(), "{r}");
    let second = r["second_stalled_for"].as_f64().unwrap();
    assert!((10.0..20.0).contains(&second), "{r}");
    assert_eq!(r["stalled_leased_after"], 0.0, "{r}");
    // Statements over 32 KiB are carried too (they went to the server
    // under the client's own name, and their Bind found none).
    let r = psycopg(&lk, &pg, "large_prepared", &[("LK_TOKEN", &token)]);
    assert!(r.get("error").is_none(), "{r}");
    let n = 40 << 10;
    assert_eq!(
        r["answers"],
        serde_json::json!([n, n + 1, n, n + 1, n, n + 1])
    );
}

#[test]
fn statements_are_audited_under_each_client_and_revocation_ends_an_idle_client() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let (lk, _) = start(root.path(), &pg, &["--pool-size", "1"]);
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#;
    let alice = user_with_policy(&lk, "alice", policy);
    let bob = user_with_policy(&lk, "bob", policy);
    let alice_token = token_with(&lk, &alice);
    let bob_token = token_with(&lk, &bob);
    let r = psycopg(
        &lk,
        &pg,
        "two_principals",
        &[("LK_ALICE", &alice_token), ("LK_BOB", &bob_token)],
    );
    assert_eq!(
        r["same_backend"], false,
        "principals have transaction pools of their own"
    );
    assert_eq!(r["bob_after"], serde_json::json!([2, 3, 4]), "{r}");
    assert_eq!(r["loot"], 0, "{r}");
    assert!(r["wipe_errors"].as_u64().unwrap() <= 1, "{r}");
    assert_eq!(r["planted_none"], "26000", "{r}");
    assert_eq!(
        r["wipe_values"].as_array().unwrap().last(),
        Some(&serde_json::json!(4)),
        "{r}"
    );
    let events = audit_events(&lk, |e| {
        e.iter()
            .filter(|e| e["eventName"] == "Statement")
            .filter(|e| {
                e["database"]["statement"]
                    .as_str()
                    .is_some_and(|s| s.contains("_mark"))
            })
            .count()
            >= 20
    });
    let marked: Vec<_> = events
        .iter()
        .filter(|e| e["eventName"] == "Statement")
        .filter_map(|e| {
            let statement = e["database"]["statement"].as_str()?;
            let who = if statement.contains("alice_mark") {
                "alice"
            } else if statement.contains("bob_mark") {
                "bob"
            } else {
                return None;
            };
            Some((who, e["userIdentity"]["arn"].as_str().unwrap().to_owned()))
        })
        .collect();
    assert_eq!(marked.len(), 20);
    for (who, arn) in &marked {
        assert!(
            arn.ends_with(&format!(":user/{who}")),
            "{who}'s statement recorded as {arn}"
        );
    }

    // A client idle between transactions (holding no server connection)
    // is ended when its key is deactivated.
    let mut client = Command::new("psql")
        .arg(conninfo(&lk, "app", "verify-full"))
        .args(["-X", "-A", "-t"])
        .env("PGPASSWORD", &alice_token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    writeln!(stdin, "SELECT 'before';").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let key_id = alice
        .iter()
        .find(|(k, _)| k == "AWS_ACCESS_KEY_ID")
        .unwrap()
        .1
        .clone();
    admin_cli(
        &lk,
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "alice",
            "--access-key-id",
            &key_id,
            "--status",
            "Inactive",
        ],
    );
    std::thread::sleep(Duration::from_secs(7));
    let _ = writeln!(stdin, "SELECT 'after';");
    drop(stdin);
    let out = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("before"), "{stdout} {stderr}");
    assert!(!stdout.contains("after"), "ran after revocation: {stdout}");
    assert!(
        stderr.contains("was revoked") || stderr.contains("terminating connection"),
        "{stderr}"
    );
}
