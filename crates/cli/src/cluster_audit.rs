//! The audit trail of every node sharing a store (issue 22): verifying
//! each node's chain from its copy in the store (`ship.rs` puts it
//! there), and finding records across the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use latchkey_audit::anchor;
use latchkey_audit::trail::{self, Problem, Window};
use latchkey_store::{AuditQuery, ShippedHead, Store};
use latchkey_trail::TrailFiles;
use serde_json::json;

/// A node counts as running while it reported this recently (nodes report
/// every 5 seconds).
const ALIVE_SECS: i64 = 20;

/// How long `audit verify` waits for a running node's copy to reach the
/// anchor it saved (shipping runs every half second).
const CATCH_UP: Duration = Duration::from_secs(5);

/// One node's trail, verified from the store.
pub struct NodeCheck {
    pub node: String,
    pub report: trail::Report,
    pub alive: bool,
    /// Unix seconds of its last report, if it ever reported.
    pub last_seen: Option<i64>,
}

impl NodeCheck {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.report).unwrap_or_else(|_| json!({}));
        v["node"] = json!(self.node);
        v["source"] = json!("store");
        v["alive"] = json!(self.alive);
        v["lastSeen"] = json!(self.last_seen.map(rfc3339));
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

/// Every node but `own` that shipped a trail or saved an anchor, each
/// verified from the store against its anchor there.
pub fn verify_nodes(
    store: &Store,
    key: &[u8; 32],
    own: &str,
    window: Window,
) -> Result<Vec<NodeCheck>> {
    let anchors: BTreeMap<String, String> = store.audit_anchors()?.into_iter().collect();
    let heads: BTreeMap<String, ShippedHead> = store
        .shipped_heads()?
        .into_iter()
        .map(|h| (h.node.clone(), h))
        .collect();
    let seen: BTreeMap<String, i64> = store
        .nodes()?
        .into_iter()
        .map(|n| (n.node, n.seen))
        .collect();
    let names: BTreeSet<&String> = anchors.keys().chain(heads.keys()).collect();
    let now = now_secs();
    let mut out = Vec::new();
    for node in names.into_iter().filter(|n| n.as_str() != own) {
        let last_seen = seen.get(node).copied();
        let alive = last_seen.is_some_and(|t| now - t <= ALIVE_SECS);
        let source = format!("store (node {node})");
        let mut problems = Vec::new();
        let anchor = match anchors
            .get(node)
            .map(|d| anchor::open_anchor(d.as_bytes(), key))
        {
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
        // A running node's copy trails its anchor by up to a round.
        let mut head = heads.get(node).cloned();
        if let Some(a) = &anchor
            && alive
        {
            let deadline = Instant::now() + CATCH_UP;
            while head.as_ref().is_none_or(|h| {
                h.last_sequence < a.body.sequence || h.last_digest < a.body.digest_sequence
            }) && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(250));
                head = store.shipped_head(node)?;
            }
        }
        let shipped = store.shipped_trail(node)?;
        let files = TrailFiles::assemble(&shipped.records, &shipped.digests);
        let trail_id = head
            .as_ref()
            .and_then(|h| u64::from_str_radix(&h.trail_id, 16).ok())
            .or(anchor.as_ref().map(|a| a.body.trail_id));
        let held_to = trail::Anchors {
            trail_id,
            anchors: anchor.iter().map(|a| (source.as_str(), &a.body)).collect(),
        };
        let mut report = files.verify_anchored(key, window, &held_to);
        report.problems.extend(problems);
        out.push(NodeCheck {
            node: node.clone(),
            report,
            alive,
            last_seen,
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
/// its node sealed it.
pub fn find_elsewhere(store: &Store, query: &AuditQuery) -> Result<Vec<String>> {
    Ok(store
        .find_shipped(query)?
        .into_iter()
        .map(|(_, line)| line)
        .collect())
}
