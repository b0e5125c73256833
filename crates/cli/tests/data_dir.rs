#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Item 12 of issue 14: a data directory that existed before `latchkey
//! init` (made by hand with mode 0755, files left at 0644) is made
//! private: 0700 on the directory, 0600 on every file the server makes,
//! the audit trail included; and a master key its group or other users
//! can read or write stops `init` and `serve`, naming the file and the
//! chmod to run.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file the server made in `dir` (and its audit trail) is 0600,
/// every directory 0700.
fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[test]
fn a_pre_existing_data_directory_is_made_private() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o755);
    // Left there before: an empty store, a stale CA certificate and AWS config.
    for (name, text) in [
        ("latchkey.db", ""),
        ("ca.pem", "stale"),
        ("aws.config", "[default]\n"),
    ] {
        std::fs::write(data.join(name), text).unwrap();
        chmod(&data.join(name), 0o644);
    }
    let api = format!("127.0.0.1:{}", free_port());
    let init = |data: &Path| {
        latchkey(&[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &api,
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap()
    };
    let out = init(&data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_private(&data);
    for name in [
        "master.key",
        "latchkey.db",
        "ca.key",
        "ca.pem",
        "server.key",
        "server.pem",
        "admin.credentials",
        "aws.config",
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }

    // serve tightens again whatever was loosened since, the store's WAL
    // and the audit trail included.
    chmod(&data, 0o755);
    chmod(&data.join("latchkey.db"), 0o644);
    chmod(&data.join("server.pem"), 0o664);
    let audit = data.join("audit");
    std::fs::create_dir_all(audit.join("segments")).unwrap();
    chmod(&audit, 0o755);
    chmod(&audit.join("segments"), 0o755);
    let lk = serve_latchkey(root.path(), &data, &api, &[]);
    // The trail opens after the listeners.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !audit.join("index.sqlite-wal").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the trail did not open"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(data.join("latchkey.db-wal").exists());
    assert!(audit.join("writer.lock").exists());
    assert_private(&data);
    drop(lk);

    // A master key others can read, or write, is refused, not fixed.
    let key = data.join("master.key");
    for loose in [0o644, 0o620] {
        chmod(&key, loose);
        let out = init(&data);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("refusing to use the master key {}", key.display()))
                && stderr.contains(&format!("its mode is {loose:o}"))
                && stderr.contains(&format!("run `chmod 600 {}`", key.display())),
            "{stderr}"
        );
        let out = latchkey(&[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &api,
            "--pg-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("refusing to use the master key")
                && stderr.contains(&format!("chmod 600 {}", key.display())),
            "{stderr}"
        );
        assert_eq!(mode(&key), loose, "the key's mode is the operator's to fix");
    }
    chmod(&key, 0o600);
    assert!(init(&data).status.success());
}
