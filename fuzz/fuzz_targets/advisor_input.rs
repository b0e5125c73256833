//! What the access advisor reads from outside: trail records (a rebuild
//! reads every line of the trail, whatever is on disk) and the ARN a
//! report is asked about. Neither panics; what a record yields is
//! well-formed, and the reports over it are made without panicking.
#![no_main]

use latchkey_advisor::{Uses, of_record, parse_subject_arn, permissions_accessed, services_accessed};
use latchkey_policy::{PolicyKind, parse};
use libfuzzer_sys::fuzz_target;

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["rds-db:connect","sql:*","iam:Get*"],"Resource":["arn:aws:rds-db:*:*:dbuser:*/app","*"]},
  {"Effect":"Allow","NotAction":"kms:*","NotResource":"arn:aws:s3:::x"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        let _ = parse_subject_arn("123456789012", &text);
        return;
    }
    let Ok(record) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let mut uses = Uses::default();
    of_record(&record, &mut uses);
    for u in &uses.permissions {
        assert!(u.action.contains(':'), "{u:?}");
        assert!(!u.principal.is_empty() && !u.resource.is_empty(), "{u:?}");
    }
    for c in &uses.credentials {
        assert!(!c.id.is_empty() && !c.service.is_empty(), "{c:?}");
    }
    let granted: Vec<&'static str> = latchkey_policy::catalog::all_actions().collect();
    let _ = services_accessed(&granted, &uses.permissions);
    if let Ok(policy) = parse(POLICY, PolicyKind::Identity) {
        let _ = permissions_accessed(&[policy], &uses.permissions);
    }
});
