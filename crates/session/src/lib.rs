//! Stateless temporary credentials for Latchkey's token service.
//!
//! A session token is the session's claims sealed (AES-256-GCM) with a
//! rotating cluster key. The temporary access key id and secret derive from
//! the token, so any node holding the cluster keys validates temporary
//! credentials without a store lookup. Pure logic: callers supply the time
//! and the random bytes.

mod claims;
mod seal;
pub mod totp;

pub use claims::{Ancestor, DecodeError, SessionClaims};
pub use seal::{
    ClusterKey, KeyRing, MAX_TOKEN_LEN, OpenedSession, SealError, TemporaryCredentials,
    access_key_id_for, base32,
};
