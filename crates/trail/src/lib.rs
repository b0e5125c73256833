//! The audit trail on disk.
//!
//! The gateways and the token service hand events to [`Trail::record`],
//! which only queues them. A writer thread takes the queue every
//! `sync_interval` (100 ms by default), seals each event into the hash
//! chain ([`latchkey_audit::trail`]), appends the batch to the current
//! segment with one write and makes it durable with `fdatasync`. Only then
//! is the batch handed to a second thread that indexes it and runs the
//! observers (detection). Every `digest_interval` or `digest_every` records
//! the writer signs a digest of the chain head.
//!
//! When a write or sync fails the batch stays queued and is retried every
//! tick, and [`Trail::accepting`] turns false so that new connections and
//! API calls are refused until the disk takes records again (fail closed,
//! as Vault does), unless `fail_open` is set. Nothing queued is dropped.
//!
//! After a crash, [`Trail::open`] cuts a torn final line, resumes the chain
//! from the last whole record and catches the index up.
//!
//! With an [`AnchorKeeper`] ([`Trail::open_anchored`]) the writer also
//! signs an anchor (the chain head and the newest digest,
//! [`latchkey_audit::anchor`]) at every digest and at most once a second
//! while records arrive, and the keeper saves it where deleting trail
//! files does not reach (the store). A trail that no longer reaches its
//! anchor does not open: writing on would overwrite the evidence.

mod files;
mod index;
mod post;
mod ship;
mod when;
mod writer;

pub use post::{find, for_each_record, record_at, record_key};
use post::{millis, post_loop, reindex};
pub use ship::{ShipReader, ShipRecord, digests_after, retained_from};
use writer::{Segment, Writer, write_durably};

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use latchkey_audit::anchor::{Anchor, AnchorBody, TrailEnd};
use latchkey_audit::trail::{Chain, DigestSpec, Hash, SegmentRef, SigningKey, TrailError};
use latchkey_audit::{AuditSink, Event, FieldCache};
use latchkey_metrics::{Counter, Histogram};

pub use files::{
    TrailFiles, WriterInfo, digest_name, last_verified, list_digests, list_segments,
    newest_digest_time, read_trail_id, record_verified, running_writer, segment_first,
    segment_name,
};
pub use index::{Filter, Index, Span, SpanBuilder, SpanKey};
pub use when::{UnreadableTime, parse_when_ms};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the audit trail at {} is damaged: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("the audit index {}: {source}", path.display())]
    Index {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Trail(#[from] TrailError),
    #[error("the audit anchor could not be read: {0}")]
    Anchor(String),
}

/// Keeps the trail's newest anchor where deleting trail files does not
/// reach it (`serve`: the store). Called on the trail's second thread.
pub trait AnchorKeeper: Send {
    /// The anchor saved last (its JSON document), if any.
    fn load(&mut self) -> Result<Option<String>, String>;
    /// Saves a newer anchor of this trail.
    fn save(&mut self, anchor: &Anchor) -> Result<(), String>;
}

/// An anchor is signed at most this often while records arrive (and at
/// every digest).
pub const ANCHOR_INTERVAL: Duration = Duration::from_secs(1);

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn index(path: &Path, source: rusqlite::Error) -> Self {
        Error::Index {
            path: path.to_owned(),
            source,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrailConfig {
    pub dir: PathBuf,
    /// `awsRegion` of every record.
    pub region: String,
    /// `recipientAccountId` of every record.
    pub account: String,
    /// Records reach the disk (fdatasync) at least this often.
    pub sync_interval: Duration,
    /// A digest is signed at least this often...
    pub digest_interval: Duration,
    /// ...and after this many records.
    pub digest_every: u64,
    /// A new segment starts past this size...
    pub segment_max_bytes: u64,
    /// ...or this age.
    pub segment_max_age: Duration,
    /// Segments older than this are deleted (with their digests and index
    /// rows); `None` keeps everything.
    pub retention: Option<Duration>,
    /// Keep accepting work when the trail cannot write.
    pub fail_open: bool,
    /// Refuse new work (fail closed) while more events than this wait.
    pub max_queue: usize,
    /// The node writing the trail (`node.id`), sealed into every record.
    pub node_id: Option<String>,
}

impl TrailConfig {
    pub fn new(dir: PathBuf, region: &str, account: &str) -> Self {
        Self {
            dir,
            region: region.to_owned(),
            account: account.to_owned(),
            sync_interval: Duration::from_millis(100),
            digest_interval: Duration::from_secs(300),
            digest_every: 100_000,
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(3600),
            retention: None,
            fail_open: false,
            max_queue: 1_000_000,
            node_id: None,
        }
    }
}

/// What the trail measures about itself.
#[derive(Debug, Clone)]
pub struct TrailMetrics {
    pub records_written: Arc<Counter>,
    pub write_failures: Arc<Counter>,
    /// Time to write and sync one batch.
    pub write_latency: Arc<Histogram>,
}

impl Default for TrailMetrics {
    fn default() -> Self {
        Self {
            records_written: Arc::default(),
            write_failures: Arc::default(),
            write_latency: Arc::new(
                Histogram::new(latchkey_metrics::LATENCY_BUCKETS)
                    .expect("the standard latency buckets are valid"),
            ),
        }
    }
}

/// Sees every record once it is durable, in order, on the trail's second
/// thread (detection). The events it returns (findings) are recorded in
/// the trail in turn.
pub trait Observer: Send {
    fn observe(&mut self, sequence: u64, event_id: &str, event: &Event) -> Vec<Event>;

    /// After each batch of records (at most every write interval, 100 ms):
    /// where an observer that gathers writes them.
    fn end_batch(&mut self) {}
}

struct Shared {
    queue: Mutex<Vec<Event>>,
    depth: AtomicUsize,
    healthy: AtomicBool,
    stop: AtomicBool,
    fail_open: bool,
    max_queue: usize,
    /// The last sequence that is on disk.
    synced: AtomicU64,
    /// The last sequence the index and observers have seen.
    observed: AtomicU64,
    last_error: Mutex<Option<String>>,
    metrics: TrailMetrics,
    /// The other nodes and their reach, as the server last saw them: what
    /// the next anchors name ([`Trail::witness`]), and how many times
    /// they changed (a change is anchored without waiting for a record).
    peers: Mutex<std::collections::BTreeMap<String, u64>>,
    peers_changed: AtomicU64,
    /// Sessions waiting for room in the queue ([`AuditSink::poll_room`]).
    waiting: Mutex<Vec<std::task::Waker>>,
}

impl Shared {
    fn has_room(&self) -> bool {
        self.fail_open || self.depth.load(Ordering::Relaxed) < self.max_queue
    }

    /// Wakes the sessions waiting for room, once there is some (or the
    /// trail is stopping: they are held no longer).
    pub(crate) fn wake_waiting(&self) {
        if !self.has_room() && !self.stop.load(Ordering::Acquire) {
            return;
        }
        let woken = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
        woken.into_iter().for_each(std::task::Waker::wake);
    }

    fn fail(&self, e: &Error) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::error!(error = %e, "the audit trail cannot write; refusing new work until it can");
        }
        self.metrics.write_failures.inc();
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }

    fn recovered(&self) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::warn!("the audit trail is writing again");
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

/// Work for the trail's second thread.
enum Durable {
    /// Records sealed and synced, for the index and the observers.
    Records {
        spans: Vec<Span>,
        events: Vec<(u64, Event)>,
    },
    /// Retention removed the segments before this sequence.
    Forget(u64),
    /// A newer anchor, for the keeper.
    Anchor(Box<Anchor>),
}

pub struct Trail {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    writer: std::thread::Thread,
    public_key: [u8; 32],
    trail_id: u64,
    /// `writer.lock`, held while the trail is open.
    _lock: File,
}

/// Bytes of records gathered before a `write`.
const WRITE_CHUNK: usize = 1 << 20;

/// The trail id file: the id is in every `eventID` and digest.
fn trail_id_path(dir: &Path) -> PathBuf {
    dir.join("trail-id")
}

fn create_dir(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io(path, e))
}

impl Trail {
    /// Opens the trail in `config.dir` (creating it), recovering from a
    /// crash, and starts its threads.
    pub fn open(
        config: TrailConfig,
        key: SigningKey,
        metrics: TrailMetrics,
        observers: Vec<Box<dyn Observer>>,
    ) -> Result<Self, Error> {
        Self::open_anchored(config, key, metrics, observers, None)
    }

    /// [`Trail::open`], checking the trail against the anchor `keeper`
    /// holds and giving it a new one at every digest and at most every
    /// [`ANCHOR_INTERVAL`] while records arrive.
    pub fn open_anchored(
        config: TrailConfig,
        key: SigningKey,
        metrics: TrailMetrics,
        observers: Vec<Box<dyn Observer>>,
        mut keeper: Option<Box<dyn AnchorKeeper>>,
    ) -> Result<Self, Error> {
        let dir = config.dir.clone();
        create_dir(&dir)?;
        let lock = files::lock_writer(
            &dir,
            &WriterInfo {
                pid: std::process::id(),
                started_ms: millis(SystemTime::now()),
                digest_interval_ms: i64::try_from(config.digest_interval.as_millis())
                    .unwrap_or(i64::MAX),
            },
        )?;
        create_dir(&files::segments_dir(&dir))?;
        create_dir(&files::digests_dir(&dir))?;
        let public_key = key.public_key();

        let segments = list_segments(&dir)?;
        let id_path = trail_id_path(&dir);
        let trail_id = match std::fs::read_to_string(&id_path) {
            Ok(text) => u64::from_str_radix(text.trim(), 16).map_err(|_| Error::Corrupt {
                path: id_path.clone(),
                reason: "the trail id is not 16 hex digits".into(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && segments.is_empty() => {
                let id = latchkey_audit::trail::new_trail_id()?;
                write_durably(&id_path, format!("{id:016x}\n").as_bytes())?;
                id
            }
            Err(e) => return Err(Error::io(&id_path, e)),
        };

        // Resume the chain from the last whole record.
        let mut chain = Chain::new(trail_id);
        chain.node_id = config.node_id.clone();
        for (_, name) in segments.iter().rev() {
            let path = files::segments_dir(&dir).join(name);
            let (head, torn) = files::recover_tail(&path)?;
            if torn > 0 {
                tracing::warn!(segment = %name, bytes = torn, "cut a torn final record from the audit trail");
            }
            if let Some(head) = head {
                chain.last_sequence = head.sequence;
                chain.last_hash = head.hash;
                break;
            }
        }

        let digest = files::last_digest(&dir, &public_key)?;
        let digest_hash = digest.as_ref().map(|(_, h)| *h);
        let (digest_sequence, digest_signature, digest_last, retained_from) = match digest
            .map(|(d, _)| d)
        {
            Some(d) => {
                let (n, last, hash) = (d.body.digest_sequence, d.body.last_sequence, d.last_hash);
                if last > chain.last_sequence
                    || (last == chain.last_sequence && last > 0 && hash != chain.last_hash)
                {
                    return Err(Error::Corrupt {
                        path: dir.clone(),
                        reason: format!(
                            "digest {n} vouches for records up to {last}, but the trail ends at record {}; run `latchkey audit verify`",
                            chain.last_sequence
                        ),
                    });
                }
                (n, Some(d.signature), last, d.body.retained_from)
            }
            None => (0, None, 0, 1),
        };
        // Deleting the newest segments with every digest naming them
        // leaves a trail the digests cannot fault; the anchor can.
        if let Some(keeper) = keeper.as_mut()
            && let Some(document) = keeper.load().map_err(Error::Anchor)?
        {
            let anchor = latchkey_audit::anchor::open_anchor(document.as_bytes(), &public_key)
                .map_err(|e| Error::Corrupt {
                    path: dir.clone(),
                    reason: format!(
                        "the stored audit anchor is not valid ({e}); run `latchkey audit verify`"
                    ),
                })?;
            let end = TrailEnd {
                trail_id: Some(trail_id),
                last_sequence: chain.last_sequence,
                at_anchor: if anchor.body.sequence <= chain.last_sequence {
                    files::record_hashes_at(&dir, &segments, anchor.body.sequence)?
                } else {
                    Vec::new()
                },
                retained_from,
                last_digest: digest_sequence,
                anchored_digest: if anchor.body.digest_sequence > 0 {
                    files::digest_hash(&dir, anchor.body.digest_sequence)?
                } else {
                    None
                },
            };
            let problems = latchkey_audit::anchor::compare(&anchor.body, &end, "store");
            if !problems.is_empty() {
                let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                return Err(Error::Corrupt {
                    path: dir.clone(),
                    reason: format!(
                        "{}; not writing on, which would overwrite the evidence: run `latchkey audit verify` (to start a new trail on purpose, `latchkey audit forget-anchor --yes` first)",
                        list.join("; ")
                    ),
                });
            }
        }
        // Segments holding records the next digest must name.
        let mut since: Vec<(u64, String)> = Vec::new();
        for (i, (first, name)) in segments.iter().enumerate() {
            let last = segments.get(i + 1).map_or(u64::MAX, |(next, _)| next - 1);
            if last > digest_last {
                since.push((*first, name.clone()));
            }
        }
        let current = match segments.last() {
            Some((first, name)) => {
                let path = files::segments_dir(&dir).join(name);
                let file = files::open_append(&path)?;
                let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
                Some(Segment {
                    first: *first,
                    file,
                    len,
                    forgotten: 0,
                    opened: Instant::now(),
                })
            }
            None => None,
        };

        // The index may lag the trail after a crash.
        let mut index = Index::open(&dir)?;
        let indexed = index.last_sequence()?;
        if indexed < chain.last_sequence {
            reindex(&dir, &mut index, indexed)?;
        }

        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::with_capacity(4096)),
            depth: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            fail_open: config.fail_open,
            max_queue: config.max_queue,
            synced: AtomicU64::new(chain.last_sequence),
            observed: AtomicU64::new(chain.last_sequence),
            last_error: Mutex::new(None),
            metrics,
            peers: Mutex::new(std::collections::BTreeMap::new()),
            peers_changed: AtomicU64::new(0),
            waiting: Mutex::new(Vec::new()),
        });
        // Bounded: if indexing and detection fall behind, the writer waits,
        // the queue grows and new work is refused rather than memory.
        let (post_tx, post_rx) = std::sync::mpsc::sync_channel(64);
        let unsigned = chain.last_sequence > digest_last;
        let mut writer = Writer {
            shared: shared.clone(),
            key,
            public_key,
            chain,
            current,
            rotate: false,
            since,
            digest_sequence,
            digest_signature,
            digest_last,
            retained_from,
            digest_start: SystemTime::now(),
            digest_due: if unsigned {
                Instant::now()
            } else {
                Instant::now() + config.digest_interval
            },
            pending: Vec::new(),
            buf: String::with_capacity(1 << 20),
            fields: FieldCache::default(),
            post: post_tx,
            anchors: keeper.is_some(),
            anchor_due: Instant::now(),
            anchored: 0,
            anchored_peers: 0,
            digest_hash,
            trail_id,
            config,
        };
        let writer_thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::io(&dir, e))?;
        let post_thread = std::thread::Builder::new()
            .name("audit-index".into())
            .spawn({
                let shared = shared.clone();
                move || post_loop(post_rx, index, observers, keeper, trail_id, &shared)
            })
            .map_err(|e| Error::io(&dir, e))?;
        Ok(Self {
            shared,
            writer: writer_thread.thread().clone(),
            threads: Mutex::new(vec![writer_thread, post_thread]),
            public_key,
            trail_id,
            _lock: lock,
        })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    pub fn trail_id(&self) -> u64 {
        self.trail_id
    }

    /// Events waiting to be written.
    pub fn depth(&self) -> usize {
        self.shared.depth.load(Ordering::Relaxed)
    }

    /// Names the other nodes sharing the store, and how far each said its
    /// trail reached, in this trail's next anchors (signed: `audit verify`
    /// holds the store to them even when a node was erased from it).
    pub fn witness(&self, peers: std::collections::BTreeMap<String, u64>) {
        let mut known = self.shared.peers.lock().unwrap_or_else(|p| p.into_inner());
        if *known != peers {
            *known = peers;
            self.shared.peers_changed.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The last sequence number on disk.
    pub fn synced(&self) -> u64 {
        self.shared.synced.load(Ordering::Acquire)
    }

    /// Why the trail is not writing, while it is not.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes everything queued, signs a final digest and stops the
    /// threads. Records that cannot be written are reported, not dropped
    /// silently.
    pub fn close(&self) {
        // Let what the observers add in answer to the last records land too.
        let settle = Instant::now() + Duration::from_secs(5);
        while Instant::now() < settle
            && !self
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
            && (self.shared.depth.load(Ordering::Relaxed) > 0
                || self.shared.observed.load(Ordering::Acquire)
                    < self.shared.synced.load(Ordering::Acquire))
            && self.shared.healthy.load(Ordering::Acquire)
        {
            self.writer.unpark();
            std::thread::sleep(Duration::from_millis(5));
        }
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake_waiting();
        self.writer.unpark();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Trail {
    fn drop(&mut self) {
        self.close();
    }
}

impl AuditSink for Trail {
    fn record(&self, event: Event) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
        self.shared.depth.fetch_add(1, Ordering::Relaxed);
    }

    fn accepting(&self) -> bool {
        self.shared.has_room()
            && (self.shared.fail_open || self.shared.healthy.load(Ordering::Acquire))
    }

    fn poll_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let shared = &self.shared;
        if shared.has_room() || shared.stop.load(Ordering::Acquire) {
            return std::task::Poll::Ready(());
        }
        {
            let mut waiting = shared.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                waiting.push(cx.waker().clone());
            }
        }
        // The writer may have made room before the waker was listed.
        if shared.has_room() {
            return std::task::Poll::Ready(());
        }
        self.writer.unpark();
        std::task::Poll::Pending
    }
}
