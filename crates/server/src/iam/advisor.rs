//! The access advisor's IAM calls: `GenerateServiceLastAccessedDetails`
//! and its two readers, `GetAccessKeyLastUsed`, and the credential report.
//! Jobs are computed when generated (from the last uses the store keeps
//! current), so they are `COMPLETED` at once.

use std::collections::BTreeMap;

use base64::Engine;
use latchkey_advisor::Subject as ArnSubject;
use latchkey_store::{AdvisorJob, PrincipalKind};
use serde::{Deserialize, Serialize};

use crate::advisor::{AdvisorError, PolicySource, Subject};
use crate::error::ApiError;
use crate::xml::{Xml, timestamp};

use super::Call;
use super::page::page_of;
use super::targets::{Target, Targets};

/// How long a job stays readable (AWS keeps them for 30 days).
const JOB_LIFETIME_SECS: i64 = 30 * 86_400;

/// A credential report older than this is expired (AWS: four hours).
const REPORT_LIFETIME_SECS: i64 = 4 * 3600;

#[derive(Serialize, Deserialize)]
struct JobReport {
    services: Vec<ServiceRow>,
    entities: Vec<EntityRow>,
}

#[derive(Serialize, Deserialize)]
struct ServiceRow {
    namespace: String,
    name: String,
    last: Option<(i64, String)>,
    entities: u32,
    actions: Vec<(String, Option<(i64, String)>)>,
}

#[derive(Serialize, Deserialize)]
struct EntityRow {
    arn: String,
    name: String,
    kind: String,
    id: String,
    path: String,
    /// Last use per service namespace.
    last: BTreeMap<String, i64>,
}

fn advisor_error(e: AdvisorError) -> ApiError {
    match e {
        // AWS's own managed policies are valid subjects there; this
        // account has none of them.
        AdvisorError::InvalidArn(e) if e.0.starts_with("arn:aws:iam::aws:policy/") => {
            ApiError::new(
                404,
                "NoSuchEntity",
                format!("Policy {} does not exist.", e.0),
            )
        }
        AdvisorError::InvalidArn(e) => {
            ApiError::new(400, "InvalidInput", format!("ARN {} is not valid.", e.0))
        }
        AdvisorError::Store(e) => e.into(),
        e @ (AdvisorError::NotAPrincipal(_)
        | AdvisorError::NotAnIdentity(_)
        | AdvisorError::Generate(_)) => ApiError::new(400, "InvalidInput", e.to_string()),
    }
}

/// What `GenerateServiceLastAccessedDetails` on `arn` is authorised
/// against: the stored entity (path and tags count), or the ARN as given.
fn subject_target(c: &Call, arn: &str) -> Result<Target, ApiError> {
    match latchkey_advisor::parse_subject_arn(c.store.account_id(), arn) {
        Ok(ArnSubject::User(name)) => Ok(c.state.user_target(name)),
        Ok(ArnSubject::Role(name)) => Ok(c.state.role_target(name)),
        Ok(ArnSubject::Group(name)) => Ok(c.state.group_target(name)),
        Ok(ArnSubject::Policy(policy)) => c.state.policy_target(policy),
        // Another account's or a malformed ARN: authorised as written,
        // then refused as invalid.
        Err(_) => Ok(Target {
            arn: arn.to_owned(),
            context: latchkey_identity::ActionContext::new(),
            shown: None,
        }),
    }
}

/// Authorises `caller` to learn what the user or role `arn` did, as
/// `iam:GenerateServiceLastAccessedDetails` on the stored entity (its path
/// and tags count), refused alike whether it exists or not: what
/// Access Analyzer's policy generation reads and shows is that activity,
/// so it asks the same of its callers as IAM's access advisor does.
/// `shown` names the resource in a refusal instead (a job, whose
/// principal the caller may not learn). Once authorised: the stored ARN
/// of the user or role, `None` when there is none.
pub(crate) fn authorize_activity_of(
    state: &latchkey_identity::AppState,
    caller: &latchkey_identity::Caller,
    arn: &str,
    shown: Option<&str>,
    now: i64,
) -> Result<Option<String>, ApiError> {
    let target = match latchkey_advisor::parse_subject_arn(state.store.account_id(), arn) {
        Ok(ArnSubject::User(name)) => state.user_target(name),
        Ok(ArnSubject::Role(name)) => state.role_target(name),
        _ => Target {
            arn: arn.to_owned(),
            context: latchkey_identity::ActionContext::new(),
            shown: None,
        },
    };
    // A stored entity's target names it as the request did; a missing
    // one's names nothing else.
    let stored = target.shown.is_some().then(|| target.arn.clone());
    let shown = shown.or(target.shown.as_deref()).unwrap_or(&target.arn);
    state.authorize_shown(
        caller,
        "iam:GenerateServiceLastAccessedDetails",
        &target.arn,
        shown,
        now,
        &target.context,
    )?;
    Ok(stored)
}

fn job_report(subject: &Subject, uses: &[latchkey_advisor::PermissionUse]) -> JobReport {
    let granted = subject.granted();
    let services = latchkey_advisor::services_accessed(&granted, uses)
        .into_iter()
        .map(|s| ServiceRow {
            namespace: s.namespace.to_owned(),
            name: s.name.to_owned(),
            last: s.last.map(|a| (a.at, a.entity)),
            entities: s.entities,
            actions: s
                .actions
                .iter()
                .map(|a| {
                    (
                        a.name().to_owned(),
                        a.last.clone().map(|l| (l.at, l.entity)),
                    )
                })
                .collect(),
        })
        .collect();
    let entities = subject
        .entities
        .iter()
        .map(|e| {
            let mut last: BTreeMap<String, i64> = BTreeMap::new();
            for u in uses
                .iter()
                .filter(|u| e.arn.eq_ignore_ascii_case(&u.principal))
            {
                let ns = u
                    .action
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let at = last.entry(ns).or_insert(u.at);
                *at = (*at).max(u.at);
            }
            EntityRow {
                arn: e.arn.clone(),
                name: e.name.clone(),
                kind: match e.kind {
                    PrincipalKind::User => "USER",
                    PrincipalKind::Role => "ROLE",
                    PrincipalKind::Group => "GROUP",
                }
                .to_owned(),
                id: e.id.clone(),
                path: e.path.clone(),
                last,
            }
        })
        .collect();
    JobReport { services, entities }
}

fn new_job_id() -> Result<String, ApiError> {
    let b = latchkey_store::random::<16>().map_err(|e| {
        ApiError::new(500, "ServiceFailure", "The job could not be started.").because(e.to_string())
    })?;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// `GenerateServiceLastAccessedDetails`.
pub(super) fn generate_service_last_accessed_details(c: &Call) -> Result<Option<Xml>, ApiError> {
    let arn = c.params.required("Arn")?;
    let granularity = match c.params.get("Granularity") {
        None | Some("SERVICE_LEVEL") => "SERVICE_LEVEL",
        Some("ACTION_LEVEL") => "ACTION_LEVEL",
        Some(_) => {
            return Err(ApiError::validation(
                "Granularity must be SERVICE_LEVEL or ACTION_LEVEL",
            ));
        }
    };
    c.authorize(subject_target(c, arn)?)?;
    let subject = crate::advisor::subject(c.store, arn).map_err(advisor_error)?;
    let uses = crate::advisor::uses(c.store, &subject)?;
    let report = serde_json::to_string(&job_report(&subject, &uses)).map_err(|e| {
        ApiError::new(500, "ServiceFailure", "The job could not be completed.")
            .because(e.to_string())
    })?;
    let job = AdvisorJob {
        id: new_job_id()?,
        arn: subject.arn,
        granularity: granularity.to_owned(),
        created: c.now,
        report,
    };
    c.store.put_advisor_job(&job, c.now - JOB_LIFETIME_SECS)?;
    let mut x = Xml::new();
    x.text("JobId", &job.id);
    Ok(Some(x))
}

/// A job id is a UUID: 36 characters, as IAM's model constrains it.
const JOB_ID_LEN: usize = 36;

fn read_job(c: &Call) -> Result<(AdvisorJob, JobReport), ApiError> {
    let id = c.params.required("JobId")?;
    if id.chars().count() != JOB_ID_LEN {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'jobId' failed to satisfy constraint: \
             Member must have length {} {JOB_ID_LEN}",
            if id.chars().count() < JOB_ID_LEN {
                "greater than or equal to"
            } else {
                "less than or equal to"
            }
        )));
    }
    c.authorize(c.state.any_target())?;
    let missing = || {
        ApiError::new(
            404,
            "NoSuchEntity",
            format!("The job with id {id} cannot be found."),
        )
    };
    let job = c.store.advisor_job(id)?.ok_or_else(missing)?;
    let report: JobReport = serde_json::from_str(&job.report)
        .map_err(|e| missing().because(format!("stored job report unreadable: {e}")))?;
    Ok((job, report))
}

fn job_header(x: &mut Xml, job: &AdvisorJob) {
    x.text("JobStatus", "COMPLETED")
        .text("JobCreationDate", &timestamp(job.created))
        .text("JobCompletionDate", &timestamp(job.created));
}

/// `GetServiceLastAccessedDetails`.
pub(super) fn get_service_last_accessed_details(c: &Call) -> Result<Option<Xml>, ApiError> {
    let (job, report) = read_job(c)?;
    let region = c.state.region();
    let page = page_of(report.services, |s| s.namespace.clone(), c.params)?;
    let mut x = Xml::new();
    job_header(&mut x, &job);
    x.text("JobType", &job.granularity);
    let action_level = job.granularity == "ACTION_LEVEL";
    x.members("ServicesLastAccessed", &page.items, |x, s| {
        x.text("ServiceName", &s.name)
            .text("ServiceNamespace", &s.namespace);
        if let Some((at, entity)) = &s.last {
            x.text("LastAuthenticated", &timestamp(*at))
                .text("LastAuthenticatedEntity", entity)
                .text("LastAuthenticatedRegion", region);
        }
        x.text("TotalAuthenticatedEntities", &s.entities.to_string());
        if action_level {
            x.members(
                "TrackedActionsLastAccessed",
                &s.actions,
                |x, (name, last)| {
                    x.text("ActionName", name);
                    if let Some((at, entity)) = last {
                        x.text("LastAccessedEntity", entity)
                            .text("LastAccessedTime", &timestamp(*at))
                            .text("LastAccessedRegion", region);
                    }
                },
            );
        }
    });
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// `GetServiceLastAccessedDetailsWithEntities`.
pub(super) fn get_service_last_accessed_details_with_entities(
    c: &Call,
) -> Result<Option<Xml>, ApiError> {
    let namespace = c.params.required("ServiceNamespace")?.to_ascii_lowercase();
    check_namespace(&namespace, "serviceNamespace")?;
    let (job, report) = read_job(c)?;
    let entities: Vec<(EntityRow, Option<i64>)> = report
        .entities
        .into_iter()
        .map(|e| {
            let last = e.last.get(&namespace).copied();
            (e, last)
        })
        .collect();
    let page = page_of(entities, |(e, _)| e.arn.clone(), c.params)?;
    let mut x = Xml::new();
    job_header(&mut x, &job);
    x.members("EntityDetailsList", &page.items, |x, (e, last)| {
        x.node("EntityInfo", |x| {
            x.text("Arn", &e.arn)
                .text("Name", &e.name)
                .text("Type", &e.kind)
                .text("Id", &e.id)
                .text("Path", &e.path);
        });
        if let Some(at) = last {
            x.text("LastAuthenticated", &timestamp(*at));
        }
    });
    page.write_truncation(&mut x);
    Ok(Some(x))
}

/// A service namespace as IAM's model constrains it: 1 to 64 word
/// characters or hyphens. `field` is where it was given.
fn check_namespace(namespace: &str, field: &str) -> Result<(), ApiError> {
    if namespace.is_empty()
        || namespace.len() > 64
        || !namespace
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [\\w-]*"
        )));
    }
    Ok(())
}

/// IAM's bounds on `ServiceNamespaces`.
const MAX_NAMESPACES: usize = 200;

/// `ListPoliciesGrantingServiceAccess`: for each namespace asked, the
/// identity policies (inline and managed, a user's groups' too) with an
/// `Allow` for some action of that service. Authorised on `*`, as AWS
/// defines the action; an ARN that names no stored user, group or role is
/// `NoSuchEntity`.
pub(super) fn list_policies_granting_service_access(c: &Call) -> Result<Option<Xml>, ApiError> {
    let arn = c.params.required("Arn")?;
    let namespaces: Vec<String> = c
        .params
        .list("ServiceNamespaces")
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    if namespaces.is_empty() || namespaces.len() > MAX_NAMESPACES {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'serviceNamespaces' failed to satisfy \
             constraint: Member must have length between 1 and {MAX_NAMESPACES}"
        )));
    }
    for (i, namespace) in namespaces.iter().enumerate() {
        check_namespace(namespace, &format!("serviceNamespaces.{}.member", i + 1))?;
    }
    // Nothing is ever truncated: a marker can only be one this server
    // did not write.
    if let Some(marker) = c.params.get("Marker") {
        super::page::decode_marker(marker)?;
    }
    c.authorize(c.state.any_target())?;
    let policies = crate::advisor::identity_policies(c.store, arn).map_err(advisor_error)?;
    let mut x = Xml::new();
    x.members(
        "PoliciesGrantingServiceAccess",
        &namespaces,
        |x, namespace| {
            x.text("ServiceNamespace", namespace);
            let mut granting: Vec<&PolicySource> = Vec::new();
            for (source, policy) in &policies {
                // A managed policy attached to a user and to its group is
                // one policy: listed once.
                if latchkey_policy::catalog::grants_service(policy, namespace)
                    && !granting.contains(&source)
                {
                    granting.push(source);
                }
            }
            x.members("Policies", &granting, |x, source| {
                x.text("PolicyName", source.name());
                match source {
                    PolicySource::Inline { kind, entity, .. } => {
                        x.text("PolicyType", "INLINE")
                            .text("EntityType", &kind.as_str().to_ascii_uppercase())
                            .text("EntityName", entity);
                    }
                    PolicySource::Managed { arn } => {
                        x.text("PolicyType", "MANAGED").text("PolicyArn", arn);
                    }
                }
            });
        },
    );
    x.text("IsTruncated", "false");
    Ok(Some(x))
}

/// `GetAccessKeyLastUsed`: authorised on the key's user, as AWS does.
pub(super) fn get_access_key_last_used(c: &Call) -> Result<Option<Xml>, ApiError> {
    let id = c.params.required("AccessKeyId")?;
    let owner = c.store.access_key(id)?.map(|key| key.user);
    let missing = || {
        ApiError::new(
            404,
            "NoSuchEntity",
            format!("The Access Key with id {id} cannot be found."),
        )
    };
    // An unknown key is refused as AWS refuses it, after authorising
    // against the account's users so that no one learns which keys exist.
    // A refusal names the key, never its owner.
    let shown = Some(format!("access key {id}"));
    let Some(user) = owner else {
        c.authorize(Target {
            shown,
            ..c.state.missing_target("user", "*")
        })?;
        return Err(missing());
    };
    c.authorize(Target {
        shown,
        ..c.state.user_target(&user)
    })?;
    let last = c.store.credential_last_use(id)?;
    let mut x = Xml::new();
    x.text("UserName", &user);
    x.node("AccessKeyLastUsed", |x| match &last {
        Some(u) => {
            x.text("LastUsedDate", &timestamp(u.at))
                .text("ServiceName", &u.service)
                .text("Region", c.state.region());
        }
        None => {
            x.text("ServiceName", "N/A").text("Region", "N/A");
        }
    });
    Ok(Some(x))
}

/// `RoleLastUsed` of a role, for `GetRole` and `ListRoles`.
pub(super) fn role_last_used_xml(c: &Call, x: &mut Xml, role_arn: &str) -> Result<(), ApiError> {
    let last = c.store.credential_last_use(role_arn)?;
    x.node("RoleLastUsed", |x| {
        if let Some(u) = &last {
            x.text("LastUsedDate", &timestamp(u.at))
                .text("Region", c.state.region());
        }
    });
    Ok(())
}

/// `GenerateCredentialReport`: made at once, so always `COMPLETE`.
pub(super) fn generate_credential_report(c: &Call) -> Result<Option<Xml>, ApiError> {
    c.authorize(c.state.any_target())?;
    let users = crate::advisor::report_users(c.store)?;
    let account_created = users.iter().map(|u| u.created).min().unwrap_or(c.now);
    let csv = latchkey_advisor::credential_report(
        c.store.account_id(),
        account_created,
        c.state.region(),
        &users,
    );
    c.store.put_credential_report(c.now, &csv)?;
    let mut x = Xml::new();
    x.text("State", "COMPLETE");
    Ok(Some(x))
}

/// `GetCredentialReport`: the CSV, base64 in the XML as AWS sends it.
pub(super) fn get_credential_report(c: &Call) -> Result<Option<Xml>, ApiError> {
    c.authorize(c.state.any_target())?;
    let Some((generated, csv)) = c.store.credential_report()? else {
        return Err(ApiError::new(
            410,
            "ReportNotPresent",
            "Credential report does not exist. Use GenerateCredentialReport to generate a report.",
        ));
    };
    if c.now - generated > REPORT_LIFETIME_SECS {
        return Err(ApiError::new(
            410,
            "ReportExpired",
            "Credential report is expired. Use GenerateCredentialReport to generate a new report.",
        ));
    }
    let mut x = Xml::new();
    x.text(
        "Content",
        &base64::engine::general_purpose::STANDARD.encode(csv.as_bytes()),
    )
    .text("ReportFormat", "text/csv")
    .text("GeneratedTime", &timestamp(generated));
    Ok(Some(x))
}
