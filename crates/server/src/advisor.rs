//! The access advisor over the store: what a user, group, role or managed
//! policy grants, whose uses count for it, and the reports of
//! `latchkey-advisor` built from them. Shared by the IAM calls
//! (`GenerateServiceLastAccessedDetails`, the credential report) and the
//! `latchkey advisor` commands.

use latchkey_advisor::{
    PermissionUse, ReportKey, ReportPassword, ReportUser, Subject as ArnSubject,
};
use latchkey_policy::{Policy, PolicyKind};
use latchkey_store::{PrincipalKind, Store, StoreError};

/// Why a subject could not be read, or a policy not generated for it.
#[derive(Debug, thiserror::Error)]
pub enum AdvisorError {
    #[error(transparent)]
    InvalidArn(#[from] latchkey_advisor::InvalidSubjectArn),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} is not a user or role: policies are generated for what one principal did")]
    NotAPrincipal(String),
    #[error("ARN {0} is not a user, group or role")]
    NotAnIdentity(String),
    #[error(transparent)]
    Generate(#[from] latchkey_advisor::generate::GenerateError),
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

/// The stored ARN of `kind`/`name`, and the users and roles it stands
/// for: itself, or a group's members.
fn entities_of(
    store: &Store,
    kind: PrincipalKind,
    name: &str,
) -> Result<(String, Vec<Entity>), StoreError> {
    Ok(match kind {
        PrincipalKind::User => {
            let u = store.get_user(name)?;
            (u.arn.clone(), vec![user_entity(u)])
        }
        PrincipalKind::Role => {
            let r = store.get_role(name)?;
            (
                r.arn.clone(),
                vec![Entity {
                    kind,
                    arn: r.arn,
                    name: r.name,
                    id: r.id,
                    path: r.path,
                }],
            )
        }
        PrincipalKind::Group => (
            store.get_group(name)?.arn,
            store
                .group_members(name)?
                .into_iter()
                .map(user_entity)
                .collect(),
        ),
    })
}

/// Whether `given` names the entity whose ARN is `stored`: the same path
/// (IAM paths are case-sensitive) and the same name without case (IAM
/// names are not).
pub(crate) fn same_entity_arn(stored: &str, given: &str) -> bool {
    match (stored.rsplit_once('/'), given.rsplit_once('/')) {
        (Some((stored_path, stored_name)), Some((path, name))) => {
            stored_path == path && stored_name.eq_ignore_ascii_case(name)
        }
        _ => false,
    }
}

/// As [`entities_of`], refused as missing unless `arn` is the stored ARN
/// (path included).
fn stored_entities(
    store: &Store,
    kind: PrincipalKind,
    name: &str,
    arn: &str,
) -> Result<(String, Vec<Entity>), StoreError> {
    let (stored_arn, entities) = entities_of(store, kind, name)?;
    if !same_entity_arn(&stored_arn, arn) {
        return Err(StoreError::NoSuchEntity {
            kind: kind.as_str(),
            name: arn.to_owned(),
        });
    }
    Ok((stored_arn, entities))
}

/// Where an identity policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// Embedded in a user, group or role.
    Inline {
        kind: PrincipalKind,
        entity: String,
        name: String,
    },
    /// A managed policy, attached.
    Managed { arn: String },
}

impl PolicySource {
    /// From the store's label: `{kind}/{entity}/{name}` for an inline
    /// policy, the ARN for a managed one.
    fn from_label(label: &str) -> Option<Self> {
        if label.starts_with("arn:") {
            return Some(Self::Managed {
                arn: label.to_owned(),
            });
        }
        let mut parts = label.splitn(3, '/');
        let kind = parts.next()?.parse().ok()?;
        Some(Self::Inline {
            kind,
            entity: parts.next()?.to_owned(),
            name: parts.next()?.to_owned(),
        })
    }

    /// The policy's name (a managed policy's is its ARN's last part).
    pub fn name(&self) -> &str {
        match self {
            Self::Inline { name, .. } => name,
            Self::Managed { arn } => arn.rsplit('/').next().unwrap_or(arn),
        }
    }
}

/// The identity policies of the user, group or role `arn` names (its
/// whole stored ARN), each with where it comes from: a user's own and its
/// groups', a group's or a role's own.
pub fn identity_policies(
    store: &Store,
    arn: &str,
) -> Result<Vec<(PolicySource, Policy)>, AdvisorError> {
    let (kind, name) = match latchkey_advisor::parse_subject_arn(store.account_id(), arn)? {
        ArnSubject::User(name) => (PrincipalKind::User, name),
        ArnSubject::Role(name) => (PrincipalKind::Role, name),
        ArnSubject::Group(name) => (PrincipalKind::Group, name),
        ArnSubject::Policy(_) => return Err(AdvisorError::NotAnIdentity(arn.to_owned())),
    };
    stored_entities(store, kind, name, arn)?;
    // Stored policies were validated when written.
    Ok(store
        .identity_policies(kind, name)?
        .into_iter()
        .filter_map(|(label, doc)| {
            let policy = latchkey_policy::parse(&doc, PolicyKind::Identity).ok()?;
            Some((PolicySource::from_label(&label)?, policy))
        })
        .collect())
}

/// The subject an ARN names: a user, group or role with its identity
/// policies (a user's groups' too), or a managed policy with the users
/// and roles it applies to. A user, group or role is found by its whole
/// ARN, path included.
pub fn subject(store: &Store, arn: &str) -> Result<Subject, AdvisorError> {
    let (principal_kind, name) = match latchkey_advisor::parse_subject_arn(store.account_id(), arn)?
    {
        ArnSubject::User(name) => (PrincipalKind::User, name),
        ArnSubject::Role(name) => (PrincipalKind::Role, name),
        ArnSubject::Group(name) => (PrincipalKind::Group, name),
        ArnSubject::Policy(policy) => {
            let document = store.managed_policy(policy)?;
            let mut subject = Subject {
                arn: policy.to_owned(),
                policies: parsed(vec![(policy.to_owned(), document)]),
                entities: Vec::new(),
            };
            for e in store.policy_entities(policy)? {
                subject.add(entities_of(store, e.kind, &e.name)?.1);
            }
            return Ok(subject);
        }
    };
    let (stored_arn, entities) = stored_entities(store, principal_kind, name, arn)?;
    let mut subject = Subject {
        arn: stored_arn,
        policies: parsed(store.identity_policies(principal_kind, name)?),
        entities: Vec::new(),
    };
    subject.add(entities);
    Ok(subject)
}

/// A policy that allows what the user or role `arn` used since `since`
/// (epoch seconds), of what its current policies grant: see
/// [`latchkey_advisor::generate`]. The subject is returned with it.
pub fn generate_policy(
    store: &Store,
    arn: &str,
    since: i64,
) -> Result<(Subject, latchkey_advisor::generate::Generated), AdvisorError> {
    let username = match latchkey_advisor::parse_subject_arn(store.account_id(), arn)? {
        ArnSubject::User(name) => Some(name),
        ArnSubject::Role(_) => None,
        ArnSubject::Group(_) | ArnSubject::Policy(_) => {
            return Err(AdvisorError::NotAPrincipal(arn.to_owned()));
        }
    };
    let subject = subject(store, arn)?;
    let uses = uses(store, &subject)?;
    let grants = latchkey_advisor::permissions_accessed(&subject.policies, &uses);
    let generated = latchkey_advisor::generate(&subject.policies, &uses, since, username, &grants)?;
    Ok((subject, generated))
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

/// The unique id of the user or role whose ARN is `arn`, if there is one
/// now.
fn current_id(store: &Store, arn: &str) -> Result<Option<String>, StoreError> {
    let found = match latchkey_advisor::parse_subject_arn(store.account_id(), arn) {
        Ok(ArnSubject::User(name)) => store.get_user(name).map(|u| (u.arn, u.id)),
        Ok(ArnSubject::Role(name)) => store.get_role(name).map(|r| (r.arn, r.id)),
        _ => return Ok(None),
    };
    match found {
        Ok((stored, id)) => Ok(same_entity_arn(&stored, arn).then_some(id)),
        Err(StoreError::NoSuchEntity { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records what `uses` holds in the store: only the uses of users and
/// roles that are still the ones that made them (a use that arrives after
/// its user was deleted, or made again under the same name, is dropped,
/// with the rest of that name's uses in the batch).
pub fn record(store: &Store, uses: &latchkey_advisor::Uses) -> Result<(), StoreError> {
    let mut gone: Vec<String> = Vec::new();
    for (arn, id) in &uses.entities {
        if current_id(store, arn)?.as_deref() != Some(id.as_str()) {
            gone.push(arn.to_ascii_lowercase());
        }
    }
    let kept = |arn: &str| !gone.iter().any(|g| g.eq_ignore_ascii_case(arn));
    let permissions: Vec<latchkey_store::LastAccess> = uses
        .permissions
        .iter()
        .filter(|u| kept(&u.principal))
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
        .filter(|c| kept(&c.id))
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
    let policy = store.password_policy()?;
    let mut profiles: std::collections::HashMap<String, latchkey_store::LoginProfile> = store
        .login_profiles()?
        .into_iter()
        .map(|p| (p.user.to_ascii_lowercase(), p))
        .collect();
    for user in store.list_users()? {
        let password = profiles
            .remove(&user.name.to_ascii_lowercase())
            .map(|p| ReportPassword {
                last_changed: p.changed,
                last_used: p.last_used,
                next_rotation: policy.as_ref().and_then(|pp| pp.expires_at(p.changed)),
            });
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
            password,
            mfa_active,
            keys: report_keys,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::same_entity_arn;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn uses_of_a_deleted_or_remade_user_are_not_recorded() {
        use latchkey_advisor::{PermissionUse, Uses};
        let dir = tempfile::tempdir().unwrap();
        let store = latchkey_store::Store::open(
            &dir.path().join("store.db"),
            latchkey_store::Vault::new(1, &[9; 32]),
        )
        .unwrap();
        let old = store.create_user("dave", "/", &[], 1).unwrap();
        let uses = |id: &str| Uses {
            permissions: vec![PermissionUse {
                principal: old.arn.clone(),
                action: "iam:GetUser".into(),
                resource: "*".into(),
                at: 5,
            }],
            credentials: Vec::new(),
            entities: vec![(old.arn.clone(), id.to_owned())],
        };
        // Made by the user that is there: recorded.
        super::record(&store, &uses(&old.id)).unwrap();
        assert_eq!(store.last_accesses(&[&old.arn]).unwrap().len(), 1);
        // The user deleted and made again: the old one's late uses are not
        // the new one's.
        store.delete_user("dave").unwrap();
        let new = store.create_user("dave", "/", &[], 2).unwrap();
        assert_ne!(new.id, old.id);
        super::record(&store, &uses(&old.id)).unwrap();
        assert!(store.last_accesses(&[&new.arn]).unwrap().is_empty());
    }

    #[test]
    fn an_entity_is_named_by_its_path_exactly_and_its_name_in_any_case() {
        let stored = "arn:aws:iam::123456789012:user/secret/Hidden";
        assert!(same_entity_arn(stored, stored));
        assert!(same_entity_arn(
            stored,
            "arn:aws:iam::123456789012:user/secret/hidden"
        ));
        for other in [
            "arn:aws:iam::123456789012:user/SECRET/Hidden",
            "arn:aws:iam::123456789012:user/Hidden",
            "arn:aws:iam::123456789012:user/secret/other",
            "Hidden",
        ] {
            assert!(!same_entity_arn(stored, other), "{other}");
        }
    }
}
