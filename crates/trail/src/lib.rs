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
    TrailFiles, WriterInfo, list_digests, list_segments, read_trail_id, running_writer,
    segment_first, segment_name,
};
pub use index::{Filter, Index, Span, SpanBuilder, SpanKey};

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
}

impl Shared {
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
        self.shared.fail_open
            || (self.shared.healthy.load(Ordering::Acquire)
                && self.shared.depth.load(Ordering::Relaxed) < self.shared.max_queue)
    }
}

/// Writes `bytes` to `path` so that it survives a crash: a temporary file,
/// synced, renamed into place, and the directory synced.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    files::sync_dir(dir)
}

/// Drops a segment's synced pages from `from` on out of the page cache,
/// and returns where the next call starts. The trail is written once and
/// read rarely, so caching it would only push the database's pages out;
/// and the next batch then writes into pages the kernel recycles rather
/// than fresh ones (on a VM, first touching fresh memory made writes ten
/// times slower). The partial last page stays, so appending never reads
/// it back. Advice only: a failure changes nothing.
fn forget_written(file: &File, from: u64, len: u64) -> u64 {
    let to = len & !(PAGE - 1);
    if let Some(span) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
        let _ = rustix::fs::fadvise(file, from, Some(span), rustix::fs::Advice::DontNeed);
    }
    to.max(from)
}

/// The smallest page size Linux uses; fadvise rounds to whole pages anyway.
const PAGE: u64 = 4096;

struct Segment {
    first: u64,
    file: File,
    len: u64,
    /// Pages before this offset have been dropped from the page cache.
    forgotten: u64,
    opened: Instant,
}

struct Writer {
    shared: Arc<Shared>,
    config: TrailConfig,
    key: SigningKey,
    public_key: [u8; 32],
    chain: Chain,
    current: Option<Segment>,
    /// Start a new segment before the next write (after a failed one).
    rotate: bool,
    /// Segments with records after the last digest: (first sequence, name).
    since: Vec<(u64, String)>,
    digest_sequence: u64,
    digest_signature: Option<[u8; 64]>,
    /// The chain head the last digest signed.
    digest_last: u64,
    /// Records before this were removed by retention.
    retained_from: u64,
    digest_start: SystemTime,
    digest_due: Instant,
    /// A batch that failed to write, retried first.
    pending: Vec<Event>,
    buf: String,
    /// Statements' session fields, serialised once per session.
    fields: FieldCache,
    post: SyncSender<Durable>,
    /// Whether a keeper takes anchors.
    anchors: bool,
    anchor_due: Instant,
    /// The sequence anchored last.
    anchored: u64,
    /// SHA-256 of the newest digest's file.
    digest_hash: Option<Hash>,
    trail_id: u64,
}

impl Writer {
    fn run(&mut self) {
        loop {
            let tick = Instant::now();
            let stopping = self.shared.stop.load(Ordering::Acquire);
            match self.write_batch() {
                Ok(()) => {
                    let due = Instant::now() >= self.digest_due
                        || self.chain.last_sequence - self.digest_last >= self.config.digest_every;
                    if due || stopping {
                        match self.sign_digest() {
                            Ok(()) => self.anchor(),
                            Err(e) => self.shared.fail(&e),
                        }
                    } else if self.chain.last_sequence > self.anchored
                        && Instant::now() >= self.anchor_due
                    {
                        self.anchor();
                    }
                }
                Err(e) => self.shared.fail(&e),
            }
            if stopping {
                let left = self.pending.len() + self.shared.depth.load(Ordering::Relaxed);
                if left > 0 {
                    tracing::error!(
                        records = left,
                        "the audit trail stopped with records it could not write"
                    );
                }
                return;
            }
            let elapsed = tick.elapsed();
            if elapsed < self.config.sync_interval {
                std::thread::park_timeout(self.config.sync_interval - elapsed);
            }
        }
    }

    /// Seals, writes and syncs everything queued.
    fn write_batch(&mut self) -> Result<(), Error> {
        let mut events = std::mem::take(&mut self.pending);
        // Room for about as many as are queued now, so that the sessions
        // queueing the next batch do not grow (and copy) it; allocated
        // before taking the lock they wait on.
        let room = Vec::with_capacity(self.shared.depth.load(Ordering::Relaxed));
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            if events.is_empty() {
                events = std::mem::replace(&mut *q, room);
            } else {
                events.append(&mut q);
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let result = self.write_events(&events);
        match result {
            Ok(spans) => {
                self.shared.depth.fetch_sub(events.len(), Ordering::Relaxed);
                self.shared
                    .synced
                    .store(self.chain.last_sequence, Ordering::Release);
                self.shared.metrics.records_written.add(events.len() as u64);
                self.shared.metrics.write_latency.observe(started.elapsed());
                self.shared.recovered();
                let first = self.chain.last_sequence + 1 - events.len() as u64;
                let events = events
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| (first + i as u64, e))
                    .collect();
                let _ = self.post.send(Durable::Records { spans, events });
                Ok(())
            }
            Err(e) => {
                // They stay counted in the depth, waiting in `pending`.
                self.pending = events;
                Err(e)
            }
        }
    }

    fn write_events(&mut self, events: &[Event]) -> Result<Vec<Span>, Error> {
        self.ensure_segment()?;
        let saved = self.chain.clone();
        let Some(seg) = self.current.as_mut() else {
            return Err(Error::Corrupt {
                path: self.config.dir.clone(),
                reason: "no open segment".into(),
            });
        };
        self.buf.clear();
        let mut spans = SpanBuilder::default();
        let path = files::segments_dir(&self.config.dir).join(segment_name(seg.first));
        // Written out a megabyte at a time, so the buffer stays in cache.
        let mut flushed = 0u64;
        let mut result = Ok(());
        for e in events {
            let start = self.buf.len() as u64;
            let sealed = self.chain.append_cached(
                e,
                &self.config.region,
                &self.config.account,
                &mut self.fields,
                &mut self.buf,
            );
            let at = seg.len + flushed;
            spans.add(
                SpanKey::of(e),
                seg.first,
                sealed.sequence,
                millis(e.time()),
                at + start,
                at + self.buf.len() as u64,
            );
            if self.buf.len() >= WRITE_CHUNK {
                result = seg.file.write_all(self.buf.as_bytes());
                flushed += self.buf.len() as u64;
                self.buf.clear();
                if result.is_err() {
                    break;
                }
            }
        }
        let written = result
            .and_then(|()| seg.file.write_all(self.buf.as_bytes()))
            .and_then(|()| seg.file.sync_data());
        if let Err(e) = written {
            self.chain = saved;
            // Take back a partial write; if even that fails, the next batch
            // goes to a new segment so that no record follows the debris.
            if seg.file.set_len(seg.len).is_err() {
                self.rotate = true;
            }
            return Err(Error::io(&path, e));
        }
        seg.len += flushed + self.buf.len() as u64;
        seg.forgotten = forget_written(&seg.file, seg.forgotten, seg.len);
        Ok(spans.finish())
    }

    /// Opens the first segment, or a new one when the current is full,
    /// old, or damaged.
    fn ensure_segment(&mut self) -> Result<(), Error> {
        let full = self.current.as_ref().is_none_or(|s| {
            self.rotate
                || (s.len > 0
                    && (s.len >= self.config.segment_max_bytes
                        || s.opened.elapsed() >= self.config.segment_max_age))
        });
        if !full {
            return Ok(());
        }
        let first = self.chain.last_sequence + 1;
        let dir = files::segments_dir(&self.config.dir);
        let name = segment_name(first);
        let path = dir.join(&name);
        let file = files::open_append(&path)?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if len > 0 {
            // Debris of a failed write: keep it for the investigator and
            // write past it in a segment of its own.
            return Err(Error::Corrupt {
                path,
                reason: "a segment that should be new is not empty".into(),
            });
        }
        files::sync_dir(&dir)?;
        if let Some((last_first, _)) = self.since.last()
            && *last_first == first
        {
            self.since.pop();
        }
        self.since.push((first, name));
        self.current = Some(Segment {
            first,
            file,
            len,
            forgotten: 0,
            opened: Instant::now(),
        });
        self.rotate = false;
        self.apply_retention();
        Ok(())
    }

    fn sign_digest(&mut self) -> Result<(), Error> {
        let now = SystemTime::now();
        let mut segments = Vec::new();
        for (i, (first, name)) in self.since.iter().enumerate() {
            let last = self
                .since
                .get(i + 1)
                .map_or(self.chain.last_sequence, |(next, _)| next - 1);
            let first = (*first).max(self.digest_last + 1);
            if first <= last {
                segments.push(SegmentRef {
                    name: name.clone(),
                    first_sequence: first,
                    last_sequence: last,
                });
            }
        }
        let spec = DigestSpec {
            chain: &self.chain,
            digest_sequence: self.digest_sequence + 1,
            start: self.digest_start,
            end: now,
            segments,
            retained_from: self.retained_from,
            previous_signature: self.digest_signature,
            public_key: self.public_key,
        };
        let (file, signature) = self.key.sign_digest(&spec.body());
        let path =
            files::digests_dir(&self.config.dir).join(files::digest_name(spec.digest_sequence));
        write_durably(&path, file.as_bytes())?;
        self.digest_sequence += 1;
        self.digest_signature = Some(signature);
        self.digest_hash = Some(latchkey_audit::anchor::sha256(file.as_bytes()));
        self.digest_last = self.chain.last_sequence;
        self.digest_start = now;
        self.digest_due = Instant::now() + self.config.digest_interval;
        // Only the current segment can hold the next digest's records.
        let keep = self.since.len().saturating_sub(1);
        self.since.drain(..keep);
        Ok(())
    }

    /// Signs an anchor of the durable chain head and the newest digest, for
    /// the keeper (on the second thread, off this one's path).
    fn anchor(&mut self) {
        if !self.anchors || self.chain.last_sequence == 0 {
            return;
        }
        let anchor = AnchorBody {
            trail_id: self.trail_id,
            sequence: self.chain.last_sequence,
            record_hash: self.chain.last_hash,
            digest_sequence: self.digest_sequence,
            digest_hash: self.digest_hash,
            time: latchkey_audit::rfc3339(SystemTime::now()),
        }
        .sign(&self.key);
        self.anchored = self.chain.last_sequence;
        self.anchor_due = Instant::now() + ANCHOR_INTERVAL;
        let _ = self.post.send(Durable::Anchor(Box::new(anchor)));
    }

    /// Deletes segments past retention, the digests that vouch only for
    /// them, and their index rows.
    fn apply_retention(&mut self) {
        let Some(keep) = self.config.retention else {
            return;
        };
        let Ok(segments) = list_segments(&self.config.dir) else {
            return;
        };
        let dir = files::segments_dir(&self.config.dir);
        let mut oldest_kept = None;
        for (i, (first, name)) in segments.iter().enumerate() {
            let is_current = self.current.as_ref().is_some_and(|s| s.first == *first);
            // A segment's newest record is as old as its last write.
            let old = std::fs::metadata(dir.join(name))
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > keep));
            if is_current || !old || i + 1 == segments.len() {
                oldest_kept = Some(*first);
                break;
            }
            if let Err(e) = std::fs::remove_file(dir.join(name)) {
                tracing::warn!(segment = %name, error = %e, "could not remove an expired audit segment");
                oldest_kept = Some(*first);
                break;
            }
            tracing::info!(segment = %name, "removed an expired audit segment");
        }
        let Some(oldest_kept) = oldest_kept else {
            return;
        };
        // The next digest says so, which tells retention from tampering.
        self.retained_from = self.retained_from.max(oldest_kept);
        let ddir = files::digests_dir(&self.config.dir);
        if let Ok(digests) = list_digests(&self.config.dir) {
            for (_, name) in digests {
                let Ok(bytes) = std::fs::read(ddir.join(&name)) else {
                    continue;
                };
                match latchkey_audit::trail::open_digest(&bytes, &self.public_key) {
                    Ok(d) if d.body.last_sequence + 1 < oldest_kept => {
                        let _ = std::fs::remove_file(ddir.join(&name));
                    }
                    _ => break,
                }
            }
        }
        let _ = self.post.send(Durable::Forget(oldest_kept));
    }
}

/// The trail's second thread: the index and the observers, off the
/// writer's path.
fn post_loop(
    rx: Receiver<Durable>,
    mut index: Index,
    mut observers: Vec<Box<dyn Observer>>,
    mut keeper: Option<Box<dyn AnchorKeeper>>,
    trail_id: u64,
    shared: &Shared,
) {
    while let Ok(work) = rx.recv() {
        let (spans, events) = match work {
            Durable::Records { spans, events } => (spans, events),
            Durable::Anchor(anchor) => {
                if let Some(keeper) = keeper.as_mut()
                    && let Err(e) = keeper.save(&anchor)
                {
                    tracing::warn!(error = %e, "saving the audit anchor failed");
                }
                continue;
            }
            Durable::Forget(before) => {
                if let Err(e) = index.delete_before(before) {
                    tracing::warn!(error = %e, "dropping expired audit index rows failed");
                }
                continue;
            }
        };
        if let Err(e) = index.insert(&spans) {
            // The index can be rebuilt from the segments; the trail is intact.
            tracing::warn!(error = %e, "indexing audit records failed");
        }
        let last = events.last().map(|(s, _)| *s);
        let watched = if observers.is_empty() {
            &[][..]
        } else {
            &events[..]
        };
        for (sequence, event) in watched {
            let id = latchkey_audit::trail::event_id(trail_id, *sequence);
            for o in observers.iter_mut() {
                let more = o.observe(*sequence, &id, event);
                if !more.is_empty() {
                    shared.depth.fetch_add(more.len(), Ordering::Relaxed);
                    shared
                        .queue
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(more);
                }
            }
        }
        if let Some(last) = last {
            shared.observed.store(last, Ordering::Release);
        }
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A written record's index key, sequence and time.
fn record_key(line: &[u8]) -> Option<(SpanKey<String>, u64, i64)> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let text = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_owned);
    let name = text("/eventName")?;
    let key = SpanKey {
        principal: text("/userIdentity/arn").or_else(|| text("/serviceEventDetails/principal")),
        access_key_id: text("/userIdentity/accessKeyId"),
        database: match name.as_str() {
            "Connect" | "SessionStart" | "SessionEnd" | "Statement" => text("/database/name"),
            _ => None,
        },
        source_ip: text("/sourceIPAddress")
            .or_else(|| text("/serviceEventDetails/sourceIPAddress"))
            .and_then(|ip| ip.parse().ok()),
        error: v.get("errorCode").is_some_and(|e| !e.is_null()),
        name,
    };
    let sequence = v.get("sequence")?.as_u64()?;
    let time = latchkey_audit::trail::parse_time_ms(v.get("eventTime")?.as_str()?)?;
    Some((key, sequence, time))
}

/// Indexes every record after `after` from the segments.
fn reindex(dir: &Path, index: &mut Index, after: u64) -> Result<(), Error> {
    for (first, name) in &list_segments(dir)? {
        let path = files::segments_dir(dir).join(name);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let mut spans: HashMap<SpanKey<String>, Span> = HashMap::new();
        let mut offset = 0u64;
        for line in bytes.split(|b| *b == b'\n') {
            let start = offset;
            offset += line.len() as u64 + 1;
            let Some((key, sequence, time_ms)) = record_key(line) else {
                continue;
            };
            if sequence <= after {
                continue;
            }
            let span = spans.entry(key.clone()).or_insert(Span {
                key,
                segment: *first,
                first_sequence: sequence,
                last_sequence: sequence,
                start,
                end: offset,
                first_ms: time_ms,
                last_ms: time_ms,
                count: 0,
            });
            span.last_sequence = sequence;
            span.end = offset;
            span.first_ms = span.first_ms.min(time_ms);
            span.last_ms = span.last_ms.max(time_ms);
            span.count += 1;
            if spans.len() >= 10_000 {
                index.insert(&spans.drain().map(|(_, s)| s).collect::<Vec<_>>())?;
            }
        }
        index.insert(&spans.into_values().collect::<Vec<_>>())?;
    }
    Ok(())
}

/// `audit lookup`: the records matching `filter`, newest first, as written.
pub fn find(dir: &Path, index: &Index, filter: &Filter) -> Result<Vec<String>, Error> {
    use std::os::unix::fs::FileExt;
    let limit = filter.limit as usize;
    let ip: Option<std::net::IpAddr> = filter.source_ip.as_deref().and_then(|s| s.parse().ok());
    let mut found: Vec<(u64, String)> = Vec::new();
    let mut open: Option<(u64, File)> = None;
    for span in index.spans(filter)? {
        // Enough, and every later span is older than what we have.
        if found.len() >= limit
            && found
                .iter()
                .map(|(s, _)| *s)
                .min()
                .is_some_and(|oldest| span.last_sequence < oldest)
        {
            break;
        }
        let path = files::segments_dir(dir).join(segment_name(span.segment));
        if open.as_ref().is_none_or(|(s, _)| *s != span.segment) {
            let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
            open = Some((span.segment, f));
        }
        let Some((_, f)) = open.as_ref() else {
            continue;
        };
        let mut buf = vec![0u8; usize::try_from(span.end - span.start).unwrap_or(0)];
        f.read_exact_at(&mut buf, span.start)
            .map_err(|e| Error::io(&path, e))?;
        for line in buf.split(|b| *b == b'\n').rev() {
            let Some((key, sequence, time_ms)) = record_key(line) else {
                continue;
            };
            if key == span.key
                && sequence >= span.first_sequence
                && sequence <= span.last_sequence
                && filter.since_ms.is_none_or(|t| time_ms >= t)
                && filter.until_ms.is_none_or(|t| time_ms <= t)
                && (filter.source_ip.is_none() || key.source_ip == ip)
            {
                found.push((sequence, String::from_utf8_lossy(line).into_owned()));
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found.dedup_by_key(|(s, _)| *s);
        found.truncate(limit);
    }
    Ok(found.into_iter().map(|(_, r)| r).collect())
}
