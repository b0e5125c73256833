//! API errors in AWS's vocabulary. The client sees the code and a message
//! like AWS's; the precise internal reason is kept for the log and never
//! sent.

use latchkey_audit::FailureKind;
use latchkey_identity::{CredentialError, CredentialFailure, Denial, IdentityError};
use latchkey_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    /// What the client is told.
    pub message: String,
    /// What the operator's log records (never sent to the client).
    pub reason: Option<String>,
    /// For a refused credential: which kind of refusal, for the gateways'
    /// audit records and detection.
    pub failure: Option<FailureKind>,
    /// For a refused credential: the request's signature verified with its
    /// secret anyway (an expired, revoked or inactive credential used by
    /// whoever holds the secret). Detection acts against a principal only
    /// on proven refusals; anyone can cause the others with a leaked token
    /// or a key id.
    pub possession_proven: bool,
    /// For a policy decision: what was denied, so that each protocol words
    /// the refusal as AWS does (the JSON services add why).
    pub denial: Option<Box<Denial>>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            reason: None,
            failure: None,
            possession_proven: false,
            denial: None,
        }
    }

    /// Says whether the refused request's signature verified.
    pub fn proven(mut self, possession_proven: bool) -> Self {
        self.possession_proven = possession_proven;
        self
    }

    /// Says which kind of credential refusal this is.
    pub fn kind(mut self, failure: FailureKind) -> Self {
        self.failure = Some(failure);
        self
    }

    /// Adds the precise reason for the log.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn malformed(message: &str) -> Self {
        Self::new(400, "MalformedQueryString", message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationError", message)
    }

    pub fn access_denied(caller: &str, action: &str, resource: &str) -> Self {
        Self::new(
            403,
            "AccessDenied",
            format!(
                "User: {caller} is not authorized to perform: {action} on resource: {resource}"
            ),
        )
    }

    pub fn invalid_token() -> Self {
        Self::new(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error.",
        )
    }
}

impl From<latchkey_awsjson::InputError> for ApiError {
    fn from(e: latchkey_awsjson::InputError) -> Self {
        ApiError::new(400, e.code, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NoSuchEntity { .. } => ApiError::new(404, "NoSuchEntity", e.to_string()),
            StoreError::EntityAlreadyExists { .. } => {
                ApiError::new(409, "EntityAlreadyExists", e.to_string())
            }
            StoreError::DeleteConflict(_) => ApiError::new(409, "DeleteConflict", e.to_string()),
            StoreError::LimitExceeded(_) => ApiError::new(409, "LimitExceeded", e.to_string()),
            StoreError::InvalidInput(_) => ApiError::new(400, "ValidationError", e.to_string()),
            // IAM's own code for a write that lost a race.
            StoreError::Conflict | StoreError::UniqueViolation => ApiError::new(
                409,
                "ConcurrentModification",
                "A concurrent change got in the way; try again.",
            )
            .because(e.to_string()),
            StoreError::Unavailable(_) => ApiError::new(
                503,
                "ServiceUnavailable",
                "The service is unavailable; try again.",
            )
            .because(e.to_string()),
            StoreError::Sqlite(_)
            | StoreError::Postgres(_)
            | StoreError::NewerSchema { .. }
            | StoreError::SealingKeyMissing(_)
            | StoreError::OtherTrail { .. }
            | StoreError::Vault(_) => ApiError::internal().because(e.to_string()),
        }
    }
}

impl From<CredentialError> for ApiError {
    /// AWS's answers: an expired session is `ExpiredToken`, a revoked one
    /// `AccessDenied`; anything else about the credential is
    /// `InvalidClientTokenId`, whatever the precise reason.
    fn from(e: CredentialError) -> Self {
        let answer = match e.failure {
            CredentialFailure::Expired => ApiError::new(
                400,
                "ExpiredToken",
                "The security token included in the request is expired",
            ),
            CredentialFailure::SessionRevoked => ApiError::new(
                403,
                "AccessDenied",
                "The security token included in the request has been revoked.",
            ),
            CredentialFailure::UnknownKey
            | CredentialFailure::InactiveKey
            | CredentialFailure::Malformed
            | CredentialFailure::PrincipalGone => ApiError::invalid_token(),
        };
        answer
            .because(e.reason)
            .kind(e.failure.audit_kind())
            .proven(e.possession_proven)
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Credential(e) => e.into(),
            IdentityError::Denied(d) => {
                let mut e = ApiError::access_denied(&d.caller, &d.action, &d.shown)
                    .because(format!("{} on {}", d.decision, d.resource));
                e.denial = Some(Box::new(d));
                e
            }
            IdentityError::Store(e) => e.into(),
            IdentityError::InvalidStoredPolicy(reason) => ApiError::internal().because(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire answer is chosen by the refusal's kind, as AWS answers it.
    #[test]
    fn credential_refusals_get_aws_codes() {
        let answer = |failure| ApiError::from(CredentialError::new(failure, "why").proven(true));
        for (failure, status, code, kind) in [
            (
                CredentialFailure::Expired,
                400,
                "ExpiredToken",
                FailureKind::Expired,
            ),
            (
                CredentialFailure::SessionRevoked,
                403,
                "AccessDenied",
                FailureKind::Revoked,
            ),
            (
                CredentialFailure::PrincipalGone,
                403,
                "InvalidClientTokenId",
                FailureKind::Revoked,
            ),
            (
                CredentialFailure::UnknownKey,
                403,
                "InvalidClientTokenId",
                FailureKind::UnknownKey,
            ),
            (
                CredentialFailure::InactiveKey,
                403,
                "InvalidClientTokenId",
                FailureKind::InactiveKey,
            ),
            (
                CredentialFailure::Malformed,
                403,
                "InvalidClientTokenId",
                FailureKind::MalformedToken,
            ),
        ] {
            let e = answer(failure);
            assert_eq!((e.status, e.code, e.failure), (status, code, Some(kind)));
            assert!(e.possession_proven);
            assert_eq!(e.reason.as_deref(), Some("why"));
            assert!(!e.message.contains("why"), "the reason stays in the log");
        }
        let denied = ApiError::from(IdentityError::Denied(latchkey_identity::Denial {
            caller: "arn:aws:iam::1:user/a".into(),
            action: "iam:GetUser".into(),
            resource: "arn:aws:iam::1:user/secret/path/b".into(),
            shown: "arn:aws:iam::1:user/b".into(),
            decision: "implicitDeny",
            by_resource_policy: false,
        }));
        assert_eq!(denied.code, "AccessDenied");
        assert!(
            denied
                .message
                .ends_with("on resource: arn:aws:iam::1:user/b")
        );
        assert!(!denied.message.contains("secret/path"));
    }
}
