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
//!
//! Files: `chain` (sealing records into the chain, reading a record's
//! chain fields), `digest` (digest bodies, the signing key, signed digest
//! files), `problem` (what verification can find), `verify` (the
//! verifier, with the anchors of `crate::anchor`).

pub mod chain;
pub mod digest;
pub mod problem;
pub mod verify;

pub use chain::*;
pub use digest::*;
pub use problem::*;
pub use verify::*;

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
    Uuid::of(bytes).as_str().to_owned()
}

/// [`uuid_text`] without an allocation: every record the trail writes
/// has one.
#[derive(Clone, Copy)]
pub struct Uuid([u8; 36]);

impl Uuid {
    pub fn of(bytes: [u8; 16]) -> Self {
        let mut text = [b'-'; 36];
        let mut at = 0;
        // Groups of 4, 2, 2, 2 and 6 bytes, a dash after each.
        for group in [
            &bytes[..4],
            &bytes[4..6],
            &bytes[6..8],
            &bytes[8..10],
            &bytes[10..],
        ] {
            let end = at + 2 * group.len();
            // Fails only on a length mismatch, which the ranges rule out.
            let _ = hex::encode_to_slice(group, &mut text[at..end]);
            at = end + 1;
        }
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits and dashes only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The `eventID` of record `sequence` in trail `trail_id`: UUID-shaped and
/// unique, and it names its record.
pub fn event_id(trail_id: u64, sequence: u64) -> String {
    event_uuid(trail_id, sequence).as_str().to_owned()
}

/// [`event_id`], on the stack.
pub fn event_uuid(trail_id: u64, sequence: u64) -> Uuid {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&trail_id.to_be_bytes());
    b[8..].copy_from_slice(&sequence.to_be_bytes());
    Uuid::of(b)
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
