//! Why a signature was rejected. Messages never carry a secret, a signing
//! key or a full signature; values echoed from the request are truncated.

use crate::time::{AmzDate, AmzDateError};

/// A precise reason for rejecting a signed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("malformed: {0}")]
    Malformed(#[from] Malformed),
    #[error("unsupported signing algorithm (only AWS4-HMAC-SHA256 is accepted)")]
    UnsupportedAlgorithm,
    #[error("signed for service {found:?}, expected {expected:?}")]
    WrongService { expected: String, found: String },
    #[error("signed for region {found:?}, expected {expected:?}")]
    WrongRegion { expected: String, found: String },
    #[error("not yet valid: signed for {signed_at}, which is after the verification time {now}")]
    NotYetValid { signed_at: AmzDate, now: AmzDate },
    #[error("expired at {expired_at}, before the verification time {now}")]
    Expired { expired_at: AmzDate, now: AmzDate },
    #[error("expiry of {expires} s is over the maximum of {max} s")]
    ExpiryTooLong { expires: u64, max: u64 },
    #[error("request time {signed_at} is more than {max_skew} s from the verification time {now}")]
    ClockSkew {
        signed_at: AmzDate,
        now: AmzDate,
        max_skew: u64,
    },
    #[error("signature does not match")]
    SignatureMismatch,
}

impl SigV4Error {
    /// A stable machine-readable name for the reason, for JSON output,
    /// metrics labels and audit records.
    pub fn code(&self) -> &'static str {
        match self {
            SigV4Error::Malformed(_) => "Malformed",
            SigV4Error::UnsupportedAlgorithm => "UnsupportedAlgorithm",
            SigV4Error::WrongService { .. } => "WrongService",
            SigV4Error::WrongRegion { .. } => "WrongRegion",
            SigV4Error::NotYetValid { .. } => "NotYetValid",
            SigV4Error::Expired { .. } => "Expired",
            SigV4Error::ExpiryTooLong { .. } => "ExpiryTooLong",
            SigV4Error::ClockSkew { .. } => "ClockSkew",
            SigV4Error::SignatureMismatch => "SignatureMismatch",
        }
    }
}

/// What exactly is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{0} appears more than once")]
    Duplicate(&'static str),
    #[error("{0} is not validly percent-encoded")]
    Encoding(&'static str),
    #[error("X-Amz-Date: {0}")]
    Date(AmzDateError),
    #[error("X-Amz-Expires must be a whole number of seconds from 1")]
    Expires,
    #[error("credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request: {0}")]
    Credential(&'static str),
    #[error("the credential date does not match the request date")]
    CredentialDate,
    #[error("signed headers: {0}")]
    SignedHeaders(&'static str),
    #[error("signature must be 64 lowercase hex digits")]
    Signature,
    #[error("authorization header: {0}")]
    AuthorizationHeader(&'static str),
    #[error("more than {0} query parameters")]
    TooManyParameters(usize),
    #[error("query: {0}")]
    Query(&'static str),
}

impl From<AmzDateError> for Malformed {
    fn from(e: AmzDateError) -> Self {
        Malformed::Date(e)
    }
}

/// A value from the request, shortened so that errors stay small and never
/// carry long attacker-chosen strings.
pub(crate) fn echo(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}
