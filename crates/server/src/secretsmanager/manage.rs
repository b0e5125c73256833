//! The operations on a secret as a whole: `CreateSecret`, `UpdateSecret`,
//! `DescribeSecret`, `ListSecrets`, `DeleteSecret`, `RestoreSecret`,
//! `TagResource`, `UntagResource` and the resource policy's four calls.

use latchkey_identity::ActionContext;
use latchkey_policy::{Effect, PolicyKind, Principal};
use latchkey_secrets::secret::{AWSCURRENT, Secret, arn_suffix, check_name, check_tags};
use serde_json::{Map, Value, json};

use super::common::*;
use super::values::{listed, parse_filters};
use crate::error::ApiError;
use crate::json::{Answer, JsonCall};

/// `KmsKeyId`'s longest form, as botocore's model has it.
const MAX_KMS_KEY_ID: usize = 2048;

/// What `ValidateResourcePolicy` and `PublicPolicyException` say of a
/// policy that grants broad access.
const PUBLIC_ACCESS: &str = "An Allow statement grants access to any principal (Principal \"*\" or NotPrincipal) without a StringEquals or ArnEquals condition on aws:PrincipalAccount, aws:PrincipalArn, aws:PrincipalOrgID or aws:SourceAccount.";

/// The keys of a request that sets tags.
fn request_tag_context(context: ActionContext, tags: &[(String, String)]) -> ActionContext {
    context
        .request_tags(tags)
        .tag_keys(tags.iter().map(|(k, _)| k.as_str()))
}

pub fn create_secret(call: &JsonCall) -> Result<Answer, ApiError> {
    let name = required_str(call.input, "Name")?;
    check_name(name)?;
    if name.starts_with(latchkey_secrets::secret::RESERVED_PREFIX) {
        // Latchkey's own secrets (`latchkey/db/DB/USER`) are made by
        // `db set-password`; one made first by a caller would receive the
        // password and every rotation of it.
        return Err(invalid(format!(
            "Names under {} are Latchkey's own.",
            latchkey_secrets::secret::RESERVED_PREFIX
        )));
    }
    if call.input.contains_key("AddReplicaRegions") {
        return Err(invalid(
            "Replicating secrets to other regions is not supported.",
        ));
    }
    let description = optional_str(call.input, "Description")?.unwrap_or("");
    if description.chars().count() > 2048 {
        return Err(invalid("Description must be at most 2048 characters."));
    }
    let kms_key_id = optional_str(call.input, "KmsKeyId")?;
    if let Some(key) = kms_key_id {
        check_length("KmsKeyId", key, MAX_KMS_KEY_ID)?;
    }
    let tags = tags(call.input)?;
    check_tags(&tags)?;
    let value = request_value(call.input)?;
    let token = request_token(call.input)?;
    let suffix = arn_suffix(latchkey_store::random::<6>().map_err(|_| ApiError::internal())?);
    let mut secret = Secret::new(
        call.state.region(),
        &call.caller.account,
        name,
        &suffix,
        call.now,
    )?;
    let mut context = ActionContext::new()
        .key("secretsmanager:Name", [name])
        .key("secretsmanager:Description", [description]);
    if let Some(key) = kms_key_id {
        context = context.key("secretsmanager:KmsKeyId", [key]);
    }
    let context = request_tag_context(context, &tags);
    // A refusal names the secret without a suffix, whether the name is
    // taken or free: the answer must not tell them apart.
    let shown = absent_arn(call, name);
    if let Some(existing) = find(call, name)? {
        return repeated_create(call, existing, &context, &shown, &token, value.as_ref());
    }
    authorize_as(
        call,
        "secretsmanager:CreateSecret",
        &secret.arn,
        &shown,
        None,
        &context,
    )?;
    // Tags at creation need `TagResource` too, as AWS requires.
    if !tags.is_empty() {
        authorize_as(
            call,
            "secretsmanager:TagResource",
            &secret.arn,
            &shown,
            None,
            &context,
        )?;
    }
    secret.description = description.to_owned();
    secret.kms_key_id = kms_key_id.map(str::to_owned);
    secret.tags = tags;
    if value.is_some() {
        secret.add_version(&token, &[AWSCURRENT.to_owned()], call.now)?;
    }
    let document = serde_json::to_string(&secret)
        .map_err(|e| ApiError::internal().because(format!("serialising a secret: {e}")))?;
    let encoded = value.as_ref().map(|v| v.encode());
    match call.state.store.create_secret(
        &secret.arn,
        &secret.name,
        &document,
        encoded
            .as_ref()
            .map(|bytes| (token.as_str(), bytes.as_slice())),
    ) {
        Ok(()) => {}
        // Another request created it in between: answer as for a repeat,
        // authorised on the secret that now exists.
        Err(latchkey_store::StoreError::EntityAlreadyExists { .. }) => {
            let existing = find(call, name)?.ok_or_else(|| {
                ApiError::new(
                    400,
                    "InvalidRequestException",
                    "The secret was changed by another request; try again.",
                )
                .because("a secret created concurrently was gone again")
            })?;
            return repeated_create(call, existing, &context, &shown, &token, value.as_ref());
        }
        Err(e) => return Err(e.into()),
    }
    let mut out = Map::new();
    if value.is_some() {
        out.insert("VersionId".into(), Value::from(token));
    }
    Ok(answer(&secret, out))
}

/// `CreateSecret` for a name that exists (found first, or created by
/// another request in between): authorised on the secret that exists,
/// with its own condition keys and resource policy besides the request's;
/// then success only for a repeat of the same request. Whether a value
/// is the one stored is told only to a caller who may also
/// `PutSecretValue` on the secret: to one who may only create, a repeat
/// would confirm a guessed value.
fn repeated_create(
    call: &JsonCall,
    existing: Loaded,
    request: &ActionContext,
    shown: &str,
    token: &str,
    value: Option<&latchkey_secrets::SecretValue>,
) -> Result<Answer, ApiError> {
    let secret = existing.secret;
    let on_secret = secret_context(&secret);
    authorize_as(
        call,
        "secretsmanager:CreateSecret",
        &secret.arn,
        shown,
        Some(&secret),
        &with_keys(on_secret.clone(), request),
    )?;
    if secret.is_deleted() {
        return Err(ApiError::new(
            400,
            "InvalidRequestException",
            "You can't create this secret because a secret with this name is already scheduled for deletion.",
        ));
    }
    if let (Some(value), Some(_)) = (value, secret.version(token)) {
        // Decided before the values are compared, whatever they are.
        authorize_as(
            call,
            "secretsmanager:PutSecretValue",
            &secret.arn,
            shown,
            Some(&secret),
            &on_secret.key("secretsmanager:VersionStage", [AWSCURRENT]),
        )?;
        if value_of(call, &secret, token)?.same_as(value) {
            let mut out = Map::new();
            out.insert("VersionId".into(), Value::from(token));
            return Ok(answer(&secret, out));
        }
    }
    Err(ApiError::new(
        400,
        "ResourceExistsException",
        format!(
            "The operation failed because the secret {} already exists.",
            secret.name
        ),
    ))
}

pub fn update_secret(call: &JsonCall) -> Result<Answer, ApiError> {
    let description = optional_str(call.input, "Description")?;
    if description.is_some_and(|d| d.chars().count() > 2048) {
        return Err(invalid("Description must be at most 2048 characters."));
    }
    let kms_key_id = optional_str(call.input, "KmsKeyId")?;
    if let Some(key) = kms_key_id {
        check_length("KmsKeyId", key, MAX_KMS_KEY_ID)?;
    }
    let value = request_value(call.input)?;
    let token = request_token(call.input)?;
    let (secret, added) = update(
        call,
        |mut c, _| {
            if let Some(d) = description {
                c = c.key("secretsmanager:Description", [d]);
            }
            if let Some(k) = kms_key_id {
                c = c.key("secretsmanager:KmsKeyId", [k]);
            }
            c
        },
        |secret, written| {
            secret.check_not_deleted()?;
            if let Some(d) = description {
                secret.description = d.to_owned();
            }
            if let Some(k) = kms_key_id {
                secret.kms_key_id = Some(k.to_owned());
            }
            secret.last_changed = call.now;
            match &value {
                Some(value) => {
                    add_value(
                        call,
                        secret,
                        written,
                        &token,
                        value.clone(),
                        &[AWSCURRENT.to_owned()],
                    )?;
                    Ok(true)
                }
                None => Ok(false),
            }
        },
    )?;
    let mut out = Map::new();
    if added || value.is_some() {
        out.insert("VersionId".into(), Value::from(token));
    }
    Ok(answer(&secret, out))
}

/// What `DescribeSecret` and `ListSecrets` say of a secret.
fn describe(secret: &Secret, with_versions_key: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("ARN".into(), Value::from(secret.arn.as_str()));
    out.insert("Name".into(), Value::from(secret.name.as_str()));
    if !secret.description.is_empty() {
        out.insert(
            "Description".into(),
            Value::from(secret.description.as_str()),
        );
    }
    if let Some(k) = &secret.kms_key_id {
        out.insert("KmsKeyId".into(), Value::from(k.as_str()));
    }
    let rotation = secret.rotation.as_ref();
    out.insert(
        "RotationEnabled".into(),
        Value::from(rotation.is_some_and(|r| r.enabled)),
    );
    if let Some(r) = rotation {
        if !r.lambda_arn.is_empty() {
            out.insert(
                "RotationLambdaARN".into(),
                Value::from(r.lambda_arn.as_str()),
            );
        }
        let mut rules = Map::new();
        if let Some(d) = r.rules.automatically_after_days {
            rules.insert("AutomaticallyAfterDays".into(), Value::from(d));
        }
        if let Some(d) = &r.rules.duration {
            rules.insert("Duration".into(), Value::from(d.as_str()));
        }
        if let Some(e) = &r.rules.schedule_expression {
            rules.insert("ScheduleExpression".into(), Value::from(e.as_str()));
        }
        out.insert("RotationRules".into(), Value::Object(rules));
        if let Some(t) = r.last_rotated {
            out.insert("LastRotatedDate".into(), time(t));
        }
        if let (true, Some(t)) = (r.enabled, r.next_rotation) {
            out.insert("NextRotationDate".into(), time(t));
        }
    }
    out.insert("LastChangedDate".into(), time(secret.last_changed));
    if let Some(t) = secret.last_accessed {
        out.insert("LastAccessedDate".into(), time(t));
    }
    if let Some(t) = secret.deletion_date {
        out.insert("DeletedDate".into(), time(t));
    }
    if !secret.tags.is_empty() {
        out.insert("Tags".into(), tags_json(&secret.tags));
    }
    let stages: Map<String, Value> = secret
        .versions_to_stages()
        .map(|(id, stages)| (id.to_owned(), json!(stages)))
        .collect();
    out.insert(with_versions_key.into(), Value::Object(stages));
    out.insert("CreatedDate".into(), time(secret.created));
    out
}

pub fn describe_secret(call: &JsonCall) -> Result<Answer, ApiError> {
    let loaded = load_authorized(call, |c, _| c)?;
    Ok(answer(
        &loaded.secret,
        describe(&loaded.secret, "VersionIdsToStages"),
    ))
}

pub fn list_secrets(call: &JsonCall) -> Result<Answer, ApiError> {
    authorize(call, "*", None, &ActionContext::new())?;
    let filters = parse_filters(call.input)?;
    let include_deleted = optional_bool(call.input, "IncludePlannedDeletion")?.unwrap_or(false);
    let mut secrets = listed(call, &filters, include_deleted)?;
    match optional_str(call.input, "SortOrder")? {
        None | Some("desc") => secrets.reverse(),
        Some("asc") => {}
        Some(_) => return Err(invalid("SortOrder must be asc or desc.")),
    }
    let entries: Vec<Value> = secrets
        .iter()
        .map(|s| Value::Object(describe(s, "SecretVersionsToStages")))
        .collect();
    let (entries, next) = page(call.input, entries, 100)?;
    let mut output = json!({"SecretList": entries});
    if let Some(next) = next {
        output["NextToken"] = Value::from(next);
    }
    Ok(Answer {
        output,
        resources: Vec::new(),
        response_elements: None,
    })
}

pub fn delete_secret(call: &JsonCall) -> Result<Answer, ApiError> {
    let window = optional_int(call.input, "RecoveryWindowInDays", i64::MIN..=i64::MAX)?;
    let force = optional_bool(call.input, "ForceDeleteWithoutRecovery")?.unwrap_or(false);
    let (secret, deletion_date) = update(
        call,
        |mut c, _| {
            if let Some(days) = window {
                c = c.key("secretsmanager:RecoveryWindowInDays", [days.to_string()]);
            }
            c.key(
                "secretsmanager:ForceDeleteWithoutRecovery",
                [if force { "true" } else { "false" }],
            )
        },
        |secret, _| Ok(secret.schedule_deletion(window, force, call.now)?),
    )?;
    if force {
        call.state.store.purge_secret(&secret.arn)?;
    }
    let mut out = Map::new();
    out.insert("DeletionDate".into(), time(deletion_date));
    Ok(answer(&secret, out))
}

pub fn restore_secret(call: &JsonCall) -> Result<Answer, ApiError> {
    let (secret, ()) = update(
        call,
        |c, _| c,
        |secret, _| {
            secret.restore(call.now);
            Ok(())
        },
    )?;
    Ok(answer(&secret, Map::new()))
}

pub fn tag_resource(call: &JsonCall) -> Result<Answer, ApiError> {
    let tags = tags(call.input)?;
    if tags.is_empty() {
        return Err(invalid("Tags must hold at least one tag."));
    }
    // Before authorising: a request giving a key twice has no single
    // `aws:RequestTag/KEY` to decide on.
    check_tags(&tags)?;
    let (secret, ()) = update(
        call,
        |c, _| request_tag_context(c, &tags),
        |secret, _| {
            secret.check_not_deleted()?;
            secret.tag(&tags)?;
            Ok(())
        },
    )?;
    Ok(answer(&secret, Map::new()))
}

pub fn untag_resource(call: &JsonCall) -> Result<Answer, ApiError> {
    let keys =
        string_list(call.input, "TagKeys")?.ok_or_else(|| invalid("TagKeys is required."))?;
    if keys.iter().any(|k| k.is_empty() || k.chars().count() > 128) {
        return Err(invalid("A tag key must be 1 to 128 characters."));
    }
    let (secret, ()) = update(
        call,
        |c, _| c.tag_keys(keys.iter().map(String::as_str)),
        |secret, _| {
            secret.check_not_deleted()?;
            secret.untag(&keys);
            Ok(())
        },
    )?;
    Ok(answer(&secret, Map::new()))
}

/// The policy's findings, as `ValidateResourcePolicy` reports them.
fn policy_findings(doc: &str) -> Vec<String> {
    match latchkey_policy::parse(doc, PolicyKind::Resource) {
        Ok(_) => Vec::new(),
        Err(findings) => findings.iter().map(ToString::to_string).collect(),
    }
}

/// The condition keys that, compared exactly, confine a grant to one
/// account, organisation or principal.
const CONFINING_KEYS: &[&str] = &[
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalOrgID",
    "aws:SourceAccount",
];

/// Whether a statement's conditions confine it: one of them compares a
/// [`CONFINING_KEYS`] key with `StringEquals` or `ArnEquals` (not a
/// `Like`, not `IfExists`, not over a set, which all hold for an absent
/// key or any value) against values without a wildcard or a policy
/// variable. Conditions are ANDed: one such is enough.
fn confined(conditions: &[(String, String, Vec<String>)]) -> bool {
    use latchkey_policy::condition::{BaseOp, Operator};
    conditions.iter().any(|(op, key, values)| {
        let exact = Operator::parse(op).is_some_and(|op| {
            matches!(op.base, BaseOp::StringEquals | BaseOp::ArnEquals)
                && !op.if_exists
                && op.set.is_none()
        });
        exact
            && CONFINING_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
            && !values.is_empty()
            && values
                .iter()
                .all(|v| !v.is_empty() && !v.contains(['*', '?']) && !v.contains("${"))
    })
}

/// Whether a principal is anyone: `*`, or a list holding a wildcard.
fn anyone(principal: &Principal) -> bool {
    match principal {
        Principal::Any => true,
        Principal::Typed(types) => types
            .iter()
            .any(|(_, values)| values.iter().any(|v| v.contains(['*', '?']))),
    }
}

/// Whether a resource policy grants broad access: an Allow with
/// `NotPrincipal` (everyone but a few), or whose principal is anyone,
/// unless its conditions confine it ([`confined`]). A policy that does
/// not parse grants nothing (it is refused anyway).
fn grants_public_access(doc: &str) -> bool {
    let Ok(policy) = latchkey_policy::parse(doc, PolicyKind::Resource) else {
        return false;
    };
    policy.statements.iter().any(|s| {
        s.effect == Effect::Allow
            && match &s.principal {
                Some((_, true)) => true,
                Some((principal, false)) => anyone(principal) && !confined(&s.conditions),
                None => !confined(&s.conditions),
            }
    })
}

pub fn put_resource_policy(call: &JsonCall) -> Result<Answer, ApiError> {
    let doc = required_str(call.input, "ResourcePolicy")?;
    if doc.len() > 20_480 {
        return Err(invalid("ResourcePolicy must be at most 20480 characters."));
    }
    let block_public = optional_bool(call.input, "BlockPublicPolicy")?.unwrap_or(false);
    if let Some(first) = policy_findings(doc).first() {
        return Err(ApiError::new(
            400,
            "MalformedPolicyDocumentException",
            format!("This resource policy contains an unsupported or invalid element: {first}"),
        ));
    }
    if block_public && grants_public_access(doc) {
        return Err(ApiError::new(
            400,
            "PublicPolicyException",
            format!(
                "The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret: {PUBLIC_ACCESS}"
            ),
        ));
    }
    let (secret, ()) = update(
        call,
        |c, _| {
            c.key(
                "secretsmanager:BlockPublicPolicy",
                [if block_public { "true" } else { "false" }],
            )
        },
        |secret, _| {
            secret.check_not_deleted()?;
            secret.resource_policy = Some(doc.to_owned());
            secret.last_changed = call.now;
            Ok(())
        },
    )?;
    Ok(answer(&secret, Map::new()))
}

pub fn get_resource_policy(call: &JsonCall) -> Result<Answer, ApiError> {
    let loaded = load_authorized(call, |c, _| c)?;
    let mut out = Map::new();
    if let Some(doc) = &loaded.secret.resource_policy {
        out.insert("ResourcePolicy".into(), Value::from(doc.as_str()));
    }
    Ok(answer(&loaded.secret, out))
}

pub fn delete_resource_policy(call: &JsonCall) -> Result<Answer, ApiError> {
    let (secret, ()) = update(
        call,
        |c, _| c,
        |secret, _| {
            secret.check_not_deleted()?;
            secret.resource_policy = None;
            secret.last_changed = call.now;
            Ok(())
        },
    )?;
    Ok(answer(&secret, Map::new()))
}

pub fn validate_resource_policy(call: &JsonCall) -> Result<Answer, ApiError> {
    let doc = required_str(call.input, "ResourcePolicy")?;
    let secret = match optional_str(call.input, "SecretId")? {
        Some(_) => Some(load_authorized(call, |c, _| c)?.secret),
        None => {
            authorize(call, "*", None, &ActionContext::new())?;
            None
        }
    };
    let mut errors: Vec<Value> = policy_findings(doc)
        .into_iter()
        .map(|m| json!({"CheckName": "SYNTAX_CHECKING", "ErrorMessage": m}))
        .collect();
    if grants_public_access(doc) {
        errors.push(json!({
            "CheckName": "PUBLIC_ACCESS_CHECKING",
            "ErrorMessage": PUBLIC_ACCESS,
        }));
    }
    let output = json!({
        "PolicyValidationPassed": errors.is_empty(),
        "ValidationErrors": errors,
    });
    Ok(match secret {
        Some(secret) => {
            let Value::Object(map) = output else {
                return Err(ApiError::internal());
            };
            let mut answer = answer(&secret, map);
            if let Value::Object(o) = &mut answer.output {
                o.remove("ARN");
                o.remove("Name");
            }
            answer
        }
        None => Answer {
            output,
            resources: Vec::new(),
            response_elements: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(statement: Value) -> String {
        json!({"Version": "2012-10-17", "Statement": [statement]}).to_string()
    }

    fn allow(extra: Value) -> String {
        let mut s =
            json!({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"});
        if let (Value::Object(s), Value::Object(extra)) = (&mut s, extra) {
            s.extend(extra);
        }
        policy(s)
    }

    #[test]
    fn broad_grants_are_public_unless_confined() {
        let me = "arn:aws:iam::123456789012:root";
        for open in [
            json!({"Principal": "*"}),
            json!({"Principal": {"AWS": "*"}}),
            json!({"Principal": {"AWS": ["*"]}}),
            json!({"Principal": {"AWS": [me, "*"]}}),
            json!({"NotPrincipal": {"AWS": me}}),
            json!({"Principal": "*", "Condition": {}}),
            json!({"Principal": "*", "Condition": {"StringLike": {"aws:PrincipalArn": "*"}}}),
            json!({"Principal": "*", "Condition": {"Null": {"aws:PrincipalArn": "false"}}}),
            json!({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": "1234*"}}}),
            json!({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": "12345678901?"}}}),
            json!({"Principal": "*", "Condition": {"StringEqualsIfExists": {"aws:PrincipalAccount": "123456789012"}}}),
            json!({"Principal": "*", "Condition": {"ForAllValues:StringEquals": {"aws:PrincipalAccount": ["123456789012"]}}}),
            json!({"Principal": "*", "Condition": {"ForAnyValue:StringEquals": {"aws:PrincipalAccount": ["123456789012"]}}}),
            json!({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": "${aws:PrincipalAccount}"}}}),
            json!({"Principal": "*", "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "999999999999"}}}),
            json!({"Principal": "*", "Condition": {"StringEquals": {"aws:username": "bob"}}}),
            json!({"Principal": "*", "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/bob"}}}),
        ] {
            let doc = allow(open.clone());
            assert!(
                latchkey_policy::parse(&doc, PolicyKind::Resource).is_ok(),
                "{open}: {:?}",
                latchkey_policy::parse(&doc, PolicyKind::Resource).err()
            );
            assert!(grants_public_access(&doc), "{open}");
        }
        for confined in [
            json!({"Principal": {"AWS": me}}),
            json!({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": "123456789012"}}}),
            json!({"Principal": "*", "Condition": {"stringequals": {"AWS:PRINCIPALACCOUNT": "123456789012"}}}),
            json!({"Principal": "*", "Condition": {"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/bob"}}}),
            json!({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": ["o-abc", "o-def"]}}}),
            json!({"Principal": "*", "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}, "StringLike": {"aws:userid": "*"}}}),
        ] {
            let doc = allow(confined.clone());
            if latchkey_policy::parse(&doc, PolicyKind::Resource).is_err() {
                // An operator the parser refuses is refused anyway.
                continue;
            }
            assert!(!grants_public_access(&doc), "{confined}");
        }
        let deny =
            policy(json!({"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}));
        assert!(!grants_public_access(&deny));
        assert!(!grants_public_access("not json"));
    }
}
