//! SSM Parameter Store over the JSON 1.1 front (`X-Amz-Target:
//! AmazonSSM.<Operation>`, SigV4 service `ssm`).
//!
//! The rules without I/O (names, selectors, versions, labels, tiers,
//! patterns, filters, tokens) are `latchkey-ssm`'s; the store keeps each
//! version's value sealed. A SecureString's value is encrypted by KMS on
//! the caller's behalf ([`crate::kms::encrypt_via`]) and decrypted only for
//! a caller KMS allows `kms:Decrypt` with its key. Names under
//! `/aws/reference/secretsmanager/` read a Secrets Manager secret, which
//! the caller must also be allowed `secretsmanager:GetSecretValue` on.

mod common;
mod read;
mod write;

use crate::error::ApiError;
use crate::json::{Answer, JsonCall, unknown_operation};

/// Members whose values are parameter values: never in the audit trail
/// (see [`crate::json::Service::secret_fields`]). A tag's `Value` goes
/// with them, which costs the trail little.
pub const SECRET_FIELDS: &[&str] = &["Value"];

/// Answers one Parameter Store operation.
pub fn handle(call: &JsonCall) -> Result<Answer, ApiError> {
    match call.operation {
        "PutParameter" => write::put_parameter(call),
        "DeleteParameter" => write::delete_parameter(call),
        "DeleteParameters" => write::delete_parameters(call),
        "LabelParameterVersion" => write::label_parameter_version(call),
        "UnlabelParameterVersion" => write::unlabel_parameter_version(call),
        "AddTagsToResource" => write::add_tags_to_resource(call),
        "RemoveTagsFromResource" => write::remove_tags_from_resource(call),
        "ListTagsForResource" => read::list_tags_for_resource(call),
        "GetParameter" => read::get_parameter(call),
        "GetParameters" => read::get_parameters(call),
        "GetParametersByPath" => read::get_parameters_by_path(call),
        "GetParameterHistory" => read::get_parameter_history(call),
        "DescribeParameters" => read::describe_parameters(call),
        _ => Err(unknown_operation()),
    }
    // Parameter Store words a malformed member as ValidationException.
    .map_err(|mut e| {
        if e.code == latchkey_awsjson::INVALID_PARAMETER {
            e.code = "ValidationException";
        }
        e
    })
}
