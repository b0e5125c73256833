//! The gateways' TLS server stream: a client's TLS session that holds no
//! buffer while the client is idle.
//!
//! rustls's buffered `ServerConnection` keeps a 4 KiB record buffer for as
//! long as a session lives, which with thousands of idle pooled clients is
//! a third of what the gateway holds for each. [`TlsStream`] drives
//! rustls's unbuffered API instead: ciphertext is read into, and written
//! from, buffers taken from the thread's spares (`latchkey-spare`) and
//! given back as soon as nothing is left in them. An idle session keeps
//! rustls's state (its record keys) and nothing else.
//!
//! The unbuffered connection does not tell which server name (SNI) the
//! client asked for. rustls hands it to the certificate resolver, which it
//! calls synchronously while processing the ClientHello, so
//! [`TlsAcceptor`] wraps the configuration's resolver to note it in a
//! thread-local slot that the stream reads right after that call.
//!
//! Semantics follow tokio-rustls's server stream: a client that closes
//! TCP without `close_notify` is an [`io::ErrorKind::UnexpectedEof`]
//! error, a `close_notify` an end of stream, and shutting down sends one.

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::ServerConfig;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerConnectionData, UnbufferedServerConnection,
};
use rustls::sign::CertifiedKey;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, WriteTraffic,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest TLS record on the wire: a header and 16 KiB of plaintext
/// with TLS 1.2's allowance of 2 KiB for expansion.
const MAX_RECORD: usize = 5 + 16 * 1024 + 2048;

/// The most ciphertext kept while a handshake message spans records:
/// rustls's own limit for its buffered API (64 KiB messages), and a record.
const MAX_HANDSHAKE_BUFFER: usize = 0xffff + MAX_RECORD;

/// Plaintext encrypted per write: one record that, with any suite's
/// overhead, fits a spare buffer.
const MAX_PLAINTEXT_PER_WRITE: usize = latchkey_spare::BUFFER - 64;

thread_local! {
    /// The server name of the ClientHello the resolver saw last on this
    /// thread (see the crate's documentation).
    static SEEN_SERVER_NAME: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Wraps a certificate resolver to note each ClientHello's server name.
#[derive(Debug)]
struct NotesServerName(Arc<dyn ResolvesServerCert>);

impl ResolvesServerCert for NotesServerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            SEEN_SERVER_NAME.with(|seen| *seen.borrow_mut() = Some(name.to_owned()));
        }
        self.0.resolve(hello)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }
}

/// Accepts TLS clients with one server configuration.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor").finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// An acceptor for `config`. Early data is never accepted, whatever
    /// the configuration says: a replayable first flight has no place in
    /// a database login.
    pub fn new(mut config: ServerConfig) -> Self {
        config.cert_resolver = Arc::new(NotesServerName(config.cert_resolver.clone()));
        config.max_early_data_size = 0;
        Self {
            config: Arc::new(config),
        }
    }

    /// Runs the server's side of a handshake on `io`. Returns the session
    /// and the server name the client asked for, if it sent one.
    pub async fn accept<IO>(&self, io: IO) -> io::Result<(TlsStream<IO>, Option<String>)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let conn = UnbufferedServerConnection::new(self.config.clone()).map_err(invalid_data)?;
        let mut stream = TlsStream {
            io,
            conn,
            incoming: Incoming::default(),
            outgoing: Outgoing::default(),
            plaintext: Stash::default(),
            server_name: None,
            handshaking: true,
            read_closed: false,
            close_sent: false,
        };
        poll_fn(|cx| stream.poll_pump(cx, Goal::Handshake)).await?;
        let name = stream.server_name.take();
        Ok((stream, name))
    }
}

/// A client's TLS session over `IO`, past its handshake.
pub struct TlsStream<IO> {
    io: IO,
    conn: UnbufferedServerConnection,
    incoming: Incoming,
    outgoing: Outgoing,
    /// Plaintext of a record the reader had no room for.
    plaintext: Stash,
    server_name: Option<String>,
    handshaking: bool,
    /// The client sent `close_notify`: reads end.
    read_closed: bool,
    close_sent: bool,
}

impl<IO> fmt::Debug for TlsStream<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("handshaking", &self.handshaking)
            .field("read_closed", &self.read_closed)
            .field("close_sent", &self.close_sent)
            .finish_non_exhaustive()
    }
}

impl<IO> TlsStream<IO> {
    /// The stream underneath.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Bytes of buffer the session holds besides rustls's own state: none
    /// while nothing is in flight.
    pub fn buffered_capacity(&self) -> usize {
        self.incoming.buf.capacity() + self.outgoing.buf.capacity() + self.plaintext.buf.capacity()
    }
}

/// What the pump is asked to get done.
enum Goal<'a, 'b> {
    /// Run the handshake until application data may be sent.
    Handshake,
    /// Put plaintext into the buffer (or reach the end of the stream).
    Read(&'a mut ReadBuf<'b>),
    /// Encrypt (some of) these bytes.
    Write(&'a [u8]),
    /// Queue a `close_notify`.
    Close,
}

/// What the pump got done.
enum Reached {
    Established,
    /// Plaintext was read, or the stream has ended.
    Read,
    Wrote(usize),
    Closed,
}

/// What to do after one call into rustls.
enum Next {
    Again,
    Transmit,
    NeedCiphertext,
    Failed(rustls::Error),
    Done(Reached),
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    /// Drives rustls towards `goal`: processes the ciphertext read,
    /// encodes and sends the records it asks to send, and reads more when
    /// it needs more.
    fn poll_pump(
        &mut self,
        cx: &mut Context<'_>,
        mut goal: Goal<'_, '_>,
    ) -> Poll<io::Result<Reached>> {
        let mut delivered = false;
        loop {
            if let Goal::Read(buf) = &goal
                && delivered
                && (buf.remaining() == 0 || !self.plaintext.is_empty())
            {
                return Poll::Ready(Ok(Reached::Read));
            }
            if self.handshaking {
                SEEN_SERVER_NAME.with(|seen| seen.borrow_mut().take());
            }
            let status = self.conn.process_tls_records(self.incoming.pending_mut());
            let discard = status.discard;
            let next = match status.state {
                Err(e) => Next::Failed(e),
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    let mut next = Next::Again;
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                let out = match &mut goal {
                                    Goal::Read(buf) => Some(&mut **buf),
                                    _ => None,
                                };
                                self.plaintext.deliver(out, record.payload);
                                delivered |= !record.payload.is_empty();
                            }
                            Err(e) => {
                                next = Next::Failed(e);
                                break;
                            }
                        }
                    }
                    next
                }
                Ok(ConnectionState::EncodeTlsData(mut data)) => loop {
                    match data.encode(self.outgoing.space()) {
                        Ok(n) => {
                            self.outgoing.filled(n);
                            break Next::Again;
                        }
                        Err(EncodeError::InsufficientSize(InsufficientSizeError {
                            required_size,
                        })) => self.outgoing.reserve(required_size),
                        Err(EncodeError::AlreadyEncoded) => break Next::Again,
                    }
                },
                Ok(ConnectionState::TransmitTlsData(mut sent)) => {
                    if self.outgoing.is_empty() {
                        sent.done();
                        Next::Again
                    } else if let Goal::Write(data) = &goal
                        && let Some(mut traffic) = sent.may_encrypt_app_data()
                    {
                        // After the records queued before it.
                        encrypt(&mut traffic, data, &mut self.outgoing)
                    } else {
                        Next::Transmit
                    }
                }
                Ok(ConnectionState::BlockedHandshake) => Next::NeedCiphertext,
                Ok(ConnectionState::PeerClosed) => {
                    self.read_closed = true;
                    match goal {
                        Goal::Read(_) => Next::Done(Reached::Read),
                        // A client may send its request and close_notify
                        // right behind its Finished (a cancel request does):
                        // what it sent waits in the stash.
                        Goal::Handshake if !self.conn.is_handshaking() => {
                            Next::Done(Reached::Established)
                        }
                        Goal::Handshake => Next::Failed(rustls::Error::HandshakeNotComplete),
                        _ => Next::Again,
                    }
                }
                Ok(ConnectionState::Closed) => {
                    self.read_closed = true;
                    match goal {
                        Goal::Read(_) => Next::Done(Reached::Read),
                        Goal::Close => Next::Done(Reached::Closed),
                        _ => {
                            Next::Failed(rustls::Error::General("the TLS session is closed".into()))
                        }
                    }
                }
                Ok(ConnectionState::WriteTraffic(mut traffic)) => match &goal {
                    Goal::Handshake => Next::Done(Reached::Established),
                    Goal::Read(_) if delivered || self.read_closed => Next::Done(Reached::Read),
                    Goal::Read(_) => Next::NeedCiphertext,
                    Goal::Write(data) => encrypt(&mut traffic, data, &mut self.outgoing),
                    Goal::Close => loop {
                        match traffic.queue_close_notify(self.outgoing.space()) {
                            Ok(n) => {
                                self.outgoing.filled(n);
                                break Next::Done(Reached::Closed);
                            }
                            Err(EncryptError::InsufficientSize(InsufficientSizeError {
                                required_size,
                            })) => self.outgoing.reserve(required_size),
                            Err(EncryptError::EncryptExhausted) => {
                                break Next::Failed(rustls::Error::EncryptError);
                            }
                        }
                    },
                },
                // Early data is switched off (`TlsAcceptor::new`), and
                // states rustls may add later are not understood.
                Ok(_) => Next::Failed(rustls::Error::General("unexpected TLS state".into())),
            };
            self.incoming.discard(discard);
            if self.handshaking {
                if let Some(name) = SEEN_SERVER_NAME.with(|seen| seen.borrow_mut().take()) {
                    self.server_name = Some(name);
                }
                if matches!(next, Next::Done(Reached::Established)) {
                    self.handshaking = false;
                }
            }
            match next {
                Next::Again => {}
                Next::Done(reached) => return Poll::Ready(Ok(reached)),
                Next::Transmit => match self.poll_transmit(cx) {
                    Poll::Ready(result) => result?,
                    // The client is not reading yet. What waits goes out
                    // on a later call; meanwhile a finished handshake is
                    // finished (TLS 1.3 session tickets wait for the
                    // client, as in rustls's buffered API), plaintext
                    // given to the reader is not held back, and reading
                    // goes on: a client sending a long message before it
                    // reads must not stall on records it has yet to read.
                    Poll::Pending => match &goal {
                        Goal::Handshake if !self.conn.is_handshaking() => {
                            self.handshaking = false;
                            return Poll::Ready(Ok(Reached::Established));
                        }
                        Goal::Read(_) if delivered => return Poll::Ready(Ok(Reached::Read)),
                        Goal::Read(_) => ready!(self.poll_ciphertext(cx))?,
                        _ => return Poll::Pending,
                    },
                },
                Next::Failed(e) => {
                    self.last_gasp(cx);
                    return Poll::Ready(Err(invalid_data(e)));
                }
                Next::NeedCiphertext => {
                    if delivered {
                        return Poll::Ready(Ok(Reached::Read));
                    }
                    ready!(self.poll_ciphertext(cx))?;
                }
            }
        }
    }

    /// Reads more ciphertext; the client closing TCP is an error here
    /// (a `close_notify` would have ended the stream first).
    fn poll_ciphertext(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let limit = if self.handshaking {
            MAX_HANDSHAKE_BUFFER
        } else {
            MAX_RECORD
        };
        if ready!(self.incoming.poll_fill(cx, &mut self.io, limit))? == 0 {
            let why = if self.handshaking {
                "TLS handshake ended early"
            } else {
                "the client closed the connection without a TLS close_notify"
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, why)));
        }
        Poll::Ready(Ok(()))
    }

    /// Writes out the ciphertext queued.
    fn poll_transmit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, self.outgoing.pending()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing.sent(n);
        }
        Poll::Ready(Ok(()))
    }

    /// After a fatal error, tries once to send the alert rustls queued
    /// for the client (it learns why the handshake failed, as it would
    /// from any TLS server).
    fn last_gasp(&mut self, cx: &mut Context<'_>) {
        // One call: the alert is the first thing rustls gives back. A
        // second would process the offending bytes again.
        let status = self.conn.process_tls_records(self.incoming.pending_mut());
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = status.state {
            let space = self.outgoing.space();
            if let Ok(n) = data.encode(space) {
                self.outgoing.filled(n);
            }
        }
        let _ = self.poll_transmit(cx);
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.plaintext.is_empty() {
            this.plaintext.drain_into(buf);
            return Poll::Ready(Ok(()));
        }
        if this.read_closed || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_pump(cx, Goal::Read(buf)))?;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    /// Encrypts up to one record of `data` and tries to send it; what the
    /// socket does not take now goes before the next write's.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.close_sent {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        ready!(this.poll_transmit(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let Reached::Wrote(n) = ready!(this.poll_pump(cx, Goal::Write(data)))? else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        // Sent now if the socket takes it; otherwise on the next write or flush.
        match this.poll_transmit(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(n)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_transmit(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent {
            ready!(this.poll_transmit(cx))?;
            ready!(this.poll_pump(cx, Goal::Close))?;
            this.close_sent = true;
        }
        ready!(this.poll_transmit(cx))?;
        match ready!(Pin::new(&mut this.io).poll_shutdown(cx)) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// Ciphertext read from the client and not yet processed:
/// `buf[start..end]`. `buf` is empty while nothing is pending.
#[derive(Default)]
struct Incoming {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Incoming {
    fn pending_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    fn discard(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
    }

    /// Reads more ciphertext, growing the buffer (up to `limit`) when a
    /// record does not fit it. Gives the buffer back to the thread's
    /// spares when the read would wait with nothing pending.
    fn poll_fill<IO: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut IO,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        if self.buf.is_empty() {
            self.buf = latchkey_spare::take();
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= limit {
                return Poll::Ready(Err(invalid_data(rustls::Error::General(
                    "TLS record larger than allowed".into(),
                ))));
            }
            let grown = (self.buf.len() * 2).min(limit);
            self.buf.resize(grown, 0);
        }
        let mut read = ReadBuf::new(&mut self.buf[self.end..]);
        match Pin::new(io).poll_read(cx, &mut read) {
            Poll::Pending => {
                if self.end == 0 {
                    latchkey_spare::give(std::mem::take(&mut self.buf));
                }
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                self.end += n;
                Poll::Ready(Ok(n))
            }
        }
    }
}

/// Ciphertext waiting to be sent: `buf[start..end]`. `buf` is empty while
/// nothing waits.
#[derive(Default)]
struct Outgoing {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Outgoing {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Room after what waits, taking a spare buffer if there is none.
    fn space(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = latchkey_spare::take();
        }
        &mut self.buf[self.end..]
    }

    fn filled(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.buf.len());
    }

    /// Makes room for `n` more bytes after what waits.
    fn reserve(&mut self, n: usize) {
        if self.buf.is_empty() {
            self.buf = latchkey_spare::take();
        }
        if self.buf.len() - self.end >= n {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < n {
            self.buf.resize(self.end + n, 0);
        }
    }

    /// `n` bytes were sent; an emptied buffer goes back to the spares.
    fn sent(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            latchkey_spare::give(std::mem::take(&mut self.buf));
            self.start = 0;
            self.end = 0;
        }
    }
}

/// Plaintext decrypted that the reader had no room for: `buf[at..]`.
#[derive(Default)]
struct Stash {
    buf: Vec<u8>,
    at: usize,
}

impl Stash {
    fn is_empty(&self) -> bool {
        self.at == self.buf.len()
    }

    /// Gives a record's plaintext to the reader, keeping what does not fit
    /// (or all of it when there is no reader, or older plaintext waits).
    fn deliver(&mut self, reader: Option<&mut ReadBuf<'_>>, payload: &[u8]) {
        let mut rest = payload;
        if self.is_empty()
            && let Some(buf) = reader
        {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            if self.is_empty() {
                self.buf.clear();
                self.at = 0;
            }
            self.buf.extend_from_slice(rest);
        }
    }

    fn drain_into(&mut self, buf: &mut ReadBuf<'_>) {
        let n = (self.buf.len() - self.at).min(buf.remaining());
        buf.put_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        if self.is_empty() {
            self.buf = Vec::new();
            self.at = 0;
        }
    }
}

/// Encrypts up to a record of `data` after what `outgoing` holds.
fn encrypt(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    data: &[u8],
    outgoing: &mut Outgoing,
) -> Next {
    let chunk = &data[..data.len().min(MAX_PLAINTEXT_PER_WRITE)];
    loop {
        match traffic.encrypt(chunk, outgoing.space()) {
            Ok(n) => {
                outgoing.filled(n);
                return Next::Done(Reached::Wrote(chunk.len()));
            }
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                outgoing.reserve(required_size)
            }
            Err(EncryptError::EncryptExhausted) => {
                return Next::Failed(rustls::Error::EncryptError);
            }
        }
    }
}

fn invalid_data(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests;
