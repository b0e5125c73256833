//! A found secret: kept for verification and fingerprints, never shown.

use sha2::{Digest, Sha256};

/// The text of a found secret. `Debug` and [`Secret::masked`] show an
/// eighth of it at most (its ends); the whole value is only
/// [`Secret::expose`]d, to verify it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// `wJ…EY`: a character at each end per 16 of the value (four at
    /// most), so that an eighth of it shows at most, enough to tell two
    /// findings apart and too little to guess from; nothing of a value
    /// under 16 characters.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let shown = (chars.len() / 16).min(4);
        if shown == 0 {
            return "****".to_owned();
        }
        let head: String = chars[..shown].iter().collect();
        let tail: String = chars[chars.len() - shown..].iter().collect();
        format!("{head}…{tail}")
    }

    /// The whole value, for verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the value, hex: identifies it without holding it.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_the_middle() {
        let s = Secret::new("wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY1");
        assert_eq!(s.masked(), "wJ…Y1");
        // A 20-character password shows two of its characters.
        assert_eq!(Secret::new("Zq8pL2mKx7Tb4Wc9Rv3N").masked(), "Z…N");
        let long = Secret::new("a".repeat(10) + &"b".repeat(100) + "0123");
        assert_eq!(long.masked(), "aaaa…0123");
        let debug = format!("{s:?}");
        assert!(!debug.contains("XUtnFEMI"), "{debug}");
        let short = Secret::new("hunter2");
        assert!(!short.masked().contains("hunter"));
        assert!(!format!("{short:?}").contains("hunter"));
        assert_eq!(s.digest().len(), 64);
    }
}
