//! The IAM subset. Every call is authorised by the policy engine against the
//! caller (`iam:CreateUser` on the new user's ARN, and so on).
//!
//! This module holds the dispatch from action name to handler, the [`Call`]
//! every handler receives, and the request-parameter and XML helpers the
//! handlers share. The handlers live by concern: `users`, `roles`, `groups`,
//! `policies` (managed and inline), `keys` (access keys and MFA devices),
//! `passwords` (console passwords and the account password policy) and
//! `account` (the whole-account view, session revocation); `targets` builds
//! the resource each call is authorised against, and `page` paginates lists.

use std::cell::RefCell;

use latchkey_audit::Resource;
use latchkey_policy::PolicyKind;
use latchkey_store::Store;

use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;
use latchkey_identity::{AppState, Caller, Identity};

mod account;
mod advisor;
mod groups;
mod keys;
mod page;
mod passwords;
mod policies;
mod roles;
mod targets;
mod users;

pub(crate) use advisor::authorize_activity_of;
use page::page_of;
use targets::{Target, Targets};

fn tags_xml(x: &mut Xml, tags: &[(String, String)]) {
    x.members("Tags", tags, |x, (k, v)| {
        x.text("Key", k).text("Value", v);
    });
}

/// A list of strings: `<name><member>s</member>...</name>`.
fn strings_xml<S: AsRef<str>>(x: &mut Xml, name: &str, items: &[S]) {
    x.node(name, |x| {
        for s in items {
            x.text("member", s.as_ref());
        }
    });
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn bool_param(params: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::validation(format!(
            "{name} must be true or false"
        ))),
    }
}

/// `PathPrefix` (default `/`): entities whose path starts with it.
fn path_prefix(params: &Params) -> Result<&str, ApiError> {
    let prefix = params.get("PathPrefix").unwrap_or("/");
    if !prefix.starts_with('/') || prefix.len() > 512 {
        return Err(ApiError::validation(
            "PathPrefix must begin with / and be at most 512 characters",
        ));
    }
    Ok(prefix)
}

/// `PolicyUsageFilter`: only `PermissionsPolicy` uses exist here, as
/// permissions boundaries are not supported. Returns whether any may match.
fn permissions_usage(params: &Params) -> Result<bool, ApiError> {
    match params.get("PolicyUsageFilter") {
        None | Some("PermissionsPolicy") => Ok(true),
        Some("PermissionsBoundary") => Ok(false),
        Some(_) => Err(ApiError::validation(
            "PolicyUsageFilter must be PermissionsPolicy or PermissionsBoundary",
        )),
    }
}

fn tags_page(x: &mut Xml, tags: Vec<(String, String)>, params: &Params) -> Result<(), ApiError> {
    let page = page_of(tags, |(k, _)| k.clone(), params)?;
    x.members("Tags", &page.items, |x, (k, v)| {
        x.text("Key", k).text("Value", v);
    });
    page.write_truncation(x);
    Ok(())
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
            .because(
                findings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
}

fn path_param(params: &Params) -> &str {
    params.get("Path").unwrap_or("/")
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

/// Permissions boundaries are not implemented: a request that sets one is
/// refused rather than silently creating an unbounded entity.
fn refuse_boundary(params: &Params) -> Result<(), ApiError> {
    match params.get("PermissionsBoundary") {
        Some(_) => Err(ApiError::new(
            400,
            "InvalidInput",
            "Permissions boundaries are not supported by this server.",
        )),
        None => Ok(()),
    }
}

/// Runs one IAM action. Returns the `<{Op}Result>` body, or `None` for
/// actions whose response has no result element. Adds to `resources`
/// each resource the call was authorised on (CloudTrail's `resources`,
/// and what the access advisor counts a grant on that resource used by),
/// whether or not the call then succeeded.
pub fn handle(
    state: &AppState,
    caller: &Caller,
    action: &str,
    params: &Params,
    (now, peer): (i64, std::net::IpAddr),
    resources: &mut Vec<Resource>,
) -> Result<Option<Xml>, ApiError> {
    let call = Call {
        state,
        store: &state.store,
        caller,
        action,
        params,
        now,
        peer,
        iam_action: format!("iam:{action}"),
        authorized_on: RefCell::new(Vec::new()),
    };
    let result = dispatch(&call);
    for arn in call.authorized_on.into_inner() {
        if !resources.iter().any(|r| r.arn == arn) {
            let kind = resource_kind(&arn);
            resources.push(Resource { arn, kind });
        }
    }
    // Anything that may have changed keys, users, groups or policies
    // drops what this node cached about them.
    if !["Get", "List", "Simulate", "Generate"]
        .iter()
        .any(|p| action.starts_with(p))
    {
        state.invalidate_caches();
    }
    result
}

/// One IAM call: who makes it, what it asks and when. Every handler takes
/// one.
struct Call<'a> {
    state: &'a AppState,
    store: &'a Store,
    caller: &'a Caller,
    action: &'a str,
    params: &'a Params,
    now: i64,
    /// Where the call came from (sign-in throttling counts by address).
    peer: std::net::IpAddr,
    /// `iam:{action}`, what the call is authorised as.
    iam_action: String,
    /// The resource ARNs the call was authorised on, `*` left out.
    authorized_on: RefCell<Vec<String>>,
}

impl Call<'_> {
    /// Authorises the call on `t`; a refusal names `t.shown`.
    fn authorize(&self, t: Target) -> Result<(), ApiError> {
        self.authorize_as(&self.iam_action, t)
    }

    /// Authorises creating a `kind` (`user`, `role`, `policy`) named
    /// `name` with `tags`: the call on the new entity's ARN and, when it
    /// sets tags, the tagging action (`iam:TagUser`...) too, as AWS
    /// requires: otherwise whoever may create could set tags that
    /// tag-based policies trust.
    fn authorize_create(
        &self,
        kind: &str,
        name: &str,
        tags: &[(String, String)],
        tag_action: &str,
    ) -> Result<(), ApiError> {
        let target = || {
            self.state
                .new_target(kind, self.params, name)
                .with(|ctx| ctx.request_tags(tags))
        };
        self.authorize(target())?;
        if !tags.is_empty() {
            self.authorize_as(tag_action, target())?;
        }
        Ok(())
    }

    /// Authorises the call as `action` (an extension authorised as the
    /// IAM action whose effect it has) on `t`.
    fn authorize_as(&self, action: &str, t: Target) -> Result<(), ApiError> {
        let shown = t.shown.as_deref().unwrap_or(&t.arn);
        if t.arn != "*" {
            self.authorized_on.borrow_mut().push(t.arn.clone());
        }
        self.state
            .authorize_shown(self.caller, action, &t.arn, shown, self.now, &t.context)?;
        Ok(())
    }
}

/// CloudTrail's resource type of an IAM ARN.
fn resource_kind(arn: &str) -> &'static str {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    match resource.split('/').next().unwrap_or_default() {
        "user" => "AWS::IAM::User",
        "role" => "AWS::IAM::Role",
        "group" => "AWS::IAM::Group",
        "policy" => "AWS::IAM::ManagedPolicy",
        "mfa" => "AWS::IAM::MFADevice",
        _ => "AWS::IAM::Resource",
    }
}

/// Routes the call's action to its handler; the policy simulator's calls
/// are in [`crate::simulate`].
fn dispatch(call: &Call) -> Result<Option<Xml>, ApiError> {
    let (state, caller, action, params, now) =
        (call.state, call.caller, call.action, call.params, call.now);
    match action {
        // ---- users ----
        "CreateUser" => users::create_user(call),
        "GetUser" => users::get_user(call),
        "ListUsers" => users::list_users(call),
        "DeleteUser" => users::delete_user(call),
        "TagUser" => users::tag_user(call),
        "UntagUser" => users::untag_user(call),
        "ListUserTags" => users::list_user_tags(call),
        // ---- console passwords ----
        "CreateLoginProfile" => passwords::create_login_profile(call),
        "GetLoginProfile" => passwords::get_login_profile(call),
        "UpdateLoginProfile" => passwords::update_login_profile(call),
        "DeleteLoginProfile" => passwords::delete_login_profile(call),
        "ChangePassword" => passwords::change_password(call),
        "UpdateAccountPasswordPolicy" => passwords::update_account_password_policy(call),
        "GetAccountPasswordPolicy" => passwords::get_account_password_policy(call),
        "DeleteAccountPasswordPolicy" => passwords::delete_account_password_policy(call),
        // ---- groups ----
        "CreateGroup" => groups::create_group(call),
        "AddUserToGroup" => groups::add_user_to_group(call),
        "ListGroups" => groups::list_groups(call),
        "ListGroupsForUser" => groups::list_groups_for_user(call),
        "GetGroup" => groups::get_group(call),
        "RemoveUserFromGroup" => groups::remove_user_from_group(call),
        "DeleteGroup" => groups::delete_group(call),
        // ---- roles ----
        "CreateRole" => roles::create_role(call),
        "GetRole" => roles::get_role(call),
        "ListRoles" => roles::list_roles(call),
        "DeleteRole" => roles::delete_role(call),
        "UpdateAssumeRolePolicy" => roles::update_assume_role_policy(call),
        "TagRole" => roles::tag_role(call),
        "UntagRole" => roles::untag_role(call),
        "ListRoleTags" => roles::list_role_tags(call),
        "UpdateRole" | "UpdateRoleDescription" => roles::update_role(call),
        // ---- access keys and MFA devices ----
        "CreateAccessKey" => keys::create_access_key(call),
        "ListAccessKeys" => keys::list_access_keys(call),
        "UpdateAccessKey" | "DeleteAccessKey" => keys::update_or_delete_access_key(call),
        "CreateVirtualMFADevice" => keys::create_virtual_mfa_device(call),
        "EnableMFADevice" => keys::enable_mfa_device(call),
        "DeactivateMFADevice" => keys::deactivate_mfa_device(call),
        "ListMFADevices" => keys::list_mfa_devices(call),
        "ListVirtualMFADevices" => keys::list_virtual_mfa_devices(call),
        // ---- managed and inline policies ----
        "PutUserPolicy" | "PutRolePolicy" | "PutGroupPolicy" | "GetUserPolicy"
        | "GetRolePolicy" | "GetGroupPolicy" | "DeleteUserPolicy" | "DeleteRolePolicy"
        | "DeleteGroupPolicy" => policies::inline_policy(call),
        "CreatePolicy" => policies::create_policy(call),
        "AttachUserPolicy" | "AttachRolePolicy" | "AttachGroupPolicy" | "DetachUserPolicy"
        | "DetachRolePolicy" | "DetachGroupPolicy" => policies::attach_or_detach_policy(call),
        "GetPolicy" => policies::get_policy(call),
        "ListPolicies" => policies::list_policies(call),
        "DeletePolicy" => policies::delete_policy(call),
        "CreatePolicyVersion" => policies::create_policy_version(call),
        "GetPolicyVersion" => policies::get_policy_version(call),
        "ListPolicyVersions" => policies::list_policy_versions(call),
        "DeletePolicyVersion" | "SetDefaultPolicyVersion" => {
            policies::delete_or_set_default_version(call)
        }
        "ListEntitiesForPolicy" => policies::list_entities_for_policy(call),
        "TagPolicy" => policies::tag_policy(call),
        "UntagPolicy" => policies::untag_policy(call),
        "ListPolicyTags" => policies::list_policy_tags(call),
        "ListAttachedUserPolicies" | "ListAttachedRolePolicies" | "ListAttachedGroupPolicies" => {
            policies::list_attached_policies(call)
        }
        "ListUserPolicies" | "ListRolePolicies" | "ListGroupPolicies" => {
            policies::list_inline_policies(call)
        }
        // ---- the whole account ----
        "GetAccountAuthorizationDetails" => account::get_account_authorization_details(call),
        // ---- the access advisor ----
        "GenerateServiceLastAccessedDetails" => {
            advisor::generate_service_last_accessed_details(call)
        }
        "GetServiceLastAccessedDetails" => advisor::get_service_last_accessed_details(call),
        "GetServiceLastAccessedDetailsWithEntities" => {
            advisor::get_service_last_accessed_details_with_entities(call)
        }
        "ListPoliciesGrantingServiceAccess" => advisor::list_policies_granting_service_access(call),
        "GetAccessKeyLastUsed" => advisor::get_access_key_last_used(call),
        "GenerateCredentialReport" => advisor::generate_credential_report(call),
        "GetCredentialReport" => advisor::get_credential_report(call),
        "RevokeSessions" => account::revoke_sessions(call),
        "RevokeLeakedAccessKey" => keys::revoke_leaked_access_key(call),
        _ => {
            if let Some(result) = crate::simulate::dispatch(state, caller, action, params, now) {
                return result;
            }
            Err(ApiError::new(
                400,
                "InvalidAction",
                format!("Could not find operation {action} for version 2010-05-08"),
            ))
        }
    }
}
