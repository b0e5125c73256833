//! STS: `GetCallerIdentity`, `GetSessionToken`, `AssumeRole`.

use latchkey_policy::{CompiledPolicy, Decision, PolicyKind, PolicySet};
use latchkey_session::{Ancestor, SessionClaims, TemporaryCredentials, totp};
use latchkey_store::random;

use crate::error::ApiError;
use crate::query::Params;
use crate::xml::{Xml, timestamp};
use latchkey_identity::{AppState, Caller, Identity};

/// Role chaining (a role session assuming a role) is capped at one hour.
const CHAINED_MAX_SECS: i64 = 3600;

/// How many identities a role chain may pass through (every one travels in
/// the session token, and is checked on every use).
const MAX_LINEAGE: usize = 32;

/// AWS's limits on session tags.
const MAX_SESSION_TAGS: usize = 50;

/// What a new role session is tagged with.
struct SessionTags {
    tags: Vec<(String, String)>,
    /// The keys of `tags` that pass on to sessions it assumes.
    transitive: Vec<String>,
}

/// The tags a new role session carries and which of them are transitive:
/// the caller's transitive tags (which cannot be overridden), then `Tags`;
/// `TransitiveTagKeys` must name keys of `Tags`.
fn session_tags(caller: &Caller, params: &Params) -> Result<SessionTags, ApiError> {
    let requested = params.tags("Tags");
    let invalid = |why: &str| {
        ApiError::new(
            400,
            "InvalidParameterValue",
            format!("Session tags are not valid: {why}"),
        )
    };
    for (i, (k, v)) in requested.iter().enumerate() {
        if !valid_tag_text(k, 1, 128) || !valid_tag_text(v, 0, 256) {
            return Err(invalid(
                "keys are 1-128 and values up to 256 characters of letters, digits, spaces and _.:/=+-@",
            ));
        }
        if k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(invalid("keys may not begin with aws:"));
        }
        if requested[..i]
            .iter()
            .any(|(o, _)| o.eq_ignore_ascii_case(k))
        {
            return Err(invalid(&format!("the key {k} is given twice")));
        }
    }
    let mut transitive: Vec<String> = Vec::new();
    let mut tags: Vec<(String, String)> = Vec::new();
    if let Some(c) = &caller.session {
        for key in &c.transitive_tag_keys {
            if let Some(tag) = c.tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
                if requested.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
                    return Err(invalid(&format!(
                        "the transitive tag {key} of the calling session cannot be overridden"
                    )));
                }
                tags.push(tag.clone());
                transitive.push(tag.0.clone());
            }
        }
    }
    for key in params.list("TransitiveTagKeys") {
        let Some((k, _)) = requested.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) else {
            return Err(invalid(&format!(
                "the transitive tag key {key} is not among the session tags"
            )));
        };
        if !transitive.iter().any(|t| t.eq_ignore_ascii_case(k)) {
            transitive.push(k.clone());
        }
    }
    tags.extend(requested);
    if tags.len() > MAX_SESSION_TAGS {
        return Err(invalid("at most 50 session tags"));
    }
    Ok(SessionTags { tags, transitive })
}

fn valid_tag_text(s: &str, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    (min..=max).contains(&n)
        && s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
}

fn valid_source_identity(s: &str) -> bool {
    valid_session_name(s) && !s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// The identities a session assumed by `caller` descends from: the
/// caller's own lineage, then the caller's user and role, each with the
/// time the caller's session was issued. Empty for a long-term key (its
/// user is the new session's principal).
fn lineage_after(caller: &Caller) -> Vec<Ancestor> {
    let Some(c) = &caller.session else {
        return Vec::new();
    };
    let mut lineage = c.lineage.clone();
    let is_entity = |arn: &str| {
        arn.split(':')
            .nth(5)
            .is_some_and(|r| r.starts_with("user/") || r.starts_with("role/"))
    };
    if is_entity(&c.principal_arn) {
        lineage.push(Ancestor {
            arn: c.principal_arn.clone(),
            id: c.principal_id.clone(),
            issued: c.issued,
        });
    }
    if !c.role_arn.is_empty() {
        lineage.push(Ancestor {
            arn: c.role_arn.clone(),
            id: c.role_id.clone(),
            issued: c.issued,
        });
    }
    lineage
}

pub fn get_caller_identity(caller: &Caller) -> Xml {
    let mut x = Xml::new();
    x.text("Arn", &caller.arn)
        .text("UserId", &caller.user_id)
        .text("Account", &caller.account);
    x
}

fn credentials_xml(x: &mut Xml, creds: &TemporaryCredentials, expires: i64) {
    x.node("Credentials", |x| {
        x.text("AccessKeyId", &creds.access_key_id)
            .text("SecretAccessKey", &creds.secret_access_key)
            .text("SessionToken", &creds.session_token)
            .text("Expiration", &timestamp(expires));
    });
}

fn seal(state: &AppState, claims: &SessionClaims) -> Result<TemporaryCredentials, ApiError> {
    let nonce = random::<12>().map_err(|e| ApiError::internal().because(e.to_string()))?;
    state
        .keyring
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .seal(claims, nonce)
        .map_err(|e| ApiError::internal().because(e.to_string()))
}

fn mfa_failed() -> ApiError {
    ApiError::new(
        403,
        "AccessDenied",
        "MultiFactorAuthentication failed with invalid MFA one time pass code.",
    )
}

/// Checks `SerialNumber` + `TokenCode` for an IAM user; returns whether MFA
/// was presented and passed. A wrong, stale or replayed code is refused.
fn check_mfa(state: &AppState, user: &str, params: &Params, now: i64) -> Result<bool, ApiError> {
    let (serial, code) = match (params.get("SerialNumber"), params.get("TokenCode")) {
        (None, None) => return Ok(false),
        (Some(s), Some(c)) => (s, c),
        _ => {
            return Err(ApiError::validation(
                "SerialNumber and TokenCode must be given together",
            ));
        }
    };
    if !(9..=256).contains(&serial.len()) {
        return Err(ApiError::validation(
            "SerialNumber must be 9 to 256 characters",
        ));
    }
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::validation("TokenCode must be exactly 6 digits"));
    }
    let (device, seed, last) = state
        .store
        .mfa_seed(serial)
        .map_err(|_| mfa_failed().because("unknown MFA device"))?;
    if device.user.as_deref() != Some(user) {
        return Err(mfa_failed().because("the MFA device is not assigned to the caller"));
    }
    let step =
        totp::verify(&seed, code, now, last).map_err(|e| mfa_failed().because(e.to_string()))?;
    // Atomic: of two concurrent uses of one code, one wins.
    if !state.store.use_mfa_step(serial, step)? {
        return Err(mfa_failed().because("the MFA code was already used"));
    }
    Ok(true)
}

fn new_token_id() -> Result<[u8; 16], ApiError> {
    random::<16>().map_err(|e| ApiError::internal().because(e.to_string()))
}

pub fn get_session_token(
    state: &AppState,
    caller: &Caller,
    params: &Params,
    now: i64,
) -> Result<Xml, ApiError> {
    let Identity::User { name } = &caller.identity else {
        return Err(ApiError::new(
            403,
            "AccessDenied",
            "Cannot call GetSessionToken with session credentials",
        ));
    };
    if caller.session.is_some() {
        return Err(ApiError::new(
            403,
            "AccessDenied",
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    let duration = params
        .int("DurationSeconds", 900..=129_600)?
        .unwrap_or(43_200);
    let mfa = check_mfa(state, name, params, now)?;
    let claims = SessionClaims {
        token_id: new_token_id()?,
        account: caller.account.clone(),
        principal_arn: caller.arn.clone(),
        principal_id: caller.user_id.clone(),
        issued: now,
        expires: now + duration,
        mfa_authenticated: mfa,
        mfa_time: mfa.then_some(now),
        source_ip: caller.source_ip.clone(),
        ..SessionClaims::default()
    };
    let creds = seal(state, &claims)?;
    let mut x = Xml::new();
    credentials_xml(&mut x, &creds, claims.expires);
    Ok(x)
}

/// Temporary credentials for a console sign-in: a session of `user` as
/// `GetSessionToken` would make one (MFA as the sign-in had it), lasting
/// `duration` seconds. Revoking the user's sessions ends it.
pub fn console_credentials(
    state: &AppState,
    user: &latchkey_store::User,
    mfa: bool,
    source_ip: &str,
    now: i64,
    duration: i64,
) -> Result<TemporaryCredentials, ApiError> {
    let claims = SessionClaims {
        token_id: new_token_id()?,
        account: state.store.account_id().to_owned(),
        principal_arn: user.arn.clone(),
        principal_id: user.id.clone(),
        issued: now,
        expires: now + duration,
        mfa_authenticated: mfa,
        mfa_time: mfa.then_some(now),
        source_ip: source_ip.to_owned(),
        ..SessionClaims::default()
    };
    seal(state, &claims)
}

/// Checks a console sign-in's MFA code for `user`: the device must be the
/// user's, the code current and not used before.
pub fn check_console_mfa(
    state: &AppState,
    user: &str,
    serial: &str,
    code: &str,
    now: i64,
) -> Result<bool, ApiError> {
    let params = Params::from_pairs(&[("SerialNumber", serial), ("TokenCode", code)]);
    check_mfa(state, user, &params, now)
}

fn valid_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

pub fn assume_role(
    state: &AppState,
    caller: &Caller,
    params: &Params,
    now: i64,
) -> Result<Xml, ApiError> {
    let role_arn = params.required("RoleArn")?;
    let session_name = params.required("RoleSessionName")?;
    if !valid_session_name(session_name) {
        return Err(ApiError::validation(
            "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length 2 to 64",
        ));
    }
    if !(20..=2048).contains(&role_arn.len()) {
        return Err(ApiError::validation(
            "RoleArn must be 20 to 2048 characters",
        ));
    }
    let denied = || ApiError::access_denied(&caller.arn, "sts:AssumeRole", role_arn);
    // A role outside this account, or one that does not exist, is simply
    // not assumable: the same answer as a trust-policy refusal.
    let prefix = format!("arn:aws:iam::{}:role/", caller.account);
    let role_name = role_arn
        .strip_prefix(&prefix)
        .and_then(|rest| rest.rsplit('/').next())
        .ok_or_else(|| denied().because("role ARN outside this account"))?;
    let role = state
        .store
        .get_role(role_name)
        .map_err(|_| denied().because("no such role"))?;
    if role.arn != role_arn {
        return Err(denied().because("role path does not match"));
    }

    let chained = matches!(caller.identity, Identity::Role { .. });
    let max = if chained {
        CHAINED_MAX_SECS
    } else {
        role.max_session_duration
    };
    let duration = params.int("DurationSeconds", 900..=43_200)?.unwrap_or(3600);
    if duration > max {
        return Err(ApiError::validation(format!(
            "The requested DurationSeconds exceeds the {} set for this role.",
            if chained {
                "1 hour session limit for roles assumed by role chaining"
            } else {
                "MaxSessionDuration"
            }
        )));
    }
    let inline_policy = params.get("Policy").unwrap_or("");
    if inline_policy.len() > 2048 {
        return Err(ApiError::new(
            400,
            "PackedPolicyTooLarge",
            "Packed size of session policies exceeds the limit.",
        ));
    }
    if !inline_policy.is_empty() {
        latchkey_policy::parse(inline_policy, PolicyKind::Identity).map_err(|f| {
            ApiError::new(
                400,
                "MalformedPolicyDocument",
                format!(
                    "The policy is not valid: {}",
                    f.first().map(ToString::to_string).unwrap_or_default()
                ),
            )
        })?;
    }
    let policy_arns: Vec<String> = params
        .arns("PolicyArns")
        .into_iter()
        .map(str::to_owned)
        .collect();
    if policy_arns.len() > 10 {
        return Err(ApiError::validation("At most 10 PolicyArns"));
    }
    for arn in &policy_arns {
        state.store.managed_policy(arn).map_err(|_| {
            ApiError::new(
                400,
                "InvalidParameterValue",
                format!("Policy {arn} does not exist"),
            )
        })?;
    }
    let SessionTags {
        tags,
        transitive: transitive_tag_keys,
    } = session_tags(caller, params)?;
    let source_identity = params.get("SourceIdentity").unwrap_or("");
    if !source_identity.is_empty() && !valid_source_identity(source_identity) {
        return Err(ApiError::validation(
            "1 validation error detected: Value at 'sourceIdentity' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length 2 to 64, and not begin with aws:",
        ));
    }
    let inherited_source_identity = caller
        .session
        .as_ref()
        .map(|c| c.source_identity.as_str())
        .unwrap_or_default();
    if !inherited_source_identity.is_empty()
        && !source_identity.is_empty()
        && source_identity != inherited_source_identity
    {
        return Err(denied().because("SourceIdentity cannot change within a role chain"));
    }
    let source_identity = if source_identity.is_empty() {
        inherited_source_identity
    } else {
        source_identity
    };
    let lineage = lineage_after(caller);
    if lineage.len() > MAX_LINEAGE {
        return Err(ApiError::validation(format!(
            "Role chains are limited to {MAX_LINEAGE} identities"
        )));
    }

    // MFA: presented now (IAM users), or carried by the caller's session.
    let presented = match &caller.identity {
        Identity::User { name } => check_mfa(state, name, params, now)?,
        Identity::Role { .. } => false,
    };
    let (mfa, mfa_time) = if presented {
        (true, Some(now))
    } else {
        let s = caller.session.as_ref();
        (
            s.is_some_and(|c| c.mfa_authenticated),
            s.and_then(|c| c.mfa_time),
        )
    };

    // A trust policy naming a deleted user or role by its unique id matches
    // only that id: a user's, or a role session's role's.
    let caller_id = match (&caller.identity, &caller.session) {
        (Identity::Role { .. }, Some(c)) => c.role_id.as_str(),
        (Identity::User { .. }, Some(c)) => c.principal_id.as_str(),
        (_, None) => caller.user_id.as_str(),
    };
    let mut req = state
        .request(caller, "sts:AssumeRole", &role.arn, now)?
        .with_caller_id(caller_id);
    // Trust policies see MFA as of this call (aws:MultiFactorAuthPresent is
    // only present for temporary credentials or when MFA was just given).
    if mfa || caller.session.is_some() {
        req.set_context(
            "aws:MultiFactorAuthPresent",
            [if mfa { "true" } else { "false" }],
        );
    }
    if let Some(t) = mfa_time {
        req.set_context("aws:MultiFactorAuthAge", [(now - t).max(0).to_string()]);
    }
    if let Some(external) = params.get("ExternalId") {
        req.set_context("sts:ExternalId", [external]);
    }
    req.set_context("sts:RoleSessionName", [session_name]);
    if !source_identity.is_empty() {
        req.set_context("sts:SourceIdentity", [source_identity]);
    }
    // Every tag the new session will carry, inherited transitive ones too:
    // a policy that limits tags limits those as well.
    req.set_context("aws:TagKeys", tags.iter().map(|(k, _)| k.clone()));
    for (k, v) in &tags {
        req.set_context(&format!("aws:RequestTag/{k}"), [v.as_str()]);
    }
    req.set_context("sts:TransitiveTagKeys", transitive_tag_keys.iter().cloned());
    for (k, v) in &role.tags {
        req.set_context(&format!("aws:ResourceTag/{k}"), [v.as_str()]);
        req.set_context(&format!("iam:ResourceTag/{k}"), [v.as_str()]);
    }
    let trust = latchkey_policy::parse(&role.trust_policy, PolicyKind::Trust)
        .map(|p| CompiledPolicy::compile("trust policy", &p))
        .map_err(|_| denied().because("the role's trust policy is invalid"))?;
    let identity = state.policy_set(caller)?;
    let set = PolicySet {
        identity: identity.identity,
        resource: Some(std::sync::Arc::new(trust)),
        permissions_boundary: None,
        session: identity.session,
    };
    // Setting session tags or a source identity are permissions of their
    // own, which the trust policy must grant too (as AWS requires): a
    // session tag can widen what `${aws:PrincipalTag/…}` policies allow.
    let mut actions = vec!["sts:AssumeRole"];
    if !tags.is_empty() {
        actions.push("sts:TagSession");
    }
    if !source_identity.is_empty() {
        actions.push("sts:SetSourceIdentity");
    }
    for action in actions {
        let req = req.clone().with_action(action);
        match set.decide_assume_role(&req) {
            Decision::Allowed => {}
            d => {
                return Err(
                    ApiError::access_denied(&caller.arn, action, role_arn).because(format!(
                        "{action}: {} by trust or identity policy",
                        d.as_str()
                    )),
                );
            }
        }
    }

    let claims = SessionClaims {
        token_id: new_token_id()?,
        account: caller.account.clone(),
        principal_arn: caller.arn.clone(),
        principal_id: caller.user_id.clone(),
        role_arn: role.arn.clone(),
        role_id: role.id.clone(),
        session_name: session_name.to_owned(),
        issued: now,
        expires: now + duration,
        mfa_authenticated: mfa,
        mfa_time: if mfa { mfa_time } else { None },
        source_identity: source_identity.to_owned(),
        source_ip: caller.source_ip.clone(),
        tags,
        session_policy: inline_policy.to_owned(),
        policy_arns,
        chain_depth: caller
            .session
            .as_ref()
            .map_or(0, |c| c.chain_depth.saturating_add(1)),
        transitive_tag_keys,
        lineage,
    };
    let creds = seal(state, &claims)?;
    let packed = (inline_policy.len() * 100 / 2048).min(100);
    let mut x = Xml::new();
    credentials_xml(&mut x, &creds, claims.expires);
    x.node("AssumedRoleUser", |x| {
        x.text("AssumedRoleId", &format!("{}:{}", role.id, session_name))
            .text(
                "Arn",
                &format!(
                    "arn:aws:sts::{}:assumed-role/{}/{}",
                    caller.account, role.name, session_name
                ),
            );
    });
    x.text("PackedPolicySize", &packed.to_string());
    if !claims.source_identity.is_empty() {
        x.text("SourceIdentity", &claims.source_identity);
    }
    Ok(x)
}
