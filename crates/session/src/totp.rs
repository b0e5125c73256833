//! RFC 6238 time-based one-time passwords (HMAC-SHA-1, 30 s, 6 digits), as
//! AWS virtual MFA devices use them.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;
/// Steps accepted either side of now, for clock drift.
pub const WINDOW: i64 = 1;

/// The code for `secret` at time step `counter` (RFC 4226 HOTP).
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(DIGITS)
}

/// The time step for Unix time `now`.
pub fn step(now: i64) -> i64 {
    now.div_euclid(STEP_SECS)
}

/// The code at Unix time `now`.
pub fn totp(secret: &[u8], now: i64) -> u32 {
    hotp(secret, u64::try_from(step(now)).unwrap_or(0))
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    #[error("the MFA code must be exactly 6 digits")]
    Format,
    #[error("the MFA code is wrong or too old")]
    Wrong,
    #[error("the MFA code was already used")]
    Reused,
}

/// Checks `code` at `now`. `last_used_step` is the step of the last code
/// this device accepted; a code at or before it is a replay. Returns the
/// step to remember on success.
pub fn verify(
    secret: &[u8],
    code: &str,
    now: i64,
    last_used_step: Option<i64>,
) -> Result<i64, MfaError> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MfaError::Format);
    }
    let expected: u32 = code.parse().map_err(|_| MfaError::Format)?;
    let current = step(now);
    // Check every step in the window, in constant time per step.
    let mut matched = None;
    for s in current - WINDOW..=current + WINDOW {
        let Ok(counter) = u64::try_from(s) else {
            continue;
        };
        let ok: bool = hotp(secret, counter)
            .to_be_bytes()
            .ct_eq(&expected.to_be_bytes())
            .into();
        if ok && matched.is_none() {
            matched = Some(s);
        }
    }
    let s = matched.ok_or(MfaError::Wrong)?;
    if last_used_step.is_some_and(|last| s <= last) {
        return Err(MfaError::Reused);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B (SHA-1 seed), truncated to 6 digits.
    const SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_vectors() {
        for (t, code) in [
            (59, 287_082),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
            (20_000_000_000, 353_130),
        ] {
            assert_eq!(totp(SEED, t), code, "t={t}");
        }
    }

    #[test]
    fn window_replay_and_format() {
        let now = 1_700_000_000;
        let code = format!("{:06}", totp(SEED, now));
        let s = verify(SEED, &code, now, None).unwrap();
        assert_eq!(s, step(now));
        assert_eq!(verify(SEED, &code, now, Some(s)), Err(MfaError::Reused));
        // One step of drift either way is fine; two is too old.
        assert!(verify(SEED, &code, now + 30, None).is_ok());
        assert!(verify(SEED, &code, now - 30, None).is_ok());
        assert_eq!(verify(SEED, &code, now + 90, None), Err(MfaError::Wrong));
        let wrong = format!("{:06}", (totp(SEED, now) + 1) % 1_000_000);
        assert_eq!(verify(SEED, &wrong, now, None), Err(MfaError::Wrong));
        assert_eq!(verify(SEED, "12345", now, None), Err(MfaError::Format));
        assert_eq!(verify(SEED, "12345a", now, None), Err(MfaError::Format));
        // A newer code after a used one is fine.
        let next = format!("{:06}", totp(SEED, now + 30));
        assert!(verify(SEED, &next, now + 30, Some(s)).is_ok());
    }
}
