//! Keys and aliases: creating, describing, listing, enabling and
//! disabling, deletion, rotation, key policies, tags.

use latchkey_identity::ActionContext;
use latchkey_kms::KmsError;
use latchkey_kms::key::{
    Key, KeyManager, KeySpec, KeyUsage, NewKey, check_description, check_tags,
};
use latchkey_kms::key_id::{AliasName, KeyUuid};
use serde_json::{Value, json};

use super::keys::{self, Loaded, validation};
use crate::error::ApiError;
use crate::json::{Answer, JsonCall, bool_field, int_field, string, string_list};

fn answer(key: &Key, output: Value) -> Answer {
    Answer {
        output,
        resources: vec![keys::resource(key)],
        response_elements: Some(json!({"keyId": key.arn})),
    }
}

pub fn create_key(call: &JsonCall) -> Result<Answer, ApiError> {
    let input = call.input;
    let spec = string(input, "KeySpec")?
        .or(string(input, "CustomerMasterKeySpec")?)
        .map(KeySpec::parse)
        .transpose()?
        .unwrap_or(KeySpec::SymmetricDefault);
    if let Some(usage) = string(input, "KeyUsage")?
        && KeyUsage::parse(usage)? != spec.usage()
    {
        return Err(validation(format!(
            "KeyUsage {usage} is not compatible with KeySpec {}.",
            spec.as_str()
        )));
    }
    match string(input, "Origin")? {
        None | Some("AWS_KMS") => {}
        Some(_) => {
            return Err(KmsError::UnsupportedOperation(
                "Only keys with Origin AWS_KMS are supported.".into(),
            )
            .into());
        }
    }
    if bool_field(input, "MultiRegion")? == Some(true) {
        return Err(
            KmsError::UnsupportedOperation("Multi-Region keys are not supported.".into()).into(),
        );
    }
    let tags = keys::tags(input)?;
    check_tags(&tags)?;
    let description = string(input, "Description")?.unwrap_or_default().to_owned();
    check_description(&description)?;
    let bypass = bool_field(input, "BypassPolicyLockoutSafetyCheck")?.unwrap_or(false);
    let policy = match string(input, "Policy")? {
        Some(p) => p.to_owned(),
        None => latchkey_kms::policy::default_policy(&call.caller.account),
    };
    // Creating a key is authorised by IAM alone: there is no key policy yet.
    let context = ActionContext::new()
        .key("kms:KeySpec", [spec.as_str()])
        .key("kms:KeyUsage", [spec.usage().as_str()])
        .key("kms:KeyOrigin", ["AWS_KMS"])
        .key("kms:MultiRegion", ["false"])
        .key(
            "kms:BypassPolicyLockoutSafetyCheck",
            [if bypass { "true" } else { "false" }],
        )
        .request_tags(&tags);
    call.state
        .authorize_in(call.caller, "kms:CreateKey", "*", call.now, &context)?;
    // Tags at creation need `kms:TagResource` too, as AWS requires.
    if !tags.is_empty() {
        call.state
            .authorize_in(call.caller, "kms:TagResource", "*", call.now, &context)?;
    }
    keys::check_policy(&policy)?;
    let key = keys::create(
        call,
        NewKey {
            description,
            spec,
            manager: KeyManager::Customer,
            policy,
            tags,
        },
        bypass,
    )?;
    Ok(answer(&key, json!({"KeyMetadata": key.metadata()})))
}

pub fn describe_key(call: &JsonCall) -> Result<Answer, ApiError> {
    let key_id = crate::json::required_string(call.input, "KeyId")?;
    // `alias/aws/<service>` names a key AWS makes on first use; describing
    // it makes it, as AWS does.
    let loaded = match AliasName::parse(key_id) {
        Ok(alias) if alias.managed_service().is_some() => keys::managed_key(call, &alias)?,
        _ => keys::resolve(call, key_id)?,
    };
    let context = keys::key_context(call, &loaded)?;
    keys::authorize(call, "DescribeKey", &loaded.key, &context)?;
    Ok(answer(
        &loaded.key,
        json!({"KeyMetadata": loaded.key.metadata()}),
    ))
}

pub fn list_keys(call: &JsonCall) -> Result<Answer, ApiError> {
    call.state.authorize_in(
        call.caller,
        "kms:ListKeys",
        "*",
        call.now,
        &ActionContext::new().key("kms:CallerAccount", [call.caller.account.as_str()]),
    )?;
    let mut listed = Vec::new();
    for stored in call.state.store.list_kms_keys()? {
        let Ok(key) = serde_json::from_str::<Key>(&stored.document) else {
            tracing::error!(key = %stored.id, "stored KMS key is unreadable");
            continue;
        };
        if !key.is_deleted(call.now) {
            listed.push(json!({"KeyId": key.id, "KeyArn": key.arn}));
        }
    }
    let (page, next) = keys::page(call.input, listed)?;
    Ok(Answer::output(keys::paged("Keys", page, next)))
}

/// An alias named by `AliasName` that a customer may manage.
fn customer_alias(call: &JsonCall) -> Result<AliasName, ApiError> {
    let name = crate::json::required_string(call.input, "AliasName")?;
    let alias = AliasName::parse(name)
        .map_err(|e| ApiError::from(KmsError::InvalidAliasName(e.to_string())))?;
    if alias.is_aws_managed() {
        return Err(KmsError::InvalidAliasName(
            "Aliases that begin with alias/aws/ are reserved for AWS managed keys.".into(),
        )
        .into());
    }
    Ok(alias)
}

/// Authorises an alias action on the alias itself (identity policies only:
/// an alias has no policy of its own).
fn authorize_alias(call: &JsonCall, alias: &AliasName) -> Result<(), ApiError> {
    call.state
        .authorize_in(
            call.caller,
            &format!("kms:{}", call.operation),
            &alias.arn(call.state.region(), &call.caller.account),
            call.now,
            &ActionContext::new().key("kms:CallerAccount", [call.caller.account.as_str()]),
        )
        .map_err(ApiError::from)
}

/// The target key of an alias change: a customer key the caller may point
/// an alias at (the action on the key too, as AWS requires).
fn alias_target(call: &JsonCall, member: &str) -> Result<Loaded, ApiError> {
    let key_id = crate::json::required_string(call.input, member)?;
    if key_id.starts_with("alias/") || key_id.contains(":alias/") {
        return Err(validation(
            "TargetKeyId must be a key id or key ARN, not an alias.",
        ));
    }
    let loaded = keys::resolve(call, key_id)?;
    if loaded.key.manager == KeyManager::Aws {
        return Err(KmsError::UnsupportedOperation(
            "An alias cannot point to an AWS managed key.".into(),
        )
        .into());
    }
    if loaded.key.state == latchkey_kms::key::KeyState::PendingDeletion {
        return Err(
            KmsError::InvalidState(format!("{} is pending deletion.", loaded.key.arn)).into(),
        );
    }
    let context = keys::key_context(call, &loaded)?;
    keys::authorize(call, call.operation, &loaded.key, &context)?;
    Ok(loaded)
}

pub fn create_alias(call: &JsonCall) -> Result<Answer, ApiError> {
    let alias = customer_alias(call)?;
    authorize_alias(call, &alias)?;
    let target = alias_target(call, "TargetKeyId")?;
    match call
        .state
        .store
        .create_kms_alias(alias.as_str(), &target.key.id, call.now)
    {
        Ok(()) => Ok(answer(&target.key, json!({}))),
        Err(latchkey_store::StoreError::EntityAlreadyExists { .. }) => {
            Err(KmsError::AlreadyExists(format!(
                "An alias with the name {} already exists",
                alias.arn(call.state.region(), &call.caller.account)
            ))
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The key an existing alias points at, authorised for this operation.
fn current_target(call: &JsonCall, alias: &AliasName) -> Result<Loaded, ApiError> {
    let missing = || {
        ApiError::from(KmsError::NotFound(format!(
            "Alias {} is not found.",
            alias.arn(call.state.region(), &call.caller.account)
        )))
    };
    let found = call
        .state
        .store
        .kms_alias(alias.as_str())?
        .ok_or_else(missing)?;
    let id = KeyUuid::parse(&found.key_id).ok_or_else(missing)?;
    let loaded = keys::by_id(call, &id)?.ok_or_else(missing)?;
    let context = keys::key_context(call, &loaded)?;
    keys::authorize(call, call.operation, &loaded.key, &context)?;
    Ok(loaded)
}

pub fn update_alias(call: &JsonCall) -> Result<Answer, ApiError> {
    let alias = customer_alias(call)?;
    authorize_alias(call, &alias)?;
    let old = current_target(call, &alias)?;
    let new = alias_target(call, "TargetKeyId")?;
    if old.key.usage != new.key.usage || old.key.spec != new.key.spec {
        return Err(validation(
            "The new target key must have the same key spec and key usage as the current one.",
        ));
    }
    if !call
        .state
        .store
        .update_kms_alias(alias.as_str(), &new.key.id, call.now)?
    {
        return Err(KmsError::NotFound("The alias was deleted.".into()).into());
    }
    Ok(answer(&new.key, json!({})))
}

pub fn delete_alias(call: &JsonCall) -> Result<Answer, ApiError> {
    let alias = customer_alias(call)?;
    authorize_alias(call, &alias)?;
    let target = current_target(call, &alias)?;
    call.state.store.delete_kms_alias(alias.as_str())?;
    Ok(answer(&target.key, json!({})))
}

pub fn list_aliases(call: &JsonCall) -> Result<Answer, ApiError> {
    let region = call.state.region().to_owned();
    let account = call.caller.account.clone();
    let only = match string(call.input, "KeyId")? {
        Some(id) => {
            let loaded = keys::resolve(call, id)?;
            let context = keys::key_context(call, &loaded)?;
            keys::authorize(call, "ListAliases", &loaded.key, &context)?;
            Some(loaded.key.id)
        }
        None => {
            call.state.authorize_in(
                call.caller,
                "kms:ListAliases",
                "*",
                call.now,
                &ActionContext::new().key("kms:CallerAccount", [account.as_str()]),
            )?;
            None
        }
    };
    let aliases: Vec<Value> = call
        .state
        .store
        .list_kms_aliases()?
        .into_iter()
        .filter(|a| only.as_deref().is_none_or(|id| a.key_id == id))
        .map(|a| {
            json!({
                "AliasName": a.name,
                "AliasArn": format!("arn:aws:kms:{region}:{account}:{}", a.name),
                "TargetKeyId": a.key_id,
                "CreationDate": a.created,
                "LastUpdatedDate": a.updated,
            })
        })
        .collect();
    let (page, next) = keys::page(call.input, aliases)?;
    Ok(Answer::output(keys::paged("Aliases", page, next)))
}

pub fn enable_key(call: &JsonCall) -> Result<Answer, ApiError> {
    let (key, ()) = keys::update(call, |c| c, |k| Ok((k.enable()?, None)))?;
    Ok(answer(&key, json!({})))
}

pub fn disable_key(call: &JsonCall) -> Result<Answer, ApiError> {
    let (key, ()) = keys::update(call, |c| c, |k| Ok((k.disable()?, None)))?;
    Ok(answer(&key, json!({})))
}

pub fn schedule_key_deletion(call: &JsonCall) -> Result<Answer, ApiError> {
    let days = int_field(call.input, "PendingWindowInDays", 7, 30)?;
    let shown = days.unwrap_or(30).to_string();
    let (key, date) = keys::update(
        call,
        |c| {
            c.key(
                "kms:ScheduleKeyDeletionPendingWindowInDays",
                [shown.as_str()],
            )
        },
        |k| Ok((k.schedule_deletion(days, call.now)?, None)),
    )?;
    let output = json!({
        "KeyId": key.arn,
        "DeletionDate": date,
        "KeyState": key.state.as_str(),
        "PendingWindowInDays": key.pending_window_days,
    });
    Ok(answer(&key, output))
}

pub fn cancel_key_deletion(call: &JsonCall) -> Result<Answer, ApiError> {
    let (key, ()) = keys::update(call, |c| c, |k| Ok((k.cancel_deletion()?, None)))?;
    Ok(answer(&key, json!({"KeyId": key.arn})))
}

pub fn enable_key_rotation(call: &JsonCall) -> Result<Answer, ApiError> {
    let days = int_field(call.input, "RotationPeriodInDays", 90, 2560)?;
    let shown = days.unwrap_or(365).to_string();
    let (key, ()) = keys::update(
        call,
        |c| c.key("kms:RotationPeriodInDays", [shown.as_str()]),
        |k| Ok((k.enable_rotation(days, call.now)?, None)),
    )?;
    Ok(answer(&key, json!({})))
}

pub fn disable_key_rotation(call: &JsonCall) -> Result<Answer, ApiError> {
    let (key, ()) = keys::update(call, |c| c, |k| Ok((k.disable_rotation()?, None)))?;
    Ok(answer(&key, json!({})))
}

pub fn get_key_rotation_status(call: &JsonCall) -> Result<Answer, ApiError> {
    let loaded = keys::load_authorized(call, "KeyId", |c| c)?;
    Ok(answer(&loaded.key, loaded.key.rotation_status()))
}

pub fn rotate_key_on_demand(call: &JsonCall) -> Result<Answer, ApiError> {
    let (key, version) = keys::update(
        call,
        |c| c,
        |k| {
            let v = k.rotate_on_demand(call.now)?;
            Ok((v, Some(v)))
        },
    )?;
    tracing::info!(key = %key.arn, version, "KMS key rotated on demand");
    Ok(answer(&key, json!({"KeyId": key.arn})))
}

pub fn list_key_rotations(call: &JsonCall) -> Result<Answer, ApiError> {
    let loaded = keys::load_authorized(call, "KeyId", |c| c)?;
    let (page, next) = keys::page(call.input, loaded.key.rotations())?;
    Ok(answer(&loaded.key, keys::paged("Rotations", page, next)))
}

fn check_policy_name(call: &JsonCall) -> Result<(), ApiError> {
    match string(call.input, "PolicyName")? {
        None | Some("default") => Ok(()),
        Some(_) => Err(KmsError::NotFound("The only key policy is named default.".into()).into()),
    }
}

pub fn get_key_policy(call: &JsonCall) -> Result<Answer, ApiError> {
    check_policy_name(call)?;
    let loaded = keys::load_authorized(call, "KeyId", |c| c)?;
    let output = json!({"Policy": loaded.key.policy, "PolicyName": "default"});
    Ok(answer(&loaded.key, output))
}

pub fn list_key_policies(call: &JsonCall) -> Result<Answer, ApiError> {
    let loaded = keys::load_authorized(call, "KeyId", |c| c)?;
    Ok(answer(
        &loaded.key,
        json!({"PolicyNames": ["default"], "Truncated": false}),
    ))
}

pub fn put_key_policy(call: &JsonCall) -> Result<Answer, ApiError> {
    check_policy_name(call)?;
    let policy = crate::json::required_string(call.input, "Policy")?.to_owned();
    let bypass = bool_field(call.input, "BypassPolicyLockoutSafetyCheck")?.unwrap_or(false);
    let flag = if bypass { "true" } else { "false" };
    let (key, ()) = keys::update(
        call,
        |c| c.key("kms:BypassPolicyLockoutSafetyCheck", [flag]),
        |k| {
            if k.manager == KeyManager::Aws {
                return Err(KmsError::UnsupportedOperation(
                    "The policy of an AWS managed key cannot be changed.".into(),
                )
                .into());
            }
            if bypass {
                keys::check_policy(&policy)?;
            } else {
                keys::check_lockout(call, &k.arn, &policy)?;
            }
            k.policy.clone_from(&policy);
            Ok(((), None))
        },
    )?;
    Ok(answer(&key, json!({})))
}

pub fn update_key_description(call: &JsonCall) -> Result<Answer, ApiError> {
    let description = crate::json::required_string(call.input, "Description")?.to_owned();
    check_description(&description)?;
    let (key, ()) = keys::update(
        call,
        |c| c,
        |k| {
            if k.manager == KeyManager::Aws {
                return Err(KmsError::UnsupportedOperation(
                    "The description of an AWS managed key cannot be changed.".into(),
                )
                .into());
            }
            k.description.clone_from(&description);
            Ok(((), None))
        },
    )?;
    Ok(answer(&key, json!({})))
}

pub fn tag_resource(call: &JsonCall) -> Result<Answer, ApiError> {
    let tags = keys::tags(call.input)?;
    check_tags(&tags)?;
    let (key, ()) = keys::update(
        call,
        |c| c.request_tags(&tags),
        |k| {
            if k.manager == KeyManager::Aws {
                return Err(KmsError::UnsupportedOperation(
                    "AWS managed keys cannot be tagged.".into(),
                )
                .into());
            }
            k.tag(&tags)?;
            Ok(((), None))
        },
    )?;
    Ok(answer(&key, json!({})))
}

pub fn untag_resource(call: &JsonCall) -> Result<Answer, ApiError> {
    let names: Vec<String> = string_list(call.input, "TagKeys")?
        .ok_or_else(|| validation("TagKeys is required."))?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (key, ()) = keys::update(
        call,
        |c| c.tag_keys(names.iter().map(String::as_str)),
        |k| {
            k.tags.retain(|(n, _)| !names.contains(n));
            Ok(((), None))
        },
    )?;
    Ok(answer(&key, json!({})))
}

pub fn list_resource_tags(call: &JsonCall) -> Result<Answer, ApiError> {
    let loaded = keys::load_authorized(call, "KeyId", |c| c)?;
    let tags: Vec<Value> = loaded
        .key
        .tags
        .iter()
        .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
        .collect();
    let (page, next) = keys::page(call.input, tags)?;
    Ok(answer(&loaded.key, keys::paged("Tags", page, next)))
}
