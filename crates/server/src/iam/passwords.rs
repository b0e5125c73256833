//! Console passwords (login profiles) and the account password policy.
//! Passwords are checked against the policy in force, hashed with Argon2id
//! (`latchkey-password`) and stored sealed; none is ever returned.

use latchkey_identity::{Identity, PasswordFailure};
use latchkey_password::{PasswordHash, PasswordPolicy, PolicyRequest, SALT_LEN, check};
use latchkey_store::{LoginProfile, PASSWORD_HISTORY, StoreError};

use crate::error::ApiError;
use crate::xml::{Xml, timestamp};

use super::targets::Targets;
use super::{Call, bool_param, bool_text, target_user};

fn no_profile(user: &str) -> ApiError {
    ApiError::new(
        404,
        "NoSuchEntity",
        format!("Login Profile for User {user} cannot be found."),
    )
}

fn profile_xml(x: &mut Xml, p: &LoginProfile) {
    x.node("LoginProfile", |x| {
        x.text("UserName", &p.user)
            .text("CreateDate", &timestamp(p.created))
            .text("PasswordResetRequired", bool_text(p.reset_required));
    });
}

/// `Password`: present, and within IAM's bounds before anything else.
fn password_param<'a>(c: &'a Call, name: &str) -> Result<&'a str, ApiError> {
    let password = c.params.required(name)?;
    if password.is_empty() || password.chars().count() > latchkey_password::policy::MAX_LENGTH {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length between 1 and 128",
            crate::query::lower_first(name)
        )));
    }
    Ok(password)
}

/// Checks `password` against the policy in force (and, when given, the
/// user's earlier passwords), then hashes it with a fresh salt.
fn new_hash(
    c: &Call,
    user: &str,
    password: &str,
    previous: &[PasswordHash],
) -> Result<PasswordHash, ApiError> {
    let policy = c.store.password_policy()?;
    let mut refusal = check(policy.as_ref(), password, user).err();
    // Up to 24 verifications and a hash: in the gate, as sign-ins are.
    let _hashing = c.state.hashing();
    if let Some(n) = policy.as_ref().and_then(|p| p.reuse_prevention)
        && previous
            .iter()
            .take(usize::from(n))
            .any(|h| h.verify(password))
    {
        refusal
            .get_or_insert_with(|| latchkey_password::Violations(Vec::new()))
            .0
            .push(latchkey_password::Violation::Reused(n));
    }
    if let Some(v) = refusal {
        return Err(ApiError::new(
            400,
            "PasswordPolicyViolation",
            format!("Password does not conform to the account password policy. {v}."),
        ));
    }
    let salt = latchkey_store::random::<SALT_LEN>().map_err(StoreError::from)?;
    PasswordHash::new(password, &salt)
        .map_err(|e| ApiError::internal().because(format!("hashing a password: {e}")))
}

/// The stored history of `user`'s passwords, for the reuse rule: the
/// current one first.
fn history(c: &Call, user: &str) -> Result<Vec<PasswordHash>, ApiError> {
    let Some(lp) = c.store.login_password(user, PASSWORD_HISTORY)? else {
        return Err(no_profile(user));
    };
    let mut all = vec![lp.hash];
    all.extend(lp.previous);
    Ok(all)
}

/// `CreateLoginProfile`.
pub(super) fn create_login_profile(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = target_user(c.caller, c.params)?;
    let password = password_param(c, "Password")?;
    let reset = bool_param(c.params, "PasswordResetRequired")?.unwrap_or(false);
    c.authorize(c.state.user_target(name))?;
    let user = c.store.get_user(name)?;
    if c.store.login_profile(&user.name)?.is_some() {
        return Err(ApiError::new(
            409,
            "EntityAlreadyExists",
            format!("Login Profile for user {} already exists.", user.name),
        ));
    }
    let hash = new_hash(c, &user.name, password, &[])?;
    let profile = c
        .store
        .create_login_profile(&user.name, &hash, reset, c.now)
        .map_err(|e| match e {
            StoreError::EntityAlreadyExists { .. } => ApiError::new(
                409,
                "EntityAlreadyExists",
                format!("Login Profile for user {} already exists.", user.name),
            ),
            e => e.into(),
        })?;
    let mut x = Xml::new();
    profile_xml(&mut x, &profile);
    Ok(Some(x))
}

/// `GetLoginProfile`.
pub(super) fn get_login_profile(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = target_user(c.caller, c.params)?;
    c.authorize(c.state.user_target(name))?;
    let user = c.store.get_user(name)?;
    let profile = c
        .store
        .login_profile(&user.name)?
        .ok_or_else(|| no_profile(&user.name))?;
    let mut x = Xml::new();
    profile_xml(&mut x, &profile);
    Ok(Some(x))
}

/// `UpdateLoginProfile`: an administrator's reset. A new password lifts
/// the user's sign-in lockout.
pub(super) fn update_login_profile(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = target_user(c.caller, c.params)?;
    let password = match c.params.get("Password") {
        Some(_) => Some(password_param(c, "Password")?),
        None => None,
    };
    let reset = bool_param(c.params, "PasswordResetRequired")?;
    c.authorize(c.state.user_target(name))?;
    let user = c.store.get_user(name)?;
    let hash = match password {
        Some(p) => Some(new_hash(c, &user.name, p, &history(c, &user.name)?)?),
        None => None,
    };
    c.store
        .update_login_profile(&user.name, hash.as_ref(), reset, c.now)
        .map_err(|e| match e {
            StoreError::NoSuchEntity { .. } => no_profile(&user.name),
            e => e.into(),
        })?;
    if hash.is_some() {
        c.state.forgive_sign_ins(&user.name);
    }
    Ok(None)
}

/// `DeleteLoginProfile`.
pub(super) fn delete_login_profile(c: &Call) -> Result<Option<Xml>, ApiError> {
    let name = target_user(c.caller, c.params)?;
    c.authorize(c.state.user_target(name))?;
    let user = c.store.get_user(name)?;
    c.store
        .delete_login_profile(&user.name)
        .map_err(|e| match e {
            StoreError::NoSuchEntity { .. } => no_profile(&user.name),
            e => e.into(),
        })?;
    Ok(None)
}

/// `ChangePassword`: an IAM user changes their own password, giving the
/// old one. Allowed by `iam:ChangePassword` on the user, or for every user
/// by the policy's `AllowUsersToChangePassword` unless a policy denies it
/// explicitly, and for a user whose password is due for a change. A wrong
/// old password counts as a failed sign-in.
pub(super) fn change_password(c: &Call) -> Result<Option<Xml>, ApiError> {
    let Identity::User { name } = &c.caller.identity else {
        return Err(ApiError::new(
            400,
            "InvalidUserType",
            "Only IAM users can change their own password.",
        ));
    };
    let old = password_param(c, "OldPassword")?;
    let new = password_param(c, "NewPassword")?;
    let policy = c.store.password_policy()?;
    // A user who must choose a new password (reset by an administrator,
    // or expired) may, as AWS lets them, whatever the policy says.
    let due = c.store.login_profile(name)?.is_some_and(|p| {
        p.reset_required
            || policy.as_ref().is_some_and(|pp| {
                pp.expiry(p.changed, c.now) == latchkey_password::Expiry::MustChange
            })
    });
    let everyone_may = due || policy.as_ref().is_some_and(|p| p.allow_users_to_change);
    match c.authorize(c.state.user_target(name)) {
        Ok(()) => {}
        Err(e)
            if everyone_may
                && e.denial
                    .as_ref()
                    .is_some_and(|d| d.decision == "implicitDeny") => {}
        Err(e) => return Err(e),
    }
    let user = c.store.get_user(name)?;
    let peer = c.peer;
    c.state
        .check_password(&user.name, old, peer)
        .map_err(|f| match f {
            PasswordFailure::Unavailable => ApiError::internal().because(f.reason()),
            PasswordFailure::Throttled(_) => ApiError::new(
                409,
                "EntityTemporarilyUnmodifiable",
                "Too many failed attempts. Try again later.",
            )
            .because(f.reason()),
            // An expired password may be changed with the old one only
            // when the expiry is soft.
            PasswordFailure::Expired => ApiError::new(
                409,
                "EntityTemporarilyUnmodifiable",
                "The password has expired and must be reset by an administrator.",
            )
            .because(f.reason()),
            PasswordFailure::Incorrect { .. } => {
                ApiError::new(403, "AccessDenied", "The old password is incorrect.")
                    .because(f.reason())
            }
        })?;
    c.state.sign_in_succeeded(&user.name);
    let hash = new_hash(c, &user.name, new, &history(c, &user.name)?)?;
    c.store
        .update_login_profile(&user.name, Some(&hash), Some(false), c.now)?;
    Ok(None)
}

fn policy_request(c: &Call) -> Result<PolicyRequest, ApiError> {
    let int = |name: &str| -> Result<Option<i64>, ApiError> {
        match c.params.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::validation(format!("{name} must be a number"))),
        }
    };
    Ok(PolicyRequest {
        minimum_length: int("MinimumPasswordLength")?,
        require_symbols: bool_param(c.params, "RequireSymbols")?,
        require_numbers: bool_param(c.params, "RequireNumbers")?,
        require_uppercase: bool_param(c.params, "RequireUppercaseCharacters")?,
        require_lowercase: bool_param(c.params, "RequireLowercaseCharacters")?,
        allow_users_to_change: bool_param(c.params, "AllowUsersToChangePassword")?,
        max_age_days: int("MaxPasswordAge")?,
        reuse_prevention: int("PasswordReusePrevention")?,
        hard_expiry: bool_param(c.params, "HardExpiry")?,
    })
}

/// `UpdateAccountPasswordPolicy`: replaces the whole policy.
pub(super) fn update_account_password_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    c.authorize(c.state.any_target())?;
    let policy = PasswordPolicy::from_request(&policy_request(c)?)
        .map_err(|e| ApiError::validation(format!("1 validation error detected: {e}")))?;
    c.store.put_password_policy(&policy)?;
    Ok(None)
}

/// `GetAccountPasswordPolicy`.
pub(super) fn get_account_password_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    c.authorize(c.state.any_target())?;
    let Some(p) = c.store.password_policy()? else {
        return Err(ApiError::new(
            404,
            "NoSuchEntity",
            format!(
                "The Password Policy with domain name {} cannot be found.",
                c.store.account_id()
            ),
        ));
    };
    let mut x = Xml::new();
    x.node("PasswordPolicy", |x| {
        x.text("MinimumPasswordLength", &p.minimum_length.to_string())
            .text("RequireSymbols", bool_text(p.require_symbols))
            .text("RequireNumbers", bool_text(p.require_numbers))
            .text("RequireUppercaseCharacters", bool_text(p.require_uppercase))
            .text("RequireLowercaseCharacters", bool_text(p.require_lowercase))
            .text(
                "AllowUsersToChangePassword",
                bool_text(p.allow_users_to_change),
            )
            .text("ExpirePasswords", bool_text(p.expire_passwords()));
        if let Some(days) = p.max_age_days {
            x.text("MaxPasswordAge", &days.to_string());
        }
        if let Some(n) = p.reuse_prevention {
            x.text("PasswordReusePrevention", &n.to_string());
        }
        x.text("HardExpiry", bool_text(p.hard_expiry));
    });
    Ok(Some(x))
}

/// `DeleteAccountPasswordPolicy`.
pub(super) fn delete_account_password_policy(c: &Call) -> Result<Option<Xml>, ApiError> {
    c.authorize(c.state.any_target())?;
    if !c.store.delete_password_policy()? {
        return Err(ApiError::new(
            404,
            "NoSuchEntity",
            "The account policy with name PasswordPolicy cannot be found.",
        ));
    }
    Ok(None)
}
