//! Following a command's response from the server's payloads, for a
//! relay that passes them on: when it is complete (so the next command
//! may go, or the connection may be reused), how it ended, how many rows
//! went by, and when the server asks for a LOCAL INFILE upload.

use crate::WireError;
use crate::consts::*;
use crate::response::{
    ErrInfo, OkInfo, PrepareOk, is_eof_or_ok_terminator, is_progress_report, parse_column_count,
    parse_column_definition, parse_eof, parse_err, parse_local_infile, parse_ok, parse_prepare_ok,
    parse_terminator,
};

/// The shape of response a command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `COM_QUIT`, `COM_STMT_CLOSE`, `COM_STMT_SEND_LONG_DATA`.
    Nothing,
    /// OK or ERR (or an EOF, which `COM_SET_OPTION` and `COM_DEBUG` get).
    OkOrErr,
    /// `COM_QUERY`: OK, ERR, a LOCAL INFILE request, or text result
    /// sets, several when `SERVER_MORE_RESULTS_EXISTS` says so.
    TextResult,
    /// `COM_STMT_EXECUTE`: like `TextResult` with binary rows; a cursor
    /// ends the response after the column definitions.
    BinaryResult,
    /// `COM_STMT_PREPARE`: the prepare-OK and its definitions, or ERR.
    Prepare,
    /// `COM_STMT_FETCH`: binary rows and their terminator, or ERR.
    Fetch,
    /// `COM_FIELD_LIST`: column definitions until EOF, or ERR.
    FieldList,
    /// `COM_STATISTICS`: one string packet.
    Statistics,
    /// `COM_CHANGE_USER`: an authentication exchange ending in OK or ERR.
    Auth,
    /// `COM_BINLOG_DUMP` and the like: packets until EOF or ERR.
    Stream,
}

/// What a command byte gets back.
pub fn expected_response(command: u8) -> Expect {
    match command {
        COM_QUIT | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA => Expect::Nothing,
        COM_QUERY | COM_PROCESS_INFO => Expect::TextResult,
        COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE => Expect::BinaryResult,
        COM_STMT_PREPARE => Expect::Prepare,
        COM_STMT_FETCH => Expect::Fetch,
        COM_FIELD_LIST => Expect::FieldList,
        COM_STATISTICS => Expect::Statistics,
        COM_CHANGE_USER => Expect::Auth,
        COM_BINLOG_DUMP | COM_BINLOG_DUMP_GTID | COM_TABLE_DUMP | COM_CLONE => Expect::Stream,
        _ => Expect::OkOrErr,
    }
}

/// Where a response stands after a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// More server packets belong to this response.
    Pending,
    /// The response is over. `ok` is the final OK (or the final EOF as an
    /// OK with zero counts); `err` the ERR that ended it; `prepared` the
    /// prepare-OK of `COM_STMT_PREPARE`. A statistics string gives all
    /// three `None`.
    Complete {
        ok: Option<OkInfo>,
        err: Option<ErrInfo>,
        prepared: Option<PrepareOk>,
    },
    /// The server asks for a local file: the client sends its contents
    /// and an empty packet, then the server's OK or ERR follows (feed it
    /// here). A gateway may refuse by sending just the empty packet.
    LocalInfile { filename: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    First,
    InfileResult,
    Columns { left: u64 },
    ColumnsEof,
    Rows,
    PrepareDefs { left: u16, then: u16 },
    PrepareEof { then: u16 },
    FieldList,
    Statistics,
    Auth,
    Stream,
    Done,
}

/// Follows one command's response, fed whole server payloads (joined
/// with [`next_payload`](crate::next_payload) or a
/// [`Reassembler`](crate::Reassembler)).
#[derive(Debug, Clone)]
pub struct ResponseTracker {
    expect: Expect,
    caps: u64,
    state: State,
    rows: u64,
    result_sets: u32,
    prepared: Option<PrepareOk>,
}

impl ResponseTracker {
    /// A tracker for a response of shape `expect` under the negotiated
    /// capabilities `caps` (both sides' flags and-ed).
    pub fn new(expect: Expect, caps: u64) -> Self {
        let state = match expect {
            Expect::Nothing => State::Done,
            Expect::OkOrErr | Expect::TextResult | Expect::BinaryResult | Expect::Prepare => {
                State::First
            }
            Expect::Fetch => State::Rows,
            Expect::FieldList => State::FieldList,
            Expect::Statistics => State::Statistics,
            Expect::Auth => State::Auth,
            Expect::Stream => State::Stream,
        };
        Self {
            expect,
            caps,
            state,
            rows: 0,
            result_sets: 0,
            prepared: None,
        }
    }

    /// A tracker for the response to command byte `command`.
    pub fn for_command(command: u8, caps: u64) -> Self {
        Self::new(expected_response(command), caps)
    }

    /// Whether the response is over (immediately for commands that get
    /// none).
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Rows seen so far, over all result sets.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Result sets (with columns) seen so far.
    pub fn result_sets(&self) -> u32 {
        self.result_sets
    }

    /// The prepare-OK, as soon as it has been seen (before the
    /// definitions that follow it).
    pub fn prepared(&self) -> Option<PrepareOk> {
        self.prepared
    }

    fn deprecate_eof(&self) -> bool {
        self.caps & CLIENT_DEPRECATE_EOF != 0
    }

    fn binary(&self) -> bool {
        matches!(self.expect, Expect::BinaryResult | Expect::Fetch)
    }

    fn complete(&mut self, ok: Option<OkInfo>, err: Option<ErrInfo>) -> Progress {
        self.state = State::Done;
        Progress::Complete {
            ok,
            err,
            prepared: None,
        }
    }

    /// An OK (or final EOF) that may announce another result.
    fn after_ok(&mut self, ok: OkInfo) -> Progress {
        let multi = matches!(self.expect, Expect::TextResult | Expect::BinaryResult);
        if multi && ok.more_results() {
            self.state = State::First;
            Progress::Pending
        } else {
            self.complete(Some(ok), None)
        }
    }

    fn after_columns(&self) -> State {
        if self.deprecate_eof() {
            State::Rows
        } else {
            State::ColumnsEof
        }
    }

    /// The next prepare section (columns after parameters) or the end.
    fn prepare_next(&mut self, then: u16) -> Progress {
        if then > 0 {
            self.state = State::PrepareDefs {
                left: then,
                then: 0,
            };
            Progress::Pending
        } else {
            self.state = State::Done;
            Progress::Complete {
                ok: None,
                err: None,
                prepared: self.prepared,
            }
        }
    }

    /// Takes the server's next whole payload. An error means the server
    /// broke the protocol (or the capabilities given are not the ones
    /// negotiated): the connection cannot be followed any further.
    pub fn feed(&mut self, payload: &[u8]) -> Result<Progress, WireError> {
        let r = self.step(payload);
        if r.is_err() {
            self.state = State::Done;
        }
        r
    }

    /// Takes a payload too large for a relay to hold (rows and binlog
    /// events can be hundreds of megabytes) from its first byte and the
    /// length of its first packet alone. Only a row (or a streamed event)
    /// can be that large, so anything else is an error, as from
    /// [`ResponseTracker::feed`]. A row never ends the response.
    pub fn feed_large_row(
        &mut self,
        first_byte: u8,
        first_packet_len: usize,
    ) -> Result<(), WireError> {
        let r = self.large_row(first_byte, first_packet_len);
        if r.is_err() {
            self.state = State::Done;
        }
        r
    }

    fn large_row(&mut self, header: u8, first_packet_len: usize) -> Result<(), WireError> {
        let unexpected = |expected| WireError::Unexpected { expected, header };
        match self.state {
            State::Rows => {
                // An ERR, or a 0xFE payload shorter than 0xFFFFFF bytes
                // (a terminator), is not a row; neither is a binary row
                // without its 0x00 header.
                let terminator = header == 0xfe && first_packet_len < crate::MAX_PACKET_PAYLOAD;
                if header == 0xff || terminator || (self.binary() && header != 0x00) {
                    return Err(unexpected("a large row"));
                }
                self.rows += 1;
                Ok(())
            }
            State::Stream if header == 0x00 => Ok(()),
            State::Stream => Err(unexpected("a large event (0x00)")),
            _ => Err(WireError::Invalid {
                packet: "server response",
                reason: "a large payload where no row can come",
            }),
        }
    }

    fn step(&mut self, payload: &[u8]) -> Result<Progress, WireError> {
        let invalid = |reason| WireError::Invalid {
            packet: "server response",
            reason,
        };
        if self.state == State::Done {
            return Err(invalid(if self.expect == Expect::Nothing {
                "a packet for a command that gets no response"
            } else {
                "a packet after the response was complete"
            }));
        }
        let Some(&header) = payload.first() else {
            if self.state == State::Statistics {
                return Ok(self.complete(None, None));
            }
            return Err(WireError::Truncated {
                packet: "server response",
                field: "header",
            });
        };
        if header == 0xff && self.state != State::Statistics {
            if is_progress_report(payload, self.caps) {
                return Ok(Progress::Pending);
            }
            let err = parse_err(payload)?;
            return Ok(self.complete(None, Some(err)));
        }
        let unexpected = |expected| WireError::Unexpected { expected, header };
        match self.state {
            State::Done => Err(invalid("a packet after the response was complete")),
            State::First => match (self.expect, header) {
                (Expect::Prepare, 0x00) => {
                    let p = parse_prepare_ok(payload, self.caps)?;
                    self.prepared = Some(p);
                    let (params, columns) = if p.metadata_follows {
                        (p.num_params, p.num_columns)
                    } else {
                        (0, 0)
                    };
                    if params > 0 {
                        self.state = State::PrepareDefs {
                            left: params,
                            then: columns,
                        };
                        Ok(Progress::Pending)
                    } else {
                        Ok(self.prepare_next(columns))
                    }
                }
                (Expect::Prepare, _) => Err(unexpected("a prepare OK or ERR")),
                (Expect::OkOrErr, 0x00 | 0xfe) => {
                    let ok = if header == 0xfe {
                        parse_terminator(payload, self.caps)?
                    } else {
                        parse_ok(payload, self.caps)?
                    };
                    Ok(self.complete(Some(ok), None))
                }
                (Expect::OkOrErr, _) => Err(unexpected("OK or ERR")),
                (_, 0x00) => {
                    let ok = parse_ok(payload, self.caps)?;
                    Ok(self.after_ok(ok))
                }
                (Expect::TextResult, 0xfb) => {
                    let filename = parse_local_infile(payload)?.to_vec();
                    self.state = State::InfileResult;
                    Ok(Progress::LocalInfile { filename })
                }
                (_, 0xfe) => Err(unexpected("OK, ERR or a result set")),
                _ => {
                    let count = parse_column_count(payload, self.caps)?;
                    self.result_sets += 1;
                    self.state = if count.metadata_follows {
                        State::Columns {
                            left: count.columns,
                        }
                    } else {
                        self.after_columns()
                    };
                    Ok(Progress::Pending)
                }
            },
            State::InfileResult => {
                if header != 0x00 {
                    return Err(unexpected("OK or ERR after a LOCAL INFILE upload"));
                }
                let ok = parse_ok(payload, self.caps)?;
                Ok(self.after_ok(ok))
            }
            State::Columns { left } => {
                parse_column_definition(payload, self.caps)?;
                self.state = if left > 1 {
                    State::Columns { left: left - 1 }
                } else {
                    self.after_columns()
                };
                Ok(Progress::Pending)
            }
            State::ColumnsEof => {
                let eof = parse_eof(payload)?;
                if self.binary() && eof.status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                    return Ok(self.complete(Some(eof.into()), None));
                }
                self.state = State::Rows;
                Ok(Progress::Pending)
            }
            State::Rows => {
                if is_eof_or_ok_terminator(payload) {
                    let ok = parse_terminator(payload, self.caps)?;
                    return Ok(if self.expect == Expect::Fetch {
                        self.complete(Some(ok), None)
                    } else {
                        self.after_ok(ok)
                    });
                }
                if self.binary() && header != 0x00 {
                    return Err(unexpected("a binary row (0x00), EOF or ERR"));
                }
                self.rows += 1;
                Ok(Progress::Pending)
            }
            State::PrepareDefs { left, then } => {
                parse_column_definition(payload, self.caps)?;
                if left > 1 {
                    self.state = State::PrepareDefs {
                        left: left - 1,
                        then,
                    };
                    Ok(Progress::Pending)
                } else if self.deprecate_eof() {
                    Ok(self.prepare_next(then))
                } else {
                    self.state = State::PrepareEof { then };
                    Ok(Progress::Pending)
                }
            }
            State::PrepareEof { then } => {
                parse_eof(payload)?;
                Ok(self.prepare_next(then))
            }
            State::FieldList => {
                if is_eof_or_ok_terminator(payload) {
                    let ok = parse_terminator(payload, self.caps)?;
                    return Ok(self.complete(Some(ok), None));
                }
                parse_column_definition(payload, self.caps)?;
                Ok(Progress::Pending)
            }
            State::Statistics => Ok(self.complete(None, None)),
            State::Auth => match header {
                0x00 => {
                    let ok = parse_ok(payload, self.caps)?;
                    Ok(self.complete(Some(ok), None))
                }
                0xfe | 0x01 => Ok(Progress::Pending),
                _ => Err(unexpected("OK, ERR, AuthSwitchRequest or AuthMoreData")),
            },
            State::Stream => match header {
                0xfe if payload.len() < 9 => {
                    let eof = parse_eof(payload)?;
                    Ok(self.complete(Some(eof.into()), None))
                }
                0x00 => Ok(Progress::Pending),
                _ => Err(unexpected("an event (0x00), EOF or ERR")),
            },
        }
    }
}
