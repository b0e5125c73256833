//! Policy documents from users: validation must return findings, never
//! panic, and whatever validates must compile and evaluate. Access
//! Analyzer's findings on any text (what `ValidatePolicy` answers) are
//! located inside that text.
#![no_main]

use latchkey_policy::{CompiledPolicy, PolicyKind, PolicySet, Request, analyze, locate, parse};
use libfuzzer_sys::fuzz_target;

/// A span's offsets lie within the text, in order.
fn check_span(text: &str, finding: &serde_json::Value) {
    let chars = text.chars().count() as u64;
    let span = &finding["locations"][0]["span"];
    let (start, end) = (&span["start"]["offset"], &span["end"]["offset"]);
    let (Some(start), Some(end)) = (start.as_u64(), end.as_u64()) else {
        panic!("no span: {finding}");
    };
    assert!(start <= end && end <= chars, "{finding}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for kind in [PolicyKind::Identity, PolicyKind::Resource] {
        if let Ok(policy) = parse(text, kind) {
            let set = PolicySet {
                identity: vec![CompiledPolicy::compile("fuzz", &policy).into()],
                ..PolicySet::default()
            };
            let req = Request::new("s3:GetObject", "arn:aws:s3:::b/k")
                .with_context("aws:username", ["alice"])
                .with_context("aws:SourceIp", ["10.0.0.1"]);
            let _ = set.explain(&req);
        }
    }
    for kind in [PolicyKind::Identity, PolicyKind::Trust] {
        let findings = analyze::validate_text(text, kind, "123456789012");
        for finding in analyze::aws_json(text, &findings) {
            check_span(text, &finding);
        }
    }
    let l = locate::locate(text, "$.Statement[0].Condition.StringEquals.aws:Tag/a.b[1]");
    assert!(l.start.offset <= l.end.offset);
});
