//! IAM's account password policy.
//!
//! `UpdateAccountPasswordPolicy` replaces the whole policy: a parameter
//! left out takes its default (length 6, no class required, no expiry, no
//! reuse rule, users may not change their own passwords). With no policy
//! set, AWS's default applies: 8 to 128 characters with at least three of
//! the four kinds (upper case, lower case, digits, symbols). Latchkey also
//! always refuses a password equal to the user's name (AWS refuses one
//! equal to the account's name or e-mail address).

/// The symbols IAM counts as such.
pub const SYMBOLS: &str = "!@#$%^&*()_+-=[]{}|'";

/// IAM's bounds on a password (the API's `passwordType`).
pub const MAX_LENGTH: usize = 128;

/// A validation error in AWS's words: the member and the constraint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Value '{value}' at '{member}' failed to satisfy constraint: {constraint}")]
pub struct PolicyError {
    pub member: &'static str,
    pub value: i64,
    pub constraint: &'static str,
}

/// The account's password policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub minimum_length: u8,
    pub require_symbols: bool,
    pub require_numbers: bool,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub allow_users_to_change: bool,
    /// Days a password is valid for; `None`: it never expires.
    pub max_age_days: Option<u16>,
    /// How many previous passwords may not be used again.
    pub reuse_prevention: Option<u8>,
    /// An expired password can only be reset by an administrator.
    pub hard_expiry: bool,
}

/// `UpdateAccountPasswordPolicy`'s parameters as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRequest {
    pub minimum_length: Option<i64>,
    pub require_symbols: Option<bool>,
    pub require_numbers: Option<bool>,
    pub require_uppercase: Option<bool>,
    pub require_lowercase: Option<bool>,
    pub allow_users_to_change: Option<bool>,
    pub max_age_days: Option<i64>,
    pub reuse_prevention: Option<i64>,
    pub hard_expiry: Option<bool>,
}

fn in_range(
    member: &'static str,
    value: i64,
    low: i64,
    high: i64,
    constraint: &'static str,
) -> Result<i64, PolicyError> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(PolicyError {
            member,
            value,
            constraint,
        })
    }
}

impl PasswordPolicy {
    /// The policy an `UpdateAccountPasswordPolicy` request sets.
    pub fn from_request(r: &PolicyRequest) -> Result<Self, PolicyError> {
        let minimum_length = match r.minimum_length {
            None => 6,
            Some(v) => in_range(
                "minimumPasswordLength",
                v,
                6,
                128,
                "Member must have value between 6 and 128",
            )?,
        };
        let max_age_days = match r.max_age_days {
            None | Some(0) => None,
            Some(v) => Some(in_range(
                "maxPasswordAge",
                v,
                1,
                1095,
                "Member must have value between 1 and 1095",
            )?),
        };
        let reuse_prevention = match r.reuse_prevention {
            None => None,
            Some(v) => Some(in_range(
                "passwordReusePrevention",
                v,
                1,
                24,
                "Member must have value between 1 and 24",
            )?),
        };
        // The ranges above keep each value within its type.
        Ok(Self {
            minimum_length: u8::try_from(minimum_length).unwrap_or(u8::MAX),
            require_symbols: r.require_symbols.unwrap_or(false),
            require_numbers: r.require_numbers.unwrap_or(false),
            require_uppercase: r.require_uppercase.unwrap_or(false),
            require_lowercase: r.require_lowercase.unwrap_or(false),
            allow_users_to_change: r.allow_users_to_change.unwrap_or(false),
            max_age_days: max_age_days.map(|d| u16::try_from(d).unwrap_or(u16::MAX)),
            reuse_prevention: reuse_prevention.map(|n| u8::try_from(n).unwrap_or(u8::MAX)),
            hard_expiry: r.hard_expiry.unwrap_or(false),
        })
    }
}

/// Something a new password lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    TooShort(u8),
    TooLong,
    /// Characters outside what IAM accepts (tab, newlines, U+0020..U+00FF).
    BadCharacter,
    NeedsUppercase,
    NeedsLowercase,
    NeedsNumber,
    NeedsSymbol,
    /// AWS's default policy: three of the four kinds.
    NeedsThreeKinds,
    SameAsUserName,
    /// One of the last `n` passwords.
    Reused(u8),
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::TooShort(n) => write!(f, "Password should have a minimum length of {n}"),
            Violation::TooLong => write!(f, "Password should have at most {MAX_LENGTH} characters"),
            Violation::BadCharacter => {
                write!(f, "Password may only contain printable Latin-1 characters")
            }
            Violation::NeedsUppercase => {
                write!(f, "Password should have at least one uppercase letter")
            }
            Violation::NeedsLowercase => {
                write!(f, "Password should have at least one lowercase letter")
            }
            Violation::NeedsNumber => write!(f, "Password should have at least one number"),
            Violation::NeedsSymbol => write!(
                f,
                "Password should have at least one symbol ({})",
                SYMBOLS
                    .chars()
                    .map(String::from)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Violation::NeedsThreeKinds => write!(
                f,
                "Password should have at least three of: uppercase letters, lowercase letters, numbers, symbols"
            ),
            Violation::SameAsUserName => write!(f, "Password should not be the user name"),
            Violation::Reused(n) => write!(
                f,
                "Password has been used before (the last {n} passwords may not be reused)"
            ),
        }
    }
}

/// Every requirement a password misses, in the order a person would fix
/// them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Violations(pub Vec<Violation>);

/// The policy in force: the account's, or AWS's default.
pub fn check(
    policy: Option<&PasswordPolicy>,
    password: &str,
    user_name: &str,
) -> Result<(), Violations> {
    let mut missing = Vec::new();
    let length = password.chars().count();
    let minimum = policy.map_or(8, |p| p.minimum_length);
    if length < usize::from(minimum) {
        missing.push(Violation::TooShort(minimum));
    }
    if length > MAX_LENGTH {
        missing.push(Violation::TooLong);
    }
    if password
        .chars()
        .any(|c| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}') || c == '\u{7f}')
    {
        missing.push(Violation::BadCharacter);
    }
    let upper = password.chars().any(|c| c.is_ascii_uppercase());
    let lower = password.chars().any(|c| c.is_ascii_lowercase());
    let number = password.chars().any(|c| c.is_ascii_digit());
    let symbol = password.chars().any(|c| SYMBOLS.contains(c));
    match policy {
        Some(p) => {
            for (required, present, violation) in [
                (p.require_uppercase, upper, Violation::NeedsUppercase),
                (p.require_lowercase, lower, Violation::NeedsLowercase),
                (p.require_numbers, number, Violation::NeedsNumber),
                (p.require_symbols, symbol, Violation::NeedsSymbol),
            ] {
                if required && !present {
                    missing.push(violation);
                }
            }
        }
        None => {
            if [upper, lower, number, symbol]
                .iter()
                .filter(|k| **k)
                .count()
                < 3
            {
                missing.push(Violation::NeedsThreeKinds);
            }
        }
    }
    if !user_name.is_empty() && password.eq_ignore_ascii_case(user_name) {
        missing.push(Violation::SameAsUserName);
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Violations(missing))
    }
}

/// Whether a password set at `changed` (epoch seconds) still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Current,
    /// Expired: the user must choose a new one at sign-in.
    MustChange,
    /// Expired under `HardExpiry`: only an administrator can reset it.
    Locked,
}

impl PasswordPolicy {
    /// When a password set at `changed` expires, if it does.
    pub fn expires_at(&self, changed: i64) -> Option<i64> {
        self.max_age_days
            .map(|days| changed.saturating_add(i64::from(days) * 86_400))
    }

    pub fn expiry(&self, changed: i64, now: i64) -> Expiry {
        match self.expires_at(changed) {
            Some(at) if now >= at && self.hard_expiry => Expiry::Locked,
            Some(at) if now >= at => Expiry::MustChange,
            _ => Expiry::Current,
        }
    }

    /// `ExpirePasswords` in `GetAccountPasswordPolicy`.
    pub fn expire_passwords(&self) -> bool {
        self.max_age_days.is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strict() -> PasswordPolicy {
        PasswordPolicy::from_request(&PolicyRequest {
            minimum_length: Some(14),
            require_symbols: Some(true),
            require_numbers: Some(true),
            require_uppercase: Some(true),
            require_lowercase: Some(true),
            max_age_days: Some(90),
            reuse_prevention: Some(5),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn a_request_takes_defaults_for_what_it_leaves_out() {
        let p = PasswordPolicy::from_request(&PolicyRequest::default()).unwrap();
        assert_eq!(p.minimum_length, 6);
        assert!(!p.require_symbols && !p.allow_users_to_change && !p.hard_expiry);
        assert_eq!((p.max_age_days, p.reuse_prevention), (None, None));
        assert!(!p.expire_passwords());
        let s = strict();
        assert_eq!(s.max_age_days, Some(90));
        assert!(s.expire_passwords());
    }

    #[test]
    fn out_of_range_values_are_refused_in_awss_words() {
        for (r, member) in [
            (
                PolicyRequest {
                    minimum_length: Some(5),
                    ..Default::default()
                },
                "minimumPasswordLength",
            ),
            (
                PolicyRequest {
                    minimum_length: Some(129),
                    ..Default::default()
                },
                "minimumPasswordLength",
            ),
            (
                PolicyRequest {
                    max_age_days: Some(1096),
                    ..Default::default()
                },
                "maxPasswordAge",
            ),
            (
                PolicyRequest {
                    reuse_prevention: Some(0),
                    ..Default::default()
                },
                "passwordReusePrevention",
            ),
            (
                PolicyRequest {
                    reuse_prevention: Some(25),
                    ..Default::default()
                },
                "passwordReusePrevention",
            ),
        ] {
            let e = PasswordPolicy::from_request(&r).unwrap_err();
            assert_eq!(e.member, member);
            assert!(
                e.to_string().contains("failed to satisfy constraint"),
                "{e}"
            );
        }
    }

    #[test]
    fn every_missing_requirement_is_named() {
        let e = check(Some(&strict()), "short", "alice").unwrap_err();
        assert_eq!(
            e.0,
            vec![
                Violation::TooShort(14),
                Violation::NeedsUppercase,
                Violation::NeedsNumber,
                Violation::NeedsSymbol
            ]
        );
        assert!(e.to_string().contains("minimum length of 14"), "{e}");
        assert!(check(Some(&strict()), "Long-enough-pass1", "alice").is_ok());
        assert_eq!(
            check(Some(&strict()), "Alice-Pass-0001", "alice-pass-0001")
                .unwrap_err()
                .0,
            vec![Violation::SameAsUserName]
        );
    }

    #[test]
    fn awss_default_wants_eight_characters_of_three_kinds() {
        assert_eq!(
            check(None, "abcdefgh", "bob").unwrap_err().0,
            vec![Violation::NeedsThreeKinds]
        );
        assert_eq!(
            check(None, "Ab1", "bob").unwrap_err().0,
            vec![Violation::TooShort(8)]
        );
        assert!(check(None, "abcdEFG1", "bob").is_ok());
        assert!(check(None, "abcdefg!1", "bob").is_ok());
        assert!(check(None, &"aB1".repeat(43), "bob").is_err());
        assert_eq!(
            check(None, "abcdEFG1\u{0}", "bob").unwrap_err().0,
            vec![Violation::BadCharacter]
        );
    }

    #[test]
    fn passwords_expire_after_their_age_hard_or_not() {
        let mut p = strict();
        let day = 86_400;
        assert_eq!(p.expiry(0, 89 * day), Expiry::Current);
        assert_eq!(p.expiry(0, 90 * day), Expiry::MustChange);
        p.hard_expiry = true;
        assert_eq!(p.expiry(0, 90 * day), Expiry::Locked);
        p.max_age_days = None;
        assert_eq!(p.expiry(0, 9_000 * day), Expiry::Current);
    }
}
