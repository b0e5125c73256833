#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
//! Published vectors: the RDS auth-token vector (aws-sdk-rust, reproduced
//! with botocore) and the official SigV4 test-suite cases named in
//! shared/spec/aws-compat.md.

use latchkey_sigv4::{
    AmzDate, AuthorizationHeader, CanonicalRequest, Credentials, EMPTY_PAYLOAD_SHA256,
    Expectations, Malformed, PresignRequest, PresignedQuery, Scope, SigV4Error, SignRequest,
    SigningKey, TokenPlacement, Verifier, presign, sign_request,
};

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn suite_credentials() -> Credentials {
    Credentials::new("AKIDEXAMPLE", SUITE_SECRET, None)
}

fn at(text: &str) -> AmzDate {
    AmzDate::parse(text).unwrap()
}

fn expect<'a>(service: &'a str, now: &str) -> Expectations<'a> {
    Expectations {
        service,
        region: Some("us-east-1"),
        now: at(now),
        max_expires: 604_800,
        clock_skew: 900,
    }
}

#[test]
fn rds_token_vector_canonical_request_and_signature() {
    let query = "Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host";
    let host = "prod-instance.us-east-1.rds.amazonaws.com:3306";
    let cr = CanonicalRequest::new(
        "GET",
        "/",
        query,
        "host",
        |n| (n == "host").then_some(host),
        EMPTY_PAYLOAD_SHA256,
    )
    .unwrap();
    assert_eq!(
        cr.to_text(),
        "GET\n/\n".to_owned()
            + query
            + "\nhost:prod-instance.us-east-1.rds.amazonaws.com:3306\n\nhost\n"
            + EMPTY_PAYLOAD_SHA256
    );
    let time = at("20240826T220000Z");
    let scope = Scope {
        date: time.date_stamp(),
        region: "us-east-1",
        service: "rds-db",
    };
    let signature = cr.sign(&SigningKey::derive(b"secret", &scope), time, &scope);
    assert_eq!(
        hex::encode(signature),
        "dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
    );
}

#[test]
fn suite_get_vanilla_header_auth() {
    let headers = [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
    ];
    let req = SignRequest {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        payload_hash: EMPTY_PAYLOAD_SHA256,
        region: "us-east-1",
        service: "service",
        time: at("20150830T123600Z"),
    };
    let authorization = sign_request(&req, &suite_credentials()).unwrap();
    assert_eq!(
        authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );

    let parsed = AuthorizationHeader::parse(&authorization).unwrap();
    assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");
    let lookup = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    for verifier in [Verifier::uncached(), Verifier::with_cache(16)] {
        let check = |path: &str, secret: &str, service: &str, now: &str| {
            verifier.verify_header(
                &parsed,
                "GET",
                path,
                "",
                lookup,
                EMPTY_PAYLOAD_SHA256,
                secret.as_bytes(),
                &expect(service, now),
            )
        };
        let now = "20150830T124000Z";
        assert_eq!(check("/", SUITE_SECRET, "service", now), Ok(()));
        assert_eq!(
            check("/", "not the secret", "service", now),
            Err(SigV4Error::SignatureMismatch)
        );
        assert_eq!(
            check("/other", SUITE_SECRET, "service", now),
            Err(SigV4Error::SignatureMismatch)
        );
        let late = check("/", SUITE_SECRET, "service", "20150830T130000Z");
        assert!(
            matches!(late, Err(SigV4Error::ClockSkew { .. })),
            "{late:?}"
        );
        assert!(matches!(
            check("/", SUITE_SECRET, "sts", now),
            Err(SigV4Error::WrongService { .. })
        ));
    }
}

fn suite_presigned(placement: TokenPlacement, token: Option<&str>) -> String {
    let mut creds = suite_credentials();
    creds.session_token = token.map(str::to_owned);
    presign(
        &PresignRequest {
            method: "GET",
            path: "/",
            host: "example.amazonaws.com",
            params: &[("Param2", "value2"), ("Param1", "value1")],
            region: "us-east-1",
            service: "service",
            time: at("20150830T123600Z"),
            expires_in: 3600,
            token_placement: placement,
        },
        &creds,
    )
}

#[test]
fn suite_get_vanilla_query_order_key_case_presigned() {
    let query = suite_presigned(TokenPlacement::BeforeSignature, None);
    assert_eq!(
        query,
        "Param2=value2&Param1=value1&X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request\
         &X-Amz-Date=20150830T123600Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host\
         &X-Amz-Signature=86012e2c9ad4d77369f5d81c11f75158aae4f895a085212cc6d3f923d300bed5"
    );
    let parsed = PresignedQuery::parse(&query).unwrap();
    let host = |n: &str| (n == "host").then_some("example.amazonaws.com");
    let verifier = Verifier::with_cache(8);
    let e = expect("service", "20150830T130000Z");
    assert_eq!(
        verifier.verify_presigned(&parsed, "GET", "/", host, SUITE_SECRET.as_bytes(), &e),
        Ok(())
    );
    let after = expect("service", "20150830T133601Z");
    assert!(matches!(
        verifier.verify_presigned(&parsed, "GET", "/", host, SUITE_SECRET.as_bytes(), &after),
        Err(SigV4Error::Expired { .. })
    ));
    let before = expect("service", "20150830T120000Z");
    assert!(matches!(
        verifier.verify_presigned(&parsed, "GET", "/", host, SUITE_SECRET.as_bytes(), &before),
        Err(SigV4Error::NotYetValid { .. })
    ));
    let mut short = expect("service", "20150830T130000Z");
    short.max_expires = 900;
    assert_eq!(
        verifier.verify_presigned(&parsed, "GET", "/", host, SUITE_SECRET.as_bytes(), &short),
        Err(SigV4Error::ExpiryTooLong {
            expires: 3600,
            max: 900
        })
    );
    let mut other_region = expect("service", "20150830T130000Z");
    other_region.region = Some("eu-west-1");
    assert!(matches!(
        verifier.verify_presigned(
            &parsed,
            "GET",
            "/",
            host,
            SUITE_SECRET.as_bytes(),
            &other_region
        ),
        Err(SigV4Error::WrongRegion { .. })
    ));
    let other_host = |n: &str| (n == "host").then_some("evil.example.com");
    assert_eq!(
        verifier.verify_presigned(&parsed, "GET", "/", other_host, SUITE_SECRET.as_bytes(), &e),
        Err(SigV4Error::SignatureMismatch)
    );
}

#[test]
fn session_token_is_signed_in_either_position() {
    let token = "FQoGZXIvYXdzE//token+with/odd=chars";
    let before = suite_presigned(TokenPlacement::BeforeSignature, Some(token));
    let after = suite_presigned(TokenPlacement::AfterSignature, Some(token));
    assert_ne!(before, after);
    let sig = |q: &str| PresignedQuery::parse(q).unwrap().signature;
    assert_eq!(sig(&before), sig(&after));
    assert!(after.ends_with("&X-Amz-Security-Token=FQoGZXIvYXdzE%2F%2Ftoken%2Bwith%2Fodd%3Dchars"));
    let host = |n: &str| (n == "host").then_some("example.amazonaws.com");
    let e = expect("service", "20150830T130000Z");
    for q in [&before, &after] {
        let parsed = PresignedQuery::parse(q).unwrap();
        assert_eq!(parsed.security_token.as_deref(), Some(token));
        assert_eq!(
            Verifier::uncached().verify_presigned(
                &parsed,
                "GET",
                "/",
                host,
                SUITE_SECRET.as_bytes(),
                &e
            ),
            Ok(())
        );
    }
    // Dropping the token must break the signature: it is signed.
    let stripped = before.replace(
        "&X-Amz-Security-Token=FQoGZXIvYXdzE%2F%2Ftoken%2Bwith%2Fodd%3Dchars",
        "",
    );
    let parsed = PresignedQuery::parse(&stripped).unwrap();
    assert_eq!(
        Verifier::uncached().verify_presigned(
            &parsed,
            "GET",
            "/",
            host,
            SUITE_SECRET.as_bytes(),
            &e
        ),
        Err(SigV4Error::SignatureMismatch)
    );
}

#[test]
fn malformed_presigned_queries_say_why() {
    let good = suite_presigned(TokenPlacement::BeforeSignature, None);
    let cases: &[(&str, SigV4Error)] = &[
        ("", Malformed::Missing("X-Amz-Algorithm").into()),
        (
            &good.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
            SigV4Error::UnsupportedAlgorithm,
        ),
        (
            &good.replace("X-Amz-Date=20150830T123600Z", "X-Amz-Date=20150831T123600Z"),
            Malformed::CredentialDate.into(),
        ),
        (
            &good.replace("X-Amz-Expires=3600", "X-Amz-Expires=-1"),
            Malformed::Expires.into(),
        ),
        (
            &format!("{good}&X-Amz-Date=20150830T123600Z"),
            Malformed::Duplicate("X-Amz-Date").into(),
        ),
        (
            &good.replace("X-Amz-Signature=86012e", "X-Amz-Signature=86012E"),
            Malformed::Signature.into(),
        ),
        (
            &good.replace("&X-Amz-SignedHeaders=host", ""),
            Malformed::Missing("X-Amz-SignedHeaders").into(),
        ),
        (
            &format!("{good}&X-Amz-Expire%73=604800"),
            Malformed::Query("parameter names must not be percent-encoded").into(),
        ),
    ];
    for (query, want) in cases {
        let got = PresignedQuery::parse(query).map(|_| ());
        assert_eq!(got.as_ref().err(), Some(want), "query {query:?}");
    }
}

#[test]
fn errors_never_show_a_full_signature_or_secret() {
    let query = suite_presigned(TokenPlacement::BeforeSignature, None);
    let parsed = PresignedQuery::parse(&query).unwrap();
    let debug = format!("{parsed:?}");
    assert!(!debug.contains("86012e2c9ad4d77369f5d81c11f75158aae4f895a085212cc6d3f923d300bed5"));
    let creds = format!("{:?}", suite_credentials());
    assert!(!creds.contains(SUITE_SECRET));
    let err = Verifier::uncached()
        .verify_presigned(
            &parsed,
            "GET",
            "/x",
            |n| (n == "host").then_some("example.amazonaws.com"),
            SUITE_SECRET.as_bytes(),
            &expect("service", "20150830T130000Z"),
        )
        .unwrap_err()
        .to_string();
    assert_eq!(err, "signature does not match");
}
