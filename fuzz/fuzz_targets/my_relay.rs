//! The MySQL relay scanner and command tracker on arbitrary client and
//! server bytes, split into reads of arbitrary sizes, under a few
//! negotiated capability sets; and the KILL recogniser.
#![no_main]

use std::sync::Arc;

use latchkey_audit::{NullSink, SessionInfo};
use latchkey_my_stream::{Audit, Now, Tracker, parse_kill, replay};
use latchkey_mywire::{
    CLIENT_DEPRECATE_EOF, CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS, CLIENT_PROTOCOL_41,
    CLIENT_PS_MULTI_RESULTS, CLIENT_QUERY_ATTRIBUTES, CLIENT_SECURE_CONNECTION,
    CLIENT_SESSION_TRACK, CLIENT_TRANSACTIONS, MARIADB_CLIENT_CACHE_METADATA,
    MARIADB_CLIENT_PROGRESS,
};
use libfuzzer_sys::fuzz_target;

const BASE: u64 = CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_TRANSACTIONS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS;

/// A MySQL 8 client with everything, and a MariaDB one.
const CAPS: [u64; 2] = [
    BASE | CLIENT_DEPRECATE_EOF
        | CLIENT_MULTI_STATEMENTS
        | CLIENT_SESSION_TRACK
        | CLIENT_QUERY_ATTRIBUTES,
    BASE | MARIADB_CLIENT_PROGRESS | MARIADB_CLIENT_CACHE_METADATA,
];

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
    let _ = parse_kill(data);
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the read size and where client bytes end.
    let chunk = usize::from(control % 64) + 1;
    let split = rest.len() * usize::from(control >> 6) / 3;
    let (from_client, from_server) = rest.split_at(split.min(rest.len()));
    let session = Arc::new(SessionInfo {
        session_id: "fuzz".into(),
        engine: "mysql",
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
    for (i, caps) in CAPS.into_iter().enumerate() {
        let mut tracker = Tracker::new(
            caps,
            Some(Audit {
                sink: Arc::new(NullSink),
                session: session.clone(),
                keep_literals: i == 1,
                clock,
            }),
            i == 0,
        );
        let _ = replay(from_client, from_server, chunk, &mut tracker, 1 << 16);
    }
});
