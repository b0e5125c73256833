//! Console passwords, without I/O: the caller supplies salts and the time.
//!
//! - [`hash`]: Argon2id hashes in the PHC string format, verified in
//!   constant time, with a decoy verification for unknown users so that
//!   a sign-in takes as long whether or not the user exists.
//! - [`policy`]: IAM's account password policy (`UpdateAccountPasswordPolicy`),
//!   AWS's default policy when none is set, the check of a new password with
//!   every requirement it misses, and expiry.
//! - [`throttle`]: failed sign-ins counted per user name and per address,
//!   locking either out for a while.

pub mod hash;
pub mod policy;
pub mod throttle;

pub use hash::{HashError, PasswordHash, SALT_LEN};
pub use policy::{
    Expiry, PasswordPolicy, PolicyError, PolicyRequest, Violation, Violations, check,
};
pub use throttle::{Refusal, SignInThrottle, ThrottleLimits};
