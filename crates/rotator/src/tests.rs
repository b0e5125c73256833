//! The job's scheduling and resumption over an in-memory server (the
//! real servers are driven in `crates/cli/tests/secrets_rotation.rs`;
//! schedules of days cannot be waited for there, so the clock moves here).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use latchkey_identity::AppState;
use latchkey_identity::clock::ManualClock;
use latchkey_rotation::{CloneOutcome, CredentialServer, Family, ServerError};
use latchkey_secrets::secret::{AWSCURRENT, Secret};
use latchkey_store::{Database, Engine, RotationSchedule, Store, UpstreamAuth, Vault};

use super::*;

/// Users and passwords of a pretend PostgreSQL server; a password change
/// takes the time in the second field first (a slow server).
#[derive(Clone, Default)]
struct Fake(
    Arc<Mutex<HashMap<String, String>>>,
    Arc<Mutex<Option<std::time::Duration>>>,
);

impl Fake {
    fn password(&self, user: &str) -> Option<String> {
        self.0.lock().unwrap().get(user).cloned()
    }

    fn logs_in(&self, user: &str, password: &str) -> Result<(), ServerError> {
        match self.password(user) {
            Some(p) if p == password => Ok(()),
            _ => Err(ServerError::LoginRefused { user: user.into() }),
        }
    }
}

impl CredentialServer for Fake {
    fn family(&self) -> Family {
        Family::Postgres
    }

    async fn test_login(&self, user: &str, password: &str) -> Result<(), ServerError> {
        self.logs_in(user, password)
    }

    async fn change_own_password(
        &self,
        user: &str,
        password: &str,
        new: &str,
    ) -> Result<(), ServerError> {
        let stall = *self.1.lock().unwrap();
        if let Some(stall) = stall {
            tokio::time::sleep(stall).await;
        }
        self.logs_in(user, password)?;
        self.0.lock().unwrap().insert(user.into(), new.into());
        Ok(())
    }

    async fn set_clone_password(
        &self,
        _: &str,
        _: &str,
        target: &str,
        new: &str,
    ) -> Result<CloneOutcome, ServerError> {
        let existed = self
            .0
            .lock()
            .unwrap()
            .insert(target.into(), new.into())
            .is_some();
        Ok(if existed {
            CloneOutcome::Existed
        } else {
            CloneOutcome::Created
        })
    }
}

impl Servers for Fake {
    type Server = Fake;

    fn server(
        &self,
        _: &Arc<AppState>,
        _: &Database,
        _: Option<&str>,
    ) -> Result<Fake, ServerError> {
        Ok(self.clone())
    }
}

const DAY: i64 = 86_400;
const T0: i64 = 1_800_000_000;

fn setup(dir: &std::path::Path) -> (Arc<AppState>, Arc<ManualClock>, String) {
    let store = Store::open(&dir.join("store.db"), Vault::new(1, &[7; 32])).unwrap();
    let db = store
        .register_database(
            &Database {
                name: "orders".into(),
                engine: Engine::Postgres,
                endpoints: vec!["localhost".into()],
                upstream: "db.internal:5432".into(),
                upstream_auth: UpstreamAuth::Password,
                rotation: Some(RotationSchedule {
                    every_days: 30,
                    master_user: None,
                }),
                ..Database::default()
            },
            T0,
        )
        .unwrap();
    store
        .set_database_password("orders", "app", "initial-Q7x")
        .unwrap();
    let arn =
        managed::put_database_secret(&store, "us-east-1", &db, "app", "initial-Q7x", T0).unwrap();
    let keys = store.cluster_keys(T0).unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let state = Arc::new(
        AppState::new(store, keys)
            .unwrap()
            .with_clock(clock.clone()),
    );
    (state, clock, arn)
}

fn secret(state: &AppState, arn: &str) -> Secret {
    serde_json::from_str(&state.store.secret_by_arn(arn).unwrap().unwrap().document).unwrap()
}

#[tokio::test]
async fn a_due_rotation_starts_on_schedule_and_the_gateway_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (state, clock, arn) = setup(dir.path());
    let fake = Fake::default();
    fake.0
        .lock()
        .unwrap()
        .insert("app".into(), "initial-Q7x".into());
    let job = Rotator::new(state.clone(), fake.clone());

    // Not due yet: nothing happens.
    clock.set(T0 + 30 * DAY - 1);
    assert!(job.pass().await.is_empty());
    assert_eq!(fake.password("app").as_deref(), Some("initial-Q7x"));

    clock.set(T0 + 30 * DAY);
    let epoch = state.upstream_credentials_epoch();
    let done = job.pass().await;
    assert!(
        matches!(done.as_slice(), [(a, Ok(Outcome::Rotated(_)))] if *a == arn),
        "{done:?}"
    );
    let new = fake.password("app").unwrap();
    assert_ne!(new, "initial-Q7x");
    let logins = state
        .store
        .database_logins("orders", "app")
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            logins.current.user.as_str(),
            logins.current.password.as_str()
        ),
        ("app", new.as_str())
    );
    assert!(logins.next.is_none());
    assert!(state.upstream_credentials_epoch() > epoch);
    let s = secret(&state, &arn);
    let rotation = s.rotation.as_ref().unwrap();
    assert_eq!(rotation.last_rotated, Some(T0 + 30 * DAY));
    assert_eq!(rotation.next_rotation, Some(T0 + 60 * DAY));
    assert!(s.rotation_run().is_none() && s.staged(AWSCURRENT).is_some());
    // Not again until the next date.
    clock.advance(DAY);
    assert!(job.pass().await.is_empty());
}

#[tokio::test]
async fn a_failed_step_backs_off_keeps_current_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (state, clock, arn) = setup(dir.path());
    // The server does not know the stored password: setSecret fails.
    let fake = Fake::default();
    fake.0
        .lock()
        .unwrap()
        .insert("app".into(), "changed-by-someone".into());
    let job = Rotator::new(state.clone(), fake.clone());
    clock.set(T0 + 30 * DAY);
    let done = job.pass().await;
    assert!(
        matches!(done.as_slice(), [(_, Ok(Outcome::Failed { step: Step::SetSecret, retry_at }))] if *retry_at == T0 + 30 * DAY + 30),
        "{done:?}"
    );
    let s = secret(&state, &arn);
    let run = s.rotation_run().unwrap();
    assert_eq!((run.done, run.failures), (Some(Step::CreateSecret), 1));
    assert!(
        run.last_error
            .as_deref()
            .unwrap()
            .contains("no credential in the secret logs in")
    );
    let findings = state
        .store
        .findings(false, None, Some(record::FAILURE_FINDING), 10)
        .unwrap();
    assert_eq!(findings.len(), 1);
    let finding: serde_json::Value = serde_json::from_str(&findings[0].0).unwrap();
    assert_eq!(finding["resource"], arn.as_str());
    assert!(!findings[0].0.contains("initial-Q7x"), "{}", findings[0].0);
    // The gateway keeps its login; the pending one is only its fallback.
    let logins = state
        .store
        .database_logins("orders", "app")
        .unwrap()
        .unwrap();
    assert_eq!(logins.current.password.as_str(), "initial-Q7x");
    // Not retried before its time; then it resumes at setSecret.
    clock.advance(29);
    assert!(job.pass().await.is_empty());
    fake.0
        .lock()
        .unwrap()
        .insert("app".into(), "initial-Q7x".into());
    clock.advance(1);
    let done = job.pass().await;
    assert!(
        matches!(done.as_slice(), [(_, Ok(Outcome::Rotated(_)))]),
        "{done:?}"
    );
    let pending_made_once = secret(&state, &arn).versions.len();
    assert_eq!(pending_made_once, 2);
}

#[tokio::test]
async fn a_pending_value_the_rotation_did_not_make_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let (state, clock, arn) = setup(dir.path());
    // setSecret fails at first: the server knows another password.
    let fake = Fake::default();
    fake.0
        .lock()
        .unwrap()
        .insert("app".into(), "elsewhere".into());
    let job = Rotator::new(state.clone(), fake.clone());
    clock.set(T0 + 30 * DAY);
    job.pass().await;
    let s = secret(&state, &arn);
    let token = s.rotation_run().unwrap().token.clone();
    assert!(s.rotation_run().unwrap().pending_digest.is_some());
    // Someone replaces the job's pending value under the same token (as
    // removing its label, pruning it and putting another would).
    let planted = latchkey_secrets::secret::SecretValue::String(zeroize::Zeroizing::new(
        r#"{"engine":"postgres","host":"db.internal","username":"app","password":"chosen-by-attacker"}"#.into(),
    ))
    .encode();
    let replace = |value: Option<(&str, &[u8])>, dropped: &[String]| {
        let stored = state.store.secret_by_arn(&arn).unwrap().unwrap();
        let document = stored.document.clone();
        assert!(
            state
                .store
                .update_secret(&arn, stored.revision, &document, value, dropped)
                .unwrap()
        );
    };
    replace(None, std::slice::from_ref(&token));
    replace(Some((&token, planted.as_slice())), &[]);
    fake.0
        .lock()
        .unwrap()
        .insert("app".into(), "initial-Q7x".into());
    clock.advance(3600);
    let done = job.pass().await;
    assert!(
        matches!(
            done.as_slice(),
            [(
                _,
                Ok(Outcome::Failed {
                    step: Step::SetSecret,
                    ..
                })
            )]
        ),
        "{done:?}"
    );
    let run = secret(&state, &arn).rotation_run().cloned().unwrap();
    assert!(
        run.last_error
            .unwrap()
            .contains("not the value this rotation made")
    );
    assert_eq!(fake.password("app").as_deref(), Some("initial-Q7x"));
    let logins = state
        .store
        .database_logins("orders", "app")
        .unwrap()
        .unwrap();
    assert!(
        logins
            .next
            .is_none_or(|n| n.password.as_str() != "chosen-by-attacker")
    );
}

/// A server where `app` has its initial password, and two nodes' jobs
/// on one store, `node-a` and `node-b`.
fn two_nodes(state: &Arc<AppState>) -> (Fake, Rotator<Fake>, Rotator<Fake>) {
    let fake = Fake::default();
    fake.0
        .lock()
        .unwrap()
        .insert("app".into(), "initial-Q7x".into());
    let a = Rotator::new(state.clone(), fake.clone()).with_node("node-a");
    let b = Rotator::new(state.clone(), fake.clone()).with_node("node-b");
    (fake, a, b)
}

#[tokio::test]
async fn only_the_node_holding_the_lease_rotates_and_the_lease_moves() {
    let dir = tempfile::tempdir().unwrap();
    let (state, clock, arn) = setup(dir.path());
    let (fake, a, b) = two_nodes(&state);
    clock.set(T0 + 30 * DAY - 1);
    assert!(a.pass().await.is_empty()); // a takes the lease; nothing is due
    clock.set(T0 + 30 * DAY);
    assert!(b.pass().await.is_empty()); // due, but b does not hold the lease
    assert_eq!(fake.password("app").as_deref(), Some("initial-Q7x"));
    // a has gone quiet: once its lease expires, b takes over.
    clock.advance(91);
    let done = b.pass().await;
    assert!(
        matches!(done.as_slice(), [(x, Ok(Outcome::Rotated(_)))] if *x == arn),
        "{done:?}"
    );
    assert_ne!(fake.password("app").as_deref(), Some("initial-Q7x"));
    // b holds it now; a takes it only once b goes quiet in turn.
    clock.advance(30);
    let store = &state.store;
    assert!(
        !store
            .hold_lease(crate::LEASE, "node-a", state.now(), 90)
            .unwrap()
    );
    clock.advance(DAY);
    assert!(
        store
            .hold_lease(crate::LEASE, "node-a", state.now(), 90)
            .unwrap()
    );
}

/// A node that stalls in a step past its lease stops there, unrecorded,
/// once another node has taken the lease: the step is not carried on
/// beside that node's, and that node finishes the rotation.
#[tokio::test(start_paused = true)]
async fn a_step_that_outlives_its_lease_stops_and_the_new_holder_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (state, clock, arn) = setup(dir.path());
    let (fake, a, b) = two_nodes(&state);
    *fake.1.lock().unwrap() = Some(std::time::Duration::from_secs(600));
    clock.set(T0 + 30 * DAY);
    let takeover = {
        let (state, clock) = (state.clone(), clock.clone());
        async move {
            // a is in its slow step; its lease runs out and b takes it.
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            clock.advance(91);
            assert!(
                state
                    .store
                    .hold_lease(crate::LEASE, "node-b", state.now(), 90)
                    .unwrap()
            );
        }
    };
    let (done, ()) = tokio::join!(a.pass(), takeover);
    assert!(
        matches!(done.as_slice(), [(x, Err(JobError::LeaseLost))] if *x == arn),
        "{done:?}"
    );
    assert_eq!(fake.password("app").as_deref(), Some("initial-Q7x"));
    // a's next pass does nothing while b holds the lease; b finishes.
    *fake.1.lock().unwrap() = None;
    assert!(a.pass().await.is_empty());
    let done = b.pass().await;
    assert!(
        matches!(done.as_slice(), [(x, Ok(Outcome::Rotated(_)))] if *x == arn),
        "{done:?}"
    );
    assert_ne!(fake.password("app").as_deref(), Some("initial-Q7x"));
}
