//! Users, groups and roles: list, create, read, tag, attach and detach
//! policies, group membership. Every read and change is the IAM call.

use hyper::StatusCode;
use maud::{Markup, html};
use serde_json::Value;

use super::{table, when};
use crate::Signed;
use crate::api::{list, text};
use crate::layout::{Section, csrf_field, notice, refusal};
use crate::web::{Form, Reply, encode, redirect};

/// `GET /console/users`: a page of users.
pub fn users(s: &Signed<'_>, marker: &str) -> Reply {
    let mut params = vec![("MaxItems", "100")];
    if !marker.is_empty() {
        params.push(("Marker", marker));
    }
    let body = match s.api.call("ListUsers", &params) {
        Err(e) => refusal(&e.to_string()),
        Ok(v) => {
            let rows = list(&v, "Users")
                .iter()
                .map(|u| {
                    let name = text(u, "UserName");
                    html! { tr {
                        td { a href={ "/console/users/" (encode(name)) } { (name) } }
                        td { (text(u, "Path")) }
                        td { (when(u, "CreateDate")) }
                        td { (when(u, "PasswordLastUsed")) }
                    } }
                })
                .collect();
            html! {
                p { a.button href="/console/users/new" { "Create user" } }
                (table("Users", &["User name", "Path", "Created", "Console password last used"], rows, "No users."))
                @if text(&v, "IsTruncated") == "true" {
                    p { a href={ "/console/users?marker=" (encode(text(&v, "Marker"))) } rel="next" { "Next page" } }
                }
            }
        }
    };
    s.page(Section::Users, "Users", body)
}

fn new_user_form(s: &Signed<'_>, form: &Form, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { (refusal(e)) }
        form method="post" action="/console/users" #create-user {
            (csrf_field(&s.csrf))
            label for="name" { "User name" }
            input #name name="name" type="text" required maxlength="64" value=(form.text("name"));
            label for="path" { "Path" }
            input #path name="path" type="text" value=(form.get("path").unwrap_or("/"));
            label for="tags" { "Tags (one key=value a line)" }
            textarea #tags name="tags" rows="3" { (form.text("tags")) }
            label for="password" { "Console password (optional)" }
            input #password name="password" type="password" autocomplete="new-password";
            div.check {
                input #reset name="reset" type="checkbox" value="true";
                label for="reset" { "Must choose a new password at first sign-in" }
            }
            button type="submit" { "Create user" }
        }
    }
}

/// `GET /console/users/new`.
pub fn new_user(s: &Signed<'_>) -> Reply {
    s.page(
        Section::Users,
        "Create user",
        new_user_form(s, &Form::default(), None),
    )
}

/// `key=value` lines as tag parameters.
fn tag_params(lines: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, (k, v)) in super::key_values(lines, "Tag")?.into_iter().enumerate() {
        let n = n + 1;
        out.push((format!("Tags.member.{n}.Key"), k.to_owned()));
        out.push((format!("Tags.member.{n}.Value"), v.to_owned()));
    }
    Ok(out)
}

fn pairs(owned: &[(String, String)]) -> Vec<(&str, &str)> {
    owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// `POST /console/users`: `CreateUser`, then `CreateLoginProfile` when a
/// password is given.
pub fn create_user(s: &Signed<'_>, form: &Form) -> Reply {
    let again = |e: &str| {
        s.page_status(
            StatusCode::BAD_REQUEST,
            Section::Users,
            "Create user",
            new_user_form(s, form, Some(e)),
        )
    };
    let name = form.text("name");
    let mut params = vec![
        ("UserName".to_owned(), name.to_owned()),
        (
            "Path".to_owned(),
            form.get("path").unwrap_or("/").trim().to_owned(),
        ),
    ];
    match tag_params(form.text("tags")) {
        Ok(tags) => params.extend(tags),
        Err(e) => return again(&e),
    }
    if let Err(e) = s.api.call("CreateUser", &pairs(&params)) {
        return again(&e.to_string());
    }
    let password = form.get("password").unwrap_or("");
    if !password.is_empty() {
        let reset = if form.get("reset") == Some("true") {
            "true"
        } else {
            "false"
        };
        if let Err(e) = s.api.call(
            "CreateLoginProfile",
            &[
                ("UserName", name),
                ("Password", password),
                ("PasswordResetRequired", reset),
            ],
        ) {
            return user(
                s,
                name,
                "",
                Some(&format!("The user was created, but not its password: {e}")),
            );
        }
    }
    redirect(&format!("{}?done=created", Kind::User.base(name)))
}

fn section<F: FnOnce(&Value) -> Markup>(
    s: &Signed<'_>,
    action: &str,
    params: &[(&str, &str)],
    render: F,
) -> Markup {
    match s.api.call(action, params) {
        Ok(v) => render(&v),
        Err(e) => refusal(&e.to_string()),
    }
}

/// What `?done=` may say: a fixed text for each change, never the
/// query's own words (a link could otherwise put any message on a page
/// people trust).
fn done_text(kind: Kind, code: &str) -> Option<&'static str> {
    match code {
        "created" => Some(match kind {
            Kind::User => "The user was created.",
            Kind::Group => "The group was created.",
            Kind::Role => "The role was created.",
        }),
        "attach" => Some("The policy was attached."),
        "detach" => Some("The policy was detached."),
        "tags" => Some("The tags were added."),
        "untag" => Some("The tag was removed."),
        "key-activate" => Some("The access key was activated."),
        "key-deactivate" => {
            Some("The access key was deactivated: requests signed with it are refused.")
        }
        "key-delete" => Some("The access key was deleted."),
        "mfa-enable" => {
            Some("The MFA device was enabled: the user's next sign-in asks for a code.")
        }
        "mfa-deactivate" => Some("The MFA device was deactivated."),
        "add-member" => Some("The user was added to the group."),
        "remove-member" => Some("The user was removed from the group."),
        _ => None,
    }
}

/// The IAM entities whose pages share policies, tags and changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
    Role,
}

impl Kind {
    /// As IAM's action names spell it (`AttachUserPolicy`).
    fn noun(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
            Kind::Role => "Role",
        }
    }

    fn param(self) -> &'static str {
        match self {
            Kind::User => "UserName",
            Kind::Group => "GroupName",
            Kind::Role => "RoleName",
        }
    }

    fn section(self) -> Section {
        match self {
            Kind::User => Section::Users,
            Kind::Group => Section::Groups,
            Kind::Role => Section::Roles,
        }
    }

    fn base(self, name: &str) -> String {
        let list = match self {
            Kind::User => "users",
            Kind::Group => "groups",
            Kind::Role => "roles",
        };
        format!("/console/{list}/{}", encode(name))
    }

    /// Groups carry no tags in IAM.
    fn tagged(self) -> bool {
        self != Kind::Group
    }
}

/// Attached and inline policies, with detach buttons and the attach form.
fn policies_section(s: &Signed<'_>, kind: Kind, name: &str) -> Markup {
    let target = [(kind.param(), name)];
    let base = kind.base(name);
    html! {
        h2 { "Permissions policies" }
        (section(s, &format!("ListAttached{}Policies", kind.noun()), &target, |v| {
            let rows = list(v, "AttachedPolicies").iter().map(|p| {
                let arn = text(p, "PolicyArn");
                html! { tr {
                    td { (text(p, "PolicyName")) }
                    td { code { (arn) } }
                    td { form method="post" action={ (base) "/detach" } {
                        (csrf_field(&s.csrf))
                        input type="hidden" name="arn" value=(arn);
                        button type="submit" aria-label={ "Detach " (text(p, "PolicyName")) } { "Detach" }
                    } }
                } }
            }).collect();
            table("Attached policies", &["Name", "ARN", ""], rows, "No attached policies.")
        }))
        (section(s, &format!("List{}Policies", kind.noun()), &target, |v| {
            let names: Vec<&str> = list(v, "PolicyNames").iter().filter_map(Value::as_str).collect();
            html! { @if !names.is_empty() { p { "Inline policies: " @for n in names { code { (n) } " " } } } }
        }))
        form method="post" action={ (base) "/attach" } #attach-policy {
            (csrf_field(&s.csrf))
            label for="policy-arn" { "Attach a managed policy (ARN)" }
            input #policy-arn name="arn" type="text" list="policy-arns" required;
            datalist #policy-arns {
                @if let Ok(v) = s.api.call("ListPolicies", &[("Scope", "Local"), ("MaxItems", "1000")]) {
                    @for p in list(&v, "Policies") { option value=(text(p, "Arn")) { (text(p, "PolicyName")) } }
                }
            }
            button type="submit" { "Attach policy" }
        }
    }
}

/// Tags, and the form to add some.
fn tags_section(s: &Signed<'_>, kind: Kind, name: &str) -> Markup {
    let target = [(kind.param(), name)];
    html! {
        h2 { "Tags" }
        (section(s, &format!("List{}Tags", kind.noun()), &target, |v| {
            let rows = list(v, "Tags").iter().map(|t| {
                let key = text(t, "Key");
                html! { tr {
                    td { (key) } td { (text(t, "Value")) }
                    td { form method="post" action={ (kind.base(name)) "/untag" } {
                        (csrf_field(&s.csrf))
                        input type="hidden" name="key" value=(key);
                        button type="submit" aria-label={ "Remove the tag " (key) } { "Remove" }
                    } }
                } }
            }).collect();
            table("Tags", &["Key", "Value", ""], rows, "No tags.")
        }))
        form method="post" action={ (kind.base(name)) "/tags" } #tag-entity {
            (csrf_field(&s.csrf))
            label for="tag-lines" { "Add tags (one key=value a line)" }
            textarea #tag-lines name="tags" rows="2" required {}
            button type="submit" { "Add tags" }
        }
    }
}

/// The page of an entity IAM could not read: not found or refused.
fn unreadable(s: &Signed<'_>, kind: Kind, name: &str, e: &crate::api::Refusal) -> Reply {
    let status = if e.code == "NoSuchEntity" {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::FORBIDDEN
    };
    s.page_status(status, kind.section(), name, refusal(&e.to_string()))
}

fn status_of(error: Option<&str>) -> StatusCode {
    if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// `GET /console/users/NAME`; after a refused change, the page again with
/// the refusal (`error`, never from the query).
pub fn user(s: &Signed<'_>, name: &str, done: &str, error: Option<&str>) -> Reply {
    let done = done_text(Kind::User, done);
    let user = match s.api.call("GetUser", &[("UserName", name)]) {
        Ok(v) => v,
        Err(e) => return unreadable(s, Kind::User, name, &e),
    };
    let u = &user["User"];
    let target = [("UserName", name)];
    let body = html! {
        @if let Some(done) = done { (notice(done)) }
        @if let Some(error) = error { (refusal(error)) }
        dl.facts {
            dt { "ARN" } dd { code #user-arn { (text(u, "Arn")) } }
            dt { "Created" } dd { (when(u, "CreateDate")) }
            dt { "Console password last used" } dd { (when(u, "PasswordLastUsed")) }
        }
        (policies_section(s, Kind::User, name))
        h2 { "Groups" }
        (section(s, "ListGroupsForUser", &target, |v| {
            let rows = list(v, "Groups").iter().map(|g| {
                let group = text(g, "GroupName");
                html! { tr { td { a href=(Kind::Group.base(group)) { (group) } } td { code { (text(g, "Arn")) } } } }
            }).collect();
            table("Groups", &["Group", "ARN"], rows, "In no group.")
        }))
        h2 { "Access keys" }
        (section(s, "ListAccessKeys", &target, |v| {
            let rows = list(v, "AccessKeyMetadata").iter().map(|k| {
                let id = text(k, "AccessKeyId");
                let used = s.api.call("GetAccessKeyLastUsed", &[("AccessKeyId", id)]).ok();
                let last = used.as_ref().map(|u| when(&u["AccessKeyLastUsed"], "LastUsedDate")).unwrap_or_else(|| "unknown".into());
                let active = text(k, "Status") == "Active";
                // A key is deactivated before it is deleted, as in AWS's
                // console: what still uses it shows up in the meantime.
                let actions: &[(&str, &str)] = if active {
                    &[("deactivate", "Deactivate")]
                } else {
                    &[("activate", "Activate"), ("delete", "Delete")]
                };
                html! { tr {
                    td { code { (id) } } td { (text(k, "Status")) } td { (when(k, "CreateDate")) } td { (last) }
                    td { @for (action, label) in actions {
                        form.inline method="post" action={ (Kind::User.base(name)) "/key" } {
                            (csrf_field(&s.csrf))
                            input type="hidden" name="id" value=(id);
                            input type="hidden" name="action" value=(action);
                            button type="submit" aria-label={ (label) " " (id) } { (label) }
                        }
                    } }
                } }
            }).collect();
            table("Access keys", &["Access key", "Status", "Created", "Last used", ""], rows, "No access keys.")
        }))
        h2 { "MFA devices" }
        (section(s, "ListMFADevices", &target, |v| {
            let rows = list(v, "MFADevices").iter().map(|d| {
                let serial = text(d, "SerialNumber");
                html! { tr {
                    td { code { (serial) } } td { (when(d, "EnableDate")) }
                    td { form.inline method="post" action={ (Kind::User.base(name)) "/mfa" } {
                        (csrf_field(&s.csrf))
                        input type="hidden" name="serial" value=(serial);
                        input type="hidden" name="action" value="deactivate";
                        button type="submit" aria-label={ "Deactivate " (serial) } { "Deactivate" }
                    } }
                } }
            }).collect();
            table("MFA devices", &["Serial number", "Enabled", ""], rows, "No MFA device.")
        }))
        form method="post" action={ (Kind::User.base(name)) "/mfa" } #assign-mfa {
            (csrf_field(&s.csrf))
            input type="hidden" name="action" value="create";
            label for="mfa-name" { "Virtual MFA device name" }
            input #mfa-name type="text" name="device" required maxlength="128" value=(name);
            button type="submit" { "Assign a virtual MFA device" }
        }
        (tags_section(s, Kind::User, name))
    };
    s.page_status(status_of(error), Section::Users, name, body)
}

/// `GET /console/roles/NAME`.
pub fn role(s: &Signed<'_>, name: &str, done: &str, error: Option<&str>) -> Reply {
    let done = done_text(Kind::Role, done);
    let role = match s.api.call("GetRole", &[("RoleName", name)]) {
        Ok(v) => v,
        Err(e) => return unreadable(s, Kind::Role, name, &e),
    };
    let r = &role["Role"];
    let trust = r
        .get("AssumeRolePolicyDocument")
        .map(|d| match d {
            Value::String(text) => text.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        })
        .unwrap_or_default();
    let body = html! {
        @if let Some(done) = done { (notice(done)) }
        @if let Some(error) = error { (refusal(error)) }
        dl.facts {
            dt { "ARN" } dd { code #role-arn { (text(r, "Arn")) } }
            dt { "Created" } dd { (when(r, "CreateDate")) }
            dt { "Maximum session" } dd { (text(r, "MaxSessionDuration")) " seconds" }
            dt { "Last used" } dd { (when(&r["RoleLastUsed"], "LastUsedDate")) }
        }
        h2 { "Trust policy" }
        pre #trust-policy { (trust) }
        (policies_section(s, Kind::Role, name))
        (tags_section(s, Kind::Role, name))
    };
    s.page_status(status_of(error), Section::Roles, name, body)
}

/// `GET /console/groups`: the groups, and the form to create one.
pub fn groups(s: &Signed<'_>, marker: &str, error: Option<&str>, form: &Form) -> Reply {
    let mut params = vec![("MaxItems", "100")];
    if !marker.is_empty() {
        params.push(("Marker", marker));
    }
    let body = html! {
        @if let Some(error) = error { (refusal(error)) }
        (section(s, "ListGroups", &params, |v| {
            let rows = list(v, "Groups").iter().map(|g| {
                let name = text(g, "GroupName");
                html! { tr {
                    td { a href=(Kind::Group.base(name)) { (name) } }
                    td { (text(g, "Path")) }
                    td { (when(g, "CreateDate")) }
                } }
            }).collect();
            html! {
                (table("Groups", &["Group", "Path", "Created"], rows, "No groups."))
                @if text(v, "IsTruncated") == "true" {
                    p { a href={ "/console/groups?marker=" (encode(text(v, "Marker"))) } rel="next" { "Next page" } }
                }
            }
        }))
        h2 { "Create group" }
        form method="post" action="/console/groups" #create-group {
            (csrf_field(&s.csrf))
            label for="group-name" { "Group name" }
            input #group-name name="name" type="text" required maxlength="128" value=(form.text("name"));
            label for="group-path" { "Path" }
            input #group-path name="path" type="text" value=(form.get("path").unwrap_or("/"));
            button type="submit" { "Create group" }
        }
    };
    s.page_status(status_of(error), Section::Groups, "Groups", body)
}

/// `POST /console/groups`: `CreateGroup`.
pub fn create_group(s: &Signed<'_>, form: &Form) -> Reply {
    let name = form.text("name");
    let path = form.get("path").unwrap_or("/").trim();
    match s
        .api
        .call("CreateGroup", &[("GroupName", name), ("Path", path)])
    {
        Ok(_) => redirect(&format!("{}?done=created", Kind::Group.base(name))),
        Err(e) => groups(s, "", Some(&e.to_string()), form),
    }
}

/// `GET /console/groups/NAME`: members (add, remove) and policies.
pub fn group(s: &Signed<'_>, name: &str, done: &str, error: Option<&str>) -> Reply {
    let done = done_text(Kind::Group, done);
    let group = match s.api.call("GetGroup", &[("GroupName", name)]) {
        Ok(v) => v,
        Err(e) => return unreadable(s, Kind::Group, name, &e),
    };
    let g = &group["Group"];
    let base = Kind::Group.base(name);
    let members = list(&group, "Users")
        .iter()
        .map(|u| {
            let user = text(u, "UserName");
            html! { tr {
                td { a href=(Kind::User.base(user)) { (user) } }
                td { form method="post" action={ (base) "/remove-member" } {
                    (csrf_field(&s.csrf))
                    input type="hidden" name="user" value=(user);
                    button type="submit" aria-label={ "Remove " (user) } { "Remove" }
                } }
            } }
        })
        .collect();
    let body = html! {
        @if let Some(done) = done { (notice(done)) }
        @if let Some(error) = error { (refusal(error)) }
        dl.facts {
            dt { "ARN" } dd { code #group-arn { (text(g, "Arn")) } }
            dt { "Created" } dd { (when(g, "CreateDate")) }
        }
        h2 { "Members" }
        (table("Members", &["User", ""], members, "No members."))
        form method="post" action={ (base) "/add-member" } #add-member {
            (csrf_field(&s.csrf))
            label for="member" { "Add a user" }
            input #member name="user" type="text" required maxlength="64";
            button type="submit" { "Add to group" }
        }
        (policies_section(s, Kind::Group, name))
    };
    s.page_status(status_of(error), Section::Groups, name, body)
}

/// `POST /console/{users,groups,roles}/NAME/WHAT`: attach, detach, tags
/// (users and roles), add-member and remove-member (groups).
pub fn change(s: &Signed<'_>, kind: Kind, name: &str, what: &str, form: &Form) -> Reply {
    let noun = kind.noun();
    let target = (kind.param(), name);
    let mut done = what.to_owned();
    let result = match what {
        "attach" => s.api.call(
            &format!("Attach{noun}Policy"),
            &[target, ("PolicyArn", form.text("arn"))],
        ),
        "detach" => s.api.call(
            &format!("Detach{noun}Policy"),
            &[target, ("PolicyArn", form.text("arn"))],
        ),
        "tags" if kind.tagged() => match tag_params(form.text("tags")) {
            Ok(tags) => {
                let mut params = vec![(target.0.to_owned(), name.to_owned())];
                params.extend(tags);
                s.api.call(&format!("Tag{noun}"), &pairs(&params))
            }
            Err(e) => Err(crate::api::Refusal {
                code: "ValidationError".into(),
                message: e,
            }),
        },
        "untag" if kind.tagged() => s.api.call(
            &format!("Untag{noun}"),
            &[target, ("TagKeys.member.1", form.text("key"))],
        ),
        "key" if kind == Kind::User => {
            let id = ("AccessKeyId", form.text("id"));
            let action = form.text("action");
            done = format!("key-{action}");
            match action {
                "activate" => s
                    .api
                    .call("UpdateAccessKey", &[target, id, ("Status", "Active")]),
                "deactivate" => s
                    .api
                    .call("UpdateAccessKey", &[target, id, ("Status", "Inactive")]),
                "delete" => s.api.call("DeleteAccessKey", &[target, id]),
                _ => return s.not_found(),
            }
        }
        "mfa" if kind == Kind::User => {
            let serial = ("SerialNumber", form.text("serial"));
            let action = form.text("action");
            done = format!("mfa-{action}");
            match action {
                "create" => return assign_mfa(s, name, form.text("device")),
                "enable" => {
                    let result = s.api.call(
                        "EnableMFADevice",
                        &[
                            target,
                            serial,
                            ("AuthenticationCode1", form.text("code1")),
                            ("AuthenticationCode2", form.text("code2")),
                        ],
                    );
                    if let Err(e) = result {
                        return enable_mfa_page(
                            s,
                            name,
                            form.text("serial"),
                            None,
                            Some(&e.to_string()),
                        );
                    }
                    Ok(Value::Null)
                }
                "deactivate" => s.api.call("DeactivateMFADevice", &[target, serial]),
                _ => return s.not_found(),
            }
        }
        "add-member" if kind == Kind::Group => s
            .api
            .call("AddUserToGroup", &[target, ("UserName", form.text("user"))]),
        "remove-member" if kind == Kind::Group => s.api.call(
            "RemoveUserFromGroup",
            &[target, ("UserName", form.text("user"))],
        ),
        _ => return s.not_found(),
    };
    match result {
        Ok(_) => redirect(&format!("{}?done={}", kind.base(name), encode(&done))),
        Err(e) => {
            let error = e.to_string();
            match kind {
                Kind::User => user(s, name, "", Some(&error)),
                Kind::Group => group(s, name, "", Some(&error)),
                Kind::Role => role(s, name, "", Some(&error)),
            }
        }
    }
}

/// Makes a virtual MFA device for the user and shows its secret, once,
/// with the form that enables it from two consecutive codes, as AWS's
/// console does (the page is not cached; the secret is shown nowhere
/// else, and an abandoned device stays unassigned).
fn assign_mfa(s: &Signed<'_>, user: &str, device: &str) -> Reply {
    let made = match s.api.call(
        "CreateVirtualMFADevice",
        &[("VirtualMFADeviceName", device)],
    ) {
        Ok(v) => v,
        Err(e) => return self::user(s, user, "", Some(&e.to_string())),
    };
    let d = &made["VirtualMFADevice"];
    // The API's blob is base64 of the base32 seed.
    use base64::Engine as _;
    let seed = base64::engine::general_purpose::STANDARD
        .decode(text(d, "Base32StringSeed"))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(zeroize::Zeroizing::new);
    let Some(seed) = seed else {
        return self::user(
            s,
            user,
            "",
            Some("the new MFA device's secret could not be read"),
        );
    };
    enable_mfa_page(s, user, text(d, "SerialNumber"), Some(&seed), None)
}

/// The form that enables MFA device `serial` for `user`; with the secret
/// to enter in an authenticator app when it was just made.
fn enable_mfa_page(
    s: &Signed<'_>,
    user: &str,
    serial: &str,
    seed: Option<&str>,
    error: Option<&str>,
) -> Reply {
    let issuer = "Latchkey";
    let body = html! {
        @if let Some(error) = error { (refusal(error)) }
        @if let Some(seed) = seed {
            p { "Enter this secret in an authenticator app (time-based, 6 digits, 30 seconds), or open the link on the device that has the app. It is shown only now." }
            dl.facts {
                dt { "Secret (base32)" } dd { code #mfa-seed { (seed) } }
                dt { "Link" } dd { a #mfa-uri href={ "otpauth://totp/" (issuer) ":" (encode(user)) "?secret=" (seed) "&issuer=" (issuer) } { "otpauth link" } }
            }
        }
        form method="post" action={ (Kind::User.base(user)) "/mfa" } #enable-mfa {
            (csrf_field(&s.csrf))
            input type="hidden" name="action" value="enable";
            input type="hidden" name="serial" value=(serial);
            p { "Device " code { (serial) } }
            label for="mfa-code1" { "First code" }
            input #mfa-code1 type="text" name="code1" required inputmode="numeric" pattern="[0-9]{6}" autocomplete="one-time-code";
            label for="mfa-code2" { "Second code (the next one)" }
            input #mfa-code2 type="text" name="code2" required inputmode="numeric" pattern="[0-9]{6}" autocomplete="one-time-code";
            button type="submit" { "Enable MFA" }
        }
    };
    s.page_status(
        status_of(error),
        Section::Users,
        &format!("MFA for {user}"),
        body,
    )
}

/// `GET /console/roles`.
pub fn roles(s: &Signed<'_>, marker: &str) -> Reply {
    let mut params = vec![("MaxItems", "100")];
    if !marker.is_empty() {
        params.push(("Marker", marker));
    }
    let body = section(s, "ListRoles", &params, |v| {
        let rows = list(v, "Roles")
            .iter()
            .map(|r| {
                let name = text(r, "RoleName");
                html! { tr {
                    td { a href=(Kind::Role.base(name)) { (name) } }
                    td { code { (text(r, "Arn")) } }
                    td { (when(&r["RoleLastUsed"], "LastUsedDate")) }
                } }
            })
            .collect();
        html! {
            p { a.button href="/console/roles/new" { "Create role" } }
            (table("Roles", &["Role", "ARN", "Last used"], rows, "No roles."))
            @if text(v, "IsTruncated") == "true" {
                p { a href={ "/console/roles?marker=" (encode(text(v, "Marker"))) } rel="next" { "Next page" } }
            }
        }
    });
    s.page(Section::Roles, "Roles", body)
}

/// The trust policy a new role starts from: this account's users, with
/// MFA (what an elevated role wants; edited before creating otherwise).
fn default_trust(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole","Condition":{{"Bool":{{"aws:MultiFactorAuthPresent":"true"}}}}}}]}}"#
    )
}

fn new_role_form(s: &Signed<'_>, form: &Form, error: Option<&str>) -> Markup {
    let trust = form
        .get("trust")
        .map_or_else(|| default_trust(&s.account), str::to_owned);
    html! {
        @if let Some(e) = error { (refusal(e)) }
        form method="post" action="/console/roles" #create-role {
            (csrf_field(&s.csrf))
            label for="name" { "Role name" }
            input #name name="name" type="text" required maxlength="64" value=(form.text("name"));
            label for="path" { "Path" }
            input #path name="path" type="text" value=(form.get("path").unwrap_or("/"));
            label for="description" { "Description" }
            input #description name="description" type="text" maxlength="1000" value=(form.text("description"));
            label for="max-session" { "Maximum session duration (seconds, 3600 to 43200)" }
            input #max-session name="max-session" type="number" min="3600" max="43200" value=(form.get("max-session").unwrap_or("3600"));
            label for="trust" { "Trust policy (who may assume the role)" }
            textarea #trust name="trust" rows="8" required spellcheck="false" { (trust) }
            label for="tags" { "Tags (one key=value a line)" }
            textarea #tags name="tags" rows="3" { (form.text("tags")) }
            button type="submit" { "Create role" }
        }
    }
}

/// `GET /console/roles/new`.
pub fn new_role(s: &Signed<'_>) -> Reply {
    s.page(
        Section::Roles,
        "Create role",
        new_role_form(s, &Form::default(), None),
    )
}

/// `POST /console/roles`: `CreateRole`, refused as the API refuses it
/// (an invalid trust policy names its path).
pub fn create_role(s: &Signed<'_>, form: &Form) -> Reply {
    let again = |e: &str| {
        s.page_status(
            StatusCode::BAD_REQUEST,
            Section::Roles,
            "Create role",
            new_role_form(s, form, Some(e)),
        )
    };
    let name = form.text("name");
    let mut params = vec![
        ("RoleName".to_owned(), name.to_owned()),
        (
            "Path".to_owned(),
            form.get("path").unwrap_or("/").trim().to_owned(),
        ),
        (
            "AssumeRolePolicyDocument".to_owned(),
            form.text("trust").to_owned(),
        ),
        (
            "MaxSessionDuration".to_owned(),
            form.get("max-session").unwrap_or("3600").trim().to_owned(),
        ),
    ];
    let description = form.text("description").trim();
    if !description.is_empty() {
        params.push(("Description".to_owned(), description.to_owned()));
    }
    match tag_params(form.text("tags")) {
        Ok(tags) => params.extend(tags),
        Err(e) => return again(&e),
    }
    match s.api.call("CreateRole", &pairs(&params)) {
        Ok(_) => redirect(&format!("{}?done=created", Kind::Role.base(name))),
        Err(e) => again(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lines_become_parameters() {
        let p = tag_params("team = data\n\n env=prod=1\n").unwrap_or_default();
        assert_eq!(
            p,
            [
                ("Tags.member.1.Key".to_owned(), "team".to_owned()),
                ("Tags.member.1.Value".to_owned(), "data".to_owned()),
                ("Tags.member.2.Key".to_owned(), "env".to_owned()),
                ("Tags.member.2.Value".to_owned(), "prod=1".to_owned()),
            ]
        );
        assert!(tag_params("novalue").is_err());
    }
}
