//! The access advisor's logic, without I/O: what an audit event used
//! ([`usage`]), last-accessed reports by service, action and resource
//! ([`access`]), and IAM's credential report ([`report`]). The store keeps
//! the uses; the server and the CLI read them through these functions.

pub mod access;
pub mod checks;
pub mod generate;
pub mod report;
pub mod usage;

pub use access::{
    Accessed, ActionAccess, PermissionAccess, ServiceAccess, permissions_accessed, service_name,
    services_accessed,
};
pub use generate::{GenerateError, Generated, generate};
pub use report::{ReportKey, ReportPassword, ReportUser, credential_report};
pub use usage::{
    CredentialUse, PermissionUse, Uses, entity_arn, of_event, of_record, record_entity,
};

#[cfg(test)]
mod tests;

/// What an access-advisor report may be about, from its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject<'a> {
    User(&'a str),
    Role(&'a str),
    Group(&'a str),
    /// A customer managed policy, by its full ARN.
    Policy(&'a str),
}

/// An ARN that names no user, group, role or policy of the account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not the ARN of a user, group, role or policy in this account")]
pub struct InvalidSubjectArn(pub String);

/// The user, group, role or managed policy `arn` names in `account`
/// (`arn:aws:iam::ACCOUNT:user/PATH/NAME`...).
pub fn parse_subject_arn<'a>(
    account: &str,
    arn: &'a str,
) -> Result<Subject<'a>, InvalidSubjectArn> {
    let invalid = || InvalidSubjectArn(arn.to_owned());
    let [_, partition, service, region, arn_account, resource] =
        latchkey_policy::condition::split_arn(arn).ok_or_else(invalid)?;
    if partition != "aws" || service != "iam" || !region.is_empty() || arn_account != account {
        return Err(invalid());
    }
    let (kind, rest) = resource.split_once('/').ok_or_else(invalid)?;
    let name = rest
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(invalid)?;
    match kind {
        "user" => Ok(Subject::User(name)),
        "role" => Ok(Subject::Role(name)),
        "group" => Ok(Subject::Group(name)),
        "policy" => Ok(Subject::Policy(arn)),
        _ => Err(invalid()),
    }
}
