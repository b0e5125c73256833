//! Secrets Manager over the JSON 1.1 front (`X-Amz-Target:
//! secretsmanager.<Operation>`, SigV4 service `secretsmanager`).

mod random;

use crate::error::ApiError;
use crate::json::{Answer, JsonCall, unknown_operation};

/// Members whose values are secrets: never in the audit trail (see
/// [`crate::json::Service::secret_fields`]).
pub const SECRET_FIELDS: &[&str] = &["SecretString", "SecretBinary", "RandomPassword"];

/// Answers one Secrets Manager operation.
pub fn handle(call: &JsonCall) -> Result<Answer, ApiError> {
    match call.operation {
        "GetRandomPassword" => random::get_random_password(call),
        _ => Err(unknown_operation()),
    }
}
