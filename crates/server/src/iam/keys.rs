//! The credential handlers: a user's access keys, and virtual MFA devices
//! (creating, enabling with two consecutive codes, deactivating, listing).

use base64::Engine;
use latchkey_session::totp;
use latchkey_store::{MfaDevice, User};

use crate::error::ApiError;
use crate::xml::{Xml, timestamp};

use super::page::page_of;
use super::targets::Targets;
use super::users::user_xml;
use super::{Call, path_param, target_user};

fn mfa_xml(x: &mut Xml, d: &MfaDevice) {
    x.text("UserName", d.user.as_deref().unwrap_or(""))
        .text("SerialNumber", &d.serial)
        .text("EnableDate", &timestamp(d.enabled_at.unwrap_or(0)));
}

/// `CreateAccessKey`.
pub(super) fn create_access_key(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = target_user(c.caller, c.params)?;
    c.authorize(c.state.user_target(name))?;
    let (key, secret) = c.store.create_access_key(name, c.now)?;
    x.node("AccessKey", |x| {
        x.text("UserName", &key.user)
            .text("AccessKeyId", &key.id)
            .text("Status", "Active")
            .text("SecretAccessKey", &secret)
            .text("CreateDate", &timestamp(key.created));
    });
    Ok(Some(x))
}

/// `ListAccessKeys`.
pub(super) fn list_access_keys(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = target_user(c.caller, c.params)?;
    c.authorize(c.state.user_target(name))?;
    let keys = page_of(c.store.list_access_keys(name)?, |k| k.id.clone(), c.params)?;
    x.members("AccessKeyMetadata", &keys.items, |x, k| {
        x.text("UserName", &k.user)
            .text("AccessKeyId", &k.id)
            .text("Status", if k.active { "Active" } else { "Inactive" })
            .text("CreateDate", &timestamp(k.created));
    });
    keys.write_truncation(&mut x);
    Ok(Some(x))
}

/// `UpdateAccessKey`, `DeleteAccessKey`.
pub(super) fn update_or_delete_access_key(c: &Call) -> Result<Option<Xml>, ApiError> {
    let id = c.params.required("AccessKeyId")?;
    let name = target_user(c.caller, c.params)?;
    c.authorize(c.state.user_target(name))?;
    // The key must belong to the named user: no reaching across users.
    let owned = c.store.list_access_keys(name)?.iter().any(|k| k.id == id);
    if !owned {
        return Err(ApiError::new(
            404,
            "NoSuchEntity",
            format!("The Access Key with id {id} cannot be found."),
        ));
    }
    if c.action == "DeleteAccessKey" {
        c.store.delete_access_key(id)?;
    } else {
        let active = match c.params.required("Status")? {
            "Active" => true,
            "Inactive" => false,
            _ => return Err(ApiError::validation("Status must be Active or Inactive")),
        };
        c.store.update_access_key(id, active)?;
    }
    Ok(None)
}

/// `CreateVirtualMFADevice`.
pub(super) fn create_virtual_mfa_device(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("VirtualMFADeviceName")?;
    let path = path_param(c.params);
    let tags = c.params.tags("Tags");
    c.authorize(
        c.state
            .new_target("mfa", c.params, name)
            .with(|ctx| ctx.request_tags(&tags)),
    )?;
    let (serial, seed) = c.store.create_virtual_mfa(name, path)?;
    x.node("VirtualMFADevice", |x| {
        x.text("SerialNumber", &serial)
            // A blob in the API model: base64 of the base32 seed text.
            .text(
                "Base32StringSeed",
                &base64::engine::general_purpose::STANDARD.encode(seed.as_bytes()),
            );
    });
    Ok(Some(x))
}

/// `EnableMFADevice`.
pub(super) fn enable_mfa_device(c: &Call) -> Result<Option<Xml>, ApiError> {
    let user = c.params.required("UserName")?;
    let serial = c.params.required("SerialNumber")?;
    let code1 = c.params.required("AuthenticationCode1")?;
    let code2 = c.params.required("AuthenticationCode2")?;
    c.authorize(c.state.user_target(user))?;
    let (device, seed, _) = c.store.mfa_seed(serial)?;
    if device.user.is_some() {
        return Err(ApiError::new(
            409,
            "EntityAlreadyExists",
            "MFA device is already in use.",
        ));
    }
    let invalid = || {
        ApiError::new(
            400,
            "InvalidAuthenticationCode",
            "Authentication code for device is not valid.",
        )
    };
    let s1 =
        totp::verify(&seed, code1, c.now, None).map_err(|e| invalid().because(e.to_string()))?;
    let s2 =
        totp::verify(&seed, code2, c.now, None).map_err(|e| invalid().because(e.to_string()))?;
    if s2 != s1 + 1 {
        return Err(invalid().because("the two codes are not consecutive"));
    }
    c.store.enable_mfa(serial, user, s2, c.now)?;
    Ok(None)
}

/// `DeactivateMFADevice`.
pub(super) fn deactivate_mfa_device(c: &Call) -> Result<Option<Xml>, ApiError> {
    let user = c.params.required("UserName")?;
    let serial = c.params.required("SerialNumber")?;
    c.authorize(c.state.user_target(user))?;
    c.store.deactivate_mfa(serial, user)?;
    Ok(None)
}

/// `ListMFADevices`.
pub(super) fn list_mfa_devices(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let user = target_user(c.caller, c.params)?;
    c.authorize(c.state.user_target(user))?;
    c.store.get_user(user)?;
    let page = page_of(
        c.store.list_mfa_devices(user)?,
        |d| d.serial.clone(),
        c.params,
    )?;
    x.members("MFADevices", &page.items, mfa_xml);
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `ListVirtualMFADevices`.
pub(super) fn list_virtual_mfa_devices(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    c.authorize(c.state.any_target())?;
    let status = c.params.get("AssignmentStatus").unwrap_or("Any");
    let mut devices = c.store.list_virtual_mfa_devices()?;
    match status {
        "Any" => {}
        "Assigned" => devices.retain(|d| d.user.is_some()),
        "Unassigned" => devices.retain(|d| d.user.is_none()),
        _ => {
            return Err(ApiError::validation(
                "AssignmentStatus must be Assigned, Unassigned or Any",
            ));
        }
    }
    let page = page_of(devices, |d| d.serial.clone(), c.params)?;
    let mut owners = Vec::new();
    for d in &page.items {
        owners.push(match &d.user {
            Some(u) => c.store.get_user(u).ok(),
            None => None,
        });
    }
    let rows: Vec<(&MfaDevice, Option<User>)> = page.items.iter().zip(owners).collect();
    x.members("VirtualMFADevices", &rows, |x, (d, owner)| {
        x.text("SerialNumber", &d.serial);
        if let Some(u) = owner {
            x.node("User", |x| user_xml(x, u));
        }
        if let Some(t) = d.enabled_at {
            x.text("EnableDate", &timestamp(t));
        }
    });
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `RevokeLeakedAccessKey`, Latchkey's extension that `latchkey scan
/// --revoke` calls: deactivates a key found leaked and raises a finding
/// (`CredentialAccess:Repository/LeakedKey`, high) saying where it was
/// found; the call itself is the audit event. Authorised as
/// `iam:UpdateAccessKey` on the key's user, which is what it does; an
/// unknown key is refused alike, after authorising on the account's users,
/// and a refusal names the key, never its owner.
pub(super) fn revoke_leaked_access_key(c: &Call) -> Result<Option<Xml>, ApiError> {
    const ACTION: &str = "iam:UpdateAccessKey";
    let location = c.params.get("Location").unwrap_or("an unnamed place");
    // Text that reorders or breaks what is around it is refused too: the
    // finding shows it to people.
    let unsafe_char = |c: char| c.is_control() || crate::is_hidden_char(c);
    if location.chars().count() > 1024 || location.chars().any(unsafe_char) {
        return Err(ApiError::validation(
            "Location must be at most 1024 characters, without control or bidirectional characters",
        ));
    }
    let detector = c.params.get("Detector").unwrap_or("aws-access-key");
    if detector.is_empty()
        || detector.len() > 64
        || !detector
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
    {
        return Err(ApiError::validation(
            "Detector must be a detector id such as aws-access-key",
        ));
    }
    // A session token found alone names its own key.
    let id = match c.params.get("AccessKeyId") {
        Some(id) => id,
        None if c.params.get("SessionToken").is_some() => {
            return revoke_leaked_session(c, None, location, detector);
        }
        None => c.params.required("AccessKeyId")?,
    };
    if id.starts_with("ASIA") {
        return revoke_leaked_session(c, Some(id), location, detector);
    }
    let shown = Some(format!("access key {id}"));
    let Some(key) = c.store.access_key(id)? else {
        c.authorize_as(
            ACTION,
            super::targets::Target {
                shown,
                ..c.state.missing_target("user", "*")
            },
        )?;
        return Err(no_such_key(id));
    };
    let target = c.state.user_target(&key.user);
    let user_arn = target.arn.clone();
    c.authorize_as(ACTION, super::targets::Target { shown, ..target })?;
    c.store.update_access_key(id, false)?;
    let finding = leak_finding(
        c,
        id,
        location,
        &user_arn,
        format!(
            "Access key {id} of {user_arn} was found by latchkey scan ({detector}) at {location}; \
             it was {} and is now inactive. Give the user a new key, then delete this one.",
            if key.active {
                "active"
            } else {
                "already inactive"
            }
        ),
        format!("deactivated access key {id} (by {})", c.caller.arn),
    );
    let finding_id = finding.id.clone();
    c.state.raise_finding(finding)?;
    let mut x = Xml::new();
    x.text("AccessKeyId", id)
        .text("UserName", &key.user)
        .text("Status", "Inactive")
        .text("FindingId", &finding_id);
    Ok(Some(x))
}

fn no_such_key(id: &str) -> ApiError {
    ApiError::new(
        404,
        "NoSuchEntity",
        format!("The Access Key with id {id} cannot be found."),
    )
}

/// The finding a leaked credential raises (its id stable per key).
fn leak_finding(
    c: &Call,
    id: &str,
    location: &str,
    owner_arn: &str,
    description: String,
    action: String,
) -> latchkey_audit::Finding {
    use sha2::Digest;
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.now.max(0).unsigned_abs());
    // One finding per key and place: a second place is a second finding,
    // and the first keeps what it said.
    let place = hex::encode(&sha2::Sha256::digest(location.as_bytes())[..6]);
    latchkey_audit::Finding {
        id: format!("leaked-key-{id}-{place}"),
        kind: crate::LEAKED_KEY_KIND.to_owned(),
        severity: latchkey_audit::Severity::High,
        title: format!("Access key {id} was found leaked"),
        description,
        resource: owner_arn.to_owned(),
        principal: Some(owner_arn.to_owned()),
        source_ip: None,
        first_seen: now,
        last_seen: now,
        count: 1,
        evidence: Vec::new(),
        actions: vec![action],
    }
}

/// A leaked temporary key (`ASIA...`) with its session token, or the
/// token alone (`id` `None`: the token names its key): every session of
/// its role (or user) issued until now is revoked, authorised as
/// `iam:RevokeSessions` on that role or user. A token that does not open
/// (or is not the key's) is refused as an unknown key.
fn revoke_leaked_session(
    c: &Call,
    id: Option<&str>,
    location: &str,
    detector: &str,
) -> Result<Option<Xml>, ApiError> {
    const ACTION: &str = "iam:RevokeSessions";
    let token = c.params.required("SessionToken")?;
    let derived = id
        .map(str::to_owned)
        .or_else(|| c.state.session_access_key_id(token));
    let found = derived
        .as_deref()
        .and_then(|id| c.state.find_credentials(id, Some(token), c.now, "").ok());
    let (Some(id), Some(found)) = (derived.as_deref(), found) else {
        c.authorize_as(
            ACTION,
            super::targets::Target {
                shown: id.map(|id| format!("access key {id}")),
                ..c.state.missing_target("role", "*")
            },
        )?;
        return Err(match id {
            Some(id) => no_such_key(id),
            None => ApiError::new(
                404,
                "NoSuchEntity",
                "The session token cannot be found.".to_owned(),
            ),
        });
    };
    let shown = Some(format!("access key {id}"));
    let target = match &found.caller.identity {
        latchkey_identity::Identity::Role { name, .. } => c.state.role_target(name),
        latchkey_identity::Identity::User { name } => c.state.user_target(name),
    };
    let arn = target.arn.clone();
    c.authorize_as(ACTION, super::targets::Target { shown, ..target })?;
    // A session already over (expired, revoked, its principal gone) lets
    // nobody in: revoking its role's sessions now would end only the
    // live ones, which did not leak.
    // Its role or user deleted (and perhaps re-created since) is over
    // too: the role of that name now is another one.
    let over = match &found.refusal {
        Some(refusal) => Some(refusal.failure.audit_kind().as_str()),
        None => c
            .state
            .check_bound(&found.caller)
            .err()
            .map(|_| "its role or user was deleted"),
    };
    if let Some(why) = over {
        return Err(ApiError::new(
            409,
            "SessionNotLive",
            format!(
                "The session of access key {id} is no longer valid ({why}); nothing was revoked."
            ),
        ));
    }
    c.store.revoke_sessions(&arn, c.now)?;
    c.state.reload_revocations()?;
    let finding = leak_finding(
        c,
        id,
        location,
        &arn,
        format!(
            "Temporary access key {id} of {arn} was found with its session token by latchkey scan \
             ({detector}) at {location}; every session of {arn} issued until now is revoked."
        ),
        format!("revoked the sessions of {arn} (by {})", c.caller.arn),
    );
    let finding_id = finding.id.clone();
    c.state.raise_finding(finding)?;
    let mut x = Xml::new();
    x.text("AccessKeyId", id)
        .text("Arn", &arn)
        .text("RevokedBefore", &timestamp(c.now))
        .text("FindingId", &finding_id);
    Ok(Some(x))
}
