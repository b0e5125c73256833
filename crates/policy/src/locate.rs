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

/// The values of a JSON text and where each is, read once: every path is
/// then found by walking it, not by reading the text again.
struct Node {
    start: usize,
    end: usize,
    children: Children,
}

enum Children {
    None,
    Members(Vec<(String, Node)>),
    Elements(Vec<Node>),
}

/// Deeper than any JSON the policy parser accepts (serde_json stops at
/// 128): text nested deeper is not read, rather than overflowing the
/// stack.
const MAX_DEPTH: usize = 256;

struct Reader<'t> {
    text: &'t str,
    at: usize,
}

impl Reader<'_> {
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

    /// A string token, decoded; the reader stops after its closing quote.
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

    /// One value and everything in it. `None` where the text stops being
    /// JSON (or nests too deep); what was read before stays usable
    /// through `partial`.
    fn value(&mut self, depth: usize) -> Option<Node> {
        self.skip_whitespace();
        let start = self.at;
        let children = match self.peek()? {
            b'"' => {
                self.string()?;
                Children::None
            }
            b'{' | b'[' if depth >= MAX_DEPTH => return None,
            b'{' => {
                self.at += 1;
                let mut members = Vec::new();
                if self.eat(b'}').is_none() {
                    loop {
                        let key = self.string()?;
                        self.eat(b':')?;
                        members.push((key, self.value(depth + 1)?));
                        if self.eat(b',').is_none() {
                            self.eat(b'}')?;
                            break;
                        }
                    }
                }
                Children::Members(members)
            }
            b'[' => {
                self.at += 1;
                let mut elements = Vec::new();
                if self.eat(b']').is_none() {
                    loop {
                        elements.push(self.value(depth + 1)?);
                        if self.eat(b',').is_none() {
                            self.eat(b']')?;
                            break;
                        }
                    }
                }
                Children::Elements(elements)
            }
            _ => {
                // A number, true, false or null.
                while matches!(self.peek(), Some(b) if !b",}] \t\r\n".contains(&b)) {
                    self.at += 1;
                }
                Children::None
            }
        };
        Some(Node {
            start,
            end: self.at,
            children,
        })
    }
}

/// Where the paths of findings on one text are: the text is read once.
pub struct Locator<'t> {
    text: &'t str,
    /// `None` when the text is not JSON: every path is then the whole text.
    root: Option<Node>,
}

impl<'t> Locator<'t> {
    pub fn new(text: &'t str) -> Self {
        let mut reader = Reader { text, at: 0 };
        let root = reader.value(0);
        Self { text, root }
    }

    /// The path elements as far as the text goes, and the byte span of the
    /// value they reach.
    fn find(&self, path: &str) -> (Vec<PathElement>, usize, usize) {
        let Some(mut node) = self.root.as_ref() else {
            return (Vec::new(), 0, self.text.len());
        };
        let mut elements = Vec::new();
        let mut rest = path.strip_prefix('$').unwrap_or(path);
        while !rest.is_empty() {
            let next = match (&node.children, rest.as_bytes()[0]) {
                (Children::Elements(list), b'[') => {
                    rest[1..].split_once(']').and_then(|(digits, tail)| {
                        let index = digits.parse::<usize>().ok()?;
                        Some((PathElement::Index(index), list.get(index)?, tail))
                    })
                }
                (Children::Members(members), b'.') => {
                    let after = &rest[1..];
                    // The longest key the path goes on with.
                    members
                        .iter()
                        .filter(|(key, _)| {
                            after.strip_prefix(key.as_str()).is_some_and(|tail| {
                                tail.is_empty() || tail.starts_with('.') || tail.starts_with('[')
                            })
                        })
                        .max_by_key(|(key, _)| key.len())
                        .map(|(key, child)| {
                            (PathElement::Value(key.clone()), child, &after[key.len()..])
                        })
                }
                _ => None,
            };
            let Some((element, child, tail)) = next else {
                break;
            };
            elements.push(element);
            node = child;
            rest = tail;
        }
        (elements, node.start, node.end)
    }

    /// Where each path is, in order.
    pub fn locate_all(&self, paths: &[&str]) -> Vec<Location> {
        let found: Vec<(Vec<PathElement>, usize, usize)> =
            paths.iter().map(|p| self.find(p)).collect();
        let mut offsets: Vec<usize> = found.iter().flat_map(|(_, s, e)| [*s, *e]).collect();
        let positions = positions(self.text, &mut offsets);
        found
            .into_iter()
            .map(|(path, start, end)| Location {
                path,
                start: positions(start),
                end: positions(end),
            })
            .collect()
    }
}

/// The positions of the byte `offsets` in `text`, in one pass over it;
/// a lookup function from offset to position.
fn positions(text: &str, offsets: &mut [usize]) -> impl Fn(usize) -> Position + use<> {
    offsets.sort_unstable();
    let mut table: Vec<(usize, Position)> = Vec::with_capacity(offsets.len());
    let (mut line, mut column, mut offset) = (1, 0, 0);
    let mut chars = text.char_indices().peekable();
    for &target in offsets.iter() {
        while let Some(&(i, c)) = chars.peek() {
            if i >= target {
                break;
            }
            offset += 1;
            if c == '\n' {
                line += 1;
                column = 0;
            } else {
                column += 1;
            }
            chars.next();
        }
        table.push((
            target,
            Position {
                line,
                column,
                offset,
            },
        ));
    }
    move |byte| {
        let i = table.partition_point(|(o, _)| *o < byte);
        table.get(i).map_or(
            Position {
                line: 1,
                column: 0,
                offset: 0,
            },
            |(_, p)| *p,
        )
    }
}

fn position(text: &str, byte: usize) -> Position {
    positions(text, &mut [byte])(byte)
}

/// Where `path` is in `text`: as far along it as the text goes. Locating
/// many paths in one text: [`Locator`].
pub fn locate(text: &str, path: &str) -> Location {
    let mut all = Locator::new(text).locate_all(&[path]);
    all.pop().unwrap_or(Location {
        path: Vec::new(),
        start: position(text, 0),
        end: position(text, text.len()),
    })
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
    fn deep_nesting_is_not_read() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let l = locate(&deep, "$[0]");
        assert!(l.path.is_empty());
        assert_eq!(l.end.offset, deep.len(), "unread: the whole text");
    }

    #[test]
    fn many_findings_on_a_large_text_are_located_in_one_pass() {
        let statements: Vec<String> = (0..2000)
            .map(|i| format!("{}{{\"Effect\": \"Alow{i}\"}}", "\n".repeat(100)))
            .collect();
        let text = format!("{{\"Statement\": [{}]}}", statements.join(","));
        let paths: Vec<String> = (0..2000)
            .map(|i| format!("$.Statement[{i}].Effect"))
            .collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let all = Locator::new(&text).locate_all(&refs);
        assert_eq!(all.len(), 2000);
        assert_eq!(at(&text, all[1999].start, all[1999].end), "\"Alow1999\"");
        assert_eq!(all[1999].start.line, 1 + 100 * 2000);
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
