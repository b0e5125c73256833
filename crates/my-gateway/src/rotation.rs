//! Credential rotation's MySQL/MariaDB side: [`CredentialServer`] over
//! the gateway's own upstream logins ([`upstream::session`]), with the
//! statements of [`latchkey_rotation::mysql`]. On MariaDB passwords reach
//! the server only as `mysql_native_password` hashes; on MySQL as clear
//! text in the statements MySQL rewrites before logging them.

use std::sync::Arc;
use std::time::Duration;

use latchkey_identity::AppState;
use latchkey_rotation::mysql::{self as sql, Flavor, TEST_QUERY};
use latchkey_rotation::{CloneOutcome, CredentialServer, Family, ServerError};
use latchkey_store::{Database, Engine, UpstreamAuth};

use crate::upstream::{self, QueryFailed, Refused, Upstream};

/// How long one step's statements may take once logged in.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A registered MySQL or MariaDB database's server, for rotation.
pub struct MyCredentialServer {
    state: Arc<AppState>,
    db: Database,
}

impl MyCredentialServer {
    /// For `db`, which must be a MySQL database whose upstream logins use
    /// passwords.
    pub fn new(state: Arc<AppState>, db: Database) -> Result<Self, ServerError> {
        if db.engine != Engine::Mysql {
            return Err(ServerError::Unavailable(format!(
                "database {} is not MySQL",
                db.name
            )));
        }
        if db.upstream_auth != UpstreamAuth::Password {
            return Err(ServerError::Unavailable(format!(
                "database {} logs in upstream by {}, not by password",
                db.name,
                db.upstream_auth.as_str()
            )));
        }
        Ok(Self { state, db })
    }

    async fn login(&self, user: &str, password: Option<&str>) -> Result<Upstream, ServerError> {
        let mut up = self.connect(user, password).await?;
        let limits = sql::session_limits(Flavor::of_version(&up.server_version));
        run(&mut up, "the session limits", limits, true).await?;
        Ok(up)
    }

    async fn connect(&self, user: &str, password: Option<&str>) -> Result<Upstream, ServerError> {
        upstream::session(&self.state, &self.db, user, password)
            .await
            .map_err(|e| match e.downcast_ref::<Refused>() {
                // Access denied, and the refusals of a plugin, of an
                // expired password and of a locked account (MySQL 3118,
                // MariaDB 4151).
                Some(Refused(err))
                    if matches!(err.code, 1044 | 1045 | 1251 | 1698 | 1862 | 3118 | 4151) =>
                {
                    ServerError::LoginRefused {
                        user: user.to_owned(),
                    }
                }
                Some(Refused(err)) => ServerError::Statement {
                    action: "login",
                    code: err.code.to_string(),
                    detail: Some(err.message.clone()),
                },
                None => ServerError::Unavailable(format!("{e:#}")),
            })
    }
}

/// Runs one statement. `secret_free` says whether the server's message
/// may be passed on: a syntax error quotes the statement, and a
/// password statement holds a hash or the password.
async fn run(
    up: &mut Upstream,
    action: &'static str,
    statement: &str,
    secret_free: bool,
) -> Result<Vec<Vec<Option<String>>>, ServerError> {
    let result = tokio::time::timeout(STATEMENT_TIMEOUT, upstream::query(up, statement))
        .await
        .map_err(|_| ServerError::Unavailable(format!("{action} timed out")))?;
    result.map_err(|e| match e.downcast_ref::<QueryFailed>() {
        Some(QueryFailed(err)) => ServerError::Statement {
            action,
            code: err.code.to_string(),
            detail: secret_free.then(|| err.message.clone()),
        },
        None => ServerError::Unavailable(format!("{action}: {e:#}")),
    })
}

/// The host part of `user`'s one account; `None` when it has none.
async fn host_of(up: &mut Upstream, user: &str) -> Result<Option<String>, ServerError> {
    let rows = run(up, "the account lookup", &sql::hosts_of(user), true).await?;
    match rows.as_slice() {
        [] => Ok(None),
        [row] => match row.as_slice() {
            [Some(host)] => Ok(Some(host.clone())),
            _ => Err(ServerError::Unavailable(
                "the account lookup returned an unexpected row".into(),
            )),
        },
        _ => Err(ServerError::Accounts {
            user: user.to_owned(),
            found: rows.len(),
        }),
    }
}

impl CredentialServer for MyCredentialServer {
    fn family(&self) -> Family {
        Family::Mysql
    }

    async fn test_login(&self, user: &str, password: &str) -> Result<(), ServerError> {
        let mut up = self.login(user, Some(password)).await?;
        run(&mut up, "the check query", TEST_QUERY, true).await?;
        Ok(())
    }

    async fn change_own_password(
        &self,
        user: &str,
        password: &str,
        new_password: &str,
    ) -> Result<(), ServerError> {
        let mut up = self.login(user, Some(password)).await?;
        // Without FOR, the statement changes the account the server
        // matched at login, host part and all.
        let flavor = Flavor::of_version(&up.server_version);
        let statement = sql::set_own_password(flavor, new_password)?;
        run(&mut up, "SET PASSWORD", &statement, false).await?;
        Ok(())
    }

    async fn set_clone_password(
        &self,
        master: &str,
        source: &str,
        target: &str,
        new_password: &str,
    ) -> Result<CloneOutcome, ServerError> {
        let mut up = self.login(master, None).await?;
        let flavor = Flavor::of_version(&up.server_version);
        let host = host_of(&mut up, source)
            .await?
            .ok_or_else(|| ServerError::Accounts {
                user: source.to_owned(),
                found: 0,
            })?;
        // The clone shares the source's host part. It is created locked,
        // the grants are copied (every rotation, as AWS's templates do:
        // grants added to either user since reach the other), and only
        // then does it get the password and open. MySQL's account
        // statements are not transactional; this order makes a retry
        // complete a setup that failed half-way.
        let outcome = match host_of(&mut up, target).await? {
            None => {
                let create = sql::create_locked_user(target, &host)?;
                run(&mut up, "CREATE USER", &create, true).await?;
                CloneOutcome::Created
            }
            Some(h) if h == host => CloneOutcome::Existed,
            Some(_) => {
                return Err(ServerError::Unavailable(format!(
                    "{target:?} exists with another host part than {source:?}"
                )));
            }
        };
        let grants = run(
            &mut up,
            "SHOW GRANTS",
            &sql::show_grants(source, &host)?,
            true,
        )
        .await?;
        for row in grants {
            let Some(Some(grant)) = row.into_iter().next() else {
                continue;
            };
            let copy = sql::copy_grant(&grant, (source, &host), (target, &host))?;
            // The copy holds no password (its IDENTIFIED clause is gone),
            // but the server's message on it could quote the source row.
            run(&mut up, "copying a grant", &copy, false).await?;
        }
        let alter = sql::set_password(flavor, target, &host, new_password)?;
        run(&mut up, "ALTER USER", &alter, false).await?;
        Ok(outcome)
    }
}
