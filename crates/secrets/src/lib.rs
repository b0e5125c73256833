//! Secrets Manager's logic that needs no I/O, shared by the token
//! service's handlers and credential rotation.

pub mod password;
