//! The user handlers: create, read, list, delete and tag IAM users. A
//! user's groups, keys and policies are in the sibling modules.

use crate::error::ApiError;
use crate::xml::{Xml, timestamp};
use latchkey_store::User;

use super::page::page_of;
use super::targets::Targets;
use super::{Call, path_param, path_prefix, refuse_boundary, tags_page, tags_xml, target_user};

pub(super) fn user_xml(x: &mut Xml, u: &User) {
    user_with_password_xml(x, u, None);
}

/// A user as `GetUser` and `ListUsers` show one: with `PasswordLastUsed`
/// when the console password was ever used.
fn user_with_password_xml(x: &mut Xml, u: &User, password_last_used: Option<i64>) {
    x.text("Path", &u.path)
        .text("UserName", &u.name)
        .text("UserId", &u.id)
        .text("Arn", &u.arn)
        .text("CreateDate", &timestamp(u.created));
    if let Some(at) = password_last_used {
        x.text("PasswordLastUsed", &timestamp(at));
    }
    if !u.tags.is_empty() {
        tags_xml(x, &u.tags);
    }
}

/// `CreateUser`.
pub(super) fn create_user(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("UserName")?;
    let tags = c.params.tags("Tags");
    c.authorize_create("user", name, &tags, "iam:TagUser")?;
    refuse_boundary(c.params)?;
    let u = c
        .store
        .create_user(name, path_param(c.params), &tags, c.now)?;
    x.node("User", |x| user_xml(x, &u));
    Ok(Some(x))
}

/// `GetUser`.
pub(super) fn get_user(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = target_user(c.caller, c.params)?;
    c.authorize(c.state.user_target(name))?;
    let u = c.store.get_user(name)?;
    let used = c.store.login_profile(&u.name)?.and_then(|p| p.last_used);
    x.node("User", |x| user_with_password_xml(x, &u, used));
    Ok(Some(x))
}

/// `ListUsers`.
pub(super) fn list_users(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    // No resource type in AWS's model: the resource is `*`.
    c.authorize(c.state.any_target())?;
    let prefix = path_prefix(c.params)?;
    let mut users = c.store.list_users()?;
    users.retain(|u| u.path.starts_with(prefix));
    let page = page_of(users, |u| u.name.clone(), c.params)?;
    let used: std::collections::HashMap<String, i64> = c
        .store
        .login_profiles()?
        .into_iter()
        .filter_map(|p| Some((p.user.to_ascii_lowercase(), p.last_used?)))
        .collect();
    x.members("Users", &page.items, |x, u| {
        user_with_password_xml(x, u, used.get(&u.name.to_ascii_lowercase()).copied());
    });
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `DeleteUser`.
pub(super) fn delete_user(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = c.params.required("UserName")?;
    c.authorize(c.state.user_target(name))?;
    c.store.delete_user(name)?;
    Ok(None)
}

/// `TagUser`.
pub(super) fn tag_user(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = c.params.required("UserName")?;
    let tags = c.params.tags("Tags");
    c.authorize(
        c.state
            .user_target(name)
            .with(|ctx| ctx.request_tags(&tags)),
    )?;
    c.store.tag_user(name, &tags)?;
    Ok(None)
}

/// `UntagUser`.
pub(super) fn untag_user(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = c.params.required("UserName")?;
    let keys = c.params.list("TagKeys");
    c.authorize(
        c.state
            .user_target(name)
            .with(|ctx| ctx.tag_keys(keys.iter().copied())),
    )?;
    c.store.untag_user(name, &keys)?;
    Ok(None)
}

/// `ListUserTags`.
pub(super) fn list_user_tags(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    let name = c.params.required("UserName")?;
    c.authorize(c.state.user_target(name))?;
    tags_page(&mut x, c.store.get_user(name)?.tags, c.params)?;
    Ok(Some(x))
}
