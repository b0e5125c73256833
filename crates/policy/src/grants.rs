//! What a policy's Allow statements name for one action, before any
//! request: the starting points for "who may do this" questions (the
//! console's "who may connect"), each then decided by the engine.

use crate::pattern::Pattern;
use crate::{Effect, Policy};

/// The resource patterns of `policy`'s Allow statements whose `Action`
/// (or `NotAction`) takes in `action`: `*` for a statement without
/// `Resource` or with `NotResource`. Conditions are not read here; the
/// engine decides each candidate afterwards.
pub fn allowed_resources<'p>(policy: &'p Policy, action: &str) -> Vec<&'p str> {
    let action = action.to_ascii_lowercase();
    let mut out = Vec::new();
    for s in &policy.statements {
        // A Deny with NotResource allows nothing, but it names what an
        // Allow of `*` is narrowed to (a guardrail): those are candidates
        // too, or a principal limited to them would look like no one.
        if s.effect == Effect::Deny {
            if let Some((list, true)) = &s.resources
                && applies_to(s, &action)
            {
                out.extend(list.iter().map(String::as_str));
            }
            continue;
        }
        if !applies_to(s, &action) {
            continue;
        }
        match &s.resources {
            Some((list, false)) => out.extend(list.iter().map(String::as_str)),
            _ => out.push("*"),
        }
    }
    out
}

/// Whether statement `s`'s `Action` (or `NotAction`) takes in `action`
/// (lowercase).
fn applies_to(s: &crate::Statement, action: &str) -> bool {
    let (actions, not_action) = &s.actions;
    let named = actions.iter().any(|a| {
        Pattern::compile(&a.to_ascii_lowercase(), false, true)
            .ok()
            .and_then(|p| p.matches(action, &|_| None, false))
            .unwrap_or(false)
    });
    named != *not_action
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Policy {
        crate::parse(json, crate::PolicyKind::Identity).expect("valid policy")
    }

    #[test]
    fn names_the_resources_of_allows_for_the_action() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"rds-db:connect","Resource":["arn:aws:rds-db:*:*:dbuser:db-A/app","arn:aws:rds-db:*:*:dbuser:db-A/ro"]},
              {"Effect":"Allow","Action":"rds-db:*","Resource":"arn:aws:rds-db:*:*:dbuser:*/admin"},
              {"Effect":"Allow","Action":"iam:*","Resource":"*"},
              {"Effect":"Deny","Action":"rds-db:connect","Resource":"*"},
              {"Effect":"Allow","NotAction":"iam:*","NotResource":"arn:aws:rds-db:*:*:dbuser:*/x"},
              {"Effect":"Allow","NotAction":"rds-db:connect","Resource":"arn:aws:s3:::nothing"}
            ]}"#,
        );
        assert_eq!(
            allowed_resources(&p, "rds-db:connect"),
            [
                "arn:aws:rds-db:*:*:dbuser:db-A/app",
                "arn:aws:rds-db:*:*:dbuser:db-A/ro",
                "arn:aws:rds-db:*:*:dbuser:*/admin",
                "*"
            ]
        );
        assert!(allowed_resources(&p, "sql:Select").contains(&"*"));
        assert_eq!(
            allowed_resources(&p, "iam:ListUsers"),
            ["*", "arn:aws:s3:::nothing"]
        );
    }

    #[test]
    fn conditional_for_sees_only_the_statements_of_the_action() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"rds-db:connect","Resource":"*"},
              {"Effect":"Deny","Action":"iam:*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}
            ]}"#,
        );
        let c = crate::CompiledPolicy::compile("p", &p);
        assert!(!c.conditional_for("rds-db:connect"));
        assert!(c.conditional_for("IAM:CreateUser"));
    }

    /// Red team round A: an Allow of `*` narrowed by a Deny with
    /// NotResource names its users in the Deny.
    #[test]
    fn a_guardrail_s_not_resource_names_candidates() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"rds-db:connect","Resource":"*"},
              {"Effect":"Deny","Action":"rds-db:connect","NotResource":"arn:aws:rds-db:*:*:dbuser:*/app"}
            ]}"#,
        );
        assert_eq!(
            allowed_resources(&p, "rds-db:connect"),
            ["*", "arn:aws:rds-db:*:*:dbuser:*/app"]
        );
    }
}
