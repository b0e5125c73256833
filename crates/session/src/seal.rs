//! Sealing claims into a session token with a rotating cluster key, and
//! deriving the temporary access key id and secret from it.
//!
//! Token: `base64url(version | key_id | nonce | AES-256-GCM(claims))`, with
//! version and key id as associated data. base64url keeps the token free of
//! characters that would be percent-encoded inside a database auth token.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::claims::{DecodeError, SessionClaims};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + 12;

/// Longest session token accepted, encoded (bounds work on garbage).
pub const MAX_TOKEN_LEN: usize = 8192;

/// Why a session token was refused. AWS answers all of these with
/// `InvalidClientTokenId`; the variant is for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("session token is malformed: {0}")]
    Malformed(&'static str),
    #[error("session token was sealed with unknown key {0}")]
    UnknownKey(u32),
    #[error("session token failed authentication (forged or altered)")]
    Forged,
    #[error("session claims: {0}")]
    Claims(#[from] DecodeError),
}

/// One cluster key. Its two working keys (sealing and secret derivation)
/// come from HKDF so one secret never serves two purposes.
pub struct ClusterKey {
    id: u32,
    seal: Aes256Gcm,
    secret_key: Zeroizing<[u8; 32]>,
}

impl ClusterKey {
    pub fn new(id: u32, material: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, material);
        let mut seal_key = Zeroizing::new([0u8; 32]);
        let mut secret_key = Zeroizing::new([0u8; 32]);
        // Output lengths of 32 bytes are always valid for HKDF-SHA256.
        let _ = hk.expand(b"latchkey/session-seal/v1", seal_key.as_mut());
        let _ = hk.expand(b"latchkey/session-secret/v1", secret_key.as_mut());
        let seal = Aes256Gcm::new_from_slice(seal_key.as_ref()).unwrap_or_else(|_| unreachable!());
        Self {
            id,
            seal,
            secret_key,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }
}

/// Temporary credentials as handed to a client.
#[derive(Clone)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: String,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The cluster's keys: one current key seals, any known key opens.
pub struct KeyRing {
    keys: Vec<ClusterKey>,
    current: usize,
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (access key ids, MFA seeds).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// `ASIA` + 16 base32 characters, derived from the token id alone so that
/// a server can match the key id to the token before opening it.
pub fn access_key_id_for(token_id: &[u8; 16]) -> String {
    let digest = Sha256::new()
        .chain_update(b"latchkey/access-key-id/v1")
        .chain_update(token_id)
        .finalize();
    format!("ASIA{}", base32(&digest[..10]))
}

impl KeyRing {
    /// A ring whose current (sealing) key is `current`.
    pub fn new(current: ClusterKey) -> Self {
        Self {
            keys: vec![current],
            current: 0,
        }
    }

    /// Adds a key that can open tokens; `make_current` also seals with it.
    pub fn add(&mut self, key: ClusterKey, make_current: bool) {
        self.keys.retain(|k| k.id != key.id);
        self.keys.push(key);
        if make_current {
            self.current = self.keys.len() - 1;
        } else if self.current >= self.keys.len() {
            self.current = 0;
        }
    }

    /// Forgets a retired key: tokens sealed with it stop working.
    pub fn remove(&mut self, id: u32) {
        let current_id = self.keys[self.current].id;
        if id == current_id {
            return;
        }
        self.keys.retain(|k| k.id != id);
        self.current = self
            .keys
            .iter()
            .position(|k| k.id == current_id)
            .unwrap_or(0);
    }

    pub fn current_id(&self) -> u32 {
        self.keys[self.current].id
    }

    fn key(&self, id: u32) -> Option<&ClusterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Seals `claims`; `nonce` must be fresh random bytes for every call.
    pub fn seal(
        &self,
        claims: &SessionClaims,
        nonce: [u8; 12],
    ) -> Result<TemporaryCredentials, SealError> {
        let key = &self.keys[self.current];
        let mut header = [0u8; HEADER];
        header[0] = VERSION;
        header[1..5].copy_from_slice(&key.id.to_be_bytes());
        header[5..].copy_from_slice(&nonce);
        let plaintext = Zeroizing::new(claims.encode()?);
        let sealed = key
            .seal
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &header[..5],
                },
            )
            .map_err(|_| SealError::Malformed("claims too large to seal"))?;
        let mut blob = Vec::with_capacity(HEADER + sealed.len());
        blob.extend_from_slice(&header);
        blob.extend_from_slice(&sealed);
        Ok(TemporaryCredentials {
            access_key_id: access_key_id_for(&claims.token_id),
            secret_access_key: derive_secret(key, &claims.token_id),
            session_token: URL_SAFE_NO_PAD.encode(blob),
        })
    }

    /// Opens a token: authenticates and decodes it. Lifetime and revocation
    /// are the caller's to check against its clock and revocation list.
    pub fn open(&self, token: &str) -> Result<OpenedSession, SealError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SealError::Malformed("too long"));
        }
        let blob = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| SealError::Malformed("not base64url"))?;
        if blob.len() < HEADER + 16 {
            return Err(SealError::Malformed("too short"));
        }
        if blob[0] != VERSION {
            return Err(SealError::Malformed("unknown version"));
        }
        let id = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
        let key = self.key(id).ok_or(SealError::UnknownKey(id))?;
        let plaintext = Zeroizing::new(
            key.seal
                .decrypt(
                    Nonce::from_slice(&blob[5..HEADER]),
                    Payload {
                        msg: &blob[HEADER..],
                        aad: &blob[..5],
                    },
                )
                .map_err(|_| SealError::Forged)?,
        );
        let claims = SessionClaims::decode(&plaintext)?;
        Ok(OpenedSession {
            access_key_id: access_key_id_for(&claims.token_id),
            secret_access_key: derive_secret(key, &claims.token_id),
            claims,
        })
    }
}

/// An authenticated session: its claims and the credentials they imply.
pub struct OpenedSession {
    pub claims: SessionClaims,
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
}

/// The temporary secret: 40 base64 characters, like an AWS secret key.
fn derive_secret(key: &ClusterKey, token_id: &[u8; 16]) -> Zeroizing<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.secret_key.as_ref())
        .unwrap_or_else(|_| unreachable!());
    mac.update(token_id);
    let digest: Zeroizing<[u8; 32]> = Zeroizing::new(mac.finalize().into_bytes().into());
    Zeroizing::new(STANDARD.encode(&digest[..30]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SessionClaims {
        SessionClaims {
            token_id: [7; 16],
            account: "123456789012".into(),
            principal_arn: "arn:aws:iam::123456789012:user/alice".into(),
            principal_id: "AIDAEXAMPLEUSERID0001".into(),
            role_arn: "arn:aws:iam::123456789012:role/db-reader".into(),
            role_id: "AROAEXAMPLEROLEID0001".into(),
            session_name: "alice-laptop".into(),
            issued: 1_700_000_000,
            expires: 1_700_003_600,
            mfa_authenticated: true,
            mfa_time: Some(1_700_000_000),
            source_identity: "alice".into(),
            source_ip: "203.0.113.7".into(),
            tags: vec![("team".into(), "data".into())],
            session_policy: r#"{"Version":"2012-10-17"}"#.into(),
            policy_arns: vec!["arn:aws:iam::123456789012:policy/ro".into()],
            chain_depth: 1,
            transitive_tag_keys: vec!["team".into()],
            lineage: vec![crate::Ancestor {
                arn: "arn:aws:iam::123456789012:user/alice".into(),
                id: "AIDAEXAMPLEUSERID0001".into(),
                issued: 1_699_999_000,
            }],
        }
    }

    fn ring() -> KeyRing {
        KeyRing::new(ClusterKey::new(1, &[42; 32]))
    }

    #[test]
    fn seal_open_round_trip() {
        let ring = ring();
        let creds = ring.seal(&claims(), [1; 12]).unwrap();
        assert!(creds.access_key_id.starts_with("ASIA") && creds.access_key_id.len() == 20);
        assert_eq!(creds.secret_access_key.len(), 40);
        assert!(
            creds
                .session_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let opened = ring.open(&creds.session_token).unwrap();
        assert_eq!(opened.claims, claims());
        assert_eq!(opened.access_key_id, creds.access_key_id);
        assert_eq!(*opened.secret_access_key, *creds.secret_access_key);
    }

    #[test]
    fn any_node_with_the_key_opens_and_rotation_keeps_old_tokens() {
        let old = ring().seal(&claims(), [1; 12]).unwrap();
        let mut node = KeyRing::new(ClusterKey::new(1, &[42; 32]));
        node.add(ClusterKey::new(2, &[43; 32]), true);
        assert_eq!(node.current_id(), 2);
        assert!(node.open(&old.session_token).is_ok());
        let new = node.seal(&claims(), [2; 12]).unwrap();
        node.remove(1);
        assert!(matches!(
            node.open(&old.session_token),
            Err(SealError::UnknownKey(1))
        ));
        assert!(node.open(&new.session_token).is_ok());
        assert!(matches!(
            ring().open(&new.session_token),
            Err(SealError::UnknownKey(2))
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let ring = ring();
        let token = ring.seal(&claims(), [1; 12]).unwrap().session_token;
        let bytes = token.as_bytes();
        for i in 0..bytes.len() {
            let mut t = bytes.to_vec();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert!(ring.open(&t).is_err(), "byte {i}");
        }
        let wrong_key = KeyRing::new(ClusterKey::new(1, &[0; 32]));
        assert_eq!(wrong_key.open(&token).err(), Some(SealError::Forged));
        assert!(matches!(
            ring.open("not a token!"),
            Err(SealError::Malformed(_))
        ));
        assert!(matches!(ring.open(""), Err(SealError::Malformed(_))));
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    proptest::proptest! {
        #[test]
        fn open_never_panics(s in "\\PC{0,400}") {
            let _ = ring().open(&s);
        }

        #[test]
        fn claims_decode_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = SessionClaims::decode(&b);
        }
    }
}
