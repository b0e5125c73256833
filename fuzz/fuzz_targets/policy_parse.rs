//! Policy documents from users: validation must return findings, never
//! panic, and whatever validates must compile and evaluate.
#![no_main]

use latchkey_policy::{CompiledPolicy, PolicyKind, PolicySet, Request, parse};
use libfuzzer_sys::fuzz_target;

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
});
