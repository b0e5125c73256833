//! What every KMS operation on a key shares: resolving the key a request
//! names (id, ARN, alias or alias ARN), purging a key whose deletion took
//! effect, running an automatic rotation that fell due, authorising with
//! the key policy as AWS does (it must allow the caller, directly or by
//! delegating to the account's IAM policies) and the condition keys KMS
//! defines, and writing a key back without losing a concurrent change.

use latchkey_audit::Resource;
use latchkey_identity::ActionContext;
use latchkey_kms::context::EncryptionContext;
use latchkey_kms::key::{Key, KeyManager, NewKey};
use latchkey_kms::key_id::{AliasName, KeyRef, KeyUuid};
use latchkey_kms::{KmsError, policy};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::json::JsonCall;

pub const RESOURCE_TYPE: &str = "AWS::KMS::Key";

/// How many times a write is retried when another writer changed the key.
const WRITE_ATTEMPTS: usize = 8;

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> Self {
        let reason = e.to_string();
        ApiError::new(e.status(), e.code(), e.message()).because(reason)
    }
}

pub fn validation(message: impl Into<String>) -> ApiError {
    KmsError::Validation(message.into()).into()
}

/// A key as read, with the revision its write must match.
pub struct Loaded {
    pub key: Key,
    pub revision: i64,
    /// The alias the request named it by (`kms:RequestAlias`).
    pub alias: Option<AliasName>,
}

fn read(call: &JsonCall, id: &str) -> Result<Option<(Key, i64)>, ApiError> {
    let Some(stored) = call.state.store.kms_key(id)? else {
        return Ok(None);
    };
    let key: Key = serde_json::from_str(&stored.document).map_err(|e| {
        ApiError::internal().because(format!("stored KMS key {id} is unreadable: {e}"))
    })?;
    if key.is_deleted(call.now) {
        call.state.store.purge_kms_key(id)?;
        return Ok(None);
    }
    Ok(Some((key, stored.revision)))
}

/// The key with id `id`, if it exists (and its deletion has not taken
/// effect); a rotation that fell due is done first.
pub fn by_id(call: &JsonCall, id: &KeyUuid) -> Result<Option<Loaded>, ApiError> {
    let id = id.to_string();
    for _ in 0..WRITE_ATTEMPTS {
        let Some((mut key, revision)) = read(call, &id)? else {
            return Ok(None);
        };
        let Some(version) = key.rotate_if_due(call.now) else {
            return Ok(Some(Loaded {
                key,
                revision,
                alias: None,
            }));
        };
        let material = latchkey_kms::random_bytes(key.spec.material_len())?;
        if save(call, &key, revision, Some((version, &material)))? {
            tracing::info!(key = %key.arn, version, "KMS key rotated automatically");
            return Ok(Some(Loaded {
                key,
                revision: revision + 1,
                alias: None,
            }));
        }
    }
    Err(conflict())
}

fn conflict() -> ApiError {
    ApiError::new(
        400,
        "ConflictException",
        "The key was changed by another request; try again.",
    )
    .because("too many concurrent writers")
}

/// The key a `KeyId` member names. An unknown key or alias is
/// `NotFoundException`, as AWS answers it (KMS authorises with the key's
/// own policy, so there is nothing to authorise a missing key with).
pub fn resolve(call: &JsonCall, key_id: &str) -> Result<Loaded, ApiError> {
    let region = call.state.region();
    let account = &call.caller.account;
    let not_found = |what: String| ApiError::from(KmsError::NotFound(what));
    match KeyRef::parse(key_id, region, account)? {
        KeyRef::Id(id) => by_id(call, &id)?.ok_or_else(|| {
            not_found(format!(
                "Key '{}' does not exist",
                latchkey_kms::key_id::key_arn(region, account, &id)
            ))
        }),
        KeyRef::Alias(alias) => {
            let missing = || {
                not_found(format!(
                    "Alias {} is not found.",
                    alias.arn(region, account)
                ))
            };
            let target = call
                .state
                .store
                .kms_alias(alias.as_str())?
                .ok_or_else(missing)?;
            let id = KeyUuid::parse(&target.key_id).ok_or_else(|| {
                ApiError::internal()
                    .because(format!("alias {} names a malformed key id", alias.as_str()))
            })?;
            let mut loaded = by_id(call, &id)?.ok_or_else(missing)?;
            loaded.alias = Some(alias);
            Ok(loaded)
        }
    }
}

/// `KeyId`, required.
pub fn resolve_member(call: &JsonCall, member: &str) -> Result<Loaded, ApiError> {
    let key_id = crate::json::required_string(call.input, member)?;
    resolve(call, key_id)
}

/// The condition keys every request on an existing key carries.
pub fn key_context(call: &JsonCall, loaded: &Loaded) -> Result<ActionContext, ApiError> {
    let key = &loaded.key;
    let aliases: Vec<String> = call
        .state
        .store
        .kms_aliases_of(&key.id)?
        .into_iter()
        .map(|a| a.name)
        .collect();
    let mut context = ActionContext::new()
        .key("kms:CallerAccount", [call.caller.account.as_str()])
        .key("kms:KeySpec", [key.spec.as_str()])
        .key("kms:KeyUsage", [key.usage.as_str()])
        .key("kms:KeyOrigin", ["AWS_KMS"])
        .key("kms:MultiRegion", ["false"])
        .key("kms:ResourceAliases", aliases)
        .resource_tags(&key.tags);
    if let Some(alias) = &loaded.alias {
        context = context.key("kms:RequestAlias", [alias.as_str()]);
    }
    Ok(context)
}

/// `kms:EncryptionContext:KEY`, `kms:EncryptionContextKeys` and
/// `kms:EncryptionAlgorithm` for a cryptographic operation.
pub fn with_encryption_context(
    mut context: ActionContext,
    encryption: &EncryptionContext,
) -> ActionContext {
    for (k, v) in encryption.iter() {
        context = context.key(format!("kms:EncryptionContext:{k}"), [v]);
    }
    context
        .key(
            "kms:EncryptionContextKeys",
            encryption.iter().map(|(k, _)| k),
        )
        .key("kms:EncryptionAlgorithm", ["SYMMETRIC_DEFAULT"])
}

/// Authorises `kms:{action}` on the key: its key policy must allow the
/// caller (by ARN, or by account with an identity-policy Allow), and no
/// policy may deny.
pub fn authorize(
    call: &JsonCall,
    action: &str,
    key: &Key,
    context: &ActionContext,
) -> Result<(), ApiError> {
    let gate = call.state.resource_policy(&key.arn, &key.policy)?;
    call.state
        .authorize_gated(
            call.caller,
            &format!("kms:{action}"),
            &key.arn,
            &key.arn,
            call.now,
            context,
            gate,
        )
        .map_err(ApiError::from)
}

/// Resolves `member` and authorises the operation itself on the key.
pub fn load_authorized(
    call: &JsonCall,
    member: &str,
    extra: impl FnOnce(ActionContext) -> ActionContext,
) -> Result<Loaded, ApiError> {
    let loaded = resolve_member(call, member)?;
    let context = extra(key_context(call, &loaded)?);
    authorize(call, call.operation, &loaded.key, &context)?;
    Ok(loaded)
}

/// Writes `key` if it is still at `revision`, with a new key material
/// version if there is one.
pub fn save(
    call: &JsonCall,
    key: &Key,
    revision: i64,
    material: Option<(u32, &[u8])>,
) -> Result<bool, ApiError> {
    let document = serde_json::to_string(key)
        .map_err(|e| ApiError::internal().because(format!("serialising a KMS key: {e}")))?;
    Ok(call
        .state
        .store
        .update_kms_key(&key.id, revision, &document, material)?)
}

/// Loads and authorises the key `KeyId` names, applies `change`, writes
/// it back (with the key material version `change` returns, if any), and
/// does it all again on the newer key if another writer got there first.
pub fn update<T>(
    call: &JsonCall,
    extra: impl Fn(ActionContext) -> ActionContext,
    mut change: impl FnMut(&mut Key) -> Result<(T, Option<u32>), ApiError>,
) -> Result<(Key, T), ApiError> {
    for _ in 0..WRITE_ATTEMPTS {
        let Loaded {
            mut key, revision, ..
        } = load_authorized(call, "KeyId", &extra)?;
        let (out, version) = change(&mut key)?;
        let material = match version {
            Some(_) => Some(latchkey_kms::random_bytes(key.spec.material_len())?),
            None => None,
        };
        let new = version.zip(material.as_deref().map(|m| &m[..]));
        if save(call, &key, revision, new)? {
            return Ok((key, out));
        }
    }
    Err(conflict())
}

/// Version `version` of the key's material, unsealed.
pub fn material(call: &JsonCall, key: &Key, version: u32) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    call.state
        .store
        .kms_key_material(&key.id, version)?
        .ok_or_else(|| {
            ApiError::internal().because(format!("{}: key material {version} is missing", key.arn))
        })
}

/// Creates a key, checking first (unless told not to) that its policy
/// lets the caller manage it afterwards: AWS's lockout safety check.
pub fn create(call: &JsonCall, new: NewKey, bypass_lockout_check: bool) -> Result<Key, ApiError> {
    let id = KeyUuid::random()?;
    let key = Key::new(
        &id,
        call.state.region(),
        &call.caller.account,
        new,
        call.now,
    )?;
    if !bypass_lockout_check {
        check_lockout(call, &key.arn, &key.policy)?;
    }
    let material = latchkey_kms::random_bytes(key.spec.material_len())?;
    let document = serde_json::to_string(&key)
        .map_err(|e| ApiError::internal().because(format!("serialising a KMS key: {e}")))?;
    call.state
        .store
        .create_kms_key(&key.id, &document, &material)?;
    Ok(key)
}

/// At most this many characters of key policy, as AWS.
pub const MAX_POLICY: usize = 32_768;

/// A key policy must parse as a resource policy (with `Principal`).
pub fn check_policy(doc: &str) -> Result<(), ApiError> {
    if doc.chars().count() > MAX_POLICY {
        return Err(KmsError::MalformedPolicy(format!(
            "The key policy must be at most {MAX_POLICY} characters."
        ))
        .into());
    }
    latchkey_policy::parse(doc, latchkey_policy::PolicyKind::Resource).map_err(|findings| {
        let reasons: Vec<String> = findings.iter().map(ToString::to_string).collect();
        ApiError::from(KmsError::MalformedPolicy(format!(
            "The new key policy is not valid: {}",
            reasons.join("; ")
        )))
    })?;
    Ok(())
}

/// The new policy must let the caller call `PutKeyPolicy` later, or the
/// key could be managed by nobody.
pub fn check_lockout(call: &JsonCall, arn: &str, doc: &str) -> Result<(), ApiError> {
    check_policy(doc)?;
    let gate = std::sync::Arc::new(latchkey_identity::state::compile_resource_policy(arn, doc)?);
    if !call
        .state
        .gate_allows(call.caller, "kms:PutKeyPolicy", arn, call.now, gate)?
    {
        return Err(KmsError::MalformedPolicy(
            "The new key policy will not allow you to update the key policy in the future.".into(),
        )
        .into());
    }
    Ok(())
}

/// The AWS managed key `alias/aws/<service>`, created on first use as AWS
/// creates its managed keys.
pub fn managed_key(call: &JsonCall, alias: &AliasName) -> Result<Loaded, ApiError> {
    if let Some(found) = call.state.store.kms_alias(alias.as_str())?
        && let Some(id) = KeyUuid::parse(&found.key_id)
        && let Some(mut loaded) = by_id(call, &id)?
    {
        loaded.alias = Some(alias.clone());
        return Ok(loaded);
    }
    // Only the services Latchkey integrates have managed keys: anything
    // else is not found, and nothing is made for it.
    let Some(service) = alias.managed_service() else {
        return resolve(call, alias.as_str());
    };
    let key = create(
        call,
        NewKey {
            description: format!(
                "Default key that protects my {service} data when no other key is defined"
            ),
            spec: latchkey_kms::key::KeySpec::SymmetricDefault,
            manager: KeyManager::Aws,
            policy: policy::managed_policy(&call.caller.account, call.state.region(), service),
            tags: Vec::new(),
        },
        true,
    )?;
    match call
        .state
        .store
        .create_kms_alias(alias.as_str(), &key.id, call.now)
    {
        Ok(()) => {}
        // Another request made it first: use that one, drop ours.
        Err(latchkey_store::StoreError::EntityAlreadyExists { .. }) => {
            call.state.store.purge_kms_key(&key.id)?;
            return resolve(call, alias.as_str());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Loaded {
        key,
        revision: 1,
        alias: Some(alias.clone()),
    })
}

/// `Tags` as KMS takes them: `[{"TagKey": ..., "TagValue": ...}]`.
pub fn tags(input: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(value) = input.get("Tags") else {
        return Ok(Vec::new());
    };
    let bad = || validation(r#"Tags must be a list of {"TagKey": string, "TagValue": string}."#);
    let items = value.as_array().ok_or_else(bad)?;
    items
        .iter()
        .map(|t| {
            let k = t.get("TagKey").and_then(Value::as_str).ok_or_else(bad)?;
            let v = t.get("TagValue").and_then(Value::as_str).ok_or_else(bad)?;
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The answer's resource for the audit record.
pub fn resource(key: &Key) -> Resource {
    Resource {
        arn: key.arn.clone(),
        kind: RESOURCE_TYPE,
    }
}

/// `Limit` (1-1000, default 100) and `Marker` over `items`: the page,
/// and the marker of the next one.
pub fn page<T>(
    input: &Map<String, Value>,
    items: Vec<T>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let size = crate::json::int_field(input, "Limit", 1, 1000)?.unwrap_or(100);
    let start = match crate::json::string(input, "Marker")? {
        None => 0,
        Some(m) => m
            .strip_prefix("m.")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or(KmsError::InvalidMarker)?,
    };
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| format!("m.{end}"));
    Ok((
        items.into_iter().skip(start).take(end - start).collect(),
        next,
    ))
}

/// A paged list's answer: `{name: items, "Truncated": ..., "NextMarker"?}`.
pub fn paged(name: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut out = Map::new();
    out.insert(name.into(), Value::Array(items));
    out.insert("Truncated".into(), Value::Bool(next.is_some()));
    if let Some(m) = next {
        out.insert("NextMarker".into(), Value::String(m));
    }
    Value::Object(out)
}
