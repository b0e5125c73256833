//! The lookup index: one SQLite row per record, pointing at its bytes in
//! its segment. The segments are the record of truth; the index can always
//! be rebuilt from them, so it is written without waiting for the disk.

use std::path::{Path, PathBuf};

use latchkey_audit::Event;
use rusqlite::{Connection, OpenFlags, params_from_iter};

use crate::Error;

/// What the writer knows of a record, for the index.
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub sequence: u64,
    pub time_ms: i64,
    pub name: String,
    pub principal: Option<String>,
    pub access_key_id: Option<String>,
    pub database: Option<String>,
    pub source_ip: Option<String>,
    pub error: bool,
    /// The segment's first sequence (its name).
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

impl IndexRow {
    pub fn of(event: &Event, sequence: u64, segment: u64, offset: u64, len: u32) -> Self {
        let time_ms = event
            .time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let error = match event {
            Event::Api(a) => a.error.is_some(),
            Event::Auth(a) => matches!(a.result, latchkey_audit::AuthResult::Failure { .. }),
            Event::Statement(s) => s.error_code.is_some(),
            _ => false,
        };
        Self {
            sequence,
            time_ms,
            name: event.name().to_owned(),
            principal: event.principal_arn().map(str::to_owned),
            access_key_id: match event {
                Event::Api(a) => a.access_key_id.clone(),
                Event::Auth(a) => a.access_key_id.clone(),
                e => e.identity().map(|i| i.access_key_id.clone()),
            },
            database: event.database().map(str::to_owned),
            source_ip: event.source_ip().map(|ip| ip.to_string()),
            error,
            segment,
            offset,
            len,
        }
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
    /// Newest first, at most this many.
    pub limit: u32,
}

/// Where a record's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub sequence: u64,
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

pub struct Index {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records(
    sequence INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    name TEXT NOT NULL,
    principal TEXT,
    access_key_id TEXT,
    database TEXT,
    source_ip TEXT,
    error INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    len INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_time ON records(time_ms);
CREATE INDEX IF NOT EXISTS records_principal ON records(principal, time_ms);
CREATE INDEX IF NOT EXISTS records_name ON records(name, time_ms);
CREATE INDEX IF NOT EXISTS records_database ON records(database, time_ms);
CREATE INDEX IF NOT EXISTS records_source_ip ON records(source_ip, time_ms);
";

impl Index {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("index.sqlite")
    }

    /// Opens (creating) the index for writing.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let path = Self::path(dir);
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
            .query_row("SELECT COALESCE(MAX(sequence), 0) FROM records", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| Error::index(&self.path, e))
    }

    pub fn insert(&mut self, rows: &[IndexRow]) -> Result<(), Error> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| Error::index(&self.path, e))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(|e| Error::index(&self.path, e))?;
            for r in rows {
                stmt.execute(rusqlite::params![
                    r.sequence as i64,
                    r.time_ms,
                    r.name,
                    r.principal,
                    r.access_key_id,
                    r.database,
                    r.source_ip,
                    r.error,
                    r.segment as i64,
                    r.offset as i64,
                    r.len,
                ])
                .map_err(|e| Error::index(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| Error::index(&self.path, e))
    }

    /// Drops rows of records in segments that retention removed.
    pub fn delete_before(&self, sequence: u64) -> Result<(), Error> {
        self.conn
            .execute("DELETE FROM records WHERE sequence < ?1", [sequence as i64])
            .map(|_| ())
            .map_err(|e| Error::index(&self.path, e))
    }

    pub fn lookup(&self, filter: &Filter) -> Result<Vec<Location>, Error> {
        let mut sql = String::from("SELECT sequence, segment, offset, len FROM records WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut text = |column: &str, value: &Option<String>, sql: &mut String| {
            if let Some(v) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                args.push(v.clone().into());
            }
        };
        text("principal", &filter.principal, &mut sql);
        text("name", &filter.event_name, &mut sql);
        text("database", &filter.database, &mut sql);
        text("source_ip", &filter.source_ip, &mut sql);
        text("access_key_id", &filter.access_key_id, &mut sql);
        if filter.errors_only {
            sql.push_str(" AND error = 1");
        }
        if let Some(t) = filter.since_ms {
            sql.push_str(" AND time_ms >= ?");
            args.push(t.into());
        }
        if let Some(t) = filter.until_ms {
            sql.push_str(" AND time_ms <= ?");
            args.push(t.into());
        }
        sql.push_str(" ORDER BY sequence DESC LIMIT ?");
        args.push(i64::from(filter.limit).into());
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(|e| Error::index(&self.path, e))?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok(Location {
                    sequence: r.get::<_, i64>(0)? as u64,
                    segment: r.get::<_, i64>(1)? as u64,
                    offset: r.get::<_, i64>(2)? as u64,
                    len: r.get(3)?,
                })
            })
            .map_err(|e| Error::index(&self.path, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::index(&self.path, e))
    }
}
