//! Prepared statements in transaction pooling: a client's named
//! statements live on whichever server connection it lands on, so the
//! gateway keeps them itself and prepares them on each connection under a
//! name of its own, once per connection, keyed by the statement's exact
//! text and parameter types (as PgBouncer ≥ 1.21 and PgDog do).
//!
//! - [`StatementBook`]: one per gateway; identical statements (text and
//!   parameter types, compared whole, never by hash alone: two clients
//!   must never share a statement unless they sent the same one) get one
//!   id, so every client's copy is one server statement.
//! - [`ServerStatements`]: what one server connection has prepared, most
//!   recently used last, bounded ([`MAX_SERVER_STATEMENTS`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Statements one server connection keeps; the least recently used is
/// closed to make room (PgBouncer's `max_prepared_statements` default).
pub const MAX_SERVER_STATEMENTS: usize = 200;

/// Distinct statements the book shares between clients; past it a new
/// statement gets an id of its own (still correct, prepared per client).
const MAX_SHARED: usize = 50_000;

/// Bytes of statement text the book shares at most, and the longest
/// statement it shares: it is kept for the gateway's life, so clients
/// sending large distinct statements must not grow it without end.
const MAX_SHARED_BYTES: usize = 64 << 20;
const MAX_SHARED_BODY: usize = 64 << 10;

/// Bytes of statement text the gateway carries for one client; past them
/// (or past [`crate::MAX_NAMES`] names) the client keeps its server
/// connection and its further names are its own on it. A thousand
/// sessions of one principal could otherwise hold gigabytes of it.
pub const MAX_CARRIED_BYTES: usize = 4 << 20;

/// A statement as a server prepares it: the `Parse` body after the name
/// (text, then parameter types), and its id.
#[derive(Clone, Debug)]
pub struct Interned {
    pub id: u64,
    pub body: Arc<[u8]>,
}

impl Interned {
    /// The server-side name (see [`server_name`]).
    pub fn server_name(&self) -> Vec<u8> {
        server_name(self.id)
    }
}

/// What every statement name the gateway gives on the server starts
/// with.
pub(crate) const GATEWAY_PREFIX: &[u8] = b"_lk_";

/// SQL that may name one of the gateway's statements in an `EXECUTE`
/// (`EXECUTE _lk_1`, `EXPLAIN ANALYZE EXECUTE …`, `CREATE TABLE … AS
/// EXECUTE …`): it mentions `execute` and `_lk_`, or a Unicode-escaped
/// name (`U&"\005flk_1"`) that could spell one. Read as bytes, strings
/// included: on a connection it keeps, a client could otherwise run a
/// statement another session of its principal prepared there, under
/// that session's policy rather than its own.
pub(crate) fn may_execute_gateway_statement(sql: &[u8]) -> bool {
    // One pass, for every query a pooled client sends.
    let at = |i: usize, word: &[u8]| {
        sql.get(i..i + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    let (mut execute, mut name) = (false, false);
    for (i, &c) in sql.iter().enumerate() {
        match c {
            b'_' => name |= at(i, GATEWAY_PREFIX),
            b'e' | b'E' => execute |= at(i, b"execute"),
            b'u' | b'U' => name |= at(i, b"u&"),
            _ => {}
        }
        if execute && name {
            return true;
        }
    }
    false
}

/// `_lk_` and the id.
pub fn server_name(id: u64) -> Vec<u8> {
    format!("_lk_{id}").into_bytes()
}

/// What a client's `Bind` or `Describe` of a statement it never prepared
/// is sent to (after a `Close` of it: see `Tracker::carry_named`).
pub(crate) const NO_STATEMENT: &[u8] = b"_lk_none";

/// The statement id in a server name the gateway gave, if it is one.
pub(crate) fn id_of(server_name: &[u8]) -> Option<u64> {
    let digits = server_name.strip_prefix(GATEWAY_PREFIX)?;
    let id = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (self::server_name(id) == server_name).then_some(id)
}

/// Statement ids by exact body.
#[derive(Default)]
pub struct StatementBook {
    shared: Mutex<Shared>,
    next: AtomicU64,
}

#[derive(Default)]
struct Shared {
    by_body: HashMap<Arc<[u8]>, u64>,
    bytes: usize,
}

impl StatementBook {
    /// The statement with this `Parse` body (text and parameter types).
    pub fn intern(&self, body: &[u8]) -> Interned {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((body, &id)) = shared.by_body.get_key_value(body) {
            return Interned {
                id,
                body: body.clone(),
            };
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let body: Arc<[u8]> = body.into();
        if shared.by_body.len() < MAX_SHARED
            && body.len() <= MAX_SHARED_BODY
            && shared.bytes + body.len() <= MAX_SHARED_BYTES
        {
            shared.bytes += body.len();
            shared.by_body.insert(body.clone(), id);
        }
        Interned { id, body }
    }

    /// Bytes of statement text shared.
    pub fn shared_bytes(&self) -> usize {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

/// A client's named statements, and the bytes of text they hold.
#[derive(Default)]
pub struct NamedStatements {
    by_name: HashMap<Box<[u8]>, Interned>,
    bytes: usize,
}

impl NamedStatements {
    /// No more can be carried: [`crate::MAX_NAMES`] names, or
    /// [`MAX_CARRIED_BYTES`] of text.
    pub fn full(&self) -> bool {
        self.by_name.len() >= crate::MAX_NAMES || self.bytes >= MAX_CARRIED_BYTES
    }

    pub fn get(&self, name: &[u8]) -> Option<&Interned> {
        self.by_name.get(name)
    }

    pub fn contains_key(&self, name: &[u8]) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Box<[u8]>, &Interned)> {
        self.by_name.iter()
    }

    pub fn insert(&mut self, name: Box<[u8]>, st: Interned) {
        self.bytes += st.body.len();
        if let Some(old) = self.by_name.insert(name, st) {
            self.bytes -= old.body.len();
        }
    }

    pub fn remove(&mut self, name: &[u8]) -> Option<Interned> {
        let old = self.by_name.remove(name)?;
        self.bytes -= old.body.len();
        Some(old)
    }

    pub fn clear(&mut self) {
        self.by_name.clear();
        self.bytes = 0;
    }
}

/// What one server connection has prepared, least recently used first.
#[derive(Default, Debug)]
pub struct ServerStatements {
    lru: VecDeque<u64>,
}

impl ServerStatements {
    pub fn contains(&self, id: u64) -> bool {
        self.lru.contains(&id)
    }

    /// Marks `id` used now.
    pub fn touch(&mut self, id: u64) {
        if let Some(at) = self.lru.iter().position(|&i| i == id) {
            self.lru.remove(at);
            self.lru.push_back(id);
        }
    }

    /// Records `id` as prepared; returns the statement to close to make
    /// room, if any.
    pub fn insert(&mut self, id: u64) -> Option<u64> {
        if self.contains(id) {
            self.touch(id);
            return None;
        }
        let evicted = (self.lru.len() >= MAX_SERVER_STATEMENTS)
            .then(|| self.lru.pop_front())
            .flatten();
        self.lru.push_back(id);
        evicted
    }

    pub fn remove(&mut self, id: u64) {
        self.lru.retain(|&i| i != id);
    }

    /// The server may have dropped them all (`DEALLOCATE ALL`, `DISCARD
    /// ALL`).
    pub fn clear(&mut self) {
        self.lru.clear();
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }
}

/// A `Parse` of `name` with `body` (text and parameter types).
pub(crate) fn parse_message(name: &[u8], body: &[u8]) -> Vec<u8> {
    message(b'P', &[name, &[0], body])
}

/// A `Close` of statement `name`.
pub(crate) fn close_statement(name: &[u8]) -> Vec<u8> {
    message(b'C', &[b"S", name, &[0]])
}

/// A `Close` of a statement that does not exist: answered by
/// `CloseComplete`, which stands for a `ParseComplete` the server need
/// not earn again.
pub(crate) fn close_nothing() -> Vec<u8> {
    close_statement(NO_STATEMENT)
}

pub(crate) const PARSE_COMPLETE: [u8; 5] = [b'1', 0, 0, 0, 4];

fn message(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 4;
    let mut out = Vec::with_capacity(len + 1);
    out.push(tag);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The body of a `Bind` or `Describe` with its statement name replaced:
/// `before` is what precedes the name (the portal and its NUL for `Bind`,
/// the kind byte for `Describe`), `after` what follows the name's NUL.
pub(crate) fn renamed(tag: u8, before: &[u8], name: &[u8], after: &[u8]) -> Vec<u8> {
    message(tag, &[before, name, &[0], after])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_statements_share_an_id_and_others_never_do() {
        let book = StatementBook::default();
        let a = book.intern(b"SELECT 1\0\0\0");
        let b = book.intern(b"SELECT 1\0\0\0");
        let c = book.intern(b"SELECT 2\0\0\0");
        let typed = book.intern(b"SELECT 1\0\0\x01\0\0\0\x17");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_ne!(a.id, typed.id);
        assert_eq!(a.server_name(), b"_lk_1");
        assert_eq!(id_of(&a.server_name()), Some(a.id));
        assert_eq!(id_of(&server_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(id_of(NO_STATEMENT), None);
        assert_eq!(id_of(b"_lk_01"), None);
        for sql in [
            "EXECUTE _lk_1(3)",
            "explain analyze execute _LK_1",
            "CREATE TABLE t AS EXECUTE \"_lk_1\"",
            "EXECUTE U&\"\\005flk_1\"",
        ] {
            assert!(may_execute_gateway_statement(sql.as_bytes()), "{sql}");
        }
        for sql in ["EXECUTE mine", "SELECT _lk_1 FROM t", "SELECT 'u&'"] {
            assert!(!may_execute_gateway_statement(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn a_server_keeps_the_most_recently_used() {
        let mut s = ServerStatements::default();
        for id in 0..MAX_SERVER_STATEMENTS as u64 {
            assert_eq!(s.insert(id), None);
        }
        s.touch(0);
        assert_eq!(s.insert(1_000), Some(1), "the least recently used goes");
        assert!(s.contains(0) && s.contains(1_000) && !s.contains(1));
        s.clear();
        assert!(s.is_empty());
    }

    #[test]
    fn messages_are_framed() {
        assert_eq!(close_statement(b"x"), b"C\0\0\0\x07Sx\0");
        assert_eq!(parse_message(b"n", b"Q\0\0\0"), b"P\0\0\0\x0an\0Q\0\0\0");
        assert_eq!(renamed(b'B', b"\0", b"s", b"rest"), b"B\0\0\0\x0b\0s\0rest");
    }
}
