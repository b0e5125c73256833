//! The databases behind the gateway: list, register, read and edit, and
//! who may connect (the principals whose policies allow `rds-db:connect`
//! on one of the database's users, computed by the policy engine).
//!
//! Authorised as RDS's own actions on the database's ARN
//! (`arn:aws:rds:REGION:ACCOUNT:db:NAME`) with its tags as
//! `aws:ResourceTag/KEY`: `rds:DescribeDBInstances` to read,
//! `rds:CreateDBInstance` to register, `rds:ModifyDBInstance` to edit,
//! `rds:AddTagsToResource`/`rds:RemoveTagsFromResource` for tags, and
//! `iam:GetAccountAuthorizationDetails` to read everyone's policies for
//! "who may connect". Each change is recorded as RDS's call would be.

use hyper::StatusCode;
use latchkey_audit::ApiService;
use latchkey_identity::ActionContext;
use latchkey_server::error::ApiError;
use latchkey_store::{
    Database, Engine, MAX_ROTATION_DAYS, RotationSchedule, StatementPolicy, TlsMode, UpstreamAuth,
};
use maud::{Markup, html};
use serde_json::json;

use super::table;
use crate::Signed;
use crate::api::Refusal;
use crate::layout::{Section, csrf_field, notice, refusal};
use crate::web::{Form, Reply, encode, redirect};

/// `arn:aws:rds:REGION:ACCOUNT:db:NAME`.
pub fn database_arn(s: &Signed<'_>, name: &str) -> String {
    format!(
        "arn:aws:rds:{}:{}:db:{name}",
        s.api.state.region(),
        s.account
    )
}

/// Whether the caller may `action` on `db` (its tags as
/// `aws:ResourceTag/KEY`, plus `extra`).
fn allowed_on(
    s: &Signed<'_>,
    action: &str,
    name: &str,
    tags: &[(String, String)],
    extra: ActionContext,
) -> Result<(), Refusal> {
    let mut context = extra;
    for (k, v) in tags {
        context = context.key(format!("aws:ResourceTag/{k}"), [v.as_str()]);
    }
    s.api.allowed_in(action, &database_arn(s, name), &context)
}

fn unavailable(s: &Signed<'_>, title: &str) -> Reply {
    s.refused(
        StatusCode::SERVICE_UNAVAILABLE,
        Section::Databases,
        title,
        "The databases cannot be read now.",
    )
}

/// `GET /console/databases`: the databases the caller may describe.
pub fn databases(s: &Signed<'_>, query: &Form) -> Reply {
    let all = match s.api.state.store.list_databases() {
        Ok(all) => all,
        Err(e) => {
            tracing::error!(error = %e, "listing databases failed");
            return unavailable(s, "Databases");
        }
    };
    let mut refusal_seen = None;
    let shown: Vec<&Database> = all
        .iter()
        .filter(|d| {
            match allowed_on(
                s,
                "rds:DescribeDBInstances",
                &d.name,
                &d.tags,
                ActionContext::new(),
            ) {
                Ok(()) => true,
                Err(e) => {
                    refusal_seen.get_or_insert(e);
                    false
                }
            }
        })
        .collect();
    if shown.is_empty() && refusal_seen.is_some() {
        // Said of every database, not of one that exists.
        let e = allowed_on(s, "rds:DescribeDBInstances", "*", &[], ActionContext::new())
            .err()
            .or(refusal_seen);
        if let Some(e) = e {
            return s.refused(
                StatusCode::FORBIDDEN,
                Section::Databases,
                "Databases",
                &e.to_string(),
            );
        }
    }
    let rows = shown
        .iter()
        .map(|d| {
            html! { tr {
                td { a href={ "/console/databases/" (encode(&d.name)) } { (d.name) } }
                td { (d.engine.as_str()) }
                td { (d.endpoints.join(", ")) }
                td { code { (d.upstream) } }
                td { (d.upstream_tls.as_str()) }
                td { (d.upstream_auth.as_str()) }
                td { (d.statement_policy.as_str()) }
                td { (rotation_text(d)) }
                td { (tags_text(&d.tags)) }
            } }
        })
        .collect();
    let body = html! {
        @match query.text("done") {
            "registered" => (notice("Registered.")),
            _ => {}
        }
        p { a.button href="/console/databases/new" { "Register database" } }
        (table("Registered databases",
               &["Name", "Engine", "Endpoints", "Upstream", "Upstream TLS", "Upstream login", "Statement policy", "Rotation", "Tags"],
               rows, "No databases are registered."))
    };
    s.page(Section::Databases, "Databases", body)
}

fn rotation_text(d: &Database) -> String {
    match &d.rotation {
        None => "off".into(),
        Some(r) => match &r.master_user {
            None => format!("every {} days, single user", r.every_days),
            Some(m) => format!("every {} days, alternating users (as {m})", r.every_days),
        },
    }
}

fn tags_text(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /console/databases/new`.
pub fn new_database(s: &Signed<'_>) -> Reply {
    let mut defaults = Form::default();
    defaults.push("engine", Engine::Postgres.as_str());
    defaults.push("auth", UpstreamAuth::Password.as_str());
    defaults.push("tls", TlsMode::Prefer.as_str());
    defaults.push("statements", StatementPolicy::Off.as_str());
    s.page(
        Section::Databases,
        "Register database",
        settings_form(s, &defaults, None, None),
    )
}

/// A `<select>` of an enum's values.
fn choice<T: Copy + PartialEq>(
    id: &str,
    label: &str,
    all: &[T],
    text: impl Fn(T) -> &'static str,
    current: &str,
) -> Markup {
    html! {
        label for=(id) { (label) }
        select #(id) name=(id) {
            @for v in all {
                option value=(text(*v)) selected[text(*v) == current] { (text(*v)) }
            }
        }
    }
}

/// The settings form: registering when `existing` is `None`, editing it
/// otherwise (its name and engine then stay).
fn settings_form(
    s: &Signed<'_>,
    form: &Form,
    existing: Option<&Database>,
    error: Option<&str>,
) -> Markup {
    let action = match existing {
        None => "/console/databases".to_owned(),
        Some(d) => format!("/console/databases/{}", encode(&d.name)),
    };
    html! {
        @if let Some(e) = error { (refusal(e)) }
        form method="post" action=(action) #database-settings {
            (csrf_field(&s.csrf))
            @if existing.is_none() {
                label for="name" { "Name" }
                input #name name="name" type="text" required maxlength="63" value=(form.text("name"));
                (choice("engine", "Engine", Engine::ALL, Engine::as_str, form.text("engine")))
            }
            label for="endpoints" { "Endpoints clients sign tokens for (one host name a line)" }
            textarea #endpoints name="endpoints" rows="2" required { (form.text("endpoints")) }
            @if existing.is_none() {
                label for="upstream" { "Upstream server (host:port)" }
                input #upstream name="upstream" type="text" required value=(form.text("upstream"));
                (choice("auth", "Upstream login", UpstreamAuth::ALL, UpstreamAuth::as_str, form.text("auth")))
                (choice("tls", "Upstream TLS", TlsMode::ALL, TlsMode::as_str, form.text("tls")))
                label for="ca" { "Upstream CA certificate (PEM; verify-ca and verify-full)" }
                textarea #ca name="ca" rows="3" { (form.text("ca")) }
            } @else {
                p.hint #upstream-fixed {
                    "The upstream server, its TLS and the gateway's login to it are not changed here: "
                    "the gateway would present the stored passwords to wherever they pointed. "
                    "Change them on a node with " code { "latchkey db register --update" } "."
                }
            }
            (choice("statements", "Statement policy", StatementPolicy::ALL, StatementPolicy::as_str, form.text("statements")))
            label for="rotate" { "Rotate stored upstream passwords every (days; empty: never)" }
            input #rotate name="rotate" type="number" min="1" max=(MAX_ROTATION_DAYS) value=(form.text("rotate"));
            label for="master" { "Rotation by alternating users, as this privileged login (optional)" }
            input #master name="master" type="text" value=(form.text("master"));
            label for="tags" { "Tags (one key=value a line)" }
            textarea #tags name="tags" rows="3" { (form.text("tags")) }
            button type="submit" { (if existing.is_none() { "Register database" } else { "Save" }) }
        }
    }
}

/// The form's settings as a database (`existing` gives the name, engine
/// and resource id when editing).
fn from_form(form: &Form, existing: Option<&Database>) -> Result<Database, String> {
    let pick = |field: &str, what: &str| -> Result<String, String> {
        let v = form.text(field).trim();
        if v.is_empty() {
            Err(format!("Give the {what}."))
        } else {
            Ok(v.to_owned())
        }
    };
    let (name, engine) = match existing {
        Some(d) => (d.name.clone(), d.engine),
        None => (
            pick("name", "name")?,
            form.text("engine")
                .parse::<Engine>()
                .map_err(|e| e.to_string())?,
        ),
    };
    let endpoints: Vec<String> = form
        .text("endpoints")
        .lines()
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    let tags: Vec<(String, String)> = super::key_values(form.text("tags"), "Tag")?
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Some(k) = latchkey_tags::duplicate(&tags) {
        return Err(format!(
            "Tag key {k} is given twice (tag keys are the same whatever their case)."
        ));
    }
    // An existing database's upstream connection stays as it is (see
    // `settings_form`); a form that tries to change it is refused.
    if let Some(d) = existing {
        let asked = |field: &str, current: &str| {
            form.get(field).is_some_and(|v| v.trim() != current.trim())
        };
        if asked("upstream", &d.upstream)
            || asked("auth", d.upstream_auth.as_str())
            || asked("tls", d.upstream_tls.as_str())
            || asked("ca", d.upstream_ca.as_deref().unwrap_or(""))
        {
            return Err("The upstream connection cannot be changed from the console: use latchkey db register --update on a node.".into());
        }
    }
    let ca = form.text("ca").trim();
    let statement_policy: StatementPolicy = form
        .text("statements")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let rotation = match form.text("rotate").trim() {
        "" => None,
        days => {
            let every_days = days
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=MAX_ROTATION_DAYS).contains(d))
                .ok_or_else(|| format!("Rotation must be every 1 to {MAX_ROTATION_DAYS} days."))?;
            let master = form.text("master").trim();
            Some(RotationSchedule {
                every_days,
                master_user: (!master.is_empty()).then(|| master.to_owned()),
            })
        }
    };
    let (upstream, upstream_auth, upstream_tls, upstream_ca) = match existing {
        Some(d) => (
            d.upstream.clone(),
            d.upstream_auth,
            d.upstream_tls,
            d.upstream_ca.clone(),
        ),
        None => (
            pick("upstream", "upstream server")?,
            form.text("auth").parse().map_err(|e| format!("{e}"))?,
            form.text("tls").parse().map_err(|e| format!("{e}"))?,
            (!ca.is_empty()).then(|| ca.to_owned()),
        ),
    };
    Ok(Database {
        name,
        engine,
        endpoints,
        upstream,
        upstream_auth,
        upstream_tls,
        upstream_ca,
        resource_id: existing.map(|d| d.resource_id.clone()).unwrap_or_default(),
        tags,
        statement_policy,
        rotation,
        // Pooling is set by `latchkey db register` and `latchkey.toml`;
        // the console's form keeps what is registered.
        pooling: existing.map(|d| d.pooling.clone()).unwrap_or_default(),
    })
    .and_then(|db| match existing {
        Some(before) => only_stronger(before, db),
        None => Ok(db),
    })
}

/// How strictly a statement policy decides: a console edit may only
/// raise it.
fn strictness(p: StatementPolicy) -> u8 {
    match p {
        StatementPolicy::Off => 0,
        StatementPolicy::Audit => 1,
        StatementPolicy::Enforce => 2,
    }
}

/// `wanted`, if it weakens none of `before`'s safeguards: statement policy
/// only raised, rotation only added or made more frequent, its master
/// login unchanged (red team round A: `rds:ModifyDBInstance` alone must not
/// undo an explicit `Deny sql:*` by turning statement policy off). Lowering
/// them stays with `latchkey db register --update` on a node.
fn only_stronger(before: &Database, wanted: Database) -> Result<Database, String> {
    if strictness(wanted.statement_policy) < strictness(before.statement_policy) {
        return Err(format!(
            "Statement policy {} cannot be lowered to {} from the console: use latchkey db register --update on a node.",
            before.statement_policy.as_str(),
            wanted.statement_policy.as_str()
        ));
    }
    if let Some(old) = &before.rotation {
        let weaker = match &wanted.rotation {
            None => true,
            Some(new) => new.every_days > old.every_days || new.master_user != old.master_user,
        };
        if weaker {
            return Err("Rotation cannot be stopped, made rarer or given another master login from the console: use latchkey db register --update on a node.".into());
        }
    }
    Ok(wanted)
}

/// The form of `db` as stored, for editing.
fn form_of(db: &Database) -> Form {
    let mut f = Form::default();
    f.push("endpoints", &db.endpoints.join("\n"));
    f.push("statements", db.statement_policy.as_str());
    if let Some(r) = &db.rotation {
        f.push("rotate", &r.every_days.to_string());
        f.push("master", r.master_user.as_deref().unwrap_or(""));
    }
    f.push("tags", &tags_text(&db.tags).replace(", ", "\n"));
    f
}

/// What the trail records of a registration or change: the settings, the
/// CA by fingerprint only.
fn request_parameters(db: &Database) -> serde_json::Value {
    json!({
        "dBInstanceIdentifier": db.name,
        "engine": db.engine.as_str(),
        "endpoints": db.endpoints,
        "upstream": db.upstream,
        "upstreamAuth": db.upstream_auth.as_str(),
        "upstreamTls": db.upstream_tls.as_str(),
        "upstreamCaSha256": db.upstream_ca.as_deref().map(latchkey_gateway::dbca::pem_fingerprints).unwrap_or_default(),
        "statementPolicy": db.statement_policy.as_str(),
        "rotateEveryDays": db.rotation.as_ref().map(|r| r.every_days),
        "tags": db.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
    })
}

fn record(s: &Signed<'_>, action: &str, db: &Database, refusal: Option<&ApiError>) {
    latchkey_server::http::record_front_call(
        s.api.state,
        &s.api.caller,
        ApiService::Rds,
        action,
        request_parameters(db),
        refusal,
        s.api.peer,
        crate::api::USER_AGENT,
    );
}

fn denied(e: &Refusal) -> ApiError {
    ApiError::new(403, "AccessDenied", e.message.clone())
}

/// The authorisation a registration or change needs: the action itself
/// with the tags it sets, and the tagging actions for tags it adds,
/// changes or removes (as RDS asks when tags come with
/// `CreateDBInstance`).
fn authorise_change(
    s: &Signed<'_>,
    action: &str,
    wanted: &Database,
    before: Option<&Database>,
) -> Result<(), Refusal> {
    let old_tags: &[(String, String)] = before.map_or(&[], |d| &d.tags);
    // Only a registration carries the tags it sets (as CreateDBInstance).
    let context = match before {
        None => ActionContext::new().request_tags(&wanted.tags),
        Some(_) => ActionContext::new(),
    };
    allowed_on(s, action, &wanted.name, old_tags, context)?;
    let set: Vec<(String, String)> = wanted
        .tags
        .iter()
        .filter(|t| !old_tags.contains(t))
        .cloned()
        .collect();
    if !set.is_empty() {
        allowed_on(
            s,
            "rds:AddTagsToResource",
            &wanted.name,
            old_tags,
            ActionContext::new().request_tags(&set),
        )?;
    }
    let removed: Vec<&str> = old_tags
        .iter()
        .filter(|(k, _)| !wanted.tags.iter().any(|(w, _)| w == k))
        .map(|(k, _)| k.as_str())
        .collect();
    if !removed.is_empty() {
        allowed_on(
            s,
            "rds:RemoveTagsFromResource",
            &wanted.name,
            old_tags,
            ActionContext::new().tag_keys(removed),
        )?;
    }
    Ok(())
}

/// `POST /console/databases`: registers a database.
pub fn register(s: &Signed<'_>, form: &Form) -> Reply {
    let again = |e: &str| {
        s.page_status(
            StatusCode::BAD_REQUEST,
            Section::Databases,
            "Register database",
            settings_form(s, form, None, Some(e)),
        )
    };
    let wanted = match from_form(form, None) {
        Ok(db) => db,
        Err(e) => return again(&e),
    };
    // What the gateway presents to a registered upstream is its own
    // identity for `cert` (a client certificate from the account's one
    // CA, valid on every server that trusts it) and `trust`, and a
    // node's local servers through a Unix socket: a console registration
    // is a password database whose password only a node stores, on a
    // server no other registration already reaches (red team round A).
    if wanted.upstream_auth != UpstreamAuth::Password {
        return again(
            "Databases the gateway logs in to with certificates or without a password are registered on a node with latchkey db register.",
        );
    }
    if wanted.upstream.starts_with('/') {
        return again("Unix-socket upstreams are registered on a node with latchkey db register.");
    }
    let (all, secrets) = match (
        s.api.state.store.list_databases(),
        s.api.state.store.list_secrets(),
    ) {
        (Ok(all), Ok(secrets)) => (all, secrets),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "reading databases and secrets failed");
            return unavailable(s, "Register database");
        }
    };
    if let Some(other) = all
        .iter()
        .find(|d| d.name != wanted.name && d.upstream.eq_ignore_ascii_case(&wanted.upstream))
    {
        tracing::info!(database = %other.name, "console registration refused: upstream registered already");
        return again("That upstream server is registered already (as another database).");
    }
    // The secrets of a removed database of this name would go to the
    // new one's upstream at its next rotation (red team round C).
    let prefix = format!("latchkey/db/{}/", wanted.name);
    if !all.iter().any(|d| d.name == wanted.name)
        && secrets.iter().any(|x| x.name.starts_with(&prefix))
    {
        return again(&format!(
            "Secrets {prefix}... of a database of this name remain: delete them before registering it again."
        ));
    }
    apply(s, &wanted, None, &again)
}

/// Registers `wanted` (no `before`) or saves it over `before`: authorised,
/// stored, recorded as RDS's call; the form again with the reason when
/// the settings are refused.
fn apply(
    s: &Signed<'_>,
    wanted: &Database,
    before: Option<&Database>,
    again: &dyn Fn(&str) -> Reply,
) -> Reply {
    let (action, done, title) = match before {
        None => ("CreateDBInstance", "registered", "Register database"),
        Some(d) => ("ModifyDBInstance", "saved", d.name.as_str()),
    };
    if let Err(e) = authorise_change(s, &format!("rds:{action}"), wanted, before) {
        record(s, action, wanted, Some(&denied(&e)));
        return s.refused(
            StatusCode::FORBIDDEN,
            Section::Databases,
            title,
            &e.to_string(),
        );
    }
    let store = &s.api.state.store;
    match latchkey_gateway::net::register_database(store, wanted, before.is_some(), s.now) {
        Ok(db) => {
            record(s, action, &db, None);
            redirect(&format!(
                "/console/databases/{}?done={done}",
                encode(&db.name)
            ))
        }
        Err(e) => {
            let e = ApiError::new(400, "InvalidParameterValue", format!("{e:#}"));
            record(s, action, wanted, Some(&e));
            again(&e.message)
        }
    }
}

/// The registered database `name` if the caller may `action` on it, or
/// the page to show instead. As AWS does, authorisation comes first: a
/// caller refused learns nothing of whether the database exists.
fn find(s: &Signed<'_>, name: &str, action: &str, title: &str) -> Result<Database, Box<Reply>> {
    match s.api.state.store.list_databases() {
        Ok(all) => {
            let db = all.into_iter().find(|d| d.name == name);
            let tags = db.as_ref().map_or(&[][..], |d| &d.tags[..]);
            if let Err(e) = allowed_on(s, action, name, tags, ActionContext::new()) {
                tracing::info!(database = %name, reason = %e, "console: database page refused");
                return Err(Box::new(s.refused(
                    StatusCode::FORBIDDEN,
                    Section::Databases,
                    title,
                    &e.to_string(),
                )));
            }
            db.ok_or_else(|| {
                Box::new(s.refused(
                    StatusCode::NOT_FOUND,
                    Section::Databases,
                    title,
                    "There is no such database.",
                ))
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "reading a database failed");
            Err(Box::new(unavailable(s, title)))
        }
    }
}

/// `GET /console/databases/NAME`: settings, the edit form, and who may
/// connect.
pub fn database(s: &Signed<'_>, name: &str, query: &Form) -> Reply {
    let (done, who_all) = (query.text("done"), query.text("who") == "all");
    let db = match find(s, name, "rds:DescribeDBInstances", "Database") {
        Ok(db) => db,
        Err(reply) => return *reply,
    };
    page(s, &db, &form_of(&db), (done, who_all), None, StatusCode::OK)
}

fn page(
    s: &Signed<'_>,
    db: &Database,
    form: &Form,
    (done, who_all): (&str, bool),
    error: Option<&str>,
    status: StatusCode,
) -> Reply {
    let account = &s.account;
    let region = s.api.state.region();
    let connect_prefix = format!(
        "arn:aws:rds-db:{region}:{account}:dbuser:{}/",
        db.resource_id
    );
    let body = html! {
        @match done {
            "registered" => (notice("Registered.")),
            "saved" => (notice("Saved.")),
            _ => {}
        }
        dl.facts #database-facts {
            dt { "Engine" } dd { (db.engine.as_str()) }
            dt { "Endpoints" } dd { (db.endpoints.join(", ")) }
            dt { "Upstream" } dd { code { (db.upstream) } }
            dt { "Upstream TLS" } dd { (db.upstream_tls.as_str()) }
            dt { "Upstream login" } dd { (db.upstream_auth.as_str()) }
            dt { "Statement policy" } dd { (db.statement_policy.as_str()) }
            dt { "Rotation" } dd { (rotation_text(db)) }
            dt { "Tags" } dd { (tags_text(&db.tags)) }
            dt { "Resource id" } dd { code { (db.resource_id) } }
            dt { "Connect ARN" } dd { code { (connect_prefix) "USER" } }
        }
        h2 { "Rotation" }
        (rotation_state(s, db))
        h2 { "Classification" }
        (classification(s, db))
        h2 { "Who may connect" }
        (who_may_connect(s, db, who_all))
        h2 { "Edit" }
        (settings_form(s, form, Some(db), error))
    };
    s.page_status(status, Section::Databases, &db.name, body)
}

/// The principals whose policies allow `rds-db:connect` on the database,
/// with the database users and the login conditions the grant hangs on.
/// The rotation state of the secrets that hold the database's upstream
/// passwords (`latchkey/db/NAME/USER`), each read with Secrets Manager's
/// `DescribeSecret` for the caller (its tags and resource policy count;
/// a refused one is counted, not shown).
fn rotation_state(s: &Signed<'_>, db: &Database) -> Markup {
    let prefix = format!("latchkey/db/{}/", db.name);
    let names: Vec<String> = match s.api.state.store.list_secrets() {
        Ok(all) => all
            .into_iter()
            .filter(|stored| stored.name.starts_with(&prefix))
            .map(|stored| stored.name)
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "listing secrets failed");
            return refusal("The rotation state cannot be read now.");
        }
    };
    let mut refused = 0;
    let rows: Vec<Markup> = names
        .iter()
        .filter_map(|name| {
            let described = s
                .api
                .json("secretsmanager", "DescribeSecret", json!({ "SecretId": name }));
            refused += usize::from(described.is_err());
            described.ok()
        })
        .map(|v| {
            let name = crate::api::text(&v, "Name");
            let user = name.rsplit('/').next().unwrap_or_default();
            let pending = v["VersionIdsToStages"].as_object().is_some_and(|m| {
                m.values().any(|stages| {
                    stages
                        .as_array()
                        .is_some_and(|a| a.iter().any(|st| st == "AWSPENDING"))
                })
            });
            let enabled = v["RotationEnabled"].as_bool().unwrap_or(false);
            let state = match (enabled, pending) {
                (_, true) => "rotating now",
                (true, false) => "scheduled",
                (false, false) => "off",
            };
            html! { tr {
                td { code { (user) } }
                td { code { (name) } }
                td { (super::vault::epoch(&v, "LastRotatedDate")) }
                td { (if enabled { super::vault::epoch(&v, "NextRotationDate") } else { "-".to_owned() }) }
                td { (state) }
            } }
        })
        .collect();
    html! {
        p { "Schedule: " (rotation_text(db)) "." }
        (table("Stored upstream passwords", &["Database user", "Secret", "Last rotated", "Next rotation", "State"], rows,
               "No upstream password of this database is kept in a secret you may describe."))
        @if refused > 0 {
            p.hint { (refused) " more you may not describe (secretsmanager:DescribeSecret)." }
        }
    }
}

/// The classification tags of the database's objects (the first 100).
fn classification(s: &Signed<'_>, db: &Database) -> Markup {
    let tags = match s.api.state.store.object_tags(Some(&db.name)) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "reading classification tags failed");
            return refusal("The classification cannot be read now.");
        }
    };
    let rows = tags
        .iter()
        .take(100)
        .map(|t| {
            let object = if t.column.is_empty() {
                format!("{}.{}", t.schema, t.object)
            } else {
                format!("{}.{} ({})", t.schema, t.object, t.column)
            };
            html! { tr {
                td { code { (object) } }
                td { (t.kind.as_str()) }
                td { (t.key) "=" (t.value) }
            } }
        })
        .collect();
    html! {
        (table("Classified objects", &["Object", "Kind", "Tag"], rows,
               "Nothing is classified: tag tables with latchkey db classify."))
        @if tags.len() > 100 { p.hint { (tags.len()) " tags in all: latchkey db classification lists them." } }
    }
}

/// How many principals "who may connect" lists before "show all".
const WHO_SHOWN: usize = 200;

fn who_may_connect(s: &Signed<'_>, db: &Database, all: bool) -> Markup {
    if let Err(e) = s.api.allowed("iam:GetAccountAuthorizationDetails", "*") {
        return refusal(&e.to_string());
    }
    let grants = match s.api.state.who_may_connect(db) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "computing who may connect failed");
            return refusal("Who may connect cannot be computed now.");
        }
    };
    let shown = if all { grants.len() } else { WHO_SHOWN };
    let rows = grants
        .iter()
        .take(shown)
        .map(|g| {
            let (kind, href) = match g.kind {
                latchkey_store::PrincipalKind::Role => ("role", "/console/roles"),
                _ => ("user", "/console/users"),
            };
            html! { tr {
                td { (kind) }
                td { a href={ (href) "/" (encode(&g.name)) } { (g.name) } }
                td { ul.plain { @for u in &g.db_users {
                    li {
                        code { (u.db_user) }
                        @if !u.depends_on.is_empty() {
                            " (when " (u.depends_on.join(", ")) " allow)"
                        }
                    }
                } } }
            } }
        })
        .collect();
    html! {
        p #who-count { (grants.len()) " users and roles may connect." }
        (table(
            "Principals whose policies allow rds-db:connect",
            &["Kind", "Name", "Database users"],
            rows,
            "No user or role may connect.",
        ))
        @if grants.len() > shown {
            p { a href={ "/console/databases/" (encode(&db.name)) "?who=all" } { "Show all " (grants.len()) } }
        }
    }
}

/// `POST /console/databases/NAME`: saves its settings.
pub fn save(s: &Signed<'_>, name: &str, form: &Form) -> Reply {
    let before = match find(s, name, "rds:DescribeDBInstances", "Database") {
        Ok(db) => db,
        Err(reply) => return *reply,
    };
    let again = |e: &str| {
        page(
            s,
            &before,
            form,
            ("", false),
            Some(e),
            StatusCode::BAD_REQUEST,
        )
    };
    let wanted = match from_form(form, Some(&before)) {
        Ok(db) => db,
        Err(e) => return again(&e),
    };
    apply(s, &wanted, Some(&before), &again)
}
