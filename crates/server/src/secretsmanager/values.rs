//! The operations on a secret's values and versions: `GetSecretValue`,
//! `BatchGetSecretValue`, `PutSecretValue`, `ListSecretVersionIds`,
//! `UpdateSecretVersionStage`.

use latchkey_identity::ActionContext;
use latchkey_secrets::secret::{AWSCURRENT, AWSPREVIOUS, Filter, Secret, Version};
use serde_json::{Map, Value, json};

use super::common::*;
use crate::error::ApiError;
use crate::json::{Answer, JsonCall};

/// The version a read selects and its value, as the answer writes them.
fn read_version(
    call: &JsonCall,
    secret: &Secret,
    version: &Version,
) -> Result<Map<String, Value>, ApiError> {
    let value = value_of(call, secret, &version.id)?;
    let mut out = Map::new();
    out.insert("ARN".into(), Value::from(secret.arn.as_str()));
    out.insert("Name".into(), Value::from(secret.name.as_str()));
    out.insert("VersionId".into(), Value::from(version.id.as_str()));
    put_value(&mut out, &value);
    out.insert("VersionStages".into(), json!(version.stages));
    out.insert("CreatedDate".into(), time(version.created));
    Ok(out)
}

/// Records that the secret and version were read today, at most once a
/// day (best effort: a concurrent writer wins and the next read retries).
fn touch(call: &JsonCall, loaded: &Loaded, version_id: &str) {
    let today = day(call.now);
    let version_seen = loaded
        .secret
        .version(version_id)
        .is_some_and(|v| v.last_accessed == Some(today));
    if loaded.secret.last_accessed == Some(today) && version_seen {
        return;
    }
    let mut secret = loaded.secret.clone();
    secret.last_accessed = Some(today);
    if let Some(v) = secret.versions.iter_mut().find(|v| v.id == version_id) {
        v.last_accessed = Some(today);
    }
    if let Err(e) = save(call, &secret, loaded.revision, &Written::default()) {
        tracing::warn!(secret = %secret.arn, reason = e.reason.as_deref().unwrap_or(""), "recording a secret's last access failed");
    }
}

/// The condition keys of a read of `version_id`/`stage`: the stage asked
/// for and every stage of the version it selects, so that a Deny on
/// `AWSPENDING` also stops a read of that version by its id.
fn read_context(
    context: ActionContext,
    secret: &Secret,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> ActionContext {
    let mut stages: Vec<&str> = stage.into_iter().collect();
    let selected = secret.select(version_id, stage).ok();
    if let Some(v) = selected {
        stages.extend(v.stages.iter().map(String::as_str));
    } else if version_id.is_none() && stage.is_none() {
        stages.push(AWSCURRENT);
    }
    stages.sort_unstable();
    stages.dedup();
    let mut context = context.key("secretsmanager:VersionStage", stages);
    if let Some(id) = version_id.or(selected.map(|v| v.id.as_str())) {
        context = context.key("secretsmanager:VersionId", [id]);
    }
    context
}

pub fn get_secret_value(call: &JsonCall) -> Result<Answer, ApiError> {
    let version_id = optional_str(call.input, "VersionId")?;
    let stage = optional_str(call.input, "VersionStage")?;
    let loaded = load_authorized(call, |c, s| read_context(c, s, version_id, stage))?;
    loaded.secret.check_not_deleted()?;
    let version = loaded.secret.select(version_id, stage)?;
    let out = read_version(call, &loaded.secret, version)?;
    touch(call, &loaded, &version.id);
    Ok(answer(&loaded.secret, out))
}

pub fn batch_get_secret_value(call: &JsonCall) -> Result<Answer, ApiError> {
    let ids = string_list(call.input, "SecretIdList")?;
    let filters = call.input.get("Filters");
    // The batch itself is authorised on every secret; each value then
    // needs GetSecretValue on its own secret.
    authorize(call, "*", None, &ActionContext::new())?;
    let (ids, next) = match (ids, filters) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "Either SecretIdList or Filters must be specified, but not both.",
            ));
        }
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > 20 {
                return Err(invalid("SecretIdList must hold 1 to 20 secret ids."));
            }
            if call.input.contains_key("NextToken") || call.input.contains_key("MaxResults") {
                return Err(invalid(
                    "NextToken and MaxResults can only be used with Filters.",
                ));
            }
            (ids, None)
        }
        (None, Some(_)) => {
            // Filters list secrets: AWS asks for ListSecrets too, or the
            // batch would enumerate what ListSecrets may not show.
            authorize_as(
                call,
                "secretsmanager:ListSecrets",
                "*",
                "*",
                None,
                &ActionContext::new(),
            )?;
            let filters = parse_filters(call.input)?;
            let arns: Vec<String> = listed(call, &filters, false)?
                .into_iter()
                .map(|s| s.arn)
                .collect();
            page(call.input, arns, 20)?
        }
        (None, None) => {
            return Err(invalid("Either SecretIdList or Filters must be specified."));
        }
    };
    let mut values = Vec::new();
    let mut errors = Vec::new();
    let mut resources = Vec::new();
    for id in ids {
        let one = JsonCall {
            operation: "GetSecretValue",
            input: &single_id(&id),
            ..*call
        };
        match get_secret_value(&one) {
            Ok(answer) => {
                resources.extend(answer.resources);
                values.push(answer.output);
            }
            Err(e) => {
                // As the call itself would have been answered: the JSON
                // services' codes and wording.
                let e = crate::json::json_error(e);
                errors.push(json!({
                    "SecretId": id,
                    "ErrorCode": e.code,
                    "Message": e.message,
                }));
            }
        }
    }
    let mut output = json!({"SecretValues": values, "Errors": errors});
    if let Some(next) = next {
        output["NextToken"] = Value::from(next);
    }
    Ok(Answer {
        output,
        resources,
        response_elements: None,
    })
}

fn single_id(id: &str) -> Map<String, Value> {
    let mut input = Map::new();
    input.insert("SecretId".into(), Value::from(id));
    input
}

pub fn put_secret_value(call: &JsonCall) -> Result<Answer, ApiError> {
    let value = request_value(call.input)?
        .ok_or_else(|| invalid("You must provide either SecretString or SecretBinary."))?;
    let token = request_token(call.input)?;
    let stages =
        string_list(call.input, "VersionStages")?.unwrap_or_else(|| vec![AWSCURRENT.to_owned()]);
    if stages.is_empty() {
        return Err(invalid("VersionStages must hold at least one label."));
    }
    // AWSPREVIOUS is Secrets Manager's to give, to the version AWSCURRENT
    // leaves: a new value given it would become the "last known good"
    // version that clients fall back to.
    if stages.iter().any(|s| s == AWSPREVIOUS) {
        return Err(invalid(
            "You can't attach the staging label AWSPREVIOUS with PutSecretValue: Secrets Manager attaches it to the version that AWSCURRENT moves from.",
        ));
    }
    let (secret, ()) = update(
        call,
        |c, _| {
            c.key(
                "secretsmanager:VersionStage",
                stages.iter().map(String::as_str),
            )
        },
        |secret, written| {
            secret.check_not_deleted()?;
            add_value(call, secret, written, &token, value.clone(), &stages)?;
            Ok(())
        },
    )?;
    let version_stages = secret
        .version(&token)
        .map(|v| v.stages.clone())
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("VersionId".into(), Value::from(token));
    out.insert("VersionStages".into(), json!(version_stages));
    Ok(answer(&secret, out))
}

pub fn list_secret_version_ids(call: &JsonCall) -> Result<Answer, ApiError> {
    let include_deprecated = optional_bool(call.input, "IncludeDeprecated")?.unwrap_or(false);
    let loaded = load_authorized(call, |c, _| c)?;
    let versions: Vec<Value> = loaded
        .secret
        .versions
        .iter()
        .rev()
        .filter(|v| include_deprecated || !v.stages.is_empty())
        .map(|v| {
            let mut entry = json!({
                "VersionId": v.id,
                "VersionStages": v.stages,
                "CreatedDate": time(v.created),
            });
            if let Some(t) = v.last_accessed {
                entry["LastAccessedDate"] = time(t);
            }
            entry
        })
        .collect();
    let (versions, next) = page(call.input, versions, 100)?;
    let mut out = Map::new();
    out.insert("Versions".into(), Value::Array(versions));
    if let Some(next) = next {
        out.insert("NextToken".into(), Value::from(next));
    }
    Ok(answer(&loaded.secret, out))
}

pub fn update_secret_version_stage(call: &JsonCall) -> Result<Answer, ApiError> {
    let stage = required_str(call.input, "VersionStage")?;
    let remove_from = optional_str(call.input, "RemoveFromVersionId")?;
    let move_to = optional_str(call.input, "MoveToVersionId")?;
    let (secret, ()) = update(
        call,
        |c, _| c.key("secretsmanager:VersionStage", [stage]),
        |secret, _| {
            secret.check_not_deleted()?;
            secret.update_stage(stage, remove_from, move_to, call.now)?;
            Ok(())
        },
    )?;
    Ok(answer(&secret, Map::new()))
}

/// `Filters`: `[{"Key": ..., "Values": [...]}]`.
pub fn parse_filters(input: &Map<String, Value>) -> Result<Vec<(Filter, Vec<String>)>, ApiError> {
    let Some(items) = input.get("Filters") else {
        return Ok(Vec::new());
    };
    let bad = || invalid("Filters must be a list of {\"Key\", \"Values\"} objects.");
    let items = items.as_array().ok_or_else(bad)?;
    if items.len() > 10 {
        return Err(invalid("At most 10 filters may be given."));
    }
    items
        .iter()
        .map(|f| {
            let key: Filter = f
                .get("Key")
                .and_then(Value::as_str)
                .ok_or_else(bad)?
                .parse()?;
            let values = f
                .get("Values")
                .and_then(Value::as_array)
                .ok_or_else(bad)?
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()?;
            if values.is_empty() || values.len() > 10 || values.iter().any(|v| v.len() > 512) {
                return Err(invalid(
                    "A filter has 1 to 10 values of at most 512 characters.",
                ));
            }
            Ok((key, values))
        })
        .collect()
}

/// The secrets a list shows, oldest first: those passing `filters`, with
/// those scheduled for deletion only when asked for. Secrets whose
/// deletion has taken effect are purged on the way.
pub fn listed(
    call: &JsonCall,
    filters: &[(Filter, Vec<String>)],
    include_deleted: bool,
) -> Result<Vec<Secret>, ApiError> {
    let mut out = Vec::new();
    for stored in call.state.store.list_secrets()? {
        let secret: Secret = serde_json::from_str(&stored.document).map_err(|e| {
            ApiError::internal().because(format!("stored secret {} is unreadable: {e}", stored.arn))
        })?;
        if secret.is_purged(call.now) {
            call.state.store.purge_secret(&secret.arn)?;
            continue;
        }
        if (include_deleted || !secret.is_deleted()) && secret.passes(filters) {
            out.push(secret);
        }
    }
    Ok(out)
}
