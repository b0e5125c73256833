//! Where the trail lives on disk, and reading it back.
//!
//! ```text
//! DIR/segments/trail-00000000000000000001.jsonl   records from sequence 1
//! DIR/segments/trail-00000000000000052301.jsonl   records from sequence 52301
//! DIR/digests/digest-000000000001.json            signed chain heads
//! DIR/index.sqlite                                the lookup index
//! DIR/trail-id                                    the trail's id (hex)
//! DIR/writer.lock                                 held (flock) by the running writer
//! ```

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use latchkey_audit::trail::{self, SegmentInput, TrailError};

use crate::Error;

pub(crate) fn segments_dir(dir: &Path) -> PathBuf {
    dir.join("segments")
}

pub(crate) fn digests_dir(dir: &Path) -> PathBuf {
    dir.join("digests")
}

pub fn segment_name(first_sequence: u64) -> String {
    format!("trail-{first_sequence:020}.jsonl")
}

/// The first sequence number a segment's name promises.
pub fn segment_first(name: &str) -> Option<u64> {
    name.strip_prefix("trail-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

pub fn digest_name(sequence: u64) -> String {
    format!("digest-{sequence:012}.json")
}

fn digest_number(name: &str) -> Option<u64> {
    name.strip_prefix("digest-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Names in `dir` that `parse` accepts, sorted by what it returns.
fn list(dir: &Path, parse: fn(&str) -> Option<u64>) -> Result<Vec<(u64, String)>, Error> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && let Some(n) = parse(name)
        {
            out.push((n, name.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

/// Segment names by first sequence.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, String)>, Error> {
    list(&segments_dir(dir), segment_first)
}

/// Digest names by digest sequence.
pub fn list_digests(dir: &Path) -> Result<Vec<(u64, String)>, Error> {
    list(&digests_dir(dir), digest_number)
}

pub(crate) fn open_append(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Makes a new directory entry durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// The last whole record of a segment, after cutting off a torn final line
/// (a write that `kill -9` or a power cut interrupted). Returns the record
/// and how many bytes were cut.
pub(crate) fn recover_tail(path: &Path) -> Result<(Option<trail::RecordHead>, u64), Error> {
    // Segments are bounded (64 MiB by default) and this runs once at start.
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let torn = (bytes.len() - whole) as u64;
    if torn > 0 {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.set_len(whole as u64).map_err(|e| Error::io(path, e))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
    }
    let last_line = bytes[..whole.saturating_sub(1)]
        .rsplit(|b| *b == b'\n')
        .next()
        .filter(|l| !l.is_empty());
    let head = match last_line {
        Some(line) => Some(trail::parse_record(line).map_err(|e| Error::Corrupt {
            path: path.to_owned(),
            reason: format!("its last record cannot be read ({e}); run `latchkey audit verify`"),
        })?),
        None => None,
    };
    Ok((head, torn))
}

/// Every segment and digest, for [`trail::verify`].
pub struct TrailFiles {
    pub segments: Vec<(String, Vec<u8>)>,
    pub digests: Vec<(String, Vec<u8>)>,
}

impl TrailFiles {
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let read = |path: PathBuf| std::fs::read(&path).map_err(|e| Error::io(&path, e));
        let mut segments = Vec::new();
        for (_, name) in list_segments(dir)? {
            segments.push((name.clone(), read(segments_dir(dir).join(&name))?));
        }
        let mut digests = Vec::new();
        for (_, name) in list_digests(dir)? {
            digests.push((name.clone(), read(digests_dir(dir).join(&name))?));
        }
        Ok(Self { segments, digests })
    }

    /// Verifies the trail in `dir` reading one segment at a time (each
    /// dropped once its records' heads are taken), so memory grows with
    /// the records' count, not their bytes. `on_segment` is told each
    /// segment's name before it is read (for progress). Digests are read
    /// whole: they are small.
    pub fn verify_dir(
        dir: &Path,
        public_key: &[u8; 32],
        window: trail::Window,
        anchors: &trail::Anchors<'_>,
        mut on_segment: impl FnMut(usize, usize, &str),
    ) -> Result<trail::Report, Error> {
        let read = |path: PathBuf| std::fs::read(&path).map_err(|e| Error::io(&path, e));
        let mut digests = Vec::new();
        for (_, name) in list_digests(dir)? {
            digests.push((name.clone(), read(digests_dir(dir).join(&name))?));
        }
        let names = list_segments(dir)?;
        let count = names.len();
        let mut failed = None;
        let segments = names.into_iter().enumerate().map_while(|(i, (_, name))| {
            on_segment(i, count, &name);
            match read(segments_dir(dir).join(&name)) {
                Ok(bytes) => Some((name, bytes)),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        });
        let report = trail::verify_streamed(segments, &digests, public_key, window, anchors);
        match failed {
            // A segment that could not be read is no verdict on the trail.
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    pub fn verify(&self, public_key: &[u8; 32], window: trail::Window) -> trail::Report {
        self.verify_anchored(public_key, window, &trail::Anchors::default())
    }

    /// [`TrailFiles::verify`], holding the trail's end to `anchors`.
    pub fn verify_anchored(
        &self,
        public_key: &[u8; 32],
        window: trail::Window,
        anchors: &trail::Anchors<'_>,
    ) -> trail::Report {
        let inputs: Vec<SegmentInput<'_>> = self
            .segments
            .iter()
            .map(|(name, bytes)| SegmentInput { name, bytes })
            .collect();
        trail::verify_anchored(&inputs, &self.digests, public_key, window, anchors)
    }
}

/// The newest digest, signature checked, and the SHA-256 of its file.
pub(crate) fn last_digest(
    dir: &Path,
    public_key: &[u8; 32],
) -> Result<Option<(trail::SignedDigest, trail::Hash)>, Error> {
    let Some((n, name)) = list_digests(dir)?.pop() else {
        return Ok(None);
    };
    let path = digests_dir(dir).join(name);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let d = trail::open_digest(&bytes, public_key).map_err(|e: TrailError| Error::Corrupt {
        path: path.clone(),
        reason: format!("{e}; run `latchkey audit verify`"),
    })?;
    if d.body.digest_sequence != n {
        return Err(Error::Corrupt {
            path,
            reason: "its name and sequence disagree".into(),
        });
    }
    Ok(Some((d, latchkey_audit::anchor::sha256(&bytes))))
}

/// The SHA-256 of digest `sequence`'s file, if it is there.
pub(crate) fn digest_hash(dir: &Path, sequence: u64) -> Result<Option<trail::Hash>, Error> {
    let path = digests_dir(dir).join(digest_name(sequence));
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(latchkey_audit::anchor::sha256(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// The hashes of the lines that claim record `sequence`, from the segment
/// that should hold it (`segments` as [`list_segments`] gives them).
pub(crate) fn record_hashes_at(
    dir: &Path,
    segments: &[(u64, String)],
    sequence: u64,
) -> Result<Vec<trail::Hash>, Error> {
    let Some((_, name)) = segments.iter().rev().find(|(first, _)| *first <= sequence) else {
        return Ok(Vec::new());
    };
    let path = segments_dir(dir).join(name);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let prefix = format!("{{\"sequence\":{sequence},");
    Ok(bytes
        .split(|b| *b == b'\n')
        .filter(|line| line.starts_with(prefix.as_bytes()))
        .map(latchkey_audit::anchor::sha256)
        .collect())
}

/// The trail id in `dir`, if it has one.
pub fn read_trail_id(dir: &Path) -> Result<Option<u64>, Error> {
    let path = dir.join("trail-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16)
            .map(Some)
            .map_err(|_| Error::Corrupt {
                path,
                reason: "the trail id is not 16 hex digits".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("writer.lock")
}

/// What the running writer wrote in `writer.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterInfo {
    pub pid: u32,
    /// When it opened the trail, milliseconds since the epoch.
    pub started_ms: i64,
    /// Its digest interval.
    pub digest_interval_ms: i64,
}

/// Takes `writer.lock` (an exclusive `flock`, released when the file is
/// closed, also by `kill -9`) and writes who holds it. A second writer on
/// the same trail is refused: two chains in one set of segments would
/// corrupt it.
pub(crate) fn lock_writer(dir: &Path, info: &WriterInfo) -> Result<File, Error> {
    use std::io::Write;
    let path = lock_path(dir);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(Error::Corrupt {
                path,
                reason: format!(
                    "another process is writing this audit trail ({}); one trail has one writer",
                    holder.trim()
                ),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let text = serde_json::json!({
        "pid": info.pid,
        "startedMs": info.started_ms,
        "digestIntervalMs": info.digest_interval_ms,
    })
    .to_string();
    file.set_len(0)
        .and_then(|()| file.write_all(text.as_bytes()))
        .map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

/// The writer holding `dir`'s trail open right now, if any: `serve`
/// claims to run exactly while it holds `writer.lock`.
pub fn running_writer(dir: &Path) -> Result<Option<WriterInfo>, Error> {
    let path = lock_path(dir);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    match file.try_lock_shared() {
        Ok(()) => return Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    Ok(Some(WriterInfo {
        pid: u32::try_from(num("pid")).unwrap_or(0),
        started_ms: num("startedMs"),
        digest_interval_ms: num("digestIntervalMs"),
    }))
}

/// When the newest signed digest was written (its file's time), if any.
pub fn newest_digest_time(dir: &Path) -> Result<Option<std::time::SystemTime>, Error> {
    let Some((_, name)) = list_digests(dir)?.pop() else {
        return Ok(None);
    };
    let path = digests_dir(dir).join(name);
    let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
    Ok(meta.modified().ok())
}

/// The file `latchkey audit verify` writes after a whole-trail check that
/// found it intact: the time, as epoch seconds.
fn verified_file(dir: &Path) -> PathBuf {
    dir.join("last-verified")
}

/// Records that the whole trail was verified intact at `now`.
pub fn record_verified(dir: &Path, now: i64) -> Result<(), Error> {
    let path = verified_file(dir);
    std::fs::write(&path, format!("{now}\n")).map_err(|e| Error::io(&path, e))
}

/// When the whole trail was last verified intact (see [`record_verified`]).
pub fn last_verified(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(verified_file(dir))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}
