//! Reading a trail's durable records and digests in order, from where a
//! copy elsewhere (a shared store) stopped: the reading half of shipping.
//! Where the copy goes is the caller's business.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use latchkey_audit::trail::DigestBody;

use crate::Error;
use crate::files::{digests_dir, list_digests, list_segments, segments_dir};
use crate::index::SpanKey;
use crate::post::record_key;

/// At most this much of a segment is read per call.
const READ_CHUNK: u64 = 4 << 20;

/// A record as written, with what lookups filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipRecord {
    pub sequence: u64,
    /// The first sequence of its segment.
    pub segment: u64,
    pub time_ms: i64,
    pub key: SpanKey<String>,
    pub line: String,
}

/// Reads records after a sequence, remembering where it stopped so that
/// the next call, from there, does not scan the segment again.
pub struct ShipReader {
    dir: PathBuf,
    /// (segment, byte offset, the sequence expected there).
    cursor: Option<(u64, u64, u64)>,
}

impl ShipReader {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, cursor: None }
    }

    /// Up to `max` records with sequences in `(after, upto]`, in order. A
    /// line that is not a record (a damaged trail) is passed over: the
    /// copy then lacks it, as verification will say.
    pub fn records(&mut self, after: u64, upto: u64, max: usize) -> Result<Vec<ShipRecord>, Error> {
        let mut out = Vec::new();
        if upto <= after || max == 0 {
            return Ok(out);
        }
        let segments = list_segments(&self.dir)?;
        let (mut index, mut offset) = match self.cursor {
            Some((segment, offset, next)) if next == after + 1 => {
                match segments.iter().position(|(first, _)| *first == segment) {
                    Some(i) => (i, offset),
                    None => (start_of(&segments, after + 1), 0),
                }
            }
            _ => (start_of(&segments, after + 1), 0),
        };
        while let Some((first, name)) = segments.get(index) {
            let path = segments_dir(&self.dir).join(name);
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
            // Stops at a torn last line (not durable yet) or a line too
            // long to be a record; either way the next call starts there.
            let mut stuck = false;
            while offset < len {
                let want = (len - offset).min(READ_CHUNK);
                let mut buf = vec![0u8; usize::try_from(want).unwrap_or(0)];
                let n = file
                    .read_at(&mut buf, offset)
                    .map_err(|e| Error::io(&path, e))?;
                buf.truncate(n);
                let Some(whole) = buf.iter().rposition(|b| *b == b'\n').map(|p| p + 1) else {
                    stuck = true;
                    break;
                };
                let mut consumed = 0usize;
                for line in buf[..whole].split_inclusive(|b| *b == b'\n') {
                    let text = &line[..line.len() - 1];
                    let parsed = record_key(text);
                    if let Some((_, sequence, _)) = &parsed
                        && *sequence > upto
                    {
                        self.cursor = Some((*first, offset + consumed as u64, *sequence));
                        return Ok(out);
                    }
                    consumed += line.len();
                    let Some((key, sequence, time_ms)) = parsed else {
                        continue;
                    };
                    if sequence <= after {
                        continue;
                    }
                    out.push(ShipRecord {
                        sequence,
                        segment: *first,
                        time_ms,
                        key,
                        line: String::from_utf8_lossy(text).into_owned(),
                    });
                    if out.len() >= max {
                        self.cursor = Some((*first, offset + consumed as u64, sequence + 1));
                        return Ok(out);
                    }
                }
                offset += consumed as u64;
                if n == 0 {
                    break;
                }
            }
            if stuck || index + 1 >= segments.len() {
                let next = out.last().map_or(after + 1, |r| r.sequence + 1);
                self.cursor = Some((*first, offset, next));
                return Ok(out);
            }
            index += 1;
            offset = 0;
        }
        Ok(out)
    }
}

/// The index of the segment holding `sequence` (the first one when
/// retention removed it).
fn start_of(segments: &[(u64, String)], sequence: u64) -> usize {
    segments
        .iter()
        .rposition(|(first, _)| *first <= sequence)
        .unwrap_or(0)
}

/// Digest files after digest `after`, in order, while each covers no
/// record past `upto` (a copy never holds a digest of records it lacks).
pub fn digests_after(
    dir: &std::path::Path,
    after: u64,
    upto: u64,
) -> Result<Vec<(u64, String)>, Error> {
    let mut out = Vec::new();
    for (n, name) in list_digests(dir)? {
        if n <= after {
            continue;
        }
        let path = digests_dir(dir).join(&name);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let covers = text
            .lines()
            .next()
            .and_then(|body| serde_json::from_str::<DigestBody>(body).ok())
            .map_or(0, |b| b.last_sequence);
        if covers > upto {
            break;
        }
        out.push((n, text));
    }
    Ok(out)
}

/// The first record sequence and digest number the trail still holds
/// (retention removes from the front): a copy drops what is older.
pub fn retained_from(dir: &std::path::Path) -> Result<(u64, u64), Error> {
    let first_segment = list_segments(dir)?.first().map_or(0, |(n, _)| *n);
    let first_digest = list_digests(dir)?.first().map_or(0, |(n, _)| *n);
    Ok((first_segment, first_digest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::files::{digest_name, segment_name};

    fn line(n: u64) -> String {
        format!(
            "{{\"sequence\":{n},\"previousHash\":\"00\",\"eventName\":\"Statement\",\"eventTime\":\"2026-12-04T10:00:{:02}Z\",\"userIdentity\":{{\"arn\":\"arn:p\"}}}}\n",
            n % 60
        )
    }

    fn trail(dir: &std::path::Path, segments: &[(u64, u64)], torn: bool) {
        std::fs::create_dir_all(segments_dir(dir)).unwrap();
        std::fs::create_dir_all(digests_dir(dir)).unwrap();
        for (i, (first, last)) in segments.iter().enumerate() {
            let mut text: String = (*first..=*last).map(line).collect();
            if torn && i + 1 == segments.len() {
                text.push_str("{\"sequence\":99,\"prev");
            }
            std::fs::write(segments_dir(dir).join(segment_name(*first)), text).unwrap();
        }
    }

    fn sequences(records: &[ShipRecord]) -> Vec<u64> {
        records.iter().map(|r| r.sequence).collect()
    }

    #[test]
    fn reads_in_order_across_segments_resuming_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        trail(dir.path(), &[(1, 4), (5, 9)], true);
        let mut reader = ShipReader::new(dir.path().to_owned());
        // At most `max`, then on from there (the cursor), across segments.
        let first = reader.records(0, 100, 3).unwrap();
        assert_eq!(sequences(&first), [1, 2, 3]);
        assert_eq!(first[0].segment, 1);
        assert_eq!(first[0].key.principal.as_deref(), Some("arn:p"));
        assert!(first[0].line.starts_with("{\"sequence\":1,") && !first[0].line.ends_with('\n'));
        let next = reader.records(3, 100, 4).unwrap();
        assert_eq!(sequences(&next), [4, 5, 6, 7]);
        assert_eq!(next[1].segment, 5);
        // Never past `upto` (what is durable), and the torn line is not a
        // record.
        assert_eq!(sequences(&reader.records(7, 8, 100).unwrap()), [8]);
        assert_eq!(sequences(&reader.records(8, 100, 100).unwrap()), [9]);
        assert!(reader.records(9, 100, 100).unwrap().is_empty());
        // Asked from elsewhere (the store lost rows): found by the segments'
        // names, not the cursor.
        assert_eq!(sequences(&reader.records(1, 100, 2).unwrap()), [2, 3]);
        let mut fresh = ShipReader::new(dir.path().to_owned());
        assert_eq!(sequences(&fresh.records(6, 100, 10).unwrap()), [7, 8, 9]);
        // Records appended later are found from the cursor.
        let path = segments_dir(dir.path()).join(segment_name(5));
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.truncate(text.rfind('\n').unwrap() + 1);
        text.push_str(&line(10));
        std::fs::write(&path, text).unwrap();
        assert_eq!(sequences(&fresh.records(9, 100, 10).unwrap()), [10]);
    }

    #[test]
    fn retention_and_digests_follow_what_is_shipped() {
        let dir = tempfile::tempdir().unwrap();
        trail(dir.path(), &[(5, 9)], false);
        // Records before the oldest segment are gone: reading starts there.
        let mut reader = ShipReader::new(dir.path().to_owned());
        assert_eq!(sequences(&reader.records(0, 100, 2).unwrap()), [5, 6]);
        let digest = |n: u64, last: u64| {
            let body = format!(
                "{{\"digestVersion\":1,\"trailId\":\"00\",\"digestSequence\":{n},\"digestStartTime\":\"t\",\"digestEndTime\":\"t\",\"lastSequence\":{last},\"lastRecordHash\":\"00\",\"segments\":[],\"retainedFrom\":1,\"previousDigestSignature\":null,\"publicKey\":\"00\"}}\n{{\"algorithm\":\"Ed25519\",\"signature\":\"00\"}}\n"
            );
            std::fs::write(digests_dir(dir.path()).join(digest_name(n)), body).unwrap();
        };
        digest(2, 6);
        digest(3, 9);
        // A digest goes only with the records it covers.
        let d = digests_after(dir.path(), 0, 7).unwrap();
        assert_eq!(d.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2]);
        assert!(d[0].1.contains("\"lastSequence\":6"));
        assert_eq!(digests_after(dir.path(), 2, 9).unwrap().len(), 1);
        assert!(digests_after(dir.path(), 3, 9).unwrap().is_empty());
        assert_eq!(retained_from(dir.path()).unwrap(), (5, 2));
    }
}
