//! The crate's one impure piece: bytes from the operating system's
//! random source, for new passwords and SCRAM salts. Everything that
//! uses randomness takes it as an argument, so tests pass fixed bytes.

use zeroize::Zeroizing;

use crate::password::{PasswordError, PasswordRules};

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random source failed")]
pub struct RandomError;

/// Fills `buf` from the operating system.
pub fn fill(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|_| RandomError)
}

/// A password by `rules` from the operating system's random source.
pub fn password(rules: &PasswordRules) -> Result<Zeroizing<String>, PasswordError> {
    crate::password::generate(rules, &mut fill)
}

/// A fresh SCRAM salt.
pub fn salt() -> Result<[u8; crate::scram::SALT_LEN], RandomError> {
    let mut salt = [0; crate::scram::SALT_LEN];
    fill(&mut salt)?;
    Ok(salt)
}
