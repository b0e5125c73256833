//! AWS Systems Manager Parameter Store's rules, without I/O.
//!
//! - [`name`]: parameter names (`/app/db/url` or `plain`), their
//!   hierarchy and ARN, paths, and the selectors `name:3` and
//!   `name:label`.
//! - [`parameter`]: a parameter's versions (type, key, tier, allowed
//!   pattern, data type, labels) and tags, and the rules a `PutParameter`,
//!   a label or a tag change follow.
//! - [`filter`]: `ParameterFilters` as `DescribeParameters` and
//!   `GetParametersByPath` read them.
//! - [`token`]: opaque `NextToken`s.
//!
//! Every error is an [`SsmError`], whose [`SsmError::code`] is AWS's.
//! Values are never part of an error or a `Debug` output.

pub mod error;
pub mod filter;
pub mod name;
pub mod parameter;
pub mod token;

pub use error::SsmError;
pub use filter::{FilterKey, FilterOption, FilterUse, ParameterFilter};
pub use name::{ParameterName, ParameterPath, Pick, REFERENCE_PREFIX, Selector, parameter_arn};
pub use parameter::{
    AllowedPattern, DataType, Label, Parameter, ParameterType, Put, Tier, Version,
};
