//! The INI dialect of `~/.aws/credentials` and `~/.aws/config`, as Python's
//! `configparser` (used by botocore) reads it: `[section]`, `key = value` or
//! `key: value`, full-line `#`/`;` comments, keys case-insensitive, and
//! indented lines continuing the previous value (nested `s3 =` blocks).

use std::collections::HashMap;

/// Sections by name, each a map of lowercase keys to values.
pub type Sections = HashMap<String, HashMap<String, String>>;

/// A line that is not INI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IniError {
    #[error("line {line}: a section header must look like [name]")]
    BadSection { line: usize },
    #[error("line {line}: expected 'key = value'")]
    NotKeyValue { line: usize },
    #[error("line {line}: a key before any [section]")]
    NoSection { line: usize },
    #[error("line {line}: an indented line with nothing to continue")]
    StrayContinuation { line: usize },
}

/// Parses the whole file. Later duplicates win, as in botocore.
pub fn parse(text: &str) -> Result<Sections, IniError> {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            // Continuation of the previous value; botocore only uses these
            // for nested blocks we do not need, so they are checked, not kept.
            if current.is_none() || last_key.is_none() {
                return Err(IniError::StrayContinuation { line });
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .map(str::trim)
                .filter(|n| !n.is_empty() && !n.contains(['[', ']']))
                .ok_or(IniError::BadSection { line })?;
            sections.entry(name.to_owned()).or_default();
            current = Some(name.to_owned());
            last_key = None;
            continue;
        }
        let split = trimmed
            .find(['=', ':'])
            .ok_or(IniError::NotKeyValue { line })?;
        let key = trimmed[..split].trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(IniError::NotKeyValue { line });
        }
        let value = trimmed[split + 1..].trim().to_owned();
        let section = current.as_ref().ok_or(IniError::NoSection { line })?;
        sections
            .entry(section.clone())
            .or_default()
            .insert(key.clone(), value);
        last_key = Some(key);
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_aws_files() {
        let text = "# comment\n[default]\naws_access_key_id = AKIDEXAMPLE\nAWS_Secret_Access_Key=abc/def=\n\n[profile dev]\nregion: eu-west-1\ns3 =\n  max_concurrent_requests = 10\n; done\n";
        let s = parse(text).unwrap();
        assert_eq!(s["default"]["aws_access_key_id"], "AKIDEXAMPLE");
        assert_eq!(s["default"]["aws_secret_access_key"], "abc/def=");
        assert_eq!(s["profile dev"]["region"], "eu-west-1");
        assert_eq!(s["profile dev"]["s3"], "");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse("[x\n"), Err(IniError::BadSection { line: 1 }));
        assert_eq!(parse("[]\n"), Err(IniError::BadSection { line: 1 }));
        assert_eq!(parse("[a]\njunk\n"), Err(IniError::NotKeyValue { line: 2 }));
        assert_eq!(parse("k = v\n"), Err(IniError::NoSection { line: 1 }));
        assert_eq!(parse("[a]\n= v\n"), Err(IniError::NotKeyValue { line: 2 }));
        assert_eq!(
            parse("[a]\n  x = 1\n"),
            Err(IniError::StrayContinuation { line: 2 })
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }
    }
}
