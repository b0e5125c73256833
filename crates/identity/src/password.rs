//! Console passwords: the check the console's sign-in and IAM's
//! `ChangePassword` both make, throttled per user name and per address.

use std::net::IpAddr;

use latchkey_password::{Expiry, Refusal, hash::decoy_verify};
use latchkey_store::{LoginProfile, User};

use crate::AppState;

/// Argon2 hashes running at once. Each holds 19 MiB for about 20 ms: a
/// flood of sign-ins from many addresses (each under its own lockout
/// limit) waits here rather than holding a blocking thread's worth of
/// memory each.
pub struct HashGate {
    running: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
    limit: usize,
}

impl Default for HashGate {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            running: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
            limit: (2 * cores).max(2),
        }
    }
}

/// A place in the [`HashGate`], given back when dropped.
pub struct HashPermit<'a>(&'a HashGate);

impl Drop for HashPermit<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|p| p.into_inner());
        *running = running.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

impl HashGate {
    /// Waits for a place.
    pub fn enter(&self) -> HashPermit<'_> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        while *running >= self.limit {
            running = self.freed.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        *running += 1;
        HashPermit(self)
    }
}

/// Why a password was not accepted. The wire shows one answer for
/// [`PasswordFailure::Incorrect`] whatever its `reason`, which is for the
/// audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFailure {
    /// No such user, no password, or the wrong one.
    Incorrect {
        reason: &'static str,
        /// The lockout this failure started, if it did.
        lockout: Option<Refusal>,
    },
    /// Too many failures for this user name or from this address: the
    /// password was not checked.
    Throttled(Refusal),
    /// Expired under `HardExpiry`: only an administrator can reset it.
    Expired,
    /// The store could not be read: nobody gets in.
    Unavailable,
}

impl PasswordFailure {
    /// The precise reason, for the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            PasswordFailure::Incorrect { reason, .. } => reason,
            PasswordFailure::Throttled(Refusal::UserLocked { .. }) => {
                "too many failed sign-ins for this user name"
            }
            PasswordFailure::Throttled(Refusal::AddressLocked { .. }) => {
                "too many failed sign-ins from this address"
            }
            PasswordFailure::Throttled(Refusal::Busy { .. }) => {
                "too many sign-ins of this user name or from this address under way at once"
            }
            PasswordFailure::Expired => {
                "the password expired and only an administrator can reset it"
            }
            PasswordFailure::Unavailable => "the store could not be read",
        }
    }
}

/// A sign-in step under way ([`AppState::begin_sign_in`]); ends when
/// dropped.
pub struct SignInStep<'a> {
    state: &'a AppState,
    user: String,
    peer: IpAddr,
}

impl Drop for SignInStep<'_> {
    fn drop(&mut self) {
        self.state.sign_ins().end(&self.user, self.peer);
    }
}

/// A password that matched.
#[derive(Debug, Clone)]
pub struct PasswordAccepted {
    pub user: User,
    pub profile: LoginProfile,
    /// Expired, or reset by an administrator: a new one must be chosen
    /// before anything else.
    pub must_change: bool,
}

impl AppState {
    /// Checks `user_name`'s console password, counting a failure against
    /// the name and the address. Takes as long for an unknown user as for
    /// a wrong password. A match forgives nothing until the caller says
    /// the whole sign-in succeeded ([`AppState::sign_in_succeeded`]).
    pub fn check_password(
        &self,
        user_name: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<PasswordAccepted, PasswordFailure> {
        let now = self.now();
        let _attempt = match self.begin_sign_in(user_name, peer) {
            Ok(attempt) => attempt,
            // An administrator's new password lifts a user's lockout, also
            // one other nodes' failures started here.
            Err(refusal @ Refusal::UserLocked { until })
                if self.password_set_since_lockout(user_name, until) =>
            {
                self.forgive_sign_ins(user_name);
                self.begin_sign_in(user_name, peer)
                    .map_err(|_| PasswordFailure::Throttled(refusal))?
            }
            Err(refusal) => return Err(PasswordFailure::Throttled(refusal)),
        };
        // A name no user can have (IAM's are at most 64 printable
        // characters) is an unknown user, never a store error (a NUL is
        // not even text to PostgreSQL).
        let plausible = !user_name.is_empty()
            && user_name.len() <= 64
            && !user_name.chars().any(char::is_control);
        let lookup = if plausible {
            self.store.get_user(user_name)
        } else {
            Err(latchkey_store::StoreError::NoSuchEntity {
                kind: "user",
                name: String::new(),
            })
        };
        let found = match lookup {
            Ok(user) => match self.store.login_password(&user.name, 0) {
                Ok(Some(lp)) => Some((user, lp)),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(error = %e, "reading a login profile failed");
                    return Err(PasswordFailure::Unavailable);
                }
            },
            Err(latchkey_store::StoreError::NoSuchEntity { .. }) => None,
            Err(e) => {
                tracing::error!(error = %e, "reading a user failed");
                return Err(PasswordFailure::Unavailable);
            }
        };
        let _hashing = self.hashing();
        let failed = |reason: &'static str| {
            let lockout = self.sign_ins().failed(user_name, peer, now);
            PasswordFailure::Incorrect { reason, lockout }
        };
        let Some((user, lp)) = found else {
            decoy_verify(password);
            return Err(failed("no such user, or the user has no console password"));
        };
        if !lp.hash.verify(password) {
            return Err(failed("wrong password"));
        }
        // The failures are not forgiven yet: a sign-in with MFA still has
        // its code to give (`sign_in_succeeded` once it has), or guessing
        // codes would reset the count with each right password.
        let expiry = match self.store.password_policy() {
            Ok(Some(policy)) => policy.expiry(lp.profile.changed, now),
            Ok(None) => Expiry::Current,
            Err(_) => return Err(PasswordFailure::Unavailable),
        };
        match expiry {
            Expiry::Locked => Err(PasswordFailure::Expired),
            Expiry::MustChange | Expiry::Current => Ok(PasswordAccepted {
                must_change: expiry == Expiry::MustChange || lp.profile.reset_required,
                user,
                profile: lp.profile,
            }),
        }
    }

    /// Counts a failed second step of a sign-in (a wrong MFA code) as a
    /// failed sign-in; the lockout it started, if any.
    pub fn sign_in_failed(&self, user_name: &str, peer: IpAddr) -> Option<Refusal> {
        self.sign_ins().failed(user_name, peer, self.now())
    }

    /// A sign-in (or `ChangePassword`) went through every step: the user
    /// name's failures are forgiven (not the address's: one good account
    /// must not reset a spray from that address).
    pub fn sign_in_succeeded(&self, user_name: &str) {
        self.sign_ins().succeeded(user_name);
    }

    /// Whether `user_name`'s password was set after the lockout ending at
    /// `until` began (by an administrator, maybe through another node).
    fn password_set_since_lockout(&self, user_name: &str, until: i64) -> bool {
        let began = until - self.sign_ins().limits().lockout;
        self.store
            .get_user(user_name)
            .ok()
            .and_then(|user| self.store.login_password(&user.name, 0).ok().flatten())
            .is_some_and(|lp| lp.profile.changed > began)
    }

    /// Failed console sign-ins counted on this node, for the other nodes
    /// sharing the store (see [`latchkey_password::SignInThrottle::tally`]).
    pub fn sign_in_tally(&self) -> Vec<(String, u64)> {
        self.sign_ins().tally(self.now())
    }

    /// Failed sign-ins another node counted: they count towards this
    /// node's lockouts too.
    pub fn sign_ins_failed_elsewhere(&self, key: &str, n: u64) {
        let now = self.now();
        self.sign_ins().failed_elsewhere(key, n, now);
    }

    /// A place to compute or verify a password hash (see [`HashGate`]).
    pub fn hashing(&self) -> HashPermit<'_> {
        self.hashes.enter()
    }

    /// An administrator set a new password: the user's lockout ends.
    pub fn forgive_sign_ins(&self, user_name: &str) {
        self.sign_ins().forgive(user_name);
    }

    /// Begins a sign-in step (a password or an MFA code about to be
    /// checked) for `user_name` from `peer`: refused while locked out, or
    /// while the steps already under way could use up the failures left.
    /// The step ends when the returned value is dropped; count a failure
    /// before that ([`AppState::sign_in_failed`]).
    pub fn begin_sign_in(&self, user_name: &str, peer: IpAddr) -> Result<SignInStep<'_>, Refusal> {
        self.sign_ins().begin(user_name, peer, self.now())?;
        Ok(SignInStep {
            state: self,
            user: user_name.to_owned(),
            peer,
        })
    }

    fn sign_ins(&self) -> std::sync::MutexGuard<'_, latchkey_password::SignInThrottle> {
        self.sign_ins.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_hash_gate_lets_no_more_than_its_limit_in() {
        let gate = HashGate {
            limit: 3,
            ..HashGate::default()
        };
        let (inside, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..12 {
                scope.spawn(|| {
                    let _permit = gate.enter();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    inside.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(*gate.running.lock().unwrap_or_else(|p| p.into_inner()), 0);
    }
}
