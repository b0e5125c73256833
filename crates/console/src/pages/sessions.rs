//! The gateway's running sessions: principal, source address, database
//! and database user, start, statements and bytes so far; "end session"
//! and "revoke this principal's sessions", each authorised and recorded.
//!
//! Authorised as Latchkey's own actions on the database's ARN with its
//! tags: `latchkey:DescribeSessions` to see a database's sessions,
//! `latchkey:EndSession` to end one. Revoking a principal's sessions is
//! IAM's `RevokeSessions` (its credentials stop working on every node)
//! and then ends every running session of that principal the caller may
//! end.
//!
//! On a store shared by several nodes the page shows every node's
//! sessions: each node publishes its own ([`published`], every second,
//! by `serve`), and a session of another node is ended by a request that
//! node takes up at its next publish.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::StatusCode;
use latchkey_audit::{ApiService, SessionInfo};
use latchkey_gateway::{LiveView, Running};
use latchkey_identity::ActionContext;
use latchkey_server::error::ApiError;
use latchkey_store::{Database, PublishedSession};
use maud::html;
use serde_json::{Value, json};

use super::databases::database_arn;
use super::table;
use crate::Signed;
use crate::api::Refusal;
use crate::layout::{Section, csrf_field, notice, refusal};
use crate::web::{Form, Reply, encode, redirect};

/// Session ids are 16 hexadecimal characters.
fn valid_session_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The user or role behind a session: (`user` or `role`, name, ARN).
fn principal_of(info: &SessionInfo) -> (&'static str, String, String) {
    match &info.identity.session {
        Some(c) if c.issuer.kind == "Role" => {
            ("role", c.issuer.user_name.clone(), c.issuer.arn.clone())
        }
        Some(c) => ("user", c.issuer.user_name.clone(), c.issuer.arn.clone()),
        None => (
            "user",
            info.identity
                .arn
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
            info.identity.arn.clone(),
        ),
    }
}

/// A node that has not exchanged gauges for this long shows no sessions
/// (`serve` exchanges every half second; it is gone or cut off).
const NODE_ALIVE_SECS: i64 = 3;

/// Where the running sessions are: this node's gateways, and on a store
/// shared with other nodes, what those publish.
pub struct Sources<'a> {
    pub gateways: &'a [Arc<dyn Running>],
    /// This node's id, on a shared store.
    pub node: Option<&'a str>,
}

/// A running session as the page shows it, on this node or another.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRow {
    /// The node it runs on; `None`: this one.
    pub node: Option<String>,
    pub session_id: String,
    pub engine: String,
    /// The identity that logged in (a user, or an assumed role's session).
    pub identity_arn: String,
    /// `user` or `role`, its name and ARN.
    pub principal_kind: String,
    pub principal_name: String,
    pub principal_arn: String,
    pub source_ip: String,
    pub database: String,
    pub db_user: String,
    /// Unix seconds.
    pub started: i64,
    pub statements: u64,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
}

impl SessionRow {
    fn of_view(v: &LiveView) -> Self {
        let info = &v.info;
        let (kind, name, arn) = principal_of(info);
        Self {
            node: None,
            session_id: info.session_id.clone(),
            engine: info.engine.to_owned(),
            identity_arn: info.identity.arn.clone(),
            principal_kind: kind.to_owned(),
            principal_name: name,
            principal_arn: arn,
            source_ip: info.source_ip.to_string(),
            database: info.database.clone(),
            db_user: info.db_user.clone(),
            started: info
                .started
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            statements: v.statements,
            bytes_from_client: v.bytes_from_client,
            bytes_to_client: v.bytes_to_client,
        }
    }

    /// A row another node published; `None` when it does not read.
    fn of_published(p: &PublishedSession) -> Option<Self> {
        let v: Value = serde_json::from_str(&p.document).ok()?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let number = |k: &str| v.get(k).and_then(Value::as_u64);
        let session_id = p.session_id.clone();
        valid_session_id(&session_id).then_some(())?;
        Some(Self {
            node: Some(p.node.clone()),
            session_id,
            engine: text("engine")?,
            identity_arn: text("identityArn")?,
            principal_kind: text("principalKind").filter(|k| k == "user" || k == "role")?,
            principal_name: text("principalName")?,
            principal_arn: text("principalArn")?,
            source_ip: text("sourceIp")?,
            database: p.database.clone(),
            db_user: text("dbUser")?,
            started: v.get("started").and_then(Value::as_i64)?,
            statements: number("statements")?,
            bytes_from_client: number("bytesFromClient")?,
            bytes_to_client: number("bytesToClient")?,
        })
    }
}

/// This node's running session `v` as it publishes it for the others.
pub fn published(v: &LiveView) -> PublishedSession {
    let row = SessionRow::of_view(v);
    PublishedSession {
        node: String::new(),
        session_id: row.session_id,
        database: row.database,
        document: json!({
            "engine": row.engine,
            "identityArn": row.identity_arn,
            "principalKind": row.principal_kind,
            "principalName": row.principal_name,
            "principalArn": row.principal_arn,
            "sourceIp": row.source_ip,
            "dbUser": row.db_user,
            "started": row.started,
            "statements": row.statements,
            "bytesFromClient": row.bytes_from_client,
            "bytesToClient": row.bytes_to_client,
        })
        .to_string(),
    }
}

/// Decides `action` on each database once per request.
struct Decisions<'s, 'a> {
    s: &'s Signed<'a>,
    action: &'static str,
    databases: HashMap<String, Database>,
    decided: HashMap<String, Result<(), Refusal>>,
}

impl<'s, 'a> Decisions<'s, 'a> {
    fn new(s: &'s Signed<'a>, action: &'static str) -> Result<Self, Box<Reply>> {
        let databases = match s.api.state.store.list_databases() {
            Ok(all) => all.into_iter().map(|d| (d.name.clone(), d)).collect(),
            Err(e) => {
                tracing::error!(error = %e, "listing databases failed");
                return Err(Box::new(s.refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Section::Sessions,
                    "Sessions",
                    "The sessions cannot be read now.",
                )));
            }
        };
        Ok(Self {
            s,
            action,
            databases,
            decided: HashMap::new(),
        })
    }

    fn allowed(&mut self, database: &str) -> Result<(), Refusal> {
        if let Some(d) = self.decided.get(database) {
            return d.clone();
        }
        // No longer registered: its tags, and so the conditions on them,
        // are unknown; its sessions are ended soon (the gateway's reload).
        if !self.databases.contains_key(database) {
            let refused = Err(Refusal {
                code: "AccessDenied".into(),
                message: "the database is not registered".into(),
            });
            self.decided.insert(database.to_owned(), refused.clone());
            return refused;
        }
        let mut context = ActionContext::new();
        for (k, v) in self.databases.get(database).map_or(&[][..], |d| &d.tags) {
            context = context.key(format!("aws:ResourceTag/{k}"), [v.as_str()]);
        }
        let decided = self
            .s
            .api
            .allowed_in(self.action, &database_arn(self.s, database), &context);
        self.decided.insert(database.to_owned(), decided.clone());
        decided
    }
}

/// Every running session: this node's, then (on a shared store) the
/// other nodes', newest first; and whether the other nodes' could be read.
fn every_session(s: &Signed<'_>, sources: &Sources<'_>) -> (Vec<SessionRow>, bool) {
    let mut all: Vec<SessionRow> = sources
        .gateways
        .iter()
        .flat_map(|g| g.keeper().live_sessions())
        .map(|v| SessionRow::of_view(&v))
        .collect();
    let mut complete = true;
    if let Some(node) = sources.node {
        match s
            .api
            .state
            .store
            .published_sessions(node, s.now - NODE_ALIVE_SECS)
        {
            Ok(rows) => all.extend(rows.iter().filter_map(SessionRow::of_published)),
            Err(e) => {
                tracing::warn!(error = %e, "reading the other nodes' sessions failed");
                complete = false;
            }
        }
    }
    all.sort_by_key(|r| std::cmp::Reverse(r.started));
    (all, complete)
}

fn started_text(row: &SessionRow) -> String {
    super::shown_time(&latchkey_identity::iso8601(row.started))
}

fn bytes_text(n: u64) -> String {
    match n {
        0..1_024 => format!("{n} B"),
        1_024..1_048_576 => format!("{:.1} KiB", n as f64 / 1_024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// `GET /console/sessions`: the running sessions of the databases the
/// caller may see, on every node.
pub fn sessions(s: &Signed<'_>, sources: &Sources<'_>, query: &Form) -> Reply {
    let mut may_see = match Decisions::new(s, "latchkey:DescribeSessions") {
        Ok(d) => d,
        Err(reply) => return *reply,
    };
    let (all, complete) = every_session(s, sources);
    // Sessions of databases the caller may not see are left out, unnamed.
    let shown: Vec<&SessionRow> = all
        .iter()
        .filter(|r| may_see.allowed(&r.database).is_ok())
        .collect();
    // Nothing to show: refused only when refused on every database
    // (`db:*`), never in the name of one that has sessions.
    let refusal_now = if shown.is_empty() {
        may_see
            .s
            .api
            .allowed("latchkey:DescribeSessions", &database_arn(s, "*"))
            .err()
    } else {
        None
    };
    if let Some(e) = refusal_now {
        return s.refused(
            StatusCode::FORBIDDEN,
            Section::Sessions,
            "Sessions",
            &e.to_string(),
        );
    }
    let clustered = sources.node.is_some();
    let rows = shown
        .iter()
        .map(|r| {
            let id = &r.session_id;
            let audit = format!(
                "/console/audit?principal={}&database={}",
                encode(&r.identity_arn),
                encode(&r.database)
            );
            html! { tr data-session=(id) {
                td { span title=(r.principal_arn) { (r.principal_kind) " " (r.principal_name) } br; small { code { (r.identity_arn) } } }
                td { (r.source_ip) }
                td { (r.database) " (" (r.engine) ")" }
                td { code { (r.db_user) } }
                td { (started_text(r)) }
                @if clustered { td { code { (r.node.as_deref().unwrap_or("this node")) } } }
                td.num { a href=(audit) { (r.statements) } }
                td.num { (bytes_text(r.bytes_from_client)) " / " (bytes_text(r.bytes_to_client)) }
                td.actions {
                    form method="post" action={ "/console/sessions/" (id) "/end" } {
                        (csrf_field(&s.csrf))
                        button type="submit" aria-label={ "End session " (id) } { "End session" }
                    }
                    form method="post" action={ "/console/sessions/" (id) "/revoke" } {
                        (csrf_field(&s.csrf))
                        button type="submit" aria-label={ "Revoke every session of " (r.principal_name) } { "Revoke " (r.principal_kind) "'s sessions" }
                    }
                }
            } }
        })
        .collect();
    let mut headings = vec![
        "Principal",
        "Source address",
        "Database",
        "Database user",
        "Started",
    ];
    if clustered {
        headings.push("Node");
    }
    headings.extend(["Statements", "Bytes", "Actions"]);
    let body = html! {
        @match query.text("done") {
            "ended" => (notice("The session was ended.")),
            "ending" => (notice("The session's node was asked to end it: it ends within a second or two.")),
            "revoked" => (notice("The principal's running sessions were ended and its temporary credentials revoked. An IAM user's access keys still work: deactivate them on the user's page.")),
            _ => {}
        }
        @if !complete { (refusal("The other nodes' sessions cannot be read now: only this node's are shown.")) }
        p { "Statements and bytes (from the client / to the client) so far; the page refreshes itself every 10 seconds." }
        div #live-sessions data-refresh="10" {
            (table("Running sessions", &headings, rows, "No sessions are running."))
        }
    };
    s.page(Section::Sessions, "Sessions", body)
}

fn find(s: &Signed<'_>, sources: &Sources<'_>, id: &str) -> Option<SessionRow> {
    if !valid_session_id(id) {
        return None;
    }
    every_session(s, sources)
        .0
        .into_iter()
        .find(|r| r.session_id == id)
}

fn gone(s: &Signed<'_>) -> Reply {
    s.refused(
        StatusCode::NOT_FOUND,
        Section::Sessions,
        "Sessions",
        "That session is not running (it may have ended already).",
    )
}

fn record_end(s: &Signed<'_>, row: &SessionRow, refusal: Option<&ApiError>) {
    let mut parameters = json!({
        "sessionId": row.session_id,
        "database": row.database,
        "dbUser": row.db_user,
        "principal": row.identity_arn,
    });
    if let Some(node) = &row.node {
        parameters["node"] = json!(node);
    }
    latchkey_server::http::record_front_call(
        s.api.state,
        &s.api.caller,
        ApiService::Gateway,
        "EndSession",
        parameters,
        refusal,
        s.api.peer,
        crate::api::USER_AGENT,
    );
}

/// Ends `row`'s session if the caller may (on another node: asks that
/// node to); `Ok(false)` when it had ended already.
fn end_one(
    s: &Signed<'_>,
    sources: &Sources<'_>,
    may_end: &mut Decisions<'_, '_>,
    row: &SessionRow,
) -> Result<bool, Refusal> {
    if let Err(e) = may_end.allowed(&row.database) {
        record_end(
            s,
            row,
            Some(&ApiError::new(403, "AccessDenied", e.message.clone())),
        );
        return Err(e);
    }
    let ended = match &row.node {
        None => sources
            .gateways
            .iter()
            .any(|g| g.keeper().end_session(&row.session_id).is_some()),
        Some(node) => match s
            .api
            .state
            .store
            .request_session_end(node, &row.session_id, s.now)
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "asking another node to end a session failed");
                return Err(Refusal {
                    code: "ServiceUnavailable".into(),
                    message: "the session's node cannot be reached now".into(),
                });
            }
        },
    };
    if ended {
        record_end(s, row, None);
    }
    Ok(ended)
}

/// `POST /console/sessions/ID/end`.
pub fn end(s: &Signed<'_>, sources: &Sources<'_>, id: &str) -> Reply {
    let Some(row) = find(s, sources, id) else {
        return gone(s);
    };
    let mut may_end = match Decisions::new(s, "latchkey:EndSession") {
        Ok(d) => d,
        Err(reply) => return *reply,
    };
    match end_one(s, sources, &mut may_end, &row) {
        Ok(true) if row.node.is_some() => redirect("/console/sessions?done=ending"),
        Ok(true) => redirect("/console/sessions?done=ended"),
        // Refused (and recorded): answered as for a session that does not
        // run, naming neither its database nor its principal.
        Ok(false) | Err(_) => gone(s),
    }
}

/// `POST /console/sessions/ID/revoke`: `RevokeSessions` on the session's
/// user or role, then every running session of theirs ended, on every
/// node.
pub fn revoke(s: &Signed<'_>, sources: &Sources<'_>, id: &str) -> Reply {
    let Some(row) = find(s, sources, id) else {
        return gone(s);
    };
    let mut may_end = match Decisions::new(s, "latchkey:EndSession") {
        Ok(d) => d,
        Err(reply) => return *reply,
    };
    // Only a session the caller may end leads to its principal.
    if let Err(e) = may_end.allowed(&row.database) {
        record_end(
            s,
            &row,
            Some(&ApiError::new(403, "AccessDenied", e.message.clone())),
        );
        return gone(s);
    }
    let param = if row.principal_kind == "role" {
        "RoleName"
    } else {
        "UserName"
    };
    if let Err(e) = s
        .api
        .call("RevokeSessions", &[(param, row.principal_name.as_str())])
    {
        return s.refused(
            StatusCode::FORBIDDEN,
            Section::Sessions,
            "Sessions",
            &e.to_string(),
        );
    }
    let theirs: Vec<SessionRow> = every_session(s, sources)
        .0
        .into_iter()
        .filter(|r| r.principal_arn == row.principal_arn)
        .collect();
    let mut refusals = Vec::new();
    for other in &theirs {
        if let Err(e) = end_one(s, sources, &mut may_end, other) {
            refusals.push(e);
        }
    }
    match refusals.first() {
        None => redirect("/console/sessions?done=revoked"),
        // How many, not which: a refusal would name their databases.
        Some(_) => s.page_status(
            StatusCode::FORBIDDEN,
            Section::Sessions,
            "Sessions",
            html! {
                (notice("The principal's temporary credentials were revoked. An IAM user's access keys still work: deactivate them on the user's page."))
                (refusal(&format!("{} of their running sessions could not be ended: you are not allowed to end them.", refusals.len())))
            },
        ),
    }
}

/// The Overview's gateway part: running sessions by database and logins
/// per minute over the last hour and per hour over the last day, for the
/// databases (and, for the charts, the whole gateway) the caller may see
/// sessions of.
pub fn overview(s: &Signed<'_>, sources: &Sources<'_>) -> maud::Markup {
    let heading = html! { h2 #gateway-heading { "Gateway" } };
    let mut may_see = match Decisions::new(s, "latchkey:DescribeSessions") {
        Ok(d) => d,
        Err(_) => {
            return html! { section aria-labelledby="gateway-heading" {
                (heading) (refusal("The sessions cannot be read now."))
            } };
        }
    };
    // The charts count every database's logins: they need the action on
    // all of them, each registered one included (a Deny on one hides
    // the charts).
    let names: Vec<String> = may_see.databases.keys().cloned().collect();
    let everywhere = may_see
        .s
        .api
        .allowed("latchkey:DescribeSessions", &database_arn(s, "*"))
        .and_then(|()| names.iter().try_for_each(|name| may_see.allowed(name)));

    let mut by_database: std::collections::BTreeMap<String, usize> = Default::default();
    for r in every_session(s, sources).0 {
        if may_see.allowed(&r.database).is_ok() {
            *by_database.entry(r.database).or_default() += 1;
        }
    }
    let day = {
        let mut sum = vec![
            latchkey_gateway::activity::Minute::default();
            latchkey_gateway::activity::MINUTES
        ];
        for g in sources.gateways {
            for (total, m) in sum
                .iter_mut()
                .zip(g.keeper().activity(latchkey_gateway::activity::MINUTES))
            {
                *total += m;
            }
        }
        sum
    };
    let hour = &day[day.len() - 60..];
    let rows = by_database
        .iter()
        .map(|(db, n)| {
            html! { tr {
                td { a href={ "/console/databases/" (encode(db)) } { (db) } }
                td.num { a href="/console/sessions" { (n) } }
            } }
        })
        .collect();
    html! {
        section aria-labelledby="gateway-heading" {
            (heading)
            (table("Running sessions by database", &["Database", "Sessions"], rows, "No sessions are running."))
            h3 { "Logins in the last hour, per minute" }
            @match &everywhere {
                // Which database refused is not said: it may be one the
                // caller may not see.
                Err(_) => (refusal("AccessDenied: the login charts count every database, so they need latchkey:DescribeSessions on all of them.")),
                Ok(()) => {
                    (crate::charts::stacked_bars("logins-hour", "Logins per minute, last hour", &crate::charts::bars(hour, 1, s.now)))
                    h3 { "Logins in the last day, per hour" }
                    (crate::charts::stacked_bars("logins-day", "Logins per hour, last day", &crate::charts::bars(&day, 60, s.now)))
                    p.hint { "Counted by this node since it started; the audit trail keeps every login." }
                }
            }
        }
    }
}
