//! Writing parameters: new versions, deletion, labels and tags.

use latchkey_ssm::parameter::check_tags;
use latchkey_ssm::{
    AllowedPattern, DataType, Parameter, ParameterName, ParameterType, Put, SsmError, Tier,
};
use serde_json::{Value, json};

use super::common::{
    answer, authorize, conflict, find, load_authorized, name_member, seal, update, validation,
};
use super::read::{MAX_NAMES, tagged_name};
use crate::error::ApiError;
use crate::json::{Answer, JsonCall, bool_field, string, string_list, tags};

fn put_request(call: &JsonCall) -> Result<Put, ApiError> {
    let input = call.input;
    let put = Put {
        kind: string(input, "Type")?
            .map(ParameterType::parse)
            .transpose()?,
        key_id: string(input, "KeyId")?.map(str::to_owned),
        description: string(input, "Description")?.map(str::to_owned),
        allowed_pattern: string(input, "AllowedPattern")?
            .map(AllowedPattern::parse)
            .transpose()?,
        tier: string(input, "Tier")?.map(Tier::parse).transpose()?,
        data_type: string(input, "DataType")?
            .map(DataType::parse)
            .transpose()?,
        overwrite: bool_field(input, "Overwrite")?.unwrap_or(false),
    };
    put.check()?;
    if string(input, "Policies")?.is_some_and(|p| !p.trim().is_empty() && p.trim() != "[]") {
        return Err(ApiError::new(
            400,
            "InvalidPolicyTypeException",
            "Parameter policies (Expiration, ExpirationNotification, NoChangeNotification) are not supported.",
        ));
    }
    Ok(put)
}

pub fn put_parameter(call: &JsonCall) -> Result<Answer, ApiError> {
    let name = name_member(call, "Name")?;
    name.check_writable()?;
    let text = crate::json::required_string(call.input, "Value")?;
    let put = put_request(call)?;
    let new_tags = tags(call.input, "Tags")?.unwrap_or_default();
    if !new_tags.is_empty() && put.overwrite {
        return Err(validation(
            "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.",
        ));
    }
    check_tags(&new_tags)?;
    let tag_keys: Vec<&str> = new_tags.iter().map(|(k, _)| k.as_str()).collect();
    let context = |c: latchkey_identity::ActionContext| {
        c.key(
            "ssm:Overwrite",
            [if put.overwrite { "true" } else { "false" }],
        )
        .request_tags(&new_tags)
        .tag_keys(tag_keys.iter().copied())
    };
    // Encrypted once: the value's encryption context is the parameter's
    // ARN, whichever version number a retry gives it.
    let mut sealed: Option<(String, Vec<u8>)> = None;
    for _ in 0..8 {
        let existing = find(call, &name)?;
        authorize(
            call,
            "PutParameter",
            name.as_str(),
            existing.as_ref().map(|l| &l.parameter),
            context,
        )?;
        if existing.is_some() && !put.overwrite {
            return Err(SsmError::ParameterAlreadyExists.into());
        }
        // Tags at creation need `ssm:AddTagsToResource` too, as AWS
        // requires.
        if !new_tags.is_empty() {
            authorize(call, "AddTagsToResource", name.as_str(), None, context)?;
        }
        let previous = existing.as_ref().and_then(|l| l.parameter.latest());
        let number = existing.as_ref().map_or(1, |l| l.parameter.next_version());
        let version = put.version(previous, number, text, &call.caller.arn, call.now)?;
        let stored: &[u8] = match (&version.key_id, version.kind) {
            (Some(key), ParameterType::SecureString) => {
                if sealed.as_ref().is_none_or(|(k, _)| k != key) {
                    sealed = Some((key.clone(), seal(call, &name, key, text)?));
                }
                sealed.as_ref().map_or(&[][..], |(_, blob)| blob.as_slice())
            }
            _ => text.as_bytes(),
        };
        let tier = version.tier;
        let written = match existing {
            None => {
                let parameter = Parameter::new(name.clone(), version, new_tags.clone());
                let document = document(&parameter)?;
                match call
                    .state
                    .store
                    .create_parameter(name.as_str(), &document, number, stored)
                {
                    Ok(()) => true,
                    Err(latchkey_store::StoreError::EntityAlreadyExists { .. }) => false,
                    Err(e) => return Err(e.into()),
                }
            }
            Some(mut loaded) => {
                let dropped = loaded.parameter.push(version)?;
                let document = document(&loaded.parameter)?;
                call.state.store.update_parameter(
                    name.as_str(),
                    loaded.revision,
                    &document,
                    Some((number, stored)),
                    &dropped,
                )?
            }
        };
        if written {
            let mut done = answer(
                call,
                json!({ "Version": number, "Tier": tier.as_str() }),
                &[&name],
            );
            done.response_elements = Some(json!({ "version": number, "tier": tier.as_str() }));
            return Ok(done);
        }
    }
    Err(conflict(&name))
}

fn document(parameter: &Parameter) -> Result<String, ApiError> {
    serde_json::to_string(parameter).map_err(|e| ApiError::internal().because(e.to_string()))
}

pub fn delete_parameter(call: &JsonCall) -> Result<Answer, ApiError> {
    let name = name_member(call, "Name")?;
    load_authorized(call, "DeleteParameter", &name, |c| c)?;
    if !call.state.store.delete_parameter(name.as_str())? {
        return Err(SsmError::ParameterNotFound.into());
    }
    Ok(answer(call, json!({}), &[&name]))
}

pub fn delete_parameters(call: &JsonCall) -> Result<Answer, ApiError> {
    let texts = string_list(call.input, "Names")?.unwrap_or_default();
    if texts.is_empty() || texts.len() > MAX_NAMES {
        return Err(validation(format!(
            "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to {MAX_NAMES} and greater than or equal to 1"
        )));
    }
    let names = texts
        .iter()
        .map(|t| ParameterName::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    // Every name is authorised before any is deleted: a denial of one
    // refuses the call and deletes nothing.
    let mut present = Vec::with_capacity(names.len());
    for name in &names {
        let found = find(call, name)?;
        authorize(
            call,
            "DeleteParameters",
            name.as_str(),
            found.as_ref().map(|l| &l.parameter),
            |c| c,
        )?;
        present.push(found.is_some());
    }
    let mut deleted = Vec::new();
    let mut invalid = Vec::new();
    for (name, present) in names.iter().zip(present) {
        if present && call.state.store.delete_parameter(name.as_str())? {
            deleted.push(Value::from(name.as_str()));
        } else {
            invalid.push(Value::from(name.as_str()));
        }
    }
    Ok(answer(
        call,
        json!({ "DeletedParameters": deleted, "InvalidParameters": invalid }),
        &names.iter().collect::<Vec<_>>(),
    ))
}

fn labels(call: &JsonCall) -> Result<Vec<String>, ApiError> {
    Ok(string_list(call.input, "Labels")?
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect())
}

fn version_member(call: &JsonCall) -> Result<Option<u64>, ApiError> {
    Ok(
        crate::json::int_field(call.input, "ParameterVersion", 1, i64::MAX)?
            .and_then(|v| u64::try_from(v).ok()),
    )
}

pub fn label_parameter_version(call: &JsonCall) -> Result<Answer, ApiError> {
    let name = name_member(call, "Name")?;
    let version = version_member(call)?;
    let labels = labels(call)?;
    let (labelled, invalid) = update(
        call,
        "LabelParameterVersion",
        &name,
        |c| c,
        |p| Ok((p.label(version, &labels)?, Vec::new())),
    )?;
    Ok(answer(
        call,
        json!({ "InvalidLabels": invalid, "ParameterVersion": labelled }),
        &[&name],
    ))
}

pub fn unlabel_parameter_version(call: &JsonCall) -> Result<Answer, ApiError> {
    let name = name_member(call, "Name")?;
    let version =
        version_member(call)?.ok_or_else(|| validation("ParameterVersion is required."))?;
    let labels = labels(call)?;
    let (removed, invalid) = update(
        call,
        "UnlabelParameterVersion",
        &name,
        |c| c,
        |p| Ok((p.unlabel(version, &labels)?, Vec::new())),
    )?;
    Ok(answer(
        call,
        json!({ "RemovedLabels": removed, "InvalidLabels": invalid }),
        &[&name],
    ))
}

/// A tag call on a parameter that does not exist: authorised on its
/// would-be ARN, then refused as AWS refuses it.
fn tag_target(call: &JsonCall, action: &str) -> Result<ParameterName, ApiError> {
    let name = tagged_name(call)?;
    if find(call, &name)?.is_none() {
        authorize(call, action, name.as_str(), None, |c| c)?;
        return Err(SsmError::InvalidResourceId.into());
    }
    Ok(name)
}

pub fn add_tags_to_resource(call: &JsonCall) -> Result<Answer, ApiError> {
    let name = tag_target(call, "AddTagsToResource")?;
    let new_tags = tags(call.input, "Tags")?.unwrap_or_default();
    if new_tags.is_empty() {
        return Err(validation("Tags must hold at least one tag."));
    }
    check_tags(&new_tags)?;
    let keys: Vec<&str> = new_tags.iter().map(|(k, _)| k.as_str()).collect();
    update(
        call,
        "AddTagsToResource",
        &name,
        |c| c.request_tags(&new_tags).tag_keys(keys.iter().copied()),
        |p| Ok((p.tag(&new_tags)?, Vec::new())),
    )?;
    Ok(answer(call, json!({}), &[&name]))
}

pub fn remove_tags_from_resource(call: &JsonCall) -> Result<Answer, ApiError> {
    let name = tag_target(call, "RemoveTagsFromResource")?;
    let keys: Vec<String> = string_list(call.input, "TagKeys")?
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(validation("TagKeys must hold at least one key."));
    }
    update(
        call,
        "RemoveTagsFromResource",
        &name,
        |c| c.tag_keys(keys.iter().map(String::as_str)),
        |p| {
            p.untag(&keys);
            Ok(((), Vec::new()))
        },
    )?;
    Ok(answer(call, json!({}), &[&name]))
}
