//! Audit events and the interface the gateways emit them through.
//!
//! Pure: the gateways build events and hand them to an [`AuditSink`];
//! where they go (a hash-chained log, a queue, a detection engine) is the
//! sink's business. Events hold only what is safe to keep: statements
//! arrive here already normalised, with literals redacted, and no event
//! ever carries a token, password or secret key.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who is connected, to what, from where: shared by every event of one
/// session, so statements do not copy it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Random, unique per session.
    pub session_id: String,
    /// `postgres` or `mysql`.
    pub engine: &'static str,
    pub principal_arn: String,
    pub access_key_id: String,
    pub source_ip: IpAddr,
    /// The registered database's name.
    pub database: String,
    /// The database (schema) the client asked for.
    pub database_name: String,
    pub db_user: String,
    pub started: SystemTime,
}

/// A statement as it goes into the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Normalised; literals are `?` unless redaction is off.
    pub text: String,
    /// Groups statements that differ only in their literals.
    pub fingerprint: u64,
    /// The statement was cut short (too long, or it ended inside a
    /// literal) and the rest withheld.
    pub truncated: bool,
}

/// Simple `Query` or extended `Parse`/`Bind`/`Execute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Simple,
    Extended,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementEvent {
    pub session: Arc<SessionInfo>,
    pub statement: Arc<Statement>,
    pub protocol: Protocol,
    pub time: SystemTime,
    pub duration: Duration,
    /// `SELECT 1`, `INSERT 0 5`... as the server reported it.
    pub command_tag: Option<String>,
    pub rows: Option<u64>,
    /// SQLSTATE when the statement failed.
    pub error_code: Option<String>,
}

/// The result of a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    Success,
    /// The precise reason, which the client is never told.
    Failure {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    pub engine: &'static str,
    pub time: SystemTime,
    pub source_ip: IpAddr,
    pub db_user: String,
    /// The endpoint host the token was signed for, when it parsed.
    pub endpoint: Option<String>,
    pub principal_arn: Option<String>,
    pub access_key_id: Option<String>,
    pub result: AuthResult,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEndEvent {
    pub session: Arc<SessionInfo>,
    pub time: SystemTime,
    pub duration: Duration,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub statements: u64,
    /// Why it ended: `client closed`, `credential revoked`...
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Auth(AuthEvent),
    SessionStart(Arc<SessionInfo>),
    SessionEnd(SessionEndEvent),
    Statement(StatementEvent),
}

/// Where events go. `record` is called on the relay's task, so it must
/// not block: queue and return.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: Event);
}

/// Discards everything (audit off).
pub struct NullSink;

impl AuditSink for NullSink {
    fn record(&self, _: Event) {}
}

fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = latchkey_sigv4::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
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
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        from = i + 1;
    }
    out.push_str(&text[from..]);
    out.push('"');
}

/// Writes one JSON object, field by field, without building a tree: the
/// audit writer serialises every statement, so this is on a busy path.
struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        json_string(self.out, key);
        self.out.push(':');
        self.out
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        json_string(out, value);
        self
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => {
                self.key(key).push_str("null");
                self
            }
        }
    }

    fn num(&mut self, key: &str, value: u64) -> &mut Self {
        use std::fmt::Write;
        let out = self.key(key);
        let _ = write!(out, "{value}");
        self
    }

    fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    fn identity(&mut self, arn: Option<&str>, access_key_id: Option<&str>) -> &mut Self {
        let out = self.key("userIdentity");
        let mut o = Object::new(out);
        o.opt_str("arn", arn).opt_str("accessKeyId", access_key_id);
        o.end();
        self
    }

    fn session(&mut self, s: &SessionInfo) -> &mut Self {
        self.str("sessionId", &s.session_id)
            .str("engine", s.engine)
            .identity(Some(&s.principal_arn), Some(&s.access_key_id))
            .str("sourceIPAddress", &s.source_ip.to_string())
            .str("database", &s.database)
            .str("databaseName", &s.database_name)
            .str("dbUser", &s.db_user)
    }

    fn end(&mut self) {
        self.out.push('}');
    }
}

impl Event {
    /// The event's CloudTrail-style name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Auth(_) => "Connect",
            Event::SessionStart(_) => "SessionStart",
            Event::SessionEnd(_) => "SessionEnd",
            Event::Statement(_) => "Statement",
        }
    }

    /// Appends the event as one JSON object, CloudTrail-flavoured.
    pub fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("eventName", self.name());
        match self {
            Event::Auth(a) => {
                o.str("eventTime", &rfc3339(a.time))
                    .str("engine", a.engine)
                    .str("sourceIPAddress", &a.source_ip.to_string())
                    .str("dbUser", &a.db_user);
                if let Some(e) = &a.endpoint {
                    o.str("endpoint", e);
                }
                o.identity(a.principal_arn.as_deref(), a.access_key_id.as_deref());
                if let AuthResult::Failure { reason } = &a.result {
                    o.str("errorCode", "AuthenticationFailed")
                        .str("errorMessage", reason);
                }
            }
            Event::SessionStart(s) => {
                o.str("eventTime", &rfc3339(s.started)).session(s);
            }
            Event::SessionEnd(e) => {
                o.str("eventTime", &rfc3339(e.time))
                    .session(&e.session)
                    .num("durationMs", e.duration.as_millis() as u64)
                    .num("bytesFromClient", e.bytes_from_client)
                    .num("bytesToClient", e.bytes_to_client)
                    .num("statements", e.statements)
                    .str("reason", &e.reason);
            }
            Event::Statement(s) => {
                o.str("eventTime", &rfc3339(s.time))
                    .session(&s.session)
                    .str("statement", &s.statement.text)
                    .str("fingerprint", &format!("{:016x}", s.statement.fingerprint));
                if s.statement.truncated {
                    o.bool("truncated", true);
                }
                o.str(
                    "protocol",
                    match s.protocol {
                        Protocol::Simple => "simple",
                        Protocol::Extended => "extended",
                    },
                )
                .num("durationUs", s.duration.as_micros() as u64);
                if let Some(t) = &s.command_tag {
                    o.str("commandTag", t);
                }
                if let Some(r) = s.rows {
                    o.num("rows", r);
                }
                if let Some(c) = &s.error_code {
                    o.str("errorCode", c);
                }
            }
        }
        o.end();
    }

    /// The event as a JSON value (for tests and tools; the log writer
    /// uses [`Event::write_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        let mut text = String::new();
        self.write_json(&mut text);
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}

/// The row count at the end of a command tag (`SELECT 5`, `INSERT 0 5`,
/// `UPDATE 3`); none for tags without one (`BEGIN`, `CREATE TABLE`).
pub fn rows_from_tag(tag: &str) -> Option<u64> {
    let (verb, rest) = tag.split_once(' ')?;
    if !matches!(
        verb,
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "FETCH" | "MOVE" | "COPY"
    ) {
        return None;
    }
    rest.rsplit(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_443_728_123);
        assert_eq!(rfc3339(t), "2026-11-23T14:22:08.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn row_counts() {
        assert_eq!(rows_from_tag("SELECT 5"), Some(5));
        assert_eq!(rows_from_tag("INSERT 0 7"), Some(7));
        assert_eq!(rows_from_tag("COPY 1000000"), Some(1_000_000));
        assert_eq!(rows_from_tag("BEGIN"), None);
        assert_eq!(rows_from_tag("CREATE TABLE"), None);
    }

    #[test]
    fn statement_json_has_no_surprises() {
        let session = Arc::new(SessionInfo {
            session_id: "s1".into(),
            engine: "postgres",
            principal_arn: "arn:aws:iam::123456789012:user/app".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            source_ip: "127.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            database: "orders".into(),
            database_name: "orders".into(),
            db_user: "app".into(),
            started: UNIX_EPOCH,
        });
        let e = Event::Statement(StatementEvent {
            session,
            statement: Arc::new(Statement {
                text: "SELECT ? FROM t".into(),
                fingerprint: 0xabc,
                truncated: false,
            }),
            protocol: Protocol::Extended,
            time: UNIX_EPOCH,
            duration: Duration::from_micros(1500),
            command_tag: Some("SELECT 1".into()),
            rows: Some(1),
            error_code: None,
        });
        let v = e.to_json();
        assert_eq!(v["eventName"], "Statement");
        assert_eq!(v["statement"], "SELECT ? FROM t");
        assert_eq!(v["fingerprint"], "0000000000000abc");
        assert_eq!(v["durationUs"], 1500);
        assert_eq!(v["rows"], 1);
        assert_eq!(v["userIdentity"]["accessKeyId"], "AKIAEXAMPLE");
        assert!(v.get("errorCode").is_none());
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }
}
