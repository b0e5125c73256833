//! Packet boundaries in one direction's bytes, and the commands the
//! gateway takes out of the stream.

use latchkey_framing::{Direction, Framing, Window};
use latchkey_mywire::{
    COM_CHANGE_USER, COM_PROCESS_KILL, COM_QUERY, COM_QUIT, COM_SLEEP, COM_STMT_PREPARE,
    HEADER_LEN, MAX_PACKET_PAYLOAD, command_name,
};

use crate::tracker::Tracker;
use crate::{
    ID_END, INSPECT_PREFIX, Intercepted, ScanError, WHOLE_PAYLOAD, admin_command, malformed,
};

/// Whose packets a split payload's later packets are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// A command; `queued` when it awaits a response.
    Command { queued: bool },
    /// LOCAL INFILE data.
    Upload,
    /// A server payload; `tracked` when it belongs to a queued command.
    Response { tracked: bool },
}

/// A payload of 0xFFFFFF bytes or more, whose next packet is still due.
#[derive(Clone, Copy, Debug)]
struct Split {
    next_seq: u8,
    total: usize,
    part: Part,
}

/// What scanning one packet came to.
enum Step {
    /// Wait for more bytes.
    More,
    /// Go on with the next packet.
    Next,
    Intercept(Intercepted),
}

/// One direction's bytes: read, scanned up to a packet boundary, and
/// written on.
#[derive(Default)]
pub struct Buffer {
    window: Window,
    /// A payload split over packets that has more to come.
    split: Option<Split>,
}

impl Framing for Buffer {
    type Tracker = Tracker;
    type Taken = Intercepted;
    type Error = ScanError;

    fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Tracker,
        max_payload: usize,
    ) -> Result<Option<Intercepted>, ScanError> {
        Buffer::scan(self, direction, tracker, max_payload)
    }
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
    fn window_mut(&mut self) -> &mut Window {
        &mut self.window
    }
}

impl Buffer {
    /// Everything read has been written and no payload is half sent.
    pub fn at_boundary(&self) -> bool {
        self.split.is_none() && self.window.at_boundary()
    }

    /// Everything scanned has been written and no payload is half sent
    /// (bytes read but not yet scanned were never passed on).
    pub fn nothing_in_flight(&self) -> bool {
        self.split.is_none() && self.window.nothing_in_flight()
    }

    /// Scanned bytes waiting to be written.
    pub fn writable(&self) -> &[u8] {
        self.window.writable()
    }

    /// The client sent `COM_QUIT`: nothing more is passed on (the
    /// upstream connection stays open, and may be reused).
    pub fn terminated(&self) -> bool {
        self.window.terminated()
    }

    /// Bytes passed on so far, for the session totals.
    pub fn written(&self) -> u64 {
        self.window.written()
    }

    /// Walks packet headers in what was read and not yet scanned, handing
    /// the tracker what it follows. Stops at a command the gateway must
    /// answer itself and returns it, out of the stream (everything before
    /// it is writable); call again to go on. `max_payload` limits client
    /// commands (the sum of their packets); server payloads and upload
    /// data are not limited.
    pub fn scan(
        &mut self,
        direction: Direction,
        tracker: &mut Tracker,
        max_payload: usize,
    ) -> Result<Option<Intercepted>, ScanError> {
        loop {
            if self.window.terminated() || !self.window.pass_skipped() {
                return Ok(None);
            }
            if self.window.unscanned() < HEADER_LEN {
                return Ok(None);
            }
            let at = self.window.scanned();
            let h = &self.window.read()[at..at + HEADER_LEN];
            let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
            let seq = h[3];
            let step = match (self.split, direction) {
                (Some(split), _) => self.continued(split, len, seq, tracker, max_payload)?,
                (None, Direction::ToUpstream) => {
                    self.client_packet(at, len, seq, tracker, max_payload)?
                }
                (None, Direction::ToClient) => self.server_packet(at, len, seq, tracker)?,
            };
            match step {
                Step::More => return Ok(None),
                Step::Next => {}
                Step::Intercept(i) => return Ok(Some(i)),
            }
        }
    }

    /// Passes the header and the first `look` payload bytes of the packet
    /// at the scan point, and streams the rest.
    fn pass(&mut self, look: usize, len: usize) {
        self.window.pass(HEADER_LEN + look, len - look);
    }

    /// Makes sure a packet of `len` payload bytes fits once the bytes
    /// before it are written and moved out.
    fn reserve(&mut self, len: usize) {
        self.window.reserve(HEADER_LEN + len);
    }

    /// A later packet of a split payload.
    fn continued(
        &mut self,
        split: Split,
        len: usize,
        seq: u8,
        tracker: &mut Tracker,
        max_payload: usize,
    ) -> Result<Step, ScanError> {
        if seq != split.next_seq {
            return Err(malformed(format!(
                "packet sequence id {seq} where {} was due",
                split.next_seq
            )));
        }
        let total = split.total.saturating_add(len);
        match split.part {
            Part::Command { queued } => {
                if total > max_payload {
                    return Err(ScanError::TooLarge(total));
                }
                if queued {
                    tracker.command_packet(seq);
                }
            }
            Part::Upload => tracker.upload_packet(seq, false),
            Part::Response { tracked } => {
                if tracked {
                    tracker.response_packet(seq);
                }
            }
        }
        self.split = (len == MAX_PACKET_PAYLOAD).then_some(Split {
            next_seq: seq.wrapping_add(1),
            total,
            part: split.part,
        });
        self.pass(0, len);
        Ok(Step::Next)
    }

    /// The first packet of a client payload: a command, or upload data.
    fn client_packet(
        &mut self,
        at: usize,
        len: usize,
        seq: u8,
        tracker: &mut Tracker,
        max_payload: usize,
    ) -> Result<Step, ScanError> {
        let last = len < MAX_PACKET_PAYLOAD;
        if let Some(due) = tracker.upload {
            if seq != due {
                return Err(malformed(format!(
                    "LOCAL INFILE data with sequence id {seq} where {due} was due"
                )));
            }
            // An empty payload ends the upload.
            tracker.upload_packet(seq, len == 0);
            self.split = (!last).then_some(Split {
                next_seq: seq.wrapping_add(1),
                total: len,
                part: Part::Upload,
            });
            self.pass(0, len);
            return Ok(Step::Next);
        }
        if seq != 0 {
            return Err(malformed(format!(
                "a command starting with sequence id {seq}"
            )));
        }
        if len > max_payload {
            return Err(ScanError::TooLarge(len));
        }
        let available = self.window.read().len() - at - HEADER_LEN;
        // The server takes an empty payload for COM_SLEEP.
        let code = match len {
            0 => COM_SLEEP,
            _ if available == 0 => return Ok(Step::More),
            _ => self.window.read()[at + HEADER_LEN],
        };
        if code == COM_QUIT {
            // Nothing from the client after COM_QUIT is passed on.
            self.window.terminate(at);
            return Ok(Step::More);
        }
        let whole = last && len <= WHOLE_PAYLOAD;
        let sql = matches!(code, COM_QUERY | COM_STMT_PREPARE);
        if (matches!(code, COM_CHANGE_USER | COM_PROCESS_KILL) || admin_command(code)) && !whole {
            return Err(malformed(format!(
                "{} of {len} bytes is too large to intercept",
                command_name(code)
            )));
        }
        // SQL is checked whole (its first packet, for one over 16 MiB).
        let look =
            if sql || matches!(code, COM_CHANGE_USER | COM_PROCESS_KILL) || admin_command(code) {
                len
            } else {
                len.min(ID_END)
            };
        if available < look {
            self.reserve(look);
            return Ok(Step::More);
        }
        let payload = &self.window.read()[at + HEADER_LEN..at + HEADER_LEN + look];
        if let Some(what) = tracker.intercepts(payload, last) {
            if !last {
                // Its other packets would follow: refusing it in place is
                // not possible.
                return Err(ScanError::Unchecked);
            }
            let payload = payload.to_vec();
            // Out of the stream: what follows moves up, unscanned.
            self.window.remove(at, HEADER_LEN + len);
            return Ok(Step::Intercept(Intercepted { payload, what }));
        }
        let inspected = &payload[..look.min(INSPECT_PREFIX)];
        let queued = tracker.command(inspected, last && inspected.len() == len, 1);
        self.split = (!last).then_some(Split {
            next_seq: 1,
            total: len,
            part: Part::Command { queued },
        });
        self.pass(look, len);
        Ok(Step::Next)
    }

    /// The first packet of a server payload.
    fn server_packet(
        &mut self,
        at: usize,
        len: usize,
        seq: u8,
        tracker: &mut Tracker,
    ) -> Result<Step, ScanError> {
        let last = len < MAX_PACKET_PAYLOAD;
        let tracked = tracker.response_header(seq)?;
        let available = self.window.read().len() - at - HEADER_LEN;
        let look = if !tracked {
            0
        } else if last && len <= WHOLE_PAYLOAD {
            if available < len {
                self.reserve(len);
                return Ok(Step::More);
            }
            tracker.response(
                &self.window.read()[at + HEADER_LEN..at + HEADER_LEN + len],
                seq,
            )?;
            len
        } else {
            // Only a row can be this large: count it from its first byte
            // and stream it.
            if available == 0 {
                return Ok(Step::More);
            }
            tracker.large_row(self.window.read()[at + HEADER_LEN], len, seq)?;
            0
        };
        self.split = (!last).then_some(Split {
            next_seq: seq.wrapping_add(1),
            total: len,
            part: Part::Response { tracked },
        });
        self.pass(look, len);
        Ok(Step::Next)
    }
}
