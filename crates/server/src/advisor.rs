//! The access advisor over the store: what a user, group, role or managed
//! policy grants, whose uses count for it, and the reports of
//! `latchkey-advisor` built from them. Shared by the IAM calls
//! (`GenerateServiceLastAccessedDetails`, the credential report) and the
//! `latchkey advisor` commands.

use latchkey_advisor::{PermissionUse, ReportKey, ReportUser, Subject as ArnSubject};
use latchkey_policy::{Policy, PolicyKind};
use latchkey_store::{PrincipalKind, Store, StoreError};

/// Why a subject could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AdvisorError {
    #[error(transparent)]
    InvalidArn(#[from] latchkey_advisor::InvalidSubjectArn),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user or role whose uses a report counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub kind: PrincipalKind,
    pub arn: String,
    pub name: String,
    pub id: String,
    pub path: String,
}

/// What a report is about: the policies that grant, and the users and
/// roles that could have used them (a group's members, not the group, as
/// IAM's access advisor lists them).
#[derive(Debug, Clone)]
pub struct Subject {
    pub arn: String,
    pub policies: Vec<Policy>,
    pub entities: Vec<Entity>,
}

impl Subject {
    /// The catalogued actions the subject's policies grant.
    pub fn granted(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = self
            .policies
            .iter()
            .flat_map(latchkey_policy::catalog::granted_actions)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The entities' ARNs.
    pub fn principals(&self) -> Vec<&str> {
        self.entities.iter().map(|e| e.arn.as_str()).collect()
    }

    /// Adds entities not yet listed.
    fn add(&mut self, entities: Vec<Entity>) {
        for e in entities {
            if !self
                .entities
                .iter()
                .any(|o| o.arn.eq_ignore_ascii_case(&e.arn))
            {
                self.entities.push(e);
            }
        }
    }
}

fn parsed(docs: Vec<(String, String)>) -> Vec<Policy> {
    // Stored policies were validated when written.
    docs.iter()
        .filter_map(|(_, doc)| latchkey_policy::parse(doc, PolicyKind::Identity).ok())
        .collect()
}

fn user_entity(u: latchkey_store::User) -> Entity {
    Entity {
        kind: PrincipalKind::User,
        arn: u.arn,
        name: u.name,
        id: u.id,
        path: u.path,
    }
}

/// The users and roles `kind`/`name` stands for: itself, or a group's
/// members.
fn entities_of(store: &Store, kind: PrincipalKind, name: &str) -> Result<Vec<Entity>, StoreError> {
    Ok(match kind {
        PrincipalKind::User => vec![user_entity(store.get_user(name)?)],
        PrincipalKind::Role => {
            let r = store.get_role(name)?;
            vec![Entity {
                kind,
                arn: r.arn,
                name: r.name,
                id: r.id,
                path: r.path,
            }]
        }
        PrincipalKind::Group => store
            .group_members(name)?
            .into_iter()
            .map(user_entity)
            .collect(),
    })
}

/// The subject an ARN names: a user, group or role with its identity
/// policies (a user's groups' too), or a managed policy with the users
/// and roles it applies to.
pub fn subject(store: &Store, arn: &str) -> Result<Subject, AdvisorError> {
    let (principal_kind, name, stored_arn) =
        match latchkey_advisor::parse_subject_arn(store.account_id(), arn)? {
            ArnSubject::User(name) => (PrincipalKind::User, name, store.get_user(name)?.arn),
            ArnSubject::Role(name) => (PrincipalKind::Role, name, store.get_role(name)?.arn),
            ArnSubject::Group(name) => (PrincipalKind::Group, name, store.get_group(name)?.arn),
            ArnSubject::Policy(policy) => {
                let document = store.managed_policy(policy)?;
                let mut subject = Subject {
                    arn: policy.to_owned(),
                    policies: parsed(vec![(policy.to_owned(), document)]),
                    entities: Vec::new(),
                };
                for e in store.policy_entities(policy)? {
                    subject.add(entities_of(store, e.kind, &e.name)?);
                }
                return Ok(subject);
            }
        };
    let mut subject = Subject {
        arn: stored_arn,
        policies: parsed(store.identity_policies(principal_kind, name)?),
        entities: Vec::new(),
    };
    subject.add(entities_of(store, principal_kind, name)?);
    Ok(subject)
}

/// Every stored use by the subject's users and roles.
pub fn uses(store: &Store, subject: &Subject) -> Result<Vec<PermissionUse>, StoreError> {
    Ok(store
        .last_accesses(&subject.principals())?
        .into_iter()
        .map(|u| PermissionUse {
            principal: u.principal,
            action: u.action,
            resource: u.resource,
            at: u.at,
        })
        .collect())
}

/// Records what `uses` holds in the store.
pub fn record(store: &Store, uses: &latchkey_advisor::Uses) -> Result<(), StoreError> {
    let permissions: Vec<latchkey_store::LastAccess> = uses
        .permissions
        .iter()
        .map(|u| latchkey_store::LastAccess {
            principal: u.principal.clone(),
            action: u.action.clone(),
            resource: u.resource.clone(),
            at: u.at,
        })
        .collect();
    let credentials: Vec<latchkey_store::CredentialLastUse> = uses
        .credentials
        .iter()
        .map(|c| latchkey_store::CredentialLastUse {
            id: c.id.clone(),
            at: c.at,
            service: c.service.clone(),
        })
        .collect();
    store.record_usage(&permissions, &credentials)
}

/// Every user's line of the credential report, from the store.
pub fn report_users(store: &Store) -> Result<Vec<ReportUser>, StoreError> {
    let mut out = Vec::new();
    for user in store.list_users()? {
        let mut keys = store.list_access_keys(&user.name)?;
        keys.sort_by_key(|k| (k.created, k.id.clone()));
        let mut report_keys = Vec::with_capacity(keys.len());
        for k in keys {
            report_keys.push(ReportKey {
                active: k.active,
                created: k.created,
                last_used: store.credential_last_use(&k.id)?.map(|u| (u.at, u.service)),
            });
        }
        let mfa_active = store
            .list_mfa_devices(&user.name)?
            .iter()
            .any(|d| d.enabled_at.is_some());
        out.push(ReportUser {
            name: user.name,
            arn: user.arn,
            created: user.created,
            password: None,
            mfa_active,
            keys: report_keys,
        });
    }
    Ok(out)
}
