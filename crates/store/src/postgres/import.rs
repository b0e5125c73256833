//! `latchkey store migrate`: copies an embedded (SQLite) store into a
//! PostgreSQL one, row by row, in one transaction, then proves the copy by
//! a row count and a SHA-256 over every table's rows read back from both.
//!
//! Sealed blobs are copied as they are (both backends seal with the same
//! contexts), so the master key never has to open them. Re-running is
//! safe: rows are upserted by primary key, and a second run changes
//! nothing. The target must be empty or a copy of the same account.

use rusqlite::types::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;

use super::{PgBackend, Sql, Tx};
use crate::{Result, StoreError};

/// One table's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub rows: u64,
    /// SHA-256 of the table's rows in a canonical form, the same read back
    /// from either store.
    pub checksum: String,
}

/// PostgreSQL's type of a column, as far as copying goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Text,
    Bytes,
}

struct Column {
    /// The SQLite name.
    source: String,
    /// The PostgreSQL name (`user` is reserved there).
    target: String,
    kind: Kind,
}

fn target_name(column: &str) -> String {
    match column {
        "user" => "user_name".to_owned(),
        other => other.to_owned(),
    }
}

/// A value as both stores' canonical text, for the checksum.
fn token(kind: Kind, value: &Value) -> Result<String> {
    Ok(match (kind, value) {
        (_, Value::Null) => "n".to_owned(),
        (Kind::Int | Kind::Bool, Value::Integer(n)) => format!("i{n}"),
        (Kind::Text, Value::Text(t)) => format!("t{}:{t}", t.len()),
        (Kind::Text, Value::Integer(n)) => {
            let t = n.to_string();
            format!("t{}:{t}", t.len())
        }
        (Kind::Bytes, Value::Blob(b)) => format!("b{}", hex::encode(b)),
        (Kind::Bytes, Value::Text(t)) => format!("b{}", hex::encode(t.as_bytes())),
        (kind, other) => {
            return Err(StoreError::Postgres(format!(
                "cannot copy a {:?} value into a {kind:?} column",
                other.data_type()
            )));
        }
    })
}

/// A SQLite value as a parameter of PostgreSQL's column type.
fn parameter(kind: Kind, value: &Value) -> Result<Box<dyn ToSql + Sync + Send>> {
    Ok(match (kind, value) {
        (Kind::Int, Value::Null) => Box::new(None::<i64>),
        (Kind::Bool, Value::Null) => Box::new(None::<bool>),
        (Kind::Text, Value::Null) => Box::new(None::<String>),
        (Kind::Bytes, Value::Null) => Box::new(None::<Vec<u8>>),
        (Kind::Int, Value::Integer(n)) => Box::new(*n),
        (Kind::Bool, Value::Integer(n)) => Box::new(*n != 0),
        (Kind::Text, Value::Text(t)) => Box::new(t.clone()),
        (Kind::Text, Value::Integer(n)) => Box::new(n.to_string()),
        (Kind::Bytes, Value::Blob(b)) => Box::new(b.clone()),
        (Kind::Bytes, Value::Text(t)) => Box::new(t.as_bytes().to_vec()),
        (kind, other) => {
            return Err(StoreError::Postgres(format!(
                "cannot copy a {:?} value into a {kind:?} column",
                other.data_type()
            )));
        }
    })
}

/// Reads PostgreSQL's row back as the canonical tokens.
fn pg_tokens(row: &tokio_postgres::Row, columns: &[Column]) -> Result<String> {
    let mut out = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let value = match column.kind {
            Kind::Int => row
                .try_get::<_, Option<i64>>(i)?
                .map_or(Value::Null, Value::Integer),
            Kind::Bool => row
                .try_get::<_, Option<bool>>(i)?
                .map_or(Value::Null, |b| Value::Integer(i64::from(b))),
            Kind::Text => row
                .try_get::<_, Option<String>>(i)?
                .map_or(Value::Null, Value::Text),
            Kind::Bytes => row
                .try_get::<_, Option<Vec<u8>>>(i)?
                .map_or(Value::Null, Value::Blob),
        };
        out.push(token(column.kind, &value)?);
    }
    Ok(out.join("\u{1f}"))
}

fn digest(mut rows: Vec<String>) -> String {
    rows.sort_unstable();
    let mut hash = Sha256::new();
    for row in &rows {
        hash.update(row.as_bytes());
        hash.update(b"\x1e");
    }
    hex::encode(hash.finalize())
}

/// The embedded store's tables, in its schema's order.
fn source_tables(source: &rusqlite::Connection) -> Result<Vec<String>> {
    let mut stmt = source.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?;
    Ok(names.collect::<rusqlite::Result<_>>()?)
}

fn columns(source: &rusqlite::Connection, tx: &Tx<'_>, table: &str) -> Result<Vec<Column>> {
    let mut stmt = source.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let names: Vec<String> = stmt
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let target = target_name(&name);
        let kind = tx
            .query_opt(
                "SELECT data_type FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
                &[&table, &target],
            )?
            .map(|r| r.try_get::<_, String>(0))
            .transpose()?
            .ok_or_else(|| {
                StoreError::Postgres(format!(
                    "the PostgreSQL store has no column {table}.{target}: is it older than this Latchkey?"
                ))
            })?;
        let kind = match kind.as_str() {
            "bigint" | "integer" => Kind::Int,
            "boolean" => Kind::Bool,
            "text" => Kind::Text,
            "bytea" => Kind::Bytes,
            other => {
                return Err(StoreError::Postgres(format!(
                    "{table}.{target} has type {other}, which the copy does not know"
                )));
            }
        };
        out.push(Column {
            source: name,
            target,
            kind,
        });
    }
    Ok(out)
}

fn primary_key(tx: &Tx<'_>, table: &str) -> Result<Vec<String>> {
    let rows = tx.query(
        "SELECT a.attname::text FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
        &[&table],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Tables whose insertion order the contract keeps (`seq`).
const ORDERED: &[&str] = &["secrets", "kms_keys", "advisor_jobs"];

/// The embedded store's rows of `table`: each row's values and its
/// canonical text.
fn source_rows(
    source: &rusqlite::Connection,
    table: &str,
    columns: &[Column],
) -> Result<Vec<(Vec<Value>, String)>> {
    let order = if ORDERED.contains(&table) {
        " ORDER BY rowid"
    } else {
        ""
    };
    let select = format!(
        "SELECT {} FROM {table}{order}",
        columns
            .iter()
            .map(|c| format!("\"{}\"", c.source))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut stmt = source.prepare(&select)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns.len());
        let mut tokens = Vec::with_capacity(columns.len());
        for (i, column) in columns.iter().enumerate() {
            let value: Value = row.get(i)?;
            tokens.push(token(column.kind, &value)?);
            values.push(value);
        }
        out.push((values, tokens.join("\u{1f}")));
    }
    Ok(out)
}

/// PostgreSQL's rows of `table`: how many, and their checksum.
fn target_digest(tx: &Tx<'_>, table: &str, columns: &[Column]) -> Result<(u64, String)> {
    let names: Vec<&str> = columns.iter().map(|c| c.target.as_str()).collect();
    let rows = tx.query(&format!("SELECT {} FROM {table}", names.join(", ")), &[])?;
    let tokens = rows
        .iter()
        .map(|r| pg_tokens(r, columns))
        .collect::<Result<Vec<_>>>()?;
    Ok((
        u64::try_from(tokens.len()).unwrap_or(u64::MAX),
        digest(tokens),
    ))
}

impl PgBackend {
    /// Copies every row of the embedded store `source` (already opened and
    /// brought to the current schema) into this store, then checks each
    /// table's count and checksum on both sides.
    pub fn import_sqlite(
        &self,
        source: &rusqlite::Connection,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<Vec<TableCopy>> {
        let source_account: String =
            source.query_row("SELECT value FROM meta WHERE key = 'account'", [], |r| {
                r.get(0)
            })?;
        let tables = source_tables(source)?;
        let copies = self.write(|tx| {
            // The target is empty (but for what opening it made) or the
            // same account: never merge two accounts.
            let users: i64 = tx.query_one("SELECT COUNT(*) FROM users", &[])?.try_get(0)?;
            if users > 0 && source_account != self.account {
                return Err(StoreError::InvalidInput(
                    "the PostgreSQL store holds another account: migrate only into an empty store or a copy of this one",
                ));
            }
            // A store in use already is either this very copy (nothing
            // to do) or has moved on since: never roll it back.
            if users > 0 {
                let mut copies = Vec::with_capacity(tables.len());
                let mut changed = Vec::new();
                for table in tables.iter().filter(|t| *t != "meta") {
                    let columns = columns(source, tx, table)?;
                    let rows = source_rows(source, table, &columns)?;
                    let count = u64::try_from(rows.len()).unwrap_or(u64::MAX);
                    let expected = digest(rows.into_iter().map(|(_, text)| text).collect());
                    if target_digest(tx, table, &columns)? != (count, expected.clone()) {
                        changed.push(table.as_str());
                    }
                    copies.push(TableCopy {
                        table: table.clone(),
                        rows: count,
                        checksum: expected,
                    });
                }
                if changed.is_empty() {
                    return Ok(copies);
                }
                return Err(StoreError::Postgres(format!(
                    "the PostgreSQL store already holds this account and differs from the embedded store (tables {}): it is in use; not overwriting it",
                    changed.join(", ")
                )));
            }
            let mut copies = Vec::with_capacity(tables.len());
            for table in &tables {
                if table == "meta" {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('account', $1)
                         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        &[&source_account],
                    )?;
                    continue;
                }
                let columns = columns(source, tx, table)?;
                let key = primary_key(tx, table)?;
                let names: Vec<&str> = columns.iter().map(|c| c.target.as_str()).collect();
                let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
                let updates: Vec<String> = names
                    .iter()
                    .filter(|n| !key.iter().any(|k| k == *n))
                    .map(|n| format!("{n} = EXCLUDED.{n}"))
                    .collect();
                let on_conflict = match (key.is_empty(), updates.is_empty()) {
                    (true, _) => String::new(),
                    (false, true) => format!(" ON CONFLICT ({}) DO NOTHING", key.join(", ")),
                    (false, false) => format!(
                        " ON CONFLICT ({}) DO UPDATE SET {}",
                        key.join(", "),
                        updates.join(", ")
                    ),
                };
                let insert = format!(
                    "INSERT INTO {table} ({}) VALUES ({}){on_conflict}",
                    names.join(", "),
                    placeholders.join(", ")
                );
                let mut source_texts = Vec::new();
                for (values, text) in source_rows(source, table, &columns)? {
                    let params = columns
                        .iter()
                        .zip(&values)
                        .map(|(column, value)| parameter(column.kind, value))
                        .collect::<Result<Vec<_>>>()?;
                    let refs: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    tx.execute(&insert, &refs)?;
                    source_texts.push(text);
                }
                if table == "password_history" {
                    tx.batch(
                        "SELECT setval(pg_get_serial_sequence('password_history', 'id'),
                                       GREATEST((SELECT MAX(id) FROM password_history), 1))",
                    )?;
                }
                let count = u64::try_from(source_texts.len()).unwrap_or(u64::MAX);
                let expected = digest(source_texts);
                let (found_count, found) = target_digest(tx, table, &columns)?;
                if found_count != count || found != expected {
                    return Err(StoreError::Postgres(format!(
                        "table {table} differs after the copy: {count} rows in the embedded store, {found_count} in PostgreSQL (checksums {expected} and {found})"
                    )));
                }
                copies.push(TableCopy {
                    table: table.clone(),
                    rows: count,
                    checksum: expected,
                });
            }
            Ok(copies)
        })?;
        for copy in &copies {
            progress(&copy.table, copy.rows);
        }
        Ok(copies)
    }
}
