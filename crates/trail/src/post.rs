//! After the writer: the thread that keeps the lookup index and runs the
//! observers, and lookups by the index.

use super::*;

/// The trail's second thread: the index and the observers, off the
/// writer's path.
pub(crate) fn post_loop(
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
            let id = latchkey_audit::trail::event_uuid(trail_id, *sequence);
            for o in observers.iter_mut() {
                let more = o.observe(*sequence, id.as_str(), event);
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
        for o in observers.iter_mut() {
            o.end_batch();
        }
        if let Some(last) = last {
            shared.observed.store(last, Ordering::Release);
        }
    }
}

pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What lookups file a record under (its span key), its sequence and its
/// time, read from its line.
pub fn record_key(line: &[u8]) -> Option<(SpanKey<String>, u64, i64)> {
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
pub(crate) fn reindex(dir: &Path, index: &mut Index, after: u64) -> Result<(), Error> {
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
    index.visit_spans(filter, |span| {
        // Enough, and every later span is older than what we have.
        if found.len() >= limit
            && found
                .iter()
                .map(|(s, _)| *s)
                .min()
                .is_some_and(|oldest| span.last_sequence < oldest)
        {
            return Ok(false);
        }
        let path = files::segments_dir(dir).join(segment_name(span.segment));
        if open.as_ref().is_none_or(|(s, _)| *s != span.segment) {
            let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
            open = Some((span.segment, f));
        }
        let Some((_, f)) = open.as_ref() else {
            return Ok(true);
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
                && filter.sequence.is_none_or(|n| sequence == n)
                && (filter.source_ip.is_none() || key.source_ip == ip)
            {
                found.push((sequence, String::from_utf8_lossy(line).into_owned()));
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found.dedup_by_key(|(s, _)| *s);
        found.truncate(limit);
        Ok(true)
    })?;
    Ok(found.into_iter().map(|(_, r)| r).collect())
}

/// The record of `sequence` (as its `eventID` names it), found without
/// the index: a segment holds its records in sequence order, so a binary
/// search over byte offsets reads a few windows of it, however large the
/// trail.
pub fn record_at(dir: &Path, sequence: u64) -> Result<Option<String>, Error> {
    use std::os::unix::fs::FileExt;
    const WINDOW: u64 = 256 * 1024;
    let Some((_, name)) = files::list_segments(dir)?
        .into_iter()
        .filter(|(first, _)| *first <= sequence)
        .max_by_key(|(first, _)| *first)
    else {
        return Ok(None);
    };
    let path = files::segments_dir(dir).join(name);
    let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let read = |at: u64, len: u64| -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        let n = f.read_at(&mut buf, at).map_err(|e| Error::io(&path, e))?;
        buf.truncate(n);
        Ok(buf)
    };
    let sequence_of = |line: &[u8]| record_key(line).map(|(_, s, _)| s);
    // The record, if there, starts at a line start in [lo, hi).
    let (mut lo, mut hi) = (0u64, f.metadata().map_err(|e| Error::io(&path, e))?.len());
    while hi - lo > WINDOW {
        let mid = lo + (hi - lo) / 2;
        let buf = read(mid, WINDOW)?;
        let Some(start) = buf.iter().position(|b| *b == b'\n').map(|i| i + 1) else {
            break;
        };
        let Some(len) = buf[start..].iter().position(|b| *b == b'\n') else {
            break;
        };
        match sequence_of(&buf[start..start + len]) {
            Some(s) if s == sequence => {
                return Ok(Some(
                    String::from_utf8_lossy(&buf[start..start + len]).into_owned(),
                ));
            }
            Some(s) if s > sequence => hi = mid + start as u64,
            Some(_) => lo = mid + start as u64,
            None => break,
        }
    }
    let buf = read(lo, hi - lo)?;
    Ok(buf
        .split(|b| *b == b'\n')
        .find(|line| sequence_of(line) == Some(sequence))
        .map(|line| String::from_utf8_lossy(line).into_owned()))
}

/// Every record in the trail, oldest first, as written (one line each),
/// streamed segment by segment: for rebuilding what was derived from the
/// stream (the access advisor's last uses). Returns how many were read.
pub fn for_each_record(dir: &Path, mut f: impl FnMut(&[u8])) -> Result<u64, Error> {
    use std::io::BufRead;
    let mut count = 0u64;
    let mut line = Vec::with_capacity(4096);
    for (_, name) in files::list_segments(dir)? {
        let path = files::segments_dir(dir).join(&name);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io(&path, e))?;
            if n == 0 {
                break;
            }
            // A torn final line (a crash mid-write) is not a record.
            if line.last() == Some(&b'\n') {
                line.pop();
                f(&line);
                count += 1;
            }
        }
    }
    Ok(count)
}
