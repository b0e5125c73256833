//! The trail on a real filesystem: durability, recovery, rotation,
//! retention, lookup, and failing closed on a full disk.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use latchkey_audit::trail::{SigningKey, Window};
use latchkey_audit::*;
use latchkey_trail::*;

fn key() -> SigningKey {
    SigningKey::generate().expect("key").0
}

fn identity(user: &str) -> Identity {
    Identity {
        kind: IdentityKind::IamUser,
        arn: format!("arn:aws:iam::123456789012:user/{user}"),
        principal_id: "AIDAEXAMPLE".into(),
        account_id: "123456789012".into(),
        access_key_id: "AKIAEXAMPLE".into(),
        session: None,
    }
}

fn auth(user: &str, ip: &str, ok: bool) -> Event {
    Event::from(AuthEvent {
        engine: "postgres",
        time: SystemTime::now(),
        source_ip: ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
        user_agent: Some("psql".into()),
        db_user: "app".into(),
        endpoint: Some("orders.db".into()),
        database: Some("orders".into()),
        resource_arn: None,
        identity: Some(identity(user)),
        access_key_id: Some("AKIAEXAMPLE".into()),
        result: if ok {
            AuthResult::Success
        } else {
            AuthResult::Failure {
                kind: FailureKind::PolicyDenied,
                reason: "policy: no statement allows rds-db:connect".into(),
            }
        },
        possession_proven: true,
    })
}

fn config(dir: &Path) -> TrailConfig {
    let mut c = TrailConfig::new(dir.to_owned(), "us-east-1", "123456789012");
    c.sync_interval = Duration::from_millis(10);
    c
}

fn open(c: TrailConfig, key: &[u8]) -> Trail {
    Trail::open(
        c,
        SigningKey::from_pkcs8(key).expect("key"),
        TrailMetrics::default(),
        Vec::new(),
    )
    .expect("open the trail")
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn verify(dir: &Path, public_key: &[u8; 32]) -> latchkey_audit::trail::Report {
    TrailFiles::read(dir)
        .expect("read the trail")
        .verify(public_key, Window::default())
}

fn pkcs8() -> Vec<u8> {
    SigningKey::generate().expect("key").1.to_vec()
}

#[test]
fn records_survive_restarts_and_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let public = SigningKey::from_pkcs8(&k).expect("key").public_key();
    let t = open(config(dir.path()), &k);
    for i in 0..500 {
        t.record(auth("alice", "10.0.0.1", i % 5 != 0));
    }
    t.close();
    assert_eq!(t.synced(), 500);
    drop(t);
    let t = open(config(dir.path()), &k);
    for _ in 0..100 {
        t.record(auth("bob", "10.0.0.2", true));
    }
    t.close();
    assert_eq!(t.synced(), 600);
    let r = verify(dir.path(), &public);
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records_verified, 600);
    assert!(r.digests_valid >= 2);
}

#[test]
fn every_record_names_its_node_and_the_name_is_sealed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let public = SigningKey::from_pkcs8(&k).expect("key").public_key();
    let mut c = config(dir.path());
    c.node_id = Some("node-7f3a".into());
    let t = open(c, &k);
    for _ in 0..20 {
        t.record(auth("alice", "10.0.0.1", true));
    }
    t.close();
    drop(t);
    let (_, name) = list_segments(dir.path())
        .expect("list")
        .pop()
        .expect("a segment");
    let path = dir.path().join("segments").join(name);
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20);
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(v["latchkeyNodeId"], "node-7f3a", "{line}");
    }
    let r = verify(dir.path(), &public);
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records_verified, 20);
    // Moving a record to another node's name breaks the chain there.
    let forged = text.replacen("node-7f3a", "node-0000", 1);
    std::fs::write(&path, forged).expect("write");
    let r = verify(dir.path(), &public);
    assert!(
        !r.ok(),
        "a record's node id changed and the trail still verified"
    );
}

#[test]
fn a_torn_final_line_is_cut_at_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let public = SigningKey::from_pkcs8(&k).expect("key").public_key();
    let t = open(config(dir.path()), &k);
    for _ in 0..10 {
        t.record(auth("alice", "10.0.0.1", true));
    }
    t.close();
    drop(t);
    // A write cut short by a crash: half a record, no newline.
    let (_, name) = list_segments(dir.path())
        .expect("list")
        .pop()
        .expect("a segment");
    let path = dir.path().join("segments").join(name);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend_from_slice(br#"{"sequence":11,"previousHash":"ab"#);
    std::fs::write(&path, &bytes).expect("write");
    let t = open(config(dir.path()), &k);
    t.record(auth("alice", "10.0.0.1", true));
    t.close();
    assert_eq!(t.synced(), 11);
    let r = verify(dir.path(), &public);
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records_verified, 11);
}

#[test]
fn a_truncated_trail_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let t = open(config(dir.path()), &k);
    for _ in 0..10 {
        t.record(auth("alice", "10.0.0.1", true));
    }
    t.close();
    drop(t);
    let (_, name) = list_segments(dir.path())
        .expect("list")
        .pop()
        .expect("a segment");
    let path = dir.path().join("segments").join(name);
    let text = std::fs::read_to_string(&path).expect("read");
    let kept: String = text.lines().take(7).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, kept).expect("write");
    let err = Trail::open(
        config(dir.path()),
        SigningKey::from_pkcs8(&k).expect("key"),
        TrailMetrics::default(),
        Vec::new(),
    )
    .err()
    .expect("a trail shorter than its digest must not open");
    assert!(
        err.to_string().contains("vouches for records up to 10"),
        "{err}"
    );
}

#[test]
fn segments_rotate_and_retention_removes_old_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let public = SigningKey::from_pkcs8(&k).expect("key").public_key();
    let mut c = config(dir.path());
    c.segment_max_bytes = 20_000;
    c.digest_every = 40;
    let t = open(c.clone(), &k);
    for i in 0..400u64 {
        t.record(auth("alice", "10.0.0.1", true));
        if i % 50 == 49 {
            // A batch of its own for every 50 records (segments rotate
            // between batches): wait until the writer has them on disk,
            // not for a time a busy machine may not honour.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while t.synced() < i + 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    t.close();
    drop(t);
    let segments = list_segments(dir.path()).expect("list");
    assert!(segments.len() >= 4, "{segments:?}");
    let r = verify(dir.path(), &public);
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records_verified, 400);

    // Everything but the newest segment is past a retention of zero.
    c.retention = Some(Duration::ZERO);
    let t = open(c, &k);
    for _ in 0..100 {
        t.record(auth("alice", "10.0.0.1", true));
    }
    t.close();
    drop(t);
    let after = list_segments(dir.path()).expect("list");
    assert!(after.len() < segments.len(), "{after:?}");
    let r = verify(dir.path(), &public);
    assert!(r.ok(), "retention is not tampering: {:?}", r.problems);
    assert!(r.first_digest > Some(1));
    let index = Index::open_read_only(dir.path()).expect("index");
    let all = index.spans(&Filter::default()).expect("lookup");
    assert_eq!(all.iter().map(|s| s.segment).min(), Some(after[0].0));
    let found = find(
        dir.path(),
        &index,
        &Filter {
            limit: 10_000,
            ..Filter::default()
        },
    )
    .expect("find");
    let oldest: serde_json::Value =
        serde_json::from_str(found.last().expect("records")).expect("json");
    assert_eq!(oldest["sequence"].as_u64(), Some(after[0].0));
}

#[test]
fn lookup_filters_and_reads_back_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let t = open(config(dir.path()), &k);
    for i in 0..30 {
        t.record(auth(
            if i % 3 == 0 { "mallory" } else { "alice" },
            if i % 2 == 0 { "10.0.0.1" } else { "10.0.0.2" },
            i % 4 != 0,
        ));
    }
    t.close();
    drop(t);
    let index = Index::open_read_only(dir.path()).expect("index");
    let find = |f: Filter| find(dir.path(), &index, &Filter { limit: 100, ..f }).expect("lookup");
    let mallory = find(Filter {
        principal: Some("arn:aws:iam::123456789012:user/mallory".into()),
        ..Filter::default()
    });
    assert_eq!(mallory.len(), 10);
    for r in &mallory {
        let v: serde_json::Value = serde_json::from_str(r).expect("json");
        assert_eq!(
            v["userIdentity"]["arn"],
            "arn:aws:iam::123456789012:user/mallory"
        );
    }
    // Newest first.
    let seqs: Vec<u64> = mallory
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r).expect("json")["sequence"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let failed_from_1 = find(Filter {
        source_ip: Some("10.0.0.1".into()),
        errors_only: true,
        ..Filter::default()
    });
    assert_eq!(failed_from_1.len(), 8); // i in 0,4,8,...,28
    assert_eq!(
        find(Filter {
            event_name: Some("Statement".into()),
            ..Filter::default()
        })
        .len(),
        0
    );
    assert_eq!(
        find(Filter {
            database: Some("orders".into()),
            ..Filter::default()
        })
        .len(),
        30
    );
    let future = SystemTime::now() + Duration::from_secs(3600);
    let since_ms = future
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    assert_eq!(
        find(Filter {
            since_ms: Some(since_ms),
            ..Filter::default()
        })
        .len(),
        0
    );
}

#[test]
fn a_lost_index_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let t = open(config(dir.path()), &k);
    for _ in 0..25 {
        t.record(auth("alice", "10.0.0.1", true));
    }
    t.close();
    drop(t);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("index.sqlite{suffix}")));
    }
    let t = open(config(dir.path()), &k);
    t.close();
    drop(t);
    let index = Index::open_read_only(dir.path()).expect("index");
    assert_eq!(index.last_sequence().expect("last"), 25);
}

/// A tmpfs too small for the trail: it fills, the trail refuses new work
/// and keeps every record queued; room comes back and everything lands.
#[test]
fn a_full_disk_fails_closed_and_loses_nothing() {
    if !nix_is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = small_disk(dir.path());
    let _unmount = Unmount(mount.clone());
    let k = pkcs8();
    let public = SigningKey::from_pkcs8(&k).expect("key").public_key();
    let trail_dir = mount.join("trail");
    let t = open(config(&trail_dir), &k);
    assert!(t.accepting());
    let filler = fill(&mount);
    let sent = 2000;
    for _ in 0..sent {
        t.record(auth("alice", "10.0.0.1", true));
    }
    wait_for("the trail to refuse work", || !t.accepting());
    assert!(
        t.last_error().is_some_and(|e| e.contains("No space left")),
        "{:?}",
        t.last_error()
    );
    assert_eq!(t.depth(), sent as usize);
    // Room again.
    std::fs::remove_file(&filler).expect("rm filler");
    wait_for("the trail to accept work again", || {
        t.accepting() && t.depth() == 0
    });
    t.close();
    assert_eq!(t.synced(), sent);
    drop(t);
    let r = verify(&trail_dir, &public);
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records_verified, sent);
}

/// Woken: whether the trail called the waker it was given.
struct Flag(std::sync::atomic::AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Sessions queue records up to `max_queue`, then wait for room (the
/// relay stops reading their clients) and are woken once the trail has
/// written them: a trail that falls behind holds statements up rather
/// than growing without limit.
#[test]
fn a_trail_behind_holds_sessions_back_until_it_has_room() {
    if !nix_is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = small_disk(dir.path());
    let _unmount = Unmount(mount.clone());
    let mut c = config(&mount.join("trail"));
    c.max_queue = 1000;
    let t = open(c, &pkcs8());
    let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
    let waker = std::task::Waker::from(flag.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(t.poll_room(&mut cx).is_ready());
    let filler = fill(&mount);
    for _ in 0..1000 {
        t.record(auth("alice", "10.0.0.1", true));
    }
    wait_for("a failed write", || t.last_error().is_some());
    assert!(t.poll_room(&mut cx).is_pending());
    assert!(
        t.poll_room(&mut cx).is_pending(),
        "polled again, listed once"
    );
    assert!(!flag.0.load(std::sync::atomic::Ordering::SeqCst));
    std::fs::remove_file(&filler).expect("rm filler");
    wait_for("the waiting session to be woken", || {
        flag.0.load(std::sync::atomic::Ordering::SeqCst)
    });
    assert!(t.poll_room(&mut cx).is_ready());
    t.close();
    assert_eq!(t.synced(), 1000);
}

/// With `fail_open` a full disk does not stop new work, and records still
/// land once there is room.
#[test]
fn fail_open_keeps_accepting() {
    if !nix_is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = small_disk(dir.path());
    let _unmount = Unmount(mount.clone());
    let mut c = config(&mount.join("trail"));
    c.fail_open = true;
    let t = open(c, &pkcs8());
    let filler = fill(&mount);
    for _ in 0..2000 {
        t.record(auth("alice", "10.0.0.1", true));
    }
    wait_for("a failed write", || t.last_error().is_some());
    assert!(t.accepting());
    std::fs::remove_file(&filler).expect("rm filler");
    wait_for("the queue to drain", || t.depth() == 0);
    t.close();
    assert_eq!(t.synced(), 2000);
}

/// A 4 MiB tmpfs under `dir`.
fn small_disk(dir: &Path) -> std::path::PathBuf {
    let mount = dir.join("disk");
    std::fs::create_dir(&mount).expect("mkdir");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount")
        .success();
    assert!(ok, "mounting a tmpfs failed");
    mount
}

/// Fills the disk at `mount`; returns the file to delete for room.
fn fill(mount: &Path) -> std::path::PathBuf {
    let filler = mount.join("filler");
    let err = std::fs::write(&filler, vec![0u8; 8 << 20]).expect_err("the disk should fill");
    assert_eq!(err.raw_os_error(), Some(28), "{err}"); // ENOSPC
    filler
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn observers_see_durable_records_in_order() {
    struct Seen(Arc<std::sync::Mutex<Vec<(u64, String)>>>);
    impl Observer for Seen {
        fn observe(&mut self, sequence: u64, event_id: &str, event: &Event) -> Vec<Event> {
            self.0
                .lock()
                .expect("lock")
                .push((sequence, event_id.to_owned()));
            // Answers every login with another event, as detection answers
            // with findings.
            match event {
                Event::Auth(_) => vec![statement_event()],
                _ => Vec::new(),
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t = Trail::open(
        config(dir.path()),
        key(),
        TrailMetrics::default(),
        vec![Box::new(Seen(seen.clone()))],
    )
    .expect("open");
    for _ in 0..50 {
        t.record(auth("alice", "10.0.0.1", true));
    }
    t.close();
    let seen = seen.lock().expect("lock");
    // 50 logins, then the 50 events they caused.
    assert_eq!(seen.len(), 100);
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, (s, _))| *s == i as u64 + 1)
    );
    assert_eq!(
        latchkey_audit::trail::sequence_of(t.trail_id(), &seen[9].1),
        Some(10)
    );
}

fn statement_event() -> Event {
    let Event::Auth(a) = auth("alice", "10.0.0.1", true) else {
        unreachable!()
    };
    Event::from(CredentialEvent {
        time: a.time,
        change: CredentialChange::Revoked,
        identity: identity("alice"),
        sessions_ended: 1,
    })
}

/// Resident bytes of `path` in the page cache, by util-linux's fincore.
fn resident_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("run fincore (util-linux)");
    assert!(out.status.success(), "fincore: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("fincore prints a byte count")
}

#[test]
fn written_segments_leave_the_page_cache() {
    // Under the target directory: a real filesystem even where /tmp is
    // tmpfs, whose pages cannot be dropped.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    // A file written the ordinary way stays cached, so fincore sees pages.
    let control = dir.path().join("control");
    std::fs::write(&control, vec![b'x'; 1 << 20]).expect("write control file");
    assert!(resident_bytes(&control) > 512 * 1024);

    let k = pkcs8();
    let t = open(config(dir.path()), &k);
    for i in 0..5_000 {
        t.record(auth("alice", "10.0.0.1", i % 2 == 0));
    }
    t.close();
    assert_eq!(t.synced(), 5_000);
    let segments = std::fs::read_dir(dir.path().join("segments"))
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .collect::<Vec<_>>();
    assert_eq!(segments.len(), 1);
    let len = std::fs::metadata(&segments[0]).expect("segment").len();
    assert!(len > 1 << 20, "segment of {len} bytes");
    // At most the partial last page, which appends write into, is kept.
    let resident = resident_bytes(&segments[0]);
    assert!(resident <= 4096, "{resident} of {len} bytes still cached");
}

/// Keeps anchors in memory, as the store does: never backwards.
#[derive(Clone, Default)]
struct Kept(Arc<std::sync::Mutex<Option<(u64, String)>>>);

impl AnchorKeeper for Kept {
    fn load(&mut self) -> Result<Option<String>, String> {
        Ok(self
            .0
            .lock()
            .expect("lock")
            .as_ref()
            .map(|(_, d)| d.clone()))
    }
    fn save(&mut self, anchor: &latchkey_audit::anchor::Anchor) -> Result<(), String> {
        let mut kept = self.0.lock().expect("lock");
        if kept
            .as_ref()
            .is_some_and(|(s, _)| *s > anchor.body.sequence)
        {
            return Err("older".into());
        }
        *kept = Some((anchor.body.sequence, anchor.to_json()));
        Ok(())
    }
}

fn open_kept(dir: &Path, key: &[u8], kept: &Kept) -> Result<Trail, Error> {
    let mut c = config(dir);
    c.segment_max_bytes = 1;
    Trail::open_anchored(
        c,
        SigningKey::from_pkcs8(key).expect("key"),
        TrailMetrics::default(),
        Vec::new(),
        Some(Box::new(kept.clone())),
    )
}

#[test]
fn a_trail_cut_back_with_its_digests_refuses_to_start_over_its_anchor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let kept = Kept::default();
    let t = open_kept(dir.path(), &k, &kept).expect("open");
    // A second writer on the same trail is refused while the first runs.
    let second = open_kept(dir.path(), &k, &kept).err().expect("one writer");
    assert!(second.to_string().contains("another process"), "{second}");
    assert_eq!(
        running_writer(dir.path()).expect("lock").map(|w| w.pid),
        Some(std::process::id())
    );
    for _ in 0..3 {
        for _ in 0..5 {
            t.record(auth("alice", "10.0.0.1", true));
        }
        wait_for("a batch", || t.synced().is_multiple_of(5) && t.depth() == 0);
        std::thread::sleep(Duration::from_millis(30));
    }
    t.close();
    drop(t);
    assert_eq!(running_writer(dir.path()).expect("lock"), None);
    let anchored = kept.0.lock().expect("lock").as_ref().map(|(s, _)| *s);
    assert_eq!(anchored, Some(15), "the clean stop anchors the head");

    // It reopens as it is.
    drop(open_kept(dir.path(), &k, &kept).expect("an intact trail opens"));

    // The newest segment and every digest of its records go.
    let segments = list_segments(dir.path()).expect("list");
    let (cut, name) = segments.last().cloned().expect("a segment");
    assert!(cut > 1);
    std::fs::remove_file(dir.path().join("segments").join(name)).expect("rm");
    for (_, d) in list_digests(dir.path()).expect("list") {
        let path = dir.path().join("digests").join(d);
        let text = std::fs::read_to_string(&path).expect("read");
        let body: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("body")).expect("json");
        if body["lastSequence"].as_u64().expect("lastSequence") >= cut {
            std::fs::remove_file(path).expect("rm");
        }
    }
    let err = open_kept(dir.path(), &k, &kept)
        .err()
        .expect("a truncated trail must not open over its anchor");
    let text = err.to_string();
    assert!(
        text.contains(&format!("records {cut} to 15 were deleted"))
            && text.contains("not writing on"),
        "{text}"
    );
    assert_eq!(
        anchored,
        kept.0.lock().expect("lock").as_ref().map(|(s, _)| *s)
    );
}

/// A record is found again whatever access key its event carried beside
/// its identity (a console sign-in has an identity and no signed request):
/// the index keys it as the record reads.
#[test]
fn an_api_event_without_a_request_key_is_found_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let t = open(config(dir.path()), &k);
    let api = |identity: Option<Identity>, access_key_id: Option<&str>| {
        Event::from(ApiEvent {
            time: SystemTime::now(),
            service: ApiService::Signin,
            action: "ConsoleLogin".into(),
            identity,
            access_key_id: access_key_id.map(str::to_owned),
            source_ip: IpAddr::from([127, 0, 0, 1]),
            user_agent: None,
            request_parameters: None,
            response_elements: Some(r#"{"ConsoleLogin":"Success"}"#.into()),
            error: None,
            possession_proven: true,
            request_id: "r".into(),
            read_only: false,
            resources: Vec::new(),
        })
    };
    t.record(api(Some(identity("alice")), None));
    t.record(api(Some(identity("bob")), Some("AKIADIFFERENT")));
    t.record(api(None, Some("AKIAUNKNOWN")));
    t.close();
    drop(t);
    let index = Index::open_read_only(dir.path()).expect("index");
    let found = find(
        dir.path(),
        &index,
        &Filter {
            event_name: Some("ConsoleLogin".into()),
            limit: 100,
            ..Filter::default()
        },
    )
    .expect("lookup");
    assert_eq!(found.len(), 3, "{found:?}");
    // One record by its sequence number, as an `eventID` names it.
    let second = find(
        dir.path(),
        &index,
        &Filter {
            sequence: Some(2),
            limit: 100,
            ..Filter::default()
        },
    )
    .expect("lookup");
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(second[0].contains("\"sequence\":2,"), "{}", second[0]);
    assert_eq!(
        record_at(dir.path(), 2).expect("read").as_deref(),
        Some(second[0].as_str())
    );
    assert_eq!(record_at(dir.path(), 99).expect("read"), None);
}

/// `record_at` finds any record of a trail larger than its window by
/// binary search, and nothing past the end.
#[test]
fn a_record_is_found_by_its_sequence_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = pkcs8();
    let t = open(config(dir.path()), &k);
    for i in 0..3000 {
        t.record(auth(&format!("user{i}"), "10.0.0.1", i % 2 == 0));
    }
    t.close();
    drop(t);
    for n in [1u64, 2, 1499, 1500, 2999, 3000] {
        let r = record_at(dir.path(), n).expect("read").expect("found");
        let v: serde_json::Value = serde_json::from_str(&r).expect("json");
        assert_eq!(v["sequence"], n, "{r}");
    }
    assert_eq!(record_at(dir.path(), 3001).expect("read"), None);
}
