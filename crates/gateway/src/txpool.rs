//! Transaction pooling: many clients share a few server connections, each
//! client holding one only for a transaction (or a statement outside one).
//!
//! One [`TxPool`] per (database, user, database name, startup parameters,
//! credentials epoch), exactly the session pool's key, so a server
//! connection never crosses database users. Its idle connections and its
//! queue of waiting clients are kept per session thread (a shard), so a
//! client usually gets a connection whose socket already lives on its
//! thread, under a lock no other thread takes: taking and giving back cost
//! one uncontended lock each. Only when a thread has waiting clients and
//! another has idle connections does a connection move between threads
//! (re-registered with the receiving thread's reactor, as the session
//! pool does).
//!
//! Fairness and bounds: at most `size` connections are open (plus
//! `reserve` for clients that waited `reserve_after`); clients wait in
//! first-come order per thread, and a client that waits `queue_timeout`
//! is told so ([`AcquireError::QueueTimeout`]). A connection handed back
//! goes straight to the first waiting client.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::pool::Pooled;

/// A transaction pool's settings (from the database's registration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxPoolConfig {
    pub size: usize,
    pub reserve: usize,
    pub reserve_after: Duration,
    pub queue_timeout: Duration,
    pub idle_timeout: Duration,
    pub lifetime: Duration,
    /// How long a client may keep a lent connection waiting inside a
    /// transaction; `None`: as long as it likes.
    pub idle_transaction_timeout: Option<Duration>,
}

impl TxPoolConfig {
    pub fn of(p: &latchkey_store::Pooling) -> Self {
        Self {
            size: p.size as usize,
            reserve: p.reserve as usize,
            reserve_after: p.reserve_after(),
            queue_timeout: p.queue_timeout(),
            idle_timeout: p.idle_timeout(),
            lifetime: p.lifetime(),
            idle_transaction_timeout: p.idle_transaction_timeout(),
        }
    }
}

/// Why a client got no server connection.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError<E> {
    /// It waited the whole queue timeout.
    #[error("no server connection became free within {0:?}")]
    QueueTimeout(Duration),
    /// Opening a new server connection failed.
    #[error("{0}")]
    Connect(E),
}

struct Idle<C> {
    conn: C,
    since: Instant,
    /// The session thread whose reactor the socket is registered with.
    thread: usize,
}

/// What a waiting client is handed. Dropped unclaimed (the client went
/// away meanwhile), a lease closes its connection and room is given back,
/// so nothing handed is ever lost from the pool's count.
enum Handed<C: Pooled> {
    Nothing,
    /// A connection, registered with that thread's reactor. Boxed: a
    /// waiter lives as long as its client, and is handed one only when
    /// the pool is exhausted.
    Connection(Box<Lease<C>>, usize),
    /// Room to open a connection of its own.
    Room(Room<C>),
}

/// One client's place in a queue, reused for each of its waits, so that
/// waiting allocates nothing.
pub struct Waiter<C: Pooled> {
    state: Mutex<(Handed<C>, Option<Waker>)>,
}

impl<C: Pooled> Default for Waiter<C> {
    fn default() -> Self {
        Self {
            state: Mutex::new((Handed::Nothing, None)),
        }
    }
}

impl<C: Pooled> Waiter<C> {
    fn lock(&self) -> MutexGuard<'_, (Handed<C>, Option<Waker>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hand(&self, handed: Handed<C>) {
        let waker = {
            let mut state = self.lock();
            state.0 = handed;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn take(&self) -> Handed<C> {
        std::mem::replace(&mut self.lock().0, Handed::Nothing)
    }

    /// Waits until something is handed.
    async fn handed(&self) -> Handed<C> {
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            match std::mem::replace(&mut state.0, Handed::Nothing) {
                Handed::Nothing => {
                    state.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
                handed => Poll::Ready(handed),
            }
        })
        .await
    }
}

struct Shard<C: Pooled> {
    /// Most recently used last.
    idle: Vec<Idle<C>>,
    waiters: VecDeque<Arc<Waiter<C>>>,
}

impl<C: Pooled> Default for Shard<C> {
    fn default() -> Self {
        Self {
            idle: Vec::new(),
            waiters: VecDeque::new(),
        }
    }
}

/// The running figures of one pool, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxPoolStats {
    /// Server connections open (idle, in use, or being opened).
    pub open: usize,
    pub idle: usize,
    /// Clients waiting for a connection.
    pub waiting: usize,
}

/// One transaction pool.
pub struct TxPool<C: Pooled> {
    config: TxPoolConfig,
    open: AtomicUsize,
    waiting: AtomicUsize,
    /// Replaced by a pool with other settings: connections handed back
    /// are closed.
    retired: AtomicBool,
    shards: Box<[Mutex<Shard<C>>]>,
    /// Clients that waited the whole queue timeout.
    pub timeouts: AtomicU64,
    /// Sessions pinned to a connection of this pool now.
    pinned: AtomicUsize,
}

/// A server connection lent to one client. Dropped without
/// [`Lease::give_back`], the connection is closed (a client gone mid-
/// transaction) and its room goes to the next waiting client.
pub struct Lease<C: Pooled> {
    conn: Option<C>,
    pool: Arc<TxPool<C>>,
}

impl<C: Pooled> Lease<C> {
    pub fn conn(&mut self) -> &mut C {
        // Present until given back or dropped, which consume the lease.
        self.conn.as_mut().expect("a lease holds its connection")
    }

    pub fn get(&self) -> &C {
        self.conn.as_ref().expect("a lease holds its connection")
    }

    /// Hands the connection back for the next client, from session thread
    /// `thread`; `reusable` false closes it.
    pub fn give_back(mut self, thread: usize, reusable: bool) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn, thread, reusable);
        }
    }
}

impl<C: Pooled> Drop for Lease<C> {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            self.pool.closed();
        }
    }
}

/// Room counted in a pool's open connections, for one being opened;
/// dropped unused, it is given back.
struct Room<C: Pooled>(Option<Arc<TxPool<C>>>);

impl<C: Pooled> Drop for Room<C> {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            pool.closed();
        }
    }
}

impl<C: Pooled> TxPool<C> {
    pub fn new(config: TxPoolConfig, threads: usize) -> Self {
        Self {
            config,
            open: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            shards: (0..threads.max(1))
                .map(|_| Mutex::new(Shard::default()))
                .collect(),
            timeouts: AtomicU64::new(0),
            pinned: AtomicUsize::new(0),
        }
    }

    pub fn config(&self) -> &TxPoolConfig {
        &self.config
    }

    /// The most sessions pinned at once: half the pool (at least one), so
    /// that clients pinning their connections (one principal's, say) can
    /// never hold all of it and lock the others out.
    pub fn max_pinned(&self) -> usize {
        (self.config.size / 2).max(1)
    }

    /// Whether another session may pin a connection now.
    pub fn may_pin(&self) -> bool {
        self.pinned.load(Ordering::Relaxed) < self.max_pinned()
    }

    /// A session pinned a connection (until [`TxPool::unpinned`]).
    pub fn pinned(&self) {
        self.pinned.fetch_add(1, Ordering::Relaxed);
    }

    /// A pinned session ended.
    pub fn unpinned(&self) {
        self.pinned.fetch_sub(1, Ordering::Relaxed);
    }

    fn shard(&self, thread: usize) -> MutexGuard<'_, Shard<C>> {
        self.shards[thread % self.shards.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> TxPoolStats {
        TxPoolStats {
            open: self.open.load(Ordering::Relaxed),
            idle: (0..self.shards.len())
                .map(|t| self.shard(t).idle.len())
                .sum(),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }

    /// A server connection for a client on session thread `thread`: an
    /// idle one, a new one (`connect`, while there is room), or the next
    /// one handed back, waiting at most the queue timeout. `waiter` is the
    /// client's own place in the queue.
    pub async fn acquire<F, Fut, E>(
        self: &Arc<Self>,
        thread: usize,
        waiter: &Arc<Waiter<C>>,
        connect: F,
    ) -> Result<Lease<C>, AcquireError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, E>>,
    {
        if let Some(conn) = self.take_idle(thread) {
            return Ok(self.lease(conn));
        }
        if let Some(room) = self.make_room(self.config.size) {
            return Self::open_new(room, connect).await;
        }
        match self.wait(thread, waiter).await {
            Handed::Connection(lease, from) => {
                let mut lease = *lease;
                if from != thread && lease.conn().move_to_this_thread().is_err() {
                    // Its room passes to this client.
                    drop(lease.conn.take());
                    return Self::open_new(Room(Some(self.clone())), connect).await;
                }
                Ok(lease)
            }
            Handed::Room(room) => Self::open_new(room, connect).await,
            Handed::Nothing => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(AcquireError::QueueTimeout(self.config.queue_timeout))
            }
        }
    }

    /// An idle connection for a client on session thread `thread`, if
    /// one is there now: [`TxPool::acquire`]'s first step, without its
    /// future.
    pub fn try_acquire(self: &Arc<Self>, thread: usize) -> Option<Lease<C>> {
        self.take_idle(thread).map(|conn| self.lease(conn))
    }

    fn lease(self: &Arc<Self>, conn: C) -> Lease<C> {
        Lease {
            conn: Some(conn),
            pool: self.clone(),
        }
    }

    /// Opens a connection in `room`.
    async fn open_new<F, Fut, E>(mut room: Room<C>, connect: F) -> Result<Lease<C>, AcquireError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, E>>,
    {
        // On failure (or if this future is dropped) the room goes back.
        let conn = connect().await.map_err(AcquireError::Connect)?;
        let pool = room.0.take().expect("room belongs to a pool until used");
        Ok(Lease {
            conn: Some(conn),
            pool,
        })
    }

    /// Room for one more open connection if fewer than `limit` are.
    fn make_room(self: &Arc<Self>, limit: usize) -> Option<Room<C>> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Room(Some(self.clone())))
    }

    /// A live idle connection: this thread's first (most recently used
    /// first), else another thread's.
    fn take_idle(self: &Arc<Self>, thread: usize) -> Option<C> {
        let threads = self.shards.len();
        for i in 0..threads {
            let t = (thread + i) % threads;
            loop {
                let Some(mut idle) = self.shard(t).idle.pop() else {
                    break;
                };
                if idle.conn.created().elapsed() < self.config.lifetime
                    && idle.conn.alive()
                    && (idle.thread == thread || idle.conn.move_to_this_thread().is_ok())
                {
                    return Some(idle.conn);
                }
                drop(idle);
                self.closed();
            }
        }
        None
    }

    /// Queues the client until something is handed to it;
    /// [`Handed::Nothing`] when the queue timeout passed first. Past
    /// `reserve_after` it opens a reserve connection if there is room.
    async fn wait(self: &Arc<Self>, thread: usize, waiter: &Arc<Waiter<C>>) -> Handed<C> {
        let started = tokio::time::Instant::now();
        // Anything left from a wait given up on goes back (dropped).
        drop(waiter.take());
        self.shard(thread).waiters.push_back(waiter.clone());
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let queued = Queued {
            pool: self,
            waiter,
            thread,
        };
        // A connection given back between the first look and queueing
        // went to the idle list, not to this client: look again.
        self.dispatch(thread);
        let deadline = started + self.config.queue_timeout;
        let reserve_at = (self.config.reserve > 0).then(|| started + self.config.reserve_after);
        let mut reserve_tried = false;
        loop {
            let wake_at = match reserve_at {
                Some(at) if !reserve_tried => at.min(deadline),
                _ => deadline,
            };
            match tokio::time::timeout_at(wake_at, waiter.handed()).await {
                Ok(handed) => {
                    queued.done();
                    return handed;
                }
                Err(_) if wake_at < deadline => {
                    reserve_tried = true;
                    if let Some(room) = self.make_room(self.config.size + self.config.reserve) {
                        if queued.leave() {
                            return Handed::Room(room);
                        }
                        // A dispatcher took this client out and is handing
                        // it something: the room goes back.
                        drop(room);
                        return waiter.handed().await;
                    }
                }
                Err(_) => {
                    if queued.leave() {
                        return Handed::Nothing;
                    }
                    return waiter.handed().await;
                }
            }
        }
    }

    /// Matches waiting clients with idle connections (or free room), this
    /// thread's first.
    fn dispatch(self: &Arc<Self>, thread: usize) {
        let threads = self.shards.len();
        while self.waiting.load(Ordering::SeqCst) > 0 {
            // The first waiter, this thread's queue first.
            let Some((waiter_thread, waiter)) = (0..threads).find_map(|i| {
                let t = (thread + i) % threads;
                self.shard(t).waiters.pop_front().map(|w| (t, w))
            }) else {
                return;
            };
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            // A connection for it, from its own thread first.
            let idle = (0..threads).find_map(|i| {
                let t = (waiter_thread + i) % threads;
                self.shard(t).idle.pop()
            });
            match idle {
                Some(idle) => waiter.hand(Handed::Connection(
                    Box::new(self.lease(idle.conn)),
                    idle.thread,
                )),
                None => match self.make_room(self.config.size) {
                    Some(room) => waiter.hand(Handed::Room(room)),
                    None => {
                        // Nothing to give: back to the head of its queue.
                        self.shard(waiter_thread).waiters.push_front(waiter);
                        self.waiting.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                },
            }
        }
    }

    fn give_back(self: &Arc<Self>, conn: C, thread: usize, reusable: bool) {
        if !reusable
            || self.retired.load(Ordering::Relaxed)
            || conn.created().elapsed() >= self.config.lifetime
        {
            drop(conn);
            self.closed();
            return;
        }
        self.shard(thread).idle.push(Idle {
            conn,
            since: Instant::now(),
            thread,
        });
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.dispatch(thread);
        }
    }

    /// A connection was closed: its room goes to a waiting client.
    fn closed(self: &Arc<Self>) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.dispatch(0);
        }
    }

    /// Closes idle connections past the idle timeout or lifetime (all of
    /// them when the pool is retired). Returns how many.
    pub fn sweep(self: &Arc<Self>) -> usize {
        let retired = self.retired.load(Ordering::Relaxed);
        let mut stale = Vec::new();
        for t in 0..self.shards.len() {
            let mut shard = self.shard(t);
            let (keep, old): (Vec<_>, Vec<_>) = shard.idle.drain(..).partition(|i| {
                !retired
                    && i.since.elapsed() < self.config.idle_timeout
                    && i.conn.created().elapsed() < self.config.lifetime
            });
            shard.idle = keep;
            stale.extend(old);
        }
        let n = stale.len();
        for conn in stale {
            drop(conn);
            self.closed();
        }
        n
    }
}

/// A client in a queue. Dropped (the client went away while waiting), it
/// leaves the queue; whatever it was handed meanwhile goes back.
struct Queued<'a, C: Pooled> {
    pool: &'a Arc<TxPool<C>>,
    waiter: &'a Arc<Waiter<C>>,
    thread: usize,
}

impl<C: Pooled> Queued<'_, C> {
    /// Out of the queue by a dispatcher: nothing to undo.
    fn done(self) {
        std::mem::forget(self);
    }

    /// Takes the client out of its queue; false when a dispatcher took it
    /// out first (and is handing it something).
    fn leave(self) -> bool {
        let left = self.remove();
        std::mem::forget(self);
        left
    }

    fn remove(&self) -> bool {
        let mut shard = self.pool.shard(self.thread);
        match shard
            .waiters
            .iter()
            .position(|w| Arc::ptr_eq(w, self.waiter))
        {
            Some(i) => {
                shard.waiters.remove(i);
                drop(shard);
                self.pool.waiting.fetch_sub(1, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

impl<C: Pooled> Drop for Queued<'_, C> {
    fn drop(&mut self) {
        if self.remove() {
            return;
        }
        // Handed something already: a connection goes back to the pool
        // (room is given back when dropped). Something still on its way
        // is dropped with the waiter, or at its next wait.
        if let Handed::Connection(lease, thread) = self.waiter.take() {
            lease.give_back(thread, true);
        }
    }
}

/// Every transaction pool of one gateway, by pool key.
pub struct TxPools<C: Pooled> {
    threads: usize,
    pools: Mutex<HashMap<String, Arc<TxPool<C>>>>,
    /// Pools replaced by ones with other settings, until their last
    /// connection is closed.
    retired: Mutex<Vec<Arc<TxPool<C>>>>,
}

impl<C: Pooled> TxPools<C> {
    pub fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            pools: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<TxPool<C>>>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool for `key` with `config`; a pool of that key with other
    /// settings (the database was registered again) is retired.
    pub fn pool(&self, key: &str, config: TxPoolConfig) -> Arc<TxPool<C>> {
        let mut pools = self.map();
        if let Some(pool) = pools.get(key)
            && pool.config == config
        {
            return pool.clone();
        }
        let pool = Arc::new(TxPool::new(config, self.threads));
        if let Some(old) = pools.insert(key.to_owned(), pool.clone()) {
            old.retired.store(true, Ordering::Relaxed);
            self.retired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(old);
        }
        pool
    }

    /// Closes stale idle connections and forgets pools nobody uses.
    pub fn sweep(&self) {
        let pools: Vec<Arc<TxPool<C>>> = self.map().values().cloned().collect();
        for pool in &pools {
            pool.sweep();
        }
        drop(pools);
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        for pool in retired.iter() {
            pool.sweep();
        }
        retired.retain(|pool| pool.open.load(Ordering::Relaxed) > 0);
        drop(retired);
        self.map()
            .retain(|_, pool| Arc::strong_count(pool) > 1 || pool.open.load(Ordering::Relaxed) > 0);
    }

    /// The figures of every pool, summed.
    pub fn stats(&self) -> TxPoolStats {
        let pools: Vec<Arc<TxPool<C>>> = self.map().values().cloned().collect();
        pools.iter().fold(TxPoolStats::default(), |sum, pool| {
            let s = pool.stats();
            TxPoolStats {
                open: sum.open + s.open,
                idle: sum.idle + s.idle,
                waiting: sum.waiting + s.waiting,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A connection that is always alive, numbered.
    struct Fake {
        id: u32,
        created: Instant,
    }

    impl Pooled for Fake {
        fn created(&self) -> Instant {
            self.created
        }
        fn alive(&mut self) -> bool {
            true
        }
        fn move_to_this_thread(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn config(size: usize) -> TxPoolConfig {
        TxPoolConfig {
            size,
            reserve: 0,
            reserve_after: Duration::from_secs(5),
            queue_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            lifetime: Duration::from_secs(3600),
            idle_transaction_timeout: None,
        }
    }

    fn connector(
        counter: &Arc<AtomicU32>,
    ) -> impl FnOnce() -> std::future::Ready<Result<Fake, String>> {
        let counter = counter.clone();
        move || {
            std::future::ready(Ok(Fake {
                id: counter.fetch_add(1, Ordering::Relaxed),
                created: Instant::now(),
            }))
        }
    }

    #[tokio::test]
    async fn connections_are_reused_and_never_exceed_the_size() {
        let pool = Arc::new(TxPool::new(config(2), 2));
        let opened = Arc::new(AtomicU32::new(0));
        let w = Arc::new(Waiter::default());
        let mut a = pool.acquire(0, &w, connector(&opened)).await.unwrap();
        let b = pool.acquire(1, &w, connector(&opened)).await.unwrap();
        assert_eq!(pool.stats().open, 2);
        let first = a.conn().id;
        a.give_back(0, true);
        let mut again = pool.acquire(0, &w, connector(&opened)).await.unwrap();
        assert_eq!(again.conn().id, first, "the idle connection is reused");
        assert_eq!(opened.load(Ordering::Relaxed), 2);
        drop(b);
        assert_eq!(
            pool.stats().open,
            1,
            "a dropped lease closes its connection"
        );
        again.give_back(0, true);
        assert_eq!(
            pool.stats(),
            TxPoolStats {
                open: 1,
                idle: 1,
                waiting: 0
            }
        );
    }

    #[tokio::test]
    async fn a_waiting_client_gets_the_next_connection_handed_back() {
        let pool = Arc::new(TxPool::new(config(1), 2));
        let opened = Arc::new(AtomicU32::new(0));
        let held = pool
            .acquire(0, &Arc::new(Waiter::default()), connector(&opened))
            .await
            .unwrap();
        let waiting = {
            let pool = pool.clone();
            let opened = opened.clone();
            tokio::spawn(async move {
                let w = Arc::new(Waiter::default());
                pool.acquire(1, &w, connector(&opened))
                    .await
                    .map(|mut l| l.conn().id)
            })
        };
        while pool.stats().waiting == 0 {
            tokio::task::yield_now().await;
        }
        held.give_back(0, true);
        assert_eq!(waiting.await.unwrap().unwrap(), 0);
        assert_eq!(opened.load(Ordering::Relaxed), 1);
        assert_eq!(pool.stats().waiting, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_waits_at_most_the_queue_timeout_and_then_the_reserve_opens() {
        let pool = Arc::new(TxPool::new(
            TxPoolConfig {
                queue_timeout: Duration::from_millis(300),
                ..config(1)
            },
            1,
        ));
        let opened = Arc::new(AtomicU32::new(0));
        let _held = pool
            .acquire(0, &Arc::new(Waiter::default()), connector(&opened))
            .await
            .unwrap();
        let w = Arc::new(Waiter::default());
        let err = pool.acquire(0, &w, connector(&opened)).await.err().unwrap();
        assert!(matches!(err, AcquireError::QueueTimeout(_)));
        assert_eq!(pool.stats().waiting, 0);
        assert_eq!(pool.timeouts.load(Ordering::Relaxed), 1);

        let reserve = Arc::new(TxPool::new(
            TxPoolConfig {
                reserve: 1,
                reserve_after: Duration::from_millis(100),
                ..config(1)
            },
            1,
        ));
        let _held = reserve
            .acquire(0, &Arc::new(Waiter::default()), connector(&opened))
            .await
            .unwrap();
        let got = reserve.acquire(0, &w, connector(&opened)).await;
        assert!(got.is_ok(), "the reserve opened after 100 ms");
        assert_eq!(reserve.stats().open, 2);
    }

    #[tokio::test]
    async fn a_client_that_leaves_the_queue_passes_its_turn_on() {
        let pool = Arc::new(TxPool::new(config(1), 1));
        let opened = Arc::new(AtomicU32::new(0));
        let held = pool
            .acquire(0, &Arc::new(Waiter::default()), connector(&opened))
            .await
            .unwrap();
        let w = Arc::new(Waiter::default());
        {
            let gone = pool.acquire(0, &w, connector(&opened));
            // Polled once (queued), then dropped: the client went away.
            let mut gone = std::pin::pin!(gone);
            let _ = futures_poll_once(gone.as_mut()).await;
        }
        assert_eq!(pool.stats().waiting, 0);
        held.give_back(0, true);
        assert_eq!(
            pool.stats(),
            TxPoolStats {
                open: 1,
                idle: 1,
                waiting: 0
            }
        );
    }

    async fn futures_poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let mut f = Some(f);
        std::future::poll_fn(move |cx| {
            let polled = f.take().map(|f| f.poll(cx));
            Poll::Ready(match polled {
                Some(Poll::Ready(v)) => Some(v),
                _ => None,
            })
        })
        .await
    }

    #[tokio::test]
    async fn stale_and_retired_connections_are_swept() {
        let pools: TxPools<Fake> = TxPools::new(1);
        let pool = pools.pool("k", config(2));
        let opened = Arc::new(AtomicU32::new(0));
        let w = Arc::new(Waiter::default());
        let lease = pool.acquire(0, &w, connector(&opened)).await.unwrap();
        lease.give_back(0, true);
        assert_eq!(pool.stats().idle, 1);
        // Registered again with another size: the old pool is retired.
        let newer = pools.pool("k", config(3));
        assert!(!Arc::ptr_eq(&pool, &newer));
        pools.sweep();
        assert_eq!(pool.stats().open, 0);
        drop(pool);
        drop(newer);
        pools.sweep();
        assert_eq!(pools.stats(), TxPoolStats::default());
        assert!(pools.map().is_empty());
    }

    /// Two session threads, 64 clients each, 200 transactions per client
    /// on a pool of 3: never more than 3 open, every client served, and
    /// nothing left waiting or lost from the count.
    #[test]
    fn many_clients_on_two_threads_share_a_small_pool() {
        let pool = Arc::new(TxPool::new(
            TxPoolConfig {
                queue_timeout: Duration::from_secs(30),
                ..config(3)
            },
            2,
        ));
        let opened = Arc::new(AtomicU32::new(0));
        let busy = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|thread| {
                let (pool, opened, busy) = (pool.clone(), opened.clone(), busy.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let mut clients = tokio::task::JoinSet::new();
                        for _ in 0..64 {
                            let (pool, opened, busy) = (pool.clone(), opened.clone(), busy.clone());
                            clients.spawn(async move {
                                let waiter = Arc::new(Waiter::default());
                                for i in 0..200u32 {
                                    let lease = pool
                                        .acquire(thread, &waiter, connector(&opened))
                                        .await
                                        .expect("served");
                                    let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                                    assert!(now <= 3, "{now} connections in use at once");
                                    if i % 7 == 0 {
                                        tokio::task::yield_now().await;
                                    }
                                    busy.fetch_sub(1, Ordering::SeqCst);
                                    // Now and then a client goes away mid-transaction.
                                    if i % 50 == 49 {
                                        drop(lease);
                                    } else {
                                        lease.give_back(thread, true);
                                    }
                                }
                            });
                        }
                        while let Some(done) = clients.join_next().await {
                            done.unwrap();
                        }
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = pool.stats();
        assert_eq!(stats.waiting, 0);
        assert!(stats.open <= 3 && stats.open == stats.idle, "{stats:?}");
    }
}
