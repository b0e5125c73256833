//! Session pooling for PostgreSQL: the pool itself is
//! `latchkey_gateway::pool`; here a connection is returned to a fresh
//! session's state with `DISCARD ALL` before it is kept.

use anyhow::{Result, anyhow, bail};
use latchkey_gateway::pool::RESET_TIMEOUT;
use latchkey_pgwire as wire;
use tokio::io::AsyncWriteExt;

pub use latchkey_gateway::pool::{Pool, PoolConfig, key};

use crate::read_message;
use crate::upstream::Upstream;

/// Returns the connection to a fresh session's state: `DISCARD ALL` drops
/// prepared statements, temporary tables, settings, advisory locks and
/// listeners. The parameters the server reports are recorded.
pub async fn reset(upstream: &mut Upstream) -> Result<()> {
    tokio::time::timeout(RESET_TIMEOUT, discard_all(upstream))
        .await
        .map_err(|_| anyhow!("DISCARD ALL timed out"))?
}

async fn discard_all(upstream: &mut Upstream) -> Result<()> {
    let mut out = Vec::new();
    wire::query(&mut out, "DISCARD ALL");
    upstream.stream.write_all(&out).await?;
    upstream.stream.flush().await?;
    loop {
        let (tag, body) = read_message(&mut upstream.stream, 1 << 20).await?;
        match tag {
            b'S' => {
                let (name, value) =
                    wire::parse_parameter_status(&body).map_err(|e| anyhow!("{e}"))?;
                upstream.set_param(name, value);
            }
            b'C' | b'N' | b'A' => {}
            b'E' => {
                let (code, text) = wire::parse_error(&body);
                bail!("DISCARD ALL failed: {code} {text}");
            }
            b'Z' if body == b"I" => return Ok(()),
            _ => bail!("unexpected reply to DISCARD ALL: {}", char::from(tag)),
        }
    }
}
