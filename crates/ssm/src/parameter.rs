//! A parameter: its versions (each with its own type, key, tier, allowed
//! pattern, data type and labels) and its tags, and the rules of the
//! calls that change them. Values are not here: the store keeps each
//! version's value apart, and the server checks it with [`Put::check_value`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::SsmError;
use crate::name::{ParameterName, Pick};

/// Versions a parameter keeps.
pub const MAX_VERSIONS: usize = 100;
/// Labels one version may carry.
pub const MAX_LABELS: usize = 10;
/// Labels one `LabelParameterVersion` call may give.
pub const MAX_LABELS_PER_CALL: usize = 10;
/// Tags per parameter.
pub const MAX_TAGS: usize = 50;
/// The longest description.
pub const MAX_DESCRIPTION: usize = 1024;
/// The longest allowed pattern.
pub const MAX_PATTERN: usize = 1024;
/// A standard parameter's largest value, in bytes.
pub const STANDARD_VALUE: usize = 4096;
/// An advanced parameter's largest value, in bytes.
pub const ADVANCED_VALUE: usize = 8192;
/// The key a SecureString uses when none is named.
pub const DEFAULT_KEY: &str = "alias/aws/ssm";

/// `String`, `StringList` or `SecureString`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParameterType {
    String,
    StringList,
    SecureString,
}

impl ParameterType {
    pub fn parse(text: &str) -> Result<Self, SsmError> {
        match text {
            "String" => Ok(Self::String),
            "StringList" => Ok(Self::StringList),
            "SecureString" => Ok(Self::SecureString),
            other => Err(SsmError::UnsupportedParameterType(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::StringList => "StringList",
            Self::SecureString => "SecureString",
        }
    }
}

/// The tier a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    Standard,
    Advanced,
    #[serde(rename = "Intelligent-Tiering")]
    IntelligentTiering,
}

impl Tier {
    pub fn parse(text: &str) -> Result<Self, SsmError> {
        match text {
            "Standard" => Ok(Self::Standard),
            "Advanced" => Ok(Self::Advanced),
            "Intelligent-Tiering" => Ok(Self::IntelligentTiering),
            _ => Err(SsmError::validation(
                "1 validation error detected: Value at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Advanced, Intelligent-Tiering, Standard]",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Advanced => "Advanced",
            Self::IntelligentTiering => "Intelligent-Tiering",
        }
    }
}

/// `text`, `aws:ec2:image` or `aws:ssm:integration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataType {
    #[serde(rename = "text")]
    Text,
    #[serde(rename = "aws:ec2:image")]
    Ec2Image,
    #[serde(rename = "aws:ssm:integration")]
    SsmIntegration,
}

impl DataType {
    pub fn parse(text: &str) -> Result<Self, SsmError> {
        match text {
            "text" => Ok(Self::Text),
            "aws:ec2:image" => Ok(Self::Ec2Image),
            "aws:ssm:integration" => Ok(Self::SsmIntegration),
            _ => Err(SsmError::validation(
                "The following data type is not supported: the data type must be text, aws:ec2:image or aws:ssm:integration.",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Ec2Image => "aws:ec2:image",
            Self::SsmIntegration => "aws:ssm:integration",
        }
    }
}

/// An `AllowedPattern`: a regular expression the whole value must match.
#[derive(Clone)]
pub struct AllowedPattern {
    text: String,
    regex: regex::Regex,
}

impl AllowedPattern {
    pub fn parse(text: &str) -> Result<Self, SsmError> {
        if text.chars().count() > MAX_PATTERN {
            return Err(SsmError::validation(format!(
                "1 validation error detected: Value at 'allowedPattern' failed to satisfy constraint: Member must have length less than or equal to {MAX_PATTERN}"
            )));
        }
        let build = |pattern: &str| {
            regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .dfa_size_limit(1 << 20)
                .build()
                .map_err(|_| {
                    SsmError::InvalidAllowedPattern(
                        "The request does not meet the regular expression requirement.".to_owned(),
                    )
                })
        };
        // The pattern must be a whole expression on its own: wrapped
        // unchecked, `[0-9]+)|(.*` would close the wrapper's group and
        // match anything.
        build(text)?;
        let regex = build(&format!("^(?:{text})$"))?;
        Ok(Self {
            text: text.to_owned(),
            regex,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Refuses a value the pattern does not match (the error names the
    /// pattern, never the value).
    pub fn check(&self, value: &str) -> Result<(), SsmError> {
        if self.regex.is_match(value) {
            Ok(())
        } else {
            Err(SsmError::ParameterPatternMismatch(self.text.clone()))
        }
    }
}

impl fmt::Debug for AllowedPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllowedPattern({:?})", self.text)
    }
}

/// A version label: 1-100 of `a-zA-Z0-9._-`, not beginning with a digit,
/// `aws` or `ssm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    /// The label, or `None` for one AWS lists in `InvalidLabels`.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.chars().count() <= 100
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && !text.starts_with(|c: char| c.is_ascii_digit())
            && !text
                .get(..3)
                .is_some_and(|p| p.eq_ignore_ascii_case("aws") || p.eq_ignore_ascii_case("ssm"));
        ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One version of a parameter (its value is stored apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub version: u64,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    /// The key a SecureString was encrypted with, as the request named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
    /// `Standard` or `Advanced` (never Intelligent-Tiering: it picks one).
    pub tier: Tier,
    pub data_type: DataType,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Epoch seconds.
    pub modified: i64,
    /// The ARN of the caller who wrote the version.
    pub modified_user: String,
}

/// What a `PutParameter` asks for, parsed.
#[derive(Debug, Clone)]
pub struct Put {
    pub kind: Option<ParameterType>,
    pub key_id: Option<String>,
    pub description: Option<String>,
    pub allowed_pattern: Option<AllowedPattern>,
    pub tier: Option<Tier>,
    pub data_type: Option<DataType>,
    pub overwrite: bool,
}

impl Put {
    /// Checks the parts of the request that need no stored parameter.
    pub fn check(&self) -> Result<(), SsmError> {
        if let Some(d) = &self.description
            && d.chars().count() > MAX_DESCRIPTION
        {
            return Err(SsmError::validation(format!(
                "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to {MAX_DESCRIPTION}"
            )));
        }
        if self.key_id.is_some() && self.kind.is_some_and(|k| k != ParameterType::SecureString) {
            return Err(SsmError::validation(
                "KeyId is required for SecureString type parameter only.",
            ));
        }
        if let Some(k) = &self.key_id
            && (k.is_empty() || k.chars().count() > 256)
        {
            return Err(SsmError::InvalidKeyId("The key ID isn't valid.".to_owned()));
        }
        Ok(())
    }

    /// The version this request writes over `previous` (the newest one,
    /// or none for a new parameter): what it names, or what the previous
    /// version had. Checks the value against the tier, the allowed
    /// pattern and the data type.
    pub fn version(
        &self,
        previous: Option<&Version>,
        number: u64,
        value: &str,
        user: &str,
        now: i64,
    ) -> Result<Version, SsmError> {
        let kind = match (self.kind, previous) {
            (Some(k), _) => k,
            (None, Some(p)) => p.kind,
            (None, None) => {
                return Err(SsmError::validation(
                    "A parameter type is required when you create a parameter.",
                ));
            }
        };
        if self.key_id.is_some() && kind != ParameterType::SecureString {
            return Err(SsmError::validation(
                "KeyId is required for SecureString type parameter only.",
            ));
        }
        let key_id = (kind == ParameterType::SecureString).then(|| {
            self.key_id
                .clone()
                .or_else(|| previous.and_then(|p| p.key_id.clone()))
                .unwrap_or_else(|| DEFAULT_KEY.to_owned())
        });
        if value.is_empty() {
            return Err(SsmError::validation(
                "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        let was_advanced = previous.is_some_and(|p| p.tier == Tier::Advanced);
        let tier = match self.tier {
            Some(Tier::Standard) if was_advanced => {
                return Err(SsmError::validation(
                    "This parameter uses the advanced-parameter tier. You can't downgrade a parameter from the advanced-parameter tier to the standard-parameter tier. If necessary, you can delete the advanced parameter and recreate it as a standard parameter.",
                ));
            }
            Some(Tier::Standard) => Tier::Standard,
            Some(Tier::Advanced) => Tier::Advanced,
            Some(Tier::IntelligentTiering) if was_advanced || value.len() > STANDARD_VALUE => {
                Tier::Advanced
            }
            Some(Tier::IntelligentTiering) => Tier::Standard,
            None if was_advanced => Tier::Advanced,
            None => Tier::Standard,
        };
        match tier {
            Tier::Standard if value.len() > STANDARD_VALUE => {
                return Err(SsmError::validation(format!(
                    "Standard tier parameters support a maximum parameter value of {STANDARD_VALUE} characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier."
                )));
            }
            _ if value.len() > ADVANCED_VALUE => {
                return Err(SsmError::validation(format!(
                    "Advanced tier parameters support a maximum parameter value of {ADVANCED_VALUE} characters."
                )));
            }
            _ => {}
        }
        let allowed_pattern = match &self.allowed_pattern {
            Some(p) => Some(p.clone()),
            None => previous
                .and_then(|p| p.allowed_pattern.as_deref())
                .map(AllowedPattern::parse)
                .transpose()?,
        };
        if let Some(p) = &allowed_pattern {
            p.check(value)?;
        }
        let data_type = self
            .data_type
            .or(previous.map(|p| p.data_type))
            .unwrap_or(DataType::Text);
        if data_type == DataType::Ec2Image {
            if kind != ParameterType::String {
                return Err(SsmError::validation(
                    "The aws:ec2:image data type is only supported for String parameters.",
                ));
            }
            let id_ok = value.strip_prefix("ami-").is_some_and(|h| {
                (8..=17).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !id_ok {
                return Err(SsmError::validation(
                    "Parameter value is not a valid Amazon Machine Image (AMI) ID.",
                ));
            }
        }
        Ok(Version {
            version: number,
            kind,
            key_id,
            description: self
                .description
                .clone()
                .or_else(|| previous.and_then(|p| p.description.clone())),
            allowed_pattern: allowed_pattern.map(|p| p.as_str().to_owned()),
            tier,
            data_type,
            labels: Vec::new(),
            modified: now,
            modified_user: user.to_owned(),
        })
    }
}

/// A parameter's metadata, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: ParameterName,
    /// Oldest first; never empty.
    pub versions: Vec<Version>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

impl Parameter {
    /// A new parameter holding `first`.
    pub fn new(name: ParameterName, first: Version, tags: Vec<(String, String)>) -> Self {
        Self {
            name,
            versions: vec![first],
            tags,
        }
    }

    /// The newest version.
    pub fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// The number the next version gets.
    pub fn next_version(&self) -> u64 {
        self.latest().map_or(1, |v| v.version + 1)
    }

    /// Adds `version` (from [`Put::version`] with [`Parameter::next_version`]).
    /// At [`MAX_VERSIONS`] the oldest version goes, unless it has a label.
    /// Returns the versions dropped.
    pub fn push(&mut self, version: Version) -> Result<Vec<u64>, SsmError> {
        let mut dropped = Vec::new();
        if self.versions.len() >= MAX_VERSIONS
            && let Some(oldest) = self.versions.first()
        {
            if !oldest.labels.is_empty() {
                return Err(SsmError::ParameterMaxVersionLimitExceeded(
                    self.name.to_string(),
                    oldest.version,
                ));
            }
            dropped.push(oldest.version);
            self.versions.remove(0);
        }
        self.versions.push(version);
        Ok(dropped)
    }

    /// The version a selector picks (the newest without one).
    pub fn select(&self, pick: Option<&Pick>) -> Result<&Version, SsmError> {
        let found = match pick {
            None => self.latest(),
            Some(Pick::Version(n)) => self.versions.iter().find(|v| v.version == *n),
            Some(Pick::Label(l)) => self
                .versions
                .iter()
                .find(|v| v.labels.iter().any(|x| x == l)),
        };
        found.ok_or_else(|| {
            SsmError::ParameterVersionNotFound(
                pick.map(ToString::to_string).unwrap_or_default(),
                self.name.to_string(),
            )
        })
    }

    /// `LabelParameterVersion`: attaches the valid labels to `version` (the
    /// newest when `None`), moving any that another version carries.
    /// Returns the version labelled and the labels refused as invalid.
    pub fn label(
        &mut self,
        version: Option<u64>,
        labels: &[String],
    ) -> Result<(u64, Vec<String>), SsmError> {
        check_label_count(labels)?;
        let target = match version {
            Some(n) => n,
            None => self.latest().map_or(0, |v| v.version),
        };
        let index = self
            .versions
            .iter()
            .position(|v| v.version == target)
            .ok_or_else(|| {
                SsmError::ParameterVersionNotFound(target.to_string(), self.name.to_string())
            })?;
        let (valid, invalid): (Vec<&String>, Vec<&String>) =
            labels.iter().partition(|l| Label::parse(l).is_some());
        let mut after = self.versions[index].labels.clone();
        for l in &valid {
            if !after.contains(l) {
                after.push((*l).clone());
            }
        }
        if after.len() > MAX_LABELS {
            return Err(SsmError::ParameterVersionLabelLimitExceeded);
        }
        for (i, v) in self.versions.iter_mut().enumerate() {
            if i == index {
                v.labels = after.clone();
            } else {
                v.labels.retain(|l| !valid.contains(&l));
            }
        }
        Ok((target, invalid.into_iter().cloned().collect()))
    }

    /// `UnlabelParameterVersion`: removes the labels `version` carries.
    /// Returns those removed and those it did not carry.
    pub fn unlabel(
        &mut self,
        version: u64,
        labels: &[String],
    ) -> Result<(Vec<String>, Vec<String>), SsmError> {
        check_label_count(labels)?;
        let name = self.name.to_string();
        let v = self
            .versions
            .iter_mut()
            .find(|v| v.version == version)
            .ok_or_else(|| SsmError::ParameterVersionNotFound(version.to_string(), name))?;
        let (removed, invalid): (Vec<String>, Vec<String>) =
            labels.iter().cloned().partition(|l| v.labels.contains(l));
        v.labels.retain(|l| !removed.contains(l));
        Ok((removed, invalid))
    }

    /// Adds or replaces tags.
    pub fn tag(&mut self, tags: &[(String, String)]) -> Result<(), SsmError> {
        check_tags(tags)?;
        // One key to a policy (`aws:ResourceTag/team` has no case): a
        // variant of a key the parameter has would hide it.
        let merged = latchkey_tags::merge(&self.tags, tags).map_err(|c| match c {
            latchkey_tags::Conflict::Duplicate(k) => SsmError::validation(format!(
                "Duplicate tag key: {k} (keys are compared without case)"
            )),
            latchkey_tags::Conflict::CaseVariant { existing, given } => SsmError::validation(format!(
                "The parameter already has the tag key {existing}, which differs from {given} only in case; remove {existing} first or use it as it is."
            )),
        })?;
        if merged.len() > MAX_TAGS {
            return Err(SsmError::TooManyTags);
        }
        self.tags = merged;
        Ok(())
    }

    /// Removes the tags with these keys.
    pub fn untag(&mut self, keys: &[String]) {
        self.tags.retain(|(k, _)| !keys.contains(k));
    }
}

fn check_label_count(labels: &[String]) -> Result<(), SsmError> {
    if labels.is_empty() || labels.len() > MAX_LABELS_PER_CALL {
        return Err(SsmError::validation(format!(
            "1 validation error detected: Value at 'labels' failed to satisfy constraint: Member must have length less than or equal to {MAX_LABELS_PER_CALL} and greater than or equal to 1"
        )));
    }
    Ok(())
}

/// Tag keys 1-128 characters not beginning with `aws:`, values at most
/// 256, each key once whatever its case, at most [`MAX_TAGS`].
pub fn check_tags(tags: &[(String, String)]) -> Result<(), SsmError> {
    if tags.len() > MAX_TAGS {
        return Err(SsmError::TooManyTags);
    }
    if let Some(k) = latchkey_tags::duplicate(tags) {
        return Err(SsmError::validation(format!(
            "Duplicate tag key: {k} (keys are compared without case)"
        )));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(SsmError::validation(
                "A tag key must be 1 to 128 characters and a tag value at most 256.",
            ));
        }
        if k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(SsmError::validation(
                "Tag keys beginning with aws: are reserved for AWS use.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(kind: Option<ParameterType>) -> Put {
        Put {
            kind,
            key_id: None,
            description: None,
            allowed_pattern: None,
            tier: None,
            data_type: None,
            overwrite: true,
        }
    }

    fn parameter() -> Parameter {
        let name = ParameterName::parse("/app/x").unwrap_or_else(|e| panic!("{e}"));
        let v = put(Some(ParameterType::String))
            .version(None, 1, "one", "u", 10)
            .unwrap_or_else(|e| panic!("{e}"));
        Parameter::new(name, v, Vec::new())
    }

    fn add(p: &mut Parameter, value: &str) -> Result<Vec<u64>, SsmError> {
        let v = put(None).version(p.latest(), p.next_version(), value, "u", 11)?;
        p.push(v)
    }

    #[test]
    fn versions_inherit_and_the_hundredth_drops_the_oldest_unless_labelled() {
        let mut p = parameter();
        for i in 2..=100 {
            assert_eq!(add(&mut p, &format!("v{i}")), Ok(vec![]));
        }
        assert_eq!(p.versions.len(), 100);
        assert_eq!(p.latest().map(|v| v.kind), Some(ParameterType::String));
        assert_eq!(add(&mut p, "101"), Ok(vec![1]));
        assert_eq!(p.versions[0].version, 2);
        assert_eq!(p.label(Some(2), &["keep".into()]).map(|r| r.0), Ok(2));
        assert_eq!(
            add(&mut p, "102").map_err(|e| e.code()),
            Err("ParameterMaxVersionLimitExceeded")
        );
        assert_eq!(p.next_version(), 102);
    }

    #[test]
    fn types_tiers_patterns_and_keys() {
        assert_eq!(
            put(None)
                .version(None, 1, "x", "u", 0)
                .map_err(|e| e.code()),
            Err("ValidationException")
        );
        assert_eq!(
            ParameterType::parse("Blob").map_err(|e| e.code()),
            Err("UnsupportedParameterType")
        );
        let secure = put(Some(ParameterType::SecureString))
            .version(None, 1, "x", "u", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(secure.key_id.as_deref(), Some(DEFAULT_KEY));
        let mut keyed = put(Some(ParameterType::String));
        keyed.key_id = Some("k".into());
        assert!(keyed.check().is_err());
        let big = "x".repeat(5000);
        let standard = put(Some(ParameterType::String)).version(None, 1, &big, "u", 0);
        assert_eq!(standard.map_err(|e| e.code()), Err("ValidationException"));
        let mut it = put(Some(ParameterType::String));
        it.tier = Some(Tier::IntelligentTiering);
        let v = it
            .version(None, 1, &big, "u", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.tier, Tier::Advanced);
        let mut down = put(None);
        down.tier = Some(Tier::Standard);
        assert!(down.version(Some(&v), 2, "small", "u", 0).is_err());
        assert_eq!(
            put(None)
                .version(Some(&v), 2, "small", "u", 0)
                .map(|v| v.tier),
            Ok(Tier::Advanced)
        );
        assert!(it.version(None, 1, &"x".repeat(9000), "u", 0).is_err());

        assert_eq!(
            AllowedPattern::parse("(").map(|_| ()).map_err(|e| e.code()),
            Err("InvalidAllowedPatternException")
        );
        assert_eq!(
            AllowedPattern::parse("[0-9]+)|(.*")
                .map(|_| ())
                .map_err(|e| e.code()),
            Err("InvalidAllowedPatternException"),
            "a pattern that would escape its anchors"
        );
        let mut patterned = put(Some(ParameterType::String));
        patterned.allowed_pattern = AllowedPattern::parse("^\\d+$").ok();
        let v = patterned
            .version(None, 1, "123", "u", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let e = patterned.version(None, 1, "12a-secret", "u", 0).err();
        assert_eq!(
            e.as_ref().map(SsmError::code),
            Some("ParameterPatternMismatchException")
        );
        assert!(
            !e.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("secret")
        );
        // The pattern is inherited, and matches the whole value.
        assert!(put(None).version(Some(&v), 2, "12x", "u", 0).is_err());
        let mut partial = put(Some(ParameterType::String));
        partial.allowed_pattern = AllowedPattern::parse("[a-z]").ok();
        assert!(partial.version(None, 1, "abc", "u", 0).is_err());

        let mut ami = put(Some(ParameterType::String));
        ami.data_type = Some(DataType::Ec2Image);
        assert!(ami.version(None, 1, "ami-12345678", "u", 0).is_ok());
        assert!(ami.version(None, 1, "nope", "u", 0).is_err());
        assert!(DataType::parse("json").is_err());
    }

    #[test]
    fn labels_move_between_versions_and_are_checked() {
        let mut p = parameter();
        assert_eq!(add(&mut p, "two"), Ok(vec![]));
        let r = p.label(
            Some(1),
            &["prod".into(), "1bad".into(), "awsx".into(), "SSM".into()],
        );
        assert_eq!(r, Ok((1, vec!["1bad".into(), "awsx".into(), "SSM".into()])));
        assert_eq!(
            p.select(Some(&Pick::Label("prod".into())))
                .map(|v| v.version),
            Ok(1)
        );
        // Moved, not copied.
        assert_eq!(p.label(None, &["prod".into()]).map(|r| r.0), Ok(2));
        assert!(p.versions[0].labels.is_empty());
        assert_eq!(p.versions[1].labels, vec!["prod".to_owned()]);
        let ten: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
        assert_eq!(
            p.label(Some(2), &ten).map_err(|e| e.code()),
            Err("ParameterVersionLabelLimitExceeded")
        );
        assert_eq!(p.versions[1].labels, vec!["prod".to_owned()], "unchanged");
        assert_eq!(
            p.label(Some(9), &["x".into()]).map_err(|e| e.code()),
            Err("ParameterVersionNotFound")
        );
        assert!(p.label(None, &[]).is_err());
        assert_eq!(
            p.unlabel(2, &["prod".into(), "none".into()]),
            Ok((vec!["prod".into()], vec!["none".into()]))
        );
        assert_eq!(
            p.select(Some(&Pick::Version(7))).map_err(|e| e.code()),
            Err("ParameterVersionNotFound")
        );
    }

    #[test]
    fn tags_are_checked_and_merged() {
        let mut p = parameter();
        assert!(p.tag(&[("env".into(), "prod".into())]).is_ok());
        assert!(
            p.tag(&[("env".into(), "dev".into()), ("team".into(), "a".into())])
                .is_ok()
        );
        assert_eq!(p.tags.len(), 2);
        assert_eq!(p.tags[0].1, "dev");
        assert!(p.tag(&[("aws:x".into(), "v".into())]).is_err());
        // A case variant of a key it has, or twice in one request, is
        // refused: policies name tag keys without case.
        assert!(p.tag(&[("ENV".into(), "x".into())]).is_err());
        assert!(
            p.tag(&[("owner".into(), "a".into()), ("Owner".into(), "b".into())])
                .is_err()
        );
        assert_eq!(p.tags[0], ("env".into(), "dev".into()), "unchanged");
        assert!(
            p.tag(&[("k".into(), "a".into()), ("k".into(), "b".into())])
                .is_err()
        );
        let many: Vec<(String, String)> =
            (0..49).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(p.tag(&many).map_err(|e| e.code()), Err("TooManyTagsError"));
        p.untag(&["env".into()]);
        assert_eq!(p.tags.len(), 1);
    }

    #[test]
    fn documents_round_trip() {
        let mut p = parameter();
        let _ = p.label(None, &["l".into()]);
        let text = serde_json::to_string(&p).unwrap_or_default();
        let back: Parameter = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, p);
    }
}
