//! Spare byte buffers kept per thread.
//!
//! A session holds a buffer only while it has bytes in flight: the relay's
//! windows (`latchkey-framing`) and the TLS sessions' record buffers
//! (`latchkey-tls-server`) [`take`] one when they read or write and
//! [`give`] it back when nothing is left in it. Thousands of idle sessions
//! then hold none, and a busy one that gives a buffer back and takes one
//! again between reads neither allocates nor locks: the spares live in a
//! thread-local list.

use std::cell::RefCell;

/// A spare buffer's size in bytes: a relay window's, and what a grown one
/// shrinks back to.
pub const BUFFER: usize = 16 * 1024;

/// Spare buffers kept per thread, at most.
const SPARE_MOST: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of [`BUFFER`] bytes, a spare one where the thread has it. Its
/// bytes are whatever its last user left there.
pub fn take() -> Vec<u8> {
    SPARE
        .try_with(|spare| spare.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![0; BUFFER])
}

/// Keeps `buf` for the next [`take`] on this thread when it is [`BUFFER`]
/// bytes long and fewer than the most are kept; frees it otherwise (a
/// grown buffer is not kept).
pub fn give(buf: Vec<u8>) {
    if buf.len() != BUFFER {
        return;
    }
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < SPARE_MOST {
            spare.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_and_a_grown_one_is_not_kept() {
        let mut first = take();
        assert_eq!(first.len(), BUFFER);
        first[0] = 7;
        let at = first.as_ptr();
        give(first);
        let again = take();
        assert_eq!(again.as_ptr(), at, "the spare is reused");
        let mut grown = again;
        grown.resize(BUFFER * 2, 0);
        give(grown);
        assert_eq!(
            SPARE.with(|s| s.borrow().len()),
            0,
            "a grown buffer is freed"
        );
        assert_eq!(take().len(), BUFFER);
    }

    #[test]
    fn at_most_a_bounded_number_are_kept() {
        let buffers: Vec<_> = (0..SPARE_MOST + 10).map(|_| take()).collect();
        for b in buffers {
            give(b);
        }
        assert_eq!(SPARE.with(|s| s.borrow().len()), SPARE_MOST);
    }
}
