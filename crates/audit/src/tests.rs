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
        policy: None,
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
fn statement_records_carry_the_firewall_verdict() {
    let verdict = FirewallVerdict {
        mode: FirewallState::Block,
        unseen: true,
        tautology: true,
        time_probe: false,
        comment: true,
        stacked: false,
        union: false,
        refused: true,
    };
    let with = |policy: PolicyDecision| {
        let Event::Statement(mut s) = statement("SELECT ? FROM t WHERE id = ? OR ? = ?", 0) else {
            unreachable!()
        };
        s.policy = Some(Arc::new(policy));
        to_json(&Event::Statement(s))
    };
    // The firewall alone: no policy object.
    let v = with(PolicyDecision::firewall_only(verdict));
    assert!(v["database"].get("policy").is_none());
    assert_eq!(
        v["database"]["firewall"],
        serde_json::json!({"mode": "block", "unseen": true, "signals": ["tautology", "comment"], "refused": true})
    );
    // Both.
    let v = with(PolicyDecision {
        uses: vec![(
            "sql:Select",
            "arn:aws:sql:us-east-1:1:table/app/public/t".into(),
        )],
        evaluated: true,
        reason: "allowed by p: s".into(),
        ..PolicyDecision::firewall_only(FirewallVerdict {
            mode: FirewallState::Learn,
            unseen: false,
            tautology: false,
            comment: false,
            refused: false,
            ..verdict
        })
    });
    assert_eq!(v["database"]["policy"]["decision"], "allow");
    assert_eq!(
        v["database"]["policy"]["uses"],
        serde_json::json!([{"action": "sql:Select", "resource": "arn:aws:sql:us-east-1:1:table/app/public/t"}])
    );
    assert_eq!(
        v["database"]["firewall"],
        serde_json::json!({"mode": "learn", "unseen": false, "signals": [], "refused": false})
    );
}

#[test]
fn a_refused_login_names_its_reason_and_kind() {
    let e = Event::from(AuthEvent {
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
        possession_proven: false,
    });
    let v = to_json(&e);
    assert_eq!(v["eventName"], "Connect");
    assert_eq!(v["errorCode"], "AccessDenied");
    assert_eq!(v["errorMessage"], "credentials: key is inactive");
    assert_eq!(v["database"]["failure"], "inactive_key");
    assert_eq!(v["database"]["possessionProven"], false);
    assert_eq!(v["userIdentity"]["type"], "Unknown");
    assert_eq!(v["userIdentity"]["accessKeyId"], "AKIAEXAMPLE");
    assert_eq!(v["requestParameters"]["endpoint"], "db.example");
}

#[test]
fn api_record_embeds_parameters() {
    let e = Event::from(ApiEvent {
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
        possession_proven: true,
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
    assert_eq!(v["additionalEventData"]["possessionProven"], true);
    assert_eq!(v["sourceIPAddress"], "::1");
    assert_eq!(v["resources"][0]["type"], "AWS::IAM::Role");
}

#[test]
fn json_services_have_their_event_sources() {
    for (service, source, name) in [
        (
            ApiService::SecretsManager,
            "secretsmanager.amazonaws.com",
            "secretsmanager",
        ),
        (ApiService::Ssm, "ssm.amazonaws.com", "ssm"),
        (
            ApiService::AccessAnalyzer,
            "access-analyzer.amazonaws.com",
            "access-analyzer",
        ),
        (ApiService::Kms, "kms.amazonaws.com", "kms"),
        (ApiService::Iam, "iam.amazonaws.com", "iam"),
    ] {
        let e = Event::from(ApiEvent {
            time: UNIX_EPOCH,
            service,
            action: "GetRandomPassword".into(),
            identity: Some(identity()),
            access_key_id: None,
            source_ip: ip("127.0.0.1"),
            user_agent: None,
            request_parameters: None,
            response_elements: None,
            error: None,
            possession_proven: true,
            request_id: "r1".into(),
            read_only: true,
            resources: vec![],
        });
        assert_eq!(to_json(&e)["eventSource"], source);
        assert_eq!(service.name(), name);
    }
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
fn uuids_are_written_in_the_8_4_4_4_12_form() {
    let bytes: [u8; 16] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
    let h = hex::encode(bytes);
    let expected = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    assert_eq!(uuid_text(bytes), expected);
    assert_eq!(uuid_text([0; 16]), "00000000-0000-0000-0000-000000000000");
    assert_eq!(
        uuid_text([0xff; 16]),
        "ffffffff-ffff-ffff-ffff-ffffffffffff"
    );
    assert_eq!(event_uuid(TRAIL, 77).as_str(), event_id(TRAIL, 77));
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
    // Every running session is held (a transaction pool's clients
    // interleave); one that ended is let go at the next tick, one that
    // went quiet once 10 ticks passed without a statement.
    assert_eq!(cache.len(), sessions.len());
    cache.tick();
    assert_eq!(cache.len(), sessions.len());
    // A session's first statement is serialised whole, its fields kept
    // from its second.
    let newcomer = Arc::new((*session()).clone());
    cache.get(&newcomer);
    assert_eq!(cache.len(), sessions.len());
    cache.get(&newcomer);
    assert_eq!(cache.len(), sessions.len() + 1);
    drop(newcomer);
    cache.tick();
    let (busy, quiet) = sessions.split_at(1);
    let quiet = quiet.to_vec();
    // Ticks 3 to 10: the quiet sessions, last used at tick 0, stay.
    for _ in 0..8 {
        cache.get(&busy[0]);
        cache.tick();
    }
    assert_eq!(cache.len(), sessions.len());
    cache.get(&busy[0]);
    cache.tick();
    assert_eq!(cache.len(), 1);
    drop(quiet);
    drop(sessions);
    cache.tick();
    assert!(cache.is_empty());
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

// Anchors: the trail's end where deleting trail files does not reach.

use crate::anchor::{self, AnchorBody, AnchorError, TrailEnd};

impl Built {
    /// An anchor of the trail as it stands: its last record and digest.
    fn anchor(&self) -> AnchorBody {
        let (_, last_segment) = self.segments.last().expect("a segment");
        let line = last_segment
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .expect("a record");
        let head = parse_record(line).expect("a record");
        let (_, digest) = self.digests.last().expect("a digest");
        AnchorBody {
            trail_id: TRAIL,
            sequence: head.sequence,
            record_hash: head.hash,
            digest_sequence: self.digests.len() as u64,
            digest_hash: Some(anchor::sha256(digest)),
            time: "2026-11-23T14:22:08.123Z".into(),
            peers: Default::default(),
        }
    }

    fn verify_held_to(&self, anchor: &AnchorBody) -> Report {
        let inputs: Vec<SegmentInput<'_>> = self
            .segments
            .iter()
            .map(|(name, bytes)| SegmentInput { name, bytes })
            .collect();
        verify_anchored(
            &inputs,
            &self.digests,
            &self.public_key,
            Window::default(),
            &Anchors {
                trail_id: Some(TRAIL),
                anchors: vec![("store", anchor)],
            },
        )
    }
}

#[test]
fn an_untouched_trail_reaches_its_anchor() {
    let t = build(100, 30, 25);
    let a = t.anchor();
    let r = t.verify_held_to(&a);
    assert!(r.ok(), "{:?}", r.problems);
    // An older anchor is reached too.
    let mut older = a.clone();
    older.sequence = 60;
    older.record_hash = parse_record(t.segments[1].1.split(|b| *b == b'\n').nth(29).unwrap())
        .unwrap()
        .hash;
    older.digest_sequence = 2;
    older.digest_hash = Some(anchor::sha256(&t.digests[1].1));
    let r = t.verify_held_to(&older);
    assert!(r.ok(), "{:?}", r.problems);
}

#[test]
fn deleting_the_newest_segment_and_its_digests_is_caught_by_the_anchor() {
    let mut t = build(100, 30, 25);
    let a = t.anchor();
    // Records 91-100 and digest 4 (records 76-100) go; digest 3 (75)
    // stays, and 76-90 look merely unsigned.
    t.segments.pop();
    t.digests.pop();
    let plain = t.verify();
    assert!(
        plain.ok(),
        "without an anchor this goes unseen: {:?}",
        plain.problems
    );
    let r = t.verify_held_to(&a);
    assert_eq!(
        r.problems,
        vec![
            Problem::TrailTruncated {
                source: "store".into(),
                anchored_sequence: 100,
                anchored_time: "2026-11-23T14:22:08.123Z".into(),
                first_missing: 91,
                last_missing: 100,
            },
            Problem::DigestsTruncated {
                source: "store".into(),
                first_missing: 4,
                last_missing: 4,
            },
        ]
    );
    let text = r.problems[0].to_string();
    assert!(
        text.contains("trail ends at record 90") && text.contains("records 91 to 100 were deleted"),
        "{text}"
    );
}

#[test]
fn a_rewritten_unsigned_tail_is_caught_by_the_anchor() {
    let mut t = build(100, 30, 25);
    let a = t.anchor();
    t.digests.pop();
    // Record 100 rewritten, still chained to 99.
    let mut lines = t.lines(3);
    let last = lines.len() - 1;
    lines[last] = String::from_utf8(lines[last].clone())
        .unwrap()
        .replace("SELECT 100", "SELECT 1")
        .into_bytes();
    t.set_lines(3, &lines);
    assert!(t.verify().ok());
    let r = t.verify_held_to(&a);
    assert!(
        r.problems.contains(&Problem::AnchoredRecordModified {
            source: "store".into(),
            sequence: 100
        }),
        "{:?}",
        r.problems
    );
}

#[test]
fn a_replaced_trail_is_caught_by_the_anchor() {
    let t = build(10, 30, 25);
    let mut a = t.anchor();
    a.trail_id = 0x9999;
    let r = t.verify_held_to(&a);
    assert!(matches!(
        r.problems.as_slice(),
        [Problem::AnchorOtherTrail {
            anchored_sequence: 10,
            ..
        }]
    ));
}

#[test]
fn comparing_with_an_anchor() {
    let a = AnchorBody {
        trail_id: 1,
        sequence: 50,
        record_hash: [5; 32],
        digest_sequence: 3,
        digest_hash: Some([3; 32]),
        time: "2026-01-01T00:00:00Z".into(),
        peers: Default::default(),
    };
    let end = TrailEnd {
        trail_id: Some(1),
        last_sequence: 60,
        at_anchor: vec![[5; 32]],
        retained_from: 1,
        last_digest: 4,
        anchored_digest: Some([3; 32]),
    };
    assert_eq!(anchor::compare(&a, &end, "store"), vec![]);
    // The anchored digest retention removed: fine; rewritten: not.
    let gone = TrailEnd {
        anchored_digest: None,
        ..end.clone()
    };
    assert_eq!(anchor::compare(&a, &gone, "store"), vec![]);
    let rewritten = TrailEnd {
        anchored_digest: Some([4; 32]),
        ..end.clone()
    };
    assert_eq!(
        anchor::compare(&a, &rewritten, "f"),
        vec![Problem::AnchoredDigestModified {
            source: "f".into(),
            digest_sequence: 3
        }]
    );
    // The anchored record gone from the middle, and after retention.
    let hole = TrailEnd {
        at_anchor: vec![],
        ..end.clone()
    };
    assert_eq!(
        anchor::compare(&a, &hole, "store"),
        vec![Problem::AnchoredRecordMissing {
            source: "store".into(),
            sequence: 50
        }]
    );
    let retained = TrailEnd {
        at_anchor: vec![],
        retained_from: 51,
        ..end.clone()
    };
    assert_eq!(anchor::compare(&a, &retained, "store"), vec![]);
    // A duplicate at the anchored sequence: the genuine one is there.
    let dup = TrailEnd {
        at_anchor: vec![[9; 32], [5; 32]],
        ..end.clone()
    };
    assert_eq!(anchor::compare(&a, &dup, "store"), vec![]);
    // Exactly at the anchor, and one short of it.
    let exact = TrailEnd {
        last_sequence: 50,
        last_digest: 3,
        ..end.clone()
    };
    assert_eq!(anchor::compare(&a, &exact, "store"), vec![]);
    let short = TrailEnd {
        last_sequence: 49,
        at_anchor: vec![],
        last_digest: 2,
        anchored_digest: None,
        ..end.clone()
    };
    let problems = anchor::compare(&a, &short, "store");
    assert_eq!(problems.len(), 2);
    assert_eq!(
        problems[0].to_string(),
        "the trail was truncated: the store anchor (2026-01-01T00:00:00Z) vouches for records up to 50, but the trail ends at record 49; record 50 was deleted"
    );
    assert_eq!(
        problems[1].to_string(),
        "digest 3, which the store anchor vouches for, was deleted"
    );
    // Nothing at all left: an empty trail.
    let empty = TrailEnd {
        trail_id: None,
        ..TrailEnd::default()
    };
    let problems = anchor::compare(&a, &empty, "store");
    assert!(matches!(
        problems[0],
        Problem::TrailTruncated {
            first_missing: 1,
            last_missing: 50,
            ..
        }
    ));
}

fn signed_anchor(key: &SigningKey) -> crate::anchor::Anchor {
    AnchorBody {
        trail_id: 0x00ab_cdef_0123_4567,
        sequence: 42,
        record_hash: [0x11; 32],
        digest_sequence: 7,
        digest_hash: Some([0x22; 32]),
        time: "2026-11-23T14:22:08.123Z".into(),
        peers: [
            ("0a1b2c3d4e5f6071".to_owned(), 9),
            ("node-2".to_owned(), 120),
        ]
        .into_iter()
        .collect(),
    }
    .sign(key)
}

#[test]
fn anchors_round_trip_and_check_their_signature() {
    let key = key();
    let a = signed_anchor(&key);
    let json = a.to_json();
    let opened = anchor::open_anchor(format!("  {json}\n").as_bytes(), &key.public_key()).unwrap();
    assert_eq!(opened, a);
    // No digest yet.
    let mut b = a.body.clone();
    b.digest_sequence = 0;
    b.digest_hash = None;
    let b = b.sign(&key);
    assert_eq!(
        anchor::open_anchor(b.to_json().as_bytes(), &key.public_key()).unwrap(),
        b
    );
    assert!(b.to_json().contains("\"digestHash\":null"));
    // An anchor naming no peers has no `peers` field, as anchors made
    // before there were any, and signs the same message as they did.
    let mut c = a.body.clone();
    c.peers.clear();
    let c = c.sign(&key);
    assert!(!c.to_json().contains("peers"));
    assert!(!c.body.message().contains("peer "));
    assert_eq!(
        anchor::open_anchor(c.to_json().as_bytes(), &key.public_key()).unwrap(),
        c
    );
}

#[test]
fn a_forged_anchor_is_refused() {
    let key = key();
    let a = signed_anchor(&key);
    let json = a.to_json();
    // A higher sequence, a lower one, another hash, another time.
    for (from, to) in [
        ("\"sequence\":42", "\"sequence\":43"),
        ("\"sequence\":42", "\"sequence\":41"),
        ("\"digestSequence\":7", "\"digestSequence\":8"),
        ("2026-11-23T14:22:08.123Z", "2026-11-23T14:22:09.123Z"),
        // A peer's reach lowered, a peer dropped, a peer renamed.
        ("\"node-2\":120", "\"node-2\":119"),
        (",\"node-2\":120", ""),
        ("\"node-2\"", "\"node-3\""),
    ] {
        let forged = json.replace(from, to);
        assert_ne!(forged, json);
        assert_eq!(
            anchor::open_anchor(forged.as_bytes(), &key.public_key()),
            Err(AnchorError::Signature),
            "{to}"
        );
    }
    // Signed with another key, named as its own or as the trail's.
    let other = self::key();
    let by_other = signed_anchor(&other);
    assert!(matches!(
        anchor::open_anchor(by_other.to_json().as_bytes(), &key.public_key()),
        Err(AnchorError::OtherKey { .. })
    ));
    let claimed = by_other.to_json().replace(
        &hex::encode(other.public_key()),
        &hex::encode(key.public_key()),
    );
    assert_eq!(
        anchor::open_anchor(claimed.as_bytes(), &key.public_key()),
        Err(AnchorError::Signature)
    );
    // A digest's signature is no anchor's.
    assert_ne!(
        a.body.message().as_bytes().first(),
        Some(&b'{'),
        "anchors sign a text of their own"
    );
}

#[test]
fn malformed_anchors_are_refused_with_a_reason() {
    let key = key();
    let json = signed_anchor(&key).to_json();
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "not JSON"),
        ("[]".into(), "not JSON"),
        (json.replace("{", "{\"extra\":1,"), "unknown field `extra`"),
        (
            json.replace(",\"time\"", ",\"x\":1,\"time\""),
            "unknown field",
        ),
        (
            json.replace("\"anchorVersion\":1", "\"anchorVersion\":2"),
            "unsupported anchorVersion 2",
        ),
        (
            json.replace("\"sequence\":42", "\"sequence\":0"),
            "sequence must be at least 1",
        ),
        (
            json.replace("\"sequence\":42", "\"sequence\":-1"),
            "not JSON",
        ),
        (
            json.replace(
                "\"trailId\":\"00abcdef01234567\"",
                "\"trailId\":\"00ABCDEF01234567\"",
            ),
            "trailId is not 16 lowercase hex digits",
        ),
        (
            json.replace("\"trailId\":\"00abcdef01234567\"", "\"trailId\":\"abc\""),
            "trailId is not 16 lowercase hex digits",
        ),
        (
            json.replace(&hex::encode([0x11u8; 32]), "zz"),
            "recordHash is not 64 lowercase hex digits",
        ),
        (
            json.replace(&format!("\"{}\"", hex::encode([0x22u8; 32])), "null"),
            "digestHash must be null exactly when digestSequence is 0",
        ),
        (
            json.replace("\"digestSequence\":7", "\"digestSequence\":0"),
            "digestHash must be null exactly when digestSequence is 0",
        ),
        (
            json.replace("2026-11-23T14:22:08.123Z", "yesterday"),
            "time is not an RFC 3339 UTC time",
        ),
        (
            json.replace("2026-11-23T14:22:08.123Z", "2026-11-23T14:22:08+01:00"),
            "time is not an RFC 3339 UTC time",
        ),
        (
            json.replace("\"signature\":\"", "\"signature\":\"00"),
            "signature is not 128 lowercase hex digits",
        ),
        (
            json.replace(",\"signature\"", ",\"signatur\""),
            "unknown field",
        ),
        (format!("{json}{json}"), "not JSON"),
        (" ".repeat(70_000), "longer than 65536 bytes"),
        (
            json.replace("\"node-2\"", "\"node 2\""),
            "peers is not at most 1024 node ids",
        ),
        (
            json.replace("\"node-2\"", "\"node\\n2\""),
            "peers is not at most 1024 node ids",
        ),
    ];
    for (text, want) in cases {
        let err = anchor::open_anchor(text.as_bytes(), &key.public_key())
            .expect_err(&text)
            .to_string();
        assert!(err.contains(want), "{text}: {err} (wanted {want})");
    }
}

#[test]
fn a_digest_is_overdue_after_twice_its_interval_at_most_a_minute_late() {
    let minute = 60_000;
    // 5-minute digests: overdue after 6 minutes.
    assert_eq!(
        anchor::digest_overdue(Some(0), 0, 5 * minute, 6 * minute),
        None
    );
    assert_eq!(
        anchor::digest_overdue(Some(0), 0, 5 * minute, 6 * minute + 1),
        Some(6 * minute + 1)
    );
    // 1-second digests: after 2 seconds.
    assert_eq!(anchor::digest_overdue(Some(0), 0, 1000, 2000), None);
    assert!(anchor::digest_overdue(Some(0), 0, 1000, 2500).is_some());
    // A writer that just started has until its first digest is due.
    assert_eq!(
        anchor::digest_overdue(Some(0), 100 * minute, 5 * minute, 101 * minute),
        None
    );
    assert_eq!(anchor::digest_overdue(None, 0, 1000, 1500), None);
    assert!(anchor::digest_overdue(None, 0, 1000, 2001).is_some());
}

/// Statements are most of the trail, and each queued record takes the size
/// of the largest variant held inline: the rare, large ones are boxed.
#[test]
fn a_queued_record_is_no_larger_than_a_statement_needs() {
    assert!(
        std::mem::size_of::<Event>() <= 128,
        "{}",
        std::mem::size_of::<Event>()
    );
}
