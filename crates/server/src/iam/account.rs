//! Whole-account calls: `GetAccountAuthorizationDetails` (every user,
//! group, role and managed policy with what is attached to it, one page at
//! a time) and Latchkey's own `RevokeSessions`.

use latchkey_sigv4::encoding::encode;
use latchkey_store::{Group, ManagedPolicy, PrincipalKind, Role, User};

use crate::error::ApiError;
use crate::query::Params;
use crate::xml::{Xml, timestamp};
use latchkey_identity::AppState;

use super::groups::group_xml;
use super::page::{Page, page_of};
use super::policies::{attached_xml, policy_xml, version_xml};
use super::targets::Targets;
use super::{Call, strings_xml, tags_xml};

/// `PolicyDetail` members: inline policies with their documents.
fn inline_details_xml(x: &mut Xml, name: &str, policies: &[(String, String)]) {
    x.members(name, policies, |x, (n, doc)| {
        x.text("PolicyName", n).text("PolicyDocument", &encode(doc));
    });
}

/// One entry of `GetAccountAuthorizationDetails`, in the order it lists them.
enum Detail {
    User(User),
    Group(Group),
    Role(Role),
    Policy(ManagedPolicy),
}

impl Detail {
    fn key(&self) -> String {
        match self {
            Detail::User(u) => format!("1/{}", u.name),
            Detail::Group(g) => format!("2/{}", g.name),
            Detail::Role(r) => format!("3/{}", r.name),
            Detail::Policy(p) => format!("4/{}", p.arn),
        }
    }
}

/// Which kinds `GetAccountAuthorizationDetails`'s `Filter` asks for:
/// (users, groups, roles, local policies).
fn detail_filter(params: &Params) -> Result<[bool; 4], ApiError> {
    let filter = params.list("Filter");
    if filter.is_empty() {
        return Ok([true; 4]);
    }
    let mut wanted = [false; 4];
    for f in filter {
        match f {
            "User" => wanted[0] = true,
            "Group" => wanted[1] = true,
            "Role" => wanted[2] = true,
            "LocalManagedPolicy" => wanted[3] = true,
            // There are no AWS managed policies here.
            "AWSManagedPolicy" => {}
            _ => {
                return Err(ApiError::validation(
                    "Filter members must be User, Role, Group, LocalManagedPolicy or AWSManagedPolicy",
                ));
            }
        }
    }
    Ok(wanted)
}

fn account_details(state: &AppState, params: &Params) -> Result<Xml, ApiError> {
    let store = &state.store;
    let [users, groups, roles, policies] = detail_filter(params)?;
    let mut all = Vec::new();
    if users {
        all.extend(store.list_users()?.into_iter().map(Detail::User));
    }
    if groups {
        all.extend(store.list_groups()?.into_iter().map(Detail::Group));
    }
    if roles {
        all.extend(store.list_roles()?.into_iter().map(Detail::Role));
    }
    if policies {
        all.extend(store.list_policies()?.into_iter().map(Detail::Policy));
    }
    let page: Page<Detail> = page_of(all, Detail::key, params)?;
    let mut x = Xml::new();
    let (mut us, mut gs, mut rs, mut ps) = (vec![], vec![], vec![], vec![]);
    for d in &page.items {
        match d {
            Detail::User(u) => us.push(u),
            Detail::Group(g) => gs.push(g),
            Detail::Role(r) => rs.push(r),
            Detail::Policy(p) => ps.push(p),
        }
    }
    // The lists are read before writing: a store error fails the call.
    let mut user_parts = Vec::new();
    for u in us {
        let kind = PrincipalKind::User;
        user_parts.push((
            u,
            store.inline_policies(kind, &u.name)?,
            store.groups_of_user(&u.name)?,
            store.attached_policies(kind, &u.name)?,
        ));
    }
    let mut group_parts = Vec::new();
    for g in gs {
        let kind = PrincipalKind::Group;
        group_parts.push((
            g,
            store.inline_policies(kind, &g.name)?,
            store.attached_policies(kind, &g.name)?,
        ));
    }
    let mut role_parts = Vec::new();
    for r in rs {
        let kind = PrincipalKind::Role;
        role_parts.push((
            r,
            store.inline_policies(kind, &r.name)?,
            store.attached_policies(kind, &r.name)?,
        ));
    }
    let mut policy_parts = Vec::new();
    for p in ps {
        policy_parts.push((p, store.list_policy_versions(&p.arn)?));
    }
    x.members(
        "UserDetailList",
        &user_parts,
        |x, (u, inline, groups, attached)| {
            x.text("Path", &u.path)
                .text("UserName", &u.name)
                .text("UserId", &u.id)
                .text("Arn", &u.arn)
                .text("CreateDate", &timestamp(u.created));
            inline_details_xml(x, "UserPolicyList", inline);
            let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
            strings_xml(x, "GroupList", &names);
            attached_xml(x, "AttachedManagedPolicies", attached);
            tags_xml(x, &u.tags);
        },
    );
    x.members(
        "GroupDetailList",
        &group_parts,
        |x, (g, inline, attached)| {
            group_xml(x, g);
            inline_details_xml(x, "GroupPolicyList", inline);
            attached_xml(x, "AttachedManagedPolicies", attached);
        },
    );
    x.members("RoleDetailList", &role_parts, |x, (r, inline, attached)| {
        x.text("Path", &r.path)
            .text("RoleName", &r.name)
            .text("RoleId", &r.id)
            .text("Arn", &r.arn)
            .text("CreateDate", &timestamp(r.created))
            .text("AssumeRolePolicyDocument", &encode(&r.trust_policy))
            .node("InstanceProfileList", |_| {});
        inline_details_xml(x, "RolePolicyList", inline);
        attached_xml(x, "AttachedManagedPolicies", attached);
        tags_xml(x, &r.tags);
    });
    x.members("Policies", &policy_parts, |x, (p, versions)| {
        policy_xml(x, p, false);
        x.members("PolicyVersionList", versions, |x, v| {
            version_xml(x, v, true)
        });
    });
    page.write_truncation(&mut x);
    Ok(x)
}

/// `GetAccountAuthorizationDetails`.
pub(super) fn get_account_authorization_details(c: &Call) -> Result<Option<Xml>, ApiError> {
    c.authorize(c.state.any_target())?;
    Ok(Some(account_details(c.state, c.params)?))
}

/// Latchkey's extension, like the console's "Revoke active sessions":
/// every session of the user or role issued before `Before`
/// (default: now) stops working on every node.
pub(super) fn revoke_sessions(c: &Call) -> Result<Option<Xml>, ApiError> {
    let mut x = Xml::new();
    // Authorised before the entity is looked up: a caller who may
    // not revoke learns nothing of what exists.
    let (target, exists) = match (c.params.get("UserName"), c.params.get("RoleName")) {
        (Some(u), None) => (c.state.user_target(u), c.store.get_user(u).map(drop)),
        (None, Some(r)) => (c.state.role_target(r), c.store.get_role(r).map(drop)),
        _ => {
            return Err(ApiError::validation(
                "give exactly one of UserName or RoleName",
            ));
        }
    };
    let arn = target.arn.clone();
    c.authorize(target)?;
    exists?;
    let before = match c.params.get("Before") {
        None => c.now,
        Some(t) => latchkey_policy::condition::parse_date(t)
            .map(|ms| ms / 1000)
            .ok_or_else(|| ApiError::validation("Before must be an ISO 8601 time"))?,
    };
    // A revocation reaches sessions already issued, never future
    // ones: a `Before` in the future would lock the user or role
    // out for good, and revocations only ever move forward.
    if before > c.now {
        return Err(ApiError::validation("Before must not be in the future"));
    }
    c.store.revoke_sessions(&arn, before)?;
    c.state.reload_revocations()?;
    x.text("Arn", &arn)
        .text("RevokedBefore", &timestamp(before));
    Ok(Some(x))
}
