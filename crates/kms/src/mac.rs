//! HMAC keys: `GenerateMac` and `VerifyMac`.

use hmac::{Hmac, Mac};
use sha2::{Sha224, Sha256, Sha384, Sha512};

use crate::KmsError;

/// The largest message `GenerateMac` takes.
pub const MAX_MESSAGE: usize = 4096;

/// `MacAlgorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlgorithm {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl MacAlgorithm {
    pub fn parse(s: &str) -> Result<Self, KmsError> {
        Ok(match s {
            "HMAC_SHA_224" => Self::Sha224,
            "HMAC_SHA_256" => Self::Sha256,
            "HMAC_SHA_384" => Self::Sha384,
            "HMAC_SHA_512" => Self::Sha512,
            _ => {
                return Err(KmsError::Validation(
                    "MacAlgorithm must be one of HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512.".into(),
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha224 => "HMAC_SHA_224",
            Self::Sha256 => "HMAC_SHA_256",
            Self::Sha384 => "HMAC_SHA_384",
            Self::Sha512 => "HMAC_SHA_512",
        }
    }
}

fn check(message: &[u8]) -> Result<(), KmsError> {
    if message.is_empty() || message.len() > MAX_MESSAGE {
        return Err(KmsError::Validation(format!(
            "Message must be between 1 and {MAX_MESSAGE} bytes."
        )));
    }
    Ok(())
}

macro_rules! with_mac {
    ($alg:expr, $key:expr, |$m:ident| $body:expr) => {
        match $alg {
            MacAlgorithm::Sha224 => {
                let mut $m = <Hmac<Sha224>>::new_from_slice($key)
                    .map_err(|_| KmsError::Internal("hmac key"))?;
                $body
            }
            MacAlgorithm::Sha256 => {
                let mut $m = <Hmac<Sha256>>::new_from_slice($key)
                    .map_err(|_| KmsError::Internal("hmac key"))?;
                $body
            }
            MacAlgorithm::Sha384 => {
                let mut $m = <Hmac<Sha384>>::new_from_slice($key)
                    .map_err(|_| KmsError::Internal("hmac key"))?;
                $body
            }
            MacAlgorithm::Sha512 => {
                let mut $m = <Hmac<Sha512>>::new_from_slice($key)
                    .map_err(|_| KmsError::Internal("hmac key"))?;
                $body
            }
        }
    };
}

/// The MAC of `message` under `key`.
pub fn generate(alg: MacAlgorithm, key: &[u8], message: &[u8]) -> Result<Vec<u8>, KmsError> {
    check(message)?;
    with_mac!(alg, key, |m| {
        m.update(message);
        Ok(m.finalize().into_bytes().to_vec())
    })
}

/// Checks `mac` in constant time; a mismatch is `KMSInvalidMacException`.
pub fn verify(alg: MacAlgorithm, key: &[u8], message: &[u8], mac: &[u8]) -> Result<(), KmsError> {
    check(message)?;
    with_mac!(alg, key, |m| {
        m.update(message);
        m.verify_slice(mac).map_err(|_| KmsError::InvalidMac)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe".
        let mac = generate(
            MacAlgorithm::Sha256,
            b"Jefe",
            b"what do ya want for nothing?",
        )
        .expect("mac");
        assert_eq!(
            mac.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(
            verify(
                MacAlgorithm::Sha256,
                b"Jefe",
                b"what do ya want for nothing?",
                &mac
            )
            .is_ok()
        );
        let mut bad = mac.clone();
        bad[0] ^= 1;
        assert_eq!(
            verify(
                MacAlgorithm::Sha256,
                b"Jefe",
                b"what do ya want for nothing?",
                &bad
            ),
            Err(KmsError::InvalidMac)
        );
        assert_eq!(
            verify(
                MacAlgorithm::Sha256,
                b"Jefe",
                b"what do ya want for nothing?",
                &mac[..31]
            ),
            Err(KmsError::InvalidMac)
        );
        for alg in [
            MacAlgorithm::Sha224,
            MacAlgorithm::Sha384,
            MacAlgorithm::Sha512,
        ] {
            assert_eq!(MacAlgorithm::parse(alg.as_str()), Ok(alg));
        }
        assert!(generate(MacAlgorithm::Sha256, b"k", b"").is_err());
    }
}
