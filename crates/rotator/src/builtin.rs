//! Built-in rotation of a registered database's credential: the secret's
//! value is AWS's database secret (`latchkey_rotation::Secret`), the
//! server is reached as the gateway reaches it, and the gateway's own
//! upstream login for the user follows the secret.
//!
//! The secret finds its database by `dbInstanceIdentifier` (the
//! registered name, as AWS's templates name the RDS instance), else by
//! `host` and `port` matching exactly one registration's upstream.
//!
//! The gateway's login is keyed by the client's database user: the
//! rotated user for single user, and for alternating users the name
//! without `_clone` (the gateway logs in as whichever of the pair is
//! current). setSecret gives the gateway the pending credential as its
//! next login before the server changes, so a login in between falls
//! back to it; the new credential becomes the gateway's current login
//! once it is in force (single user: when setSecret has changed it;
//! alternating users: at finishSecret), and pooled connections opened
//! with the old one are drained.

use latchkey_rotation::plan::CLONE_SUFFIX;
use latchkey_rotation::{
    PasswordRules, Secret as DbSecret, Strategy, pending_secret, random, set_secret, test_secret,
};
use latchkey_secrets::secret::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Secret, SecretValue};
use latchkey_secrets::{RotationFunction, Step};
use latchkey_store::{Database, Engine};

use crate::{JobError, Rotator, Servers};

/// The field naming the registered database.
pub const DATABASE_FIELD: &str = "dbInstanceIdentifier";

fn strategy(function: &RotationFunction) -> Result<Strategy, JobError> {
    match function {
        RotationFunction::SingleUser => Ok(Strategy::SingleUser),
        RotationFunction::AlternatingUsers => Ok(Strategy::AlternatingUsers),
        RotationFunction::Webhook(_) => Err(JobError::Invalid("not a built-in rotation".into())),
    }
}

/// The client-side database user whose gateway login a rotation of
/// `username` changes.
pub fn gateway_user(strategy: Strategy, username: &str) -> &str {
    match strategy {
        Strategy::SingleUser => username,
        Strategy::AlternatingUsers => username.strip_suffix(CLONE_SUFFIX).unwrap_or(username),
    }
}

/// The registered database `value` names.
pub fn database_for(databases: &[Database], value: &DbSecret) -> Result<Database, JobError> {
    let named = value.other.get(DATABASE_FIELD).and_then(|v| v.as_str());
    let db = match named {
        Some(name) => databases
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| JobError::Database(format!("no database {name:?} is registered")))?,
        None => {
            let mut matching = databases.iter().filter(|d| {
                d.upstream.rsplit_once(':').is_some_and(|(host, port)| {
                    host.trim_matches(['[', ']'])
                        .eq_ignore_ascii_case(&value.host)
                        && port.parse() == Ok(value.port)
                })
            });
            match (matching.next(), matching.next()) {
                (Some(db), None) => db,
                (None, _) => {
                    return Err(JobError::Database(format!(
                        "no registered database has upstream {}:{}; name one with \"{DATABASE_FIELD}\"",
                        value.host, value.port
                    )));
                }
                (Some(_), Some(_)) => {
                    return Err(JobError::Database(format!(
                        "several registered databases have upstream {}:{}; name one with \"{DATABASE_FIELD}\"",
                        value.host, value.port
                    )));
                }
            }
        }
    };
    let family_matches = match db.engine {
        Engine::Postgres => value.engine.family() == latchkey_rotation::Family::Postgres,
        Engine::Mysql => value.engine.family() == latchkey_rotation::Family::Mysql,
    };
    if !family_matches {
        return Err(JobError::Database(format!(
            "database {} is {}, the secret is for {}",
            db.name,
            db.engine.as_str(),
            value.engine
        )));
    }
    Ok(db.clone())
}

impl<S: Servers> Rotator<S> {
    /// A version's value, as a database secret.
    fn db_value(&self, secret: &Secret, version: &str) -> Result<DbSecret, JobError> {
        let bytes = self
            .state
            .store
            .secret_value(&secret.arn, version)?
            .ok_or_else(|| JobError::Invalid(format!("version {version} has no value")))?;
        match SecretValue::decode(&bytes) {
            Some(SecretValue::String(text)) => Ok(DbSecret::parse(&text)?),
            Some(SecretValue::Binary(_)) => Err(JobError::Invalid(
                "a built-in rotation needs a SecretString, not a SecretBinary".into(),
            )),
            None => Err(JobError::Invalid(format!(
                "version {version} is unreadable"
            ))),
        }
    }

    fn staged_value(&self, secret: &Secret, stage: &str) -> Result<DbSecret, JobError> {
        let version = secret
            .staged(stage)
            .ok_or_else(|| JobError::Invalid(format!("the secret has no {stage} version")))?;
        self.db_value(secret, &version.id)
    }

    fn database(&self, value: &DbSecret) -> Result<Database, JobError> {
        database_for(&self.state.store.list_databases()?, value)
    }

    pub(crate) async fn builtin_step(
        &self,
        function: &RotationFunction,
        secret: &Secret,
        token: &str,
        step: Step,
    ) -> Result<(), JobError> {
        let strategy = strategy(function)?;
        match step {
            Step::CreateSecret => self.create(secret, token, strategy),
            Step::SetSecret => {
                let current = self.staged_value(secret, AWSCURRENT)?;
                let pending = self.db_value(secret, token)?;
                // Single user logs in as the user to change its password:
                // with the current password, else the previous one (a
                // rotation that changed the server but never finished).
                let previous = match strategy {
                    Strategy::SingleUser => self.staged_value(secret, AWSPREVIOUS).ok(),
                    Strategy::AlternatingUsers => None,
                };
                let db = self.database(&current)?;
                self.database(&pending)
                    .ok()
                    .filter(|p| p.name == db.name)
                    .ok_or_else(|| {
                        JobError::Database("the pending value names another database".into())
                    })?;
                let user = gateway_user(strategy, &current.username);
                let store = &self.state.store;
                if store.database_logins(&db.name, user)?.is_some() {
                    store.set_database_next_login(
                        &db.name,
                        user,
                        Some((&pending.username, &pending.password)),
                    )?;
                }
                let server = self
                    .servers
                    .server(&self.state, &db, current.dbname.as_deref())?;
                set_secret(&server, strategy, &current, &pending, previous.as_ref()).await?;
                // Single user: the old password no longer works, so the
                // gateway moves to the new one now rather than trying the
                // old one first on every login until finishSecret.
                if strategy == Strategy::SingleUser
                    && store.database_logins(&db.name, user)?.is_some()
                {
                    store.set_database_login(
                        &db.name,
                        user,
                        &pending.username,
                        &pending.password,
                    )?;
                    self.state.bump_upstream_credentials_epoch();
                }
                Ok(())
            }
            Step::TestSecret => {
                let pending = self.db_value(secret, token)?;
                let db = self.database(&pending)?;
                let server = self
                    .servers
                    .server(&self.state, &db, pending.dbname.as_deref())?;
                test_secret(&server, &pending).await?;
                Ok(())
            }
            Step::FinishSecret => {
                let pending = self.db_value(secret, token)?;
                let db = self.database(&pending)?;
                let user = gateway_user(strategy, &pending.username);
                let store = &self.state.store;
                if store.database_logins(&db.name, user)?.is_some() {
                    store.set_database_login(
                        &db.name,
                        user,
                        &pending.username,
                        &pending.password,
                    )?;
                    self.state.bump_upstream_credentials_epoch();
                }
                Ok(())
            }
        }
    }

    /// createSecret: the pending version, unless a run before a crash
    /// made it already.
    fn create(&self, secret: &Secret, token: &str, strategy: Strategy) -> Result<(), JobError> {
        if secret.version(token).is_some() {
            return Ok(());
        }
        let current = self.staged_value(secret, AWSCURRENT)?;
        let pending = pending_secret(
            &current,
            strategy,
            random::password(&PasswordRules::default())?,
        )?;
        self.database(&pending)?;
        let encoded = SecretValue::String(pending.to_json()).encode();
        let now = self.state.now();
        self.modify(&secret.arn, |s| {
            if s.version(token).is_some() {
                return Ok(((), None));
            }
            s.check_rotation_start(token)?;
            let dropped = s.add_version(token, &[AWSPENDING.to_owned()], now)?;
            Ok(((), Some((token.to_owned(), encoded.clone(), dropped))))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    fn db(name: &str, engine: Engine, upstream: &str) -> Database {
        Database {
            name: name.into(),
            engine,
            upstream: upstream.into(),
            ..Database::default()
        }
    }

    fn value(json: &str) -> DbSecret {
        DbSecret::parse(json).unwrap()
    }

    #[test]
    fn a_secret_finds_its_database_by_name_or_upstream() {
        let dbs = [
            db("orders", Engine::Postgres, "10.0.0.5:5432"),
            db("shop", Engine::Mysql, "[::1]:3306"),
            db("twin-a", Engine::Postgres, "twin:5432"),
            db("twin-b", Engine::Postgres, "twin:5432"),
        ];
        let pg = r#""engine":"postgres","username":"app","password":"x""#;
        let by_host = value(&format!(r#"{{{pg},"host":"10.0.0.5","port":5432}}"#));
        assert_eq!(database_for(&dbs, &by_host).unwrap().name, "orders");
        let by_name = value(&format!(
            r#"{{{pg},"host":"twin","dbInstanceIdentifier":"twin-b"}}"#
        ));
        assert_eq!(database_for(&dbs, &by_name).unwrap().name, "twin-b");
        let ambiguous = value(&format!(r#"{{{pg},"host":"twin"}}"#));
        assert!(
            database_for(&dbs, &ambiguous)
                .unwrap_err()
                .to_string()
                .contains("several")
        );
        let nowhere = value(&format!(r#"{{{pg},"host":"elsewhere"}}"#));
        assert!(database_for(&dbs, &nowhere).is_err());
        let v6 = value(r#"{"engine":"mariadb","host":"::1","username":"a","password":"b"}"#);
        assert_eq!(database_for(&dbs, &v6).unwrap().name, "shop");
        // The engine must match the registration's.
        let wrong = value(&format!(r#"{{{pg},"host":"::1","port":3306}}"#));
        assert!(database_for(&dbs, &wrong).is_err());
    }

    #[test]
    fn the_gateway_user_of_a_pair_is_the_name_without_clone() {
        assert_eq!(gateway_user(Strategy::AlternatingUsers, "app_clone"), "app");
        assert_eq!(gateway_user(Strategy::AlternatingUsers, "app"), "app");
        assert_eq!(gateway_user(Strategy::SingleUser, "app_clone"), "app_clone");
    }
}
