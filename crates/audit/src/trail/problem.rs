//! What verifying a trail can find, each named precisely.

use serde::Serialize;

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
    /// Several nodes sharing a store: a node's copy there holds records
    /// but no anchor vouches for its end (the anchor was deleted).
    #[serde(rename_all = "camelCase")]
    AnchorMissing { node: String },
    /// A node's copy holds a record another node sealed (moved or
    /// substituted).
    #[serde(rename_all = "camelCase")]
    RecordOfAnotherNode {
        node: String,
        sequence: u64,
        sealed_by: String,
    },
    /// What the store files a shipped record under for lookups (its name,
    /// principal, time...) is not what the record says: it was altered to
    /// hide the record from lookups.
    #[serde(rename_all = "camelCase")]
    LookupFieldsAltered { node: String, sequence: u64 },
    /// A node reported itself to the store, but nothing of its trail is
    /// there (its copy and anchor were removed).
    #[serde(rename_all = "camelCase")]
    NodeTrailMissing { node: String },
}

impl Problem {
    /// The sequence numbers it concerns, for `--from`/`--to`.
    pub(crate) fn sequences(&self) -> Option<(u64, u64)> {
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
            Problem::AnchorMissing { node } => write!(
                f,
                "the store holds node {node}'s records but no anchor for them: its anchor was deleted"
            ),
            Problem::RecordOfAnotherNode {
                node,
                sequence,
                sealed_by,
            } => write!(
                f,
                "record {sequence} in node {node}'s copy was sealed by node {sealed_by}"
            ),
            Problem::LookupFieldsAltered { node, sequence } => write!(
                f,
                "what the store files node {node}'s record {sequence} under for lookups was altered (the record itself says otherwise)"
            ),
            Problem::NodeTrailMissing { node } => write!(
                f,
                "node {node} reported itself to the store, but its trail and anchor there are gone"
            ),
        }
    }
}
