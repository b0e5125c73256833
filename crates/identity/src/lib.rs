//! Latchkey's identity core: who a credential belongs to, whether it still
//! holds, and what its holder may do. The token service (`latchkey-server`)
//! and the database gateways are thin layers over it.
//!
//! - [`AppState`]: the store, the cluster key ring, revocations, caches of
//!   keys and compiled policies, blocked addresses, the signatures seen.
//! - [`Caller`]: an authenticated principal, as authorisation sees it.
//! - Credential lookup ([`AppState::find_credentials`]) and the unique-id
//!   binding ([`AppState::check_bound`]) fail with a [`CredentialError`]
//!   whose [`CredentialFailure`] says which kind of refusal it is; callers
//!   map kinds to their wire (AWS error codes, RDS login errors) by type.
//! - Authorisation ([`AppState::authorize_in`]) builds the request context
//!   AWS defines and asks `latchkey-policy`.
//! - Console passwords ([`AppState::check_password`]), throttled per user
//!   name and address, with one answer for every wrong case.
//! - The clock is injected ([`Clock`]): tests set it.

pub mod caller;
pub mod clock;
pub mod error;
pub mod jobs;
pub mod login_gate;
pub mod metrics;
pub mod outage;
pub mod password;
pub mod reach;
pub mod replay;
pub mod state;

pub use caller::{Caller, Identity};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{CredentialError, CredentialFailure, Denial, IdentityError};
pub use password::{PasswordAccepted, PasswordFailure, SignInStep};
pub use reach::{ConnectGrant, DbUserGrant};
pub use state::{ActionContext, AppState, FoundCredential, PrincipalRecord};

/// `2026-12-02T09:50:19Z`: the form of `aws:CurrentTime` and
/// `aws:TokenIssueTime`.
pub fn iso8601(unix: i64) -> String {
    latchkey_sigv4::AmzDate::from_unix(unix)
        .map(|d| d.to_rfc3339())
        .unwrap_or_default()
}
