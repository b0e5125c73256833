//! Against a real server: starts a throwaway MariaDB (its own data
//! directory and Unix socket, no TCP) and talks to it with this crate
//! alone: the handshake, native and ed25519 logins, and the response
//! tracker on result sets, multi-results, errors, LOCAL INFILE, prepared
//! statements, cursors, a 16 MiB row. Needs the MariaDB server package
//! (`scripts/test` installs it).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use latchkey_mywire::*;

const MARIADBD: &str = "/usr/sbin/mariadbd";
const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        assert!(
            Path::new(MARIADBD).exists() && Path::new(INSTALL_DB).exists(),
            "no MariaDB server binaries (apt-get install mariadb-server)"
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("mywire-mariadb-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        let status = Process::new(INSTALL_DB)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--user=root")
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "mariadb-install-db failed");
        let child = Process::new(MARIADBD)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-error={}", dir.join("err.log").display()))
            .arg("--skip-networking")
            .arg("--user=root")
            .arg("--plugin-load-add=auth_ed25519")
            .arg("--max-allowed-packet=64M")
            .arg("--innodb-buffer-pool-size=32M")
            .arg("--local-infile=1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(server.sock()).is_err() {
            assert!(Instant::now() < deadline, "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("sock")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Conn {
    s: UnixStream,
    buf: Vec<u8>,
    seq: u8,
    caps: u64,
    infile_requests: usize,
    /// The row payloads of the last command's response.
    rows: Vec<Vec<u8>>,
}

impl Conn {
    fn read_payload(&mut self) -> Vec<u8> {
        loop {
            if let Some(r) = next_payload(&self.buf, 1 << 27) {
                let p = r.unwrap();
                let (data, consumed) = (p.data.into_owned(), p.consumed);
                self.seq = p.last_seq.wrapping_add(1);
                self.buf.drain(..consumed);
                return data;
            }
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn send(&mut self, payload: &[u8]) {
        let mut out = Vec::new();
        self.seq = split_payload(&mut out, self.seq, payload);
        self.s.write_all(&out).unwrap();
    }

    /// Sends a command and reads its response until the tracker says it
    /// is complete; refuses LOCAL INFILE uploads with an empty packet.
    fn command(&mut self, payload: &[u8]) -> (Progress, ResponseTracker) {
        self.seq = 0;
        self.send(payload);
        let mut t = ResponseTracker::for_command(payload[0], self.caps);
        self.rows.clear();
        if t.is_complete() {
            return (
                Progress::Complete {
                    ok: None,
                    err: None,
                    prepared: None,
                },
                t,
            );
        }
        loop {
            let p = self.read_payload();
            let rows_before = t.rows();
            let step = t.feed(&p);
            if t.rows() > rows_before {
                self.rows.push(p.clone());
            }
            match step.unwrap_or_else(|e| panic!("{e} on {:02x?}", &p[..p.len().min(64)])) {
                Progress::Pending => {}
                Progress::LocalInfile { .. } => {
                    self.infile_requests += 1;
                    self.send(b"");
                }
                done @ Progress::Complete { .. } => {
                    // Nothing of this response may be left over.
                    std::thread::sleep(Duration::from_millis(20));
                    self.s.set_nonblocking(true).unwrap();
                    let mut probe = [0u8; 1];
                    let extra = matches!(self.s.read(&mut probe), Ok(n) if n > 0);
                    self.s.set_nonblocking(false).unwrap();
                    assert!(!extra && self.buf.is_empty(), "bytes after the response");
                    return (done, t);
                }
            }
        }
    }

    fn query(&mut self, sql: &str) -> (Progress, ResponseTracker) {
        let mut p = vec![COM_QUERY];
        p.extend_from_slice(sql.as_bytes());
        self.command(&p)
    }

    fn exec(&mut self, sql: &str) {
        let (end, _) = self.query(sql);
        assert!(
            matches!(end, Progress::Complete { err: None, .. }),
            "{sql}: {end:?}"
        );
    }
}

fn login(sock: &Path, user: &str, password: &[u8], deprecate_eof: bool) -> Result<Conn, ErrInfo> {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut c = Conn {
        s,
        buf: Vec::new(),
        seq: 0,
        caps: 0,
        infile_requests: 0,
        rows: Vec::new(),
    };
    let hs = parse_handshake_v10(&c.read_payload()).unwrap();
    assert!(hs.is_mariadb(), "{}", hs.server_version);
    assert_eq!(hs.scramble.len(), 20);
    assert_eq!(
        hs.capabilities & CLIENT_MYSQL,
        0,
        "MariaDB clears CLIENT_MYSQL"
    );
    assert_ne!(hs.capabilities >> 32, 0, "and sends extended capabilities");
    let want = CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CLIENT_MULTI_STATEMENTS
        | CLIENT_MULTI_RESULTS
        | CLIENT_PS_MULTI_RESULTS
        | CLIENT_TRANSACTIONS
        | CLIENT_CONNECT_ATTRS
        | CLIENT_SESSION_TRACK
        | CLIENT_LOCAL_FILES
        | CLIENT_LONG_FLAG
        | MARIADB_CLIENT_EXTENDED_METADATA
        | if deprecate_eof {
            CLIENT_DEPRECATE_EOF
        } else {
            0
        };
    c.caps = hs.capabilities & want;
    assert_eq!(c.caps, want, "the server lacks a capability the test needs");
    // A Unix socket is a secure transport.
    let (mut auth, response) = UpstreamAuth::start(&hs, password, true, c.caps).unwrap();
    let h = HandshakeResponse {
        capabilities: c.caps,
        max_packet_size: 1 << 26,
        charset: UTF8MB4_GENERAL_CI,
        username: user,
        auth_response: &response,
        database: None,
        auth_plugin: Some(auth.plugin()),
        attrs: vec![("_client_name".into(), "latchkey-mywire-test".into())],
        zstd_level: None,
    };
    let mut out = Vec::new();
    handshake_response(&mut out, &h).unwrap();
    c.seq = 1;
    c.send(&out);
    loop {
        let p = c.read_payload();
        match auth.on_server_packet(&p).unwrap() {
            AuthStep::Send(d) => c.send(&d),
            AuthStep::Wait => {}
            AuthStep::Done(_) => return Ok(c),
            AuthStep::Failed(e) => return Err(e),
        }
    }
}

fn rows_and_sets(t: &ResponseTracker) -> (u64, u32) {
    (t.rows(), t.result_sets())
}

fn prepare(c: &mut Conn, sql: &str) -> PrepareOk {
    let mut p = vec![COM_STMT_PREPARE];
    p.extend_from_slice(sql.as_bytes());
    match c.command(&p).0 {
        Progress::Complete {
            prepared: Some(p), ..
        } => p,
        other => panic!("{other:?}"),
    }
}

fn execute(c: &mut Conn, id: u32, flags: u8, params: &[i64]) -> (Progress, ResponseTracker) {
    let mut p = vec![COM_STMT_EXECUTE];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(flags);
    p.extend_from_slice(&1u32.to_le_bytes());
    if !params.is_empty() {
        p.extend(std::iter::repeat_n(0, params.len().div_ceil(8)));
        p.push(1);
        for _ in params {
            p.extend_from_slice(&[MYSQL_TYPE_LONGLONG, 0]);
        }
        for v in params {
            p.extend_from_slice(&v.to_le_bytes());
        }
    }
    c.command(&p)
}

fn session(server: &Server, deprecate_eof: bool) {
    let mut c = login(&server.sock(), "root", b"", deprecate_eof).unwrap();
    let (_, t) = c.query("SELECT 1");
    assert_eq!(rows_and_sets(&t), (1, 1));
    let (_, t) = c.query("SELECT 1 FROM DUAL WHERE 0");
    assert_eq!(rows_and_sets(&t), (0, 1));
    let (end, t) = c.query("SELECT 1; SELECT 2, 3 UNION SELECT 4, 5; DO 1");
    assert_eq!(rows_and_sets(&t), (3, 2));
    assert!(matches!(end, Progress::Complete { ok: Some(_), .. }));
    let (end, t) = c.query("SELECT 1; SELECT * FROM nowhere.nothing; SELECT 3");
    assert_eq!(rows_and_sets(&t), (1, 1));
    let Progress::Complete { err: Some(e), .. } = end else {
        panic!("{end:?}")
    };
    assert_eq!((e.code, e.sqlstate.as_deref()), (1146, Some("42S02")));

    c.exec("CREATE DATABASE IF NOT EXISTS d");
    c.exec("CREATE OR REPLACE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20) DEFAULT 'x')");
    c.exec("INSERT INTO d.t (id) VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)");
    c.exec("CREATE OR REPLACE PROCEDURE d.p() BEGIN SELECT 1; SELECT id FROM d.t; END");
    let (end, t) = c.query("CALL d.p()");
    assert_eq!(rows_and_sets(&t), (11, 2));
    assert!(matches!(end, Progress::Complete { ok: Some(ref ok), .. } if !ok.more_results()));

    // LOAD DATA LOCAL: the server asks for the file; an empty upload.
    let (end, _) = c.query("LOAD DATA LOCAL INFILE '/nonexistent.csv' INTO TABLE d.t");
    assert_eq!(c.infile_requests, 1);
    assert!(
        matches!(end, Progress::Complete { ok: Some(_), .. }),
        "{end:?}"
    );
    let (_, _) = c.query("SELECT 1; LOAD DATA LOCAL INFILE 'x' INTO TABLE d.t; SELECT 2");
    assert_eq!(c.infile_requests, 2);

    // A row over 16 MiB starts with 0xFE and spans packets.
    let (_, t) = c.query("SELECT REPEAT('x', 17000000), 1");
    assert_eq!(rows_and_sets(&t), (1, 1));

    // Prepared statements, with and without a cursor.
    let p = prepare(&mut c, "SELECT ?, ? + 1");
    assert_eq!((p.num_params, p.num_columns), (2, 2));
    let (_, t) = execute(&mut c, p.statement_id, 0, &[7, 8]);
    assert_eq!(rows_and_sets(&t), (1, 1));
    let q = prepare(&mut c, "SELECT id, v FROM d.t ORDER BY id");
    assert_eq!((q.num_params, q.num_columns), (0, 2));
    let (end, t) = execute(&mut c, q.statement_id, 1, &[]);
    assert_eq!(t.rows(), 0);
    let Progress::Complete { ok: Some(ok), .. } = end else {
        panic!("{end:?}")
    };
    assert_ne!(ok.status & SERVER_STATUS_CURSOR_EXISTS, 0);
    let mut fetch = vec![COM_STMT_FETCH];
    fetch.extend_from_slice(&q.statement_id.to_le_bytes());
    fetch.extend_from_slice(&4u32.to_le_bytes());
    let (_, t) = c.command(&fetch);
    assert_eq!(t.rows(), 4);
    fetch[5..9].copy_from_slice(&100u32.to_le_bytes());
    let (end, t) = c.command(&fetch);
    assert_eq!(t.rows(), 6);
    let Progress::Complete { ok: Some(ok), .. } = end else {
        panic!("{end:?}")
    };
    assert_ne!(ok.status & SERVER_STATUS_LAST_ROW_SENT, 0);
    let i = prepare(&mut c, "INSERT INTO d.t (id) VALUES (?)");
    let (end, _) = execute(&mut c, i.statement_id, 0, &[11]);
    assert!(matches!(
        end,
        Progress::Complete {
            ok: Some(OkInfo {
                affected_rows: 1,
                ..
            }),
            ..
        }
    ));
    let (end, _) = execute(&mut c, i.statement_id, 0, &[11]);
    assert!(matches!(
        end,
        Progress::Complete {
            err: Some(ErrInfo { code: 1062, .. }),
            ..
        }
    ));
    let mut close = vec![COM_STMT_CLOSE];
    close.extend_from_slice(&i.statement_id.to_le_bytes());
    c.command(&close);

    // Other commands.
    let mut init = vec![COM_INIT_DB];
    init.extend_from_slice(b"d");
    assert!(matches!(
        c.command(&init).0,
        Progress::Complete { ok: Some(_), .. }
    ));
    let (end, _) = c.command(b"\x04t\0");
    assert!(
        matches!(end, Progress::Complete { ok: Some(_), .. }),
        "{end:?}"
    );
    assert!(matches!(
        c.command(&[COM_STATISTICS]).0,
        Progress::Complete {
            ok: None,
            err: None,
            ..
        }
    ));
    assert!(matches!(
        c.command(&[COM_PING]).0,
        Progress::Complete { ok: Some(_), .. }
    ));
    assert!(matches!(
        c.command(&[COM_RESET_CONNECTION]).0,
        Progress::Complete { ok: Some(_), .. }
    ));
    c.command(&[COM_QUIT]);
}

#[test]
fn against_mariadb() {
    let server = Server::start();
    for deprecate_eof in [false, true] {
        session(&server, deprecate_eof);
    }

    let mut root = login(&server.sock(), "root", b"", true).unwrap();
    let token: String = "rds-token-".repeat(180);
    root.exec("CREATE USER nat@localhost IDENTIFIED BY 'natpw'");
    root.exec("CREATE USER ed@localhost IDENTIFIED VIA ed25519 USING PASSWORD('edpw')");
    root.exec(&format!(
        "CREATE USER edtok@localhost IDENTIFIED VIA ed25519 USING '{}'",
        ed25519_password_hash(token.as_bytes())
    ));
    root.exec(&format!(
        "CREATE USER longnat@localhost IDENTIFIED BY '{token}'"
    ));
    root.exec(
        "CREATE FUNCTION IF NOT EXISTS ed25519_password RETURNS STRING SONAME 'auth_ed25519.so'",
    );

    // MariaDB's own derivation of the public key agrees with ours.
    root.query("SELECT ed25519_password('secret')");
    let (value, _) = read_lenenc_bytes(&root.rows[0]).unwrap();
    assert_eq!(value, ed25519_password_hash(b"secret").as_bytes());
    assert_eq!(value, b"ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY");

    login(&server.sock(), "nat", b"natpw", true).unwrap();
    login(&server.sock(), "longnat", token.as_bytes(), false).unwrap();
    // The server switches from mysql_native_password to client_ed25519
    // and checks our signature of its 32-byte nonce.
    let c = login(&server.sock(), "ed", b"edpw", true).unwrap();
    drop(c);
    login(&server.sock(), "edtok", token.as_bytes(), true).unwrap();
    for (user, pw) in [("nat", &b"wrong"[..]), ("ed", b"wrong"), ("edtok", b"")] {
        let e = login(&server.sock(), user, pw, true).err().unwrap();
        assert_eq!(
            (e.code, e.sqlstate.as_deref()),
            (1045, Some("28000")),
            "{user}"
        );
    }
}
