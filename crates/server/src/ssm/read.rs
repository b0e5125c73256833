//! Reading parameters: one, several, a path's, a history, a listing of
//! metadata, tags, and Secrets Manager secrets by reference.

use latchkey_identity::ActionContext;
use latchkey_ssm::filter::{self, FilterUse, ParameterFilter};
use latchkey_ssm::name::secret_reference;
use latchkey_ssm::{Parameter, ParameterName, ParameterPath, Selector, SsmError, token};
use serde_json::{Map, Value, json};

use super::common::{
    Loaded, answer, authorize, explicitly_denied, find, load_authorized, max_results, metadata,
    name_member, tag_list, validation, value, with_value,
};
use crate::error::ApiError;
use crate::json::{Answer, JsonCall, bool_field, string, string_list};

/// `GetParameters` and `DeleteParameters` take at most this many names.
pub const MAX_NAMES: usize = 10;

fn with_decryption(call: &JsonCall) -> Result<bool, ApiError> {
    Ok(bool_field(call.input, "WithDecryption")?.unwrap_or(false))
}

/// One parameter the request names (`name`, `name:3`, `name:label`), read
/// after `ssm:{action}` is authorised on it.
enum Read {
    Found(Value),
    /// Not found (or no such version): `GetParameters` lists it as invalid.
    Missing(SsmError),
}

fn read_one(call: &JsonCall, action: &str, text: &str, decrypt: bool) -> Result<Read, ApiError> {
    if let Some((secret_id, pick)) = secret_reference(text) {
        return read_reference(call, action, text, secret_id, pick, decrypt);
    }
    let selector = Selector::parse(text)?;
    let Loaded { parameter, .. } = match load_authorized(call, action, &selector.name, |c| c) {
        Ok(loaded) => loaded,
        Err(e) if e.code == "ParameterNotFound" => {
            return Ok(Read::Missing(SsmError::ParameterNotFound));
        }
        Err(e) => return Err(e),
    };
    let version = match parameter.select(selector.pick.as_ref()) {
        Ok(v) => v,
        Err(e) => return Ok(Read::Missing(e)),
    };
    let shown = value(call, &parameter, version, decrypt)?;
    Ok(Read::Found(with_value(
        call,
        &parameter,
        version,
        shown,
        selector.suffix(),
    )))
}

/// `/aws/reference/secretsmanager/ID[:SELECTOR]`: the secret's current
/// value (or the version or staging label the selector names). The caller
/// needs `ssm:{action}` on the reference and
/// `secretsmanager:GetSecretValue` on the secret.
fn read_reference(
    call: &JsonCall,
    action: &str,
    text: &str,
    secret_id: &str,
    pick: Option<&str>,
    decrypt: bool,
) -> Result<Read, ApiError> {
    let reference = text.strip_suffix(pick.map(|p| format!(":{p}")).as_deref().unwrap_or(""));
    let reference = reference.unwrap_or(text);
    if !decrypt {
        return Err(validation(
            "WithDecryption flag must be True for retrieving a Secret Manager secret.",
        ));
    }
    authorize(call, action, reference, None, |c| c)?;
    let mut input = Map::new();
    input.insert("SecretId".into(), secret_id.into());
    if let Some(p) = pick {
        // A version id is a UUID-like run of hex and hyphens; anything
        // else is a staging label.
        let is_version = p.len() >= 32 && p.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        let member = if is_version {
            "VersionId"
        } else {
            "VersionStage"
        };
        input.insert(member.into(), p.into());
    }
    let secret_call = JsonCall {
        operation: "GetSecretValue",
        input: &input,
        ..*call
    };
    let secret = match crate::secretsmanager::get_secret_value(&secret_call) {
        Ok(answer) => answer.output,
        Err(e) if e.code == "ResourceNotFoundException" => {
            return Ok(Read::Missing(SsmError::ParameterNotFound));
        }
        Err(e) => return Err(e),
    };
    let shown = match (secret.get("SecretString"), secret.get("SecretBinary")) {
        (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => s.clone(),
        _ => String::new(),
    };
    let source: Map<String, Value> = ["ARN", "Name", "VersionId", "VersionStages", "CreatedDate"]
        .into_iter()
        .filter_map(|k| secret.get(k).map(|v| (k.to_owned(), v.clone())))
        .collect();
    let mut out = json!({
        "Name": text,
        "Type": "SecureString",
        "Value": shown,
        "Version": 0,
        "SourceResult": Value::Object(source).to_string(),
        "LastModifiedDate": secret.get("CreatedDate").cloned().unwrap_or(Value::from(call.now)),
        "ARN": secret.get("ARN").cloned().unwrap_or_default(),
        "DataType": "text",
    });
    if let Some(p) = pick {
        out["Selector"] = Value::from(format!(":{p}"));
    }
    Ok(Read::Found(out))
}

pub fn get_parameter(call: &JsonCall) -> Result<Answer, ApiError> {
    let text = crate::json::required_string(call.input, "Name")?;
    let decrypt = with_decryption(call)?;
    match read_one(call, "GetParameter", text, decrypt)? {
        Read::Found(parameter) => {
            let names = Selector::parse(text).map(|s| s.name).ok();
            Ok(answer(
                call,
                json!({ "Parameter": parameter }),
                &names.iter().collect::<Vec<_>>(),
            ))
        }
        Read::Missing(e) => Err(e.into()),
    }
}

pub fn get_parameters(call: &JsonCall) -> Result<Answer, ApiError> {
    let names = string_list(call.input, "Names")?.unwrap_or_default();
    if names.is_empty() || names.len() > MAX_NAMES {
        return Err(validation(format!(
            "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to {MAX_NAMES} and greater than or equal to 1"
        )));
    }
    let decrypt = with_decryption(call)?;
    let mut found = Vec::new();
    let mut invalid = Vec::new();
    for text in &names {
        // A denial of any one refuses the whole call, as AWS refuses it.
        match read_one(call, "GetParameters", text, decrypt)? {
            Read::Found(p) => found.push(p),
            Read::Missing(_) => invalid.push(Value::from(*text)),
        }
    }
    let touched: Vec<ParameterName> = names
        .iter()
        .filter_map(|t| Selector::parse(t).ok().map(|s| s.name))
        .collect();
    Ok(answer(
        call,
        json!({ "Parameters": found, "InvalidParameters": invalid }),
        &touched.iter().collect::<Vec<_>>(),
    ))
}

/// Parses `ParameterFilters` for `used`.
fn parameter_filters(call: &JsonCall, used: FilterUse) -> Result<Vec<ParameterFilter>, ApiError> {
    let Some(value) = call.input.get("ParameterFilters") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(validation("ParameterFilters must be a list."));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(f) = item else {
            return Err(validation("Each of ParameterFilters must be an object."));
        };
        let key = crate::json::required_string(f, "Key")?;
        let option = string(f, "Option")?;
        let values = string_list(f, "Values")?
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect();
        out.push(ParameterFilter::parse(key, option, values, used)?);
    }
    filter::check_all(&out)?;
    Ok(out)
}

/// Every stored parameter whose name begins with `prefix`, parsed.
fn listed(call: &JsonCall, prefix: &str) -> Result<Vec<Parameter>, ApiError> {
    let mut out = Vec::new();
    for stored in call.state.store.list_parameters(prefix)? {
        match serde_json::from_str::<Parameter>(&stored.document) {
            Ok(p) => out.push(p),
            Err(e) => {
                tracing::error!(parameter = %stored.name, "stored parameter is unreadable: {e}")
            }
        }
    }
    Ok(out)
}

pub fn get_parameters_by_path(call: &JsonCall) -> Result<Answer, ApiError> {
    let path = ParameterPath::parse(crate::json::required_string(call.input, "Path")?)?;
    let recursive = bool_field(call.input, "Recursive")?.unwrap_or(false);
    let decrypt = with_decryption(call)?;
    let filters = parameter_filters(call, FilterUse::GetParametersByPath)?;
    let size = max_results(call, 10)?;
    let next = string(call.input, "NextToken")?;
    let recursive_key =
        |c: ActionContext| c.key("ssm:Recursive", [if recursive { "true" } else { "false" }]);
    authorize(
        call,
        "GetParametersByPath",
        path.as_str(),
        None,
        recursive_key,
    )?;
    let prefix = if path.as_str() == "/" {
        "/".to_owned()
    } else {
        format!("{}/", path.as_str())
    };
    let mut matched = Vec::new();
    for p in listed(call, &prefix)? {
        if !path.holds(&p.name, recursive) || filter::select(&p, &filters).is_none() {
            continue;
        }
        // The path's grant covers its children, as AWS's does; a child
        // the caller is explicitly denied stays hidden all the same:
        // denied this call with this request's keys, or denied reading
        // the parameter itself.
        if explicitly_denied(call, "GetParametersByPath", &p, recursive_key)?
            || explicitly_denied(call, "GetParameter", &p, |c| c)?
        {
            continue;
        }
        matched.push(p);
    }
    let (page, next) = token::page(matched, |p| p.name.as_str().to_owned(), next, size)?;
    let mut out = Vec::with_capacity(page.len());
    for p in &page {
        if let Some(version) = filter::select(p, &filters) {
            let shown = value(call, p, version, decrypt)?;
            out.push(with_value(call, p, version, shown, None));
        }
    }
    let names: Vec<&ParameterName> = page.iter().map(|p| &p.name).collect();
    let mut output = json!({ "Parameters": out });
    if let Some(next) = next {
        output["NextToken"] = Value::from(next);
    }
    Ok(answer(call, output, &names))
}

pub fn get_parameter_history(call: &JsonCall) -> Result<Answer, ApiError> {
    let name = name_member(call, "Name")?;
    let decrypt = with_decryption(call)?;
    let size = max_results(call, 50)?;
    let next = string(call.input, "NextToken")?;
    let Loaded { parameter, .. } = load_authorized(call, "GetParameterHistory", &name, |c| c)?;
    let versions: Vec<_> = parameter.versions.iter().collect();
    let (page, next) = token::page(versions, |v| format!("{:020}", v.version), next, size)?;
    let mut out = Vec::with_capacity(page.len());
    for v in page {
        let mut entry = metadata(&parameter, v);
        entry.insert("Value".into(), value(call, &parameter, v, decrypt)?.into());
        entry.insert("Labels".into(), json!(v.labels));
        out.push(Value::Object(entry));
    }
    let mut output = json!({ "Parameters": out });
    if let Some(next) = next {
        output["NextToken"] = Value::from(next);
    }
    Ok(answer(call, output, &[&name]))
}

pub fn describe_parameters(call: &JsonCall) -> Result<Answer, ApiError> {
    let legacy = call.input.get("Filters");
    if legacy.is_some() && call.input.contains_key("ParameterFilters") {
        return Err(validation(
            "You can use either Filters or ParameterFilters in a single request, not both.",
        ));
    }
    let mut filters = parameter_filters(call, FilterUse::DescribeParameters)?;
    if let Some(legacy) = legacy {
        let Value::Array(items) = legacy else {
            return Err(validation("Filters must be a list."));
        };
        for item in items {
            let Value::Object(f) = item else {
                return Err(validation("Each of Filters must be an object."));
            };
            let key = crate::json::required_string(f, "Key")?;
            let values = string_list(f, "Values")?
                .unwrap_or_default()
                .into_iter()
                .map(str::to_owned)
                .collect();
            filters.push(ParameterFilter::parse_legacy(key, values)?);
        }
        filter::check_all(&filters)?;
    }
    let size = max_results(call, 50)?;
    let next = string(call.input, "NextToken")?;
    // AWS's DescribeParameters has no resource type: it is granted on `*`
    // only, never by a grant on `parameter/...`.
    call.state
        .authorize_in(
            call.caller,
            "ssm:DescribeParameters",
            "*",
            call.now,
            &ActionContext::new(),
        )
        .map_err(ApiError::from)?;
    let mut matched: Vec<Parameter> = Vec::new();
    for p in listed(call, "")? {
        // A parameter the caller is explicitly denied reading is not
        // described to it either.
        if filter::select(&p, &filters).is_some()
            && !explicitly_denied(call, "GetParameter", &p, |c| c)?
        {
            matched.push(p);
        }
    }
    let (page, next) = token::page(matched, |p| p.name.as_str().to_owned(), next, size)?;
    let entries: Vec<Value> = page
        .iter()
        .filter_map(|p| {
            let v = filter::select(p, &filters)?;
            let mut entry = metadata(p, v);
            entry.insert(
                "ARN".into(),
                super::common::arn(call, p.name.as_str()).into(),
            );
            Some(Value::Object(entry))
        })
        .collect();
    let mut output = json!({ "Parameters": entries });
    if let Some(next) = next {
        output["NextToken"] = Value::from(next);
    }
    Ok(Answer::output(output))
}

/// `ResourceType` must be `Parameter`; `ResourceId` is its name.
pub fn tagged_name(call: &JsonCall) -> Result<ParameterName, ApiError> {
    let kind = crate::json::required_string(call.input, "ResourceType")?;
    if kind != "Parameter" {
        return Err(SsmError::InvalidResourceType(format!(
            "The resource type {kind} isn't supported: Latchkey's Parameter Store tags parameters only."
        ))
        .into());
    }
    let id = crate::json::required_string(call.input, "ResourceId")?;
    ParameterName::parse(id).map_err(|_| SsmError::InvalidResourceId.into())
}

pub fn list_tags_for_resource(call: &JsonCall) -> Result<Answer, ApiError> {
    let name = tagged_name(call)?;
    let found = find(call, &name)?;
    authorize(
        call,
        "ListTagsForResource",
        name.as_str(),
        found.as_ref().map(|l| &l.parameter),
        |c| c,
    )?;
    let Some(Loaded { parameter, .. }) = found else {
        return Err(SsmError::InvalidResourceId.into());
    };
    Ok(answer(
        call,
        json!({ "TagList": tag_list(&parameter.tags) }),
        &[&name],
    ))
}
