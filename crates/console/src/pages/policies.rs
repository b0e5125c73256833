//! Managed policies: the list, an editor that validates as you type (the
//! findings of `latchkey policy validate`, with their JSON paths), and the
//! policy simulator.

use hyper::StatusCode;
use latchkey_policy::PolicyKind;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::table;
use crate::Signed;
use crate::api::{list, text};
use crate::layout::{Section, csrf_field, refusal};
use crate::web::{Form, Reply, encode, redirect};

const STARTER: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "rds-db:connect",
      "Resource": "arn:aws:rds-db:*:*:dbuser:*/app"
    }
  ]
}"#;

/// `GET /console/policies`.
pub fn policies(s: &Signed<'_>) -> Reply {
    let body = match s
        .api
        .call("ListPolicies", &[("Scope", "Local"), ("MaxItems", "1000")])
    {
        Err(e) => refusal(&e.to_string()),
        Ok(v) => {
            let rows = list(&v, "Policies")
                .iter()
                .map(|p| {
                    html! { tr {
                        td { (text(p, "PolicyName")) }
                        td { code { (text(p, "Arn")) } }
                        td { (text(p, "AttachmentCount")) }
                        td { (text(p, "DefaultVersionId")) }
                    } }
                })
                .collect();
            html! {
                p { a.button href="/console/policies/new" { "Create policy" } }
                (table("Customer managed policies", &["Name", "ARN", "Attachments", "Version"], rows, "No policies."))
            }
        }
    };
    s.page(Section::Policies, "Policies", body)
}

/// Findings as Access Analyzer's `ValidatePolicy` gives them.
pub fn findings(document: &str, account: &str) -> Vec<Value> {
    let found = latchkey_policy::analyze::validate_text(document, PolicyKind::Identity, account);
    latchkey_policy::analyze::aws_json(document, &found)
}

/// `/$.Statement[0].Action`-style text of a finding's path.
fn path_text(finding: &Value) -> String {
    let mut out = String::from("$");
    for element in list(&finding["locations"][0], "path") {
        if let Some(i) = element.get("index").and_then(Value::as_u64) {
            out.push_str(&format!("[{i}]"));
        } else if let Some(v) = element.get("value").and_then(Value::as_str) {
            out.push('.');
            out.push_str(v);
        }
    }
    out
}

pub fn findings_list(found: &[Value]) -> Markup {
    html! {
        div #findings aria-live="polite" {
            @if found.is_empty() {
                p.ok { "No findings: the policy is valid." }
            } @else {
                ul.findings {
                    @for f in found {
                        @let span = &f["locations"][0]["span"];
                        li class={ "finding " (text(f, "findingType").to_ascii_lowercase()) }
                            data-line=(span["start"]["line"])
                            data-column=(span["start"]["column"])
                            data-start=(span["start"]["offset"])
                            data-end=(span["end"]["offset"]) {
                            strong { (text(f, "findingType")) } " "
                            code.issue { (text(f, "issueCode")) } " at "
                            // To the editor; with scripts, the text the
                            // path names is selected there too.
                            a.locate href="#document" { code.path { (path_text(f)) } }
                            " (line " (f["locations"][0]["span"]["start"]["line"]) "): "
                            (text(f, "findingDetails"))
                        }
                    }
                }
            }
        }
    }
}

fn editor(s: &Signed<'_>, form: &Form, found: Option<&[Value]>, error: Option<&str>) -> Markup {
    let document = form.get("document").unwrap_or(STARTER);
    html! {
        @if let Some(e) = error { (refusal(e)) }
        form method="post" action="/console/policies" #policy-editor {
            (csrf_field(&s.csrf))
            label for="policy-name" { "Policy name" }
            input #policy-name name="name" type="text" required maxlength="128" value=(form.text("name"));
            label for="description" { "Description" }
            input #description name="description" type="text" maxlength="1000" value=(form.text("description"));
            label for="document" { "Policy document (JSON)" }
            textarea #document name="document" rows="16" spellcheck="false"
                data-validate="/console/api/validate" aria-describedby="findings" { (document) }
            @if let Some(found) = found { (findings_list(found)) } @else { div #findings aria-live="polite" {} }
            div.actions {
                button type="submit" formaction="/console/policies/validate" formnovalidate #validate { "Validate" }
                button type="submit" #create-policy { "Create policy" }
            }
        }
    }
}

/// `GET /console/policies/new`.
pub fn new_policy(s: &Signed<'_>) -> Reply {
    s.page(
        Section::Policies,
        "Create policy",
        editor(s, &Form::default(), None, None),
    )
}

/// `POST /console/policies/validate`: the editor again with its findings
/// (without JavaScript).
pub fn validate_form(s: &Signed<'_>, form: &Form) -> Reply {
    let found = match s.api.allowed("access-analyzer:ValidatePolicy", "*") {
        Ok(()) => findings(form.get("document").unwrap_or(""), &s.account),
        Err(e) => {
            return s.page_status(
                StatusCode::FORBIDDEN,
                Section::Policies,
                "Create policy",
                editor(s, form, None, Some(&e.to_string())),
            );
        }
    };
    s.page(
        Section::Policies,
        "Create policy",
        editor(s, form, Some(&found), None),
    )
}

/// `POST /console/api/validate`: findings as JSON, for validation as you
/// type.
pub fn validate_json(s: &Signed<'_>, body: &[u8]) -> Reply {
    if let Err(e) = s.api.allowed("access-analyzer:ValidatePolicy", "*") {
        return crate::web::json(StatusCode::FORBIDDEN, &json!({"error": e.to_string()}));
    }
    let document = String::from_utf8_lossy(body);
    let found = findings(&document, &s.account);
    crate::web::json(
        StatusCode::OK,
        &json!({ "findings": found, "html": findings_list(&found).into_string() }),
    )
}

/// `POST /console/policies`: `CreatePolicy`.
pub fn create_policy(s: &Signed<'_>, form: &Form) -> Reply {
    let name = form.text("name");
    let mut params = vec![
        ("PolicyName", name),
        ("PolicyDocument", form.get("document").unwrap_or("")),
    ];
    if !form.text("description").is_empty() {
        params.push(("Description", form.text("description")));
    }
    match s.api.call("CreatePolicy", &params) {
        Ok(v) => redirect(&format!(
            "/console/policies?created={}",
            encode(text(&v["Policy"], "Arn"))
        )),
        Err(e) => {
            let found = findings(form.get("document").unwrap_or(""), &s.account);
            s.page_status(
                StatusCode::BAD_REQUEST,
                Section::Policies,
                "Create policy",
                editor(s, form, Some(&found), Some(&e.to_string())),
            )
        }
    }
}

/// `key=value` lines as `ContextEntries` parameters (string values; a
/// value with commas is a list).
fn context_params(lines: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, (k, v)) in super::key_values(lines, "Context")?.into_iter().enumerate() {
        let n = n + 1;
        let values: Vec<&str> = v.split(',').map(str::trim).collect();
        out.push((
            format!("ContextEntries.member.{n}.ContextKeyName"),
            k.to_owned(),
        ));
        out.push((
            format!("ContextEntries.member.{n}.ContextKeyType"),
            if values.len() > 1 {
                "stringList"
            } else {
                "string"
            }
            .to_owned(),
        ));
        for (j, value) in values.iter().enumerate() {
            out.push((
                format!(
                    "ContextEntries.member.{n}.ContextKeyValues.member.{}",
                    j + 1
                ),
                (*value).to_owned(),
            ));
        }
    }
    Ok(out)
}

/// `GET` and `POST /console/simulate`: `SimulatePrincipalPolicy` for one
/// principal, action and resource, with the decision and why.
pub fn simulate(s: &Signed<'_>, form: &Form, submitted: bool) -> Reply {
    let principal = form.text("principal");
    let action = form.text("action");
    let resource = form.get("resource").map_or("*", str::trim);
    let result = submitted.then(|| {
        let mut params: Vec<(String, String)> = vec![
            ("PolicySourceArn".into(), principal.into()),
            ("ActionNames.member.1".into(), action.into()),
            (
                "ResourceArns.member.1".into(),
                if resource.is_empty() {
                    "*".into()
                } else {
                    resource.into()
                },
            ),
        ];
        params.extend(
            context_params(form.text("context")).map_err(|e| crate::api::Refusal {
                code: "ValidationError".into(),
                message: e,
            })?,
        );
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        s.api.call("SimulatePrincipalPolicy", &pairs)
    });
    let body = html! {
        form method="post" action="/console/simulate" #simulator {
            (csrf_field(&s.csrf))
            label for="principal" { "Principal (user or role ARN)" }
            input #principal name="principal" type="text" required value=(principal)
                placeholder={ "arn:aws:iam::" (s.account) ":user/NAME" };
            label for="action" { "Action" }
            input #action name="action" type="text" required value=(action) placeholder="rds-db:connect";
            label for="resource" { "Resource ARN" }
            input #resource name="resource" type="text" value=(resource);
            label for="context" { "Context (one key=value a line; commas make a list)" }
            textarea #context name="context" rows="3" { (form.text("context")) }
            button type="submit" { "Simulate" }
        }
        @match &result {
            None => {}
            Some(Err(e)) => (refusal(&e.to_string())),
            Some(Ok(v)) => {
                @for r in list(v, "EvaluationResults") {
                    @let decision = text(r, "EvalDecision");
                    section #simulation-result aria-live="polite" {
                        h2 { "Decision: " span class={ "decision " (decision) } #decision { (decision) } }
                        p { code { (text(r, "EvalActionName")) } " on " code { (text(r, "EvalResourceName")) } }
                        @let matched = list(r, "MatchedStatements");
                        @if matched.is_empty() {
                            p { "No statement matched: " (if decision == "allowed" { "allowed" } else { "denied by default (no statement allows it)" }) "." }
                        } @else {
                            p { "Decided by:" }
                            ul { @for m in matched {
                                li { code { (text(m, "SourcePolicyId")) } " (" (text(m, "SourcePolicyType")) "), lines "
                                    (text(&m["StartPosition"], "Line")) "–" (text(&m["EndPosition"], "Line")) }
                            } }
                        }
                        @let missing: Vec<&str> = list(r, "MissingContextValues").iter().filter_map(Value::as_str).collect();
                        @if !missing.is_empty() {
                            p { "Context keys the policies test that were not given: " @for k in missing { code { (k) } " " } }
                        }
                    }
                }
            }
        }
    };
    let status = match &result {
        Some(Err(_)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    s.page_status(status, Section::Simulator, "Policy simulator", body)
}
