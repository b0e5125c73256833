//! IAM JSON policies with AWS's semantics, as a pure library.
//!
//! - [`parse`] validates a document and reports every finding with its JSON
//!   path, as IAM Access Analyzer's validate-policy does.
//! - [`CompiledPolicy::compile`] turns it into a form that evaluates
//!   without allocating: patterns and condition values parsed once,
//!   statements indexed by action.
//! - [`PolicySet::decide`] combines identity, resource, boundary and session
//!   policies as AWS does within one account; [`PolicySet::explain`] says
//!   which statements decided and what nearly matched.
//! - [`catalog`] knows the condition keys each implemented action carries,
//!   for validation warnings.

pub mod analyze;
pub mod catalog;
pub mod condition;
mod document;
mod eval;
pub mod grants;
pub mod locate;
pub mod pattern;

pub use document::{
    Effect, Finding, MAX_POLICY_CHARS, MAX_RESOURCE_POLICY_CHARS, ParseResult, Policy, PolicyKind,
    Principal, Statement, Version, is_unique_id, parse, parse_value,
};
pub use eval::{CompiledPolicy, Decision, Explanation, NearMiss, PolicySet, Request, StatementRef};
