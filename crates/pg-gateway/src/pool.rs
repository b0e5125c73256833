//! Session pooling for PostgreSQL: the pool itself is
//! `latchkey_gateway::pool`; here a connection is returned to a fresh
//! session's state with `DISCARD ALL` before it is kept.

use anyhow::{Result, anyhow};
use latchkey_gateway::pool::RESET_TIMEOUT;

pub use latchkey_gateway::pool::{Pool, PoolConfig, key};

use crate::upstream::Upstream;

/// Returns the connection to a fresh session's state: `DISCARD ALL` drops
/// prepared statements, temporary tables, settings, advisory locks and
/// listeners. The parameters the server reports are recorded.
pub async fn reset(upstream: &mut Upstream) -> Result<()> {
    tokio::time::timeout(RESET_TIMEOUT, upstream.run_quietly("DISCARD ALL", None))
        .await
        .map_err(|_| anyhow!("DISCARD ALL timed out"))?
}
