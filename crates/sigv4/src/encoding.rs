//! SigV4 percent-encoding: unreserved = `A-Z a-z 0-9 - _ . ~`, everything else
//! `%XX` with uppercase hex; a space is `%20`, never `+`.

use std::borrow::Cow;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Unreserved bytes as a table: canonicalisation checks every byte of
/// every token, and a lookup beats the chain of range tests.
static UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~');
        b += 1;
    }
    table
};

/// Whether SigV4 leaves this byte as it is.
#[inline]
pub fn is_unreserved(b: u8) -> bool {
    UNRESERVED[usize::from(b)]
}

/// Branch-free per byte so that LLVM vectorises it: session tokens are
/// hundreds of bytes and this runs on every verification.
#[inline]
fn unreserved_mask(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter | digit | (b == b'-') | (b == b'_') | (b == b'.') | (b == b'~')
}

/// Whether every byte is unreserved.
fn all_unreserved(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        if !chunk.iter().fold(true, |acc, &b| acc & unreserved_mask(b)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| unreserved_mask(b))
}

/// Appends the strict SigV4 encoding of `input` to `out`.
pub fn encode_into(input: &[u8], out: &mut String) {
    for &b in input {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
}

/// The strict SigV4 encoding of `input`.
pub fn encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    encode_into(input.as_bytes(), &mut out);
    out
}

/// Why percent-decoding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a '%' is not followed by two hex digits")]
    BadEscape,
    #[error("the decoded bytes are not UTF-8")]
    NotUtf8,
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes. `+` is kept as a literal `+` (SigV4 never uses it
/// for a space). Borrows when there is nothing to decode.
pub fn decode(input: &str) -> Result<Cow<'_, [u8]>, DecodeError> {
    if !input.as_bytes().contains(&b'%') {
        return Ok(Cow::Borrowed(input.as_bytes()));
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(DecodeError::BadEscape),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(Cow::Owned(out))
}

/// Decodes `%XX` escapes and requires UTF-8.
pub fn decode_utf8(input: &str) -> Result<Cow<'_, str>, DecodeError> {
    match decode(input)? {
        Cow::Borrowed(_) => Ok(Cow::Borrowed(input)),
        Cow::Owned(bytes) => String::from_utf8(bytes)
            .map(Cow::Owned)
            .map_err(|_| DecodeError::NotUtf8),
    }
}

/// Whether `input` is already in strict canonical form: only unreserved bytes
/// and `%XX` escapes (uppercase hex) of bytes that must be escaped.
pub fn is_canonical(input: &str) -> bool {
    let bytes = input.as_bytes();
    // Fast path: nothing escaped, the usual case for long session tokens.
    if all_unreserved(bytes) {
        return true;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                return false;
            };
            let upper = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
            if !upper(hi) || !upper(lo) {
                return false;
            }
            let (Some(h), Some(l)) = (hex_value(hi), hex_value(lo)) else {
                return false;
            };
            if is_unreserved(h << 4 | l) {
                return false;
            }
            i += 3;
        } else if is_unreserved(b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// The canonical (strictly re-encoded) form of an already-encoded query
/// component. Borrows in the common case where the sender encoded strictly.
pub fn canonicalize(input: &str) -> Result<Cow<'_, str>, DecodeError> {
    if is_canonical(input) {
        return Ok(Cow::Borrowed(input));
    }
    let decoded = decode(input)?;
    let mut out = String::with_capacity(decoded.len() * 3);
    encode_into(&decoded, &mut out);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_spec() {
        assert_eq!(encode("jane doe@x+y/z"), "jane%20doe%40x%2By%2Fz");
        assert_eq!(encode("A-Z_a.z~09"), "A-Z_a.z~09");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn decodes_and_rejects() {
        assert_eq!(decode("a%2Fb").unwrap().as_ref(), b"a/b");
        assert_eq!(decode("a%2fb").unwrap().as_ref(), b"a/b");
        assert_eq!(decode("a+b").unwrap().as_ref(), b"a+b");
        assert_eq!(decode("%2"), Err(DecodeError::BadEscape));
        assert_eq!(decode("%zz"), Err(DecodeError::BadEscape));
        assert_eq!(decode_utf8("%FF"), Err(DecodeError::NotUtf8));
    }

    #[test]
    fn canonicalizes() {
        assert!(is_canonical("akid%2F20240826"));
        assert!(!is_canonical("akid%2f20240826"));
        assert!(!is_canonical("%41"));
        assert!(!is_canonical("a b"));
        assert_eq!(canonicalize("%41%2f+").unwrap(), "A%2F%2B");
        assert!(matches!(canonicalize("peccy").unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn branch_free_check_agrees_with_the_table() {
        for b in 0..=255u8 {
            assert_eq!(unreserved_mask(b), is_unreserved(b), "byte {b}");
        }
        let long = "A".repeat(100);
        assert!(all_unreserved(long.as_bytes()));
        assert!(!all_unreserved(format!("{long}%").as_bytes()));
        assert!(!all_unreserved(format!("%{long}").as_bytes()));
    }

    proptest::proptest! {
        #[test]
        fn encode_decode_round_trip(s in "\\PC*") {
            let e = encode(&s);
            proptest::prop_assert!(is_canonical(&e));
            proptest::prop_assert_eq!(decode_utf8(&e).unwrap(), s.as_str());
        }
    }
}
