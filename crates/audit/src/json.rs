//! CloudTrail-style JSON for events, written field by field without
//! building a tree: the trail writer serialises every statement, so this is
//! on a busy path.

use std::collections::hash_map::Entry;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::event::*;

/// CloudTrail's record format version that the fields follow.
pub const EVENT_VERSION: &str = "1.09";

/// What the writer knows that events do not.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext<'a> {
    /// `awsRegion`.
    pub region: &'a str,
    /// `recipientAccountId`.
    pub account: &'a str,
    /// `eventID`, unique per record.
    pub event_id: &'a str,
}

pub fn rfc3339(t: SystemTime) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, t);
    out
}

fn write_rfc3339(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = latchkey_sigv4::civil_from_days(days);
    if !(0..=9999).contains(&year) {
        // Outside what four digits hold; never on a working clock.
        let _ = write!(out, "{year:04}-{month:02}-{day:02}T");
    } else {
        push_digits(out, year as u64, 4);
        out.push('-');
        push_digits(out, month as u64, 2);
        out.push('-');
        push_digits(out, day as u64, 2);
        out.push('T');
    }
    push_digits(out, (rem / 3600) as u64, 2);
    out.push(':');
    push_digits(out, (rem % 3600 / 60) as u64, 2);
    out.push(':');
    push_digits(out, (rem % 60) as u64, 2);
    out.push('.');
    push_digits(out, u64::from(d.subsec_millis()), 3);
    out.push('Z');
}

/// The last `width` decimal digits of `value`, zero-padded: time fields
/// without the formatting machinery, which showed in the writer's profile.
fn push_digits(out: &mut String, value: u64, width: u32) {
    let mut unit = 10u64.pow(width - 1);
    while unit > 0 {
        out.push(char::from(b'0' + (value / unit % 10) as u8));
        unit /= 10;
    }
}

/// Appends `bytes` as lowercase hex.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// Appends `text` as a JSON string.
pub fn json_string(out: &mut String, text: &str) {
    out.push('"');
    // Nearly every string needs no escaping: copy it whole.
    if !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(text);
        out.push('"');
        return;
    }
    let mut from = 0;
    for (i, b) in text.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[from..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        from = i + 1;
    }
    out.push_str(&text[from..]);
    out.push('"');
}

/// One JSON object being written.
pub struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    /// Continues an object whose `{` and first fields are already in `out`.
    pub fn resume(out: &'a mut String) -> Self {
        Self { out, empty: false }
    }

    /// Fields without the braces, to be spliced in with [`Object::fields`].
    fn bare(out: &'a mut String) -> Self {
        Self { out, empty: true }
    }

    /// Fields serialised earlier by a [`Object::bare`].
    fn fields(&mut self, raw: &str) -> &mut Self {
        if !raw.is_empty() {
            if !self.empty {
                self.out.push(',');
            }
            self.empty = false;
            self.out.push_str(raw);
        }
        self
    }

    /// Keys are the code's own constants, which never need escaping.
    fn key(&mut self, key: &str) -> &mut String {
        debug_assert!(!key.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        json_string(out, value);
        self
    }

    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).push_str("null");
        self
    }

    pub fn num(&mut self, key: &str, value: u64) -> &mut Self {
        let out = self.key(key);
        out.push_str(itoa::Buffer::new().format(value));
        self
    }

    /// `value` as a quoted hex string.
    pub fn hex(&mut self, key: &str, value: &[u8]) -> &mut Self {
        let out = self.key(key);
        out.push('"');
        push_hex(out, value);
        out.push('"');
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    pub fn time(&mut self, key: &str, t: SystemTime) -> &mut Self {
        let out = self.key(key);
        out.push('"');
        write_rfc3339(out, t);
        out.push('"');
        self
    }

    /// `value` must already be valid JSON.
    pub fn raw(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key).push_str(value);
        self
    }

    /// `value` (already valid JSON), or `null`.
    pub fn opt_raw(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.raw(key, v),
            None => self.null(key),
        }
    }

    pub fn object(&mut self, key: &str, fill: impl FnOnce(&mut Object<'_>)) -> &mut Self {
        let out = self.key(key);
        let mut inner = Object::new(out);
        fill(&mut inner);
        inner.end();
        self
    }

    pub fn strings(&mut self, key: &str, values: &[String]) -> &mut Self {
        let out = self.key(key);
        out.push('[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(out, v);
        }
        out.push(']');
        self
    }

    pub fn end(&mut self) {
        self.out.push('}');
    }
}

fn identity(o: &mut Object<'_>, id: &Identity) {
    o.str("type", id.kind.as_str())
        .str("principalId", &id.principal_id)
        .str("arn", &id.arn)
        .str("accountId", &id.account_id)
        .str("accessKeyId", &id.access_key_id);
    if let Some(s) = &id.session {
        o.object("sessionContext", |c| {
            c.object("sessionIssuer", |i| {
                i.str("type", s.issuer.kind)
                    .str("principalId", &s.issuer.principal_id)
                    .str("arn", &s.issuer.arn)
                    .str("accountId", &s.issuer.account_id)
                    .str("userName", &s.issuer.user_name);
            })
            .object("attributes", |a| {
                a.time("creationDate", s.creation_date).str(
                    "mfaAuthenticated",
                    if s.mfa_authenticated { "true" } else { "false" },
                );
            })
            .str("sourceIPAddress", &s.source_ip);
        });
    }
}

fn unknown_identity(o: &mut Object<'_>, access_key_id: Option<&str>) {
    o.str("type", IdentityKind::Unknown.as_str())
        .opt_str("accessKeyId", access_key_id);
}

fn resources(o: &mut Object<'_>, list: &[Resource]) {
    resource_list(o, list.iter().map(|r| (r.arn.as_str(), r.kind)));
}

fn resource_list<'r>(o: &mut Object<'_>, list: impl Iterator<Item = (&'r str, &'r str)>) {
    let out = o.key("resources");
    out.push('[');
    for (i, (arn, kind)) in list.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut item = Object::new(out);
        item.str("ARN", arn).str("type", kind);
        item.end();
    }
    out.push(']');
}

fn db_resource(o: &mut Object<'_>, arn: Option<&str>) {
    resource_list(o, arn.map(|arn| (arn, "AWS::RDS::DBUser")).into_iter());
}

fn session_fields(o: &mut Object<'_>, s: &SessionInfo) {
    o.str("engine", s.engine)
        .str("name", &s.database)
        .str("databaseName", &s.database_name)
        .str("dbUser", &s.db_user)
        .str("sessionId", &s.session_id);
}

/// Who called, from where: `eventType` to `userIdentity`. Without a known
/// identity, the access key the caller presented.
fn caller(
    o: &mut Object<'_>,
    category: &str,
    ip: std::net::IpAddr,
    user_agent: Option<&str>,
    id: Option<&Identity>,
    access_key_id: Option<&str>,
) {
    o.str("eventType", "AwsApiCall")
        .str("eventCategory", category);
    source(o, ip, user_agent);
    o.object("userIdentity", |u| match id {
        Some(id) => identity(u, id),
        None => unknown_identity(u, access_key_id),
    });
}

/// The fields every database event of a session shares.
fn session_event(o: &mut Object<'_>, s: &SessionInfo, category: &str) {
    caller(
        o,
        category,
        s.source_ip,
        s.user_agent.as_deref(),
        Some(&s.identity),
        None,
    );
}

fn source(o: &mut Object<'_>, ip: std::net::IpAddr, user_agent: Option<&str>) {
    let mut text = String::with_capacity(40);
    let _ = write!(text, "{ip}");
    o.str("sourceIPAddress", &text)
        .opt_str("userAgent", user_agent);
}

/// A statement record's own fields around its session's serialised ones.
fn statement(
    o: &mut Object<'_>,
    s: &StatementEvent,
    ctx: &RecordContext<'_>,
    session: &SessionFields,
) {
    o.fields(&session.caller);
    if let Some(c) = &s.error_code {
        o.str("errorCode", c);
    }
    o.str("requestID", &s.session.session_id)
        .str("eventID", ctx.event_id);
    // Ends inside the open `database` object.
    o.fields(&session.target);
    let mut d = Object::resume(&mut *o.out);
    d.str("statement", &s.statement.text);
    d.hex("fingerprint", &s.statement.fingerprint.to_be_bytes());
    if s.statement.truncated {
        d.bool("truncated", true);
    }
    d.str(
        "protocol",
        match s.protocol {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        },
    )
    .num("durationUs", s.duration.as_micros() as u64);
    if let Some(t) = &s.command_tag {
        d.str("commandTag", t);
    }
    if let Some(r) = s.rows {
        d.num("rows", r);
    }
    if let Some(p) = s.policy.as_ref().filter(|p| p.evaluated) {
        d.object("policy", |o| {
            o.str("decision", if p.allowed { "allow" } else { "deny" })
                .bool("enforced", p.enforced)
                .opt_str("action", p.action);
            if !p.resource.is_empty() {
                o.str("resource", &p.resource);
            }
            o.str("reason", &p.reason)
                .num("accesses", u64::from(p.accesses));
            if !p.uses.is_empty() {
                let out = o.key("uses");
                out.push('[');
                for (i, (action, resource)) in p.uses.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let mut item = Object::new(out);
                    item.str("action", action).str("resource", resource);
                    item.end();
                }
                out.push(']');
            }
        });
    }
    if let Some(f) = s.policy.as_ref().and_then(|p| p.firewall.as_ref()) {
        d.object("firewall", |o| {
            o.str("mode", f.mode.as_str()).bool("unseen", f.unseen);
            let out = o.key("signals");
            out.push('[');
            for (i, signal) in f.signals().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, signal);
            }
            out.push(']');
            o.bool("refused", f.refused);
        });
    }
    d.end();
}

/// The fields every statement of a session repeats, serialised once: most
/// of a statement record's bytes.
pub struct SessionFields {
    /// `eventType` to `userIdentity`.
    caller: String,
    /// `readOnly`, `resources`, and the `database` object up to
    /// `sessionId`, left open for the statement's own fields.
    target: String,
}

impl SessionFields {
    pub fn of(s: &SessionInfo) -> Self {
        let mut caller = String::with_capacity(512);
        session_event(&mut Object::bare(&mut caller), s, "Data");
        let mut target = String::with_capacity(256);
        {
            let mut o = Object::bare(&mut target);
            o.bool("readOnly", false);
            db_resource(&mut o, Some(&s.resource_arn));
            let out = o.key("database");
            out.push('{');
            session_fields(&mut Object::bare(out), s);
        }
        Self { caller, target }
    }
}

/// [`SessionFields`] of the sessions whose statements the trail writer saw,
/// found by the session's `Arc` address (the entry keeps the `Arc` alive,
/// so the address cannot come back as another session). A transaction
/// pool's hundreds of clients interleave their statements in every batch:
/// the cache holds every session that ran statements lately (a bounded
/// round robin of 256 missed on each of them), from its second one, and
/// at each [`FieldCache::tick`] lets go of those that ended or went quiet.
#[derive(Default)]
pub struct FieldCache {
    entries: std::collections::HashMap<usize, CachedFields>,
    /// Ticks so far.
    ticks: u64,
    /// A session's fields at its first statement, not kept.
    once: Option<SessionFields>,
}

struct CachedFields {
    session: Arc<SessionInfo>,
    /// Made at the session's second statement: a client that runs one
    /// and goes idle (most of a transaction pool's) keeps none.
    fields: Option<SessionFields>,
    /// The tick it was last used in.
    used: u64,
}

impl FieldCache {
    /// Sessions remembered at most (about 1 kB each): past it, those that
    /// ended go first, then all.
    const CAPACITY: usize = 8192;
    /// Ticks without a statement after which a session's fields are let
    /// go (1 s at the trail's 100 ms), so that thousands of idle clients
    /// of a transaction pool do not each keep a copy; a session quieter
    /// than that costs a serialisation per statement, as before the cache.
    const QUIET_TICKS: u64 = 10;

    pub fn get(&mut self, session: &Arc<SessionInfo>) -> &SessionFields {
        let key = Arc::as_ptr(session) as usize;
        if self.entries.len() >= Self::CAPACITY && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, e| Arc::strong_count(&e.session) > 1);
            if self.entries.len() >= Self::CAPACITY {
                self.entries.clear();
            }
        }
        let used = self.ticks;
        match self.entries.entry(key) {
            Entry::Occupied(entry) => {
                let entry = entry.into_mut();
                entry.used = used;
                entry
                    .fields
                    .get_or_insert_with(|| SessionFields::of(session))
            }
            Entry::Vacant(entry) => {
                entry.insert(CachedFields {
                    session: session.clone(),
                    fields: None,
                    used,
                });
                self.once.insert(SessionFields::of(session))
            }
        }
    }

    /// Once per writer tick: lets go of the sessions no one else holds
    /// any more (they ended, and every record of theirs has been written)
    /// and of those without a statement for [`Self::QUIET_TICKS`].
    pub fn tick(&mut self) {
        self.ticks += 1;
        let now = self.ticks;
        self.entries
            .retain(|_, e| Arc::strong_count(&e.session) > 1 && now - e.used <= Self::QUIET_TICKS);
    }

    /// Sessions whose fields are held.
    pub fn len(&self) -> usize {
        self.entries.values().filter(|e| e.fields.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Event {
    /// Appends the event as one CloudTrail-style JSON object.
    pub fn write_json(&self, out: &mut String, ctx: &RecordContext<'_>) {
        let mut o = Object::new(out);
        self.write_fields(&mut o, ctx);
        o.end();
    }

    /// Writes the record's fields into an open object (the trail puts its
    /// chain fields first).
    pub fn write_fields(&self, o: &mut Object<'_>, ctx: &RecordContext<'_>) {
        self.write_fields_cached(o, ctx, None);
    }

    /// [`Event::write_fields`], taking a statement's session fields from
    /// `cache` (the trail writer's) instead of serialising them again.
    pub fn write_fields_cached(
        &self,
        o: &mut Object<'_>,
        ctx: &RecordContext<'_>,
        cache: Option<&mut FieldCache>,
    ) {
        o.str("eventVersion", EVENT_VERSION)
            .time("eventTime", self.time())
            .str("eventSource", self.source())
            .str("eventName", self.name())
            .str("awsRegion", ctx.region);
        match self {
            Event::Api(a) => {
                caller(
                    o,
                    "Management",
                    a.source_ip,
                    a.user_agent.as_deref(),
                    a.identity.as_ref(),
                    a.access_key_id.as_deref(),
                );
                o.opt_raw("requestParameters", a.request_parameters.as_deref())
                    .opt_raw("responseElements", a.response_elements.as_deref());
                if let Some((code, message)) = &a.error {
                    o.str("errorCode", code)
                        .str("errorMessage", message)
                        .object("additionalEventData", |d| {
                            d.bool("possessionProven", a.possession_proven);
                        });
                }
                o.str("requestID", &a.request_id)
                    .str("eventID", ctx.event_id)
                    .bool("readOnly", a.read_only);
                resources(o, &a.resources);
            }
            Event::Auth(a) => {
                caller(
                    o,
                    "Management",
                    a.source_ip,
                    a.user_agent.as_deref(),
                    a.identity.as_ref(),
                    a.access_key_id.as_deref(),
                );
                o.object("requestParameters", |p| {
                    p.str("dbUser", &a.db_user)
                        .opt_str("endpoint", a.endpoint.as_deref());
                })
                .null("responseElements");
                if let AuthResult::Failure { kind, reason } = &a.result {
                    let code = match kind {
                        FailureKind::Throttled => "ThrottlingException",
                        FailureKind::AuditUnavailable
                        | FailureKind::StoreUnavailable
                        | FailureKind::UpstreamUnavailable => "ServiceUnavailable",
                        _ => "AccessDenied",
                    };
                    o.str("errorCode", code).str("errorMessage", reason);
                }
                o.str("requestID", ctx.event_id)
                    .str("eventID", ctx.event_id)
                    .bool("readOnly", false);
                db_resource(o, a.resource_arn.as_deref());
                o.object("database", |d| {
                    d.str("engine", a.engine)
                        .opt_str("name", a.database.as_deref())
                        .str("dbUser", &a.db_user);
                    if let AuthResult::Failure { kind, .. } = &a.result {
                        d.str("failure", kind.as_str())
                            .bool("possessionProven", a.possession_proven);
                    }
                });
            }
            Event::SessionStart(s) => {
                session_event(o, s, "Data");
                o.str("requestID", &s.session_id)
                    .str("eventID", ctx.event_id)
                    .bool("readOnly", false);
                db_resource(o, Some(&s.resource_arn));
                o.object("database", |d| session_fields(d, s));
            }
            Event::SessionEnd(e) => {
                session_event(o, &e.session, "Data");
                o.str("requestID", &e.session.session_id)
                    .str("eventID", ctx.event_id)
                    .bool("readOnly", false);
                db_resource(o, Some(&e.session.resource_arn));
                o.object("database", |d| {
                    session_fields(d, &e.session);
                    d.num("durationMs", e.duration.as_millis() as u64)
                        .num("bytesFromClient", e.bytes_from_client)
                        .num("bytesToClient", e.bytes_to_client)
                        .num("statements", e.statements)
                        .str("endReason", &e.reason);
                });
            }
            Event::Statement(s) => match cache {
                Some(cache) => statement(o, s, ctx, cache.get(&s.session)),
                None => statement(o, s, ctx, &SessionFields::of(&s.session)),
            },
            Event::Credential(c) => {
                o.str("eventType", "AwsServiceEvent")
                    .str("eventCategory", "Management")
                    .object("userIdentity", |u| identity(u, &c.identity))
                    .str("eventID", ctx.event_id)
                    .bool("readOnly", false);
                resources(o, &[]);
                o.object("serviceEventDetails", |d| {
                    d.num("sessionsEnded", c.sessions_ended);
                });
            }
            Event::Finding(f) => {
                o.str("eventType", "AwsServiceEvent")
                    .str("eventCategory", "Insight")
                    .object("userIdentity", |u| {
                        u.str("type", "AWSService")
                            .str("invokedBy", "detection.latchkey");
                    })
                    .str("eventID", ctx.event_id)
                    .bool("readOnly", false);
                resources(o, &[]);
                o.object("serviceEventDetails", |d| write_finding(d, f));
            }
        }
        o.str("recipientAccountId", ctx.account);
    }
}

/// A finding as a JSON object's text (the trail's `serviceEventDetails`,
/// the store's copy, the webhook's body).
pub fn finding_json(f: &Finding) -> String {
    let mut out = String::with_capacity(512);
    let mut o = Object::new(&mut out);
    write_finding(&mut o, f);
    o.end();
    out
}

/// A finding's fields, as in the trail and in `findings get`.
pub fn write_finding(d: &mut Object<'_>, f: &Finding) {
    d.str("id", &f.id)
        .str("type", &f.kind)
        .str("severity", f.severity.as_str())
        .raw("severityScore", &format!("{:.1}", f.severity.score()))
        .str("title", &f.title)
        .str("description", &f.description)
        .str("resource", &f.resource)
        .opt_str("principal", f.principal.as_deref());
    match f.source_ip {
        Some(ip) => d.str("sourceIPAddress", &ip.to_string()),
        None => d.null("sourceIPAddress"),
    };
    d.time("firstSeen", f.first_seen)
        .time("lastSeen", f.last_seen)
        .num("count", f.count)
        .strings("evidence", &f.evidence)
        .strings("actions", &f.actions);
}
