//! The AWS Query protocol's request side: form-encoded `Action=...&Version=...`
//! parameters, with lists as `Name.member.N` and maps as `Tags.member.N.Key`.

use std::collections::HashMap;

use crate::error::ApiError;

/// Decoded request parameters.
#[derive(Debug, Default)]
pub struct Params {
    map: HashMap<String, String>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space.
fn form_decode(s: &str) -> Result<String, ApiError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = b.get(i + 1).copied().and_then(hex);
                let lo = b.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(ApiError::malformed(
                        "a parameter is not validly percent-encoded",
                    ));
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::malformed("a parameter is not UTF-8"))
}

/// Requests larger than this are refused before parsing.
pub const MAX_BODY: usize = 64 * 1024;

impl Params {
    /// Parses a form body (and/or a query string: pass both joined by `&`).
    pub fn parse(form: &str) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        let mut folded = std::collections::HashSet::new();
        for pair in form.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = form_decode(k)?;
            // Twice in another case counts as twice: the audit record names
            // parameters as CloudTrail does (`userName`), so `UserName` and
            // `userName` together would let a caller act on one and record
            // the other.
            if !folded.insert(k.to_ascii_lowercase()) {
                return Err(ApiError::malformed("a parameter appears more than once"));
            }
            map.insert(k, form_decode(v)?);
        }
        Ok(Self { map })
    }

    /// Parameters given as pairs (by an in-process caller); a later pair
    /// replaces an earlier one of the same name.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            map: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Every parameter, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut all: Vec<(&str, &str)> = self
            .map
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.sort_unstable();
        all.into_iter()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// A required parameter.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::validation(format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", lower_first(name))))
    }

    /// `Name.member.1`, `Name.member.2`, ... in order.
    pub fn list(&self, name: &str) -> Vec<&str> {
        (1..)
            .map_while(|i| self.get(&format!("{name}.member.{i}")))
            .collect()
    }

    /// `Name.member.N.Key` / `.Value` pairs, in order.
    pub fn tags(&self, name: &str) -> Vec<(String, String)> {
        (1..)
            .map_while(|i| {
                let k = self.get(&format!("{name}.member.{i}.Key"))?;
                let v = self.get(&format!("{name}.member.{i}.Value")).unwrap_or("");
                Some((k.to_owned(), v.to_owned()))
            })
            .collect()
    }

    /// `PolicyArns.member.N.arn`.
    pub fn arns(&self, name: &str) -> Vec<&str> {
        (1..)
            .map_while(|i| self.get(&format!("{name}.member.{i}.arn")))
            .collect()
    }

    /// An optional integer within `range`.
    pub fn int(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let n: i64 = v
            .parse()
            .map_err(|_| ApiError::validation(format!("{name} must be a number")))?;
        if !range.contains(&n) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{n}' at '{}' failed to satisfy constraint: Member must have value between {} and {}",
                lower_first(name),
                range.start(),
                range.end()
            )));
        }
        Ok(Some(n))
    }
}

pub(crate) fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms_lists_and_tags() {
        let p = Params::parse("Action=AssumeRole&RoleSessionName=a+b%40c&PolicyArns.member.1.arn=arn%3Ax&Tags.member.1.Key=team&Tags.member.1.Value=data&Tags.member.2.Key=k&X.member.1=a&X.member.2=b").unwrap();
        assert_eq!(p.get("RoleSessionName"), Some("a b@c"));
        assert_eq!(p.arns("PolicyArns"), ["arn:x"]);
        assert_eq!(
            p.tags("Tags"),
            [("team".into(), "data".into()), ("k".into(), String::new())]
        );
        assert_eq!(p.list("X"), ["a", "b"]);
        assert!(Params::parse("a=%zz").is_err());
        assert!(Params::parse("a=1&a=2").is_err());
        assert!(
            Params::parse("UserName=bob&userName=alice").is_err(),
            "a case variant is the same parameter twice"
        );
        let p = Params::parse("DurationSeconds=100").unwrap();
        assert!(p.int("DurationSeconds", 900..=3600).is_err());
        assert!(p.required("RoleArn").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            if let Ok(p) = Params::parse(&s) {
                let _ = (p.list("A"), p.tags("T"), p.arns("P"), p.int("N", 0..=10));
            }
        }
    }
}
