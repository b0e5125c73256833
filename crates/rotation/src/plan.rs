//! The rotation strategies, decided before any login: what the pending
//! value is (createSecret) and what setSecret must change, from the
//! current value alone.

use zeroize::Zeroizing;

use crate::secret::{Engine, Family, Secret};

/// AWS's two strategies for database credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// One user; each rotation changes its password in place (AWS's
    /// "single user"). Logins with the old password fail from setSecret
    /// on.
    SingleUser,
    /// Two users, `NAME` and `NAME_clone` with the same grants; each
    /// rotation gives the one that is not current a new password, then
    /// makes it current (AWS's "alternating users", the multi-user
    /// templates). The newest two credentials always work. Needs a
    /// privileged login ([`Secret::master_username`]).
    AlternatingUsers,
}

/// What AWS's templates append to make the second user.
pub const CLONE_SUFFIX: &str = "_clone";

/// Why a user name cannot be used as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a user name is empty")]
    Empty,
    #[error("user name {name:?} is over {max} {unit}; the server would refuse or cut it")]
    TooLong {
        name: String,
        max: usize,
        unit: &'static str,
    },
    #[error("a user or host name contains a NUL character")]
    Nul,
}

/// Checks `name` against the engine's limit: PostgreSQL's 63 bytes
/// (NAMEDATALEN - 1; longer names are silently truncated, so a rotation
/// would change another role), MySQL's 32 characters, MariaDB's 80.
pub fn check_name(name: &str, engine: Engine) -> Result<(), NameError> {
    let (length, max, unit) = match (engine.family(), engine) {
        (Family::Postgres, _) => (name.len(), 63, "bytes"),
        (Family::Mysql, Engine::Mariadb) => (name.chars().count(), 80, "characters"),
        (Family::Mysql, _) => (name.chars().count(), 32, "characters"),
    };
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.contains('\0') {
        return Err(NameError::Nul);
    }
    if length > max {
        return Err(NameError::TooLong {
            name: name.chars().take(100).collect(),
            max,
            unit,
        });
    }
    Ok(())
}

/// The other user of an alternating pair: `app` ↔ `app_clone`.
pub fn alternate_username(current: &str, engine: Engine) -> Result<String, NameError> {
    let other = match current.strip_suffix(CLONE_SUFFIX) {
        Some(base) => base.to_owned(),
        None => format!("{current}{CLONE_SUFFIX}"),
    };
    check_name(&other, engine)?;
    Ok(other)
}

/// Why a rotation step is refused before it reaches the server.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("the pending value is for engine {pending}, the current one for {current}")]
    EngineMismatch { current: Engine, pending: Engine },
    #[error("the pending value is for {pending}, the current one for {current}")]
    ServerMismatch { current: String, pending: String },
    #[error("setSecret would change user {found:?}; this strategy changes only {expected:?}")]
    WrongUser { expected: String, found: String },
    #[error("alternating users needs \"master_username\" in the current value")]
    NoMasterUser,
    #[error("the privileged login {0:?} is itself one of the rotated users")]
    MasterIsRotated(String),
}

/// createSecret: the pending value. Same user for single user, the other
/// one of the pair for alternating users; everything else as in the
/// current value. `password` is new (from [`crate::random::password`]).
pub fn pending_secret(
    current: &Secret,
    strategy: Strategy,
    password: Zeroizing<String>,
) -> Result<Secret, PlanError> {
    check_name(&current.username, current.engine)?;
    let username = match strategy {
        Strategy::SingleUser => current.username.clone(),
        Strategy::AlternatingUsers => alternate_username(&current.username, current.engine)?,
    };
    Ok(current.with_credentials(&username, password))
}

/// What setSecret changes on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetPlan<'a> {
    /// Log in as `user` with one of `logins`' passwords, tried in order
    /// (current, then previous, as AWS's single-user templates do), and
    /// change its own password.
    ChangeOwnPassword {
        user: &'a str,
        logins: Vec<&'a Secret>,
    },
    /// Check the current credential still logs in (AWS's guard against a
    /// confused deputy), then as `master` create `target` as a clone of
    /// `source` if it is missing, and set its password.
    SetClonePassword {
        master: &'a str,
        source: &'a Secret,
        target: &'a str,
    },
}

/// setSecret's plan from the current, pending and (single user, when
/// there is one) previous values; refuses a pending value that would
/// change any other user or server than the strategy allows.
pub fn plan_set<'a>(
    strategy: Strategy,
    current: &'a Secret,
    pending: &'a Secret,
    previous: Option<&'a Secret>,
) -> Result<SetPlan<'a>, PlanError> {
    same_server(current, pending)?;
    check_name(&pending.username, pending.engine)?;
    match strategy {
        Strategy::SingleUser => {
            expect_user(&current.username, &pending.username)?;
            let mut logins = vec![current];
            if let Some(previous) = previous {
                same_server(previous, pending)?;
                expect_user(&previous.username, &pending.username)?;
                logins.push(previous);
            }
            Ok(SetPlan::ChangeOwnPassword {
                user: &pending.username,
                logins,
            })
        }
        Strategy::AlternatingUsers => {
            let expected = alternate_username(&current.username, current.engine)?;
            expect_user(&expected, &pending.username)?;
            let master = current
                .master_username
                .as_deref()
                .ok_or(PlanError::NoMasterUser)?;
            check_name(master, current.engine)?;
            if master == current.username || master == pending.username {
                return Err(PlanError::MasterIsRotated(master.to_owned()));
            }
            Ok(SetPlan::SetClonePassword {
                master,
                source: current,
                target: &pending.username,
            })
        }
    }
}

fn same_server(current: &Secret, pending: &Secret) -> Result<(), PlanError> {
    if current.engine.family() != pending.engine.family() {
        return Err(PlanError::EngineMismatch {
            current: current.engine,
            pending: pending.engine,
        });
    }
    if !current.host.eq_ignore_ascii_case(&pending.host) || current.port != pending.port {
        return Err(PlanError::ServerMismatch {
            current: format!("{}:{}", current.host, current.port),
            pending: format!("{}:{}", pending.host, pending.port),
        });
    }
    Ok(())
}

fn expect_user(expected: &str, found: &str) -> Result<(), PlanError> {
    if expected == found {
        Ok(())
    } else {
        Err(PlanError::WrongUser {
            expected: expected.to_owned(),
            found: found.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(engine: &str, user: &str, password: &str) -> Secret {
        Secret::parse(&format!(
            r#"{{"engine":"{engine}","host":"db","username":"{user}","password":"{password}","master_username":"admin"}}"#
        ))
        .unwrap()
    }

    fn pw(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_owned())
    }

    #[test]
    fn alternate_names() {
        let pg = Engine::Postgres;
        assert_eq!(alternate_username("app", pg).unwrap(), "app_clone");
        assert_eq!(alternate_username("app_clone", pg).unwrap(), "app");
        assert_eq!(
            alternate_username("we\"ird'user", pg).unwrap(),
            "we\"ird'user_clone"
        );
        // A name that is only the suffix alternates with the empty name.
        assert_eq!(alternate_username("_clone", pg), Err(NameError::Empty));
        let long = "a".repeat(58);
        assert!(matches!(
            alternate_username(&long, pg),
            Err(NameError::TooLong { max: 63, .. })
        ));
        assert!(alternate_username(&"a".repeat(57), pg).is_ok());
        // Bytes for PostgreSQL, characters for MySQL.
        assert!(alternate_username(&"é".repeat(29), pg).is_err());
        assert!(alternate_username(&"é".repeat(26), Engine::Mysql).is_ok());
        assert!(alternate_username(&"a".repeat(27), Engine::Mysql).is_err());
        assert!(alternate_username(&"a".repeat(27), Engine::Mariadb).is_ok());
    }

    #[test]
    fn pending_values() {
        let current = secret("postgres", "app", "old");
        let single = pending_secret(&current, Strategy::SingleUser, pw("new")).unwrap();
        assert_eq!(
            (single.username.as_str(), single.password.as_str()),
            ("app", "new")
        );
        assert_eq!(single.host, "db");
        let alt = pending_secret(&current, Strategy::AlternatingUsers, pw("new")).unwrap();
        assert_eq!(alt.username, "app_clone");
        let back = pending_secret(&alt, Strategy::AlternatingUsers, pw("newer")).unwrap();
        assert_eq!(back.username, "app");
        assert_eq!(back.master_username.as_deref(), Some("admin"));
    }

    #[test]
    fn single_user_plan() {
        let current = secret("postgres", "app", "p1");
        let previous = secret("postgres", "app", "p0");
        let pending = secret("postgres", "app", "p2");
        assert_eq!(
            plan_set(Strategy::SingleUser, &current, &pending, Some(&previous)).unwrap(),
            SetPlan::ChangeOwnPassword {
                user: "app",
                logins: vec![&current, &previous],
            }
        );
        let other = secret("postgres", "admin", "p2");
        assert_eq!(
            plan_set(Strategy::SingleUser, &current, &other, None),
            Err(PlanError::WrongUser {
                expected: "app".into(),
                found: "admin".into()
            })
        );
        let elsewhere = Secret {
            host: "other".into(),
            ..pending.clone()
        };
        assert!(matches!(
            plan_set(Strategy::SingleUser, &current, &elsewhere, None),
            Err(PlanError::ServerMismatch { .. })
        ));
        let mysql = secret("mysql", "app", "p2");
        assert!(matches!(
            plan_set(Strategy::SingleUser, &current, &mysql, None),
            Err(PlanError::EngineMismatch { .. })
        ));
    }

    #[test]
    fn alternating_plan() {
        let current = secret("mysql", "app", "p1");
        let pending = secret("mysql", "app_clone", "p2");
        assert_eq!(
            plan_set(Strategy::AlternatingUsers, &current, &pending, None).unwrap(),
            SetPlan::SetClonePassword {
                master: "admin",
                source: &current,
                target: "app_clone",
            }
        );
        // The pending value may not name the current user, or a third.
        for wrong in ["app", "admin_clone"] {
            let p = secret("mysql", wrong, "p2");
            assert!(matches!(
                plan_set(Strategy::AlternatingUsers, &current, &p, None),
                Err(PlanError::WrongUser { .. })
            ));
        }
        let no_master = Secret {
            master_username: None,
            ..current.clone()
        };
        assert_eq!(
            plan_set(Strategy::AlternatingUsers, &no_master, &pending, None),
            Err(PlanError::NoMasterUser)
        );
        let master_rotated = Secret {
            master_username: Some("app_clone".into()),
            ..current.clone()
        };
        assert_eq!(
            plan_set(Strategy::AlternatingUsers, &master_rotated, &pending, None),
            Err(PlanError::MasterIsRotated("app_clone".into()))
        );
    }
}
