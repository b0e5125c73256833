//! AWS Signature Version 4, as a pure library: no clock, no I/O.
//!
//! - [`presign`] and [`sign_request`] produce presigned URLs and
//!   `Authorization` headers byte-for-byte as botocore does.
//! - [`PresignedQuery::parse`] and [`AuthorizationHeader::parse`] take a
//!   signed request apart so the caller can look up the secret for its
//!   access key id; [`Verifier`] then checks it, comparing signatures in
//!   constant time and caching derived signing keys.
//! - Every rejection is a [`SigV4Error`] that says exactly why, and never
//!   carries a secret or a full signature.

mod canonical;
pub mod encoding;
mod error;
mod header;
mod key;
mod presign;
mod time;

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use canonical::{
    ALGORITHM, CanonicalRequest, EMPTY_PAYLOAD_SHA256, MAX_QUERY_PARAMETERS, RawPairs,
    canonical_header_value, canonical_uri, split_query,
};
pub use error::{Malformed, SigV4Error};
pub use header::{AuthorizationHeader, SignRequest, sign_request};
pub use key::{Scope, SigningKey, SigningKeyCache};
pub use presign::{PresignRequest, PresignedQuery, TokenPlacement, presign};
pub use time::{AmzDate, AmzDateError, civil_from_days, days_from_civil};

use error::echo;

/// AWS credentials. `Debug` never shows the secret or the session token.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<String>,
}

impl Credentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: Zeroizing::new(secret_access_key.into()),
            session_token,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A 32-byte SigV4 signature. Equality is constant time; `Debug` shows only
/// a short prefix.
#[derive(Clone, Copy)]
pub struct Signature([u8; 32]);

impl Signature {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses exactly 64 lowercase hex digits, the form every SDK sends.
    pub fn parse_hex(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 64 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(b, &mut out).ok()?;
        Some(Self(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw 32 bytes (to remember a signature without its hex text).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Signature {}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..2]))
    }
}

/// What the verifier requires of a signed request besides a valid signature.
#[derive(Clone, Debug)]
pub struct Expectations<'a> {
    /// The signing service the request must be scoped to.
    pub service: &'a str,
    /// The region the request must be scoped to; `None` accepts any.
    pub region: Option<&'a str>,
    /// The verification time.
    pub now: AmzDate,
    /// Presigned URLs: the largest `X-Amz-Expires` accepted.
    pub max_expires: u64,
    /// Seconds a request may be dated ahead of `now` (clients' clocks
    /// drift). For header-signed requests, the allowed skew either way.
    pub clock_skew: u64,
}

/// Checks SigV4 signatures, optionally with a shared signing-key cache.
#[derive(Default)]
pub struct Verifier {
    cache: Option<SigningKeyCache>,
}

impl Verifier {
    /// A verifier that derives the signing key for every request.
    pub fn uncached() -> Self {
        Self { cache: None }
    }

    /// A verifier caching up to `capacity` derived signing keys.
    pub fn with_cache(capacity: usize) -> Self {
        Self {
            cache: Some(SigningKeyCache::new(capacity)),
        }
    }

    fn signing_key(&self, secret: &[u8], scope: &Scope<'_>) -> SigningKey {
        match &self.cache {
            Some(cache) => cache.get_or_derive(secret, scope),
            None => SigningKey::derive(secret, scope),
        }
    }

    fn check_scope(scope: &Scope<'_>, expect: &Expectations<'_>) -> Result<(), SigV4Error> {
        if scope.service != expect.service {
            return Err(SigV4Error::WrongService {
                expected: expect.service.to_owned(),
                found: echo(scope.service),
            });
        }
        if let Some(region) = expect.region
            && scope.region != region
        {
            return Err(SigV4Error::WrongRegion {
                expected: region.to_owned(),
                found: echo(scope.region),
            });
        }
        Ok(())
    }

    /// Verifies a presigned request.
    ///
    /// `header` looks up a request header by lowercase name (join repeated
    /// headers with `,` first); for a database token it answers `host`.
    pub fn verify_presigned<'h>(
        &self,
        query: &PresignedQuery<'_>,
        method: &str,
        path: &str,
        header: impl Fn(&str) -> Option<&'h str>,
        secret: &[u8],
        expect: &Expectations<'_>,
    ) -> Result<(), SigV4Error> {
        let scope = query.scope();
        Self::check_scope(&scope, expect)?;
        if query.expires > expect.max_expires {
            return Err(SigV4Error::ExpiryTooLong {
                expires: query.expires,
                max: expect.max_expires,
            });
        }
        let skew = i64::try_from(expect.clock_skew).unwrap_or(i64::MAX);
        if query.time.unix() > expect.now.unix().saturating_add(skew) {
            return Err(SigV4Error::NotYetValid {
                signed_at: query.time,
                now: expect.now,
            });
        }
        let expired_at = query.expires_at();
        if expect.now > expired_at {
            return Err(SigV4Error::Expired {
                expired_at,
                now: expect.now,
            });
        }
        let canonical = CanonicalRequest::from_pairs(
            method,
            path,
            query.pairs(),
            &query.signed_headers,
            header,
            EMPTY_PAYLOAD_SHA256,
        )?;
        let key = self.signing_key(secret, &scope);
        let computed = Signature(canonical.sign(&key, query.time, &scope));
        if computed == query.signature {
            Ok(())
        } else {
            Err(SigV4Error::SignatureMismatch)
        }
    }

    /// Verifies a request signed with an `Authorization` header. The request
    /// time comes from the `x-amz-date` header, which must be signed.
    #[allow(clippy::too_many_arguments)]
    pub fn verify_header<'h>(
        &self,
        auth: &AuthorizationHeader<'_>,
        method: &str,
        path: &str,
        query: &str,
        header: impl Fn(&str) -> Option<&'h str>,
        payload_hash: &str,
        secret: &[u8],
        expect: &Expectations<'_>,
    ) -> Result<(), SigV4Error> {
        let scope = auth.scope();
        Self::check_scope(&scope, expect)?;
        if !auth.signed_headers.split(';').any(|h| h == "x-amz-date") {
            return Err(Malformed::SignedHeaders("x-amz-date must be signed").into());
        }
        let time = header("x-amz-date").ok_or(Malformed::Missing("the x-amz-date header"))?;
        let time = AmzDate::parse(time).map_err(Malformed::Date)?;
        if time.date_stamp() != scope.date {
            return Err(Malformed::CredentialDate.into());
        }
        if time.unix().abs_diff(expect.now.unix()) > expect.clock_skew {
            return Err(SigV4Error::ClockSkew {
                signed_at: time,
                now: expect.now,
                max_skew: expect.clock_skew,
            });
        }
        let canonical = CanonicalRequest::new(
            method,
            path,
            query,
            auth.signed_headers,
            header,
            payload_hash,
        )?;
        let key = self.signing_key(secret, &scope);
        let computed = Signature(canonical.sign(&key, time, &scope));
        if computed == auth.signature {
            Ok(())
        } else {
            Err(SigV4Error::SignatureMismatch)
        }
    }
}
