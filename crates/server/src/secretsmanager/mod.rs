//! Secrets Manager over the JSON 1.1 front (`X-Amz-Target:
//! secretsmanager.<Operation>`, SigV4 service `secretsmanager`).

mod common;
mod manage;
mod random;
mod rotate;
mod values;

pub use values::get_secret_value;

use crate::error::ApiError;
use crate::json::{Answer, JsonCall, unknown_operation};

/// Members whose values are secrets: never in the audit trail (see
/// [`crate::json::Service::secret_fields`]).
pub const SECRET_FIELDS: &[&str] = &["SecretString", "SecretBinary", "RandomPassword"];

/// Answers one Secrets Manager operation.
pub fn handle(call: &JsonCall) -> Result<Answer, ApiError> {
    match call.operation {
        "GetRandomPassword" => random::get_random_password(call),
        "CreateSecret" => manage::create_secret(call),
        "UpdateSecret" => manage::update_secret(call),
        "DescribeSecret" => manage::describe_secret(call),
        "ListSecrets" => manage::list_secrets(call),
        "DeleteSecret" => manage::delete_secret(call),
        "RestoreSecret" => manage::restore_secret(call),
        "TagResource" => manage::tag_resource(call),
        "UntagResource" => manage::untag_resource(call),
        "PutResourcePolicy" => manage::put_resource_policy(call),
        "GetResourcePolicy" => manage::get_resource_policy(call),
        "DeleteResourcePolicy" => manage::delete_resource_policy(call),
        "ValidateResourcePolicy" => manage::validate_resource_policy(call),
        "GetSecretValue" => values::get_secret_value(call),
        "BatchGetSecretValue" => values::batch_get_secret_value(call),
        "PutSecretValue" => values::put_secret_value(call),
        "ListSecretVersionIds" => values::list_secret_version_ids(call),
        "UpdateSecretVersionStage" => values::update_secret_version_stage(call),
        "RotateSecret" => rotate::rotate_secret(call),
        "CancelRotateSecret" => rotate::cancel_rotate_secret(call),
        _ => Err(unknown_operation()),
    }
}
