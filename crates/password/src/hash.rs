//! Argon2id password hashes.
//!
//! Parameters are OWASP's recommended minimum for Argon2id (19 MiB of
//! memory, 2 passes, 1 lane), about 20 ms a hash on one core here: slow
//! enough that a stolen store (whose hashes are also sealed by the master
//! key) is costly to brute-force, fast enough that sign-in stays quick.
//! A stored hash names its own parameters, so they can be raised later
//! without invalidating anyone's password ([`PasswordHash::needs_rehash`]).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash as Phc, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Bytes of salt the caller supplies (random, fresh for every hash).
pub const SALT_LEN: usize = 16;

const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// What a stored hash may ask for at most: a tampered row must not make a
/// sign-in allocate gigabytes or run for minutes.
const MAX_MEMORY_KIB: u32 = 262_144;
const MAX_PASSES: u32 = 10;
const MAX_LANES: u32 = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("not a PHC string: {0}")]
    Malformed(String),
    #[error("the hash is not Argon2id version 19")]
    Algorithm,
    #[error("the hash asks for more work than allowed (m={memory}, t={passes}, p={lanes})")]
    TooCostly {
        memory: u32,
        passes: u32,
        lanes: u32,
    },
    #[error("hashing failed: {0}")]
    Hashing(String),
}

fn hasher() -> Argon2<'static> {
    // The constants are valid Argon2 parameters.
    #[allow(clippy::expect_used)]
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An Argon2id hash in the PHC string format
/// (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`). Its `Debug` shows the
/// parameters only.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let params = self.0.split('$').nth(3).unwrap_or("?");
        write!(f, "PasswordHash(argon2id {params})")
    }
}

impl PasswordHash {
    /// Hashes `password` with `salt`.
    pub fn new(password: &str, salt: &[u8; SALT_LEN]) -> Result<Self, HashError> {
        let salt = SaltString::encode_b64(salt).map_err(|e| HashError::Hashing(e.to_string()))?;
        let phc = hasher()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| HashError::Hashing(e.to_string()))?;
        Ok(Self(phc.to_string()))
    }

    /// A stored hash: Argon2id, version 19, within the work limits.
    pub fn parse(phc: &str) -> Result<Self, HashError> {
        let parsed = Phc::new(phc).map_err(|e| HashError::Malformed(e.to_string()))?;
        if parsed.algorithm != argon2::ARGON2ID_IDENT || parsed.version != Some(0x13) {
            return Err(HashError::Algorithm);
        }
        check_costs(&parsed)?;
        Params::try_from(&parsed).map_err(|e| HashError::Malformed(e.to_string()))?;
        if parsed.hash.is_none() || parsed.salt.is_none() {
            return Err(HashError::Malformed("no salt or no hash".into()));
        }
        Ok(Self(phc.to_owned()))
    }

    /// The PHC string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `password` is the one hashed; the comparison of the
    /// outputs takes the same time wherever they differ.
    pub fn verify(&self, password: &str) -> bool {
        let Ok(parsed) = Phc::new(&self.0) else {
            return false;
        };
        // The parameters come from the hash itself (checked by `parse`).
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }

    /// Whether the hash was made with other parameters than today's, so
    /// that a successful sign-in should store a fresh one.
    pub fn needs_rehash(&self) -> bool {
        let expected = format!("$m={MEMORY_KIB},t={PASSES},p={LANES}$");
        !self.0.starts_with("$argon2id$v=19") || !self.0.contains(&expected)
    }
}

/// Refuses repeated, unknown or costly parameters before `argon2` reads
/// them: its own reading multiplies the lane count unchecked.
fn check_costs(parsed: &Phc<'_>) -> Result<(), HashError> {
    let (mut memory, mut passes, mut lanes) = (None, None, None);
    for (name, value) in parsed.params.iter() {
        let slot = match name.as_str() {
            "m" => &mut memory,
            "t" => &mut passes,
            "p" => &mut lanes,
            // Argon2's optional key id and associated data carry no cost.
            "keyid" | "data" => continue,
            other => return Err(HashError::Malformed(format!("unknown parameter {other}"))),
        };
        if slot.is_some() {
            return Err(HashError::Malformed(format!(
                "parameter {name} given twice"
            )));
        }
        let number = value
            .decimal()
            .map_err(|_| HashError::Malformed(format!("parameter {name} is not a number")))?;
        *slot = Some(number);
    }
    let (Some(memory), Some(passes), Some(lanes)) = (memory, passes, lanes) else {
        return Err(HashError::Malformed("m, t and p are required".into()));
    };
    if memory > MAX_MEMORY_KIB || passes > MAX_PASSES || lanes > MAX_LANES {
        return Err(HashError::TooCostly {
            memory,
            passes,
            lanes,
        });
    }
    Ok(())
}

/// Spends the time of one verification and answers `false`: a sign-in as
/// a user with no password takes as long as one with a wrong password.
pub fn decoy_verify(password: &str) -> bool {
    static DECOY: OnceLock<Option<PasswordHash>> = OnceLock::new();
    let decoy = DECOY.get_or_init(|| PasswordHash::new("decoy", &[0x5a; SALT_LEN]).ok());
    if let Some(decoy) = decoy {
        let _ = decoy.verify(password);
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let h = PasswordHash::new("Corr3ct horse!", &[7; SALT_LEN]).unwrap();
        assert!(h.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify("Corr3ct horse!"));
        assert!(!h.verify("Corr3ct horse"));
        assert!(!h.verify(""));
        assert!(!h.needs_rehash());
        let again = PasswordHash::parse(h.as_str()).unwrap();
        assert!(again.verify("Corr3ct horse!"));
        // A different salt, a different hash.
        assert_ne!(
            PasswordHash::new("Corr3ct horse!", &[8; SALT_LEN]).unwrap(),
            h
        );
        assert!(!decoy_verify("Corr3ct horse!"));
    }

    #[test]
    fn debug_shows_parameters_only() {
        let h = PasswordHash::new("secret", &[1; SALT_LEN]).unwrap();
        let shown = format!("{h:?}");
        assert_eq!(shown, "PasswordHash(argon2id m=19456,t=2,p=1)");
    }

    #[test]
    fn stored_hashes_are_checked_before_use() {
        assert!(matches!(
            PasswordHash::parse("plaintext"),
            Err(HashError::Malformed(_))
        ));
        // argon2i, or bcrypt-like strings: not accepted.
        let h = PasswordHash::new("x", &[1; SALT_LEN]).unwrap();
        let argon2i = h.as_str().replacen("argon2id", "argon2i", 1);
        assert_eq!(PasswordHash::parse(&argon2i), Err(HashError::Algorithm));
        let costly = h.as_str().replacen("m=19456", "m=4194304", 1);
        assert!(matches!(
            PasswordHash::parse(&costly),
            Err(HashError::TooCostly { .. })
        ));
        // Fuzz find: a huge lane count overflowed argon2's own check.
        let lanes = "$argon2id$v=19$m=147,m=164147,m=17,p=16,t=1,m=596736,p=2222222222";
        assert!(matches!(
            PasswordHash::parse(lanes),
            Err(HashError::Malformed(_))
        ));
        let lanes = h.as_str().replacen("p=1$", "p=2222222222$", 1);
        assert!(matches!(
            PasswordHash::parse(&lanes),
            Err(HashError::TooCostly { .. })
        ));
        // Older, cheaper parameters still verify but ask for a rehash.
        let old = PasswordHash(
            hasher_with(8192, 1)
                .hash_password(b"pw", &SaltString::encode_b64(&[3; 16]).unwrap())
                .unwrap()
                .to_string(),
        );
        assert!(PasswordHash::parse(old.as_str()).is_ok());
        assert!(old.verify("pw"));
        assert!(old.needs_rehash());
    }

    fn hasher_with(memory: u32, passes: u32) -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(memory, passes, 1, None).unwrap(),
        )
    }
}
