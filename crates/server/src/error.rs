//! API errors in AWS's vocabulary. The client sees the code and a message
//! like AWS's; the precise internal reason is kept for the log and never
//! sent.

use latchkey_audit::FailureKind;
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
            StoreError::Sqlite(_) | StoreError::Vault(_) => {
                ApiError::internal().because(e.to_string())
            }
        }
    }
}
