//! Driving `latchkey serve`'s AWS API (IAM, STS) with the stock AWS CLI
//! and boto3 (installed by scripts/test). TOTP codes come from Python's
//! hmac, not from our own TOTP code.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{Started, free_port, wait_for_server};

/// `latchkey serve` on a data directory (created by the server if new),
/// the API on `port`, logging to `dir` with the extension `log`.
pub struct ApiServer {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    /// The PostgreSQL gateway's port.
    pub pg_port: u16,
}

impl ApiServer {
    /// The API on a free port.
    pub fn start(dir: &Path) -> Self {
        for _attempt in 0..3 {
            if let Some(server) = Self::try_start(dir, free_port()) {
                return server;
            }
        }
        panic!("latchkey serve lost its ports three times running");
    }

    /// The API on `port` (to restart a server where its clients expect it).
    pub fn start_on(dir: &Path, port: u16) -> Self {
        for _attempt in 0..3 {
            if let Some(server) = Self::try_start(dir, port) {
                return server;
            }
        }
        panic!("latchkey serve lost its ports three times running");
    }

    /// `None` when a port was taken before the server bound it.
    fn try_start(dir: &Path, port: u16) -> Option<Self> {
        let log_path = dir.with_extension("log");
        let log = std::fs::File::create(&log_path).unwrap();
        let (pg, mysql) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // Tests run in parallel: the gateway gets a free port too.
            .args(["--pg-listen", &format!("127.0.0.1:{pg}")])
            .args(["--mysql-listen", &format!("127.0.0.1:{mysql}")])
            .env_remove("LATCHKEY_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        match wait_for_server(&mut child, &[port, pg, mysql], &log_path) {
            Started::Listening => Some(Self {
                child: Some(child),
                dir: dir.to_owned(),
                port,
                pg_port: pg,
            }),
            started if started.lost_a_port() => None,
            Started::Exited(why) => panic!("latchkey serve exited: {why}"),
        }
    }

    /// Stops the server with SIGTERM (a clean shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The AWS environment for the CLI or boto3, with none of the
    /// machine's AWS_* variables: the admin's credentials files, or
    /// explicit credentials.
    pub fn env(&self, cmd: &mut Command, creds: Option<&Creds>) {
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        let d = &self.dir;
        cmd.env("AWS_CONFIG_FILE", d.join("aws.config"))
            .env("AWS_CA_BUNDLE", d.join("ca.pem"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", self.endpoint());
        match creds {
            None => {
                cmd.env("AWS_SHARED_CREDENTIALS_FILE", d.join("admin.credentials"));
            }
            Some(c) => {
                cmd.env("AWS_SHARED_CREDENTIALS_FILE", d.join("none"))
                    .envs(c.env_vars());
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Credentials to run the AWS CLI with: an access key, and a session
/// token for temporary credentials.
#[derive(Clone, Default)]
pub struct Creds {
    pub key: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Creds {
    /// The key in the output of `iam create-access-key`.
    pub fn access_key(v: &Value) -> Self {
        let k = &v["AccessKey"];
        Self {
            key: k["AccessKeyId"].as_str().unwrap().into(),
            secret: k["SecretAccessKey"].as_str().unwrap().into(),
            token: None,
        }
    }

    /// The `Credentials` of an STS answer (a session token required).
    pub fn from_sts(c: &Value) -> Self {
        Self {
            key: c["AccessKeyId"].as_str().unwrap().into(),
            secret: c["SecretAccessKey"].as_str().unwrap().into(),
            token: Some(c["SessionToken"].as_str().unwrap().into()),
        }
    }

    /// As environment variables (`AWS_ACCESS_KEY_ID`, ...).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), self.key.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), self.secret.clone()),
        ];
        if let Some(t) = &self.token {
            vars.push(("AWS_SESSION_TOKEN".to_owned(), t.clone()));
        }
        vars
    }
}

/// The stock AWS CLI against `server` (JSON output): as the administrator
/// (from the generated files), or with `creds`.
pub fn aws(server: &ApiServer, creds: Option<&Creds>, args: &[&str]) -> Output {
    let mut cmd = Command::new("aws");
    server.env(&mut cmd, creds);
    cmd.args(["--endpoint-url", &server.endpoint(), "--output", "json"])
        .args(args)
        .output()
        .expect("the AWS CLI must be installed (scripts/test installs it)")
}

/// The JSON output of a call that must succeed (`Null` when it prints
/// nothing).
pub fn ok(out: Output) -> Value {
    assert!(
        out.status.success(),
        "aws failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The error code of a failed call: `An error occurred (CODE) when ...`.
pub fn error_code(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    err.split('(')
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or(&err)
        .to_owned()
}

/// A user with one inline policy (`p`) and an access key, made by the
/// administrator of `server`.
pub fn user(server: &ApiServer, name: &str, policy: &str) -> Creds {
    ok(aws(
        server,
        None,
        &["iam", "create-user", "--user-name", name],
    ));
    ok(aws(
        server,
        None,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            name,
            "--policy-name",
            "p",
            "--policy-document",
            policy,
        ],
    ));
    Creds::access_key(&ok(aws(
        server,
        None,
        &["iam", "create-access-key", "--user-name", name],
    )))
}

/// One `latchkey serve` shared by a test file's tests (each makes its own
/// users and resources), driven with the AWS CLI.
pub struct ApiEnv {
    pub server: ApiServer,
    pub root: tempfile::TempDir,
}

impl ApiEnv {
    /// The server in `slot`, started by the first test that needs it.
    pub fn shared(slot: &'static Mutex<Weak<ApiEnv>>) -> Arc<ApiEnv> {
        super::shared(slot, || {
            let root = tempfile::tempdir().unwrap();
            let server = ApiServer::start(&root.path().join("data"));
            ApiEnv { server, root }
        })
    }

    /// A call as the administrator that must succeed.
    pub fn admin(&self, args: &[&str]) -> Value {
        ok(aws(&self.server, None, args))
    }

    /// A call with `creds` that must succeed.
    pub fn as_user(&self, creds: &Creds, args: &[&str]) -> Value {
        ok(aws(&self.server, Some(creds), args))
    }

    /// The error code of a call that must fail (as the administrator when
    /// `creds` is `None`).
    pub fn fails(&self, creds: Option<&Creds>, args: &[&str]) -> String {
        error_code(&aws(&self.server, creds, args))
    }

    pub fn account(&self) -> String {
        self.admin(&["sts", "get-caller-identity"])["Account"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A user with one inline policy and an access key.
    pub fn user(&self, name: &str, policy: &str) -> Creds {
        user(&self.server, name, policy)
    }
}

/// A TOTP code from Python's hmac for `offset` seconds from now.
pub fn totp(seed_file: &Path, offset: i64) -> String {
    let script = r#"
import base64, hashlib, hmac, struct, sys, time
s = open(sys.argv[1]).read().strip()
seed = base64.b32decode(s + "=" * (-len(s) % 8))
c = (int(time.time()) + int(sys.argv[2])) // 30
h = hmac.new(seed, struct.pack(">Q", c), hashlib.sha1).digest()
o = h[19] & 15
print("%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7fffffff) % 1000000))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(seed_file)
        .arg(offset.to_string())
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until at least 10 s remain in the current 30 s TOTP step, so a
/// code computed now is still current when the server checks it.
pub fn settle_totp_window() {
    let secs = unix_secs();
    if secs % 30 > 20 {
        std::thread::sleep(Duration::from_secs(31 - secs % 30));
    }
}

/// Sleeps into the first second of the next 30 s TOTP step.
pub fn next_totp_step() {
    let secs = unix_secs();
    std::thread::sleep(Duration::from_secs(31 - secs % 30));
}

/// Runs a Python snippet with botocore/boto3; returns stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    run_python(Command::new("python3"), script, args)
}

/// Runs a boto3 script as the administrator of `server` (`iam` is a ready
/// client); the JSON it prints.
pub fn boto3(server: &ApiServer, script: &str) -> Value {
    let mut cmd = Command::new("python3");
    server.env(&mut cmd, None);
    let out = run_python(
        cmd,
        &format!(
            "import boto3, json, os\niam = boto3.client('iam', endpoint_url=os.environ['AWS_ENDPOINT_URL'], region_name='us-east-1')\n{script}"
        ),
        &[],
    );
    serde_json::from_str(&out).unwrap()
}

/// `python3 -c script args...` that must succeed; its trimmed stdout.
fn run_python(mut cmd: Command, script: &str, args: &[&str]) -> String {
    let out = cmd.arg("-c").arg(script).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A virtual MFA device for `user`, its Base32 seed written to `seed`,
/// enabled with two codes of Python's: its serial number. Leaves at least
/// 10 s of the current TOTP step for the caller's next code (`totp(seed, 30)`).
pub fn enable_virtual_mfa(server: &ApiServer, user: &str, seed: &Path) -> String {
    enable_virtual_mfa_with(|args| ok(aws(server, None, args)), user, seed)
}

/// As [`enable_virtual_mfa`], with the administrator's AWS CLI call given
/// (each test file has its own server).
pub fn enable_virtual_mfa_with(
    admin: impl Fn(&[&str]) -> Value,
    user: &str,
    seed: &Path,
) -> String {
    let device = admin(&[
        "iam",
        "create-virtual-mfa-device",
        "--virtual-mfa-device-name",
        user,
        "--outfile",
        seed.to_str().unwrap(),
        "--bootstrap-method",
        "Base32StringSeed",
    ]);
    let serial = device["VirtualMFADevice"]["SerialNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    settle_totp_window();
    admin(&[
        "iam",
        "enable-mfa-device",
        "--user-name",
        user,
        "--serial-number",
        &serial,
        "--authentication-code1",
        &totp(seed, -30),
        "--authentication-code2",
        &totp(seed, 0),
    ]);
    serial
}
