//! The audit trail of every node sharing a store (issue 22): verifying
//! each node's chain from its copy in the store (`ship.rs` puts it
//! there), and finding records across the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use latchkey_audit::anchor;
use latchkey_audit::trail::{self, Problem, Window};
use latchkey_store::{AuditQuery, ShippedHead, Store};
use serde_json::json;

use latchkey_server::shipped::{ALIVE_SECS, FUTURE_SKEW_SECS};

/// How long `audit verify` waits for a running node's copy to reach the
/// anchor it saved (shipping runs every half second).
const CATCH_UP: Duration = Duration::from_secs(5);

/// One node's trail, verified from the store.
pub struct NodeCheck {
    pub node: String,
    /// This node's own copy (its trail is also verified from its files).
    pub this_node: bool,
    pub report: trail::Report,
    pub alive: bool,
    /// Unix seconds of its last report, if it ever reported.
    pub last_seen: Option<i64>,
    pub warnings: Vec<String>,
}

impl NodeCheck {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.report).unwrap_or_else(|_| json!({}));
        v["node"] = json!(self.node);
        v["thisNode"] = json!(self.this_node);
        v["source"] = json!("store");
        v["alive"] = json!(self.alive);
        v["lastSeen"] = json!(self.last_seen.map(rfc3339));
        v["warnings"] = json!(self.warnings);
        v["intact"] = json!(self.report.ok());
        v
    }
}

pub fn rfc3339(unix_secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The node a record line says sealed it (`latchkeyNodeId`), if it says.
/// A line's own fields are escaped JSON, so the raw pattern can only be
/// the record's top-level field.
fn sealed_by(line: &str) -> Option<&str> {
    const FIELD: &str = "\"latchkeyNodeId\":\"";
    let at = line.find(FIELD)? + FIELD.len();
    let rest = &line[at..];
    rest.find('"').map(|end| &rest[..end])
}

/// Whether what the store files `r` under for lookups is what its line
/// says.
fn lookup_fields_hold(r: &latchkey_store::ShippedRecord) -> bool {
    latchkey_trail::record_key(r.line.as_bytes()).is_some_and(|(key, sequence, time_ms)| {
        sequence == r.sequence
            && time_ms == r.time_ms
            && key.name == r.name
            && key.principal == r.principal
            && key.access_key_id == r.access_key_id
            && key.database == r.database
            && key.source_ip.map(|ip| ip.to_string()) == r.source_ip
            && key.error == r.error
    })
}

/// Records shipped per page read from the store.
const SHIPPED_PAGE: u32 = 5_000;

/// A node's shipped records, read a page at a time and put together into
/// its segments' bytes one segment at a time, each record checked on the
/// way (sealed by this node, lookup columns as its line says).
struct ShippedPages<'a> {
    store: &'a Store,
    node: &'a str,
    page: std::vec::IntoIter<latchkey_store::ShippedRecord>,
    after: Option<u64>,
    done: bool,
    /// A record read but not yet placed (it began the next segment).
    next: Option<latchkey_store::ShippedRecord>,
    problems: Vec<Problem>,
    failed: Option<latchkey_store::StoreError>,
}

impl<'a> ShippedPages<'a> {
    fn new(store: &'a Store, node: &'a str) -> Self {
        Self {
            store,
            node,
            page: Vec::new().into_iter(),
            after: None,
            done: false,
            next: None,
            problems: Vec::new(),
            failed: None,
        }
    }

    fn record(&mut self) -> Option<latchkey_store::ShippedRecord> {
        if let Some(r) = self.next.take() {
            return Some(r);
        }
        if let Some(r) = self.page.next() {
            return Some(r);
        }
        if self.done {
            return None;
        }
        match self
            .store
            .shipped_records(self.node, self.after, SHIPPED_PAGE)
        {
            Ok(page) => {
                self.done = page.len() < SHIPPED_PAGE as usize;
                self.after = page.last().map(|r| r.sequence).or(self.after);
                self.page = page.into_iter();
                self.page.next()
            }
            Err(e) => {
                self.failed = Some(e);
                self.done = true;
                None
            }
        }
    }

    fn check(&mut self, r: &latchkey_store::ShippedRecord) {
        if let Some(by) = sealed_by(&r.line)
            && by != self.node
        {
            self.problems.push(Problem::RecordOfAnotherNode {
                node: self.node.to_owned(),
                sequence: r.sequence,
                sealed_by: by.to_owned(),
            });
        } else if !lookup_fields_hold(r) {
            self.problems.push(Problem::LookupFieldsAltered {
                node: self.node.to_owned(),
                sequence: r.sequence,
            });
        }
    }

    /// The next segment: (file name, its lines).
    fn next_segment(&mut self) -> Option<(String, Vec<u8>)> {
        let first = self.record()?;
        let segment = first.segment;
        let mut bytes = Vec::new();
        let mut r = first;
        loop {
            self.check(&r);
            bytes.extend_from_slice(r.line.as_bytes());
            bytes.push(b'\n');
            match self.record() {
                Some(next) if next.segment == segment => r = next,
                Some(next) => {
                    self.next = Some(next);
                    break;
                }
                None => break,
            }
        }
        Some((latchkey_trail::segment_name(segment), bytes))
    }

    fn segments(&mut self) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
        std::iter::from_fn(move || self.next_segment())
    }
}

/// Every node that shipped a trail, saved an anchor or reported itself to
/// the store (`own` too: its copy there), each verified from the store
/// against its anchor there.
pub fn verify_nodes(
    store: &Store,
    key: &[u8; 32],
    own: &str,
    window: Window,
    seen: &crate::peers::Peers,
) -> Result<Vec<NodeCheck>> {
    let anchors: BTreeMap<String, String> = store.audit_anchors()?.into_iter().collect();
    let heads: BTreeMap<String, ShippedHead> = store
        .shipped_heads()?
        .into_iter()
        .map(|h| (h.node.clone(), h))
        .collect();
    let reports: BTreeMap<String, (i64, u64)> = store
        .nodes()?
        .into_iter()
        .map(|n| (n.node, (n.seen, n.sealed)))
        .collect();
    // Nodes this node saw count even when the store forgot them, and so
    // do the nodes any node's signed anchor names (with the reach it
    // saw), and any node that rows in the store claim.
    let mut seen = seen.clone();
    for doc in anchors.values() {
        if let Ok(a) = anchor::open_anchor(doc.as_bytes(), key) {
            for (node, reach) in a.body.peers {
                let known = seen.entry(node).or_insert(0);
                *known = (*known).max(reach);
            }
        }
    }
    let seen = &seen;
    let claimed = store.shipped_record_nodes()?;
    let names: BTreeSet<&String> = anchors
        .keys()
        .chain(heads.keys())
        .chain(reports.keys())
        .chain(seen.keys())
        .chain(claimed.iter())
        .collect();
    let now = now_secs();
    let mut out = Vec::new();
    for node in names {
        let this_node = node.as_str() == own;
        // This node's trail is verified from its files; its copy, once
        // it has one.
        if this_node && !heads.contains_key(node) {
            continue;
        }
        let report_of = reports.get(node).copied();
        let last_seen = report_of.map(|(seen, _)| seen);
        // How far the node said its trail reached (0: it sealed nothing),
        // or farther as this node saw it: a reach only grows.
        let sealed = report_of
            .map_or(0, |(_, sealed)| sealed)
            .max(seen.get(node).copied().unwrap_or(0));
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        // A report dated ahead of this clock would keep a dead node
        // "alive" for ever, and its unanchored tail unquestioned.
        let from_the_future = last_seen.is_some_and(|t| t > now + FUTURE_SKEW_SECS);
        if from_the_future && !this_node {
            warnings.push(format!(
                "node {node}'s last report is dated {} s ahead of this clock: the store was altered or its clock is wrong; it is treated as gone",
                last_seen.unwrap_or(now) - now
            ));
        }
        let alive =
            this_node || (!from_the_future && last_seen.is_some_and(|t| now - t <= ALIVE_SECS));
        let source = format!("store (node {node})");
        let mut anchor_doc = anchors.get(node).cloned();
        let mut head = heads.get(node).cloned();
        // A running node's copy trails its anchor by up to a round, and
        // its first anchor its first records by up to a second.
        if alive {
            let deadline = Instant::now() + CATCH_UP;
            loop {
                let anchored = anchor_doc
                    .as_deref()
                    .and_then(|d| anchor::open_anchor(d.as_bytes(), key).ok());
                let caught_up = match (&anchored, &head) {
                    (Some(a), Some(h)) => {
                        h.last_sequence >= a.body.sequence
                            && h.last_digest >= a.body.digest_sequence
                    }
                    (Some(a), None) => a.body.sequence == 0 && a.body.digest_sequence == 0,
                    (None, Some(_)) => false,
                    // Its first records may not be shipped yet.
                    (None, None) => sealed == 0,
                };
                if caught_up || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
                head = store.shipped_head(node)?;
                anchor_doc = store.audit_anchor(node)?;
            }
        }
        let anchor = match anchor_doc.map(|d| anchor::open_anchor(d.as_bytes(), key)) {
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                problems.push(Problem::AnchorInvalid {
                    source: source.clone(),
                    reason: e.to_string(),
                });
                None
            }
            None => None,
        };
        if anchor.is_none() && (head.is_some() || claimed.contains(node)) {
            problems.push(Problem::AnchorMissing { node: node.clone() });
        }
        if anchor.is_none() && head.is_none() && sealed > 0 {
            problems.push(Problem::NodeTrailMissing { node: node.clone() });
        }
        // A node that is gone said how far its trail reached: its copy
        // must reach as far, whatever happened to its anchor.
        if let Some(h) = &head
            && !alive
            && h.last_sequence < sealed
        {
            problems.push(Problem::RecordsDeleted {
                first_sequence: h.last_sequence + 1,
                last_sequence: sealed,
            });
        }
        // Read a page at a time and verified a segment at a time: a
        // node's copy may be far larger than memory.
        let digests = store.shipped_digests(node)?;
        let mut pages = ShippedPages::new(store, node);
        let trail_id = head
            .as_ref()
            .and_then(|h| u64::from_str_radix(&h.trail_id, 16).ok())
            .or(anchor.as_ref().map(|a| a.body.trail_id));
        let held_to = trail::Anchors {
            trail_id,
            anchors: anchor.iter().map(|a| (source.as_str(), &a.body)).collect(),
        };
        let digest_files: Vec<(String, Vec<u8>)> = digests
            .iter()
            .map(|(n, text)| (latchkey_trail::digest_name(*n), text.as_bytes().to_vec()))
            .collect();
        let mut report =
            trail::verify_streamed(pages.segments(), &digest_files, key, window, &held_to);
        if let Some(e) = pages.failed.take() {
            return Err(e.into());
        }
        problems.append(&mut pages.problems);
        report.problems.extend(problems);
        // A node that is gone signed its last anchor when it stopped (or
        // up to a second before it died): what its copy holds past that
        // is vouched for by nothing.
        if let (false, Some(a), Some(h)) = (alive, &anchor, &head)
            && h.last_sequence > a.body.sequence
        {
            warnings.push(format!(
                "node {node}'s copy holds {} records after its last anchor (record {}): a node that died may leave a second's worth; after a clean stop they were added",
                h.last_sequence - a.body.sequence,
                a.body.sequence
            ));
        }
        out.push(NodeCheck {
            node: node.clone(),
            this_node,
            report,
            alive,
            last_seen,
            warnings,
        });
    }
    Ok(out)
}

/// `filter` over the other nodes' copies (`node`: only that one's), all
/// but `own`'s.
pub fn query_of(filter: &latchkey_trail::Filter, node: Option<String>, own: &str) -> AuditQuery {
    AuditQuery {
        node,
        except_node: Some(own.to_owned()),
        principal: filter.principal.clone(),
        event_name: filter.event_name.clone(),
        database: filter.database.clone(),
        source_ip: filter.source_ip.clone(),
        access_key_id: filter.access_key_id.clone(),
        errors_only: filter.errors_only,
        since_ms: filter.since_ms,
        until_ms: filter.until_ms,
        limit: filter.limit,
    }
}

/// Records of other nodes matching `query`, newest first, each line as
/// its node sealed it; a gone node's past its last anchor are held back,
/// with a warning on standard error
/// ([`latchkey_server::shipped::find_vouched`]).
pub fn find_elsewhere(store: &Store, query: &AuditQuery) -> Result<Vec<String>> {
    let found = latchkey_server::shipped::find_vouched(store, query, now_secs())?;
    for (node, anchored, count) in &found.withheld {
        eprintln!(
            "latchkey: warning: {}",
            latchkey_server::shipped::withheld_warning(node, *anchored, *count)
        );
    }
    Ok(found.lines)
}
