//! What the job leaves in the audit trail and the findings: an event per
//! step and per rotation (named as CloudTrail names Secrets Manager's
//! rotation events), and a finding when a rotation fails. None carries
//! a secret value.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use latchkey_audit::{ApiEvent, ApiService, Event, Finding, Object, Resource, Severity};
use latchkey_identity::AppState;
use latchkey_secrets::Step;
use latchkey_secrets::secret::Secret;
use sha2::{Digest, Sha256};

/// The finding a failed rotation raises.
pub const FAILURE_FINDING: &str = "Rotation:SecretsManager/RotationFailed";

const USER_AGENT: &str = "latchkey-rotation";

fn event(
    state: &AppState,
    action: &str,
    secret: &Secret,
    parameters: serde_json::Value,
    error: Option<&str>,
) {
    state.audit().record(Event::from(ApiEvent {
        time: SystemTime::now(),
        service: ApiService::SecretsManager,
        action: action.to_owned(),
        identity: None,
        access_key_id: None,
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        user_agent: Some(USER_AGENT.to_owned()),
        request_parameters: Some(parameters.to_string()),
        response_elements: None,
        error: error.map(|e| ("RotationFailed".to_owned(), e.to_owned())),
        possession_proven: false,
        request_id: latchkey_store::random::<16>()
            .map(latchkey_audit::trail::uuid_text)
            .unwrap_or_default(),
        read_only: false,
        resources: vec![Resource {
            arn: secret.arn.clone(),
            kind: "AWS::SecretsManager::Secret",
        }],
    }));
}

/// `RotationStarted`, `RotationSucceeded`, `RotationFailed`.
pub fn rotation_event(
    state: &AppState,
    action: &str,
    secret: &Secret,
    token: &str,
    error: Option<&str>,
) {
    let parameters = serde_json::json!({"secretId": secret.arn, "clientRequestToken": token});
    event(state, action, secret, parameters, error);
}

/// `RotationStep`: one of the four steps, done or failed.
pub fn step_event(state: &AppState, secret: &Secret, token: &str, step: Step, error: Option<&str>) {
    let parameters = serde_json::json!({
        "secretId": secret.arn,
        "clientRequestToken": token,
        "step": step.as_str(),
    });
    event(state, "RotationStep", secret, parameters, error);
}

/// Raises (or updates) the finding for the secret's failing rotation.
pub fn failure_finding(state: &AppState, secret: &Secret, step: Step, reason: &str, count: u32) {
    let id = format!(
        "rotation-{}",
        &hex::encode(Sha256::digest(secret.arn.as_bytes()))[..24]
    );
    let at = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    let now = state.now();
    let started = secret.rotation_run().map_or(now, |r| r.started);
    let finding = Finding {
        id: id.clone(),
        kind: FAILURE_FINDING.to_owned(),
        severity: Severity::Medium,
        title: format!("Rotation of secret {} is failing", secret.name),
        description: format!(
            "{} failed: {reason}. AWSCURRENT is unchanged and still used; the step is retried.",
            step.as_str()
        ),
        resource: secret.arn.clone(),
        principal: None,
        source_ip: None,
        first_seen: at(started),
        last_seen: at(now),
        count: u64::from(count),
        evidence: Vec::new(),
        actions: Vec::new(),
    };
    let mut json = String::with_capacity(512);
    let mut o = Object::new(&mut json);
    latchkey_audit::write_finding(&mut o, &finding);
    o.end();
    if let Err(e) =
        state
            .store
            .put_finding(&id, FAILURE_FINDING, finding.severity.as_str(), now, &json)
    {
        tracing::error!(finding = %id, error = %e, "storing a finding failed");
    }
    state
        .metrics
        .finding(FAILURE_FINDING, finding.severity.as_str());
    state.audit().record(Event::Finding(Box::new(finding)));
}
