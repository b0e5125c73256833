#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The audit trail end to end: STS and IAM calls and database sessions
//! from the AWS CLI and psql land in the hash-chained trail; `latchkey
//! audit lookup` finds them; `latchkey audit verify` proves the trail
//! intact across a `kill -9` and names a tampered record, and `serve`
//! checks its own on a timer; a full audit disk refuses new connections
//! and API calls until it has room again.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn audit(data: &Path, args: &[&str]) -> Output {
    latchkey(&["audit"])
        .args(args)
        .args(["--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap()
}

fn lookup(data: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    audit_lookup(data, args)
}

/// Waits until `lookup` with `args` finds at least `n` events.
fn lookup_at_least(data: &Path, args: &[&str], n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = lookup(data, args);
        if found.len() >= n || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(lk: &mut Latchkey) {
    let pid = lk.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while lk.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "latchkey did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_trail_records_verifies_and_finds_everything() {
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let (data, api) = init_latchkey(root.path(), &[]);
    register_db(
        &data,
        &[
            "--name",
            "orders",
            "--endpoint",
            "localhost",
            "--upstream",
            &format!("127.0.0.1:{}", pg.port),
        ],
    );
    set_db_password(&data, "orders", "app", "app-secret");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut lk = serve_latchkey(
        root.path(),
        &data,
        &api,
        &[
            "--audit-digest-interval",
            "1s",
            "--metrics-listen",
            &metrics_addr,
            "--api-metrics",
        ],
    );

    // IAM calls from the AWS CLI, one of which returns a secret key.
    let creds = user_with_policy(
        &lk,
        "reporter",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}"#,
    );
    let secret = creds[1].1.clone();
    let token = token_with(&lk, &creds);
    stdout_ok(&psql(
        &lk,
        "app",
        &token,
        "verify-full",
        "SELECT 'sekrit-literal', 1",
    ));
    // A refused login with a key that does not exist.
    let bogus = token_with(
        &lk,
        &[
            ("AWS_ACCESS_KEY_ID".into(), "AKIAIOSFODNN7EXAMPLE".into()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            ),
        ],
    );
    assert_denied(&psql(&lk, "app", &bogus, "verify-full", "select 1"), "app");

    // Prometheus metrics, over HTTPS on the API port (--api-metrics) and
    // in plain HTTP.
    let metrics = Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(data.join("ca.pem"))
        .arg(format!("https://{api}/metrics"))
        .output()
        .unwrap();
    let text = stdout_ok(&metrics);
    for want in [
        "latchkey_auth_attempts_total{engine=\"postgres\",result=\"failure\",reason=\"unknown_key\"} 1\n",
        "latchkey_auth_attempts_total{engine=\"postgres\",result=\"success\",reason=\"none\"} 1\n",
        "latchkey_api_requests_total{service=\"iam\",action=\"CreateAccessKey\",result=\"Success\"} 1\n",
        "latchkey_active_sessions{engine=\"postgres\"} 0\n",
        "latchkey_token_verify_seconds_count 1\n",
        "latchkey_upstream_connect_seconds_count 1\n",
        "# TYPE latchkey_audit_write_seconds histogram\n",
        "latchkey_audit_queue_depth ",
    ] {
        assert!(text.contains(want), "{want} missing from\n{text}");
    }
    assert!(
        text.contains("latchkey_bytes_relayed_total{engine=\"postgres\",direction=\"to_client\"}")
    );
    let plain = stdout_ok(
        &Command::new("curl")
            .args(["-sf", &format!("http://{metrics_addr}/metrics")])
            .output()
            .unwrap(),
    );
    assert!(plain.contains("latchkey_auth_attempts_total"), "{plain}");

    let reporter_arn = lookup_at_least(&data, &["--event-name", "CreateUser"], 1)[0]
        ["requestParameters"]["userName"]
        .as_str()
        .map(|n| n.to_owned())
        .unwrap();
    assert_eq!(reporter_arn, "reporter");
    let create_key = lookup_at_least(&data, &["--event-name", "CreateAccessKey"], 1);
    let record = &create_key[0];
    assert_eq!(record["eventSource"], "iam.amazonaws.com");
    assert_eq!(record["userIdentity"]["type"], "IAMUser");
    assert!(
        record["userIdentity"]["arn"]
            .as_str()
            .unwrap()
            .ends_with(":user/admin")
    );
    assert!(record["userAgent"].as_str().unwrap().contains("aws-cli"));
    assert_eq!(
        record["responseElements"]["accessKey"]["accessKeyId"],
        creds[0].1
    );
    assert_eq!(
        record["responseElements"]["accessKey"]["userName"],
        "reporter"
    );

    // Database events, by principal, database and source address.
    let reporter = format!(
        "arn:aws:iam::{}:user/reporter",
        record["recipientAccountId"].as_str().unwrap()
    );
    let statements = lookup_at_least(
        &data,
        &["--principal", &reporter, "--event-name", "Statement"],
        1,
    );
    assert_eq!(statements[0]["database"]["statement"], "SELECT ?, ?");
    assert_eq!(
        lookup(&data, &["--db", "orders", "--event-name", "SessionStart"]).len(),
        1
    );
    let denied = lookup_at_least(&data, &["--errors-only", "--event-name", "Connect"], 1);
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["database"]["failure"], "unknown_key");
    assert_eq!(
        denied[0]["userIdentity"]["accessKeyId"],
        "AKIAIOSFODNN7EXAMPLE"
    );
    assert!(lookup(&data, &["--source-ip", "127.0.0.1"]).len() >= 5);
    assert!(lookup(&data, &["--source-ip", "192.0.2.1"]).is_empty());
    assert!(lookup(&data, &["--since", "1h"]).len() >= 5);
    assert!(lookup(&data, &["--until", "1h"]).is_empty());
    // The text form, for people.
    let text = stdout_ok(&audit(&data, &["lookup", "--event-name", "Statement"]));
    assert!(
        text.contains("SELECT ?, ?") && text.contains(":user/reporter"),
        "{text}"
    );

    // Nothing secret reached the trail.
    let trail = audit_text(&lk);
    assert!(
        !trail.contains(&secret),
        "a secret access key reached the trail"
    );
    assert!(!trail.contains("sekrit-literal"));
    assert!(!trail.contains(&token[token.find("X-Amz-Signature=").unwrap()..]));

    // kill -9: everything synced survives, and the trail goes on.
    std::thread::sleep(Duration::from_millis(500));
    let before = audit_text(&lk).lines().count();
    lk.child.kill().unwrap();
    lk.child.wait().unwrap();
    assert_eq!(audit_text(&lk).lines().count(), before);
    let mut lk = serve_latchkey(root.path(), &data, &api, &["--audit-digest-interval", "1s"]);
    // (A new gateway port, so a new token.)
    let token = token_with(&lk, &creds);
    stdout_ok(&psql(&lk, "app", &token, "verify-full", "SELECT 2"));
    stop(&mut lk);
    let verified = audit(&data, &["verify"]);
    let text = stdout_ok(&verified);
    assert!(text.contains("The trail is intact."), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout_ok(&audit(&data, &["verify", "--output", "json"]))).unwrap();
    assert_eq!(json["problems"].as_array().unwrap().len(), 0);
    assert_eq!(
        json["recordsUnsigned"], 0,
        "a clean stop signs a final digest"
    );
    assert!(json["recordsVerified"].as_u64().unwrap() > before as u64);

    // An exported public key verifies the same trail elsewhere.
    let pem = stdout_ok(&audit(&data, &["public-key"]));
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let key_file = root.path().join("audit.pub");
    std::fs::write(&key_file, &pem).unwrap();
    assert!(
        audit(
            &data,
            &["verify", "--public-key", key_file.to_str().unwrap()]
        )
        .status
        .success()
    );

    // Tampering: someone rewrites the statement of one record.
    let segments = data.join("audit").join("segments");
    let mut names: Vec<_> = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let target = names
        .iter()
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("\"SELECT ?, ?\"")
        })
        .unwrap();
    let original = std::fs::read_to_string(target).unwrap();
    let line = original
        .lines()
        .position(|l| l.contains("\"SELECT ?, ?\""))
        .unwrap()
        + 1;
    std::fs::write(target, original.replace("\"SELECT ?, ?\"", "\"SELECT 1\"")).unwrap();
    let tampered = audit(&data, &["verify"]);
    assert_eq!(tampered.status.code(), Some(1));
    let text = String::from_utf8_lossy(&tampered.stdout);
    let name = target.file_name().unwrap().to_str().unwrap();
    assert!(
        text.contains(&format!("({name} line {line}) was modified")),
        "{text}"
    );
    assert!(text.contains("The trail was tampered with."));
}

/// The audit disk fills: new logins and API calls are refused until it has
/// room, a session's statements wait once the records waiting to be
/// written reach the bound, and no record is lost.
#[test]
fn a_full_audit_disk_fails_closed() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let pg = Postgres::start(root.path());
    let disk = root.path().join("audit-disk");
    std::fs::create_dir(&disk).unwrap();
    assert!(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(&disk)
            .status()
            .unwrap()
            .success()
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&disk);
    let audit_dir = disk.join("trail");
    let lk = start_latchkey_with(
        root.path(),
        &pg,
        &[
            "--audit-dir",
            audit_dir.to_str().unwrap(),
            "--audit-max-queue",
            "50",
        ],
    );
    let token = aws_token(&lk, &[], "localhost", "app");
    stdout_ok(&psql(&lk, "app", &token, "verify-full", "SELECT 1"));
    // A session open before the disk fills, which runs 200 statements
    // when told to, counting them in a file as they are answered.
    let go = root.path().join("go");
    let done = root.path().join("done");
    let mut session = Command::new("python3")
        .args([
            "-c",
            "import os, sys, time, psycopg\n\
             c = psycopg.connect(os.environ['LK_CONNINFO'], password=os.environ['LK_TOKEN'], autocommit=True)\n\
             open(os.environ['LK_DONE'], 'w').write('0')\n\
             while not os.path.exists(os.environ['LK_GO']): time.sleep(0.05)\n\
             for i in range(200):\n\
             \x20   c.execute('SELECT %s', (i,))\n\
             \x20   open(os.environ['LK_DONE'], 'w').write(str(i + 1))\n",
        ])
        .env("LK_CONNINFO", conninfo(&lk, "app", "verify-full"))
        .env("LK_TOKEN", &token)
        .env("LK_GO", &go)
        .env("LK_DONE", &done)
        .spawn()
        .unwrap();
    let answered = || {
        std::fs::read_to_string(&done)
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while answered().is_none() {
        assert!(Instant::now() < deadline, "the session did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    let answered = || answered().unwrap_or(0);

    let filler = disk.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 16 << 20]);
    // The next records cannot be written: logins are refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let out = psql(&lk, "app", &token, "verify-full", "SELECT 1");
        if !out.status.success() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "logins still succeed on a full audit disk"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not accepting connections"), "{stderr}");
    // So are API calls.
    let out = aws_cli()
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            lk.data.join("admin.credentials"),
        )
        .env("AWS_CONFIG_FILE", lk.data.join("aws.config"))
        .env("AWS_CA_BUNDLE", lk.data.join("ca.pem"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .args(["sts", "get-caller-identity"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ServiceUnavailable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The session's statements are held while 50 records wait (the
    // refused logins' among them), not queued without end.
    std::fs::write(&go, "").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let held = answered();
    assert!(
        held < 50,
        "{held} statements answered while the trail was full"
    );

    // Room again: everything works, and every refusal was recorded.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered() < 200 {
        assert!(
            Instant::now() < deadline,
            "the held session did not go on: {} answered",
            answered()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(session.wait().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !psql(&lk, "app", &token, "verify-full", "SELECT 1")
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "logins did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A read-only audit disk: the server refuses to start at all.
    let ro = root.path().join("ro-disk");
    std::fs::create_dir(&ro).unwrap();
    assert!(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,ro", "tmpfs"])
            .arg(&ro)
            .status()
            .unwrap()
            .success()
    );
    let _unmount_ro = Unmount(&ro);
    let (data2, api2) = init_latchkey(&root.path().join("second"), &[]);
    let out = latchkey(&[
        "serve",
        "--data-dir",
        data2.to_str().unwrap(),
        "--listen",
        &api2,
        "--pg-listen",
        &format!("127.0.0.1:{}", free_port()),
        "--audit-dir",
        ro.join("trail").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("opening the audit trail") && stderr.contains("Read-only file system"),
        "{stderr}"
    );

    let text = std::fs::read_dir(audit_dir.join("segments"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(text.contains("\"failure\":\"audit_unavailable\""));
    // The refused API call is in the trail too.
    assert!(
        text.lines()
            .any(|l| l.contains("\"eventName\":\"GetCallerIdentity\"")
                && l.contains("\"errorCode\":\"ServiceUnavailable\"")),
        "no record of the refused API call"
    );
}

/// An IAM call with the administrator's key, through `latchkey iam`.
fn iam_call(data: &Path, api: &str, args: &[&str]) {
    let out = latchkey(&["iam"])
        .args(args)
        .args(["--endpoint-url", &format!("https://{api}"), "--ca-bundle"])
        .arg(data.join("ca.pem"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            data.join("admin.credentials"),
        )
        .env("AWS_CONFIG_FILE", data.join("aws.config"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    stdout_ok(&out);
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Item 11 of issue 14: deleting the newest segments together with every
/// digest naming them left a shorter trail that `audit verify` called
/// intact. The store's anchor, and an exported copy, catch it; a forged
/// anchor is refused; a digest overdue while the server runs is warned
/// about; and the server will not write on over the evidence.
#[test]
fn truncating_the_trail_is_caught_by_its_anchors() {
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    // Every batch in a segment of its own; a digest every second.
    let mut lk = serve_latchkey(
        root.path(),
        &data,
        &api,
        &["--audit-digest-interval", "1s", "--audit-segment-size", "1"],
    );
    let anchored = |at_least: u64| -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = audit(&data, &["export-anchor"]);
            if out.status.success() {
                let a = json_of(&out);
                if a["sequence"].as_u64().unwrap() >= at_least {
                    return a;
                }
            }
            assert!(Instant::now() < deadline, "no anchor of record {at_least}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for user in ["u1", "u2", "u3"] {
        iam_call(&data, &api, &["create-user", "--user-name", user]);
        std::thread::sleep(Duration::from_millis(250));
    }
    let early = anchored(3);
    assert_eq!(early["anchorVersion"], 1);
    assert_eq!(early["signature"].as_str().unwrap().len(), 128);
    let early_file = root.path().join("early.anchor");
    std::fs::write(&early_file, early.to_string()).unwrap();

    // A writer that stops signing digests while the server claims to run.
    let pid = lk.child.id().to_string();
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_millis(2600));
    let stalled = audit(&data, &["verify", "--output", "json"]);
    signal("-CONT");
    let v = json_of(&stalled);
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains("claims to run") && w.contains(&format!("pid {pid}")),
        "{w}"
    );

    for user in ["u4", "u5", "u6"] {
        iam_call(&data, &api, &["create-user", "--user-name", user]);
        std::thread::sleep(Duration::from_millis(250));
    }
    stop(&mut lk);
    let out_file = root.path().join("final.anchor");
    let exported = audit(
        &data,
        &["export-anchor", "--out", out_file.to_str().unwrap()],
    );
    stdout_ok(&exported);
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    let last_sequence = last["sequence"].as_u64().unwrap();
    assert!(last_sequence >= 6, "{last}");
    let text = stdout_ok(&audit(&data, &["export-anchor", "--output", "text"]));
    assert!(
        text.contains(&format!("sequence         {last_sequence}")),
        "{text}"
    );

    // Intact: the store's anchor and both copies are reached; no warning
    // once the server is gone.
    let both = [
        "--anchor",
        early_file.to_str().unwrap(),
        "--anchor",
        out_file.to_str().unwrap(),
    ];
    let ok = audit(
        &data,
        &[&["verify", "--output", "json"][..], &both].concat(),
    );
    let v = json_of(&ok);
    assert_eq!(ok.status.code(), Some(0), "{v}");
    assert_eq!(v["anchors"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0, "{v}");
    let text = stdout_ok(&audit(&data, &["verify"]));
    assert!(
        text.contains("The trail is intact.") && text.contains("anchor   store: record"),
        "{text}"
    );

    // A forged anchor (a later record claimed) and a malformed one.
    let forged = root.path().join("forged.anchor");
    std::fs::write(
        &forged,
        last.to_string().replace(
            &format!("\"sequence\":{last_sequence},"),
            &format!("\"sequence\":{},", last_sequence + 50),
        ),
    )
    .unwrap();
    let out = audit(&data, &["verify", "--anchor", forged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("forged.anchor anchor is invalid: the signature does not match"),
        "{text}"
    );
    std::fs::write(&forged, "{\"anchorVersion\":1}").unwrap();
    let out = audit(&data, &["verify", "--anchor", forged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("missing field `trailId`"), "{text}");

    // The attack: the two newest segments go, with every digest that
    // vouches for any of their records.
    let audit_dir = data.join("audit");
    let mut segments: Vec<_> = std::fs::read_dir(audit_dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    let cut = segments[segments.len() - 2]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("trail-")
        .trim_end_matches(".jsonl")
        .parse::<u64>()
        .unwrap();
    for s in &segments[segments.len() - 2..] {
        std::fs::remove_file(s).unwrap();
    }
    let mut removed = 0;
    for e in std::fs::read_dir(audit_dir.join("digests")).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let body: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        if body["lastSequence"].as_u64().unwrap() >= cut {
            std::fs::remove_file(&path).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0);

    let truncated = audit(&data, &["verify"]);
    let text = String::from_utf8_lossy(&truncated.stdout);
    assert_eq!(truncated.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the trail was truncated: the store anchor") && text.contains(&format!(
            "vouches for records up to {last_sequence}, but the trail ends at record {}; records {cut} to {last_sequence} were deleted",
            cut - 1
        )),
        "{text}"
    );
    assert!(text.contains("The trail was tampered with."), "{text}");
    // The same from the exported copy alone, verified with the exported
    // public key, as on another machine; and in JSON.
    let pem = stdout_ok(&audit(&data, &["public-key"]));
    let key_file = root.path().join("audit.pub");
    std::fs::write(&key_file, pem).unwrap();
    let out = audit(
        &data,
        &[
            "verify",
            "--output",
            "json",
            "--public-key",
            key_file.to_str().unwrap(),
            "--anchor",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    let problems = v["problems"].as_array().unwrap();
    let from_file = problems
        .iter()
        .find(|p| p["problem"] == "trailTruncated" && p["source"] != "store")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(from_file["firstMissing"], cut);
    assert_eq!(from_file["lastMissing"], last_sequence);
    assert!(
        problems.iter().any(|p| p["problem"] == "digestsTruncated"),
        "{v}"
    );

    // The server does not write on over the evidence.
    let out = latchkey(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--pg-listen",
        &format!("127.0.0.1:{}", free_port()),
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the trail was truncated") && stderr.contains("not writing on"),
        "{stderr}"
    );
    assert_eq!(
        json_of(&audit(&data, &["export-anchor"]))["sequence"],
        last_sequence,
        "the stored anchor is kept"
    );

    // Starting over on purpose: the operator removes the anchor (keeping
    // a copy), and the server writes on.
    let refused = audit(&data, &["forget-anchor"]);
    assert!(!refused.status.success(), "forget-anchor needs --yes");
    let forgotten = audit(&data, &["forget-anchor", "--yes"]);
    assert!(forgotten.status.success());
    assert_eq!(json_of(&forgotten)["sequence"], last_sequence);
    let api = free_port();
    let mut child = latchkey(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{api}"),
        "--pg-listen",
        &format!("127.0.0.1:{}", free_port()),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    wait_for_port(api);
    let _ = child.kill();
    let _ = child.wait();
}

/// `serve` checks its own trail on a timer: an intact one is recorded as
/// verified (the security checks stop asking for `audit verify`); a
/// record altered on disk while it runs raises a High finding, in the
/// trail and on the metrics.
#[test]
fn serve_checks_its_own_trail_and_raises_a_finding_when_it_is_altered() {
    let root = tempfile::tempdir().unwrap();
    let (data, api) = init_latchkey(root.path(), &[]);
    let metrics_port = free_port();
    let lk = serve_latchkey(
        root.path(),
        &data,
        &api,
        &[
            "--audit-verify-every",
            "1s",
            "--audit-sync-interval",
            "10ms",
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
        ],
    );
    let gauge = || metric_at(metrics_port, "latchkey_audit_trail_intact");
    let eventually = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    admin_cli(&lk, &["sts", "get-caller-identity"]);
    lookup_at_least(&data, &["--event-name", "GetCallerIdentity"], 1);
    let unverified = |data: &Path| {
        let out = latchkey(&["advisor", "checks", "--output", "json"])
            .args(["--data-dir", data.to_str().unwrap()])
            .output()
            .unwrap();
        stdout_ok(&out).contains("has not been verified in 24 hours")
    };
    eventually("the intact trail recorded as verified", &|| {
        !unverified(&data)
    });
    assert_eq!(gauge(), Some(1.0));

    // Someone edits a record in place, keeping its length.
    let segments = data.join("audit").join("segments");
    let target = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("\"GetCallerIdentity\"")
        })
        .unwrap();
    let text = std::fs::read_to_string(&target).unwrap();
    let at = text.find("\"GetCallerIdentity\"").unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .unwrap();
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        f.write_all(b"\"GetCallerIdentitx\"").unwrap();
    }
    let altered = || {
        findings(&data, &[])
            .into_iter()
            .find(|f| f["type"] == "Stealth:Latchkey/AuditTrailAltered")
    };
    eventually("a finding for the altered trail", &|| altered().is_some());
    let finding = altered().unwrap();
    assert_eq!(finding["severity"], "High");
    assert!(
        finding["description"]
            .as_str()
            .unwrap()
            .contains("record 1 is not the record the store anchor vouches for"),
        "it names the record: {finding}"
    );
    assert_eq!(gauge(), Some(0.0));
    // The finding is in the trail too (what the webhook is sent from).
    lookup_at_least(&data, &["--event-name", "Finding"], 1);
}
