//! Envelope encryption for secrets at rest.
//!
//! Every secret gets its own random AES-256-GCM data key; the data key is
//! wrapped by the master key. Rotating the master key re-wraps data keys
//! only, so it is quick and needs no downtime.
//!
//! Blob: `master_id(4) | wrap_nonce(12) | wrapped_key(48) | nonce(12) | ciphertext+tag`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

const WRAPPED: usize = 32 + 16;
const HEADER: usize = 4 + 12 + WRAPPED + 12;

/// Why a sealed secret could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("sealed secret is malformed")]
    Malformed,
    #[error("sealed with master key {0}, which this vault does not hold")]
    UnknownMasterKey(u32),
    #[error("sealed secret failed authentication")]
    Forged,
    #[error("the system random source failed")]
    Random,
}

/// Fresh random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| VaultError::Random)?;
    Ok(out)
}

struct MasterKey {
    id: u32,
    cipher: Aes256Gcm,
    fingerprint: String,
}

impl MasterKey {
    fn new(id: u32, key: &[u8; 32]) -> Self {
        Self {
            id,
            cipher: Aes256Gcm::new(key.into()),
            fingerprint: fingerprint(id, key),
        }
    }
}

/// What tells two nodes' copies of master key `id` apart without
/// revealing it: 16 hex digits of a SHA-256 over a label, the id and the key.
pub fn fingerprint(id: u32, key: &[u8; 32]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"latchkey master key fingerprint\0")
        .chain_update(id.to_be_bytes())
        .chain_update(key)
        .finalize();
    hex::encode(&digest[..8])
}

/// Master keys: the newest seals, all known ones open.
pub struct Vault {
    keys: Vec<MasterKey>,
}

impl Vault {
    pub fn new(id: u32, key: &[u8; 32]) -> Self {
        Self {
            keys: vec![MasterKey::new(id, key)],
        }
    }

    /// Adds a newer master key; it becomes the sealing key.
    pub fn add(&mut self, id: u32, key: &[u8; 32]) {
        self.keys.retain(|k| k.id != id);
        self.keys.push(MasterKey::new(id, key));
    }

    /// Seals with key `id` from now on (every key still opens): the key
    /// the nodes sharing a store agreed on, whatever this node's newest.
    pub fn seal_with(&mut self, id: u32) -> Result<(), VaultError> {
        let at = self
            .keys
            .iter()
            .position(|k| k.id == id)
            .ok_or(VaultError::UnknownMasterKey(id))?;
        let key = self.keys.remove(at);
        self.keys.push(key);
        Ok(())
    }

    /// The keys held, by id, with their fingerprints (the sealing key last).
    pub fn fingerprints(&self) -> Vec<(u32, String)> {
        self.keys
            .iter()
            .map(|k| (k.id, k.fingerprint.clone()))
            .collect()
    }

    pub fn current_id(&self) -> u32 {
        self.keys.last().map_or(0, |k| k.id)
    }

    fn current(&self) -> Result<&MasterKey, VaultError> {
        self.keys.last().ok_or(VaultError::Malformed)
    }

    fn key(&self, id: u32) -> Result<&MasterKey, VaultError> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(VaultError::UnknownMasterKey(id))
    }

    fn wrap(&self, data_key: &[u8; 32], out: &mut Vec<u8>) -> Result<(), VaultError> {
        let master = self.current()?;
        let nonce: [u8; 12] = random()?;
        let wrapped = master
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: data_key,
                    aad: &master.id.to_be_bytes(),
                },
            )
            .map_err(|_| VaultError::Malformed)?;
        out.extend_from_slice(&master.id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&wrapped);
        Ok(())
    }

    fn unwrap_key(&self, blob: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        if blob.len() < HEADER + 16 {
            return Err(VaultError::Malformed);
        }
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        let master = self.key(id)?;
        let key = Zeroizing::new(
            master
                .cipher
                .decrypt(
                    Nonce::from_slice(&blob[4..16]),
                    Payload {
                        msg: &blob[16..16 + WRAPPED],
                        aad: &blob[0..4],
                    },
                )
                .map_err(|_| VaultError::Forged)?,
        );
        let mut out = Zeroizing::new([0u8; 32]);
        if key.len() != 32 {
            return Err(VaultError::Malformed);
        }
        out.copy_from_slice(&key);
        Ok(out)
    }

    /// Seals a secret; `context` (e.g. the row it belongs to) is bound as
    /// associated data so a sealed value cannot be moved to another row.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, VaultError> {
        let data_key = Zeroizing::new(random::<32>()?);
        let mut out = Vec::with_capacity(HEADER + plaintext.len() + 16);
        self.wrap(&data_key, &mut out)?;
        let nonce: [u8; 12] = random()?;
        let cipher = Aes256Gcm::new(data_key.as_ref().into());
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| VaultError::Malformed)?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a sealed secret.
    pub fn open(&self, blob: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let data_key = self.unwrap_key(blob)?;
        let cipher = Aes256Gcm::new(data_key.as_ref().into());
        cipher
            .decrypt(
                Nonce::from_slice(&blob[HEADER - 12..HEADER]),
                Payload {
                    msg: &blob[HEADER..],
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Forged)
    }

    /// Re-wraps a blob's data key with the current master key; the payload
    /// is untouched.
    pub fn rewrap(&self, blob: &[u8]) -> Result<Vec<u8>, VaultError> {
        let data_key = self.unwrap_key(blob)?;
        let mut out = Vec::with_capacity(blob.len());
        self.wrap(&data_key, &mut out)?;
        out.extend_from_slice(&blob[HEADER - 12..]);
        Ok(out)
    }

    /// The master key id a blob is wrapped with.
    pub fn wrapped_with(blob: &[u8]) -> Option<u32> {
        (blob.len() >= 4).then(|| u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate() {
        let mut v = Vault::new(1, &[1; 32]);
        let blob = v.seal(b"secret", b"user/alice").unwrap();
        assert_eq!(&*v.open(&blob, b"user/alice").unwrap(), b"secret");
        assert_eq!(v.open(&blob, b"user/bob"), Err(VaultError::Forged));
        v.add(2, &[2; 32]);
        let rewrapped = v.rewrap(&blob).unwrap();
        assert_eq!(Vault::wrapped_with(&rewrapped), Some(2));
        let only_new = Vault::new(2, &[2; 32]);
        assert_eq!(
            &*only_new.open(&rewrapped, b"user/alice").unwrap(),
            b"secret"
        );
        assert_eq!(
            only_new.open(&blob, b"user/alice"),
            Err(VaultError::UnknownMasterKey(1))
        );
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(v.open(&tampered, b"user/alice"), Err(VaultError::Forged));
        assert_eq!(v.open(b"short", b""), Err(VaultError::Malformed));
    }

    #[test]
    fn a_designated_key_seals_whatever_is_newest() {
        let (one, two) = ([1u8; 32], [2u8; 32]);
        let mut v = Vault::new(1, &one);
        v.add(2, &two);
        assert_eq!(v.current_id(), 2);
        v.seal_with(1).unwrap();
        assert_eq!(v.current_id(), 1);
        let blob = v.seal(b"s", b"c").unwrap();
        // Key 1 sealed it: a vault with key 1 alone opens it.
        assert_eq!(
            Vault::new(1, &one).open(&blob, b"c").unwrap().as_slice(),
            b"s"
        );
        assert_eq!(v.seal_with(3), Err(VaultError::UnknownMasterKey(3)));
        // Fingerprints tell keys and ids apart, and stay put.
        let prints = v.fingerprints();
        assert_eq!(prints.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(prints[1].1, fingerprint(1, &one));
        assert_ne!(fingerprint(1, &one), fingerprint(2, &one));
        assert_ne!(fingerprint(1, &one), fingerprint(1, &two));
        assert_eq!(prints[1].1.len(), 16);
    }
}
