//! Last-accessed reports: for what a set of policies grants, when it was
//! last used, by service and action (IAM's access advisor) and down to
//! each resource (`latchkey advisor last-accessed`).

use std::collections::BTreeMap;

use latchkey_policy::pattern::Pattern;
use latchkey_policy::{Effect, Policy};

use crate::usage::PermissionUse;

/// The services Latchkey's catalogue knows, with the names IAM's access
/// advisor gives them (Latchkey's own for its own namespaces).
pub const SERVICES: &[(&str, &str)] = &[
    ("access-analyzer", "IAM Access Analyzer"),
    ("iam", "AWS Identity and Access Management"),
    ("kms", "AWS Key Management Service"),
    ("latchkey", "Latchkey Database Gateway"),
    ("rds-db", "Amazon RDS IAM Authentication"),
    ("secretsmanager", "AWS Secrets Manager"),
    ("sql", "Latchkey Statement Policy"),
    ("ssm", "AWS Systems Manager"),
    ("sts", "AWS Security Token Service"),
];

/// A service's name for people, from its namespace (`iam`).
pub fn service_name(namespace: &str) -> &'static str {
    SERVICES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(namespace))
        .map_or("Unknown service", |(_, name)| name)
}

/// When something was last used, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessed {
    /// Epoch seconds.
    pub at: i64,
    /// The entity (user or role ARN) that used it then.
    pub entity: String,
}

impl Accessed {
    fn later(slot: &mut Option<Accessed>, u: &PermissionUse) {
        if slot.as_ref().is_none_or(|a| u.at > a.at) {
            *slot = Some(Accessed {
                at: u.at,
                entity: u.principal.clone(),
            });
        }
    }
}

/// One granted action and its last use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionAccess {
    /// `iam:CreateUser`.
    pub action: &'static str,
    pub last: Option<Accessed>,
}

impl ActionAccess {
    /// The action's name without its service (`CreateUser`), as IAM's
    /// `TrackedActionsLastAccessed` gives it.
    pub fn name(&self) -> &'static str {
        self.action.split_once(':').map_or(self.action, |(_, n)| n)
    }
}

/// One granted service: its last use, how many entities used it, and each
/// granted action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccess {
    pub namespace: &'static str,
    pub name: &'static str,
    pub last: Option<Accessed>,
    /// Distinct entities with a use of the service.
    pub entities: u32,
    pub actions: Vec<ActionAccess>,
}

/// For every service with a granted action (`granted`, from
/// `latchkey_policy::catalog::granted_actions`), its last use among
/// `uses`, sorted by namespace. Uses of actions not granted still date
/// the service (IAM reports the service, whatever action was used), but
/// are not listed as actions.
pub fn services_accessed(granted: &[&'static str], uses: &[PermissionUse]) -> Vec<ServiceAccess> {
    let mut out: Vec<ServiceAccess> = Vec::new();
    for (namespace, name) in SERVICES {
        let prefix_len = namespace.len();
        let in_service = |action: &str| {
            action.len() > prefix_len
                && action.as_bytes()[prefix_len] == b':'
                && action[..prefix_len].eq_ignore_ascii_case(namespace)
        };
        let actions: Vec<&'static str> =
            granted.iter().copied().filter(|a| in_service(a)).collect();
        if actions.is_empty() {
            continue;
        }
        let mut service = ServiceAccess {
            namespace,
            name,
            last: None,
            entities: 0,
            actions: actions
                .iter()
                .map(|&action| ActionAccess { action, last: None })
                .collect(),
        };
        let mut entities: Vec<&str> = Vec::new();
        for u in uses.iter().filter(|u| in_service(&u.action)) {
            Accessed::later(&mut service.last, u);
            if !entities
                .iter()
                .any(|e| e.eq_ignore_ascii_case(&u.principal))
            {
                entities.push(&u.principal);
            }
            if let Some(a) = service
                .actions
                .iter_mut()
                .find(|a| a.action.eq_ignore_ascii_case(&u.action))
            {
                Accessed::later(&mut a.last, u);
            }
        }
        service.entities = u32::try_from(entities.len()).unwrap_or(u32::MAX);
        out.push(service);
    }
    out
}

/// One row of `latchkey advisor last-accessed`: a granted action on a
/// resource (as granted: a pattern; or as used: an ARN the pattern
/// matched) and its last use, `None` for never.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionAccess {
    pub action: &'static str,
    /// The resource used, or the granted pattern no use matched.
    pub resource: String,
    pub last: Option<Accessed>,
}

/// A resource pattern as a statement grants it.
fn resource_matches(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    // Variables (`${aws:username}`) are not known here: such a pattern
    // matches nothing, and stays listed as granted.
    Pattern::compile(pattern, true, true)
        .ok()
        .and_then(|p| p.matches(arn, &|_| None, false))
        .unwrap_or(false)
}

/// The granted resource patterns of `action` in `policies`' Allow
/// statements (`NotResource` shown as `NOT(...)`).
fn granted_resources(policies: &[Policy], action: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in policies.iter().flat_map(|p| &p.statements) {
        if s.effect != Effect::Allow {
            continue;
        }
        let (patterns, not_action) = &s.actions;
        let matched = patterns
            .iter()
            .any(|p| latchkey_policy::catalog::action_matches(p, action));
        if matched == *not_action {
            continue;
        }
        let granted = match &s.resources {
            None => vec!["*".to_owned()],
            Some((list, false)) => list.clone(),
            Some((list, true)) => vec![format!("NOT({})", list.join(", "))],
        };
        for g in granted {
            if !out.contains(&g) {
                out.push(g);
            }
        }
    }
    out
}

/// For each action `policies` grant, each resource it was used on with its
/// last use, and each granted resource pattern that no use matched as
/// never used. Sorted by action, then resource.
pub fn permissions_accessed(policies: &[Policy], uses: &[PermissionUse]) -> Vec<PermissionAccess> {
    let mut granted: Vec<&'static str> = policies
        .iter()
        .flat_map(latchkey_policy::catalog::granted_actions)
        .collect();
    granted.sort_unstable();
    granted.dedup();
    let mut out = Vec::new();
    for action in granted {
        let patterns = granted_resources(policies, action);
        let mut used: BTreeMap<&str, Option<Accessed>> = BTreeMap::new();
        for u in uses
            .iter()
            .filter(|u| u.action.eq_ignore_ascii_case(action))
        {
            Accessed::later(used.entry(&u.resource).or_default(), u);
        }
        for pattern in &patterns {
            let matched = (pattern.starts_with("NOT(") && !used.is_empty())
                || used.keys().any(|r| resource_matches(pattern, r));
            if !matched {
                used.entry(pattern).or_default();
            }
        }
        out.extend(used.into_iter().map(|(resource, last)| PermissionAccess {
            action,
            resource: resource.to_owned(),
            last,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_policy::{PolicyKind, parse};

    fn used(principal: &str, action: &str, resource: &str, at: i64) -> PermissionUse {
        PermissionUse {
            principal: principal.into(),
            action: action.into(),
            resource: resource.into(),
            at,
        }
    }

    const ALICE: &str = "arn:aws:iam::1:user/alice";
    const BOB: &str = "arn:aws:iam::1:user/bob";

    #[test]
    fn services_list_what_is_granted_with_the_latest_use() {
        let granted = ["iam:GetUser", "iam:ListUsers", "kms:Decrypt"];
        let uses = [
            used(ALICE, "iam:GetUser", "*", 100),
            used(BOB, "IAM:getuser", "*", 300),
            used(ALICE, "iam:CreateUser", "*", 200),
            used(ALICE, "sts:AssumeRole", "*", 500),
        ];
        let report = services_accessed(&granted, &uses);
        assert_eq!(report.len(), 2, "iam and kms, not sts (not granted)");
        let iam = &report[0];
        assert_eq!(
            (iam.namespace, iam.name),
            ("iam", "AWS Identity and Access Management")
        );
        assert_eq!(
            iam.last,
            Some(Accessed {
                at: 300,
                entity: BOB.into()
            })
        );
        assert_eq!(iam.entities, 2);
        assert_eq!(iam.actions[0].name(), "GetUser");
        assert_eq!(iam.actions[0].last.as_ref().map(|a| a.at), Some(300));
        assert_eq!(iam.actions[1].last, None, "ListUsers never used");
        let kms = &report[1];
        assert_eq!((kms.last.clone(), kms.entities), (None, 0));
    }

    #[test]
    fn permissions_show_each_resource_used_and_each_grant_never_used() {
        let policy = parse(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"rds-db:connect","Resource":[
                "arn:aws:rds-db:us-east-1:1:dbuser:db-A/app",
                "arn:aws:rds-db:us-east-1:1:dbuser:db-A/admin"]},
              {"Effect":"Allow","Action":"sql:Select","Resource":"arn:aws:sql:us-east-1:1:table/db-A/*"}]}"#,
            PolicyKind::Identity,
        )
        .unwrap();
        let uses = [
            used(
                ALICE,
                "rds-db:connect",
                "arn:aws:rds-db:us-east-1:1:dbuser:db-A/app",
                10,
            ),
            used(
                ALICE,
                "rds-db:connect",
                "arn:aws:rds-db:us-east-1:1:dbuser:db-A/app",
                20,
            ),
            used(
                ALICE,
                "sql:Select",
                "arn:aws:sql:us-east-1:1:table/db-A/app/public/orders",
                15,
            ),
        ];
        let rows = permissions_accessed(&[policy], &uses);
        let view: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.action,
                    r.resource.rsplit(':').next().unwrap(),
                    r.last.as_ref().map(|a| a.at),
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("rds-db:connect", "db-A/admin", None),
                ("rds-db:connect", "db-A/app", Some(20)),
                ("sql:Select", "table/db-A/app/public/orders", Some(15)),
            ]
        );
    }
}
