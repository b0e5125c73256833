//! A found secret: kept for verification and fingerprints, never shown.

use sha2::{Digest, Sha256};

/// The text of a found secret. `Debug` and [`Secret::masked`] show its
/// first and last four characters at most; the whole value is only
/// [`Secret::expose`]d, to verify it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// `AKIA…WXYZ`: the ends of a long value, nothing of a short one.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 16 {
            return "****".to_owned();
        }
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
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
        assert_eq!(s.masked(), "wJal…KEY1");
        let debug = format!("{s:?}");
        assert!(!debug.contains("XUtnFEMI"), "{debug}");
        let short = Secret::new("hunter2");
        assert!(!short.masked().contains("hunter"));
        assert!(!format!("{short:?}").contains("hunter"));
        assert_eq!(s.digest().len(), 64);
    }
}
