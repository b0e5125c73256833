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

use std::collections::HashMap;
use std::sync::Arc;

use hyper::StatusCode;
use latchkey_audit::{ApiService, SessionInfo};
use latchkey_gateway::{LiveView, Running};
use latchkey_identity::ActionContext;
use latchkey_server::error::ApiError;
use latchkey_store::Database;
use maud::html;
use serde_json::json;

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

fn every_session(gateways: &[Arc<dyn Running>]) -> Vec<LiveView> {
    let mut all: Vec<LiveView> = gateways
        .iter()
        .flat_map(|g| g.keeper().live_sessions())
        .collect();
    all.sort_by_key(|v| std::cmp::Reverse(v.info.started));
    all
}

fn started_text(info: &SessionInfo) -> String {
    let secs = info
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    super::shown_time(&latchkey_identity::iso8601(secs))
}

fn bytes_text(n: u64) -> String {
    match n {
        0..1_024 => format!("{n} B"),
        1_024..1_048_576 => format!("{:.1} KiB", n as f64 / 1_024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// `GET /console/sessions`: the running sessions of the databases the
/// caller may see.
pub fn sessions(s: &Signed<'_>, gateways: &[Arc<dyn Running>], query: &Form) -> Reply {
    let mut may_see = match Decisions::new(s, "latchkey:DescribeSessions") {
        Ok(d) => d,
        Err(reply) => return *reply,
    };
    let all = every_session(gateways);
    let mut refused = None;
    let shown: Vec<&LiveView> = all
        .iter()
        .filter(|v| match may_see.allowed(&v.info.database) {
            Ok(()) => true,
            Err(e) => {
                refused.get_or_insert(e);
                false
            }
        })
        .collect();
    // Refused everything there is, or (nothing running) refused on any
    // database: the caller learns only that.
    // Said of every database (`db:*`), never of one that has sessions.
    let of_all = || {
        may_see
            .s
            .api
            .allowed("latchkey:DescribeSessions", &database_arn(s, "*"))
            .err()
    };
    let refusal_now = match (&refused, shown.is_empty(), all.is_empty()) {
        (Some(e), true, false) => of_all().or_else(|| Some(e.clone())),
        (_, _, true) => of_all(),
        _ => None,
    };
    if let Some(e) = refusal_now {
        return s.refused(
            StatusCode::FORBIDDEN,
            Section::Sessions,
            "Sessions",
            &e.to_string(),
        );
    }
    let rows = shown
        .iter()
        .map(|v| {
            let info = &v.info;
            let (kind, name, arn) = principal_of(info);
            let id = &info.session_id;
            let audit = format!(
                "/console/audit?principal={}&database={}",
                encode(&info.identity.arn),
                encode(&info.database)
            );
            html! { tr data-session=(id) {
                td { span title=(arn) { (kind) " " (name) } br; small { code { (info.identity.arn) } } }
                td { (info.source_ip) }
                td { (info.database) " (" (info.engine) ")" }
                td { code { (info.db_user) } }
                td { (started_text(info)) }
                td.num { a href=(audit) { (v.statements) } }
                td.num { (bytes_text(v.bytes_from_client)) " / " (bytes_text(v.bytes_to_client)) }
                td.actions {
                    form method="post" action={ "/console/sessions/" (id) "/end" } {
                        (csrf_field(&s.csrf))
                        button type="submit" aria-label={ "End session " (id) } { "End session" }
                    }
                    form method="post" action={ "/console/sessions/" (id) "/revoke" } {
                        (csrf_field(&s.csrf))
                        button type="submit" aria-label={ "Revoke every session of " (name) } { "Revoke " (kind) "'s sessions" }
                    }
                }
            } }
        })
        .collect();
    let body = html! {
        @match query.text("done") {
            "ended" => (notice("The session was ended.")),
            "revoked" => (notice("The principal's running sessions were ended and its temporary credentials revoked. An IAM user's access keys still work: deactivate them on the user's page.")),
            _ => {}
        }
        p { "Statements and bytes (from the client / to the client) so far; the page refreshes itself every 10 seconds." }
        div #live-sessions data-refresh="10" {
            (table("Running sessions",
                   &["Principal", "Source address", "Database", "Database user", "Started", "Statements", "Bytes", "Actions"],
                   rows, "No sessions are running."))
        }
    };
    s.page(Section::Sessions, "Sessions", body)
}

fn find(gateways: &[Arc<dyn Running>], id: &str) -> Option<Arc<SessionInfo>> {
    if !valid_session_id(id) {
        return None;
    }
    every_session(gateways)
        .into_iter()
        .find(|v| v.info.session_id == id)
        .map(|v| v.info)
}

fn gone(s: &Signed<'_>) -> Reply {
    s.refused(
        StatusCode::NOT_FOUND,
        Section::Sessions,
        "Sessions",
        "That session is not running (it may have ended already).",
    )
}

fn record_end(s: &Signed<'_>, info: &SessionInfo, refusal: Option<&ApiError>) {
    latchkey_server::http::record_front_call(
        s.api.state,
        &s.api.caller,
        ApiService::Gateway,
        "EndSession",
        json!({
            "sessionId": info.session_id,
            "database": info.database,
            "dbUser": info.db_user,
            "principal": info.identity.arn,
        }),
        refusal,
        s.api.peer,
        crate::api::USER_AGENT,
    );
}

/// Ends `info`'s session if the caller may; `Ok(false)` when it had
/// ended already.
fn end_one(
    s: &Signed<'_>,
    gateways: &[Arc<dyn Running>],
    may_end: &mut Decisions<'_, '_>,
    info: &SessionInfo,
) -> Result<bool, Refusal> {
    if let Err(e) = may_end.allowed(&info.database) {
        record_end(
            s,
            info,
            Some(&ApiError::new(403, "AccessDenied", e.message.clone())),
        );
        return Err(e);
    }
    let ended = gateways
        .iter()
        .any(|g| g.keeper().end_session(&info.session_id).is_some());
    if ended {
        record_end(s, info, None);
    }
    Ok(ended)
}

/// `POST /console/sessions/ID/end`.
pub fn end(s: &Signed<'_>, gateways: &[Arc<dyn Running>], id: &str) -> Reply {
    let Some(info) = find(gateways, id) else {
        return gone(s);
    };
    let mut may_end = match Decisions::new(s, "latchkey:EndSession") {
        Ok(d) => d,
        Err(reply) => return *reply,
    };
    match end_one(s, gateways, &mut may_end, &info) {
        Ok(true) => redirect("/console/sessions?done=ended"),
        // Refused (and recorded): answered as for a session that does not
        // run, naming neither its database nor its principal.
        Ok(false) | Err(_) => gone(s),
    }
}

/// `POST /console/sessions/ID/revoke`: `RevokeSessions` on the session's
/// user or role, then every running session of theirs ended.
pub fn revoke(s: &Signed<'_>, gateways: &[Arc<dyn Running>], id: &str) -> Reply {
    let Some(info) = find(gateways, id) else {
        return gone(s);
    };
    let mut may_end = match Decisions::new(s, "latchkey:EndSession") {
        Ok(d) => d,
        Err(reply) => return *reply,
    };
    // Only a session the caller may end leads to its principal.
    if let Err(e) = may_end.allowed(&info.database) {
        record_end(
            s,
            &info,
            Some(&ApiError::new(403, "AccessDenied", e.message.clone())),
        );
        return gone(s);
    }
    let (kind, name, arn) = principal_of(&info);
    let param = if kind == "role" {
        "RoleName"
    } else {
        "UserName"
    };
    if let Err(e) = s.api.call("RevokeSessions", &[(param, name.as_str())]) {
        return s.refused(
            StatusCode::FORBIDDEN,
            Section::Sessions,
            "Sessions",
            &e.to_string(),
        );
    }
    let theirs: Vec<Arc<SessionInfo>> = every_session(gateways)
        .into_iter()
        .filter(|v| principal_of(&v.info).2 == arn)
        .map(|v| v.info)
        .collect();
    let mut refusals = Vec::new();
    for info in &theirs {
        if let Err(e) = end_one(s, gateways, &mut may_end, info) {
            refusals.push(e);
        }
    }
    match refusals.first() {
        None => redirect("/console/sessions?done=revoked"),
        Some(e) => s.page_status(
            StatusCode::FORBIDDEN,
            Section::Sessions,
            "Sessions",
            html! {
                (notice("The principal's credentials were revoked: no new session can start with them."))
                (refusal(&format!("{} of their running sessions could not be ended: {e}", refusals.len())))
            },
        ),
    }
}

/// The Overview's gateway part: running sessions by database and logins
/// per minute over the last hour and per hour over the last day, for the
/// databases (and, for the charts, the whole gateway) the caller may see
/// sessions of.
pub fn overview(s: &Signed<'_>, gateways: &[Arc<dyn Running>]) -> maud::Markup {
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
    for v in every_session(gateways) {
        if may_see.allowed(&v.info.database).is_ok() {
            *by_database.entry(v.info.database.clone()).or_default() += 1;
        }
    }
    let day = {
        let mut sum = vec![
            latchkey_gateway::activity::Minute::default();
            latchkey_gateway::activity::MINUTES
        ];
        for g in gateways {
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
                Err(e) => (refusal(&format!("The login charts count every database: {e}"))),
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
