//! The nodes of a shared store as this node has seen them, and how far
//! each one's trail reached at most, kept in the data directory
//! (`peers.json`, private) where a user of the store cannot reach it. `audit
//! verify` holds the store to it: a node erased from every table of the
//! store, or whose reported reach was lowered to hide a deleted tail, is
//! still a problem, not a silence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("peers.json")
}

/// Node id to the farthest sequence its trail was reported sealed at.
pub type Peers = BTreeMap<String, u64>;

/// What was recorded so far (none: an empty record).
pub fn load(data_dir: &Path) -> Result<Peers> {
    let file = path(data_dir);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a record of peers", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Peers::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// Adds what the store reports now: new nodes, and reaches beyond the
/// recorded ones (a reach only grows). Writes only when something
/// changed, atomically, readable by this user only. Returns the record.
pub fn remember(
    data_dir: &Path,
    reported: impl IntoIterator<Item = (String, u64)>,
) -> Result<Peers> {
    let mut peers = load(data_dir)?;
    let mut changed = false;
    for (node, sealed) in reported {
        let reach = peers.entry(node).or_insert_with(|| {
            changed = true;
            0
        });
        if sealed > *reach {
            *reach = sealed;
            changed = true;
        }
    }
    if !changed {
        return Ok(peers);
    }
    let file = path(data_dir);
    let tmp = file.with_extension("json.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        out.write_all(&serde_json::to_vec_pretty(&peers)?)?;
        out.sync_all()?;
    }
    std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))?;
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_only_grow_and_nodes_are_never_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        remember(dir.path(), [("a".to_owned(), 5), ("b".to_owned(), 2)]).unwrap();
        remember(dir.path(), [("a".to_owned(), 3)]).unwrap();
        let peers = load(dir.path()).unwrap();
        assert_eq!(peers.get("a"), Some(&5));
        assert_eq!(peers.get("b"), Some(&2));
        std::fs::write(path(dir.path()), b"not json").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
