//! Master-key rotation across nodes sharing a store, in three steps that
//! never leave a node unable to open what another sealed:
//!
//! 1. [`stage`]: a new key goes into this node's `master.key`, and the
//!    store records that every node goes on sealing with the current one
//!    (a node seals with the key the store names, whatever its newest).
//!    The operator copies `master.key` to every node; each re-reads it
//!    within seconds and reports the keys it holds (by fingerprint).
//! 2. [`commit`]: once every running node holds the new key, the store
//!    names it; when every node says it seals with it, every secret is
//!    re-wrapped with it.
//! 3. [`retire`]: the older keys leave this node's `master.key` (copy it
//!    to the others again, or run it on each).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use latchkey_store::{NodeReport, Store, random, vault::fingerprint};
use zeroize::Zeroizing;

use crate::bootstrap::{DataDir, load_vault, read_master_keys, write_master_keys};

/// A node that reported within this long counts as running.
pub const RUNNING_WITHIN_SECS: i64 = 30;

/// What [`stage`] did.
#[derive(Debug)]
pub struct Staged {
    pub id: u32,
    pub fingerprint: String,
    /// The key every node goes on sealing with meanwhile.
    pub sealing: u32,
}

/// The nodes that reported lately.
pub fn running(store: &Store, now: i64) -> Result<Vec<NodeReport>> {
    Ok(store
        .nodes()?
        .into_iter()
        .filter(|n| now - n.seen <= RUNNING_WITHIN_SECS)
        .collect())
}

/// Step 1: adds a new key to this node's `master.key`, sealing with the
/// current one until [`commit`].
pub fn stage(dir: &DataDir, now: i64) -> Result<Staged> {
    let path = dir.master_key();
    let mut keys = read_master_keys(&path)?;
    let newest = keys
        .iter()
        .map(|(id, _)| *id)
        .max()
        .context("no master key")?;
    let store = dir.open_store(load_vault(&path)?)?;
    let sealing = match store.sealing_master_key()? {
        Some(id) if id < newest => bail!(
            "master key {newest} is staged already (the nodes seal with {id}): copy master.key to every node, then run `latchkey rotate-master-key --commit`"
        ),
        Some(id) => id,
        None => newest,
    };
    let nodes = running(&store, now)?;
    if let Some(n) = nodes.iter().find(|n| n.sealing_key != sealing) {
        bail!(
            "node {} seals with master key {}, not {sealing}: the nodes disagree; see `latchkey store nodes`",
            n.node,
            n.sealing_key
        );
    }
    // Never an id another node holds for another key.
    let id = nodes
        .iter()
        .flat_map(|n| n.master_keys.iter().map(|(id, _)| *id))
        .chain(std::iter::once(newest))
        .max()
        .unwrap_or(newest)
        + 1;
    // The store names the sealing key before any node can see the new one.
    store.set_sealing_master_key(sealing)?;
    let key = Zeroizing::new(random::<32>()?);
    let print = fingerprint(id, &key);
    keys.push((id, key));
    write_master_keys(&path, &keys)?;
    Ok(Staged {
        id,
        fingerprint: print,
        sealing,
    })
}

/// Step 2: the newest key in this node's `master.key` becomes the one
/// every node seals with, once every running node holds it; then every
/// secret is re-wrapped with it. Waits up to `wait` for the nodes to take
/// it up; safe to run again. Returns the key and how many secrets were
/// re-wrapped.
pub fn commit(
    dir: &DataDir,
    wait: Duration,
    now: impl Fn() -> i64,
    mut progress: impl FnMut(&str),
) -> Result<(u32, usize)> {
    let path = dir.master_key();
    let keys = read_master_keys(&path)?;
    let (id, key) = keys
        .iter()
        .max_by_key(|(id, _)| *id)
        .context("no master key")?;
    let (id, print) = (*id, fingerprint(*id, key));
    let store = dir.open_store(load_vault(&path)?)?;
    if store.sealing_master_key()?.is_none() {
        bail!("no master key is staged: run `latchkey rotate-master-key` first");
    }
    let lacking: Vec<String> = running(&store, now())?
        .into_iter()
        .filter(|n| !n.master_keys.contains(&(id, print.clone())))
        .map(|n| n.node)
        .collect();
    if !lacking.is_empty() {
        bail!(
            "not every running node holds master key {id} yet: {} (copy this node's master.key there; nodes re-read it within seconds)",
            lacking.join(", ")
        );
    }
    store.set_sealing_master_key(id)?;
    store.set_vault(load_vault(&path)?)?;
    progress(&format!(
        "the nodes now seal with master key {id}; waiting for each to take it up"
    ));
    let deadline = std::time::Instant::now() + wait;
    loop {
        let behind: Vec<String> = running(&store, now())?
            .into_iter()
            .filter(|n| n.sealing_key != id)
            .map(|n| n.node)
            .collect();
        if behind.is_empty() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "these nodes do not seal with master key {id} yet: {} (not ready? see their /readyz); run --commit again once they do",
                behind.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let count = store.rewrap_all()?;
    Ok((id, count))
}

/// Step 3: drops every key but the one the nodes seal with from this
/// node's `master.key`, once every running node seals with it. Returns
/// the ids dropped.
pub fn retire(dir: &DataDir, now: i64) -> Result<Vec<u32>> {
    let path = dir.master_key();
    let mut keys = read_master_keys(&path)?;
    let store = dir.open_store(load_vault(&path)?)?;
    let Some(sealing) = store.sealing_master_key()? else {
        bail!("no coordinated rotation has named a master key: nothing to retire");
    };
    if let Some(n) = running(&store, now)?
        .into_iter()
        .find(|n| n.sealing_key != sealing)
    {
        bail!(
            "node {} does not seal with master key {sealing} yet: run `latchkey rotate-master-key --commit` first",
            n.node
        );
    }
    // Anything a node sealed with an older key since the commit.
    store.rewrap_all()?;
    let dropped: Vec<u32> = keys
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| *id != sealing)
        .collect();
    keys.retain(|(id, _)| *id == sealing);
    write_master_keys(&path, &keys)?;
    Ok(dropped)
}
