//! Finding leaked credentials in bytes, for `latchkey scan`.
//!
//! [`Scanner::scan`] runs every [`Detector`] over one buffer (a file, a git
//! blob, standard input) and returns [`Finding`]s: where the secret is
//! (line, column, byte range), which detector found it and how severe it
//! is, the [`Secret`] itself (never printed whole: its `Debug` and
//! [`Secret::masked`] show only its ends), an access key id when there is
//! one (to verify against the store), and a [`Finding::fingerprint`] that
//! survives the line moving (for baselines).
//!
//! It is built for speed on text that mostly holds no secret: one
//! Aho-Corasick pass over the bytes finds the literals every detector
//! needs (`AKIA`, `password`, `://`, `-----BEGIN`...), and the regexes run
//! only on the lines around those hits. Values that are placeholders
//! (`AKIAIOSFODNN7EXAMPLE`, `${VAR}`, `<password>`, `changeme`, `xxxx`)
//! are not findings, nor is a line that says `latchkey:allow`.
//!
//! Pure: no I/O, no clock. Verification against the store and the
//! walking of trees and git history are the CLI's.

mod detect;
mod placeholder;
pub mod report;
mod secret;
mod stream;

pub use detect::{Finding, Scanner};
pub use placeholder::{GENERIC_ENTROPY_BITS, is_placeholder, shannon_entropy};
pub use report::{Located, Place, Verification};
pub use secret::Secret;
pub use stream::StreamScan;

/// What found a secret: a stable id for each kind of leak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// An `AKIA`/`ASIA` access key id, with its secret key when one is
    /// near it.
    AwsAccessKey,
    /// An AWS-format secret access key assigned to a name that says so,
    /// with no key id near it.
    AwsSecretKey,
    /// A credentials file (`[profile]` with `aws_access_key_id` and
    /// `aws_secret_access_key`), such as Latchkey's `admin.credentials`.
    CredentialsFile,
    /// A Latchkey (or AWS) session token assigned to a name that says so.
    SessionToken,
    /// `postgres://user:password@host`, `mysql://...`.
    DatabaseUrl,
    /// `jdbc:postgresql://...?password=...`, `jdbc:mysql://user:pw@...`.
    JdbcUrl,
    /// A libpq connection string with `password=`.
    LibpqDsn,
    /// `PGPASSWORD=...` or `MYSQL_PWD=...`.
    EnvPassword,
    /// An unencrypted PEM or OpenSSH private key.
    PrivateKey,
    /// A private key encrypted with a passphrase.
    EncryptedPrivateKey,
    /// An RDS IAM auth token (valid 15 minutes at most).
    RdsAuthToken,
    /// A high-entropy value assigned to a name like `password`, `secret`,
    /// `token` or `api_key`.
    GenericSecret,
}

impl Detector {
    pub const ALL: [Detector; 12] = [
        Detector::AwsAccessKey,
        Detector::AwsSecretKey,
        Detector::CredentialsFile,
        Detector::SessionToken,
        Detector::DatabaseUrl,
        Detector::JdbcUrl,
        Detector::LibpqDsn,
        Detector::EnvPassword,
        Detector::PrivateKey,
        Detector::EncryptedPrivateKey,
        Detector::RdsAuthToken,
        Detector::GenericSecret,
    ];

    /// The stable id (`aws-access-key`...), in output, baselines and SARIF
    /// rule ids.
    pub fn id(self) -> &'static str {
        match self {
            Detector::AwsAccessKey => "aws-access-key",
            Detector::AwsSecretKey => "aws-secret-key",
            Detector::CredentialsFile => "credentials-file",
            Detector::SessionToken => "session-token",
            Detector::DatabaseUrl => "database-url",
            Detector::JdbcUrl => "jdbc-url",
            Detector::LibpqDsn => "libpq-dsn",
            Detector::EnvPassword => "env-password",
            Detector::PrivateKey => "private-key",
            Detector::EncryptedPrivateKey => "private-key-encrypted",
            Detector::RdsAuthToken => "rds-auth-token",
            Detector::GenericSecret => "generic-secret",
        }
    }

    /// What it finds, for people (and SARIF's rule descriptions).
    pub fn description(self) -> &'static str {
        match self {
            Detector::AwsAccessKey => {
                "An AWS-format access key id (AKIA/ASIA), with its secret key when one is near"
            }
            Detector::AwsSecretKey => "An AWS-format secret access key",
            Detector::CredentialsFile => "A credentials file with an access key and its secret",
            Detector::SessionToken => "A session token",
            Detector::DatabaseUrl => "A database URL (or Go DSN) with a password",
            Detector::JdbcUrl => "A JDBC URL with a password",
            Detector::LibpqDsn => "A libpq connection string with a password",
            Detector::EnvPassword => "A database password in PGPASSWORD or MYSQL_PWD",
            Detector::PrivateKey => "An unencrypted private key",
            Detector::EncryptedPrivateKey => "A passphrase-encrypted private key",
            Detector::RdsAuthToken => "An RDS IAM database auth token (short-lived)",
            Detector::GenericSecret => "A high-entropy value assigned to a secret-sounding name",
        }
    }

    /// The severity of its usual finding (a key id with its secret, a
    /// private key unencrypted): SARIF's default level for the rule.
    pub fn severity(self) -> Severity {
        match self {
            Detector::AwsAccessKey | Detector::CredentialsFile => Severity::Critical,
            Detector::AwsSecretKey
            | Detector::SessionToken
            | Detector::DatabaseUrl
            | Detector::JdbcUrl
            | Detector::LibpqDsn
            | Detector::EnvPassword
            | Detector::PrivateKey => Severity::High,
            Detector::GenericSecret => Severity::Medium,
            Detector::EncryptedPrivateKey => Severity::Low,
            Detector::RdsAuthToken => Severity::Info,
        }
    }

    pub fn from_id(id: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.id() == id)
    }
}

/// How bad a leak is, least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// A severity name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?}: expected info, low, medium, high or critical")]
pub struct UnknownSeverity(pub String);

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| UnknownSeverity(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        for d in Detector::ALL {
            assert_eq!(Detector::from_id(d.id()), Some(d));
            assert!(!d.description().is_empty());
        }
        let mut ids: Vec<&str> = Detector::ALL.iter().map(|d| d.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Detector::ALL.len());
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!("severe".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::Info);
    }
}
