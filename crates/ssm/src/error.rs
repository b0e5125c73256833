//! Parameter Store's errors, with AWS's codes.

/// An error as AWS words it. Messages name parameters, labels and keys
/// (the caller's own input), never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsmError {
    #[error("{0}")]
    Validation(String),
    #[error("")]
    ParameterNotFound,
    #[error(
        "The parameter already exists. To overwrite this value, set the overwrite option in the request to true."
    )]
    ParameterAlreadyExists,
    #[error("Systems Manager could not find version {0} of {1}. Verify the version and try again.")]
    ParameterVersionNotFound(String, String),
    #[error(
        "A parameter version can have maximum 10 labels. Move one or more labels to another version and try again."
    )]
    ParameterVersionLabelLimitExceeded,
    #[error(
        "You attempted to create a new version of {0} by calling the PutParameter API with the overwrite flag. Version {1}, the oldest version, can't be deleted because it has a label associated with it. Move the label to another version of the parameter, and try again."
    )]
    ParameterMaxVersionLimitExceeded(String, u64),
    #[error("{0}")]
    InvalidKeyId(String),
    #[error(
        "The following filter key is not valid: {0}. Valid filter keys include: [Type, KeyId, Label, Name, Path, Tier, DataType, tag:KEY]."
    )]
    InvalidFilterKey(String),
    #[error("{0}")]
    InvalidFilterOption(String),
    #[error("{0}")]
    InvalidFilterValue(String),
    #[error("The specified token isn't valid.")]
    InvalidNextToken,
    #[error("{0}")]
    InvalidAllowedPattern(String),
    #[error("Parameter value, cannot be validated against allowedPattern: {0}")]
    ParameterPatternMismatch(String),
    #[error("{0} is not a valid parameter type.")]
    UnsupportedParameterType(String),
    #[error("Parameter path: the hierarchy can have a maximum of 15 levels.")]
    HierarchyLevelLimitExceeded,
    #[error("The parameter type can't be changed for a parameter in a hierarchy.")]
    HierarchyTypeMismatch,
    #[error("Number of tags per resource cannot exceed 50.")]
    TooManyTags,
    #[error("{0}")]
    InvalidResourceType(String),
    #[error("The resource ID isn't valid. Verify the ID and try again.")]
    InvalidResourceId,
}

impl SsmError {
    /// AWS's code (`__type`) for the error.
    pub fn code(&self) -> &'static str {
        match self {
            SsmError::Validation(_) => "ValidationException",
            SsmError::ParameterNotFound => "ParameterNotFound",
            SsmError::ParameterAlreadyExists => "ParameterAlreadyExists",
            SsmError::ParameterVersionNotFound(..) => "ParameterVersionNotFound",
            SsmError::ParameterVersionLabelLimitExceeded => "ParameterVersionLabelLimitExceeded",
            SsmError::ParameterMaxVersionLimitExceeded(..) => "ParameterMaxVersionLimitExceeded",
            SsmError::InvalidKeyId(_) => "InvalidKeyId",
            SsmError::InvalidFilterKey(_) => "InvalidFilterKey",
            SsmError::InvalidFilterOption(_) => "InvalidFilterOption",
            SsmError::InvalidFilterValue(_) => "InvalidFilterValue",
            SsmError::InvalidNextToken => "InvalidNextToken",
            SsmError::InvalidAllowedPattern(_) => "InvalidAllowedPatternException",
            SsmError::ParameterPatternMismatch(_) => "ParameterPatternMismatchException",
            SsmError::UnsupportedParameterType(_) => "UnsupportedParameterType",
            SsmError::HierarchyLevelLimitExceeded => "HierarchyLevelLimitExceededException",
            SsmError::HierarchyTypeMismatch => "HierarchyTypeMismatchException",
            SsmError::TooManyTags => "TooManyTagsError",
            SsmError::InvalidResourceType(_) => "InvalidResourceType",
            SsmError::InvalidResourceId => "InvalidResourceId",
        }
    }

    /// The HTTP status AWS answers with: 400 for every client error.
    pub fn status(&self) -> u16 {
        400
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        SsmError::Validation(message.into())
    }
}
