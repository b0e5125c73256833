//! KMS over the JSON 1.1 front (`X-Amz-Target: TrentService.<Operation>`,
//! SigV4 service `kms`), and the calls other services (Parameter Store's
//! SecureString) make to it on their caller's behalf ([`via`]).
//!
//! The rules without I/O (key ids and aliases, key states, rotation, the
//! ciphertext blob, encryption contexts, MACs) are `latchkey-kms`'s; the
//! store keeps each key's material sealed under the master key. Keys are
//! authorised as AWS authorises them: the key policy must allow the
//! caller, by its ARN or by delegating to the account's IAM policies
//! ([`keys::authorize`]).

mod crypto;
mod keys;
mod manage;
mod via;

pub use via::{decrypt_via, encrypt_via};

use crate::error::ApiError;
use crate::json::{Answer, JsonCall, unknown_operation};

/// Members whose values are secrets or ciphertexts: never in the audit
/// trail (see [`crate::json::Service::secret_fields`]).
pub const SECRET_FIELDS: &[&str] = &["Plaintext", "CiphertextBlob", "Message", "Mac"];

/// Answers one KMS operation.
pub fn handle(call: &JsonCall) -> Result<Answer, ApiError> {
    let result = match call.operation {
        "CreateKey" => manage::create_key(call),
        "DescribeKey" => manage::describe_key(call),
        "ListKeys" => manage::list_keys(call),
        "CreateAlias" => manage::create_alias(call),
        "UpdateAlias" => manage::update_alias(call),
        "DeleteAlias" => manage::delete_alias(call),
        "ListAliases" => manage::list_aliases(call),
        "EnableKey" => manage::enable_key(call),
        "DisableKey" => manage::disable_key(call),
        "ScheduleKeyDeletion" => manage::schedule_key_deletion(call),
        "CancelKeyDeletion" => manage::cancel_key_deletion(call),
        "EnableKeyRotation" => manage::enable_key_rotation(call),
        "DisableKeyRotation" => manage::disable_key_rotation(call),
        "GetKeyRotationStatus" => manage::get_key_rotation_status(call),
        "RotateKeyOnDemand" => manage::rotate_key_on_demand(call),
        "ListKeyRotations" => manage::list_key_rotations(call),
        "GetKeyPolicy" => manage::get_key_policy(call),
        "PutKeyPolicy" => manage::put_key_policy(call),
        "ListKeyPolicies" => manage::list_key_policies(call),
        "UpdateKeyDescription" => manage::update_key_description(call),
        "TagResource" => manage::tag_resource(call),
        "UntagResource" => manage::untag_resource(call),
        "ListResourceTags" => manage::list_resource_tags(call),
        "Encrypt" => crypto::encrypt(call),
        "Decrypt" => crypto::decrypt(call),
        "ReEncrypt" => crypto::re_encrypt(call),
        "GenerateDataKey" => crypto::generate_data_key(call),
        "GenerateDataKeyWithoutPlaintext" => crypto::generate_data_key_without_plaintext(call),
        "GenerateRandom" => crypto::generate_random(call),
        "GenerateMac" => crypto::generate_mac(call),
        "VerifyMac" => crypto::verify_mac(call),
        _ => return Err(unknown_operation()),
    };
    // KMS words a malformed member as ValidationException.
    result.map_err(|mut e| {
        if e.code == latchkey_awsjson::INVALID_PARAMETER {
            e.code = "ValidationException";
        }
        e
    })
}
