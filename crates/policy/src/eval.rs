//! Compiled policies and evaluation, with AWS's combining rules.

use std::collections::HashMap;

use crate::condition::{self, Operator, Values, compile_values};
use crate::document::{Effect, Policy, Principal, Version, is_unique_id};
use crate::pattern::Pattern;

/// A request to decide: action, resource, caller and context keys.
#[derive(Clone, Debug, Default)]
pub struct Request {
    action: String,
    resource: String,
    caller_arn: Option<String>,
    /// The caller's unique id (`AIDA…` of a user, `AROA…` of a role for its
    /// sessions), for `Principal` entries that name one.
    caller_id: Option<String>,
    /// Lowercase key names with their values (several for multi-valued keys).
    context: Vec<(String, Vec<String>)>,
}

impl Request {
    pub fn new(action: &str, resource: &str) -> Self {
        Self {
            action: action.to_ascii_lowercase(),
            resource: resource.to_owned(),
            ..Self::default()
        }
    }

    /// The same request for another action (as `AssumeRole` also decides
    /// `sts:TagSession` and `sts:SetSourceIdentity`).
    pub fn with_action(mut self, action: &str) -> Self {
        self.action = action.to_ascii_lowercase();
        self
    }

    /// The same request on another resource.
    pub fn set_resource(&mut self, resource: &str) {
        resource.clone_into(&mut self.resource);
    }

    /// The principal making the request, for `Principal` matching.
    pub fn with_caller(mut self, arn: &str) -> Self {
        self.caller_arn = Some(arn.to_owned());
        self
    }

    /// The caller's unique id: a user's `AIDA…`, or for a role session the
    /// role's `AROA…` (without the session name). A `Principal.AWS` entry
    /// that is a unique id (as IAM leaves in a policy naming a deleted user
    /// or role) matches only a caller with that id.
    pub fn with_caller_id(mut self, id: &str) -> Self {
        self.caller_id = Some(id.to_owned());
        self
    }

    /// Sets a context key (names are case-insensitive). An empty list means
    /// the key is absent.
    pub fn with_context(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.set_context(key, values);
        self
    }

    pub fn set_context(&mut self, key: &str, values: impl IntoIterator<Item = impl Into<String>>) {
        let key = key.to_ascii_lowercase();
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        match self.context.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = values,
            None => self.context.push((key, values)),
        }
    }

    fn values(&self, key_lower: &str) -> &[String] {
        self.context
            .iter()
            .find(|(k, _)| k == key_lower)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// A policy variable's value: the key's single value.
    fn variable(&self, key_lower: &str) -> Option<&str> {
        match self.values(key_lower) {
            [one] => Some(one.as_str()),
            _ => None,
        }
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }
}

/// `allowed`, `explicitDeny` or `implicitDeny`, as `aws iam simulate-custom-policy` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::ExplicitDeny => "explicitDeny",
            Decision::ImplicitDeny => "implicitDeny",
        }
    }
}

enum ResourceMatch {
    Any,
    Patterns(Vec<ResourcePattern>, bool),
}

enum ResourcePattern {
    Star,
    /// Whole-ARN wildcard match: a `*` may span `:`.
    Glob(Pattern),
}

struct CompiledCondition {
    op: Operator,
    op_name: String,
    key: String,
    key_lower: String,
    values: Values,
}

struct CompiledStatement {
    label: String,
    effect: Effect,
    principal: Option<(Principal, bool)>,
    actions: Vec<Pattern>,
    not_action: bool,
    resources: ResourceMatch,
    conditions: Vec<CompiledCondition>,
}

/// Where a statement sits, for explanations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementRef {
    pub policy: String,
    /// The `Sid`, or `Statement[i]` when it has none.
    pub statement: String,
    pub effect: Effect,
}

/// A statement whose action and resource matched but whose condition failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearMiss {
    pub statement: StatementRef,
    /// `Operator key`, e.g. `IpAddress aws:SourceIp`.
    pub failed_condition: String,
}

/// Why a decision came out as it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    /// The statements that decided: denies for `explicitDeny`, allows for `allowed`.
    pub matched: Vec<StatementRef>,
    /// For `implicitDeny`: statements that nearly applied.
    pub near_misses: Vec<NearMiss>,
    /// Context keys that conditions asked for and the request lacked.
    pub missing_context_keys: Vec<String>,
}

/// FNV-1a: the index keys are short action names written by policy
/// authors, looked up once per policy per request; SipHash's DoS
/// protection buys nothing there and costs a third of a decision.
#[derive(Clone, Copy, Default)]
struct FnvBuild;

struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::hash::BuildHasher for FnvBuild {
    type Hasher = Fnv;

    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

/// What one policy says about a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// A Deny statement applies.
    pub deny: bool,
    /// An Allow statement applies (with no Principal, or one naming the caller).
    pub allow: bool,
    /// An Allow applies only because its Principal names the caller's
    /// account: that delegates to the account, so it grants only together
    /// with an identity-policy Allow.
    pub allow_via_account: bool,
}

/// How a `Principal` element matched the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrincipalMatch {
    /// By the caller's account id or `:root` ARN.
    Account,
    /// By `*`, the caller's ARN, or the role the caller's session belongs to.
    Direct,
}

/// A policy compiled for evaluation: patterns and condition values parsed
/// once, statements indexed by action.
pub struct CompiledPolicy {
    name: String,
    statements: Vec<CompiledStatement>,
    /// Lowercase literal action -> statements.
    by_action: HashMap<String, Vec<u32>, FnvBuild>,
    /// Lowercase service of `service:Pattern*` -> statements.
    by_service: HashMap<String, Vec<u32>, FnvBuild>,
    /// Statements that must always be checked (NotAction, `*`, other wildcards).
    always: Vec<u32>,
}

impl CompiledPolicy {
    /// Compiles a validated policy. `name` appears in explanations.
    pub fn compile(name: &str, policy: &Policy) -> Self {
        let variables = policy.version == Version::V2012_10_17;
        let mut statements = Vec::with_capacity(policy.statements.len());
        let mut by_action: HashMap<String, Vec<u32>, FnvBuild> = HashMap::default();
        let mut by_service: HashMap<String, Vec<u32>, FnvBuild> = HashMap::default();
        let mut always = Vec::new();
        for (i, s) in policy.statements.iter().enumerate() {
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            let (actions, not_action) = &s.actions;
            let patterns: Vec<Pattern> = actions
                .iter()
                .map(|a| Pattern::compile(&a.to_ascii_lowercase(), false, true).unwrap_or_default())
                .collect();
            if *not_action {
                always.push(id);
            } else {
                for (raw, p) in actions.iter().zip(&patterns) {
                    let lower = raw.to_ascii_lowercase();
                    // A wildcard only after a literal `service:` can match
                    // only that service's actions.
                    let service = lower
                        .split_once(':')
                        .map(|(s, _)| s)
                        .filter(|s| !s.contains(['*', '?']));
                    match (p.as_literal(), service) {
                        (Some(lit), _) => by_action.entry(lit.to_owned()).or_default().push(id),
                        (None, Some(service)) => {
                            by_service.entry(service.to_owned()).or_default().push(id)
                        }
                        (None, None) => always.push(id),
                    }
                }
            }
            let resources = match &s.resources {
                None => ResourceMatch::Any,
                Some((list, negated)) => ResourceMatch::Patterns(
                    list.iter()
                        .map(|r| match r.as_str() {
                            "*" => ResourcePattern::Star,
                            // Validated before compiling, so this cannot fail;
                            // if it did, matching nothing fails closed.
                            _ => ResourcePattern::Glob(
                                Pattern::compile(r, variables, true)
                                    .unwrap_or_else(|_| Pattern::literal("\u{0}invalid")),
                            ),
                        })
                        .collect(),
                    *negated,
                ),
            };
            let conditions = s
                .conditions
                .iter()
                .filter_map(|(op_name, key, values)| {
                    let op = Operator::parse(op_name)?;
                    Some(CompiledCondition {
                        op,
                        op_name: op_name.clone(),
                        key: key.clone(),
                        key_lower: key.to_ascii_lowercase(),
                        values: compile_values(op.base, values, variables).ok()?,
                    })
                })
                .collect();
            statements.push(CompiledStatement {
                label: s.sid.clone().unwrap_or_else(|| format!("Statement[{i}]")),
                effect: s.effect,
                principal: s.principal.clone(),
                actions: patterns,
                not_action: *not_action,
                resources,
                conditions,
            });
        }
        for ids in by_action.values_mut().chain(by_service.values_mut()) {
            ids.dedup();
        }
        always.sort_unstable();
        always.dedup();
        Self {
            name: name.to_owned(),
            statements,
            by_action,
            by_service,
            always,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a statement that could apply to `action` has a condition
    /// (when none has, [`PolicySet::decide`] says all there is to say and
    /// [`PolicySet::explain`] need not run).
    pub fn conditional_for(&self, action: &str) -> bool {
        let action = action.to_ascii_lowercase();
        self.candidates(&action)
            .any(|id| !self.statements[id as usize].conditions.is_empty())
    }

    /// Statement ids that could apply to this action (may repeat).
    fn candidates<'s>(&'s self, action: &str) -> impl Iterator<Item = u32> + 's {
        let service = action.split_once(':').map_or(action, |(s, _)| s);
        let exact = self.by_action.get(action).map(Vec::as_slice).unwrap_or(&[]);
        let by_service = self
            .by_service
            .get(service)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        exact.iter().chain(by_service).chain(&self.always).copied()
    }

    /// What this policy says about the request, without allocating.
    pub fn evaluate(&self, req: &Request) -> Outcome {
        let mut out = Outcome::default();
        for id in self.candidates(&req.action) {
            let s = &self.statements[id as usize];
            // Once allowed, only a Deny can change the answer.
            if s.effect == Effect::Allow && out.allow {
                continue;
            }
            if statement_applies(s, req) != Applies::Yes {
                continue;
            }
            match s.effect {
                Effect::Deny => {
                    out.deny = true;
                    return out;
                }
                Effect::Allow => match &s.principal {
                    Some((p, false))
                        if principal_match(p, req) == Some(PrincipalMatch::Account) =>
                    {
                        out.allow_via_account = true;
                    }
                    _ => out.allow = true,
                },
            }
        }
        out
    }

    fn explain_into(
        &self,
        req: &Request,
        out: &mut Explanation,
        deny: &mut Vec<StatementRef>,
        allow: &mut Vec<StatementRef>,
    ) {
        let mut ids: Vec<u32> = self.candidates(&req.action).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let s = &self.statements[id as usize];
            let r = StatementRef {
                policy: self.name.clone(),
                statement: s.label.clone(),
                effect: s.effect,
            };
            match statement_applies(s, req) {
                Applies::Yes => match s.effect {
                    Effect::Deny => deny.push(r),
                    Effect::Allow => allow.push(r),
                },
                Applies::ConditionFailed(c) => {
                    let cond = &s.conditions[c];
                    for cc in &s.conditions {
                        if req.values(&cc.key_lower).is_empty()
                            && !out
                                .missing_context_keys
                                .iter()
                                .any(|k| k.eq_ignore_ascii_case(&cc.key))
                        {
                            out.missing_context_keys.push(cc.key.clone());
                        }
                    }
                    out.near_misses.push(NearMiss {
                        statement: r,
                        failed_condition: format!("{} {}", cond.op_name, cond.key),
                    });
                }
                Applies::No => {}
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Applies {
    Yes,
    No,
    /// Action, resource and principal matched; this condition failed.
    ConditionFailed(usize),
}

fn statement_applies(s: &CompiledStatement, req: &Request) -> Applies {
    let resolve = |k: &str| req.variable(k);
    let none = |_: &str| -> Option<&str> { None };
    let action_hit = s
        .actions
        .iter()
        .any(|p| p.matches(&req.action, &none, false) == Some(true));
    if action_hit == s.not_action {
        return Applies::No;
    }
    if let ResourceMatch::Patterns(patterns, negated) = &s.resources {
        let mut hit = false;
        for p in patterns {
            match p {
                ResourcePattern::Star => hit = true,
                ResourcePattern::Glob(glob) => match glob.matches(&req.resource, &resolve, false) {
                    Some(true) => hit = true,
                    Some(false) => {}
                    // An unresolvable variable makes the statement not match.
                    None => return Applies::No,
                },
            }
            if hit {
                break;
            }
        }
        if hit == *negated {
            return Applies::No;
        }
    }
    if let Some((principal, negated)) = &s.principal
        && principal_matches(principal, req) == *negated
    {
        return Applies::No;
    }
    for (i, c) in s.conditions.iter().enumerate() {
        let values = req.values(&c.key_lower);
        match condition::evaluate(&c.op, &c.values, values, &resolve) {
            Some(true) => {}
            Some(false) => return Applies::ConditionFailed(i),
            None => return Applies::No,
        }
    }
    Applies::Yes
}

/// The account id of an IAM or STS ARN.
fn account_of(arn: &str) -> Option<&str> {
    condition::split_arn(arn).map(|p| p[4])
}

/// A role ARN as principal also matches that role's sessions:
/// `arn:aws:sts::A:assumed-role/NAME/SESSION` for `arn:aws:iam::A:role/[path/]NAME`.
fn session_of_role(caller: &str, principal: &str) -> bool {
    let (Some(c), Some(p)) = (
        condition::split_arn(caller),
        condition::split_arn(principal),
    ) else {
        return false;
    };
    let Some(session_role) = c[5]
        .strip_prefix("assumed-role/")
        .and_then(|r| r.split('/').next())
    else {
        return false;
    };
    c[2] == "sts"
        && p[2] == "iam"
        && c[1] == p[1]
        && c[4] == p[4]
        && p[5]
            .strip_prefix("role/")
            .and_then(|r| r.rsplit('/').next())
            == Some(session_role)
}

fn principal_match(p: &Principal, req: &Request) -> Option<PrincipalMatch> {
    let types = match p {
        Principal::Any => return Some(PrincipalMatch::Direct),
        Principal::Typed(types) => types,
    };
    let caller = req.caller_arn.as_deref()?;
    let mut best = None;
    for (kind, values) in types {
        for v in values {
            let m = match kind.as_str() {
                // A unique id names one user or role, never its namesake.
                "AWS" if is_unique_id(v) => {
                    (req.caller_id.as_deref() == Some(v.as_str())).then_some(PrincipalMatch::Direct)
                }
                "AWS" if v == "*" || v == caller || session_of_role(caller, v) => {
                    Some(PrincipalMatch::Direct)
                }
                "AWS" => account_of(caller)
                    .filter(|acct| {
                        v == acct
                            || v.strip_prefix("arn:aws:iam::")
                                .and_then(|r| r.strip_suffix(":root"))
                                == Some(*acct)
                    })
                    .map(|_| PrincipalMatch::Account),
                _ => (v == caller).then_some(PrincipalMatch::Direct),
            };
            match m {
                Some(PrincipalMatch::Direct) => return m,
                Some(PrincipalMatch::Account) => best = m,
                None => {}
            }
        }
    }
    best
}

fn principal_matches(p: &Principal, req: &Request) -> bool {
    principal_match(p, req).is_some()
}

/// Whether a resource policy grants to the caller's own ARN (not merely its
/// account): such grants are not limited by boundaries or session policies
/// within the account.
fn names_caller_directly(policy: &CompiledPolicy, req: &Request) -> bool {
    let Some(caller) = req.caller_arn.as_deref() else {
        return false;
    };
    policy.candidates(&req.action).any(|id| {
        let s = &policy.statements[id as usize];
        s.effect == Effect::Allow
            && matches!(&s.principal, Some((Principal::Typed(t), false)) if t.iter().any(|(k, v)| k == "AWS" && v.iter().any(|a| a == caller || (is_unique_id(a) && req.caller_id.as_deref() == Some(a.as_str())))))
            && statement_applies(s, req) == Applies::Yes
    })
}

/// The policies that apply to one principal's request, within one account.
#[derive(Default)]
pub struct PolicySet {
    /// Shared, so a server can cache a principal's compiled policies.
    pub identity: Vec<std::sync::Arc<CompiledPolicy>>,
    /// Shared, so a server can cache a resource's compiled policy.
    pub resource: Option<std::sync::Arc<CompiledPolicy>>,
    pub permissions_boundary: Option<CompiledPolicy>,
    /// Session policies: together they limit the session; any one of them
    /// may allow.
    pub session: Vec<CompiledPolicy>,
}

impl PolicySet {
    /// The decision, without allocating.
    /// Whether the permissions boundary and the session policies leave room
    /// for the request; `None` when one of them explicitly denies it. The
    /// session policies (one inline, several managed) count together: any
    /// of them may allow.
    fn limits(&self, req: &Request) -> Option<bool> {
        let mut boundary_allow = true;
        if let Some(p) = &self.permissions_boundary {
            let o = p.evaluate(req);
            if o.deny {
                return None;
            }
            boundary_allow = o.allow;
        }
        let mut session_allow = self.session.is_empty();
        for p in &self.session {
            let o = p.evaluate(req);
            if o.deny {
                return None;
            }
            session_allow |= o.allow;
        }
        Some(boundary_allow && session_allow)
    }

    /// Whether any identity policy allows; `None` when one denies.
    fn identity_allows(&self, req: &Request) -> Option<bool> {
        let mut allow = false;
        for p in &self.identity {
            let o = p.evaluate(req);
            if o.deny {
                return None;
            }
            allow |= o.allow;
        }
        Some(allow)
    }

    pub fn decide(&self, req: &Request) -> Decision {
        let Some(identity_allow) = self.identity_allows(req) else {
            return Decision::ExplicitDeny;
        };
        let mut resource_allow = false;
        if let Some(p) = &self.resource {
            let o = p.evaluate(req);
            if o.deny {
                return Decision::ExplicitDeny;
            }
            resource_allow = o.allow || (o.allow_via_account && identity_allow);
        }
        let limits_allow = match self.limits(req) {
            Some(allow) => allow,
            None => return Decision::ExplicitDeny,
        };
        if !identity_allow && !resource_allow {
            return Decision::ImplicitDeny;
        }
        if limits_allow {
            return Decision::Allowed;
        }
        // Outside the boundary or session policy, only a resource policy
        // naming the caller itself still grants.
        match &self.resource {
            Some(p) if resource_allow && names_caller_directly(p, req) => Decision::Allowed,
            _ => Decision::ImplicitDeny,
        }
    }

    /// The decision for `sts:AssumeRole`, with `resource` holding the role's
    /// trust policy. Unlike other resource policies the trust policy is a
    /// gate: it must allow the caller (by ARN, or by account together with
    /// an identity-policy Allow) whatever the identity policies say.
    pub fn decide_assume_role(&self, req: &Request) -> Decision {
        self.decide_gated(req)
    }

    /// The decision with `resource` as a gate that must allow the caller
    /// (by ARN, or by account together with an identity-policy Allow):
    /// role trust policies and KMS key policies.
    pub fn decide_gated(&self, req: &Request) -> Decision {
        let Some(trust) = &self.resource else {
            return Decision::ImplicitDeny;
        };
        let Some(identity_allow) = self.identity_allows(req) else {
            return Decision::ExplicitDeny;
        };
        let o = trust.evaluate(req);
        if o.deny {
            return Decision::ExplicitDeny;
        }
        let limits_allow = match self.limits(req) {
            Some(allow) => allow,
            None => return Decision::ExplicitDeny,
        };
        let granted = if o.allow {
            // Named directly: no identity Allow needed, and boundaries or
            // session policies do not limit a grant to the caller's own ARN.
            limits_allow || names_caller_directly(trust, req)
        } else {
            o.allow_via_account && identity_allow && limits_allow
        };
        if granted {
            Decision::Allowed
        } else {
            Decision::ImplicitDeny
        }
    }

    /// The decision with the statements behind it.
    pub fn explain(&self, req: &Request) -> Explanation {
        let decision = self.decide(req);
        let mut out = Explanation {
            decision,
            matched: Vec::new(),
            near_misses: Vec::new(),
            missing_context_keys: Vec::new(),
        };
        let (mut deny, mut allow) = (Vec::new(), Vec::new());
        let all = self
            .identity
            .iter()
            .map(|p| &**p)
            .chain(self.resource.as_deref())
            .chain(&self.permissions_boundary)
            .chain(&self.session);
        for p in all {
            p.explain_into(req, &mut out, &mut deny, &mut allow);
        }
        out.matched = match decision {
            Decision::ExplicitDeny => deny,
            Decision::Allowed => allow,
            Decision::ImplicitDeny => Vec::new(),
        };
        if decision != Decision::ImplicitDeny {
            out.near_misses.clear();
        }
        out
    }
}
