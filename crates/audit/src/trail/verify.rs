//! The verifier: records and digests against each other, and the trail's end against its anchors.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::*;

/// A trail segment's name and contents, in sequence order.
pub struct SegmentInput<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// Limits verification to records written in a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub from: Option<SystemTime>,
    pub to: Option<SystemTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub digests_valid: u64,
    pub records: u64,
    /// Proven by a signed digest.
    pub records_verified: u64,
    /// Written after the newest digest: chained, not yet signed.
    pub records_unsigned: u64,
    /// Cut off from every digest by a problem.
    pub records_unverifiable: u64,
    pub first_digest: Option<u64>,
    pub last_digest: Option<u64>,
    /// When the newest valid digest was signed.
    pub last_digest_time: Option<String>,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Unknown,
    Verified,
    Unverifiable,
    Modified,
}

struct Rec {
    segment: usize,
    line: u64,
    head: RecordHead,
}

/// Checks the trail: every digest's signature and chain, then every record
/// against the digests, walking the hash chain back from each signed head.
/// `digests` are `(name, file bytes)`; segments must be in sequence order.
pub fn verify(
    segments: &[SegmentInput<'_>],
    digests: &[(String, Vec<u8>)],
    public_key: &[u8; 32],
    window: Window,
) -> Report {
    verify_anchored(segments, digests, public_key, window, &Anchors::default())
}

/// Anchors to hold the trail to in [`verify_anchored`].
#[derive(Debug, Clone, Default)]
pub struct Anchors<'a> {
    /// The trail's id from its `trail-id` file, if there is one.
    pub trail_id: Option<u64>,
    /// `(source, anchor)`, signatures already checked: `store`, or the
    /// file an anchor was exported to.
    pub anchors: Vec<(&'a str, &'a crate::anchor::AnchorBody)>,
}

/// [`verify`], and then the trail's end against each anchor
/// ([`crate::anchor::compare`]): truncation that the digests cannot show.
pub fn verify_anchored(
    segments: &[SegmentInput<'_>],
    digests: &[(String, Vec<u8>)],
    public_key: &[u8; 32],
    window: Window,
    held_to: &Anchors<'_>,
) -> Report {
    verify_streamed(
        segments.iter().map(|s| (s.name.to_owned(), s.bytes)),
        digests,
        public_key,
        window,
        held_to,
    )
}

/// [`verify_anchored`] over segments `(name, bytes)` read one at a time:
/// each is dropped once its records' heads are taken, so a trail far
/// larger than memory verifies in a few hundred bytes per record.
pub fn verify_streamed<B: AsRef<[u8]>>(
    segments: impl IntoIterator<Item = (String, B)>,
    digests: &[(String, Vec<u8>)],
    public_key: &[u8; 32],
    window: Window,
    held_to: &Anchors<'_>,
) -> Report {
    let mut report = Report::default();
    let mut problems = Vec::new();

    // Digests: signatures, then their own chain.
    let mut valid: Vec<(String, SignedDigest)> = Vec::new();
    for (name, bytes) in digests {
        match open_digest(bytes, public_key) {
            Ok(d) => valid.push((name.clone(), d)),
            Err(e) => problems.push(Problem::DigestInvalid {
                digest: name.clone(),
                reason: e.to_string(),
            }),
        }
    }
    valid.sort_by_key(|(_, d)| d.body.digest_sequence);
    for pair in valid.windows(2) {
        let ((_, a), (name, b)) = (&pair[0], &pair[1]);
        if b.body.digest_sequence > a.body.digest_sequence + 1 {
            problems.push(Problem::DigestsMissing {
                first: a.body.digest_sequence + 1,
                last: b.body.digest_sequence - 1,
            });
        } else if b.body.previous_digest_signature.as_deref()
            != Some(hex::encode(a.signature).as_str())
            || b.body.last_sequence < a.body.last_sequence
        {
            problems.push(Problem::DigestChainBroken {
                digest: name.clone(),
            });
        }
    }
    report.digests_valid = valid.len() as u64;
    report.first_digest = valid.first().map(|(_, d)| d.body.digest_sequence);
    report.last_digest = valid.last().map(|(_, d)| d.body.digest_sequence);
    report.last_digest_time = valid.last().map(|(_, d)| d.body.digest_end_time.clone());

    // Records.
    let mut recs: Vec<Rec> = Vec::new();
    let mut unreadable: HashMap<(usize, u64), ()> = HashMap::new();
    let mut segment_names: Vec<String> = Vec::new();
    for (s, (name, bytes)) in segments.into_iter().enumerate() {
        segment_names.push(name);
        let seg = SegmentInput {
            name: &segment_names[s],
            bytes: bytes.as_ref(),
        };
        for (i, line) in seg.bytes.split(|b| *b == b'\n').enumerate() {
            let line_no = i as u64 + 1;
            if line.is_empty() {
                continue;
            }
            match parse_record(line) {
                Ok(head) => recs.push(Rec {
                    segment: s,
                    line: line_no,
                    head,
                }),
                Err(e) => {
                    unreadable.insert((s, line_no), ());
                    problems.push(Problem::RecordUnreadable {
                        segment: seg.name.to_owned(),
                        line: line_no,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
    report.records = recs.len() as u64;
    let mut by_hash: HashMap<Hash, usize> = HashMap::with_capacity(recs.len());
    let mut by_sequence: HashMap<u64, Vec<usize>> = HashMap::with_capacity(recs.len());
    for (i, r) in recs.iter().enumerate() {
        by_hash.entry(r.head.hash).or_insert(i);
        by_sequence.entry(r.head.sequence).or_default().push(i);
    }
    let mut sorted_sequences: Vec<u64> = by_sequence.keys().copied().collect();
    sorted_sequences.sort_unstable();
    let mut status = vec![Status::Unknown; recs.len()];
    let place = |i: usize| (segment_names[recs[i].segment].clone(), recs[i].line);

    // What retention removed, by a signed digest's word.
    let retained = valid
        .iter()
        .map(|(_, d)| d.body.retained_from)
        .max()
        .unwrap_or(1);
    // Segments the digests vouch for must exist.
    let names: std::collections::HashSet<&str> = segment_names.iter().map(String::as_str).collect();
    let mut missing_ranges: Vec<(u64, u64)> = Vec::new();
    for (_, d) in &valid {
        for s in &d.body.segments {
            if !names.contains(s.name.as_str()) && s.last_sequence >= retained {
                missing_ranges.push((s.first_sequence, s.last_sequence));
                problems.push(Problem::SegmentMissing {
                    segment: s.name.clone(),
                    first_sequence: s.first_sequence,
                    last_sequence: s.last_sequence,
                });
            }
        }
    }

    // Walk back from the newest signed head. Each digest on the way
    // re-anchors the walk after a break.
    let anchors: HashMap<u64, Hash> = valid
        .iter()
        .filter(|(_, d)| d.body.last_sequence > 0)
        .map(|(_, d)| (d.body.last_sequence, d.last_hash))
        .collect();
    let top = valid
        .iter()
        .map(|(_, d)| d.body.last_sequence)
        .max()
        .unwrap_or(0);
    let mut expect = top;
    // The hash the record at `expect` must have, while the walk is anchored.
    let mut anchored: Option<Hash> = anchors.get(&top).copied();
    // The record found one step later in the walk, to place modifications.
    let mut later: Option<usize> = None;
    while expect >= retained.max(1) {
        if let Some(h) = anchors.get(&expect) {
            anchored = Some(*h);
        }
        let candidates: Vec<usize> = by_sequence
            .get(&expect)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|i| status[*i] == Status::Unknown)
                    .collect()
            })
            .unwrap_or_default();
        let genuine = anchored.and_then(|h| by_hash.get(&h).copied());
        if let Some(i) = genuine.filter(|i| recs[*i].head.sequence == expect) {
            status[i] = Status::Verified;
            anchored = Some(recs[i].head.previous_hash);
            later = Some(i);
            expect -= 1;
            continue;
        }
        // The genuine record at `expect` is not here as written.
        if let Some(&i) = candidates.first() {
            let linked = later.is_none_or(|l| recs[l].head.previous_hash == recs[i].head.hash);
            if anchored.is_some() || !linked {
                status[i] = Status::Modified;
                let (segment, line) = place(i);
                problems.push(Problem::RecordModified {
                    segment,
                    line,
                    sequence: expect,
                });
            } else {
                status[i] = Status::Unverifiable;
            }
            // Everything before it is cut off until the next digest.
            anchored = None;
            later = Some(i);
            expect -= 1;
            continue;
        }
        // Nothing claims `expect`: an unreadable line where it belongs, or
        // deleted records.
        let slot = later.map(|l| (recs[l].segment, recs[l].line.saturating_sub(1)));
        if let Some((s, line)) = slot.filter(|k| unreadable.contains_key(k)) {
            problems.retain(|p| {
                !matches!(p, Problem::RecordUnreadable { segment, line: l, .. }
                    if *segment == segment_names[s] && *l == line)
            });
            problems.push(Problem::RecordModified {
                segment: segment_names[s].clone(),
                line,
                sequence: expect,
            });
            anchored = None;
            later = None;
            expect -= 1;
            continue;
        }
        let below = match sorted_sequences.binary_search(&expect) {
            Ok(p) | Err(p) => p.checked_sub(1).map(|p| sorted_sequences[p]).unwrap_or(0),
        };
        let (first, last) = ((below + 1).max(retained), expect);
        let in_missing_segment = missing_ranges
            .iter()
            .any(|(a, b)| *a <= first && last <= *b);
        if !in_missing_segment && last >= retained {
            problems.push(Problem::RecordsDeleted {
                first_sequence: first,
                last_sequence: last,
            });
        }
        anchored = None;
        later = None;
        expect = below;
    }

    // Records after the newest digest: chained, not yet signed.
    let mut tail: Vec<usize> = (0..recs.len())
        .filter(|i| status[*i] == Status::Unknown && recs[*i].head.sequence > top)
        .collect();
    tail.sort_by_key(|i| (recs[*i].head.sequence, *i));
    let mut previous: Option<(u64, Hash, Option<usize>)> =
        Some((top, anchors.get(&top).copied().unwrap_or(GENESIS), None));
    for &i in &tail {
        let head = &recs[i].head;
        let Some((seq, hash, prev_index)) = previous else {
            break;
        };
        if head.sequence == seq {
            continue; // a duplicate: reported as inserted below
        }
        if head.sequence > seq + 1 {
            problems.push(Problem::RecordsDeleted {
                first_sequence: seq + 1,
                last_sequence: head.sequence - 1,
            });
        } else if head.previous_hash != hash {
            match prev_index {
                Some(p) => {
                    status[p] = Status::Modified;
                    let (segment, line) = place(p);
                    problems.push(Problem::RecordModified {
                        segment,
                        line,
                        sequence: seq,
                    });
                }
                None if top > 0 => {
                    // It does not follow the signed head.
                    status[i] = Status::Modified;
                    let (segment, line) = place(i);
                    problems.push(Problem::RecordModified {
                        segment,
                        line,
                        sequence: head.sequence,
                    });
                    previous = Some((head.sequence, head.hash, Some(i)));
                    continue;
                }
                None => {}
            }
        }
        status[i] = Status::Unverifiable;
        report.records_unsigned += 1;
        previous = Some((head.sequence, head.hash, Some(i)));
    }

    // Whatever no walk reached was never written by the trail.
    for (i, r) in recs.iter().enumerate() {
        if status[i] == Status::Unknown {
            let (segment, line) = place(i);
            problems.push(Problem::RecordInserted {
                segment,
                line,
                claimed_sequence: r.head.sequence,
            });
        }
    }

    // Genuine records must also be in order.
    let mut highest = 0u64;
    for (i, r) in recs.iter().enumerate() {
        if matches!(status[i], Status::Verified | Status::Unverifiable) {
            if r.head.sequence < highest {
                let (segment, line) = place(i);
                problems.push(Problem::RecordReordered {
                    segment,
                    line,
                    sequence: r.head.sequence,
                });
            }
            highest = highest.max(r.head.sequence);
        }
    }

    report.records_verified = status.iter().filter(|s| **s == Status::Verified).count() as u64;
    report.records_unverifiable = status
        .iter()
        .filter(|s| **s == Status::Unverifiable)
        .count() as u64
        - report.records_unsigned;

    // Keep what falls in the window.
    if window.from.is_some() || window.to.is_some() {
        let from_ms = window.from.map(ms_of);
        let to_ms = window.to.map(ms_of);
        let in_time = |ms: i64| from_ms.is_none_or(|f| ms >= f) && to_ms.is_none_or(|t| ms <= t);
        let seqs: Vec<u64> = recs
            .iter()
            .filter(|r| in_time(r.head.time_ms))
            .map(|r| r.head.sequence)
            .collect();
        let lo = seqs.iter().min().copied().unwrap_or(u64::MAX);
        let hi = seqs.iter().max().copied().unwrap_or(0);
        let digest_in_time = |name: &str| {
            valid.iter().find(|(n, _)| n == name).is_none_or(|(_, d)| {
                let start = parse_time_ms(&d.body.digest_start_time).unwrap_or(0);
                let end = parse_time_ms(&d.body.digest_end_time).unwrap_or(i64::MAX);
                from_ms.is_none_or(|f| end >= f) && to_ms.is_none_or(|t| start <= t)
            })
        };
        problems.retain(|p| match p.sequences() {
            Some((a, b)) => a <= hi.saturating_add(1) && b.saturating_add(1) >= lo,
            None => match p {
                Problem::DigestInvalid { digest, .. } | Problem::DigestChainBroken { digest } => {
                    digest_in_time(digest)
                }
                _ => true,
            },
        });
    }
    // The trail's end against the anchors: never limited by the window.
    if !held_to.anchors.is_empty() {
        let trail_id = held_to.trail_id.or_else(|| {
            valid
                .last()
                .and_then(|(_, d)| u64::from_str_radix(&d.body.trail_id, 16).ok())
        });
        let last_sequence = sorted_sequences.last().copied().unwrap_or(0);
        for (source, anchor) in &held_to.anchors {
            let end = crate::anchor::TrailEnd {
                trail_id,
                last_sequence,
                at_anchor: by_sequence
                    .get(&anchor.sequence)
                    .map(|v| v.iter().map(|i| recs[*i].head.hash).collect())
                    .unwrap_or_default(),
                retained_from: retained,
                last_digest: report.last_digest.unwrap_or(0),
                anchored_digest: valid
                    .iter()
                    .find(|(_, d)| d.body.digest_sequence == anchor.digest_sequence)
                    .and_then(|(name, _)| digests.iter().find(|(n, _)| n == name))
                    .map(|(_, bytes)| Sha256::digest(bytes).into()),
            };
            problems.extend(crate::anchor::compare(anchor, &end, source));
        }
    }
    report.problems = problems;
    report
}

fn ms_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
