//! KMS's errors, each with the code and status AWS answers with.

/// Why a KMS request fails. Messages never carry key material, plaintext
/// or ciphertext.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KmsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0} is disabled.")]
    Disabled(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("")]
    InvalidCiphertext,
    #[error(
        "The key ID in the request does not identify a KMS key that can perform this operation."
    )]
    IncorrectKey,
    #[error("{0}")]
    InvalidKeyUsage(String),
    #[error("")]
    InvalidMac,
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidAliasName(String),
    #[error("{0}")]
    InvalidArn(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    MalformedPolicy(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    Tag(String),
    #[error("The marker is not valid.")]
    InvalidMarker,
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl KmsError {
    /// The `__type` AWS answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NotFoundException",
            Self::Disabled(_) => "DisabledException",
            Self::InvalidState(_) => "KMSInvalidStateException",
            Self::InvalidCiphertext => "InvalidCiphertextException",
            Self::IncorrectKey => "IncorrectKeyException",
            Self::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            Self::InvalidMac => "KMSInvalidMacException",
            Self::AlreadyExists(_) => "AlreadyExistsException",
            Self::InvalidAliasName(_) => "InvalidAliasNameException",
            Self::InvalidArn(_) => "InvalidArnException",
            Self::Validation(_) => "ValidationException",
            Self::MalformedPolicy(_) => "MalformedPolicyDocumentException",
            Self::LimitExceeded(_) => "LimitExceededException",
            Self::UnsupportedOperation(_) => "UnsupportedOperationException",
            Self::Tag(_) => "TagException",
            Self::InvalidMarker => "InvalidMarkerException",
            Self::Internal(_) => "KMSInternalException",
        }
    }

    /// The HTTP status: 500 for the service's own faults, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::Internal(_) => 500,
            _ => 400,
        }
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            Self::Internal(_) => "An internal error occurred.".to_owned(),
            e => e.to_string(),
        }
    }
}
