#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
//! Cross-check against botocore (installed by `scripts/test`): over 1,200
//! random inputs, botocore's tokens verify, ours equal botocore's at the same
//! instant, and changing any single byte of a token makes it fail.

use std::process::Command;

use latchkey_dbtoken::{
    DbAuthToken, EndpointForm, TokenAction, TokenRequest, TokenVerifier, generate,
};
use latchkey_sigv4::{AmzDate, Credentials, TokenPlacement};
use serde_json::Value;

fn oracle_cases(seed: u64, count: usize) -> Vec<Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/botocore_oracle.py"
    );
    let out = Command::new("python3")
        .args([
            script,
            "generate",
            "--seed",
            &seed.to_string(),
            "--count",
            &count.to_string(),
        ])
        .output()
        .expect("python3 must be installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "botocore oracle failed (run scripts/test, which installs botocore): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<Value> = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(cases.len(), count);
    cases
}

struct Case<'a> {
    token: &'a str,
    secret: &'a str,
    credentials: Credentials,
    action: TokenAction,
    host: &'a str,
    port: Option<u16>,
    user: Option<&'a str>,
    region: &'a str,
    issued: AmzDate,
}

fn case(v: &Value) -> Case<'_> {
    let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k} missing"));
    let action = match s("action") {
        "connect" => TokenAction::Connect,
        "DbConnect" => TokenAction::DsqlConnect,
        "DbConnectAdmin" => TokenAction::DsqlConnectAdmin,
        other => panic!("unknown action {other}"),
    };
    Case {
        token: s("token"),
        secret: s("secret_access_key"),
        credentials: Credentials::new(
            s("access_key_id"),
            s("secret_access_key"),
            v["session_token"].as_str().map(str::to_owned),
        ),
        action,
        host: s("hostname"),
        port: v["port"].as_u64().map(|p| u16::try_from(p).unwrap()),
        user: v["username"].as_str(),
        region: s("region"),
        issued: AmzDate::from_unix(v["unix"].as_i64().unwrap()).unwrap(),
    }
}

#[test]
fn botocore_tokens_verify_and_ours_are_identical() {
    let verifier = TokenVerifier::new();
    let cases = oracle_cases(20_241_123, 1200);
    let mut kinds = [0usize; 3];
    let mut with_session = 0;
    for (i, v) in cases.iter().enumerate() {
        let c = case(v);
        let parsed = DbAuthToken::parse(c.token).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(parsed.action, c.action);
        assert_eq!(parsed.host, c.host);
        assert_eq!(parsed.port, c.port);
        assert_eq!(parsed.db_user.as_deref(), c.user);
        assert_eq!(parsed.issued_at(), c.issued);
        assert_eq!(
            parsed.presigned.security_token.as_deref(),
            c.credentials.session_token.as_deref()
        );
        kinds[c.action as usize] += 1;
        with_session += usize::from(c.credentials.session_token.is_some());

        // Valid from the signing second through the 900th second after it.
        for offset in [0, 1 + (i as i64 * 7919) % 899, 900] {
            let now = c.issued.saturating_add(offset);
            verifier
                .verify(&parsed, c.secret.as_bytes(), now, Some(c.region))
                .unwrap_or_else(|e| panic!("case {i} at +{offset}s: {e}"));
        }
        assert!(
            verifier
                .verify(
                    &parsed,
                    c.secret.as_bytes(),
                    c.issued.saturating_add(901),
                    None
                )
                .is_err()
        );
        assert!(
            verifier
                .verify(
                    &parsed,
                    c.secret.as_bytes(),
                    c.issued.saturating_add(-1),
                    None
                )
                .is_err()
        );
        assert!(
            verifier
                .verify(&parsed, b"wrong secret", c.issued, None)
                .is_err()
        );

        let ours = generate(
            &TokenRequest {
                host: c.host,
                port: c.port,
                action: c.action,
                db_user: c.user,
                region: c.region,
                time: c.issued,
                expires_in: 900,
                form: EndpointForm::Slash,
                token_placement: TokenPlacement::BeforeSignature,
            },
            &c.credentials,
        )
        .unwrap();
        assert_eq!(ours, c.token, "case {i}");
    }
    // The sample covers what it claims to.
    assert!(kinds.iter().all(|&n| n >= 50), "{kinds:?}");
    assert!(with_session >= 400);
}

#[test]
fn changing_any_byte_of_a_botocore_token_fails() {
    let verifier = TokenVerifier::new();
    let cases = oracle_cases(7, 1200);
    let mut checked = 0u64;
    for (i, v) in cases.iter().enumerate() {
        let c = case(v);
        let now = c.issued.saturating_add(450);
        // XOR 0x01 on every byte of every token; more patterns (0x02, 0x10,
        // 0x80 for invalid UTF-8) on the first 150. XOR 0x20 is left out: it
        // toggles letter case, and host names and %-escapes are
        // case-insensitive by design.
        let masks: &[u8] = if i < 150 {
            &[0x01, 0x02, 0x10, 0x80]
        } else {
            &[0x01]
        };
        let mut bytes = c.token.as_bytes().to_vec();
        for pos in 0..bytes.len() {
            for &mask in masks {
                bytes[pos] ^= mask;
                let outcome = DbAuthToken::parse_bytes(&bytes)
                    .and_then(|t| verifier.verify(&t, c.secret.as_bytes(), now, None));
                assert!(
                    outcome.is_err(),
                    "case {i}: flipping byte {pos} with {mask:#04x} still verifies"
                );
                bytes[pos] ^= mask;
                checked += 1;
            }
        }
    }
    assert!(checked > 500_000, "only {checked} mutations checked");
}
