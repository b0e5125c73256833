//! KMS used by another service on its caller's behalf (AWS's
//! `kms:ViaService`): Parameter Store encrypts a SecureString's value and
//! decrypts it for `WithDecryption`. The caller must be allowed the KMS
//! action on the key (identity policies with the key policy), with
//! `kms:ViaService` set to `<service>.<region>.amazonaws.com` and the
//! encryption context's keys; every use is audited as a KMS event.

use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::json::JsonCall;

/// A value encrypted for a service.
pub struct Sealed {
    /// The ciphertext blob (it names its key and key material version).
    pub blob: Vec<u8>,
    /// The key's ARN.
    pub key_arn: String,
}

/// A value decrypted for a service.
pub struct Opened {
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The ARN of the key that encrypted it.
    pub key_arn: String,
}

/// Encrypts `plaintext` under `key_id` (a key id, key ARN, `alias/NAME` or
/// alias ARN; `alias/aws/<service>` is created on first use, as AWS
/// creates its managed keys) for `service` (`"ssm"`), binding `context`.
/// Authorises `kms:Encrypt` for the caller. Errors carry KMS's codes
/// (`NotFoundException`, `DisabledException`, `KMSInvalidStateException`,
/// `InvalidKeyUsageException`, `AccessDeniedException`).
pub fn encrypt_via(
    call: &JsonCall,
    service: &str,
    key_id: &str,
    plaintext: &[u8],
    context: &[(&str, &str)],
) -> Result<Sealed, ApiError> {
    let _ = (call, service, key_id, plaintext, context);
    Err(ApiError::new(
        400,
        "NotFoundException",
        "KMS is not available yet.",
    ))
}

/// Decrypts `blob` for `service`, checking `context`. Authorises
/// `kms:Decrypt` on the key the blob names. A blob altered or given the
/// wrong context is `InvalidCiphertextException`.
pub fn decrypt_via(
    call: &JsonCall,
    service: &str,
    blob: &[u8],
    context: &[(&str, &str)],
) -> Result<Opened, ApiError> {
    let _ = (call, service, blob, context);
    Err(ApiError::new(
        400,
        "InvalidCiphertextException",
        "KMS is not available yet.",
    ))
}
