//! The console's pages: each module renders its pages and handles its
//! forms, acting through [`crate::api::Api`].

pub mod databases;
pub mod identities;
pub mod observe;
pub mod policies;
pub mod sessions;
pub mod signin;
pub mod vault;

use maud::{Markup, html};
use serde_json::Value;

/// An API timestamp (`2026-12-04T10:00:00Z`) as shown: date and time.
pub fn when(v: &Value, field: &str) -> String {
    let t = crate::api::text(v, field);
    if t.is_empty() {
        return "never".into();
    }
    shown_time(t)
}

/// An ISO 8601 UTC time (`2026-12-04T10:00:00Z`, maybe with `.000`) as
/// pages show it: `2026-12-04 10:00:00 UTC`.
pub fn shown_time(iso: &str) -> String {
    iso.replace('T', " ")
        .trim_end_matches('Z')
        .trim_end_matches(".000")
        .to_owned()
        + " UTC"
}

/// A table of `rows` under `headings`, or `empty` when there are none.
pub fn table(caption: &str, headings: &[&str], rows: Vec<Markup>, empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { (empty) }
        } @else {
            table {
                caption { (caption) }
                thead { tr { @for h in headings { th scope="col" { (h) } } } }
                tbody { @for r in rows { (r) } }
            }
        }
    }
}

/// `key=value` lines (blank lines skipped), trimmed; a line without `=`
/// is refused, naming its number and what the lines are (`what`).
pub fn key_values<'a>(lines: &'a str, what: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            line.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| format!("{what} line {} is not key=value.", i + 1))
        })
        .collect()
}
