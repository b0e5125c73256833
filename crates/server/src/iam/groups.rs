//! The group handlers: create, read, list and delete IAM groups, and add
//! users to them and remove them.

use latchkey_store::Group;

use crate::error::ApiError;
use crate::xml::{Xml, timestamp};

use super::page::page_of;
use super::targets::Targets;
use super::users::user_xml;
use super::{Call, path_param, path_prefix};

pub(super) fn group_xml(x: &mut Xml, g: &Group) {
    x.text("Path", &g.path)
        .text("GroupName", &g.name)
        .text("GroupId", &g.id)
        .text("Arn", &g.arn)
        .text("CreateDate", &timestamp(g.created));
}

/// `CreateGroup`.
pub(super) fn create_group(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("GroupName")?;
    c.authorize(c.state.new_target("group", c.params, name))?;
    let (id, arn) = c.store.create_group(name, path_param(c.params), c.now)?;
    x.node("Group", |x| {
        group_xml(
            x,
            &Group {
                name: name.to_owned(),
                id,
                arn,
                path: path_param(c.params).to_owned(),
                created: c.now,
            },
        );
    });
    Ok(Some(x))
}

/// `AddUserToGroup`.
pub(super) fn add_user_to_group(c: &Call) -> Result<Option<Xml>, ApiError> {
    let group = c.params.required("GroupName")?;
    let user = c.params.required("UserName")?;
    c.authorize(c.state.group_target(group))?;
    c.store.add_user_to_group(group, user)?;
    Ok(None)
}

/// `ListGroups`.
pub(super) fn list_groups(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    c.authorize(c.state.any_target())?;
    let prefix = path_prefix(c.params)?;
    let mut groups = c.store.list_groups()?;
    groups.retain(|g| g.path.starts_with(prefix));
    let page = page_of(groups, |g| g.name.clone(), c.params)?;
    x.members("Groups", &page.items, group_xml);
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `ListGroupsForUser`.
pub(super) fn list_groups_for_user(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("UserName")?;
    c.authorize(c.state.user_target(name))?;
    let page = page_of(c.store.groups_of_user(name)?, |g| g.name.clone(), c.params)?;
    x.members("Groups", &page.items, group_xml);
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `GetGroup`.
pub(super) fn get_group(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("GroupName")?;
    c.authorize(c.state.group_target(name))?;
    let group = c.store.get_group(name)?;
    let page = page_of(c.store.group_members(name)?, |u| u.name.clone(), c.params)?;
    x.node("Group", |x| group_xml(x, &group));
    x.members("Users", &page.items, user_xml);
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `RemoveUserFromGroup`.
pub(super) fn remove_user_from_group(c: &Call) -> Result<Option<Xml>, ApiError> {
    let group = c.params.required("GroupName")?;
    let user = c.params.required("UserName")?;
    c.authorize(c.state.group_target(group))?;
    c.store.remove_user_from_group(group, user)?;
    Ok(None)
}

/// `DeleteGroup`.
pub(super) fn delete_group(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = c.params.required("GroupName")?;
    c.authorize(c.state.group_target(name))?;
    c.store.delete_group(name)?;
    Ok(None)
}
