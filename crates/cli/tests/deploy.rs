#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! `deploy/`: the Kubernetes manifests pass the API's own schemas
//! (kubernetes-validate, strict: no unknown field) and a broken one does
//! not; the ConfigMap's `latchkey.toml` is one `latchkey serve` accepts;
//! the Dockerfile runs latchkey as a non-root user under an init that
//! forwards SIGTERM, with settings the CLI knows.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("kubernetes-validate")
        .args(["--strict", "--no-warn"])
        .args(files)
        .output()
        .expect("kubernetes-validate (scripts/test installs it with pip)")
}

#[test]
fn manifests_pass_the_kubernetes_schemas() {
    let manifests: Vec<PathBuf> = std::fs::read_dir(deploy().join("k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert!(manifests.len() >= 4);
    let out = validate(&manifests);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for kind in [
        "statefulset/latchkey",
        "service/latchkey",
        "configmap/latchkey-config",
        "secret/latchkey-secrets",
        "poddisruptionbudget/latchkey",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{kind}: {text}"
        );
    }
    // The check can fail: a misspelt field is refused.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("statefulset.yaml");
    let text = std::fs::read_to_string(deploy().join("k8s/statefulset.yaml")).unwrap();
    std::fs::write(&broken, text.replace("readinessProbe:", "readinesProbe:")).unwrap();
    assert!(!validate(&[broken]).status.success());
}

#[test]
fn the_configmap_is_a_configuration_latchkey_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("latchkey.toml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['data']['latchkey.toml'])",
        ])
        .arg(deploy().join("k8s/config.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&toml, &out.stdout).unwrap();
    let out = latchkey(&["serve", "--print-config"])
        .env("LATCHKEY_CONFIG", &toml)
        .env(
            "LATCHKEY_STORE",
            "postgres://latchkey:pw-not-shown@store-pg:5432/latchkey?sslrootcert=/etc/latchkey/store-ca/ca.pem",
        )
        .env_remove("LATCHKEY_MYSQL_LISTEN")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        r#"store = "postgres://latchkey@store-pg:5432/latchkey?sslrootcert=/etc/latchkey/store-ca/ca.pem""#,
        r#"drain_timeout = "30s""#,
        r#"metrics_listen = "0.0.0.0:9090""#,
        r#"listen = "0.0.0.0:5433""#,
        "token_port = 5432",
        "token_port = 3306",
    ] {
        assert!(shown.contains(line), "{line} not in:\n{shown}");
    }
    assert!(
        !shown.contains("pw-not-shown"),
        "the store password was shown"
    );
}

#[test]
fn the_image_runs_latchkey_unprivileged_with_known_settings() {
    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("\nUSER 10001:10001\n"));
    assert!(dockerfile.contains("AS build") && dockerfile.contains("FROM debian:bookworm-slim"));
    assert!(
        dockerfile.contains(r#"ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/latchkey"]"#)
    );
    let help = latchkey(&["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let vars: Vec<&str> = dockerfile
        .split(|c: char| c.is_whitespace() || c == '=')
        .filter(|w| w.starts_with("LATCHKEY_"))
        .collect();
    assert!(vars.len() >= 5, "{vars:?}");
    for var in vars {
        assert!(
            help.contains(var),
            "{var} is not a setting of latchkey serve"
        );
    }
}
