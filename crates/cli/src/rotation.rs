//! `serve`'s rotation job: the engine-neutral job of `latchkey-rotator`
//! joined to both gateways' credential servers.

use std::sync::Arc;

use latchkey_identity::AppState;
use latchkey_my_gateway::rotation::MyCredentialServer;
use latchkey_pg_gateway::rotation::PgCredentialServer;
use latchkey_rotation::{CloneOutcome, CredentialServer, Family, ServerError};
use latchkey_rotator::Servers;
use latchkey_store::{Database, Engine};

/// A registered database's server, whichever its engine.
pub enum EngineServer {
    Postgres(PgCredentialServer),
    Mysql(MyCredentialServer),
}

impl CredentialServer for EngineServer {
    fn family(&self) -> Family {
        match self {
            Self::Postgres(s) => s.family(),
            Self::Mysql(s) => s.family(),
        }
    }

    async fn test_login(&self, user: &str, password: &str) -> Result<(), ServerError> {
        match self {
            Self::Postgres(s) => s.test_login(user, password).await,
            Self::Mysql(s) => s.test_login(user, password).await,
        }
    }

    async fn change_own_password(
        &self,
        user: &str,
        password: &str,
        new_password: &str,
    ) -> Result<(), ServerError> {
        match self {
            Self::Postgres(s) => s.change_own_password(user, password, new_password).await,
            Self::Mysql(s) => s.change_own_password(user, password, new_password).await,
        }
    }

    async fn set_clone_password(
        &self,
        master: &str,
        source: &str,
        target: &str,
        new_password: &str,
    ) -> Result<CloneOutcome, ServerError> {
        match self {
            Self::Postgres(s) => {
                s.set_clone_password(master, source, target, new_password)
                    .await
            }
            Self::Mysql(s) => {
                s.set_clone_password(master, source, target, new_password)
                    .await
            }
        }
    }
}

/// Both gateways' credential servers.
pub struct GatewayServers;

impl Servers for GatewayServers {
    type Server = EngineServer;

    fn server(
        &self,
        state: &Arc<AppState>,
        db: &Database,
        dbname: Option<&str>,
    ) -> Result<EngineServer, ServerError> {
        Ok(match db.engine {
            Engine::Postgres => {
                EngineServer::Postgres(PgCredentialServer::new(state.clone(), db.clone(), dbname)?)
            }
            Engine::Mysql => {
                EngineServer::Mysql(MyCredentialServer::new(state.clone(), db.clone())?)
            }
        })
    }
}

/// The crash tests' hook: `LATCHKEY_TEST_CRASH_AFTER_ROTATION_STEP=setSecret`
/// (or another step) aborts `serve` once that step's work is done and
/// before the job records it.
pub fn crash_after_from_env() -> anyhow::Result<Option<latchkey_secrets::Step>> {
    let Ok(name) = std::env::var("LATCHKEY_TEST_CRASH_AFTER_ROTATION_STEP") else {
        return Ok(None);
    };
    latchkey_secrets::Step::ALL
        .into_iter()
        .find(|s| s.as_str() == name)
        .map(Some)
        .ok_or_else(|| {
            anyhow::anyhow!("LATCHKEY_TEST_CRASH_AFTER_ROTATION_STEP: unknown step {name:?}")
        })
}
