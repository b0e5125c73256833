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
    /// Issued here and deleted.
    Deleted,
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
}

impl Located {
    /// The severity, raised to critical for a live credential.
    pub fn severity(&self) -> Severity {
        if self.verification == Verification::Live && self.finding.holds_key_secret() {
            Severity::Critical
        } else {
            self.finding.severity
        }
    }

    /// The finding's fingerprint in its file (see [`Finding::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        self.finding.fingerprint(&self.place.path)
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

/// A SARIF 2.1.0 log of one run: a rule per detector, a result per
/// finding with its location, fingerprint and verification.
pub fn sarif(results: &[Located], version: &str) -> Value {
    let rules: Vec<Value> = Detector::ALL
        .iter()
        .map(|d| {
            json!({
                "id": d.id(),
                "shortDescription": {"text": d.description()},
                "helpUri": "https://example.invalid/latchkey/docs/scan.md",
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
            if let Some((commit, _)) = &r.place.commit {
                text.push_str(&format!("; in commit {commit}"));
            }
            json!({
                "ruleId": f.detector.id(),
                "ruleIndex": rule_index,
                "level": level(r.severity()),
                "message": {"text": text},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": r.place.path},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    },
                }],
                "partialFingerprints": {"latchkeyFinding/v2": r.fingerprint()},
                "properties": {
                    "severity": r.severity().as_str(),
                    "verification": r.verification.as_str(),
                },
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "latchkey-scan",
                "version": version,
                "informationUri": "https://example.invalid/latchkey",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}
