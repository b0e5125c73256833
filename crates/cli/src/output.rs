//! `--output json|text`, for anything a script reads.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use latchkey_sigv4::AmzDate;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned `key value` lines for people.
    #[default]
    Text,
    /// One JSON object for scripts.
    Json,
}

/// Prints `(key, value)` rows as aligned text.
pub fn print_rows(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        println!("{key:<width$}  {value}");
    }
}

/// Prints a JSON value, pretty.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The current time, or `--at` when given (RFC 3339 in UTC, or the
/// `YYYYMMDDTHHMMSSZ` form of `X-Amz-Date`).
pub fn now_or(at: Option<&str>) -> Result<AmzDate> {
    if let Some(date) = at.and_then(|t| AmzDate::parse(t).ok()) {
        return Ok(date);
    }
    let unix = match at {
        Some(text) => humantime::parse_rfc3339_weak(text)
            .with_context(|| format!("--at {text:?} is not an RFC 3339 time"))?
            .duration_since(UNIX_EPOCH)
            .context("--at is before 1970")?
            .as_secs(),
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_secs(),
    };
    i64::try_from(unix)
        .ok()
        .and_then(AmzDate::from_unix)
        .context("time out of range")
}
