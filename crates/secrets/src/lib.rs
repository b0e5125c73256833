//! AWS Secrets Manager's rules, as pure logic: what a secret is, how its
//! versions and staging labels move, when it rotates. The server reads and
//! writes secrets through the store and answers the API; everything it
//! decides about a secret is decided here, on a clock it is given.

pub mod password;
pub mod rotation;
pub mod schedule;
pub mod secret;

pub use rotation::{RotationFunction, RotationRun};
pub use schedule::{RotationRules, Schedule, ScheduleError};
pub use secret::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, Lookup, Rotation, Secret, SecretValue, SecretsError, Step,
    Version,
};
