//! The IAM subset. Every call is authorised by the policy engine against the
//! caller (`iam:CreateUser` on the new user's ARN, and so on).

use base64::Engine;
use latchkey_policy::PolicyKind;
use latchkey_session::totp;
use latchkey_sigv4::encoding::encode;
use latchkey_store::{Group, ManagedPolicy, MfaDevice, PolicyVersion, PrincipalKind, Role, User};

use crate::error::ApiError;
use crate::query::Params;
use crate::xml::{Xml, timestamp};
use latchkey_identity::{ActionContext, AppState, Caller, Identity};

mod page;
use page::{Page, page_of};

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

fn group_xml(x: &mut Xml, g: &Group) {
    x.text("Path", &g.path)
        .text("GroupName", &g.name)
        .text("GroupId", &g.id)
        .text("Arn", &g.arn)
        .text("CreateDate", &timestamp(g.created));
}

/// A `Policy` (or the first members of a `ManagedPolicyDetail`).
fn policy_xml(x: &mut Xml, p: &ManagedPolicy, with_tags: bool) {
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

fn version_xml(x: &mut Xml, v: &PolicyVersion, with_document: bool) {
    if with_document {
        // URL-encoded, as IAM returns policy documents.
        x.text("Document", &encode(&v.document));
    }
    x.text("VersionId", &v.version_id)
        .text("IsDefaultVersion", bool_text(v.is_default))
        .text("CreateDate", &timestamp(v.created));
}

fn attached_xml(x: &mut Xml, name: &str, p: &[ManagedPolicy]) {
    x.members(name, p, |x, p| {
        x.text("PolicyName", &p.name).text("PolicyArn", &p.arn);
    });
}

/// `PolicyDetail` members: inline policies with their documents.
fn inline_details_xml(x: &mut Xml, name: &str, policies: &[(String, String)]) {
    x.members(name, policies, |x, (n, doc)| {
        x.text("PolicyName", n).text("PolicyDocument", &encode(doc));
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

/// A sort key that lists policy versions newest first.
fn version_key(v: &PolicyVersion) -> String {
    let n: u64 = v.version_id.trim_start_matches('v').parse().unwrap_or(0);
    format!("{:020}", u64::MAX - n)
}

fn tags_page(x: &mut Xml, tags: Vec<(String, String)>, params: &Params) -> Result<(), ApiError> {
    let page = page_of(tags, |(k, _)| k.clone(), params)?;
    x.members("Tags", &page.items, |x, (k, v)| {
        x.text("Key", k).text("Value", v);
    });
    page.write_truncation(x);
    Ok(())
}

fn mfa_xml(x: &mut Xml, d: &MfaDevice) {
    x.text("UserName", d.user.as_deref().unwrap_or(""))
        .text("SerialNumber", &d.serial)
        .text("EnableDate", &timestamp(d.enabled_at.unwrap_or(0)));
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

/// What an IAM call acts on: the resource ARN, built from the stored
/// entity (its path included), and the condition keys that come with it.
struct Target {
    arn: String,
    context: ActionContext,
    /// The resource as the request named it, for a refusal's message:
    /// naming the stored ARN would tell a caller who may not see the
    /// entity that it exists, and its path. `None`: the same as `arn`.
    shown: Option<String>,
}

impl Target {
    /// Adds condition keys of the action.
    fn with(mut self, f: impl FnOnce(ActionContext) -> ActionContext) -> Self {
        self.context = f(self.context);
        self
    }
}

/// Targets of IAM actions, built from the stored entity (see [`Target`]).
trait Targets {
    fn iam_arn(&self, kind: &str, path: &str, name: &str) -> String;

    /// A new entity's ARN from the path the request gives.
    fn new_target(&self, kind: &str, params: &Params, name: &str) -> Target;

    /// An existing user with its tags, or the ARN it would have (the call
    /// then fails with `NoSuchEntity` once authorised, as AWS answers).
    fn user_target(&self, name: &str) -> Target;

    fn role_target(&self, name: &str) -> Target;

    fn group_target(&self, name: &str) -> Target;

    /// A managed policy by ARN, with `aws:ResourceTag/*` of its tags; or,
    /// when there is no such policy, the ARN as given.
    fn policy_target(&self, arn: &str) -> Result<Target, ApiError>;

    /// Calls with no resource type in AWS's model (`ListUsers`, ...).
    fn any_target(&self) -> Target;

    fn missing_target(&self, kind: &str, name: &str) -> Target;

    /// The user, role or group a `*UserPolicy`/`*RolePolicy`/`*GroupPolicy`
    /// call names: (name, target).
    fn principal<'p>(
        &self,
        params: &'p Params,
        kind: PrincipalKind,
    ) -> Result<(&'p str, Target), ApiError>;
}

impl Targets for AppState {
    fn iam_arn(&self, kind: &str, path: &str, name: &str) -> String {
        format!(
            "arn:aws:iam::{}:{kind}{path}{name}",
            self.store.account_id()
        )
    }

    fn new_target(&self, kind: &str, params: &Params, name: &str) -> Target {
        Target {
            arn: self.iam_arn(kind, path_param(params), name),
            context: ActionContext::new(),
            shown: None,
        }
    }

    fn user_target(&self, name: &str) -> Target {
        match self.store.get_user(name) {
            Ok(u) => Target {
                arn: u.arn,
                context: ActionContext::new().resource_tags(&u.tags),
                shown: Some(self.iam_arn("user", "/", name)),
            },
            Err(_) => self.missing_target("user", name),
        }
    }

    fn role_target(&self, name: &str) -> Target {
        match self.store.get_role(name) {
            Ok(r) => Target {
                arn: r.arn,
                context: ActionContext::new().resource_tags(&r.tags),
                shown: Some(self.iam_arn("role", "/", name)),
            },
            Err(_) => self.missing_target("role", name),
        }
    }

    fn group_target(&self, name: &str) -> Target {
        match self.store.get_group(name) {
            Ok(g) => Target {
                arn: g.arn,
                context: ActionContext::new(),
                shown: Some(self.iam_arn("group", "/", name)),
            },
            Err(_) => self.missing_target("group", name),
        }
    }

    fn policy_target(&self, arn: &str) -> Result<Target, ApiError> {
        if !arn.starts_with("arn:") || arn.len() > 2048 {
            return Err(ApiError::new(
                400,
                "InvalidInput",
                format!("ARN {arn} is not valid."),
            ));
        }
        Ok(match self.store.get_policy(arn) {
            Ok(p) => Target {
                context: p.tags.iter().fold(ActionContext::new(), |c, (k, v)| {
                    c.key(format!("aws:ResourceTag/{k}"), [v.as_str()])
                }),
                arn: p.arn,
                shown: Some(arn.to_owned()),
            },
            Err(_) => Target {
                arn: arn.to_owned(),
                context: ActionContext::new(),
                shown: None,
            },
        })
    }

    fn any_target(&self) -> Target {
        Target {
            arn: "*".into(),
            context: ActionContext::new(),
            shown: None,
        }
    }

    fn missing_target(&self, kind: &str, name: &str) -> Target {
        Target {
            arn: self.iam_arn(kind, "/", name),
            context: ActionContext::new(),
            shown: None,
        }
    }

    fn principal<'p>(
        &self,
        params: &'p Params,
        kind: PrincipalKind,
    ) -> Result<(&'p str, Target), ApiError> {
        Ok(match kind {
            PrincipalKind::User => {
                let n = params.required("UserName")?;
                (n, self.user_target(n))
            }
            PrincipalKind::Role => {
                let n = params.required("RoleName")?;
                (n, self.role_target(n))
            }
            PrincipalKind::Group => {
                let n = params.required("GroupName")?;
                (n, self.group_target(n))
            }
        })
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
    if !["Get", "List", "Simulate"]
        .iter()
        .any(|p| action.starts_with(p))
    {
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
    let iam_action = format!("iam:{action}");
    let authorize = |t: Target| {
        let shown = t.shown.as_deref().unwrap_or(&t.arn);
        state.authorize_shown(caller, &iam_action, &t.arn, shown, now, &t.context)
    };
    let mut x = Xml::new();
    match action {
        "CreateUser" => {
            let name = params.required("UserName")?;
            let tags = params.tags("Tags");
            authorize(
                state
                    .new_target("user", params, name)
                    .with(|c| c.request_tags(&tags)),
            )?;
            refuse_boundary(params)?;
            let u = store.create_user(name, path_param(params), &tags, now)?;
            x.node("User", |x| user_xml(x, &u));
        }
        "GetUser" => {
            let name = target_user(caller, params)?;
            authorize(state.user_target(name))?;
            let u = store.get_user(name)?;
            x.node("User", |x| user_xml(x, &u));
        }
        "ListUsers" => {
            // No resource type in AWS's model: the resource is `*`.
            authorize(state.any_target())?;
            let prefix = path_prefix(params)?;
            let mut users = store.list_users()?;
            users.retain(|u| u.path.starts_with(prefix));
            let page = page_of(users, |u| u.name.clone(), params)?;
            x.members("Users", &page.items, user_xml);
            page.write_truncation(&mut x);
        }
        "DeleteUser" => {
            let name = params.required("UserName")?;
            authorize(state.user_target(name))?;
            store.delete_user(name)?;
            return Ok(None);
        }
        "TagUser" => {
            let name = params.required("UserName")?;
            let tags = params.tags("Tags");
            authorize(state.user_target(name).with(|c| c.request_tags(&tags)))?;
            store.tag_user(name, &tags)?;
            return Ok(None);
        }
        "CreateAccessKey" => {
            let name = target_user(caller, params)?;
            authorize(state.user_target(name))?;
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
            authorize(state.user_target(name))?;
            let keys = page_of(store.list_access_keys(name)?, |k| k.id.clone(), params)?;
            x.members("AccessKeyMetadata", &keys.items, |x, k| {
                x.text("UserName", &k.user)
                    .text("AccessKeyId", &k.id)
                    .text("Status", if k.active { "Active" } else { "Inactive" })
                    .text("CreateDate", &timestamp(k.created));
            });
            keys.write_truncation(&mut x);
        }
        "UpdateAccessKey" | "DeleteAccessKey" => {
            let id = params.required("AccessKeyId")?;
            let name = target_user(caller, params)?;
            authorize(state.user_target(name))?;
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
            let tags = params.tags("Tags");
            authorize(
                state
                    .new_target("role", params, name)
                    .with(|c| c.request_tags(&tags)),
            )?;
            refuse_boundary(params)?;
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
                &tags,
                now,
            )?;
            x.node("Role", |x| role_xml(x, &r));
        }
        "GetRole" => {
            let name = params.required("RoleName")?;
            authorize(state.role_target(name))?;
            let r = store.get_role(name)?;
            x.node("Role", |x| role_xml(x, &r));
        }
        "ListRoles" => {
            authorize(state.any_target())?;
            let prefix = path_prefix(params)?;
            let mut roles = store.list_roles()?;
            roles.retain(|r| r.path.starts_with(prefix));
            let page = page_of(roles, |r| r.name.clone(), params)?;
            x.members("Roles", &page.items, role_xml);
            page.write_truncation(&mut x);
        }
        "DeleteRole" => {
            let name = params.required("RoleName")?;
            authorize(state.role_target(name))?;
            store.delete_role(name)?;
            return Ok(None);
        }
        "UpdateAssumeRolePolicy" => {
            let name = params.required("RoleName")?;
            let doc = params.required("PolicyDocument")?;
            authorize(state.role_target(name))?;
            validate_policy(doc, PolicyKind::Trust)?;
            store.update_assume_role_policy(name, doc)?;
            return Ok(None);
        }
        "TagRole" => {
            let name = params.required("RoleName")?;
            let tags = params.tags("Tags");
            authorize(state.role_target(name).with(|c| c.request_tags(&tags)))?;
            store.tag_role(name, &tags)?;
            return Ok(None);
        }
        "CreateGroup" => {
            let name = params.required("GroupName")?;
            authorize(state.new_target("group", params, name))?;
            let (id, arn) = store.create_group(name, path_param(params), now)?;
            x.node("Group", |x| {
                group_xml(
                    x,
                    &Group {
                        name: name.to_owned(),
                        id,
                        arn,
                        path: path_param(params).to_owned(),
                        created: now,
                    },
                );
            });
        }
        "AddUserToGroup" => {
            let group = params.required("GroupName")?;
            let user = params.required("UserName")?;
            authorize(state.group_target(group))?;
            store.add_user_to_group(group, user)?;
            return Ok(None);
        }
        "PutUserPolicy" | "PutRolePolicy" | "PutGroupPolicy" | "GetUserPolicy"
        | "GetRolePolicy" | "GetGroupPolicy" | "DeleteUserPolicy" | "DeleteRolePolicy"
        | "DeleteGroupPolicy" => {
            let kind = principal_kind(action);
            let (principal, target) = state.principal(params, kind)?;
            let policy_name = params.required("PolicyName")?;
            authorize(target)?;
            if action.starts_with("Put") {
                let doc = params.required("PolicyDocument")?;
                validate_policy(doc, PolicyKind::Identity)?;
                store.put_inline_policy(kind, principal, policy_name, doc)?;
                return Ok(None);
            }
            if action.starts_with("Delete") {
                store.delete_inline_policy(kind, principal, policy_name)?;
                return Ok(None);
            }
            let doc = store.get_inline_policy(kind, principal, policy_name)?;
            let label = match kind {
                PrincipalKind::User => "UserName",
                PrincipalKind::Role => "RoleName",
                PrincipalKind::Group => "GroupName",
            };
            x.text(label, principal)
                .text("PolicyName", policy_name)
                .text("PolicyDocument", &encode(&doc));
        }
        "CreatePolicy" => {
            let name = params.required("PolicyName")?;
            let doc = params.required("PolicyDocument")?;
            let path = path_param(params);
            let tags = params.tags("Tags");
            authorize(
                state
                    .new_target("policy", params, name)
                    .with(|c| c.request_tags(&tags)),
            )?;
            validate_policy(doc, PolicyKind::Identity)?;
            let description = params.get("Description").unwrap_or("");
            let p = store.create_policy(name, path, doc, description, &tags, now)?;
            x.node("Policy", |x| policy_xml(x, &p, true));
        }
        "AttachUserPolicy" | "AttachRolePolicy" | "AttachGroupPolicy" | "DetachUserPolicy"
        | "DetachRolePolicy" | "DetachGroupPolicy" => {
            let kind = principal_kind(action);
            let (principal, target) = state.principal(params, kind)?;
            let policy_arn = params.required("PolicyArn")?;
            authorize(target.with(|c| c.key("iam:PolicyARN", [policy_arn])))?;
            if action.starts_with("Attach") {
                store.attach_policy(kind, principal, policy_arn)?;
            } else {
                store.detach_policy(kind, principal, policy_arn)?;
            }
            return Ok(None);
        }
        "CreateVirtualMFADevice" => {
            let name = params.required("VirtualMFADeviceName")?;
            let path = path_param(params);
            let tags = params.tags("Tags");
            authorize(
                state
                    .new_target("mfa", params, name)
                    .with(|c| c.request_tags(&tags)),
            )?;
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
            authorize(state.user_target(user))?;
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
            authorize(state.user_target(user))?;
            store.deactivate_mfa(serial, user)?;
            return Ok(None);
        }
        "ListMFADevices" => {
            let user = target_user(caller, params)?;
            authorize(state.user_target(user))?;
            store.get_user(user)?;
            let page = page_of(store.list_mfa_devices(user)?, |d| d.serial.clone(), params)?;
            x.members("MFADevices", &page.items, mfa_xml);
            page.write_truncation(&mut x);
        }
        // ---- managed policies and their versions ----
        "GetPolicy" => {
            let arn = params.required("PolicyArn")?;
            authorize(state.policy_target(arn)?)?;
            let p = store.get_policy(arn)?;
            x.node("Policy", |x| policy_xml(x, &p, true));
        }
        "ListPolicies" => {
            authorize(state.any_target())?;
            let scope = params.get("Scope").unwrap_or("All");
            if !matches!(scope, "All" | "AWS" | "Local") {
                return Err(ApiError::validation("Scope must be All, AWS or Local"));
            }
            let only_attached = bool_param(params, "OnlyAttached")?.unwrap_or(false);
            let prefix = path_prefix(params)?;
            let usage = permissions_usage(params)?;
            let mut policies = if scope == "AWS" || !usage {
                // No AWS managed policies and no permissions boundaries here.
                Vec::new()
            } else {
                store.list_policies()?
            };
            policies.retain(|p| {
                p.path.starts_with(prefix) && (!only_attached || p.attachment_count > 0)
            });
            let page = page_of(policies, |p| p.arn.clone(), params)?;
            x.members("Policies", &page.items, |x, p| policy_xml(x, p, false));
            page.write_truncation(&mut x);
        }
        "DeletePolicy" => {
            let arn = params.required("PolicyArn")?;
            authorize(state.policy_target(arn)?)?;
            store.delete_policy(arn)?;
            return Ok(None);
        }
        "CreatePolicyVersion" => {
            let arn = params.required("PolicyArn")?;
            let doc = params.required("PolicyDocument")?;
            let set_default = bool_param(params, "SetAsDefault")?.unwrap_or(false);
            authorize(state.policy_target(arn)?)?;
            store.get_policy(arn)?;
            validate_policy(doc, PolicyKind::Identity)?;
            let v = store.create_policy_version(arn, doc, set_default, now)?;
            x.node("PolicyVersion", |x| version_xml(x, &v, false));
        }
        "GetPolicyVersion" => {
            let arn = params.required("PolicyArn")?;
            let version = params.required("VersionId")?;
            authorize(state.policy_target(arn)?)?;
            let v = store.get_policy_version(arn, version)?;
            x.node("PolicyVersion", |x| version_xml(x, &v, true));
        }
        "ListPolicyVersions" => {
            let arn = params.required("PolicyArn")?;
            authorize(state.policy_target(arn)?)?;
            let page = page_of(store.list_policy_versions(arn)?, version_key, params)?;
            x.members("Versions", &page.items, |x, v| version_xml(x, v, false));
            page.write_truncation(&mut x);
        }
        "DeletePolicyVersion" | "SetDefaultPolicyVersion" => {
            let arn = params.required("PolicyArn")?;
            let version = params.required("VersionId")?;
            authorize(state.policy_target(arn)?)?;
            if action == "DeletePolicyVersion" {
                store.delete_policy_version(arn, version)?;
            } else {
                store.set_default_policy_version(arn, version, now)?;
            }
            return Ok(None);
        }
        "ListEntitiesForPolicy" => {
            let arn = params.required("PolicyArn")?;
            authorize(state.policy_target(arn)?)?;
            let kind = match params.get("EntityFilter") {
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
            let prefix = path_prefix(params)?;
            let usage = permissions_usage(params)?;
            let mut entities = store.policy_entities(arn)?;
            entities.retain(|e| {
                usage && e.path.starts_with(prefix) && kind.is_none_or(|k| k == Some(e.kind))
            });
            let page = page_of(
                entities,
                |e| format!("{}/{}", e.kind.as_str(), e.name),
                params,
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
        }
        "TagPolicy" => {
            let arn = params.required("PolicyArn")?;
            let tags = params.tags("Tags");
            authorize(state.policy_target(arn)?.with(|c| c.request_tags(&tags)))?;
            store.tag_policy(arn, &tags)?;
            return Ok(None);
        }
        "UntagPolicy" => {
            let arn = params.required("PolicyArn")?;
            let keys = params.list("TagKeys");
            authorize(
                state
                    .policy_target(arn)?
                    .with(|c| c.tag_keys(keys.iter().copied())),
            )?;
            store.untag_policy(arn, &keys)?;
            return Ok(None);
        }
        "ListPolicyTags" => {
            let arn = params.required("PolicyArn")?;
            authorize(state.policy_target(arn)?)?;
            tags_page(&mut x, store.get_policy(arn)?.tags, params)?;
        }
        // ---- what is attached to and inlined in users, groups and roles ----
        "ListAttachedUserPolicies" | "ListAttachedRolePolicies" | "ListAttachedGroupPolicies" => {
            let kind = principal_kind(action);
            let (principal, target) = state.principal(params, kind)?;
            authorize(target)?;
            let prefix = path_prefix(params)?;
            let mut attached = store.attached_policies(kind, principal)?;
            attached.retain(|p| p.path.starts_with(prefix));
            let page = page_of(attached, |p| p.arn.clone(), params)?;
            attached_xml(&mut x, "AttachedPolicies", &page.items);
            page.write_truncation(&mut x);
        }
        "ListUserPolicies" | "ListRolePolicies" | "ListGroupPolicies" => {
            let kind = principal_kind(action);
            let (principal, target) = state.principal(params, kind)?;
            authorize(target)?;
            let names: Vec<String> = store
                .inline_policies(kind, principal)?
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            let page = page_of(names, Clone::clone, params)?;
            strings_xml(&mut x, "PolicyNames", &page.items);
            page.write_truncation(&mut x);
        }
        // ---- groups ----
        "ListGroups" => {
            authorize(state.any_target())?;
            let prefix = path_prefix(params)?;
            let mut groups = store.list_groups()?;
            groups.retain(|g| g.path.starts_with(prefix));
            let page = page_of(groups, |g| g.name.clone(), params)?;
            x.members("Groups", &page.items, group_xml);
            page.write_truncation(&mut x);
        }
        "ListGroupsForUser" => {
            let name = params.required("UserName")?;
            authorize(state.user_target(name))?;
            let page = page_of(store.groups_of_user(name)?, |g| g.name.clone(), params)?;
            x.members("Groups", &page.items, group_xml);
            page.write_truncation(&mut x);
        }
        "GetGroup" => {
            let name = params.required("GroupName")?;
            authorize(state.group_target(name))?;
            let group = store.get_group(name)?;
            let page = page_of(store.group_members(name)?, |u| u.name.clone(), params)?;
            x.node("Group", |x| group_xml(x, &group));
            x.members("Users", &page.items, user_xml);
            page.write_truncation(&mut x);
        }
        "RemoveUserFromGroup" => {
            let group = params.required("GroupName")?;
            let user = params.required("UserName")?;
            authorize(state.group_target(group))?;
            store.remove_user_from_group(group, user)?;
            return Ok(None);
        }
        "DeleteGroup" => {
            let name = params.required("GroupName")?;
            authorize(state.group_target(name))?;
            store.delete_group(name)?;
            return Ok(None);
        }
        // ---- tags of users and roles, role settings ----
        "UntagUser" => {
            let name = params.required("UserName")?;
            let keys = params.list("TagKeys");
            authorize(
                state
                    .user_target(name)
                    .with(|c| c.tag_keys(keys.iter().copied())),
            )?;
            store.untag_user(name, &keys)?;
            return Ok(None);
        }
        "UntagRole" => {
            let name = params.required("RoleName")?;
            let keys = params.list("TagKeys");
            authorize(
                state
                    .role_target(name)
                    .with(|c| c.tag_keys(keys.iter().copied())),
            )?;
            store.untag_role(name, &keys)?;
            return Ok(None);
        }
        "ListUserTags" => {
            let name = params.required("UserName")?;
            authorize(state.user_target(name))?;
            tags_page(&mut x, store.get_user(name)?.tags, params)?;
        }
        "ListRoleTags" => {
            let name = params.required("RoleName")?;
            authorize(state.role_target(name))?;
            tags_page(&mut x, store.get_role(name)?.tags, params)?;
        }
        "UpdateRole" | "UpdateRoleDescription" => {
            let name = params.required("RoleName")?;
            let description = if action == "UpdateRoleDescription" {
                Some(params.required("Description")?)
            } else {
                params.get("Description")
            };
            let max = params.int("MaxSessionDuration", 3600..=43_200)?;
            authorize(state.role_target(name))?;
            store.update_role(name, description, max)?;
            if action == "UpdateRole" {
                // An empty `<UpdateRoleResult/>`: its output shape exists.
                return Ok(Some(x));
            }
            let r = store.get_role(name)?;
            x.node("Role", |x| role_xml(x, &r));
        }
        // ---- MFA devices and the whole account ----
        "ListVirtualMFADevices" => {
            authorize(state.any_target())?;
            let status = params.get("AssignmentStatus").unwrap_or("Any");
            let mut devices = store.list_virtual_mfa_devices()?;
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
            let page = page_of(devices, |d| d.serial.clone(), params)?;
            let mut owners = Vec::new();
            for d in &page.items {
                owners.push(match &d.user {
                    Some(u) => store.get_user(u).ok(),
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
        }
        "GetAccountAuthorizationDetails" => {
            authorize(state.any_target())?;
            x = account_details(state, params)?;
        }
        // Latchkey's extension, like the console's "Revoke active sessions":
        // every session of the user or role issued before `Before`
        // (default: now) stops working on every node.
        "RevokeSessions" => {
            // Authorised before the entity is looked up: a caller who may
            // not revoke learns nothing of what exists.
            let (target, exists) = match (params.get("UserName"), params.get("RoleName")) {
                (Some(u), None) => (state.user_target(u), store.get_user(u).map(drop)),
                (None, Some(r)) => (state.role_target(r), store.get_role(r).map(drop)),
                _ => {
                    return Err(ApiError::validation(
                        "give exactly one of UserName or RoleName",
                    ));
                }
            };
            let arn = target.arn.clone();
            authorize(target)?;
            exists?;
            let before = match params.get("Before") {
                None => now,
                Some(t) => latchkey_policy::condition::parse_date(t)
                    .map(|ms| ms / 1000)
                    .ok_or_else(|| ApiError::validation("Before must be an ISO 8601 time"))?,
            };
            // A revocation reaches sessions already issued, never future
            // ones: a `Before` in the future would lock the user or role
            // out for good, and revocations only ever move forward.
            if before > now {
                return Err(ApiError::validation("Before must not be in the future"));
            }
            store.revoke_sessions(&arn, before)?;
            state.reload_revocations()?;
            x.text("Arn", &arn)
                .text("RevokedBefore", &timestamp(before));
        }
        _ => {
            if let Some(result) = crate::simulate::dispatch(state, caller, action, params, now) {
                return result;
            }
            return Err(ApiError::new(
                400,
                "InvalidAction",
                format!("Could not find operation {action} for version 2010-05-08"),
            ));
        }
    }
    Ok(Some(x))
}
