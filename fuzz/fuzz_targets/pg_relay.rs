//! The gateway's relay scanner and statement tracker on arbitrary client
//! and server bytes, split into reads of arbitrary sizes, in session and
//! in transaction pooling (prepared statements carried, session state
//! followed).
#![no_main]

use std::sync::Arc;

use latchkey_audit::{NullSink, SessionInfo};
use latchkey_pg_stream::{Audit, Now, Tracker, replay};
use libfuzzer_sys::fuzz_target;

/// A stopped clock: the tracker reads none of its own.
fn clock() -> Now {
    static START: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    Now {
        wall: std::time::UNIX_EPOCH,
        instant: *START,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the read size and where client bytes end.
    let chunk = usize::from(control % 64) + 1;
    let split = rest.len() * usize::from(control >> 6) / 3;
    let (from_client, from_server) = rest.split_at(split.min(rest.len()));
    let session = Arc::new(SessionInfo {
        session_id: "fuzz".into(),
        engine: "postgres",
        identity: latchkey_audit::Identity {
            kind: latchkey_audit::IdentityKind::Unknown,
            arn: String::new(),
            principal_id: String::new(),
            account_id: String::new(),
            access_key_id: String::new(),
            session: None,
        },
        source_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        user_agent: None,
        database: String::new(),
        resource_arn: String::new(),
        database_name: String::new(),
        db_user: String::new(),
        started: std::time::UNIX_EPOCH,
    });
    let mut tracker = Tracker::new(Some(Audit {
        sink: Arc::new(NullSink),
        session,
        keep_literals: false,
        clock,
    }));
    if control & 1 == 1 {
        tracker = tracker.with_pooling(latchkey_pg_stream::Pooling::new(
            &["application_name", "search_path"],
            control & 2 == 2,
            Arc::default(),
        ));
    }
    let _ = replay(from_client, from_server, chunk, &mut tracker, 1 << 16);
});
