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

/// What the events behind a hit prove about who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Proof {
    /// Each one shows the credential in the hands of whoever holds its
    /// secret: a login, a session, a statement, or a refusal after a
    /// signature made with the secret verified.
    Proven,
    /// Some do not (a bad signature, a malformed token, an unknown key, or
    /// an expired, revoked or inactive credential whose signature did not
    /// verify): anyone who saw a token or a key id can cause them. These
    /// addresses sent them.
    Unproven(Vec<IpAddr>),
}

impl Proof {
    /// [`Proof::Proven`] for a proven event, else unproven from `ip`.
    pub(crate) fn of(proven: bool, ip: IpAddr) -> Self {
        if proven {
            Proof::Proven
        } else {
            Proof::Unproven(vec![ip])
        }
    }
}

/// An open finding, whether its rule's `revoke_sessions` is still waiting
/// for evidence that proves possession, and when it last blocked an
/// address.
struct Open {
    finding: Finding,
    awaiting_proof: bool,
    blocked_at: Option<SystemTime>,
}

/// A repeat of an open finding blocks again at most this often: a blocked
/// address's refusals are not counted, so repeats mean its block ran out
/// or was lifted (`findings unblock`) and the failures go on.
const REBLOCK_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

fn blocks(actions: &[(Action, String)]) -> bool {
    actions
        .iter()
        .any(|(a, _)| matches!(a, Action::BlockSourceIp { .. }))
}

pub(crate) struct Findings {
    open: Lru<String, Open>,
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
        self.open.values().map(|o| &o.finding)
    }

    /// [`Findings::report_with`] for evidence that proves possession: a
    /// login, a session or a statement. Refusals must say what they prove.
    pub(crate) fn report(&mut self, hit: Hit, out: &mut Vec<Outcome>) {
        self.report_with(hit, Proof::Proven, out);
    }

    /// Creates or updates the finding for `hit`'s key. Reports a new
    /// finding (with its actions), and an update when its count reaches a
    /// power of two or its severity rises.
    ///
    /// `revoke_sessions` acts only on [`Proof::Proven`] evidence: on
    /// unproven evidence it blocks the addresses that sent it instead and
    /// says so in the finding, and the revocation follows on the first
    /// update whose evidence is proven.
    pub(crate) fn report_with(&mut self, mut hit: Hit, proof: Proof, out: &mut Vec<Outcome>) {
        let id = finding_id(
            hit.kind,
            &hit.resource,
            hit.principal.as_deref(),
            hit.source_ip,
        );
        let note = degrade_note(&hit, &proof);
        if let Some(open) = self.open.touch(&id) {
            if open.awaiting_proof {
                match &note {
                    Some(note) => hit.description.push_str(note),
                    None => {
                        // Proven at last: the configured response.
                        let (action, text) = revoke(&hit);
                        open.awaiting_proof = false;
                        let f = &mut open.finding;
                        f.actions.extend(text);
                        update(f, hit);
                        out.push(Outcome {
                            finding: f.clone(),
                            new: false,
                            actions: action.into_iter().collect(),
                        });
                        return;
                    }
                }
            }
            // Blocking again, once the last block is old enough to have
            // run out or been lifted.
            let reblock: Vec<Action> = match open.blocked_at {
                Some(at) if hit.time.duration_since(at).unwrap_or_default() >= REBLOCK_AFTER => {
                    actions(&hit, &proof)
                        .into_iter()
                        .map(|(a, _)| a)
                        .filter(|a| matches!(a, Action::BlockSourceIp { .. }))
                        .collect()
                }
                _ => Vec::new(),
            };
            if !reblock.is_empty() {
                open.blocked_at = Some(hit.time);
            }
            let f = &mut open.finding;
            let escalated = hit.severity > f.severity;
            update(f, hit);
            if f.count.is_power_of_two() || escalated || !reblock.is_empty() {
                out.push(Outcome {
                    finding: f.clone(),
                    new: false,
                    actions: reblock,
                });
            }
            return;
        }

        let awaiting_proof = note.is_some();
        if let Some(note) = &note {
            hit.description.push_str(note);
        }
        let described = actions(&hit, &proof);
        let blocked_at = blocks(&described).then_some(hit.time);
        let (actions, texts): (Vec<Action>, Vec<String>) = described.into_iter().unzip();
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
            actions: texts,
        };
        self.open.insert(
            id,
            Open {
                finding: finding.clone(),
                awaiting_proof,
                blocked_at,
            },
        );
        out.push(Outcome {
            finding,
            new: true,
            actions,
        });
    }
}

/// A repeat of an open finding: count, times, text and evidence.
fn update(f: &mut Finding, hit: Hit) {
    f.count = f.count.saturating_add(1);
    f.first_seen = f.first_seen.min(hit.time);
    f.last_seen = f.last_seen.max(hit.time);
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
}

/// When the rule would revoke on evidence that does not prove possession:
/// what the finding says about it.
fn degrade_note(hit: &Hit, proof: &Proof) -> Option<String> {
    match (hit.response, &hit.principal, proof) {
        (Response::RevokeSessions, Some(principal), Proof::Unproven(_)) => Some(format!(
            " The sessions of {principal} were not revoked: the evidence does not prove \
             possession of the credential (no signature made with its secret verified), and \
             anyone who saw one of its tokens or its key id can produce it. revoke_sessions \
             degraded to block_ip for the sending address."
        )),
        _ => None,
    }
}

fn trim(evidence: &mut Vec<String>) {
    if evidence.len() > EVIDENCE_KEPT {
        evidence.drain(..evidence.len() - EVIDENCE_KEPT);
    }
}

/// The rule's response, where the finding names what it acts on, with
/// the text the finding records for each. `revoke_sessions` on unproven
/// evidence blocks the addresses that sent it instead.
fn actions(hit: &Hit, proof: &Proof) -> Vec<(Action, String)> {
    let described = |a: Action| {
        let text = describe(&a);
        (a, text)
    };
    match (hit.response, proof) {
        (Response::None, _) => Vec::new(),
        (Response::BlockIp, _) => hit
            .source_ip
            .map(|ip| Action::BlockSourceIp {
                ip,
                for_secs: hit.block_secs,
            })
            .into_iter()
            .map(described)
            .collect(),
        (Response::RevokeSessions, Proof::Proven) => {
            let (action, text) = revoke(hit);
            action.into_iter().zip(text).collect()
        }
        (Response::RevokeSessions, Proof::Unproven(ips)) => {
            let Some(principal) = &hit.principal else {
                return Vec::new();
            };
            let mut ips = ips.clone();
            ips.sort();
            ips.dedup();
            ips.into_iter()
                .map(|ip| {
                    let a = Action::BlockSourceIp {
                        ip,
                        for_secs: hit.block_secs,
                    };
                    let text = format!(
                        "{} instead of revoking sessions of {principal}: possession not proven",
                        describe(&a)
                    );
                    (a, text)
                })
                .collect()
        }
    }
}

/// Revoking the finding's principal's sessions, if it names one.
fn revoke(hit: &Hit) -> (Option<Action>, Option<String>) {
    let action = hit
        .principal
        .clone()
        .map(|principal_arn| Action::RevokeSessions { principal_arn });
    let text = action.as_ref().map(describe);
    (action, text)
}

/// `block 203.0.113.9 for 3600s`, `revoke sessions of arn:...`.
pub(crate) fn describe(action: &Action) -> String {
    match action {
        Action::BlockSourceIp { ip, for_secs } => format!("block {ip} for {for_secs}s"),
        Action::RevokeSessions { principal_arn } => format!("revoke sessions of {principal_arn}"),
    }
}
