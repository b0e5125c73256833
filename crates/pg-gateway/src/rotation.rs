//! Credential rotation's PostgreSQL side: [`CredentialServer`] over the
//! gateway's own upstream logins ([`upstream::session`]), with the
//! statements of [`latchkey_rotation::postgres`]. Passwords reach the
//! server only as SCRAM-SHA-256 verifiers.

use std::sync::Arc;
use std::time::Duration;

use latchkey_identity::AppState;
use latchkey_rotation::postgres::{self as sql, TEST_QUERY};
use latchkey_rotation::scram::{self, DEFAULT_ITERATIONS};
use latchkey_rotation::{CloneOutcome, CredentialServer, Family, ServerError, random};
use latchkey_store::{Database, Engine, UpstreamAuth};

use crate::upstream::{self, Refused, Upstream};

/// How long one step's statements may take once logged in.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A registered PostgreSQL database's server, for rotation.
pub struct PgCredentialServer {
    state: Arc<AppState>,
    db: Database,
    /// Where logins go: the secret's `dbname`, else `postgres` (the
    /// templates' default). Roles are the cluster's, whichever it is.
    dbname: String,
}

impl PgCredentialServer {
    /// For `db`, which must be a PostgreSQL database whose upstream logins
    /// use passwords.
    pub fn new(
        state: Arc<AppState>,
        db: Database,
        dbname: Option<&str>,
    ) -> Result<Self, ServerError> {
        if db.engine != Engine::Postgres {
            return Err(ServerError::Unavailable(format!(
                "database {} is not PostgreSQL",
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
        Ok(Self {
            state,
            db,
            dbname: dbname.unwrap_or("postgres").to_owned(),
        })
    }

    async fn login(&self, user: &str, password: Option<&str>) -> Result<Upstream, ServerError> {
        let mut up = self.connect(user, password).await?;
        run(&mut up, "the session limits", sql::SESSION_LIMITS, true).await?;
        Ok(up)
    }

    async fn connect(&self, user: &str, password: Option<&str>) -> Result<Upstream, ServerError> {
        upstream::session(&self.state, &self.db, user, &self.dbname, password)
            .await
            .map_err(|e| match e.downcast_ref::<Refused>() {
                // Class 28: invalid authorization (bad password, no such
                // role, pg_hba refusal, NOLOGIN).
                Some(r) if r.code.starts_with("28") => ServerError::LoginRefused {
                    user: user.to_owned(),
                },
                Some(r) => ServerError::Statement {
                    action: "login",
                    code: r.code.clone(),
                    detail: Some(r.message.clone()),
                },
                None => ServerError::Unavailable(format!("{e:#}")),
            })
    }
}

/// Runs one statement. `secret_free` says whether the server's message
/// may be passed on: a syntax error quotes the statement, and a
/// password statement holds a verifier.
async fn run(
    up: &mut Upstream,
    action: &'static str,
    statement: &str,
    secret_free: bool,
) -> Result<Vec<Vec<Option<String>>>, ServerError> {
    let cancel = up.cancel.clone();
    let Ok(result) =
        tokio::time::timeout(STATEMENT_TIMEOUT, upstream::simple_query(up, statement)).await
    else {
        // The server's own limits should have spoken first; stop the
        // statement anyway, or it could still apply after the failure is
        // recorded.
        crate::send_cancel(&cancel).await;
        return Err(ServerError::Unavailable(format!("{action} timed out")));
    };
    result.map_err(|e| match e.downcast_ref::<Refused>() {
        Some(r) => ServerError::Statement {
            action,
            code: r.code.clone(),
            detail: secret_free.then(|| r.message.clone()),
        },
        None => ServerError::Unavailable(format!("{action}: {e:#}")),
    })
}

/// A verifier for `password` with a fresh salt.
fn verifier(password: &str) -> Result<scram::Verifier, ServerError> {
    Ok(scram::verifier(
        password,
        &random::salt()?,
        DEFAULT_ITERATIONS,
    ))
}

impl CredentialServer for PgCredentialServer {
    fn family(&self) -> Family {
        Family::Postgres
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
        let statement = sql::set_password(user, &verifier(new_password)?)?;
        run(&mut up, "ALTER ROLE", &statement, false).await?;
        Ok(())
    }

    async fn set_clone_password(
        &self,
        master: &str,
        source: &str,
        target: &str,
        new_password: &str,
    ) -> Result<CloneOutcome, ServerError> {
        let verifier = verifier(new_password)?;
        let mut up = self.login(master, None).await?;
        // One transaction: a clone is never left without its membership.
        // On any error the session is dropped and the server rolls back.
        run(&mut up, "BEGIN", "BEGIN", true).await?;
        let exists = !run(&mut up, "the role lookup", &sql::role_exists(target)?, true)
            .await?
            .is_empty();
        let outcome = if exists {
            let statement = sql::set_password(target, &verifier)?;
            run(&mut up, "ALTER ROLE", &statement, false).await?;
            CloneOutcome::Existed
        } else {
            let [create, grant] = sql::create_clone(target, source, &verifier)?;
            run(&mut up, "CREATE ROLE", &create, false).await?;
            run(&mut up, "GRANT", &grant, true).await?;
            CloneOutcome::Created
        };
        run(&mut up, "COMMIT", "COMMIT", true).await?;
        Ok(outcome)
    }
}
