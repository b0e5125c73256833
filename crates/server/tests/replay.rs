#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! A signed API request proves possession of its credential only the first
//! time it is presented: a captured request can be sent again while its
//! date is within the clock skew, and that must not count as proof.

use latchkey_audit::FailureKind;
use latchkey_identity::AppState;
use latchkey_server::auth::{SignedRequest, authenticate};
use latchkey_session::{SessionClaims, TemporaryCredentials};
use latchkey_sigv4::{AmzDate, Credentials, SignRequest, sign_request};
use latchkey_store::{Store, Vault};

const NOW: i64 = 1_700_000_000;
const USER: &str = "arn:aws:iam::123456789012:user/alice";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn state(dir: &std::path::Path) -> AppState {
    let store = Store::open(&dir.join("s.db"), Vault::new(1, &[4; 32])).unwrap();
    let keys = store.cluster_keys(NOW).unwrap();
    AppState::new(store, keys).unwrap()
}

fn session(state: &AppState, n: u8) -> TemporaryCredentials {
    let claims = SessionClaims {
        token_id: [n; 16],
        principal_arn: USER.into(),
        issued: NOW - 10,
        expires: NOW + 3600,
        ..SessionClaims::default()
    };
    state
        .keyring
        .read()
        .unwrap()
        .seal(&claims, [n; 12])
        .unwrap()
}

/// A request signed at `signed_at`: its headers, `Authorization` last.
fn signed(c: &TemporaryCredentials, signed_at: i64) -> Vec<(String, String)> {
    let date = AmzDate::from_unix(signed_at).unwrap().to_string();
    let headers = [
        ("host", "localhost"),
        ("x-amz-date", date.as_str()),
        ("x-amz-security-token", c.session_token.as_str()),
    ];
    let auth = sign_request(
        &SignRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_hash: EMPTY_SHA256,
            region: "us-east-1",
            service: "sts",
            time: AmzDate::from_unix(signed_at).unwrap(),
        },
        &Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.as_str(),
            Some(c.session_token.clone()),
        ),
    )
    .unwrap();
    headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([("authorization".to_owned(), auth)])
        .collect()
}

/// Presents the request at `now`: Ok(proven) or the refusal's
/// (code, kind, proven).
fn present(
    state: &AppState,
    headers: &[(String, String)],
    now: i64,
) -> Result<bool, (&'static str, Option<FailureKind>, bool)> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let req = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        header: &header,
        header_names: &names,
        body: b"",
        source_ip: "192.0.2.1".into(),
    };
    authenticate(state, &req, "sts", now)
        .map(|s| s.possession_proven)
        .map_err(|e| (e.code, e.failure, e.possession_proven))
}

#[test]
fn a_request_sent_again_is_let_in_but_proves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let c = session(&state, 1);
    let request = signed(&c, NOW);
    assert_eq!(present(&state, &request, NOW), Ok(true));
    // Replayed within the skew: still authenticated, as AWS does.
    assert_eq!(present(&state, &request, NOW + 5), Ok(false));
    assert_eq!(present(&state, &request, NOW + 600), Ok(false));
    // The same client's next request is signed afresh.
    assert_eq!(present(&state, &signed(&c, NOW + 1), NOW + 1), Ok(true));
    // Past the skew it is refused (and proves nothing either way).
    assert!(matches!(
        present(&state, &request, NOW + 901),
        Err(("RequestExpired", _, false))
    ));
}

#[test]
fn a_revoked_credential_replayed_proves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let c = session(&state, 2);
    let seen = signed(&c, NOW);
    assert_eq!(present(&state, &seen, NOW), Ok(true));
    state.store.revoke_sessions(USER, NOW).unwrap();
    state.reload_revocations().unwrap();
    let revoked = Some(FailureKind::Revoked);
    // A captured request, replayed after the revocation: the signature
    // verifies but was seen before.
    assert_eq!(
        present(&state, &seen, NOW + 1),
        Err(("AccessDenied", revoked, false))
    );
    // A new request signed with the secret proves its holder is back.
    let fresh = signed(&c, NOW + 2);
    assert_eq!(
        present(&state, &fresh, NOW + 2),
        Err(("AccessDenied", revoked, true))
    );
    assert_eq!(
        present(&state, &fresh, NOW + 3),
        Err(("AccessDenied", revoked, false))
    );
}

#[test]
fn the_set_is_shared_with_the_gateways() {
    // The gateways record database tokens in the same set: a signature
    // first presented anywhere is a repeat everywhere.
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let c = session(&state, 3);
    let request = signed(&c, NOW);
    let auth = &request.last().unwrap().1;
    let hex = auth.rsplit("Signature=").next().unwrap();
    let signature = latchkey_sigv4::Signature::parse_hex(hex).unwrap();
    assert!(
        state
            .seen_signatures
            .first_sight(signature.as_bytes(), NOW + 900, NOW)
    );
    assert_eq!(present(&state, &request, NOW + 1), Ok(false));
}
