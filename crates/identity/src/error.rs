//! Why the identity core refused, typed: each layer above maps the kinds
//! to its own wire (the token service to AWS error codes, the gateways to
//! RDS's login errors and the audit log's failure kinds) by matching on
//! them, never on text. The `reason` is for the operator's log only.

use latchkey_audit::FailureKind;
use latchkey_store::StoreError;

/// Which kind of credential refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFailure {
    /// No such access key, or a session token that does not open.
    UnknownKey,
    /// A long-term key that was deactivated.
    InactiveKey,
    /// A pairing that cannot be: a long-term key with a session token, a
    /// temporary key without one, or a key id that is not the token's.
    Malformed,
    /// Temporary credentials past their expiry.
    Expired,
    /// A session issued before a revocation of its principal (or of one
    /// it descends from).
    SessionRevoked,
    /// The user or role the credential was issued to (or one its session
    /// descends from) was deleted, perhaps re-created under the same name.
    PrincipalGone,
}

impl CredentialFailure {
    /// The audit log's and detection's name for it.
    pub fn audit_kind(self) -> FailureKind {
        match self {
            Self::UnknownKey => FailureKind::UnknownKey,
            Self::InactiveKey => FailureKind::InactiveKey,
            Self::Malformed => FailureKind::MalformedToken,
            Self::Expired => FailureKind::Expired,
            Self::SessionRevoked | Self::PrincipalGone => FailureKind::Revoked,
        }
    }
}

/// A refused credential.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct CredentialError {
    pub failure: CredentialFailure,
    /// The precise reason, for the log (never sent to a client).
    pub reason: String,
    /// The request's signature verified with the credential's secret and
    /// was presented for the first time: whoever sent it holds the secret.
    /// Detection acts against a principal only on proven refusals.
    pub possession_proven: bool,
}

impl CredentialError {
    pub fn new(failure: CredentialFailure, reason: impl Into<String>) -> Self {
        Self {
            failure,
            reason: reason.into(),
            possession_proven: false,
        }
    }

    #[must_use]
    pub fn proven(mut self, possession_proven: bool) -> Self {
        self.possession_proven = possession_proven;
        self
    }
}

/// A policy decision that did not allow.
#[derive(Debug, Clone)]
pub struct Denial {
    /// The caller's ARN.
    pub caller: String,
    pub action: String,
    /// The resource decided on (built from the stored entity).
    pub resource: String,
    /// The resource as the request named it: what a refusal may show.
    pub shown: String,
    /// `ExplicitDeny`, `ImplicitDeny`…
    pub decision: &'static str,
    /// The resource's own policy (a key policy, a trust policy) decided the
    /// refusal: it denies, or it neither grants nor delegates to the
    /// account. Refusals say "resource-based policy" then, as AWS's do.
    pub by_resource_policy: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("{} for {} on {}", .0.decision, .0.caller, .0.resource)]
    Denied(Denial),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored policy that no longer validates: a server fault, which
    /// denies (fail closed).
    #[error("{0}")]
    InvalidStoredPolicy(String),
}

impl IdentityError {
    /// The credential refusal, if that is what this is.
    pub fn credential(&self) -> Option<&CredentialError> {
        match self {
            Self::Credential(e) => Some(e),
            _ => None,
        }
    }
}
