//! The SQL firewall: per (database, principal) profiles of the statement
//! shapes (fingerprints) a principal runs, learned during a window and
//! then enforced (`alert`: findings; `block`: refusals), plus flags raised
//! in every mode (tautologies, time probes, comments inside a statement,
//! stacked statements and `UNION` from a principal that never sent any).
//!
//! The store is read only off the relay's path: [`FirewallBooks`] holds
//! each database's profiles, re-read by `reload_databases` when the
//! database's firewall revision changed. A session copies nothing but an
//! `Arc` of its principal's known shapes at start; shapes it learns go to
//! a [`Learner`] thread over a bounded channel and are written in
//! batches. Under overload (the channel full) a learned shape is dropped:
//! the next statement of that shape tries again, so learning slows down
//! but nothing waits on the store.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use latchkey_audit::{FirewallState, FirewallVerdict};
use latchkey_sqlaccess::Signals;
use latchkey_store::{
    Fingerprint, FirewallConfig, FirewallMode, FirewallProfile, LearnedShape, ProfileMode, Store,
    shape_text,
};

/// Learned shapes waiting to be written, at most.
const LEARN_QUEUE: usize = 4096;
/// Learned shapes written in one transaction, at most.
const LEARN_BATCH: usize = 512;
/// How long the learner lets shapes gather before a write.
const LEARN_PAUSE: Duration = Duration::from_millis(200);

/// What a refused statement's client is told.
pub const UNSEEN_MESSAGE: &str =
    "statement refused by the SQL firewall: shape not seen while learning";

/// One principal's profile as a session starts with it.
#[derive(Debug, Default)]
pub struct ProfileSnapshot {
    pub mode: ProfileMode,
    pub learning_until: Option<i64>,
    pub stacks: bool,
    pub unions: bool,
    pub known: HashSet<u64>,
}

impl From<&FirewallProfile> for ProfileSnapshot {
    fn from(p: &FirewallProfile) -> Self {
        Self {
            mode: p.mode,
            learning_until: p.learning_until,
            stacks: p.stacks,
            unions: p.unions,
            known: p.shapes.iter().map(|s| s.fingerprint.0).collect(),
        }
    }
}

/// One database's firewall: its settings and every profile.
#[derive(Debug, Default)]
pub struct FirewallBook {
    pub config: FirewallConfig,
    pub profiles: HashMap<String, Arc<ProfileSnapshot>>,
}

impl FirewallBook {
    pub fn read(store: &Store, config: FirewallConfig) -> latchkey_store::Result<Self> {
        let profiles = store
            .firewall_profiles(&config.database, None)?
            .iter()
            .map(|p| (p.principal.clone(), Arc::new(ProfileSnapshot::from(p))))
            .collect();
        Ok(Self { config, profiles })
    }
}

/// The firewall books of the databases that have it on.
pub type FirewallBooks = HashMap<String, Arc<FirewallBook>>;

/// The gateway's current books, which live sessions follow: a reload that
/// replaces a book bumps the generation, and a session looks at the shelf
/// only when it moved (one atomic load per statement otherwise).
#[derive(Default)]
pub struct FirewallShelf {
    books: std::sync::RwLock<FirewallBooks>,
    generation: AtomicU64,
}

impl FirewallShelf {
    pub fn books(&self) -> FirewallBooks {
        self.books.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn book(&self, database: &str) -> Option<Arc<FirewallBook>> {
        self.books
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(database)
            .cloned()
    }

    /// Puts `books` in place; live sessions see a replaced book at their
    /// next statement.
    pub fn replace(&self, books: FirewallBooks) {
        let mut current = self.books.write().unwrap_or_else(|p| p.into_inner());
        let changed = books.len() != current.len()
            || books
                .iter()
                .any(|(db, book)| current.get(db).is_none_or(|old| !Arc::ptr_eq(old, book)));
        *current = books;
        if changed {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Re-reads the books of `databases` whose revision changed; drops those
/// turned off.
pub fn reload_books(
    store: &Store,
    databases: &[&str],
    old: &FirewallBooks,
) -> latchkey_store::Result<FirewallBooks> {
    let mut books = HashMap::new();
    for config in store.firewall_configs()? {
        if config.mode == FirewallMode::Off || !databases.contains(&config.database.as_str()) {
            continue;
        }
        let book = match old.get(&config.database) {
            Some(book) if book.config == config => book.clone(),
            _ => Arc::new(FirewallBook::read(store, config)?),
        };
        books.insert(book.config.database.clone(), book);
    }
    Ok(books)
}

/// Writes learned shapes on a thread of its own, in batches.
pub struct Learner {
    tx: OnceLock<SyncSender<LearnedShape>>,
    dropped: Arc<AtomicU64>,
}

impl Default for Learner {
    fn default() -> Self {
        Self::new()
    }
}

impl Learner {
    pub fn new() -> Self {
        Self {
            tx: OnceLock::new(),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The channel to the writer, started at first use. `write` stores a
    /// batch (the store, in the gateway).
    pub fn sender<W>(&self, write: W) -> SyncSender<LearnedShape>
    where
        W: Fn(&[LearnedShape]) -> latchkey_store::Result<usize> + Send + 'static,
    {
        self.tx
            .get_or_init(|| {
                let (tx, rx) = std::sync::mpsc::sync_channel(LEARN_QUEUE);
                let spawned = std::thread::Builder::new()
                    .name("latchkey-firewall-learner".into())
                    .spawn(move || learn(&rx, &write));
                if let Err(e) = spawned {
                    // The receiver went with the closure: every send
                    // fails and learning stops, but sessions go on.
                    tracing::warn!(error = %e, "the SQL firewall's learner could not start");
                }
                tx
            })
            .clone()
    }

    /// Learned shapes dropped because the queue was full.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

fn learn<W>(rx: &Receiver<LearnedShape>, write: &W)
where
    W: Fn(&[LearnedShape]) -> latchkey_store::Result<usize>,
{
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        std::thread::sleep(LEARN_PAUSE);
        while batch.len() < LEARN_BATCH {
            match rx.try_recv() {
                Ok(shape) => batch.push(shape),
                Err(_) => break,
            }
        }
        if let Err(e) = write(&batch) {
            tracing::warn!(error = %e, shapes = batch.len(), "the SQL firewall could not store learned shapes");
        }
        batch.clear();
    }
}

/// One session's firewall.
pub struct SessionFirewall {
    database: String,
    principal: String,
    /// The database's mode, which a principal's learning gives way to.
    after_learning: FirewallState,
    mode: ProfileMode,
    learning_until: Option<i64>,
    stacks: bool,
    unions: bool,
    /// The profile was not in the book: its first statement creates it.
    new_profile: bool,
    known: Arc<ProfileSnapshot>,
    /// Shapes this session learned.
    learned: HashSet<u64>,
    learner: SyncSender<LearnedShape>,
    dropped: Arc<AtomicU64>,
    /// The revision of the book the session took its settings from, and
    /// where newer books appear.
    revision: i64,
    shelf: Option<(Arc<FirewallShelf>, u64)>,
}

impl SessionFirewall {
    /// `None` when the database's firewall is off.
    pub fn new(
        book: &FirewallBook,
        principal: String,
        now: i64,
        learner: SyncSender<LearnedShape>,
        dropped: Arc<AtomicU64>,
    ) -> Option<Self> {
        let after_learning = match book.config.mode {
            FirewallMode::Off => return None,
            FirewallMode::Alert => FirewallState::Alert,
            FirewallMode::Block => FirewallState::Block,
        };
        let (known, new_profile) = match book.profiles.get(&principal) {
            Some(p) => (p.clone(), false),
            None => (
                Arc::new(ProfileSnapshot {
                    learning_until: Some(now.saturating_add(
                        i64::try_from(book.config.learning_secs).unwrap_or(i64::MAX),
                    )),
                    ..ProfileSnapshot::default()
                }),
                true,
            ),
        };
        Some(Self {
            database: book.config.database.clone(),
            principal,
            after_learning,
            mode: known.mode,
            learning_until: known.learning_until,
            stacks: known.stacks,
            unions: known.unions,
            new_profile,
            known,
            learned: HashSet::new(),
            learner,
            dropped,
            revision: book.config.revision,
            shelf: None,
        })
    }

    /// Follows `shelf`: a change to the database's firewall or to this
    /// principal's profile (a mode, an approved shape) applies from the
    /// session's next statement, not only from its next login.
    #[must_use]
    pub fn following(mut self, shelf: Arc<FirewallShelf>) -> Self {
        let generation = shelf.generation();
        self.shelf = Some((shelf, generation));
        self
    }

    /// Takes up a newer book of this database, if the shelf has one. A
    /// firewall turned off meanwhile leaves the session as it was: only
    /// tightening must not wait for the next login.
    fn catch_up(&mut self) {
        let Some((shelf, seen)) = &mut self.shelf else {
            return;
        };
        let now = shelf.generation();
        if now == *seen {
            return;
        }
        *seen = now;
        let Some(book) = shelf.book(&self.database) else {
            return;
        };
        if book.config.revision == self.revision {
            return;
        }
        self.after_learning = match book.config.mode {
            FirewallMode::Off => self.after_learning,
            FirewallMode::Alert => FirewallState::Alert,
            FirewallMode::Block => FirewallState::Block,
        };
        if let Some(profile) = book.profiles.get(&self.principal) {
            self.mode = profile.mode;
            self.learning_until = profile.learning_until;
            self.stacks |= profile.stacks;
            self.unions |= profile.unions;
            self.known = profile.clone();
            self.new_profile = false;
        }
        self.revision = book.config.revision;
    }

    /// The revision of the book the session follows, after taking up a
    /// newer one if the shelf has it: a prepared statement judged under
    /// another revision is judged again when it runs.
    pub fn current_revision(&mut self) -> i64 {
        self.catch_up();
        self.revision
    }

    /// Where the profile stands at `now`.
    pub fn state(&self, now: i64) -> FirewallState {
        match self.mode {
            ProfileMode::Learn if self.learning_until.is_none_or(|t| now < t) => {
                FirewallState::Learn
            }
            ProfileMode::Learn => self.after_learning,
            ProfileMode::Alert => FirewallState::Alert,
            ProfileMode::Block => FirewallState::Block,
        }
    }

    fn knows(&self, fingerprint: u64) -> bool {
        self.known.known.contains(&fingerprint) || self.learned.contains(&fingerprint)
    }

    /// The verdict on a statement of shape `fingerprint` (normalised as
    /// `text`) with the classifier's `signals`; learns the shape while
    /// learning. The verdict says whether `block` refuses it.
    pub fn judge(
        &mut self,
        fingerprint: u64,
        text: &str,
        signals: &Signals,
        now: i64,
    ) -> FirewallVerdict {
        self.catch_up();
        let state = self.state(now);
        let known = self.knows(fingerprint);
        let learning = state == FirewallState::Learn;
        let mut verdict = FirewallVerdict {
            mode: state,
            unseen: !learning && !known,
            tautology: signals.tautology,
            time_probe: signals.time_probe,
            comment: signals.comment,
            stacked: !learning && !known && signals.stacked && !self.stacks,
            union: !learning && !known && signals.union && !self.unions,
            refused: false,
        };
        verdict.refused = state == FirewallState::Block
            && (verdict.unseen || verdict.tautology || verdict.time_probe);
        let probe = signals.tautology || signals.time_probe;
        if self.new_profile {
            // The profile, even when nothing is learned (a window of zero).
            self.new_profile = false;
            self.send(LearnedShape {
                database: self.database.clone(),
                principal: self.principal.clone(),
                fingerprint: None,
                text: String::new(),
                stacked: false,
                union: false,
                at: now,
                learning_until: self.learning_until,
            });
        }
        // Probes are never learned: after the window they are unseen.
        if learning && !known && !probe {
            self.learned.insert(fingerprint);
            self.stacks |= signals.stacked;
            self.unions |= signals.union;
            self.send(LearnedShape {
                database: self.database.clone(),
                principal: self.principal.clone(),
                fingerprint: Some(Fingerprint(fingerprint)),
                text: shape_text(text).to_owned(),
                stacked: signals.stacked,
                union: signals.union,
                at: now,
                learning_until: self.learning_until,
            });
        }
        verdict
    }

    fn send(&mut self, shape: LearnedShape) {
        match self.learner.try_send(shape) {
            Ok(()) => {}
            Err(TrySendError::Full(shape)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                // Learn it again at its next sight.
                if let Some(fp) = shape.fingerprint {
                    self.learned.remove(&fp.0);
                } else {
                    self.new_profile = true;
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The message a refused statement's client gets.
    pub fn refusal(verdict: &FirewallVerdict) -> &'static str {
        if verdict.unseen {
            UNSEEN_MESSAGE
        } else if verdict.tautology {
            "statement refused by the SQL firewall: a tautology in a condition"
        } else {
            "statement refused by the SQL firewall: a time-based probe"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(
        mode: FirewallMode,
        learning_secs: u64,
        profiles: &[(&str, ProfileSnapshot)],
    ) -> FirewallBook {
        FirewallBook {
            config: FirewallConfig {
                database: "orders".into(),
                mode,
                learning_secs,
                revision: 1,
            },
            profiles: profiles
                .iter()
                .map(|(p, s)| {
                    (
                        (*p).to_owned(),
                        Arc::new(ProfileSnapshot {
                            mode: s.mode,
                            learning_until: s.learning_until,
                            stacks: s.stacks,
                            unions: s.unions,
                            known: s.known.clone(),
                        }),
                    )
                })
                .collect(),
        }
    }

    fn session(
        book: &FirewallBook,
        capacity: usize,
    ) -> (SessionFirewall, Receiver<LearnedShape>, Arc<AtomicU64>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let fw = SessionFirewall::new(
            book,
            "arn:aws:iam::1:user/app".into(),
            100,
            tx,
            dropped.clone(),
        )
        .unwrap();
        (fw, rx, dropped)
    }

    const PLAIN: Signals = Signals {
        stacked: false,
        union: false,
        tautology: false,
        comment: false,
        time_probe: false,
    };

    #[test]
    fn off_is_no_firewall() {
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        assert!(
            SessionFirewall::new(
                &book(FirewallMode::Off, 0, &[]),
                "p".into(),
                0,
                tx,
                Arc::default()
            )
            .is_none()
        );
    }

    #[test]
    fn a_live_session_follows_a_tightened_firewall_and_profile() {
        let principal = "arn:aws:iam::1:user/app";
        let known = |mode| ProfileSnapshot {
            mode,
            learning_until: Some(0),
            known: HashSet::from([1]),
            ..ProfileSnapshot::default()
        };
        let alert = Arc::new(book(
            FirewallMode::Alert,
            0,
            &[(principal, known(ProfileMode::Learn))],
        ));
        let shelf = Arc::new(FirewallShelf::default());
        shelf.replace(HashMap::from([("orders".to_owned(), alert.clone())]));
        let (fw, _rx, _) = session(&alert, 16);
        let mut fw = fw.following(shelf.clone());
        let v = fw.judge(2, "DELETE FROM t", &PLAIN, 200);
        assert_eq!(
            (v.mode, v.unseen, v.refused),
            (FirewallState::Alert, true, false)
        );

        // The database switched to block: the same session's next unseen
        // statement is refused, a known one still passes.
        let mut block = book(
            FirewallMode::Block,
            0,
            &[(principal, known(ProfileMode::Learn))],
        );
        block.config.revision = 2;
        shelf.replace(HashMap::from([("orders".to_owned(), Arc::new(block))]));
        let v = fw.judge(3, "DROP TABLE t", &PLAIN, 201);
        assert_eq!((v.mode, v.refused), (FirewallState::Block, true));
        assert!(!fw.judge(1, "SELECT ? FROM t", &PLAIN, 202).refused);

        // Back to alert, but this principal's profile set to block.
        let mut profile = book(
            FirewallMode::Alert,
            0,
            &[(principal, known(ProfileMode::Block))],
        );
        profile.config.revision = 3;
        shelf.replace(HashMap::from([("orders".to_owned(), Arc::new(profile))]));
        assert!(fw.judge(4, "TRUNCATE t", &PLAIN, 203).refused);

        // Turned off: the live session keeps what it had.
        shelf.replace(HashMap::new());
        assert!(fw.judge(5, "TRUNCATE u", &PLAIN, 204).refused);

        // Without following, a session keeps its login's settings.
        let (mut unfollowed, _rx, _) = session(&alert, 16);
        let mut block = book(
            FirewallMode::Block,
            0,
            &[(principal, known(ProfileMode::Learn))],
        );
        block.config.revision = 4;
        shelf.replace(HashMap::from([("orders".to_owned(), Arc::new(block))]));
        assert!(!unfollowed.judge(2, "DELETE FROM t", &PLAIN, 205).refused);
    }

    #[test]
    fn a_new_principal_learns_then_alerts_on_unseen_shapes() {
        let b = book(FirewallMode::Alert, 60, &[]);
        let (mut fw, rx, _) = session(&b, 16);
        let v = fw.judge(1, "SELECT ? FROM t", &PLAIN, 100);
        assert_eq!(
            (v.mode, v.unseen, v.refused),
            (FirewallState::Learn, false, false)
        );
        // The profile, then the shape; a repeat is not sent again.
        fw.judge(1, "SELECT ? FROM t", &PLAIN, 101);
        let sent: Vec<LearnedShape> = rx.try_iter().collect();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].fingerprint, None);
        assert_eq!(sent[0].learning_until, Some(160));
        assert_eq!(sent[1].fingerprint, Some(Fingerprint(1)));
        assert_eq!(sent[1].text, "SELECT ? FROM t");
        // A tautology during learning is flagged and not learned.
        let taut = Signals {
            tautology: true,
            ..PLAIN
        };
        let v = fw.judge(2, "SELECT ? FROM t WHERE id = ? OR ? = ?", &taut, 110);
        assert!(v.tautology && !v.unseen && !v.refused);
        assert_eq!(rx.try_iter().count(), 0);
        // After the window: known passes, unseen alerts.
        let v = fw.judge(1, "SELECT ? FROM t", &PLAIN, 160);
        assert_eq!((v.mode, v.unseen), (FirewallState::Alert, false));
        let v = fw.judge(2, "SELECT ? FROM t WHERE id = ? OR ? = ?", &taut, 161);
        assert!(v.unseen && v.tautology && !v.refused);
        assert_eq!(v.signals().collect::<Vec<_>>(), ["tautology"]);
    }

    #[test]
    fn block_refuses_unseen_shapes_and_probes() {
        let known = ProfileSnapshot {
            mode: ProfileMode::Block,
            known: [1, 3].into_iter().collect(),
            ..ProfileSnapshot::default()
        };
        let b = book(
            FirewallMode::Alert,
            60,
            &[("arn:aws:iam::1:user/app", known)],
        );
        let (mut fw, rx, _) = session(&b, 16);
        assert!(!fw.judge(1, "q", &PLAIN, 100).refused);
        let v = fw.judge(2, "q", &PLAIN, 100);
        assert!(v.unseen && v.refused);
        assert_eq!(SessionFirewall::refusal(&v), UNSEEN_MESSAGE);
        // A known shape with a time probe is refused all the same.
        let probe = Signals {
            time_probe: true,
            ..PLAIN
        };
        let v = fw.judge(3, "q", &probe, 100);
        assert!(!v.unseen && v.refused);
        // Stacking and UNION are flagged on unseen shapes of a principal
        // that never had them.
        let both = Signals {
            stacked: true,
            union: true,
            ..PLAIN
        };
        let v = fw.judge(4, "q", &both, 100);
        assert!(v.stacked && v.union);
        assert!(!fw.judge(1, "q", &both, 100).stacked);
        // Nothing is learned outside learning, and the profile existed.
        assert_eq!(rx.try_iter().count(), 0);
    }

    #[test]
    fn learning_without_end_and_a_full_queue() {
        let learning = ProfileSnapshot {
            mode: ProfileMode::Learn,
            learning_until: None,
            ..ProfileSnapshot::default()
        };
        let b = book(
            FirewallMode::Block,
            0,
            &[("arn:aws:iam::1:user/app", learning)],
        );
        let (mut fw, rx, dropped) = session(&b, 1);
        assert_eq!(fw.state(i64::MAX), FirewallState::Learn);
        fw.judge(1, "a", &PLAIN, 100);
        fw.judge(2, "b", &PLAIN, 100);
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(rx.try_iter().count(), 1);
        // The dropped shape is sent at its next sight.
        fw.judge(2, "b", &PLAIN, 101);
        assert_eq!(
            rx.try_iter().map(|s| s.fingerprint).collect::<Vec<_>>(),
            [Some(Fingerprint(2))]
        );
        // A learner writes batches.
        let learner = Learner::new();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let tx = learner.sender(move |batch: &[LearnedShape]| {
            let _ = done_tx.send(batch.len());
            Ok(batch.len())
        });
        tx.send(LearnedShape::default()).unwrap();
        tx.send(LearnedShape::default()).unwrap();
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)).unwrap(), 2);
    }
}
