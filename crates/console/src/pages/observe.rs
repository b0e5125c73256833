//! What happened: findings (list, filter, details with evidence linked
//! into the audit trail, archive) and the audit trail itself (lookup with
//! `latchkey audit lookup`'s filters, paging, each record's JSON, export
//! as JSON lines). Authorised as GuardDuty's and CloudTrail's actions.

use hyper::StatusCode;
use maud::{Markup, html};
use serde_json::Value;

use super::table;
use crate::Signed;
use crate::api::text;
use crate::layout::{Section, csrf_field, notice, refusal};
use crate::web::{Form, Reply, encode, redirect};

/// Finding ids are 32 hexadecimal characters.
fn valid_finding_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /console/findings`.
pub fn findings(s: &Signed<'_>, query: &Form) -> Reply {
    if let Err(e) = s.api.allowed("guardduty:ListFindings", "*") {
        return s.refused(
            StatusCode::FORBIDDEN,
            Section::Findings,
            "Findings",
            &e.to_string(),
        );
    }
    let severity = match query.text("severity") {
        s @ ("High" | "Medium" | "Low") => Some(s),
        _ => None,
    };
    let kind = Some(query.text("type")).filter(|k| !k.is_empty());
    let archived = query.text("archived") == "true";
    let list = match s.api.state.store.findings(archived, severity, kind, 500) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "reading findings failed");
            return s.refused(
                StatusCode::SERVICE_UNAVAILABLE,
                Section::Findings,
                "Findings",
                "The findings cannot be read now.",
            );
        }
    };
    let rows = list
        .iter()
        .filter_map(|(doc, _)| serde_json::from_str::<Value>(doc).ok())
        .map(|f| {
            let id = text(&f, "id");
            html! { tr {
                td class={ "sev-" (text(&f, "severity").to_ascii_lowercase()) } { (text(&f, "severity")) }
                td { a href={ "/console/findings/" (encode(id)) } { (text(&f, "title")) } }
                td { code { (text(&f, "type")) } }
                td { (text(&f, "resource")) }
                td { (f["count"]) }
                td { (text(&f, "lastSeen")) }
            } }
        })
        .collect();
    let body = html! {
        @if !query.text("done").is_empty() { (notice("Archived.")) }
        form method="get" action="/console/findings" #finding-filter {
            label for="severity" { "Severity" }
            select #severity name="severity" {
                option value="" { "Any" }
                @for sev in ["High", "Medium", "Low"] {
                    option value=(sev) selected[severity == Some(sev)] { (sev) }
                }
            }
            label for="type" { "Type" }
            input #type name="type" type="text" value=(kind.unwrap_or("")) placeholder="CredentialAccess:RDS/BruteForce.SourceIP";
            div.check {
                input #archived name="archived" type="checkbox" value="true" checked[archived];
                label for="archived" { "Archived findings" }
            }
            button type="submit" { "Filter" }
        }
        (table(if archived { "Archived findings" } else { "Open findings" },
               &["Severity", "Finding", "Type", "Resource", "Count", "Last seen"], rows, "No findings."))
    };
    s.page(Section::Findings, "Findings", body)
}

/// The finding and whether it is archived; the page to show instead when
/// there is none (boxed: a reply is large beside the document).
fn finding_doc(s: &Signed<'_>, id: &str) -> Result<(Value, bool), Box<Reply>> {
    let not_found = || {
        Box::new(s.refused(
            StatusCode::NOT_FOUND,
            Section::Findings,
            "Finding",
            "There is no such finding.",
        ))
    };
    if !valid_finding_id(id) {
        return Err(not_found());
    }
    match s.api.state.store.get_finding(id) {
        Ok(Some((doc, archived))) => serde_json::from_str(&doc)
            .map(|v| (v, archived))
            .map_err(|_| not_found()),
        Ok(None) => Err(not_found()),
        Err(_) => Err(Box::new(s.refused(
            StatusCode::SERVICE_UNAVAILABLE,
            Section::Findings,
            "Finding",
            "The finding cannot be read now.",
        ))),
    }
}

/// `GET /console/findings/ID`.
pub fn finding(s: &Signed<'_>, id: &str) -> Reply {
    if let Err(e) = s.api.allowed("guardduty:GetFindings", "*") {
        return s.refused(
            StatusCode::FORBIDDEN,
            Section::Findings,
            "Finding",
            &e.to_string(),
        );
    }
    let (f, archived) = match finding_doc(s, id) {
        Ok(found) => found,
        Err(reply) => return *reply,
    };
    let strings = |field: &str| -> Vec<String> {
        f[field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let body = html! {
        p.description { (text(&f, "description")) }
        dl.facts {
            dt { "Severity" } dd #finding-severity { (text(&f, "severity")) }
            dt { "Type" } dd { code { (text(&f, "type")) } }
            dt { "Resource" } dd { (text(&f, "resource")) }
            dt { "Principal" } dd { (text(&f, "principal")) }
            dt { "Source address" } dd { (text(&f, "sourceIPAddress")) }
            dt { "First seen" } dd { (text(&f, "firstSeen")) }
            dt { "Last seen" } dd { (text(&f, "lastSeen")) }
            dt { "Count" } dd { (f["count"]) }
            dt { "Status" } dd #finding-status { (if archived { "archived" } else { "open" }) }
        }
        h2 { "Evidence" }
        ul #evidence {
            @for event in strings("evidence") {
                li { a href={ "/console/audit?event-id=" (encode(&event)) } { code { (event) } } }
            }
        }
        @let actions = strings("actions");
        @if !actions.is_empty() {
            h2 { "Responses taken" }
            ul { @for a in actions { li { (a) } } }
        }
        @if !archived {
            form method="post" action={ "/console/findings/" (encode(id)) "/archive" } #archive-finding {
                (csrf_field(&s.csrf))
                button type="submit" { "Archive" }
            }
        }
    };
    s.page(Section::Findings, text(&f, "title"), body)
}

/// `POST /console/findings/ID/archive`: authorised as
/// `guardduty:ArchiveFindings` and recorded in the trail.
pub fn archive(s: &Signed<'_>, id: &str) -> Reply {
    let params = serde_json::json!({ "findingIds": [id] });
    let refused = s.api.allowed("guardduty:ArchiveFindings", "*").err();
    let error = refused
        .as_ref()
        .map(|e| latchkey_server::error::ApiError::new(403, "AccessDenied", e.message.clone()));
    if refused.is_none()
        && valid_finding_id(id)
        && let Err(e) = s.api.state.store.archive_findings(&[id.to_owned()], true)
    {
        {
            tracing::error!(error = %e, "archiving a finding failed");
            return s.refused(
                StatusCode::SERVICE_UNAVAILABLE,
                Section::Findings,
                "Finding",
                "The finding cannot be archived now.",
            );
        }
    }
    latchkey_server::http::record_front_call(
        s.api.state,
        &s.api.caller,
        latchkey_audit::ApiService::GuardDuty,
        "ArchiveFindings",
        params,
        error.as_ref(),
        s.api.peer,
        crate::api::USER_AGENT,
    );
    match refused {
        Some(e) => s.refused(
            StatusCode::FORBIDDEN,
            Section::Findings,
            "Finding",
            &e.to_string(),
        ),
        None => redirect("/console/findings?done=archived"),
    }
}

/// The record number an `eventID` names (its last 64 bits; the first
/// name the trail, and the record's own `eventID` is compared besides).
fn sequence_of_event(id: &str) -> Option<u64> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&hex[16..], 16).ok()
}

/// Records on a page: by default, and at most.
const PAGE_RECORDS: (u32, u32) = (50, 1000);
/// Records in one export: by default, and at most (more are exported by
/// following its `Link: rel="next"`).
const EXPORT_RECORDS: (u32, u32) = (10_000, 100_000);

/// What the page looks up: the filters `latchkey audit lookup` takes.
struct Lookup {
    filter: latchkey_trail::Filter,
    /// Only this node's records; `None`: every node's.
    node: Option<String>,
    /// Where an earlier page stopped: the time of its oldest record (this
    /// page's records are at most that old) and how many records of
    /// exactly that millisecond it already showed, skipped here. A
    /// millisecond holds many records under load: none is lost between
    /// pages.
    cursor: Option<(i64, usize)>,
    /// Records the page shows (the filter's limit also counts the skipped).
    page: usize,
}

/// The lookup a query string asks for, or why it cannot be made. `now`
/// is the page's clock (seconds); `node` this node's id, on a shared
/// store.
fn lookup_of(q: &Form, now: i64, export: bool, node: Option<&str>) -> Result<Lookup, String> {
    let opt = |name: &str| Some(q.text(name).trim().to_owned()).filter(|v| !v.is_empty());
    let (default, max) = if export { EXPORT_RECORDS } else { PAGE_RECORDS };
    let limit = match opt("max-results") {
        None => default,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| format!("Records per page must be a whole number from 1 to {max}."))?,
    };
    let since_ms = time_of(q.text("since"), now).map_err(|e| format!("Since: {e}"))?;
    let until_ms = time_of(q.text("until"), now).map_err(|e| format!("Until: {e}"))?;
    // `before` (and `skip`) is where the previous page stopped.
    let before = q.text("before").parse::<i64>().ok();
    let skip = match before {
        Some(_) => q
            .text("skip")
            .parse::<usize>()
            .unwrap_or(0)
            .min(EXPORT_RECORDS.1 as usize),
        None => 0,
    };
    let until_ms = match (until_ms, before) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let (Some(since), Some(until)) = (since_ms, until_ms)
        && since > until
    {
        return Err("Since is after until: no record can match.".to_owned());
    }
    let only = opt("node");
    if only.is_some() && node.is_none() {
        return Err("This server keeps one node's trail: leave Node blank.".to_owned());
    }
    Ok(Lookup {
        filter: latchkey_trail::Filter {
            principal: opt("principal"),
            event_name: opt("event-name"),
            database: opt("database"),
            source_ip: opt("source-ip"),
            access_key_id: opt("access-key-id"),
            errors_only: q.text("errors") == "true",
            since_ms,
            until_ms,
            // An event id is read by its sequence number, not looked up.
            sequence: None,
            limit: limit.saturating_add(u32::try_from(skip).unwrap_or(u32::MAX)),
        },
        node: only,
        cursor: before.map(|b| (b, skip)),
        page: limit as usize,
    })
}

/// A trail line's `eventTime`, in milliseconds.
fn time_ms_of(line: &str) -> Option<i64> {
    let at = line.find("\"eventTime\":\"")? + 13;
    latchkey_audit::trail::parse_time_ms(line.get(at..at + 24)?)
}

/// How many of the records found (their times, newest first) the page
/// before already showed: up to `skip` at the start, of exactly the
/// cursor's millisecond.
fn skip_shown(times: impl Iterator<Item = Option<i64>>, cursor: Option<(i64, usize)>) -> usize {
    let Some((before, skip)) = cursor else {
        return 0;
    };
    times.take(skip).take_while(|t| *t == Some(before)).count()
}

/// Where the page after this one starts (the `before` and `skip` of its
/// link), when this one shows a full `page` of records (their times,
/// newest first): at its oldest record's millisecond, skipping the
/// records of that millisecond shown here (and, when the whole page is
/// that millisecond, those the earlier pages showed too).
fn next_cursor(
    times: &[Option<i64>],
    page: usize,
    cursor: Option<(i64, usize)>,
) -> Option<(i64, usize)> {
    if times.len() < page {
        return None;
    }
    let oldest = (*times.last()?)?;
    let same = times
        .iter()
        .rev()
        .take_while(|t| **t == Some(oldest))
        .count();
    let earlier = match cursor {
        Some((before, skip)) if before == oldest => skip,
        _ => 0,
    };
    Some((oldest, same + earlier))
}

/// A time as `latchkey audit lookup --since` takes it, in milliseconds
/// ([`latchkey_trail::parse_when_ms`] at `now`, seconds); `None` when
/// blank.
fn time_of(text: &str, now: i64) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    latchkey_trail::parse_when_ms(text, now.saturating_mul(1000))
        .map(Some)
        .map_err(|e| format!("{e}."))
}

/// The other nodes' records matching the lookup, from their copies in the
/// shared store (`node`: this one, read from its trail).
fn elsewhere(
    s: &Signed<'_>,
    node: &str,
    lookup: &Lookup,
    withheld: &mut Vec<String>,
) -> Vec<String> {
    let f = &lookup.filter;
    let query = latchkey_store::AuditQuery {
        node: lookup.node.clone(),
        except_node: Some(node.to_owned()),
        principal: f.principal.clone(),
        event_name: f.event_name.clone(),
        database: f.database.clone(),
        source_ip: f.source_ip.clone(),
        access_key_id: f.access_key_id.clone(),
        errors_only: f.errors_only,
        since_ms: f.since_ms,
        until_ms: f.until_ms,
        limit: f.limit,
    };
    match latchkey_server::shipped::find_vouched(&s.api.state.store, &query, s.now) {
        Ok(found) => {
            for (node, anchored, count) in &found.withheld {
                withheld.push(latchkey_server::shipped::withheld_warning(
                    node, *anchored, *count,
                ));
            }
            found.lines
        }
        Err(e) => {
            // This node's records still show.
            tracing::warn!(error = %e, "the other nodes' audit records cannot be read");
            Vec::new()
        }
    }
}

/// `GET /console/audit`, and `?format=jsonl` to export what it shows.
/// With `node` (a store shared by several nodes) every node's records show.
pub fn audit(s: &Signed<'_>, dir: Option<&std::path::Path>, node: Option<&str>, q: &Form) -> Reply {
    if let Err(e) = s.api.allowed("cloudtrail:LookupEvents", "*") {
        return s.refused(
            StatusCode::FORBIDDEN,
            Section::Audit,
            "Audit",
            &e.to_string(),
        );
    }
    let Some(dir) = dir else {
        return s.page(
            Section::Audit,
            "Audit",
            refusal("This server keeps no audit trail."),
        );
    };
    let export = q.text("format") == "jsonl";
    let lookup = match lookup_of(q, s.now, export, node) {
        Ok(lookup) => lookup,
        Err(why) if export => {
            return crate::web::text(StatusCode::BAD_REQUEST, format!("{why}\n"));
        }
        Err(why) => {
            let body = html! {
                (trail_status(s, dir))
                (audit_form(q, node))
                p.error #lookup-error role="alert" { (why) }
            };
            return s.page_status(StatusCode::BAD_REQUEST, Section::Audit, "Audit", body);
        }
    };
    let limit = lookup.filter.limit;
    let event_id = q.text("event-id");
    let here = lookup.node.as_deref().is_none_or(|n| Some(n) == node);
    // Other nodes' records held back, each as a warning on the page.
    let mut withheld: Vec<String> = Vec::new();
    // An event id names its record: read it directly, not through the
    // index (binary search in its segment).
    let records = match sequence_of_event(event_id) {
        Some(n) if here => latchkey_trail::record_at(dir, n)
            .map(|r| r.into_iter().collect::<Vec<_>>())
            .map_err(|e| e.to_string()),
        _ if here => latchkey_trail::Index::open_read_only(dir)
            .map_err(|e| e.to_string())
            .and_then(|index| {
                latchkey_trail::find(dir, &index, &lookup.filter).map_err(|e| e.to_string())
            }),
        _ => Ok(Vec::new()),
    };
    let records: Vec<String> = match records {
        Ok(mut r) => {
            if let Some(node) = node
                && event_id.is_empty()
                && lookup.node.as_deref() != Some(node)
            {
                r.extend(elsewhere(s, node, &lookup, &mut withheld));
                // Newest first across nodes.
                r.sort_by_cached_key(|line| std::cmp::Reverse(time_ms_of(line)));
                r.truncate(limit as usize);
            }
            let shown = skip_shown(r.iter().map(|line| time_ms_of(line)), lookup.cursor);
            r.into_iter()
                .skip(shown)
                .take(lookup.page)
                .filter(|r| {
                    event_id.is_empty() || r.contains(&format!("\"eventID\":\"{event_id}\""))
                })
                .collect()
        }
        Err(e) => {
            tracing::error!(error = %e, "audit lookup failed");
            return s.refused(
                StatusCode::SERVICE_UNAVAILABLE,
                Section::Audit,
                "Audit",
                "The trail cannot be read now.",
            );
        }
    };
    // Where the next page starts, when this one is full.
    let times: Vec<Option<i64>> = records.iter().map(|line| time_ms_of(line)).collect();
    let older = next_cursor(&times, lookup.page, lookup.cursor).map(|(before, skip)| {
        let mut next = q.clone_without("before").clone_without("skip");
        next.push("before", &before.to_string());
        next.push("skip", &skip.to_string());
        next.to_query()
    });
    if export {
        let mut body = records.join("\n");
        body.push('\n');
        let mut r = crate::web::download("application/x-ndjson", "audit.jsonl", body);
        // A script pages through more than one export as through the
        // page: the next one starts where this one stopped.
        if let Some(older) = &older {
            r = crate::web::with_next(r, &format!("/console/audit?{older}"));
        }
        return crate::web::secure(r);
    }
    let parsed: Vec<Value> = records
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    let rows: Vec<Markup> = parsed
        .iter()
        .map(|v| {
            let error = text(v, "errorCode");
            html! { tr {
                td { (text(v, "eventTime")) }
                td { (text(v, "eventName")) }
                td { (text(v, "eventSource")) }
                td { code { (text(&v["userIdentity"], "arn")) } }
                td { (text(v, "sourceIPAddress")) }
                td { (if error.is_empty() { "" } else { error }) }
                td { details { summary { "Record" } pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } } }
            } }
        })
        .collect();
    let export_link = {
        let mut e = q.clone_without("format");
        e.push("format", "jsonl");
        e.to_query()
    };
    let body = html! {
        (trail_status(s, dir))
        (audit_form(q, node))
        @for w in &withheld { p.error.withheld { (w) } }
        p { a href={ "/console/audit?" (export_link) } download="audit.jsonl" { "Export as JSON lines" } }
        (table("Records, newest first", &["Time", "Event", "Source", "Principal", "From", "Error", ""], rows, "No records match."))
        @if let Some(older) = older {
            p { a href={ "/console/audit?" (older) } rel="next" { "Older records" } }
        }
    };
    s.page(Section::Audit, "Audit", body)
}

/// The lookup form, filled in with the query's filters; a node field
/// where the store is shared with other nodes.
fn audit_form(q: &Form, node: Option<&str>) -> Markup {
    let mut fields = vec![
        ("event-name", "Event name", ""),
        ("principal", "Principal ARN", ""),
        ("source-ip", "Source address", ""),
        ("database", "Database", ""),
        ("access-key-id", "Access key id", ""),
        ("event-id", "Event id", ""),
        ("since", "Since (1h, 7days or an RFC 3339 time)", "24h"),
        ("until", "Until (the same; blank: now)", ""),
        ("max-results", "Records per page (1 to 1000)", "50"),
    ];
    if node.is_some() {
        fields.push(("node", "Node (blank: every node)", ""));
    }
    html! {
        form method="get" action="/console/audit" #audit-filter {
            @for (name, label, placeholder) in fields {
                label for=(name) { (label) }
                input id=(name) name=(name) type="text" value=(q.text(name)) placeholder=(placeholder);
            }
            div.check {
                input #errors name="errors" type="checkbox" value="true" checked[q.text("errors") == "true"];
                label for="errors" { "Refusals and errors only" }
            }
            button type="submit" { "Look up" }
        }
    }
}

/// When `latchkey audit verify` last found the whole trail intact.
fn trail_status(s: &Signed<'_>, dir: &std::path::Path) -> Markup {
    match latchkey_trail::last_verified(dir) {
        Some(at) => {
            let age = s.now - at;
            let when = latchkey_identity::iso8601(at);
            html! { p #trail-status class=(if age > 86_400 { "error" } else { "notice" }) {
                "The whole trail was last verified intact at " (when)
                @if age > 86_400 { " — more than a day ago: run " code { "latchkey audit verify" } "." }
            } }
        }
        None => html! { p #trail-status .error {
            "The trail has never been verified: run " code { "latchkey audit verify" } "."
        } },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn lookup(query: &str, node: Option<&str>) -> Result<Lookup, String> {
        lookup_of(&Form::parse(query.as_bytes()).unwrap(), NOW, false, node)
    }

    #[test]
    fn audit_lookups_take_the_cli_filters() {
        let l = lookup(
            "since=1h&until=2027-01-15T08:00:00Z&max-results=200&principal=arn%3Ax&errors=true",
            None,
        )
        .unwrap();
        assert_eq!(l.filter.since_ms, Some((NOW - 3600) * 1000));
        assert_eq!(l.filter.until_ms, Some(NOW * 1000), "NOW is that time");
        assert_eq!(l.filter.limit, 200);
        assert_eq!(l.filter.principal.as_deref(), Some("arn:x"));
        assert!(l.filter.errors_only);
        // The page before: the earlier of `until` and where it stopped.
        let l = lookup("until=10m&before=5", None).unwrap();
        assert_eq!(l.filter.until_ms, Some(5));
        let l = lookup("", None).unwrap();
        assert_eq!(
            (l.filter.limit, l.filter.since_ms, l.node),
            (50, None, None)
        );
        let export = lookup_of(&Form::parse(b"").unwrap(), NOW, true, None).unwrap();
        assert_eq!(export.filter.limit, 10_000);
        assert_eq!(
            lookup("node=n2", Some("n1")).unwrap().node.as_deref(),
            Some("n2")
        );
    }

    #[test]
    fn pages_lose_no_record_of_a_busy_millisecond() {
        // Ten records, the last six in one millisecond, three a page.
        let all: Vec<Option<i64>> = [9, 8, 7, 5, 5, 5, 5, 5, 5, 4]
            .into_iter()
            .map(Some)
            .collect();
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            // What the store returns for the page: at most `before`,
            // newest first, page + skip of them.
            let (before, skip) = cursor.unwrap_or((i64::MAX, 0));
            let found: Vec<(usize, Option<i64>)> = all
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, t)| t.is_some_and(|t| t <= before))
                .take(3 + skip)
                .collect();
            let shown = skip_shown(found.iter().map(|(_, t)| *t), cursor);
            let page: Vec<(usize, Option<i64>)> = found.into_iter().skip(shown).take(3).collect();
            seen.extend(page.iter().map(|(i, _)| *i));
            let times: Vec<Option<i64>> = page.iter().map(|(_, t)| *t).collect();
            match next_cursor(&times, 3, cursor) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen,
            (0..10).collect::<Vec<_>>(),
            "every record once, in order"
        );
        let line = r#"{"sequence":1,"eventTime":"2026-12-05T15:45:34.561Z","eventName":"X"}"#;
        assert_eq!(
            time_ms_of(line),
            latchkey_audit::trail::parse_time_ms("2026-12-05T15:45:34.561Z")
        );
        assert!(time_ms_of(line).is_some());
    }

    #[test]
    fn a_bad_audit_lookup_says_why() {
        for (query, why) in [
            ("since=yesterday", "Since: \"yesterday\" is neither"),
            ("until=13:00", "Until: \"13:00\" is neither"),
            ("max-results=0", "from 1 to 1000"),
            ("max-results=1001", "from 1 to 1000"),
            ("max-results=ten", "from 1 to 1000"),
            ("since=1h&until=2h", "Since is after until"),
            ("node=n2", "one node's trail"),
        ] {
            let e = lookup(query, None).err().unwrap();
            assert!(e.contains(why), "{query}: {e}");
        }
    }
}
