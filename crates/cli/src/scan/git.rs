//! A git repository's history and staged changes, read with libgit2 (the
//! `git2` crate, vendored: no git binary, one process, each object read
//! once from the pack): every blob reachable from every ref, each scanned
//! once and reported at the first commit (oldest first) that brought it,
//! with that commit's author date and the path it had there. Staged
//! changes are read the same way, and only the lines they add are
//! reported: a secret already committed is the history scan's to report,
//! and must not refuse every later commit to its file.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use git2::{Delta, DiffOptions, Oid, Repository, Sort};
use latchkey_scan::{Finding, Place, Scanner};

use super::{Totals, scan_bytes};

/// A blob to scan and where it first appeared.
struct Blob {
    oid: Oid,
    place: Place,
    /// The lines (from 1, ascending) whose findings count; `None` for all.
    lines: Option<Vec<usize>>,
}

/// The new blobs of a diff, not seen before.
fn new_blobs(
    diff: &git2::Diff<'_>,
    commit: Option<&(String, String)>,
    seen: &mut HashSet<Oid>,
    out: &mut Vec<Blob>,
) {
    for delta in diff.deltas() {
        if !matches!(
            delta.status(),
            Delta::Added | Delta::Modified | Delta::Renamed | Delta::Copied | Delta::Typechange
        ) {
            continue;
        }
        let file = delta.new_file();
        let oid = file.id();
        if oid.is_zero() || !seen.insert(oid) {
            continue;
        }
        let path = file
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Blob {
            oid,
            place: Place {
                path,
                commit: commit.cloned(),
            },
            lines: None,
        });
    }
}

/// RFC 3339 of a commit's author time.
fn author_date(commit: &git2::Commit<'_>) -> String {
    let seconds = commit.author().when().seconds();
    u64::try_from(seconds)
        .ok()
        .map(|s| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
            )
            .to_string()
        })
        .unwrap_or_default()
}

/// Every blob reachable from every ref, once, at the commit that brought
/// it first.
fn history_blobs(repo: &Repository) -> Result<Vec<Blob>> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    for reference in repo.references()? {
        let reference = reference?;
        if let Ok(commit) = reference.peel_to_commit() {
            walk.push(commit.id())?;
        } else if let Ok(tree) = reference.peel_to_tree() {
            // A ref straight at a tree or a blob (a tag can point at one)
            // holds what no commit may.
            let empty = repo.diff_tree_to_tree(None, Some(&tree), None)?;
            new_blobs(&empty, None, &mut seen, &mut blobs);
        } else if let Ok(blob) = reference.peel_to_blob()
            && seen.insert(blob.id())
        {
            blobs.push(Blob {
                oid: blob.id(),
                place: Place {
                    path: reference.name().unwrap_or("(a ref)").to_owned(),
                    commit: None,
                },
                lines: None,
            });
        }
    }
    let mut options = DiffOptions::new();
    options.skip_binary_check(true);
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let tree = commit.tree()?;
        let parent = match commit.parent(0) {
            Ok(p) => Some(p.tree()?),
            Err(_) => None,
        };
        let diff = repo.diff_tree_to_tree(parent.as_ref(), Some(&tree), Some(&mut options))?;
        let at = (commit.id().to_string(), author_date(&commit));
        new_blobs(&diff, Some(&at), &mut seen, &mut blobs);
        // A merge's other parents' trees brought their blobs already.
    }
    Ok(blobs)
}

/// What `git commit` would record: the index against HEAD (everything
/// staged, for a first commit). The index is the one git names in
/// `GIT_INDEX_FILE` when it runs the hook with its own (`git commit -a`
/// and `git commit PATH` stage into a temporary index), else the
/// repository's.
fn staged_blobs(repo: &Repository) -> Result<Vec<Blob>> {
    let head = match repo.head() {
        Ok(head) => Some(head.peel_to_tree()?),
        Err(_) => None,
    };
    let mut options = DiffOptions::new();
    options.context_lines(0);
    let index = match std::env::var_os("GIT_INDEX_FILE") {
        Some(path) => {
            // Relative to where git runs the hook: the work tree's root.
            let path = std::path::PathBuf::from(path);
            let path = if path.is_absolute() {
                path
            } else {
                std::env::current_dir()?.join(path)
            };
            git2::Index::open(&path)
                .with_context(|| format!("reading the index git named, {}", path.display()))?
        }
        None => repo.index()?,
    };
    let diff = repo.diff_tree_to_index(head.as_ref(), Some(&index), Some(&mut options))?;
    let mut blobs = Vec::new();
    new_blobs(&diff, None, &mut HashSet::new(), &mut blobs);
    // Each staged file's added lines: a blob is one delta's new file.
    let mut added: std::collections::HashMap<Oid, Vec<usize>> = Default::default();
    for index in 0..diff.deltas().len() {
        let Some(delta) = diff.get_delta(index) else {
            continue;
        };
        let oid = delta.new_file().id();
        if delta.status() != Delta::Modified {
            continue; // added, renamed, copied: every line is new here
        }
        let Ok(Some(patch)) = git2::Patch::from_diff(&diff, index) else {
            continue; // binary: all of it counts
        };
        let lines = added.entry(oid).or_default();
        for hunk in 0..patch.num_hunks() {
            for line in 0..patch.num_lines_in_hunk(hunk).unwrap_or(0) {
                if let Ok(line) = patch.line_in_hunk(hunk, line)
                    && line.origin() == '+'
                    && let Some(number) = line.new_lineno()
                {
                    lines.push(number as usize);
                }
            }
        }
    }
    for blob in &mut blobs {
        if let Some(mut lines) = added.remove(&blob.oid) {
            lines.sort_unstable();
            blob.lines = Some(lines);
        }
    }
    Ok(blobs)
}

/// Scans `blobs` on every core, each thread with its own handle on the
/// repository.
fn scan_blobs(
    path: &Path,
    blobs: Vec<Blob>,
    scanner: &Scanner,
    include_binary: bool,
    max_size: Option<u64>,
    totals: &Totals,
) -> Result<Vec<(Finding, Place)>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let found = Mutex::new(Vec::new());
    let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let repo = match Repository::open(path) {
                    Ok(r) => r,
                    Err(e) => {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.into());
                        return;
                    }
                };
                let Ok(odb) = repo.odb() else { return };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(blob) = blobs.get(i) else { break };
                    let Ok(object) = odb.read(blob.oid) else {
                        totals.unreadable.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if max_size.is_some_and(|max| object.len() as u64 > max) {
                        totals.skipped_large.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let mut hits =
                        scan_bytes(scanner, object.data(), &blob.place, include_binary, totals);
                    // A finding counts when a line it spans was added (a
                    // private key's body pasted between its old BEGIN and
                    // END lines counts too).
                    if let Some(lines) = &blob.lines {
                        hits.retain(|(f, _)| touches_added(object.data(), f, lines));
                    }
                    if !hits.is_empty() {
                        found.lock().unwrap_or_else(|p| p.into_inner()).extend(hits);
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e.context(format!("opening {}", path.display())));
    }
    Ok(found.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Whether finding `f` in `data` touches one of the added `lines`: a
/// line it spans (a private key's body pasted between its old BEGIN and
/// END lines), or the line of its key id (an id filled in beside a
/// secret committed before).
fn touches_added(data: &[u8], f: &Finding, lines: &[usize]) -> bool {
    let line_of = |offset: usize| {
        1 + data[..offset.min(data.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    };
    let added_within = |first: usize, last: usize| {
        let i = lines.partition_point(|&l| l < first);
        lines.get(i).is_some_and(|&l| l <= last)
    };
    if added_within(f.line, line_of(f.end)) {
        return true;
    }
    // The id nearest the secret, where the scanner paired it.
    f.holds_key_secret()
        && f.key_id.as_deref().is_some_and(|id| {
            let from = f.start.saturating_sub(4096);
            let to = (f.end + 4096).min(data.len());
            let window = &data[from..to];
            let nearest = window
                .windows(id.len())
                .enumerate()
                .filter(|(_, w)| *w == id.as_bytes())
                .map(|(i, _)| from + i)
                .min_by_key(|&at| at.abs_diff(f.start));
            nearest.is_some_and(|at| {
                let line = line_of(at);
                added_within(line, line)
            })
        })
}

/// Which part of a repository to read.
pub enum Part {
    History,
    Staged,
}

/// The findings in `part` of the repository at (or above) `path`, but
/// for the paths `skip` excludes.
pub fn scan_repository(
    path: &Path,
    part: Part,
    scanner: &Scanner,
    include_binary: bool,
    max_size: Option<u64>,
    skip: &ignore::overrides::Override,
    totals: &Totals,
) -> Result<Vec<(Finding, Place)>> {
    let repo = Repository::discover(path)
        .with_context(|| format!("{} is not in a git repository", path.display()))?;
    let blobs = match part {
        Part::History => history_blobs(&repo),
        Part::Staged => staged_blobs(&repo),
    }
    .with_context(|| format!("reading the repository at {}", path.display()))?;
    let blobs: Vec<Blob> = blobs
        .into_iter()
        .filter(|b| !skip.matched(&b.place.path, false).is_ignore())
        .collect();
    let root = repo.path().to_owned();
    drop(repo);
    scan_blobs(&root, blobs, scanner, include_binary, max_size, totals)
}
