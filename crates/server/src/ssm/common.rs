//! What every Parameter Store operation shares: finding the parameter a
//! request names, authorising the call on its ARN (with its tags as
//! condition keys), reading a version's value (decrypting a SecureString
//! through KMS), writing without losing a concurrent writer's change, and
//! the answer's shapes.

use base64::Engine;
use latchkey_audit::Resource;
use latchkey_identity::{ActionContext, IdentityError};
use latchkey_ssm::{Parameter, ParameterName, ParameterType, SsmError, Version};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::json::{Answer, JsonCall};

pub const RESOURCE_TYPE: &str = "AWS::SSM::Parameter";

/// How many times a write is retried when another writer changed the
/// parameter in between.
const WRITE_ATTEMPTS: usize = 8;

/// The encryption context Parameter Store binds a SecureString's value to.
pub const CONTEXT_KEY: &str = "PARAMETER_ARN";

impl From<SsmError> for ApiError {
    fn from(e: SsmError) -> Self {
        ApiError::new(e.status(), e.code(), e.to_string())
    }
}

pub fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "ValidationException", message)
}

/// A parameter as read, with the revision its write must match.
pub struct Loaded {
    pub parameter: Parameter,
    pub revision: i64,
}

/// The ARN of a parameter (or path) in this store's account.
pub fn arn(call: &JsonCall, name: &str) -> String {
    latchkey_ssm::parameter_arn(call.state.region(), call.state.store.account_id(), name)
}

pub fn resource(call: &JsonCall, name: &ParameterName) -> Resource {
    Resource {
        arn: arn(call, name.as_str()),
        kind: RESOURCE_TYPE,
    }
}

/// The parameter named `name`, if there is one.
pub fn find(call: &JsonCall, name: &ParameterName) -> Result<Option<Loaded>, ApiError> {
    let Some(stored) = call.state.store.parameter(name.as_str())? else {
        return Ok(None);
    };
    let parameter: Parameter = serde_json::from_str(&stored.document).map_err(|e| {
        ApiError::internal().because(format!(
            "stored parameter {} is unreadable: {e}",
            stored.name
        ))
    })?;
    Ok(Some(Loaded {
        parameter,
        revision: stored.revision,
    }))
}

/// The condition keys a request on an existing parameter carries: its
/// tags, as `aws:ResourceTag/KEY` and `ssm:resourceTag/KEY`.
pub fn parameter_context(parameter: Option<&Parameter>) -> ActionContext {
    let Some(p) = parameter else {
        return ActionContext::new();
    };
    p.tags
        .iter()
        .fold(ActionContext::new().resource_tags(&p.tags), |c, (k, v)| {
            c.key(format!("ssm:resourceTag/{k}"), [v.as_str()])
        })
}

/// Authorises `ssm:{action}` on `name`'s ARN, with the parameter's tags
/// (when it exists) and `extra`'s keys.
pub fn authorize(
    call: &JsonCall,
    action: &str,
    name: &str,
    parameter: Option<&Parameter>,
    extra: impl FnOnce(ActionContext) -> ActionContext,
) -> Result<(), ApiError> {
    let context = extra(parameter_context(parameter));
    call.state
        .authorize_in(
            call.caller,
            &format!("ssm:{action}"),
            &arn(call, name),
            call.now,
            &context,
        )
        .map_err(ApiError::from)
}

/// Whether an identity or resource policy explicitly denies `ssm:{action}`
/// on `name` (an implicit deny is not enough), with the request's own
/// condition keys (`extra`: `ssm:Recursive`...): the children of a path a
/// caller may read are hidden from it only so.
pub fn explicitly_denied(
    call: &JsonCall,
    action: &str,
    parameter: &Parameter,
    extra: impl FnOnce(ActionContext) -> ActionContext,
) -> Result<bool, ApiError> {
    match call.state.authorize_in(
        call.caller,
        &format!("ssm:{action}"),
        &arn(call, parameter.name.as_str()),
        call.now,
        &extra(parameter_context(Some(parameter))),
    ) {
        Ok(()) => Ok(false),
        Err(IdentityError::Denied(d)) => Ok(d.decision == "explicitDeny"),
        Err(e) => Err(e.into()),
    }
}

/// Finds the parameter `name` names and authorises `ssm:{action}` on it; a
/// parameter that does not exist is authorised on its would-be ARN first,
/// then reported missing, so that a caller who may not read it learns
/// nothing of whether it exists.
pub fn load_authorized(
    call: &JsonCall,
    action: &str,
    name: &ParameterName,
    extra: impl FnOnce(ActionContext) -> ActionContext,
) -> Result<Loaded, ApiError> {
    let found = find(call, name)?;
    authorize(
        call,
        action,
        name.as_str(),
        found.as_ref().map(|l| &l.parameter),
        extra,
    )?;
    found.ok_or_else(|| SsmError::ParameterNotFound.into())
}

/// KMS's refusals of a key, as Parameter Store reports them: a key that
/// is missing, disabled, pending deletion or of the wrong kind is an
/// `InvalidKeyId`; a denial stays a denial.
fn kms_error(e: ApiError) -> ApiError {
    match e.code {
        "NotFoundException"
        | "DisabledException"
        | "KMSInvalidStateException"
        | "InvalidKeyUsageException" => {
            let reason = e.reason.clone().unwrap_or_else(|| e.message.clone());
            ApiError::new(400, "InvalidKeyId", e.message).because(reason)
        }
        _ => e,
    }
}

/// Encrypts a SecureString's value under `key_id` for the caller.
pub fn seal(
    call: &JsonCall,
    name: &ParameterName,
    key_id: &str,
    value: &str,
) -> Result<Vec<u8>, ApiError> {
    let arn = arn(call, name.as_str());
    crate::kms::encrypt_via(
        call,
        "ssm",
        key_id,
        value.as_bytes(),
        &[(CONTEXT_KEY, &arn)],
    )
    .map_err(kms_error)
}

/// A version's value as an answer shows it: a SecureString decrypted when
/// `decrypt` (the caller must be allowed `kms:Decrypt` with its key), its
/// ciphertext (base64) otherwise.
pub fn value(
    call: &JsonCall,
    parameter: &Parameter,
    version: &Version,
    decrypt: bool,
) -> Result<String, ApiError> {
    let name = parameter.name.as_str();
    let stored = call
        .state
        .store
        .parameter_value(name, version.version)?
        .ok_or_else(|| {
            ApiError::internal().because(format!(
                "parameter {name} version {} has no value",
                version.version
            ))
        })?;
    let text = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            ApiError::internal().because(format!(
                "parameter {name} version {} is not UTF-8",
                version.version
            ))
        })
    };
    match version.kind {
        ParameterType::SecureString if decrypt => {
            let arn = arn(call, name);
            let plaintext = crate::kms::decrypt_via(call, "ssm", &stored, &[(CONTEXT_KEY, &arn)])
                .map_err(kms_error)?;
            text(&plaintext)
        }
        ParameterType::SecureString => {
            Ok(base64::engine::general_purpose::STANDARD.encode(&*stored))
        }
        ParameterType::String | ParameterType::StringList => text(&stored),
    }
}

/// A parameter version with its value, as `GetParameter` and its kin
/// answer it.
pub fn with_value(
    call: &JsonCall,
    parameter: &Parameter,
    version: &Version,
    value: String,
    selector: Option<String>,
) -> Value {
    let mut out = json!({
        "Name": parameter.name.as_str(),
        "Type": version.kind.as_str(),
        "Value": value,
        "Version": version.version,
        "LastModifiedDate": version.modified,
        "ARN": arn(call, parameter.name.as_str()),
        "DataType": version.data_type.as_str(),
    });
    if let Some(s) = selector {
        out["Selector"] = Value::from(s);
    }
    out
}

/// What `DescribeParameters` and `GetParameterHistory` show of a version
/// besides its value.
pub fn metadata(parameter: &Parameter, version: &Version) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("Name".into(), parameter.name.as_str().into());
    out.insert("Type".into(), version.kind.as_str().into());
    if let Some(k) = &version.key_id {
        out.insert("KeyId".into(), k.as_str().into());
    }
    out.insert("LastModifiedDate".into(), version.modified.into());
    out.insert(
        "LastModifiedUser".into(),
        version.modified_user.as_str().into(),
    );
    if let Some(d) = &version.description {
        out.insert("Description".into(), d.as_str().into());
    }
    if let Some(p) = &version.allowed_pattern {
        out.insert("AllowedPattern".into(), p.as_str().into());
    }
    out.insert("Version".into(), version.version.into());
    out.insert("Tier".into(), version.tier.as_str().into());
    out.insert("Policies".into(), json!([]));
    out.insert("DataType".into(), version.data_type.as_str().into());
    out
}

/// An answer touching `names`.
pub fn answer(call: &JsonCall, output: Value, names: &[&ParameterName]) -> Answer {
    Answer {
        output,
        resources: names.iter().map(|n| resource(call, n)).collect(),
        response_elements: None,
    }
}

/// Parses a `Name` member.
pub fn name_member(call: &JsonCall, member: &str) -> Result<ParameterName, ApiError> {
    let text = crate::json::required_string(call.input, member)?;
    Ok(ParameterName::parse(text)?)
}

/// `MaxResults` between 1 and `max` (default `max`).
pub fn max_results(call: &JsonCall, max: i64) -> Result<usize, ApiError> {
    let n = crate::json::int_field(call.input, "MaxResults", 1, max)?.unwrap_or(max);
    Ok(usize::try_from(n).unwrap_or(1))
}

/// Authorises `ssm:{action}` on the parameter, changes it with `change`
/// and writes it back, removing the values of the versions `change`
/// returns as dropped; retried when another writer got there first.
/// `change` sees the parameter as stored each time.
pub fn update<T>(
    call: &JsonCall,
    action: &str,
    name: &ParameterName,
    extra: impl Fn(ActionContext) -> ActionContext,
    mut change: impl FnMut(&mut Parameter) -> Result<(T, Vec<u64>), ApiError>,
) -> Result<T, ApiError> {
    for _ in 0..WRITE_ATTEMPTS {
        // Authorised each time: a concurrent writer may have changed tags.
        let mut loaded = load_authorized(call, action, name, &extra)?;
        let (out, dropped) = change(&mut loaded.parameter)?;
        let document = serde_json::to_string(&loaded.parameter)
            .map_err(|e| ApiError::internal().because(e.to_string()))?;
        if call.state.store.update_parameter(
            name.as_str(),
            loaded.revision,
            &document,
            None,
            &dropped,
        )? {
            return Ok(out);
        }
    }
    Err(conflict(name))
}

/// Too many concurrent writers.
pub fn conflict(name: &ParameterName) -> ApiError {
    ApiError::new(
        400,
        "TooManyUpdates",
        "There are concurrent updates for a resource that supports one update at a time.",
    )
    .because(format!("parameter {name}: writers kept colliding"))
}

/// Tags as an answer lists them.
pub fn tag_list(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}
