//! The writer thread: seals queued events into the chain, appends each
//! batch to the current segment and syncs it, signs digests, rotates
//! segments and applies retention.

use super::*;

/// Writes `bytes` to `path` so that it survives a crash: a temporary file,
/// synced, renamed into place, and the directory synced.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), Error> {
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
pub(crate) fn forget_written(file: &File, from: u64, len: u64) -> u64 {
    let to = len & !(PAGE - 1);
    if let Some(span) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
        let _ = rustix::fs::fadvise(file, from, Some(span), rustix::fs::Advice::DontNeed);
    }
    to.max(from)
}

/// The smallest page size Linux uses; fadvise rounds to whole pages anyway.
const PAGE: u64 = 4096;

pub(crate) struct Segment {
    pub(crate) first: u64,
    pub(crate) file: File,
    pub(crate) len: u64,
    /// Pages before this offset have been dropped from the page cache.
    pub(crate) forgotten: u64,
    pub(crate) opened: Instant,
}

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: TrailConfig,
    pub(crate) key: SigningKey,
    pub(crate) public_key: [u8; 32],
    pub(crate) chain: Chain,
    pub(crate) current: Option<Segment>,
    /// Start a new segment before the next write (after a failed one).
    pub(crate) rotate: bool,
    /// Segments with records after the last digest: (first sequence, name).
    pub(crate) since: Vec<(u64, String)>,
    pub(crate) digest_sequence: u64,
    pub(crate) digest_signature: Option<[u8; 64]>,
    /// The chain head the last digest signed.
    pub(crate) digest_last: u64,
    /// Records before this were removed by retention.
    pub(crate) retained_from: u64,
    pub(crate) digest_start: SystemTime,
    pub(crate) digest_due: Instant,
    /// A batch that failed to write, retried first.
    pub(crate) pending: Vec<Event>,
    pub(crate) buf: String,
    /// Statements' session fields, serialised once per session.
    pub(crate) fields: FieldCache,
    pub(crate) post: SyncSender<Durable>,
    /// Whether a keeper takes anchors.
    pub(crate) anchors: bool,
    pub(crate) anchor_due: Instant,
    /// The sequence anchored last.
    pub(crate) anchored: u64,
    /// `Shared::peers_changed` when anchored last.
    pub(crate) anchored_peers: u64,
    /// SHA-256 of the newest digest's file.
    pub(crate) digest_hash: Option<Hash>,
    pub(crate) trail_id: u64,
}

impl Writer {
    pub(crate) fn run(&mut self) {
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
                    } else if (self.chain.last_sequence > self.anchored
                        || self.shared.peers_changed.load(Ordering::Acquire) != self.anchored_peers)
                        && Instant::now() >= self.anchor_due
                    {
                        self.anchor();
                    }
                }
                Err(e) => self.shared.fail(&e),
            }
            // Ended and quiet sessions' fields are not kept.
            self.fields.tick();
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
                self.shared.wake_waiting();
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
        // Counted before the peers are read: a change in between is
        // anchored again.
        let peers_version = self.shared.peers_changed.load(Ordering::Acquire);
        let anchor = AnchorBody {
            trail_id: self.trail_id,
            sequence: self.chain.last_sequence,
            record_hash: self.chain.last_hash,
            digest_sequence: self.digest_sequence,
            digest_hash: self.digest_hash,
            time: latchkey_audit::rfc3339(SystemTime::now()),
            peers: self
                .shared
                .peers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
        .sign(&self.key);
        self.anchored = self.chain.last_sequence;
        self.anchored_peers = peers_version;
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
