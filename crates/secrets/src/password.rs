//! Random passwords as Secrets Manager's `GetRandomPassword` makes them:
//! its parameters, defaults, character sets and refusals.
//!
//! Pure: the caller supplies the random bytes (the OS random source in
//! production, a fixed stream in tests). Every character is drawn
//! uniformly from what is allowed (rejection sampling, no modulo bias),
//! and a password missing a required character type is drawn again, so
//! the result is uniform over the passwords that meet the spec.

use zeroize::Zeroizing;

/// AWS's punctuation: every printable ASCII character that is neither a
/// letter, a digit nor a space.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
const NUMBERS: &str = "0123456789";

/// `PasswordLength`'s bounds and default.
pub const MIN_LENGTH: usize = 1;
pub const MAX_LENGTH: usize = 4096;
pub const DEFAULT_LENGTH: usize = 32;
/// `ExcludeCharacters` is at most this many characters.
pub const MAX_EXCLUDE_CHARACTERS: usize = 4096;

/// Random bytes the generator may use before it gives up: far more than
/// any spec needs from a working source (the least likely spec that can
/// be met at all needs a few thousand draws on average), so running out
/// means the source is broken (e.g. returns one value forever).
const BYTE_BUDGET: usize = 1 << 25;

/// `GetRandomPassword`'s parameters; [`Default`] is AWS's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordSpec {
    pub length: usize,
    /// Characters never used.
    pub exclude_characters: String,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub exclude_uppercase: bool,
    pub exclude_lowercase: bool,
    pub include_space: bool,
    /// At least one character of each included type (upper case, lower
    /// case, digit, punctuation; not the space, as AWS documents it).
    pub require_each_included_type: bool,
}

impl Default for PasswordSpec {
    fn default() -> Self {
        Self {
            length: DEFAULT_LENGTH,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

/// Why no password was made. The messages are what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("PasswordLength must be between 1 and 4096.")]
    Length,
    #[error("ExcludeCharacters must be at most 4096 characters.")]
    ExcludeTooLong,
    #[error("The excluded characters leave none to generate a password from.")]
    NothingToChooseFrom,
    #[error(
        "PasswordLength {length} is too short to include each of the {types} included character types."
    )]
    TooShort { length: usize, types: usize },
    #[error("The random source failed.")]
    Random,
}

/// The random source could not give bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the random source failed")]
pub struct RandomError;

/// The characters a spec allows, and the types of which each password
/// needs one.
struct Alphabet {
    chars: Vec<u8>,
    /// Each required type's characters (non-empty).
    required: Vec<Vec<u8>>,
}

impl Alphabet {
    fn new(spec: &PasswordSpec) -> Result<Self, PasswordError> {
        let allowed = |set: &str| -> Vec<u8> {
            set.bytes()
                .filter(|b| !spec.exclude_characters.contains(char::from(*b)))
                .collect()
        };
        let mut chars = Vec::new();
        let mut required = Vec::new();
        for (set, excluded) in [
            (UPPERCASE, spec.exclude_uppercase),
            (LOWERCASE, spec.exclude_lowercase),
            (NUMBERS, spec.exclude_numbers),
            (PUNCTUATION, spec.exclude_punctuation),
        ] {
            if excluded {
                continue;
            }
            let class = allowed(set);
            // A type whose every character is excluded is not included.
            if !class.is_empty() {
                chars.extend_from_slice(&class);
                required.push(class);
            }
        }
        if spec.include_space {
            chars.extend(allowed(" "));
        }
        if chars.is_empty() {
            return Err(PasswordError::NothingToChooseFrom);
        }
        if !spec.require_each_included_type {
            required.clear();
        }
        Ok(Self { chars, required })
    }
}

/// Random bytes from the caller's source, in blocks, within
/// [`BYTE_BUDGET`].
struct Bytes<F> {
    rng: F,
    buf: Zeroizing<[u8; 256]>,
    pos: usize,
    refills_left: usize,
}

impl<F: FnMut(&mut [u8]) -> Result<(), RandomError>> Bytes<F> {
    fn new(rng: F) -> Self {
        Self {
            rng,
            buf: Zeroizing::new([0; 256]),
            pos: 256,
            refills_left: BYTE_BUDGET / 256,
        }
    }

    fn byte(&mut self) -> Result<u8, PasswordError> {
        if self.pos == self.buf.len() {
            if self.refills_left == 0 {
                return Err(PasswordError::Random);
            }
            self.refills_left -= 1;
            (self.rng)(&mut self.buf[..]).map_err(|_| PasswordError::Random)?;
            self.pos = 0;
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    /// Uniform in `0..n` (`1 <= n <= 256`): bytes at or above the largest
    /// multiple of `n` are thrown away, so no value is favoured.
    fn below(&mut self, n: usize) -> Result<usize, PasswordError> {
        let limit = 256 - 256 % n;
        loop {
            let b = usize::from(self.byte()?);
            if b < limit {
                return Ok(b % n);
            }
        }
    }
}

/// A password by `spec`, from the random bytes `rng` gives.
pub fn random_password(
    spec: &PasswordSpec,
    rng: impl FnMut(&mut [u8]) -> Result<(), RandomError>,
) -> Result<Zeroizing<String>, PasswordError> {
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&spec.length) {
        return Err(PasswordError::Length);
    }
    if spec.exclude_characters.chars().count() > MAX_EXCLUDE_CHARACTERS {
        return Err(PasswordError::ExcludeTooLong);
    }
    let alphabet = Alphabet::new(spec)?;
    if spec.length < alphabet.required.len() {
        return Err(PasswordError::TooShort {
            length: spec.length,
            types: alphabet.required.len(),
        });
    }
    let mut bytes = Bytes::new(rng);
    let mut out = Zeroizing::new(vec![0u8; spec.length]);
    loop {
        for c in out.iter_mut() {
            *c = alphabet.chars[bytes.below(alphabet.chars.len())?];
        }
        if alphabet
            .required
            .iter()
            .all(|class| out.iter().any(|c| class.contains(c)))
        {
            break;
        }
    }
    let mut password = Zeroizing::new(String::with_capacity(spec.length));
    password.extend(out.iter().map(|&b| char::from(b)));
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A deterministic byte stream (xorshift64*), for tests only.
    fn stream(seed: u64) -> impl FnMut(&mut [u8]) -> Result<(), RandomError> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move |buf| {
            for b in buf {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                *b = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
            }
            Ok(())
        }
    }

    fn password(spec: &PasswordSpec, seed: u64) -> String {
        random_password(spec, stream(seed))
            .map(|p| p.to_string())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_are_awss() {
        for seed in 0..100 {
            let p = password(&PasswordSpec::default(), seed);
            assert_eq!(p.len(), 32);
            assert!(p.bytes().all(|c| c.is_ascii_graphic()), "{p}");
            assert!(p.bytes().any(|c| c.is_ascii_uppercase()), "{p}");
            assert!(p.bytes().any(|c| c.is_ascii_lowercase()), "{p}");
            assert!(p.bytes().any(|c| c.is_ascii_digit()), "{p}");
            assert!(p.bytes().any(|c| c.is_ascii_punctuation()), "{p}");
        }
    }

    #[test]
    fn punctuation_is_every_printable_non_alphanumeric() {
        let expected: String = (b'!'..=b'~')
            .filter(|c| !c.is_ascii_alphanumeric())
            .map(char::from)
            .collect();
        assert_eq!(PUNCTUATION, expected);
        assert_eq!(PUNCTUATION.len(), 32);
    }

    /// Fed every byte value in turn, each character comes out equally
    /// often: the bytes that would favour some are thrown away.
    #[test]
    fn selection_is_unbiased() {
        let mut next = 0u8;
        let counter = |buf: &mut [u8]| {
            for b in buf {
                *b = next;
                next = next.wrapping_add(1);
            }
            Ok(())
        };
        let spec = PasswordSpec {
            length: 25 * 10 * 4,
            exclude_punctuation: true,
            exclude_uppercase: true,
            exclude_lowercase: true,
            ..PasswordSpec::default()
        };
        let p = random_password(&spec, counter).unwrap_or_default();
        for d in b'0'..=b'9' {
            assert_eq!(p.bytes().filter(|c| *c == d).count(), 100, "{}", d as char);
        }
    }

    #[test]
    fn refusals() {
        let spec = |f: fn(&mut PasswordSpec)| {
            let mut s = PasswordSpec::default();
            f(&mut s);
            random_password(&s, stream(1)).map(|p| p.to_string())
        };
        assert_eq!(spec(|s| s.length = 0), Err(PasswordError::Length));
        assert_eq!(spec(|s| s.length = 4097), Err(PasswordError::Length));
        assert_eq!(
            spec(|s| s.exclude_characters = "x".repeat(4097)),
            Err(PasswordError::ExcludeTooLong)
        );
        assert_eq!(
            spec(|s| {
                s.exclude_numbers = true;
                s.exclude_punctuation = true;
                s.exclude_uppercase = true;
                s.exclude_lowercase = true;
            }),
            Err(PasswordError::NothingToChooseFrom)
        );
        assert_eq!(
            spec(|s| {
                s.exclude_characters = format!("{UPPERCASE}{LOWERCASE}{NUMBERS}{PUNCTUATION}");
            }),
            Err(PasswordError::NothingToChooseFrom)
        );
        assert_eq!(
            spec(|s| s.length = 3),
            Err(PasswordError::TooShort {
                length: 3,
                types: 4
            })
        );
        // Not required: any length will do.
        assert_eq!(
            spec(|s| {
                s.length = 1;
                s.require_each_included_type = false;
            })
            .map(|p| p.len()),
            Ok(1)
        );
        // A type whose characters are all excluded is not required.
        let p = spec(|s| {
            s.length = 3;
            s.exclude_characters = NUMBERS.into();
        })
        .unwrap_or_default();
        assert_eq!(p.len(), 3);
        assert!(!p.bytes().any(|c| c.is_ascii_digit()), "{p}");
        // Only spaces.
        assert_eq!(
            spec(|s| {
                s.length = 5;
                s.exclude_characters = format!("{UPPERCASE}{LOWERCASE}{NUMBERS}{PUNCTUATION}");
                s.include_space = true;
            }),
            Ok("     ".to_owned())
        );
    }

    #[test]
    fn a_broken_source_is_an_error_not_a_hang() {
        assert_eq!(
            random_password(&PasswordSpec::default(), |_| Err(RandomError)),
            Err(PasswordError::Random)
        );
        // Always the same byte: never all four types.
        assert_eq!(
            random_password(&PasswordSpec::default(), |b: &mut [u8]| {
                b.fill(7);
                Ok(())
            }),
            Err(PasswordError::Random)
        );
    }

    #[test]
    fn same_bytes_same_password() {
        let s = PasswordSpec::default();
        assert_eq!(password(&s, 9), password(&s, 9));
        assert_ne!(password(&s, 9), password(&s, 10));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn passwords_meet_their_spec(
            length in 1usize..120,
            exclude in proptest::collection::vec(0x20u8..0x7f, 0..40),
            flags in proptest::array::uniform6(any::<bool>()),
            seed in any::<u64>(),
        ) {
            let spec = PasswordSpec {
                length,
                exclude_characters: exclude.iter().map(|b| char::from(*b)).collect(),
                exclude_numbers: flags[0],
                exclude_punctuation: flags[1],
                exclude_uppercase: flags[2],
                exclude_lowercase: flags[3],
                include_space: flags[4],
                require_each_included_type: flags[5],
            };
            let kept = |set: &str, excluded: bool| -> Vec<u8> {
                if excluded { return Vec::new(); }
                set.bytes().filter(|b| !exclude.contains(b)).collect()
            };
            let classes = [
                kept(UPPERCASE, spec.exclude_uppercase),
                kept(LOWERCASE, spec.exclude_lowercase),
                kept(NUMBERS, spec.exclude_numbers),
                kept(PUNCTUATION, spec.exclude_punctuation),
            ];
            let space = kept(" ", !spec.include_space);
            let types = classes.iter().filter(|c| !c.is_empty()).count();
            match random_password(&spec, stream(seed)) {
                Ok(p) => {
                    prop_assert_eq!(p.len(), length);
                    for c in p.bytes() {
                        prop_assert!(!exclude.contains(&c), "excluded {:?} in {:?}", c as char, &*p);
                        prop_assert!(
                            classes.iter().any(|k| k.contains(&c)) || space.contains(&c),
                            "{:?} not allowed in {:?}", c as char, &*p
                        );
                    }
                    if spec.require_each_included_type {
                        for class in classes.iter().filter(|c| !c.is_empty()) {
                            prop_assert!(p.bytes().any(|c| class.contains(&c)), "a type is missing from {:?}", &*p);
                        }
                    }
                }
                Err(PasswordError::NothingToChooseFrom) => {
                    prop_assert_eq!(types, 0);
                    prop_assert!(space.is_empty());
                }
                Err(PasswordError::TooShort { length: l, types: t }) => {
                    prop_assert!(spec.require_each_included_type);
                    prop_assert_eq!((l, t), (length, types));
                    prop_assert!(length < types);
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
