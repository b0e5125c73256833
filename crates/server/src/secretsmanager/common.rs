//! What every Secrets Manager operation shares: finding the secret a
//! request names, authorising the call on it (identity policies with the
//! secret's own resource policy, and the condition keys AWS defines), and
//! writing it back without losing a concurrent writer's change.

use latchkey_audit::Resource;
use latchkey_identity::ActionContext;
use latchkey_secrets::secret::{Lookup, Secret, SecretValue, SecretsError};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::json::{Answer, JsonCall};

/// How many times a write is retried when another writer changed the
/// secret in between.
const WRITE_ATTEMPTS: usize = 8;

pub const RESOURCE_TYPE: &str = "AWS::SecretsManager::Secret";

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        ApiError::new(e.status(), e.code(), e.to_string())
    }
}

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidParameterException", message)
}

fn not_found() -> ApiError {
    ApiError::new(
        400,
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )
}

/// A secret as read, with the revision its write must match.
pub struct Loaded {
    pub secret: Secret,
    pub revision: i64,
}

/// The secret `secret_id` names; `None` when there is none (or its
/// deletion has taken effect: it is purged then).
pub fn find(call: &JsonCall, secret_id: &str) -> Result<Option<Loaded>, ApiError> {
    let lookup = Lookup::parse(secret_id)?;
    let store = &call.state.store;
    let stored = match &lookup {
        Lookup::Name(name) => store.secret_by_name(name)?,
        Lookup::Arn(arn) => match store.secret_by_arn(arn)? {
            Some(found) => Some(found),
            None => match lookup.name_hint() {
                Some(name) => store.secret_by_name(name)?,
                None => None,
            },
        },
    };
    let Some(stored) = stored else {
        return Ok(None);
    };
    let secret: Secret = serde_json::from_str(&stored.document).map_err(|e| {
        ApiError::internal().because(format!("stored secret {} is unreadable: {e}", stored.arn))
    })?;
    if !lookup.matches(&secret) {
        return Ok(None);
    }
    if secret.is_purged(call.now) {
        store.purge_secret(&secret.arn)?;
        return Ok(None);
    }
    Ok(Some(Loaded {
        secret,
        revision: stored.revision,
    }))
}

/// The ARN a request for a secret that does not exist is authorised on,
/// and what any refusal shows of a secret: the ARN the request gave, or
/// the ARN its name would have without the suffix. A caller who may not
/// act on a secret learns nothing of whether it exists, nor its suffix.
pub fn absent_arn(call: &JsonCall, secret_id: &str) -> String {
    if secret_id.starts_with("arn:") {
        secret_id.to_owned()
    } else {
        format!(
            "arn:aws:secretsmanager:{}:{}:secret:{secret_id}",
            call.state.region(),
            call.caller.account
        )
    }
}

/// The condition keys every request on an existing secret carries.
pub fn secret_context(secret: &Secret) -> ActionContext {
    let mut context = ActionContext::new()
        .key("secretsmanager:SecretId", [secret.arn.as_str()])
        .resource_tags(&secret.tags);
    for (k, v) in &secret.tags {
        context = context.key(format!("secretsmanager:ResourceTag/{k}"), [v.as_str()]);
    }
    if let Some(r) = secret
        .rotation
        .as_ref()
        .filter(|r| !r.lambda_arn.is_empty())
    {
        context = context.key(
            "secretsmanager:resource/AllowRotationLambdaArn",
            [r.lambda_arn.as_str()],
        );
    }
    context
}

/// `base` with every key of `extra` added.
pub fn with_keys(base: ActionContext, extra: &ActionContext) -> ActionContext {
    extra
        .iter()
        .fold(base, |c, (k, v)| c.key(k, v.iter().map(String::as_str)))
}

/// Authorises `secretsmanager:{operation}` on `arn` with `context`, and
/// with `secret`'s resource policy when it has one.
pub fn authorize(
    call: &JsonCall,
    arn: &str,
    secret: Option<&Secret>,
    context: &ActionContext,
) -> Result<(), ApiError> {
    let action = format!("secretsmanager:{}", call.operation);
    authorize_as(call, &action, arn, arn, secret, context)
}

/// Authorises `action` on `arn` with `context`, and with `secret`'s
/// resource policy when it has one. A refusal shows `shown` (the secret
/// as the request named it, see [`absent_arn`]); the log and the audit
/// record keep `arn`.
pub fn authorize_as(
    call: &JsonCall,
    action: &str,
    arn: &str,
    shown: &str,
    secret: Option<&Secret>,
    context: &ActionContext,
) -> Result<(), ApiError> {
    let resource_policy = secret
        .and_then(|s| s.resource_policy.as_deref())
        .map(|doc| call.state.resource_policy(arn, doc))
        .transpose()?;
    call.state
        .authorize_on_resource(
            call.caller,
            action,
            arn,
            shown,
            call.now,
            context,
            resource_policy,
        )
        .map_err(ApiError::from)
}

/// Finds the secret `SecretId` names and authorises the call on it (with
/// `extra` keys); a secret that does not exist is authorised on its
/// would-be ARN first, then reported missing.
pub fn load_authorized(
    call: &JsonCall,
    extra: impl FnOnce(ActionContext, &Secret) -> ActionContext,
) -> Result<Loaded, ApiError> {
    let secret_id = required_str(call.input, "SecretId")?;
    let action = format!("secretsmanager:{}", call.operation);
    // A refusal names the secret as the request did, whether or not it
    // exists: never the stored ARN with its suffix.
    let shown = absent_arn(call, secret_id);
    match find(call, secret_id)? {
        Some(loaded) => {
            let context = extra(secret_context(&loaded.secret), &loaded.secret);
            authorize_as(
                call,
                &action,
                &loaded.secret.arn,
                &shown,
                Some(&loaded.secret),
                &context,
            )?;
            Ok(loaded)
        }
        None => {
            let context = ActionContext::new().key("secretsmanager:SecretId", [shown.as_str()]);
            authorize_as(call, &action, &shown, &shown, None, &context)?;
            Err(not_found())
        }
    }
}

/// What a change to a secret writes besides its metadata.
#[derive(Default)]
pub struct Written {
    /// A new version's id and value.
    pub value: Option<(String, SecretValue)>,
    /// Versions whose values are dropped.
    pub dropped: Vec<String>,
}

/// Loads and authorises the secret, applies `change` to it, and writes it
/// back; if another writer changed it in between, does it all again on
/// the newer secret. Returns what `change` returned the last time.
pub fn update<T>(
    call: &JsonCall,
    extra: impl Fn(ActionContext, &Secret) -> ActionContext,
    mut change: impl FnMut(&mut Secret, &mut Written) -> Result<T, ApiError>,
) -> Result<(Secret, T), ApiError> {
    for _ in 0..WRITE_ATTEMPTS {
        let Loaded {
            mut secret,
            revision,
        } = load_authorized(call, &extra)?;
        let mut written = Written::default();
        let out = change(&mut secret, &mut written)?;
        if save(call, &secret, revision, &written)? {
            return Ok((secret, out));
        }
    }
    Err(ApiError::new(
        400,
        "InvalidRequestException",
        "The secret was changed by another request; try again.",
    )
    .because("too many concurrent writers"))
}

/// Writes `secret` if it is still at `revision`.
pub fn save(
    call: &JsonCall,
    secret: &Secret,
    revision: i64,
    written: &Written,
) -> Result<bool, ApiError> {
    let document = serde_json::to_string(secret)
        .map_err(|e| ApiError::internal().because(format!("serialising a secret: {e}")))?;
    let encoded = written
        .value
        .as_ref()
        .map(|(id, value)| (id.as_str(), value.encode()));
    Ok(call.state.store.update_secret(
        &secret.arn,
        revision,
        &document,
        encoded.as_ref().map(|(id, bytes)| (*id, bytes.as_slice())),
        &written.dropped,
    )?)
}

/// A version's value.
pub fn value_of(call: &JsonCall, secret: &Secret, version: &str) -> Result<SecretValue, ApiError> {
    let bytes = call
        .state
        .store
        .secret_value(&secret.arn, version)?
        .ok_or_else(|| {
            ApiError::internal().because(format!("{}: version {version} has no value", secret.arn))
        })?;
    SecretValue::decode(&bytes).ok_or_else(|| {
        ApiError::internal().because(format!("{}: version {version} is unreadable", secret.arn))
    })
}

/// `SecretString` or `SecretBinary` as the answer carries it.
pub fn put_value(out: &mut Map<String, Value>, value: &SecretValue) {
    match value {
        SecretValue::String(s) => {
            out.insert("SecretString".into(), Value::from(s.as_str()));
        }
        SecretValue::Binary(b) => {
            use base64::Engine as _;
            out.insert(
                "SecretBinary".into(),
                Value::from(base64::engine::general_purpose::STANDARD.encode(b.as_slice())),
            );
        }
    }
}

/// The request's value, if it has one.
pub fn request_value(input: &Map<String, Value>) -> Result<Option<SecretValue>, ApiError> {
    let string = optional_str(input, "SecretString")?.map(|s| Zeroizing::new(s.to_owned()));
    let binary = crate::json::blob(input, "SecretBinary")?;
    Ok(SecretValue::from_request(string, binary)?)
}

/// `ClientRequestToken`, or a fresh one (as the SDKs make when none is
/// given).
pub fn request_token(input: &Map<String, Value>) -> Result<String, ApiError> {
    match optional_str(input, "ClientRequestToken")? {
        Some(token) => {
            latchkey_secrets::secret::check_token(token)?;
            Ok(token.to_owned())
        }
        None => Ok(latchkey_audit::trail::uuid_text(
            latchkey_store::random::<16>().map_err(|_| ApiError::internal())?,
        )),
    }
}

/// Epoch seconds, as the JSON protocol writes timestamps.
pub fn time(t: i64) -> Value {
    Value::from(t)
}

/// The day `t` falls in: last-accessed dates are kept to the day, as AWS
/// keeps them (and so a read writes at most once a day).
pub fn day(t: i64) -> i64 {
    t - t.rem_euclid(86_400)
}

/// An answer naming the secret, for the response and the audit record.
pub fn answer(secret: &Secret, mut output: Map<String, Value>) -> Answer {
    output.insert("ARN".into(), Value::from(secret.arn.as_str()));
    output.insert("Name".into(), Value::from(secret.name.as_str()));
    let mut elements = json!({"arn": secret.arn, "name": secret.name});
    if let Some(id) = output.get("VersionId") {
        elements["versionId"] = id.clone();
    }
    Answer {
        output: Value::Object(output),
        resources: vec![Resource {
            arn: secret.arn.clone(),
            kind: RESOURCE_TYPE,
        }],
        response_elements: Some(elements),
    }
}

pub use crate::json::{
    bool_field as optional_bool, required_string as required_str, string as optional_str,
};

/// `name` as a whole number within `range`.
pub fn optional_int(
    input: &Map<String, Value>,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    Ok(crate::json::int_field(
        input,
        name,
        *range.start(),
        *range.end(),
    )?)
}

/// Refuses `value` (of member `name`) longer than `max` characters, in
/// the words of AWS's validation; the value itself is never echoed.
pub fn check_length(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(invalid(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length less than or equal to {max}",
            latchkey_awsjson::lower_first(name)
        )));
    }
    Ok(())
}

/// A list of strings, owned.
pub fn string_list(
    input: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    Ok(crate::json::string_list(input, name)?
        .map(|items| items.into_iter().map(str::to_owned).collect()))
}

/// `Tags`: `[{"Key": ..., "Value": ...}]`.
pub fn tags(input: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    Ok(crate::json::tags(input, "Tags")?.unwrap_or_default())
}

/// Tags as the answer writes them.
pub fn tags_json(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// `MaxResults` and `NextToken` over `items`: the page and the token of
/// the next one. Tokens are the offset, which is all a list this small
/// needs; a token that is not one is refused.
pub fn page<T>(
    input: &Map<String, Value>,
    items: Vec<T>,
    max: i64,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let size = optional_int(input, "MaxResults", 1..=max)?.unwrap_or(max);
    let start = match optional_str(input, "NextToken")? {
        None => 0,
        Some(token) => token
            .strip_prefix("o.")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| invalid("The NextToken is not valid."))?,
    };
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| format!("o.{end}"));
    Ok((
        items.into_iter().skip(start).take(end - start).collect(),
        next,
    ))
}

/// Adds `value` as version `token` carrying `stages`. A token that names
/// an existing version is a repeated request: the same value is accepted
/// and changes nothing (`false`); another value is refused, as AWS
/// refuses it.
pub fn add_value(
    call: &JsonCall,
    secret: &mut Secret,
    written: &mut Written,
    token: &str,
    value: SecretValue,
    stages: &[String],
) -> Result<bool, ApiError> {
    if secret.version(token).is_some() {
        if value_of(call, secret, token)?.same_as(&value) {
            return Ok(false);
        }
        return Err(ApiError::new(
            400,
            "ResourceExistsException",
            "You can't modify an existing version, you can only create a new version.",
        ));
    }
    written.dropped = secret.add_version(token, stages, call.now)?;
    written.value = Some((token.to_owned(), value));
    Ok(true)
}
