//! The role handlers: create, read, list, update, delete and tag IAM roles,
//! and replace their trust policies.

use latchkey_policy::PolicyKind;
use latchkey_sigv4::encoding::encode;
use latchkey_store::Role;

use crate::error::ApiError;
use crate::xml::{Xml, timestamp};

use super::page::page_of;
use super::targets::Targets;
use super::{Call, path_param, path_prefix, refuse_boundary, tags_page, tags_xml, validate_policy};

pub(super) fn role_xml(x: &mut Xml, r: &Role) {
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

/// `CreateRole`.
pub(super) fn create_role(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("RoleName")?;
    let doc = c.params.required("AssumeRolePolicyDocument")?;
    let tags = c.params.tags("Tags");
    c.authorize_create("role", name, &tags, "iam:TagRole")?;
    refuse_boundary(c.params)?;
    validate_policy(doc, PolicyKind::Trust)?;
    let max = c
        .params
        .int("MaxSessionDuration", 3600..=43_200)?
        .unwrap_or(3600);
    let r = c.store.create_role(
        name,
        path_param(c.params),
        doc,
        max,
        c.params.get("Description").unwrap_or(""),
        &tags,
        c.now,
    )?;
    x.node("Role", |x| role_xml(x, &r));
    Ok(Some(x))
}

/// `GetRole`.
pub(super) fn get_role(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("RoleName")?;
    c.authorize(c.state.role_target(name))?;
    let r = c.store.get_role(name)?;
    let mut last_used = Ok(());
    x.node("Role", |x| {
        role_xml(x, &r);
        last_used = super::advisor::role_last_used_xml(c, x, &r.arn);
    });
    last_used?;
    Ok(Some(x))
}

/// `ListRoles`.
pub(super) fn list_roles(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    c.authorize(c.state.any_target())?;
    let prefix = path_prefix(c.params)?;
    let mut roles = c.store.list_roles()?;
    roles.retain(|r| r.path.starts_with(prefix));
    let page = page_of(roles, |r| r.name.clone(), c.params)?;
    let mut last_used = Ok(());
    x.members("Roles", &page.items, |x, r| {
        role_xml(x, r);
        if last_used.is_ok() {
            last_used = super::advisor::role_last_used_xml(c, x, &r.arn);
        }
    });
    last_used?;
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `DeleteRole`.
pub(super) fn delete_role(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = c.params.required("RoleName")?;
    c.authorize(c.state.role_target(name))?;
    c.store.delete_role(name)?;
    Ok(None)
}

/// `UpdateAssumeRolePolicy`.
pub(super) fn update_assume_role_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = c.params.required("RoleName")?;
    let doc = c.params.required("PolicyDocument")?;
    c.authorize(c.state.role_target(name))?;
    validate_policy(doc, PolicyKind::Trust)?;
    c.store.update_assume_role_policy(name, doc)?;
    Ok(None)
}

/// `TagRole`.
pub(super) fn tag_role(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = c.params.required("RoleName")?;
    let tags = c.params.tags("Tags");
    c.authorize(
        c.state
            .role_target(name)
            .with(|ctx| ctx.request_tags(&tags)),
    )?;
    c.store.tag_role(name, &tags)?;
    Ok(None)
}

/// `UntagRole`.
pub(super) fn untag_role(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = c.params.required("RoleName")?;
    let keys = c.params.list("TagKeys");
    c.authorize(
        c.state
            .role_target(name)
            .with(|ctx| ctx.tag_keys(keys.iter().copied())),
    )?;
    c.store.untag_role(name, &keys)?;
    Ok(None)
}

/// `ListRoleTags`.
pub(super) fn list_role_tags(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("RoleName")?;
    c.authorize(c.state.role_target(name))?;
    tags_page(&mut x, c.store.get_role(name)?.tags, c.params)?;
    Ok(Some(x))
}

/// `UpdateRole`, `UpdateRoleDescription`.
pub(super) fn update_role(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("RoleName")?;
    let description = if c.action == "UpdateRoleDescription" {
        Some(c.params.required("Description")?)
    } else {
        c.params.get("Description")
    };
    let max = c.params.int("MaxSessionDuration", 3600..=43_200)?;
    c.authorize(c.state.role_target(name))?;
    c.store.update_role(name, description, max)?;
    if c.action == "UpdateRole" {
        // An empty `<UpdateRoleResult/>`: its output shape exists.
        return Ok(Some(x));
    }
    let r = c.store.get_role(name)?;
    let mut last_used = Ok(());
    x.node("Role", |x| {
        role_xml(x, &r);
        last_used = super::advisor::role_last_used_xml(c, x, &r.arn);
    });
    last_used?;
    Ok(Some(x))
}
