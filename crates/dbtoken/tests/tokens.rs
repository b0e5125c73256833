#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
//! Token forms from every SDK, the spec vector, and rejection reasons.

use latchkey_dbtoken::{
    DbAuthToken, EndpointForm, MAX_TOKEN_LEN, TokenAction, TokenError, TokenRequest, TokenVerifier,
    generate,
};
use latchkey_sigv4::{AmzDate, Credentials, Malformed, SigV4Error, TokenPlacement};

const VECTOR: &str = "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89";

fn t0() -> AmzDate {
    AmzDate::parse("20240826T220000Z").unwrap()
}

fn creds(token: Option<&str>) -> Credentials {
    Credentials::new("akid", "secret", token.map(str::to_owned))
}

fn verify(token: &str, secret: &str, now: AmzDate) -> Result<(), TokenError> {
    let parsed = DbAuthToken::parse(token)?;
    TokenVerifier::new().verify(&parsed, secret.as_bytes(), now, None)
}

#[test]
fn spec_vector_generates_and_verifies() {
    let req = TokenRequest::rds(
        "prod-instance.us-east-1.rds.amazonaws.com",
        3306,
        "peccy",
        "us-east-1",
        t0(),
    );
    assert_eq!(generate(&req, &creds(None)).unwrap(), VECTOR);
    let parsed = DbAuthToken::parse(VECTOR).unwrap();
    assert_eq!(parsed.host, "prod-instance.us-east-1.rds.amazonaws.com");
    assert_eq!(parsed.port, Some(3306));
    assert_eq!(parsed.db_user.as_deref(), Some("peccy"));
    assert_eq!(parsed.access_key_id(), "akid");
    assert_eq!(parsed.region(), "us-east-1");
    assert_eq!(parsed.form, EndpointForm::Slash);
    assert_eq!(parsed.expires_at(), t0().saturating_add(900));
    assert_eq!(verify(VECTOR, "secret", t0().saturating_add(300)), Ok(()));
    assert_eq!(
        TokenVerifier::new().verify(&parsed, b"secret", t0(), Some("us-east-1")),
        Ok(())
    );
    assert!(matches!(
        TokenVerifier::new().verify(&parsed, b"secret", t0(), Some("eu-west-1")),
        Err(TokenError::Signature(SigV4Error::WrongRegion { .. }))
    ));
}

#[test]
fn lifetime_is_checked_to_the_second() {
    assert!(verify(VECTOR, "secret", t0().saturating_add(900)).is_ok());
    assert!(matches!(
        verify(VECTOR, "secret", t0().saturating_add(901)),
        Err(TokenError::Signature(SigV4Error::Expired { .. }))
    ));
    assert!(matches!(
        verify(VECTOR, "secret", t0().saturating_add(-1)),
        Err(TokenError::Signature(SigV4Error::NotYetValid { .. }))
    ));
    let mut skewed = TokenVerifier::new();
    skewed.clock_skew = 5;
    let parsed = DbAuthToken::parse(VECTOR).unwrap();
    assert!(
        skewed
            .verify(&parsed, b"secret", t0().saturating_add(-5), None)
            .is_ok()
    );
    assert_eq!(
        verify(VECTOR, "wrong", t0()),
        Err(TokenError::Signature(SigV4Error::SignatureMismatch))
    );
}

#[test]
fn go_form_rust_token_order_and_port_443_rule() {
    let session = "IQoJb3JpZ2luX2Vj+token/with=chars";
    for form in [EndpointForm::Slash, EndpointForm::Bare] {
        for placement in [
            TokenPlacement::BeforeSignature,
            TokenPlacement::AfterSignature,
        ] {
            for port in [443, 5432] {
                let req = TokenRequest {
                    form,
                    token_placement: placement,
                    ..TokenRequest::rds("Db.Example.COM", port, "jane doe@x+y/z", "eu-west-1", t0())
                };
                let token = generate(&req, &creds(Some(session))).unwrap();
                let prefix = if form == EndpointForm::Slash {
                    format!("Db.Example.COM:{port}/?Action=connect&DBUser=jane%20doe%40x%2By%2Fz&")
                } else {
                    format!("Db.Example.COM:{port}?Action=connect&DBUser=jane%20doe%40x%2By%2Fz&")
                };
                assert!(token.starts_with(&prefix), "{token}");
                let parsed = DbAuthToken::parse(&token).unwrap();
                assert_eq!(parsed.form, form);
                assert_eq!(parsed.db_user.as_deref(), Some("jane doe@x+y/z"));
                assert_eq!(parsed.presigned.security_token.as_deref(), Some(session));
                let expected_host = if port == 443 {
                    "db.example.com".to_owned()
                } else {
                    format!("db.example.com:{port}")
                };
                assert_eq!(parsed.canonical_host(), expected_host);
                assert_eq!(verify(&token, "secret", t0()), Ok(()));
            }
        }
    }
}

#[test]
fn host_signed_as_written_is_accepted_too() {
    // An SDK that does not lowercase the host signs "Db.Example.COM:5432".
    let lower = generate(
        &TokenRequest::rds("Db.Example.COM", 5432, "u", "r", t0()),
        &creds(None),
    )
    .unwrap();
    let sig_lower = DbAuthToken::parse(&lower).unwrap().presigned.signature;
    let query = lower.split_once('?').unwrap().1;
    let presigned = latchkey_sigv4::presign(
        &latchkey_sigv4::PresignRequest {
            method: "GET",
            path: "/",
            host: "Db.Example.COM:5432",
            params: &[("Action", "connect"), ("DBUser", "u")],
            region: "r",
            service: "rds-db",
            time: t0(),
            expires_in: 900,
            token_placement: TokenPlacement::BeforeSignature,
        },
        &creds(None),
    );
    assert_ne!(query, presigned);
    let as_written = format!("Db.Example.COM:5432/?{presigned}");
    assert_ne!(
        DbAuthToken::parse(&as_written).unwrap().presigned.signature,
        sig_lower
    );
    assert_eq!(verify(&as_written, "secret", t0()), Ok(()));
}

#[test]
fn dsql_tokens() {
    for admin in [false, true] {
        let token = generate(
            &TokenRequest::dsql("abc123.dsql.us-east-1.on.aws", admin, "us-east-1", t0()),
            &creds(None),
        )
        .unwrap();
        let action = if admin { "DbConnectAdmin" } else { "DbConnect" };
        assert!(token.starts_with(&format!(
            "abc123.dsql.us-east-1.on.aws/?Action={action}&X-Amz-"
        )));
        assert!(token.contains("%2Fdsql%2Faws4_request"));
        let parsed = DbAuthToken::parse(&token).unwrap();
        assert_eq!(parsed.port, None);
        assert_eq!(parsed.db_user, None);
        assert_eq!(
            parsed.action,
            if admin {
                TokenAction::DsqlConnectAdmin
            } else {
                TokenAction::DsqlConnect
            }
        );
        assert_eq!(verify(&token, "secret", t0()), Ok(()));
    }
    // A DSQL action signed for rds-db is the wrong service.
    let wrong = VECTOR.replace("Action=connect&DBUser=peccy", "Action=DbConnect");
    assert!(matches!(
        verify(&wrong, "secret", t0()),
        Err(TokenError::Signature(SigV4Error::WrongService { .. }))
    ));
}

#[test]
fn ipv6_hosts() {
    let token = generate(
        &TokenRequest::rds("[::1]", 5432, "u", "r", t0()),
        &creds(None),
    )
    .unwrap();
    assert!(token.starts_with("[::1]:5432/?"));
    let parsed = DbAuthToken::parse(&token).unwrap();
    assert_eq!(parsed.host, "[::1]");
    assert_eq!(verify(&token, "secret", t0()), Ok(()));
}

#[test]
fn long_tokens_up_to_the_limit() {
    let session = "A".repeat(6000);
    let token = generate(
        &TokenRequest::rds("db.example.com", 5432, "u", "r", t0()),
        &creds(Some(&session)),
    )
    .unwrap();
    assert!(token.len() > 6000);
    assert_eq!(verify(&token, "secret", t0()), Ok(()));
    let huge = "a".repeat(MAX_TOKEN_LEN + 1);
    assert!(matches!(
        DbAuthToken::parse(&huge),
        Err(TokenError::TooLong { .. })
    ));
}

#[test]
fn malformed_tokens_say_why() {
    let cases: &[(&str, &str)] = &[
        ("", "expected host:port/?query"),
        ("db.example.com:5432/", "expected host:port/?query"),
        (
            "db.example.com/?Action=connect&DBUser=u",
            "a connect token needs host:port",
        ),
        ("db.example.com:0/?Action=connect&DBUser=u", "port must be"),
        (
            "db.example.com:05432/?Action=connect&DBUser=u",
            "port must be",
        ),
        (
            "db.example.com:99999/?Action=connect&DBUser=u",
            "port must be",
        ),
        (
            "db example.com:5432/?Action=connect&DBUser=u",
            "host must be",
        ),
        ("user@db:5432/?Action=connect&DBUser=u", "host must be"),
        (":5432/?Action=connect&DBUser=u", "host must be"),
        ("[::1:5432/?Action=connect&DBUser=u", "closing ']'"),
        ("db:5432/?Action=drop&DBUser=u", "Action must be"),
        ("db:5432/?DBUser=u", "Action must be"),
        ("db:5432/?Action=connect", "needs DBUser"),
        ("db:5432/?Action=connect&DBUser=", "DBUser is empty"),
        ("db:5432/?Action=connect&DBUser=%FF", "not UTF-8"),
        (
            "db:5432/?Action=connect&DBUser=a&DBUser=b",
            "more than once",
        ),
        ("db/?Action=DbConnect&DBUser=a", "has no DBUser"),
        (
            "db:5432/?Action=connect&DBUser=u",
            "missing X-Amz-Algorithm",
        ),
    ];
    for (token, reason) in cases {
        let err = DbAuthToken::parse(token).unwrap_err().to_string();
        assert!(
            err.contains(reason),
            "{token:?}: got {err:?}, want {reason:?}"
        );
    }
    assert_eq!(
        DbAuthToken::parse_bytes(b"db:5432/?Action=\xff").unwrap_err(),
        TokenError::NotUtf8
    );
    let expired_max = VECTOR.replace("X-Amz-Expires=900", "X-Amz-Expires=901");
    assert_eq!(
        verify(&expired_max, "secret", t0()),
        Err(TokenError::Signature(SigV4Error::ExpiryTooLong {
            expires: 901,
            max: 900
        }))
    );
    let no_host = VECTOR.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-amz-date");
    assert!(matches!(
        verify(&no_host, "secret", t0()),
        Err(TokenError::Signature(SigV4Error::Malformed(
            Malformed::SignedHeaders(_)
        )))
    ));
}

#[test]
fn generation_rejects_bad_requests() {
    let c = creds(None);
    let bad = |req: TokenRequest<'_>| generate(&req, &c).unwrap_err();
    assert!(matches!(
        bad(TokenRequest::rds("", 1, "u", "r", t0())),
        TokenError::InvalidRequest(_)
    ));
    assert!(matches!(
        bad(TokenRequest::rds("h", 1, "", "r", t0())),
        TokenError::InvalidRequest(_)
    ));
    assert!(matches!(
        bad(TokenRequest::rds("h", 1, "u", "", t0())),
        TokenError::InvalidRequest(_)
    ));
    assert!(matches!(
        bad(TokenRequest {
            expires_in: 901,
            ..TokenRequest::rds("h", 1, "u", "r", t0())
        }),
        TokenError::InvalidRequest(_)
    ));
    assert!(matches!(
        bad(TokenRequest {
            expires_in: 0,
            ..TokenRequest::rds("h", 1, "u", "r", t0())
        }),
        TokenError::InvalidRequest(_)
    ));
}

#[test]
fn errors_do_not_leak_the_token() {
    let session = "SECRET-SESSION-TOKEN-VALUE";
    let token = generate(
        &TokenRequest::rds("db.example.com", 5432, "u", "r", t0()),
        &creds(Some(session)),
    )
    .unwrap();
    let parsed = DbAuthToken::parse(&token).unwrap();
    let debug = format!("{parsed:?}");
    assert!(!debug.contains(session), "{debug}");
    let sig = parsed.presigned.signature.to_hex();
    assert!(!debug.contains(&sig));
    let err = TokenVerifier::new()
        .verify(&parsed, b"wrong", t0(), None)
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(&sig[..16]));
}

proptest::proptest! {
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let _ = DbAuthToken::parse_bytes(&bytes);
    }

    #[test]
    fn parser_never_panics_on_near_tokens(cut in 0usize..VECTOR.len(), insert in "\\PC{0,8}") {
        let mut s = VECTOR.to_owned();
        let at = (0..=cut).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.insert_str(at, &insert);
        if let Ok(t) = DbAuthToken::parse(&s) {
            let _ = TokenVerifier::new().verify(&t, b"secret", t0(), None);
        }
    }

    #[test]
    fn generate_parse_verify_round_trip(
        host in "[a-zA-Z][a-zA-Z0-9-]{0,20}(\\.[a-zA-Z][a-zA-Z0-9]{0,10}){0,3}",
        port in 1u16..,
        user in "\\PC{1,40}",
        secs in 0i64..4_000_000_000,
        session in proptest::option::of("[A-Za-z0-9+/=]{1,300}"),
    ) {
        let time = AmzDate::from_unix(secs).unwrap();
        let token = generate(&TokenRequest::rds(&host, port, &user, "us-east-1", time), &creds(session.as_deref())).unwrap();
        let parsed = DbAuthToken::parse(&token).unwrap();
        proptest::prop_assert_eq!(parsed.db_user.as_deref(), Some(user.as_str()));
        proptest::prop_assert!(TokenVerifier::new().verify(&parsed, b"secret", time, Some("us-east-1")).is_ok());
    }
}
