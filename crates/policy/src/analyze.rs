//! Findings as IAM Access Analyzer's `ValidatePolicy` gives them, on a
//! parsed policy: a type (`ERROR`, `SECURITY_WARNING`, `WARNING`,
//! `SUGGESTION`), an issue code, a message and the JSON path it is at.
//! Syntax errors stay with the parser (`crate::parse`); these are what a
//! valid policy can still get wrong.

use crate::catalog::{self, action_matches};
use crate::document::{Effect, Policy, PolicyKind, Principal, Statement};

/// Access Analyzer's finding types, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingType {
    Error,
    SecurityWarning,
    Warning,
    Suggestion,
}

impl FindingType {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingType::Error => "ERROR",
            FindingType::SecurityWarning => "SECURITY_WARNING",
            FindingType::Warning => "WARNING",
            FindingType::Suggestion => "SUGGESTION",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalyzerFinding {
    pub finding_type: FindingType,
    /// `PASS_ROLE_WITH_STAR_IN_RESOURCE`, `REDUNDANT_STATEMENT`...
    pub issue_code: &'static str,
    pub message: String,
    /// JSON path, e.g. `$.Statement[1].Resource`.
    pub path: String,
}

/// Where every finding's explanation is.
const LEARN_MORE: &str =
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html";

/// `findings` (all on `text`) as `ValidatePolicy` answers them
/// (`findingType`, `issueCode`, `findingDetails`, `learnMoreLink`,
/// `locations` with path elements and a span), located in one reading of
/// the text whatever their number.
pub fn aws_json(text: &str, findings: &[AnalyzerFinding]) -> Vec<serde_json::Value> {
    use crate::locate::{Locator, PathElement, Position};
    use serde_json::json;
    let paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
    let located = Locator::new(text).locate_all(&paths);
    let syntax = findings
        .iter()
        .any(|f| f.issue_code == "JSON_SYNTAX_ERROR")
        .then(|| crate::locate::syntax_error(text))
        .flatten();
    let position = |p: Position| json!({"line": p.line, "column": p.column, "offset": p.offset});
    findings
        .iter()
        .zip(located)
        .map(|(f, location)| {
            let location = match &syntax {
                Some(at) if f.issue_code == "JSON_SYNTAX_ERROR" => at.clone(),
                _ => location,
            };
            let path: Vec<serde_json::Value> = location
                .path
                .into_iter()
                .map(|e| match e {
                    PathElement::Value(key) => json!({ "value": key }),
                    PathElement::Index(i) => json!({ "index": i }),
                })
                .collect();
            json!({
                "findingType": f.finding_type.as_str(),
                "issueCode": f.issue_code,
                "findingDetails": f.message,
                "learnMoreLink": LEARN_MORE,
                "locations": [{
                    "path": path,
                    "span": {"start": position(location.start), "end": position(location.end)},
                }],
            })
        })
        .collect()
}

/// The services whose resources have ARNs of another service: an action
/// of the key names the ARN service of its resources.
fn resource_service(action_service: &str, action: &str) -> &'static str {
    match action_service {
        "sts" if action.to_ascii_lowercase().starts_with("sts:assumerole") => "iam",
        "sts" => "sts",
        "latchkey" => "rds-db",
        "iam" => "iam",
        "rds-db" => "rds-db",
        "sql" => "sql",
        "secretsmanager" => "secretsmanager",
        "kms" => "kms",
        "ssm" => "ssm",
        _ => "",
    }
}

fn base(statement_list: bool, i: usize) -> String {
    if statement_list {
        format!("$.Statement[{i}]")
    } else {
        "$.Statement".to_owned()
    }
}

fn finding(
    t: FindingType,
    code: &'static str,
    path: String,
    message: impl Into<String>,
) -> AnalyzerFinding {
    AnalyzerFinding {
        finding_type: t,
        issue_code: code,
        message: message.into(),
        path,
    }
}

/// Every finding on a policy's text, as `ValidatePolicy` gives them: the
/// parser's errors (`ERROR`, each with its issue code) when the text is
/// not a valid policy of `kind`, else [`validate`]'s findings.
pub fn validate_text(text: &str, kind: PolicyKind, account: &str) -> Vec<AnalyzerFinding> {
    match crate::parse(text, kind) {
        Ok(policy) => validate(text, &policy, kind, account),
        Err(errors) => errors
            .into_iter()
            .map(|e| AnalyzerFinding {
                finding_type: FindingType::Error,
                issue_code: e.issue_code(),
                message: e.message,
                path: e.path,
            })
            .collect(),
    }
}

/// The statement's `Principal.AWS` values (`*` for `"Principal": "*"`).
fn aws_principals(s: &Statement) -> Vec<&str> {
    match &s.principal {
        Some((Principal::Any, false)) => vec!["*"],
        Some((Principal::Typed(types), false)) => types
            .iter()
            .filter(|(t, _)| t == "AWS")
            .flat_map(|(_, v)| v.iter().map(String::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

/// The account a principal names (`123456789012`, or an ARN's).
fn principal_account(p: &str) -> Option<&str> {
    let account = p
        .strip_prefix("arn:aws:iam::")
        .or_else(|| p.strip_prefix("arn:aws:sts::"))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or(p);
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// The findings that concern security alone (what the security checks
/// flag too): `*` on `*`, `iam:PassRole` on `*`, Allow with `NotAction`,
/// a trust policy open to anyone or to another account without
/// `sts:ExternalId`. `account` is the policy's own account (empty when
/// unknown: no principal then counts as another account's).
pub fn security_findings(
    policy: &Policy,
    kind: PolicyKind,
    account: &str,
    statement_list: bool,
) -> Vec<AnalyzerFinding> {
    let mut out = Vec::new();
    for (i, s) in policy.statements.iter().enumerate() {
        if s.effect != Effect::Allow {
            continue;
        }
        let at = base(statement_list, i);
        let (actions, not_action) = &s.actions;
        let all_resources = s
            .resources
            .as_ref()
            .is_none_or(|(r, not)| !*not && r.iter().any(|r| r == "*"));
        if *not_action {
            out.push(finding(
                FindingType::SecurityWarning,
                "ALLOW_WITH_NOT_ACTION",
                format!("{at}.NotAction"),
                "Allow with NotAction grants every action it does not name, today's and any added later",
            ));
        } else if all_resources && actions.iter().any(|a| a == "*") && s.conditions.is_empty() {
            out.push(finding(
                FindingType::SecurityWarning,
                "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES",
                format!("{at}.Action"),
                "this statement allows every action on every resource",
            ));
        } else if all_resources
            && actions.iter().any(|a| action_matches(a, "iam:PassRole"))
            && s.conditions.is_empty()
        {
            out.push(finding(
                FindingType::SecurityWarning,
                "PASS_ROLE_WITH_STAR_IN_RESOURCE",
                format!("{at}.Resource"),
                "iam:PassRole on every role lets the holder hand any role to a service",
            ));
        }
        if kind == PolicyKind::Trust {
            let principals = aws_principals(s);
            if principals.contains(&"*") && s.conditions.is_empty() {
                out.push(finding(
                    FindingType::SecurityWarning,
                    "TRUST_POLICY_OPEN_TO_ANYONE",
                    format!("{at}.Principal"),
                    "anyone may assume this role: name the principals, or add a condition",
                ));
            } else if !account.is_empty()
                && principals
                    .iter()
                    .filter_map(|p| principal_account(p))
                    .any(|a| a != account)
                && !s
                    .conditions
                    .iter()
                    .any(|(_, key, _)| key.eq_ignore_ascii_case("sts:ExternalId"))
            {
                out.push(finding(
                    FindingType::SecurityWarning,
                    "CROSS_ACCOUNT_ASSUME_ROLE_WITHOUT_EXTERNAL_ID",
                    format!("{at}.Principal"),
                    "another account may assume this role without sts:ExternalId (the confused deputy)",
                ));
            }
        }
    }
    out
}

/// Every finding for a parsed policy: the security findings, unknown
/// actions of the services Latchkey knows and condition keys that do not
/// exist (`ERROR`), conditions on keys
/// none of the statement's actions carries and resources of another
/// service than the actions' (`WARNING`), statements that repeat an
/// earlier one and actions another pattern in the same statement already
/// covers (`SUGGESTION`). `text` is the policy as written (for paths).
pub fn validate(
    text: &str,
    policy: &Policy,
    kind: PolicyKind,
    account: &str,
) -> Vec<AnalyzerFinding> {
    let statement_list = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("Statement").map(serde_json::Value::is_array))
        .unwrap_or(true);
    let mut out = security_findings(policy, kind, account, statement_list);
    for (i, s) in policy.statements.iter().enumerate() {
        let at = base(statement_list, i);
        let (actions, not_action) = &s.actions;
        let member = if *not_action { "NotAction" } else { "Action" };
        for (j, a) in actions.iter().enumerate() {
            let service = a.split_once(':').map(|(svc, _)| svc.to_ascii_lowercase());
            let known = service
                .as_deref()
                .is_some_and(|svc| catalog::SERVICES.contains(&svc));
            if known && !catalog::all_actions().any(|x| action_matches(a, x)) {
                // Latchkey's own namespaces are complete here: anything
                // else is a mistake. Of AWS's, the catalogue holds what
                // Latchkey implements: the statement does nothing here.
                let own = service
                    .as_deref()
                    .is_some_and(|s| OWN_SERVICES.contains(&s));
                out.push(if own {
                    finding(
                        FindingType::Error,
                        "INVALID_ACTION",
                        format!("{at}.{member}[{j}]"),
                        format!("{a} matches no action of its service"),
                    )
                } else {
                    finding(
                        FindingType::Warning,
                        "UNSUPPORTED_ACTION",
                        format!("{at}.{member}[{j}]"),
                        format!("{a} matches no action Latchkey implements: it has no effect here"),
                    )
                });
            } else if actions.iter().enumerate().any(|(k, other)| {
                k != j && other != a && other.contains(['*', '?']) && action_matches(other, a)
            }) {
                out.push(finding(
                    FindingType::Suggestion,
                    "REDUNDANT_ACTION",
                    format!("{at}.{member}[{j}]"),
                    format!("{a} is already covered by another action of this statement"),
                ));
            }
        }
        // Resources of another service than every action's.
        if !*not_action && let Some((resources, false)) = &s.resources {
            let services: Vec<&str> = actions
                .iter()
                .filter_map(|a| {
                    a.split_once(':')
                        .map(|(svc, _)| resource_service(&svc.to_ascii_lowercase(), a))
                })
                .collect();
            if !services.is_empty() && services.iter().all(|s| !s.is_empty()) {
                for (j, r) in resources.iter().enumerate() {
                    let Some(service) = r
                        .strip_prefix("arn:aws:")
                        .and_then(|rest| rest.split(':').next())
                    else {
                        continue;
                    };
                    if service.contains(['*', '?', '$']) {
                        continue;
                    }
                    if !services.contains(&service) {
                        out.push(finding(
                            FindingType::Warning,
                            "RESOURCE_DOES_NOT_MATCH_ACTION",
                            format!("{at}.Resource[{j}]"),
                            format!("{r} is a {service} resource; no action of this statement acts on one"),
                        ));
                    }
                }
            }
        }
        out.extend(invalid_condition_keys(s, &at));
        if policy.statements[..i]
            .iter()
            .any(|earlier| same_statement(earlier, s))
        {
            out.push(finding(
                FindingType::Suggestion,
                "REDUNDANT_STATEMENT",
                at.clone(),
                "this statement repeats an earlier one",
            ));
        }
    }
    // A key that does not exist is an error, not also a warning.
    let unreachable: Vec<crate::document::Finding> = catalog::warnings_for_text(text, policy)
        .into_iter()
        .filter(|w| !out.iter().any(|f| f.path == w.path))
        .collect();
    out.extend(unreachable.into_iter().map(|w| AnalyzerFinding {
        finding_type: FindingType::Warning,
        issue_code: "UNREACHABLE_CONDITION",
        message: w.message,
        path: w.path,
    }));
    out.sort_by(|a, b| (a.finding_type, &a.path).cmp(&(b.finding_type, &b.path)));
    out
}

/// The services whose every condition key Latchkey defines (its own), so
/// that a key or action it does not know is a mistake.
const OWN_SERVICES: [&str; 3] = ["sql", "latchkey", "rds-db"];

/// Condition keys that do not exist (`ERROR`): an `aws:` key that is
/// neither global nor carried by any action, or a key of one of
/// Latchkey's own services that none of its actions carries. Keys of
/// AWS's other services are not judged: the catalogue holds only what
/// Latchkey implements of them.
fn invalid_condition_keys<'a>(
    s: &'a Statement,
    at: &'a str,
) -> impl Iterator<Item = AnalyzerFinding> + 'a {
    s.conditions.iter().filter_map(move |(op, key, _)| {
        let service = key.split_once(':')?.0.to_ascii_lowercase();
        let (code, what) = if service == "aws" {
            ("INVALID_GLOBAL_CONDITION_KEY", "a global condition key")
        } else if OWN_SERVICES.contains(&service.as_str()) {
            (
                "INVALID_SERVICE_CONDITION_KEY",
                "a condition key of its service",
            )
        } else {
            return None;
        };
        (!catalog::key_defined(key)).then(|| {
            finding(
                FindingType::Error,
                code,
                format!("{at}.Condition.{op}.{key}"),
                format!("{key} is not {what}: this condition never sees a value"),
            )
        })
    })
}

/// Two statements that decide alike (their Sids aside).
fn same_statement(a: &Statement, b: &Statement) -> bool {
    let norm = |s: &Statement| {
        let mut j = s.to_json();
        if let Some(m) = j.as_object_mut() {
            m.remove("Sid");
        }
        j
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn codes(text: &str, kind: PolicyKind) -> Vec<(&'static str, &'static str, String)> {
        let policy = parse(text, kind).expect("valid");
        validate(text, &policy, kind, "123456789012")
            .into_iter()
            .map(|f| (f.finding_type.as_str(), f.issue_code, f.path))
            .collect()
    }

    #[test]
    fn identity_policies_get_access_analyzers_findings() {
        let text = r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"*","Resource":"*"},
          {"Effect":"Allow","Action":["iam:PassRole","iam:GetUser","iam:Get*"],"Resource":"*"},
          {"Effect":"Allow","NotAction":"iam:*","Resource":"*"},
          {"Effect":"Allow","Action":["sql:Selekt","s3:GetObject","iam:CreateSAMLProvider"],"Resource":"*"},
          {"Effect":"Allow","Action":"rds-db:connect","Resource":["arn:aws:s3:::bucket","arn:aws:rds-db:us-east-1:1:dbuser:db-A/app"]},
          {"Sid":"Again","Effect":"Allow","Action":"rds-db:connect","Resource":["arn:aws:s3:::bucket","arn:aws:rds-db:us-east-1:1:dbuser:db-A/app"]},
          {"Effect":"Allow","Action":"iam:CreateUser","Resource":"*","Condition":{"StringEquals":{"kms:ViaService":"x"}}},
          {"Effect":"Allow","Action":"sql:Select","Resource":"*","Condition":{"StringEquals":{"aws:SourceIP":"1","aws:PrincipalTag/team":"a","aws:RequestTag/x":"b","sql:Tabel":"t","SQL:whereclausepresent":"true"},"Bool":{"aws:MultiFactorAuthPresnt":"true"}}}]}"#;
        let found = codes(text, PolicyKind::Identity);
        for expected in [
            ("ERROR", "INVALID_ACTION", "$.Statement[3].Action[0]"),
            ("WARNING", "UNSUPPORTED_ACTION", "$.Statement[3].Action[2]"),
            (
                "SECURITY_WARNING",
                "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES",
                "$.Statement[0].Action",
            ),
            (
                "SECURITY_WARNING",
                "PASS_ROLE_WITH_STAR_IN_RESOURCE",
                "$.Statement[1].Resource",
            ),
            (
                "SECURITY_WARNING",
                "ALLOW_WITH_NOT_ACTION",
                "$.Statement[2].NotAction",
            ),
            (
                "WARNING",
                "RESOURCE_DOES_NOT_MATCH_ACTION",
                "$.Statement[4].Resource[0]",
            ),
            (
                "WARNING",
                "UNREACHABLE_CONDITION",
                "$.Statement[6].Condition.StringEquals.kms:ViaService",
            ),
            (
                "ERROR",
                "INVALID_GLOBAL_CONDITION_KEY",
                "$.Statement[7].Condition.Bool.aws:MultiFactorAuthPresnt",
            ),
            (
                "ERROR",
                "INVALID_SERVICE_CONDITION_KEY",
                "$.Statement[7].Condition.StringEquals.sql:Tabel",
            ),
            ("SUGGESTION", "REDUNDANT_ACTION", "$.Statement[1].Action[1]"),
            ("SUGGESTION", "REDUNDANT_STATEMENT", "$.Statement[5]"),
        ] {
            assert!(
                found.contains(&(expected.0, expected.1, expected.2.to_owned())),
                "{expected:?} in {found:#?}"
            );
        }
        assert!(
            !found
                .iter()
                .any(|(_, _, p)| p == "$.Statement[3].Action[1]"),
            "other services are not judged"
        );
        assert!(
            !found
                .iter()
                .any(|(_, _, p)| p == "$.Statement[4].Resource[1]")
        );
        // Existing keys, in any case, are not errors (aws:RequestTag
        // exists, but sql:Select does not carry it); a key that does not
        // exist is not also a warning.
        let on_statement_7: Vec<&str> = found
            .iter()
            .filter(|(_, _, p)| p.starts_with("$.Statement[7]."))
            .map(|(_, code, _)| *code)
            .collect();
        assert_eq!(
            on_statement_7,
            [
                "INVALID_GLOBAL_CONDITION_KEY",
                "INVALID_SERVICE_CONDITION_KEY",
                "UNREACHABLE_CONDITION"
            ]
        );
        // Worst first.
        assert_eq!(found[0].0, "ERROR");
    }

    #[test]
    fn trust_policies_open_to_anyone_or_another_account() {
        let text = r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"},
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"sts:AssumeRole"},
          {"Effect":"Allow","Principal":{"AWS":"999999999999"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"x"}}},
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/a"},"Action":"sts:AssumeRole"}]}"#;
        let found = codes(text, PolicyKind::Trust);
        assert_eq!(
            found,
            [
                (
                    "SECURITY_WARNING",
                    "TRUST_POLICY_OPEN_TO_ANYONE",
                    "$.Statement[0].Principal".to_owned()
                ),
                (
                    "SECURITY_WARNING",
                    "CROSS_ACCOUNT_ASSUME_ROLE_WITHOUT_EXTERNAL_ID",
                    "$.Statement[1].Principal".to_owned()
                ),
            ]
        );
        let clean = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:*:*:dbuser:*/app"}}"#;
        assert!(codes(clean, PolicyKind::Identity).is_empty());
    }
}
