//! IAM's policy simulator on Latchkey's policy engine:
//! `SimulatePrincipalPolicy`, `SimulateCustomPolicy` and
//! `GetContextKeysForPrincipalPolicy`/`GetContextKeysForCustomPolicy`, with
//! botocore's shapes.
//!
//! As AWS's simulator, the request context holds only the `ContextEntries`
//! the caller gives: nothing is invented (no `aws:SourceIp`, no
//! `aws:username`), and keys a condition needed but did not get are listed
//! in `MissingContextValues`. `CallerArn` (for `Principal` matching in a
//! `ResourcePolicy`) defaults to the simulated user's ARN.

use std::sync::Arc;

use latchkey_policy::{
    CompiledPolicy, Explanation, Policy, PolicyKind, PolicySet, Request, StatementRef, catalog,
};
use latchkey_store::PrincipalKind;

use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;
use latchkey_identity::{ActionContext, AppState, Caller};

/// Runs `action` if it is one of the simulator's; `None` otherwise.
pub fn dispatch(
    state: &AppState,
    caller: &Caller,
    action: &str,
    params: &Params,
    now: i64,
) -> Option<Result<Option<Xml>, ApiError>> {
    let result = match action {
        "SimulateCustomPolicy" => simulate(state, caller, params, now, false),
        "SimulatePrincipalPolicy" => simulate(state, caller, params, now, true),
        "GetContextKeysForCustomPolicy" => context_keys(state, caller, params, now, false),
        "GetContextKeysForPrincipalPolicy" => context_keys(state, caller, params, now, true),
        _ => return None,
    };
    Some(result.map(Some))
}

/// `SourcePolicyType`: where a matched statement's policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SourceType {
    User,
    Group,
    Role,
    UserManaged,
    Resource,
}

impl SourceType {
    fn as_str(self) -> &'static str {
        match self {
            SourceType::User => "user",
            SourceType::Group => "group",
            SourceType::Role => "role",
            SourceType::UserManaged => "user-managed",
            SourceType::Resource => "resource",
        }
    }
}

/// `ContextKeyType`: how the simulator reads a context entry's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContextType {
    String,
    Numeric,
    Boolean,
    Ip,
    Binary,
    Date,
}

impl ContextType {
    /// The type and whether it is the list form.
    fn parse(s: &str) -> Option<(Self, bool)> {
        let (base, list) = match s.strip_suffix("List") {
            Some(b) => (b, true),
            None => (s, false),
        };
        let t = match base {
            "string" => ContextType::String,
            "numeric" => ContextType::Numeric,
            "boolean" => ContextType::Boolean,
            "ip" => ContextType::Ip,
            "binary" => ContextType::Binary,
            "date" => ContextType::Date,
            _ => return None,
        };
        Some((t, list))
    }

    fn valid(self, value: &str) -> bool {
        match self {
            ContextType::String | ContextType::Binary => true,
            ContextType::Numeric => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
            ContextType::Boolean => {
                value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
            }
            ContextType::Ip => {
                let addr = value.split_once('/').map_or(value, |(a, _)| a);
                addr.trim().parse::<std::net::IpAddr>().is_ok()
            }
            ContextType::Date => latchkey_policy::condition::parse_date(value).is_some(),
        }
    }
}

fn invalid_input(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidInput", message)
}

/// A line and column as the simulator reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    line: usize,
    column: usize,
}

/// One policy in a simulation: where it came from, and where its
/// statements are in its text.
struct Source {
    id: String,
    kind: Option<SourceType>,
    policy: Policy,
    spans: Vec<(Position, Position)>,
    /// Each statement's context keys: its conditions' and its variables'.
    keys: Vec<Vec<String>>,
}

impl Source {
    fn new(id: String, kind: Option<SourceType>, text: &str, policy: Policy) -> Self {
        let keys = policy
            .statements
            .iter()
            .map(|s| {
                catalog::keys_used(&Policy {
                    version: policy.version,
                    id: None,
                    statements: vec![s.clone()],
                })
            })
            .collect();
        Self {
            id,
            kind,
            policy,
            spans: statement_spans(text),
            keys,
        }
    }

    /// The span of the statement an explanation names (`Sid` or
    /// `Statement[i]`).
    fn span(&self, statement: &str) -> Option<(Position, Position)> {
        let index = statement
            .strip_prefix("Statement[")
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok())
            .or_else(|| {
                self.policy
                    .statements
                    .iter()
                    .position(|s| s.sid.as_deref() == Some(statement))
            })?;
        self.spans.get(index).copied()
    }
}

/// The policies of one simulation, compiled, with their sources; a
/// compiled policy's name is its index here.
#[derive(Default)]
struct Simulation {
    sources: Vec<Source>,
    set: PolicySet,
}

impl Simulation {
    fn add(
        &mut self,
        id: String,
        kind: Option<SourceType>,
        text: &str,
        policy: Policy,
    ) -> CompiledPolicy {
        let compiled = CompiledPolicy::compile(&self.sources.len().to_string(), &policy);
        self.sources.push(Source::new(id, kind, text, policy));
        compiled
    }

    /// The context keys that statements for `action` use and the request
    /// lacks (conditions and policy variables), with those the explanation
    /// found.
    fn missing(
        &self,
        action: &str,
        context: &[(String, Vec<String>)],
        found: &[String],
    ) -> Vec<String> {
        let mut out: Vec<String> = found.to_vec();
        for source in &self.sources {
            for (s, keys) in source.policy.statements.iter().zip(&source.keys) {
                let (patterns, not_action) = &s.actions;
                let hit = patterns.iter().any(|p| catalog::action_matches(p, action));
                if hit == *not_action {
                    continue;
                }
                for k in keys {
                    let given = context
                        .iter()
                        .any(|(c, v)| c.eq_ignore_ascii_case(k) && !v.is_empty());
                    if !given && !out.iter().any(|o| o.eq_ignore_ascii_case(k)) {
                        out.push(k.clone());
                    }
                }
            }
        }
        out
    }

    fn source(&self, s: &StatementRef) -> Option<&Source> {
        s.policy
            .parse::<usize>()
            .ok()
            .and_then(|i| self.sources.get(i))
    }
}

/// Parses a policy the caller gave; `MalformedPolicyDocument` otherwise.
fn parse_input(what: &str, text: &str, kind: PolicyKind) -> Result<Policy, ApiError> {
    latchkey_policy::parse(text, kind).map_err(|findings| {
        let first = findings
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        ApiError::new(
            400,
            "MalformedPolicyDocument",
            format!("The policy document {what} is not valid: {first}"),
        )
        .because(
            findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// A stored policy that no longer parses is a server fault (fail closed).
fn parse_stored(label: &str, text: &str) -> Result<Policy, ApiError> {
    latchkey_policy::parse(text, PolicyKind::Identity).map_err(|f| {
        let reasons: Vec<String> = f.iter().map(ToString::to_string).collect();
        ApiError::internal().because(format!(
            "stored policy {label} is invalid: {}",
            reasons.join("; ")
        ))
    })
}

/// The user, group or role a `PolicySourceArn` names, as stored.
struct Principal {
    kind: PrincipalKind,
    name: String,
    arn: String,
}

/// Resolves `PolicySourceArn` after authorising `action` on it: on the
/// stored entity's ARN (path included) with its tags, or on the ARN as
/// given when there is no such entity (which then answers `NoSuchEntity`,
/// so an unauthorised caller learns nothing about what exists).
fn principal(
    state: &AppState,
    caller: &Caller,
    action: &str,
    arn: &str,
    now: i64,
) -> Result<Principal, ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let (kind, name) = match parts.as_slice() {
        ["arn", _, "iam", "", _, resource] => {
            let name = resource.rsplit('/').next().unwrap_or_default();
            let kind = match resource.split('/').next() {
                Some("user") => Some(PrincipalKind::User),
                Some("group") => Some(PrincipalKind::Group),
                Some("role") => Some(PrincipalKind::Role),
                _ => None,
            };
            match kind {
                Some(k) if !name.is_empty() => (k, name),
                _ => {
                    return Err(invalid_input(format!(
                        "PolicySourceArn {arn} is not the ARN of a user, group or role"
                    )));
                }
            }
        }
        _ => {
            return Err(invalid_input(format!(
                "PolicySourceArn {arn} is not a valid IAM ARN"
            )));
        }
    };
    let found = match kind {
        PrincipalKind::User => state
            .store
            .get_user(name)
            .ok()
            .map(|u| (u.arn, ActionContext::new().resource_tags(&u.tags))),
        PrincipalKind::Role => state
            .store
            .get_role(name)
            .ok()
            .map(|r| (r.arn, ActionContext::new().resource_tags(&r.tags))),
        PrincipalKind::Group => state
            .store
            .get_group(name)
            .ok()
            .map(|g| (g.arn, ActionContext::new())),
    }
    .filter(|(stored, _)| stored == arn);
    match found {
        Some((stored, context)) => {
            state.authorize_in(caller, action, &stored, now, &context)?;
            Ok(Principal {
                kind,
                name: name.to_owned(),
                arn: stored,
            })
        }
        None => {
            state.authorize_in(caller, action, arn, now, &ActionContext::new())?;
            Err(ApiError::new(
                404,
                "NoSuchEntity",
                format!("The entity {arn} does not exist."),
            ))
        }
    }
}

/// A principal's stored identity policies (a user's include its groups'):
/// (SourcePolicyId, SourcePolicyType, document).
fn stored_policies(
    state: &AppState,
    p: &Principal,
) -> Result<Vec<(String, SourceType, String)>, ApiError> {
    let mut out = Vec::new();
    for (label, doc) in state.store.identity_policies(p.kind, &p.name)? {
        // Managed policies are labelled by ARN, inline ones `kind/owner/name`.
        let (id, kind) = if label.starts_with("arn:") {
            (
                label.rsplit('/').next().unwrap_or(&label).to_owned(),
                SourceType::UserManaged,
            )
        } else {
            let kind = match label.split('/').next() {
                Some("group") => SourceType::Group,
                Some("role") => SourceType::Role,
                _ => SourceType::User,
            };
            (label.rsplit('/').next().unwrap_or(&label).to_owned(), kind)
        };
        out.push((id, kind, doc));
    }
    Ok(out)
}

/// `ContextEntries.member.N`: (key, values), typed and checked.
fn context_entries(params: &Params) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let mut out = Vec::new();
    for i in 1.. {
        let prefix = format!("ContextEntries.member.{i}");
        let name = params.get(&format!("{prefix}.ContextKeyName"));
        let values = params.list(&format!("{prefix}.ContextKeyValues"));
        let kind = params.get(&format!("{prefix}.ContextKeyType"));
        let Some(name) = name else {
            if values.is_empty() && kind.is_none() {
                break;
            }
            return Err(invalid_input(format!(
                "context entry {i} has no ContextKeyName"
            )));
        };
        if !(5..=256).contains(&name.len()) || !name.contains(':') {
            return Err(invalid_input(format!(
                "ContextKeyName {name} is not a valid context key name"
            )));
        }
        let Some(kind) = kind else {
            return Err(invalid_input(format!(
                "context entry {name} has no ContextKeyType"
            )));
        };
        let Some((t, list)) = ContextType::parse(kind) else {
            return Err(invalid_input(format!(
                "ContextKeyType {kind} is not one of string, stringList, numeric, numericList, boolean, booleanList, ip, ipList, binary, binaryList, date, dateList"
            )));
        };
        if !list && values.len() > 1 {
            return Err(invalid_input(format!(
                "context entry {name} of type {kind} takes one value; use {kind}List for several"
            )));
        }
        if let Some(bad) = values.iter().find(|v| !t.valid(v)) {
            return Err(invalid_input(format!(
                "context entry {name}: {bad:?} is not a valid {kind} value"
            )));
        }
        out.push((
            name.to_owned(),
            values.into_iter().map(str::to_owned).collect(),
        ));
    }
    Ok(out)
}

fn action_names(params: &Params) -> Result<Vec<&str>, ApiError> {
    let actions = params.list("ActionNames");
    if actions.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null",
        ));
    }
    for a in &actions {
        let ok = (3..=128).contains(&a.len())
            && a.split_once(':')
                .is_some_and(|(s, n)| !s.is_empty() && !n.is_empty());
        if !ok {
            return Err(invalid_input(format!(
                "Action name {a} is not valid: expected service:ActionName"
            )));
        }
    }
    Ok(actions)
}

/// The position of `Marker` in the results; markers are the next index.
fn marker(params: &Params, total: usize) -> Result<usize, ApiError> {
    match params.get("Marker") {
        None => Ok(0),
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|&i| i <= total)
            .ok_or_else(|| invalid_input("Marker is not valid for this request")),
    }
}

/// One simulated request's result.
struct Outcome<'a> {
    action: &'a str,
    resource: &'a str,
    explanation: Explanation,
    /// `Some` when a permissions boundary was simulated.
    boundary_allows: Option<bool>,
}

fn simulate(
    state: &AppState,
    caller: &Caller,
    params: &Params,
    now: i64,
    for_principal: bool,
) -> Result<Xml, ApiError> {
    let mut sim = Simulation::default();
    let mut default_caller = None;
    if for_principal {
        let arn = params.required("PolicySourceArn")?;
        let p = principal(state, caller, "iam:SimulatePrincipalPolicy", arn, now)?;
        for (id, kind, doc) in stored_policies(state, &p)? {
            let policy = parse_stored(&id, &doc)?;
            let compiled = sim.add(id, Some(kind), &doc, policy);
            sim.set.identity.push(Arc::new(compiled));
        }
        if p.kind == PrincipalKind::User {
            default_caller = Some(p.arn.clone());
        }
    } else {
        state.authorize_in(
            caller,
            "iam:SimulateCustomPolicy",
            "*",
            now,
            &ActionContext::new(),
        )?;
    }
    let inputs = params.list("PolicyInputList");
    if inputs.is_empty() && !for_principal {
        params.required("PolicyInputList.member.1")?;
    }
    for (i, text) in inputs.iter().enumerate() {
        let id = format!("PolicyInputList.{}", i + 1);
        let policy = parse_input(&id, text, PolicyKind::Identity)?;
        let compiled = sim.add(id, None, text, policy);
        sim.set.identity.push(Arc::new(compiled));
    }
    let boundaries = params.list("PermissionsBoundaryPolicyInputList");
    if boundaries.len() > 1 {
        return Err(invalid_input(
            "PermissionsBoundaryPolicyInputList takes one permissions boundary",
        ));
    }
    if let Some(text) = boundaries.first() {
        let id = "PermissionsBoundaryPolicyInputList.1".to_owned();
        let policy = parse_input(&id, text, PolicyKind::Identity)?;
        sim.set.permissions_boundary = Some(sim.add(id, None, text, policy));
    }
    let caller_arn = params
        .get("CallerArn")
        .map(str::to_owned)
        .or(default_caller);
    if let Some(text) = params.get("ResourcePolicy") {
        if caller_arn.is_none() {
            return Err(invalid_input(
                "CallerArn is required with a ResourcePolicy unless PolicySourceArn is a user",
            ));
        }
        let id = "ResourcePolicy".to_owned();
        let policy = parse_input(&id, text, PolicyKind::Resource)?;
        sim.set.resource = Some(std::sync::Arc::new(sim.add(
            id,
            Some(SourceType::Resource),
            text,
            policy,
        )));
    }
    let actions = action_names(params)?;
    let given_resources = params.list("ResourceArns");
    let resources: Vec<&str> = if given_resources.is_empty() {
        vec!["*"]
    } else {
        given_resources.clone()
    };
    let context = context_entries(params)?;
    let max = params.int("MaxItems", 1..=1000)?.unwrap_or(100);
    let max = usize::try_from(max).unwrap_or(100);
    let total = actions.len() * resources.len();
    let start = marker(params, total)?;
    let end = (start + max).min(total);

    let mut outcomes = Vec::with_capacity(end - start);
    for n in start..end {
        let (action, resource) = (actions[n / resources.len()], resources[n % resources.len()]);
        let mut req = Request::new(action, resource);
        if let Some(c) = &caller_arn {
            req = req.with_caller(c);
        }
        for (k, v) in &context {
            req.set_context(k, v.iter().map(String::as_str));
        }
        let boundary_allows = sim.set.permissions_boundary.as_ref().map(|b| {
            let o = b.evaluate(&req);
            o.allow && !o.deny
        });
        let mut explanation = sim.set.explain(&req);
        explanation.missing_context_keys =
            sim.missing(action, &context, &explanation.missing_context_keys);
        outcomes.push(Outcome {
            action,
            resource,
            explanation,
            boundary_allows,
        });
    }

    let mut x = Xml::new();
    let per_resource = !given_resources.is_empty();
    x.members("EvaluationResults", &outcomes, |x, o| {
        x.text("EvalActionName", o.action)
            .text("EvalResourceName", o.resource)
            .text("EvalDecision", o.explanation.decision.as_str());
        statements_xml(x, &sim, &o.explanation);
        missing_xml(x, &o.explanation);
        if let Some(allowed) = o.boundary_allows {
            boundary_xml(x, allowed);
        }
        if per_resource {
            x.node("ResourceSpecificResults", |x| {
                x.node("member", |x| {
                    x.text("EvalResourceName", o.resource)
                        .text("EvalResourceDecision", o.explanation.decision.as_str());
                    statements_xml(x, &sim, &o.explanation);
                    missing_xml(x, &o.explanation);
                    if let Some(allowed) = o.boundary_allows {
                        boundary_xml(x, allowed);
                    }
                });
            });
        }
    });
    x.text("IsTruncated", if end < total { "true" } else { "false" });
    if end < total {
        x.text("Marker", &end.to_string());
    }
    Ok(x)
}

fn statements_xml(x: &mut Xml, sim: &Simulation, e: &Explanation) {
    // The statements that decided: the denies for explicitDeny, the allows
    // (identity, resource, and the boundary's) for allowed.
    x.members("MatchedStatements", &e.matched, |x, s| {
        let Some(source) = sim.source(s) else {
            return;
        };
        x.text("SourcePolicyId", &source.id);
        if let Some(kind) = source.kind {
            x.text("SourcePolicyType", kind.as_str());
        }
        if let Some((start, end)) = source.span(&s.statement) {
            for (name, p) in [("StartPosition", start), ("EndPosition", end)] {
                x.node(name, |x| {
                    x.text("Line", &p.line.to_string())
                        .text("Column", &p.column.to_string());
                });
            }
        }
    });
}

fn missing_xml(x: &mut Xml, e: &Explanation) {
    string_list(x, "MissingContextValues", &e.missing_context_keys);
}

/// `<name><member>a</member>...</name>`.
fn string_list(x: &mut Xml, name: &str, items: &[String]) {
    x.node(name, |x| {
        for item in items {
            x.text("member", item);
        }
    });
}

fn boundary_xml(x: &mut Xml, allowed: bool) {
    x.node("PermissionsBoundaryDecisionDetail", |x| {
        x.text(
            "AllowedByPermissionsBoundary",
            if allowed { "true" } else { "false" },
        );
    });
}

fn context_keys(
    state: &AppState,
    caller: &Caller,
    params: &Params,
    now: i64,
    for_principal: bool,
) -> Result<Xml, ApiError> {
    let mut keys: Vec<String> = Vec::new();
    let mut add = |policy: &Policy| {
        for k in catalog::keys_used(policy) {
            if !keys.iter().any(|o| o.eq_ignore_ascii_case(&k)) {
                keys.push(k);
            }
        }
    };
    if for_principal {
        let arn = params.required("PolicySourceArn")?;
        let p = principal(
            state,
            caller,
            "iam:GetContextKeysForPrincipalPolicy",
            arn,
            now,
        )?;
        for (id, _, doc) in stored_policies(state, &p)? {
            add(&parse_stored(&id, &doc)?);
        }
    } else {
        state.authorize_in(
            caller,
            "iam:GetContextKeysForCustomPolicy",
            "*",
            now,
            &ActionContext::new(),
        )?;
        params.required("PolicyInputList.member.1")?;
    }
    for (i, text) in params.list("PolicyInputList").iter().enumerate() {
        add(&parse_input(
            &format!("PolicyInputList.{}", i + 1),
            text,
            PolicyKind::Identity,
        )?);
    }
    let mut x = Xml::new();
    string_list(&mut x, "ContextKeyNames", &keys);
    Ok(x)
}

/// Where each statement of a (valid) policy document starts and ends, as
/// AWS's simulator reports it: 1-based lines, and the column just past the
/// statement's opening and closing braces.
fn statement_spans(text: &str) -> Vec<(Position, Position)> {
    let mut scan = Scan {
        b: text.as_bytes(),
        i: 0,
    };
    let offsets = scan.statements().unwrap_or_default();
    offsets
        .into_iter()
        .map(|(s, e)| (position(text, s), position(text, e)))
        .collect()
}

fn position(text: &str, offset: usize) -> Position {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 2;
    Position { line, column }
}

/// Just enough of a JSON reader to find the statements' byte offsets in a
/// document that already parsed.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string's raw bytes (escapes not decoded).
    fn string(&mut self) -> Option<&[u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => break,
                _ => self.i += 1,
            }
        }
        let s = self.b.get(start..self.i)?;
        self.i += 1;
        Some(s)
    }

    /// Skips a value; returns its first and last byte offsets.
    fn value(&mut self) -> Option<(usize, usize)> {
        self.ws();
        let start = self.i;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek()? == close {
                    self.i += 1;
                    return Some((start, self.i - 1));
                }
                loop {
                    if open == b'{' {
                        self.string()?;
                        self.eat(b':')?;
                    }
                    self.value()?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        c if c == close => break,
                        _ => return None,
                    }
                }
                self.i += 1;
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
                {
                    self.i += 1;
                }
            }
        }
        Some((start, self.i.checked_sub(1)?))
    }

    /// The statements' (first, last) byte offsets.
    fn statements(&mut self) -> Option<Vec<(usize, usize)>> {
        self.eat(b'{')?;
        loop {
            let key = self.string()?;
            let is_statement = key == b"Statement";
            self.eat(b':')?;
            if is_statement {
                self.ws();
                if self.peek()? == b'[' {
                    self.i += 1;
                    let mut out = Vec::new();
                    loop {
                        out.push(self.value()?);
                        self.ws();
                        match self.peek()? {
                            b',' => self.i += 1,
                            _ => return Some(out),
                        }
                    }
                }
                return Some(vec![self.value()?]);
            }
            self.value()?;
            self.eat(b',')?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_as_aws_reports_them() {
        // The AWS CLI's documented example: Line 1, Columns 38 and 167.
        let text = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}"#;
        assert_eq!(
            statement_spans(text),
            [(
                Position {
                    line: 1,
                    column: 38
                },
                Position {
                    line: 1,
                    column: 167
                }
            )]
        );
        let text = "{\"Statement\": [\n  {\"Effect\":\"Allow\",\"Action\":\"a:b\",\"Resource\":\"x}\\\"]\"},\n  {\"Sid\":\"S2\",\"Effect\":\"Deny\",\"Action\":[\"a:c\"],\"Resource\":\"*\"}\n], \"Version\": \"2012-10-17\"}";
        let spans = statement_spans(text);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].0, Position { line: 2, column: 4 });
        assert_eq!(spans[1].0, Position { line: 3, column: 4 });
        assert_eq!(spans[1].1.line, 3);
        assert_eq!(statement_spans("not json"), []);
    }

    #[test]
    fn context_types() {
        assert_eq!(ContextType::parse("ipList"), Some((ContextType::Ip, true)));
        assert_eq!(ContextType::parse("strings"), None);
        assert!(ContextType::Ip.valid("10.0.0.1") && !ContextType::Ip.valid("10.0.0"));
        assert!(ContextType::Date.valid("2020-01-01T00:00:00Z"));
        assert!(ContextType::Boolean.valid("True") && !ContextType::Boolean.valid("yes"));
        assert!(ContextType::Numeric.valid("12") && !ContextType::Numeric.valid("x"));
    }
}
