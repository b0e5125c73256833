//! Following a MySQL/MariaDB conversation from its bytes, for a relay
//! that passes them on: where each packet starts, which commands await
//! their responses and how those end (for the audit log), which commands
//! the gateway must answer itself (`COM_CHANGE_USER`, `KILL`, and
//! statements `latchkey-sqlguard` refuses: password changes, KILLs it
//! cannot map), and
//! whether the server is idle between transactions (so its connection
//! can be reused).
//!
//! Pure: the gateway reads into a [`Buffer`], calls [`Buffer::scan`], and
//! writes on what it scanned. Payloads are not copied: at most the first
//! [`INSPECT_PREFIX`] bytes of a command (or [`WHOLE_PAYLOAD`] bytes of
//! one the gateway may intercept, and of a server payload other than a
//! row) are looked at in place; everything else (rows, LOCAL INFILE
//! uploads, long data) streams through. No clock is read either: audited
//! statements are stamped by the [`Clock`] the caller puts in their
//! [`Audit`].
//!
//! The protocol is half duplex, but clients may pipeline commands; each
//! command awaiting its response is queued with its own
//! [`ResponseTracker`], and the server's packets are checked against the
//! sequence ids the command left off at.

use std::borrow::Cow;

use latchkey_mywire::{
    COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_DEBUG, COM_QUERY, COM_REFRESH, COM_REGISTER_SLAVE,
    COM_SHUTDOWN, COM_TABLE_DUMP, Command, MAX_PACKET_PAYLOAD, parse_command, utf8_prefix,
};
use latchkey_sqlguard::{Refusal, Rules, Verdict};
use latchkey_sqlnorm::Dialect;

mod buffer;
mod tracker;

pub use buffer::Buffer;
pub use latchkey_framing::{Audit, Clock, Direction, Framing, Guarded, Now, Ruling, StatementGate};
pub use latchkey_sqlguard::{Kill, KillForce, KillScope};
pub use tracker::Tracker;

#[cfg(test)]
mod tests;

/// Each direction's buffer. Grown (to [`WHOLE_PAYLOAD`] and a header)
/// only while a payload that must be looked at whole is arriving.
pub const BUFFER: usize = latchkey_framing::BUFFER;

/// Commands a client may have sent on unanswered before the relay stops
/// reading it ([`Tracker::backlogged`]). MySQL and MariaDB send each
/// command's response as it ends, so any bound holds up nobody; this one
/// leaves pipelining its depth. About 500 KB of records at most, with a
/// window's worth read past it.
pub const MAX_AWAITED: usize = 1_024;
/// How much of a command's SQL the audit sees; longer statements are
/// logged cut short and marked truncated.
pub const INSPECT_PREFIX: usize = 32 * 1024;
/// The largest payload held whole: a command the gateway may intercept,
/// and any server payload but a row. Always a single packet (splitting
/// starts at 16 MiB). SQL (`COM_QUERY`, `COM_STMT_PREPARE`) is held whole
/// whatever its size, up to the command limit, so that nothing padded
/// can slip past `latchkey-sqlguard`.
pub const WHOLE_PAYLOAD: usize = 64 * 1024;
/// Prepared statements remembered per session (the server's own limit is
/// `max_prepared_stmt_count`; a client that exceeds this gets its later
/// statements logged as unknown rather than the gateway's memory growing
/// without bound).
pub(crate) const MAX_STATEMENTS: usize = 10_000;
/// A command byte and a statement id: all the gateway reads of commands
/// other than SQL-carrying ones.
pub(crate) const ID_END: usize = 5;

/// Why bytes could not be followed. Every one ends the session: the
/// gateway can no longer tell where packets start or whose they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("client command of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("cannot follow the MySQL conversation: {0}")]
    Malformed(String),
    #[error("the server asked for a LOCAL INFILE upload, which this session may not make")]
    LocalInfileRefused,
    /// A statement over 16 MiB (several packets) that the gateway
    /// refuses, or cannot check because more statements may follow.
    #[error("a statement of several packets that the gateway refuses or cannot check")]
    Unchecked,
}

pub(crate) fn malformed(what: impl Into<String>) -> ScanError {
    ScanError::Malformed(what.into())
}

/// A whole client command taken out of the stream: the gateway answers
/// it itself (or forwards a rewritten one, see [`Tracker::forwarded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intercepted {
    pub payload: Vec<u8>,
    pub what: Interception,
}

/// What an intercepted command is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interception {
    ChangeUser,
    ProcessKill,
    /// A lone `KILL` statement, to be pointed at the server's thread id.
    Kill(Kill),
    /// SQL the session may not run: answer with an error (and audit it
    /// with [`Tracker::refused`]).
    Refused(Refusal),
    /// SQL statement policy denies: answer with this permission error
    /// (and audit it with [`Tracker::refused`]).
    Denied(std::sync::Arc<str>),
}

/// Administrative command packets refused (ERR 1227) whatever the policy:
/// `COM_SHUTDOWN` (stops the server for every principal), `COM_DEBUG`
/// (dumps server state to its log), `COM_REFRESH` (`FLUSH` and `RESET
/// MASTER|SLAVE` by bit flags; the SQL statements are the route), and
/// the replication stream (`COM_BINLOG_DUMP`, `COM_BINLOG_DUMP_GTID`,
/// `COM_REGISTER_SLAVE`, `COM_TABLE_DUMP`), which carries every
/// principal's changes past the audit.
pub fn admin_command(code: u8) -> bool {
    matches!(
        code,
        COM_SHUTDOWN
            | COM_DEBUG
            | COM_REFRESH
            | COM_BINLOG_DUMP
            | COM_BINLOG_DUMP_GTID
            | COM_REGISTER_SLAVE
            | COM_TABLE_DUMP
    )
}

/// The SQL of a `COM_QUERY` payload (after any query attributes).
pub(crate) fn query_sql(payload: &[u8], caps: u64) -> Option<&[u8]> {
    match parse_command(payload, caps) {
        Ok(Command::Query { sql, .. }) => Some(sql),
        _ => None,
    }
}

/// SQL as text: UTF-8 cut short inside a character loses the partial
/// character; other bytes (a latin1 session) are decoded lossily, which
/// only touches literals and names.
pub(crate) fn decode(sql: &[u8]) -> Cow<'_, str> {
    match utf8_prefix(sql) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(sql),
    }
}

/// Recognises a lone `KILL [HARD | SOFT] [CONNECTION | QUERY] <decimal
/// id>` (comments, executable comments, spacing and case as the server
/// reads them; one trailing `;` allowed). Anything else, `KILL QUERY ID
/// <n>`, `KILL USER <name>`, an expression, an id over `u64`, another
/// statement beside it, is not one.
pub fn parse_kill(sql: &[u8]) -> Option<Kill> {
    let any = Rules {
        allow_password_changes: true,
        allow_dynamic_sql: true,
    };
    match latchkey_sqlguard::check(sql, Dialect::MySql, any, true) {
        Verdict::Kill(k) => Some(k),
        _ => None,
    }
}

/// What a replay wrote each way, and what it intercepted.
#[derive(Debug, Default)]
struct Transcript {
    to_upstream: Vec<u8>,
    to_client: Vec<u8>,
    intercepted: Vec<Vec<u8>>,
    /// The largest either buffer grew to.
    max_buffer: usize,
}

/// Runs bytes through the scanner and tracker as a relay would receive
/// them, `chunk` bytes per read, in an order the protocol allows: the
/// server's bytes while a command awaits its response (and the client
/// has nothing half sent), the client's otherwise. Intercepted commands
/// are dropped, as if the gateway answered them. Says whether the server
/// connection would be reusable afterwards. For the fuzz target and
/// tests.
pub fn replay(
    from_client: &[u8],
    from_server: &[u8],
    chunk: usize,
    tracker: &mut Tracker,
    max_payload: usize,
) -> Result<bool, ScanError> {
    drive(from_client, from_server, chunk, tracker, max_payload, None)
}

fn drive(
    from_client: &[u8],
    from_server: &[u8],
    chunk: usize,
    tracker: &mut Tracker,
    max_payload: usize,
    mut transcript: Option<&mut Transcript>,
) -> Result<bool, ScanError> {
    let mut up = Buffer::default();
    let mut down = Buffer::default();
    let (mut client, mut server) = (from_client, from_server);
    // Where reads stop so the other side can go: the server cannot
    // answer a command before it is sent, and a client sends a file only
    // when asked, after a query naming LOCAL.
    let server_stops = packet_ends(from_server, |_| true);
    let client_stops = packet_ends(from_client, |p| {
        p.first() == Some(&COM_QUERY) && p.windows(5).any(|w| w.eq_ignore_ascii_case(b"LOCAL"))
    });
    let stop = |stops: &[usize], consumed: usize| {
        stops
            .iter()
            .find(|&&s| s > consumed)
            .map_or(usize::MAX, |s| s - consumed)
    };
    loop {
        let client_ready = !client.is_empty() && !up.terminated();
        let server_ready = !server.is_empty();
        let server_turn =
            server_ready && (!client_ready || (tracker.awaits_server() && up.nothing_in_flight()));
        let limit = if !server_turn {
            stop(&client_stops, from_client.len() - client.len())
        } else if client_ready {
            stop(&server_stops, from_server.len() - server.len())
        } else {
            usize::MAX
        };
        let (half, rest, direction) = if server_turn {
            (&mut down, &mut server, Direction::ToClient)
        } else if client_ready {
            (&mut up, &mut client, Direction::ToUpstream)
        } else {
            break;
        };
        half.make_room();
        let n = chunk
            .max(1)
            .min(limit)
            .min(rest.len())
            .min(half.space().len());
        if n == 0 {
            return Err(malformed("replay: no room to read into"));
        }
        half.space()[..n].copy_from_slice(&rest[..n]);
        if let Some(t) = transcript.as_deref_mut() {
            t.max_buffer = t.max_buffer.max(half.window().capacity());
        }
        half.filled(n);
        *rest = &rest[n..];
        loop {
            let intercepted = half.scan(direction, tracker, max_payload);
            // As if written on.
            let written = half.writable().len();
            if let Some(t) = transcript.as_deref_mut() {
                match direction {
                    Direction::ToUpstream => t.to_upstream.extend_from_slice(half.writable()),
                    Direction::ToClient => t.to_client.extend_from_slice(half.writable()),
                }
            }
            half.wrote(written);
            match intercepted? {
                Some(i) => {
                    if let Some(t) = transcript.as_deref_mut() {
                        t.intercepted.push(i.payload);
                    }
                }
                None => break,
            }
        }
    }
    Ok(tracker.idle() && down.at_boundary() && up.nothing_in_flight())
}

/// Offsets where the packets of `stream` that `wanted` picks (by the
/// first packet's payload) end.
fn packet_ends(stream: &[u8], wanted: impl Fn(&[u8]) -> bool) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while let Some(Ok(p)) = latchkey_mywire::next_packet(&stream[at..], MAX_PACKET_PAYLOAD) {
        if wanted(&stream[at + p.payload.start..at + p.payload.end]) {
            ends.push(at + p.consumed);
        }
        at += p.consumed;
    }
    ends
}
