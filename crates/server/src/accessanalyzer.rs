//! IAM Access Analyzer's policy checks and policy generation (REST-JSON,
//! SigV4 name `access-analyzer`), so that `aws accessanalyzer ...` and the
//! SDKs work unchanged:
//!
//! - `ValidatePolicy` (`POST /policy/validation`) checks a policy against
//!   Latchkey's catalogue: [`latchkey_policy::analyze::validate_text`]'s
//!   findings, each located in the document as AWS locates them (path
//!   elements and a line/column/offset span). The policy is only read.
//! - `StartPolicyGeneration` (`PUT /policy/generation`),
//!   `GetGeneratedPolicy` (`GET /policy/generation/{jobId}`),
//!   `ListPolicyGenerations` (`GET /policy/generation`) and
//!   `CancelPolicyGeneration` (`PUT /policy/generation/{jobId}`): a policy
//!   from what a user or role used, as `latchkey policy generate` makes it
//!   ([`crate::advisor::generate_policy`]), from the last uses the store
//!   keeps rather than a CloudTrail trail. A job completes when started.
//!
//! Each is authorised as `access-analyzer:{Operation}` on `*` (Access
//! Analyzer's actions name no resource). A generation shows what a
//! principal did, so starting one, reading or cancelling its job, and
//! seeing it listed also take what IAM's access advisor asks for that
//! principal: `iam:GenerateServiceLastAccessedDetails` on the stored user
//! or role ([`crate::iam::authorize_activity_of`]), asked before anything
//! says whether the principal exists.

use latchkey_policy::PolicyKind;
use latchkey_policy::analyze;
use serde_json::{Value, json};

use latchkey_store::AdvisorJob;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::json::{
    Answer, JsonCall, bool_field, int_field, required_string, string, unknown_operation,
};
use crate::xml::timestamp;

/// No member of a `ValidatePolicy` call is secret.
pub const SECRET_FIELDS: &[&str] = &[];

/// A page of findings by default and at most.
const MAX_RESULTS: i64 = 1000;

/// The kind of job a policy generation is stored as.
const GENERATION: &str = "POLICY_GENERATION";

/// How long a generation job stays readable.
const JOB_LIFETIME_SECS: i64 = 30 * 86_400;

/// How far before the server's clock an `endTime` may be and still mean
/// "now" (SigV4 allows clocks this far apart).
const CLOCK_SKEW_SECS: i64 = 300;

/// The window a generation looks back over when the call names none.
const DEFAULT_WINDOW_SECS: i64 = 90 * 86_400;

pub fn handle(call: &JsonCall) -> Result<Answer, ApiError> {
    let authorize = || {
        call.state.authorize_in(
            call.caller,
            &format!("access-analyzer:{}", call.operation),
            "*",
            call.now,
            &latchkey_identity::ActionContext::new(),
        )
    };
    match call.operation {
        "ValidatePolicy" => validate_policy(call, authorize),
        "StartPolicyGeneration" => start_policy_generation(call, authorize),
        "GetGeneratedPolicy" => get_generated_policy(call, authorize),
        "ListPolicyGenerations" => list_policy_generations(call, authorize),
        "CancelPolicyGeneration" => cancel_policy_generation(call, authorize),
        _ => Err(unknown_operation()),
    }
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "ValidationException", message)
}

/// The policy kind `policyType` (and, for a resource policy,
/// `validatePolicyResourceType`) names.
fn policy_kind(call: &JsonCall) -> Result<PolicyKind, ApiError> {
    let resource_type = string(call.input, "validatePolicyResourceType")?;
    match (required_string(call.input, "policyType")?, resource_type) {
        ("IDENTITY_POLICY", None) => Ok(PolicyKind::Identity),
        ("RESOURCE_POLICY", Some("AWS::IAM::AssumeRolePolicyDocument")) => Ok(PolicyKind::Trust),
        ("RESOURCE_POLICY", _) => Ok(PolicyKind::Resource),
        ("IDENTITY_POLICY", Some(_)) => Err(validation(
            "validatePolicyResourceType is only for policyType RESOURCE_POLICY",
        )),
        ("SERVICE_CONTROL_POLICY" | "RESOURCE_CONTROL_POLICY", _) => Err(validation(
            "Organizations policies are not supported: this account has no organization",
        )),
        _ => Err(validation(
            "policyType must be IDENTITY_POLICY, RESOURCE_POLICY, SERVICE_CONTROL_POLICY \
             or RESOURCE_CONTROL_POLICY",
        )),
    }
}

fn validate_policy(
    call: &JsonCall,
    authorize: impl FnOnce() -> Result<(), latchkey_identity::IdentityError>,
) -> Result<Answer, ApiError> {
    let text = required_string(call.input, "policyDocument")?;
    let kind = policy_kind(call)?;
    if let Some(locale) = string(call.input, "locale")?
        && !matches!(
            locale,
            "DE" | "EN" | "ES" | "FR" | "IT" | "JA" | "KO" | "PT_BR" | "ZH_CN" | "ZH_TW"
        )
    {
        return Err(validation(
            "locale must be one of DE, EN, ES, FR, IT, JA, KO, PT_BR, ZH_CN, ZH_TW",
        ));
    }
    let size = int_field(call.input, "maxResults", 1, MAX_RESULTS)?.unwrap_or(MAX_RESULTS);
    authorize()?;
    let findings = analyze::validate_text(text, kind, &call.caller.account);
    let start = match string(call.input, "nextToken")? {
        None => 0,
        Some(token) => token
            .strip_prefix("f.")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= findings.len())
            .ok_or_else(|| validation("nextToken is not valid"))?,
    };
    let end = start
        .saturating_add(usize::try_from(size).unwrap_or(usize::MAX))
        .min(findings.len());
    let page = analyze::aws_json(text, &findings[start..end]);
    let mut output = json!({ "findings": page });
    if end < findings.len() {
        output["nextToken"] = Value::String(format!("f.{end}"));
    }
    Ok(Answer {
        output,
        resources: Vec::new(),
        // What was found, never the document (the request parameters
        // keep it, as CloudTrail does).
        response_elements: Some(json!({ "findings": findings.len() })),
    })
}

/// A generation job's stored result.
#[derive(Serialize, Deserialize)]
struct GenerationReport {
    start: i64,
    end: i64,
    /// The policy's JSON text; `None` when nothing was used.
    policy: Option<String>,
    /// Access Analyzer's `jobError` (code, message) of a failed job.
    error: Option<(String, String)>,
}

/// A timestamp member: ISO 8601 as botocore sends Access Analyzer's
/// (`2026-12-04T06:00:00Z`, with optional fraction or `+00:00`), or epoch
/// seconds.
fn time_member(
    input: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, ApiError> {
    let Some(v) = input.get(name) else {
        return Ok(None);
    };
    let bad = || validation(format!("{name} must be an ISO 8601 timestamp"));
    if let Some(n) = v.as_f64() {
        return Ok(Some(n as i64));
    }
    let text = v.as_str().ok_or_else(bad)?;
    let text = text
        .strip_suffix("+00:00")
        .map_or_else(|| text.to_owned(), |t| format!("{t}Z"));
    let (whole, zone) = text.split_at(text.len().saturating_sub(1));
    if zone != "Z" {
        return Err(bad());
    }
    let whole = whole.split_once('.').map_or(whole, |(w, fraction)| {
        if fraction.bytes().all(|b| b.is_ascii_digit()) {
            w
        } else {
            ""
        }
    });
    let compact: String = whole.chars().filter(|c| *c != '-' && *c != ':').collect();
    if whole.len() != 19 || compact.len() != 15 {
        return Err(bad());
    }
    latchkey_sigv4::AmzDate::parse(&format!("{compact}Z"))
        .map(|d| Some(d.unix()))
        .map_err(|_| bad())
}

fn new_job_id() -> Result<String, ApiError> {
    let b = latchkey_store::random::<16>().map_err(|e| {
        ApiError::new(
            500,
            "InternalServerException",
            "The job could not be started.",
        )
        .because(e.to_string())
    })?;
    Ok(latchkey_audit::trail::uuid_text(b))
}

fn start_policy_generation(
    call: &JsonCall,
    authorize: impl FnOnce() -> Result<(), latchkey_identity::IdentityError>,
) -> Result<Answer, ApiError> {
    let details = call
        .input
        .get("policyGenerationDetails")
        .and_then(Value::as_object)
        .ok_or_else(|| validation("policyGenerationDetails is required"))?;
    let principal = required_string(details, "principalArn")?;
    let empty = serde_json::Map::new();
    let trail = match call.input.get("cloudTrailDetails") {
        None => &empty,
        Some(Value::Object(t)) => t,
        Some(_) => return Err(validation("cloudTrailDetails must be an object")),
    };
    let start = time_member(trail, "startTime")?.unwrap_or(call.now - DEFAULT_WINDOW_SECS);
    if start > call.now {
        return Err(validation("startTime must not be in the future"));
    }
    // Latchkey keeps each permission's last use, not every use: a use
    // seen after an earlier end may also have happened inside the window,
    // or not. So a window runs to now, and the job says so; an endTime a
    // client's clock puts a little earlier (as SigV4 allows) is now.
    let given_end = time_member(trail, "endTime")?;
    if given_end.is_some_and(|end| end < start) {
        return Err(validation("endTime must not be before startTime"));
    }
    if let Some(end) = given_end
        && end < call.now - CLOCK_SKEW_SECS
    {
        return Err(validation(
            "endTime must be now or later: Latchkey generates from each permission's last use, \
             so a window runs to the present",
        ));
    }
    let end = call.now;
    // Users and roles act; groups and policies do not (as AWS takes them).
    if !matches!(
        latchkey_advisor::parse_subject_arn(call.state.store.account_id(), principal),
        Ok(latchkey_advisor::Subject::User(_) | latchkey_advisor::Subject::Role(_))
    ) {
        return Err(validation(
            "principalArn must be the ARN of an IAM user or role in this account",
        ));
    }
    authorize()?;
    let stored =
        crate::iam::authorize_activity_of(call.state, call.caller, principal, None, call.now)?;
    // The job names the principal as stored (path and spelling), which
    // deleting it forgets the job by, and a reader is held to.
    let named = stored.unwrap_or_else(|| principal.to_owned());
    let (report, arn) = match crate::advisor::generate_policy(&call.state.store, principal, start) {
        Ok((subject, generated)) => {
            let policy = serde_json::to_string(&generated.policy)
                .map_err(|e| ApiError::internal().because(format!("generated policy: {e}")))?;
            (
                GenerationReport {
                    start,
                    end,
                    policy: Some(policy),
                    error: None,
                },
                subject.arn,
            )
        }
        Err(crate::advisor::AdvisorError::Generate(
            latchkey_advisor::GenerateError::NothingUsed,
        )) => (
            GenerationReport {
                start,
                end,
                policy: None,
                error: None,
            },
            named,
        ),
        Err(crate::advisor::AdvisorError::Generate(e)) => (
            GenerationReport {
                start,
                end,
                policy: None,
                error: Some(("SERVICE_QUOTA_EXCEEDED_ERROR".into(), e.to_string())),
            },
            named,
        ),
        Err(crate::advisor::AdvisorError::Store(latchkey_store::StoreError::NoSuchEntity {
            ..
        })) => {
            return Err(validation(format!("Principal {principal} does not exist")));
        }
        Err(crate::advisor::AdvisorError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(validation(e.to_string())),
    };
    let report = serde_json::to_string(&report)
        .map_err(|e| ApiError::internal().because(format!("job report: {e}")))?;
    let job = AdvisorJob {
        id: new_job_id()?,
        arn,
        granularity: GENERATION.to_owned(),
        created: call.now,
        report,
    };
    call.state
        .store
        .put_advisor_job(&job, call.now - JOB_LIFETIME_SECS)?;
    Ok(Answer {
        output: json!({ "jobId": job.id }),
        resources: Vec::new(),
        response_elements: Some(json!({ "jobId": job.id })),
    })
}

/// Whether the caller may see the activity job `job` is about (a refusal
/// names the job, not its principal). A job whose principal is no longer
/// stored as it was (deleted, perhaps re-created elsewhere or by someone
/// else) is gone with it: answered as a job that does not exist.
fn authorize_job(call: &JsonCall, job: &AdvisorJob) -> Result<(), ApiError> {
    let stored = crate::iam::authorize_activity_of(
        call.state,
        call.caller,
        &job.arn,
        Some(&format!("policy generation job {}", job.id)),
        call.now,
    )?;
    if stored.as_deref() != Some(job.arn.as_str()) {
        return Err(validation(format!(
            "No policy generation job with id {}",
            job.id
        )));
    }
    Ok(())
}

/// The generation job `jobId` names, with its report.
fn read_job(call: &JsonCall) -> Result<(AdvisorJob, GenerationReport), ApiError> {
    let id = required_string(call.input, "jobId")?;
    let missing = || validation(format!("No policy generation job with id {id}"));
    let job = call
        .state
        .store
        .advisor_job(id)?
        .filter(|j| j.granularity == GENERATION)
        .ok_or_else(missing)?;
    let report = serde_json::from_str(&job.report)
        .map_err(|e| missing().because(format!("stored job report unreadable: {e}")))?;
    Ok((job, report))
}

fn job_status(report: &GenerationReport) -> &'static str {
    if report.error.is_some() {
        "FAILED"
    } else {
        "SUCCEEDED"
    }
}

fn get_generated_policy(
    call: &JsonCall,
    authorize: impl FnOnce() -> Result<(), latchkey_identity::IdentityError>,
) -> Result<Answer, ApiError> {
    // Both shape the answer here, where every policy is resource-level.
    bool_field(call.input, "includeResourcePlaceholders")?;
    bool_field(call.input, "includeServiceLevelTemplate")?;
    authorize()?;
    let (job, report) = read_job(call)?;
    authorize_job(call, &job)?;
    let mut details = json!({
        "jobId": job.id,
        "status": job_status(&report),
        "startedOn": timestamp(job.created),
        "completedOn": timestamp(job.created),
    });
    if let Some((code, message)) = &report.error {
        details["jobError"] = json!({"code": code, "message": message});
    }
    let policies: Vec<Value> = report.policy.iter().map(|p| json!({"policy": p})).collect();
    Ok(Answer::output(json!({
        "jobDetails": details,
        "generatedPolicyResult": {
            "properties": {
                "isComplete": report.error.is_none(),
                "principalArn": job.arn,
                "cloudTrailProperties": {
                    "trailProperties": [],
                    "startTime": timestamp(report.start),
                    "endTime": timestamp(report.end),
                },
            },
            "generatedPolicies": policies,
        },
    })))
}

fn list_policy_generations(
    call: &JsonCall,
    authorize: impl FnOnce() -> Result<(), latchkey_identity::IdentityError>,
) -> Result<Answer, ApiError> {
    let principal = string(call.input, "principalArn")?;
    let size = int_field(call.input, "maxResults", 1, MAX_RESULTS)?.unwrap_or(MAX_RESULTS);
    authorize()?;
    // A principal's name is matched without case, its path exactly, as
    // StartPolicyGeneration matches it. Only jobs about principals whose
    // activity the caller may see are listed.
    let jobs: Vec<AdvisorJob> = call
        .state
        .store
        .advisor_jobs(GENERATION, None)?
        .into_iter()
        .filter(|j| principal.is_none_or(|p| crate::advisor::same_entity_arn(&j.arn, p)))
        .filter(|j| authorize_job(call, j).is_ok())
        .collect();
    let start = match string(call.input, "nextToken")? {
        None => 0,
        Some(token) => token
            .strip_prefix("g.")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= jobs.len())
            .ok_or_else(|| validation("nextToken is not valid"))?,
    };
    let end = start
        .saturating_add(usize::try_from(size).unwrap_or(usize::MAX))
        .min(jobs.len());
    let page: Vec<Value> = jobs[start..end]
        .iter()
        .map(|job| {
            let status = serde_json::from_str::<GenerationReport>(&job.report)
                .map_or("FAILED", |r| job_status(&r));
            json!({
                "jobId": job.id,
                "principalArn": job.arn,
                "status": status,
                "startedOn": timestamp(job.created),
                "completedOn": timestamp(job.created),
            })
        })
        .collect();
    let mut output = json!({ "policyGenerations": page });
    if end < jobs.len() {
        output["nextToken"] = Value::String(format!("g.{end}"));
    }
    Ok(Answer::output(output))
}

/// A job is done when started: cancelling one that exists changes nothing.
fn cancel_policy_generation(
    call: &JsonCall,
    authorize: impl FnOnce() -> Result<(), latchkey_identity::IdentityError>,
) -> Result<Answer, ApiError> {
    authorize()?;
    let (job, _) = read_job(call)?;
    authorize_job(call, &job)?;
    Ok(Answer::output(json!({})))
}
