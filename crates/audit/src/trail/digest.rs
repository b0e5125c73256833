//! Digests: their bodies, the Ed25519 signing key, and signed digest files.

use std::time::SystemTime;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::json::rfc3339;

use super::*;

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
