//! Least-privilege policy generation, as IAM Access Analyzer generates
//! policies from CloudTrail: a policy that allows what a principal used in
//! a window and nothing else, never more than its current policies allow.
//!
//! Each use is kept only when a current Allow statement grants it (a use
//! its policies no longer grant is not granted again), and it keeps that
//! statement's conditions: a `sql:Drop` allowed only within five minutes
//! of MFA stays so. The Deny statements of the current policies that
//! apply to a kept action are carried over as they are. Resources are
//! listed as used; only when the policy would exceed IAM's size limit are
//! resources that share a prefix (up to a `/` or `:`) merged into
//! `prefix*`, the narrowest prefix first, never wider than the longest
//! prefix the merged resources share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use latchkey_policy::pattern::Pattern;
use latchkey_policy::{
    CompiledPolicy, Decision, Effect, Policy, PolicyKind, PolicySet, Request, Statement,
};
use serde_json::{Map, Value, json};

use crate::access::PermissionAccess;
use crate::usage::PermissionUse;

/// IAM's limit on a managed policy, in characters other than whitespace.
pub const MAX_POLICY_CHARS: usize = latchkey_policy::MAX_POLICY_CHARS;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    #[error("the principal used none of its permissions in the window: there is nothing to allow")]
    NothingUsed,
    #[error(
        "what the principal used needs {0} characters even with resources merged by prefix, over IAM's {MAX_POLICY_CHARS}: split the principal's work across roles"
    )]
    TooLarge(usize),
}

/// The generated policy and how it was checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub policy: Value,
    /// Uses in the window the generated policy allows (all of them, unless
    /// `not_allowed` says otherwise).
    pub allowed: usize,
    /// Uses the generated policy does not allow: none, or a fault.
    pub not_allowed: Vec<PermissionUse>,
    /// Uses in the window no current policy grants: left out.
    pub ungranted: Vec<PermissionUse>,
    /// Granted permissions not used in the window that the generated
    /// policy still allows (as written, with their patterns): none, unless
    /// merging resources for size reached them.
    pub unused_still_allowed: Vec<(String, String)>,
    /// Granted permissions not used in the window, now refused.
    pub unused_refused: usize,
    /// Resources merged into prefixes to fit IAM's size limit.
    pub merged: Vec<String>,
}

/// Characters other than whitespace outside strings, as IAM counts them.
pub fn policy_chars(policy: &Value) -> usize {
    policy.to_string().len()
}

/// The principal's name, for `${aws:username}` in the current policies.
fn resolve_username<'a>(username: Option<&'a str>) -> impl Fn(&str) -> Option<&'a str> {
    move |key: &str| {
        key.eq_ignore_ascii_case("aws:username")
            .then_some(username)
            .flatten()
    }
}

fn resource_granted(statement: &Statement, resource: &str, username: Option<&str>) -> bool {
    let Some((patterns, not_resource)) = &statement.resources else {
        return true;
    };
    let resolve = resolve_username(username);
    let matched = patterns.iter().any(|p| {
        p == "*"
            || Pattern::compile(p, true, true)
                .ok()
                .and_then(|pattern| pattern.matches(resource, &resolve, false))
                .unwrap_or(false)
    });
    matched != *not_resource
}

/// `Resource` absent or containing `*`.
fn grants_every_resource(statement: &Statement) -> bool {
    statement
        .resources
        .as_ref()
        .is_none_or(|(r, not)| !*not && r.iter().any(|r| r == "*"))
}

fn action_granted(statement: &Statement, action: &str) -> bool {
    let (patterns, not_action) = &statement.actions;
    patterns
        .iter()
        .any(|p| latchkey_policy::catalog::action_matches(p, action))
        != *not_action
}

/// A statement's `Condition` as canonical JSON text (the grouping key).
fn condition_key(statement: &Statement) -> Option<String> {
    if statement.conditions.is_empty() {
        return None;
    }
    statement.to_json().get("Condition").map(Value::to_string)
}

/// `RdsDb` for `rds-db`, `Iam` for `iam`: Sid material.
fn camel(namespace: &str) -> String {
    namespace
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The statements that allow `groups`: per condition, actions with the
/// same resources together.
fn allow_statements(
    groups: &BTreeMap<Option<String>, BTreeMap<String, BTreeSet<String>>>,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut sids: BTreeMap<String, usize> = BTreeMap::new();
    for (condition, actions) in groups {
        let mut by_resources: BTreeMap<&BTreeSet<String>, Vec<&String>> = BTreeMap::new();
        for (action, resources) in actions {
            by_resources.entry(resources).or_default().push(action);
        }
        for (resources, actions) in by_resources {
            let service = actions[0].split(':').next().unwrap_or("Used");
            let n = sids.entry(camel(service)).or_default();
            *n += 1;
            let mut statement = Map::new();
            statement.insert("Sid".into(), format!("Used{}{}", camel(service), n).into());
            statement.insert("Effect".into(), "Allow".into());
            statement.insert("Action".into(), json!(actions));
            statement.insert("Resource".into(), json!(resources));
            if let Some(condition) = condition
                && let Ok(value) = serde_json::from_str::<Value>(condition)
            {
                statement.insert("Condition".into(), value);
            }
            out.push(Value::Object(statement));
        }
    }
    out
}

/// `text` as a resource pattern that matches it and nothing else: IAM's
/// wildcards and variable sign escaped (`${*}`, `${?}`, `${$}`).
pub fn literal_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' => out.push_str("${*}"),
            '?' => out.push_str("${?}"),
            '$' => out.push_str("${$}"),
            c => out.push(c),
        }
    }
    out
}

/// The parent of a resource ARN for merging: up to and including its last
/// `/` or `:` (`arn:...:table/db-X/orders/public/`).
fn parent(resource: &str) -> Option<&str> {
    let cut = resource.rfind(['/', ':'])?;
    // Never merge across the ARN's fixed fields (`arn:aws:sql:REGION:ACCT:`).
    (resource[..cut].matches(':').count() >= 5).then(|| &resource[..=cut])
}

/// Merges, in every action, the largest group of two or more resources
/// under one parent into `parent*`. Returns the prefix merged, or `None`
/// when nothing can be merged.
fn merge_once(
    groups: &mut BTreeMap<Option<String>, BTreeMap<String, BTreeSet<String>>>,
) -> Option<String> {
    // The parent (not yet a wildcard) holding the most resources anywhere.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for resources in groups.values().flat_map(BTreeMap::values) {
        for r in resources.iter().filter(|r| !r.ends_with('*')) {
            if let Some(p) = parent(r) {
                *counts.entry(p.to_owned()).or_default() += 1;
            }
        }
    }
    // The deepest parent first (the narrowest widening), then the most.
    let (prefix, _) = counts
        .into_iter()
        .filter(|(_, n)| *n >= 2)
        .max_by_key(|(p, n)| (p.len(), *n))?;
    for resources in groups.values_mut().flat_map(BTreeMap::values_mut) {
        let under: Vec<String> = resources
            .iter()
            .filter(|r| parent(r) == Some(prefix.as_str()))
            .cloned()
            .collect();
        if under.len() >= 2 {
            for r in under {
                resources.remove(&r);
            }
            resources.insert(format!("{prefix}*"));
        }
    }
    Some(prefix)
}

/// A policy allowing what `uses` at or after `since` used, within what
/// `current` allows (see the module). `username` resolves
/// `${aws:username}` in `current`; `unused` are the grants to check the
/// result against (from [`crate::permissions_accessed`]).
pub fn generate(
    current: &[Policy],
    uses: &[PermissionUse],
    since: i64,
    username: Option<&str>,
    unused: &[PermissionAccess],
) -> Result<Generated, GenerateError> {
    let allows: Vec<&Statement> = current
        .iter()
        .flat_map(|p| &p.statements)
        .filter(|s| s.effect == Effect::Allow)
        .collect();
    let mut groups: BTreeMap<Option<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut kept = Vec::new();
    let mut ungranted = Vec::new();
    for u in uses.iter().filter(|u| u.at >= since) {
        let granting: Vec<&Statement> = allows
            .iter()
            .copied()
            .filter(|s| action_granted(s, &u.action) && resource_granted(s, &u.resource, username))
            .collect();
        // A use recorded on no particular resource (`*`) is kept only
        // under a statement that grants `*` itself: writing `*` for a
        // statement that names resources, or excludes some with
        // NotResource, would grant more than it does.
        let granting: Vec<&Statement> = if u.resource == "*" {
            granting
                .into_iter()
                .filter(|s| grants_every_resource(s))
                .collect()
        } else {
            granting
        };
        if granting.is_empty() {
            ungranted.push(u.clone());
            continue;
        }
        // An unconditional grant needs no condition; otherwise the use
        // came under one of the conditional ones, each kept as it is.
        let conditions: BTreeSet<Option<String>> =
            if granting.iter().any(|s| s.conditions.is_empty()) {
                BTreeSet::from([None])
            } else {
                granting.iter().map(|s| condition_key(s)).collect()
            };
        // A used resource is written as a pattern that matches it alone:
        // a table named `*` must not become a grant on every table.
        let resource = if u.resource == "*" {
            u.resource.clone()
        } else {
            literal_pattern(&u.resource)
        };
        for condition in conditions {
            groups
                .entry(condition)
                .or_default()
                .entry(u.action.clone())
                .or_default()
                .insert(resource.clone());
        }
        kept.push(u.clone());
    }
    if kept.is_empty() {
        return Err(GenerateError::NothingUsed);
    }
    let used_actions: BTreeSet<&str> = kept.iter().map(|u| u.action.as_str()).collect();
    let denies: Vec<Value> = current
        .iter()
        .flat_map(|p| &p.statements)
        .filter(|s| s.effect == Effect::Deny && used_actions.iter().any(|a| action_granted(s, a)))
        .map(Statement::to_json)
        .collect();
    let build = |groups: &BTreeMap<Option<String>, BTreeMap<String, BTreeSet<String>>>| {
        let mut statements = allow_statements(groups);
        statements.extend(denies.iter().cloned());
        json!({"Version": "2012-10-17", "Statement": statements})
    };
    let mut merged = Vec::new();
    let mut policy = build(&groups);
    while policy_chars(&policy) > MAX_POLICY_CHARS {
        let Some(prefix) = merge_once(&mut groups) else {
            return Err(GenerateError::TooLarge(policy_chars(&policy)));
        };
        // `prefix*` may reach resources the current policies do not grant
        // (a grant on `role/app-*` merged to `role/*`): merge only where a
        // current Allow without conditions grants the whole prefix, that
        // is, a resource pattern of its that the prefix starts with, up to
        // its own `*`.
        let covered = groups.iter().all(|(condition, actions)| {
            actions.iter().all(|(action, resources)| {
                !resources.contains(&format!("{prefix}*"))
                    || allows.iter().any(|s| {
                        condition_key(s) == *condition
                            && action_granted(s, action)
                            && s.resources.as_ref().is_none_or(|(patterns, not)| {
                                !*not
                                    && patterns.iter().any(|p| {
                                        p == "*"
                                            || p.strip_suffix('*').is_some_and(|head| {
                                                !head.contains(['*', '?', '$'])
                                                    && prefix.starts_with(head)
                                            })
                                    })
                            })
                    })
            })
        });
        if !covered {
            return Err(GenerateError::TooLarge(policy_chars(&policy)));
        }
        merged.push(prefix);
        policy = build(&groups);
    }

    // Check it: every kept use allowed, and each unused grant refused, by
    // the Allow statements alone with no condition (so that the checks
    // need no request context and are the strictest reading).
    let bare = {
        let mut allow_only = policy.clone();
        if let Some(list) = allow_only
            .get_mut("Statement")
            .and_then(Value::as_array_mut)
        {
            list.retain(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow"));
            for s in list.iter_mut().filter_map(Value::as_object_mut) {
                s.remove("Condition");
            }
        }
        latchkey_policy::parse_value(&allow_only, PolicyKind::Identity)
            .ok()
            .map(|p| PolicySet {
                identity: vec![Arc::new(CompiledPolicy::compile("generated", &p))],
                ..PolicySet::default()
            })
    };
    // A policy that does not parse allows nothing: every use shows as not
    // allowed, and the caller reports the fault.
    let allowed_by = |action: &str, resource: &str| {
        bare.as_ref()
            .is_some_and(|set| set.decide(&Request::new(action, resource)) == Decision::Allowed)
    };
    let mut not_allowed = Vec::new();
    for u in &kept {
        if !allowed_by(&u.action, &u.resource) {
            not_allowed.push(u.clone());
        }
    }
    let mut unused_still_allowed = Vec::new();
    let mut unused_refused = 0;
    for g in unused
        .iter()
        .filter(|g| g.last.as_ref().is_none_or(|a| a.at < since))
    {
        if allowed_by(g.action, &g.resource) {
            unused_still_allowed.push((g.action.to_owned(), g.resource.clone()));
        } else {
            unused_refused += 1;
        }
    }
    Ok(Generated {
        policy,
        allowed: kept.len() - not_allowed.len(),
        not_allowed,
        ungranted,
        unused_still_allowed,
        unused_refused,
        merged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions_accessed;

    const T: &str = "arn:aws:sql:us-east-1:1:table/db-A/shop/public";
    const U: &str = "arn:aws:rds-db:us-east-1:1:dbuser:db-A";
    const ROLE: &str = "arn:aws:iam::1:role/app";

    fn current() -> Policy {
        latchkey_policy::parse(
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[
              {{"Effect":"Allow","Action":"rds-db:connect","Resource":["{U}/app","{U}/admin"]}},
              {{"Effect":"Allow","Action":["sql:Select","sql:Insert"],"Resource":"{T}/*"}},
              {{"Sid":"DropWithMfa","Effect":"Allow","Action":"sql:Drop","Resource":"*",
                "Condition":{{"NumericLessThan":{{"aws:MultiFactorAuthAge":"300"}}}}}},
              {{"Sid":"NoCards","Effect":"Deny","Action":"sql:*","Resource":"{T}/cards"}},
              {{"Sid":"NoDelete","Effect":"Deny","Action":"sql:Delete","Resource":"*"}},
              {{"Effect":"Allow","Action":["iam:GetUser","kms:Decrypt"],"Resource":"*"}}]}}"#
            ),
            PolicyKind::Identity,
        )
        .expect("valid")
    }

    fn used(action: &str, resource: &str, at: i64) -> PermissionUse {
        PermissionUse {
            principal: ROLE.into(),
            action: action.into(),
            resource: resource.into(),
            at,
        }
    }

    #[test]
    fn allows_what_was_used_keeps_conditions_and_denies_and_refuses_the_rest() {
        let uses = [
            used("rds-db:connect", &format!("{U}/app"), 100),
            used("sql:Select", &format!("{T}/orders"), 100),
            used("sql:Select", &format!("{T}/items"), 100),
            used("sql:Drop", &format!("{T}/scratch"), 100),
            used("iam:GetUser", "*", 100),
            // Before the window: not allowed again.
            used("sql:Insert", &format!("{T}/orders"), 10),
            // No current policy grants it: never granted again.
            used("iam:CreateUser", "*", 100),
        ];
        let current = [current()];
        let unused = permissions_accessed(&current, &uses);
        let g = generate(&current, &uses, 50, None, &unused).expect("generated");
        let statements = g.policy["Statement"].as_array().expect("statements");
        let find = |action: &str| {
            statements
                .iter()
                .filter(|s| {
                    s["Effect"] == "Allow"
                        && s["Action"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x == action))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            find("rds-db:connect")[0]["Resource"],
            json!([format!("{U}/app")])
        );
        assert_eq!(
            find("sql:Select")[0]["Resource"],
            json!([format!("{T}/items"), format!("{T}/orders")])
        );
        let drop = find("sql:Drop");
        assert_eq!(
            drop[0]["Condition"],
            json!({"NumericLessThan": {"aws:MultiFactorAuthAge": ["300"]}})
        );
        assert!(
            find("sql:Insert").is_empty()
                && find("kms:Decrypt").is_empty()
                && find("iam:CreateUser").is_empty()
        );
        // The Deny on cards applies to sql:Select (used) and is kept; the
        // one on sql:Delete (never used) is not needed.
        let denies: Vec<&Value> = statements
            .iter()
            .filter(|s| s["Effect"] == "Deny")
            .collect();
        assert_eq!(denies.len(), 1);
        assert_eq!(denies[0]["Sid"], "NoCards");
        assert_eq!(g.ungranted, [used("iam:CreateUser", "*", 100)]);
        assert!(g.not_allowed.is_empty());
        assert_eq!(g.allowed, 5);
        assert!(
            g.unused_still_allowed.is_empty(),
            "{:?}",
            g.unused_still_allowed
        );
        assert!(
            g.unused_refused >= 3,
            "admin, kms:Decrypt, sql:Insert: {}",
            g.unused_refused
        );
        assert!(g.merged.is_empty());
        // It is a valid policy with every Sid unique.
        let text = g.policy.to_string();
        assert!(
            latchkey_policy::parse(&text, PolicyKind::Identity).is_ok(),
            "{text}"
        );
        let mut sids: Vec<&str> = statements
            .iter()
            .filter_map(|s| s["Sid"].as_str())
            .collect();
        let n = sids.len();
        sids.sort_unstable();
        sids.dedup();
        assert_eq!(sids.len(), n);
    }

    #[test]
    fn resources_merge_by_prefix_only_to_fit_and_no_wider() {
        let mut uses: Vec<PermissionUse> = (0..300)
            .map(|i| {
                used(
                    "sql:Select",
                    &format!("{T}/table_with_a_long_name_{i:04}"),
                    100,
                )
            })
            .collect();
        uses.push(used("sql:Select", &format!("{T}/sub/log"), 100));
        let current = [current()];
        let g = generate(&current, &uses, 50, None, &[]).expect("generated");
        assert!(policy_chars(&g.policy) <= MAX_POLICY_CHARS);
        assert_eq!(g.merged, [format!("{T}/")]);
        let select = &g.policy["Statement"][0];
        assert_eq!(
            select["Resource"],
            json!([format!("{T}/*"), format!("{T}/sub/log")]),
            "the lone resource under another parent stays as it is"
        );
        assert!(g.not_allowed.is_empty());
    }

    #[test]
    fn nothing_used_is_an_error_and_so_is_what_cannot_fit() {
        let current = [current()];
        assert_eq!(
            generate(&current, &[], 0, None, &[]),
            Err(GenerateError::NothingUsed)
        );
        // Hundreds of distinct database users under no shared parent that
        // can be merged without reaching the ARN's fixed fields.
        let wide: Vec<PermissionUse> = (0..400)
            .map(|i| {
                used(
                    "iam:GetUser",
                    &format!("arn:aws:iam::1:user{i:04}xxxxxxxxxxxxxxxx"),
                    100,
                )
            })
            .collect();
        assert!(matches!(
            generate(&current, &wide, 0, None, &[]),
            Err(GenerateError::TooLarge(_))
        ));
    }

    #[test]
    fn what_the_red_team_widened_stays_narrow() {
        // A call recorded on no particular resource, under NotResource: not
        // granted again as `*`.
        let not_admin = [latchkey_policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","NotResource":"arn:aws:iam::1:user/admin"}]}"#,
            PolicyKind::Identity,
        )
        .expect("valid")];
        let uses = [used("iam:GetUser", "*", 100)];
        assert_eq!(
            generate(&not_admin, &uses, 0, None, &[]),
            Err(GenerateError::NothingUsed)
        );
        // Many roles under `role/app-`: merging to `role/*` would reach
        // roles the current policy does not grant; it is refused instead.
        let apps = [latchkey_policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::1:role/app-*"}]}"#,
            PolicyKind::Identity,
        )
        .expect("valid")];
        let many: Vec<PermissionUse> = (0..200)
            .map(|i| {
                used(
                    "sts:AssumeRole",
                    &format!("arn:aws:iam::1:role/app-with-a-rather-long-name-{i:04}"),
                    100,
                )
            })
            .collect();
        assert!(matches!(
            generate(&apps, &many, 0, None, &[]),
            Err(GenerateError::TooLarge(_))
        ));
        // Under a path the grant covers whole, merging is allowed.
        let paths = [latchkey_policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::1:role/apps/*"}]}"#,
            PolicyKind::Identity,
        )
        .expect("valid")];
        let under: Vec<PermissionUse> = (0..200)
            .map(|i| {
                used(
                    "sts:AssumeRole",
                    &format!("arn:aws:iam::1:role/apps/a-rather-long-role-name-{i:04}"),
                    100,
                )
            })
            .collect();
        let g = generate(&paths, &under, 0, None, &[]).expect("merged within the grant");
        assert_eq!(g.merged, ["arn:aws:iam::1:role/apps/"]);
    }

    #[test]
    fn usernames_resolve_in_current_policies() {
        let current = [latchkey_policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::1:user/${aws:username}"}]}"#,
            PolicyKind::Identity,
        )
        .expect("valid")];
        let uses = [used("iam:GetUser", "arn:aws:iam::1:user/alice", 100)];
        assert!(generate(&current, &uses, 0, Some("alice"), &[]).is_ok());
        assert_eq!(
            generate(&current, &uses, 0, Some("bob"), &[]),
            Err(GenerateError::NothingUsed)
        );
    }

    #[test]
    fn wildcards_in_used_names_are_written_as_literals() {
        // A table named `*` (and one named `a?$`) was used: the policy
        // grants those tables, not every table in the schema.
        let t = "arn:aws:sql:us-east-1:1:table/db-A/shop/public";
        let current = [latchkey_policy::parse(
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sql:*","Resource":"{t}/*"}}]}}"#
            ),
            PolicyKind::Identity,
        )
        .expect("valid")];
        let uses = [
            used("sql:Select", &format!("{t}/*"), 100),
            used("sql:Select", &format!("{t}/a?$"), 100),
        ];
        let g = generate(&current, &uses, 0, None, &[]).expect("generated");
        let text = g.policy.to_string();
        assert!(text.contains(&format!("{t}/${{*}}")), "{text}");
        assert!(text.contains(&format!("{t}/a${{?}}${{$}}")), "{text}");
        let policy = latchkey_policy::parse_value(&g.policy, PolicyKind::Identity).expect("valid");
        let set = PolicySet {
            identity: vec![Arc::new(CompiledPolicy::compile("generated", &policy))],
            ..PolicySet::default()
        };
        let decide = |r: &str| set.decide(&Request::new("sql:Select", r));
        assert_eq!(decide(&format!("{t}/*")), Decision::Allowed);
        assert_eq!(decide(&format!("{t}/a?$")), Decision::Allowed);
        assert_ne!(decide(&format!("{t}/secret")), Decision::Allowed);
        assert_ne!(decide(&format!("{t}/ab$")), Decision::Allowed);
        assert_eq!(literal_pattern("plain/name"), "plain/name");
    }
}
