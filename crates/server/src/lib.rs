//! Latchkey's token service: STS and an IAM subset over the AWS Query
//! protocol, and Secrets Manager over the AWS JSON 1.1 protocol, on one
//! HTTPS endpoint, so the stock AWS CLI and SDKs work against it.
//!
//! A thin layer over the identity core (`latchkey-identity`: credentials,
//! revocation, authorisation) and the pure crates: `latchkey-sigv4`
//! authenticates, `latchkey-session` seals temporary credentials,
//! `latchkey-policy` decides, `latchkey-store` persists. This crate adds
//! the AWS Query protocol, XML, the STS and IAM handlers, the JSON 1.1
//! front ([`json`]) and its services' handlers, and TLS.

/// The type of the finding a leaked access key raises
/// (`RevokeLeakedAccessKey`, called by `latchkey scan --revoke`).
pub const LEAKED_KEY_KIND: &str = "CredentialAccess:Repository/LeakedKey";

pub mod accessanalyzer;
pub mod advisor;
pub mod auth;
pub mod bootstrap;
pub mod error;
mod files;
pub mod http;
mod iam;
pub mod json;
mod kms;
pub mod query;
mod secretsmanager;
mod simulate;
mod ssm;
mod sts;
pub mod tls;
pub mod xml;
