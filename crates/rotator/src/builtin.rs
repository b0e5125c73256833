//! Built-in rotation of a registered database's credential: the secret's
//! value is AWS's database secret (`latchkey_rotation::Secret`), the
//! server is reached as the gateway reaches it, and the gateway's own
//! upstream login for the user follows the secret.
//!
//! Only a secret bound to a login Latchkey keeps is rotated
//! ([`latchkey_store::Databases::bind_database_secret`], made by `db
//! set-password` on a database registered with `--rotate-every`). The
//! binding, not the value, says which database and user: a value naming
//! another user (other than the bound user's `_clone`) or another database
//! is refused, and the privileged login of alternating users is the one
//! registered (`--rotation-master-user`), whatever the value says. So
//! whoever may write the secret can aim the job at nothing else.
//!
//! setSecret gives the gateway the pending credential as its next login
//! once the plan is checked and before the server changes, so a login in
//! between falls back to it; the new credential becomes the gateway's
//! current login once it is in force (single user: when setSecret has
//! changed it; alternating users: at finishSecret), and pooled
//! connections opened with the old one are drained.

use latchkey_rotation::plan::{CLONE_SUFFIX, plan_set};
use latchkey_rotation::{
    Family, PasswordRules, Secret as DbSecret, Strategy, pending_secret, random, set_secret,
    test_secret,
};
use latchkey_secrets::secret::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Secret, SecretValue};
use latchkey_secrets::{RotationFunction, Step};
use latchkey_store::{Database, Engine};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{JobError, Rotator, Servers};

/// The field naming the registered database, as AWS's templates name the
/// RDS instance.
pub const DATABASE_FIELD: &str = "dbInstanceIdentifier";

fn strategy(function: &RotationFunction) -> Result<Strategy, JobError> {
    match function {
        RotationFunction::SingleUser => Ok(Strategy::SingleUser),
        RotationFunction::AlternatingUsers => Ok(Strategy::AlternatingUsers),
        RotationFunction::Webhook(_) => Err(JobError::Invalid("not a built-in rotation".into())),
    }
}

/// What a secret bound to a database login may rotate.
pub struct Binding {
    pub db: Database,
    /// The client user whose gateway login the secret holds.
    pub user: String,
    pub strategy: Strategy,
    /// The registered privileged login (alternating users).
    pub master: Option<String>,
}

impl Binding {
    /// Checks `value` against the binding, and puts the registered
    /// privileged login in it.
    pub fn check(&self, mut value: DbSecret) -> Result<DbSecret, JobError> {
        let clone = format!("{}{CLONE_SUFFIX}", self.user);
        let user_ok = value.username == self.user
            || (self.strategy == Strategy::AlternatingUsers && value.username == clone);
        if !user_ok {
            return Err(JobError::Invalid(format!(
                "the value names user {:?}; this secret holds the login of {:?}",
                value.username, self.user
            )));
        }
        if let Some(named) = value.other.get(DATABASE_FIELD).and_then(|v| v.as_str())
            && named != self.db.name
        {
            return Err(JobError::Invalid(format!(
                "the value names database {named:?}; this secret holds a login on {:?}",
                self.db.name
            )));
        }
        let family = match self.db.engine {
            Engine::Postgres => Family::Postgres,
            Engine::Mysql => Family::Mysql,
        };
        if value.engine.family() != family {
            return Err(JobError::Invalid(format!(
                "the value is for {}, database {} is {}",
                value.engine,
                self.db.name,
                self.db.engine.as_str()
            )));
        }
        value.master_username = self.master.clone();
        Ok(value)
    }
}

impl<S: Servers> Rotator<S> {
    /// A version's value, as a database secret.
    fn db_value(&self, secret: &Secret, version: &str) -> Result<DbSecret, JobError> {
        let bytes = self.raw_value(secret, version)?;
        parse_value(&bytes, version)
    }

    fn raw_value(&self, secret: &Secret, version: &str) -> Result<Zeroizing<Vec<u8>>, JobError> {
        self.state
            .store
            .secret_value(&secret.arn, version)?
            .ok_or_else(|| JobError::Invalid(format!("version {version} has no value")))
    }

    /// The pending value, only if it is the one this rotation made: a
    /// value put under the token by anyone else (after removing and
    /// pruning the job's) is refused.
    fn pending_value(&self, secret: &Secret, token: &str) -> Result<DbSecret, JobError> {
        let bytes = self.raw_value(secret, token)?;
        let made = secret
            .rotation_run()
            .filter(|run| run.token == token)
            .and_then(|run| run.pending_digest.as_deref());
        if made != Some(digest(&bytes).as_str()) {
            return Err(JobError::Invalid(format!(
                "version {token} is not the value this rotation made; cancel the rotation and start another"
            )));
        }
        parse_value(&bytes, token)
    }
}

/// SHA-256 of a stored value, hex: what a run remembers of its pending
/// value (a random password of over 200 bits cannot be found from it).
fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A stored value, as a database secret.
fn parse_value(bytes: &[u8], version: &str) -> Result<DbSecret, JobError> {
    match SecretValue::decode(bytes) {
        Some(SecretValue::String(text)) => Ok(DbSecret::parse(&text)?),
        Some(SecretValue::Binary(_)) => Err(JobError::Invalid(
            "a built-in rotation needs a SecretString, not a SecretBinary".into(),
        )),
        None => Err(JobError::Invalid(format!(
            "version {version} is unreadable"
        ))),
    }
}

impl<S: Servers> Rotator<S> {
    fn staged_value(&self, secret: &Secret, stage: &str) -> Result<DbSecret, JobError> {
        let version = secret
            .staged(stage)
            .ok_or_else(|| JobError::Invalid(format!("the secret has no {stage} version")))?;
        self.db_value(secret, &version.id)
    }

    /// The database login `secret` is bound to, and the strategy its
    /// registration rotates it by, which the function must match.
    fn binding(&self, secret: &Secret, strategy: Strategy) -> Result<Binding, JobError> {
        let store = &self.state.store;
        let (database, user) = store.database_secret_binding(&secret.arn)?.ok_or_else(|| {
            JobError::Database(
                "the secret holds no database login Latchkey keeps (see `db register --rotate-every`)"
                    .into(),
            )
        })?;
        let db = store.get_database(&database)?;
        let schedule = db.rotation.as_ref().ok_or_else(|| {
            JobError::Database(format!("database {database} is not registered to rotate"))
        })?;
        let registered = match schedule.master_user {
            Some(_) => Strategy::AlternatingUsers,
            None => Strategy::SingleUser,
        };
        if registered != strategy {
            return Err(JobError::Database(format!(
                "database {database} is registered for {registered:?} rotation, the secret names {strategy:?}"
            )));
        }
        let master = schedule.master_user.clone();
        Ok(Binding {
            db,
            user,
            strategy,
            master,
        })
    }

    pub(crate) async fn builtin_step(
        &self,
        function: &RotationFunction,
        secret: &Secret,
        token: &str,
        step: Step,
    ) -> Result<(), JobError> {
        let strategy = strategy(function)?;
        let bound = self.binding(secret, strategy)?;
        let (db, user) = (&bound.db, bound.user.as_str());
        let store = &self.state.store;
        match step {
            Step::CreateSecret => self.create(secret, token, &bound),
            Step::SetSecret => {
                let current = bound.check(self.staged_value(secret, AWSCURRENT)?)?;
                let pending = bound.check(self.pending_value(secret, token)?)?;
                // Single user logs in as the user to change its password:
                // with the current password, else the previous one (a
                // rotation that changed the server but never finished).
                let previous = match strategy {
                    Strategy::SingleUser => self
                        .staged_value(secret, AWSPREVIOUS)
                        .and_then(|v| bound.check(v))
                        .ok(),
                    Strategy::AlternatingUsers => None,
                };
                // Checked before the gateway is told of the new login.
                plan_set(strategy, &current, &pending, previous.as_ref())?;
                store.set_database_next_login(
                    &db.name,
                    user,
                    Some((&pending.username, &pending.password)),
                )?;
                let server = self
                    .servers
                    .server(&self.state, db, current.dbname.as_deref())?;
                set_secret(&server, strategy, &current, &pending, previous.as_ref()).await?;
                // Single user: the old password no longer works, so the
                // gateway moves to the new one now rather than trying the
                // old one first on every login until finishSecret.
                if strategy == Strategy::SingleUser {
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
                let pending = bound.check(self.pending_value(secret, token)?)?;
                let server = self
                    .servers
                    .server(&self.state, db, pending.dbname.as_deref())?;
                test_secret(&server, &pending).await?;
                Ok(())
            }
            Step::FinishSecret => {
                let pending = bound.check(self.pending_value(secret, token)?)?;
                store.set_database_login(&db.name, user, &pending.username, &pending.password)?;
                self.state.bump_upstream_credentials_epoch();
                Ok(())
            }
        }
    }

    /// createSecret: the pending version, made by the job and recorded as
    /// done in the same write, so that a version under the token that the
    /// job did not make (one a caller planted) is refused, never used.
    fn create(&self, secret: &Secret, token: &str, bound: &Binding) -> Result<(), JobError> {
        let planted = || {
            JobError::Invalid(format!(
                "version {token} was not made by the rotation; a built-in rotation makes its own"
            ))
        };
        if secret.version(token).is_some() {
            return Err(planted());
        }
        let current = bound.check(self.staged_value(secret, AWSCURRENT)?)?;
        let pending = pending_secret(
            &current,
            bound.strategy,
            random::password(&PasswordRules::default())?,
        )?;
        let encoded = SecretValue::String(pending.to_json()).encode();
        let fingerprint = digest(&encoded);
        let now = self.state.now();
        self.modify(&secret.arn, |s| {
            if s.version(token).is_some() {
                return Err(planted());
            }
            s.check_rotation_start(token)?;
            let dropped = s.add_version(token, &[AWSPENDING.to_owned()], now)?;
            s.set_pending_digest(token, fingerprint.clone())?;
            s.step_done(token, Step::CreateSecret)?;
            Ok(((), Some((token.to_owned(), encoded.clone(), dropped))))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    fn binding(strategy: Strategy) -> Binding {
        Binding {
            db: Database {
                name: "orders".into(),
                engine: Engine::Postgres,
                ..Database::default()
            },
            user: "app".into(),
            strategy,
            master: (strategy == Strategy::AlternatingUsers).then(|| "admin".into()),
        }
    }

    fn value(fields: &str) -> DbSecret {
        DbSecret::parse(&format!(
            r#"{{"engine":"postgres","host":"h","password":"x",{fields}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn a_bound_secret_rotates_only_its_user_on_its_database() {
        let single = binding(Strategy::SingleUser);
        assert!(single.check(value(r#""username":"app""#)).is_ok());
        assert!(
            single
                .check(value(r#""username":"app","dbInstanceIdentifier":"orders""#))
                .is_ok()
        );
        for wrong in [
            r#""username":"postgres""#,
            r#""username":"app_clone""#,
            r#""username":"app","dbInstanceIdentifier":"hr""#,
        ] {
            assert!(single.check(value(wrong)).is_err(), "{wrong}");
        }
        let mysql =
            DbSecret::parse(r#"{"engine":"mysql","host":"h","username":"app","password":"x"}"#)
                .unwrap();
        assert!(single.check(mysql).is_err());
        // The privileged login is the registered one, never the value's.
        let pair = binding(Strategy::AlternatingUsers);
        let checked = pair
            .check(value(
                r#""username":"app_clone","master_username":"postgres""#,
            ))
            .unwrap();
        assert_eq!(checked.master_username.as_deref(), Some("admin"));
        let checked = single
            .check(value(r#""username":"app","master_username":"postgres""#))
            .unwrap();
        assert_eq!(checked.master_username, None);
    }
}
