//! Presigned URLs: signing and parsing the `X-Amz-*` query parameters.

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::canonical::{ALGORITHM, CanonicalRequest, EMPTY_PAYLOAD_SHA256, RawPairs, split_query};
use crate::encoding::{decode_utf8, encode_into};
use crate::error::{Malformed, SigV4Error};
use crate::key::{Scope, SigningKey};
use crate::time::AmzDate;
use crate::{Credentials, Signature};

/// Where the session token goes in a presigned query string. Both are
/// signed; SDKs differ only in where they print it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenPlacement {
    /// botocore and aws-sdk-go-v2: before `X-Amz-Signature`.
    #[default]
    BeforeSignature,
    /// aws-sdk-rust: after `X-Amz-Signature`.
    AfterSignature,
}

/// What to presign. Only the `host` header is signed, as every SDK does for
/// presigned URLs.
#[derive(Clone, Debug)]
pub struct PresignRequest<'a> {
    pub method: &'a str,
    /// The path as it will be sent (already percent-encoded).
    pub path: &'a str,
    /// The value of the canonical `host` header.
    pub host: &'a str,
    /// Operation parameters, unencoded, in the order they are printed.
    pub params: &'a [(&'a str, &'a str)],
    pub region: &'a str,
    pub service: &'a str,
    pub time: AmzDate,
    pub expires_in: u64,
    pub token_placement: TokenPlacement,
}

fn push_param(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    encode_into(key.as_bytes(), out);
    out.push('=');
    encode_into(value.as_bytes(), out);
}

/// Presigns a request; returns the query string (without `?`) in the order
/// botocore prints it: operation parameters, then the `X-Amz-*` parameters.
pub fn presign(req: &PresignRequest<'_>, credentials: &Credentials) -> String {
    let date = req.time.date_stamp();
    let scope = Scope {
        date,
        region: req.region,
        service: req.service,
    };
    let mut base = String::with_capacity(256);
    for (k, v) in req.params {
        push_param(&mut base, k, v);
    }
    let credential = format!("{}/{}", credentials.access_key_id, scope.to_scope_string());
    push_param(&mut base, "X-Amz-Algorithm", ALGORITHM);
    push_param(&mut base, "X-Amz-Credential", &credential);
    push_param(&mut base, "X-Amz-Date", &req.time.to_string());
    push_param(&mut base, "X-Amz-Expires", &req.expires_in.to_string());
    push_param(&mut base, "X-Amz-SignedHeaders", "host");

    let mut token_param = String::new();
    if let Some(token) = &credentials.session_token {
        push_param(&mut token_param, "X-Amz-Security-Token", token);
    }
    let signed_query = if token_param.is_empty() {
        base.clone()
    } else {
        format!("{base}&{token_param}")
    };
    let host = req.host;
    let canonical = CanonicalRequest::new(
        req.method,
        req.path,
        &signed_query,
        "host",
        |name| (name == "host").then_some(host),
        EMPTY_PAYLOAD_SHA256,
    );
    // Our own query is well formed by construction; a failure here would be
    // a bug, which signs nothing rather than panicking.
    let signature = canonical
        .map(|c| {
            let key = SigningKey::derive(credentials.secret_access_key.as_bytes(), &scope);
            hex::encode(c.sign(&key, req.time, &scope))
        })
        .unwrap_or_default();
    let mut out = match req.token_placement {
        TokenPlacement::BeforeSignature => signed_query,
        TokenPlacement::AfterSignature => base,
    };
    out.push_str("&X-Amz-Signature=");
    out.push_str(&signature);
    if req.token_placement == TokenPlacement::AfterSignature && !token_param.is_empty() {
        out.push('&');
        out.push_str(&token_param);
    }
    out
}

/// The `X-Amz-*` parameters of a presigned query, parsed and checked for
/// shape. Values borrow from the query when no decoding was needed.
/// `Debug` leaves out the raw query, the session token and the signature.
#[derive(Clone)]
pub struct PresignedQuery<'a> {
    pairs: RawPairs<'a>,
    pub access_key_id: Cow<'a, str>,
    pub date: [u8; 8],
    pub region: Cow<'a, str>,
    pub service: Cow<'a, str>,
    pub time: AmzDate,
    pub expires: u64,
    pub signed_headers: Cow<'a, str>,
    pub signature: Signature,
    pub security_token: Option<Cow<'a, str>>,
}

impl std::fmt::Debug for PresignedQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresignedQuery")
            .field("access_key_id", &self.access_key_id)
            .field("scope", &self.scope())
            .field("time", &self.time)
            .field("expires", &self.expires)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &self.signature)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Splits on `/`, `%2F` or `%2f`, the separators of `X-Amz-Credential`.
fn split_credential(raw: &str) -> SmallVec<[&str; 5]> {
    let mut parts = SmallVec::new();
    let bytes = raw.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'/' {
            parts.push(&raw[start..i]);
            i += 1;
            start = i;
        } else if bytes[i] == b'%'
            && bytes.get(i + 1) == Some(&b'2')
            && matches!(bytes.get(i + 2), Some(b'F' | b'f'))
        {
            parts.push(&raw[start..i]);
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&raw[start..]);
    parts
}

/// The parts of `ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request`.
pub(crate) struct CredentialParts<'a> {
    pub access_key_id: Cow<'a, str>,
    pub date: [u8; 8],
    pub region: Cow<'a, str>,
    pub service: Cow<'a, str>,
}

pub(crate) fn parse_credential(raw: &str) -> Result<CredentialParts<'_>, Malformed> {
    let parts = split_credential(raw);
    let [akid, date, region, service, terminal] = parts.as_slice() else {
        return Err(Malformed::Credential("wrong number of parts"));
    };
    let access_key_id = decode_utf8(akid)
        .map_err(|_| Malformed::Credential("access key id is not validly encoded"))?;
    let region =
        decode_utf8(region).map_err(|_| Malformed::Credential("region is not validly encoded"))?;
    let service = decode_utf8(service)
        .map_err(|_| Malformed::Credential("service is not validly encoded"))?;
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(Malformed::Credential("an empty part"));
    }
    if *terminal != "aws4_request" {
        return Err(Malformed::Credential("must end in aws4_request"));
    }
    let date: [u8; 8] = date
        .as_bytes()
        .try_into()
        .ok()
        .filter(|d: &[u8; 8]| d.iter().all(u8::is_ascii_digit))
        .ok_or(Malformed::Credential("date must be YYYYMMDD"))?;
    Ok(CredentialParts {
        access_key_id,
        date,
        region,
        service,
    })
}

/// Parses `X-Amz-Expires`: 1 to 10 digits, non-zero.
fn parse_expires(raw: &str) -> Result<u64, Malformed> {
    if raw.is_empty() || raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::Expires);
    }
    match raw.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Malformed::Expires),
    }
}

fn set_once<'a>(
    slot: &mut Option<&'a str>,
    value: &'a str,
    name: &'static str,
) -> Result<(), Malformed> {
    if slot.replace(value).is_some() {
        return Err(Malformed::Duplicate(name));
    }
    Ok(())
}

impl<'a> PresignedQuery<'a> {
    /// Parses the raw query string (without `?`).
    pub fn parse(query: &'a str) -> Result<Self, SigV4Error> {
        Self::from_pairs(split_query(query)?)
    }

    /// Parses a query already split with [`split_query`].
    pub fn from_pairs(pairs: RawPairs<'a>) -> Result<Self, SigV4Error> {
        let mut algorithm = None;
        let mut credential = None;
        let mut date = None;
        let mut expires = None;
        let mut signed_headers = None;
        let mut signature = None;
        let mut token = None;
        for &(key, value) in &pairs {
            // `X-Amz-Expire%73` would be signed as `X-Amz-Expires` yet missed
            // here: names are taken literally so what is checked is what is
            // signed. No SDK encodes a parameter name.
            if key.contains('%') {
                return Err(Malformed::Query("parameter names must not be percent-encoded").into());
            }
            let (slot, name) = match key {
                "X-Amz-Algorithm" => (&mut algorithm, "X-Amz-Algorithm"),
                "X-Amz-Credential" => (&mut credential, "X-Amz-Credential"),
                "X-Amz-Date" => (&mut date, "X-Amz-Date"),
                "X-Amz-Expires" => (&mut expires, "X-Amz-Expires"),
                "X-Amz-SignedHeaders" => (&mut signed_headers, "X-Amz-SignedHeaders"),
                "X-Amz-Signature" => (&mut signature, "X-Amz-Signature"),
                "X-Amz-Security-Token" => (&mut token, "X-Amz-Security-Token"),
                _ => continue,
            };
            set_once(slot, value, name)?;
        }
        let algorithm = algorithm.ok_or(Malformed::Missing("X-Amz-Algorithm"))?;
        if algorithm != ALGORITHM {
            return Err(SigV4Error::UnsupportedAlgorithm);
        }
        let credential =
            parse_credential(credential.ok_or(Malformed::Missing("X-Amz-Credential"))?)?;
        let time = AmzDate::parse(date.ok_or(Malformed::Missing("X-Amz-Date"))?)
            .map_err(Malformed::Date)?;
        if time.date_stamp() != credential.date {
            return Err(Malformed::CredentialDate.into());
        }
        let expires = parse_expires(expires.ok_or(Malformed::Missing("X-Amz-Expires"))?)?;
        let signed_headers =
            decode_utf8(signed_headers.ok_or(Malformed::Missing("X-Amz-SignedHeaders"))?)
                .map_err(|_| Malformed::Encoding("X-Amz-SignedHeaders"))?;
        let signature =
            Signature::parse_hex(signature.ok_or(Malformed::Missing("X-Amz-Signature"))?)
                .ok_or(Malformed::Signature)?;
        let security_token = token
            .map(decode_utf8)
            .transpose()
            .map_err(|_| Malformed::Encoding("X-Amz-Security-Token"))?;
        Ok(Self {
            pairs,
            access_key_id: credential.access_key_id,
            date: credential.date,
            region: credential.region,
            service: credential.service,
            time,
            expires,
            signed_headers,
            signature,
            security_token,
        })
    }

    /// Every `key=value` pair of the query, raw, in order.
    pub fn pairs(&self) -> &[(&'a str, &'a str)] {
        &self.pairs
    }

    /// The credential scope.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            date: self.date,
            region: &self.region,
            service: &self.service,
        }
    }

    /// When the presigned URL stops being valid.
    pub fn expires_at(&self) -> AmzDate {
        self.time
            .saturating_add(i64::try_from(self.expires).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_splits_on_any_slash_form() {
        let p = parse_credential("akid%2F20240826%2fus-east-1/rds-db%2Faws4_request").unwrap();
        assert_eq!(p.access_key_id, "akid");
        assert_eq!(&p.date, b"20240826");
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.service, "rds-db");
        assert!(parse_credential("akid%2F20240826%2Fus-east-1%2Frds-db").is_err());
        assert!(parse_credential("akid%2F2024082x%2Fr%2Fs%2Faws4_request").is_err());
        assert!(parse_credential("%2F20240826%2Fr%2Fs%2Faws4_request").is_err());
        assert!(parse_credential("a%2F20240826%2Fr%2Fs%2Faws4_requesx").is_err());
    }

    #[test]
    fn expires_must_be_positive_digits() {
        assert_eq!(parse_expires("900"), Ok(900));
        assert!(parse_expires("0").is_err());
        assert!(parse_expires("-1").is_err());
        assert!(parse_expires("+9").is_err());
        assert!(parse_expires("99999999999").is_err());
    }
}
