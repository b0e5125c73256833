//! The uses of an event and of its trail record agree, for every kind of
//! event that uses something.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use latchkey_audit::*;

use crate::usage::{Uses, of_event, of_record};

const T: u64 = 1_795_443_728;

fn role_identity() -> Identity {
    Identity {
        kind: IdentityKind::AssumedRole,
        arn: "arn:aws:sts::123456789012:assumed-role/app/s1".into(),
        principal_id: "AROAEXAMPLE:s1".into(),
        account_id: "123456789012".into(),
        access_key_id: "ASIAEXAMPLE".into(),
        session: Some(SessionContext {
            mfa_authenticated: false,
            creation_date: UNIX_EPOCH + Duration::from_secs(T - 60),
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

fn user_identity() -> Identity {
    Identity {
        kind: IdentityKind::IamUser,
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        principal_id: "AIDAEXAMPLE".into(),
        account_id: "123456789012".into(),
        access_key_id: "AKIAEXAMPLEKEY000001".into(),
        session: None,
    }
}

fn ip() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn api(identity: Identity, action: &str, error: bool, resources: Vec<Resource>) -> Event {
    Event::from(ApiEvent {
        time: UNIX_EPOCH + Duration::from_secs(T),
        service: if action == "AssumeRole" {
            ApiService::Sts
        } else {
            ApiService::Kms
        },
        action: action.into(),
        access_key_id: Some(identity.access_key_id.clone()),
        identity: Some(identity),
        source_ip: ip(),
        user_agent: None,
        request_parameters: None,
        response_elements: None,
        error: error.then(|| ("AccessDeniedException".into(), "no".into())),
        possession_proven: true,
        request_id: "r".into(),
        read_only: false,
        resources,
    })
}

fn auth(result: AuthResult, proven: bool) -> Event {
    Event::from(AuthEvent {
        engine: "postgres",
        time: UNIX_EPOCH + Duration::from_secs(T + 5),
        source_ip: ip(),
        user_agent: None,
        db_user: "app".into(),
        endpoint: Some("db.local".into()),
        database: Some("orders".into()),
        resource_arn: Some("arn:aws:rds-db:us-east-1:123456789012:dbuser:db-X/app".into()),
        identity: Some(user_identity()),
        access_key_id: Some("AKIAEXAMPLEKEY000001".into()),
        result,
        possession_proven: proven,
    })
}

fn statement(allowed: bool) -> Event {
    statement_with(allowed, None)
}

fn statement_with(allowed: bool, error_code: Option<&str>) -> Event {
    let session = Arc::new(SessionInfo {
        session_id: "s1".into(),
        engine: "postgres",
        identity: role_identity(),
        source_ip: ip(),
        user_agent: None,
        database: "orders".into(),
        resource_arn: "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-X/app".into(),
        database_name: "orders".into(),
        db_user: "app".into(),
        started: UNIX_EPOCH,
    });
    let table = "arn:aws:sql:us-east-1:123456789012:table/db-X/orders/public/orders";
    Event::Statement(StatementEvent {
        session,
        statement: Arc::new(Statement {
            text: "SELECT * FROM orders JOIN items".into(),
            fingerprint: 1,
            truncated: false,
        }),
        protocol: Protocol::Simple,
        time: UNIX_EPOCH + Duration::from_secs(T + 9),
        duration: Duration::from_micros(10),
        command_tag: None,
        rows: None,
        error_code: error_code.map(str::to_owned),
        policy: Some(Arc::new(PolicyDecision {
            allowed,
            enforced: true,
            action: Some("sql:Select"),
            resource: table.into(),
            reason: String::new(),
            accesses: 2,
            uses: if allowed {
                vec![
                    ("sql:Select", table.into()),
                    ("sql:Select", format!("{table}-items")),
                ]
            } else {
                Vec::new()
            },
            evaluated: true,
            firewall: None,
        })),
    })
}

/// A statement that returned rows, then failed (a division by zero half
/// way, or the second of two statements in one message).
fn failed_after_rows() -> Event {
    let Event::Statement(mut s) = statement_with(true, Some("22012")) else {
        unreachable!("a statement")
    };
    s.rows = Some(3);
    Event::Statement(s)
}

/// An allowed statement the SQL firewall refused (block mode), as the
/// gateway records it: no error code of the database's own.
fn refused_by_firewall() -> Event {
    let Event::Statement(mut s) = statement(true) else {
        unreachable!("a statement")
    };
    let mut policy = (*s.policy.take().expect("a decision")).clone();
    policy.firewall = Some(FirewallVerdict {
        mode: FirewallState::Block,
        unseen: true,
        tautology: false,
        time_probe: false,
        comment: false,
        stacked: false,
        union: false,
        refused: true,
    });
    s.policy = Some(Arc::new(policy));
    Event::Statement(s)
}

fn both(event: &Event) -> (Uses, Uses) {
    let mut json = String::new();
    event.write_json(
        &mut json,
        &RecordContext {
            region: "us-east-1",
            account: "123456789012",
            event_id: "e1",
        },
    );
    let record: serde_json::Value = serde_json::from_str(&json).expect("a record is JSON");
    let (mut live, mut rebuilt) = (Uses::default(), Uses::default());
    of_event(event, &mut live);
    of_record(&record, &mut rebuilt);
    (live, rebuilt)
}

#[test]
fn events_and_their_records_give_the_same_uses() {
    let key = Resource {
        arn: "arn:aws:kms:us-east-1:123456789012:key/k1".into(),
        kind: "AWS::KMS::Key",
    };
    let cases = [
        api(user_identity(), "Decrypt", false, vec![key.clone()]),
        api(role_identity(), "Decrypt", false, vec![key]),
        api(user_identity(), "AssumeRole", false, vec![]),
        api(user_identity(), "Decrypt", true, vec![]),
        auth(AuthResult::Success, true),
        auth(
            AuthResult::Failure {
                kind: FailureKind::PolicyDenied,
                reason: "no".into(),
            },
            true,
        ),
        auth(
            AuthResult::Failure {
                kind: FailureKind::BadSignature,
                reason: "no".into(),
            },
            false,
        ),
        statement(true),
        statement(false),
        statement_with(true, Some("42P01")),
        api(role_identity(), "Decrypt", true, vec![]),
        refused_by_firewall(),
        failed_after_rows(),
    ];
    for event in &cases {
        let (live, rebuilt) = both(event);
        assert_eq!(live, rebuilt, "{}", event.name());
    }
    // And what they are.
    let (uses, _) = both(&cases[1]);
    assert_eq!(uses.permissions.len(), 1);
    assert_eq!(
        uses.permissions[0].principal,
        "arn:aws:iam::123456789012:role/app"
    );
    assert_eq!(uses.permissions[0].action, "kms:Decrypt");
    assert_eq!(uses.permissions[0].at, T as i64);
    assert_eq!(
        uses.credentials.len(),
        1,
        "a session key is not an access key"
    );
    let (uses, _) = both(&cases[0]);
    assert_eq!(
        uses.credentials
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        [
            "AKIAEXAMPLEKEY000001",
            "arn:aws:iam::123456789012:user/alice"
        ]
    );
    let (uses, _) = both(&cases[2]);
    assert_eq!(uses.permissions[0].resource, "*");
    let (uses, _) = both(&cases[3]);
    assert_eq!(
        uses.credentials
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["AKIAEXAMPLEKEY000001"],
        "refused: the key was used, the user and its permissions were not"
    );
    assert!(uses.permissions.is_empty());
    let (uses, _) = both(&cases[4]);
    assert_eq!(uses.permissions[0].action, "rds-db:connect");
    let (uses, _) = both(&cases[5]);
    assert!(uses.permissions.is_empty());
    assert_eq!(uses.credentials.len(), 1, "only the key: {uses:?}");
    let (uses, _) = both(&cases[6]);
    assert!(uses.is_empty(), "an unproven refusal used nothing");
    let (uses, _) = both(&cases[7]);
    assert_eq!(uses.permissions.len(), 2);
    assert!(both(&cases[8]).0.is_empty());
    assert!(
        both(&cases[9]).0.is_empty(),
        "a statement the database refused touched nothing"
    );
    assert!(
        both(&cases[10]).0.is_empty(),
        "a role session's refused call does not make the role used"
    );
    let (uses, _) = both(&cases[12]);
    assert_eq!(
        uses.permissions.len(),
        2,
        "rows came back before the error: the tables were read"
    );
    let (uses, _) = both(&cases[11]);
    assert!(
        uses.permissions.is_empty(),
        "a statement the SQL firewall refused never ran"
    );
}

#[test]
fn a_record_names_the_entity_that_made_it() {
    let record = |event: &Event| {
        let mut json = String::new();
        event.write_json(
            &mut json,
            &RecordContext {
                region: "us-east-1",
                account: "123456789012",
                event_id: "e1",
            },
        );
        serde_json::from_str::<serde_json::Value>(&json).expect("JSON")
    };
    let user = record(&api(user_identity(), "Decrypt", false, vec![]));
    assert_eq!(
        crate::record_entity(&user),
        Some(("arn:aws:iam::123456789012:user/alice", Some("AIDAEXAMPLE")))
    );
    let role = record(&api(role_identity(), "Decrypt", false, vec![]));
    assert_eq!(
        crate::record_entity(&role),
        Some(("arn:aws:iam::123456789012:role/app", Some("AROAEXAMPLE")))
    );
    assert_eq!(crate::record_entity(&serde_json::json!({})), None);
}

#[test]
fn subject_arns_name_this_accounts_entities() {
    use crate::{Subject, parse_subject_arn};
    let a = "123456789012";
    assert_eq!(
        parse_subject_arn(a, "arn:aws:iam::123456789012:user/alice"),
        Ok(Subject::User("alice"))
    );
    assert_eq!(
        parse_subject_arn(a, "arn:aws:iam::123456789012:role/team/ops"),
        Ok(Subject::Role("ops"))
    );
    assert_eq!(
        parse_subject_arn(a, "arn:aws:iam::123456789012:group/devs"),
        Ok(Subject::Group("devs"))
    );
    let policy = "arn:aws:iam::123456789012:policy/p/listing";
    assert_eq!(parse_subject_arn(a, policy), Ok(Subject::Policy(policy)));
    for bad in [
        "arn:aws:iam::999999999999:user/alice",
        "arn:aws:iam:us-east-1:123456789012:user/alice",
        "arn:aws:sts::123456789012:assumed-role/ops/s",
        "arn:aws:iam::123456789012:user/",
        "arn:aws:iam::123456789012:mfa/x",
        "arn:aws:iam::123456789012:root",
        "alice",
        "",
    ] {
        assert!(parse_subject_arn(a, bad).is_err(), "{bad}");
    }
}

#[test]
fn a_record_naming_no_one_credits_no_one() {
    // Fuzz find: an empty userIdentity ARN made a use with no principal.
    let record = serde_json::json!({
        "eventVersion": "1.09", "eventTime": "2026-12-04T03:52:13.283Z",
        "eventSource": "kms.amazonaws.com", "eventName": "ListKeys",
        "eventType": "AwsApiCall", "eventCategory": "Management",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEVMQR5DSPSWVLRXI", "arn": ""},
        "resources": []
    });
    let mut uses = Uses::default();
    of_record(&record, &mut uses);
    assert!(uses.permissions.is_empty() && uses.credentials.is_empty());
}
