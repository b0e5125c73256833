//! Where the trail lives on disk, and reading it back.
//!
//! ```text
//! DIR/segments/trail-00000000000000000001.jsonl   records from sequence 1
//! DIR/segments/trail-00000000000000052301.jsonl   records from sequence 52301
//! DIR/digests/digest-000000000001.json            signed chain heads
//! DIR/index.sqlite                                the lookup index
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

pub(crate) fn digest_name(sequence: u64) -> String {
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

    pub fn verify(&self, public_key: &[u8; 32], window: trail::Window) -> trail::Report {
        let inputs: Vec<SegmentInput<'_>> = self
            .segments
            .iter()
            .map(|(name, bytes)| SegmentInput { name, bytes })
            .collect();
        trail::verify(&inputs, &self.digests, public_key, window)
    }
}

/// The newest digest, signature checked.
pub(crate) fn last_digest(
    dir: &Path,
    public_key: &[u8; 32],
) -> Result<Option<trail::SignedDigest>, Error> {
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
    Ok(Some(d))
}
