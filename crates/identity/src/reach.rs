//! Who may connect to a database: the users and roles whose identity
//! policies allow `rds-db:connect` on one of its database users (the
//! console's Databases page). Each candidate database user comes from an
//! Allow statement's `Resource` and is then decided by the same engine a
//! login goes through, so a Deny elsewhere removes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use latchkey_policy::{CompiledPolicy, Decision, PolicySet, Request, grants};
use latchkey_store::{Database, PrincipalKind};

use crate::error::IdentityError;
use crate::state::{AppState, compile_stored};

/// A user or role that may connect, and as which database users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectGrant {
    pub kind: PrincipalKind,
    pub name: String,
    pub arn: String,
    pub db_users: Vec<DbUserGrant>,
}

/// One database user (or pattern: `*`, `app_*`) a principal may log in
/// as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbUserGrant {
    pub db_user: String,
    /// Condition keys the decision depends on that only a login supplies
    /// (`aws:SourceIp`, `aws:MultiFactorAuthPresent`...): empty when the
    /// grant holds whatever they are.
    pub depends_on: Vec<String>,
}

/// The database user a policy's resource pattern names (the part after
/// `dbuser:ID/`; `*` for a pattern that spans users or names none), its
/// policy variables filled in by `resolve` (lowercase key to value).
/// `Err` with the variables `resolve` does not know: they depend on the
/// login (a role session's tags), so no one value can be decided.
fn candidate(
    pattern: &str,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let user = match pattern.split_once(":dbuser:") {
        // A resource id holds no `/`: the user is all after the first.
        Some((_, rest)) => rest.split_once('/').map_or("*", |(_, u)| u),
        None => "*",
    };
    let mut out = String::new();
    let mut unknown = Vec::new();
    let mut rest = user;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &rest[start + 2..start + len];
        let (key, default) = match inner.split_once(',') {
            Some((k, d)) => (k.trim(), Some(d.trim().trim_matches('\''))),
            None => (inner.trim(), None),
        };
        match resolve(&key.to_ascii_lowercase()).or(default.map(str::to_owned)) {
            Some(v) => out.push_str(&v),
            None => unknown.push(key.to_owned()),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(unknown)
    }
}

/// Whether a resource pattern's `dbuser:ID` part can match `resource_id`
/// (`*` and patterns without a `dbuser:` part can).
fn names_database(pattern: &str, resource_id: &str) -> bool {
    let Some((_, rest)) = pattern.split_once(":dbuser:") else {
        return true;
    };
    let id = rest.split_once('/').map_or(rest, |(id, _)| id);
    latchkey_policy::pattern::Pattern::compile(id, false, true)
        .ok()
        .and_then(|p| p.matches(resource_id, &|_| None, false))
        .unwrap_or(true)
}

impl AppState {
    /// Every user and role whose policies allow connecting to `db`, by
    /// name. Reads every principal's policies in one pass over the store,
    /// compiling each distinct document once.
    pub fn who_may_connect(&self, db: &Database) -> Result<Vec<ConnectGrant>, IdentityError> {
        let account = self.store.account_id().to_owned();
        let prefix = format!(
            "arn:aws:rds-db:{}:{account}:dbuser:{}/",
            self.region(),
            db.resource_id
        );
        let mut by_principal: BTreeMap<(bool, String), Vec<(String, String)>> = BTreeMap::new();
        for (kind, name, label, doc) in self.store.all_identity_policies()? {
            by_principal
                .entry((kind == PrincipalKind::Role, name))
                .or_default()
                .push((label, doc));
        }
        let users: HashMap<String, latchkey_store::User> = self
            .store
            .list_users()?
            .into_iter()
            .map(|u| (u.name.clone(), u))
            .collect();
        let roles: HashMap<String, latchkey_store::Role> = self
            .store
            .list_roles()?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        type Compiled = (Arc<CompiledPolicy>, Vec<String>);
        let mut compiled: HashMap<String, Compiled> = HashMap::new();
        let mut out = Vec::new();
        for ((is_role, name), docs) in by_principal {
            let (kind, arn, id, tags) = if is_role {
                let Some(r) = roles.get(&name) else { continue };
                (PrincipalKind::Role, &r.arn, &r.id, &r.tags)
            } else {
                let Some(u) = users.get(&name) else { continue };
                (PrincipalKind::User, &u.arn, &u.id, &u.tags)
            };
            let mut set = PolicySet::default();
            let mut candidates = BTreeSet::new();
            // Grants whose database user only a login's values decide:
            // listed with what they depend on, never left out.
            let mut undecided: Vec<DbUserGrant> = Vec::new();
            for (label, doc) in docs {
                let entry = match compiled.get(&doc) {
                    Some(entry) => entry,
                    None => {
                        let policy =
                            latchkey_policy::parse(&doc, latchkey_policy::PolicyKind::Identity)
                                .map_err(|_| {
                                    IdentityError::InvalidStoredPolicy(format!(
                                        "{label} does not parse"
                                    ))
                                })?;
                        let patterns = grants::allowed_resources(&policy, "rds-db:connect")
                            .into_iter()
                            .map(str::to_owned)
                            .collect();
                        let entry = (Arc::new(compile_stored(&label, &doc)?), patterns);
                        compiled.entry(doc).or_insert(entry)
                    }
                };
                set.identity.push(entry.0.clone());
                // What a login supplies for the principal's variables. A
                // role session's tags are its own (set at AssumeRole), so
                // a role's stored tags decide nothing.
                let resolve = |key: &str| -> Option<String> {
                    match key {
                        "aws:username" if !is_role => Some(name.clone()),
                        "aws:userid" if !is_role => Some(id.clone()),
                        "aws:principalaccount" => Some(account.clone()),
                        _ if !is_role => key.strip_prefix("aws:principaltag/").and_then(|k| {
                            tags.iter()
                                .find(|(t, _)| t.eq_ignore_ascii_case(k))
                                .map(|(_, v)| v.clone())
                        }),
                        _ => None,
                    }
                };
                for pattern in &entry.1 {
                    match candidate(pattern, &resolve) {
                        Ok(user) => {
                            candidates.insert(user);
                        }
                        // Only where the pattern can name this database.
                        Err(keys) if names_database(pattern, &db.resource_id) => {
                            undecided.push(DbUserGrant {
                                db_user: pattern
                                    .split_once(":dbuser:")
                                    .and_then(|(_, r)| r.split_once('/'))
                                    .map_or("*", |(_, u)| u)
                                    .to_owned(),
                                depends_on: keys,
                            });
                        }
                        Err(_) => {}
                    }
                }
            }
            let conditional = set
                .identity
                .iter()
                .any(|p| p.conditional_for("rds-db:connect"));
            let mut db_users = Vec::new();
            for user in candidates {
                let mut req = Request::new("rds-db:connect", &format!("{prefix}{user}"))
                    .with_caller(arn)
                    .with_caller_id(id);
                for (k, v) in &db.tags {
                    req.set_context(&format!("aws:ResourceTag/{k}"), [v.as_str()]);
                }
                req.set_context("aws:SecureTransport", ["true"]);
                req.set_context("aws:PrincipalAccount", [account.as_str()]);
                req.set_context("aws:PrincipalArn", [arn.as_str()]);
                req.set_context("aws:userid", [id.as_str()]);
                if is_role {
                    req.set_context("aws:PrincipalType", ["AssumedRole"]);
                } else {
                    req.set_context("aws:PrincipalType", ["User"]);
                    req.set_context("aws:username", [name.as_str()]);
                }
                if !is_role {
                    for (k, v) in tags {
                        req.set_context(&format!("aws:PrincipalTag/{k}"), [v.as_str()]);
                    }
                }
                // Without conditions the decision is all there is (and
                // allocates nothing); with them, which keys it waits for.
                if !conditional {
                    if set.decide(&req) == Decision::Allowed {
                        db_users.push(DbUserGrant {
                            db_user: user,
                            depends_on: Vec::new(),
                        });
                    }
                    continue;
                }
                let explained = set.explain(&req);
                let waits = !explained.missing_context_keys.is_empty();
                if explained.decision == Decision::Allowed
                    || (explained.decision == Decision::ImplicitDeny && waits)
                {
                    db_users.push(DbUserGrant {
                        db_user: user,
                        depends_on: explained.missing_context_keys,
                    });
                }
            }
            db_users.extend(undecided);
            if !db_users.is_empty() {
                out.push(ConnectGrant {
                    kind,
                    name: name.clone(),
                    arn: arn.clone(),
                    db_users,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::candidate;

    #[test]
    fn candidates_name_the_database_user_or_all() {
        let none = |_: &str| None;
        let alice = |k: &str| match k {
            "aws:username" => Some("alice".to_owned()),
            "aws:principaltag/dbuser" => Some("app".to_owned()),
            _ => None,
        };
        assert_eq!(
            candidate("arn:aws:rds-db:r:1:dbuser:db-A/app", &none),
            Ok("app".into())
        );
        assert_eq!(
            candidate("arn:aws:rds-db:r:1:dbuser:*/*", &none),
            Ok("*".into())
        );
        assert_eq!(
            candidate("arn:aws:rds-db:r:1:dbuser:db-A", &none),
            Ok("*".into())
        );
        assert_eq!(candidate("*", &none), Ok("*".into()));
        assert_eq!(
            candidate("arn:aws:rds-db:r:1:dbuser:*/${aws:username}", &alice),
            Ok("alice".into())
        );
        assert_eq!(
            candidate(
                "arn:aws:rds-db:r:1:dbuser:*/${aws:PrincipalTag/dbuser}_ro",
                &alice
            ),
            Ok("app_ro".into())
        );
        assert_eq!(
            candidate(
                "arn:aws:rds-db:r:1:dbuser:*/${aws:PrincipalTag/team}",
                &alice
            ),
            Err(vec!["aws:PrincipalTag/team".to_owned()])
        );
        assert_eq!(
            candidate(
                "arn:aws:rds-db:r:1:dbuser:*/${aws:PrincipalTag/team, 'dev'}",
                &none
            ),
            Ok("dev".into())
        );
    }
}
