//! Which uses an audit event stands for: the permissions it used (an
//! allowed call, a database login, each table an allowed statement
//! touched) and the credentials it used (an access key, the user or role
//! behind it). The same answer from a live [`Event`] ([`of_event`]) and
//! from its record in the trail ([`of_record`], for rebuilding).
//!
//! A permission counts as used only when the request was allowed: a
//! refused call shows what someone tried, not what they need. A
//! credential counts as used by any request it authenticated, refused or
//! not (AWS's `GetAccessKeyLastUsed` does the same), and by a database
//! login refused after its signature verified.

use latchkey_audit::{AuthResult, Event, Identity};
use serde_json::Value;

/// A permission a principal used: an action on a resource, at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PermissionUse {
    /// The IAM entity that holds the permission: a user's ARN, or a role's
    /// for its sessions.
    pub principal: String,
    /// `iam:CreateUser`, `rds-db:connect`, `sql:Select`.
    pub action: String,
    /// The resource's ARN, or `*` for a call on no resource.
    pub resource: String,
    /// Epoch seconds.
    pub at: i64,
}

/// A credential used: an `AKIA` access key, or a user or role (by ARN).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialUse {
    /// The access key id, or the entity's ARN.
    pub id: String,
    /// Epoch seconds.
    pub at: i64,
    /// The service it was used with: `iam`, `sts`, `rds-db`...
    pub service: String,
}

/// What one or more events used.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Uses {
    pub permissions: Vec<PermissionUse>,
    pub credentials: Vec<CredentialUse>,
    /// The users and roles the uses were made by, as (ARN, unique id): a
    /// use is recorded only while that entity is still the one with the
    /// ARN (not one deleted, nor one made again under its name since).
    pub entities: Vec<(String, String)>,
}

impl Uses {
    pub fn is_empty(&self) -> bool {
        self.permissions.is_empty() && self.credentials.is_empty()
    }

    pub fn clear(&mut self) {
        self.permissions.clear();
        self.credentials.clear();
        self.entities.clear();
    }

    /// Notes who made the uses that follow.
    fn made_by(&mut self, arn: &str, id: &str) {
        if !self.entities.iter().any(|(a, i)| a == arn && i == id) {
            self.entities.push((arn.to_owned(), id.to_owned()));
        }
    }

    fn permission(&mut self, principal: &str, action: String, resource: &str, at: i64) {
        self.permissions.push(PermissionUse {
            principal: principal.to_owned(),
            action,
            resource: resource.to_owned(),
            at,
        });
    }

    /// The access key, when it is a long-term one: any request it signed
    /// uses it (as AWS's `AccessKeyLastUsed` counts), refused or not.
    fn key(&mut self, access_key_id: &str, service: &str, at: i64) {
        if access_key_id.starts_with("AKIA") {
            self.credentials.push(CredentialUse {
                id: access_key_id.to_owned(),
                at,
                service: service.to_owned(),
            });
        }
    }

    /// The user or role, and its key: only a request that was allowed
    /// uses the entity (a session whose every call is refused does not
    /// keep its role looking used).
    fn entity(&mut self, entity: &str, access_key_id: &str, service: &str, at: i64) {
        self.key(access_key_id, service, at);
        self.credentials.push(CredentialUse {
            id: entity.to_owned(),
            at,
            service: service.to_owned(),
        });
    }
}

/// The IAM entity behind an identity: the role of a role session, the
/// user otherwise.
pub fn entity_arn(identity: &Identity) -> &str {
    identity
        .session
        .as_ref()
        .map_or(&identity.arn, |s| &s.issuer.arn)
}

/// The unique id (`AIDA...`, `AROA...`) of [`entity_arn`]'s entity.
fn entity_id(identity: &Identity) -> &str {
    identity
        .session
        .as_ref()
        .map_or(&identity.principal_id, |s| &s.issuer.principal_id)
}

fn seconds(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Adds what `event` used to `out`.
pub fn of_event(event: &Event, out: &mut Uses) {
    match event {
        Event::Api(a) => {
            let Some(identity) = &a.identity else { return };
            let entity = entity_arn(identity);
            out.made_by(entity, entity_id(identity));
            let at = seconds(a.time);
            let service = a.service.name();
            if a.error.is_some() {
                out.key(&identity.access_key_id, service, at);
            } else {
                out.entity(entity, &identity.access_key_id, service, at);
                let action = format!("{service}:{}", a.action);
                if a.resources.is_empty() {
                    out.permission(entity, action, "*", at);
                } else {
                    for r in &a.resources {
                        out.permission(entity, action.clone(), &r.arn, at);
                    }
                }
            }
        }
        Event::Auth(a) => {
            let Some(identity) = &a.identity else { return };
            let entity = entity_arn(identity);
            out.made_by(entity, entity_id(identity));
            let at = seconds(a.time);
            match &a.result {
                AuthResult::Success => {
                    out.entity(entity, &identity.access_key_id, "rds-db", at);
                    if let Some(resource) = &a.resource_arn {
                        out.permission(entity, "rds-db:connect".to_owned(), resource, at);
                    }
                }
                AuthResult::Failure { .. } if a.possession_proven => {
                    out.key(&identity.access_key_id, "rds-db", at);
                }
                AuthResult::Failure { .. } => {}
            }
        }
        Event::Statement(s) => {
            out.made_by(
                entity_arn(&s.session.identity),
                entity_id(&s.session.identity),
            );
            // A statement the database refused (a table that does not
            // exist, a syntax error) touched nothing: it uses no grant;
            // one that returned rows before its error did read.
            if s.error_code.is_some() && s.rows.unwrap_or(0) == 0 {
                return;
            }
            let Some(policy) = s.policy.as_ref().filter(|p| p.evaluated && p.allowed) else {
                return;
            };
            // Nor one the SQL firewall refused: it never ran.
            if policy.firewall.is_some_and(|f| f.refused) {
                return;
            }
            let entity = entity_arn(&s.session.identity);
            let at = seconds(s.time);
            for (action, resource) in &policy.uses {
                out.permission(entity, (*action).to_owned(), resource, at);
            }
        }
        Event::SessionStart(_)
        | Event::SessionEnd(_)
        | Event::Credential(_)
        | Event::Finding(_) => {}
    }
}

/// The service an `eventSource` is the API of (`iam.amazonaws.com`).
fn service_of_source(source: &str) -> Option<&str> {
    source.strip_suffix(".amazonaws.com")
}

/// The entity a trail record's uses go to (the user, or a session's
/// issuer) and its unique id (`AIDA...`, `AROA...`) as the record names
/// it: a rebuild credits a record only to the entity that made it, not to
/// a later one of the same name.
pub fn record_entity(record: &Value) -> Option<(&str, Option<&str>)> {
    let text = |p: &str| record.pointer(p).and_then(Value::as_str);
    // An empty ARN names no one (fuzz find): such a record credits nothing.
    let arn = |p: &str| text(p).filter(|a| !a.is_empty());
    let issuer = arn("/userIdentity/sessionContext/sessionIssuer/arn");
    let entity = issuer.or_else(|| arn("/userIdentity/arn"))?;
    let id = if issuer.is_some() {
        text("/userIdentity/sessionContext/sessionIssuer/principalId")
    } else {
        text("/userIdentity/principalId")
    };
    Some((entity, id))
}

/// Adds what the trail record `record` (one line of the trail, parsed)
/// used to `out`: the same as [`of_event`] gave for its event when it was
/// recorded. Records of other kinds, or malformed, add nothing.
pub fn of_record(record: &Value, out: &mut Uses) {
    let text = |p: &str| record.pointer(p).and_then(Value::as_str);
    let (Some(name), Some(source), Some(time)) =
        (text("/eventName"), text("/eventSource"), text("/eventTime"))
    else {
        return;
    };
    let Some(at) = latchkey_policy::condition::parse_date(time).map(|ms| ms.div_euclid(1000))
    else {
        return;
    };
    let Some((entity, entity_id)) = record_entity(record) else {
        return;
    };
    if let Some(id) = entity_id {
        out.made_by(entity, id);
    }
    let key = text("/userIdentity/accessKeyId").unwrap_or_default();
    let failed = record.get("errorCode").is_some_and(|c| !c.is_null());
    let resources = || {
        record
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("ARN").and_then(Value::as_str))
    };
    match (source, name) {
        ("rds-db.amazonaws.com", "Connect") => {
            if !failed {
                out.entity(entity, key, "rds-db", at);
                for resource in resources() {
                    out.permission(entity, "rds-db:connect".to_owned(), resource, at);
                }
            } else if record.pointer("/database/possessionProven") == Some(&Value::Bool(true)) {
                out.key(key, "rds-db", at);
            }
        }
        ("rds-db.amazonaws.com", "Statement") => {
            let rows = record
                .pointer("/database/rows")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if failed && rows == 0 {
                return;
            }
            let Some(policy) = record.pointer("/database/policy") else {
                return;
            };
            if policy.get("decision").and_then(Value::as_str) != Some("allow")
                || record.pointer("/database/firewall/refused") == Some(&Value::Bool(true))
            {
                return;
            }
            for u in policy
                .get("uses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(action), Some(resource)) = (
                    u.get("action").and_then(Value::as_str),
                    u.get("resource").and_then(Value::as_str),
                ) {
                    out.permission(entity, action.to_owned(), resource, at);
                }
            }
        }
        ("rds-db.amazonaws.com", _) => {}
        (source, action) => {
            let Some(service) = service_of_source(source) else {
                return;
            };
            if record.get("eventType").and_then(Value::as_str) != Some("AwsApiCall") {
                return;
            }
            if failed {
                out.key(key, service, at);
                return;
            }
            out.entity(entity, key, service, at);
            let action = format!("{service}:{action}");
            let mut any = false;
            for resource in resources() {
                any = true;
                out.permission(entity, action.clone(), resource, at);
            }
            if !any {
                out.permission(entity, action, "*", at);
            }
        }
    }
}
