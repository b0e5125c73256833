//! Following a PostgreSQL conversation from its bytes, for a relay that
//! passes them on unchanged: where each message starts, which statements
//! are in flight and how they end (for the audit log), and whether the
//! server is idle between transactions (so its connection can be reused).
//!
//! One exception to "unchanged": a `Query` or `Parse` whose SQL
//! `latchkey-sqlguard` refuses (a password change or dynamic SQL the
//! session's policy does not allow, `pg_terminate_backend`) is replaced
//! by one that makes the server raise `42501 insufficient_privilege`
//! ([`refusal_statement`]). The server answering
//! with its own error keeps the session's state true: a refused
//! statement in a transaction block aborts it, as any error would. The
//! audit logs the statement the client sent.
//!
//! Pure: the gateway reads into a [`Buffer`], calls [`Buffer::scan`], and
//! writes on what it scanned. Message bodies are not copied: at most
//! [`INSPECT_PREFIX`] bytes of the messages the [`Tracker`] follows are
//! looked at in place; everything else (COPY data, rows) streams through.
//! No clock is read either: audited statements are stamped by the
//! [`Clock`] the caller puts in their [`Audit`].

use latchkey_sqlguard::Refusal;

mod buffer;
pub mod prepared;
#[cfg(test)]
mod tests;
mod tracker;

pub use buffer::Buffer;
pub use latchkey_framing::{
    Audit, Clock, Direction, Framing, Guarded, Now, Ruling, StatementGate, Window,
};
pub use tracker::{Pooling, Tracker};

/// Each direction's buffer. Grown (to [`INSPECT_PREFIX`] and a header)
/// only while a long statement is being looked at.
pub const BUFFER: usize = latchkey_framing::BUFFER;

/// Messages a client may have sent on unanswered before the relay stops
/// reading it ([`Tracker::backlogged`]). Well above what a server keeps
/// unsent, so that the answers awaited begin to arrive without anything
/// more from the client and a batch not yet synced is never held up:
/// PostgreSQL sends its output when 8 KiB of it waits, when it raises an
/// error, and at `ReadyForQuery` (at most 1,638 answers of 5 bytes held
/// back). About 300 KB of records at most, with a window's worth read
/// past it.
pub const MAX_AWAITED: usize = 4_096;
/// How much of a `Query` or `Parse` the audit sees; longer statements are
/// logged cut short and marked truncated.
pub const INSPECT_PREFIX: usize = 32 * 1024;
/// What a refused statement becomes: the server raises the error
/// itself (`DO` runs PL/pgSQL, installed in every database by default;
/// without it the statement still fails).
pub const REFUSAL: &str = "DO $latchkey$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', \
MESSAGE = 'permission denied to change a password or authentication through Latchkey', \
HINT = 'The principal needs the latchkey:ChangeDatabasePassword permission.'; END$latchkey$";
/// What refused dynamic SQL (PL/pgSQL `EXECUTE`, `dblink`) becomes.
pub const REFUSAL_DYNAMIC_SQL: &str = "DO $latchkey$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', \
MESSAGE = 'permission denied to run dynamic SQL (EXECUTE in PL/pgSQL, dblink) through Latchkey', \
HINT = 'The principal needs the latchkey:ExecuteDynamicSql permission.'; END$latchkey$";
/// What a call of `pg_terminate_backend` or `pg_cancel_backend`
/// becomes: gateway sessions share upstream roles, so it could end
/// another principal's session.
pub const REFUSAL_SIGNAL: &str = "DO $latchkey$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', \
MESSAGE = 'permission denied to signal server processes through Latchkey', \
HINT = 'Cancel your own query with the protocol''s cancel request (Ctrl-C in psql, cancel() in drivers).'; END$latchkey$";

/// The fixed OIDs of `pg_terminate_backend` and `pg_cancel_backend`, which
/// a `FunctionCall` message (libpq's `PQfn`) could name without SQL.
pub(crate) const SIGNAL_FUNCTIONS: [u32; 2] = [2096, 2171];
/// The fixed OIDs (PostgreSQL 15) of functions that run an SQL string:
/// `query_to_xml`, `query_to_xmlschema`, `query_to_xml_and_xmlschema`,
/// `ts_rewrite(tsquery, text)`, `ts_stat` (both forms). Extension
/// functions (`dblink*`) have no fixed OID.
pub(crate) const DYNAMIC_SQL_FUNCTIONS: [u32; 6] = [2924, 2927, 2930, 3685, 3689, 3690];
/// The fixed OIDs of server file access and configuration reload:
/// `lo_import` (both), `lo_export`, `pg_reload_conf`, `pg_read_file`
/// (three), `pg_read_binary_file` (three).
pub(crate) const SERVER_FILE_FUNCTIONS: [u32; 10] =
    [764, 767, 765, 2621, 2624, 3293, 3826, 3295, 3827, 3828];

/// A whole `Query` message.
pub(crate) fn query_message(sql: &str) -> Vec<u8> {
    statement_message(b'Q', None, sql)
}

/// What a statement refused by statement policy becomes: `message`
/// (`permission denied by policy: sql:Drop on table public.orders`)
/// raised by the server as `42501`. Object names come from the client,
/// so only characters that cannot end the literal or the dollar quote
/// are kept.
pub fn policy_refusal(message: &str) -> String {
    raised("42501", message)
}

/// The bytes of a statement or portal name that PostgreSQL tells apart:
/// the first 63 (`NAMEDATALEN` - 1). Names that share them are one name
/// to it, so they must be one to the gateway too (statement policy,
/// the audit's names, the statements carried in transaction pooling).
pub(crate) fn server_key(name: &[u8]) -> &[u8] {
    &name[..name.len().min(NAME_BYTES)]
}

/// `NAMEDATALEN` - 1.
pub(crate) const NAME_BYTES: usize = 63;

/// A statement that makes the server raise `message` with `sqlstate`.
/// Only characters that cannot end the literal or the dollar quote are
/// kept of the message.
pub(crate) fn raised(sqlstate: &str, message: &str) -> String {
    let safe: String = message
        .chars()
        .map(|c| match c {
            ' ' | '.' | ':' | '_' | '-' | '/' | '*' | '(' | ')' | ',' | '"' => c,
            c if c.is_ascii_alphanumeric() => c,
            _ => '?',
        })
        .collect();
    format!(
        "DO $latchkey$BEGIN RAISE EXCEPTION USING ERRCODE = '{sqlstate}', MESSAGE = '{safe}'; END$latchkey$"
    )
}

/// The messages that stand for a `Parse` statement policy refused: the
/// unnamed statement becomes `refusal` and is bound and executed, so that
/// the server raises its error where the `Parse` would have failed. The
/// tracker drops the `ParseComplete` and `BindComplete` they earn.
pub(crate) fn refused_parse(refusal: &str) -> Vec<u8> {
    let mut out = statement_message(b'P', Some(b""), refusal);
    // Bind: unnamed portal, unnamed statement, no formats, no parameters,
    // no result formats.
    out.extend_from_slice(&[b'B', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Execute: unnamed portal, no row limit.
    out.extend_from_slice(&[b'E', 0, 0, 0, 9, 0, 0, 0, 0, 0]);
    out
}

/// A whole `Query` (no `name`) or `Parse` (a statement `name`, no
/// parameter types) message carrying `sql`.
pub(crate) fn statement_message(tag: u8, name: Option<&[u8]>, sql: &str) -> Vec<u8> {
    let mut new = Vec::with_capacity(sql.len() + 64);
    new.push(tag);
    new.extend_from_slice(&[0; 4]);
    if let Some(name) = name {
        new.extend_from_slice(name);
        new.push(0);
    }
    new.extend_from_slice(sql.as_bytes());
    new.push(0);
    if name.is_some() {
        // No parameter types.
        new.extend_from_slice(&[0, 0]);
    }
    let len = u32::try_from(new.len() - 1).unwrap_or(u32::MAX);
    new[1..5].copy_from_slice(&len.to_be_bytes());
    new
}

/// The statement that makes the server raise a refusal's error.
pub fn refusal_statement(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::DynamicSql => REFUSAL_DYNAMIC_SQL,
        Refusal::SignalBackend => REFUSAL_SIGNAL,
        Refusal::PasswordChange | Refusal::Kill => REFUSAL,
    }
}

/// Prepared statements and portals remembered per session (PostgreSQL has
/// no limit; a client that exceeds this gets its later statements logged
/// as unknown rather than the gateway's memory growing without bound).
pub(crate) const MAX_NAMES: usize = 10_000;

/// Whether a `client_encoding` hands the server the bytes the classifier
/// reads as UTF-8: `UTF8` itself, or `SQL_ASCII` (no conversion).
pub fn reads_as_utf8(client_encoding: &str) -> bool {
    let e = client_encoding.replace(['-', '_'], "").to_ascii_uppercase();
    e == "UTF8" || e == "UNICODE" || e == "SQLASCII"
}

/// Why bytes could not be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("client message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("malformed message header")]
    Malformed,
}

/// The part of a message body the audit sees: at most [`INSPECT_PREFIX`]
/// bytes (checked SQL is read whole, but logged as before).
pub(crate) fn audited(body: &[u8], complete: bool) -> (&[u8], bool) {
    let cut = body.len().min(INSPECT_PREFIX);
    (&body[..cut], complete && cut == body.len())
}

/// Runs bytes through the scanner and tracker as a relay would receive
/// them, `chunk` bytes per read: the client's bytes, then the server's.
/// Says whether the server connection would be reusable afterwards. For
/// the fuzz target and tests.
pub fn replay(
    from_client: &[u8],
    from_server: &[u8],
    chunk: usize,
    tracker: &mut Tracker,
    max_message: usize,
) -> Result<bool, ScanError> {
    let mut halves = [Buffer::default(), Buffer::default()];
    for (half, direction, mut rest) in [
        (0, Direction::ToUpstream, from_client),
        (1, Direction::ToClient, from_server),
    ] {
        let half = &mut halves[half];
        while !rest.is_empty() && !half.terminated() {
            half.make_room();
            let n = chunk.max(1).min(rest.len()).min(half.space().len());
            half.space()[..n].copy_from_slice(&rest[..n]);
            half.filled(n);
            rest = &rest[n..];
            half.scan(direction, tracker, max_message)?;
            // As if written on.
            let n = half.writable().len();
            half.wrote(n);
        }
    }
    let [to_upstream, to_client] = &halves;
    let (up, down) = (to_upstream.window(), to_client.window());
    Ok(tracker.idle() && down.skipping() == 0 && down.unscanned() == 0 && up.skipping() == 0)
}
