//! Audit events, their CloudTrail-style JSON, the tamper-evident trail
//! format, and the interface the gateways emit events through.
//!
//! Pure: the gateways and the token service build events and hand them to
//! an [`AuditSink`]; where they go (the hash-chained trail, detection) is
//! the sink's business. Events hold only what is safe to keep: statements
//! arrive here already normalised, with literals redacted, and no event
//! ever carries a token, password or secret key.

pub mod anchor;
mod event;
mod json;
mod statements;
pub mod trail;

pub use event::*;
pub use json::{
    EVENT_VERSION, FieldCache, Object, RecordContext, SessionFields, finding_json, json_string,
    rfc3339, write_finding,
};
pub use statements::StatementCache;

/// Where events go. `record` is called on the relays' tasks, so it must
/// not block: queue and return.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: Event);

    /// False while the trail cannot write and new work must be refused
    /// (fail closed). Existing sessions keep queueing, up to the bound
    /// [`AuditSink::poll_room`] holds them to.
    fn accepting(&self) -> bool {
        true
    }

    /// Ready while the sink takes more records within its bound of
    /// records waiting to be written; otherwise `cx` is woken once it
    /// has room. A session stops sending statements on meanwhile, so
    /// that a trail falling behind holds them up rather than growing
    /// without limit (or dropping a record).
    fn poll_room(&self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Ready(())
    }
}

/// Discards everything (audit off).
pub struct NullSink;

impl AuditSink for NullSink {
    fn record(&self, _: Event) {}
}

/// The row count at the end of a command tag (`SELECT 5`, `INSERT 0 5`,
/// `UPDATE 3`); none for tags without one (`BEGIN`, `CREATE TABLE`).
pub fn rows_from_tag(tag: &str) -> Option<u64> {
    let (verb, rest) = tag.split_once(' ')?;
    if !matches!(
        verb,
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "FETCH" | "MOVE" | "COPY"
    ) {
        return None;
    }
    rest.rsplit(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests;
