//! Rotation by webhook: the Lambda contract without Lambda. Each step is
//! a POST of `{"Step": ..., "SecretId": ARN, "ClientRequestToken":
//! TOKEN}` to the URL in `RotationLambdaARN`, signed as Latchkey's
//! finding webhooks are (`X-Latchkey-Timestamp`, `X-Latchkey-Signature:
//! sha256=HMAC(secret, "<timestamp>.<body>")`), with a key of its own
//! (`--rotation-webhook-secret-file`), and only to a URL under a prefix the
//! operator allowed (`--rotation-webhook-allow`).
//! A 2xx answer means the step is done. The receiver does the work with
//! the Secrets Manager API, as a rotation Lambda does: createSecret
//! stores the new value with `PutSecretValue` and `VersionStages
//! ["AWSPENDING"]` under the token; finishSecret may move `AWSCURRENT`
//! itself, and the job moves it if it did not.

use std::time::Duration;

use latchkey_secrets::Step;
use latchkey_secrets::secret::{AWSPENDING, Secret};
use latchkey_webhook::WebhookConfig;

use crate::{JobError, Rotator, Servers};

/// How long a receiver may take over one step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// The body of one step's POST.
pub fn step_body(secret_arn: &str, token: &str, step: Step) -> String {
    serde_json::json!({
        "Step": step.as_str(),
        "SecretId": secret_arn,
        "ClientRequestToken": token,
    })
    .to_string()
}

impl<S: Servers> Rotator<S> {
    pub(crate) async fn webhook_step(
        &self,
        url: &str,
        secret: &Secret,
        token: &str,
        step: Step,
    ) -> Result<(), JobError> {
        if self
            .state
            .store
            .database_secret_binding(&secret.arn)?
            .is_some()
        {
            return Err(JobError::Webhook(
                "the secret holds a database login Latchkey keeps; it rotates only by the built-in function"
                    .into(),
            ));
        }
        // Checked again here: the allowed prefixes may have changed since
        // RotateSecret was called.
        if !self.state.jobs.rotation_webhook_allowed(url) {
            return Err(JobError::Webhook(
                "the webhook URL is not under a prefix the server allows (--rotation-webhook-allow)"
                    .into(),
            ));
        }
        let key = self.webhook_secret.clone().ok_or_else(|| {
            JobError::Webhook(
                "rotation by webhook needs its signing secret \
                 (--rotation-webhook-secret-file or LATCHKEY_ROTATION_WEBHOOK_SECRET)"
                    .into(),
            )
        })?;
        let mut config = WebhookConfig::new(url, key);
        config.timeout = STEP_TIMEOUT;
        config.ca_file = self.webhook_ca.clone();
        let body = step_body(&secret.arn, token, step);
        // The receiver's answer is bounded as a whole; a little longer
        // here so its own timeout speaks first.
        let call = tokio::task::spawn_blocking(move || latchkey_webhook::post_once(&config, &body));
        tokio::time::timeout(STEP_TIMEOUT + Duration::from_secs(5), call)
            .await
            .map_err(|_| {
                JobError::Webhook(format!(
                    "{} at the webhook: no answer in time",
                    step.as_str()
                ))
            })?
            .map_err(|e| JobError::Webhook(format!("the webhook call failed: {e}")))?
            .map_err(|e| JobError::Webhook(format!("{} at the webhook: {e}", step.as_str())))?;
        if step == Step::CreateSecret {
            // What createSecret must leave behind, checked here rather
            // than found missing at finishSecret.
            let made = self
                .state
                .store
                .secret_by_arn(&secret.arn)?
                .and_then(|s| serde_json::from_str::<Secret>(&s.document).ok())
                .and_then(|s| {
                    s.version(token)
                        .map(|v| v.stages.iter().any(|l| l == AWSPENDING))
                });
            if made != Some(true) {
                return Err(JobError::Webhook(format!(
                    "createSecret at the webhook made no {AWSPENDING} version {token}"
                )));
            }
        }
        Ok(())
    }
}
