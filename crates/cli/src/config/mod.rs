//! The server's configuration, one section per concern (`[general]`,
//! `[api]`, `[gateway]` with `[gateway.postgres]` and `[gateway.mysql]`,
//! `[audit]`, `[detection]`, `[webhook]`, `[[databases]]`).
//!
//! Precedence, lowest first:
//!
//! 1. built-in defaults (each section's `Default`, the one place they live);
//! 2. `latchkey.toml` (`--config FILE`, `LATCHKEY_CONFIG`, else
//!    `./latchkey.toml` if it exists);
//! 3. environment variables (`LATCHKEY_*`);
//! 4. command-line flags.
//!
//! Each section is declared once with [`section!`], which makes the
//! effective struct (with its defaults) and an `*Args` struct of
//! `Option`s that is at once the file's table and clap's flags and
//! variables. A layer is applied with `apply`, which takes every value it
//! sets; the layers are applied in the order above, so no field is merged
//! by hand. clap itself reads a flag before its variable, which is the
//! same order.
//!
//! Deprecated for one release: the flat keys of earlier `latchkey.toml`s
//! (`pg_threads`, `api_metrics`, `audit_dir`, ... at the top level), the
//! `--pg-*` flags (clap aliases) and the `LATCHKEY_PG_*` variables.

//!
//! The code is laid out the same way: `sections` declares the sections
//! and the value types they use, `settings` is the configuration in effect
//! as `--print-config` shows it, `file` parses `latchkey.toml` (and its
//! deprecated flat keys), and `load` applies the layers in order and makes
//! the runtime [`Config`].

use std::path::PathBuf;

mod file;
mod load;
mod sections;
mod settings;
#[cfg(test)]
mod tests;

pub use file::DatabaseConfig;
pub use load::{Config, ServerArgs};

/// What is wrong with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The `toml` error's message (it names the key) and where it is.
    /// Never the offending line itself: it may hold a secret put where it
    /// does not belong (`[webhook] secret = ...`), and errors reach logs.
    #[error("{path}, {at}: {}", .source.message())]
    Parse {
        path: PathBuf,
        /// `line L, column C`.
        at: String,
        source: Box<toml::de::Error>,
    },
    #[error("${var}: {message}")]
    Env { var: &'static str, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// `line L, column C` of a parse error's start (`line 1` when it has no
/// span).
fn where_in(text: &str, error: &toml::de::Error) -> String {
    let Some(start) = error.span().map(|s| s.start.min(text.len())) else {
        return "line 1".to_owned();
    };
    let before = text.get(..start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

fn invalid<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid(message.into()))
}
