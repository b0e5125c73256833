//! Sealing records into the hash chain, and reading a record line's chain fields.

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::event::Event;
use crate::json::{FieldCache, Object, RecordContext};

use super::*;

/// The writing end of the hash chain.
#[derive(Debug, Clone)]
pub struct Chain {
    pub trail_id: u64,
    /// The last record written (0 before the first).
    pub last_sequence: u64,
    pub last_hash: Hash,
    /// The node writing this chain (issue 22): sealed into every record as
    /// `latchkeyNodeId`, so that a record copied off its node still says
    /// whose chain it is. CloudTrail consumers ignore the unknown key;
    /// records without it (older trails, one node) stay valid.
    pub node_id: Option<String>,
}

/// Where the chain stands after a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub sequence: u64,
    pub hash: Hash,
}

impl Chain {
    pub fn new(trail_id: u64) -> Self {
        Self {
            trail_id,
            last_sequence: 0,
            last_hash: GENESIS,
            node_id: None,
        }
    }

    /// Appends `event` as one line (with its newline) to `out`.
    pub fn append(
        &mut self,
        event: &Event,
        region: &str,
        account: &str,
        out: &mut String,
    ) -> Sealed {
        self.append_cached(event, region, account, &mut FieldCache::default(), out)
    }

    /// [`Chain::append`], with statements' session fields from `cache`.
    pub fn append_cached(
        &mut self,
        event: &Event,
        region: &str,
        account: &str,
        cache: &mut FieldCache,
        out: &mut String,
    ) -> Sealed {
        let start = out.len();
        let sequence = self.last_sequence + 1;
        let id = event_uuid(self.trail_id, sequence);
        {
            let mut o = Object::new(out);
            o.num("sequence", sequence)
                .hex("previousHash", &self.last_hash);
            if let Some(node) = &self.node_id {
                o.str("latchkeyNodeId", node);
            }
            event.write_fields_cached(
                &mut o,
                &RecordContext {
                    region,
                    account,
                    event_id: id.as_str(),
                },
                Some(cache),
            );
            o.end();
        }
        let hash: Hash = Sha256::digest(&out.as_bytes()[start..]).into();
        out.push('\n');
        self.last_sequence = sequence;
        self.last_hash = hash;
        Sealed { sequence, hash }
    }
}

/// The chain fields of a record line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHead {
    pub sequence: u64,
    pub previous_hash: Hash,
    /// Milliseconds since the epoch.
    pub time_ms: i64,
    pub hash: Hash,
}

#[derive(Deserialize)]
struct RawHead<'a> {
    sequence: u64,
    #[serde(rename = "previousHash")]
    previous_hash: &'a str,
    #[serde(rename = "eventTime")]
    event_time: &'a str,
}

pub(crate) fn parse_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Reads a record line (without its newline).
pub fn parse_record(line: &[u8]) -> Result<RecordHead, TrailError> {
    let raw: RawHead<'_> =
        serde_json::from_slice(line).map_err(|e| TrailError::Record(e.to_string()))?;
    if raw.sequence == 0 {
        return Err(TrailError::Record("sequence 0".into()));
    }
    let previous_hash = parse_hash(raw.previous_hash)
        .ok_or_else(|| TrailError::Record("previousHash is not 64 hex digits".into()))?;
    let time_ms = parse_time_ms(raw.event_time)
        .ok_or_else(|| TrailError::Record("eventTime is not an RFC 3339 UTC time".into()))?;
    Ok(RecordHead {
        sequence: raw.sequence,
        previous_hash,
        time_ms,
        hash: Sha256::digest(line).into(),
    })
}

/// `2026-11-23T14:22:08.123Z` (milliseconds optional) as milliseconds
/// since the epoch.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let millis = match &b[19..] {
        [b'Z'] => 0,
        [b'.', digits @ .., b'Z']
            if (1..=9).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) =>
        {
            let mut ms = 0i64;
            for (i, d) in digits.iter().take(3).enumerate() {
                ms += i64::from(d - b'0') * [100, 10, 1][i];
            }
            ms
        }
        _ => return None,
    };
    let days = latchkey_sigv4::days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis)
}
