//! `ParameterFilters` (and `DescribeParameters`' older `Filters`), as
//! `DescribeParameters` and `GetParametersByPath` read them.
//!
//! A filter is a key, an option and values. Filters combine with AND;
//! a filter's values combine with OR. `GetParametersByPath` takes only
//! `Type`, `KeyId`, `Label` and `tag:KEY`; its `Label` filter picks the
//! version carrying the label rather than only filtering.

use crate::SsmError;
use crate::name::{ParameterName, ParameterPath};
use crate::parameter::{DataType, Parameter, ParameterType, Tier, Version};

/// Filters one request may give.
pub const MAX_FILTERS: usize = 50;
/// Values one filter may give.
pub const MAX_VALUES: usize = 50;
/// The longest filter value.
pub const MAX_VALUE: usize = 1024;

/// What a filter looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterKey {
    Name,
    Type,
    KeyId,
    Path,
    Label,
    Tier,
    DataType,
    /// `tag:KEY`: the parameter carries the tag (with one of the values,
    /// when the filter gives any).
    Tag(String),
}

impl FilterKey {
    pub fn parse(text: &str) -> Result<Self, SsmError> {
        Ok(match text {
            "Name" => Self::Name,
            "Type" => Self::Type,
            "KeyId" => Self::KeyId,
            "Path" => Self::Path,
            "Label" => Self::Label,
            "Tier" => Self::Tier,
            "DataType" => Self::DataType,
            _ => match text.strip_prefix("tag:") {
                Some(k) if !k.is_empty() && k.chars().count() <= 128 => Self::Tag(k.to_owned()),
                _ => return Err(SsmError::InvalidFilterKey(text.to_owned())),
            },
        })
    }

    pub fn as_str(&self) -> String {
        match self {
            Self::Name => "Name".into(),
            Self::Type => "Type".into(),
            Self::KeyId => "KeyId".into(),
            Self::Path => "Path".into(),
            Self::Label => "Label".into(),
            Self::Tier => "Tier".into(),
            Self::DataType => "DataType".into(),
            Self::Tag(k) => format!("tag:{k}"),
        }
    }
}

/// How a filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOption {
    Equals,
    BeginsWith,
    Contains,
    Recursive,
    OneLevel,
}

impl FilterOption {
    pub fn parse(text: &str) -> Result<Self, SsmError> {
        Ok(match text {
            "Equals" => Self::Equals,
            "BeginsWith" => Self::BeginsWith,
            "Contains" => Self::Contains,
            "Recursive" => Self::Recursive,
            "OneLevel" => Self::OneLevel,
            _ => {
                return Err(SsmError::InvalidFilterOption(format!(
                    "The filter option is not valid: {text}. Valid options include: [Equals, BeginsWith, Contains, Recursive, OneLevel]."
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "Equals",
            Self::BeginsWith => "BeginsWith",
            Self::Contains => "Contains",
            Self::Recursive => "Recursive",
            Self::OneLevel => "OneLevel",
        }
    }
}

/// The call a filter is given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterUse {
    DescribeParameters,
    GetParametersByPath,
}

/// One checked filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterFilter {
    pub key: FilterKey,
    pub option: FilterOption,
    pub values: Vec<String>,
}

fn bad_option(key: &FilterKey, option: FilterOption, allowed: &str) -> SsmError {
    SsmError::InvalidFilterOption(format!(
        "The following filter option is not valid: {}. Valid options include: [{allowed}] for the {} filter key.",
        option.as_str(),
        key.as_str()
    ))
}

impl ParameterFilter {
    /// Checks one filter for `used`; `option` defaults by key (`Equals`,
    /// or `OneLevel` for `Path`).
    pub fn parse(
        key: &str,
        option: Option<&str>,
        values: Vec<String>,
        used: FilterUse,
    ) -> Result<Self, SsmError> {
        let key = FilterKey::parse(key)?;
        if used == FilterUse::GetParametersByPath
            && !matches!(
                key,
                FilterKey::Type | FilterKey::KeyId | FilterKey::Label | FilterKey::Tag(_)
            )
        {
            return Err(SsmError::InvalidFilterKey(key.as_str()));
        }
        let option = match option {
            Some(o) => FilterOption::parse(o)?,
            None if key == FilterKey::Path => FilterOption::OneLevel,
            None => FilterOption::Equals,
        };
        match (&key, option) {
            (FilterKey::Path, FilterOption::Recursive | FilterOption::OneLevel) => {}
            (FilterKey::Path, o) => return Err(bad_option(&key, o, "Recursive, OneLevel")),
            (FilterKey::Name, FilterOption::Equals | FilterOption::BeginsWith) => {}
            (FilterKey::Name, FilterOption::Contains) if used == FilterUse::DescribeParameters => {}
            (FilterKey::Name, o) => {
                return Err(bad_option(&key, o, "Equals, BeginsWith, Contains"));
            }
            (
                FilterKey::KeyId | FilterKey::Label,
                FilterOption::Equals | FilterOption::BeginsWith,
            ) => {}
            (FilterKey::KeyId | FilterKey::Label, o) => {
                return Err(bad_option(&key, o, "Equals, BeginsWith"));
            }
            (_, FilterOption::Equals) => {}
            (_, o) => return Err(bad_option(&key, o, "Equals")),
        }
        let needs_values = !matches!(key, FilterKey::Tag(_));
        if (needs_values && values.is_empty()) || values.len() > MAX_VALUES {
            return Err(SsmError::InvalidFilterValue(format!(
                "The {} filter takes 1 to {MAX_VALUES} values.",
                key.as_str()
            )));
        }
        for v in &values {
            if v.is_empty() || v.chars().count() > MAX_VALUE {
                return Err(SsmError::InvalidFilterValue(format!(
                    "Each value of the {} filter is 1 to {MAX_VALUE} characters.",
                    key.as_str()
                )));
            }
            let valid = match key {
                FilterKey::Type => ParameterType::parse(v).is_ok(),
                FilterKey::Tier => Tier::parse(v).is_ok(),
                FilterKey::DataType => DataType::parse(v).is_ok(),
                FilterKey::Path => ParameterPath::parse(v).is_ok(),
                _ => true,
            };
            if !valid {
                return Err(SsmError::InvalidFilterValue(format!(
                    "The following filter value is not valid: {v}. Check the {} filter's values and try again.",
                    key.as_str()
                )));
            }
        }
        Ok(Self {
            key,
            option,
            values,
        })
    }

    /// DescribeParameters' older `Filters`: `Name`, `Type` or `KeyId`, with
    /// `Equals` (`Name` matching as `BeginsWith`, as AWS did).
    pub fn parse_legacy(key: &str, values: Vec<String>) -> Result<Self, SsmError> {
        let option = match key {
            "Name" => "BeginsWith",
            "Type" | "KeyId" => "Equals",
            _ => return Err(SsmError::InvalidFilterKey(key.to_owned())),
        };
        Self::parse(key, Some(option), values, FilterUse::DescribeParameters)
    }

    fn compare(&self, text: &str) -> bool {
        self.values.iter().any(|v| match self.option {
            FilterOption::Equals => text == v,
            FilterOption::BeginsWith => text.starts_with(v.as_str()),
            FilterOption::Contains => text.contains(v.as_str()),
            FilterOption::Recursive | FilterOption::OneLevel => false,
        })
    }

    /// Whether `version` of `parameter` passes (a `Label` filter passes a
    /// version carrying one of its labels).
    fn passes(&self, parameter: &Parameter, version: &Version) -> bool {
        match &self.key {
            FilterKey::Name => self.compare(parameter.name.as_str()),
            FilterKey::Type => self.compare(version.kind.as_str()),
            FilterKey::KeyId => version.key_id.as_deref().is_some_and(|k| self.compare(k)),
            FilterKey::Tier => self.compare(version.tier.as_str()),
            FilterKey::DataType => self.compare(version.data_type.as_str()),
            FilterKey::Label => version.labels.iter().any(|l| self.compare(l)),
            FilterKey::Path => self.values.iter().any(|p| {
                ParameterPath::parse(p).is_ok_and(|path| {
                    path.holds(&parameter.name, self.option == FilterOption::Recursive)
                })
            }),
            FilterKey::Tag(key) => parameter
                .tags
                .iter()
                .any(|(k, v)| k == key && (self.values.is_empty() || self.values.contains(v))),
        }
    }
}

/// Checks a request's filters together: at most [`MAX_FILTERS`], each key
/// once.
pub fn check_all(filters: &[ParameterFilter]) -> Result<(), SsmError> {
    if filters.len() > MAX_FILTERS {
        return Err(SsmError::validation(format!(
            "1 validation error detected: Value at 'parameterFilters' failed to satisfy constraint: Member must have length less than or equal to {MAX_FILTERS}"
        )));
    }
    for (i, f) in filters.iter().enumerate() {
        if filters[..i].iter().any(|o| o.key == f.key) {
            return Err(SsmError::InvalidFilterKey(format!(
                "{} (the filter is given more than once)",
                f.key.as_str()
            )));
        }
    }
    Ok(())
}

/// The version of `parameter` the filters select: the newest, or with a
/// `Label` filter the version carrying the label; `None` when it fails
/// any filter.
pub fn select<'p>(parameter: &'p Parameter, filters: &[ParameterFilter]) -> Option<&'p Version> {
    let version = match filters.iter().find(|f| f.key == FilterKey::Label) {
        Some(label) => parameter
            .versions
            .iter()
            .rev()
            .find(|v| label.passes(parameter, v))?,
        None => parameter.latest()?,
    };
    filters
        .iter()
        .all(|f| f.passes(parameter, version))
        .then_some(version)
}

/// The paths a request's `Path` filters name.
pub fn paths(filters: &[ParameterFilter]) -> Vec<&str> {
    filters
        .iter()
        .filter(|f| f.key == FilterKey::Path)
        .flat_map(|f| f.values.iter().map(String::as_str))
        .collect()
}

/// Whether `name` would pass the `Name` filters alone (for listing names
/// without reading versions).
pub fn name_passes(name: &ParameterName, filters: &[ParameterFilter]) -> bool {
    filters
        .iter()
        .filter(|f| f.key == FilterKey::Name)
        .all(|f| f.compare(name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parameter::Put;

    fn parameter(name: &str, kind: ParameterType, labels: &[&str]) -> Parameter {
        let put = Put {
            kind: Some(kind),
            key_id: None,
            description: None,
            allowed_pattern: None,
            tier: None,
            data_type: None,
            overwrite: true,
        };
        let name = ParameterName::parse(name).unwrap_or_else(|e| panic!("{e}"));
        let first = put
            .version(None, 1, "v1", "u", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut p = Parameter::new(name, first, vec![("env".into(), "prod".into())]);
        let second = put
            .version(p.latest(), 2, "v2", "u", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = p.push(second);
        if !labels.is_empty() {
            let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
            let _ = p.label(Some(1), &labels);
        }
        p
    }

    fn filter(
        key: &str,
        option: Option<&str>,
        values: &[&str],
        used: FilterUse,
    ) -> ParameterFilter {
        ParameterFilter::parse(
            key,
            option,
            values.iter().map(|v| (*v).to_owned()).collect(),
            used,
        )
        .unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    const D: FilterUse = FilterUse::DescribeParameters;
    const P: FilterUse = FilterUse::GetParametersByPath;

    #[test]
    fn keys_options_and_values_are_checked_per_call() {
        let code = |key: &str, option: Option<&str>, values: &[&str], used| {
            ParameterFilter::parse(
                key,
                option,
                values.iter().map(|v| (*v).to_owned()).collect(),
                used,
            )
            .err()
            .map(|e| e.code())
        };
        assert_eq!(code("Name", None, &["/a"], P), Some("InvalidFilterKey"));
        assert_eq!(code("Path", None, &["/a"], P), Some("InvalidFilterKey"));
        assert_eq!(code("Colour", None, &["x"], D), Some("InvalidFilterKey"));
        assert_eq!(code("tag:", None, &["x"], D), Some("InvalidFilterKey"));
        assert_eq!(
            code("Type", Some("BeginsWith"), &["S"], D),
            Some("InvalidFilterOption")
        );
        assert_eq!(
            code("Path", Some("Equals"), &["/a"], D),
            Some("InvalidFilterOption")
        );
        assert_eq!(code("Name", Some("Contains"), &["a"], D), None);
        assert_eq!(code("Type", None, &["Blob"], D), Some("InvalidFilterValue"));
        assert_eq!(code("Type", None, &[], D), Some("InvalidFilterValue"));
        assert_eq!(code("tag:env", None, &[], D), None);
        assert_eq!(
            code("Name", Some("Nope"), &["a"], D),
            Some("InvalidFilterOption")
        );
        let dup = [
            filter("Type", None, &["String"], D),
            filter("Type", None, &["String"], D),
        ];
        assert_eq!(
            check_all(&dup).map_err(|e| e.code()),
            Err("InvalidFilterKey")
        );
        assert_eq!(
            ParameterFilter::parse_legacy("Tier", vec!["Standard".into()]).map_err(|e| e.code()),
            Err("InvalidFilterKey")
        );
    }

    #[test]
    fn filters_select_versions() {
        let p = parameter("/app/db/url", ParameterType::String, &["prod"]);
        assert_eq!(select(&p, &[]).map(|v| v.version), Some(2));
        let label = filter("Label", None, &["prod"], P);
        assert_eq!(select(&p, &[label]).map(|v| v.version), Some(1));
        let missing = filter("Label", None, &["none"], P);
        assert_eq!(select(&p, &[missing]).map(|v| v.version), None);
        let secure = filter("Type", None, &["SecureString"], P);
        assert!(select(&p, &[secure]).is_none());
        let either = filter("Type", None, &["SecureString", "String"], P);
        assert!(select(&p, &[either]).is_some());
        let tagged = filter("tag:env", None, &[], P);
        assert!(select(&p, &[tagged]).is_some());
        let other_tag = filter("tag:env", None, &["dev"], P);
        assert!(select(&p, &[other_tag]).is_none());
        let begins = filter("Name", Some("BeginsWith"), &["/app/db"], D);
        assert!(select(&p, &[begins]).is_some());
        let contains = filter("Name", Some("Contains"), &["db/u"], D);
        assert!(select(&p, &[contains]).is_some());
        let one_level = filter("Path", None, &["/app"], D);
        assert!(select(&p, &[one_level]).is_none());
        let recursive = filter("Path", Some("Recursive"), &["/app"], D);
        assert!(select(&p, std::slice::from_ref(&recursive)).is_some());
        assert_eq!(paths(&[recursive]), vec!["/app"]);
        let key = filter("KeyId", None, &["alias/aws/ssm"], D);
        assert!(select(&p, std::slice::from_ref(&key)).is_none());
        let s = parameter("/app/pw", ParameterType::SecureString, &[]);
        assert!(select(&s, &[key]).is_some());
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(
            key in "\\PC{0,20}",
            option in proptest::option::of("\\PC{0,12}"),
            values in proptest::collection::vec("\\PC{0,20}", 0..4),
        ) {
            for used in [D, P] {
                let _ = ParameterFilter::parse(&key, option.as_deref(), values.clone(), used);
            }
            let _ = ParameterFilter::parse_legacy(&key, values.clone());
        }
    }
}
