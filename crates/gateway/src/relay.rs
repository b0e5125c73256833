//! The relay loop both gateways share: bytes flow both ways unchanged,
//! but each direction's [`Framing`] knows where every message starts.
//! The engine's relay polls its two [`Half`]s in one future (as
//! `tokio::io::copy_bidirectional` does), so a session is one task.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use latchkey_framing::{
    Direction, Framing, LARGE_MESSAGE, Lease, MessageBudget, Now, Share, Ticket,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Interrupt, LiveCounters, Relayed, SessionEnd};

/// The system clock: the followers stamp audited statements by the
/// [`Clock`](latchkey_framing::Clock) they are given, and read none.
pub fn system_clock() -> Now {
    Now {
        wall: SystemTime::now(),
        instant: Instant::now(),
    }
}

/// Why a relay stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RelayError<E> {
    #[error("client: {0}")]
    Client(io::Error),
    #[error("upstream: {0}")]
    Upstream(io::Error),
    /// The bytes could not be followed (the protocol's own reason).
    #[error("{0}")]
    Scan(E),
}

/// What a direction's poll ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfEnd {
    /// The reading side closed.
    Eof,
    /// The framing saw the client say goodbye.
    Terminated,
}

/// One direction of a relay.
pub struct Half<F: Framing> {
    pub buffer: F,
    /// Bytes written but not yet flushed.
    pub unflushed: bool,
    eof: bool,
    /// A message taken out of the stream, waiting for the gateway.
    pub taken: Option<F::Taken>,
    /// Where room for a large message is leased: the session's
    /// principal's share of the gateway's budget (none: not limited).
    budget: Option<Share>,
    lease: Option<Lease>,
    /// The place in the budget's queue while waiting for a lease.
    ticket: Option<Ticket>,
    /// When the client must have sent the message it holds a lease for
    /// ([`latchkey_framing::read_within`]).
    lease_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<F: Framing> Default for Half<F> {
    fn default() -> Self {
        Self {
            buffer: F::default(),
            unflushed: false,
            eof: false,
            taken: None,
            budget: None,
            lease: None,
            ticket: None,
            lease_deadline: None,
        }
    }
}

impl<F: Framing> Half<F> {
    /// A direction whose large messages take room from `budget`.
    pub fn with_budget(budget: Share) -> Self {
        Self {
            budget: Some(budget),
            ..Self::default()
        }
    }

    /// Ready once the buffer may grow as far as the message being read
    /// needs: one over [`LARGE_MESSAGE`] bytes takes a lease on the
    /// budget for what it may cost first ([`latchkey_framing::cost`]);
    /// meanwhile the client is not read. Call before
    /// [`Framing::make_room`].
    pub fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let wanted = self.buffer.window().wanted();
        let Some(share) = self.budget.as_ref().filter(|_| wanted > LARGE_MESSAGE) else {
            return Poll::Ready(());
        };
        let need = latchkey_framing::cost(wanted);
        let have = self.lease.as_ref().map_or(0, Lease::bytes);
        if have < need {
            let more = ready!(MessageBudget::poll_lease(
                cx,
                share,
                &mut self.ticket,
                need - have
            ));
            match &mut self.lease {
                Some(lease) => lease.absorb(more),
                None => self.lease = Some(more),
            }
            self.lease_deadline = Some(Box::pin(tokio::time::sleep(
                latchkey_framing::read_within(wanted),
            )));
        }
        Poll::Ready(())
    }

    /// Gives the lease back once the buffer is small again (and is not
    /// about to grow: a lease just granted is for growth still to come).
    pub fn settle(&mut self) {
        let window = self.buffer.window();
        if self.lease.is_some() && window.wanted() == 0 && window.capacity() <= LARGE_MESSAGE {
            self.lease = None;
            self.lease_deadline = None;
        }
    }

    /// Whether the client, holding a lease, has left a message unfinished
    /// past its deadline (call when it has nothing more to read).
    pub fn poll_overdue(&mut self, cx: &mut Context<'_>) -> bool {
        self.buffer.window().unscanned() > 0
            && self
                .lease_deadline
                .as_mut()
                .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }

    /// Bytes of the budget this direction holds.
    pub fn leased(&self) -> usize {
        self.lease.as_ref().map_or(0, Lease::bytes)
    }

    /// Moves bytes from `src` to `dst` until one side ends or blocks.
    /// While a taken message waits, it writes out what came before and
    /// reads no further.
    pub fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut src: Pin<&mut R>,
        mut dst: Pin<&mut W>,
        tracker: &mut F::Tracker,
        max_message: usize,
    ) -> Poll<Result<HalfEnd, RelayError<F::Error>>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        type Side<E> = fn(io::Error) -> RelayError<E>;
        let (read_err, write_err): (Side<F::Error>, Side<F::Error>) = match direction {
            Direction::ToUpstream => (RelayError::Client, RelayError::Upstream),
            Direction::ToClient => (RelayError::Upstream, RelayError::Client),
        };
        loop {
            while !self.buffer.writable().is_empty() {
                let n = ready!(dst.as_mut().poll_write(cx, self.buffer.writable()))
                    .map_err(write_err)?;
                if n == 0 {
                    return Poll::Ready(Err(write_err(io::ErrorKind::WriteZero.into())));
                }
                self.buffer.wrote(n);
                self.unflushed = true;
            }
            if self.taken.is_some() || self.buffer.terminated() || self.eof {
                if self.unflushed {
                    ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                    self.unflushed = false;
                }
                if self.taken.is_some() {
                    // Reading resumes once the gateway has dealt with it.
                    return Poll::Pending;
                }
                return Poll::Ready(Ok(if self.buffer.terminated() {
                    HalfEnd::Terminated
                } else {
                    HalfEnd::Eof
                }));
            }
            if direction == Direction::ToUpstream
                && (F::backlogged(tracker) || F::poll_audit_room(tracker, cx).is_pending())
            {
                // The client is read again once answers have come (see
                // `poll_halves`), so that one which never reads them holds
                // what the socket buffers do, not a record of each; or
                // once the audit trail, behind, has room for its
                // statements again (it wakes the session).
                self.buffer.release();
                if self.unflushed {
                    ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                    self.unflushed = false;
                }
                return Poll::Pending;
            }
            if self.poll_room(cx).is_pending() {
                // The budget wakes the session when its turn comes.
                if self.unflushed {
                    ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                    self.unflushed = false;
                }
                return Poll::Pending;
            }
            self.buffer.make_room();
            self.settle();
            let mut read = ReadBuf::new(self.buffer.space());
            match src.as_mut().poll_read(cx, &mut read) {
                Poll::Pending => {
                    if self.poll_overdue(cx) {
                        return Poll::Ready(Err(read_err(overdue())));
                    }
                    // Nothing to read: an empty window gives its buffer
                    // back, so an idle session holds none.
                    self.buffer.release();
                    self.settle();
                    if self.unflushed {
                        ready!(dst.as_mut().poll_flush(cx)).map_err(write_err)?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(read_err(e))),
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    if n == 0 {
                        self.eof = true;
                        continue;
                    }
                    self.buffer.filled(n);
                }
            }
            self.taken = self
                .buffer
                .scan(direction, tracker, max_message)
                .map_err(RelayError::Scan)?;
            self.scanned_large();
        }
    }

    /// Once the large message a lease was taken for is scanned (the SQL
    /// guard and the other followers are done with it), only its bytes
    /// are held, until they are written: the rest goes back at once. A
    /// server kept busy (a long query with the message pipelined behind
    /// it) would otherwise keep the guard's share of the budget away from
    /// every other session for as long as the client liked.
    fn scanned_large(&mut self) {
        let window = self.buffer.window();
        if let Some(lease) = self.lease.as_mut()
            && window.wanted() == 0
            && !window.large_unscanned()
        {
            lease.keep(window.capacity());
        }
    }
}

/// Why a session holding room for a large message was ended: its client
/// did not send the rest of it in time ([`latchkey_framing::read_within`]).
#[derive(Debug, thiserror::Error)]
#[error("the rest of a message over 1 MiB did not come in time")]
pub struct Overdue;

/// [`Overdue`], as the client's read error.
pub fn overdue() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, Overdue)
}

impl<E> RelayError<E> {
    /// The client did not send the rest of a large message in time.
    pub fn is_overdue(&self) -> bool {
        matches!(self, RelayError::Client(e) if e.get_ref().is_some_and(|inner| inner.is::<Overdue>()))
    }
}

/// Moves what is ready both ways between `client` and `server`, through
/// `halves` (to the server, to the client); ready when one side ended.
/// When the client was not read because it awaited too many answers
/// ([`Framing::backlogged`]), and those that came brought it under, the
/// client is read again at once: nothing else would wake the session for
/// it.
pub fn poll_halves<F, C, S>(
    cx: &mut Context<'_>,
    (to_upstream, to_client): (&mut Half<F>, &mut Half<F>),
    client: &mut C,
    server: &mut S,
    tracker: &mut F::Tracker,
    max_message: usize,
) -> Poll<Result<Ended, RelayError<F::Error>>>
where
    F: Framing,
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        if let Poll::Ready(r) = to_upstream.poll_copy(
            cx,
            Direction::ToUpstream,
            Pin::new(&mut *client),
            Pin::new(&mut *server),
            tracker,
            max_message,
        ) {
            return Poll::Ready(r.map(|end| match end {
                HalfEnd::Terminated => Ended::ClientTerminated,
                HalfEnd::Eof => Ended::ClientClosed,
            }));
        }
        let paused = F::backlogged(tracker);
        if let Poll::Ready(r) = to_client.poll_copy(
            cx,
            Direction::ToClient,
            Pin::new(&mut *server),
            Pin::new(&mut *client),
            tracker,
            usize::MAX,
        ) {
            return Poll::Ready(r.map(|_| Ended::UpstreamClosed));
        }
        if !paused || F::backlogged(tracker) {
            return Poll::Pending;
        }
    }
}

/// The upstream connection a relay writes to, whatever else the engine's
/// connection record holds.
pub trait UpstreamIo {
    type Stream: AsyncRead + AsyncWrite + Unpin;
    fn io(&mut self) -> &mut Self::Stream;
}

/// How a relay's poll of both directions ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client said goodbye in its protocol (`Terminate`, `COM_QUIT`).
    ClientTerminated,
    /// The client closed the connection.
    ClientClosed,
    /// The server closed the connection (after anything it sent has been
    /// passed on).
    UpstreamClosed,
}

/// A client and its upstream connection, relayed both ways in one task:
/// the engine's relay is this with its own framing `F`.
pub struct Relay<C, U, F: Framing> {
    pub client: C,
    pub upstream: U,
    pub tracker: F::Tracker,
    pub to_upstream: Half<F>,
    pub to_client: Half<F>,
    max_message: usize,
    /// Where the session's running figures are published for the console.
    live: Arc<LiveCounters>,
}

impl<C, U, F> Relay<C, U, F>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: UpstreamIo,
    F: Framing,
{
    /// Large messages take room from `budget` (the session's principal's
    /// share of the gateway's
    /// [`large_messages`](crate::GatewayConfig::large_messages)); `live`
    /// receives the session's running figures (the watch's
    /// [`counters`](crate::Watch::counters)).
    pub fn new(
        client: C,
        upstream: U,
        tracker: F::Tracker,
        max_message: usize,
        budget: Share,
        live: Arc<LiveCounters>,
    ) -> Self {
        Self {
            client,
            upstream,
            tracker,
            to_upstream: Half::with_budget(budget.clone()),
            to_client: Half::with_budget(budget),
            max_message,
            live,
        }
    }

    /// Publishes the running figures each time the relay waits.
    fn publish(&self) {
        let (from_client, to_client) = self.bytes();
        self.live
            .publish(from_client, to_client, F::statements(&self.tracker));
    }

    /// Moves what is ready in both directions; ready when one side ended.
    /// Client messages over `max_message` bytes are refused by the
    /// framing; the server's are not limited.
    pub fn poll_both(&mut self, cx: &mut Context<'_>) -> Poll<Result<Ended, RelayError<F::Error>>> {
        let polled = self.poll_directions(cx);
        if polled.is_pending() {
            self.publish();
        }
        polled
    }

    fn poll_directions(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Ended, RelayError<F::Error>>> {
        let Self {
            client,
            upstream,
            tracker,
            to_upstream,
            to_client,
            max_message,
            ..
        } = self;
        poll_halves(
            cx,
            (to_upstream, to_client),
            client,
            upstream.io(),
            tracker,
            *max_message,
        )
    }

    /// Bytes (from the client, to the client).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.to_upstream.buffer.window().written(),
            self.to_client.buffer.window().written(),
        )
    }

    /// Hands the upstream connection back with the session's totals for
    /// its audit record, and the client's stream for the caller to shut
    /// down (not awaited here: a future holding the whole relay would
    /// size every session's task).
    pub fn finish(
        self,
        reason: String,
        interrupted: Option<Interrupt>,
        statements: u64,
        reusable: bool,
    ) -> (C, Relayed<U>) {
        let (bytes_from_client, bytes_to_client) = self.bytes();
        let Self {
            client, upstream, ..
        } = self;
        let relayed = Relayed {
            upstream: Some(upstream),
            end: SessionEnd {
                reason,
                lifetime_reached: interrupted == Some(Interrupt::LifetimeReached),
                bytes_from_client,
                bytes_to_client,
                statements,
            },
            reusable,
        };
        (client, relayed)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use latchkey_framing::{Window, cost, read_within};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    /// Messages of a 4-byte length and a body, each looked at whole.
    #[derive(Default)]
    struct Whole {
        window: Window,
    }

    impl Framing for Whole {
        type Tracker = ();
        type Taken = Infallible;
        type Error = Infallible;
        fn statements(_: &()) -> u64 {
            0
        }
        fn backlogged(_: &()) -> bool {
            false
        }
        fn poll_audit_room(_: &(), _: &mut Context<'_>) -> Poll<()> {
            Poll::Ready(())
        }
        fn window(&self) -> &Window {
            &self.window
        }
        fn window_mut(&mut self) -> &mut Window {
            &mut self.window
        }
        fn scan(
            &mut self,
            _: Direction,
            _: &mut (),
            _: usize,
        ) -> Result<Option<Infallible>, Infallible> {
            let w = &mut self.window;
            while w.unscanned() >= 4 {
                let at = w.scanned();
                let head: [u8; 4] = w.read()[at..at + 4].try_into().unwrap_or_default();
                let len = 4 + u32::from_be_bytes(head) as usize;
                if w.unscanned() < len {
                    w.reserve(len);
                    break;
                }
                w.pass(len, 0);
            }
            Ok(None)
        }
    }

    const BODY: usize = 2 << 20;

    fn message_head() -> Vec<u8> {
        (BODY as u32).to_be_bytes().to_vec()
    }

    /// A direction relayed from `client` to `server`.
    struct Side {
        half: Half<Whole>,
        client: DuplexStream,
        server: DuplexStream,
    }

    impl Side {
        /// The side and the test's ends: what the client writes, what
        /// the server reads.
        fn new(budget: &Arc<MessageBudget>) -> (Self, DuplexStream, DuplexStream) {
            Self::with_server_room(budget, 4 * BODY)
        }

        /// A server that takes at most `room` bytes unread.
        fn with_server_room(
            budget: &Arc<MessageBudget>,
            room: usize,
        ) -> (Self, DuplexStream, DuplexStream) {
            let (client, client_end) = duplex(4 * BODY);
            let (server, server_end) = duplex(room);
            let side = Self {
                half: Half::with_budget(budget.share_of("principal")),
                client,
                server,
            };
            (side, client_end, server_end)
        }

        /// Relays for a while: `None` while it waits.
        async fn relay(&mut self) -> Option<Result<HalfEnd, RelayError<Infallible>>> {
            let poll = std::future::poll_fn(|cx| {
                self.half.poll_copy(
                    cx,
                    Direction::ToUpstream,
                    Pin::new(&mut self.client),
                    Pin::new(&mut self.server),
                    &mut (),
                    usize::MAX,
                )
            });
            tokio::time::timeout(Duration::from_millis(50), poll)
                .await
                .ok()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_message_waits_for_room_and_a_stalled_one_is_ended() {
        // Room for one message of 2 MiB at a time.
        let budget = MessageBudget::new(cost(4 + BODY) + 1000);
        let (mut a, mut a_client, mut a_server) = Side::new(&budget);
        let (mut b, mut b_client, _b_server) = Side::new(&budget);

        a_client.write_all(&message_head()).await.unwrap();
        a_client.write_all(&vec![b'a'; BODY / 2]).await.unwrap();
        assert!(a.relay().await.is_none());
        assert_eq!(
            budget.held(),
            cost(4 + BODY),
            "a holds room for its message"
        );

        b_client.write_all(&message_head()).await.unwrap();
        b_client.write_all(&vec![b'b'; BODY / 2]).await.unwrap();
        assert!(b.relay().await.is_none());
        assert_eq!(budget.waiting(), 1, "b waits");
        assert!(
            b.half.buffer.window().capacity() <= LARGE_MESSAGE,
            "b's buffer did not grow"
        );

        // a's message is finished and passed on: its room goes to b.
        a_client.write_all(&vec![b'a'; BODY / 2]).await.unwrap();
        assert!(a.relay().await.is_none());
        let mut passed = vec![0; 4 + BODY];
        a_server.read_exact(&mut passed).await.unwrap();
        assert!(passed[4..].iter().all(|&c| c == b'a'));
        assert_eq!(a.half.leased(), 0);
        assert!(b.relay().await.is_none());
        assert_eq!((budget.waiting(), b.half.leased()), (0, cost(4 + BODY)));

        // b stops sending: past its deadline, its session is ended and its
        // room given back.
        tokio::time::advance(read_within(4 + BODY)).await;
        match b.relay().await {
            Some(Err(e)) => assert!(e.is_overdue(), "{e}"),
            other => panic!(
                "b was not ended: {:?}",
                other.map(|r| r.map_err(|e| e.to_string()))
            ),
        }
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scanned_message_the_server_does_not_take_holds_only_its_bytes() {
        let budget = MessageBudget::new(2 * cost(4 + BODY));
        // A server busy with something else: it reads nothing.
        let (mut a, mut a_client, _a_server) = Side::with_server_room(&budget, 64 << 10);
        a_client.write_all(&message_head()).await.unwrap();
        a_client.write_all(&vec![b'a'; BODY / 2]).await.unwrap();
        assert!(a.relay().await.is_none());
        assert_eq!(
            a.half.leased(),
            cost(4 + BODY),
            "room for the followers' work"
        );
        a_client.write_all(&vec![b'a'; BODY / 2]).await.unwrap();
        assert!(a.relay().await.is_none());
        assert_eq!(
            a.half.leased(),
            a.half.buffer.window().capacity(),
            "once scanned, only the bytes waiting to be written"
        );
        assert_eq!(budget.held(), a.half.leased());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_granted_before_the_buffer_grows_is_kept() {
        let budget = MessageBudget::new(2 * cost(4 + BODY));
        let mut half: Half<Whole> = Half::with_budget(budget.share_of("principal"));
        half.buffer.window_mut().reserve(4 + BODY);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(half.poll_room(&mut cx).is_ready());
        // Transaction pooling settles between transactions, before the
        // buffer grows.
        half.settle();
        assert_eq!(half.leased(), cost(4 + BODY), "kept for the growth to come");
        half.buffer.make_room();
        half.settle();
        assert_eq!(
            half.leased(),
            cost(4 + BODY),
            "held while the buffer is large"
        );
    }
}
