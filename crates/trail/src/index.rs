//! The lookup index. Statements are most of the trail and arrive by tens of
//! thousands a second, too fast for a row each, so the index holds spans:
//! one row per (segment, event name, principal, access key, database,
//! source address, failed) within a written batch, with the byte range and
//! sequence and time bounds of its records. A batch of 10,000 statements
//! from 50 sessions is about 50 rows. A lookup finds the spans that match
//! and reads just their byte ranges, keeping the records that match
//! exactly.
//!
//! The segments are the record of truth; the index can always be rebuilt
//! from them, so it is written without waiting for the disk.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use latchkey_audit::Event;
use rusqlite::{Connection, OpenFlags, params_from_iter};

use crate::Error;

/// What identifies a span: the fields lookups filter on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpanKey<S> {
    pub name: S,
    pub principal: Option<S>,
    pub access_key_id: Option<S>,
    pub database: Option<S>,
    pub source_ip: Option<IpAddr>,
    pub error: bool,
}

impl<'a> SpanKey<&'a str> {
    pub fn of(event: &'a Event) -> Self {
        let error = match event {
            Event::Api(a) => a.error.is_some(),
            Event::Auth(a) => matches!(a.result, latchkey_audit::AuthResult::Failure { .. }),
            Event::Statement(s) => s.error_code.is_some(),
            _ => false,
        };
        Self {
            name: event.name(),
            principal: event.principal_arn(),
            // As the record writes `userIdentity.accessKeyId` (what a
            // lookup reads back): the identity's key when there is one.
            access_key_id: match event {
                Event::Api(a) => a
                    .identity
                    .as_ref()
                    .map(|i| i.access_key_id.as_str())
                    .or(a.access_key_id.as_deref()),
                Event::Auth(a) => a
                    .identity
                    .as_ref()
                    .map(|i| i.access_key_id.as_str())
                    .or(a.access_key_id.as_deref()),
                e => e.identity().map(|i| i.access_key_id.as_str()),
            },
            database: event.database(),
            source_ip: event.source_ip(),
            error,
        }
    }

    fn owned(&self) -> SpanKey<String> {
        SpanKey {
            name: self.name.to_owned(),
            principal: self.principal.map(str::to_owned),
            access_key_id: self.access_key_id.map(str::to_owned),
            database: self.database.map(str::to_owned),
            source_ip: self.source_ip,
            error: self.error,
        }
    }
}

/// Records of one key in one segment: where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub key: SpanKey<String>,
    /// The segment's first sequence (its name).
    pub segment: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// Byte range in the segment holding all of them (and others between).
    pub start: u64,
    pub end: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub count: u64,
}

/// Groups records into spans as they are written.
#[derive(Default)]
pub struct SpanBuilder<'a> {
    spans: HashMap<SpanKey<&'a str>, Span>,
    /// Spans closed by a segment change.
    done: Vec<Span>,
}

impl<'a> SpanBuilder<'a> {
    /// Adds a record at `[start, end)` of `segment`.
    pub fn add(
        &mut self,
        key: SpanKey<&'a str>,
        segment: u64,
        sequence: u64,
        time_ms: i64,
        start: u64,
        end: u64,
    ) {
        match self.spans.get_mut(&key) {
            Some(s) if s.segment == segment => {
                s.last_sequence = sequence;
                s.end = end;
                s.first_ms = s.first_ms.min(time_ms);
                s.last_ms = s.last_ms.max(time_ms);
                s.count += 1;
            }
            _ => {
                let owned = key.owned();
                // A span never crosses segments: a new segment starts anew.
                if let Some(old) = self.spans.insert(
                    key,
                    Span {
                        key: owned,
                        segment,
                        first_sequence: sequence,
                        last_sequence: sequence,
                        start,
                        end,
                        first_ms: time_ms,
                        last_ms: time_ms,
                        count: 1,
                    },
                ) {
                    self.done.push(old);
                }
            }
        }
    }

    pub fn finish(self) -> Vec<Span> {
        let mut all = self.done;
        all.extend(self.spans.into_values());
        all
    }
}

/// `audit lookup`'s filters; every one given must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub principal: Option<String>,
    pub event_name: Option<String>,
    pub database: Option<String>,
    pub source_ip: Option<String>,
    pub access_key_id: Option<String>,
    pub errors_only: bool,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only the record of this sequence number (an `eventID` names it).
    pub sequence: Option<u64>,
    /// Newest first, at most this many.
    pub limit: u32,
}

pub struct Index {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spans(
    segment INTEGER NOT NULL,
    first_sequence INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    start_offset INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    name TEXT NOT NULL,
    principal TEXT,
    access_key_id TEXT,
    database TEXT,
    source_ip TEXT,
    error INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_last ON spans(last_sequence);
CREATE INDEX IF NOT EXISTS spans_principal ON spans(principal, last_sequence);
CREATE INDEX IF NOT EXISTS spans_name ON spans(name, last_sequence);
CREATE INDEX IF NOT EXISTS spans_database ON spans(database, last_sequence);
CREATE INDEX IF NOT EXISTS spans_source_ip ON spans(source_ip, last_sequence);
";

impl Index {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("index.sqlite")
    }

    /// Opens (creating) the index for writing.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let path = Self::path(dir);
        // Private like the segments; SQLite gives its -wal and -shm files
        // the same mode.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
        }
        let conn = Connection::open(&path).map_err(|e| Error::index(&path, e))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; {SCHEMA}"
        ))
        .map_err(|e| Error::index(&path, e))?;
        Ok(Self { conn, path })
    }

    /// Opens an existing index for `audit lookup`, beside a running writer.
    pub fn open_read_only(dir: &Path) -> Result<Self, Error> {
        let path = Self::path(dir);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::index(&path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| Error::index(&path, e))?;
        Ok(Self { conn, path })
    }

    /// The highest sequence indexed (0 when empty).
    pub fn last_sequence(&self) -> Result<u64, Error> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(last_sequence), 0) FROM spans",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| Error::index(&self.path, e))
    }

    pub fn insert(&mut self, spans: &[Span]) -> Result<(), Error> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| Error::index(&self.path, e))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO spans VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(|e| Error::index(&self.path, e))?;
            for s in spans {
                stmt.execute(rusqlite::params![
                    s.segment as i64,
                    s.first_sequence as i64,
                    s.last_sequence as i64,
                    s.start as i64,
                    s.end as i64,
                    s.first_ms,
                    s.last_ms,
                    s.count as i64,
                    s.key.name,
                    s.key.principal,
                    s.key.access_key_id,
                    s.key.database,
                    s.key.source_ip.map(|ip| ip.to_string()),
                    s.key.error,
                ])
                .map_err(|e| Error::index(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| Error::index(&self.path, e))
    }

    /// Drops spans of records that retention removed.
    pub fn delete_before(&self, sequence: u64) -> Result<(), Error> {
        self.conn
            .execute(
                "DELETE FROM spans WHERE last_sequence < ?1",
                [sequence as i64],
            )
            .map(|_| ())
            .map_err(|e| Error::index(&self.path, e))
    }

    /// Spans that may hold matching records, newest first.
    pub fn spans(&self, filter: &Filter) -> Result<Vec<Span>, Error> {
        let mut all = Vec::new();
        self.visit_spans(filter, |span| {
            all.push(span);
            Ok(true)
        })?;
        Ok(all)
    }

    /// Hands `visit` the spans that may hold matching records, newest
    /// first, read as it goes, until it answers `false`: a lookup that has
    /// its page stops reading the index there rather than loading every
    /// span of a large trail.
    pub fn visit_spans(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(Span) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let mut sql = String::from(
            "SELECT segment, first_sequence, last_sequence, start_offset, end_offset, first_ms, last_ms, count, \
             name, principal, access_key_id, database, source_ip, error FROM spans WHERE 1=1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        for (column, value) in [
            ("principal", &filter.principal),
            ("name", &filter.event_name),
            ("database", &filter.database),
            ("source_ip", &filter.source_ip),
            ("access_key_id", &filter.access_key_id),
        ] {
            if let Some(v) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                args.push(v.clone().into());
            }
        }
        if filter.errors_only {
            sql.push_str(" AND error = 1");
        }
        if let Some(t) = filter.since_ms {
            sql.push_str(" AND last_ms >= ?");
            args.push(t.into());
        }
        if let Some(t) = filter.until_ms {
            sql.push_str(" AND first_ms <= ?");
            args.push(t.into());
        }
        if let Some(n) = filter.sequence {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            sql.push_str(" AND first_sequence <= ? AND last_sequence >= ?");
            args.push(n.into());
            args.push(n.into());
        }
        sql.push_str(" ORDER BY last_sequence DESC");
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(|e| Error::index(&self.path, e))?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                Ok(Span {
                    segment: n(0)?,
                    first_sequence: n(1)?,
                    last_sequence: n(2)?,
                    start: n(3)?,
                    end: n(4)?,
                    first_ms: r.get(5)?,
                    last_ms: r.get(6)?,
                    count: n(7)?,
                    key: SpanKey {
                        name: r.get(8)?,
                        principal: r.get(9)?,
                        access_key_id: r.get(10)?,
                        database: r.get(11)?,
                        source_ip: r.get::<_, Option<String>>(12)?.and_then(|s| s.parse().ok()),
                        error: r.get(13)?,
                    },
                })
            })
            .map_err(|e| Error::index(&self.path, e))?;
        for row in rows {
            let span = row.map_err(|e| Error::index(&self.path, e))?;
            if !visit(span)? {
                break;
            }
        }
        Ok(())
    }
}
