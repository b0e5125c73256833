//! Unit tests of the configuration: precedence of the layers, the
//! deprecated keys, flags and variables, validation, and redaction.

#![allow(clippy::unwrap_used)]

use clap::Parser;

use std::time::Duration;

use super::settings::{Settings, redact_url};
use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
}

/// Resolves `toml` (as the file), `env` (the deprecated variables
/// clap does not read) and `flags`, returning warnings too.
fn resolve(
    toml: &str,
    env: &[(&str, &str)],
    flags: &[&str],
) -> Result<(Config, Vec<String>), ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, toml).unwrap();
    let args = ["latchkey", "--config", path.to_str().unwrap()]
        .into_iter()
        .chain(flags.iter().copied());
    let server = Cli::try_parse_from(args).unwrap().server;
    let lookup = |var: &str| {
        env.iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| (*v).to_owned())
    };
    let mut warnings = Vec::new();
    let config = server.resolve_with(&lookup, &mut warnings)?;
    Ok((config, warnings))
}

#[test]
fn defaults_are_the_runtime_defaults() {
    let (c, warnings) = resolve("", &[], &[]).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(c.api, latchkey_server::http::ApiLimits::default());
    assert_eq!(c.settings, Settings::default());
    assert!(c.settings.detection.enabled);
    let runtime = latchkey_gateway::GatewayConfig::new("us-east-1", 6432);
    let pg = &c.postgres_gateway;
    assert_eq!(pg.limits.total, runtime.limits.total);
    assert_eq!(pg.startup_timeout, runtime.startup_timeout);
    assert_eq!(pg.max_message_size, runtime.max_message_size);
    assert_eq!(pg.pool.max_lifetime, runtime.pool.max_lifetime);
    assert_eq!(pg.threads, runtime.threads);
    assert!(pg.audit_statements && pg.end_sessions_on_revocation);
    assert_eq!(c.audit.dir, PathBuf::from("latchkey-data/audit"));
    assert_eq!(c.mysql_gateway.port, 3307);
    assert!(c.detection.is_some() && c.webhook.is_none());
}

#[test]
fn defaults_then_file_then_environment_then_flags() {
    let file = "[gateway]\nmax_connections = 3\nthreads = 2\npool_size = 1\n\
                    [api]\nmetrics = true\nmax_connections = 50\n";
    let env = [("LATCHKEY_PG_THREADS", "4"), ("LATCHKEY_PG_POOL_SIZE", "5")];
    let flags = ["--gateway-pool-size", "6", "--api-metrics=false"];
    let (c, _) = resolve(file, &env, &flags).unwrap();
    let g = &c.settings.gateway;
    assert_eq!(g.max_connections, 3, "file over default");
    assert_eq!(g.threads, 4, "environment over file");
    assert_eq!(g.pool_size, 6, "flag over environment");
    assert_eq!(g.max_connections_per_ip, 1_000, "default");
    assert!(!c.api.metrics, "a flag turns off what the file turned on");
    assert_eq!(c.api.max_connections, 50);
    assert_eq!(c.postgres_gateway.threads, 4);
    assert_eq!(c.mysql_gateway.pool.max_idle_per_key, 6);
}

#[test]
fn old_names_still_work() {
    let file = "pg_threads = 3\npg_listen = \"127.0.0.1:7000\"\nno_detection = true\n\
                    no_statement_audit = true\napi_metrics = true\naudit_retention = \"90days\"\n\
                    pg_pool_size = 8\n[gateway]\npool_size = 9\n";
    let flags = [
        "--pg-max-message-size",
        "1024",
        "--pg-allow-plaintext",
        "--pg-connection-rate-per-ip",
        "0",
        "--no-detection=false",
    ];
    let (c, warnings) = resolve(file, &[], &flags).unwrap();
    assert_eq!(c.postgres_gateway.threads, 3);
    assert_eq!(c.postgres_listen.port(), 7000);
    assert_eq!(c.settings.gateway.pool_size, 9, "the section's key wins");
    assert!(!c.postgres_gateway.audit_statements);
    assert!(c.api.metrics);
    assert_eq!(c.audit.retention, Some(Duration::from_secs(90 * 86_400)));
    assert_eq!(c.postgres_gateway.max_message_size, 1024);
    assert!(c.postgres_gateway.allow_plaintext);
    assert!(!c.mysql_gateway.allow_plaintext, "never for MySQL");
    assert!(c.postgres_gateway.new_connections_per_ip.is_none());
    assert!(c.detection.is_some(), "the flag wins over the file");
    assert_eq!(warnings.len(), 7);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("pg_threads") && w.contains("gateway.threads")),
        "{warnings:?}"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    for (text, key, line) in [
        ("[api]\nlisten = \"127.0.0.1:1\"\n\nbogus = 1\n", "bogus", 4),
        ("data_dir = \"d\"\npg_thread = 2\n", "pg_thread", 2),
        ("[gateway.postgres]\nthreads = 2\n", "threads", 2),
        (
            "[detection]\nenabled = true\n[detection.brute_force]\nthreshhold = 3\n",
            "threshhold",
            4,
        ),
    ] {
        let err = resolve(text, &[], &[]).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
        assert!(err.contains(&format!("line {line}")), "{err}");
    }
    let err = resolve("[gateway]\nstartup_timeout = \"soon\"\n", &[], &[])
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("not a duration"),
        "{err}"
    );
}

#[test]
fn values_are_checked() {
    for (file, flags, want) in [
        (
            "[api]\nidle_timeout = \"0s\"\n",
            &[][..],
            "[api] idle_timeout",
        ),
        ("", &["--gateway-threads", "0"][..], "[gateway] threads"),
        (
            "",
            &["--pg-connection-rate-per-ip=-1"][..],
            "connection_rate_per_ip",
        ),
        (
            "[webhook]\nurl = \"http://h/x\"\n",
            &[][..],
            "needs a secret",
        ),
    ] {
        let err = resolve(file, &[], flags)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
    let err = resolve("", &[("LATCHKEY_PG_THREADS", "many")], &[])
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("LATCHKEY_PG_THREADS"), "{err}");
}

#[test]
fn printed_configuration_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cr3t-s3cr3t-s3cr3t\n").unwrap();
    let file = format!(
        "[webhook]\nurl = \"https://bob:hunter2@hooks.example.com/services/T0/XYZ?token=abc\"\n\
             secret_file = {:?}\n[detection.brute_force]\nthreshold = 5\n\
             [[databases]]\nname = \"orders\"\nendpoints = [\"o\"]\nupstream = \"10.0.0.5:5432\"\n\
             password_env = {{ app = \"ORDERS_PASSWORD\" }}\n",
        secret.to_str().unwrap()
    );
    let (c, _) = resolve(&file, &[], &[]).unwrap();
    assert_eq!(
        c.webhook.as_ref().unwrap().secret.as_slice(),
        b"s3cr3t-s3cr3t-s3cr3t"
    );
    let redacted = c.settings.redacted();
    let text = toml::to_string(&redacted).unwrap();
    for hidden in ["hunter2", "bob", "XYZ", "token", "s3cr3t"] {
        assert!(!text.contains(hidden), "{hidden} in {text}");
    }
    assert_eq!(
        redacted.webhook.url.as_deref(),
        Some("https://hooks.example.com/<redacted>")
    );
    assert!(
        text.contains("[detection.brute_force]\nthreshold = 5"),
        "{text}"
    );
    assert!(text.contains("ORDERS_PASSWORD"), "{text}");
    // What is printed reads back as the same configuration.
    let again = resolve(&text, &[], &[]);
    assert!(
        matches!(again, Err(ConfigError::Invalid(ref e)) if e.contains("secret")) || again.is_ok()
    );
    assert_eq!(
        redact_url("http://hooks.example.com"),
        "http://hooks.example.com"
    );
}

#[test]
fn a_parse_error_never_echoes_the_line() {
    // A secret put where no secret belongs must not reach the log.
    let err = resolve(
        "[webhook]\nurl = \"https://hooks.example/x\"\nsecret = \"hunter2-very-secret\"\n",
        &[],
        &[],
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(err.contains("secret") && err.contains("line 3"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_zero_startup_timeout_is_refused() {
    let err = resolve("", &[], &["--gateway-startup-timeout", "0s"])
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("startup_timeout must be more than 0s"),
        "{err}"
    );
}

#[test]
fn deprecated_variables_are_named_with_their_successor() {
    let (config, warnings) = resolve("", &[("LATCHKEY_PG_THREADS", "3")], &[]).unwrap();
    assert_eq!(config.postgres_gateway.threads, 3);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("$LATCHKEY_PG_THREADS") && w.contains("$LATCHKEY_GATEWAY_THREADS")),
        "{warnings:?}"
    );
}
