//! Length-encoded integers and strings, NUL-terminated strings, and the
//! field reader every parser uses.

use crate::WireError;

/// Appends a length-encoded integer.
pub fn write_lenenc_int(out: &mut Vec<u8>, v: u64) {
    if v < 0xfb {
        out.push(v as u8);
    } else if v <= 0xffff {
        out.push(0xfc);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= 0xff_ffff {
        out.push(0xfd);
        out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
    } else {
        out.push(0xfe);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// How many bytes [`write_lenenc_int`] writes for `v`.
pub fn lenenc_int_len(v: u64) -> usize {
    match v {
        0..0xfb => 1,
        0xfb..=0xffff => 3,
        0x1_0000..=0xff_ffff => 4,
        _ => 9,
    }
}

/// Appends a length-encoded string.
pub fn write_lenenc_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_lenenc_int(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a NUL-terminated string. A zero byte inside `b` would end it
/// early, so it is refused.
pub fn write_nul_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), WireError> {
    if b.contains(&0) {
        return Err(WireError::Unencodable {
            what: "NUL-terminated string",
            reason: "it contains a zero byte",
        });
    }
    out.extend_from_slice(b);
    out.push(0);
    Ok(())
}

/// Reads a length-encoded integer; returns it and the bytes after it.
/// `0xfb` (a NULL column value) and `0xff` are not integers.
pub fn read_lenenc_int(b: &[u8]) -> Result<(u64, &[u8]), WireError> {
    let mut r = Reader::new(b, "value");
    let v = r.lenenc_int("length-encoded integer")?;
    Ok((v, r.rest()))
}

/// Reads a length-encoded string; returns it and the bytes after it.
pub fn read_lenenc_bytes(b: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let mut r = Reader::new(b, "value");
    let v = r.lenenc_bytes("length-encoded string")?;
    Ok((v, r.rest()))
}

/// Reads a NUL-terminated string; returns it (without the NUL) and the
/// bytes after the NUL.
pub fn read_nul_bytes(b: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let mut r = Reader::new(b, "value");
    let v = r.nul_bytes("NUL-terminated string")?;
    Ok((v, r.rest()))
}

/// The longest valid UTF-8 prefix of `b`, for text that may have been cut
/// short inside a multi-byte character (an SQL prefix). Invalid UTF-8
/// before the end is an error.
pub fn utf8_prefix(b: &[u8]) -> Result<&str, WireError> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(s),
        Err(e) if e.error_len().is_none() => {
            Ok(std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default())
        }
        Err(_) => Err(WireError::NotUtf8 {
            packet: "text",
            field: "text",
        }),
    }
}

/// Reads the fields of one packet in order. Every error names the packet
/// and the field it was reading.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    packet: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], packet: &'static str) -> Self {
        Self { buf, packet }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated {
                packet: self.packet,
                field,
            });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], WireError> {
        let s = self.take(N, field)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u24(&mut self, field: &'static str) -> Result<u32, WireError> {
        let [a, b, c] = self.array(field)?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn lenenc_int(&mut self, field: &'static str) -> Result<u64, WireError> {
        match self.u8(field)? {
            v @ 0..=0xfa => Ok(v.into()),
            0xfc => Ok(self.u16(field)?.into()),
            0xfd => Ok(self.u24(field)?.into()),
            0xfe => self.u64(field),
            prefix => Err(WireError::BadLenenc {
                packet: self.packet,
                field,
                prefix,
            }),
        }
    }

    /// A length that must fit in what is left of the packet.
    pub(crate) fn checked_len(&self, len: u64, field: &'static str) -> Result<usize, WireError> {
        match usize::try_from(len) {
            Ok(n) if n <= self.buf.len() => Ok(n),
            _ => Err(WireError::Overlong {
                packet: self.packet,
                field,
                len,
                left: self.buf.len(),
            }),
        }
    }

    pub(crate) fn lenenc_bytes(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.lenenc_int(field)?;
        let n = self.checked_len(len, field)?;
        self.take(n, field)
    }

    /// A string with a one-byte length in front.
    pub(crate) fn u8_bytes(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u8(field)?;
        let n = self.checked_len(len.into(), field)?;
        self.take(n, field)
    }

    pub(crate) fn nul_bytes(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let end = self
            .buf
            .iter()
            .position(|&c| c == 0)
            .ok_or(WireError::Unterminated {
                packet: self.packet,
                field,
            })?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    pub(crate) fn nul_str(&mut self, field: &'static str) -> Result<&'a str, WireError> {
        let b = self.nul_bytes(field)?;
        self.utf8(b, field)
    }

    pub(crate) fn utf8(&self, b: &'a [u8], field: &'static str) -> Result<&'a str, WireError> {
        std::str::from_utf8(b).map_err(|_| WireError::NotUtf8 {
            packet: self.packet,
            field,
        })
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails if bytes are left after the `last` field.
    pub(crate) fn finish(&self, last: &'static str) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing {
                packet: self.packet,
                after: last,
                count: self.buf.len(),
            })
        }
    }

    pub(crate) fn invalid(&self, reason: &'static str) -> WireError {
        WireError::Invalid {
            packet: self.packet,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_int_boundaries_round_trip() {
        for v in [
            0u64,
            1,
            250,
            251,
            252,
            0xffff,
            0x1_0000,
            0xff_ffff,
            0x100_0000,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_lenenc_int(&mut out, v);
            assert_eq!(out.len(), lenenc_int_len(v), "{v}");
            out.push(0x99);
            let (got, rest) = read_lenenc_int(&out).unwrap();
            assert_eq!((got, rest), (v, &[0x99u8][..]));
            // Every strict prefix is truncated, never a panic.
            for cut in 0..out.len() - 1 {
                assert_eq!(
                    read_lenenc_int(&out[..cut]),
                    Err(WireError::Truncated {
                        packet: "value",
                        field: "length-encoded integer"
                    })
                );
            }
        }
        // Exact encodings from the protocol documentation.
        let mut out = Vec::new();
        write_lenenc_int(&mut out, 251);
        assert_eq!(out, [0xfc, 0xfb, 0x00]);
        out.clear();
        write_lenenc_int(&mut out, 0x10_0000);
        assert_eq!(out, [0xfd, 0x00, 0x00, 0x10]);
        out.clear();
        write_lenenc_int(&mut out, 0x100_0000);
        assert_eq!(out, [0xfe, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn bad_lenenc_prefixes() {
        for prefix in [0xfb, 0xff] {
            assert_eq!(
                read_lenenc_int(&[prefix, 1, 2, 3]),
                Err(WireError::BadLenenc {
                    packet: "value",
                    field: "length-encoded integer",
                    prefix
                })
            );
        }
        // Non-minimal encodings are accepted, as servers do.
        assert_eq!(read_lenenc_int(&[0xfc, 5, 0]).unwrap().0, 5);
    }

    #[test]
    fn lenenc_strings() {
        let mut out = Vec::new();
        let long = vec![b'x'; 2048];
        write_lenenc_bytes(&mut out, &long);
        assert_eq!(&out[..3], [0xfc, 0x00, 0x08]);
        let (got, rest) = read_lenenc_bytes(&out).unwrap();
        assert_eq!(got, &long[..]);
        assert!(rest.is_empty());
        assert_eq!(
            read_lenenc_bytes(&out[..out.len() - 1]),
            Err(WireError::Overlong {
                packet: "value",
                field: "length-encoded string",
                len: 2048,
                left: 2047
            })
        );
        // A length that does not fit in any buffer.
        let huge = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'a'];
        assert!(matches!(
            read_lenenc_bytes(&huge),
            Err(WireError::Overlong {
                len: u64::MAX,
                left: 1,
                ..
            })
        ));
    }

    #[test]
    fn nul_strings() {
        assert_eq!(read_nul_bytes(b"ab\0cd").unwrap(), (&b"ab"[..], &b"cd"[..]));
        assert_eq!(
            read_nul_bytes(b"abc"),
            Err(WireError::Unterminated {
                packet: "value",
                field: "NUL-terminated string"
            })
        );
        let mut out = Vec::new();
        write_nul_bytes(&mut out, b"abc").unwrap();
        assert_eq!(out, b"abc\0");
        assert!(write_nul_bytes(&mut out, b"a\0c").is_err());
    }

    #[test]
    fn utf8_prefixes() {
        assert_eq!(utf8_prefix(b"SELECT '\xc3").unwrap(), "SELECT '");
        assert_eq!(utf8_prefix("é".as_bytes()).unwrap(), "é");
        assert!(utf8_prefix(b"\xff SELECT").is_err());
    }
}
