//! Secrets Latchkey makes and keeps for a registered database's upstream
//! logins (`latchkey db register --rotate-every 30d`, then `db
//! set-password`): one secret per database user, named
//! `latchkey/db/DATABASE/USER`, whose value is AWS's database secret and
//! whose rotation is the built-in one. The store binds the secret to that
//! login, which is what lets the job rotate it. Setting the password again
//! puts a new `AWSCURRENT` version in the same secret.

use latchkey_rotation::Secret as DbSecret;
use latchkey_secrets::RotationRules;
use latchkey_secrets::rotation::{ALTERNATING_USERS_FUNCTION, SINGLE_USER_FUNCTION, configure};
use latchkey_secrets::secret::{AWSCURRENT, Secret, SecretValue, arn_suffix, check_name};
use latchkey_store::{Database, Engine, RotationSchedule as Schedule, Store};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::JobError;
use crate::builtin::DATABASE_FIELD;

/// The managed secret's name for `user` on `database`.
pub fn secret_name(database: &str, user: &str) -> String {
    format!("latchkey/db/{database}/{user}")
}

/// The function ARN of a strategy, in the account and region.
fn function_arn(region: &str, account: &str, schedule: &Schedule) -> String {
    let name = if schedule.master_user.is_some() {
        ALTERNATING_USERS_FUNCTION
    } else {
        SINGLE_USER_FUNCTION
    };
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

/// The secret value for `user`'s login on `db`.
fn value(
    db: &Database,
    user: &str,
    password: &str,
    schedule: &Schedule,
) -> Result<DbSecret, JobError> {
    let (host, port) = db
        .upstream
        .rsplit_once(':')
        .ok_or_else(|| JobError::Invalid(format!("upstream {:?} has no port", db.upstream)))?;
    let mut object = Map::new();
    let engine = match db.engine {
        Engine::Postgres => "postgres",
        Engine::Mysql => "mysql",
    };
    object.insert("engine".into(), Value::from(engine));
    object.insert("host".into(), Value::from(host.trim_matches(['[', ']'])));
    object.insert(
        "port".into(),
        Value::from(port.parse::<u16>().map_err(|_| {
            JobError::Invalid(format!("upstream {:?} has no valid port", db.upstream))
        })?),
    );
    object.insert("username".into(), Value::from(user));
    object.insert("password".into(), Value::from(password));
    object.insert(DATABASE_FIELD.into(), Value::from(db.name.as_str()));
    if let Some(master) = &schedule.master_user {
        object.insert("master_username".into(), Value::from(master.as_str()));
    }
    let text = Zeroizing::new(Value::Object(object).to_string());
    Ok(DbSecret::parse(&text)?)
}

/// Whether `user`'s password on `db` may be set now: not while its
/// secret is being rotated (the gateway's login and the secret would part).
pub fn check_settable(store: &Store, db: &Database, user: &str) -> Result<(), JobError> {
    if db.rotation.is_none() {
        return Ok(());
    }
    let name = secret_name(&db.name, user);
    let Some(stored) = store.secret_by_name(&name)? else {
        return Ok(());
    };
    check_bound(store, &stored.arn, &name, db, user)?;
    let secret: Secret = serde_json::from_str(&stored.document)
        .map_err(|e| JobError::Invalid(format!("stored secret {name} is unreadable: {e}")))?;
    match secret.rotation_run() {
        Some(run) => Err(JobError::Invalid(format!(
            "secret {name} is being rotated (version {}); set the password when the rotation is done, or cancel it (aws secretsmanager cancel-rotate-secret) first",
            run.token
        ))),
        None => Ok(()),
    }
}

/// Only the secret bound to this login is Latchkey's to update: a secret
/// of that name made otherwise (a managed secret deleted and made again,
/// or one from before names under `latchkey/` were reserved) never
/// receives the password.
fn check_bound(
    store: &Store,
    arn: &str,
    name: &str,
    db: &Database,
    user: &str,
) -> Result<(), JobError> {
    if store.database_secret_binding(arn)? == Some((db.name.clone(), user.to_owned())) {
        return Ok(());
    }
    Err(JobError::Invalid(format!(
        "secret {name} exists but is not the one Latchkey keeps for {user} on {}; delete it (aws secretsmanager delete-secret --force-delete-without-recovery) and set the password again",
        db.name
    )))
}

/// Makes `user`'s secret on `db` rotate by the database's schedule,
/// with `password` as its `AWSCURRENT` value: creates the secret, or adds
/// a version and updates the schedule. Returns its ARN.
pub fn put_database_secret(
    store: &Store,
    region: &str,
    db: &Database,
    user: &str,
    password: &str,
    now: i64,
) -> Result<String, JobError> {
    let schedule = db
        .rotation
        .as_ref()
        .ok_or_else(|| JobError::Invalid(format!("database {} does not rotate", db.name)))?;
    if schedule.master_user.as_deref() == Some(user) {
        return Err(JobError::Invalid(format!(
            "{user} is the privileged login alternating-users rotation runs as; it is not rotated"
        )));
    }
    let name = secret_name(&db.name, user);
    check_name(&name)?;
    let value = value(db, user, password, schedule)?;
    let encoded = SecretValue::String(value.to_json()).encode();
    let version = latchkey_audit::trail::uuid_text(
        latchkey_store::random::<16>().map_err(latchkey_store::StoreError::from)?,
    );
    let account = store.account_id().to_owned();
    let rules = RotationRules {
        automatically_after_days: Some(i64::from(schedule.every_days)),
        ..RotationRules::default()
    };
    let function = function_arn(region, &account, schedule);
    if let Some(stored) = store.secret_by_name(&name)? {
        check_bound(store, &stored.arn, &name, db, user)?;
        for _ in 0..16 {
            let current = store
                .secret_by_arn(&stored.arn)?
                .ok_or_else(|| JobError::Invalid(format!("secret {name} vanished")))?;
            let mut secret: Secret = serde_json::from_str(&current.document).map_err(|e| {
                JobError::Invalid(format!("stored secret {name} is unreadable: {e}"))
            })?;
            secret.check_not_deleted()?;
            if secret.rotation_run().is_some() {
                return Err(JobError::Invalid(format!(
                    "secret {name} is being rotated; set the password when the rotation is done"
                )));
            }
            let dropped = secret.add_version(&version, &[AWSCURRENT.to_owned()], now)?;
            secret.rotation = Some(configure(
                secret.rotation.take(),
                Some(&function),
                Some(rules.clone()),
                now,
            )?);
            let document = serde_json::to_string(&secret)
                .map_err(|e| JobError::Invalid(format!("serialising a secret: {e}")))?;
            if store.update_secret(
                &secret.arn,
                current.revision,
                &document,
                Some((&version, encoded.as_slice())),
                &dropped,
            )? {
                store.bind_database_secret(&db.name, user, &secret.arn)?;
                return Ok(secret.arn);
            }
        }
        return Err(JobError::Contended);
    }
    let suffix =
        arn_suffix(latchkey_store::random::<6>().map_err(latchkey_store::StoreError::from)?);
    let mut secret = Secret::new(region, &account, &name, &suffix, now)?;
    secret.description = format!(
        "Upstream login of {user} on database {}, rotated by Latchkey",
        db.name
    );
    secret.add_version(&version, &[AWSCURRENT.to_owned()], now)?;
    secret.rotation = Some(configure(None, Some(&function), Some(rules), now)?);
    let document = serde_json::to_string(&secret)
        .map_err(|e| JobError::Invalid(format!("serialising a secret: {e}")))?;
    store.create_secret(
        &secret.arn,
        &name,
        &document,
        Some((&version, encoded.as_slice())),
    )?;
    store.bind_database_secret(&db.name, user, &secret.arn)?;
    Ok(secret.arn)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    #[test]
    fn values_name_the_database_and_strategy() {
        let db = Database {
            name: "orders".into(),
            engine: Engine::Mysql,
            upstream: "[::1]:3307".into(),
            ..Database::default()
        };
        let single = Schedule {
            every_days: 30,
            master_user: None,
        };
        let v = value(&db, "app", "pw", &single).unwrap();
        assert_eq!(
            (v.host.as_str(), v.port, v.username.as_str()),
            ("::1", 3307, "app")
        );
        assert_eq!(v.other.get(DATABASE_FIELD), Some(&Value::from("orders")));
        assert!(v.master_username.is_none());
        let alternating = Schedule {
            every_days: 30,
            master_user: Some("admin".into()),
        };
        assert_eq!(
            value(&db, "app", "pw", &alternating)
                .unwrap()
                .master_username
                .as_deref(),
            Some("admin")
        );
        assert!(function_arn("r", "1", &alternating).ends_with(ALTERNATING_USERS_FUNCTION));
        assert!(function_arn("r", "1", &single).ends_with(SINGLE_USER_FUNCTION));
    }
}
