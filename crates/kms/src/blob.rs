//! The ciphertext blob of a symmetric key. Like AWS's, it names the key
//! that made it, so `Decrypt` needs no key id:
//!
//! ```text
//! 0x01 | key id (16) | key material version (u32, BE) | nonce (12) | AES-256-GCM ciphertext and tag
//! ```
//!
//! The associated data is a domain label, the header (format, key, key
//! material version) and the encryption context, so a blob moved to
//! another key or version, or opened with another context, fails.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::KmsError;
use crate::context::EncryptionContext;
use crate::key_id::KeyUuid;

const FORMAT: u8 = 1;
const HEADER: usize = 1 + 16 + 4;
const NONCE: usize = 12;
const TAG: usize = 16;
const DOMAIN: &[u8] = b"latchkey kms ciphertext v1";

/// The largest plaintext `Encrypt` takes.
pub const MAX_PLAINTEXT: usize = 4096;
/// The largest ciphertext blob a request may carry.
pub const MAX_BLOB: usize = 6144;
/// The smallest well-formed blob (an empty plaintext).
pub const MIN_BLOB: usize = HEADER + NONCE + TAG;

/// What a blob's header says, before the key is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    pub key: KeyUuid,
    pub material: u32,
}

/// Reads a blob's header. Any malformed blob is `InvalidCiphertextException`.
pub fn header(blob: &[u8]) -> Result<BlobHeader, KmsError> {
    if blob.len() < MIN_BLOB || blob.len() > MAX_BLOB || blob[0] != FORMAT {
        return Err(KmsError::InvalidCiphertext);
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&blob[1..17]);
    let material = u32::from_be_bytes([blob[17], blob[18], blob[19], blob[20]]);
    Ok(BlobHeader {
        key: KeyUuid::from_bytes(id),
        material,
    })
}

fn aad(header: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DOMAIN.len() + HEADER + 64);
    aad.extend_from_slice(DOMAIN);
    aad.extend_from_slice(header);
    context.append_aad(&mut aad);
    aad
}

fn cipher(material: &[u8]) -> Result<Aes256Gcm, KmsError> {
    Aes256Gcm::new_from_slice(material).map_err(|_| KmsError::Internal("key material size"))
}

/// Encrypts `plaintext` with key material `material` (32 bytes), version
/// `version` of key `key`.
pub fn seal(
    key: &KeyUuid,
    version: u32,
    material: &[u8],
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, KmsError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(KmsError::Validation(format!(
            "Plaintext must be at most {MAX_PLAINTEXT} bytes."
        )));
    }
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|_| KmsError::Internal("no randomness"))?;
    let mut out = Vec::with_capacity(MIN_BLOB + plaintext.len());
    out.push(FORMAT);
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    let aad = aad(&out, context);
    let sealed = cipher(material)?
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| KmsError::Internal("encryption failed"))?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts a blob whose header named the key material `material`. A
/// forged or altered blob, or the wrong context, is
/// `InvalidCiphertextException`.
pub fn open(
    blob: &[u8],
    material: &[u8],
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    header(blob)?;
    let aad = aad(&blob[..HEADER], context);
    cipher(material)?
        .decrypt(
            Nonce::from_slice(&blob[HEADER..HEADER + NONCE]),
            Payload {
                msg: &blob[HEADER + NONCE..],
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| KmsError::InvalidCiphertext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: serde_json::Value) -> EncryptionContext {
        EncryptionContext::from_json(Some(&v)).expect("context")
    }

    #[test]
    fn round_trip_and_every_alteration_fails() {
        let key = KeyUuid::random().expect("id");
        let material = [7u8; 32];
        let c = ctx(json!({"tenant": "a"}));
        let blob = seal(&key, 3, &material, &c, b"hello").expect("seal");
        assert_eq!(
            header(&blob),
            Ok(BlobHeader {
                key: key.clone(),
                material: 3
            })
        );
        assert_eq!(&open(&blob, &material, &c).expect("open")[..], b"hello");
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 1;
            assert!(open(&bad, &material, &c).is_err(), "byte {i}");
        }
        assert_eq!(
            open(&blob, &material, &ctx(json!({"tenant": "b"}))),
            Err(KmsError::InvalidCiphertext)
        );
        assert_eq!(
            open(&blob, &material, &EncryptionContext::default()),
            Err(KmsError::InvalidCiphertext)
        );
        assert_eq!(
            open(&blob, &[8u8; 32], &c),
            Err(KmsError::InvalidCiphertext)
        );
        assert_eq!(
            header(&blob[..MIN_BLOB - 1]),
            Err(KmsError::InvalidCiphertext)
        );
        assert!(open(&blob[..blob.len() - 1], &material, &c).is_err());
    }

    #[test]
    fn limits() {
        let key = KeyUuid::random().expect("id");
        assert!(seal(&key, 1, &[1; 32], &EncryptionContext::default(), &[0; 4097]).is_err());
        let blob = seal(&key, 1, &[1; 32], &EncryptionContext::default(), &[0; 4096]).expect("max");
        assert!(blob.len() <= MAX_BLOB);
        let empty = seal(&key, 1, &[1; 32], &EncryptionContext::default(), b"").expect("empty");
        assert_eq!(empty.len(), MIN_BLOB);
    }

    proptest::proptest! {
        #[test]
        fn header_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = header(&bytes);
            let _ = open(&bytes, &[0u8; 32], &EncryptionContext::default());
        }
    }
}
