//! KMS used by another service on its caller's behalf (AWS's
//! `kms:ViaService`): Parameter Store encrypts a SecureString's value and
//! decrypts it for `WithDecryption`. The caller must be allowed the KMS
//! action on the key (identity policies with the key policy), with
//! `kms:ViaService` set to `<service>.<region>.amazonaws.com` and the
//! encryption context's keys; every use is audited as a KMS event of the
//! caller's, invoked by the service.

use latchkey_audit::{ApiEvent, ApiService, Event};
use latchkey_kms::context::EncryptionContext;
use latchkey_kms::key_id::AliasName;
use serde_json::json;
use zeroize::Zeroizing;

use super::{crypto, keys};
use crate::error::ApiError;
use crate::json::JsonCall;

fn via_service(call: &JsonCall, service: &str) -> String {
    format!("{service}.{}.amazonaws.com", call.state.region())
}

/// Records the KMS call a service made for its caller, as CloudTrail
/// does (`invokedBy` is the service), whatever its outcome.
fn record(
    call: &JsonCall,
    service: &str,
    action: &str,
    key_arn: Option<&str>,
    context: &EncryptionContext,
    outcome: Result<(), &ApiError>,
) {
    let encryption: serde_json::Map<String, serde_json::Value> = context
        .iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    let mut parameters = json!({
        "encryptionContext": encryption,
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    });
    if let Some(arn) = key_arn {
        parameters["keyId"] = arn.into();
    }
    call.state.audit().record(Event::from(ApiEvent {
        time: std::time::SystemTime::now(),
        service: ApiService::Kms,
        action: action.to_owned(),
        identity: Some(call.caller.audit_identity()),
        access_key_id: Some(call.caller.access_key_id.clone()),
        source_ip: call.peer.ip(),
        user_agent: Some(format!("{service}.amazonaws.com")),
        request_parameters: Some(parameters.to_string()),
        response_elements: None,
        error: outcome.err().map(|e| {
            (
                e.code.to_owned(),
                e.reason.clone().unwrap_or_else(|| e.message.clone()),
            )
        }),
        possession_proven: false,
        request_id: latchkey_store::random::<16>()
            .map(latchkey_audit::trail::uuid_text)
            .unwrap_or_default(),
        read_only: false,
        resources: key_arn
            .map(|arn| latchkey_audit::Resource {
                arn: arn.to_owned(),
                kind: keys::RESOURCE_TYPE,
            })
            .into_iter()
            .collect(),
    }));
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
) -> Result<Vec<u8>, ApiError> {
    let encryption = EncryptionContext::from_pairs(context.iter().copied());
    let mut key_arn = None;
    let result = (|| {
        let loaded = match AliasName::parse(key_id) {
            Ok(alias) if alias.managed_service().is_some() => keys::managed_key(call, &alias)?,
            _ => keys::resolve(call, key_id)?,
        };
        key_arn = Some(loaded.key.arn.clone());
        let keys_context =
            keys::with_encryption_context(keys::key_context(call, &loaded)?, &encryption)
                .key("kms:ViaService", [via_service(call, service)]);
        keys::authorize(call, "Encrypt", &loaded.key, &keys_context)?;
        crypto::seal(call, &loaded.key, &encryption, plaintext)
    })();
    record(
        call,
        service,
        "Encrypt",
        key_arn.as_deref(),
        &encryption,
        result.as_ref().map(|_| ()),
    );
    result
}

/// Decrypts `blob` for `service`, checking `context`. Authorises
/// `kms:Decrypt` on the key the blob names. A blob altered or given the
/// wrong context is `InvalidCiphertextException`.
pub fn decrypt_via(
    call: &JsonCall,
    service: &str,
    blob: &[u8],
    context: &[(&str, &str)],
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let encryption = EncryptionContext::from_pairs(context.iter().copied());
    let mut key_arn = None;
    let result = (|| {
        let loaded = crypto::blob_key(call, blob)?;
        key_arn = Some(loaded.key.arn.clone());
        let keys_context =
            keys::with_encryption_context(keys::key_context(call, &loaded)?, &encryption)
                .key("kms:ViaService", [via_service(call, service)]);
        keys::authorize(call, "Decrypt", &loaded.key, &keys_context)?;
        crypto::open(call, &loaded.key, &encryption, blob)
    })();
    record(
        call,
        service,
        "Decrypt",
        key_arn.as_deref(),
        &encryption,
        result.as_ref().map(|_| ()),
    );
    result
}
