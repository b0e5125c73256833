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

use serde_json::{Map, Value, json};

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
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn session_fields(s: &SessionInfo, m: &mut Map<String, Value>) {
    m.insert("sessionId".into(), s.session_id.clone().into());
    m.insert("engine".into(), s.engine.into());
    m.insert(
        "userIdentity".into(),
        json!({ "arn": s.principal_arn, "accessKeyId": s.access_key_id }),
    );
    m.insert("sourceIPAddress".into(), s.source_ip.to_string().into());
    m.insert("database".into(), s.database.clone().into());
    m.insert("databaseName".into(), s.database_name.clone().into());
    m.insert("dbUser".into(), s.db_user.clone().into());
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

    /// One JSON object per event, CloudTrail-flavoured.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("eventName".into(), self.name().into());
        match self {
            Event::Auth(a) => {
                m.insert("eventTime".into(), rfc3339(a.time).into());
                m.insert("engine".into(), a.engine.into());
                m.insert("sourceIPAddress".into(), a.source_ip.to_string().into());
                m.insert("dbUser".into(), a.db_user.clone().into());
                if let Some(e) = &a.endpoint {
                    m.insert("endpoint".into(), e.clone().into());
                }
                m.insert(
                    "userIdentity".into(),
                    json!({ "arn": a.principal_arn, "accessKeyId": a.access_key_id }),
                );
                if let AuthResult::Failure { reason } = &a.result {
                    m.insert("errorCode".into(), "AuthenticationFailed".into());
                    m.insert("errorMessage".into(), reason.clone().into());
                }
            }
            Event::SessionStart(s) => {
                m.insert("eventTime".into(), rfc3339(s.started).into());
                session_fields(s, &mut m);
            }
            Event::SessionEnd(e) => {
                m.insert("eventTime".into(), rfc3339(e.time).into());
                session_fields(&e.session, &mut m);
                m.insert("durationMs".into(), (e.duration.as_millis() as u64).into());
                m.insert("bytesFromClient".into(), e.bytes_from_client.into());
                m.insert("bytesToClient".into(), e.bytes_to_client.into());
                m.insert("statements".into(), e.statements.into());
                m.insert("reason".into(), e.reason.clone().into());
            }
            Event::Statement(s) => {
                m.insert("eventTime".into(), rfc3339(s.time).into());
                session_fields(&s.session, &mut m);
                m.insert("statement".into(), s.statement.text.clone().into());
                m.insert(
                    "fingerprint".into(),
                    format!("{:016x}", s.statement.fingerprint).into(),
                );
                if s.statement.truncated {
                    m.insert("truncated".into(), true.into());
                }
                m.insert(
                    "protocol".into(),
                    match s.protocol {
                        Protocol::Simple => "simple",
                        Protocol::Extended => "extended",
                    }
                    .into(),
                );
                m.insert("durationUs".into(), (s.duration.as_micros() as u64).into());
                if let Some(t) = &s.command_tag {
                    m.insert("commandTag".into(), t.clone().into());
                }
                if let Some(r) = s.rows {
                    m.insert("rows".into(), r.into());
                }
                if let Some(c) = &s.error_code {
                    m.insert("errorCode".into(), c.clone().into());
                }
            }
        }
        Value::Object(m)
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
}
