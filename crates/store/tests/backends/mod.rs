//! The backend a store test runs against: SQLite by default, PostgreSQL
//! with `LATCHKEY_TEST_STORE=postgres` (the same tests, a test matrix).
//! The PostgreSQL server is a throwaway one this process starts (initdb,
//! a random port, a temporary directory, password authentication), shared
//! by the tests of the process, each test dir getting its own database;
//! a watchdog stops it when the process is gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use latchkey_store::postgres::PgLocation;
use latchkey_store::{Store, StoreError, Vault};

const PASSWORD: &str = "store-test-secret";

pub fn is_postgres() -> bool {
    std::env::var("LATCHKEY_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The store of test directory `dir`, opened with `vault`.
pub fn open(dir: &Path, vault: Vault) -> Result<Store, StoreError> {
    if is_postgres() {
        let db = server().database(dir);
        let location: PgLocation = server().url(&db).parse().unwrap();
        Store::open_postgres(&location, vault)
    } else {
        Store::open(&dir.join("store.db"), vault)
    }
}

/// Everything stored for `dir`, as bytes: to look for secrets in clear.
pub fn raw(dir: &Path) -> Vec<u8> {
    if is_postgres() {
        let db = server().database(dir);
        let out = server()
            .tool("pg_dump")
            .args(["--data-only", "-d", &db])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // bytea is dumped as hex: add its bytes, so binary secrets are
        // looked for too.
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut bytes = out.stdout.clone();
        for part in text.split("\\x").skip(1) {
            let hex: String = part.chars().take_while(char::is_ascii_hexdigit).collect();
            bytes.extend(
                (0..hex.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()),
            );
            bytes.push(0);
        }
        bytes
    } else {
        let mut bytes = std::fs::read(dir.join("store.db")).unwrap();
        bytes.extend(std::fs::read(dir.join("store.db-wal")).unwrap_or_default());
        bytes
    }
}

/// Runs `sql` on `dir`'s store, outside the backend.
pub fn sql(dir: &Path, sql: &str) {
    if is_postgres() {
        let db = server().database(dir);
        server().psql(&db, sql);
    } else {
        let conn = rusqlite::Connection::open(dir.join("store.db")).unwrap();
        conn.execute_batch(sql).unwrap();
    }
}

/// `n` stores on one PostgreSQL database, as `n` nodes have; none on
/// SQLite (for tests of races between nodes).
pub fn nodes(dir: &Path, n: usize) -> Vec<Store> {
    if !is_postgres() {
        return Vec::new();
    }
    (0..n)
        .map(|_| open(dir, Vault::new(1, &[7; 32])).unwrap())
        .collect()
}

/// As [`nodes`], but one store on SQLite (tests that hold on both).
pub fn nodes_or_one(dir: &Path, n: usize) -> Vec<Store> {
    let n = if is_postgres() { n } else { 1 };
    (0..n)
        .map(|_| open(dir, Vault::new(1, &[7; 32])).unwrap())
        .collect()
}

/// Runs `f(i, node)` on every node at once (they start together); their
/// answers, in node order.
pub fn at_once<T: Send>(nodes: &[Store], f: impl Fn(usize, &Store) -> T + Sync) -> Vec<T> {
    let barrier = std::sync::Barrier::new(nodes.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i, node)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

struct Server {
    dir: PathBuf,
    port: u16,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn pg_bin(tool: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (scripts/test installs postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(tool)))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("{tool} not found"))
}

fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Server {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("latchkey-store-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), format!("{PASSWORD}\n")).unwrap();
        if is_root() {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(&dir)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let data = dir.join("data");
        let out = as_postgres(&pg_bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", dir.join("pw").display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let out = as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off",
                dir.display()
            ))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Stops the server once this test process is gone.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if is_root() {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = pg_bin("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        // Left running on purpose: it outlives this process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self { dir, port }
    }

    fn tool(&self, name: &str) -> Command {
        let mut c = as_postgres(Path::new(&format!("/usr/bin/{name}")));
        c.arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres"]);
        c
    }

    fn psql(&self, db: &str, sql: &str) {
        let out = self
            .tool("psql")
            .args(["-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The database of test directory `dir`, created on first use.
    fn database(&self, dir: &Path) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        dir.hash(&mut h);
        let name = format!("t{:016x}", h.finish());
        let out = self
            .tool("psql")
            .args(["-d", "postgres", "-tAc"])
            .arg(format!(
                "SELECT 1 FROM pg_database WHERE datname = '{name}'"
            ))
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&out.stdout).contains('1') {
            let _ = self
                .tool("psql")
                .args(["-d", "postgres", "-c"])
                .arg(format!("CREATE DATABASE {name}"))
                .output();
        }
        name
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable&pool_size=4",
            self.port
        )
    }
}
