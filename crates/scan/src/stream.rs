//! Scanning text that arrives in pieces (a file too large to hold,
//! standard input), sans I/O: the caller reads and [`StreamScan::push`]es
//! bytes; findings come out with their lines, columns and offsets in the
//! whole text.
//!
//! The text is scanned in chunks cut at line ends. Each chunk begins with
//! the last lines of the one before (an overlap), so that a key id near a
//! cut still meets its secret; a finding in the overlap was reported with
//! the chunk before and is not reported again. What the overlap cannot
//! join (a key id more than the overlap before its secret) is reported as
//! the two halves, as in two files.

use crate::{Finding, Scanner};

/// Bytes scanned at once.
const CHUNK: usize = 8 << 20;

/// Bytes of the chunk before that the next one scans again: many times
/// the reach of a key id's pairing (five lines, 2 KiB either side).
const OVERLAP: usize = 64 << 10;

/// One text's scan, fed in pieces.
pub struct StreamScan<'s> {
    scanner: &'s Scanner,
    buf: Vec<u8>,
    chunk: usize,
    overlap: usize,
    /// Where `buf` starts in the whole text, in bytes and in lines.
    base_offset: usize,
    base_line: usize,
    /// Findings starting before this offset were reported already.
    reported_until: usize,
}

impl<'s> StreamScan<'s> {
    pub fn new(scanner: &'s Scanner) -> Self {
        Self::with_sizes(scanner, CHUNK, OVERLAP)
    }

    /// With other chunk and overlap sizes (tests cut small texts often).
    pub fn with_sizes(scanner: &'s Scanner, chunk: usize, overlap: usize) -> Self {
        let chunk = chunk.max(1);
        Self {
            scanner,
            buf: Vec::new(),
            chunk,
            overlap: overlap.min(chunk),
            base_offset: 0,
            base_line: 0,
            reported_until: 0,
        }
    }

    /// Takes the next bytes; returns the findings of any chunk they
    /// completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Finding> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() < self.chunk + self.overlap {
            return Vec::new();
        }
        self.scan_ready(false)
    }

    /// The findings of what is left, at the end of the text.
    pub fn finish(mut self) -> Vec<Finding> {
        self.scan_ready(true)
    }

    fn scan_ready(&mut self, end: bool) -> Vec<Finding> {
        let (cut, inside_a_line) = if end {
            (self.buf.len(), false)
        } else {
            match memchr::memrchr(b'\n', &self.buf) {
                Some(i) => (i + 1, false),
                // A line longer than a chunk or two (minified text): cut
                // inside it rather than hold it whole.
                None if self.buf.len() >= 2 * (self.chunk + self.overlap) => (self.buf.len(), true),
                None => return Vec::new(),
            }
        };
        let mut found = Vec::new();
        for mut f in self.scanner.scan(&self.buf[..cut]) {
            if self.base_offset + f.start < self.reported_until {
                continue;
            }
            f.start += self.base_offset;
            f.end += self.base_offset;
            f.line += self.base_line;
            found.push(f);
        }
        self.reported_until = self.base_offset + cut;
        if !end {
            // Keep the overlap (from a line's start) and what follows the
            // cut.
            // Inside one long line the overlap starts mid-line (columns
            // there count from it).
            let from = cut.saturating_sub(self.overlap);
            let keep = match memchr::memchr(b'\n', &self.buf[from..cut]) {
                _ if from == 0 || inside_a_line => from,
                Some(i) => from + i + 1,
                None => from,
            };
            self.base_line += memchr::memchr_iter(b'\n', &self.buf[..keep]).count();
            self.base_offset += keep;
            self.buf.drain(..keep);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(found: &[Finding]) -> Vec<(&'static str, usize, usize, usize, String)> {
        found
            .iter()
            .map(|f| {
                (
                    f.detector.id(),
                    f.line,
                    f.column,
                    f.start,
                    f.secret.expose().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn pieces_find_what_the_whole_finds() {
        let mut text = String::new();
        for i in 0..400 {
            match i % 37 {
                5 => text.push_str(&format!(
                    "AWS_ACCESS_KEY_ID=AKIA2E0A8F3B244C{i:04}\nAWS_SECRET_ACCESS_KEY=7Hq1p0y3VvU+9sKdWm2LxRz/4bNcTgEiJoA{i:05}\n"
                )),
                11 => text.push_str(&format!("  url = postgres://app:Zq8pL2mK{i}@db/x\n")),
                _ => text.push_str("    the order total is computed from items and a receipt is sent\n"),
            }
        }
        let scanner = Scanner::new();
        let whole = summary(&scanner.scan(text.as_bytes()));
        assert!(whole.len() > 20);
        for (chunk, overlap, piece) in [(1000, 300, 7), (4096, 1024, 4096), (150, 150, 1)] {
            let mut stream = StreamScan::with_sizes(&scanner, chunk, overlap);
            let mut found = Vec::new();
            for bytes in text.as_bytes().chunks(piece) {
                found.extend(stream.push(bytes));
            }
            found.extend(stream.finish());
            assert_eq!(summary(&found), whole, "chunk {chunk}, overlap {overlap}");
        }
    }

    #[test]
    fn a_line_longer_than_a_chunk_is_cut() {
        let scanner = Scanner::new();
        // No line end at all: cut inside, the overlap joins the pieces.
        let text = "x ".repeat(5_000) + " password = \"Xk9mQ2vL8pR4zT7w\" " + &"y ".repeat(5_000);
        for at in [0, 3, 250, 499] {
            let mut stream = StreamScan::with_sizes(&scanner, 1000, 100);
            let mut found = stream.push(&text.as_bytes()[..at]);
            for piece in text.as_bytes()[at..].chunks(500) {
                found.extend(stream.push(piece));
            }
            found.extend(stream.finish());
            assert_eq!(found.len(), 1, "{at}");
            assert_eq!(found[0].start, 10_013);
            assert_eq!(found[0].secret.expose(), "Xk9mQ2vL8pR4zT7w");
        }
    }
}
