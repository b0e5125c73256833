//! The cryptographic operations: Encrypt, Decrypt, ReEncrypt, data keys,
//! random bytes and MACs. Plaintext and key material never reach the
//! audit record or a log; every call is audited with the key it used.

use base64::Engine as _;
use latchkey_identity::ActionContext;
use latchkey_kms::KmsError;
use latchkey_kms::blob;
use latchkey_kms::context::EncryptionContext;
use latchkey_kms::key::{Key, KeyUsage};
use latchkey_kms::mac::{self, MacAlgorithm};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::keys::{self, Loaded, validation};
use crate::error::ApiError;
use crate::json::{Answer, JsonCall, blob as blob_field, bool_field, int_field, string};

const ALGORITHM: &str = "SYMMETRIC_DEFAULT";

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn answer(key: &Key, output: Value) -> Answer {
    Answer {
        output,
        resources: vec![keys::resource(key)],
        response_elements: None,
    }
}

/// `EncryptionAlgorithm`, when given, must be the symmetric one.
fn check_algorithm(call: &JsonCall, member: &str) -> Result<(), ApiError> {
    match string(call.input, member)? {
        None | Some(ALGORITHM) => Ok(()),
        Some("RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256" | "SM2PKE") => {
            Err(KmsError::InvalidKeyUsage(
                "The encryption algorithm is not valid for a symmetric key.".into(),
            )
            .into())
        }
        Some(_) => Err(validation(format!("{member} is not valid."))),
    }
}

/// `DryRun`: the call is authorised and checked, then answered with
/// `DryRunOperationException` instead of being done.
fn dry_run(call: &JsonCall) -> Result<(), ApiError> {
    if bool_field(call.input, "DryRun")? == Some(true) {
        return Err(ApiError::new(
            412,
            "DryRunOperationException",
            "The request would have succeeded, but the DryRun option is set.",
        ));
    }
    Ok(())
}

fn context_member(call: &JsonCall, member: &str) -> Result<EncryptionContext, ApiError> {
    Ok(EncryptionContext::from_json(call.input.get(member))?)
}

/// Loads the key `member` names and authorises `action` on it for a
/// cryptographic operation with `encryption` bound.
fn crypto_key(
    call: &JsonCall,
    member: &str,
    action: &str,
    encryption: &EncryptionContext,
    extra: impl FnOnce(ActionContext) -> ActionContext,
) -> Result<Loaded, ApiError> {
    let loaded = keys::resolve_member(call, member)?;
    let context = extra(keys::with_encryption_context(
        keys::key_context(call, &loaded)?,
        encryption,
    ));
    keys::authorize(call, action, &loaded.key, &context)?;
    Ok(loaded)
}

/// Encrypts with the key's current material.
pub fn seal(
    call: &JsonCall,
    key: &Key,
    encryption: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, ApiError> {
    key.check_usage(KeyUsage::EncryptDecrypt, call.operation)?;
    let version = key.current_material();
    let material = keys::material(call, key, version)?;
    let id = latchkey_kms::key_id::KeyUuid::parse(&key.id)
        .ok_or_else(|| ApiError::internal().because(format!("{}: malformed id", key.arn)))?;
    Ok(blob::seal(&id, version, &material, encryption, plaintext)?)
}

/// The key a ciphertext blob names, or `InvalidCiphertextException`.
pub fn blob_key(call: &JsonCall, ciphertext: &[u8]) -> Result<Loaded, ApiError> {
    let header = blob::header(ciphertext)?;
    keys::by_id(call, &header.key)?.ok_or_else(|| {
        ApiError::from(KmsError::InvalidCiphertext).because(format!(
            "the ciphertext names key {}, which does not exist",
            header.key
        ))
    })
}

/// Decrypts a blob with the key it names (already authorised).
pub fn open(
    call: &JsonCall,
    key: &Key,
    encryption: &EncryptionContext,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    key.check_usage(KeyUsage::EncryptDecrypt, "Decrypt")?;
    let header = blob::header(ciphertext)?;
    if !key.has_material(header.material) {
        return Err(ApiError::from(KmsError::InvalidCiphertext).because(format!(
            "{}: no key material version {}",
            key.arn, header.material
        )));
    }
    let material = keys::material(call, key, header.material)?;
    blob::open(ciphertext, &material, encryption).map_err(|e| {
        ApiError::from(e).because("the ciphertext or its encryption context does not authenticate")
    })
}

fn required_blob(call: &JsonCall, member: &str) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    blob_field(call.input, member)?.ok_or_else(|| validation(format!("{member} is required.")))
}

pub fn encrypt(call: &JsonCall) -> Result<Answer, ApiError> {
    let plaintext = required_blob(call, "Plaintext")?;
    if plaintext.is_empty() || plaintext.len() > blob::MAX_PLAINTEXT {
        return Err(validation(format!(
            "Plaintext must be between 1 and {} bytes.",
            blob::MAX_PLAINTEXT
        )));
    }
    check_algorithm(call, "EncryptionAlgorithm")?;
    let encryption = context_member(call, "EncryptionContext")?;
    let loaded = crypto_key(call, "KeyId", "Encrypt", &encryption, |c| c)?;
    loaded
        .key
        .check_usage(KeyUsage::EncryptDecrypt, "Encrypt")?;
    dry_run(call)?;
    let ciphertext = seal(call, &loaded.key, &encryption, &plaintext)?;
    let output = json!({
        "CiphertextBlob": b64(&ciphertext),
        "KeyId": loaded.key.arn,
        "EncryptionAlgorithm": ALGORITHM,
    });
    Ok(answer(&loaded.key, output))
}

/// `KeyId`, when a request gives one with a ciphertext, must name the key
/// the ciphertext names.
fn check_named_key(call: &JsonCall, member: &str, key: &Key) -> Result<(), ApiError> {
    if let Some(named) = string(call.input, member)? {
        let named = keys::resolve(call, named)?;
        if named.key.id != key.id {
            return Err(KmsError::IncorrectKey.into());
        }
    }
    Ok(())
}

pub fn decrypt(call: &JsonCall) -> Result<Answer, ApiError> {
    let ciphertext = required_blob(call, "CiphertextBlob")?;
    check_algorithm(call, "EncryptionAlgorithm")?;
    let encryption = context_member(call, "EncryptionContext")?;
    let loaded = blob_key(call, &ciphertext)?;
    check_named_key(call, "KeyId", &loaded.key)?;
    let context = keys::with_encryption_context(keys::key_context(call, &loaded)?, &encryption);
    keys::authorize(call, "Decrypt", &loaded.key, &context)?;
    dry_run(call)?;
    let plaintext = open(call, &loaded.key, &encryption, &ciphertext)?;
    let output = json!({
        "KeyId": loaded.key.arn,
        "Plaintext": b64(&plaintext),
        "EncryptionAlgorithm": ALGORITHM,
    });
    Ok(answer(&loaded.key, output))
}

pub fn re_encrypt(call: &JsonCall) -> Result<Answer, ApiError> {
    let ciphertext = required_blob(call, "CiphertextBlob")?;
    check_algorithm(call, "SourceEncryptionAlgorithm")?;
    check_algorithm(call, "DestinationEncryptionAlgorithm")?;
    let source_context = context_member(call, "SourceEncryptionContext")?;
    let destination_context = context_member(call, "DestinationEncryptionContext")?;
    let source = blob_key(call, &ciphertext)?;
    check_named_key(call, "SourceKeyId", &source.key)?;
    let destination = keys::resolve_member(call, "DestinationKeyId")?;
    let same = if source.key.id == destination.key.id {
        "true"
    } else {
        "false"
    };
    let context = keys::with_encryption_context(keys::key_context(call, &source)?, &source_context)
        .key("kms:ReEncryptOnSameKey", [same]);
    keys::authorize(call, "ReEncryptFrom", &source.key, &context)?;
    let context =
        keys::with_encryption_context(keys::key_context(call, &destination)?, &destination_context)
            .key("kms:ReEncryptOnSameKey", [same]);
    keys::authorize(call, "ReEncryptTo", &destination.key, &context)?;
    dry_run(call)?;
    let plaintext = open(call, &source.key, &source_context, &ciphertext)?;
    let sealed = seal(call, &destination.key, &destination_context, &plaintext)?;
    let output = json!({
        "CiphertextBlob": b64(&sealed),
        "SourceKeyId": source.key.arn,
        "KeyId": destination.key.arn,
        "SourceEncryptionAlgorithm": ALGORITHM,
        "DestinationEncryptionAlgorithm": ALGORITHM,
    });
    let mut a = answer(&destination.key, output);
    a.resources.insert(0, keys::resource(&source.key));
    Ok(a)
}

/// `KeySpec` (`AES_256`, `AES_128`) or `NumberOfBytes` (1-1024): one,
/// not both.
fn data_key_len(call: &JsonCall) -> Result<usize, ApiError> {
    let spec = string(call.input, "KeySpec")?;
    let bytes = int_field(call.input, "NumberOfBytes", 1, 1024)?;
    match (spec, bytes) {
        (Some(_), Some(_)) => Err(validation(
            "Specify either KeySpec or NumberOfBytes, not both.",
        )),
        (None, None) => Err(validation("Specify either KeySpec or NumberOfBytes.")),
        (Some("AES_256"), None) => Ok(32),
        (Some("AES_128"), None) => Ok(16),
        (Some(_), None) => Err(validation("KeySpec must be AES_256 or AES_128.")),
        (None, Some(n)) => {
            usize::try_from(n).map_err(|_| validation("NumberOfBytes is not valid."))
        }
    }
}

fn data_key(call: &JsonCall, with_plaintext: bool) -> Result<Answer, ApiError> {
    let len = data_key_len(call)?;
    let encryption = context_member(call, "EncryptionContext")?;
    let action = call.operation;
    let loaded = crypto_key(call, "KeyId", action, &encryption, |c| c)?;
    loaded.key.check_usage(KeyUsage::EncryptDecrypt, action)?;
    dry_run(call)?;
    let plaintext = latchkey_kms::random_bytes(len)?;
    let ciphertext = seal(call, &loaded.key, &encryption, &plaintext)?;
    let mut output = json!({
        "CiphertextBlob": b64(&ciphertext),
        "KeyId": loaded.key.arn,
    });
    if with_plaintext {
        output["Plaintext"] = b64(&plaintext);
    }
    Ok(answer(&loaded.key, output))
}

pub fn generate_data_key(call: &JsonCall) -> Result<Answer, ApiError> {
    data_key(call, true)
}

pub fn generate_data_key_without_plaintext(call: &JsonCall) -> Result<Answer, ApiError> {
    data_key(call, false)
}

pub fn generate_random(call: &JsonCall) -> Result<Answer, ApiError> {
    let n = int_field(call.input, "NumberOfBytes", 1, 1024)?
        .ok_or_else(|| validation("NumberOfBytes is required."))?;
    if string(call.input, "CustomKeyStoreId")?.is_some() {
        return Err(
            KmsError::UnsupportedOperation("Custom key stores are not supported.".into()).into(),
        );
    }
    call.state.authorize_in(
        call.caller,
        "kms:GenerateRandom",
        "*",
        call.now,
        &ActionContext::new().key("kms:CallerAccount", [call.caller.account.as_str()]),
    )?;
    let bytes = latchkey_kms::random_bytes(usize::try_from(n).unwrap_or(1))?;
    Ok(Answer::output(json!({"Plaintext": b64(&bytes)})))
}

/// The HMAC key `KeyId` names, authorised, with the algorithm asked for
/// (which must be the key's).
fn mac_key(call: &JsonCall) -> Result<(Loaded, MacAlgorithm), ApiError> {
    let name = crate::json::required_string(call.input, "MacAlgorithm")?;
    let alg = MacAlgorithm::parse(name)?;
    let loaded = keys::resolve_member(call, "KeyId")?;
    let context = keys::key_context(call, &loaded)?.key("kms:MacAlgorithm", [alg.as_str()]);
    keys::authorize(call, call.operation, &loaded.key, &context)?;
    loaded
        .key
        .check_usage(KeyUsage::GenerateVerifyMac, call.operation)?;
    if loaded.key.spec.mac_algorithm() != Some(alg) {
        return Err(KmsError::InvalidKeyUsage(format!(
            "{} does not support MacAlgorithm {}.",
            loaded.key.arn,
            alg.as_str()
        ))
        .into());
    }
    dry_run(call)?;
    Ok((loaded, alg))
}

pub fn generate_mac(call: &JsonCall) -> Result<Answer, ApiError> {
    let message = required_blob(call, "Message")?;
    let (loaded, alg) = mac_key(call)?;
    let material = keys::material(call, &loaded.key, loaded.key.current_material())?;
    let tag = mac::generate(alg, &material, &message)?;
    let output = json!({
        "Mac": b64(&tag),
        "MacAlgorithm": alg.as_str(),
        "KeyId": loaded.key.arn,
    });
    Ok(answer(&loaded.key, output))
}

pub fn verify_mac(call: &JsonCall) -> Result<Answer, ApiError> {
    let message = required_blob(call, "Message")?;
    let tag = required_blob(call, "Mac")?;
    let (loaded, alg) = mac_key(call)?;
    let material = keys::material(call, &loaded.key, loaded.key.current_material())?;
    mac::verify(alg, &material, &message, &tag)?;
    let output = json!({
        "KeyId": loaded.key.arn,
        "MacValid": true,
        "MacAlgorithm": alg.as_str(),
    });
    Ok(answer(&loaded.key, output))
}
