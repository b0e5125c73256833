//! The IAM subset. Every call is authorised by the policy engine against the
//! caller (`iam:CreateUser` on the new user's ARN, and so on).

use base64::Engine;
use latchkey_policy::PolicyKind;
use latchkey_session::totp;
use latchkey_sigv4::encoding::encode;
use latchkey_store::{PrincipalKind, Role, User};

use crate::error::ApiError;
use crate::query::Params;
use crate::state::{AppState, Caller, Identity};
use crate::xml::{Xml, timestamp};

fn user_xml(x: &mut Xml, u: &User) {
    x.text("Path", &u.path)
        .text("UserName", &u.name)
        .text("UserId", &u.id)
        .text("Arn", &u.arn)
        .text("CreateDate", &timestamp(u.created));
    if !u.tags.is_empty() {
        tags_xml(x, &u.tags);
    }
}

fn tags_xml(x: &mut Xml, tags: &[(String, String)]) {
    x.members("Tags", tags, |x, (k, v)| {
        x.text("Key", k).text("Value", v);
    });
}

fn role_xml(x: &mut Xml, r: &Role) {
    x.text("Path", &r.path)
        .text("RoleName", &r.name)
        .text("RoleId", &r.id)
        .text("Arn", &r.arn)
        .text("CreateDate", &timestamp(r.created))
        // IAM returns policy documents URL-encoded; botocore decodes them.
        .text("AssumeRolePolicyDocument", &encode(&r.trust_policy))
        .text("MaxSessionDuration", &r.max_session_duration.to_string());
    if !r.description.is_empty() {
        x.text("Description", &r.description);
    }
    if !r.tags.is_empty() {
        tags_xml(x, &r.tags);
    }
}

fn validate_policy(doc: &str, kind: PolicyKind) -> Result<(), ApiError> {
    latchkey_policy::parse(doc, kind)
        .map(|_| ())
        .map_err(|findings| {
            let first = findings
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            ApiError::new(
                400,
                "MalformedPolicyDocument",
                format!("The policy document is not valid: {first}"),
            )
            .because(format!("{findings:?}"))
        })
}

fn path_param(params: &Params) -> &str {
    params.get("Path").unwrap_or("/")
}

fn is_truncated(x: &mut Xml) {
    x.text("IsTruncated", "false");
}

/// Whose policy a `Put/Get/Delete/Attach/Detach{User,Role,Group}Policy` is about.
fn principal_kind(action: &str) -> PrincipalKind {
    if action.contains("User") {
        PrincipalKind::User
    } else if action.contains("Role") {
        PrincipalKind::Role
    } else {
        PrincipalKind::Group
    }
}

/// The user a call is about: `UserName`, or the calling user itself.
fn target_user<'a>(caller: &'a Caller, params: &'a Params) -> Result<&'a str, ApiError> {
    match (params.get("UserName"), &caller.identity) {
        (Some(name), _) => Ok(name),
        (None, Identity::User { name }) => Ok(name),
        (None, Identity::Role { .. }) => Err(ApiError::validation(
            "UserName is required when calling with role credentials",
        )),
    }
}

impl AppState {
    fn iam_arn(&self, kind: &str, path: &str, name: &str) -> String {
        format!(
            "arn:aws:iam::{}:{kind}{path}{name}",
            self.store.account_id()
        )
    }

    /// An existing user's ARN, or the ARN it would have.
    fn user_arn(&self, name: &str) -> String {
        self.store
            .get_user(name)
            .map_or_else(|_| self.iam_arn("user", "/", name), |u| u.arn)
    }

    fn role_arn(&self, name: &str) -> String {
        self.store
            .get_role(name)
            .map_or_else(|_| self.iam_arn("role", "/", name), |r| r.arn)
    }

    fn principal(
        &self,
        params: &Params,
        kind: PrincipalKind,
    ) -> Result<(String, String), ApiError> {
        Ok(match kind {
            PrincipalKind::User => {
                let n = params.required("UserName")?;
                (n.to_owned(), self.user_arn(n))
            }
            PrincipalKind::Role => {
                let n = params.required("RoleName")?;
                (n.to_owned(), self.role_arn(n))
            }
            PrincipalKind::Group => {
                let n = params.required("GroupName")?;
                (n.to_owned(), self.iam_arn("group", "/", n))
            }
        })
    }
}

/// Runs one IAM action. Returns the `<{Op}Result>` body, or `None` for
/// actions whose response has no result element.
pub fn handle(
    state: &AppState,
    caller: &Caller,
    action: &str,
    params: &Params,
    now: i64,
) -> Result<Option<Xml>, ApiError> {
    let result = dispatch(state, caller, action, params, now);
    // Anything that may have changed keys, users, groups or policies
    // drops what this node cached about them.
    if !(action.starts_with("Get") || action.starts_with("List")) {
        state.invalidate_caches();
    }
    result
}

fn dispatch(
    state: &AppState,
    caller: &Caller,
    action: &str,
    params: &Params,
    now: i64,
) -> Result<Option<Xml>, ApiError> {
    let store = &state.store;
    let authorize =
        |resource: &str| state.authorize(caller, &format!("iam:{action}"), resource, now);
    let mut x = Xml::new();
    match action {
        "CreateUser" => {
            let name = params.required("UserName")?;
            authorize(&state.iam_arn("user", path_param(params), name))?;
            let u = store.create_user(name, path_param(params), &params.tags("Tags"), now)?;
            x.node("User", |x| user_xml(x, &u));
        }
        "GetUser" => {
            let name = target_user(caller, params)?;
            authorize(&state.user_arn(name))?;
            let u = store.get_user(name)?;
            x.node("User", |x| user_xml(x, &u));
        }
        "ListUsers" => {
            authorize(&state.iam_arn("user", "/", "*"))?;
            let users = store.list_users()?;
            x.members("Users", &users, user_xml);
            is_truncated(&mut x);
        }
        "DeleteUser" => {
            let name = params.required("UserName")?;
            authorize(&state.user_arn(name))?;
            store.delete_user(name)?;
            return Ok(None);
        }
        "TagUser" => {
            let name = params.required("UserName")?;
            authorize(&state.user_arn(name))?;
            store.tag_user(name, &params.tags("Tags"))?;
            return Ok(None);
        }
        "CreateAccessKey" => {
            let name = target_user(caller, params)?;
            authorize(&state.user_arn(name))?;
            let (key, secret) = store.create_access_key(name, now)?;
            x.node("AccessKey", |x| {
                x.text("UserName", &key.user)
                    .text("AccessKeyId", &key.id)
                    .text("Status", "Active")
                    .text("SecretAccessKey", &secret)
                    .text("CreateDate", &timestamp(key.created));
            });
        }
        "ListAccessKeys" => {
            let name = target_user(caller, params)?;
            authorize(&state.user_arn(name))?;
            let keys = store.list_access_keys(name)?;
            x.members("AccessKeyMetadata", &keys, |x, k| {
                x.text("UserName", &k.user)
                    .text("AccessKeyId", &k.id)
                    .text("Status", if k.active { "Active" } else { "Inactive" })
                    .text("CreateDate", &timestamp(k.created));
            });
            is_truncated(&mut x);
        }
        "UpdateAccessKey" | "DeleteAccessKey" => {
            let id = params.required("AccessKeyId")?;
            let name = target_user(caller, params)?;
            authorize(&state.user_arn(name))?;
            // The key must belong to the named user: no reaching across users.
            let owned = store.list_access_keys(name)?.iter().any(|k| k.id == id);
            if !owned {
                return Err(ApiError::new(
                    404,
                    "NoSuchEntity",
                    format!("The Access Key with id {id} cannot be found."),
                ));
            }
            if action == "DeleteAccessKey" {
                store.delete_access_key(id)?;
            } else {
                let active = match params.required("Status")? {
                    "Active" => true,
                    "Inactive" => false,
                    _ => return Err(ApiError::validation("Status must be Active or Inactive")),
                };
                store.update_access_key(id, active)?;
            }
            return Ok(None);
        }
        "CreateRole" => {
            let name = params.required("RoleName")?;
            let doc = params.required("AssumeRolePolicyDocument")?;
            authorize(&state.iam_arn("role", path_param(params), name))?;
            validate_policy(doc, PolicyKind::Trust)?;
            let max = params
                .int("MaxSessionDuration", 3600..=43_200)?
                .unwrap_or(3600);
            let r = store.create_role(
                name,
                path_param(params),
                doc,
                max,
                params.get("Description").unwrap_or(""),
                &params.tags("Tags"),
                now,
            )?;
            x.node("Role", |x| role_xml(x, &r));
        }
        "GetRole" => {
            let name = params.required("RoleName")?;
            authorize(&state.role_arn(name))?;
            let r = store.get_role(name)?;
            x.node("Role", |x| role_xml(x, &r));
        }
        "ListRoles" => {
            authorize(&state.iam_arn("role", "/", "*"))?;
            let roles = store.list_roles()?;
            x.members("Roles", &roles, role_xml);
            is_truncated(&mut x);
        }
        "DeleteRole" => {
            let name = params.required("RoleName")?;
            authorize(&state.role_arn(name))?;
            store.delete_role(name)?;
            return Ok(None);
        }
        "UpdateAssumeRolePolicy" => {
            let name = params.required("RoleName")?;
            let doc = params.required("PolicyDocument")?;
            authorize(&state.role_arn(name))?;
            validate_policy(doc, PolicyKind::Trust)?;
            store.update_assume_role_policy(name, doc)?;
            return Ok(None);
        }
        "TagRole" => {
            let name = params.required("RoleName")?;
            authorize(&state.role_arn(name))?;
            store.tag_role(name, &params.tags("Tags"))?;
            return Ok(None);
        }
        "CreateGroup" => {
            let name = params.required("GroupName")?;
            let arn = state.iam_arn("group", path_param(params), name);
            authorize(&arn)?;
            let (id, arn) = store.create_group(name, path_param(params), now)?;
            x.node("Group", |x| {
                x.text("Path", path_param(params))
                    .text("GroupName", name)
                    .text("GroupId", &id)
                    .text("Arn", &arn)
                    .text("CreateDate", &timestamp(now));
            });
        }
        "AddUserToGroup" => {
            let group = params.required("GroupName")?;
            let user = params.required("UserName")?;
            authorize(&state.iam_arn("group", "/", group))?;
            store.add_user_to_group(group, user)?;
            return Ok(None);
        }
        "PutUserPolicy" | "PutRolePolicy" | "PutGroupPolicy" | "GetUserPolicy"
        | "GetRolePolicy" | "GetGroupPolicy" | "DeleteUserPolicy" | "DeleteRolePolicy"
        | "DeleteGroupPolicy" => {
            let kind = principal_kind(action);
            let (principal, arn) = state.principal(params, kind)?;
            let policy_name = params.required("PolicyName")?;
            authorize(&arn)?;
            if action.starts_with("Put") {
                let doc = params.required("PolicyDocument")?;
                validate_policy(doc, PolicyKind::Identity)?;
                store.put_inline_policy(kind, &principal, policy_name, doc)?;
                return Ok(None);
            }
            if action.starts_with("Delete") {
                store.delete_inline_policy(kind, &principal, policy_name)?;
                return Ok(None);
            }
            let doc = store.get_inline_policy(kind, &principal, policy_name)?;
            let label = match kind {
                PrincipalKind::User => "UserName",
                PrincipalKind::Role => "RoleName",
                PrincipalKind::Group => "GroupName",
            };
            x.text(label, &principal)
                .text("PolicyName", policy_name)
                .text("PolicyDocument", &encode(&doc));
        }
        "CreatePolicy" => {
            let name = params.required("PolicyName")?;
            let doc = params.required("PolicyDocument")?;
            let path = path_param(params);
            authorize(&state.iam_arn("policy", path, name))?;
            validate_policy(doc, PolicyKind::Identity)?;
            let (arn, id) = store.create_managed_policy(name, path, doc, now)?;
            x.node("Policy", |x| {
                x.text("PolicyName", name)
                    .text("PolicyId", &id)
                    .text("Arn", &arn)
                    .text("Path", path)
                    .text("DefaultVersionId", "v1")
                    .text("AttachmentCount", "0")
                    .text("IsAttachable", "true")
                    .text("CreateDate", &timestamp(now))
                    .text("UpdateDate", &timestamp(now));
            });
        }
        "AttachUserPolicy" | "AttachRolePolicy" | "AttachGroupPolicy" | "DetachUserPolicy"
        | "DetachRolePolicy" | "DetachGroupPolicy" => {
            let kind = principal_kind(action);
            let (principal, arn) = state.principal(params, kind)?;
            let policy_arn = params.required("PolicyArn")?;
            authorize(&arn)?;
            if action.starts_with("Attach") {
                store.attach_policy(kind, &principal, policy_arn)?;
            } else {
                store.detach_policy(kind, &principal, policy_arn)?;
            }
            return Ok(None);
        }
        "CreateVirtualMFADevice" => {
            let name = params.required("VirtualMFADeviceName")?;
            let path = path_param(params);
            authorize(&state.iam_arn("mfa", path, name))?;
            let (serial, seed) = store.create_virtual_mfa(name, path)?;
            x.node("VirtualMFADevice", |x| {
                x.text("SerialNumber", &serial)
                    // A blob in the API model: base64 of the base32 seed text.
                    .text(
                        "Base32StringSeed",
                        &base64::engine::general_purpose::STANDARD.encode(seed.as_bytes()),
                    );
            });
        }
        "EnableMFADevice" => {
            let user = params.required("UserName")?;
            let serial = params.required("SerialNumber")?;
            let code1 = params.required("AuthenticationCode1")?;
            let code2 = params.required("AuthenticationCode2")?;
            authorize(&state.user_arn(user))?;
            let (device, seed, _) = store.mfa_seed(serial)?;
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
            let s1 = totp::verify(&seed, code1, now, None)
                .map_err(|e| invalid().because(e.to_string()))?;
            let s2 = totp::verify(&seed, code2, now, None)
                .map_err(|e| invalid().because(e.to_string()))?;
            if s2 != s1 + 1 {
                return Err(invalid().because("the two codes are not consecutive"));
            }
            store.enable_mfa(serial, user, s2, now)?;
            return Ok(None);
        }
        "DeactivateMFADevice" => {
            let user = params.required("UserName")?;
            let serial = params.required("SerialNumber")?;
            authorize(&state.user_arn(user))?;
            store.deactivate_mfa(serial, user)?;
            return Ok(None);
        }
        "ListMFADevices" => {
            let user = target_user(caller, params)?;
            authorize(&state.user_arn(user))?;
            let devices = store.list_mfa_devices(user)?;
            x.members("MFADevices", &devices, |x, d| {
                x.text("UserName", d.user.as_deref().unwrap_or(""))
                    .text("SerialNumber", &d.serial)
                    .text("EnableDate", &timestamp(d.enabled_at.unwrap_or(0)));
            });
            is_truncated(&mut x);
        }
        // Latchkey's extension, like the console's "Revoke active sessions":
        // every session of the user or role issued before `Before`
        // (default: now) stops working on every node.
        "RevokeSessions" => {
            let arn = match (params.get("UserName"), params.get("RoleName")) {
                (Some(u), None) => store.get_user(u)?.arn,
                (None, Some(r)) => store.get_role(r)?.arn,
                _ => {
                    return Err(ApiError::validation(
                        "give exactly one of UserName or RoleName",
                    ));
                }
            };
            authorize(&arn)?;
            let before = match params.get("Before") {
                None => now,
                Some(t) => latchkey_policy::condition::parse_date(t)
                    .map(|ms| ms / 1000)
                    .ok_or_else(|| ApiError::validation("Before must be an ISO 8601 time"))?,
            };
            store.revoke_sessions(&arn, before)?;
            state.reload_revocations()?;
            x.text("Arn", &arn)
                .text("RevokedBefore", &timestamp(before));
        }
        _ => {
            return Err(ApiError::new(
                400,
                "InvalidAction",
                format!("Could not find operation {action} for version 2010-05-08"),
            ));
        }
    }
    Ok(Some(x))
}
