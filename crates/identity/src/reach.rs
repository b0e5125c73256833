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

/// Fills in the policy variables of `text` with `resolve` (lowercase key
/// to value); `Err` with the keys it does not know.
fn resolved(text: &str, resolve: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::new();
    let mut unknown = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            // Unclosed (a parsed policy has none): kept as written.
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

/// What a policy's resource pattern says of `resource_id`'s users.
#[derive(Debug, PartialEq, Eq)]
enum Candidate {
    /// It can name this database's user (or users: `*`, `app_*`).
    User(String),
    /// Its database or user hangs on variables only a login supplies
    /// (a role session's tags or name): the user part as written, and
    /// those variables.
    Undecided(String, Vec<String>),
    /// It names other databases only.
    Elsewhere,
}

/// The database user a resource pattern names on `resource_id` (the part
/// after `dbuser:ID/`; `*` for a pattern that spans users or names
/// none), its policy variables filled in by `resolve`.
fn candidate(
    pattern: &str,
    resource_id: &str,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Candidate {
    let Some((_, written)) = pattern.split_once(":dbuser:") else {
        return Candidate::User("*".into());
    };
    // A resource id holds no `/`, nor does a variable's name before its
    // `}`: the user is what follows the first `/` outside `${...}`.
    let split = |text: &str| -> (String, String) {
        let mut depth = 0;
        for (i, c) in text.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                '/' if depth == 0 => return (text[..i].to_owned(), text[i + 1..].to_owned()),
                _ => {}
            }
        }
        (text.to_owned(), "*".to_owned())
    };
    let (id, user) = split(written);
    match (resolved(&id, resolve), resolved(&user, resolve)) {
        (Ok(id), Ok(user)) => {
            if names_database(&id, resource_id) {
                Candidate::User(user)
            } else {
                Candidate::Elsewhere
            }
        }
        (Ok(id), Err(_)) if !names_database(&id, resource_id) => Candidate::Elsewhere,
        (id, user) => {
            let mut keys = id.err().unwrap_or_default();
            keys.extend(user.err().unwrap_or_default());
            Candidate::Undecided(split(written).1, keys)
        }
    }
}

/// Whether a resource pattern's `dbuser:ID` part (variables filled in)
/// can match `resource_id`.
fn names_database(id: &str, resource_id: &str) -> bool {
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
                    match candidate(pattern, &db.resource_id, &resolve) {
                        Candidate::User(user) => {
                            candidates.insert(user);
                        }
                        Candidate::Undecided(user, keys) => undecided.push(DbUserGrant {
                            db_user: user,
                            depends_on: keys,
                        }),
                        Candidate::Elsewhere => {}
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
                if is_role {
                    req.set_context("aws:PrincipalType", ["AssumedRole"]);
                } else {
                    req.set_context("aws:PrincipalType", ["User"]);
                    req.set_context("aws:username", [name.as_str()]);
                    // A role session's is `ROLEID:SESSION`, its name chosen
                    // by whoever assumes the role: left to depend on.
                    req.set_context("aws:userid", [id.as_str()]);
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
    use super::{Candidate, candidate};

    #[test]
    fn candidates_name_the_database_user_or_say_what_they_wait_for() {
        let none = |_: &str| None;
        let alice = |k: &str| match k {
            "aws:username" => Some("alice".to_owned()),
            "aws:principaltag/dbuser" => Some("app".to_owned()),
            _ => None,
        };
        let user = |u: &str| Candidate::User(u.into());
        let on = |p: &str, r: &dyn Fn(&str) -> Option<String>| candidate(p, "db-A", r);
        assert_eq!(on("arn:aws:rds-db:r:1:dbuser:db-A/app", &none), user("app"));
        assert_eq!(
            on("arn:aws:rds-db:r:1:dbuser:db-B/app", &none),
            Candidate::Elsewhere
        );
        assert_eq!(on("arn:aws:rds-db:r:1:dbuser:*/*", &none), user("*"));
        assert_eq!(on("arn:aws:rds-db:r:1:dbuser:db-A", &none), user("*"));
        assert_eq!(on("*", &none), user("*"));
        assert_eq!(
            on("arn:aws:rds-db:r:1:dbuser:*/${aws:username}", &alice),
            user("alice")
        );
        assert_eq!(
            on(
                "arn:aws:rds-db:r:1:dbuser:*/${aws:PrincipalTag/dbuser}_ro",
                &alice
            ),
            user("app_ro")
        );
        assert_eq!(
            on(
                "arn:aws:rds-db:r:1:dbuser:*/${aws:PrincipalTag/team}",
                &alice
            ),
            Candidate::Undecided(
                "${aws:PrincipalTag/team}".into(),
                vec!["aws:PrincipalTag/team".into()]
            )
        );
        // Red team G1: a variable in the database part.
        assert_eq!(
            on(
                "arn:aws:rds-db:r:1:dbuser:${aws:PrincipalTag/dbid}/app",
                &none
            ),
            Candidate::Undecided("app".into(), vec!["aws:PrincipalTag/dbid".into()])
        );
        assert_eq!(
            on(
                "arn:aws:rds-db:r:1:dbuser:*/${aws:PrincipalTag/team, 'dev'}",
                &none
            ),
            user("dev")
        );
    }
}
