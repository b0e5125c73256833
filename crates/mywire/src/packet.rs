//! Packet framing: a 3-byte little-endian payload length and a sequence
//! id, then the payload. A payload of 0xFFFFFF bytes or more travels as
//! several packets: every one but the last carries exactly 0xFFFFFF
//! bytes, and the last is shorter (possibly empty).

use std::borrow::Cow;
use std::ops::Range;

use crate::WireError;

/// The largest payload one packet carries; a packet this long is
/// followed by the rest of its payload.
pub const MAX_PACKET_PAYLOAD: usize = 0xff_ffff;
/// Length of a packet header.
pub const HEADER_LEN: usize = 4;

/// One packet found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    /// Where the payload lies in the buffer that was scanned.
    pub payload: Range<usize>,
    /// Bytes of the buffer the packet takes, header included.
    pub consumed: usize,
}

impl Packet {
    /// Whether this packet ends its payload (it is shorter than
    /// [`MAX_PACKET_PAYLOAD`]).
    pub fn is_last(&self) -> bool {
        self.payload.len() < MAX_PACKET_PAYLOAD
    }
}

/// Appends a packet header.
fn header(out: &mut Vec<u8>, len: usize, seq: u8) {
    let len = u32::try_from(len.min(MAX_PACKET_PAYLOAD)).unwrap_or(0xff_ffff);
    out.extend_from_slice(&len.to_le_bytes()[..3]);
    out.push(seq);
}

/// Scans the packet at the start of `buf`. `None` until its header and
/// payload are all there; an error as soon as the header announces more
/// than `max_payload` bytes (so a relay need not wait for them).
pub fn next_packet(buf: &[u8], max_payload: usize) -> Option<Result<Packet, WireError>> {
    let h = buf.get(..HEADER_LEN)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
    if len > max_payload {
        return Some(Err(WireError::TooLarge {
            len,
            max: max_payload,
        }));
    }
    if buf.len() - HEADER_LEN < len {
        return None;
    }
    Some(Ok(Packet {
        seq: h[3],
        payload: HEADER_LEN..HEADER_LEN + len,
        consumed: HEADER_LEN + len,
    }))
}

/// A whole payload found at the start of a buffer, possibly made of
/// several packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload<'a> {
    /// Sequence id of its first packet.
    pub first_seq: u8,
    /// Sequence id of its last packet (the next packet in the exchange
    /// carries `last_seq + 1`).
    pub last_seq: u8,
    /// Borrowed when it came in one packet.
    pub data: Cow<'a, [u8]>,
    /// Bytes of the buffer its packets take.
    pub consumed: usize,
}

/// Scans the whole payload at the start of `buf`, joining split packets.
/// `None` until all its packets are there; an error when the payload
/// grows past `max_payload` or the packets' sequence ids do not follow
/// each other.
pub fn next_payload(buf: &[u8], max_payload: usize) -> Option<Result<Payload<'_>, WireError>> {
    let mut at = 0;
    let mut total = 0usize;
    let mut first_seq = None;
    let mut prev_seq = 0u8;
    let mut parts: Vec<Range<usize>> = Vec::new();
    loop {
        let h = buf.get(at..at + HEADER_LEN)?;
        let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
        let seq = h[3];
        total += len;
        if total > max_payload {
            return Some(Err(WireError::TooLarge {
                len: total,
                max: max_payload,
            }));
        }
        match first_seq {
            None => first_seq = Some(seq),
            Some(_) if seq != prev_seq.wrapping_add(1) => {
                return Some(Err(WireError::Sequence {
                    expected: prev_seq.wrapping_add(1),
                    got: seq,
                }));
            }
            Some(_) => {}
        }
        prev_seq = seq;
        let start = at + HEADER_LEN;
        if buf.len() - start < len {
            return None;
        }
        parts.push(start..start + len);
        at = start + len;
        if len < MAX_PACKET_PAYLOAD {
            break;
        }
    }
    let data = match parts.as_slice() {
        [one] => Cow::Borrowed(&buf[one.clone()]),
        many => {
            let mut v = Vec::with_capacity(total);
            for r in many {
                v.extend_from_slice(&buf[r.clone()]);
            }
            Cow::Owned(v)
        }
    };
    Some(Ok(Payload {
        first_seq: first_seq.unwrap_or(prev_seq),
        last_seq: prev_seq,
        data,
        consumed: at,
    }))
}

/// A payload put back together by a [`Reassembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub first_seq: u8,
    pub last_seq: u8,
    pub data: Vec<u8>,
}

/// Joins packets, handed over one at a time, into whole payloads.
#[derive(Debug, Clone)]
pub struct Reassembler {
    max_payload: usize,
    data: Vec<u8>,
    first_seq: u8,
    /// The sequence id due next while a split payload is incomplete.
    next_seq: Option<u8>,
}

impl Reassembler {
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload,
            data: Vec::new(),
            first_seq: 0,
            next_seq: None,
        }
    }

    /// Whether a split payload has been started but not finished.
    pub fn in_progress(&self) -> bool {
        self.next_seq.is_some()
    }

    /// Takes one packet's sequence id and payload. Returns the whole
    /// payload once its last packet has been pushed. After an error the
    /// partial payload is dropped.
    pub fn push(&mut self, seq: u8, fragment: &[u8]) -> Result<Option<Assembled>, WireError> {
        if fragment.len() > MAX_PACKET_PAYLOAD {
            self.reset();
            return Err(WireError::TooLarge {
                len: fragment.len(),
                max: MAX_PACKET_PAYLOAD,
            });
        }
        match self.next_seq {
            Some(expected) if expected != seq => {
                self.reset();
                return Err(WireError::Sequence { expected, got: seq });
            }
            Some(_) => {}
            None => self.first_seq = seq,
        }
        let total = self.data.len() + fragment.len();
        if total > self.max_payload {
            self.reset();
            return Err(WireError::TooLarge {
                len: total,
                max: self.max_payload,
            });
        }
        self.data.extend_from_slice(fragment);
        if fragment.len() == MAX_PACKET_PAYLOAD {
            self.next_seq = Some(seq.wrapping_add(1));
            return Ok(None);
        }
        self.next_seq = None;
        Ok(Some(Assembled {
            first_seq: self.first_seq,
            last_seq: seq,
            data: std::mem::take(&mut self.data),
        }))
    }

    fn reset(&mut self) {
        self.data = Vec::new();
        self.next_seq = None;
    }
}

/// Appends `payload` as packets starting at sequence id `seq`, split as
/// the protocol requires (a payload that is a multiple of 0xFFFFFF bytes
/// long, the empty one included, ends with an empty packet). Returns the
/// sequence id the next packet takes.
pub fn split_payload(out: &mut Vec<u8>, seq: u8, payload: &[u8]) -> u8 {
    let mut seq = seq;
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PACKET_PAYLOAD);
        header(out, n, seq);
        out.extend_from_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_PACKET_PAYLOAD {
            return seq;
        }
    }
}

/// Appends the payload that `build` writes as packets starting at `seq`,
/// without copying it when it fits in one packet. Returns the next
/// sequence id.
pub fn frame(out: &mut Vec<u8>, seq: u8, build: impl FnOnce(&mut Vec<u8>)) -> u8 {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    build(out);
    let len = out.len() - start - HEADER_LEN;
    if len < MAX_PACKET_PAYLOAD {
        let mut h = Vec::with_capacity(HEADER_LEN);
        header(&mut h, len, seq);
        out[start..start + HEADER_LEN].copy_from_slice(&h);
        return seq.wrapping_add(1);
    }
    let payload = out.split_off(start + HEADER_LEN);
    out.truncate(start);
    split_payload(out, seq, &payload)
}

/// Like [`frame`] for a builder that can fail: on error nothing is
/// appended.
pub fn try_frame(
    out: &mut Vec<u8>,
    seq: u8,
    build: impl FnOnce(&mut Vec<u8>) -> Result<(), WireError>,
) -> Result<u8, WireError> {
    let start = out.len();
    let mut result = Ok(());
    let next = frame(out, seq, |b| result = build(b));
    match result {
        Ok(()) => Ok(next),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_packets() {
        let mut out = Vec::new();
        assert_eq!(split_payload(&mut out, 0, b"\x03SELECT 1"), 1);
        assert_eq!(out, b"\x09\0\0\0\x03SELECT 1");
        let p = next_packet(&out, 1024).unwrap().unwrap();
        assert_eq!(
            p,
            Packet {
                seq: 0,
                payload: 4..13,
                consumed: 13
            }
        );
        assert!(p.is_last());
        for cut in 0..out.len() {
            assert_eq!(next_packet(&out[..cut], 1024), None);
            assert_eq!(next_payload(&out[..cut], 1024), None);
        }
        assert_eq!(
            next_packet(&out, 8),
            Some(Err(WireError::TooLarge { len: 9, max: 8 }))
        );
        // The limit is checked from the header alone.
        assert_eq!(
            next_packet(&out[..4], 8),
            Some(Err(WireError::TooLarge { len: 9, max: 8 }))
        );
        let whole = next_payload(&out, 1024).unwrap().unwrap();
        assert!(matches!(whole.data, Cow::Borrowed(b"\x03SELECT 1")));
        assert_eq!(
            (whole.first_seq, whole.last_seq, whole.consumed),
            (0, 0, 13)
        );

        // An empty payload is one empty packet.
        out.clear();
        assert_eq!(split_payload(&mut out, 255, b""), 0);
        assert_eq!(out, [0, 0, 0, 255]);
        let p = next_payload(&out, 0).unwrap().unwrap();
        assert!(p.data.is_empty());
    }

    fn big(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn split_payloads() {
        for len in [
            MAX_PACKET_PAYLOAD - 1,
            MAX_PACKET_PAYLOAD,
            MAX_PACKET_PAYLOAD + 1,
            2 * MAX_PACKET_PAYLOAD,
        ] {
            let payload = big(len);
            let mut out = vec![0xaa]; // something already in the buffer
            let next = split_payload(&mut out, 254, &payload);
            let packets = len / MAX_PACKET_PAYLOAD + 1;
            assert_eq!(next, 254u8.wrapping_add(packets as u8), "{len}");
            assert_eq!(out.len(), 1 + len + 4 * packets);
            let got = next_payload(&out[1..], usize::MAX).unwrap().unwrap();
            assert_eq!(got.data.as_ref(), &payload[..]);
            assert_eq!(got.first_seq, 254);
            assert_eq!(got.last_seq, next.wrapping_sub(1));
            assert_eq!(got.consumed, out.len() - 1);
            // Missing the final (possibly empty) packet: not complete yet.
            assert_eq!(next_payload(&out[1..out.len() - 1], usize::MAX), None);
            // Over the limit once the sizes add up past it.
            if len > MAX_PACKET_PAYLOAD {
                assert!(matches!(
                    next_payload(&out[1..], MAX_PACKET_PAYLOAD),
                    Some(Err(WireError::TooLarge { .. }))
                ));
            }
            // The same packets through the reassembler.
            let mut r = Reassembler::new(usize::MAX);
            let mut buf = &out[1..];
            let mut whole = None;
            while let Some(p) = next_packet(buf, MAX_PACKET_PAYLOAD) {
                let p = p.unwrap();
                assert!(whole.is_none());
                whole = r.push(p.seq, &buf[p.payload.clone()]).unwrap();
                assert_eq!(r.in_progress(), whole.is_none());
                buf = &buf[p.consumed..];
            }
            let whole = whole.unwrap();
            assert_eq!(whole.data, payload);
            assert_eq!(
                (whole.first_seq, whole.last_seq),
                (254, next.wrapping_sub(1))
            );

            // frame() writes the same bytes.
            let mut framed = vec![0xaa];
            assert_eq!(
                frame(&mut framed, 254, |b| b.extend_from_slice(&payload)),
                next
            );
            assert_eq!(framed, out);
        }
    }

    #[test]
    fn sequence_gaps_are_refused() {
        let payload = big(MAX_PACKET_PAYLOAD + 10);
        let mut out = Vec::new();
        split_payload(&mut out, 3, &payload);
        let second = 4 + MAX_PACKET_PAYLOAD + 3;
        out[second] = 9;
        assert_eq!(
            next_payload(&out, usize::MAX),
            Some(Err(WireError::Sequence {
                expected: 4,
                got: 9
            }))
        );
        let mut r = Reassembler::new(usize::MAX);
        assert_eq!(r.push(3, &payload[..MAX_PACKET_PAYLOAD]), Ok(None));
        assert_eq!(
            r.push(9, b"x"),
            Err(WireError::Sequence {
                expected: 4,
                got: 9
            })
        );
        assert!(!r.in_progress());
        let mut r = Reassembler::new(MAX_PACKET_PAYLOAD);
        assert_eq!(r.push(0, &payload[..MAX_PACKET_PAYLOAD]), Ok(None));
        assert_eq!(
            r.push(1, b"x"),
            Err(WireError::TooLarge {
                len: MAX_PACKET_PAYLOAD + 1,
                max: MAX_PACKET_PAYLOAD
            })
        );
        assert_eq!(
            Reassembler::new(usize::MAX).push(0, &payload),
            Err(WireError::TooLarge {
                len: payload.len(),
                max: MAX_PACKET_PAYLOAD
            })
        );
    }

    #[test]
    fn try_frame_rolls_back() {
        let mut out = vec![1, 2];
        let e = try_frame(&mut out, 0, |b| {
            b.push(5);
            Err(WireError::Invalid {
                packet: "x",
                reason: "y",
            })
        });
        assert!(e.is_err());
        assert_eq!(out, [1, 2]);
        assert_eq!(
            try_frame(&mut out, 7, |b| {
                b.push(5);
                Ok(())
            }),
            Ok(8)
        );
        assert_eq!(out, [1, 2, 1, 0, 0, 7, 5]);
    }
}
