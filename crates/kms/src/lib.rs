//! AWS KMS's rules without I/O, for Latchkey's KMS endpoint.
//!
//! - [`key_id`]: what a request may call a key (id, key ARN, `alias/NAME`,
//!   alias ARN) and the alias names AWS allows.
//! - [`key`]: a key's metadata as stored: usage, spec, state (enabled,
//!   disabled, pending deletion), its key material versions and rotation.
//! - [`blob`]: the ciphertext blob. It names its key and key material
//!   version, so `Decrypt` needs no key id, and binds the encryption
//!   context ([`context`]) as associated data.
//! - [`mac`]: HMAC keys' `GenerateMac`/`VerifyMac`.
//! - [`policy`]: the key policies AWS gives new keys.
//!
//! Key material is handled here only as bytes the caller unsealed; the
//! store seals it under the master key.

pub mod blob;
pub mod context;
pub mod error;
pub mod key;
pub mod key_id;
pub mod mac;
pub mod policy;

pub use error::KmsError;

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Result<zeroize::Zeroizing<Vec<u8>>, KmsError> {
    let mut out = zeroize::Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut out).map_err(|_| KmsError::Internal("no randomness"))?;
    Ok(out)
}
