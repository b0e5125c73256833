//! Where a finding's JSON path (`$.Statement[1].Resource`) is in the
//! policy's text: IAM Access Analyzer's `locations`, a list of path
//! elements and the span of the value they reach (line from 1, column and
//! offset from 0, in characters; the end exclusive).
//!
//! A path is matched against the keys the text really has, so a key with
//! a `.` or `[` in it (a tag key in a condition) is found whole. Where the
//! path goes further than the text (a missing element), the location is
//! the deepest value that exists.

/// One step of a path: a key's value in an object, or an array element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathElement {
    Value(String),
    Index(usize),
}

/// A place in the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
}

/// Where a finding is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub path: Vec<PathElement>,
    pub start: Position,
    pub end: Position,
}

struct Scanner<'t> {
    text: &'t str,
    at: usize,
    /// How many arrays and objects the scanner is inside.
    depth: usize,
}

/// Deeper than any JSON the policy parser accepts (serde_json stops at
/// 128): text nested deeper is not scanned, rather than overflowing the
/// stack.
const MAX_DEPTH: usize = 256;

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek() == Some(b)).then(|| self.at += 1)
    }

    /// A string token, decoded; the scanner stops after its closing quote.
    fn string(&mut self) -> Option<String> {
        self.skip_whitespace();
        let start = self.at;
        if self.peek() != Some(b'"') {
            return None;
        }
        self.at += 1;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    break;
                }
                _ => self.at += 1,
            }
        }
        serde_json::from_str(self.text.get(start..self.at)?).ok()
    }

    /// Skips one value, whatever it is.
    fn value(&mut self) -> Option<()> {
        self.skip_whitespace();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                if self.depth >= MAX_DEPTH {
                    return None;
                }
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                if self.eat(close).is_some() {
                    return Some(());
                }
                self.depth += 1;
                let end = loop {
                    if open == b'{' && (self.string().is_none() || self.eat(b':').is_none()) {
                        break None;
                    }
                    if self.value().is_none() {
                        break None;
                    }
                    if self.eat(b',').is_none() {
                        break self.eat(close);
                    }
                };
                self.depth -= 1;
                end
            }
            _ => {
                // A number, true, false or null.
                while matches!(self.peek(), Some(b) if !b",}] \t\r\n".contains(&b)) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// The members of the object the scanner is at: (key, where its value
    /// starts). The scanner ends after the object.
    fn members(&mut self) -> Option<Vec<(String, usize)>> {
        self.eat(b'{')?;
        let mut out = Vec::new();
        if self.eat(b'}').is_some() {
            return Some(out);
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            self.skip_whitespace();
            out.push((key, self.at));
            self.value()?;
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                return Some(out);
            }
        }
    }

    /// Moves to the start of element `index` of the array the scanner is at.
    fn element(&mut self, index: usize) -> Option<()> {
        self.eat(b'[')?;
        for _ in 0..index {
            self.value()?;
            self.eat(b',')?;
        }
        self.skip_whitespace();
        (!matches!(self.peek(), Some(b']') | None)).then_some(())
    }
}

fn position(text: &str, byte: usize) -> Position {
    let before = text.get(..byte).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count(),
        offset: before.chars().count(),
    }
}

/// Where `path` is in `text`: as far along it as the text goes.
pub fn locate(text: &str, path: &str) -> Location {
    let mut s = Scanner {
        text,
        at: 0,
        depth: 0,
    };
    let mut elements = Vec::new();
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    s.skip_whitespace();
    let mut start = s.at;
    while !rest.is_empty() {
        let mut probe = Scanner {
            text,
            at: start,
            depth: 0,
        };
        let next = if let Some(after) = rest.strip_prefix('[') {
            let Some((digits, tail)) = after.split_once(']') else {
                break;
            };
            let Ok(index) = digits.parse::<usize>() else {
                break;
            };
            probe.element(index).map(|()| {
                probe.skip_whitespace();
                (PathElement::Index(index), probe.at, tail)
            })
        } else if let Some(after) = rest.strip_prefix('.') {
            probe.members().and_then(|members| {
                // The longest key the path goes on with.
                members
                    .into_iter()
                    .filter(|(key, _)| {
                        after.strip_prefix(key.as_str()).is_some_and(|tail| {
                            tail.is_empty() || tail.starts_with('.') || tail.starts_with('[')
                        })
                    })
                    .max_by_key(|(key, _)| key.len())
                    .map(|(key, at)| {
                        let tail = &after[key.len()..];
                        (PathElement::Value(key), at, tail)
                    })
            })
        } else {
            None
        };
        let Some((element, at, tail)) = next else {
            break;
        };
        elements.push(element);
        start = at;
        rest = tail;
    }
    let mut end = Scanner {
        text,
        at: start,
        depth: 0,
    };
    let end = match end.value() {
        Some(()) => end.at,
        None => text.len(),
    };
    Location {
        path: elements,
        start: position(text, start),
        end: position(text, end),
    }
}

/// Where `text` stops being JSON: one character at the place the parser
/// gave up, with no path. `None` when it is JSON.
pub fn syntax_error(text: &str) -> Option<Location> {
    let e = serde_json::from_str::<serde_json::Value>(text).err()?;
    // serde_json counts lines from 1 and columns from 1, in bytes.
    let line_start = text
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum::<usize>();
    let mut at = (line_start + e.column().saturating_sub(1)).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let next = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
    Some(Location {
        path: Vec::new(),
        start: position(text, at),
        end: position(text, next),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"},
    {
      "Effect": "Allow",
      "Action": ["iam:PassRole", "sts:AssumeRole"],
      "Resource": "*",
      "Condition": {"StringEquals": {"aws:ResourceTag/app.name": ["é", "b"]}}
    }
  ]
}"#;

    fn at(text: &str, p: Position, q: Position) -> &str {
        let start: usize = text
            .char_indices()
            .nth(p.offset)
            .map_or(text.len(), |c| c.0);
        let end: usize = text
            .char_indices()
            .nth(q.offset)
            .map_or(text.len(), |c| c.0);
        &text[start..end]
    }

    #[test]
    fn finds_the_value_a_path_names() {
        let l = locate(DOC, "$.Statement[1].Action[0]");
        assert_eq!(
            l.path,
            vec![
                PathElement::Value("Statement".into()),
                PathElement::Index(1),
                PathElement::Value("Action".into()),
                PathElement::Index(0),
            ]
        );
        assert_eq!(at(DOC, l.start, l.end), "\"iam:PassRole\"");
        assert_eq!((l.start.line, l.start.column), (7, 17));
        let l = locate(DOC, "$.Statement[0].Resource");
        assert_eq!(at(DOC, l.start, l.end), "\"*\"");
        assert_eq!(l.start.line, 4);
    }

    #[test]
    fn keys_with_dots_are_found_whole() {
        let l = locate(
            DOC,
            "$.Statement[1].Condition.StringEquals.aws:ResourceTag/app.name[1]",
        );
        assert_eq!(l.path.len(), 6);
        assert_eq!(at(DOC, l.start, l.end), "\"b\"");
        // Offsets count characters: the é before it is one.
        assert_eq!(
            l.start.offset,
            DOC[..DOC.rfind("\"b\"").unwrap()].chars().count()
        );
    }

    #[test]
    fn a_missing_element_locates_its_deepest_existing_parent() {
        let l = locate(DOC, "$.Statement[0].Principal");
        assert_eq!(
            l.path,
            vec![
                PathElement::Value("Statement".into()),
                PathElement::Index(0)
            ]
        );
        assert!(at(DOC, l.start, l.end).starts_with("{\"Effect\""));
        let l = locate(DOC, "$.Statement[7]");
        assert_eq!(l.path.len(), 1);
        let l = locate(DOC, "$");
        assert!(l.path.is_empty());
        assert_eq!(l.start.offset, 0);
        assert_eq!(at(DOC, l.start, l.end), DOC);
    }

    #[test]
    fn a_syntax_error_is_located_where_parsing_stopped() {
        let text = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [}\n}";
        let l = syntax_error(text).unwrap();
        assert_eq!((l.start.line, l.start.column), (3, 16));
        assert_eq!(at(text, l.start, l.end), "}");
        assert!(syntax_error(DOC).is_none());
        assert!(syntax_error("").is_some());
    }

    #[test]
    fn deep_nesting_is_not_scanned() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let l = locate(&deep, "$[0]");
        assert_eq!(l.path, vec![PathElement::Index(0)]);
        assert_eq!(l.end.offset, deep.len(), "unscanned: to the end");
    }

    #[test]
    fn broken_text_still_gets_a_location() {
        for text in [
            "",
            "{",
            "{\"Statement\": [",
            "[1,",
            "\"unterminated",
            "{\"a\":}",
        ] {
            let l = locate(text, "$.Statement[0].Action");
            assert!(l.end.offset <= text.chars().count(), "{text}");
        }
    }
}
