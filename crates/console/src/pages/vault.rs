//! Secrets, parameters and keys, read through their own APIs (Secrets
//! Manager's `ListSecrets`/`DescribeSecret`, Parameter Store's
//! `DescribeParameters`, KMS's `ListKeys`/`ListAliases`/`DescribeKey`),
//! so each is authorised and recorded as the CLI's call would be. No page
//! ever reads a secret's or a parameter's value.

use maud::{Markup, html};
use serde_json::{Value, json};

use super::table;
use crate::Signed;
use crate::api::{list, text};
use crate::layout::{Section, refusal};
use crate::web::{Reply, encode};

/// A JSON service's timestamp (epoch seconds, maybe fractional) as shown.
pub fn epoch(v: &Value, field: &str) -> String {
    match v.get(field).and_then(Value::as_f64) {
        Some(t) => super::shown_time(&latchkey_identity::iso8601(t as i64)),
        None => "never".into(),
    }
}

fn flag(v: &Value, field: &str) -> &'static str {
    if v.get(field).and_then(Value::as_bool).unwrap_or(false) {
        "yes"
    } else {
        "no"
    }
}

/// A token-paged list: its rows and the link to the next page.
fn next_link(base: &str, v: &Value) -> Markup {
    html! {
        @if let Some(token) = v.get("NextToken").and_then(Value::as_str) {
            p { a href={ (base) "?next=" (encode(token)) } rel="next" { "Next page" } }
        }
    }
}

fn paged(next: &str) -> Value {
    let mut input = json!({ "MaxResults": 100 });
    if !next.is_empty() {
        input["NextToken"] = Value::from(next);
    }
    input
}

/// `GET /console/secrets`.
pub fn secrets(s: &Signed<'_>, next: &str) -> Reply {
    let body = match s.api.json("secretsmanager", "ListSecrets", paged(next)) {
        Err(e) => refusal(&e.to_string()),
        Ok(v) => {
            let rows = list(&v, "SecretList")
                .iter()
                .map(|x| {
                    let name = text(x, "Name");
                    html! { tr {
                        td { a href={ "/console/secrets/" (encode(name)) } { (name) } }
                        td { (text(x, "Description")) }
                        td { (epoch(x, "LastChangedDate")) }
                        td { (flag(x, "RotationEnabled")) }
                        td { (epoch(x, "LastRotatedDate")) }
                        td { (epoch(x, "NextRotationDate")) }
                    } }
                })
                .collect();
            html! {
                (table("Secrets", &["Name", "Description", "Last changed", "Rotation", "Last rotated", "Next rotation"], rows, "No secrets."))
                (next_link("/console/secrets", &v))
            }
        }
    };
    s.page(Section::Secrets, "Secrets", body)
}

/// `GET /console/secrets/NAME`: the secret's metadata (`DescribeSecret`).
pub fn secret(s: &Signed<'_>, name: &str) -> Reply {
    let v = match s.api.json(
        "secretsmanager",
        "DescribeSecret",
        json!({ "SecretId": name }),
    ) {
        Ok(v) => v,
        Err(e) => {
            let status = if e.code == "ResourceNotFoundException" {
                hyper::StatusCode::NOT_FOUND
            } else {
                hyper::StatusCode::FORBIDDEN
            };
            return s.refused(status, Section::Secrets, name, &e.to_string());
        }
    };
    let versions: Vec<Markup> = v
        .get("VersionIdsToStages")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(id, stages)| {
                    let stages: Vec<&str> = stages
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    html! { tr { td { code { (id) } } td { (stages.join(", ")) } } }
                })
                .collect()
        })
        .unwrap_or_default();
    let tags = list(&v, "Tags")
        .iter()
        .map(|t| html! { tr { td { (text(t, "Key")) } td { (text(t, "Value")) } } })
        .collect();
    let body = html! {
        dl.facts {
            dt { "ARN" } dd { code { (text(&v, "ARN")) } }
            dt { "Description" } dd { (text(&v, "Description")) }
            dt { "KMS key" } dd { (text(&v, "KmsKeyId")) }
            dt { "Created" } dd { (epoch(&v, "CreatedDate")) }
            dt { "Last changed" } dd { (epoch(&v, "LastChangedDate")) }
            dt { "Last read" } dd { (epoch(&v, "LastAccessedDate")) }
            dt { "Rotation" } dd { (flag(&v, "RotationEnabled")) }
            dt { "Last rotated" } dd { (epoch(&v, "LastRotatedDate")) }
            dt { "Next rotation" } dd { (epoch(&v, "NextRotationDate")) }
            @if v.get("DeletedDate").is_some() {
                dt { "Deleted on" } dd { (epoch(&v, "DeletedDate")) }
            }
        }
        p.hint { "The value is not shown here: read it with " code { "aws secretsmanager get-secret-value" } "." }
        (table("Versions", &["Version", "Stages"], versions, "No versions."))
        (table("Tags", &["Key", "Value"], tags, "No tags."))
    };
    s.page(Section::Secrets, name, body)
}

/// `GET /console/parameters`.
pub fn parameters(s: &Signed<'_>, next: &str) -> Reply {
    let mut input = paged(next);
    input["MaxResults"] = Value::from(50);
    let body = match s.api.json("AmazonSSM", "DescribeParameters", input) {
        Err(e) => refusal(&e.to_string()),
        Ok(v) => {
            let rows = list(&v, "Parameters")
                .iter()
                .map(|p| {
                    html! { tr {
                        td { code { (text(p, "Name")) } }
                        td { (text(p, "Type")) }
                        td { (p["Version"]) }
                        td { (text(p, "Tier")) }
                        td { (epoch(p, "LastModifiedDate")) }
                        td { (text(p, "Description")) }
                    } }
                })
                .collect();
            html! {
                (table("Parameters", &["Name", "Type", "Version", "Tier", "Last modified", "Description"], rows, "No parameters."))
                (next_link("/console/parameters", &v))
            }
        }
    };
    s.page(Section::Parameters, "Parameters", body)
}

/// `GET /console/keys`: the KMS keys, with their aliases and state.
pub fn keys(s: &Signed<'_>, next: &str) -> Reply {
    let keys = match s.api.json("TrentService", "ListKeys", paged(next)) {
        Ok(v) => v,
        Err(e) => return s.page(Section::Keys, "Keys", refusal(&e.to_string())),
    };
    // Aliases name keys; without ListAliases the keys show without them.
    let aliases = s
        .api
        .json("TrentService", "ListAliases", json!({ "Limit": 100 }))
        .ok();
    let aliases_of = |id: &str| -> Vec<String> {
        aliases
            .as_ref()
            .map(|a| {
                list(a, "Aliases")
                    .iter()
                    .filter(|x| text(x, "TargetKeyId") == id)
                    .map(|x| text(x, "AliasName").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let rows = list(&keys, "Keys")
        .iter()
        .map(|k| {
            let id = text(k, "KeyId");
            let described = s
                .api
                .json("TrentService", "DescribeKey", json!({ "KeyId": id }))
                .ok();
            let meta = described.as_ref().map(|d| &d["KeyMetadata"]);
            html! { tr {
                td { code { (id) } }
                td { (aliases_of(id).join(", ")) }
                td { (meta.map_or("(not described)", |m| text(m, "KeyState"))) }
                td { (meta.map_or("", |m| text(m, "KeySpec"))) }
                td { (meta.map_or("", |m| text(m, "KeyManager"))) }
                td { (meta.map_or("", |m| text(m, "Description"))) }
            } }
        })
        .collect();
    let body = html! {
        (table("Keys", &["Key", "Aliases", "State", "Spec", "Manager", "Description"], rows, "No keys."))
        (next_link("/console/keys", &keys))
    };
    s.page(Section::Keys, "Keys", body)
}
