//! Message boundaries in one direction's bytes.

use latchkey_framing::{Direction, Framing, Window};

use crate::tracker::{Tracker, Verdict};
use crate::{INSPECT_PREFIX, ScanError};

/// Bytes of a message header: a tag and a length.
const HEADER: usize = 5;

/// One direction's bytes: read, scanned up to a message boundary, and
/// written on.
#[derive(Default)]
pub struct Buffer {
    window: Window,
}

impl Framing for Buffer {
    type Tracker = Tracker;
    type Taken = std::convert::Infallible;
    type Error = ScanError;

    fn statements(tracker: &Tracker) -> u64 {
        tracker.statement_count
    }
    fn backlogged(tracker: &Tracker) -> bool {
        tracker.backlogged()
    }
    fn poll_audit_room(tracker: &Tracker, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        tracker.poll_audit_room(cx)
    }
    fn window(&self) -> &Window {
        &self.window
    }
    fn make_room(&mut self) {
        Buffer::make_room(self);
    }
    fn window_mut(&mut self) -> &mut Window {
        &mut self.window
    }
    fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Tracker,
        max_message: usize,
    ) -> Result<Option<std::convert::Infallible>, ScanError> {
        Buffer::scan(self, direction, tracker, max_message).map(|()| None)
    }
}

impl Buffer {
    /// Everything read has been written and no message is half sent.
    pub fn at_boundary(&self) -> bool {
        self.window.at_boundary()
    }

    /// Everything scanned has been written and no message is half sent
    /// (bytes read but not yet scanned were never passed on).
    pub fn nothing_in_flight(&self) -> bool {
        self.window.nothing_in_flight()
    }

    /// Bytes written on so far.
    pub fn written(&self) -> u64 {
        self.window.written()
    }

    /// Starts over when everything is written, or moves a partial message
    /// at the end to the front. A grown buffer is kept while a message
    /// streams through.
    pub fn make_room(&mut self) {
        let shrink = self.window.skipping() == 0;
        self.window.make_room(shrink);
    }

    /// Walks message headers in what was read and not yet scanned,
    /// handing the messages the tracker wants to it.
    pub fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Tracker,
        max_message: usize,
    ) -> Result<(), ScanError> {
        let w = &mut self.window;
        loop {
            if !w.pass_skipped() {
                return Ok(());
            }
            let available = w.unscanned();
            if available < HEADER {
                return Ok(());
            }
            let at = w.scanned();
            let read = w.read();
            let tag = read[at];
            let len = u32::from_be_bytes([read[at + 1], read[at + 2], read[at + 3], read[at + 4]])
                as usize;
            let Some(body_len) = len.checked_sub(4) else {
                return Err(ScanError::Malformed);
            };
            if body_len > max_message {
                return Err(ScanError::TooLarge(body_len));
            }
            if !tracker.wants(direction, tag) {
                tracker.passed(direction, tag);
                w.pass(HEADER, body_len);
                continue;
            }
            // SQL is checked whole, so that nothing padded slips past.
            let look = if tracker.checks(direction, tag) {
                body_len
            } else {
                body_len.min(INSPECT_PREFIX)
            };
            if available < HEADER + look {
                w.reserve(HEADER + look);
                return Ok(());
            }
            let body = &read[at + HEADER..at + HEADER + look];
            match tracker.message(direction, tag, body, look == body_len) {
                Verdict::Terminate => {
                    // Nothing from the client after Terminate is passed on.
                    w.terminate(at);
                    return Ok(());
                }
                // The whole message is here (checked SQL is read whole);
                // what follows it moves, unscanned.
                Verdict::Replace(message) => w.replace(at, HEADER + body_len, &message),
                Verdict::Forward => w.pass(HEADER + look, body_len - look),
            }
        }
    }
}
