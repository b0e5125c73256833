//! The database side of credential rotation, without Lambda: what AWS
//! Secrets Manager's RDS rotation templates do to a PostgreSQL or
//! MySQL/MariaDB server at each step, for Latchkey's rotation job.
//!
//! - [`secret`]: the secret value (`SecretString` JSON), parsed and
//!   written as the templates do, with a `Debug` that hides the password.
//! - [`plan`]: the strategies ([`Strategy::SingleUser`],
//!   [`Strategy::AlternatingUsers`]), createSecret's pending value and
//!   setSecret's plan, decided from the values alone.
//! - [`scram`], [`mysql::native_password_hash`]: passwords hashed
//!   client-side, so statements carry hashes, not passwords.
//! - [`postgres`], [`mysql`]: the statements, with quoting that holds
//!   for any user name.
//! - [`server`]: the [`CredentialServer`] trait each engine implements
//!   (in the gateway crates) and the engine-neutral steps
//!   [`set_secret`] and [`test_secret`].
//!
//! Pure apart from [`random`] (the OS random source); the I/O lives
//! behind [`CredentialServer`]. See `docs/rotation.md`.

pub mod mysql;
pub mod password;
pub mod plan;
pub mod postgres;
pub mod random;
pub mod scram;
pub mod secret;
pub mod server;

pub use password::{PasswordError, PasswordRules};
pub use plan::{NameError, PlanError, SetPlan, Strategy, alternate_username, pending_secret};
pub use secret::{Engine, Family, Secret, SecretError};
pub use server::{
    CloneOutcome, CredentialServer, RotationError, ServerError, SetOutcome, set_secret, test_secret,
};
