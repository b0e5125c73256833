//! The rotation job. `RotateSecret` records a rotation in the secret's
//! metadata ([`latchkey_secrets::RotationRun`]) and wakes this job; the
//! job also starts the rotations a schedule makes due. It runs the four
//! steps of AWS's contract (`createSecret`, `setSecret`, `testSecret`,
//! `finishSecret`), recording each completed step in the secret before
//! the next, so a rotation interrupted anywhere (a crash, `kill -9`)
//! resumes at the step it was in: every step is idempotent.
//!
//! - Built-in functions ([`latchkey_secrets::RotationFunction`]) rotate a
//!   registered database's credential ([`builtin`]) through the engine's
//!   [`CredentialServer`], given by [`Servers`] (the gateway crates
//!   implement it; `serve` joins them), and keep the gateway's own
//!   upstream login in step with the secret.
//! - A webhook URL gets each step POSTed, HMAC-signed ([`webhook`]).
//!
//! One job per process works on one secret at a time; every write is
//! checked against the secret's revision, so an API call racing the job
//! is retried, never lost. A failed step is retried with backoff, is an
//! audit event and raises a finding; `AWSCURRENT` keeps working.

pub mod builtin;
pub mod managed;
mod record;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use latchkey_identity::AppState;
use latchkey_rotation::{CredentialServer, ServerError};
use latchkey_secrets::secret::{Secret, SecretsError};
use latchkey_secrets::{RotationFunction, Step};
use latchkey_store::{Database, StoreError};
use zeroize::Zeroizing;

/// How often the job looks for due and retried rotations when nothing
/// wakes it.
pub const POLL: Duration = Duration::from_secs(30);

/// How many times a write is retried when an API call changed the
/// secret in between.
const WRITE_ATTEMPTS: usize = 16;

/// Why a step failed. Never carries a secret value: the errors it wraps
/// are built to carry none.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Secret(#[from] SecretsError),
    #[error("the secret value: {0}")]
    Value(#[from] latchkey_rotation::SecretError),
    #[error("{0}")]
    Rotation(#[from] latchkey_rotation::RotationError),
    #[error("{0}")]
    Plan(#[from] latchkey_rotation::PlanError),
    #[error("{0}")]
    Server(#[from] ServerError),
    #[error("a new password: {0}")]
    Password(#[from] latchkey_rotation::PasswordError),
    #[error("{0}")]
    Webhook(String),
    /// The secret names no registered database this job can rotate.
    #[error("{0}")]
    Database(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the secret kept changing under the job; will retry")]
    Contended,
    /// Another node took the rotation lease (this one stalled past it):
    /// that node carries the rotation on from the step recorded last.
    #[error("another node holds the rotation lease now")]
    LeaseLost,
}

/// The engines' credential servers, by registered database.
pub trait Servers: Send + Sync + 'static {
    type Server: CredentialServer + Send + Sync;

    /// `db`'s server, with logins going to `dbname` (the secret's, if it
    /// names one).
    fn server(
        &self,
        state: &Arc<AppState>,
        db: &Database,
        dbname: Option<&str>,
    ) -> Result<Self::Server, ServerError>;
}

/// What one look at a secret did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    /// The rotation with this token finished.
    Rotated(String),
    /// A step failed; retried from `retry_at`.
    Failed { step: Step, retry_at: i64 },
}

/// The job. Cheap to share: `serve` holds it in an `Arc`.
pub struct Rotator<S> {
    state: Arc<AppState>,
    servers: S,
    /// Signs webhook steps: `serve`'s webhook secret, when it has one.
    webhook_secret: Option<Zeroizing<Vec<u8>>>,
    /// CA certificates for an HTTPS webhook [default: the system's].
    webhook_ca: Option<std::path::PathBuf>,
    /// Test hook: the process aborts when this step's work is done and
    /// not yet recorded, as a `kill -9` at the worst moment would stop it.
    crash_after: Option<Step>,
    /// This node, for the rotation lease: of the nodes sharing a store,
    /// only the one holding it rotates.
    node: String,
}

/// The lease rotation passes run under.
pub const LEASE: &str = "secret-rotation";

/// How long the lease outlives its holder's last renewal: three polls.
const LEASE_SECS: i64 = 90;

/// How often a step in progress renews the lease.
const RENEW_EVERY: Duration = Duration::from_secs(20);

impl<S: Servers> Rotator<S> {
    pub fn new(state: Arc<AppState>, servers: S) -> Self {
        Self {
            state,
            servers,
            webhook_secret: None,
            webhook_ca: None,
            crash_after: None,
            node: "local".to_owned(),
        }
    }

    /// Names this node for the rotation lease.
    #[must_use]
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = node.to_owned();
        self
    }

    /// Aborts the process once `step`'s work is done and before it is
    /// recorded (crash tests: `LATCHKEY_TEST_CRASH_AFTER_ROTATION_STEP`).
    #[must_use]
    pub fn with_crash_after(mut self, step: Option<Step>) -> Self {
        self.crash_after = step;
        self
    }

    /// Signs webhook steps with `secret`, trusting `ca` for HTTPS.
    #[must_use]
    pub fn with_webhook(
        mut self,
        secret: Zeroizing<Vec<u8>>,
        ca: Option<std::path::PathBuf>,
    ) -> Self {
        self.webhook_secret = Some(secret);
        self.webhook_ca = ca;
        self
    }

    /// Runs until `stop` turns true: a pass at start (resuming what a
    /// crash interrupted), then one whenever an API call asks or
    /// [`POLL`] has passed.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            self.pass().await;
            tokio::select! {
                () = self.state.jobs.rotation_requested() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Works on every secret ready at this moment, one after the other.
    pub async fn pass(&self) -> Vec<(String, Result<Outcome, JobError>)> {
        let now = self.state.now();
        match self.hold_lease() {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("another node holds the rotation lease");
                return Vec::new();
            }
            Err(e) => {
                tracing::warn!(error = %e, "taking the rotation lease failed");
                return Vec::new();
            }
        }
        let ready: Vec<String> = match self.state.store.list_secrets() {
            Ok(all) => {
                let mut ready: Vec<(bool, String)> = all
                    .into_iter()
                    .filter_map(|stored| serde_json::from_str::<Secret>(&stored.document).ok())
                    .filter(|s| s.rotation_ready(now))
                    .map(|s| {
                        let webhook = s.rotation.as_ref().is_some_and(|r| {
                            matches!(
                                RotationFunction::parse(&r.lambda_arn),
                                Ok(RotationFunction::Webhook(_))
                            )
                        });
                        (webhook, s.arn)
                    })
                    .collect();
                // The database logins first: a slow webhook (up to a
                // minute a step) delays only the webhooks after it.
                ready.sort_by_key(|(webhook, _)| *webhook);
                ready.into_iter().map(|(_, arn)| arn).collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing secrets to rotate failed");
                return Vec::new();
            }
        };
        let mut done = Vec::with_capacity(ready.len());
        for arn in ready {
            let outcome = self.rotate(&arn).await;
            let lost = matches!(outcome, Err(JobError::LeaseLost));
            if let Err(e) = &outcome {
                tracing::warn!(secret = %arn, error = %e, "rotation pass failed");
            }
            done.push((arn, outcome));
            if lost {
                break;
            }
        }
        done
    }

    /// Runs a step's `work`, renewing the lease every [`RENEW_EVERY`];
    /// when another node has taken it, the step is dropped unrecorded
    /// (every step is idempotent: that node runs it again).
    async fn holding_lease(
        &self,
        work: impl std::future::Future<Output = Result<(), JobError>>,
    ) -> Result<Result<(), JobError>, JobError> {
        let mut work = std::pin::pin!(work);
        let mut renew =
            tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        loop {
            tokio::select! {
                done = &mut work => return Ok(done),
                _ = renew.tick() => {
                    if !self.hold_lease()? {
                        return Err(JobError::LeaseLost);
                    }
                }
            }
        }
    }

    /// Takes or renews the rotation lease for this node, from now.
    fn hold_lease(&self) -> Result<bool, StoreError> {
        self.state
            .store
            .hold_lease(LEASE, &self.node, self.state.now(), LEASE_SECS)
    }

    /// Runs the secret's rotation from the step it is at to the end, or
    /// to the first failure.
    pub async fn rotate(&self, arn: &str) -> Result<Outcome, JobError> {
        let mut started = false;
        loop {
            // Renewed before every step: a node that stalled past its
            // lease (a slow webhook, a paused process) must not run a step
            // beside the node that took the lease over.
            if !self.hold_lease()? {
                return Err(JobError::LeaseLost);
            }
            let Some((secret, _)) = self.load(arn)? else {
                return Ok(Outcome::Idle);
            };
            let now = self.state.now();
            if !started && !secret.rotation_ready(now) {
                return Ok(Outcome::Idle);
            }
            started = true;
            let Some(run) = secret.rotation_run().cloned() else {
                // A scheduled rotation: start it with a fresh token.
                if !secret.rotation_due(now) {
                    return Ok(Outcome::Idle);
                }
                let token = latchkey_audit::trail::uuid_text(
                    latchkey_store::random::<16>().map_err(StoreError::from)?,
                );
                self.modify(arn, |s| {
                    s.begin_rotation(&token, now)?;
                    Ok(((), None))
                })?;
                continue;
            };
            let Some(step) = run.next_step() else {
                return Ok(Outcome::Rotated(run.token));
            };
            if step == Step::CreateSecret && run.failures == 0 {
                record::rotation_event(&self.state, "RotationStarted", &secret, &run.token, None);
            }
            let function = secret
                .rotation
                .as_ref()
                .map(|r| RotationFunction::parse(&r.lambda_arn))
                .transpose()?
                .ok_or_else(|| JobError::Invalid("the secret has no rotation function".into()))?;
            let work = async {
                match &function {
                    RotationFunction::Webhook(url) => {
                        self.webhook_step(url, &secret, &run.token, step).await
                    }
                    built_in => self.builtin_step(built_in, &secret, &run.token, step).await,
                }
            };
            let result = self.holding_lease(work).await?;
            if result.is_ok() && self.crash_after == Some(step) {
                tracing::error!(step = step.as_str(), "crashing on purpose (test hook)");
                std::process::abort();
            }
            let finished = match result {
                Ok(()) => self.modify(arn, |s| {
                    if step == Step::FinishSecret {
                        s.finish_rotation(&run.token, self.state.now())?;
                        Ok((true, None))
                    } else {
                        s.step_done(&run.token, step)?;
                        Ok((false, None))
                    }
                }),
                Err(e) => Err(e),
            };
            match finished {
                Ok(finished) => {
                    record::step_event(&self.state, &secret, &run.token, step, None);
                    if finished {
                        record::rotation_event(
                            &self.state,
                            "RotationSucceeded",
                            &secret,
                            &run.token,
                            None,
                        );
                        tracing::info!(secret = %arn, version = %run.token, "rotated");
                        return Ok(Outcome::Rotated(run.token));
                    }
                }
                Err(e) => {
                    let reason = e.to_string();
                    let now = self.state.now();
                    let retry_at = self.modify(arn, |s| {
                        Ok((s.step_failed(&run.token, &reason, now)?, None))
                    })?;
                    record::step_event(&self.state, &secret, &run.token, step, Some(&reason));
                    record::rotation_event(
                        &self.state,
                        "RotationFailed",
                        &secret,
                        &run.token,
                        Some(&reason),
                    );
                    record::failure_finding(&self.state, &secret, step, &reason, run.failures + 1);
                    tracing::warn!(secret = %arn, step = step.as_str(), error = %reason, retry_at, "rotation step failed");
                    return Ok(Outcome::Failed { step, retry_at });
                }
            }
        }
    }

    /// The secret and its revision.
    fn load(&self, arn: &str) -> Result<Option<(Secret, i64)>, JobError> {
        let Some(stored) = self.state.store.secret_by_arn(arn)? else {
            return Ok(None);
        };
        let secret: Secret = serde_json::from_str(&stored.document)
            .map_err(|e| JobError::Invalid(format!("stored secret {arn} is unreadable: {e}")))?;
        Ok(Some((secret, stored.revision)))
    }

    /// Applies `change` to the secret and writes it back, with the new
    /// version's value `change` gives (id, encoded value); on a
    /// concurrent change, does it again on the newer secret.
    fn modify<T>(
        &self,
        arn: &str,
        mut change: impl FnMut(
            &mut Secret,
        ) -> Result<
            (T, Option<(String, Zeroizing<Vec<u8>>, Vec<String>)>),
            JobError,
        >,
    ) -> Result<T, JobError> {
        for _ in 0..WRITE_ATTEMPTS {
            let (mut secret, revision) = self
                .load(arn)?
                .ok_or_else(|| JobError::Invalid(format!("secret {arn} no longer exists")))?;
            let (out, value) = change(&mut secret)?;
            let document = serde_json::to_string(&secret)
                .map_err(|e| JobError::Invalid(format!("serialising a secret: {e}")))?;
            let (version, dropped) = match &value {
                Some((id, bytes, dropped)) => {
                    (Some((id.as_str(), bytes.as_slice())), dropped.as_slice())
                }
                None => (None, &[][..]),
            };
            if self
                .state
                .store
                .update_secret(arn, revision, &document, version, dropped)?
            {
                return Ok(out);
            }
        }
        Err(JobError::Contended)
    }
}

#[cfg(test)]
mod tests;
