//! A scan's results as people, scripts and code-scanning tools read them:
//! [`Located`] findings (where, and what verification said), and SARIF
//! 2.1.0.

use serde_json::{Value, json};

use crate::{Detector, Finding, Severity};

/// What checking a found key against Latchkey said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Issued by this Latchkey and working (with its secret, when the
    /// secret was found).
    Live,
    /// Issued here and deactivated.
    Inactive,
    /// Issued here and deleted (a session: its user or role deleted).
    Deleted,
    /// A session past its end.
    Expired,
    /// A session issued before its role's (or user's) sessions were
    /// revoked.
    Revoked,
    /// Never issued here, or its secret is not the key's.
    Unknown,
    /// Not checked (no key in the finding, or nothing to check against).
    NotChecked,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Live => "live",
            Verification::Inactive => "inactive",
            Verification::Deleted => "deleted",
            Verification::Expired => "expired",
            Verification::Revoked => "revoked",
            Verification::Unknown => "unknown",
            Verification::NotChecked => "not-checked",
        }
    }
}

/// Where a finding is: a file (and, in history, the commit it is in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub path: String,
    /// The commit (hex) and its author date (RFC 3339) of a blob found in
    /// history; `None` in the working tree, staged changes or stdin.
    pub commit: Option<(String, String)>,
}

/// A finding, where it is, and what verification said.
#[derive(Clone, Debug)]
pub struct Located {
    pub finding: Finding,
    pub place: Place,
    pub verification: Verification,
    /// The key was deactivated or its sessions revoked by this scan.
    pub revoked: bool,
    /// The path the fingerprint is of: the file's relative to the
    /// repository (or scanned directory), whichever directory the scan
    /// ran from, so that a baseline holds wherever it is used.
    pub fingerprint_path: String,
}

impl Located {
    /// The severity, raised to critical for a live credential (a key
    /// with its secret: a session token alone signs nothing).
    pub fn severity(&self) -> Severity {
        if self.verification == Verification::Live && self.finding.holds_key_secret() {
            Severity::Critical
        } else {
            self.finding.severity
        }
    }

    /// The finding's fingerprint in its file (see [`Finding::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        self.finding.fingerprint(&self.fingerprint_path)
    }

    /// The text line for people: `path:line:column[ @commit date]
    /// detector severity [key-id] masked verification[ revoked]`, passed
    /// through `clean`, for the file's name and the masked value's ends
    /// come from the scanned text: no escape sequence of theirs may reach
    /// a terminal.
    pub fn to_text(&self, clean: impl Fn(&str) -> String) -> String {
        let f = &self.finding;
        let mut line = format!("{}:{}:{}", self.place.path, f.line, f.column);
        if let Some((commit, date)) = &self.place.commit {
            line.push_str(&format!(" @{commit} {date}"));
        }
        line.push_str(&format!(
            "  {}  {}  ",
            f.detector.id(),
            self.severity().as_str()
        ));
        // A key id is no secret (it is in logs and the trail) and says
        // which key to replace; its secret shows masked.
        match &f.key_id {
            Some(id) if f.secret.expose() == id => line.push_str(id),
            Some(id) => line.push_str(&format!("{id} {}", f.secret.masked())),
            None => line.push_str(&f.secret.masked()),
        }
        line.push_str(&format!("  {}", self.verification.as_str()));
        if self.revoked {
            line.push_str("  revoked");
        }
        clean(&line)
    }

    /// `--output json`'s object: never the secret itself.
    pub fn to_json(&self) -> Value {
        let f = &self.finding;
        let mut v = json!({
            "path": self.place.path,
            "line": f.line,
            "column": f.column,
            "detector": f.detector.id(),
            "severity": self.severity().as_str(),
            "masked": f.secret.masked(),
            "fingerprint": self.fingerprint(),
            "verification": self.verification.as_str(),
        });
        if let Some(key) = &f.key_id {
            v["accessKeyId"] = json!(key);
        }
        if let Some((commit, date)) = &self.place.commit {
            v["commit"] = json!(commit);
            v["authorDate"] = json!(date);
        }
        if self.revoked {
            v["revoked"] = json!(true);
        }
        v
    }
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub code scanning's `security-severity`: a CVSS-like score whose
/// band (9.0 critical, 7.0 high, 4.0 medium, below low) is the severity.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}

/// A relative path as a URI reference: each byte outside RFC 3986's
/// unreserved set (and `/`) percent-encoded, so that a name with a space,
/// `#` or `%` stays one path.
pub fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What to do about a finding of `d`, for SARIF's rule help.
fn remedy(d: Detector) -> &'static str {
    match d {
        Detector::AwsAccessKey | Detector::AwsSecretKey | Detector::CredentialsFile => {
            "Deactivate the key (latchkey scan --revoke does it and raises a finding), give its \
             user a new one, then delete the old key and remove it from the history."
        }
        Detector::SessionToken => {
            "Revoke the sessions of its role or user (latchkey scan --revoke, or \
             iam:RevokeSessions), then remove the token."
        }
        Detector::RdsAuthToken => {
            "The token lapses 15 minutes after it was signed; remove it, and the credentials \
             that signed it if they are near."
        }
        Detector::PrivateKey | Detector::EncryptedPrivateKey => {
            "Replace the key pair and revoke any certificate of it; keep keys out of the \
             repository."
        }
        Detector::DatabaseUrl
        | Detector::JdbcUrl
        | Detector::LibpqDsn
        | Detector::EnvPassword
        | Detector::GenericSecret => {
            "Change the password or secret, and read it at run time (Secrets Manager, an IAM \
             database token, the environment) rather than from the repository."
        }
    }
}

/// A SARIF 2.1.0 log of one run: a rule per detector, a result per
/// finding with its location (relative to `%SRCROOT%`, which is
/// `source_root` when given: a `file://` URI of a directory, ending in
/// `/`), fingerprint, verification and, from history, commit.
pub fn sarif(results: &[Located], version: &str, source_root: Option<&str>) -> Value {
    let rules: Vec<Value> = Detector::ALL
        .iter()
        .map(|d| {
            json!({
                "id": d.id(),
                "name": d.id(),
                "shortDescription": {"text": d.description()},
                "fullDescription": {"text": d.description()},
                "help": {"text": remedy(*d)},
                "defaultConfiguration": {"level": level(d.severity())},
                "properties": {
                    "tags": ["security", "secret"],
                    "security-severity": security_severity(d.severity()),
                    "precision": if *d == Detector::GenericSecret { "medium" } else { "high" },
                },
            })
        })
        .collect();
    let results: Vec<Value> = results
        .iter()
        .map(|r| {
            let f = &r.finding;
            let rule_index = Detector::ALL
                .iter()
                .position(|d| *d == f.detector)
                .unwrap_or_default();
            let mut text = format!(
                "{} ({}) found: {}; verification: {}",
                f.detector.description(),
                r.severity().as_str(),
                f.secret.masked(),
                r.verification.as_str()
            );
            if let Some(key) = &f.key_id {
                text.push_str(&format!("; access key {key}"));
            }
            if let Some((commit, _)) = &r.place.commit {
                text.push_str(&format!("; in commit {commit}"));
            }
            let mut properties = json!({
                "severity": r.severity().as_str(),
                "security-severity": security_severity(r.severity()),
                "verification": r.verification.as_str(),
            });
            if let Some(key) = &f.key_id {
                properties["accessKeyId"] = json!(key);
            }
            if let Some((commit, date)) = &r.place.commit {
                properties["commit"] = json!(commit);
                properties["authorDate"] = json!(date);
            }
            if r.revoked {
                properties["revoked"] = json!(true);
            }
            // Standard input has no file: its results have no location.
            let locations = if r.place.path == "-" {
                json!([])
            } else {
                json!([{
                    "physicalLocation": {
                        "artifactLocation": {
                            "uri": uri_path(&r.place.path),
                            "uriBaseId": "%SRCROOT%",
                        },
                        "region": {"startLine": f.line, "startColumn": f.column},
                    },
                }])
            };
            json!({
                "ruleId": f.detector.id(),
                "ruleIndex": rule_index,
                "level": level(r.severity()),
                "message": {"text": text},
                "locations": locations,
                "partialFingerprints": {"latchkeyFinding/v2": r.fingerprint()},
                "properties": properties,
            })
        })
        .collect();
    let mut run = json!({
        "tool": {"driver": {
            "name": "latchkey-scan",
            "version": version,
            "rules": rules,
        }},
        "columnKind": "unicodeCodePoints",
        "results": results,
    });
    if let Some(root) = source_root {
        run["originalUriBaseIds"] = json!({"%SRCROOT%": {"uri": root}});
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    })
}
