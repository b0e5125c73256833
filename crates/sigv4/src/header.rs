//! `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`

use std::borrow::Cow;

use crate::canonical::{ALGORITHM, CanonicalRequest};
use crate::error::{Malformed, SigV4Error};
use crate::key::{Scope, SigningKey};
use crate::presign::parse_credential;
use crate::time::AmzDate;
use crate::{Credentials, Signature};

/// A parsed `Authorization` header.
#[derive(Clone, Debug)]
pub struct AuthorizationHeader<'a> {
    pub access_key_id: Cow<'a, str>,
    pub date: [u8; 8],
    pub region: Cow<'a, str>,
    pub service: Cow<'a, str>,
    pub signed_headers: &'a str,
    pub signature: Signature,
}

impl<'a> AuthorizationHeader<'a> {
    /// Parses the header value. Components may come in any order, separated
    /// by commas with optional spaces, as AWS accepts them.
    pub fn parse(value: &'a str) -> Result<Self, SigV4Error> {
        let value = value.trim();
        let (algorithm, rest) = value.split_once(' ').ok_or(Malformed::AuthorizationHeader(
            "expected ALGORITHM Credential=...",
        ))?;
        if algorithm != ALGORITHM {
            return Err(SigV4Error::UnsupportedAlgorithm);
        }
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, val) = part
                .split_once('=')
                .ok_or(Malformed::AuthorizationHeader("a component without '='"))?;
            let (slot, name) = match key {
                "Credential" => (&mut credential, "Credential"),
                "SignedHeaders" => (&mut signed, "SignedHeaders"),
                "Signature" => (&mut signature, "Signature"),
                _ => {
                    return Err(Malformed::AuthorizationHeader("an unknown component").into());
                }
            };
            if slot.replace(val).is_some() {
                return Err(Malformed::Duplicate(name).into());
            }
        }
        let credential = parse_credential(credential.ok_or(Malformed::Missing("Credential"))?)?;
        let signed_headers = signed.ok_or(Malformed::Missing("SignedHeaders"))?;
        let signature = Signature::parse_hex(signature.ok_or(Malformed::Missing("Signature"))?)
            .ok_or(Malformed::Signature)?;
        Ok(Self {
            access_key_id: credential.access_key_id,
            date: credential.date,
            region: credential.region,
            service: credential.service,
            signed_headers,
            signature,
        })
    }

    /// The first of `present` (a request's header names) that is an
    /// `x-amz-*` header the signature does not cover, if any. AWS requires
    /// every such header to be signed; one that is not could be added or
    /// changed by anyone who sees the request (`x-amz-target` would turn
    /// it into another operation). Names compare without case.
    pub fn unsigned_amz_header<'n>(
        &self,
        present: impl IntoIterator<Item = &'n str>,
    ) -> Option<&'n str> {
        present.into_iter().find(|name| {
            name.get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
                && !self
                    .signed_headers
                    .split(';')
                    .any(|signed| signed.eq_ignore_ascii_case(name))
        })
    }

    /// The credential scope.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            date: self.date,
            region: &self.region,
            service: &self.service,
        }
    }
}

/// A request to sign with an `Authorization` header.
#[derive(Clone, Debug)]
pub struct SignRequest<'a> {
    pub method: &'a str,
    /// Path as sent (percent-encoded).
    pub path: &'a str,
    /// Raw query string without `?`.
    pub query: &'a str,
    /// Headers to sign, names in any case. Must include `host`; add
    /// `x-amz-date` (and `x-amz-security-token` for temporary credentials)
    /// with the same values the request will carry.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body.
    pub payload_hash: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub time: AmzDate,
}

/// Signs a request; returns the `Authorization` header value.
pub fn sign_request(
    req: &SignRequest<'_>,
    credentials: &Credentials,
) -> Result<String, SigV4Error> {
    let mut names: Vec<String> = req
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let signed = names.join(";");
    let lookup = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let canonical = CanonicalRequest::new(
        req.method,
        req.path,
        req.query,
        &signed,
        lookup,
        req.payload_hash,
    )?;
    let scope = Scope {
        date: req.time.date_stamp(),
        region: req.region,
        service: req.service,
    };
    let key = SigningKey::derive(credentials.secret_access_key.as_bytes(), &scope);
    let signature = canonical.sign(&key, req.time, &scope);
    Ok(format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={signed}, Signature={}",
        credentials.access_key_id,
        scope.to_scope_string(),
        hex::encode(signature)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_amz_header_must_be_signed() {
        let value = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let auth = AuthorizationHeader::parse(value).expect("a valid header");
        let signed = ["host", "content-type", "x-amz-date", "X-Amz-Target"];
        assert_eq!(auth.unsigned_amz_header(signed), None);
        // Headers that are not x-amz-* need not be signed.
        assert_eq!(
            auth.unsigned_amz_header(["user-agent", "x-amzn-trace-id", "amz-sdk-request"]),
            None
        );
        assert_eq!(
            auth.unsigned_amz_header(["host", "x-amz-security-token"]),
            Some("x-amz-security-token")
        );
        assert_eq!(
            auth.unsigned_amz_header(["X-Amz-Content-Sha256"]),
            Some("X-Amz-Content-Sha256")
        );
        let unsigned_target = value.replace("x-amz-date;x-amz-target", "x-amz-date");
        let without_target = AuthorizationHeader::parse(&unsigned_target).expect("a valid header");
        assert_eq!(
            without_target.unsigned_amz_header(signed),
            Some("X-Amz-Target")
        );
    }
}
