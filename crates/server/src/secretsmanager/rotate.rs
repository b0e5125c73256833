//! `RotateSecret` and `CancelRotateSecret`. They record what to do in the
//! secret's metadata and wake the rotation job (`latchkey-rotator`, run
//! by `serve`), which alone runs the four steps: one job at a time per
//! secret, resumed after a restart.

use latchkey_secrets::RotationRules;
use latchkey_secrets::rotation::configure;
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

pub fn rotate_secret(call: &JsonCall) -> Result<Answer, ApiError> {
    let function = optional_str(call.input, "RotationLambdaARN")?;
    let rules = rotation_rules(call.input)?;
    let immediately = optional_bool(call.input, "RotateImmediately")?.unwrap_or(true);
    let token = request_token(call.input)?;
    let (secret, ()) = update(
        call,
        |c, s| {
            let stored = s.rotation.as_ref().map(|r| r.lambda_arn.as_str());
            match function.or(stored).filter(|f| !f.is_empty()) {
                Some(f) => c.key("secretsmanager:RotationLambdaARN", [f]),
                None => c,
            }
        },
        |secret, _| {
            secret.check_not_deleted()?;
            if immediately {
                secret.check_rotation_start(&token)?;
            }
            secret.rotation = Some(configure(
                secret.rotation.take(),
                function,
                rules.clone(),
                call.now,
            )?);
            if immediately {
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
