//! Latchkey's token service: STS and an IAM subset over the AWS Query
//! protocol, on HTTPS, so the stock AWS CLI and SDKs work against it.
//!
//! Thin layers over the pure crates: `latchkey-sigv4` authenticates,
//! `latchkey-session` seals temporary credentials, `latchkey-policy`
//! authorises, `latchkey-store` persists.

pub mod bootstrap;
pub mod dbca;
pub mod error;
mod files;
pub mod http;
mod iam;
pub mod metrics;
pub mod query;
pub mod replay;
mod simulate;
pub mod state;
mod sts;
pub mod tls;
pub mod xml;
