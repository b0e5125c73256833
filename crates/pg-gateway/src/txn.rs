//! The relay of a transaction-pooled session (issue 23): the client keeps
//! its connection to the gateway for its whole session, while a server
//! connection is lent to it only from its first message after an idle
//! `ReadyForQuery` to the next one (a transaction, or a statement outside
//! one), then handed back to the pool for the next client.
//!
//! ```text
//! waiting ── client sends ──▶ acquire (idle, new, or queue) ── carried
//!    ▲                          settings replayed ──▶ attached
//!    └── give back ◀── read back settings if changed ◀── ReadyForQuery 'I'
//! ```
//!
//! What stays per client, exactly as in session mode: authentication,
//! policy, the statement guard and gate, and the audit (the tracker is the
//! client's, so every statement is recorded under the client's session).
//! What the pool cannot carry pins the client to its connection for the
//! rest of its session (`latchkey_sqlguard::session_effects`), or is
//! refused when the database says so. A few settings are carried
//! ([`CARRIED`]): what the client set is replayed on each connection it
//! lands on, as PgBouncer's `track_extra_parameters` does.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use latchkey_gateway::relay::{Half, poll_halves};
use latchkey_gateway::txpool::{AcquireError, Lease, TxPool, Waiter};
use latchkey_gateway::{Authenticated, Gatekeeper, LiveCounters, Login};
use latchkey_pg_stream::{Buffer, Tracker};
use latchkey_pg_stream::{Direction, Framing, Window};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::relay::{End, RelayError};
use crate::upstream::Upstream;
use crate::{CancelSlot, PgStartup, Stream};

/// Settings a client may `SET` in transaction pooling without being
/// pinned: what it set is replayed on every server connection it lands
/// on. Lower case, as `SET` and `set_config` take them.
pub const CARRIED: &[&str] = &[
    "application_name",
    "timezone",
    "datestyle",
    "intervalstyle",
    "client_encoding",
    "standard_conforming_strings",
    "search_path",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "extra_float_digits",
    "client_min_messages",
    "bytea_output",
];

/// The carried settings among startup parameters, as the client's first
/// wishes.
pub fn startup_carried(forwarded: &[(String, String)]) -> Vec<(&'static str, String)> {
    let mut carried = Vec::new();
    for (name, value) in forwarded {
        if let Some(name) = carried_name(name) {
            set(&mut carried, name, value.clone());
        }
    }
    carried
}

/// Startup parameters less the carried settings.
pub fn without_carried(forwarded: &[(String, String)]) -> Vec<(String, String)> {
    forwarded
        .iter()
        .filter(|(name, _)| carried_name(name).is_none())
        .cloned()
        .collect()
}

/// How long replaying or reading back the carried settings may take.
const SETTINGS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A carried setting's name as `CARRIED` spells it (the server reports
/// `TimeZone`, `DateStyle`...).
fn carried_name(name: &str) -> Option<&'static str> {
    CARRIED
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name))
        .copied()
}

/// What one stretch of relaying ended with.
enum Step {
    /// The client sent something: it needs a server connection.
    Send,
    /// The server is idle outside a transaction with nothing in flight:
    /// its connection can go back.
    Idle,
    /// The client kept its lent connection waiting inside a transaction
    /// for the pool's idle transaction timeout.
    HeldTooLong,
    Ended(End),
}

/// Why a transaction-pooled session ended early.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// No connection within the queue timeout.
    #[error("transaction pool: no server connection became free within {0:?}")]
    QueueTimeout(std::time::Duration),
    /// The client kept its lent connection waiting inside a transaction
    /// for this long.
    #[error("transaction pool: idle in transaction for {0:?}")]
    IdleInTransaction(std::time::Duration),
    /// A new server connection could not be opened, or a lent one could
    /// not be given the client's settings.
    #[error("transaction pool: {0:#}")]
    Server(anyhow::Error),
}

/// A client of a transaction pool, relayed.
pub struct TxRelay<'k, 's> {
    pub client: Box<dyn Stream>,
    to_upstream: Half<Buffer>,
    to_client: Half<Buffer>,
    pub tracker: Tracker,
    max_message: usize,
    live: Arc<LiveCounters>,
    /// The connection lent now.
    pub server: Option<Lease<Upstream>>,
    pool: Arc<TxPool<Upstream>>,
    waiter: Arc<Waiter<Upstream>>,
    thread: usize,
    /// Carried settings the client set, as it expects them wherever it
    /// lands.
    carried: Vec<(&'static str, String)>,
    pub cancel: Arc<CancelSlot>,
    keeper: &'k Gatekeeper,
    auth: &'s Authenticated,
    login: &'s Login<PgStartup>,
    /// Whether the database refuses session state whatever the pool.
    refuse_always: bool,
    /// Whether this session's pin is counted in the pool's.
    pin_counted: bool,
    /// Runs while the lent connection waits on the client inside a
    /// transaction (made once, reset each time such a wait begins).
    held: Option<Pin<Box<tokio::time::Sleep>>>,
    held_armed: bool,
    /// Bytes from the client when the wait began.
    held_mark: u64,
}

impl Drop for TxRelay<'_, '_> {
    fn drop(&mut self) {
        if self.pin_counted {
            self.pool.unpinned();
        }
    }
}

impl<'k, 's> TxRelay<'k, 's> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Box<dyn Stream>,
        link: latchkey_gateway::TxLink<Upstream>,
        tracker: Tracker,
        max_message: usize,
        live: Arc<LiveCounters>,
        cancel: Arc<CancelSlot>,
        keeper: &'k Gatekeeper,
        auth: &'s Authenticated,
        login: &'s Login<PgStartup>,
    ) -> Self {
        let latchkey_gateway::TxLink {
            pool,
            lease,
            waiter,
            thread,
            ..
        } = link;
        let budget = keeper
            .config
            .large_messages
            .share_of(auth.caller.principal_id());
        let mut relay = Self {
            client,
            to_upstream: Half::with_budget(budget.clone()),
            to_client: Half::with_budget(budget),
            tracker,
            max_message,
            live,
            server: Some(lease),
            pool,
            waiter,
            thread,
            carried: startup_carried(&login.startup.forwarded),
            cancel,
            keeper,
            auth,
            login,
            refuse_always: false,
            pin_counted: false,
            held: None,
            held_armed: false,
            held_mark: 0,
        };
        relay.refuse_always = relay.tracker.pooling().is_some_and(|p| p.refuse);
        relay.limit_pins();
        if let Some(mut lease) = relay.server.take() {
            relay.take_statements(&mut lease);
            relay.server = Some(lease);
        }
        relay
    }

    /// Relays until the client or a server ends the session.
    pub async fn run(&mut self) -> Result<End, TxError> {
        loop {
            if self.server.is_none() {
                match std::future::poll_fn(|cx| self.poll_detached(cx)).await? {
                    Step::Ended(end) => return Ok(end),
                    Step::Idle | Step::HeldTooLong | Step::Send => {}
                }
                if let Some(waiting) = self.attach_or_wait() {
                    waiting.await?;
                }
                self.scan_waiting()?;
            }
            match std::future::poll_fn(|cx| self.poll_attached(cx)).await? {
                Step::Ended(end) => return Ok(end),
                Step::Idle => {
                    if !self.detach_at_once() {
                        // Boxed for the reason `attach_or_wait` gives.
                        Box::pin(self.detach()).await.map_err(TxError::Server)?;
                    }
                }
                Step::HeldTooLong => {
                    self.keeper
                        .state
                        .metrics
                        .pool_idle_transaction_timeouts
                        .inc();
                    let timeout = self.pool.config().idle_transaction_timeout;
                    return Err(TxError::IdleInTransaction(timeout.unwrap_or_default()));
                }
                Step::Send => {}
            }
        }
    }

    /// Whether the lent connection may go back now.
    pub fn releasable(&self) -> bool {
        self.between_transactions() && self.tracker.pooling().is_none_or(|p| p.pinned.is_none())
    }

    /// The lent connection is idle outside a transaction with nothing in
    /// flight (pinned or not).
    fn between_transactions(&self) -> bool {
        self.server.is_some()
            && self.tracker.idle()
            && self.to_client.buffer.at_boundary()
            && self.to_upstream.buffer.nothing_in_flight()
    }

    /// At the end of a clean session: gives the connection back, after
    /// `DISCARD ALL` if the session was pinned (its state is then gone, as
    /// a session pool's connection's is). Closed instead when that fails.
    pub async fn give_back_at_end(&mut self) -> Result<()> {
        if !self.between_transactions() {
            self.server = None;
            return Ok(());
        }
        let pinned = self.tracker.pooling().is_some_and(|p| p.pinned.is_some());
        if pinned && let Some(lease) = self.server.as_mut() {
            let upstream = lease.conn();
            let reset =
                tokio::time::timeout(SETTINGS_TIMEOUT, upstream.run_quietly("DISCARD ALL", None))
                    .await;
            if !matches!(reset, Ok(Ok(()))) {
                self.server = None;
                bail!("DISCARD ALL on a pinned connection failed");
            }
            upstream.carried.clear();
            if let Some(pooling) = self.tracker.pooling_mut() {
                pooling.server.clear();
                pooling.carried_changed = false;
            }
            self.tracker.parameter_changes.clear();
            self.carried.clear();
        }
        self.detach().await
    }

    /// The client has been sent only whole messages.
    pub fn client_at_boundary(&self) -> bool {
        self.to_client.buffer.at_boundary()
    }

    /// Bytes (from the client, to the client).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.to_upstream.buffer.window().written(),
            self.to_client.buffer.window().written(),
        )
    }

    fn publish(&self) {
        let (from_client, to_client) = self.bytes();
        self.live
            .publish(from_client, to_client, self.tracker.statement_count);
    }

    /// No connection lent: waits for the client's next bytes (and finishes
    /// flushing what it was sent). They are scanned only once a connection
    /// is lent, since what the gateway sends for them (a statement it
    /// carries, prepared or not) depends on that connection.
    fn poll_detached(&mut self, cx: &mut Context<'_>) -> Poll<Result<Step, RelayError>> {
        if self.to_client.unflushed
            && let Poll::Ready(flushed) = Pin::new(&mut self.client).poll_flush(cx)
        {
            flushed.map_err(RelayError::Client)?;
            self.to_client.unflushed = false;
        }
        // Room for a large message the scan asked for is leased first: a
        // session that began waiting for it on a lent connection may have
        // given the connection back meanwhile (nothing of the message was
        // sent on), and gets its lease here.
        if self.to_upstream.poll_room(cx).is_pending() {
            self.publish();
            return Poll::Pending;
        }
        self.to_upstream.settle();
        let buffer = &mut self.to_upstream.buffer;
        // A connection is lent for a whole message, or for one too long
        // to wait for whole (the window is full): lent for a message's
        // first part, it would go back at once with nothing sent, and the
        // loop in `run` would lend it again without ever waiting.
        while !starts_whole_message(buffer.window()) && {
            buffer.make_room();
            !buffer.space().is_empty()
        } {
            let mut read = ReadBuf::new(buffer.space());
            match Pin::new(&mut self.client).poll_read(cx, &mut read) {
                Poll::Pending => {
                    if self.to_upstream.poll_overdue(cx) {
                        return Poll::Ready(Err(RelayError::Client(
                            latchkey_gateway::relay::overdue(),
                        )));
                    }
                    self.to_upstream.buffer.release();
                    self.publish();
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(RelayError::Client(e))),
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    if n == 0 {
                        return Poll::Ready(Ok(Step::Ended(End::ClientClosed)));
                    }
                    buffer.filled(n);
                }
            }
        }
        let window = buffer.window();
        // A goodbye needs no connection.
        if window.read().get(window.scanned()) == Some(&b'X') {
            return Poll::Ready(Ok(Step::Ended(End::ClientTerminated)));
        }
        Poll::Ready(Ok(Step::Send))
    }

    /// Scans what the client sent while no connection was lent.
    fn scan_waiting(&mut self) -> Result<(), RelayError> {
        self.to_upstream
            .buffer
            .scan(Direction::ToUpstream, &mut self.tracker, self.max_message)
            .map_err(RelayError::Scan)?;
        Ok(())
    }

    /// Both ways over the lent connection until the session ends or the
    /// connection can go back.
    fn poll_attached(&mut self, cx: &mut Context<'_>) -> Poll<Result<Step, RelayError>> {
        let Some(lease) = self.server.as_mut() else {
            return Poll::Ready(Ok(Step::Send));
        };
        let server = &mut lease.conn().stream;
        if let Poll::Ready(r) = poll_halves(
            cx,
            (&mut self.to_upstream, &mut self.to_client),
            &mut self.client,
            server,
            &mut self.tracker,
            self.max_message,
        ) {
            return Poll::Ready(r.map(Step::Ended));
        }
        if self.releasable() {
            return Poll::Ready(Ok(Step::Idle));
        }
        if self.held_too_long(cx) {
            return Poll::Ready(Ok(Step::HeldTooLong));
        }
        self.count_pin();
        self.publish();
        Poll::Pending
    }

    /// Whether the lent connection has waited on the client inside a
    /// transaction (or an unsynced batch, or a `COPY FROM STDIN`) for the
    /// pool's idle transaction timeout: everything the client asked to be
    /// answered was answered and passed on, and the server waits for the
    /// client's next word (`Tracker::waits_on_client`).
    fn held_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.pool.config().idle_transaction_timeout else {
            return false;
        };
        let waiting_on_client = self.tracker.waits_on_client()
            && self.to_client.buffer.at_boundary()
            && self.to_upstream.buffer.nothing_in_flight();
        if !waiting_on_client {
            self.held_armed = false;
            return false;
        }
        // Whatever the client sends starts the wait again (a COPY's data
        // keeps coming while the server waits for more).
        let from_client = self.to_upstream.buffer.window().written();
        let timer = self
            .held
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !self.held_armed || from_client != self.held_mark {
            timer.as_mut().reset(tokio::time::Instant::now() + timeout);
            self.held_armed = true;
            self.held_mark = from_client;
        }
        std::future::Future::poll(timer.as_mut(), cx).is_ready()
    }

    /// Past the pool's share of pinned sessions, session state is refused
    /// (`0A000`) rather than pinned, until a pinned session ends.
    fn limit_pins(&mut self) {
        let refuse = self.refuse_always || (!self.pin_counted && !self.pool.may_pin());
        if let Some(pooling) = self.tracker.pooling_mut() {
            pooling.refuse = refuse;
        }
    }

    /// Counts this session's pin in the pool's, once.
    fn count_pin(&mut self) {
        if !self.pin_counted && self.tracker.pooling().is_some_and(|p| p.pinned.is_some()) {
            self.pin_counted = true;
            self.pool.pinned();
        }
    }

    /// Lends the client a connection for its next transaction at once
    /// when a free one already has its carried settings (the usual case);
    /// otherwise returns the wait for the queue, a new connection or the
    /// settings replay, boxed: inline, that state would be part of every
    /// idle session's task, which waits for its next transaction in `run`.
    #[allow(clippy::type_complexity)]
    fn attach_or_wait(
        &mut self,
    ) -> Option<Pin<Box<impl Future<Output = Result<(), TxError>> + Send + '_>>> {
        let started = Instant::now();
        match self.pool.try_acquire(self.thread) {
            Some(lease) if lease.get().carried == self.carried => {
                self.keeper
                    .state
                    .metrics
                    .pool_wait
                    .observe(started.elapsed());
                self.lend_now(lease);
                None
            }
            taken => Some(Box::pin(self.attach(taken, started))),
        }
    }

    /// Lends `taken`, or a connection from the queue or a new one, with
    /// the client's carried settings.
    async fn attach(
        &mut self,
        taken: Option<Lease<Upstream>>,
        started: Instant,
    ) -> Result<(), TxError> {
        let lease = match taken {
            Some(lease) => lease,
            None => self.acquire().await?,
        };
        let metrics = &self.keeper.state.metrics;
        metrics.pool_wait.observe(started.elapsed());
        self.lend(lease).await
    }

    /// A connection from the queue, or a new one.
    async fn acquire(&mut self) -> Result<Lease<Upstream>, TxError> {
        let (keeper, auth, login) = (self.keeper, self.auth, self.login);
        let acquired = self
            .pool
            .acquire(self.thread, &self.waiter, || async {
                let started = Instant::now();
                // Boxed: an upstream login is rare next to the idle
                // waits, and inline it would size every session's task.
                let connected = Box::pin(crate::connect_upstream(keeper, auth, login)).await;
                keeper
                    .state
                    .metrics
                    .upstream_connect
                    .observe(started.elapsed());
                connected
            })
            .await;
        match acquired {
            Ok(lease) => Ok(lease),
            Err(AcquireError::QueueTimeout(waited)) => {
                keeper.state.metrics.pool_queue_timeouts.inc();
                Err(TxError::QueueTimeout(waited))
            }
            Err(AcquireError::Connect(e)) => Err(TxError::Server(e)),
        }
    }

    /// Lends `lease` to the client: its carried settings, its cancel key
    /// and its prepared statements.
    async fn lend(&mut self, mut lease: Lease<Upstream>) -> Result<(), TxError> {
        if lease.get().carried != self.carried {
            // A connection that cannot be given the settings is closed
            // (the lease is dropped).
            replay(lease.conn(), &self.carried)
                .await
                .map_err(TxError::Server)?;
        }
        self.lend_now(lease);
        Ok(())
    }

    /// Lends `lease`, which has the client's carried settings.
    fn lend_now(&mut self, mut lease: Lease<Upstream>) {
        self.cancel.attach(lease.get().cancel.clone());
        self.take_statements(&mut lease);
        self.server = Some(lease);
        self.limit_pins();
    }

    /// [`TxRelay::detach`] without waiting, when nothing needs a wait (the
    /// usual case): no carried setting to read back from the server and
    /// no cancel on its way. False, having given nothing back, otherwise.
    fn detach_at_once(&mut self) -> bool {
        let read_back = self.tracker.pooling().is_some_and(|p| p.carried_changed);
        if self.server.is_none() || read_back || !self.cancel.detach_at_once() {
            return false;
        }
        let Some(mut lease) = self.server.take() else {
            return false;
        };
        self.note_settings(&mut lease);
        self.give_back(lease);
        true
    }

    /// Gives the lent connection back, with what the transaction changed
    /// of the carried settings recorded on both sides.
    pub async fn detach(&mut self) -> Result<()> {
        let Some(mut lease) = self.server.take() else {
            return Ok(());
        };
        self.note_settings(&mut lease);
        if let Some(pooling) = self.tracker.pooling_mut()
            && std::mem::take(&mut pooling.carried_changed)
        {
            read_back(lease.conn(), &mut self.carried).await?;
        }
        // A cancel on its way must land before the connection serves
        // another client (PostgreSQL ignores one that finds it idle).
        self.cancel.detach().await;
        self.give_back(lease);
        Ok(())
    }

    /// Records what the transaction changed of the settings, on the
    /// connection and in the client's carried ones.
    fn note_settings(&mut self, lease: &mut Lease<Upstream>) {
        for (name, value) in self.tracker.parameter_changes.drain(..) {
            lease.conn().set_param(&name, &value);
            if let Some(name) = carried_name(&name) {
                set(&mut self.carried, name, value);
            }
        }
    }

    /// Back to the pool, with the client's carried settings and the
    /// statements the gateway prepared on it.
    fn give_back(&mut self, mut lease: Lease<Upstream>) {
        if lease.get().carried != self.carried {
            lease.conn().carried.clone_from(&self.carried);
        }
        self.take_statements(&mut lease);
        lease.give_back(self.thread, true);
        // The server's side is read again only once a connection is lent.
        self.to_client.buffer.release();
        self.tracker.shrink_idle();
    }
}

impl TxRelay<'_, '_> {
    /// Swaps the lent connection's prepared statements with the tracker's
    /// (in when it is lent, out when it goes back).
    fn take_statements(&mut self, lease: &mut Lease<Upstream>) {
        if let Some(pooling) = self.tracker.pooling_mut() {
            std::mem::swap(&mut pooling.server, &mut lease.conn().statements);
            pooling.lent();
        }
    }
}

/// Whether the bytes read and not yet scanned begin with a whole message
/// (a type byte, then a length that counts itself). A length too small to
/// be one counts as whole: the scan refuses it.
fn starts_whole_message(window: &Window) -> bool {
    match &window.read()[window.scanned()..] {
        [_, a, b, c, d, rest @ ..] => {
            let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
            rest.len() + 4 >= len
        }
        _ => false,
    }
}

fn set(carried: &mut Vec<(&'static str, String)>, name: &'static str, value: String) {
    match carried.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => carried.push((name, value)),
    }
}

/// Gives `upstream` the carried settings `wanted` (and resets those a
/// previous client set that this one did not), in one round trip. Each
/// value is a bound parameter of `set_config`, never SQL text: a value the
/// previous client's `client_encoding` would read otherwise (a backslash
/// swallowed into a multibyte character) stays a value. The encoding goes
/// first, so that the values after it are read in this client's.
pub async fn replay(upstream: &mut Upstream, wanted: &[(&'static str, String)]) -> Result<()> {
    const SET: &str = "SELECT pg_catalog.set_config($1, $2, false)";
    let mut statements: Vec<(&str, Vec<&str>)> = Vec::new();
    let changed: Vec<&(&'static str, String)> = wanted
        .iter()
        .filter(|(name, value)| {
            !upstream
                .carried
                .iter()
                .any(|(n, v)| n == name && v == value)
        })
        .collect();
    for (name, value) in changed {
        statements.push((SET, vec![name, value.as_str()]));
    }
    let resets: Vec<String> = upstream
        .carried
        .iter()
        .filter(|(name, _)| !wanted.iter().any(|(n, _)| n == name))
        .map(|(name, _)| format!("RESET {name}"))
        .collect();
    // The names are `CARRIED`'s own, never a client's.
    statements.extend(resets.iter().map(|sql| (sql.as_str(), Vec::new())));
    // The encoding first, whether set or reset: the values bound after
    // it are read in it.
    statements.sort_by_key(|(sql, params)| {
        let encoding =
            params.first() == Some(&"client_encoding") || *sql == "RESET client_encoding";
        !encoding
    });
    if !statements.is_empty() {
        tokio::time::timeout(SETTINGS_TIMEOUT, upstream.run_bound(&statements))
            .await
            .map_err(|_| anyhow!("replaying the client's settings timed out"))??;
    }
    upstream.carried = wanted.to_vec();
    Ok(())
}

/// Reads every carried setting's value back after the client may have
/// changed some (`SET`, `RESET ALL`, `DISCARD ALL`).
async fn read_back(
    upstream: &mut Upstream,
    carried: &mut Vec<(&'static str, String)>,
) -> Result<()> {
    let columns: Vec<String> = CARRIED
        .iter()
        .map(|name| format!("pg_catalog.current_setting('{name}')"))
        .collect();
    let sql = format!("SELECT {}", columns.join(", "));
    let mut row = Vec::new();
    tokio::time::timeout(SETTINGS_TIMEOUT, upstream.run_quietly(&sql, Some(&mut row)))
        .await
        .map_err(|_| anyhow!("reading the session's settings back timed out"))??;
    if row.len() != CARRIED.len() {
        bail!(
            "reading the session's settings back gave {} values",
            row.len()
        );
    }
    for (name, value) in CARRIED.iter().zip(row) {
        set(carried, name, value.unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_names_map_to_carried_ones() {
        assert_eq!(carried_name("TimeZone"), Some("timezone"));
        assert_eq!(carried_name("application_name"), Some("application_name"));
        assert_eq!(carried_name("is_superuser"), None);
    }
}
