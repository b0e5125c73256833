//! A secret and its versions, with the rules AWS Secrets Manager applies
//! to them. Values are not here: the store keeps each version's value
//! sealed, keyed by the secret's ARN and the version id.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::schedule::RotationRules;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Versions kept per secret: beyond this, the oldest versions without a
/// staging label are removed (AWS keeps about 100).
pub const MAX_VERSIONS: usize = 100;
/// Staging labels one version may carry.
pub const MAX_STAGES_PER_VERSION: usize = 20;
/// The largest `SecretString` or `SecretBinary`, in bytes.
pub const MAX_VALUE_BYTES: usize = 65_536;
/// Names only Latchkey makes secrets under (the database logins it keeps,
/// `latchkey/db/DATABASE/USER`); `CreateSecret` refuses them.
pub const RESERVED_PREFIX: &str = "latchkey/";
/// Tags per secret.
pub const MAX_TAGS: usize = 50;

/// What went wrong, by AWS's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceExists(String),
    #[error("{0}")]
    LimitExceeded(String),
}

impl SecretsError {
    /// The error code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidParameter(_) => "InvalidParameterException",
            Self::InvalidRequest(_) => "InvalidRequestException",
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::ResourceExists(_) => "ResourceExistsException",
            Self::LimitExceeded(_) => "LimitExceededException",
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        400
    }

    fn param(message: impl Into<String>) -> Self {
        Self::InvalidParameter(message.into())
    }
}

type Result<T> = std::result::Result<T, SecretsError>;

/// A secret's value: text or bytes. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    String(Zeroizing<String>),
    Binary(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::String(_) => f.write_str("SecretValue::String(<redacted>)"),
            Self::Binary(_) => f.write_str("SecretValue::Binary(<redacted>)"),
        }
    }
}

impl SecretValue {
    /// `SecretString` and `SecretBinary` of a request: at most one, each
    /// within the size limit. `None` when neither is given.
    pub fn from_request(
        string: Option<Zeroizing<String>>,
        binary: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Option<Self>> {
        let value = match (string, binary) {
            (Some(_), Some(_)) => {
                return Err(SecretsError::param(
                    "You can't specify both a binary secret value and a string secret value in the same secret.",
                ));
            }
            (Some(s), None) => Self::String(s),
            (None, Some(b)) => Self::Binary(b),
            (None, None) => return Ok(None),
        };
        if value.len() > MAX_VALUE_BYTES {
            return Err(SecretsError::param(format!(
                "The secret value must be at most {MAX_VALUE_BYTES} bytes."
            )));
        }
        Ok(Some(value))
    }

    pub fn len(&self) -> usize {
        match self {
            Self::String(s) => s.len(),
            Self::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the store seals: a kind byte, then the value.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let (kind, bytes) = match self {
            Self::String(s) => (0u8, s.as_bytes()),
            Self::Binary(b) => (1u8, b.as_slice()),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
        out.push(kind);
        out.extend_from_slice(bytes);
        out
    }

    /// The inverse of [`SecretValue::encode`]; `None` for bytes it did not
    /// make.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first()? {
            (0, rest) => Some(Self::String(Zeroizing::new(
                String::from_utf8(rest.to_vec()).ok()?,
            ))),
            (1, rest) => Some(Self::Binary(Zeroizing::new(rest.to_vec()))),
            _ => None,
        }
    }

    /// Whether two values are the same, in constant time over their bytes.
    pub fn same_as(&self, other: &Self) -> bool {
        let (a, b) = (self.encode(), other.encode());
        if a.len() != b.len() {
            return false;
        }
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

/// How a request names a secret: `SecretId` is its name, its ARN, or its
/// ARN without the six random characters AWS adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Name(String),
    Arn(String),
}

impl Lookup {
    pub fn parse(secret_id: &str) -> Result<Self> {
        if secret_id.is_empty() || secret_id.len() > 2048 {
            return Err(SecretsError::param(
                "Invalid SecretId: it must be 1 to 2048 characters.",
            ));
        }
        if secret_id.starts_with("arn:") {
            Ok(Self::Arn(secret_id.to_owned()))
        } else {
            Ok(Self::Name(secret_id.to_owned()))
        }
    }

    /// Whether this is a complete ARN: its name ends with `-` and six
    /// letters or digits, the suffix AWS adds. AWS reads such an ARN as
    /// complete and looks up that ARN only; so does this.
    pub fn is_full_arn(&self) -> bool {
        match self {
            Self::Name(_) => false,
            Self::Arn(arn) => arn
                .split_once(":secret:")
                .and_then(|(_, tail)| tail.rsplit_once('-'))
                .is_some_and(|(name, suffix)| {
                    !name.is_empty()
                        && suffix.len() == 6
                        && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
                }),
        }
    }

    /// Whether `secret` is the one named. A partial ARN (without the
    /// suffix) names the secret whose name it ends with, as AWS allows; a
    /// complete ARN names only the secret with exactly that ARN.
    pub fn matches(&self, secret: &Secret) -> bool {
        match self {
            Self::Name(name) => secret.name == *name,
            Self::Arn(arn) if self.is_full_arn() => secret.arn == *arn,
            Self::Arn(arn) => secret
                .arn
                .rsplit_once('-')
                .is_some_and(|(partial, _)| partial == arn),
        }
    }

    /// The name to look the secret up by: a name, or the name a partial
    /// ARN ends with. `None` for a complete ARN, which is looked up as
    /// that ARN only: its tail may well be another secret's name.
    pub fn name_hint(&self) -> Option<&str> {
        match self {
            Self::Name(name) => Some(name),
            Self::Arn(_) if self.is_full_arn() => None,
            Self::Arn(arn) => arn.split_once(":secret:").map(|(_, name)| name),
        }
    }
}

/// A secret's rotation settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub enabled: bool,
    /// `RotationLambdaARN` as given: for Latchkey, the URL of a webhook
    /// that runs the four steps, or empty for a built-in type.
    #[serde(default)]
    pub lambda_arn: String,
    pub rules: RotationRules,
    #[serde(default)]
    pub last_rotated: Option<i64>,
    #[serde(default)]
    pub next_rotation: Option<i64>,
    /// The rotation under way, if one is.
    #[serde(default)]
    pub run: Option<crate::rotation::RotationRun>,
}

/// One version of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    pub stages: Vec<String>,
    pub created: i64,
    #[serde(default)]
    pub last_accessed: Option<i64>,
}

/// A secret: everything but its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub arn: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    pub created: i64,
    pub last_changed: i64,
    #[serde(default)]
    pub last_accessed: Option<i64>,
    /// When a scheduled deletion takes effect.
    #[serde(default)]
    pub deletion_date: Option<i64>,
    #[serde(default)]
    pub rotation: Option<Rotation>,
    #[serde(default)]
    pub resource_policy: Option<String>,
    /// Oldest first.
    #[serde(default)]
    pub versions: Vec<Version>,
}

/// Checks a secret name: 1-512 characters of letters, digits and
/// `/_+=.@-`.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 512 {
        return Err(SecretsError::param(
            "Invalid name. Must be 1 to 512 characters.",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
    {
        return Err(SecretsError::param(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
        ));
    }
    Ok(())
}

/// Checks a `ClientRequestToken`: 32-64 characters.
pub fn check_token(token: &str) -> Result<()> {
    if !(32..=64).contains(&token.len()) {
        return Err(SecretsError::param(
            "ClientRequestToken must be 32 to 64 characters.",
        ));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(SecretsError::param(
            "ClientRequestToken may hold only letters, digits, hyphens and underscores.",
        ));
    }
    Ok(())
}

/// Checks a staging label: 1-256 characters.
pub fn check_stage(stage: &str) -> Result<()> {
    if stage.is_empty() || stage.len() > 256 {
        return Err(SecretsError::param(
            "A staging label must be 1 to 256 characters.",
        ));
    }
    Ok(())
}

/// Checks the tags of one request as AWS does: at most 50, keys of 1-128
/// characters, values of at most 256, no `aws:` prefix; and no key given
/// twice, whatever its case. Condition keys (`aws:ResourceTag/KEY`,
/// `aws:RequestTag/KEY`) name a tag without case, so two keys that differ
/// only in case would shadow each other in a policy.
pub fn check_tags(tags: &[(String, String)]) -> Result<()> {
    if let Some(k) = latchkey_tags::duplicate(tags) {
        return Err(SecretsError::param(format!(
            "Duplicate tag key {k}: a request may give a key once (keys are compared without case)."
        )));
    }
    for (k, v) in tags {
        check_tag_key(k)?;
        if v.chars().count() > 256 {
            return Err(SecretsError::param(
                "A tag key must be 1 to 128 characters and a value at most 256.",
            ));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(SecretsError::LimitExceeded(format!(
            "A secret can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(())
}

/// Checks a tag key: 1-128 characters, no `aws:` prefix.
pub fn check_tag_key(k: &str) -> Result<()> {
    if k.is_empty() || k.chars().count() > 128 {
        return Err(SecretsError::param(
            "A tag key must be 1 to 128 characters and a value at most 256.",
        ));
    }
    if k.to_ascii_lowercase().starts_with("aws:") {
        return Err(SecretsError::param(
            "Tag keys starting with aws: are reserved for AWS use.",
        ));
    }
    Ok(())
}

/// The six characters AWS appends to a secret's ARN, from random bytes.
pub fn arn_suffix(random: [u8; 6]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 256 is not a multiple of 62; the small bias does not matter for a
    // name suffix, which is not a secret.
    random
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

impl Secret {
    /// A new secret, with no version yet.
    pub fn new(region: &str, account: &str, name: &str, suffix: &str, now: i64) -> Result<Self> {
        check_name(name)?;
        Ok(Self {
            arn: format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}"),
            name: name.to_owned(),
            description: String::new(),
            kms_key_id: None,
            tags: Vec::new(),
            created: now,
            last_changed: now,
            last_accessed: None,
            deletion_date: None,
            rotation: None,
            resource_policy: None,
            versions: Vec::new(),
        })
    }

    /// Whether the secret is scheduled for deletion.
    pub fn is_deleted(&self) -> bool {
        self.deletion_date.is_some()
    }

    /// Whether a scheduled deletion has taken effect: the secret is gone.
    pub fn is_purged(&self, now: i64) -> bool {
        self.deletion_date.is_some_and(|at| at <= now)
    }

    /// Refuses a change to a secret scheduled for deletion.
    pub fn check_not_deleted(&self) -> Result<()> {
        if self.is_deleted() {
            return Err(SecretsError::InvalidRequest(
                "You can't perform this operation on the secret because it was marked for deletion."
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    fn version_mut(&mut self, id: &str) -> Option<&mut Version> {
        self.versions.iter_mut().find(|v| v.id == id)
    }

    /// The version carrying `stage`.
    pub fn staged(&self, stage: &str) -> Option<&Version> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == stage))
    }

    /// The version `VersionId` and `VersionStage` of a read name (both
    /// must name the same one; neither is `AWSCURRENT`).
    pub fn select(&self, version_id: Option<&str>, stage: Option<&str>) -> Result<&Version> {
        let not_found = || {
            SecretsError::ResourceNotFound(
                "Secrets Manager can't find the specified secret value for staging label or version."
                    .into(),
            )
        };
        let version = match (version_id, stage) {
            (Some(id), Some(stage)) => self
                .version(id)
                .filter(|v| v.stages.iter().any(|s| s == stage))
                .ok_or_else(not_found)?,
            (Some(id), None) => self.version(id).ok_or_else(not_found)?,
            (None, stage) => self
                .staged(stage.unwrap_or(AWSCURRENT))
                .ok_or_else(not_found)?,
        };
        Ok(version)
    }

    /// `VersionIdsToStages`, for versions that carry a label.
    pub fn versions_to_stages(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.versions
            .iter()
            .filter(|v| !v.stages.is_empty())
            .map(|v| (v.id.as_str(), v.stages.as_slice()))
    }

    /// Adds version `id` with `stages` (moved from whichever versions had
    /// them: a version losing `AWSCURRENT` gets `AWSPREVIOUS`). Returns the
    /// versions removed to stay within [`MAX_VERSIONS`], whose values the
    /// store drops.
    pub fn add_version(&mut self, id: &str, stages: &[String], now: i64) -> Result<Vec<String>> {
        check_token(id)?;
        if self.version(id).is_some() {
            return Err(SecretsError::ResourceExists(format!(
                "A version with VersionId {id} already exists."
            )));
        }
        check_stages(stages)?;
        self.versions.push(Version {
            id: id.to_owned(),
            stages: Vec::new(),
            created: now,
            last_accessed: None,
        });
        for stage in stages {
            self.attach(stage, id);
        }
        self.last_changed = now;
        Ok(self.prune())
    }

    /// Moves `stage` to version `to` (removing it from any other).
    fn attach(&mut self, stage: &str, to: &str) {
        let from = self
            .staged(stage)
            .map(|v| v.id.clone())
            .filter(|from| from != to);
        if let Some(from) = &from
            && let Some(v) = self.version_mut(from)
        {
            v.stages.retain(|s| s != stage);
        }
        if let Some(v) = self.version_mut(to)
            && !v.stages.iter().any(|s| s == stage)
        {
            v.stages.push(stage.to_owned());
        }
        if stage == AWSCURRENT
            && let Some(from) = from
        {
            for v in &mut self.versions {
                v.stages.retain(|s| s != AWSPREVIOUS);
            }
            if let Some(v) = self.version_mut(&from) {
                v.stages.push(AWSPREVIOUS.to_owned());
            }
        }
    }

    /// Drops the oldest unlabelled versions beyond [`MAX_VERSIONS`].
    fn prune(&mut self) -> Vec<String> {
        let mut dropped = Vec::new();
        while self.versions.len() > MAX_VERSIONS {
            let Some(i) = self.versions.iter().position(|v| v.stages.is_empty()) else {
                break;
            };
            dropped.push(self.versions.remove(i).id);
        }
        dropped
    }

    /// `UpdateSecretVersionStage`: moves or removes a label, as AWS
    /// allows: a label attached elsewhere must be named in `remove_from`,
    /// and `AWSCURRENT` can only be moved, not removed.
    pub fn update_stage(
        &mut self,
        stage: &str,
        remove_from: Option<&str>,
        move_to: Option<&str>,
        now: i64,
    ) -> Result<()> {
        check_stage(stage)?;
        for id in [remove_from, move_to].into_iter().flatten() {
            if self.version(id).is_none() {
                return Err(SecretsError::ResourceNotFound(format!(
                    "Secrets Manager can't find the specified version {id}."
                )));
            }
        }
        let holder = self.staged(stage).map(|v| v.id.clone());
        match (remove_from, move_to) {
            (None, None) => Err(SecretsError::param(
                "You must specify RemoveFromVersionId, MoveToVersionId or both.",
            )),
            (Some(from), _) if holder.as_deref() != Some(from) => Err(SecretsError::param(
                format!("The staging label {stage} is not attached to version {from}."),
            )),
            (None, Some(to)) if holder.as_deref().is_some_and(|h| h != to) => {
                Err(SecretsError::param(format!(
                    "The staging label {stage} is currently attached to version {}, so you must explicitly reference that version in RemoveFromVersionId.",
                    holder.unwrap_or_default()
                )))
            }
            (Some(_), None) if stage == AWSCURRENT => Err(SecretsError::param(
                "You can't remove the staging label AWSCURRENT from a version without moving it to another version.",
            )),
            (Some(from), None) => {
                if let Some(v) = self.version_mut(from) {
                    v.stages.retain(|s| s != stage);
                }
                self.last_changed = now;
                Ok(())
            }
            (_, Some(to)) => {
                if self.version(to).is_some_and(|v| {
                    v.stages.len() >= MAX_STAGES_PER_VERSION && !v.stages.iter().any(|s| s == stage)
                }) {
                    return Err(SecretsError::LimitExceeded(format!(
                        "A version can have at most {MAX_STAGES_PER_VERSION} staging labels."
                    )));
                }
                self.attach(stage, to);
                self.last_changed = now;
                Ok(())
            }
        }
    }

    /// `DeleteSecret`: schedules deletion after `window_days` (7-30), or
    /// at once with `force`. Returns the deletion date.
    pub fn schedule_deletion(
        &mut self,
        window_days: Option<i64>,
        force: bool,
        now: i64,
    ) -> Result<i64> {
        if force && window_days.is_some() {
            return Err(SecretsError::param(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
            ));
        }
        let days = window_days.unwrap_or(30);
        if !force && !(7..=30).contains(&days) {
            return Err(SecretsError::param(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
            ));
        }
        if self.is_deleted() && !force {
            return Err(SecretsError::InvalidRequest(
                "You can't delete secret because it was already scheduled for deletion.".into(),
            ));
        }
        let at = if force { now } else { now + days * 86_400 };
        self.deletion_date = Some(at);
        Ok(at)
    }

    /// `RestoreSecret`: cancels a scheduled deletion.
    pub fn restore(&mut self, now: i64) {
        self.deletion_date = None;
        self.last_changed = now;
    }

    /// Adds or replaces tags, within [`MAX_TAGS`]. A key the secret has
    /// gets the new value (and is kept once, should an older version have
    /// stored it twice); a key that differs from one it has only in case
    /// is refused: the two would be one key to a policy.
    pub fn tag(&mut self, tags: &[(String, String)]) -> Result<()> {
        check_tags(tags)?;
        let merged = latchkey_tags::merge(&self.tags, tags).map_err(|c| match c {
            latchkey_tags::Conflict::Duplicate(k) => SecretsError::param(format!(
                "Duplicate tag key {k}: a request may give a key once (keys are compared without case)."
            )),
            latchkey_tags::Conflict::CaseVariant { existing, given } => SecretsError::param(format!(
                "The secret already has the tag key {existing}, which differs from {given} only in case; tag keys are compared without case, so untag {existing} first or use it as it is."
            )),
        })?;
        if merged.len() > MAX_TAGS {
            return Err(SecretsError::LimitExceeded(format!(
                "A secret can have at most {MAX_TAGS} tags."
            )));
        }
        self.tags = merged;
        Ok(())
    }

    pub fn untag(&mut self, keys: &[String]) {
        self.tags.retain(|(k, _)| !keys.contains(k));
    }

    /// Whether the secret passes `ListSecrets` filters: every filter must
    /// match (AND); within one, any value (OR). Values match as prefixes,
    /// without case for names and descriptions; a leading `!` negates.
    pub fn passes(&self, filters: &[(Filter, Vec<String>)]) -> bool {
        filters.iter().all(|(filter, values)| {
            let (negated, plain): (Vec<&str>, Vec<&str>) = values
                .iter()
                .map(String::as_str)
                .partition(|v| v.starts_with('!'));
            let matches = |value: &str| self.filter_matches(*filter, value);
            let positive = plain.is_empty() || plain.iter().any(|v| matches(v));
            let negative = negated.iter().all(|v| !matches(&v[1..]));
            positive && negative
        })
    }

    fn filter_matches(&self, filter: Filter, value: &str) -> bool {
        let prefix = |text: &str| {
            text.len() >= value.len()
                && text.as_bytes()[..value.len()].eq_ignore_ascii_case(value.as_bytes())
        };
        match filter {
            Filter::Name => prefix(&self.name),
            Filter::Description => prefix(&self.description),
            Filter::TagKey => self.tags.iter().any(|(k, _)| prefix(k)),
            Filter::TagValue => self.tags.iter().any(|(_, v)| prefix(v)),
            Filter::PrimaryRegion | Filter::OwningService => false,
            Filter::All => {
                prefix(&self.name)
                    || prefix(&self.description)
                    || self.tags.iter().any(|(k, v)| prefix(k) || prefix(v))
            }
        }
    }
}

/// A `ListSecrets` filter key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Description,
    Name,
    TagKey,
    TagValue,
    PrimaryRegion,
    OwningService,
    All,
}

impl std::str::FromStr for Filter {
    type Err = SecretsError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "description" => Self::Description,
            "name" => Self::Name,
            "tag-key" => Self::TagKey,
            "tag-value" => Self::TagValue,
            "primary-region" => Self::PrimaryRegion,
            "owning-service" => Self::OwningService,
            "all" => Self::All,
            other => {
                return Err(SecretsError::param(format!(
                    "Invalid filter key {other}: it must be description, name, tag-key, tag-value, primary-region, owning-service or all."
                )));
            }
        })
    }
}

fn check_stages(stages: &[String]) -> Result<()> {
    if stages.len() > MAX_STAGES_PER_VERSION {
        return Err(SecretsError::LimitExceeded(format!(
            "A version can have at most {MAX_STAGES_PER_VERSION} staging labels."
        )));
    }
    stages.iter().try_for_each(|s| check_stage(s))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    const T: i64 = 1_790_000_000;

    fn token(n: u8) -> String {
        format!("{:0>32}", n)
    }

    fn secret() -> Secret {
        Secret::new("us-east-1", "123456789012", "prod/db", "AbC123", T).unwrap()
    }

    fn stages(s: &Secret) -> Vec<(String, Vec<String>)> {
        s.versions
            .iter()
            .map(|v| (v.id.clone(), v.stages.clone()))
            .collect()
    }

    #[test]
    fn arns_and_lookups_are_as_aws_makes_them() {
        let s = secret();
        assert_eq!(
            s.arn,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123"
        );
        for id in [
            "prod/db",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db",
        ] {
            assert!(Lookup::parse(id).unwrap().matches(&s), "{id}");
        }
        for id in [
            "prod/d",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC12",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod",
        ] {
            assert!(!Lookup::parse(id).unwrap().matches(&s), "{id}");
        }
        assert!(Secret::new("r", "1", "bad name", "x", T).is_err());
        assert!(Secret::new("r", "1", "", "x", T).is_err());
    }

    #[test]
    fn a_new_current_version_makes_the_old_one_previous() {
        let mut s = secret();
        let current = vec![AWSCURRENT.to_owned()];
        s.add_version(&token(1), &current, T).unwrap();
        s.add_version(&token(2), &current, T + 1).unwrap();
        s.add_version(&token(3), &current, T + 2).unwrap();
        assert_eq!(
            stages(&s),
            [
                (token(1), vec![]),
                (token(2), vec![AWSPREVIOUS.to_owned()]),
                (token(3), vec![AWSCURRENT.to_owned()]),
            ]
        );
        assert_eq!(
            s.add_version(&token(3), &current, T + 3)
                .unwrap_err()
                .code(),
            "ResourceExistsException"
        );
    }

    #[test]
    fn staging_labels_move_only_when_their_holder_is_named() {
        let mut s = secret();
        s.add_version(&token(1), &[AWSCURRENT.into()], T).unwrap();
        s.add_version(&token(2), &[AWSPENDING.into()], T).unwrap();
        // AWSCURRENT is on 1: moving it to 2 needs RemoveFromVersionId 1.
        let e = s
            .update_stage(AWSCURRENT, None, Some(&token(2)), T)
            .unwrap_err();
        assert_eq!(e.code(), "InvalidParameterException");
        assert!(
            s.update_stage(AWSCURRENT, Some(&token(1)), None, T)
                .is_err()
        );
        s.update_stage(AWSCURRENT, Some(&token(1)), Some(&token(2)), T)
            .unwrap();
        assert_eq!(s.staged(AWSCURRENT).unwrap().id, token(2));
        assert_eq!(s.staged(AWSPREVIOUS).unwrap().id, token(1));
        // The pending label stays where it was until removed.
        s.update_stage(AWSPENDING, Some(&token(2)), None, T)
            .unwrap();
        assert!(s.staged(AWSPENDING).is_none());
        // A custom label that is nowhere can be attached directly.
        s.update_stage("blue", None, Some(&token(1)), T).unwrap();
        assert_eq!(
            s.update_stage("blue", None, Some(&"9".repeat(32)), T)
                .unwrap_err()
                .code(),
            "ResourceNotFoundException"
        );
    }

    #[test]
    fn reads_select_by_stage_or_version() {
        let mut s = secret();
        s.add_version(&token(1), &[AWSCURRENT.into()], T).unwrap();
        s.add_version(&token(2), &[AWSPENDING.into()], T).unwrap();
        assert_eq!(s.select(None, None).unwrap().id, token(1));
        assert_eq!(s.select(None, Some(AWSPENDING)).unwrap().id, token(2));
        assert_eq!(s.select(Some(&token(2)), None).unwrap().id, token(2));
        assert!(s.select(Some(&token(2)), Some(AWSCURRENT)).is_err());
        assert!(s.select(None, Some(AWSPREVIOUS)).is_err());
    }

    #[test]
    fn old_unlabelled_versions_are_pruned() {
        let mut s = secret();
        let mut dropped = Vec::new();
        for i in 0..(MAX_VERSIONS + 5) {
            let id = format!("{i:0>32}");
            dropped.extend(s.add_version(&id, &[AWSCURRENT.into()], T).unwrap());
        }
        assert_eq!(s.versions.len(), MAX_VERSIONS);
        assert_eq!(dropped.len(), 5);
        assert_eq!(dropped[0], format!("{:0>32}", 0));
        assert!(s.staged(AWSCURRENT).is_some() && s.staged(AWSPREVIOUS).is_some());
    }

    #[test]
    fn deletion_windows_are_checked() {
        let mut s = secret();
        assert!(s.schedule_deletion(Some(6), false, T).is_err());
        assert!(s.schedule_deletion(Some(31), false, T).is_err());
        assert!(s.schedule_deletion(Some(7), true, T).is_err());
        assert_eq!(
            s.schedule_deletion(Some(7), false, T).unwrap(),
            T + 7 * 86_400
        );
        assert_eq!(
            s.check_not_deleted().unwrap_err().code(),
            "InvalidRequestException"
        );
        assert!(!s.is_purged(T + 7 * 86_400 - 1) && s.is_purged(T + 7 * 86_400));
        s.restore(T);
        assert!(s.check_not_deleted().is_ok());
        assert_eq!(s.schedule_deletion(None, true, T).unwrap(), T);
    }

    #[test]
    fn filters_match_prefixes_and_negations() {
        let mut s = secret();
        s.description = "Orders database".into();
        s.tag(&[("team".into(), "payments".into())]).unwrap();
        let f =
            |k: Filter, v: &[&str]| s.passes(&[(k, v.iter().map(|v| (*v).to_owned()).collect())]);
        assert!(f(Filter::Name, &["prod/"]));
        assert!(f(Filter::Name, &["PROD"]));
        assert!(!f(Filter::Name, &["db"]));
        assert!(f(Filter::Name, &["!dev"]));
        assert!(!f(Filter::Name, &["!prod"]));
        assert!(f(Filter::Description, &["orders"]));
        assert!(f(Filter::TagKey, &["te"]) && f(Filter::TagValue, &["pay"]));
        assert!(f(Filter::All, &["pay"]));
        assert!(!f(Filter::TagKey, &["payments"]));
    }

    #[test]
    fn values_hide_themselves_and_round_trip() {
        let v = SecretValue::String(Zeroizing::new("hunter2".into()));
        assert!(!format!("{v:?}").contains("hunter2"));
        assert_eq!(SecretValue::decode(&v.encode()), Some(v.clone()));
        let b = SecretValue::Binary(Zeroizing::new(vec![0, 1, 2]));
        assert_eq!(SecretValue::decode(&b.encode()), Some(b.clone()));
        assert!(!v.same_as(&b));
        assert!(
            SecretValue::from_request(Some(Zeroizing::new("x".repeat(MAX_VALUE_BYTES + 1))), None)
                .is_err()
        );
        assert!(
            SecretValue::from_request(
                Some(Zeroizing::new("x".into())),
                Some(Zeroizing::new(vec![1]))
            )
            .is_err()
        );
    }

    #[test]
    fn a_complete_arn_names_that_arn_only() {
        let s = secret();
        // A secret *named* like the first one's ARN tail.
        let squatter =
            Secret::new("us-east-1", "123456789012", "prod/db-AbC123", "XyZ789", T).unwrap();
        let full = Lookup::parse(&s.arn).unwrap();
        assert!(full.is_full_arn());
        assert_eq!(full.name_hint(), None);
        assert!(full.matches(&s) && !full.matches(&squatter));
        let partial =
            Lookup::parse("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db").unwrap();
        assert!(!partial.is_full_arn());
        assert_eq!(partial.name_hint(), Some("prod/db"));
        assert!(partial.matches(&s) && !partial.matches(&squatter));
        // The squatter's partial ARN looks complete: AWS reads it so too.
        let looks_full =
            Lookup::parse("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123")
                .unwrap();
        assert!(!looks_full.matches(&squatter));
        for partial in [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC12",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC12!",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:-AbC123",
        ] {
            assert!(!Lookup::parse(partial).unwrap().is_full_arn(), "{partial}");
        }
        assert!(!Lookup::parse("prod/db-AbC123").unwrap().is_full_arn());
    }

    #[test]
    fn tag_keys_are_one_key_whatever_their_case() {
        let mut s = secret();
        s.tag(&[("team".into(), "blue".into())]).unwrap();
        let e = s.tag(&[("Team".into(), "red".into())]).unwrap_err();
        assert_eq!(e.code(), "InvalidParameterException");
        assert!(e.to_string().contains("team"), "{e}");
        assert_eq!(s.tags, [("team".to_owned(), "blue".to_owned())]);
        // One request may not give a key twice, in any case.
        for twice in [["x", "x"], ["x", "X"]] {
            let tags: Vec<(String, String)> =
                twice.iter().map(|k| ((*k).into(), "v".into())).collect();
            assert_eq!(
                check_tags(&tags).unwrap_err().code(),
                "InvalidParameterException"
            );
            assert!(s.tag(&tags).is_err());
        }
        let many: Vec<(String, String)> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            check_tags(&many).unwrap_err().code(),
            "LimitExceededException"
        );
        assert!(check_tags(&many[..50]).is_ok());
        // A key stored twice (by an older version) is kept once, with
        // the new value.
        s.tags = vec![
            ("team".into(), "blue".into()),
            ("env".into(), "prod".into()),
            ("team".into(), "red".into()),
        ];
        s.tag(&[("team".into(), "green".into())]).unwrap();
        assert_eq!(
            s.tags,
            [
                ("team".to_owned(), "green".to_owned()),
                ("env".to_owned(), "prod".to_owned())
            ]
        );
    }

    #[test]
    fn tags_follow_aws_limits() {
        let mut s = secret();
        assert!(s.tag(&[("aws:x".into(), "v".into())]).is_err());
        assert!(s.tag(&[("".into(), "v".into())]).is_err());
        let many: Vec<(String, String)> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(s.tag(&many).unwrap_err().code(), "LimitExceededException");
    }
}

/// Rotation's four steps, as the Lambda contract names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    #[serde(rename = "createSecret")]
    CreateSecret,
    #[serde(rename = "setSecret")]
    SetSecret,
    #[serde(rename = "testSecret")]
    TestSecret,
    #[serde(rename = "finishSecret")]
    FinishSecret,
}

impl Step {
    pub const ALL: [Step; 4] = [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateSecret => "createSecret",
            Self::SetSecret => "setSecret",
            Self::TestSecret => "testSecret",
            Self::FinishSecret => "finishSecret",
        }
    }
}

impl Secret {
    /// The version a rotation in progress is making: it carries
    /// `AWSPENDING` and not `AWSCURRENT`.
    pub fn pending(&self) -> Option<&Version> {
        self.versions.iter().find(|v| {
            v.stages.iter().any(|s| s == AWSPENDING) && !v.stages.iter().any(|s| s == AWSCURRENT)
        })
    }

    /// Whether a rotation may start with `token`: not while another
    /// rotation's pending version is unresolved (AWS's rule).
    pub fn check_rotation_start(&self, token: &str) -> Result<()> {
        self.check_not_deleted()?;
        match self.pending() {
            Some(v) if v.id != token => Err(SecretsError::InvalidRequest(
                "A previous rotation isn't complete. That rotation will be reattempted.".into(),
            )),
            _ => Ok(()),
        }
    }

    /// `finishSecret`: `AWSCURRENT` moves to `token` (the old current
    /// becomes `AWSPREVIOUS`), `AWSPENDING` is removed, and the next
    /// rotation is scheduled. Repeating it changes nothing.
    pub fn finish_rotation(&mut self, token: &str, now: i64) -> Result<()> {
        if self.version(token).is_none() {
            return Err(SecretsError::ResourceNotFound(format!(
                "Secrets Manager can't find the specified version {token}."
            )));
        }
        self.attach(AWSCURRENT, token);
        for v in &mut self.versions {
            v.stages.retain(|s| s != AWSPENDING);
        }
        self.last_changed = now;
        if let Some(r) = &mut self.rotation {
            r.last_rotated = Some(now);
            r.next_rotation = r.rules.next_rotation(now, now).ok().filter(|_| r.enabled);
            if r.run.as_ref().is_some_and(|run| run.token == token) {
                r.run = None;
            }
        }
        Ok(())
    }

    /// Whether a scheduled rotation is due.
    pub fn rotation_due(&self, now: i64) -> bool {
        !self.is_deleted()
            && self
                .rotation
                .as_ref()
                .is_some_and(|r| r.enabled && r.next_rotation.is_some_and(|t| t <= now))
    }
}

#[cfg(test)]
mod rotation_tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    #[test]
    fn a_rotation_moves_current_to_the_pending_version_once() {
        let mut s = Secret::new("r", "1", "db", "AbCdEf", 0).unwrap();
        let (a, b, c) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));
        s.add_version(&a, &[AWSCURRENT.into()], 0).unwrap();
        s.rotation = Some(Rotation {
            enabled: true,
            lambda_arn: String::new(),
            rules: RotationRules {
                automatically_after_days: Some(30),
                ..RotationRules::default()
            },
            last_rotated: None,
            next_rotation: Some(10),
            run: None,
        });
        assert!(s.rotation_due(10) && !s.rotation_due(9));
        s.check_rotation_start(&b).unwrap();
        s.add_version(&b, &[AWSPENDING.into()], 1).unwrap();
        assert_eq!(s.pending().unwrap().id, b);
        // Another rotation may not start while b is pending; b's may go on.
        assert_eq!(
            s.check_rotation_start(&c).unwrap_err().code(),
            "InvalidRequestException"
        );
        s.check_rotation_start(&b).unwrap();
        s.finish_rotation(&b, 100).unwrap();
        s.finish_rotation(&b, 100).unwrap();
        assert_eq!(s.staged(AWSCURRENT).unwrap().id, b);
        assert_eq!(s.staged(AWSPREVIOUS).unwrap().id, a);
        assert!(s.staged(AWSPENDING).is_none() && s.pending().is_none());
        let r = s.rotation.as_ref().unwrap();
        assert_eq!(
            (r.last_rotated, r.next_rotation),
            (Some(100), Some(100 + 30 * 86_400))
        );
        assert!(!s.rotation_due(100));
    }
}
