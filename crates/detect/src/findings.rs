//! Open findings: deduplication, counts, evidence and responses.

use std::net::IpAddr;
use std::time::SystemTime;

use latchkey_audit::{Finding, Severity};
use sha2::{Digest, Sha256};

use crate::config::Response;
use crate::lru::Lru;
use crate::{Action, Outcome};

/// The `eventID`s a finding keeps, latest last.
pub const EVIDENCE_KEPT: usize = 20;

/// One rule match, before deduplication.
pub(crate) struct Hit {
    pub kind: &'static str,
    pub severity: Severity,
    pub title: String,
    pub description: String,
    pub resource: String,
    pub principal: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub time: SystemTime,
    /// The events behind this match, the triggering one last.
    pub evidence: Vec<String>,
    /// The rule's response setting and block duration.
    pub response: Response,
    pub block_secs: u64,
}

/// The finding id for a (type, resource, principal, source address) key:
/// 32 hex digits of a SHA-256 over the length-prefixed fields, so it is
/// stable across restarts and never collides by concatenation.
pub fn finding_id(
    kind: &str,
    resource: &str,
    principal: Option<&str>,
    source_ip: Option<IpAddr>,
) -> String {
    let mut h = Sha256::new();
    let ip = source_ip.map(|ip| ip.to_canonical().to_string());
    for field in [Some(kind), Some(resource), principal, ip.as_deref()] {
        match field {
            Some(text) => {
                h.update((text.len() as u64).to_be_bytes());
                h.update(text.as_bytes());
            }
            None => h.update(u64::MAX.to_be_bytes()),
        }
    }
    hex::encode(&h.finalize()[..16])
}

pub(crate) struct Findings {
    open: Lru<String, Finding>,
}

impl Findings {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            open: Lru::new(cap),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.open.values()
    }

    /// Creates or updates the finding for `hit`'s key. Reports a new
    /// finding (with its actions), and an update when its count reaches a
    /// power of two or its severity rises.
    pub(crate) fn report(&mut self, hit: Hit, out: &mut Vec<Outcome>) {
        let id = finding_id(
            hit.kind,
            &hit.resource,
            hit.principal.as_deref(),
            hit.source_ip,
        );
        if let Some(f) = self.open.touch(&id) {
            f.count = f.count.saturating_add(1);
            f.first_seen = f.first_seen.min(hit.time);
            f.last_seen = f.last_seen.max(hit.time);
            let escalated = hit.severity > f.severity;
            f.severity = f.severity.max(hit.severity);
            f.title = hit.title;
            f.description = hit.description;
            // Only the triggering event is new evidence on a repeat.
            if let Some(last) = hit.evidence.last()
                && f.evidence.last() != Some(last)
            {
                f.evidence.push(last.clone());
            }
            trim(&mut f.evidence);
            if f.count.is_power_of_two() || escalated {
                out.push(Outcome {
                    finding: f.clone(),
                    new: false,
                    actions: Vec::new(),
                });
            }
            return;
        }

        let actions = actions(&hit);
        let mut evidence = hit.evidence;
        trim(&mut evidence);
        let finding = Finding {
            id: id.clone(),
            kind: hit.kind.to_owned(),
            severity: hit.severity,
            title: hit.title,
            description: hit.description,
            resource: hit.resource,
            principal: hit.principal,
            source_ip: hit.source_ip,
            first_seen: hit.time,
            last_seen: hit.time,
            count: 1,
            evidence,
            actions: actions.iter().map(describe).collect(),
        };
        self.open.insert(id, finding.clone());
        out.push(Outcome {
            finding,
            new: true,
            actions,
        });
    }
}

fn trim(evidence: &mut Vec<String>) {
    if evidence.len() > EVIDENCE_KEPT {
        evidence.drain(..evidence.len() - EVIDENCE_KEPT);
    }
}

/// The rule's response, where the finding names what it acts on.
fn actions(hit: &Hit) -> Vec<Action> {
    match hit.response {
        Response::None => Vec::new(),
        Response::BlockIp => hit
            .source_ip
            .map(|ip| Action::BlockSourceIp {
                ip,
                for_secs: hit.block_secs,
            })
            .into_iter()
            .collect(),
        Response::RevokeSessions => hit
            .principal
            .clone()
            .map(|principal_arn| Action::RevokeSessions { principal_arn })
            .into_iter()
            .collect(),
    }
}

/// `block 203.0.113.9 for 3600s`, `revoke sessions of arn:...`.
pub(crate) fn describe(action: &Action) -> String {
    match action {
        Action::BlockSourceIp { ip, for_secs } => format!("block {ip} for {for_secs}s"),
        Action::RevokeSessions { principal_arn } => format!("revoke sessions of {principal_arn}"),
    }
}
