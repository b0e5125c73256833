//! `RotateSecret` and `CancelRotateSecret`. They record what to do in the
//! secret's metadata and wake the rotation job (`latchkey-rotator`, run
//! by `serve`), which alone runs the four steps: one job at a time per
//! secret, resumed after a restart.

use latchkey_secrets::rotation::configure;
use latchkey_secrets::{RotationFunction, RotationRules};
use serde_json::{Map, Value};

use super::common::*;
use crate::error::ApiError;
use crate::json::{Answer, JsonCall};

/// `RotationRules`, if given.
fn rotation_rules(input: &Map<String, Value>) -> Result<Option<RotationRules>, ApiError> {
    let rules = match input.get("RotationRules") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(rules)) => rules,
        Some(_) => return Err(invalid("RotationRules must be an object.")),
    };
    Ok(Some(RotationRules {
        automatically_after_days: optional_int(rules, "AutomaticallyAfterDays", 1..=1000)?,
        duration: optional_str(rules, "Duration")?.map(str::to_owned),
        schedule_expression: optional_str(rules, "ScheduleExpression")?.map(str::to_owned),
    }))
}

/// `RotationLambdaARN` in its canonical form, with what it names.
fn canonical_function(call: &JsonCall, text: &str) -> Result<(RotationFunction, String), ApiError> {
    Ok(RotationFunction::canonical(
        text,
        call.state.region(),
        &call.caller.account,
    )?)
}

/// Refuses a rotation Latchkey may not run for this secret: a webhook
/// under no prefix the operator allowed, or a built-in rotation of a
/// secret that does not hold a database login Latchkey keeps (which would
/// let anyone who may write a secret aim the job at any database user).
fn check_runnable(call: &JsonCall, arn: &str, function: &RotationFunction) -> Result<(), ApiError> {
    match function {
        RotationFunction::Webhook(url) if !call.state.jobs.rotation_webhook_allowed(url) => {
            Err(invalid(
                "RotationLambdaARN: this webhook URL is not under a prefix the server allows (--rotation-webhook-allow).",
            ))
        }
        // A login Latchkey keeps rotates only by the built-in function: a
        // webhook would let whoever answers it choose the password.
        RotationFunction::Webhook(_)
            if call.state.store.database_secret_binding(arn)?.is_some() =>
        {
            Err(invalid(
                "This secret holds a database login Latchkey keeps; it rotates only by the built-in function.",
            ))
        }
        RotationFunction::Webhook(_) => Ok(()),
        built_in => {
            let Some((database, _)) = call.state.store.database_secret_binding(arn)? else {
                return Err(invalid(
                    "Built-in rotation rotates the upstream logins Latchkey keeps: register the database with --rotate-every and store the user's password with `latchkey db set-password`, which makes the secret latchkey/db/DATABASE/USER.",
                ));
            };
            let registered = call
                .state
                .store
                .get_database(&database)?
                .rotation
                .map(|r| r.master_user.is_some());
            let alternating = *built_in == RotationFunction::AlternatingUsers;
            match registered {
                Some(a) if a == alternating => Ok(()),
                Some(true) => Err(invalid(format!(
                    "Database {database} is registered for alternating-users rotation."
                ))),
                Some(false) => Err(invalid(format!(
                    "Database {database} is registered for single-user rotation (--rotation-master-user makes it alternating users)."
                ))),
                None => Err(invalid(format!(
                    "Database {database} is not registered to rotate."
                ))),
            }
        }
    }
}

pub fn rotate_secret(call: &JsonCall) -> Result<Answer, ApiError> {
    let given = optional_str(call.input, "RotationLambdaARN")?
        .map(|f| canonical_function(call, f))
        .transpose()?;
    let rules = rotation_rules(call.input)?;
    let immediately = optional_bool(call.input, "RotateImmediately")?.unwrap_or(true);
    let token = request_token(call.input)?;
    let (secret, ()) = update(
        call,
        |c, s| {
            let stored = s.rotation.as_ref().map(|r| r.lambda_arn.as_str());
            match given
                .as_ref()
                .map(|(_, arn)| arn.as_str())
                .or(stored)
                .filter(|f| !f.is_empty())
            {
                Some(f) => c.key("secretsmanager:RotationLambdaARN", [f]),
                None => c,
            }
        },
        |secret, _| {
            secret.check_not_deleted()?;
            if immediately {
                secret.check_rotation_start(&token)?;
            }
            if let (Some(run), Some((_, arn))) = (secret.rotation_run(), &given)
                && secret
                    .rotation
                    .as_ref()
                    .is_some_and(|r| r.lambda_arn != *arn)
            {
                return Err(ApiError::new(
                    400,
                    "InvalidRequestException",
                    format!(
                        "Rotation {} is in progress; its function cannot change until it finishes or is cancelled.",
                        run.token
                    ),
                ));
            }
            let rotation = configure(
                secret.rotation.take(),
                given.as_ref().map(|(_, arn)| arn.as_str()),
                rules.clone(),
                call.now,
            )?;
            let (function, _) = canonical_function(call, &rotation.lambda_arn)?;
            check_runnable(call, &secret.arn, &function)?;
            secret.rotation = Some(rotation);
            if immediately {
                // A built-in rotation makes its own pending value: a token
                // naming a version that exists (one a caller planted with
                // PutSecretValue) starts nothing, unless it is the rotation
                // under way being asked for again.
                let under_way = secret.rotation_run().is_some_and(|r| r.token == token);
                if function.is_built_in() && !under_way && secret.version(&token).is_some() {
                    return Err(ApiError::new(
                        400,
                        "InvalidRequestException",
                        "ClientRequestToken names a version that exists; a built-in rotation makes its own.",
                    ));
                }
                secret.begin_rotation(&token, call.now)?;
            }
            Ok(())
        },
    )?;
    if immediately {
        call.state.jobs.wake_rotation();
    }
    let mut out = Map::new();
    if immediately {
        out.insert("VersionId".into(), Value::from(token));
    }
    Ok(answer(&secret, out))
}

pub fn cancel_rotate_secret(call: &JsonCall) -> Result<Answer, ApiError> {
    let (secret, abandoned) = update(call, |c, _| c, |secret, _| Ok(secret.cancel_rotation()?))?;
    let mut out = Map::new();
    if let Some(token) = abandoned {
        out.insert("VersionId".into(), Value::from(token));
    }
    Ok(answer(&secret, out))
}
