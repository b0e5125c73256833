//! Parameter names, paths, ARNs and selectors.
//!
//! A name is either hierarchical (`/app/db/url`: it begins with `/`, up to
//! 15 levels) or plain (`url`: no `/` at all). Names hold `a-zA-Z0-9_.-`
//! and `/`, and are at most 2,048 characters with their path. Names
//! beginning with `aws` or `ssm` (case-insensitive, with or without the
//! leading `/`) are AWS's: readable, never writable by a caller.

use std::fmt;

use crate::SsmError;

/// The longest name, path included.
pub const MAX_NAME: usize = 2048;
/// The deepest hierarchy.
pub const MAX_LEVELS: usize = 15;
/// Names under this prefix read a Secrets Manager secret.
pub const REFERENCE_PREFIX: &str = "/aws/reference/secretsmanager/";

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')
}

fn check_text(text: &str, what: &str) -> Result<(), SsmError> {
    if text.is_empty() {
        return Err(SsmError::validation(format!(
            "1 validation error detected: Value '' at '{what}' failed to satisfy constraint: Member must have length greater than or equal to 1"
        )));
    }
    if text.chars().count() > MAX_NAME {
        return Err(SsmError::validation(format!(
            "1 validation error detected: Value at '{what}' failed to satisfy constraint: Member must have length less than or equal to {MAX_NAME}"
        )));
    }
    if !text.chars().all(allowed) {
        return Err(SsmError::validation(
            "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_",
        ));
    }
    Ok(())
}

/// The levels of a hierarchical text (`/a/b` has 2).
fn levels(text: &str) -> usize {
    text.split('/').filter(|s| !s.is_empty()).count()
}

/// A valid parameter name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParameterName(String);

impl ParameterName {
    /// Checks `text` as AWS checks a parameter's name.
    pub fn parse(text: &str) -> Result<Self, SsmError> {
        check_text(text, "name")?;
        if text.contains('/') {
            if !text.starts_with('/') {
                return Err(SsmError::validation(
                    "Parameter name must be a fully qualified name: a name with a hierarchy must begin with a forward slash (/).",
                ));
            }
            if text.ends_with('/') || text.contains("//") {
                return Err(SsmError::validation(
                    "Parameter name: each sub-path of a hierarchy must hold at least one character, and the name can't end with a forward slash (/).",
                ));
            }
            if levels(text) > MAX_LEVELS {
                return Err(SsmError::HierarchyLevelLimitExceeded);
            }
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name is in a hierarchy (begins with `/`).
    pub fn is_hierarchical(&self) -> bool {
        self.0.starts_with('/')
    }

    /// Whether the name is AWS's (begins with `aws` or `ssm`, in any case,
    /// with or without a leading `/`): callers may not create it.
    pub fn is_reserved(&self) -> bool {
        let bare = self.0.strip_prefix('/').unwrap_or(&self.0);
        bare.get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("aws") || p.eq_ignore_ascii_case("ssm"))
    }

    /// Refuses a name the caller may not write.
    pub fn check_writable(&self) -> Result<(), SsmError> {
        if self.is_reserved() {
            return Err(SsmError::validation(
                "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).",
            ));
        }
        Ok(())
    }

    /// The path the name is in (`/a/b` for `/a/b/c`, `/` for `/a`); `None`
    /// for a plain name.
    pub fn parent(&self) -> Option<&str> {
        if !self.is_hierarchical() {
            return None;
        }
        let i = self.0.rfind('/')?;
        Some(if i == 0 { "/" } else { &self.0[..i] })
    }

    /// The parameter's ARN.
    pub fn arn(&self, region: &str, account: &str) -> String {
        parameter_arn(region, account, &self.0)
    }
}

impl fmt::Debug for ParameterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParameterName({:?})", self.0)
    }
}

impl fmt::Display for ParameterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ParameterName {
    type Error = SsmError;
    fn try_from(s: String) -> Result<Self, SsmError> {
        Self::parse(&s)
    }
}

impl From<ParameterName> for String {
    fn from(n: ParameterName) -> String {
        n.0
    }
}

impl serde::Serialize for ParameterName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ParameterName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `arn:aws:ssm:REGION:ACCOUNT:parameter/PATH` for a name or path: `/a/b`
/// and `a` give `parameter/a/b` and `parameter/a` (never a doubled slash).
pub fn parameter_arn(region: &str, account: &str, name: &str) -> String {
    let bare = name.strip_prefix('/').unwrap_or(name);
    format!("arn:aws:ssm:{region}:{account}:parameter/{bare}")
}

/// A `GetParametersByPath` path: begins with `/`, may end with one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterPath(String);

impl ParameterPath {
    pub fn parse(text: &str) -> Result<Self, SsmError> {
        check_text(text, "path")?;
        if !text.starts_with('/') {
            return Err(SsmError::validation(
                "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\".",
            ));
        }
        if text.len() > 1 && text.contains("//") {
            return Err(SsmError::validation(
                "Parameter path: each sub-path of a hierarchy must hold at least one character.",
            ));
        }
        let trimmed = if text.len() > 1 {
            text.strip_suffix('/').unwrap_or(text)
        } else {
            text
        };
        if levels(trimmed) > MAX_LEVELS {
            return Err(SsmError::HierarchyLevelLimitExceeded);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The path without a trailing slash (`/` for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ARN a request on the path is authorised on.
    pub fn arn(&self, region: &str, account: &str) -> String {
        parameter_arn(region, account, &self.0)
    }

    /// Whether `name` is under the path: directly, or at any depth when
    /// `recursive`.
    pub fn holds(&self, name: &ParameterName, recursive: bool) -> bool {
        let prefix = if self.0 == "/" {
            "/".to_owned()
        } else {
            format!("{}/", self.0)
        };
        let Some(rest) = name.as_str().strip_prefix(&prefix) else {
            return false;
        };
        !rest.is_empty() && (recursive || !rest.contains('/'))
    }
}

/// Which version a selector picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    Version(u64),
    Label(String),
}

impl fmt::Display for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pick::Version(v) => write!(f, "{v}"),
            Pick::Label(l) => f.write_str(l),
        }
    }
}

/// `name`, `name:VERSION` or `name:LABEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: ParameterName,
    pub pick: Option<Pick>,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, SsmError> {
        let Some((name, pick)) = text.rsplit_once(':') else {
            return Ok(Self {
                name: ParameterName::parse(text)?,
                pick: None,
            });
        };
        let name = ParameterName::parse(name)?;
        let bad = || {
            SsmError::validation(format!(
                "Invalid selector for parameter {name}: a selector is a version number or a label."
            ))
        };
        if pick.is_empty() || pick.chars().count() > 100 {
            return Err(bad());
        }
        let pick = if pick.bytes().all(|b| b.is_ascii_digit()) {
            match pick.parse::<u64>() {
                Ok(v) if v > 0 => Pick::Version(v),
                _ => return Err(bad()),
            }
        } else if pick
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            Pick::Label(pick.to_owned())
        } else {
            return Err(bad());
        };
        Ok(Self {
            name,
            pick: Some(pick),
        })
    }

    /// `:3` or `:label`, as the answer's `Selector` shows it.
    pub fn suffix(&self) -> Option<String> {
        self.pick.as_ref().map(|p| format!(":{p}"))
    }
}

/// A reference to a Secrets Manager secret: the secret's id and the
/// selector after it (a version id or a staging label), if the text is
/// one (`/aws/reference/secretsmanager/ID[:SELECTOR]`).
pub fn secret_reference(text: &str) -> Option<(&str, Option<&str>)> {
    let rest = text.strip_prefix(REFERENCE_PREFIX)?;
    // A secret's ARN holds colons of its own; a selector follows the id.
    let (id, pick) = if rest.starts_with("arn:") {
        (rest, None)
    } else {
        match rest.rsplit_once(':') {
            Some((id, pick)) => (id, Some(pick)),
            None => (rest, None),
        }
    };
    (!id.is_empty() && pick.is_none_or(|p| !p.is_empty())).then_some((id, pick))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<impl fmt::Debug, SsmError>) -> &'static str {
        r.err().map(|e| e.code()).unwrap_or("ok")
    }

    #[test]
    fn names_as_aws_checks_them() {
        for ok in [
            "a",
            "/a",
            "/a/b/c",
            "a.b-c_d",
            "/App/DB.url",
            &"x".repeat(2048),
        ] {
            assert!(ParameterName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "/a/",
            "/a//b",
            "a:b",
            "é",
            "/a b",
            &"x".repeat(2049),
        ] {
            assert_eq!(
                code(ParameterName::parse(bad)),
                "ValidationException",
                "{bad}"
            );
        }
        let deep15 = "/l".repeat(15);
        assert!(ParameterName::parse(&deep15).is_ok());
        let deep16 = "/l".repeat(16);
        assert_eq!(
            code(ParameterName::parse(&deep16)),
            "HierarchyLevelLimitExceededException"
        );
        for reserved in ["aws", "/aws/x", "AWSx", "/SsM/a", "ssm-thing"] {
            let n = ParameterName::parse(reserved).unwrap_or_else(|e| panic!("{reserved}: {e}"));
            assert!(n.check_writable().is_err(), "{reserved}");
        }
        assert!(
            ParameterName::parse("/app/aws")
                .map(|n| n.check_writable().is_ok())
                .unwrap_or(false)
        );
    }

    #[test]
    fn arns_never_double_the_slash() {
        let arn = |n: &str| ParameterName::parse(n).map(|n| n.arn("us-east-1", "123456789012"));
        assert_eq!(
            arn("/a/b"),
            Ok("arn:aws:ssm:us-east-1:123456789012:parameter/a/b".to_owned())
        );
        assert_eq!(
            arn("a"),
            Ok("arn:aws:ssm:us-east-1:123456789012:parameter/a".to_owned())
        );
    }

    #[test]
    fn parents_and_paths() {
        let n = |s: &str| ParameterName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(n("/a/b/c").parent(), Some("/a/b"));
        assert_eq!(n("/a").parent(), Some("/"));
        assert_eq!(n("a").parent(), None);
        let p = |s: &str| ParameterPath::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(p("/app/").as_str(), "/app");
        assert!(p("/app").holds(&n("/app/x"), false));
        assert!(!p("/app").holds(&n("/app/x/y"), false));
        assert!(p("/app").holds(&n("/app/x/y"), true));
        assert!(!p("/app").holds(&n("/apple/x"), true));
        assert!(!p("/app").holds(&n("/app"), true));
        assert!(p("/").holds(&n("/a"), false));
        assert!(!p("/").holds(&n("/a/b"), false));
        assert!(!p("/").holds(&n("a"), true));
        assert!(ParameterPath::parse("app").is_err());
        // Found by the fuzzer: a doubled trailing slash is refused, not
        // kept as a path no name is under.
        for bad in ["/app//", "//", "/a//b"] {
            assert!(ParameterPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            p("/app").arn("r", "1"),
            "arn:aws:ssm:r:1:parameter/app".to_owned()
        );
    }

    #[test]
    fn selectors() {
        let s = Selector::parse("/a/b:3").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.name.as_str(), "/a/b");
        assert_eq!(s.pick, Some(Pick::Version(3)));
        assert_eq!(s.suffix().as_deref(), Some(":3"));
        let s = Selector::parse("a:prod").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.pick, Some(Pick::Label("prod".into())));
        assert_eq!(Selector::parse("a").map(|s| s.pick), Ok(None));
        for bad in [
            "a:",
            "a:0",
            "a:b c",
            ":1",
            "a:1:2",
            "a:99999999999999999999999",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_references() {
        assert_eq!(
            secret_reference("/aws/reference/secretsmanager/db"),
            Some(("db", None))
        );
        assert_eq!(
            secret_reference("/aws/reference/secretsmanager/db:AWSPREVIOUS"),
            Some(("db", Some("AWSPREVIOUS")))
        );
        assert_eq!(secret_reference("/aws/reference/secretsmanager/"), None);
        assert_eq!(secret_reference("/aws/reference/secretsmanager/db:"), None);
        assert_eq!(secret_reference("/app/db"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic_and_accept_what_they_print(text in "\\PC{0,64}") {
            if let Ok(n) = ParameterName::parse(&text) {
                proptest::prop_assert_eq!(ParameterName::parse(n.as_str()), Ok(n.clone()));
                proptest::prop_assert!(n.as_str().chars().count() <= MAX_NAME);
            }
            if let Ok(s) = Selector::parse(&text) {
                let back = format!("{}{}", s.name, s.suffix().unwrap_or_default());
                proptest::prop_assert_eq!(Selector::parse(&back), Ok(s));
            }
            let _ = ParameterPath::parse(&text);
            let _ = secret_reference(&text);
        }

        #[test]
        fn generated_names_round_trip(
            parts in proptest::collection::vec("[a-zA-Z0-9_.-]{1,8}", 1..15),
            version in 1u64..1000,
        ) {
            let name = format!("/{}", parts.join("/"));
            let parsed = ParameterName::parse(&name);
            proptest::prop_assert!(parsed.is_ok(), "{}", name);
            let s = Selector::parse(&format!("{name}:{version}"));
            proptest::prop_assert_eq!(s.map(|s| s.pick), Ok(Some(Pick::Version(version))));
        }
    }
}
