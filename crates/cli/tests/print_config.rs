#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
//! `latchkey serve --print-config`: defaults, `latchkey.toml`, environment
//! and flags merged in that order, secrets hidden, nothing started.

use std::process::{Command, Output};

fn latchkey(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (key, _) in std::env::vars() {
        if key.starts_with("LATCHKEY_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir).args(args);
    cmd
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn print_config_merges_file_environment_and_flags() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("latchkey.toml");
    std::fs::write(
        &config,
        r#"
pg_max_message_size = 4096          # a deprecated flat key
[gateway]
threads = 2
pool_size = 1
max_connections = 77
[api]
max_connections_per_ip = 5
[webhook]
url = "https://hook-user:hook-password@hooks.example.com/services/SECRETPATH"
[detection.brute_force]
threshold = 4
"#,
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["serve", "--print-config", "--config", c];
        args.extend_from_slice(extra);
        latchkey(root.path(), &args)
            .env("LATCHKEY_GATEWAY_THREADS", "3")
            .env("LATCHKEY_PG_POOL_SIZE", "4")
            .env("LATCHKEY_WEBHOOK_SECRET", "a-webhook-secret-of-some-length")
            .output()
            .unwrap()
    };
    let out = run(&["--gateway-pool-size", "6", "--pg-listen", "127.0.0.1:7001"]);
    let text = stdout(&out);
    let toml: toml::Table = toml::from_str(&text).unwrap();
    let gateway = &toml["gateway"];
    assert_eq!(gateway["max_connections"].as_integer(), Some(77), "file");
    assert_eq!(
        gateway["threads"].as_integer(),
        Some(3),
        "environment over file"
    );
    assert_eq!(gateway["pool_size"].as_integer(), Some(6), "flag over both");
    assert_eq!(gateway["max_message_size"].as_integer(), Some(4096));
    assert_eq!(
        gateway["postgres"]["listen"].as_str(),
        Some("127.0.0.1:7001")
    );
    assert_eq!(gateway["mysql"]["listen"].as_str(), Some("127.0.0.1:3307"));
    assert_eq!(toml["api"]["max_connections_per_ip"].as_integer(), Some(5));
    assert_eq!(
        toml["api"]["max_connections"].as_integer(),
        Some(1024),
        "default"
    );
    assert_eq!(
        toml["detection"]["brute_force"]["threshold"].as_integer(),
        Some(4)
    );
    for secret in [
        "hook-password",
        "hook-user",
        "SECRETPATH",
        "a-webhook-secret",
    ] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    // The deprecated key is named on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pg_max_message_size"), "{stderr}");
    // Nothing was started or created.
    assert!(!root.path().join("latchkey-data").exists());

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["--output", "json"]))).unwrap();
    assert_eq!(
        json["gateway"]["pool_size"], 4,
        "the old variable still works"
    );
    assert_eq!(json["audit"]["statements"], true);

    // An unknown key is refused, with its line.
    std::fs::write(&config, "[gateway]\nthreads = 2\npool_sise = 3\n").unwrap();
    let out = latchkey(root.path(), &["serve", "--print-config", "--config", c])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pool_sise") && stderr.contains("line 3"),
        "{stderr}"
    );
}

/// What `serve` would refuse, `--print-config` refuses too.
#[test]
fn print_config_checks_databases() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("latchkey.toml");
    std::fs::write(
        &config,
        "[[databases]]\nname = \"shop\"\nengine = \"postgress\"\nendpoints = [\"db.example.com\"]\nupstream = \"127.0.0.1:5432\"\n",
    )
    .unwrap();
    let out = latchkey(
        root.path(),
        &[
            "serve",
            "--print-config",
            "--config",
            config.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"shop\"") && err.contains("postgress"),
        "{err}"
    );
}

#[test]
fn a_refused_store_url_is_never_quoted() {
    for (args, env) in [
        (
            vec!["serve", "--print-config"],
            Some("postgres://lk:Pw-in-env@db/lk?sslmode=require"),
        ),
        (
            vec![
                "serve",
                "--print-config",
                "--store",
                "postgres://lk:Pw-in-flag@db/lk?sslmode=prefer",
            ],
            None,
        ),
        (
            vec![
                "store",
                "migrate",
                "--from",
                "/nonexistent",
                "--to",
                "postgres://lk:Pw-in-to@db/lk?sslmode=allow",
            ],
            None,
        ),
        (
            vec![
                "serve",
                "--print-config",
                "--store",
                "postgres://lk:Pw-no-ca@db/lk",
            ],
            None,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = latchkey(dir.path(), &args);
        if let Some(url) = env {
            cmd.env("LATCHKEY_STORE", url);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("store") || text.contains("--to"), "{text}");
        assert!(
            !text.contains("Pw-"),
            "the store password was quoted: {text}"
        );
    }
}
