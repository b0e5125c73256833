//! The byte window each relay direction reads into, scans and writes
//! from, shared by the protocols' buffers.

pub use latchkey_spare::BUFFER;

/// One direction's bytes, in a buffer reused from read to read: read,
/// scanned up to a message boundary, and written on.
///
/// Invariants: `start <= scanned <= end <= buf.len()`, and
/// `buf.len() >= BUFFER` unless the window is released (`buf` empty,
/// nothing in it). Bytes in `start..scanned` are whole messages
/// (or the streamed part of one) ready to write; `scanned..end` is read
/// but not yet looked at. While `skip > 0`, that many bytes of the
/// current message pass through without being scanned. The window grows
/// only when a protocol [`reserve`](Window::reserve)s room to see a
/// message whole, and shrinks back in [`make_room`](Window::make_room):
/// nothing on the per-message path allocates otherwise.
#[derive(Debug, Default)]
pub struct Window {
    /// Empty until the first read, and while released: a direction that
    /// is never read (or a session that never gets past login) holds none.
    buf: Vec<u8>,
    /// Bytes before `start` are written.
    start: usize,
    /// Bytes before `scanned` may be written.
    scanned: usize,
    /// Bytes before `end` are read.
    end: usize,
    /// Bytes of the current message still to pass through unscanned.
    skip: usize,
    /// Room a large message asked for, which the window grows to at its
    /// next [`make_room`](Window::make_room): the relay takes a lease on
    /// the gateway's [`MessageBudget`](crate::MessageBudget) first.
    wanted: usize,
    /// A large message was reserved for and is not yet scanned.
    large_unscanned: bool,
    written: u64,
    terminated: bool,
}

impl Window {
    /// Scanned bytes waiting to be written.
    #[inline]
    pub fn writable(&self) -> &[u8] {
        &self.buf[self.start..self.scanned]
    }

    /// `n` bytes of [`Window::writable`] were written.
    #[inline]
    pub fn wrote(&mut self, n: usize) {
        debug_assert!(n <= self.scanned - self.start);
        self.start += n;
        self.written += n as u64;
    }

    /// Bytes written on so far.
    #[inline]
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Nothing more is passed on (see [`Window::terminate`]).
    #[inline]
    pub fn terminated(&self) -> bool {
        self.terminated
    }

    /// Room to read into (call [`Window::make_room`] first).
    #[inline]
    pub fn space(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = latchkey_spare::take();
        }
        &mut self.buf[self.end..]
    }

    /// Gives the buffer up while the window holds nothing (an idle
    /// session waiting for its next bytes); the next read takes one back.
    /// Returns whether it was given up.
    pub fn release(&mut self) -> bool {
        if self.buf.is_empty() || self.start != self.end || self.skip != 0 {
            return false;
        }
        let buf = std::mem::take(&mut self.buf);
        (self.start, self.scanned, self.end) = (0, 0, 0);
        // A grown buffer is freed: spare ones are BUFFER long.
        latchkey_spare::give(buf);
        true
    }

    /// `n` bytes were read into [`Window::space`].
    #[inline]
    pub fn filled(&mut self, n: usize) {
        debug_assert!(n <= self.buf.len() - self.end);
        self.end += n;
    }

    /// Starts over when everything is written (shrinking a grown buffer
    /// back when `shrink`), or moves a partial message at the end to the
    /// front.
    pub fn make_room(&mut self, shrink: bool) {
        if self.start == self.end {
            self.start = 0;
            self.scanned = 0;
            self.end = 0;
            if shrink && self.buf.len() > BUFFER {
                self.buf.truncate(BUFFER);
                self.buf.shrink_to_fit();
            }
        } else if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        let wanted = std::mem::take(&mut self.wanted);
        if self.buf.len() < wanted {
            self.buf.resize(wanted, 0);
        }
    }

    /// Everything read has been written and no message is half sent.
    #[inline]
    pub fn at_boundary(&self) -> bool {
        self.skip == 0 && self.start == self.end
    }

    /// Everything scanned has been written and no message is half sent
    /// (bytes read but not yet scanned were never passed on).
    #[inline]
    pub fn nothing_in_flight(&self) -> bool {
        self.skip == 0 && self.start == self.scanned
    }

    /// Bytes of the current message still to stream through unscanned.
    #[inline]
    pub fn skipping(&self) -> usize {
        self.skip
    }

    /// Everything read, from the start of the buffer: offsets into it are
    /// what [`Window::scanned`] and the methods taking `at` use.
    #[inline]
    pub fn read(&self) -> &[u8] {
        &self.buf[..self.end]
    }

    /// Where scanning goes on.
    #[inline]
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// Read but not yet scanned.
    #[inline]
    pub fn unscanned(&self) -> usize {
        self.end - self.scanned
    }

    /// The buffer's size (grown or not; 0 while released).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Streams on what is read of the message being skipped; true when
    /// none of it is left (the next header may be scanned).
    #[inline]
    pub fn pass_skipped(&mut self) -> bool {
        let n = self.skip.min(self.end - self.scanned);
        self.scanned += n;
        self.skip -= n;
        self.skip == 0
    }

    /// Marks `seen` bytes at [`Window::scanned`] writable and streams the
    /// next `rest` through unscanned.
    #[inline]
    pub fn pass(&mut self, seen: usize, rest: usize) {
        debug_assert!(seen <= self.end - self.scanned);
        self.scanned += seen;
        self.skip = rest;
        self.large_unscanned = false;
    }

    /// Makes sure `n` bytes fit once those before the scan point are
    /// written and moved out (a message looked at whole).
    ///
    /// Room for a large message (over [`crate::LARGE_MESSAGE`] bytes) is
    /// only noted, and made at the next [`make_room`](Window::make_room)
    /// (see [`Window::wanted`]).
    pub fn reserve(&mut self, n: usize) {
        if self.buf.len() >= n {
            return;
        }
        if n > crate::LARGE_MESSAGE {
            self.wanted = self.wanted.max(n);
            self.large_unscanned = true;
        } else {
            self.buf.resize(n.max(BUFFER), 0);
        }
    }

    /// How far the next [`make_room`](Window::make_room) grows the
    /// buffer for a large message (0: it does not).
    #[inline]
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// A large message the window grew for is not yet scanned: the
    /// followers have yet to read it.
    #[inline]
    pub fn large_unscanned(&self) -> bool {
        self.large_unscanned
    }

    /// Nothing from `at` on, nor anything read later, is passed on.
    pub fn terminate(&mut self, at: usize) {
        debug_assert!((self.scanned..=self.end).contains(&at));
        self.terminated = true;
        self.end = at;
        self.large_unscanned = false;
    }

    /// Puts `with` in place of the `len` bytes at `at` (a whole message
    /// at the scan point) and marks it writable; what follows moves,
    /// unscanned.
    pub fn replace(&mut self, at: usize, len: usize, with: &[u8]) {
        debug_assert!(at == self.scanned && at + len <= self.end);
        self.buf.splice(at..at + len, with.iter().copied());
        self.end = self.end - len + with.len();
        if self.buf.len() < BUFFER {
            self.buf.resize(BUFFER, 0);
        }
        self.scanned = at + with.len();
        self.large_unscanned = false;
    }

    /// Takes the `len` bytes at `at` (a whole message at the scan point)
    /// out of the stream; what follows moves up, unscanned.
    pub fn remove(&mut self, at: usize, len: usize) {
        debug_assert!(at == self.scanned && at + len <= self.end);
        self.buf.copy_within(at + len..self.end, at);
        self.end -= len;
        self.large_unscanned = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(bytes: &[u8]) -> Window {
        let mut w = Window::default();
        w.make_room(true);
        w.space()[..bytes.len()].copy_from_slice(bytes);
        w.filled(bytes.len());
        w
    }

    #[test]
    fn read_scanned_written() {
        let mut w = filled(b"abcdef");
        assert!(w.writable().is_empty());
        assert_eq!(w.unscanned(), 6);
        w.pass(2, 0);
        assert_eq!(w.writable(), b"ab");
        assert!(!w.nothing_in_flight() && !w.at_boundary());
        w.wrote(2);
        assert_eq!(w.written(), 2);
        assert!(w.nothing_in_flight());
        assert!(!w.at_boundary());
        w.pass(4, 0);
        w.wrote(4);
        assert!(w.at_boundary());
        assert_eq!(w.written(), 6);
    }

    #[test]
    fn skipped_bytes_stream_across_reads() {
        let mut w = filled(b"hdr12");
        w.pass(3, 5);
        assert_eq!(w.skipping(), 5);
        assert!(!w.pass_skipped());
        assert_eq!(w.writable(), b"hdr12");
        assert_eq!(w.skipping(), 3);
        w.wrote(5);
        assert!(!w.at_boundary());
        w.make_room(true);
        w.space()[..4].copy_from_slice(b"345h");
        w.filled(4);
        assert!(w.pass_skipped());
        assert_eq!(w.writable(), b"345");
        assert_eq!(w.unscanned(), 1);
        // Nothing to skip: nothing moves.
        assert!(w.pass_skipped());
        assert_eq!(w.unscanned(), 1);
    }

    #[test]
    fn make_room_starts_over_or_moves_a_partial_message() {
        let mut w = filled(b"xy");
        w.pass(2, 0);
        w.wrote(2);
        w.make_room(true);
        assert_eq!((w.scanned(), w.read().len()), (0, 0));
        assert_eq!(w.space().len(), BUFFER);
        // A full buffer with a partial message at its end moves it.
        let n = w.space().len();
        w.space().fill(b'z');
        w.filled(n);
        w.pass(n - 3, 0);
        w.wrote(n - 3);
        w.make_room(true);
        assert_eq!(w.read(), b"zzz");
        assert_eq!(w.scanned(), 0);
        assert_eq!(w.space().len(), BUFFER - 3);
        // Room left: nothing moves.
        let mut w = filled(b"abc");
        w.pass(1, 0);
        w.wrote(1);
        w.make_room(true);
        assert_eq!(w.read(), b"abc");
    }

    #[test]
    fn a_grown_buffer_shrinks_once_written_unless_told_not_to() {
        let mut w = filled(b"m");
        w.reserve(BUFFER * 2);
        assert_eq!(w.capacity(), BUFFER * 2);
        w.reserve(10);
        assert_eq!(w.capacity(), BUFFER * 2);
        w.pass(1, 0);
        w.wrote(1);
        w.make_room(false);
        assert_eq!(w.capacity(), BUFFER * 2);
        w.make_room(true);
        assert_eq!(w.capacity(), BUFFER);
    }

    #[test]
    fn room_for_a_large_message_is_made_at_the_next_make_room() {
        let mut w = filled(b"Q...");
        let large = crate::LARGE_MESSAGE + 1;
        w.reserve(large);
        assert_eq!(
            (w.capacity(), w.wanted()),
            (BUFFER, large),
            "noted, not made"
        );
        w.make_room(true);
        assert_eq!((w.capacity(), w.wanted()), (large, 0));
        assert_eq!(w.read(), b"Q...", "what was read stays");
        w.pass(4, 0);
        w.wrote(4);
        w.make_room(true);
        assert_eq!(w.capacity(), BUFFER, "shrinks back once written");
    }

    #[test]
    fn an_empty_window_gives_its_buffer_up_and_takes_one_back() {
        let w = Window::default();
        assert_eq!(w.capacity(), 0, "no buffer before the first read");
        let mut w = filled(b"abc");
        assert!(!w.release(), "bytes not yet written keep the buffer");
        w.pass(3, 2);
        w.wrote(3);
        assert!(!w.release(), "a message half streamed keeps the buffer");
        w.space()[..2].copy_from_slice(b"de");
        w.filled(2);
        assert!(w.pass_skipped());
        w.wrote(2);
        assert!(w.release());
        assert!(w.capacity() == 0 && w.at_boundary());
        assert_eq!(w.written(), 5, "the tally survives a release");
        // The next read takes a buffer back, whole and from the start.
        w.make_room(true);
        assert_eq!(w.space().len(), BUFFER);
        w.space()[..2].copy_from_slice(b"fg");
        w.filled(2);
        assert_eq!(w.read(), b"fg");
        // A grown buffer is freed rather than kept as a spare.
        w.reserve(BUFFER * 3);
        w.pass(2, 0);
        w.wrote(2);
        assert!(w.release());
        assert_eq!(w.space().len(), BUFFER);
    }

    #[test]
    fn terminate_drops_the_rest() {
        let mut w = filled(b"okXrest");
        w.pass(2, 0);
        w.terminate(2);
        assert!(w.terminated());
        assert_eq!(w.read(), b"ok");
        assert_eq!(w.writable(), b"ok");
    }

    #[test]
    fn replace_and_remove_whole_messages() {
        let mut w = filled(b"aBBBc");
        w.pass(1, 0);
        w.replace(1, 3, b"XY");
        assert_eq!(w.read(), b"aXYc");
        assert_eq!(w.writable(), b"aXY");
        assert_eq!(w.unscanned(), 1);
        assert!(w.capacity() >= BUFFER);
        let mut w = filled(b"aBBBc");
        w.pass(1, 0);
        w.remove(1, 3);
        assert_eq!(w.read(), b"ac");
        assert_eq!(w.writable(), b"a");
        assert_eq!(w.capacity(), BUFFER);
    }
}
