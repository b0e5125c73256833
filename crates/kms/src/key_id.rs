//! What a request may call a key: its id (a UUID), its ARN, an alias
//! (`alias/NAME`) or an alias's ARN; and the alias names AWS allows.

use std::fmt;

use crate::KmsError;

/// A key's id: a lowercase UUID, as AWS's key ids are.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyUuid([u8; 16]);

impl KeyUuid {
    /// A new random (version 4) id.
    pub fn random() -> Result<Self, KmsError> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|_| KmsError::Internal("no randomness"))?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(Self(b))
    }

    pub fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// `8-4-4-4-12` hexadecimal digits, either case.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return None;
                }
                i += 1;
                continue;
            }
            let hi = hex(b[i])?;
            let lo = hex(*b.get(i + 1)?)?;
            if matches!(i + 1, 8 | 13 | 18 | 23) {
                return None;
            }
            out[n] = hi << 4 | lo;
            n += 1;
            i += 2;
        }
        (n == 16).then_some(Self(out))
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for KeyUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyUuid({self})")
    }
}

/// An alias's name, `alias/` included.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AliasName(String);

/// The prefix of the aliases of AWS managed keys.
pub const AWS_ALIAS_PREFIX: &str = "alias/aws/";

/// The services whose AWS managed keys (`alias/aws/<service>`) exist here.
pub const MANAGED_SERVICES: &[&str] = &["ssm", "secretsmanager"];

impl AliasName {
    /// An alias as AWS allows it: `alias/` then 1-250 characters of
    /// letters, digits, `/`, `_` and `-`.
    pub fn parse(s: &str) -> Result<Self, KmsError> {
        let Some(rest) = s.strip_prefix("alias/") else {
            return Err(KmsError::Validation(
                "Alias must start with the prefix \"alias/\".".into(),
            ));
        };
        if rest.is_empty()
            || s.len() > 256
            || !rest
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'_' | b'-'))
        {
            return Err(KmsError::Validation(
                "Alias must be 1-256 characters of letters, digits, '/', '_' and '-', starting with \"alias/\".".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it names an AWS managed key (`alias/aws/...`), which only
    /// the service creates.
    pub fn is_aws_managed(&self) -> bool {
        self.0.starts_with(AWS_ALIAS_PREFIX)
    }

    /// The service of an AWS managed key that Latchkey makes on first use
    /// (`ssm` for `alias/aws/ssm`); `None` for any other alias, including
    /// `alias/aws/` names of services Latchkey does not integrate (AWS
    /// answers `NotFoundException` for those: nothing makes them).
    pub fn managed_service(&self) -> Option<&str> {
        self.0
            .strip_prefix(AWS_ALIAS_PREFIX)
            .filter(|service| MANAGED_SERVICES.contains(service))
    }

    /// `arn:aws:kms:REGION:ACCOUNT:alias/NAME`.
    pub fn arn(&self, region: &str, account: &str) -> String {
        format!("arn:aws:kms:{region}:{account}:{}", self.0)
    }
}

/// A key as a request names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    Id(KeyUuid),
    Alias(AliasName),
}

impl KeyRef {
    /// Parses a `KeyId` member. An ARN must be of this region and account
    /// (there is no other here); anything else is `NotFoundException`, as
    /// AWS answers an id it cannot resolve.
    pub fn parse(s: &str, region: &str, account: &str) -> Result<Self, KmsError> {
        if s.is_empty() || s.len() > 2048 {
            return Err(KmsError::Validation(
                "KeyId must be between 1 and 2048 characters.".into(),
            ));
        }
        let not_found = || KmsError::NotFound(format!("Invalid keyId '{s}'"));
        if let Some(rest) = s.strip_prefix("arn:") {
            let mut parts = rest.splitn(5, ':');
            let (Some(partition), Some(service), Some(r), Some(a), Some(resource)) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return Err(KmsError::InvalidArn(format!("Invalid arn {s}")));
            };
            if partition != "aws" || service != "kms" {
                return Err(KmsError::InvalidArn(format!("Invalid arn {s}")));
            }
            if r != region || a != account {
                return Err(not_found());
            }
            return if let Some(id) = resource.strip_prefix("key/") {
                KeyUuid::parse(id).map(Self::Id).ok_or_else(not_found)
            } else if resource.starts_with("alias/") {
                AliasName::parse(resource)
                    .map(Self::Alias)
                    .map_err(|_| not_found())
            } else {
                Err(KmsError::InvalidArn(format!("Invalid arn {s}")))
            };
        }
        if s.starts_with("alias/") {
            return AliasName::parse(s)
                .map(Self::Alias)
                .map_err(|_| not_found());
        }
        KeyUuid::parse(s).map(Self::Id).ok_or_else(not_found)
    }

    /// The alias the request used, for `kms:RequestAlias`.
    pub fn alias(&self) -> Option<&AliasName> {
        match self {
            Self::Alias(a) => Some(a),
            Self::Id(_) => None,
        }
    }
}

/// `arn:aws:kms:REGION:ACCOUNT:key/ID`.
pub fn key_arn(region: &str, account: &str, id: &KeyUuid) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "us-east-1";
    const A: &str = "123456789012";
    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn uuids_round_trip() {
        let id = KeyUuid::parse(ID).expect("uuid");
        assert_eq!(id.to_string(), ID);
        assert_eq!(
            KeyUuid::parse(&ID.to_uppercase()).map(|u| u.to_string()),
            Some(ID.to_owned())
        );
        let r = KeyUuid::random().expect("random");
        assert_eq!(KeyUuid::parse(&r.to_string()), Some(r.clone()));
        assert_eq!(r.to_string().as_bytes()[14], b'4');
        for bad in [
            "",
            "1234abcd12ab-34cd-56ef-1234567890ab0",
            "1234abcd-12ab-34cd-56ef-1234567890ag",
            "1234abcd-12ab-34cd-56ef-1234567890a",
            "1234abcd-12ab-34cd-56ef-1234567890abc",
            "1234abc-d12ab-34cd-56ef-1234567890ab",
        ] {
            assert_eq!(KeyUuid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_refs_as_aws_accepts_them() {
        let id = KeyRef::Id(KeyUuid::parse(ID).expect("uuid"));
        assert_eq!(KeyRef::parse(ID, R, A), Ok(id.clone()));
        assert_eq!(
            KeyRef::parse(&format!("arn:aws:kms:{R}:{A}:key/{ID}"), R, A),
            Ok(id)
        );
        let alias = KeyRef::Alias(AliasName::parse("alias/app-key").expect("alias"));
        assert_eq!(KeyRef::parse("alias/app-key", R, A), Ok(alias.clone()));
        assert_eq!(
            KeyRef::parse(&format!("arn:aws:kms:{R}:{A}:alias/app-key"), R, A),
            Ok(alias)
        );
        for (bad, code) in [
            ("nope", "NotFoundException"),
            ("alias/", "NotFoundException"),
            ("alias/a b", "NotFoundException"),
            ("", "ValidationException"),
            (
                "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "NotFoundException",
            ),
            (
                "arn:aws:kms:us-east-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "NotFoundException",
            ),
            (
                "arn:aws:s3:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "InvalidArnException",
            ),
            (
                "arn:aws:kms:us-east-1:123456789012:grant/x",
                "InvalidArnException",
            ),
            ("arn:aws:kms", "InvalidArnException"),
        ] {
            assert_eq!(
                KeyRef::parse(bad, R, A).map_err(|e| e.code()),
                Err(code),
                "{bad}"
            );
        }
    }

    #[test]
    fn alias_names() {
        assert!(
            AliasName::parse("alias/aws/ssm")
                .expect("alias")
                .is_aws_managed()
        );
        assert!(
            !AliasName::parse("alias/awsx")
                .expect("alias")
                .is_aws_managed()
        );
        let service = |a: &str| {
            AliasName::parse(a)
                .expect("alias")
                .managed_service()
                .map(str::to_owned)
        };
        assert_eq!(service("alias/aws/ssm").as_deref(), Some("ssm"));
        assert_eq!(
            service("alias/aws/zz0"),
            None,
            "not a service Latchkey integrates"
        );
        assert_eq!(service("alias/app"), None);
        assert!(AliasName::parse("app").is_err());
        assert!(AliasName::parse(&format!("alias/{}", "a".repeat(250))).is_ok());
        assert!(AliasName::parse(&format!("alias/{}", "a".repeat(251))).is_err());
        assert_eq!(
            AliasName::parse("alias/x").expect("alias").arn(R, A),
            "arn:aws:kms:us-east-1:123456789012:alias/x"
        );
    }
}
