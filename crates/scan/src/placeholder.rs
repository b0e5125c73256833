//! What looks like a secret but is not one: documentation examples,
//! template variables, obvious dummies; and how random a value is.

/// Bits of Shannon entropy per character a value assigned to a
/// secret-sounding name must reach to be a [`crate::Detector::GenericSecret`].
/// Words and identifiers (`correct_horse`, `config.password`) stay under it;
/// generated passwords and API keys of 12 characters or more reach it.
/// Tuned by `bench/scan.sh`'s sweep over its corpus (BENCHMARKS.md): 2.75
/// finds the passwords people make (`Summer1991%`, 2.91 bits) that 3.0
/// missed, with no more findings on the decoys; from 3.25 up, generated
/// secrets start to be missed too. Words, identifiers, code and versions
/// are told apart by their shape, not by this threshold.
pub const GENERIC_ENTROPY_BITS: f64 = 2.75;

/// Shannon entropy of `value`, in bits per character (over bytes).
pub fn shannon_entropy(value: &str) -> f64 {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Words that mark a value as an example or a dummy, wherever they are in
/// it (compared without case).
const MARKERS: &[&str] = &[
    "example",
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "dummy",
    "redacted",
    "replace",
    "your_",
    "your-",
    "yourpassword",
    "mypassword",
    "password123",
    "notasecret",
    "not_a_secret",
    "fake",
    "sample",
    "xxxxxx",
    "******",
    "......",
    "${",
    "{{",
    "%(",
    "$(",
];

/// Whole values that are never secrets (compared without case).
const DUMMIES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "none",
    "null",
    "nil",
    "true",
    "false",
    "undefined",
    "empty",
    "test",
    "testing",
    "admin",
    "root",
    "postgres",
    "mysql",
    "user",
    "pass",
    "string",
    "required",
    "optional",
    "default",
    "value",
    "env",
    "todo",
    "tbd",
];

/// Whether `value` is a placeholder rather than a secret: an example
/// (`AKIAIOSFODNN7EXAMPLE`), a template or environment variable (`${VAR}`,
/// `$VAR`, `{{ var }}`, `%(name)s`, `<password>`), a dummy word
/// (`changeme`, `password`, `xxxx`) or one character repeated.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c: char| c == '"' || c == '\'' || c == '`');
    if v.is_empty() {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    if MARKERS.iter().any(|m| lower.contains(m)) || DUMMIES.contains(&lower.as_str()) {
        return true;
    }
    // `<password>`, and `{password}` (a format string's field).
    if (v.starts_with('<') && v.ends_with('>'))
        || (v.len() > 2
            && v.starts_with('{')
            && v.ends_with('}')
            && v[1..v.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return true;
    }
    // `$VAR`, `$1`, `%VAR%`: an environment variable or argument.
    if let Some(rest) = v.strip_prefix('$')
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return true;
    }
    if v.len() > 2
        && v.starts_with('%')
        && v.ends_with('%')
        && v[1..v.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return true;
    }
    // One character repeated (`xxxxxxxx`, `00000000`), or at most two
    // distinct ones.
    let mut distinct: Vec<char> = v.chars().take(64).collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_and_templates_are_placeholders() {
        for v in [
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "${DB_PASSWORD}",
            "$DB_PASSWORD",
            "%DB_PASSWORD%",
            "{{ db_password }}",
            "%(password)s",
            "<password>",
            "changeme",
            "xxxxxxxxxxxx",
            "********",
            "password",
            "'secret'",
            "your_api_key_here",
            "{password}",
        ] {
            assert!(is_placeholder(v), "{v}");
        }
        for v in [
            "Xk9#mQ2$vL8!pR4z",
            "s3cr3t-Pa55w0rd-2024",
            "9f86d081884c7d659a2f",
        ] {
            assert!(!is_placeholder(v), "{v}");
        }
    }

    #[test]
    fn entropy_separates_words_from_random_text() {
        assert!(shannon_entropy("aaaaaaaa") < 0.01);
        assert!(shannon_entropy("correcthorse") < GENERIC_ENTROPY_BITS + 0.5);
        assert!(shannon_entropy("Xk9mQ2vL8pR4zT7w") > GENERIC_ENTROPY_BITS);
        assert_eq!(shannon_entropy(""), 0.0);
    }
}
