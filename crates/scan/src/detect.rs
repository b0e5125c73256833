//! The detectors: an Aho-Corasick pass finds the lines worth a look, and
//! each family's regexes run on those lines only.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use regex::bytes::Regex;
use sha2::{Digest, Sha256};

use crate::placeholder::{GENERIC_ENTROPY_BITS, is_placeholder, shannon_entropy};
use crate::{Detector, Secret, Severity};

/// One leak in a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub detector: Detector,
    pub severity: Severity,
    /// From 1.
    pub line: usize,
    /// From 1, in characters.
    pub column: usize,
    /// The secret's bytes in the buffer.
    pub start: usize,
    pub end: usize,
    pub secret: Secret,
    /// The access key id that goes with the secret, to verify (an
    /// `AKIA`/`ASIA` id is not itself a secret).
    pub key_id: Option<String>,
    /// Other key ids near the secret, nearest first: which one is its own
    /// only the store can tell (a decoy id may stand nearer).
    pub other_key_ids: Vec<String>,
    /// SHA-256 of the finding's line with the secret left out.
    pub context: [u8; 32],
}

impl Finding {
    /// Whether the finding holds an access key's secret (a key id and
    /// its secret together, which is a credential), not a key id alone
    /// (which is not a secret: ids are in logs, tickets and CloudTrail).
    pub fn holds_key_secret(&self) -> bool {
        matches!(
            self.detector,
            Detector::AwsAccessKey | Detector::CredentialsFile
        ) && self
            .key_id
            .as_deref()
            .is_some_and(|id| id != self.secret.expose())
    }

    /// Identifies the finding in `path` wherever its line moves in the
    /// file (32 hex digits), without revealing the secret: a hash of the
    /// detector, the path, the line with the secret left out, and one
    /// byte of the secret's own hash (so that a different secret on the
    /// same line is, but for one chance in 256, a different finding; a
    /// byte confirms no guess of the secret).
    pub fn fingerprint(&self, path: &str) -> String {
        let secret = Sha256::digest(self.secret.expose().as_bytes());
        let mut h = Sha256::new();
        h.update(b"latchkey-scan/fingerprint/v2\0");
        h.update(self.detector.id().as_bytes());
        h.update([0]);
        h.update(path.as_bytes());
        h.update([0]);
        h.update(self.context);
        h.update([secret[0]]);
        hex::encode(&h.finalize()[..16])
    }
}

/// What a prefilter literal calls for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    KeyId,
    Assignment,
    Url,
    Pem,
    RdsToken,
}

const FAMILIES: usize = 5;

/// The literals, compared without ASCII case, and their families.
const LITERALS: &[(&str, Family)] = &[
    ("AKIA", Family::KeyId),
    ("ASIA", Family::KeyId),
    ("password", Family::Assignment),
    ("passwd", Family::Assignment),
    ("pwd", Family::Assignment),
    ("_pass", Family::Assignment),
    ("mysql", Family::Assignment),
    ("mariadb", Family::Assignment),
    ("secret", Family::Assignment),
    ("token", Family::Assignment),
    ("api_key", Family::Assignment),
    ("apikey", Family::Assignment),
    ("api-key", Family::Assignment),
    ("access_key", Family::Assignment),
    ("accesskey", Family::Assignment),
    ("private_key", Family::Assignment),
    ("://", Family::Url),
    ("jdbc:oracle:", Family::Url),
    ("@tcp(", Family::Url),
    ("@unix(", Family::Url),
    ("-----BEGIN", Family::Pem),
    ("Action=connect", Family::RdsToken),
];

/// How many lines either side of a key id its secret may be on.
const PAIR_LINES: usize = 5;

/// How many bytes either side of a key id its secret may be.
const PAIR_BYTES: usize = 2048;

/// Findings kept of one line, and of one buffer: past these, the text is
/// a dump rather than a leak, and its first findings say enough.
const MAX_PER_LINE: usize = 64;
const MAX_PER_BUFFER: usize = 10_000;

/// Key ids of one line looked at (each is paired with what is near it).
const MAX_IDS_PER_LINE: usize = 256;

/// Longest value a generic assignment is read to.
const MAX_VALUE: usize = 256;

/// The detectors, compiled once: share one across threads.
pub struct Scanner {
    /// Bits per character a generic secret reaches (see
    /// [`GENERIC_ENTROPY_BITS`]).
    generic_entropy: f64,
    prefilter: AhoCorasick,
    key_id: Regex,
    secret_assigned: Regex,
    secret_bare: Regex,
    credentials_section: Regex,
    session_token: Regex,
    generic: Regex,
    env_password: Regex,
    env_password_dockerfile: Regex,
    mysql_cli_password: Regex,
    libpq_context: Regex,
    libpq_password: Regex,
    url_userinfo: Regex,
    url_query_password: Regex,
    oracle_userinfo: Regex,
    go_dsn: Regex,
    k8s_env_name: Regex,
    k8s_env_value: Regex,
    bare_session_token: Regex,
    pem_begin: Regex,
    rds_token: Regex,
    rds_credential: Regex,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

fn re(pattern: &str) -> Regex {
    // Bytes, not Unicode: any text (or none) is scanned, case is ASCII's,
    // and the automata stay small. The patterns are constants, checked by
    // the tests.
    Regex::new(&format!("(?-u){pattern}"))
        .unwrap_or_else(|e| panic!("detector pattern {pattern:?}: {e}"))
}

/// The operator between a name and its value in code and configuration:
/// `=`, `:=`, `=>` (after an optional closing quote or bracket), or `:`
/// after a quoted name (JSON) or before a space (YAML) — never a `::` path
/// or a `prefix:name` (`secretsmanager:GetSecretValue`).
const ASSIGN: &str = r#"(?:["'\]]?\s*(?::=|=>|=)\s*|["']\s*:\s*|\s*:\s+)"#;

impl Scanner {
    pub fn new() -> Self {
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(LITERALS.iter().map(|(l, _)| l))
            .unwrap_or_else(|e| panic!("prefilter: {e}"));
        Self {
            generic_entropy: GENERIC_ENTROPY_BITS,
            prefilter,
            key_id: re(r"(?:^|[^A-Za-z0-9+])((?:AKIA|ASIA)[A-Z0-9]{16})(?:[^A-Za-z0-9/+=]|$)"),
            secret_assigned: re(&format!(
                r#"(?i)(?:aws_?secret_?access_?key|secret_?access_?key|aws_?secret_?key|secretkey){ASSIGN}["']?([A-Za-z0-9/+]{{40}})(?:[^A-Za-z0-9/+=]|$)"#
            )),
            secret_bare: re(r"(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"),
            credentials_section: re(r"(?m)^\s*\[[^\]\n]+\]\s*$"),
            session_token: re(&format!(
                r#"(?i)(?:aws_?session_?token|x-amz-security-token|session_?token|security_?token){ASSIGN}["']?([A-Za-z0-9_\-+/=%]{{80,8192}})"#
            )),
            generic: re(&format!(
                r#"(?i)([A-Za-z0-9_.\-]*(?:password|passwd|pwd|_pass|secret|token|api_?key|api-key|access_?key|private_?key)[A-Za-z0-9_.\-]*){ASSIGN}(?:"([^"\n]{{1,{MAX_VALUE}}})"|'([^'\n]{{1,{MAX_VALUE}}})'|([^\s"'`;,(){{}}\[\]<>:\\]{{1,{MAX_VALUE}}}))"#
            )),
            // `PGPASSWORD=...` in a script or `.env`, `PGPASSWORD: ...` in
            // YAML, `"PGPASSWORD": "..."` in JSON.
            env_password: re(
                r#"(?:^|[^A-Za-z0-9_])(?:PGPASSWORD|MYSQL_PWD)(?:\s*=\s*|["']?\s*:\s+|["']\s*:\s*)(?:"([^"\n]*)"|'([^'\n]*)'|([^\s;&|"']+))"#,
            ),
            // A Dockerfile's `ENV PGPASSWORD value` (its old form, a space
            // and no `=`).
            env_password_dockerfile: re(
                r#"(?i)^\s*ENV\s+(?:PGPASSWORD|MYSQL_PWD)\s+(?:"([^"\n]*)"|'([^'\n]*)'|([^\s"']+))\s*$"#,
            ),
            // `mysql -pSECRET`, `mysqldump --password=SECRET`.
            mysql_cli_password: re(
                r#"(?:^|[\s;&|(`])(?:mysql|mysqldump|mysqladmin|mysqlimport|mariadb|mariadb-dump)\s(?:[^\n]*?\s)?(?:-p|--password=)(?:"([^"\n]+)"|'([^'\n]+)'|([^\s"';&|)`-][^\s"';&|)`]*))"#,
            ),
            libpq_context: re(r"(?i)(?:^|[\s'\x22])(?:host|hostaddr|dbname|user)\s*="),
            libpq_password: re(
                r#"(?i)(?:^|[\s'\x22])password\s*=\s*(?:'((?:[^'\\\n]|\\.)*)'|([^\s'";]+))"#,
            ),
            url_userinfo: re(
                r#"(?i)\b((?:jdbc:)?(?:postgres|postgresql|mysql|mariadb|mysqlx|mongodb|redis|rediss|amqp|amqps)(?:\+[a-z0-9_]+)?)://([^:@/\s"'<>]+):([^@\s"'<>/]+)@"#,
            ),
            url_query_password: re(
                r#"(?i)\b((?:jdbc:)?(?:postgres|postgresql|mysql|mariadb|sqlserver)(?:\+[a-z0-9_]+)?)://[^\s"'<>]*?[?&;]password=([^&;\s"'<>]+)"#,
            ),
            // `jdbc:oracle:thin:user/password@host:1521/service`.
            oracle_userinfo: re(
                r#"(?i)\b(jdbc:oracle:(?:thin|oci8?|kprb)):([^/@\s"':;]+)/([^@\s"']+)@"#,
            ),
            // Go's MySQL driver: `user:password@tcp(host:3306)/db`; the
            // password runs to the last `@` before the address, as the
            // driver reads it.
            go_dsn: re(r#"(?:^|[\s"'`=(])([A-Za-z0-9_.\-]+):([^\s"'`]+)@(?:tcp|unix)\("#),
            // A Kubernetes (or Compose) environment entry of two lines:
            // `- name: PGPASSWORD` then `value: ...`.
            k8s_env_name: re(r#"^\s*-?\s*name:\s*["']?([A-Za-z0-9_.\-]+)["']?\s*$"#),
            k8s_env_value: re(&format!(
                r#"^\s*value:\s*(?:"([^"\n]{{1,{MAX_VALUE}}})"|'([^'\n]{{1,{MAX_VALUE}}})'|([^\s#]{{1,{MAX_VALUE}}}))"#
            )),
            // A Latchkey session token standing alone (base64url of
            // version 1 and a small key id: `AQAAA...`), looked for only
            // near a temporary key id.
            bare_session_token: re(
                r"(?:^|[^A-Za-z0-9_\-])(AQAAA[A-Za-z0-9_\-]{150,8187})(?:[^A-Za-z0-9_\-=]|$)",
            ),
            pem_begin: re(
                r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----",
            ),
            rds_token: re(
                r#"[A-Za-z0-9][A-Za-z0-9.\-]*:[0-9]{1,5}/\?Action=connect&DBUser=[^&\s"']+&[^\s"']*?X-Amz-Signature=[0-9a-f]{64}"#,
            ),
            rds_credential: re(r"X-Amz-Credential=((?:AKIA|ASIA)[A-Z0-9]{16})"),
        }
    }

    /// The scanner with another entropy threshold for generic secrets
    /// (bits per character, 0 to 8): lower finds shorter and plainer
    /// passwords and more that are not. `bench/scan.sh` sweeps it.
    pub fn with_generic_entropy(mut self, bits: f64) -> Self {
        self.generic_entropy = bits.clamp(0.0, 8.0);
        self
    }

    /// Every leak in `text`, in order.
    pub fn scan(&self, text: &[u8]) -> Vec<Finding> {
        let mut lines: [Vec<usize>; FAMILIES] = Default::default();
        let mut index: Option<Lines> = None;
        for m in self.prefilter.find_overlapping_iter(text) {
            let family = LITERALS[m.pattern().as_usize()].1;
            let lines_of = index.get_or_insert_with(|| Lines::new(text));
            let line = lines_of.line_of(m.start());
            let list = &mut lines[family as usize];
            if list.last() != Some(&line) {
                list.push(line);
            }
        }
        let Some(index) = index else {
            return Vec::new();
        };
        let mut out = Out {
            text,
            index: &index,
            found: Vec::new(),
            taken: BTreeMap::new(),
            pem_until: 0,
            current_line: None,
            last_column: (0, 1),
        };
        for family in [
            Family::RdsToken,
            Family::Pem,
            Family::KeyId,
            Family::Url,
            Family::Assignment,
        ] {
            let list = &lines[family as usize];
            for &line in list {
                match family {
                    Family::KeyId => self.key_ids(&mut out, line),
                    Family::Assignment => self.assignments(&mut out, line),
                    Family::Url => self.urls(&mut out, line),
                    Family::Pem => self.pem(&mut out, line),
                    Family::RdsToken => self.rds_tokens(&mut out, line),
                }
            }
        }
        out.finish()
    }

    fn key_ids(&self, out: &mut Out, line: usize) {
        let (start, end) = out.index.span(line, line);
        let text = out.text;
        // A line of thousands of ids is a dump: its first real ones say
        // enough, and each costs a look around it.
        let mut looked = 0;
        for c in self.key_id.captures_iter(&text[start..end]) {
            let Some(id) = c.get(1) else { continue };
            let (id_start, id_end) = (start + id.start(), start + id.end());
            let key_id = String::from_utf8_lossy(id.as_bytes()).into_owned();
            if is_placeholder(&key_id) || out.inside_other(id_start, id_end) {
                continue;
            }
            looked += 1;
            if looked > MAX_IDS_PER_LINE {
                break;
            }
            // Its secret: assigned to a name that says so, or bare and
            // random-looking, on a line near it.
            let first = line.saturating_sub(PAIR_LINES);
            let (near_start, near_end) = out.index.span(first, line + PAIR_LINES);
            // Bounded, so that a line of many ids is read once per id at
            // most PAIR_BYTES either side, not whole.
            let near_start = near_start.max(id_start.saturating_sub(PAIR_BYTES));
            let near_end = near_end.min(id_end + PAIR_BYTES);
            let near = &text[near_start..near_end];
            // The other ids near, unpaired and real: a secret nearer one
            // of them than this id is that one's.
            let near_ids: Vec<(usize, usize)> = self
                .key_id
                .captures_iter(near)
                .filter_map(|c| c.get(1))
                .map(|m| (near_start + m.start(), near_start + m.end()))
                .filter(|&(s, e)| {
                    s != id_start && !is_placeholder(&String::from_utf8_lossy(&text[s..e]))
                })
                .collect();
            let others: Vec<(usize, usize)> = near_ids
                .iter()
                .copied()
                .filter(|&(s, e)| !out.overlaps(s, e))
                .collect();
            let index = out.index;
            // Lines apart first, then bytes between: a secret on the line
            // before its id is its, not the next block's.
            let distance = |(is, ie): (usize, usize), (ss, se): (usize, usize)| {
                let lines = index.line_of(ss).abs_diff(index.line_of(is));
                let gap = if se <= is {
                    is - se
                } else {
                    ss.saturating_sub(ie)
                };
                (lines, gap)
            };
            let id_span = (id_start, id_end);
            let secret = self
                .secret_assigned
                .captures_iter(near)
                .filter_map(|c| c.get(1))
                .chain(
                    self.secret_bare
                        .captures_iter(near)
                        .filter_map(|c| c.get(1))
                        .filter(|m| looks_like_aws_secret(m.as_bytes())),
                )
                .map(|m| (near_start + m.start(), near_start + m.end()))
                // The nearest secret no other key took or is nearer to, in
                // the same profile of a credentials file.
                .filter(|&(s, e)| {
                    !out.overlaps(s, e)
                        && !is_placeholder(&String::from_utf8_lossy(&text[s..e]))
                        && others
                            .iter()
                            .all(|&o| distance(o, (s, e)) >= distance(id_span, (s, e)))
                        && !self.section_between(text, index, line, index.line_of(s))
                })
                .min_by_key(|&sp| distance(id_span, sp));
            // `latchkey:allow` on the id's line accepts that line: the id,
            // and its secret if it is on the line too (one further away
            // may be another key's, and is judged on its own).
            if out.line_allows(line) {
                out.claim(id_start, id_end);
                match secret {
                    Some((s, e)) if index.line_of(s) == line => out.claim(s, e),
                    // Its secret on another line is judged there.
                    Some((s, e)) => out.push(Detector::AwsSecretKey, Severity::High, s, e, None),
                    None => {}
                }
                continue;
            }
            if key_id.starts_with("ASIA") && secret.is_some() {
                self.bare_session_tokens(out, near_start, near);
            }
            match secret {
                // `latchkey:allow` on the secret's line accepts the secret;
                // its id, on a line that does not say so (an allowed id
                // line was dealt with above), is still told.
                Some((s, _)) if out.line_allows(index.line_of(s)) => {
                    out.push(
                        Detector::AwsAccessKey,
                        Severity::Medium,
                        id_start,
                        id_end,
                        Some(key_id),
                    );
                }
                Some((s, e)) => {
                    let detector = if self.is_credentials_file(text, out.index, line) {
                        Detector::CredentialsFile
                    } else {
                        Detector::AwsAccessKey
                    };
                    out.push(detector, Severity::Critical, s, e, Some(key_id));
                    // The other ids near it, for the store to choose from.
                    let mut near_ids = near_ids;
                    near_ids.sort_by_key(|&o| distance(o, (s, e)));
                    let names = near_ids
                        .iter()
                        .map(|&(a, b)| String::from_utf8_lossy(&text[a..b]).into_owned())
                        .collect();
                    out.set_other_key_ids(s, names);
                    out.claim(id_start, id_end);
                }
                None => out.push(
                    Detector::AwsAccessKey,
                    Severity::Medium,
                    id_start,
                    id_end,
                    Some(key_id),
                ),
            }
        }
    }

    /// Session tokens with no name before them near a temporary key (the
    /// output of a script, a table): Latchkey's own shape only.
    fn bare_session_tokens(&self, out: &mut Out, near_start: usize, near: &[u8]) {
        for c in self.bare_session_token.captures_iter(near) {
            if let Some(m) = c.get(1) {
                let (s, e) = (near_start + m.start(), near_start + m.end());
                out.push(Detector::SessionToken, Severity::High, s, e, None);
            }
        }
    }

    /// Whether an INI `[section]` header lies between lines `a` and `b`
    /// (a secret under another profile is that profile's).
    fn section_between(&self, text: &[u8], index: &Lines, a: usize, b: usize) -> bool {
        let (low, high) = (a.min(b), a.max(b));
        if high <= low + 1 {
            return false;
        }
        let (start, end) = index.span(low + 1, high - 1);
        self.credentials_section.is_match(&text[start..end])
    }

    /// `aws_access_key_id = ...` under an INI `[section]` header.
    fn is_credentials_file(&self, text: &[u8], index: &Lines, line: usize) -> bool {
        let (start, end) = index.span(line, line);
        let head = &text[start..end.min(start + 64)];
        let this = String::from_utf8_lossy(head).to_ascii_lowercase();
        if !this.trim_start().starts_with("aws_access_key_id") {
            return false;
        }
        let (above, _) = index.span(line.saturating_sub(PAIR_LINES), line);
        self.credentials_section.is_match(&text[above..start])
    }

    fn assignments(&self, out: &mut Out, line: usize) {
        let (start, end) = out.index.span(line, line);
        let text = out.text;
        let slice = &text[start..end];
        let push_value = |out: &mut Out, detector, severity, m: regex::bytes::Match| {
            let value = String::from_utf8_lossy(m.as_bytes());
            if !is_placeholder(&value) {
                out.push(detector, severity, start + m.start(), start + m.end(), None);
            }
        };
        for c in self.secret_assigned.captures_iter(slice) {
            if let Some(m) = c.get(1) {
                push_value(out, Detector::AwsSecretKey, Severity::High, m);
            }
        }
        for c in self.session_token.captures_iter(slice) {
            if let Some(m) = c.get(1) {
                push_value(out, Detector::SessionToken, Severity::High, m);
            }
        }
        for re in [
            &self.env_password,
            &self.env_password_dockerfile,
            &self.mysql_cli_password,
        ] {
            for c in re.captures_iter(slice) {
                if let Some(m) = c.get(1).or_else(|| c.get(2)).or_else(|| c.get(3)) {
                    push_value(out, Detector::EnvPassword, Severity::High, m);
                }
            }
        }
        if self.libpq_context.is_match(slice) {
            for c in self.libpq_password.captures_iter(slice) {
                if let Some(m) = c.get(1).or_else(|| c.get(2)) {
                    push_value(out, Detector::LibpqDsn, Severity::High, m);
                }
            }
        }
        // Latchkey's token under any name (`token: "AQAAA..."`,
        // `LATCHKEY_TOKEN=...`), also longer than a generic value is read;
        // before the generic look, which would take its first part.
        self.bare_session_tokens(out, start, slice);
        for c in self.generic.captures_iter(slice) {
            let quoted = c.get(2).or_else(|| c.get(3));
            let (Some(name), Some(m)) = (c.get(1), quoted.or_else(|| c.get(4))) else {
                continue;
            };
            // `name = call(...)`: the value is a function's name.
            let called = quoted.is_none() && slice.get(m.end()) == Some(&b'(');
            if !called && self.generic_secret(name.as_bytes(), m.as_bytes(), quoted.is_none()) {
                out.push(
                    Detector::GenericSecret,
                    Severity::Medium,
                    start + m.start(),
                    start + m.end(),
                    None,
                );
            }
        }
        self.k8s_env(out, line, slice);
    }

    /// Whether `value`, assigned to `name` (which says secret), is one:
    /// long and random enough, not a placeholder, code, a hash, or what
    /// names a secret rather than holds it.
    fn generic_secret(&self, name: &[u8], value: &[u8], unquoted: bool) -> bool {
        let value = String::from_utf8_lossy(value);
        value.chars().count() >= 8
            && !names_not_holds(name)
            && !is_placeholder(&value)
            && !looks_like_code(&value, unquoted)
            && !looks_like_hash(name, &value)
            && shannon_entropy(&value) >= self.generic_entropy
    }

    /// `- name: PGPASSWORD` with its `value:` on the next line.
    fn k8s_env(&self, out: &mut Out, line: usize, slice: &[u8]) {
        let Some(name) = self.k8s_env_name.captures(slice).and_then(|c| c.get(1)) else {
            return;
        };
        let (next_start, next_end) = out.index.span(line + 1, line + 1);
        if next_start <= out.index.span(line, line).1 {
            return;
        }
        let next = &out.text[next_start..next_end];
        let Some(c) = self.k8s_env_value.captures(next) else {
            return;
        };
        let quoted = c.get(1).or_else(|| c.get(2));
        let Some(m) = quoted.or_else(|| c.get(3)) else {
            return;
        };
        let name = name.as_bytes();
        let (detector, severity) = if name.eq_ignore_ascii_case(b"PGPASSWORD")
            || name.eq_ignore_ascii_case(b"MYSQL_PWD")
        {
            if is_placeholder(&String::from_utf8_lossy(m.as_bytes())) {
                return;
            }
            (Detector::EnvPassword, Severity::High)
        } else if self.generic_secret(name, m.as_bytes(), quoted.is_none()) {
            (Detector::GenericSecret, Severity::Medium)
        } else {
            return;
        };
        out.push(
            detector,
            severity,
            next_start + m.start(),
            next_start + m.end(),
            None,
        );
    }

    fn urls(&self, out: &mut Out, line: usize) {
        let (start, end) = out.index.span(line, line);
        let slice = &out.text[start..end];
        let detector_of = |scheme: &[u8]| {
            if scheme.len() > 5 && scheme[..5].eq_ignore_ascii_case(b"jdbc:") {
                Detector::JdbcUrl
            } else {
                Detector::DatabaseUrl
            }
        };
        // `scheme://user:password@host`, and `...?password=...`: the
        // scheme, and where the password is.
        for (re, group) in [
            (&self.url_userinfo, 3),
            (&self.url_query_password, 2),
            (&self.oracle_userinfo, 3),
        ] {
            for c in re.captures_iter(slice) {
                let (Some(scheme), Some(password)) = (c.get(1), c.get(group)) else {
                    continue;
                };
                if !is_placeholder(&String::from_utf8_lossy(password.as_bytes())) {
                    out.push(
                        detector_of(scheme.as_bytes()),
                        Severity::High,
                        start + password.start(),
                        start + password.end(),
                        None,
                    );
                }
            }
        }
        for c in self.go_dsn.captures_iter(slice) {
            if let Some(password) = c.get(2)
                && !is_placeholder(&String::from_utf8_lossy(password.as_bytes()))
            {
                out.push(
                    Detector::DatabaseUrl,
                    Severity::High,
                    start + password.start(),
                    start + password.end(),
                    None,
                );
            }
        }
    }

    fn pem(&self, out: &mut Out, line: usize) {
        let (start, end) = out.index.span(line, line);
        let text = out.text;
        // Inside a block already found (or cut off): part of it.
        if start < out.pem_until {
            return;
        }
        let Some(c) = self.pem_begin.captures(&text[start..end]) else {
            return;
        };
        let (Some(whole), Some(label)) = (c.get(0), c.get(1)) else {
            return;
        };
        let block_start = start + whole.start();
        let body_start = start + whole.end();
        // Where an END marker closes, in `from..to`.
        let close_in = |from: usize, to: usize| {
            find(&text[from..to], b"-----END ").and_then(|i| {
                let after = from + i;
                find(&text[after..to], b"-----").map(|j| {
                    let close = after + j + 5;
                    find(&text[close..to], b"-----").map_or(close, |k| close + k + 5)
                })
            })
        };
        // A key on one line (newlines escaped, in JSON or a variable)
        // ends at its END marker there. Otherwise its body is the lines
        // after BEGIN that are base64 or PEM headers, and it ends with the
        // END line right after them or, cut off, with the body: whatever
        // else stands before an END line (a key pair, code) is not the
        // key's, and stays in view of the other detectors. A BEGIN line
        // with no body (a constant naming the header) is no key.
        let block_end = match close_in(body_start, end) {
            Some(close) => close,
            None => {
                let (_, limit) = out.index.span(line, line + 200);
                let Some(body_end) = self.pem_body_end(out, line, limit) else {
                    return;
                };
                let after = out.index.line_of(body_end) + 1;
                let (next_start, next_end) = out.index.span(after, after);
                let closing = next_start > body_end
                    && text[next_start..next_end]
                        .trim_ascii_start()
                        .starts_with(b"-----END ");
                if closing {
                    close_in(next_start, next_end).unwrap_or(body_end)
                } else {
                    body_end
                }
            }
        };
        let body = &text[body_start..block_end];
        if !has_base64_run(body, 16) {
            return;
        }
        out.pem_until = block_end;
        let encrypted = label.as_bytes().starts_with(b"ENCRYPTED")
            || find(body, b"Proc-Type: 4,ENCRYPTED").is_some()
            || (label.as_bytes().starts_with(b"OPENSSH") && openssh_encrypted(body));
        let (detector, severity) = if encrypted {
            (Detector::EncryptedPrivateKey, Severity::Low)
        } else {
            (Detector::PrivateKey, Severity::High)
        };
        out.push(detector, severity, block_start, block_end, None);
    }

    /// Where the body of a key ends: after the last of the lines below
    /// `line` that are base64 or PEM headers (`Proc-Type:`, `DEK-Info:`),
    /// blank lines among them, up to `limit`; `None` when there is none.
    fn pem_body_end(&self, out: &Out, line: usize, limit: usize) -> Option<usize> {
        let mut end = None;
        let mut next = line + 1;
        loop {
            let (start, stop) = out.index.span(next, next);
            if start >= limit || out.index.line_of(start) != next {
                return end;
            }
            let t = out.text[start..stop].trim_ascii();
            // Any length: a body's last line is often short.
            let body = !t.is_empty()
                && t.iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
            let header = t.starts_with(b"Proc-Type:") || t.starts_with(b"DEK-Info:");
            if body || header {
                end = Some(stop);
            } else if !t.is_empty() {
                return end;
            }
            next += 1;
        }
    }

    fn rds_tokens(&self, out: &mut Out, line: usize) {
        let (start, end) = out.index.span(line, line);
        let slice = &out.text[start..end];
        for m in self.rds_token.find_iter(slice) {
            let key_id = self
                .rds_credential
                .captures(m.as_bytes())
                .and_then(|c| c.get(1))
                .map(|k| String::from_utf8_lossy(k.as_bytes()).into_owned());
            out.push(
                Detector::RdsAuthToken,
                Severity::Info,
                start + m.start(),
                start + m.end(),
                key_id,
            );
        }
    }
}

/// The last word of a name (`db_password_file`, `tokenUrl`,
/// `secret.name`), lower-cased.
fn last_word(name: &[u8]) -> String {
    let name = name
        .strip_suffix(b"s")
        .filter(|n| n.len() > 1)
        .unwrap_or(name);
    let mut start = 0;
    for (i, &b) in name.iter().enumerate() {
        if matches!(b, b'_' | b'-' | b'.') {
            start = i + 1;
        } else if b.is_ascii_uppercase() && i > start && name[i - 1].is_ascii_lowercase() {
            start = i;
        }
    }
    String::from_utf8_lossy(&name[start..]).to_ascii_lowercase()
}

/// A name for something about a secret, not the secret: where it is
/// (`secret_name`, `password_file`, `token_url`), what it is
/// (`secret_type`, `token_ttl`), or a hash of it (`password_hash`).
fn names_not_holds(name: &[u8]) -> bool {
    const ABOUT: &[&str] = &[
        "name",
        "id",
        "arn",
        "path",
        "file",
        "dir",
        "url",
        "uri",
        "endpoint",
        "env",
        "var",
        "variable",
        "field",
        "header",
        "param",
        "length",
        "len",
        "type",
        "ttl",
        "expiry",
        "expire",
        "expires",
        "expiration",
        "version",
        "ref",
        "location",
        "policy",
        "prefix",
        "label",
        "count",
        "size",
        "mode",
        "timeout",
        "hash",
        "digest",
        "checksum",
        "fingerprint",
        "rotation",
        "format",
        "kind",
        "provider",
        "source",
        "store",
        "manager",
        "prompt",
        "message",
        "hint",
        "help",
        "text",
        "description",
        "title",
        "error",
        "regex",
        "pattern",
    ];
    ABOUT.contains(&last_word(name).as_str())
}

/// A password hash or a digest, which is not the secret: a crypt(3)
/// string (`$2b$12$...`, `$argon2id$...`, `$6$...`), a PostgreSQL SCRAM
/// verifier, an algorithm-prefixed digest (`sha256:...`, `sha512-...`),
/// or hex of a digest's length under a name that says hash.
fn looks_like_hash(name: &[u8], value: &str) -> bool {
    const CRYPT: &[&str] = &[
        "$2a$",
        "$2b$",
        "$2y$",
        "$argon2",
        "$1$",
        "$5$",
        "$6$",
        "$y$",
        "$scrypt$",
        "$pbkdf2",
        "pbkdf2_sha",
        "scram-sha-256$",
        "{ssha}",
        "{sha}",
        "{bcrypt}$",
        "sha1:",
        "sha256:",
        "sha384:",
        "sha512:",
        "sha256-",
        "sha384-",
        "sha512-",
        "md5:",
    ];
    let lower = value.to_ascii_lowercase();
    if CRYPT.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    let hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    let digest_length = matches!(value.len(), 32 | 40 | 56 | 64 | 96 | 128);
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    hex && digest_length
        && [
            "hash",
            "digest",
            "sha",
            "md5",
            "checksum",
            "sum",
            "integrity",
            "etag",
        ]
        .iter()
        .any(|w| name.contains(w))
}

/// A 40-character value shaped like an AWS secret key: upper and lower
/// case and a digit, random-looking, not hex.
fn looks_like_aws_secret(v: &[u8]) -> bool {
    let has = |f: fn(&u8) -> bool| v.iter().any(f);
    has(u8::is_ascii_uppercase)
        && has(u8::is_ascii_lowercase)
        && has(u8::is_ascii_digit)
        && shannon_entropy(&String::from_utf8_lossy(v)) >= 4.0
}

/// A value that is code or text, not a secret: a call, a dotted name
/// (`config.password`, `os.environ`), a plain word, a JSON document, a
/// sentence, or (unquoted) a reference, pointer or format sigil
/// (`&DbAuthToken`, `%secret.arn`).
fn looks_like_code(v: &str, unquoted: bool) -> bool {
    if unquoted && v.starts_with(['&', '*', '%', '?']) {
        return true;
    }
    // A JSON document (its own members are scanned on their own), or
    // prose.
    if v.starts_with(['{', '[']) || v.matches(char::is_whitespace).count() >= 2 {
        return true;
    }
    // Names of secrets rather than secrets: an ARN, a path (`/run/secrets/db`),
    // a URL (one with a password is the URL detectors'), an environment
    // variable's name (`DB_PASSWORD`).
    // A path is lower-case words between slashes; base64 (which may
    // start with one) has capitals, digits and `+` mixed in.
    let path = v.starts_with('/')
        && v.matches('/').count() >= 2
        && v.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'/' | b'.' | b'_' | b'-')
        });
    if v.starts_with("arn:")
        || path
        || v.contains("://")
        || (v.contains('_')
            && v.starts_with(|c: char| c.is_ascii_uppercase())
            && v.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
    {
        return true;
    }
    // A version (`v1.2.3-beta.4`, `2.0.1`).
    let version = v.strip_prefix('v').unwrap_or(v);
    if version.starts_with(|c: char| c.is_ascii_digit())
        && version.contains('.')
        && version.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+')
        })
    {
        return true;
    }
    let identifier = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !s.as_bytes()[0].is_ascii_digit()
    };
    v.contains('(')
        || v.contains("::")
        || (v.contains('.') && v.split('.').all(identifier))
        // A word or an identifier (`correcthorse`, `DbAuthToken`): letters
        // with few capitals; random letters (`IyyRnOOByQRdDz`) have many.
        || (v
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
            && v.bytes().filter(u8::is_ascii_uppercase).count() <= 3)
        || camel_case(v)
}

/// A type or variable name of words (`TokenFromOtherIp`,
/// `sessionTokenProvider`): letters, each capital followed by lower case.
/// Random letters (`IyyRnOOByQRdDz`) put capitals together.
fn camel_case(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 4
        && b.iter().all(u8::is_ascii_alphabetic)
        && b.last().is_some_and(u8::is_ascii_lowercase)
        && !b
            .windows(2)
            .any(|w| w[0].is_ascii_uppercase() && w[1].is_ascii_uppercase())
}

/// An OpenSSH private key whose cipher is not `none`.
fn openssh_encrypted(body: &[u8]) -> bool {
    let b64: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .take(96)
        .collect();
    let Ok(bytes) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(&b64) else {
        return false;
    };
    let Some(rest) = bytes.strip_prefix(b"openssh-key-v1\0") else {
        return false;
    };
    let Some(len) = rest.get(..4) else {
        return false;
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    rest.get(4..4 + len).is_some_and(|cipher| cipher != b"none")
}

/// Whether `bytes` hold `n` base64 characters in a row (a key's body,
/// not a header's name).
fn has_base64_run(bytes: &[u8], n: usize) -> bool {
    let mut run = 0;
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') {
            run += 1;
            if run >= n {
                return true;
            }
        } else if b != b'\n' && b != b'\r' {
            run = 0;
        }
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Where each line starts.
struct Lines {
    starts: Vec<usize>,
    len: usize,
}

impl Lines {
    fn new(text: &[u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self {
            starts,
            len: text.len(),
        }
    }

    /// The line (from 0) `offset` is on.
    fn line_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }

    /// Bytes from the start of line `first` to the end of line `last`
    /// (its newline excluded), both clamped.
    fn span(&self, first: usize, last: usize) -> (usize, usize) {
        let count = self.starts.len();
        let first = first.min(count - 1);
        let last = last.min(count - 1);
        let start = self.starts[first];
        let end = self.starts.get(last + 1).map_or(self.len, |&s| s - 1);
        (start, end.max(start))
    }
}

/// The findings of one scan, as they are found.
struct Out<'t> {
    text: &'t [u8],
    index: &'t Lines,
    found: Vec<Finding>,
    /// The spans of the specific (not generic) findings, and the text that
    /// belongs to a finding without being its secret (the key id of a key
    /// and secret pair), by start: they never overlap, so one look at the
    /// span before tells whether a new one would.
    taken: BTreeMap<usize, usize>,
    /// Where the last private key block ends.
    pem_until: usize,
    /// The line the last finding was on, how many it had, and whether it
    /// says `latchkey:allow`.
    current_line: Option<(usize, usize, bool)>,
    /// The last column found (a byte offset and its column), so that many
    /// findings on one long line count its characters once.
    last_column: (usize, usize),
}

impl Out<'_> {
    /// Whether `start..end` overlaps a span taken.
    fn overlaps(&self, start: usize, end: usize) -> bool {
        self.taken
            .range(..end)
            .next_back()
            .is_some_and(|(_, &e)| e > start)
    }

    /// Whether `start..end` lies inside a span taken (a key id inside an
    /// RDS token or a private key is part of that finding).
    fn inside_other(&self, start: usize, end: usize) -> bool {
        self.taken
            .range(..=start)
            .next_back()
            .is_some_and(|(_, &e)| e >= end)
    }

    /// Gives the finding of the secret at `start` the other key ids near
    /// it.
    fn set_other_key_ids(&mut self, start: usize, ids: Vec<String>) {
        if let Some(f) = self.found.last_mut()
            && f.start == start
        {
            f.other_key_ids = ids;
        }
    }

    /// Whether `line` says `latchkey:allow`.
    fn line_allows(&self, line: usize) -> bool {
        let (start, end) = self.index.span(line, line);
        find(&self.text[start..end], b"latchkey:allow").is_some()
    }

    fn claim(&mut self, start: usize, end: usize) {
        if !self.overlaps(start, end) {
            self.taken.insert(start, end);
        }
    }

    fn push(
        &mut self,
        detector: Detector,
        severity: Severity,
        start: usize,
        end: usize,
        key_id: Option<String>,
    ) {
        // One leak, one finding: the first (most specific) detector's.
        if self.overlaps(start, end) {
            return;
        }
        // Past the caps only what matters most is kept: ten thousand ids
        // alone (a log) must not crowd out the key with its secret after
        // them.
        let urgent = severity >= Severity::High;
        if self.found.len()
            >= if urgent {
                2 * MAX_PER_BUFFER
            } else {
                MAX_PER_BUFFER
            }
        {
            return;
        }
        let line = self.index.line_of(start);
        let (line_start, line_end) = self.index.span(line, line);
        let (count, allowed) = match self.current_line {
            Some((l, count, allowed)) if l == line => (count, allowed),
            _ => (
                0,
                find(&self.text[line_start..line_end], b"latchkey:allow").is_some(),
            ),
        };
        // The line's cap counts what it kept, and holds back only what
        // matters less: a dump of tokens or ids on one line must not hide
        // a key with its secret at its end.
        if allowed || (!urgent && count >= MAX_PER_LINE) {
            self.current_line = Some((line, count, allowed));
            return;
        }
        self.current_line = Some((line, count + 1, allowed));
        // A private key's block claims nothing: whatever stands inside a
        // fake one (a key id with its secret between BEGIN and END lines)
        // is still seen; a real key's base64 holds no key id.
        if !matches!(
            detector,
            Detector::GenericSecret | Detector::PrivateKey | Detector::EncryptedPrivateKey
        ) {
            self.taken.insert(start, end);
        }
        let (from, base) = match self.last_column {
            (offset, column) if offset >= line_start && offset <= start => (offset, column),
            _ => (line_start, 1),
        };
        let column = base
            + String::from_utf8_lossy(&self.text[from..start])
                .chars()
                .count();
        self.last_column = (start, column);
        self.found.push(Finding {
            detector,
            severity,
            line: line + 1,
            column,
            start,
            end,
            secret: Secret::new(String::from_utf8_lossy(&self.text[start..end])),
            key_id,
            other_key_ids: Vec::new(),
            context: [0; 32],
        });
    }

    /// In order of place, each with the context its fingerprint is made
    /// of: its line with every secret found on it left out, so that a
    /// fingerprint holds none of them.
    fn finish(mut self) -> Vec<Finding> {
        self.found.sort_by_key(|f| (f.start, f.detector));
        self.found.dedup_by_key(|f| (f.start, f.detector));
        let spans: Vec<(usize, usize)> = self.found.iter().map(|f| (f.start, f.end)).collect();
        // One context per line (every finding of a line shares it), so a
        // long line of many findings is hashed once.
        let mut last: Option<(usize, [u8; 32])> = None;
        for f in &mut self.found {
            let line = self.index.line_of(f.start);
            if let Some((l, context)) = last
                && l == line
            {
                f.context = context;
                continue;
            }
            let (line_start, line_end) = self.index.span(line, line);
            let mut context = Sha256::new();
            let mut at = line_start;
            let first = spans.partition_point(|&(_, e)| e <= line_start);
            for &(s, e) in spans[first..].iter().take_while(|&&(s, _)| s < line_end) {
                if s > at {
                    context.update(&self.text[at..s]);
                }
                context.update([0]);
                at = at.max(e.min(line_end));
            }
            if at < line_end {
                context.update(&self.text[at..line_end]);
            }
            f.context = context.finalize().into();
            last = Some((line, f.context));
        }
        self.found
    }
}
