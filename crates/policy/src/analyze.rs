//! Findings as IAM Access Analyzer's `ValidatePolicy` gives them, on a
//! parsed policy: a type (`ERROR`, `SECURITY_WARNING`, `WARNING`,
//! `SUGGESTION`), an issue code, a message and the JSON path it is at.
//! Syntax errors stay with the parser (`crate::parse`); these are what a
//! valid policy can still get wrong.

use std::cell::Cell;

use crate::catalog::{self, action_matches};
use crate::document::{Effect, Policy, PolicyKind, Principal, Statement, Version};
use crate::eval::Request;

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

/// The statement's principal values, of every type (`*` for
/// `"Principal": "*"`): the engine matches a caller's ARN or account under
/// any type, `Service` included.
fn aws_principals(s: &Statement) -> Vec<&str> {
    match &s.principal {
        Some((Principal::Any, false)) => vec!["*"],
        Some((Principal::Typed(types), false)) => types
            .iter()
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

/// Whether a condition block narrows who may use a statement, so that it
/// excuses a security finding. Read strictly (what cannot be shown to
/// narrow does not): only a positive test can
/// (`StringEquals`, `ArnLike`, `IpAddress`, a `Bool` that asks for MFA,
/// numbers such as `aws:MultiFactorAuthAge`), on a key other than the
/// request's time, transport or principal type, with values that name
/// something (`StringLike` on `*`, `????`, `arn:*:*:*:*:*` or an
/// `IpAddress` of `0.0.0.0/0` does not). `...IfExists` and
/// `ForAllValues:` hold without the key, `Not...` and `Null` test for
/// absence: none of them narrows.
fn restricts(operator: &str, key: &str, values: &[String], identity: bool) -> bool {
    let op = operator.to_ascii_lowercase();
    let key = key.to_ascii_lowercase();
    if op.ends_with("ifexists") || op.starts_with("forallvalues:") || values.is_empty() {
        return false;
    }
    // In an identity policy every caller is of the policy's own account
    // and organization: these keys name no one in particular there.
    if identity
        && matches!(
            key.as_str(),
            "aws:principalaccount" | "aws:resourceaccount" | "aws:principalorgid"
        )
    {
        return false;
    }
    let op = op.strip_prefix("foranyvalue:").unwrap_or(&op);
    if matches!(
        key.as_str(),
        "aws:securetransport"
            | "aws:currenttime"
            | "aws:epochtime"
            | "aws:tokenissuetime"
            | "aws:principaltype"
            | "aws:requestedregion"
            | "aws:useragent"
    ) {
        return false;
    }
    // What a pattern names once its wildcards, separators and the words
    // any principal's ARN holds are set aside.
    let names_something = |v: &String| {
        let mut rest = v.to_ascii_lowercase();
        for word in ["arn", "aws", "iam", "sts", "assumed-role", "root"] {
            rest = rest.replace(word, "");
        }
        rest.retain(|c| !matches!(c, '*' | '?' | ':' | '.' | '/' | '-'));
        rest.len() >= 3
    };
    // An address range narrows only when it is no wider than a /8 (IPv4)
    // or a /16 (IPv6): `0.0.0.0/1` and `128.0.0.0/1` are everyone.
    let narrow_range = |v: &String| match v.split_once('/') {
        None => !v.is_empty(),
        Some((address, bits)) => {
            let least = if address.contains(':') { 16 } else { 8 };
            bits.parse::<u8>().is_ok_and(|b| b >= least)
        }
    };
    match op {
        "stringequals" | "stringequalsignorecase" | "arnequals" | "binaryequals" => {
            values.iter().all(|v| !v.is_empty())
        }
        "stringlike" | "arnlike" => values.iter().all(names_something),
        "ipaddress" => values.iter().all(narrow_range),
        "bool" => key == "aws:multifactorauthpresent" && values.iter().all(|v| v == "true"),
        "numericequals" | "numericlessthan" | "numericlessthanequals" => true,
        _ => false,
    }
}

/// Whether some condition of the statement restricts it (`identity`: in
/// an identity policy, where the caller's account is the policy's): one
/// that reads as narrowing ([`restricts`]) and that the engine itself
/// refuses to an ordinary caller ([`passes_for_anyone`]).
fn restricted(s: &Statement, identity: bool, version: Version, account: &str) -> bool {
    s.conditions
        .iter()
        .any(|(op, key, values)| restricts(op, key, values, identity))
        && !passes_for_anyone(s, identity, version, account)
}

/// Whether the statement's conditions, decided by the policy engine,
/// admit every one of a few ordinary callers: a user of the account (an
/// identity policy's holder) or of another account (a trust policy's
/// stranger), without MFA, over TLS, from documentation addresses, now.
/// A condition they all pass narrows nothing an attacker would notice.
/// In an identity policy, keys that name the holder (its ARN, account,
/// tags) are the holder's whatever the condition says: left out.
fn passes_for_anyone(s: &Statement, identity: bool, version: Version, account: &str) -> bool {
    let holder_key = |key: &str| {
        let key = key.to_ascii_lowercase();
        key.starts_with("aws:principal") || key == "aws:userid" || key == "aws:username"
    };
    let conditions: Vec<(String, String, Vec<String>)> = s
        .conditions
        .iter()
        .filter(|(_, key, _)| !(identity && holder_key(key)))
        .cloned()
        .collect();
    let probe = Policy {
        version,
        id: None,
        statements: vec![Statement {
            sid: None,
            effect: Effect::Allow,
            principal: None,
            actions: (vec!["*".to_owned()], false),
            resources: Some((vec!["*".to_owned()], false)),
            conditions,
        }],
    };
    let compiled = crate::eval::CompiledPolicy::compile("probe", &probe);
    let own = if account.is_empty() {
        "111122223333"
    } else {
        account
    };
    let caller_account = if identity { own } else { "999988887777" };
    let caller = format!("arn:aws:iam::{caller_account}:user/latchkey-probe");
    ["203.0.113.9", "198.51.100.77", "2001:db8::7"]
        .iter()
        .all(|ip| {
            let req = Request::new("probe:Action", "*")
                .with_caller(&caller)
                .with_context("aws:SourceIp", [*ip])
                .with_context("aws:SecureTransport", ["true"])
                .with_context("aws:CurrentTime", ["2027-01-01T00:00:00Z"])
                .with_context("aws:EpochTime", ["1798761600"])
                .with_context("aws:PrincipalArn", [caller.as_str()])
                .with_context("aws:PrincipalAccount", [caller_account])
                .with_context("aws:PrincipalType", ["User"])
                .with_context("aws:userid", ["AIDALATCHKEYPROBE"])
                .with_context("aws:username", ["latchkey-probe"])
                .with_context("aws:RequestedRegion", ["us-east-1"]);
            compiled.evaluate(&req).allow
        })
}

/// Whether the statement's resources reach every resource: none named,
/// `NotResource` (all but some), or a pattern covering any ARN (`*`,
/// `arn:*`, `arn:aws:*`...). Read generously: a `?` counts as a `*` here
/// (`arn:*:*:*:*:?*` reaches every ARN that has a resource part).
fn reaches_every_resource(s: &Statement) -> bool {
    match &s.resources {
        None | Some((_, true)) => true,
        Some((patterns, false)) => patterns.iter().any(|r| {
            let generous = r.replace('?', "*");
            pattern_covers(&generous, "arn:aws:*:*:*:*", false) || r == "*"
        }),
    }
}

/// Actions that, on every resource, let the holder give itself any
/// permission (attach or write a policy, trust itself, make itself a key
/// or password of another user, join a group).
const ESCALATION: [&str; 13] = [
    "iam:PutUserPolicy",
    "iam:PutRolePolicy",
    "iam:PutGroupPolicy",
    "iam:AttachUserPolicy",
    "iam:AttachRolePolicy",
    "iam:AttachGroupPolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:UpdateAssumeRolePolicy",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AddUserToGroup",
];

/// `iam:PassRole` on a wildcard resource, unless a condition on
/// `iam:PassedToService` narrows it.
fn security_pass_role(
    s: &Statement,
    at: &str,
    wild_resource: bool,
    every_resource: bool,
    out: &mut Vec<AnalyzerFinding>,
) {
    let (actions, _) = &s.actions;
    if !wild_resource
        || !actions.iter().any(|a| action_matches(a, "iam:PassRole"))
        || s.conditions.iter().any(|(op, key, values)| {
            key.eq_ignore_ascii_case("iam:PassedToService") && restricts(op, key, values, false)
        })
    {
        return;
    }
    let member = if matches!(s.resources, Some((_, true))) {
        "NotResource"
    } else {
        "Resource"
    };
    out.push(finding(
        FindingType::SecurityWarning,
        "PASS_ROLE_WITH_STAR_IN_RESOURCE",
        format!("{at}.{member}"),
        if every_resource {
            "iam:PassRole on every role lets the holder hand any role to a service"
        } else {
            "iam:PassRole on a wildcard resource lets the holder hand every role it matches, today's and later ones, to a service: name the roles, or condition on iam:PassedToService"
        },
    ));
}

/// Whether the actions name every action: `*`, or patterns that together
/// cover every action of the services Latchkey implements in full (`iam:*`,
/// `sts:*`, ... each named).
fn names_every_action(actions: &[String]) -> bool {
    let implemented = |a: &&str| {
        a.split_once(':')
            .is_some_and(|(service, _)| catalog::SERVICES.contains(&service))
    };
    actions.iter().any(|a| pattern_covers(a, "*:*", true))
        || catalog::all_actions()
            .filter(implemented)
            .all(|known| actions.iter().any(|a| action_matches(a, known)))
}

/// The findings that concern security alone (what the security checks
/// flag too): every action on every resource (`*`, or every action of
/// every implemented service; on `*`, `arn:*` or through `NotResource`),
/// a policy-writing action on every resource (`PRIVILEGE_ESCALATION`:
/// as good as every action), `iam:PassRole` on a wildcard resource, Allow
/// with `NotAction`, a trust policy open to anyone (`*` or `NotPrincipal`)
/// or to another account without `sts:ExternalId`. A condition excuses
/// only where it narrows who may use the statement ([`restricts`]).
/// `account` is the policy's own account (empty when unknown: no
/// principal then counts as another account's).
pub fn security_findings(
    policy: &Policy,
    kind: PolicyKind,
    account: &str,
    statement_list: bool,
) -> Vec<AnalyzerFinding> {
    let mut out = Vec::new();
    let identity = kind == PolicyKind::Identity;
    for (i, s) in policy.statements.iter().enumerate() {
        if s.effect != Effect::Allow {
            continue;
        }
        let at = base(statement_list, i);
        let (actions, not_action) = &s.actions;
        let every_resource = reaches_every_resource(s);
        // A wildcard in what names the resource (not in the account: an
        // account is always this one).
        let wild_resource = match &s.resources {
            None | Some((_, true)) => true,
            Some((patterns, false)) => patterns.iter().any(|r| {
                let named = if r.starts_with("arn:") {
                    r.splitn(6, ':').nth(5).unwrap_or("*")
                } else {
                    r
                };
                tokens(named)
                    .iter()
                    .any(|t| matches!(t, Token::Star | Token::One))
            }),
        };
        if *not_action {
            out.push(finding(
                FindingType::SecurityWarning,
                "ALLOW_WITH_NOT_ACTION",
                format!("{at}.NotAction"),
                "Allow with NotAction grants every action it does not name, today's and any added later",
            ));
        } else if every_resource
            && names_every_action(actions)
            && !restricted(s, identity, policy.version, account)
        {
            out.push(finding(
                FindingType::SecurityWarning,
                "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES",
                format!("{at}.Action"),
                "this statement allows every action on every resource",
            ));
        } else {
            if wild_resource
                && !restricted(s, identity, policy.version, account)
                && let Some(grant) = ESCALATION
                    .iter()
                    .find(|e| actions.iter().any(|a| action_matches(a, e)))
            {
                out.push(finding(
                    FindingType::SecurityWarning,
                    "PRIVILEGE_ESCALATION",
                    format!("{at}.Action"),
                    if every_resource {
                        format!(
                            "{grant} on every resource lets the holder give itself any permission: this statement is as good as every action on every resource"
                        )
                    } else {
                        format!(
                            "{grant} on a wildcard resource lets the holder give any permission to whatever it matches, itself too where it matches: name the resources, or use ${{aws:username}}"
                        )
                    },
                ));
            }
            security_pass_role(s, &at, wild_resource, every_resource, &mut out);
        }

        if kind == PolicyKind::Trust {
            let principals = aws_principals(s);
            let not_principal = matches!(s.principal, Some((_, true)));
            // A principal ARN with a wildcard matches no one here: only
            // `*` is everyone.
            let open = not_principal || principals.contains(&"*");
            if open && !restricted(s, identity, policy.version, account) {
                out.push(finding(
                    FindingType::SecurityWarning,
                    "TRUST_POLICY_OPEN_TO_ANYONE",
                    format!(
                        "{at}.{}",
                        if not_principal { "NotPrincipal" } else { "Principal" }
                    ),
                    if not_principal {
                        "anyone but the principals NotPrincipal names may assume this role: name the principals with Principal"
                    } else {
                        "anyone may assume this role: name the principals, or add a condition"
                    },
                ));
            } else if !account.is_empty()
                && principals
                    .iter()
                    .filter_map(|p| principal_account(p))
                    .any(|a| a != account)
                && !s.conditions.iter().any(|(op, key, values)| {
                    key.eq_ignore_ascii_case("sts:ExternalId") && restricts(op, key, values, false)
                })
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
    let budget = Cell::new(MAX_COVER_STEPS);
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
            } else if actions.len() <= MAX_COMPARED_ACTIONS
                && actions.iter().enumerate().any(|(k, other)| {
                    // Of two that cover each other, the later one goes.
                    k != j
                        && pattern_covers_within(other, a, true, &budget)
                        && (k < j || !pattern_covers_within(a, other, true, &budget))
                })
            {
                out.push(finding(
                    FindingType::Suggestion,
                    "REDUNDANT_ACTION",
                    format!("{at}.{member}[{j}]"),
                    format!("{a} is already covered by another action of this statement"),
                ));
            }
        }
        out.extend(resource_findings(s, &at, &budget));
        out.extend(invalid_condition_keys(s, &at));
        // Redundant: another statement decides everything this one does
        // (of two that cover each other, the later one is redundant).
        // Every pair is compared: past a size no IAM policy reaches, not
        // at all, so that a huge document cannot hold the server.
        let covering = (policy.statements.len() <= MAX_COMPARED_STATEMENTS)
            .then(|| {
                policy.statements.iter().enumerate().find(|&(k, other)| {
                    k != i && covers(other, s, &budget) && (k < i || !covers(s, other, &budget))
                })
            })
            .flatten();
        if let Some((k, other)) = covering {
            let verb = match s.effect {
                Effect::Allow => "allows",
                Effect::Deny => "denies",
            };
            let named = match &other.sid {
                Some(sid) => format!("statement {k} ({sid})"),
                None => format!("statement {k}"),
            };
            out.push(finding(
                FindingType::Suggestion,
                "REDUNDANT_STATEMENT",
                at.clone(),
                if same_statement(other, s) {
                    format!("this statement repeats {named}")
                } else {
                    format!("{named} already {verb} everything this statement {verb}")
                },
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

/// Resources the statement's actions never act on: an ARN of a kind its
/// service does not have, for Latchkey's own services (`ERROR`
/// `INVALID_ARN_RESOURCE`: `dbusr:` for `dbuser:`), or of a type none of
/// the actions is authorised on (`WARNING`
/// `RESOURCE_DOES_NOT_MATCH_ACTION`: `iam:GetUser` on a role, `rds-db:connect`
/// on a secret, `iam:ListUsers` on anything but `*`). Judged only when
/// every action resolves in the catalogue, and only for ARNs whose type
/// is written out (no wildcard in the service or kind).
fn resource_findings(s: &Statement, at: &str, budget: &Cell<usize>) -> Vec<AnalyzerFinding> {
    let mut out = Vec::new();
    let (Some((resources, false)), (actions, false)) = (&s.resources, &s.actions) else {
        return out;
    };
    let mut types: Vec<catalog::ResourceType> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for pattern in actions {
        let Some(matched) = catalog::actions_matching(pattern) else {
            return out;
        };
        if matched.is_empty() {
            return out;
        }
        for action in matched {
            names.push(action);
            types.extend(catalog::resource_types(action).unwrap_or_default());
        }
    }
    // What a request's resource may be: an ARN of one of the types, or
    // the bare `*` of an action authorised on nothing in particular.
    types.sort_unstable_by_key(|t| (t.service, t.kind));
    types.dedup();
    let mut shapes: Vec<Vec<Token>> = types
        .iter()
        .flat_map(|t| type_shapes(t.service, t.kind))
        .collect();
    if names
        .iter()
        .any(|a| catalog::resource_types(a).is_some_and(|t| t.is_empty()))
    {
        shapes.push(vec![Token::Char('*')]);
    }
    for (j, r) in resources.iter().enumerate() {
        let path = format!("{at}.Resource[{j}]");
        let parsed = catalog::ResourceType::of_arn(r);
        if let Some((service, _)) = parsed
            && let Some(kinds) = catalog::own_resource_kinds(service)
            && !kinds
                .iter()
                .flat_map(|k| type_shapes(service, k))
                .any(|shape| meets_within(r, &shape, budget))
        {
            out.push(finding(
                FindingType::Error,
                "INVALID_ARN_RESOURCE",
                path,
                format!(
                    "{r} is not a {service} resource: its ARNs name {}",
                    kinds.join(", ")
                ),
            ));
        } else if !shapes.iter().any(|shape| meets_within(r, shape, budget)) {
            let acts_on = if types.is_empty() {
                "\"*\" alone".to_owned()
            } else {
                let mut kinds: Vec<String> = types
                    .iter()
                    .map(|t| format!("{} {}", t.service, t.kind))
                    .collect();
                kinds.sort_unstable();
                kinds.dedup();
                kinds.join(", ")
            };
            names.sort_unstable();
            names.dedup();
            let shown = if names.len() > 3 {
                format!("{} and {} more", names[..3].join(", "), names.len() - 3)
            } else {
                names.join(", ")
            };
            let what = match parsed {
                Some((service, kind)) => format!("{r} is a {service} {kind}"),
                None => format!("{r} names no resource of theirs"),
            };
            out.push(finding(
                FindingType::Warning,
                "RESOURCE_DOES_NOT_MATCH_ACTION",
                path,
                format!("{what}; {shown} act on {acts_on}, so this resource never matches"),
            ));
        }
    }
    out
}

/// Every ARN of a type, as patterns: `arn:aws:SERVICE:REGION:ACCOUNT:`
/// then `KIND/…` or `KIND:…`, the region, the account and (but for SQL
/// objects and database users, whose names may hold one) what follows the
/// kind any run without a `:` (as a real ARN has them).
fn type_shapes(service: &str, kind: &str) -> [Vec<Token>; 2] {
    let shape = |separator: char| {
        let mut t: Vec<Token> = format!("arn:aws:{service}:")
            .chars()
            .map(Token::Char)
            .collect();
        t.extend([
            Token::Field,
            Token::Char(':'),
            Token::Field,
            Token::Char(':'),
        ]);
        t.extend(kind.chars().map(Token::Char));
        // What follows the kind holds no `:` but in a SQL object's or a
        // database user's name.
        let rest = if service == "sql" || service == "rds-db" {
            Token::Star
        } else {
            Token::Field
        };
        t.extend([Token::Char(separator), rest]);
        t
    };
    [shape('/'), shape(':')]
}

/// [`patterns_intersect`] within `budget` (one step a cell of its
/// table): past it, a resource is taken to meet the shape, and nothing is
/// reported.
fn meets_within(a: &str, b: &[Token], budget: &Cell<usize>) -> bool {
    let cells = (a.len() + 1).saturating_mul(b.len() + 1);
    if cells > budget.get() {
        budget.set(0);
        return true;
    }
    budget.set(budget.get() - cells);
    patterns_intersect(a, b)
}

/// Whether some text matches both the pattern `a` (a variable counts as
/// any text) and the shape `b`. Dynamic programming over both: no
/// backtracking blow-up.
fn patterns_intersect(a: &str, b: &[Token]) -> bool {
    let a: Vec<Token> = tokens(a)
        .into_iter()
        .map(|t| match t {
            Token::Variable(_) => Token::Star,
            t => t,
        })
        .collect();
    let (n, m) = (a.len(), b.len());
    // meet[i][j]: whether a[i..] and b[j..] match some common text.
    let mut meet = vec![vec![false; m + 1]; n + 1];
    meet[n][m] = true;
    for i in (0..=n).rev() {
        for j in (0..=m).rev() {
            if i == n && j == m {
                continue;
            }
            meet[i][j] = match (a.get(i), b.get(j)) {
                (Some(Token::Star), _) => meet[i + 1][j] || (j < m && meet[i][j + 1]),
                (_, Some(Token::Star)) => meet[i][j + 1] || (i < n && meet[i + 1][j]),
                (_, Some(Token::Field)) => {
                    meet[i][j + 1]
                        || matches!(a.get(i), Some(Token::One)) && meet[i + 1][j]
                        || matches!(a.get(i), Some(Token::Char(c)) if *c != ':') && meet[i + 1][j]
                }
                (None, _) | (_, None) => false,
                (Some(Token::One), _) | (_, Some(Token::One)) => meet[i + 1][j + 1],
                (Some(x), Some(y)) => x == y && meet[i + 1][j + 1],
            };
        }
    }
    meet[0][0]
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

/// The most statements compared pairwise for redundancy (250,000 pairs):
/// IAM's largest policy, a 32 KB KMS key policy, holds a few hundred at
/// most.
const MAX_COMPARED_STATEMENTS: usize = 500;

/// The most actions of one statement compared pairwise for redundancy:
/// a 10,240-character policy holds fewer.
const MAX_COMPARED_ACTIONS: usize = 400;

/// Whether statement `a` decides everything `b` does: the same effect and
/// principal, `a`'s actions and resources covering `b`'s, and `a`'s
/// conditions a subset of `b`'s (so `a` applies wherever `b` does). Sound,
/// not complete: `NotAction`/`NotResource` are judged only when written
/// alike, and a cover it cannot prove is not one.
fn covers(a: &Statement, b: &Statement, budget: &Cell<usize>) -> bool {
    let lists_cover = |outer: &[String], inner: &[String], ignore_case: bool| {
        inner.iter().all(|i| {
            outer
                .iter()
                .any(|o| pattern_covers_within(o, i, ignore_case, budget))
        })
    };
    // A statement whose resources hold a policy variable applies only
    // when the request gives it a value (one, and for at most eight
    // variables a pattern): then it covers only its own repeat.
    let variable = |r: &String| tokens(r).iter().any(|t| matches!(t, Token::Variable(_)));
    if a.resources
        .as_ref()
        .is_some_and(|(patterns, _)| patterns.iter().any(variable))
    {
        return a == b || same_statement(a, b);
    }
    a.effect == b.effect
        && a.principal == b.principal
        && a.conditions.iter().all(|c| b.conditions.contains(c))
        && match (&a.actions, &b.actions) {
            ((outer, false), (inner, false)) => lists_cover(outer, inner, true),
            (outer, inner) => outer == inner,
        }
        && match (&a.resources, &b.resources) {
            (Some((outer, false)), Some((inner, false))) => lists_cover(outer, inner, false),
            (outer, inner) => outer == inner,
        }
}

/// A resource or action pattern read for covering: IAM's escapes
/// (`${*}`, `${?}`, `${$}`) are literal characters, any other `${...}` a
/// policy variable. Characters, not bytes: `?` matches one character, as
/// the policy engine's does.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`: any run.
    Star,
    /// `?`: one character.
    One,
    /// `${aws:username}`: a value unknown here, so any run of text; two
    /// are the same only when they name the same key (and default).
    Variable(String),
    /// Any run without a `:` (a region or account in an ARN's shape).
    Field,
}

fn tokens(pattern: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if let Some(body) = rest.strip_prefix("${")
            && let Some(end) = body.find('}')
        {
            let inner = &body[..end];
            out.push(match inner {
                "*" => Token::Char('*'),
                "?" => Token::Char('?'),
                "$" => Token::Char('$'),
                // The key without case, a default as written.
                key => Token::Variable(match key.split_once(',') {
                    Some((name, default)) => {
                        format!("{},{}", name.trim().to_ascii_lowercase(), default.trim())
                    }
                    None => key.trim().to_ascii_lowercase(),
                }),
            });
            rest = &body[end + 1..];
            continue;
        }
        out.push(match c {
            '*' => Token::Star,
            '?' => Token::One,
            c => Token::Char(c),
        });
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Whether every string the pattern `inner` matches, `outer` matches too
/// (`*` any run, `?` one character, `${*}` a literal `*`). A wildcard or
/// variable of `inner` is covered only by `*` (a `?` also by `?`); an
/// `outer` with a variable covers only a pattern written alike. So a
/// `true` is always right. Dynamic programming over both patterns: no
/// backtracking blow-up.
fn pattern_covers(outer: &str, inner: &str, ignore_case: bool) -> bool {
    pattern_covers_within(outer, inner, ignore_case, &Cell::new(usize::MAX))
}

/// The most pattern-comparison steps one validation spends judging
/// redundancy (a few milliseconds): past it, what is not yet proven
/// redundant is not reported, so that no document can hold the server.
const MAX_COVER_STEPS: usize = 4_000_000;

/// [`pattern_covers`], spending at most `budget` steps (one per cell of
/// the table); `false` once it is spent, as a cover not proven.
fn pattern_covers_within(
    outer: &str,
    inner: &str,
    ignore_case: bool,
    budget: &Cell<usize>,
) -> bool {
    // Reading both patterns is paid for too.
    let reading = outer.len() + inner.len() + 1;
    if reading > budget.get() {
        budget.set(0);
        return false;
    }
    budget.set(budget.get() - reading);
    let (o, i) = (tokens(outer), tokens(inner));
    let same = |a: &Token, b: &Token| match (a, b) {
        (Token::Char(x), Token::Char(y)) => {
            x == y || (ignore_case && x.to_lowercase().eq(y.to_lowercase()))
        }
        (x, y) => x == y,
    };
    let wild = |t: &Token| matches!(t, Token::Star | Token::One);
    if o.iter().any(|t| matches!(t, Token::Variable(_))) || !o.iter().any(wild) {
        return o.len() == i.len() && o.iter().zip(&i).all(|(a, b)| same(a, b));
    }
    // The literal text before the outer pattern's first wildcard must
    // begin the inner one, and the text after its last end it: most pairs
    // part here, before any table.
    let head = o.iter().take_while(|t| matches!(t, Token::Char(_))).count();
    let tail = o
        .iter()
        .rev()
        .take_while(|t| matches!(t, Token::Char(_)))
        .count();
    if i.len() < head + tail
        || !o[..head].iter().zip(&i).all(|(a, b)| same(a, b))
        || !o[o.len() - tail..]
            .iter()
            .zip(&i[i.len() - tail..])
            .all(|(a, b)| same(a, b))
    {
        return false;
    }
    let (o, i) = (&o[head..o.len() - tail], &i[head..i.len() - tail]);
    let (n, m) = (o.len(), i.len());
    let cells = (n + 1).saturating_mul(m + 1);
    if cells > budget.get() {
        budget.set(0);
        return false;
    }
    budget.set(budget.get() - cells);
    // next[j]: whether o[k+1..] covers i[j..]; row[j] the same for o[k..].
    let mut next = vec![false; m + 1];
    next[m] = true;
    let mut row = vec![false; m + 1];
    for k in (0..n).rev() {
        for j in (0..=m).rev() {
            row[j] = match o[k] {
                Token::Star => next[j] || (j < m && row[j + 1]),
                _ if j == m => false,
                Token::One => matches!(i[j], Token::Char(_) | Token::One) && next[j + 1],
                ref t => same(t, &i[j]) && next[j + 1],
            };
        }
        std::mem::swap(&mut row, &mut next);
    }
    next[0]
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
    fn resources_of_a_type_no_action_acts_on() {
        let text = r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iam:GetUser","Resource":["arn:aws:iam::1:role/app","arn:aws:iam::1:user/a"]},
          {"Effect":"Allow","Action":"iam:ListUsers","Resource":"arn:aws:iam::1:user/*"},
          {"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:r:1:dbusr:db-A/app"},
          {"Effect":"Allow","Action":"sql:Select","Resource":["arn:aws:sql:r:1:tabel/db-A/app/public/t","arn:aws:sql:r:1:table/db-A/*"]},
          {"Effect":"Allow","Action":["latchkey:EndSession","latchkey:ExecuteDynamicSql"],"Resource":["arn:aws:rds:r:1:db:orders","arn:aws:rds-db:r:1:dbuser:db-A/app"]},
          {"Effect":"Allow","Action":["iam:Get*","kms:CreateAlias"],"Resource":["arn:aws:iam::1:role/x","arn:aws:kms:r:1:alias/a","arn:aws:iam::1:*","arn:aws:iam::1:us*"]},
          {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:ssm:r:1:parameter/x"},
          {"Effect":"Allow","Action":["sts:AssumeRole","s3:GetObject"],"Resource":"arn:aws:iam::1:user/x"}]}"#;
        let found = codes(text, PolicyKind::Identity);
        let at = |p: &str| -> Vec<(&str, &str)> {
            found
                .iter()
                .filter(|(_, _, path)| path == p)
                .map(|(t, c, _)| (*t, *c))
                .collect()
        };
        let warned = [("WARNING", "RESOURCE_DOES_NOT_MATCH_ACTION")];
        assert_eq!(at("$.Statement[0].Resource[0]"), warned);
        assert_eq!(at("$.Statement[0].Resource[1]"), []);
        assert_eq!(
            at("$.Statement[1].Resource[0]"),
            warned,
            "iam:ListUsers is on * alone"
        );
        assert_eq!(
            at("$.Statement[2].Resource[0]"),
            [("ERROR", "INVALID_ARN_RESOURCE")]
        );
        assert_eq!(
            at("$.Statement[3].Resource[0]"),
            [("ERROR", "INVALID_ARN_RESOURCE")]
        );
        assert_eq!(at("$.Statement[3].Resource[1]"), []);
        for clean in 0..2 {
            assert_eq!(at(&format!("$.Statement[4].Resource[{clean}]")), []);
        }
        for clean in 0..4 {
            assert_eq!(at(&format!("$.Statement[5].Resource[{clean}]")), []);
        }
        assert_eq!(at("$.Statement[6].Resource[0]"), warned, "a Deny too");
        assert_eq!(
            at("$.Statement[7].Resource[0]"),
            [],
            "another service's action may act on anything"
        );
        let message = &validate(
            text,
            &parse(text, PolicyKind::Identity).unwrap(),
            PolicyKind::Identity,
            "1",
        )
        .into_iter()
        .find(|f| f.path == "$.Statement[1].Resource[0]")
        .unwrap()
        .message;
        assert!(
            message.contains("iam:ListUsers act on \"*\" alone"),
            "{message}"
        );
    }

    #[test]
    fn statements_another_one_covers_are_redundant() {
        let text = r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::1:user/alice"},
          {"Sid":"Wide","Effect":"Allow","Action":["IAM:Get*","iam:List*"],"Resource":"arn:aws:iam::1:user/*"},
          {"Effect":"Allow","Action":"iam:Get?","Resource":"arn:aws:iam::1:user/*","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
          {"Effect":"Allow","Action":"iam:GetRole","Resource":"arn:aws:iam::1:role/*","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
          {"Effect":"Allow","Action":"iam:GetRole","Resource":"arn:aws:iam::1:role/app","Condition":{"Bool":{"aws:SecureTransport":"true"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
          {"Effect":"Allow","Action":"iam:GetRole","Resource":"arn:aws:iam::1:role/*"},
          {"Effect":"Deny","Action":"iam:Delete*","Resource":"*"},
          {"Effect":"Deny","Action":"iam:DeleteUser","Resource":"arn:aws:iam::1:user/?lice"},
          {"Effect":"Allow","Action":"iam:Get*","Resource":"arn:aws:iam::1:user/?lice"},
          {"Effect":"Allow","Action":"iam:Get*","Resource":"arn:aws:iam::1:user/*lice"}]}"#;
        let found = codes(text, PolicyKind::Identity);
        let redundant: Vec<&str> = found
            .iter()
            .filter(|(_, code, _)| *code == "REDUNDANT_STATEMENT")
            .map(|(_, _, p)| p.as_str())
            .collect();
        assert_eq!(
            redundant,
            [
                "$.Statement[0]",
                "$.Statement[2]",
                "$.Statement[3]",
                "$.Statement[4]",
                "$.Statement[7]",
                "$.Statement[8]",
                "$.Statement[9]",
            ],
            "{found:#?}"
        );
        let policy = parse(text, PolicyKind::Identity).unwrap();
        let messages: Vec<String> = validate(text, &policy, PolicyKind::Identity, "1")
            .into_iter()
            .filter(|f| f.issue_code == "REDUNDANT_STATEMENT")
            .map(|f| f.message)
            .collect();
        assert_eq!(
            messages[0],
            "statement 1 (Wide) already allows everything this statement allows"
        );
        assert_eq!(
            messages[4],
            "statement 6 already denies everything this statement denies"
        );
        // The pattern test: wildcards of the inner pattern need a `*`.
        for (outer, inner, yes) in [
            ("iam:*", "iam:Get*", true),
            ("iam:Get?", "iam:Get*", false),
            ("iam:Get?", "iam:Get?", true),
            ("a*b", "a?*?b", true),
            ("a*", "", false),
            ("*", "", true),
            ("user/a*", "user/b", false),
            ("user/*/x", "user/a/b/x", true),
        ] {
            assert_eq!(
                pattern_covers(outer, inner, true),
                yes,
                "{outer} covers {inner}"
            );
        }
        assert!(!pattern_covers("user/A", "user/a", false), "ARNs keep case");
        // Policy variables and escapes (what the red team broke): a
        // variable is any text, covered only by `*`; `${*}` is a `*`.
        for (outer, inner, yes) in [
            ("user/*e*", "user/${aws:username}", false),
            ("user/*", "user/${aws:username}", true),
            ("user/${aws:username}", "user/${aws:username}", true),
            ("user/${aws:username}", "user/alice", false),
            ("user/${*}", "user/${aws:username}", false),
            ("user/${*}", "user/${*}", true),
            ("user/*", "user/${*}", true),
            ("user/?", "user/${*}", true),
            ("user/${*}", "user/x", false),
            ("iam:ListRole?", "iam:ListRole*", false),
            ("iam:Get*", "iam:get*", true),
        ] {
            assert_eq!(
                pattern_covers(outer, inner, true),
                yes,
                "{outer} covers {inner}"
            );
        }
        // Past its budget, a cover is not proven (nothing is reported).
        let budget = Cell::new(10);
        assert!(!pattern_covers_within(
            "x/*a*b*",
            "x/a1b2a3b4",
            true,
            &budget
        ));
        assert_eq!(budget.get(), 0);
        assert!(pattern_covers("x/*a*b*", "x/a1b2a3b4", true));
        // Two variables are one only when they name the same key; `?` is
        // one character, not one byte.
        assert!(!pattern_covers(
            "t/${aws:username}/*",
            "t/${aws:PrincipalTag/team}/*",
            true
        ));
        assert!(pattern_covers(
            "t/${AWS:username}/*",
            "t/${aws:username}/*",
            true
        ));
        assert!(!pattern_covers("public/??", "public/é", false));
        assert!(pattern_covers("public/?", "public/é", false));
        assert!(pattern_covers("iam:getuSER", "IAM:GetUser", true));
        // Neither is redundant: the variable statement allows bob his own
        // user, which `*e*` does not; a Deny on `${*}` (a user named `*`)
        // does not cover a Deny on the caller's own user.
        let text = r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::1:user/*e*"},
          {"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::1:user/${aws:username}"},
          {"Effect":"Deny","Action":"iam:DeleteUser","Resource":"arn:aws:iam::1:user/${*}"},
          {"Effect":"Deny","Action":"iam:DeleteUser","Resource":"arn:aws:iam::1:user/${aws:username}"}]}"#;
        assert!(
            !codes(text, PolicyKind::Identity)
                .iter()
                .any(|(_, code, _)| *code == "REDUNDANT_STATEMENT")
        );
    }

    #[test]
    fn of_two_actions_that_cover_each_other_only_the_later_is_redundant() {
        let redundant = |actions: &str| -> Vec<String> {
            let text = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":{actions},"Resource":"*"}}]}}"#
            );
            codes(&text, PolicyKind::Identity)
                .into_iter()
                .filter(|(_, code, _)| *code == "REDUNDANT_ACTION")
                .map(|(_, _, path)| path)
                .collect()
        };
        // `iam:ListRole?` does not cover `iam:ListRole*` (ListRoleTags).
        assert_eq!(
            redundant(r#"["iam:ListRole*","iam:ListRole?"]"#),
            ["$.Statement[0].Action[1]"]
        );
        assert_eq!(
            redundant(r#"["iam:ListRole?","iam:ListRole*"]"#),
            ["$.Statement[0].Action[0]"]
        );
        assert_eq!(
            redundant(r#"["iam:Get*","iam:get*"]"#),
            ["$.Statement[0].Action[1]"]
        );
        assert_eq!(
            redundant(r#"["iam:GetUser","iam:GetUser","iam:GetRole"]"#),
            ["$.Statement[0].Action[1]"]
        );
    }

    #[test]
    fn what_the_red_team_wrote_to_slip_past_the_security_findings_is_caught() {
        let text = r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"*","Resource":"arn:*"},
          {"Effect":"Allow","Action":["*"],"NotResource":"arn:aws:s3:::nothing"},
          {"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:PrincipalArn":"*"}}},
          {"Effect":"Allow","Action":"iam:PassRole","Resource":"arn:aws:iam::1:role/*"},
          {"Effect":"Allow","Action":"iam:Pass*","NotResource":"arn:aws:iam::1:role/admin"},
          {"Effect":"Allow","Action":"iam:PassRole","Resource":"arn:aws:iam::1:role/*","Condition":{"StringEquals":{"iam:PassedToService":"ec2.amazonaws.com"}}},
          {"Effect":"Allow","Action":"iam:PassRole","Resource":"arn:aws:iam::1:role/app"},
          {"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#;
        let found: Vec<(&str, String)> = codes(text, PolicyKind::Identity)
            .into_iter()
            .filter(|(t, _, _)| *t == "SECURITY_WARNING")
            .map(|(_, code, path)| (code, path))
            .collect();
        let all = "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES";
        let pass = "PASS_ROLE_WITH_STAR_IN_RESOURCE";
        assert_eq!(
            found,
            [
                (all, "$.Statement[0].Action".to_owned()),
                (all, "$.Statement[1].Action".to_owned()),
                (all, "$.Statement[2].Action".to_owned()),
                (pass, "$.Statement[3].Resource".to_owned()),
                (pass, "$.Statement[4].NotResource".to_owned()),
                // Every action behind MFA is not every action on every
                // resource for anyone, but it still passes every role.
                (pass, "$.Statement[7].Resource".to_owned()),
            ]
        );
        // The second round: conditions any caller passes, a resource
        // pattern reaching every ARN through `?`, every service named.
        let every: String = catalog::SERVICES
            .iter()
            .map(|s| format!(r#""{s}:*""#))
            .collect::<Vec<_>>()
            .join(",");
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[
          {{"Effect":"Allow","Action":"iam:PassRole","Resource":"*","Condition":{{"StringLike":{{"iam:PassedToService":"*?"}}}}}},
          {{"Effect":"Allow","Action":"*","Resource":"*","Condition":{{"StringEqualsIfExists":{{"aws:SourceVpc":"vpc-1"}}}}}},
          {{"Effect":"Allow","Action":"*","Resource":"*","Condition":{{"ForAllValues:StringEquals":{{"aws:TagKeys":"x"}}}}}},
          {{"Effect":"Allow","Action":"*","Resource":"arn:*:*:*:*:?*"}},
          {{"Effect":"Allow","Action":[{every}],"Resource":"*"}},
          {{"Effect":"Allow","Action":"*","Resource":"*","Condition":{{"IpAddress":{{"aws:SourceIp":"10.0.0.0/8"}}}}}}]}}"#
        );
        let found: Vec<(&str, String)> = codes(&text, PolicyKind::Identity)
            .into_iter()
            .filter(|(t, _, _)| *t == "SECURITY_WARNING")
            .map(|(_, code, path)| (code, path))
            .collect();
        assert_eq!(
            found,
            [
                (pass, "$.Statement[0].Resource".to_owned()),
                (all, "$.Statement[1].Action".to_owned()),
                (all, "$.Statement[2].Action".to_owned()),
                (all, "$.Statement[3].Action".to_owned()),
                (all, "$.Statement[4].Action".to_owned()),
                // A real condition: not every action for anyone, but every
                // role passed by those it admits.
                (pass, "$.Statement[5].Resource".to_owned()),
            ]
        );
        let trust = r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Condition":{"StringLike":{"aws:PrincipalArn":"?*"}}},
          {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Condition":{"StringEqualsIfExists":{"aws:SourceVpc":"vpc-1"}}},
          {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Condition":{"Null":{"aws:PrincipalArn":"false"}}},
          {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-1"}}}]}"#;
        let open: Vec<String> = codes(trust, PolicyKind::Trust)
            .into_iter()
            .filter(|(_, code, _)| *code == "TRUST_POLICY_OPEN_TO_ANYONE")
            .map(|(_, _, path)| path)
            .collect();
        assert_eq!(
            open,
            [
                "$.Statement[0].Principal",
                "$.Statement[1].Principal",
                "$.Statement[2].Principal"
            ]
        );
        let trust = r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/nobody"},"Action":"sts:AssumeRole"},
          {"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"sts:AssumeRole"},
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::*:root"},"Action":"sts:AssumeRole"},
          {"Effect":"Allow","Principal":{"AWS":"999999999999"},"Action":"sts:AssumeRole","Condition":{"StringLike":{"sts:ExternalId":"*"}}}]}"#;
        let found: Vec<(&str, String)> = codes(trust, PolicyKind::Trust)
            .into_iter()
            .filter(|(t, _, _)| *t == "SECURITY_WARNING")
            .map(|(_, code, path)| (code, path))
            .collect();
        let open = "TRUST_POLICY_OPEN_TO_ANYONE";
        assert_eq!(
            found,
            [
                (open, "$.Statement[0].NotPrincipal".to_owned()),
                (open, "$.Statement[1].Principal".to_owned()),
                // `arn:aws:iam::*:root` matches no one (the engine takes no
                // wildcard in a principal): not open.
                (
                    "CROSS_ACCOUNT_ASSUME_ROLE_WITHOUT_EXTERNAL_ID",
                    "$.Statement[3].Principal".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_third_round_holds() {
        // Conditions every request passes excuse nothing.
        for condition in [
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
            r#"{"DateGreaterThan":{"aws:CurrentTime":"1970-01-01T00:00:00Z"}}"#,
            r#"{"NumericGreaterThanEquals":{"aws:EpochTime":"0"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":["0.0.0.0/0","::/0"]}}"#,
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:*:*:*:*:*"}}"#,
            r#"{"StringLike":{"aws:PrincipalAccount":"????????????"}}"#,
            r#"{"StringNotEquals":{"aws:SourceVpc":"vpc-0"}}"#,
            r#"{"Null":{"aws:SourceVpc":"true"}}"#,
            r#"{"StringEquals":{"aws:PrincipalType":["User","AssumedRole"]}}"#,
        ] {
            let text = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{condition}}}]}}"#
            );
            assert!(
                codes(&text, PolicyKind::Identity)
                    .iter()
                    .any(|(_, code, _)| *code == "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES"),
                "{condition}"
            );
            let trust = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":"sts:AssumeRole","Condition":{condition}}}]}}"#
            );
            assert!(
                codes(&trust, PolicyKind::Trust)
                    .iter()
                    .any(|(_, code, _)| *code == "TRUST_POLICY_OPEN_TO_ANYONE"),
                "{condition}"
            );
        }
        // An ExternalId condition that asks for none is no ExternalId.
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"999999999999"},"Action":"sts:AssumeRole","Condition":{"Null":{"sts:ExternalId":"true"}}}]}"#;
        assert!(
            codes(trust, PolicyKind::Trust)
                .iter()
                .any(|(_, code, _)| *code == "CROSS_ACCOUNT_ASSUME_ROLE_WITHOUT_EXTERNAL_ID")
        );
        // Everything but iam:PassRole is as good as everything.
        let text = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:A*","iam:C*","iam:D*","iam:G*","iam:L*","iam:Pu*","sts:*","sql:*"],"Resource":"*"}]}"#;
        assert!(
            codes(text, PolicyKind::Identity)
                .iter()
                .any(|(_, code, path)| *code == "PRIVILEGE_ESCALATION"
                    && path == "$.Statement[0].Action")
        );
        // A `*` in the region or account may span the fields after it:
        // such ARNs still meet their types.
        for (action, resource) in [
            ("latchkey:EndSession", "arn:aws:rds:*:db:prod"),
            ("rds-db:connect", "arn:aws:rds-db:*:dbuser:db-A/app"),
            ("rds-db:connect", "arn:aws:rds-db:us-east-1:*:db-A/app"),
            (
                "secretsmanager:GetSecretValue",
                "arn:aws:secretsmanager:*:secret:prod/db-*",
            ),
        ] {
            let text = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Action":"{action}","Resource":"{resource}"}}]}}"#
            );
            let found = codes(&text, PolicyKind::Identity);
            assert!(
                !found
                    .iter()
                    .any(|(_, code, _)| *code == "RESOURCE_DOES_NOT_MATCH_ACTION"
                        || *code == "INVALID_ARN_RESOURCE"),
                "{resource}: {found:?}"
            );
        }
        // A statement whose resources hold a variable covers nothing (it
        // does not apply where the variable has no value), and a default
        // keeps its case.
        for text in [
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"iam:*","Resource":"*"},
              {"Effect":"Deny","Action":"iam:DeleteUser","Resource":["arn:aws:iam::1:user/${aws:username}","arn:aws:iam::1:user/admin"]},
              {"Effect":"Deny","Action":"iam:DeleteUser","Resource":"arn:aws:iam::1:user/admin"}]}"#,
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::1:user/${aws:username, 'Guest'}"},
              {"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::1:user/${aws:username, 'guest'}"}]}"#,
        ] {
            assert!(
                !codes(text, PolicyKind::Identity)
                    .iter()
                    .any(|(_, code, _)| *code == "REDUNDANT_STATEMENT"),
                "{text}"
            );
        }
        // Thousands of actions in one statement are not compared pairwise.
        let many: Vec<String> = (0..2500).map(|i| format!(r#""a:x{i}""#)).collect();
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":[{}],"Resource":"*"}}]}}"#,
            many.join(",")
        );
        assert!(
            !codes(&text, PolicyKind::Resource)
                .iter()
                .any(|(_, code, _)| *code == "REDUNDANT_ACTION")
        );
        let [_, db] = type_shapes("rds", "db");
        assert!(patterns_intersect("arn:aws:rds:*:db:prod", &db));
        assert!(!patterns_intersect(
            "arn:aws:rds:us-east-1:1:cluster:prod",
            &db
        ));
        assert!(!patterns_intersect(
            "arn:aws:iam::1:user/*",
            &[Token::Char('*')]
        ));
        assert!(patterns_intersect("*", &[Token::Char('*')]));
        let [_, dbuser] = type_shapes("rds-db", "dbuser");
        // A database user's name may hold a `:`, so a `*` in the account
        // could reach one: only a written-out ARN is judged mistyped.
        assert!(!patterns_intersect(
            "arn:aws:rds-db:us-east-1:123456789012:dbusr:db-A/app",
            &dbuser
        ));
        assert!(patterns_intersect(
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-A/app:ro",
            &dbuser
        ));
        assert!(patterns_intersect(
            "arn:aws:rds-db:*:*:dbuser:*/app",
            &dbuser
        ));
    }

    #[test]
    fn the_fourth_round_holds() {
        let has =
            |text: &str, kind, code: &str| codes(text, kind).iter().any(|(_, c, _)| *c == code);
        for condition in [
            r#"{"IpAddress":{"aws:SourceIp":["0.0.0.0/1","128.0.0.0/1","::/1","8000::/1"]}}"#,
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:*"}}"#,
            r#"{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#,
        ] {
            let text = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{condition}}}]}}"#
            );
            assert!(
                has(
                    &text,
                    PolicyKind::Identity,
                    "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES"
                ),
                "{condition}"
            );
        }
        for condition in [
            r#"{"IpAddress":{"aws:SourceIp":["0.0.0.0/1","128.0.0.0/1"]}}"#,
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:*"}}"#,
        ] {
            let trust = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Condition":{condition}}}]}}"#
            );
            assert!(
                has(&trust, PolicyKind::Trust, "TRUST_POLICY_OPEN_TO_ANYONE"),
                "{condition}"
            );
        }
        // Conditions the engine itself lets an ordinary caller through,
        // however they read.
        for condition in [
            r#"{"StringLike":{"aws:PrincipalArn":"*latchkey-probe*"},"Bool":{"aws:SecureTransport":"true"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":["192.0.0.0/2","0.0.0.0/2","64.0.0.0/2","128.0.0.0/2","2001:db8::/32"]}}"#,
        ] {
            let trust = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Condition":{condition}}}]}}"#
            );
            assert!(
                has(&trust, PolicyKind::Trust, "TRUST_POLICY_OPEN_TO_ANYONE"),
                "{condition}"
            );
        }
        // In a trust policy an account is someone: not open.
        let own = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}}]}"#;
        assert!(!has(own, PolicyKind::Trust, "TRUST_POLICY_OPEN_TO_ANYONE"));
        // The engine matches a caller's ARN under any principal type.
        let service = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"arn:aws:iam::999988887777:user/mallory"},"Action":"sts:AssumeRole"}]}"#;
        assert!(has(
            service,
            PolicyKind::Trust,
            "CROSS_ACCOUNT_ASSUME_ROLE_WITHOUT_EXTERNAL_ID"
        ));
        // Writing policies of every user is escalation too; of one's own
        // user (a variable) it is not.
        let every_user = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:PutUserPolicy","iam:AttachUserPolicy"],"Resource":"arn:aws:iam::*:user/*"}]}"#;
        assert!(has(
            every_user,
            PolicyKind::Identity,
            "PRIVILEGE_ESCALATION"
        ));
        let own_key = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:CreateAccessKey","Resource":"arn:aws:iam::*:user/${aws:username}"}]}"#;
        assert!(!has(own_key, PolicyKind::Identity, "PRIVILEGE_ESCALATION"));
        // A database user's name may hold a `:`.
        let colon = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:us-east-1:111122223333:dbuser:db-ABCDEFGHIJKL/app:ro"}]}"#;
        assert!(codes(colon, PolicyKind::Identity).is_empty());
        // Many actions and a long resource: the budget bounds the work.
        let long = "a".repeat(1000);
        let actions = vec![r#""iam:*""#; 100].join(",");
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":[{actions}],"Resource":"arn:aws:s3:::{long}"}}]}}"#
        );
        let budget = Cell::new(MAX_COVER_STEPS);
        let policy = parse(&text, PolicyKind::Identity).unwrap();
        resource_findings(&policy.statements[0], "$.Statement[0]", &budget);
        assert!(
            budget.get() < MAX_COVER_STEPS,
            "the intersections are paid for"
        );
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
