//! Users and roles: list, create, read, tag, attach and detach policies.

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
    redirect(&format!("/console/users/{}?done=created", encode(name)))
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
fn done_text(code: &str) -> Option<&'static str> {
    match code {
        "created" => Some("The user was created."),
        "attach" => Some("The policy was attached."),
        "detach" => Some("The policy was detached."),
        "tags" => Some("The tags were added."),
        _ => None,
    }
}

/// `GET /console/users/NAME`; after a refused change, the page again with
/// the refusal (`error`, never from the query).
pub fn user(s: &Signed<'_>, name: &str, done: &str, error: Option<&str>) -> Reply {
    let user = match s.api.call("GetUser", &[("UserName", name)]) {
        Ok(v) => v,
        Err(e) => {
            let status = if e.code == "NoSuchEntity" {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::FORBIDDEN
            };
            return s.page_status(status, Section::Users, name, refusal(&e.to_string()));
        }
    };
    let u = &user["User"];
    let target = [("UserName", name)];
    let base = format!("/console/users/{}", encode(name));
    let body = html! {
        @if let Some(done) = done_text(done) { (notice(done)) }
        @if let Some(error) = error { (refusal(error)) }
        dl.facts {
            dt { "ARN" } dd { code #user-arn { (text(u, "Arn")) } }
            dt { "Created" } dd { (when(u, "CreateDate")) }
            dt { "Console password last used" } dd { (when(u, "PasswordLastUsed")) }
        }
        h2 { "Permissions policies" }
        (section(s, "ListAttachedUserPolicies", &target, |v| {
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
        (section(s, "ListUserPolicies", &target, |v| {
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
        h2 { "Groups" }
        (section(s, "ListGroupsForUser", &target, |v| {
            let rows = list(v, "Groups").iter().map(|g| html! { tr { td { (text(g, "GroupName")) } td { code { (text(g, "Arn")) } } } }).collect();
            table("Groups", &["Group", "ARN"], rows, "In no group.")
        }))
        h2 { "Access keys" }
        (section(s, "ListAccessKeys", &target, |v| {
            let rows = list(v, "AccessKeyMetadata").iter().map(|k| {
                let id = text(k, "AccessKeyId");
                let used = s.api.call("GetAccessKeyLastUsed", &[("AccessKeyId", id)]).ok();
                let last = used.as_ref().map(|u| when(&u["AccessKeyLastUsed"], "LastUsedDate")).unwrap_or_else(|| "unknown".into());
                html! { tr { td { code { (id) } } td { (text(k, "Status")) } td { (when(k, "CreateDate")) } td { (last) } } }
            }).collect();
            table("Access keys", &["Access key", "Status", "Created", "Last used"], rows, "No access keys.")
        }))
        h2 { "MFA devices" }
        (section(s, "ListMFADevices", &target, |v| {
            let rows = list(v, "MFADevices").iter().map(|d| html! { tr { td { code { (text(d, "SerialNumber")) } } td { (when(d, "EnableDate")) } } }).collect();
            table("MFA devices", &["Serial number", "Enabled"], rows, "No MFA device.")
        }))
        h2 { "Tags" }
        (section(s, "ListUserTags", &target, |v| {
            let rows = list(v, "Tags").iter().map(|t| html! { tr { td { (text(t, "Key")) } td { (text(t, "Value")) } } }).collect();
            table("Tags", &["Key", "Value"], rows, "No tags.")
        }))
        form method="post" action={ (base) "/tags" } #tag-user {
            (csrf_field(&s.csrf))
            label for="tag-lines" { "Add tags (one key=value a line)" }
            textarea #tag-lines name="tags" rows="2" required {}
            button type="submit" { "Add tags" }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    s.page_status(status, Section::Users, name, body)
}

/// `POST /console/users/NAME/{attach,detach,tags}`.
pub fn change_user(s: &Signed<'_>, name: &str, what: &str, form: &Form) -> Reply {
    let result = match what {
        "attach" => s.api.call(
            "AttachUserPolicy",
            &[("UserName", name), ("PolicyArn", form.text("arn"))],
        ),
        "detach" => s.api.call(
            "DetachUserPolicy",
            &[("UserName", name), ("PolicyArn", form.text("arn"))],
        ),
        "tags" => match tag_params(form.text("tags")) {
            Ok(tags) => {
                let mut params = vec![("UserName".to_owned(), name.to_owned())];
                params.extend(tags);
                s.api.call("TagUser", &pairs(&params))
            }
            Err(e) => Err(crate::api::Refusal {
                code: "ValidationError".into(),
                message: e,
            }),
        },
        _ => return s.not_found(),
    };
    let base = format!("/console/users/{}", encode(name));
    match result {
        Ok(_) => redirect(&format!("{base}?done={}", encode(what))),
        Err(e) => user(s, name, "", Some(&e.to_string())),
    }
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
                html! { tr {
                    td { (text(r, "RoleName")) }
                    td { code { (text(r, "Arn")) } }
                    td { (when(&r["RoleLastUsed"], "LastUsedDate")) }
                } }
            })
            .collect();
        html! {
            (table("Roles", &["Role", "ARN", "Last used"], rows, "No roles."))
            @if text(v, "IsTruncated") == "true" {
                p { a href={ "/console/roles?marker=" (encode(text(v, "Marker"))) } rel="next" { "Next page" } }
            }
        }
    });
    s.page(Section::Roles, "Roles", body)
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
