use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::trail::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

pub(crate) fn identity() -> Identity {
    Identity {
        kind: IdentityKind::AssumedRole,
        arn: "arn:aws:sts::123456789012:assumed-role/app/s1".into(),
        principal_id: "AROAEXAMPLE:s1".into(),
        account_id: "123456789012".into(),
        access_key_id: "ASIAEXAMPLE".into(),
        session: Some(SessionContext {
            mfa_authenticated: true,
            creation_date: UNIX_EPOCH + Duration::from_secs(1_795_443_728),
            issuer: SessionIssuer {
                kind: "Role",
                arn: "arn:aws:iam::123456789012:role/app".into(),
                principal_id: "AROAEXAMPLE".into(),
                account_id: "123456789012".into(),
                user_name: "app".into(),
            },
            source_ip: "10.0.0.1".into(),
        }),
    }
}

fn session() -> Arc<SessionInfo> {
    Arc::new(SessionInfo {
        session_id: "s1".into(),
        engine: "postgres",
        identity: identity(),
        source_ip: ip("127.0.0.1"),
        user_agent: Some("psql".into()),
        database: "orders".into(),
        resource_arn: "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-X/app".into(),
        database_name: "orders".into(),
        db_user: "app".into(),
        started: UNIX_EPOCH,
    })
}

pub(crate) fn statement(text: &str, secs: u64) -> Event {
    Event::Statement(StatementEvent {
        session: session(),
        statement: Arc::new(Statement {
            text: text.into(),
            fingerprint: 0xabc,
            truncated: false,
        }),
        protocol: Protocol::Extended,
        time: UNIX_EPOCH + Duration::from_secs(secs),
        duration: Duration::from_micros(1500),
        command_tag: Some("SELECT 1".into()),
        rows: Some(1),
        error_code: None,
    })
}

const CTX: RecordContext<'static> = RecordContext {
    region: "us-east-1",
    account: "123456789012",
    event_id: "e1",
};

fn to_json(e: &Event) -> serde_json::Value {
    let mut text = String::new();
    e.write_json(&mut text, &CTX);
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

#[test]
fn dates_are_rfc3339_and_parse_back() {
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    let t = UNIX_EPOCH + Duration::from_millis(1_795_443_728_123);
    assert_eq!(rfc3339(t), "2026-11-23T14:22:08.123Z");
    assert_eq!(
        parse_time_ms("2026-11-23T14:22:08.123Z"),
        Some(1_795_443_728_123)
    );
    assert_eq!(
        parse_time_ms("2026-11-23T14:22:08Z"),
        Some(1_795_443_728_000)
    );
    let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
    assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    for bad in [
        "",
        "2026-11-23",
        "2026-13-23T14:22:08Z",
        "2026-11-23T14:22:08.Z",
        "2026-11-23T14:22:08+01:00",
    ] {
        assert_eq!(parse_time_ms(bad), None, "{bad}");
    }
}

#[test]
fn row_counts() {
    assert_eq!(rows_from_tag("SELECT 5"), Some(5));
    assert_eq!(rows_from_tag("INSERT 0 7"), Some(7));
    assert_eq!(rows_from_tag("COPY 1000000"), Some(1_000_000));
    assert_eq!(rows_from_tag("BEGIN"), None);
    assert_eq!(rows_from_tag("CREATE TABLE"), None);
}

#[test]
fn statement_record_is_cloudtrail_shaped() {
    let v = to_json(&statement("SELECT ? FROM t", 0));
    assert_eq!(v["eventVersion"], "1.09");
    assert_eq!(v["eventName"], "Statement");
    assert_eq!(v["eventSource"], "rds-db.amazonaws.com");
    assert_eq!(v["eventID"], "e1");
    assert_eq!(v["awsRegion"], "us-east-1");
    assert_eq!(v["recipientAccountId"], "123456789012");
    assert_eq!(v["userAgent"], "psql");
    assert_eq!(v["database"]["statement"], "SELECT ? FROM t");
    assert_eq!(v["database"]["fingerprint"], "0000000000000abc");
    assert_eq!(v["database"]["durationUs"], 1500);
    assert_eq!(v["database"]["rows"], 1);
    let id = &v["userIdentity"];
    assert_eq!(id["type"], "AssumedRole");
    assert_eq!(id["accessKeyId"], "ASIAEXAMPLE");
    assert_eq!(id["principalId"], "AROAEXAMPLE:s1");
    assert_eq!(
        id["sessionContext"]["attributes"]["mfaAuthenticated"],
        "true"
    );
    assert_eq!(
        id["sessionContext"]["attributes"]["creationDate"],
        "2026-11-23T14:22:08.000Z"
    );
    assert_eq!(
        id["sessionContext"]["sessionIssuer"]["arn"],
        "arn:aws:iam::123456789012:role/app"
    );
    assert_eq!(v["resources"][0]["type"], "AWS::RDS::DBUser");
    assert!(v.get("errorCode").is_none());
}

#[test]
fn a_refused_login_names_its_reason_and_kind() {
    let e = Event::Auth(AuthEvent {
        engine: "postgres",
        time: UNIX_EPOCH,
        source_ip: ip("203.0.113.9"),
        user_agent: None,
        db_user: "app".into(),
        endpoint: Some("db.example".into()),
        database: Some("orders".into()),
        resource_arn: None,
        identity: None,
        access_key_id: Some("AKIAEXAMPLE".into()),
        result: AuthResult::Failure {
            kind: FailureKind::InactiveKey,
            reason: "credentials: key is inactive".into(),
        },
    });
    let v = to_json(&e);
    assert_eq!(v["eventName"], "Connect");
    assert_eq!(v["errorCode"], "AccessDenied");
    assert_eq!(v["errorMessage"], "credentials: key is inactive");
    assert_eq!(v["database"]["failure"], "inactive_key");
    assert_eq!(v["userIdentity"]["type"], "Unknown");
    assert_eq!(v["userIdentity"]["accessKeyId"], "AKIAEXAMPLE");
    assert_eq!(v["requestParameters"]["endpoint"], "db.example");
}

#[test]
fn api_record_embeds_parameters() {
    let e = Event::Api(ApiEvent {
        time: UNIX_EPOCH,
        service: ApiService::Sts,
        action: "AssumeRole".into(),
        identity: Some(identity()),
        access_key_id: Some("ASIAEXAMPLE".into()),
        source_ip: ip("::1"),
        user_agent: Some("aws-cli/2".into()),
        request_parameters: Some(r#"{"roleArn":"arn:aws:iam::123456789012:role/app"}"#.into()),
        response_elements: None,
        error: Some(("AccessDenied".into(), "not allowed".into())),
        request_id: "r1".into(),
        read_only: false,
        resources: vec![Resource {
            arn: "arn:aws:iam::123456789012:role/app".into(),
            kind: "AWS::IAM::Role",
        }],
    });
    let v = to_json(&e);
    assert_eq!(v["eventSource"], "sts.amazonaws.com");
    assert_eq!(
        v["requestParameters"]["roleArn"],
        "arn:aws:iam::123456789012:role/app"
    );
    assert!(v["responseElements"].is_null());
    assert_eq!(v["errorCode"], "AccessDenied");
    assert_eq!(v["sourceIPAddress"], "::1");
    assert_eq!(v["resources"][0]["type"], "AWS::IAM::Role");
}

#[test]
fn strings_are_escaped() {
    let mut out = String::new();
    json_string(&mut out, "a\"b\\c\nd\u{1}é");
    assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    let back: String = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(back, "a\"b\\c\nd\u{1}é");
}

// --- the trail ---

const TRAIL: u64 = 0x1234;

fn key() -> SigningKey {
    SigningKey::generate().map(|(k, _)| k).expect("key")
}

/// A trail of `n` records in segments of `per_segment`, with a digest
/// after every `per_digest` records and one at the end.
struct Built {
    segments: Vec<(String, Vec<u8>)>,
    digests: Vec<(String, Vec<u8>)>,
    public_key: [u8; 32],
}

fn build(n: u64, per_segment: u64, per_digest: u64) -> Built {
    let key = key();
    let mut chain = Chain::new(TRAIL);
    let mut segments: Vec<(String, Vec<u8>)> = Vec::new();
    let mut digests = Vec::new();
    let mut covered_from = 1;
    let mut previous_signature = None;
    let mut seg_first = Vec::new();
    let sign = |chain: &Chain,
                covered_from: u64,
                segments: &[(String, Vec<u8>)],
                seg_first: &[u64],
                digests: &mut Vec<(String, Vec<u8>)>,
                previous: Option<[u8; 64]>| {
        let refs = segments
            .iter()
            .zip(seg_first)
            .enumerate()
            .filter_map(|(i, ((name, _), first))| {
                let last = seg_first.get(i + 1).map_or(chain.last_sequence, |n| n - 1);
                let (a, b) = ((*first).max(covered_from), last);
                (a <= b).then(|| SegmentRef {
                    name: name.clone(),
                    first_sequence: a,
                    last_sequence: b,
                })
            })
            .collect();
        let spec = DigestSpec {
            chain,
            digest_sequence: digests.len() as u64 + 1,
            start: UNIX_EPOCH,
            end: UNIX_EPOCH + Duration::from_secs(chain.last_sequence),
            segments: refs,
            retained_from: 1,
            previous_signature: previous,
            public_key: key.public_key(),
        };
        let (file, sig) = key.sign_digest(&spec.body());
        digests.push((format!("digest-{}", digests.len() + 1), file.into_bytes()));
        sig
    };
    for _ in 0..n {
        if chain.last_sequence.is_multiple_of(per_segment) {
            segments.push((format!("seg-{:04}", chain.last_sequence + 1), Vec::new()));
            seg_first.push(chain.last_sequence + 1);
        }
        let mut line = String::new();
        let seq = chain.last_sequence + 1;
        chain.append(
            &statement(&format!("SELECT {seq}"), seq),
            "us-east-1",
            "123456789012",
            &mut line,
        );
        if let Some((_, bytes)) = segments.last_mut() {
            bytes.extend_from_slice(line.as_bytes());
        }
        if chain.last_sequence.is_multiple_of(per_digest) {
            previous_signature = Some(sign(
                &chain,
                covered_from,
                &segments,
                &seg_first,
                &mut digests,
                previous_signature,
            ));
            covered_from = chain.last_sequence + 1;
        }
    }
    if !chain.last_sequence.is_multiple_of(per_digest) {
        sign(
            &chain,
            covered_from,
            &segments,
            &seg_first,
            &mut digests,
            previous_signature,
        );
    }
    Built {
        segments,
        digests,
        public_key: key.public_key(),
    }
}

impl Built {
    fn verify(&self) -> Report {
        let inputs: Vec<SegmentInput<'_>> = self
            .segments
            .iter()
            .map(|(name, bytes)| SegmentInput { name, bytes })
            .collect();
        verify(&inputs, &self.digests, &self.public_key, Window::default())
    }

    fn lines(&mut self, segment: usize) -> Vec<Vec<u8>> {
        self.segments[segment]
            .1
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn set_lines(&mut self, segment: usize, lines: &[Vec<u8>]) {
        let mut bytes = Vec::new();
        for l in lines {
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        self.segments[segment].1 = bytes;
    }
}

#[test]
fn an_untouched_trail_verifies() {
    let t = build(100, 30, 25);
    let r = t.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records, 100);
    assert_eq!(r.records_verified, 100);
    assert_eq!(r.digests_valid, 4);
    assert_eq!(r.records_unsigned, 0);
}

#[test]
fn records_after_the_last_digest_are_counted_unsigned() {
    let mut t = build(10, 100, 5);
    // Two more records, chained but not yet signed.
    let mut chain = Chain::new(TRAIL);
    let mut all = String::new();
    for s in 1..=12u64 {
        chain.append(
            &statement(&format!("SELECT {s}"), s),
            "us-east-1",
            "123456789012",
            &mut all,
        );
    }
    t.segments[0].1 = all.into_bytes();
    let r = t.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.records_verified, r.records_unsigned), (10, 2));
}

#[test]
fn a_modified_record_is_named() {
    let mut t = build(50, 100, 50);
    let mut lines = t.lines(0);
    let text = String::from_utf8(lines[19].clone()).expect("utf8");
    lines[19] = text.replace("SELECT 20", "SELECT 99").into_bytes();
    t.set_lines(0, &lines);
    let r = t.verify();
    assert_eq!(
        r.problems,
        vec![Problem::RecordModified {
            segment: "seg-0001".into(),
            line: 20,
            sequence: 20
        }]
    );
    // Records before it are cut off from the only digest.
    assert_eq!(r.records_verified, 30);
    assert_eq!(r.records_unverifiable, 19);
}

#[test]
fn a_modified_record_between_digests_leaves_the_rest_verified() {
    let mut t = build(50, 100, 10);
    let mut lines = t.lines(0);
    let text = String::from_utf8(lines[24].clone()).expect("utf8");
    lines[24] = text.replace("SELECT 25", "SELECT 1 -- benign").into_bytes();
    t.set_lines(0, &lines);
    let r = t.verify();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(matches!(
        r.problems[0],
        Problem::RecordModified {
            sequence: 25,
            line: 25,
            ..
        }
    ));
    assert_eq!(r.records_verified, 45);
    assert_eq!(r.records_unverifiable, 4);
}

#[test]
fn garbage_in_place_of_a_record_is_a_modification() {
    let mut t = build(20, 100, 20);
    let mut lines = t.lines(0);
    lines[4] = b"{not json".to_vec();
    t.set_lines(0, &lines);
    let r = t.verify();
    assert_eq!(
        r.problems,
        vec![Problem::RecordModified {
            segment: "seg-0001".into(),
            line: 5,
            sequence: 5
        }]
    );
}

#[test]
fn deleted_records_are_named_by_sequence() {
    let mut t = build(40, 100, 40);
    let mut lines = t.lines(0);
    lines.drain(9..12); // records 10, 11, 12
    t.set_lines(0, &lines);
    let r = t.verify();
    assert_eq!(
        r.problems,
        vec![Problem::RecordsDeleted {
            first_sequence: 10,
            last_sequence: 12
        }]
    );
}

#[test]
fn a_truncated_tail_before_a_digest_is_deleted_records() {
    let mut t = build(40, 100, 40);
    let mut lines = t.lines(0);
    lines.truncate(35);
    t.set_lines(0, &lines);
    let r = t.verify();
    assert_eq!(
        r.problems,
        vec![Problem::RecordsDeleted {
            first_sequence: 36,
            last_sequence: 40
        }]
    );
}

#[test]
fn an_inserted_record_is_named() {
    let mut t = build(30, 100, 30);
    let mut lines = t.lines(0);
    // A forged record claiming sequence 8, chained onto record 7.
    let forged = lines[7].clone();
    let text = String::from_utf8(forged)
        .expect("utf8")
        .replace("SELECT 8", "SELECT 'forged'");
    lines.insert(8, text.into_bytes());
    t.set_lines(0, &lines);
    let r = t.verify();
    assert_eq!(
        r.problems,
        vec![Problem::RecordInserted {
            segment: "seg-0001".into(),
            line: 9,
            claimed_sequence: 8
        }]
    );
    assert_eq!(r.records_verified, 30);
}

#[test]
fn reordered_records_are_named() {
    let mut t = build(30, 100, 30);
    let mut lines = t.lines(0);
    lines.swap(14, 15);
    t.set_lines(0, &lines);
    let r = t.verify();
    assert_eq!(
        r.problems,
        vec![Problem::RecordReordered {
            segment: "seg-0001".into(),
            line: 16,
            sequence: 15
        }]
    );
}

#[test]
fn a_missing_segment_is_named() {
    let mut t = build(90, 30, 30);
    t.segments.remove(1);
    let r = t.verify();
    assert_eq!(
        r.problems,
        vec![Problem::SegmentMissing {
            segment: "seg-0031".into(),
            first_sequence: 31,
            last_sequence: 60
        }]
    );
    assert_eq!(r.records_verified, 60);
}

#[test]
fn a_modified_digest_fails_its_signature() {
    let mut t = build(30, 100, 10);
    let text = String::from_utf8(t.digests[1].1.clone()).expect("utf8");
    t.digests[1].1 = text
        .replacen("\"lastSequence\":20", "\"lastSequence\":19", 1)
        .into_bytes();
    let r = t.verify();
    assert!(r.problems.contains(&Problem::DigestInvalid {
        digest: "digest-2".into(),
        reason: "not a digest: the signature does not match its body and the public key".into()
    }));
    assert!(
        r.problems
            .contains(&Problem::DigestsMissing { first: 2, last: 2 })
    );
}

#[test]
fn a_deleted_digest_is_named() {
    let mut t = build(40, 100, 10);
    t.digests.remove(2);
    let r = t.verify();
    assert_eq!(
        r.problems,
        vec![Problem::DigestsMissing { first: 3, last: 3 }]
    );
}

#[test]
fn a_digest_from_another_key_is_refused() {
    let t = build(10, 100, 10);
    let other = build(10, 100, 10);
    let inputs: Vec<SegmentInput<'_>> = t
        .segments
        .iter()
        .map(|(name, bytes)| SegmentInput { name, bytes })
        .collect();
    let r = verify(&inputs, &t.digests, &other.public_key, Window::default());
    assert!(matches!(r.problems[0], Problem::DigestInvalid { .. }));
    // With no digest to prove them, the records are only chained.
    assert_eq!(r.records_verified, 0);
}

#[test]
fn a_rewritten_chain_does_not_match_the_signed_head() {
    // The attacker rewrites record 5 and recomputes every later link.
    let t = build(10, 100, 10);
    let mut chain = Chain::new(TRAIL);
    let mut forged = String::new();
    for s in 1..=10u64 {
        let text = if s == 5 {
            "SELECT 'nothing here'".to_owned()
        } else {
            format!("SELECT {s}")
        };
        chain.append(
            &statement(&text, s),
            "us-east-1",
            "123456789012",
            &mut forged,
        );
    }
    let inputs = [SegmentInput {
        name: "seg-0001",
        bytes: forged.as_bytes(),
    }];
    let r = verify(&inputs, &t.digests, &t.public_key, Window::default());
    assert!(!r.ok());
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::RecordModified { sequence: 10, .. })),
        "{:?}",
        r.problems
    );
}

#[test]
fn the_window_limits_what_is_reported() {
    let mut t = build(40, 100, 10);
    let mut lines = t.lines(0);
    lines.remove(4); // record 5, at t=5s
    t.set_lines(0, &lines);
    let inputs: Vec<SegmentInput<'_>> = t
        .segments
        .iter()
        .map(|(name, bytes)| SegmentInput { name, bytes })
        .collect();
    let later = Window {
        from: Some(UNIX_EPOCH + Duration::from_secs(20)),
        to: None,
    };
    assert!(verify(&inputs, &t.digests, &t.public_key, later).ok());
    let early = Window {
        from: None,
        to: Some(UNIX_EPOCH + Duration::from_secs(10)),
    };
    assert_eq!(
        verify(&inputs, &t.digests, &t.public_key, early)
            .problems
            .len(),
        1
    );
}

#[test]
fn event_ids_name_their_record() {
    let id = event_id(TRAIL, 77);
    assert_eq!(id.len(), 36);
    assert_eq!(sequence_of(TRAIL, &id), Some(77));
    assert_eq!(sequence_of(TRAIL + 1, &id), None);
    assert_eq!(sequence_of(TRAIL, "nonsense"), None);
}

#[test]
fn public_keys_round_trip_through_pem() {
    let k = key();
    let pem = public_key_pem(&k.public_key());
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(parse_public_key(&pem), Ok(k.public_key()));
    assert_eq!(
        parse_public_key(&hex::encode(k.public_key())),
        Ok(k.public_key())
    );
    assert!(
        parse_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err()
    );
}

proptest::proptest! {
    /// Flipping any byte of any record is always caught (a digest follows
    /// every record here).
    #[test]
    fn any_flipped_byte_is_caught(record in 0usize..20, at in 0usize..400, bit in 0u8..8) {
        let mut t = build(20, 100, 20);
        let mut lines = t.lines(0);
        let line = &mut lines[record];
        let at = at % line.len();
        line[at] ^= 1 << bit;
        t.set_lines(0, &lines);
        let r = t.verify();
        proptest::prop_assert!(!r.ok());
    }
}

/// The trail writer's cached session fields give the very bytes (and so
/// the same hash chain) as serialising every record whole, across many
/// interleaved sessions, evictions and statements with and without errors.
#[test]
fn cached_session_fields_write_the_same_records() {
    let sessions: Vec<Arc<SessionInfo>> = (0..300)
        .map(|i| {
            let mut s = (*session()).clone();
            s.session_id = format!("s{i}");
            s.user_agent = (i % 3 != 0).then(|| format!("app \"{i}\""));
            s.db_user = format!("user{i}");
            Arc::new(s)
        })
        .collect();
    let (mut plain, mut cached) = (Chain::new(TRAIL), Chain::new(TRAIL));
    let mut cache = FieldCache::default();
    let (mut a, mut b) = (String::new(), String::new());
    for round in 0..3 {
        for (i, s) in sessions.iter().enumerate() {
            let Event::Statement(mut e) = statement(&format!("SELECT {i}"), 60) else {
                unreachable!("statement() makes statements");
            };
            e.session = s.clone();
            e.error_code = (i % 4 == round).then(|| "42P01".to_owned());
            Arc::make_mut(&mut e.statement).truncated = i % 5 == 0;
            let e = Event::Statement(e);
            let x = plain.append(&e, "us-east-1", "123456789012", &mut a);
            let y = cached.append_cached(&e, "us-east-1", "123456789012", &mut cache, &mut b);
            assert_eq!(x, y);
        }
    }
    assert_eq!(a, b);
    // Session 4's first statement, which failed.
    let record: serde_json::Value =
        serde_json::from_str(b.lines().nth(4).unwrap_or_default()).unwrap_or_default();
    assert_eq!(record["database"]["sessionId"], "s4");
    assert_eq!(record["database"]["dbUser"], "user4");
    assert_eq!(record["database"]["statement"], "SELECT 4");
    assert_eq!(record["userAgent"], "app \"4\"");
    assert_eq!(record["errorCode"], "42P01");
}

/// Statement records byte for byte as the trail wrote them before the
/// session fields were cached (`testdata/statement-records.jsonl`, made by
/// the code of `f101939`): the format and the hash chain do not move.
#[test]
fn statement_records_keep_their_bytes() {
    let Event::Statement(mut failed) = statement("SELECT ? FROM t", 60) else {
        unreachable!("statement() makes statements");
    };
    failed.error_code = Some("42P01".into());
    Arc::make_mut(&mut failed.statement).truncated = true;
    let events = [Event::Statement(failed), statement("SELECT 2", 61)];
    let expected = include_str!("testdata/statement-records.jsonl");
    let mut cache = FieldCache::default();
    for cached in [false, true] {
        let mut chain = Chain::new(TRAIL);
        let mut out = String::new();
        for e in &events {
            if cached {
                chain.append_cached(e, "us-east-1", "123456789012", &mut cache, &mut out);
            } else {
                chain.append(e, "us-east-1", "123456789012", &mut out);
            }
        }
        assert_eq!(out, expected, "cached: {cached}");
    }
}
