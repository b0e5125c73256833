//! Shipping this node's audit trail to a shared store (issue 22): every
//! durable record and digest is copied, in order, so that `audit verify`
//! on any node checks every node's chain and `audit lookup` sees the
//! cluster, even once a node and its disk are gone.
//!
//! Resumable by construction: each round asks the store how far this
//! node's copy reaches and reads the local segments from there, so a
//! store outage, a restart or rows deleted from the end of the copy are
//! all caught up the same way. Only records already durable on the node
//! (`Trail::synced`) are shipped, so a crash never leaves the copy ahead
//! of the trail the node resumes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use latchkey_identity::AppState;
use latchkey_metrics::{Counter, Gauge};
use latchkey_store::ShippedRecord;
use latchkey_trail::{ShipReader, ShipRecord, Trail};

/// How often a round runs while records arrive.
pub const SHIP_INTERVAL: Duration = Duration::from_millis(500);

/// Records per transaction: large enough that catching up after an
/// outage is quick, small enough that one insert stays well under a
/// second.
const BATCH: usize = 5_000;

/// Batches per round, so that a long catch-up still lets the round's
/// caller see progress (and a clean stop finish).
const BATCHES_PER_ROUND: usize = 40;

pub struct Shipper {
    state: Arc<AppState>,
    trail: Arc<Trail>,
    node: String,
    dir: PathBuf,
    reader: Mutex<ShipReader>,
    lag: Arc<Gauge>,
    shipped: Arc<Counter>,
    failing: AtomicBool,
}

impl Shipper {
    pub fn new(
        state: Arc<AppState>,
        trail: Arc<Trail>,
        node: String,
        dir: PathBuf,
    ) -> Result<Self> {
        let registry = &state.metrics.registry;
        let lag = registry.gauge(
            "latchkey_audit_ship_lag_records",
            "Audit records durable on this node but not yet copied to the shared store.",
        )?;
        let shipped = registry.counter(
            "latchkey_audit_shipped_records_total",
            "Audit records this node copied to the shared store.",
        )?;
        Ok(Self {
            state,
            trail,
            node,
            reader: Mutex::new(ShipReader::new(dir.clone())),
            dir,
            lag,
            shipped,
            failing: AtomicBool::new(false),
        })
    }

    /// Runs rounds on a thread of its own until the process ends.
    pub fn spawn(self: &Arc<Self>) -> Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("latchkey-audit-ship".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SHIP_INTERVAL);
                    me.round_logged();
                }
            })?;
        Ok(())
    }

    /// One round, its failure logged once until it succeeds again.
    pub fn round_logged(&self) {
        match self.round() {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the audit trail is being copied to the store again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %format!("{e:#}"), "copying the audit trail to the store failed; retrying");
                }
            }
        }
    }

    /// Copies what the store lacks of this node's durable trail.
    pub fn round(&self) -> Result<()> {
        let store = &self.state.store;
        let trail_id = format!("{:016x}", self.trail.trail_id());
        let synced = self.trail.synced();
        let head = store.shipped_head(&self.node)?;
        let (mut after, mut after_digest) = head
            .as_ref()
            .filter(|h| h.trail_id == trail_id)
            .map_or((0, 0), |h| (h.last_sequence, h.last_digest));
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..BATCHES_PER_ROUND {
            let records = reader.records(after, synced, BATCH)?;
            let upto = records.last().map_or(after, |r| r.sequence);
            let digests = latchkey_trail::digests_after(&self.dir, after_digest, upto)?;
            if records.is_empty() && digests.is_empty() {
                break;
            }
            let rows: Vec<ShippedRecord> = records.into_iter().map(row).collect();
            store.ship_audit(&self.node, &trail_id, &rows, &digests)?;
            self.shipped.add(rows.len() as u64);
            after = upto;
            after_digest = digests.last().map_or(after_digest, |(n, _)| *n);
        }
        // Against what is durable now, not at the round's start: records
        // sealed meanwhile are lag too.
        let lag = self.trail.synced().saturating_sub(after);
        self.lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
        // What retention removed here goes from the copy too.
        let (first_segment, first_digest) = latchkey_trail::retained_from(&self.dir)?;
        if let Some(h) = head
            && h.trail_id == trail_id
            && h.first_sequence > 0
            && h.first_sequence < first_segment
        {
            store.forget_shipped_before(&self.node, first_segment, first_digest)?;
        }
        Ok(())
    }
}

fn row(r: ShipRecord) -> ShippedRecord {
    ShippedRecord {
        sequence: r.sequence,
        segment: r.segment,
        time_ms: r.time_ms,
        name: r.key.name,
        principal: r.key.principal,
        access_key_id: r.key.access_key_id,
        database: r.key.database,
        source_ip: r.key.source_ip.map(|ip| ip.to_string()),
        error: r.key.error,
        line: r.line,
    }
}
