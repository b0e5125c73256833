//! The policy document: parsing and validation with JSON paths, and the
//! canonical JSON form.

use serde_json::{Map, Value};

use crate::condition::{Operator, compile_values};
use crate::pattern::Pattern;

/// Which kind of policy a document is; it decides which elements it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or role; also permissions boundaries and
    /// session policies. No `Principal`; `Resource` required.
    Identity,
    /// Attached to a resource: `Principal` required.
    Resource,
    /// A role's trust policy: `Principal` required, `Resource` not used.
    Trust,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2012_10_17,
    V2008_10_17,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2012_10_17 => "2012-10-17",
            Version::V2008_10_17 => "2008-10-17",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// `Principal`/`NotPrincipal`: `"*"` or typed lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Any,
    /// (type, values), e.g. ("AWS", ["arn:aws:iam::123456789012:root"]).
    Typed(Vec<(String, Vec<String>)>),
}

/// One statement as written (normalised to lists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<(Principal, bool)>,
    /// Patterns and whether this is `NotAction`.
    pub actions: (Vec<String>, bool),
    /// Patterns and whether this is `NotResource`; `None` when absent.
    pub resources: Option<(Vec<String>, bool)>,
    /// (operator, key, values) in document order.
    pub conditions: Vec<(String, String, Vec<String>)>,
}

impl Statement {
    /// The statement as JSON, every list written as an array.
    pub fn to_json(&self) -> Value {
        let s = self;
        let strings = |l: &[String]| Value::Array(l.iter().cloned().map(Value::String).collect());
        let mut m = Map::new();
        if let Some(sid) = &s.sid {
            m.insert("Sid".into(), sid.clone().into());
        }
        m.insert(
            "Effect".into(),
            match s.effect {
                Effect::Allow => "Allow",
                Effect::Deny => "Deny",
            }
            .into(),
        );
        if let Some((p, negated)) = &s.principal {
            let value = match p {
                Principal::Any => "*".into(),
                Principal::Typed(types) => {
                    Value::Object(types.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
                }
            };
            m.insert(
                if *negated {
                    "NotPrincipal"
                } else {
                    "Principal"
                }
                .into(),
                value,
            );
        }
        let (actions, not) = &s.actions;
        m.insert(
            if *not { "NotAction" } else { "Action" }.into(),
            strings(actions),
        );
        if let Some((resources, not)) = &s.resources {
            m.insert(
                if *not { "NotResource" } else { "Resource" }.into(),
                strings(resources),
            );
        }
        if !s.conditions.is_empty() {
            let mut ops = Map::new();
            for (op, key, values) in &s.conditions {
                let entry = ops
                    .entry(op.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(keys) = entry {
                    keys.insert(key.clone(), strings(values));
                }
            }
            m.insert("Condition".into(), Value::Object(ops));
        }
        Value::Object(m)
    }
}

/// A parsed, validated policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub version: Version,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

/// A validation finding: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// JSON path, e.g. `$.Statement[0].Condition.IpAddress`.
    pub path: String,
    pub message: String,
}

impl Finding {
    /// IAM Access Analyzer's issue code for this error (its policy check
    /// reference: `JSON_SYNTAX_ERROR`, `MISSING_ACTION`...), by what the
    /// parser found and where.
    pub fn issue_code(&self) -> &'static str {
        let m = self.message.as_str();
        let last = self
            .path
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .split('[')
            .next()
            .unwrap_or_default();
        let element = |action, principal, resource, condition, other| match last {
            "Action" | "NotAction" => action,
            "Principal" | "NotPrincipal" => principal,
            "Resource" | "NotResource" => resource,
            "Condition" => condition,
            _ => other,
        };
        if m.starts_with("invalid JSON") {
            "JSON_SYNTAX_ERROR"
        } else if m.starts_with("policy size") && m.ends_with("a resource policy") {
            "POLICY_SIZE_EXCEEDS_RESOURCE_POLICY_QUOTA"
        } else if m.starts_with("policy size") {
            "POLICY_SIZE_EXCEEDS_IDENTITY_POLICY_QUOTA"
        } else if m.starts_with("invalid policy element") || m.starts_with("unknown principal type")
        {
            "INVALID_POLICY_ELEMENT"
        } else if m.starts_with("unsupported element combination") {
            "UNSUPPORTED_ELEMENT_COMBINATION"
        } else if m.starts_with("an identity policy cannot have a Principal") {
            "UNSUPPORTED_PRINCIPAL"
        } else if m == "empty list" {
            element(
                "EMPTY_ARRAY_ACTION",
                "EMPTY_ARRAY_PRINCIPAL",
                "EMPTY_ARRAY_RESOURCE",
                "EMPTY_ARRAY_CONDITION",
                "EMPTY_ARRAY",
            )
        } else if m.starts_with("missing statement") {
            "EMPTY_ARRAY_STATEMENT"
        } else if m.starts_with("missing Effect") {
            "MISSING_EFFECT"
        } else if m.starts_with("missing Action") {
            "MISSING_ACTION"
        } else if m.starts_with("missing Principal") {
            "MISSING_PRINCIPAL"
        } else if m.starts_with("missing Resource") {
            "MISSING_RESOURCE"
        } else if m.starts_with("missing Statement") {
            "MISSING_STATEMENT"
        } else if m.starts_with("invalid Effect") {
            "INVALID_EFFECT"
        } else if m.starts_with("invalid Version") {
            "INVALID_VERSION"
        } else if m.starts_with("policy variables require") {
            "MISSING_VERSION"
        } else if m.starts_with("invalid action") {
            "INVALID_ACTION"
        } else if m.starts_with("invalid ARN") {
            "INVALID_ARN_RESOURCE"
        } else if m.starts_with("expected an account id") {
            "INVALID_PRINCIPAL_FORMAT"
        } else if m.starts_with("a Sid ") || m.starts_with("duplicate Sid") {
            "INVALID_SID"
        } else if m.starts_with("invalid condition key format") {
            "INVALID_CONDITION_KEY_FORMAT"
        } else if m.starts_with("duplicate condition keys") {
            "DUPLICATE_CONDITION_KEYS_WITH_DIFFERENT_CASE"
        } else if m.starts_with("invalid condition: multiple boolean") {
            "INVALID_CONDITION_MULTIPLE_BOOLEAN"
        } else if m.starts_with("policy variable") {
            "INVALID_VARIABLE_FOR_OPERATOR"
        } else if m.starts_with("expected")
            || m.starts_with("invalid data type")
            || m.contains("must be an object")
        {
            "DATA_TYPE_MISMATCH"
        } else if last == "Condition" || self.path.contains(".Condition.") {
            "INVALID_CONDITION_OPERATOR"
        } else {
            "INVALID_POLICY_ELEMENT"
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Identity and trust policies of more characters than this (whitespace
/// excluded) are rejected, as IAM limits managed policies to 6,144.
pub const MAX_POLICY_CHARS: usize = 6144;

/// Resource policies of more characters than this are rejected: the
/// largest any service here allows (a KMS key policy); each service
/// applies its own smaller limit too (Secrets Manager's 20,480).
pub const MAX_RESOURCE_POLICY_CHARS: usize = 32_768;

/// Every problem found, or a policy.
pub type ParseResult = Result<Policy, Vec<Finding>>;

struct Ctx {
    findings: Vec<Finding>,
}

impl Ctx {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.findings.push(Finding {
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

/// A string or an array of strings; JSON numbers and booleans count as
/// strings in condition values (`"aws:SecureTransport": false`).
fn string_list(ctx: &mut Ctx, v: &Value, path: &str, scalars: bool) -> Option<Vec<String>> {
    let one = |ctx: &mut Ctx, v: &Value, path: &str| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) if scalars => Some(b.to_string()),
            Value::Number(n) if scalars => Some(n.to_string()),
            _ => {
                ctx.err(path, "invalid data type: expected a string");
                None
            }
        }
    };
    match v {
        Value::Array(items) => {
            if items.is_empty() {
                ctx.err(path, "empty list");
                return None;
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(one(ctx, item, &format!("{path}[{i}]"))?);
            }
            Some(out)
        }
        _ => one(ctx, v, path).map(|s| vec![s]),
    }
}

fn valid_action(a: &str) -> bool {
    if a == "*" {
        return true;
    }
    match a.split_once(':') {
        Some((service, name)) => {
            !service.is_empty()
                && !name.is_empty()
                && service
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'?' | b'-' | b'_'))
        }
        None => false,
    }
}

/// A user's (`AIDA…`) or role's (`AROA…`) unique id, as IAM puts in a
/// policy's `Principal.AWS` in place of the ARN of a deleted user or role.
pub fn is_unique_id(s: &str) -> bool {
    (s.starts_with("AIDA") || s.starts_with("AROA"))
        && (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn parse_principal(ctx: &mut Ctx, v: &Value, path: &str) -> Option<Principal> {
    match v {
        Value::String(s) if s == "*" => Some(Principal::Any),
        Value::Object(map) => {
            let mut out = Vec::new();
            for (kind, values) in map {
                let p = format!("{path}.{kind}");
                if !matches!(
                    kind.as_str(),
                    "AWS" | "Service" | "Federated" | "CanonicalUser"
                ) {
                    ctx.err(
                        &p,
                        "unknown principal type (AWS, Service, Federated, CanonicalUser)",
                    );
                    continue;
                }
                let list = string_list(ctx, values, &p, false)?;
                if kind == "AWS" {
                    for (i, a) in list.iter().enumerate() {
                        let ok = a == "*"
                            || (a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
                            || crate::condition::split_arn(a).is_some()
                            || is_unique_id(a);
                        if !ok {
                            ctx.err(
                                &format!("{p}[{i}]"),
                                "expected an account id, an ARN, a user's or role's unique id or *",
                            );
                        }
                    }
                }
                out.push((kind.clone(), list));
            }
            Some(Principal::Typed(out))
        }
        _ => {
            ctx.err(
                path,
                "expected \"*\" or an object such as {\"AWS\": \"...\"}",
            );
            None
        }
    }
}

fn pair<'v>(
    ctx: &mut Ctx,
    stmt: &'v Map<String, Value>,
    path: &str,
    positive: &str,
    negative: &str,
) -> Option<(&'v Value, bool)> {
    match (stmt.get(positive), stmt.get(negative)) {
        (Some(v), Some(_)) => {
            ctx.err(
                &format!("{path}.{negative}"),
                format!("unsupported element combination: a statement cannot have both {positive} and {negative}"),
            );
            // Reported once; carry on with the positive element.
            Some((v, false))
        }
        (Some(v), None) => Some((v, false)),
        (None, Some(v)) => Some((v, true)),
        (None, None) => None,
    }
}

fn parse_statement(
    ctx: &mut Ctx,
    v: &Value,
    path: &str,
    kind: PolicyKind,
    version: Version,
) -> Option<Statement> {
    let Value::Object(stmt) = v else {
        ctx.err(path, "a statement must be an object");
        return None;
    };
    let before = ctx.findings.len();
    for key in stmt.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            ctx.err(
                &format!("{path}.{key}"),
                "invalid policy element: unknown statement element",
            );
        }
    }
    // IAM holds its own policies' Sids to letters and digits; resource
    // policies (KMS's default key policy: "Enable IAM User Permissions")
    // may hold any printable text.
    let sid_ok = |s: &str| match kind {
        PolicyKind::Resource => !s.chars().any(char::is_control),
        PolicyKind::Identity | PolicyKind::Trust => s.bytes().all(|b| b.is_ascii_alphanumeric()),
    };
    let sid = match stmt.get("Sid") {
        None => None,
        Some(Value::String(s)) if sid_ok(s) => Some(s.clone()),
        Some(Value::String(_)) if kind == PolicyKind::Resource => {
            ctx.err(
                &format!("{path}.Sid"),
                "a Sid may not contain control characters",
            );
            None
        }
        Some(Value::String(_)) => {
            ctx.err(
                &format!("{path}.Sid"),
                "a Sid may contain only letters and digits",
            );
            None
        }
        Some(_) => {
            ctx.err(&format!("{path}.Sid"), "expected a string");
            None
        }
    };
    let effect = match stmt.get("Effect") {
        Some(Value::String(s)) if s == "Allow" => Some(Effect::Allow),
        Some(Value::String(s)) if s == "Deny" => Some(Effect::Deny),
        Some(_) => {
            ctx.err(
                &format!("{path}.Effect"),
                "invalid Effect: must be \"Allow\" or \"Deny\"",
            );
            None
        }
        None => {
            ctx.err(&format!("{path}.Effect"), "missing Effect");
            None
        }
    };
    let principal = match pair(ctx, stmt, path, "Principal", "NotPrincipal") {
        Some((v, negated)) => {
            let name = if negated { "NotPrincipal" } else { "Principal" };
            if kind == PolicyKind::Identity {
                ctx.err(
                    &format!("{path}.{name}"),
                    "an identity policy cannot have a Principal",
                );
            }
            parse_principal(ctx, v, &format!("{path}.{name}")).map(|p| (p, negated))
        }
        None => {
            if kind != PolicyKind::Identity {
                ctx.err(
                    &format!("{path}.Principal"),
                    "missing Principal: resource and trust policies must name one",
                );
            }
            None
        }
    };
    let actions = match pair(ctx, stmt, path, "Action", "NotAction") {
        Some((v, negated)) => {
            let name = if negated { "NotAction" } else { "Action" };
            let list = string_list(ctx, v, &format!("{path}.{name}"), false);
            if let Some(list) = &list {
                for (i, a) in list.iter().enumerate() {
                    if !valid_action(a) {
                        let p = if list.len() > 1 || v.is_array() {
                            format!("{path}.{name}[{i}]")
                        } else {
                            format!("{path}.{name}")
                        };
                        ctx.err(
                            &p,
                            "invalid action: must look like service:ActionName (wildcards allowed) or *",
                        );
                    }
                }
            }
            list.map(|l| (l, negated))
        }
        None => {
            ctx.err(&format!("{path}.Action"), "missing Action (or NotAction)");
            None
        }
    };
    let resources = match pair(ctx, stmt, path, "Resource", "NotResource") {
        Some((v, negated)) => {
            let name = if negated { "NotResource" } else { "Resource" };
            let list = string_list(ctx, v, &format!("{path}.{name}"), false);
            if let Some(list) = &list {
                for (i, r) in list.iter().enumerate() {
                    let p = if v.is_array() {
                        format!("{path}.{name}[{i}]")
                    } else {
                        format!("{path}.{name}")
                    };
                    let arn_shaped =
                        r.starts_with("arn:") && (r.matches(':').count() >= 5 || r.contains('*'));
                    if r != "*" && !arn_shaped {
                        ctx.err(
                            &p,
                            "invalid ARN: a resource must be arn:partition:service:region:account:resource or *",
                        );
                    }
                    check_variables(ctx, r, &p, version);
                }
            }
            list.map(|l| (l, negated))
        }
        None => {
            if kind == PolicyKind::Identity {
                ctx.err(
                    &format!("{path}.Resource"),
                    "missing Resource (or NotResource)",
                );
            }
            None
        }
    };
    let mut conditions = Vec::new();
    match stmt.get("Condition") {
        None => {}
        Some(Value::Object(ops)) => {
            for (op_name, block) in ops {
                let op_path = format!("{path}.Condition.{op_name}");
                let Some(op) = Operator::parse(op_name) else {
                    let message = if op_name.contains("Null") {
                        "unknown condition operator: Null takes no IfExists, ForAllValues or ForAnyValue"
                    } else {
                        "unknown condition operator"
                    };
                    ctx.err(&op_path, message);
                    continue;
                };
                let Value::Object(keys) = block else {
                    ctx.err(&op_path, "expected an object of condition keys");
                    continue;
                };
                if keys.is_empty() {
                    ctx.err(&op_path, "no condition keys");
                }
                let mut seen: Vec<String> = Vec::new();
                for (key, values) in keys {
                    let key_path = format!("{op_path}.{key}");
                    let (prefix, name) = key.split_once(':').unwrap_or(("", ""));
                    if prefix.is_empty() || name.is_empty() || key.chars().any(char::is_whitespace)
                    {
                        ctx.err(
                            &key_path,
                            "invalid condition key format: expected prefix:name, e.g. aws:SourceIp",
                        );
                        continue;
                    }
                    let lower = key.to_ascii_lowercase();
                    if seen.contains(&lower) {
                        ctx.err(
                            &key_path,
                            "duplicate condition keys that differ only in case",
                        );
                        continue;
                    }
                    seen.push(lower);
                    if op.base == crate::condition::BaseOp::Bool
                        && values.as_array().is_some_and(|a| a.len() > 1)
                    {
                        ctx.err(&key_path, "invalid condition: multiple boolean values");
                        continue;
                    }
                    let Some(list) = string_list(ctx, values, &key_path, true) else {
                        continue;
                    };
                    let mut variable_misuse = false;
                    for (i, value) in list.iter().enumerate() {
                        let p = if values.is_array() {
                            format!("{key_path}[{i}]")
                        } else {
                            key_path.clone()
                        };
                        check_variables(ctx, value, &p, version);
                        if value.contains("${") && !op.base.takes_variables() {
                            ctx.err(
                                &p,
                                format!(
                                    "policy variables are not supported with {}",
                                    op.base.name()
                                ),
                            );
                            variable_misuse = true;
                        }
                    }
                    if variable_misuse {
                        continue;
                    }
                    if let Err((i, e)) =
                        compile_values(op.base, &list, version == Version::V2012_10_17)
                    {
                        let p = if values.is_array() {
                            format!("{key_path}[{i}]")
                        } else {
                            key_path.clone()
                        };
                        ctx.err(&p, format!("{} for {}", e, op.base.name()));
                        continue;
                    }
                    conditions.push((op_name.clone(), key.clone(), list));
                }
            }
        }
        Some(_) => ctx.err(
            &format!("{path}.Condition"),
            "expected an object of operators",
        ),
    }
    if ctx.findings.len() > before {
        return None;
    }
    Some(Statement {
        sid,
        effect: effect?,
        principal,
        actions: actions?,
        resources,
        conditions,
    })
}

/// Policy variables need `"Version": "2012-10-17"`; under 2008-10-17 they
/// would silently be literal text, which is never what the author meant.
fn check_variables(ctx: &mut Ctx, value: &str, path: &str, version: Version) {
    if version == Version::V2008_10_17 && value.contains("${") {
        ctx.err(path, "policy variables require \"Version\": \"2012-10-17\"");
    } else if version == Version::V2012_10_17
        && let Err(e) = Pattern::compile(value, true, true)
    {
        ctx.err(path, format!("policy variable: {e}"));
    }
}

/// Parses and validates a policy document.
pub fn parse(text: &str, kind: PolicyKind) -> ParseResult {
    let mut ctx = Ctx {
        findings: Vec::new(),
    };
    let size = text.chars().filter(|c| !c.is_whitespace()).count();
    let (limit, which) = match kind {
        PolicyKind::Identity | PolicyKind::Trust => (MAX_POLICY_CHARS, "an identity"),
        PolicyKind::Resource => (MAX_RESOURCE_POLICY_CHARS, "a resource"),
    };
    if size > limit {
        // Reported with whatever else is wrong (the text is bounded by
        // the request's size).
        ctx.err(
            "$",
            format!(
                "policy size {size} exceeds the limit of {limit} characters for {which} policy"
            ),
        );
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            ctx.err(
                "$",
                format!(
                    "invalid JSON at line {} column {}: {}",
                    e.line(),
                    e.column(),
                    e
                ),
            );
            return Err(ctx.findings);
        }
    };
    match parse_value(&value, kind) {
        Ok(policy) if ctx.findings.is_empty() => Ok(policy),
        Ok(_) => Err(ctx.findings),
        Err(more) => {
            ctx.findings.extend(more);
            Err(ctx.findings)
        }
    }
}

/// Parses and validates an already-decoded JSON document.
pub fn parse_value(value: &Value, kind: PolicyKind) -> ParseResult {
    let mut ctx = Ctx {
        findings: Vec::new(),
    };
    let Value::Object(doc) = value else {
        ctx.err("$", "a policy must be a JSON object");
        return Err(ctx.findings);
    };
    for key in doc.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            ctx.err(
                &format!("$.{key}"),
                "invalid policy element: unknown top-level element",
            );
        }
    }
    let version = match doc.get("Version") {
        Some(Value::String(s)) if s == "2012-10-17" => Version::V2012_10_17,
        Some(Value::String(s)) if s == "2008-10-17" => Version::V2008_10_17,
        Some(_) => {
            ctx.err(
                "$.Version",
                "invalid Version: must be \"2012-10-17\" (or the legacy \"2008-10-17\")",
            );
            Version::V2012_10_17
        }
        None => Version::V2008_10_17,
    };
    let id = match doc.get("Id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            ctx.err("$.Id", "expected a string");
            None
        }
    };
    let items: Vec<(&Value, String)> = match doc.get("Statement") {
        None => {
            ctx.err("$.Statement", "missing Statement");
            Vec::new()
        }
        Some(Value::Array(items)) if items.is_empty() => {
            ctx.err(
                "$.Statement",
                "missing statement: the Statement list is empty",
            );
            Vec::new()
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (v, format!("$.Statement[{i}]")))
            .collect(),
        Some(v @ Value::Object(_)) => vec![(v, "$.Statement".to_owned())],
        Some(_) => {
            ctx.err(
                "$.Statement",
                "expected a statement object or an array of them",
            );
            Vec::new()
        }
    };
    let mut statements = Vec::with_capacity(items.len());
    let mut sids: Vec<(&str, String)> = Vec::new();
    for (v, path) in &items {
        if let Some(Value::String(sid)) = v.get("Sid") {
            if sids.iter().any(|(s, _)| s == sid) {
                ctx.err(&format!("{path}.Sid"), format!("duplicate Sid {sid:?}"));
            }
            sids.push((sid, path.clone()));
        }
        if let Some(s) = parse_statement(&mut ctx, v, path, kind, version) {
            statements.push(s);
        }
    }
    if !ctx.findings.is_empty() {
        return Err(ctx.findings);
    }
    Ok(Policy {
        version,
        id,
        statements,
    })
}

impl Policy {
    /// The canonical JSON form: every list an array, elements in IAM's
    /// usual order. Parsing it gives back an equal policy.
    pub fn to_canonical_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("Version".into(), self.version.as_str().into());
        if let Some(id) = &self.id {
            doc.insert("Id".into(), id.clone().into());
        }
        let statements = self.statements.iter().map(Statement::to_json).collect();
        doc.insert("Statement".into(), Value::Array(statements));
        Value::Object(doc)
    }
}
