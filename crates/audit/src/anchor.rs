//! Trail anchors: the last sealed record and the newest digest, kept where
//! deleting trail files does not reach them (the store, and copies taken
//! with `latchkey audit export-anchor`).
//!
//! Digests prove what is in the trail, but not that nothing came after:
//! deleting the newest segments together with every digest that names
//! them leaves a shorter trail that still verifies. An anchor remembers how
//! far the trail reached. The writer signs one (with the audit key, like a
//! digest) whenever it signs a digest and, at most once a second, when new
//! records are durable; the store keeps the newest. On verify the trail
//! must reach the anchored record, with the anchored hash, and the digests
//! must reach the anchored digest.
//!
//! The document is one JSON object:
//!
//! ```text
//! {"anchorVersion":1,"trailId":"<16 hex>","sequence":N,"recordHash":"<64 hex>",
//!  "digestSequence":D,"digestHash":"<64 hex>"|null,"time":"<RFC 3339>",
//!  "publicKey":"<64 hex>","signature":"<128 hex>"}
//! ```
//!
//! The Ed25519 signature covers [`AnchorBody::message`], a fixed text form
//! of every field but the signature, with its own domain prefix so that no
//! digest signature can pass for an anchor's.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::trail::Hash;
use crate::trail::chain::parse_time_ms;
use crate::trail::digest::SigningKey;
use crate::trail::problem::Problem;

/// The largest anchor document accepted (a real one is about 450 bytes).
pub const MAX_ANCHOR_BYTES: usize = 64 * 1024;

const DOMAIN: &str = "latchkey audit anchor v1";

/// Why an anchor document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("the anchor is longer than {MAX_ANCHOR_BYTES} bytes")]
    TooLong,
    #[error("the anchor is not JSON of the expected shape: {0}")]
    Json(String),
    #[error("unsupported anchorVersion {0} (this version reads 1)")]
    Version(u64),
    #[error("{field} is not {expected}")]
    Field {
        field: &'static str,
        expected: &'static str,
    },
    #[error("sequence must be at least 1")]
    NoRecord,
    #[error("digestHash must be null exactly when digestSequence is 0")]
    DigestHash,
    #[error(
        "the anchor was signed by key {found}, not by the trail's key {expected}: it is forged or from another installation"
    )]
    OtherKey { found: String, expected: String },
    #[error(
        "the signature does not match the anchor's contents and the public key: it was forged or altered"
    )]
    Signature,
}

/// What an anchor vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorBody {
    pub trail_id: u64,
    /// The last sealed (durable) record.
    pub sequence: u64,
    /// SHA-256 of that record's line.
    pub record_hash: Hash,
    /// The newest digest when anchored (0: none yet).
    pub digest_sequence: u64,
    /// SHA-256 of that digest file's bytes.
    pub digest_hash: Option<Hash>,
    /// When anchored, RFC 3339 UTC.
    pub time: String,
    /// The other nodes sharing the store as this node saw them, and how far
    /// each said its trail reached: a node erased from the store is still
    /// named here, where altering it breaks the signature.
    pub peers: BTreeMap<String, u64>,
}

/// The most peers an anchor names.
pub const MAX_PEERS: usize = 1024;

/// Whether `id` is shaped as a node id may be in an anchor.
fn valid_peer_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A signed anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub body: AnchorBody,
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    anchor_version: u64,
    trail_id: String,
    sequence: u64,
    record_hash: String,
    digest_sequence: u64,
    digest_hash: Option<String>,
    time: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    peers: BTreeMap<String, u64>,
    public_key: String,
    signature: String,
}

impl AnchorBody {
    /// The bytes the signature covers.
    pub fn message(&self) -> String {
        let mut message = format!(
            "{DOMAIN}\ntrail {:016x}\nsequence {}\nrecord {}\ndigest {} {}\ntime {}\n",
            self.trail_id,
            self.sequence,
            hex::encode(self.record_hash),
            self.digest_sequence,
            self.digest_hash.map_or_else(|| "-".to_owned(), hex::encode),
            self.time
        );
        // Peers' ids hold no space or newline (`valid_peer_id`).
        for (node, reach) in &self.peers {
            message.push_str(&format!("peer {node} {reach}\n"));
        }
        message
    }

    /// Signs the anchor with the audit key.
    pub fn sign(self, key: &SigningKey) -> Anchor {
        let signature = key.sign_bytes(self.message().as_bytes());
        Anchor {
            body: self,
            public_key: key.public_key(),
            signature,
        }
    }
}

fn hex_field<const N: usize>(
    text: &str,
    field: &'static str,
    expected: &'static str,
) -> Result<[u8; N], AnchorError> {
    let mut out = [0u8; N];
    // Lowercase only, as written: one spelling per anchor.
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(AnchorError::Field { field, expected });
    }
    hex::decode_to_slice(text, &mut out).map_err(|_| AnchorError::Field { field, expected })?;
    Ok(out)
}

impl Anchor {
    /// The JSON document (one line, no newline).
    pub fn to_json(&self) -> String {
        let doc = Document {
            anchor_version: 1,
            trail_id: format!("{:016x}", self.body.trail_id),
            sequence: self.body.sequence,
            record_hash: hex::encode(self.body.record_hash),
            digest_sequence: self.body.digest_sequence,
            digest_hash: self.body.digest_hash.map(hex::encode),
            time: self.body.time.clone(),
            peers: self.body.peers.clone(),
            public_key: hex::encode(self.public_key),
            signature: hex::encode(self.signature),
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// Reads an anchor document, checking its shape but not its signature
    /// (see [`open_anchor`]). Surrounding whitespace is allowed.
    pub fn parse(bytes: &[u8]) -> Result<Self, AnchorError> {
        if bytes.len() > MAX_ANCHOR_BYTES {
            return Err(AnchorError::TooLong);
        }
        let doc: Document =
            serde_json::from_slice(bytes).map_err(|e| AnchorError::Json(e.to_string()))?;
        if doc.anchor_version != 1 {
            return Err(AnchorError::Version(doc.anchor_version));
        }
        let trail_id = u64::from_be_bytes(hex_field::<8>(
            &doc.trail_id,
            "trailId",
            "16 lowercase hex digits",
        )?);
        if doc.sequence == 0 {
            return Err(AnchorError::NoRecord);
        }
        let record_hash =
            hex_field::<32>(&doc.record_hash, "recordHash", "64 lowercase hex digits")?;
        let digest_hash = match (&doc.digest_hash, doc.digest_sequence) {
            (None, 0) => None,
            (Some(h), d) if d > 0 => {
                Some(hex_field::<32>(h, "digestHash", "64 lowercase hex digits")?)
            }
            _ => return Err(AnchorError::DigestHash),
        };
        if !doc.time.ends_with('Z') || parse_time_ms(&doc.time).is_none() {
            return Err(AnchorError::Field {
                field: "time",
                expected: "an RFC 3339 UTC time",
            });
        }
        if doc.peers.len() > MAX_PEERS || !doc.peers.keys().all(|id| valid_peer_id(id)) {
            return Err(AnchorError::Field {
                field: "peers",
                expected: "at most 1024 node ids of 1 to 64 letters, digits, '-' or '_'",
            });
        }
        let public_key = hex_field::<32>(&doc.public_key, "publicKey", "64 lowercase hex digits")?;
        let signature = hex_field::<64>(&doc.signature, "signature", "128 lowercase hex digits")?;
        Ok(Self {
            body: AnchorBody {
                trail_id,
                sequence: doc.sequence,
                record_hash,
                digest_sequence: doc.digest_sequence,
                digest_hash,
                time: doc.time,
                peers: doc.peers,
            },
            public_key,
            signature,
        })
    }

    /// Checks that the trail's key signed this anchor.
    pub fn check(&self, public_key: &[u8; 32]) -> Result<(), AnchorError> {
        if &self.public_key != public_key {
            return Err(AnchorError::OtherKey {
                found: hex::encode(self.public_key),
                expected: hex::encode(public_key),
            });
        }
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(self.body.message().as_bytes(), &self.signature)
            .map_err(|_| AnchorError::Signature)
    }
}

/// Reads an anchor document and checks its signature with `public_key`.
pub fn open_anchor(bytes: &[u8], public_key: &[u8; 32]) -> Result<Anchor, AnchorError> {
    if bytes.len() > MAX_ANCHOR_BYTES {
        return Err(AnchorError::TooLong);
    }
    let anchor = Anchor::parse(bytes.trim_ascii())?;
    anchor.check(public_key)?;
    Ok(anchor)
}

/// What the trail holds, for comparing with an anchor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailEnd {
    /// The trail's id, when known (its `trail-id` file or a digest).
    pub trail_id: Option<u64>,
    /// The highest sequence of any record in the trail (0: none).
    pub last_sequence: u64,
    /// Hashes of the records that claim the anchor's sequence.
    pub at_anchor: Vec<Hash>,
    /// Records before this were removed by retention, by a digest's word.
    pub retained_from: u64,
    /// The newest digest's sequence (0: none).
    pub last_digest: u64,
    /// SHA-256 of the digest file with the anchor's digest sequence, if it
    /// is there.
    pub anchored_digest: Option<Hash>,
}

/// Compares the trail with an anchor from `source` (`store`, or a file
/// name). Everything the anchor vouches for that the trail lacks or holds
/// differently is a [`Problem`].
pub fn compare(anchor: &AnchorBody, end: &TrailEnd, source: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let source = source.to_owned();
    if let Some(id) = end.trail_id
        && id != anchor.trail_id
    {
        problems.push(Problem::AnchorOtherTrail {
            source,
            anchored_trail: format!("{:016x}", anchor.trail_id),
            trail: format!("{id:016x}"),
            anchored_sequence: anchor.sequence,
        });
        return problems;
    }
    if end.last_sequence < anchor.sequence {
        problems.push(Problem::TrailTruncated {
            source: source.clone(),
            anchored_sequence: anchor.sequence,
            anchored_time: anchor.time.clone(),
            first_missing: end.last_sequence + 1,
            last_missing: anchor.sequence,
        });
    } else if end.at_anchor.is_empty() {
        if anchor.sequence >= end.retained_from {
            problems.push(Problem::AnchoredRecordMissing {
                source: source.clone(),
                sequence: anchor.sequence,
            });
        }
    } else if !end.at_anchor.contains(&anchor.record_hash) {
        problems.push(Problem::AnchoredRecordModified {
            source: source.clone(),
            sequence: anchor.sequence,
        });
    }
    if end.last_digest < anchor.digest_sequence {
        problems.push(Problem::DigestsTruncated {
            source,
            first_missing: end.last_digest + 1,
            last_missing: anchor.digest_sequence,
        });
    } else if let (Some(found), Some(want)) = (end.anchored_digest, anchor.digest_hash)
        && found != want
    {
        problems.push(Problem::AnchoredDigestModified {
            source,
            digest_sequence: anchor.digest_sequence,
        });
    }
    problems
}

/// How late the newest digest is, in milliseconds, if a running writer
/// should have signed a newer one by `now_ms`. A writer signs a digest
/// every `interval_ms`; it is late once twice that (at most the interval
/// plus a minute) has passed since the newest digest, or since the
/// writer started when that is later (it signs only once due).
pub fn digest_overdue(
    newest_digest_ms: Option<i64>,
    writer_started_ms: i64,
    interval_ms: i64,
    now_ms: i64,
) -> Option<i64> {
    let since = newest_digest_ms.map_or(writer_started_ms, |d| d.max(writer_started_ms));
    let allowed = interval_ms.saturating_add(interval_ms.clamp(0, 60_000));
    let age = now_ms.saturating_sub(since);
    (age > allowed).then_some(age)
}

/// SHA-256 of `bytes` (a record line, a digest file).
pub fn sha256(bytes: &[u8]) -> Hash {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}
