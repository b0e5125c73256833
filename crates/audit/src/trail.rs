//! The tamper-evident trail format: hash-chained JSON-lines records and
//! signed digests, and the verifier that says precisely what was changed.
//!
//! Each record line starts with its chain fields:
//! `{"sequence":N,"previousHash":"<hex SHA-256 of line N-1>",...}`. The
//! first record's `previousHash` is 64 zeros. A line's hash is SHA-256 of
//! its bytes without the newline, so each record commits to every record
//! before it.
//!
//! A digest, at least every few minutes, is two lines: a JSON body naming
//! the chain head (`lastSequence`, `lastRecordHash`), the segments that hold
//! the records since the previous digest and the previous digest's
//! signature; then `{"algorithm":"Ed25519","signature":"<hex>"}` over the
//! body's exact bytes. As with CloudTrail's digest files, a record can be
//! proven only once a digest after it exists; the writer signs one at
//! every clean shutdown.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::event::Event;
use crate::json::{FieldCache, Object, RecordContext, rfc3339};

pub type Hash = [u8; 32];

/// `previousHash` of the first record.
pub const GENESIS: Hash = [0; 32];

/// Why trail data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailError {
    #[error("not a trail record: {0}")]
    Record(String),
    #[error("not a digest: {0}")]
    Digest(String),
    #[error("not an Ed25519 key: {0}")]
    Key(String),
}

/// 16 bytes in the 8-4-4-4-12 hex form of a UUID.
pub fn uuid_text(bytes: [u8; 16]) -> String {
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The `eventID` of record `sequence` in trail `trail_id`: UUID-shaped and
/// unique, and it names its record.
pub fn event_id(trail_id: u64, sequence: u64) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&trail_id.to_be_bytes());
    b[8..].copy_from_slice(&sequence.to_be_bytes());
    uuid_text(b)
}

/// The sequence number an `eventID` names, if it is one of `trail_id`'s.
pub fn sequence_of(trail_id: u64, event_id: &str) -> Option<u64> {
    let hex: String = event_id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || u64::from_str_radix(&hex[..16], 16).ok()? != trail_id {
        return None;
    }
    u64::from_str_radix(&hex[16..], 16).ok()
}

/// A fresh random trail id.
pub fn new_trail_id() -> Result<u64, TrailError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 8];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| TrailError::Key("no randomness".into()))?;
    Ok(u64::from_be_bytes(b))
}

/// The writing end of the hash chain.
#[derive(Debug, Clone)]
pub struct Chain {
    pub trail_id: u64,
    /// The last record written (0 before the first).
    pub last_sequence: u64,
    pub last_hash: Hash,
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
        let id = event_id(self.trail_id, sequence);
        {
            let mut o = Object::new(out);
            o.num("sequence", sequence)
                .hex("previousHash", &self.last_hash);
            event.write_fields_cached(
                &mut o,
                &RecordContext {
                    region,
                    account,
                    event_id: &id,
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

fn parse_hash(text: &str) -> Option<Hash> {
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

/// A segment a digest vouches for, and the records of it that it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentRef {
    pub name: String,
    pub first_sequence: u64,
    pub last_sequence: u64,
}

/// The signed part of a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DigestBody {
    pub digest_version: u32,
    /// Hex.
    pub trail_id: String,
    /// 1, 2, 3... with no gaps.
    pub digest_sequence: u64,
    pub digest_start_time: String,
    pub digest_end_time: String,
    /// The chain head when signed (0: no records yet).
    pub last_sequence: u64,
    /// Hex SHA-256 of record `last_sequence`.
    pub last_record_hash: String,
    /// Records after the previous digest's head, by segment.
    pub segments: Vec<SegmentRef>,
    /// Records before this sequence were removed by retention (1: none).
    pub retained_from: u64,
    /// Hex; `None` for the first digest.
    pub previous_digest_signature: Option<String>,
    /// Hex Ed25519 public key that signed this digest.
    pub public_key: String,
}

/// The audit signing key.
pub struct SigningKey(Ed25519KeyPair);

impl SigningKey {
    /// A new key and its PKCS#8 document (to be stored sealed).
    pub fn generate() -> Result<(Self, zeroize::Zeroizing<Vec<u8>>), TrailError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|e| TrailError::Key(e.to_string()))?;
        let pkcs8 = zeroize::Zeroizing::new(doc.as_ref().to_vec());
        Ok((Self::from_pkcs8(&pkcs8)?, pkcs8))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, TrailError> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(Self)
            .map_err(|e| TrailError::Key(e.to_string()))
    }

    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.public_key().as_ref());
        out
    }

    /// An Ed25519 signature of `message` (anchors; digests use
    /// [`SigningKey::sign_digest`]).
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.0.sign(message).as_ref());
        signature
    }

    /// The digest file: body line, then signature line.
    pub fn sign_digest(&self, body: &DigestBody) -> (String, [u8; 64]) {
        let text = serde_json::to_string(body).unwrap_or_default();
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.0.sign(text.as_bytes()).as_ref());
        let file = format!(
            "{text}\n{{\"algorithm\":\"Ed25519\",\"signature\":\"{}\"}}\n",
            hex::encode(signature)
        );
        (file, signature)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", hex::encode(self.public_key()))
    }
}

/// Public keys as PEM (SubjectPublicKeyInfo), for `audit public-key`.
pub fn public_key_pem(key: &[u8; 32]) -> String {
    // The fixed SPKI prefix for an Ed25519 key (RFC 8410).
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(key);
    use base64::Engine;
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// Reads a key written by [`public_key_pem`] or given as 64 hex digits.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], TrailError> {
    let text = text.trim();
    if let Some(h) = parse_hash(text) {
        return Ok(h);
    }
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| TrailError::Key("neither 64 hex digits nor a PEM public key".into()))?;
    match der.as_slice() {
        [
            0x30,
            0x2a,
            0x30,
            0x05,
            0x06,
            0x03,
            0x2b,
            0x65,
            0x70,
            0x03,
            0x21,
            0x00,
            key @ ..,
        ] if key.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err(TrailError::Key(
            "the PEM key is not an Ed25519 public key".into(),
        )),
    }
}

/// A parsed, signature-checked digest file.
#[derive(Debug, Clone)]
pub struct SignedDigest {
    pub body: DigestBody,
    pub signature: [u8; 64],
    pub last_hash: Hash,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureLine {
    algorithm: String,
    signature: String,
}

/// Reads a digest file and checks its signature with `public_key`.
pub fn open_digest(bytes: &[u8], public_key: &[u8; 32]) -> Result<SignedDigest, TrailError> {
    let text = std::str::from_utf8(bytes).map_err(|_| TrailError::Digest("not UTF-8".into()))?;
    let mut lines = text.lines();
    let (Some(body_text), Some(sig_text), None) = (lines.next(), lines.next(), lines.next()) else {
        return Err(TrailError::Digest(
            "expected a body line and a signature line".into(),
        ));
    };
    let sig: SignatureLine = serde_json::from_str(sig_text)
        .map_err(|e| TrailError::Digest(format!("signature line: {e}")))?;
    if sig.algorithm != "Ed25519" {
        return Err(TrailError::Digest(format!(
            "unknown algorithm {}",
            sig.algorithm
        )));
    }
    let mut signature = [0u8; 64];
    hex::decode_to_slice(&sig.signature, &mut signature)
        .map_err(|_| TrailError::Digest("the signature is not 128 hex digits".into()))?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(body_text.as_bytes(), &signature)
        .map_err(|_| {
            TrailError::Digest("the signature does not match its body and the public key".into())
        })?;
    let body: DigestBody =
        serde_json::from_str(body_text).map_err(|e| TrailError::Digest(format!("body: {e}")))?;
    let last_hash = parse_hash(&body.last_record_hash)
        .ok_or_else(|| TrailError::Digest("lastRecordHash is not 64 hex digits".into()))?;
    Ok(SignedDigest {
        body,
        signature,
        last_hash,
    })
}

/// Builds the next digest's body.
pub struct DigestSpec<'a> {
    pub chain: &'a Chain,
    pub digest_sequence: u64,
    pub start: SystemTime,
    pub end: SystemTime,
    pub segments: Vec<SegmentRef>,
    pub retained_from: u64,
    pub previous_signature: Option<[u8; 64]>,
    pub public_key: [u8; 32],
}

impl DigestSpec<'_> {
    pub fn body(&self) -> DigestBody {
        DigestBody {
            digest_version: 1,
            trail_id: format!("{:016x}", self.chain.trail_id),
            digest_sequence: self.digest_sequence,
            digest_start_time: rfc3339(self.start),
            digest_end_time: rfc3339(self.end),
            last_sequence: self.chain.last_sequence,
            last_record_hash: hex::encode(self.chain.last_hash),
            segments: self.segments.clone(),
            retained_from: self.retained_from,
            previous_digest_signature: self.previous_signature.map(hex::encode),
            public_key: hex::encode(self.public_key),
        }
    }
}

/// What `audit verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "camelCase")]
pub enum Problem {
    /// Unreadable, or its signature does not match (modified or forged).
    #[serde(rename_all = "camelCase")]
    DigestInvalid { digest: String, reason: String },
    /// Digest sequence numbers jump: these were deleted.
    #[serde(rename_all = "camelCase")]
    DigestsMissing { first: u64, last: u64 },
    /// A digest does not name the one before it.
    #[serde(rename_all = "camelCase")]
    DigestChainBroken { digest: String },
    /// A segment a digest vouches for is gone.
    #[serde(rename_all = "camelCase")]
    SegmentMissing {
        segment: String,
        first_sequence: u64,
        last_sequence: u64,
    },
    /// The line at this place is not what was written.
    #[serde(rename_all = "camelCase")]
    RecordModified {
        segment: String,
        line: u64,
        sequence: u64,
    },
    /// The line is not a trail record at all.
    #[serde(rename_all = "camelCase")]
    RecordUnreadable {
        segment: String,
        line: u64,
        reason: String,
    },
    /// Records with these sequence numbers were written and are gone.
    #[serde(rename_all = "camelCase")]
    RecordsDeleted {
        first_sequence: u64,
        last_sequence: u64,
    },
    /// A record that was never written by the trail.
    #[serde(rename_all = "camelCase")]
    RecordInserted {
        segment: String,
        line: u64,
        claimed_sequence: u64,
    },
    /// A genuine record out of its place.
    #[serde(rename_all = "camelCase")]
    RecordReordered {
        segment: String,
        line: u64,
        sequence: u64,
    },
    /// An anchor (`source`: `store` or the file given) is unreadable, or
    /// its signature does not match (forged or altered).
    #[serde(rename_all = "camelCase")]
    AnchorInvalid { source: String, reason: String },
    /// The anchor names another trail: this one was deleted or replaced.
    #[serde(rename_all = "camelCase")]
    AnchorOtherTrail {
        source: String,
        anchored_trail: String,
        trail: String,
        anchored_sequence: u64,
    },
    /// The trail ends before the anchored record: its newest records were
    /// deleted (with every digest naming them).
    #[serde(rename_all = "camelCase")]
    TrailTruncated {
        source: String,
        anchored_sequence: u64,
        anchored_time: String,
        first_missing: u64,
        last_missing: u64,
    },
    /// The anchored record is not in the trail, though later ones are.
    #[serde(rename_all = "camelCase")]
    AnchoredRecordMissing { source: String, sequence: u64 },
    /// The record at the anchored sequence is not the one anchored.
    #[serde(rename_all = "camelCase")]
    AnchoredRecordModified { source: String, sequence: u64 },
    /// The newest digests, up to the anchored one, are gone.
    #[serde(rename_all = "camelCase")]
    DigestsTruncated {
        source: String,
        first_missing: u64,
        last_missing: u64,
    },
    /// The anchored digest file is not the one anchored.
    #[serde(rename_all = "camelCase")]
    AnchoredDigestModified {
        source: String,
        digest_sequence: u64,
    },
}

impl Problem {
    /// The sequence numbers it concerns, for `--from`/`--to`.
    fn sequences(&self) -> Option<(u64, u64)> {
        match self {
            Problem::SegmentMissing {
                first_sequence,
                last_sequence,
                ..
            }
            | Problem::RecordsDeleted {
                first_sequence,
                last_sequence,
            } => Some((*first_sequence, *last_sequence)),
            Problem::RecordModified { sequence, .. }
            | Problem::RecordReordered { sequence, .. } => Some((*sequence, *sequence)),
            Problem::RecordInserted {
                claimed_sequence, ..
            } => Some((*claimed_sequence, *claimed_sequence)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::DigestInvalid { digest, reason } => {
                write!(f, "digest {digest} is invalid: {reason}")
            }
            Problem::DigestsMissing { first, last } if first == last => {
                write!(f, "digest {first} is missing")
            }
            Problem::DigestsMissing { first, last } => {
                write!(f, "digests {first} to {last} are missing")
            }
            Problem::DigestChainBroken { digest } => {
                write!(f, "digest {digest} does not follow the digest before it")
            }
            Problem::SegmentMissing {
                segment,
                first_sequence,
                last_sequence,
            } => write!(
                f,
                "segment {segment} is missing (records {first_sequence} to {last_sequence})"
            ),
            Problem::RecordModified {
                segment,
                line,
                sequence,
            } => write!(f, "record {sequence} ({segment} line {line}) was modified"),
            Problem::RecordUnreadable {
                segment,
                line,
                reason,
            } => write!(f, "{segment} line {line} is not a record: {reason}"),
            Problem::RecordsDeleted {
                first_sequence,
                last_sequence,
            } if first_sequence == last_sequence => {
                write!(f, "record {first_sequence} was deleted")
            }
            Problem::RecordsDeleted {
                first_sequence,
                last_sequence,
            } => write!(
                f,
                "records {first_sequence} to {last_sequence} were deleted"
            ),
            Problem::RecordInserted {
                segment,
                line,
                claimed_sequence,
            } => write!(
                f,
                "{segment} line {line} was inserted (it claims to be record {claimed_sequence})"
            ),
            Problem::RecordReordered {
                segment,
                line,
                sequence,
            } => write!(
                f,
                "record {sequence} ({segment} line {line}) is out of order"
            ),
            Problem::AnchorInvalid { source, reason } => {
                write!(f, "the {source} anchor is invalid: {reason}")
            }
            Problem::AnchorOtherTrail {
                source,
                anchored_trail,
                trail,
                anchored_sequence,
            } => write!(
                f,
                "the {source} anchor vouches for trail {anchored_trail} up to record {anchored_sequence}, but this is trail {trail}: the trail was deleted or replaced"
            ),
            Problem::TrailTruncated {
                source,
                anchored_sequence,
                anchored_time,
                first_missing,
                last_missing,
            } => {
                let missing = if first_missing == last_missing {
                    format!("record {first_missing} was deleted")
                } else {
                    format!("records {first_missing} to {last_missing} were deleted")
                };
                write!(
                    f,
                    "the trail was truncated: the {source} anchor ({anchored_time}) vouches for records up to {anchored_sequence}, but the trail ends at record {}; {missing}",
                    first_missing - 1
                )
            }
            Problem::AnchoredRecordMissing { source, sequence } => write!(
                f,
                "record {sequence}, which the {source} anchor vouches for, was deleted"
            ),
            Problem::AnchoredRecordModified { source, sequence } => write!(
                f,
                "record {sequence} is not the record the {source} anchor vouches for: it was modified or replaced"
            ),
            Problem::DigestsTruncated {
                source,
                first_missing,
                last_missing,
            } if first_missing == last_missing => write!(
                f,
                "digest {first_missing}, which the {source} anchor vouches for, was deleted"
            ),
            Problem::DigestsTruncated {
                source,
                first_missing,
                last_missing,
            } => write!(
                f,
                "digests {first_missing} to {last_missing}, which the {source} anchor vouches for, were deleted"
            ),
            Problem::AnchoredDigestModified {
                source,
                digest_sequence,
            } => write!(
                f,
                "digest {digest_sequence} is not the digest the {source} anchor vouches for"
            ),
        }
    }
}

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
    for (s, seg) in segments.iter().enumerate() {
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
    let place = |i: usize| (segments[recs[i].segment].name.to_owned(), recs[i].line);

    // What retention removed, by a signed digest's word.
    let retained = valid
        .iter()
        .map(|(_, d)| d.body.retained_from)
        .max()
        .unwrap_or(1);
    // Segments the digests vouch for must exist.
    let names: std::collections::HashSet<&str> = segments.iter().map(|s| s.name).collect();
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
                    if segment == segments[s].name && *l == line)
            });
            problems.push(Problem::RecordModified {
                segment: segments[s].name.to_owned(),
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
