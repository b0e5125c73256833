//! New passwords, as Secrets Manager's `GetRandomPassword` makes them for
//! the RDS templates: 32 printable ASCII characters with at least one
//! upper-case letter, lower-case letter, digit and punctuation mark,
//! without the characters the templates exclude (`:/@"'\` and space).
//!
//! Made by `latchkey-secrets`' `GetRandomPassword` generator. Pure: the
//! caller supplies the random bytes ([`crate::random::fill`]
//! in production, fixed bytes in tests).

use zeroize::Zeroizing;

use crate::random::RandomError;

/// What a generated password is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordRules {
    pub length: usize,
    /// Characters never used.
    pub exclude: String,
}

impl Default for PasswordRules {
    fn default() -> Self {
        PasswordRules {
            length: 32,
            exclude: ":/@\"'\\".to_owned(),
        }
    }
}

/// Why no password could be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must be 4 to 4096 characters long")]
    Length,
    #[error("the exclusions leave a character class empty")]
    EmptyClass,
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A password by `rules`, drawing bytes from `fill`: Secrets Manager's
/// own generator (`GetRandomPassword`, unbiased), with every class
/// required.
pub fn generate(
    rules: &PasswordRules,
    fill: &mut dyn FnMut(&mut [u8]) -> Result<(), RandomError>,
) -> Result<Zeroizing<String>, PasswordError> {
    use latchkey_secrets::password::{self as generator, PasswordSpec};
    if !(4..=4096).contains(&rules.length) {
        return Err(PasswordError::Length);
    }
    // The templates need one of each class: a class the exclusions
    // empty is an error here, where GetRandomPassword would drop it.
    let classes: [fn(&u8) -> bool; 4] = [
        u8::is_ascii_uppercase,
        u8::is_ascii_lowercase,
        u8::is_ascii_digit,
        u8::is_ascii_punctuation,
    ];
    if classes
        .iter()
        .any(|class| !(b'!'..=b'~').any(|c| class(&c) && !rules.exclude.as_bytes().contains(&c)))
    {
        return Err(PasswordError::EmptyClass);
    }
    let spec = PasswordSpec {
        length: rules.length,
        exclude_characters: rules.exclude.clone(),
        ..PasswordSpec::default()
    };
    let mut failed = false;
    let made = generator::random_password(&spec, |buf| {
        fill(buf).map_err(|_| {
            failed = true;
            generator::RandomError
        })
    });
    match made {
        Ok(password) => Ok(password),
        Err(_) if failed => Err(PasswordError::Random(RandomError)),
        Err(generator::PasswordError::Random) => Err(PasswordError::Random(RandomError)),
        Err(generator::PasswordError::Length | generator::PasswordError::TooShort { .. }) => {
            Err(PasswordError::Length)
        }
        Err(_) => Err(PasswordError::EmptyClass),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic byte stream (xorshift), for tests only.
    fn stream(seed: u64) -> impl FnMut(&mut [u8]) -> Result<(), RandomError> {
        let mut x = seed | 1;
        move |buf| {
            for b in buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x.to_le_bytes()[3];
            }
            Ok(())
        }
    }

    #[test]
    fn default_rules() {
        for seed in 0..200 {
            let p = generate(&PasswordRules::default(), &mut stream(seed)).unwrap();
            assert_eq!(p.len(), 32);
            assert!(p.bytes().all(|c| c.is_ascii_graphic()));
            assert!(!p.contains([':', '/', '@', '"', '\'', '\\', ' ']), "{}", *p);
            assert!(p.bytes().any(|c| c.is_ascii_uppercase()));
            assert!(p.bytes().any(|c| c.is_ascii_punctuation()));
        }
    }

    #[test]
    fn same_bytes_same_password_and_errors() {
        let rules = PasswordRules::default();
        assert_eq!(
            generate(&rules, &mut stream(9)).unwrap(),
            generate(&rules, &mut stream(9)).unwrap()
        );
        let short = PasswordRules {
            length: 3,
            ..rules.clone()
        };
        assert_eq!(generate(&short, &mut stream(1)), Err(PasswordError::Length));
        let no_digits = PasswordRules {
            exclude: "0123456789".into(),
            ..rules.clone()
        };
        assert_eq!(
            generate(&no_digits, &mut stream(1)),
            Err(PasswordError::EmptyClass)
        );
        let mut broken = |_: &mut [u8]| Err(RandomError);
        assert_eq!(
            generate(&rules, &mut broken),
            Err(PasswordError::Random(RandomError))
        );
    }
}
