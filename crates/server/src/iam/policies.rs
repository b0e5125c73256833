//! The policy handlers: managed policies (create, read, list, delete, tag),
//! their versions and the entities they are attached to; attaching and
//! detaching them; and the inline policies of users, roles and groups.

use latchkey_policy::PolicyKind;
use latchkey_sigv4::encoding::encode;
use latchkey_store::{ManagedPolicy, PolicyVersion, PrincipalKind};

use crate::error::ApiError;
use crate::xml::{Xml, timestamp};

use super::page::page_of;
use super::targets::Targets;
use super::{
    Call, bool_param, bool_text, path_param, path_prefix, permissions_usage, strings_xml,
    tags_page, tags_xml, validate_policy,
};

/// A `Policy` (or the first members of a `ManagedPolicyDetail`).
pub(super) fn policy_xml(x: &mut Xml, p: &ManagedPolicy, with_tags: bool) {
    x.text("PolicyName", &p.name)
        .text("PolicyId", &p.id)
        .text("Arn", &p.arn)
        .text("Path", &p.path)
        .text("DefaultVersionId", &p.default_version)
        .text("AttachmentCount", &p.attachment_count.to_string())
        .text("PermissionsBoundaryUsageCount", "0")
        .text("IsAttachable", "true");
    if !p.description.is_empty() {
        x.text("Description", &p.description);
    }
    x.text("CreateDate", &timestamp(p.created))
        .text("UpdateDate", &timestamp(p.updated));
    if with_tags && !p.tags.is_empty() {
        tags_xml(x, &p.tags);
    }
}

pub(super) fn version_xml(x: &mut Xml, v: &PolicyVersion, with_document: bool) {
    if with_document {
        // URL-encoded, as IAM returns policy documents.
        x.text("Document", &encode(&v.document));
    }
    x.text("VersionId", &v.version_id)
        .text("IsDefaultVersion", bool_text(v.is_default))
        .text("CreateDate", &timestamp(v.created));
}

pub(super) fn attached_xml(x: &mut Xml, name: &str, p: &[ManagedPolicy]) {
    x.members(name, p, |x, p| {
        x.text("PolicyName", &p.name).text("PolicyArn", &p.arn);
    });
}

/// A sort key that lists policy versions newest first.
fn version_key(v: &PolicyVersion) -> String {
    let n: u64 = v.version_id.trim_start_matches('v').parse().unwrap_or(0);
    format!("{:020}", u64::MAX - n)
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

/// `PutUserPolicy`, `PutRolePolicy`, `PutGroupPolicy`, `GetUserPolicy`, `GetRolePolicy`, `GetGroupPolicy`, `DeleteUserPolicy`, `DeleteRolePolicy`, `DeleteGroupPolicy`.
pub(super) fn inline_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let kind = principal_kind(c.action);
    let (principal, target) = c.state.principal(c.params, kind)?;
    let policy_name = c.params.required("PolicyName")?;
    c.authorize(target)?;
    if c.action.starts_with("Put") {
        let doc = c.params.required("PolicyDocument")?;
        validate_policy(doc, PolicyKind::Identity)?;
        c.store
            .put_inline_policy(kind, principal, policy_name, doc)?;
        return Ok(None);
    }
    if c.action.starts_with("Delete") {
        c.store.delete_inline_policy(kind, principal, policy_name)?;
        return Ok(None);
    }
    let doc = c.store.get_inline_policy(kind, principal, policy_name)?;
    let label = match kind {
        PrincipalKind::User => "UserName",
        PrincipalKind::Role => "RoleName",
        PrincipalKind::Group => "GroupName",
    };
    x.text(label, principal)
        .text("PolicyName", policy_name)
        .text("PolicyDocument", &encode(&doc));
    Ok(Some(x))
}

/// `CreatePolicy`.
pub(super) fn create_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("PolicyName")?;
    let doc = c.params.required("PolicyDocument")?;
    let path = path_param(c.params);
    let tags = c.params.tags("Tags");
    c.authorize_create("policy", name, &tags, "iam:TagPolicy")?;
    validate_policy(doc, PolicyKind::Identity)?;
    let description = c.params.get("Description").unwrap_or("");
    let p = c
        .store
        .create_policy(name, path, doc, description, &tags, c.now)?;
    x.node("Policy", |x| policy_xml(x, &p, true));
    Ok(Some(x))
}

/// `AttachUserPolicy`, `AttachRolePolicy`, `AttachGroupPolicy`, `DetachUserPolicy`, `DetachRolePolicy`, `DetachGroupPolicy`.
pub(super) fn attach_or_detach_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    let kind = principal_kind(c.action);
    let (principal, target) = c.state.principal(c.params, kind)?;
    let policy_arn = c.params.required("PolicyArn")?;
    c.authorize(target.with(|ctx| ctx.key("iam:PolicyARN", [policy_arn])))?;
    if c.action.starts_with("Attach") {
        c.store.attach_policy(kind, principal, policy_arn)?;
    } else {
        c.store.detach_policy(kind, principal, policy_arn)?;
    }
    Ok(None)
}

/// `GetPolicy`.
pub(super) fn get_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let arn = c.params.required("PolicyArn")?;
    c.authorize(c.state.policy_target(arn)?)?;
    let p = c.store.get_policy(arn)?;
    x.node("Policy", |x| policy_xml(x, &p, true));
    Ok(Some(x))
}

/// `ListPolicies`.
pub(super) fn list_policies(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    c.authorize(c.state.any_target())?;
    let scope = c.params.get("Scope").unwrap_or("All");
    if !matches!(scope, "All" | "AWS" | "Local") {
        return Err(ApiError::validation("Scope must be All, AWS or Local"));
    }
    let only_attached = bool_param(c.params, "OnlyAttached")?.unwrap_or(false);
    let prefix = path_prefix(c.params)?;
    let usage = permissions_usage(c.params)?;
    let mut policies = if scope == "AWS" || !usage {
        // No AWS managed policies and no permissions boundaries here.
        Vec::new()
    } else {
        c.store.list_policies()?
    };
    policies.retain(|p| p.path.starts_with(prefix) && (!only_attached || p.attachment_count > 0));
    let page = page_of(policies, |p| p.arn.clone(), c.params)?;
    x.members("Policies", &page.items, |x, p| policy_xml(x, p, false));
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `DeletePolicy`.
pub(super) fn delete_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    let arn = c.params.required("PolicyArn")?;
    c.authorize(c.state.policy_target(arn)?)?;
    c.store.delete_policy(arn)?;
    Ok(None)
}

/// `CreatePolicyVersion`.
pub(super) fn create_policy_version(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let arn = c.params.required("PolicyArn")?;
    let doc = c.params.required("PolicyDocument")?;
    let set_default = bool_param(c.params, "SetAsDefault")?.unwrap_or(false);
    c.authorize(c.state.policy_target(arn)?)?;
    c.store.get_policy(arn)?;
    validate_policy(doc, PolicyKind::Identity)?;
    let v = c
        .store
        .create_policy_version(arn, doc, set_default, c.now)?;
    x.node("PolicyVersion", |x| version_xml(x, &v, false));
    Ok(Some(x))
}

/// `GetPolicyVersion`.
pub(super) fn get_policy_version(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let arn = c.params.required("PolicyArn")?;
    let version = c.params.required("VersionId")?;
    c.authorize(c.state.policy_target(arn)?)?;
    let v = c.store.get_policy_version(arn, version)?;
    x.node("PolicyVersion", |x| version_xml(x, &v, true));
    Ok(Some(x))
}

/// `ListPolicyVersions`.
pub(super) fn list_policy_versions(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let arn = c.params.required("PolicyArn")?;
    c.authorize(c.state.policy_target(arn)?)?;
    let page = page_of(c.store.list_policy_versions(arn)?, version_key, c.params)?;
    x.members("Versions", &page.items, |x, v| version_xml(x, v, false));
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `DeletePolicyVersion`, `SetDefaultPolicyVersion`.
pub(super) fn delete_or_set_default_version(c: &Call) -> Result<Option<Xml>, ApiError> {
    let arn = c.params.required("PolicyArn")?;
    let version = c.params.required("VersionId")?;
    c.authorize(c.state.policy_target(arn)?)?;
    if c.action == "DeletePolicyVersion" {
        c.store.delete_policy_version(arn, version)?;
    } else {
        c.store.set_default_policy_version(arn, version, c.now)?;
    }
    Ok(None)
}

/// `ListEntitiesForPolicy`.
pub(super) fn list_entities_for_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let arn = c.params.required("PolicyArn")?;
    c.authorize(c.state.policy_target(arn)?)?;
    let kind = match c.params.get("EntityFilter") {
        None => None,
        Some("User") => Some(Some(PrincipalKind::User)),
        Some("Group") => Some(Some(PrincipalKind::Group)),
        Some("Role") => Some(Some(PrincipalKind::Role)),
        // Policies are attached to users, groups and roles only.
        Some("LocalManagedPolicy" | "AWSManagedPolicy") => Some(None),
        Some(_) => {
            return Err(ApiError::validation(
                "EntityFilter must be User, Role, Group, LocalManagedPolicy or AWSManagedPolicy",
            ));
        }
    };
    let prefix = path_prefix(c.params)?;
    let usage = permissions_usage(c.params)?;
    let mut entities = c.store.policy_entities(arn)?;
    entities
        .retain(|e| usage && e.path.starts_with(prefix) && kind.is_none_or(|k| k == Some(e.kind)));
    let page = page_of(
        entities,
        |e| format!("{}/{}", e.kind.as_str(), e.name),
        c.params,
    )?;
    let of = |k: PrincipalKind| -> Vec<&latchkey_store::PolicyEntity> {
        page.items.iter().filter(|e| e.kind == k).collect()
    };
    x.members("PolicyGroups", &of(PrincipalKind::Group), |x, e| {
        x.text("GroupName", &e.name).text("GroupId", &e.id);
    });
    x.members("PolicyUsers", &of(PrincipalKind::User), |x, e| {
        x.text("UserName", &e.name).text("UserId", &e.id);
    });
    x.members("PolicyRoles", &of(PrincipalKind::Role), |x, e| {
        x.text("RoleName", &e.name).text("RoleId", &e.id);
    });
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `TagPolicy`.
pub(super) fn tag_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    let arn = c.params.required("PolicyArn")?;
    let tags = c.params.tags("Tags");
    c.authorize(
        c.state
            .policy_target(arn)?
            .with(|ctx| ctx.request_tags(&tags)),
    )?;
    c.store.tag_policy(arn, &tags)?;
    Ok(None)
}

/// `UntagPolicy`.
pub(super) fn untag_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    let arn = c.params.required("PolicyArn")?;
    let keys = c.params.list("TagKeys");
    c.authorize(
        c.state
            .policy_target(arn)?
            .with(|ctx| ctx.tag_keys(keys.iter().copied())),
    )?;
    c.store.untag_policy(arn, &keys)?;
    Ok(None)
}

/// `ListPolicyTags`.
pub(super) fn list_policy_tags(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let arn = c.params.required("PolicyArn")?;
    c.authorize(c.state.policy_target(arn)?)?;
    tags_page(&mut x, c.store.get_policy(arn)?.tags, c.params)?;
    Ok(Some(x))
}

/// `ListAttachedUserPolicies`, `ListAttachedRolePolicies`, `ListAttachedGroupPolicies`.
pub(super) fn list_attached_policies(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let kind = principal_kind(c.action);
    let (principal, target) = c.state.principal(c.params, kind)?;
    c.authorize(target)?;
    let prefix = path_prefix(c.params)?;
    let mut attached = c.store.attached_policies(kind, principal)?;
    attached.retain(|p| p.path.starts_with(prefix));
    let page = page_of(attached, |p| p.arn.clone(), c.params)?;
    attached_xml(&mut x, "AttachedPolicies", &page.items);
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `ListUserPolicies`, `ListRolePolicies`, `ListGroupPolicies`.
pub(super) fn list_inline_policies(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let kind = principal_kind(c.action);
    let (principal, target) = c.state.principal(c.params, kind)?;
    c.authorize(target)?;
    let names: Vec<String> = c
        .store
        .inline_policies(kind, principal)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let page = page_of(names, Clone::clone, c.params)?;
    strings_xml(&mut x, "PolicyNames", &page.items);
    page.write_truncation(&mut x);
    Ok(Some(x))
}
