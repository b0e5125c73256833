//! The engine-neutral steps. A [`CredentialServer`] is one registered
//! database's server, reached the way the gateway reaches it (its
//! upstream address and TLS settings); each engine implements it once
//! (`latchkey_pg_gateway::rotation`, `latchkey_my_gateway::rotation`),
//! and the rotation job calls [`set_secret`] and [`test_secret`]
//! without knowing which engine it drives.

use std::future::Future;

use crate::plan::{NameError, PlanError, SetPlan, Strategy, plan_set};
use crate::secret::{Engine, Family, Secret};

/// What a server did or refused. Never carries a password, hash or
/// verifier: statement failures give the server's code, and its message
/// only for statements that hold no secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// The server refused the credentials (PostgreSQL class 28, MySQL
    /// 1045 and its kin).
    #[error("the server refused the login of {user:?}")]
    LoginRefused { user: String },
    #[error("{action} failed: {code}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Statement {
        action: &'static str,
        /// SQLSTATE (PostgreSQL) or error number (MySQL).
        code: String,
        detail: Option<String>,
    },
    /// `user` has no account, or several whose host the rotation cannot
    /// choose between (MySQL).
    #[error("{user:?} has {found} accounts on the server; rotation needs exactly one")]
    Accounts { user: String, found: usize },
    #[error("copying grants: {0}")]
    Grant(#[from] crate::mysql::GrantError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Password(#[from] crate::mysql::StatementError),
    #[error(transparent)]
    Random(#[from] crate::random::RandomError),
    /// Reaching or talking to the server failed (connection, TLS,
    /// protocol, the privileged login's stored password missing).
    #[error("{0}")]
    Unavailable(String),
}

/// Whether [`CredentialServer::set_clone_password`] made the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloneOutcome {
    Created,
    Existed,
}

/// One database server's credentials, as rotation needs them. Passwords
/// are passed in; only the privileged login's comes from Latchkey's
/// store.
pub trait CredentialServer {
    /// The engine family this server speaks; secrets of the other are
    /// refused before any login.
    fn family(&self) -> Family;

    /// Logs in as `user` with `password` and runs the templates' check
    /// query. `LoginRefused` when the server refuses the credentials.
    fn test_login(
        &self,
        user: &str,
        password: &str,
    ) -> impl Future<Output = Result<(), ServerError>> + Send;

    /// Logs in as `user` with `password` and changes its own password to
    /// `new_password` (single user). `LoginRefused` when `password` no
    /// longer works.
    fn change_own_password(
        &self,
        user: &str,
        password: &str,
        new_password: &str,
    ) -> impl Future<Output = Result<(), ServerError>> + Send;

    /// Logs in as `master` with the password Latchkey stores for it; if
    /// `target` does not exist, creates it with `source`'s grants;
    /// sets `target`'s password to `new_password` (alternating users).
    fn set_clone_password(
        &self,
        master: &str,
        source: &str,
        target: &str,
        new_password: &str,
    ) -> impl Future<Output = Result<CloneOutcome, ServerError>> + Send;
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("a secret for engine {engine} cannot be rotated on a {server:?} server")]
    WrongServer { engine: Engine, server: Family },
    /// setSecret could log in with neither the current nor the previous
    /// credential (single user), or not with the current one
    /// (alternating users: refusing to act for a caller who cannot).
    #[error("setSecret: no credential in the secret logs in as {user:?}")]
    NoWorkingCredential { user: String },
    #[error("testSecret: the server refused the pending credential of {user:?}")]
    PendingRefused { user: String },
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// What setSecret did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// The pending credential already logs in (a retried step): nothing
    /// changed.
    AlreadySet,
    /// The password was changed.
    Changed,
    /// The clone was created with its grants and the password (first
    /// alternating rotation).
    CloneCreated,
}

/// setSecret, as AWS's templates do it: checks the plan; returns at once
/// if the pending credential already works; otherwise changes the
/// password, by the user itself (single user: current, else previous
/// password) or by the privileged login after checking the current
/// credential works (alternating users).
pub async fn set_secret<S: CredentialServer + ?Sized>(
    server: &S,
    strategy: Strategy,
    current: &Secret,
    pending: &Secret,
    previous: Option<&Secret>,
) -> Result<SetOutcome, RotationError> {
    let plan = plan_set(strategy, current, pending, previous)?;
    same_family(server, current)?;
    if logs_in(server, &pending.username, &pending.password).await? {
        return Ok(SetOutcome::AlreadySet);
    }
    match plan {
        SetPlan::ChangeOwnPassword { user, logins } => {
            for login in logins {
                match server
                    .change_own_password(user, &login.password, &pending.password)
                    .await
                {
                    Ok(()) => return Ok(SetOutcome::Changed),
                    Err(ServerError::LoginRefused { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(RotationError::NoWorkingCredential {
                user: user.to_owned(),
            })
        }
        SetPlan::SetClonePassword {
            master,
            source,
            target,
        } => {
            if !logs_in(server, &source.username, &source.password).await? {
                return Err(RotationError::NoWorkingCredential {
                    user: source.username.clone(),
                });
            }
            let outcome = server
                .set_clone_password(master, &source.username, target, &pending.password)
                .await?;
            Ok(match outcome {
                CloneOutcome::Created => SetOutcome::CloneCreated,
                CloneOutcome::Existed => SetOutcome::Changed,
            })
        }
    }
}

/// testSecret: the pending credential logs in and runs the check query.
pub async fn test_secret<S: CredentialServer + ?Sized>(
    server: &S,
    pending: &Secret,
) -> Result<(), RotationError> {
    same_family(server, pending)?;
    if logs_in(server, &pending.username, &pending.password).await? {
        Ok(())
    } else {
        Err(RotationError::PendingRefused {
            user: pending.username.clone(),
        })
    }
}

fn same_family<S: CredentialServer + ?Sized>(
    server: &S,
    secret: &Secret,
) -> Result<(), RotationError> {
    if secret.engine.family() == server.family() {
        Ok(())
    } else {
        Err(RotationError::WrongServer {
            engine: secret.engine,
            server: server.family(),
        })
    }
}

async fn logs_in<S: CredentialServer + ?Sized>(
    server: &S,
    user: &str,
    password: &str,
) -> Result<bool, ServerError> {
    match server.test_login(user, password).await {
        Ok(()) => Ok(true),
        Err(ServerError::LoginRefused { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use zeroize::Zeroizing;

    use super::*;
    use crate::plan::pending_secret;

    /// A server in memory: users and their passwords, and what was done.
    #[derive(Default)]
    struct Fake {
        users: Mutex<HashMap<String, String>>,
        log: Mutex<Vec<String>>,
    }

    impl Fake {
        fn with(users: &[(&str, &str)]) -> Self {
            let fake = Fake::default();
            for (u, p) in users {
                fake.set(u, p);
            }
            fake
        }
        fn set(&self, user: &str, password: &str) {
            self.users
                .lock()
                .unwrap()
                .insert(user.to_owned(), password.to_owned());
        }
        fn check(&self, user: &str, password: &str) -> Result<(), ServerError> {
            match self.users.lock().unwrap().get(user) {
                Some(p) if p == password => Ok(()),
                _ => Err(ServerError::LoginRefused {
                    user: user.to_owned(),
                }),
            }
        }
        fn note(&self, s: String) {
            self.log.lock().unwrap().push(s);
        }
    }

    impl CredentialServer for Fake {
        fn family(&self) -> Family {
            Family::Postgres
        }
        async fn test_login(&self, user: &str, password: &str) -> Result<(), ServerError> {
            self.check(user, password)
        }
        async fn change_own_password(
            &self,
            user: &str,
            password: &str,
            new_password: &str,
        ) -> Result<(), ServerError> {
            self.check(user, password)?;
            self.note(format!("own {user}"));
            self.set(user, new_password);
            Ok(())
        }
        async fn set_clone_password(
            &self,
            master: &str,
            source: &str,
            target: &str,
            new_password: &str,
        ) -> Result<CloneOutcome, ServerError> {
            self.note(format!("{master}: {source} -> {target}"));
            let existed = self.users.lock().unwrap().contains_key(target);
            self.set(target, new_password);
            Ok(if existed {
                CloneOutcome::Existed
            } else {
                CloneOutcome::Created
            })
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        // The fake never awaits anything that is not ready.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn secret(user: &str, password: &str) -> Secret {
        Secret::parse(&format!(
            r#"{{"engine":"postgres","host":"db","username":"{user}","password":"{password}","master_username":"admin"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn single_user_three_times() {
        let server = Fake::with(&[("app", "p0")]);
        let mut current = secret("app", "p0");
        let mut previous: Option<Secret> = None;
        for n in 1..=3 {
            let pending = pending_secret(
                &current,
                Strategy::SingleUser,
                Zeroizing::new(format!("p{n}")),
            )
            .unwrap();
            let outcome = block_on(set_secret(
                &server,
                Strategy::SingleUser,
                &current,
                &pending,
                previous.as_ref(),
            ));
            assert_eq!(outcome, Ok(SetOutcome::Changed));
            // A retry finds it done.
            assert_eq!(
                block_on(set_secret(
                    &server,
                    Strategy::SingleUser,
                    &current,
                    &pending,
                    None
                )),
                Ok(SetOutcome::AlreadySet)
            );
            assert_eq!(block_on(test_secret(&server, &pending)), Ok(()));
            assert!(server.check("app", &current.password).is_err());
            previous = Some(std::mem::replace(&mut current, pending));
        }
    }

    #[test]
    fn single_user_falls_back_to_previous() {
        let server = Fake::with(&[("app", "p0")]);
        let previous = secret("app", "p0");
        let current = secret("app", "lost");
        let pending = secret("app", "p2");
        assert_eq!(
            block_on(set_secret(
                &server,
                Strategy::SingleUser,
                &current,
                &pending,
                None
            )),
            Err(RotationError::NoWorkingCredential { user: "app".into() })
        );
        assert_eq!(
            block_on(set_secret(
                &server,
                Strategy::SingleUser,
                &current,
                &pending,
                Some(&previous)
            )),
            Ok(SetOutcome::Changed)
        );
        assert!(server.check("app", "p2").is_ok());
    }

    #[test]
    fn alternating_users() {
        let server = Fake::with(&[("app", "p0"), ("admin", "m")]);
        let mut current = secret("app", "p0");
        let mut outcomes = Vec::new();
        for n in 1..=3 {
            let pending = pending_secret(
                &current,
                Strategy::AlternatingUsers,
                Zeroizing::new(format!("p{n}")),
            )
            .unwrap();
            outcomes.push(
                block_on(set_secret(
                    &server,
                    Strategy::AlternatingUsers,
                    &current,
                    &pending,
                    None,
                ))
                .unwrap(),
            );
            assert_eq!(block_on(test_secret(&server, &pending)), Ok(()));
            // The current credential still works.
            assert!(server.check(&current.username, &current.password).is_ok());
            current = pending;
        }
        assert_eq!(
            outcomes,
            [
                SetOutcome::CloneCreated,
                SetOutcome::Changed,
                SetOutcome::Changed
            ]
        );
        assert_eq!(
            *server.log.lock().unwrap(),
            [
                "admin: app -> app_clone",
                "admin: app_clone -> app",
                "admin: app -> app_clone"
            ]
        );
    }

    #[test]
    fn alternating_refuses_a_current_credential_that_does_not_log_in() {
        let server = Fake::with(&[("app", "p0")]);
        let current = secret("app", "wrong");
        let pending = secret("app_clone", "p1");
        assert_eq!(
            block_on(set_secret(
                &server,
                Strategy::AlternatingUsers,
                &current,
                &pending,
                None
            )),
            Err(RotationError::NoWorkingCredential { user: "app".into() })
        );
        assert!(server.log.lock().unwrap().is_empty());
    }

    #[test]
    fn test_secret_refused_and_plan_errors_come_before_any_login() {
        let server = Fake::with(&[("app", "p0")]);
        assert_eq!(
            block_on(test_secret(&server, &secret("app", "nope"))),
            Err(RotationError::PendingRefused { user: "app".into() })
        );
        let err = block_on(set_secret(
            &server,
            Strategy::SingleUser,
            &secret("app", "p0"),
            &secret("admin", "x"),
            None,
        ))
        .unwrap_err();
        assert!(matches!(
            err,
            RotationError::Plan(PlanError::WrongUser { .. })
        ));
    }
}
