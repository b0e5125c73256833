//! Other nodes' audit records for a lookup, from their copies in the
//! shared store, shown only where something vouches for them: a running
//! node's whole copy (its anchor follows a second behind), a node that is
//! gone only up to its last anchor. Records past that were written by no
//! node anyone can still ask (or added to the store since), so they are
//! held back and counted, never shown as evidence. Shared by `latchkey
//! audit lookup` and the console's Audit page; `latchkey audit verify` is
//! where they are judged.

use std::collections::BTreeMap;

use latchkey_store::{AuditQuery, Store, StoreError};

/// A node counts as running while it reported this recently (nodes report
/// every 5 seconds).
pub const ALIVE_SECS: i64 = 20;
/// How far ahead of this clock a node's report may be dated (clocks
/// drift); a report dated further ahead is treated as a gone node's.
pub const FUTURE_SKEW_SECS: i64 = 60;

/// Whether a node whose last report is dated `last_seen` runs at `now`.
pub fn node_alive(last_seen: Option<i64>, now: i64) -> bool {
    last_seen.is_some_and(|t| t <= now + FUTURE_SKEW_SECS && now - t <= ALIVE_SECS)
}

/// What a lookup found in the other nodes' copies.
#[derive(Debug, Default)]
pub struct Found {
    /// Matching records, newest first, each as its node sealed it.
    pub lines: Vec<String>,
    /// Per gone node, the matching records past its last anchor (or of
    /// another trail) that were held back: (node, its last anchored
    /// record, how many).
    pub withheld: Vec<(String, Option<u64>, usize)>,
}

/// The record number of a sealed trail line of trail `trail_id`: its
/// leading `sequence`, which its `eventID` must name too; `None` for
/// another trail's line or one whose two disagree.
fn sequence_of(trail_id: u64, line: &str) -> Option<u64> {
    let rest = line.strip_prefix("{\"sequence\":")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let sequence: u64 = rest[..digits].parse().ok()?;
    let at = line.find("\"eventID\":\"")? + 11;
    let named = latchkey_audit::trail::sequence_of(trail_id, line.get(at..at + 36)?)?;
    (named == sequence).then_some(sequence)
}

/// The other nodes' records matching `query`, as [`Found`] says, at
/// `now` (seconds).
pub fn find_vouched(store: &Store, query: &AuditQuery, now: i64) -> Result<Found, StoreError> {
    let found = store.find_shipped(query)?;
    if found.is_empty() {
        return Ok(Found::default());
    }
    let seen: BTreeMap<String, i64> = store
        .nodes()?
        .into_iter()
        .map(|n| (n.node, n.seen))
        .collect();
    let key: Option<[u8; 32]> = store
        .audit_public_key()?
        .and_then(|k| <[u8; 32]>::try_from(k).ok());
    // Per gone node: its last anchor that opens (trail, record).
    let mut reach: BTreeMap<String, Option<(u64, u64)>> = BTreeMap::new();
    let mut out = Found::default();
    for (node, line) in found {
        if node_alive(seen.get(&node).copied(), now) {
            out.lines.push(line);
            continue;
        }
        if !reach.contains_key(&node) {
            let anchored = match (store.audit_anchor(&node)?, &key) {
                (Some(doc), Some(key)) => latchkey_audit::anchor::open_anchor(doc.as_bytes(), key)
                    .ok()
                    .map(|a| (a.body.trail_id, a.body.sequence)),
                _ => None,
            };
            reach.insert(node.clone(), anchored);
        }
        let anchored = reach.get(&node).copied().flatten();
        let vouched = anchored
            .is_some_and(|(trail, last)| sequence_of(trail, &line).is_some_and(|n| n <= last));
        if vouched {
            out.lines.push(line);
        } else if let Some(w) = out.withheld.iter_mut().find(|w| w.0 == node) {
            w.2 += 1;
        } else {
            out.withheld.push((node, anchored.map(|(_, last)| last), 1));
        }
    }
    Ok(out)
}

/// What to tell whoever looked up about withheld records.
pub fn withheld_warning(node: &str, anchored: Option<u64>, count: usize) -> String {
    let after = anchored.map_or_else(
        || "it has no valid anchor".to_owned(),
        |a| format!("its last anchor is record {a}"),
    );
    format!(
        "node {node} is gone and {after}: {count} matching record(s) of its copy in the store past that are vouched for by nothing and not shown (latchkey audit verify judges them)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_its_record_and_liveness_has_bounds() {
        let line = |sequence: u64| {
            format!(
                r#"{{"sequence":{sequence},"eventVersion":"1.08","eventID":"{}","eventName":"X"}}"#,
                latchkey_audit::trail::event_id(7, 42)
            )
        };
        assert_eq!(sequence_of(7, &line(42)), Some(42));
        assert_eq!(sequence_of(8, &line(42)), None, "another trail's");
        assert_eq!(sequence_of(7, &line(43)), None, "its eventID disagrees");
        assert_eq!(sequence_of(7, r#"{"sequence":1,"eventID":"short"}"#), None);
        assert!(node_alive(Some(100), 110));
        assert!(!node_alive(Some(100), 100 + ALIVE_SECS + 1));
        assert!(
            !node_alive(Some(100 + FUTURE_SKEW_SECS + 1), 100),
            "from the future"
        );
        assert!(!node_alive(None, 100));
    }
}
