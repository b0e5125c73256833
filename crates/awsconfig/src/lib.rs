//! AWS credentials and region, found as the AWS CLI (botocore) finds them:
//!
//! 1. `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//!    unless a profile was named explicitly (`--profile`), which skips the
//!    environment as botocore does;
//! 2. the profile (`--profile`, `AWS_PROFILE`, `AWS_DEFAULT_PROFILE`, or
//!    `default`) in the shared credentials file
//!    (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`);
//! 3. the same profile in the config file (`AWS_CONFIG_FILE`, default
//!    `~/.aws/config`, sections `[default]` and `[profile NAME]`).
//!
//! The region comes from `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, then
//! the profile's `region` in the config file.

pub mod ini;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use latchkey_sigv4::Credentials;

/// The process environment, captured once so that resolution is testable.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
    home: Option<PathBuf>,
}

impl Environment {
    /// The current process's variables and home directory.
    pub fn from_process() -> Self {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let home = vars.get("HOME").map(PathBuf::from);
        Self { vars, home }
    }

    /// An environment from explicit pairs (tests, embedding).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let vars: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let home = vars.get("HOME").map(PathBuf::from);
        Self { vars, home }
    }

    /// A variable's value, treating empty as unset.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn file(&self, var: &str, default_name: &str) -> Option<PathBuf> {
        match self.var(var) {
            Some(path) => Some(expand_home(path, self.home.as_deref())),
            None => self
                .home
                .as_ref()
                .map(|h| h.join(".aws").join(default_name)),
        }
    }

    /// The shared credentials file path.
    pub fn credentials_file(&self) -> Option<PathBuf> {
        self.file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
    }

    /// The config file path.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.file("AWS_CONFIG_FILE", "config")
    }

    /// The profile in effect: explicit, then `AWS_PROFILE`, then
    /// `AWS_DEFAULT_PROFILE`, then `default`.
    pub fn profile<'a>(&'a self, explicit: Option<&'a str>) -> &'a str {
        explicit
            .or_else(|| self.var("AWS_PROFILE"))
            .or_else(|| self.var("AWS_DEFAULT_PROFILE"))
            .unwrap_or("default")
    }
}

fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// Where credentials were found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    Environment,
    SharedCredentialsFile { path: PathBuf, profile: String },
    ConfigFile { path: PathBuf, profile: String },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Environment => f.write_str("environment variables"),
            CredentialSource::SharedCredentialsFile { path, profile } => {
                write!(f, "profile {profile:?} in {}", path.display())
            }
            CredentialSource::ConfigFile { path, profile } => {
                write!(f, "profile {profile:?} in {}", path.display())
            }
        }
    }
}

/// Credentials and where they came from.
#[derive(Clone, Debug)]
pub struct ResolvedCredentials {
    pub credentials: Credentials,
    pub source: CredentialSource,
}

/// Why credentials or a region could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "unable to locate credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile"
    )]
    NoCredentials,
    #[error("the config profile ({0}) could not be found")]
    ProfileNotFound(String),
    #[error("partial credentials found in {origin}: missing {missing}")]
    PartialCredentials {
        origin: CredentialSource,
        missing: &'static str,
    },
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot parse {path}: {error}")]
    Parse { path: PathBuf, error: ini::IniError },
    #[error("you must specify a region (--region, AWS_REGION or the profile's region)")]
    NoRegion,
}

/// A parsed file, or `None` when it does not exist.
fn load(path: &Path) -> Result<Option<ini::Sections>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => ini::parse(&text)
            .map(Some)
            .map_err(|error| ConfigError::Parse {
                path: path.to_owned(),
                error,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ConfigError::Read {
            path: path.to_owned(),
            error,
        }),
    }
}

fn config_section<'s>(
    sections: &'s ini::Sections,
    profile: &str,
) -> Option<&'s HashMap<String, String>> {
    let prefixed = sections.get(&format!("profile {profile}"));
    if profile == "default" {
        sections.get("default").or(prefixed)
    } else {
        prefixed
    }
}

fn from_section(
    section: &HashMap<String, String>,
    source: CredentialSource,
) -> Result<Option<ResolvedCredentials>, ConfigError> {
    let get = |k: &str| section.get(k).filter(|v| !v.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some(ResolvedCredentials {
            credentials: Credentials::new(
                id.clone(),
                secret.clone(),
                get("aws_session_token")
                    .or_else(|| get("aws_security_token"))
                    .cloned(),
            ),
            source,
        })),
        (Some(_), None) => Err(ConfigError::PartialCredentials {
            origin: source,
            missing: "aws_secret_access_key",
        }),
        (None, Some(_)) => Err(ConfigError::PartialCredentials {
            origin: source,
            missing: "aws_access_key_id",
        }),
        (None, None) => Ok(None),
    }
}

/// Finds credentials. `profile` is the `--profile` flag.
pub fn resolve_credentials(
    env: &Environment,
    profile: Option<&str>,
) -> Result<ResolvedCredentials, ConfigError> {
    if profile.is_none() {
        match (
            env.var("AWS_ACCESS_KEY_ID"),
            env.var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(id), Some(secret)) => {
                return Ok(ResolvedCredentials {
                    credentials: Credentials::new(
                        id,
                        secret,
                        env.var("AWS_SESSION_TOKEN")
                            .or_else(|| env.var("AWS_SECURITY_TOKEN"))
                            .map(str::to_owned),
                    ),
                    source: CredentialSource::Environment,
                });
            }
            (Some(_), None) => {
                return Err(ConfigError::PartialCredentials {
                    origin: CredentialSource::Environment,
                    missing: "AWS_SECRET_ACCESS_KEY",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::PartialCredentials {
                    origin: CredentialSource::Environment,
                    missing: "AWS_ACCESS_KEY_ID",
                });
            }
            (None, None) => {}
        }
    }
    let name = env.profile(profile);
    let mut profile_seen = false;
    // The shared credentials file names sections `NAME`; the config file
    // `profile NAME` (and `default`).
    let files = [(env.credentials_file(), false), (env.config_file(), true)];
    for (path, is_config) in files {
        let Some(path) = path else { continue };
        let Some(sections) = load(&path)? else {
            continue;
        };
        let section = if is_config {
            config_section(&sections, name)
        } else {
            sections.get(name)
        };
        let Some(section) = section else { continue };
        profile_seen = true;
        let profile = name.to_owned();
        let source = if is_config {
            CredentialSource::ConfigFile { path, profile }
        } else {
            CredentialSource::SharedCredentialsFile { path, profile }
        };
        if let Some(found) = from_section(section, source)? {
            return Ok(found);
        }
    }
    if !profile_seen && name != "default" {
        return Err(ConfigError::ProfileNotFound(name.to_owned()));
    }
    Err(ConfigError::NoCredentials)
}

/// Finds the region. `explicit` is the `--region` flag.
pub fn resolve_region(
    env: &Environment,
    explicit: Option<&str>,
    profile: Option<&str>,
) -> Result<String, ConfigError> {
    if let Some(region) = explicit
        .filter(|r| !r.is_empty())
        .or_else(|| env.var("AWS_REGION"))
        .or_else(|| env.var("AWS_DEFAULT_REGION"))
    {
        return Ok(region.to_owned());
    }
    let name = env.profile(profile);
    if let Some(path) = env.config_file()
        && let Some(sections) = load(&path)?
        && let Some(region) = config_section(&sections, name)
            .and_then(|s| s.get("region"))
            .filter(|r| !r.is_empty())
    {
        return Ok(region.clone());
    }
    Err(ConfigError::NoRegion)
}

/// A profile setting of the config file (`endpoint_url`, `ca_bundle`),
/// or the environment variable that overrides it, or `explicit` (a flag).
pub fn resolve_setting(
    env: &Environment,
    explicit: Option<&str>,
    variable: &str,
    key: &str,
    profile: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    if let Some(v) = explicit
        .filter(|v| !v.is_empty())
        .or_else(|| env.var(variable).filter(|v| !v.is_empty()))
    {
        return Ok(Some(v.to_owned()));
    }
    let name = env.profile(profile);
    if let Some(path) = env.config_file()
        && let Some(sections) = load(&path)?
        && let Some(v) = config_section(&sections, name)
            .and_then(|s| s.get(key))
            .filter(|v| !v.is_empty())
    {
        return Ok(Some(v.clone()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new(credentials: &str, config: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("credentials"), credentials).unwrap();
            std::fs::write(dir.path().join("config"), config).unwrap();
            Self { dir }
        }

        fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Environment {
            let creds = self.dir.path().join("credentials");
            let config = self.dir.path().join("config");
            let mut pairs: Vec<(&str, &str)> = vec![
                ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
                ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ];
            pairs.extend_from_slice(extra);
            Environment::from_pairs(pairs)
        }
    }

    #[test]
    fn settings_come_from_the_flag_the_environment_or_the_profile() {
        let files = Files::new(
            "",
            "[default]\nendpoint_url = https://localhost:7443\n\n[profile x]\nendpoint_url = https://x:1\n",
        );
        let env = files.env(&[]);
        let endpoint = |env: &Environment, flag, profile| {
            resolve_setting(env, flag, "AWS_ENDPOINT_URL", "endpoint_url", profile).unwrap()
        };
        assert_eq!(
            endpoint(&env, None, None).as_deref(),
            Some("https://localhost:7443")
        );
        assert_eq!(
            endpoint(&env, None, Some("x")).as_deref(),
            Some("https://x:1")
        );
        assert_eq!(
            endpoint(&env, Some("https://f:2"), None).as_deref(),
            Some("https://f:2")
        );
        let env = files.env(&[("AWS_ENDPOINT_URL", "https://e:3")]);
        assert_eq!(endpoint(&env, None, None).as_deref(), Some("https://e:3"));
        assert_eq!(
            endpoint(&env, None, Some("nope")).as_deref(),
            Some("https://e:3")
        );
        let env = files.env(&[]);
        assert_eq!(endpoint(&env, None, Some("nope")), None);
    }

    const CREDS: &str = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = sdefault\n\n[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = sdev\naws_session_token = tdev\n\n[half]\naws_access_key_id = AKIDHALF\n";
    const CONFIG: &str = "[default]\nregion = us-west-2\n\n[profile cfg]\naws_access_key_id = AKIDCFG\naws_secret_access_key = scfg\nregion = eu-central-1\n";

    #[test]
    fn environment_first_unless_profile_named() {
        let files = Files::new(CREDS, CONFIG);
        let env = files.env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
            ("AWS_SESSION_TOKEN", "tenv"),
        ]);
        let r = resolve_credentials(&env, None).unwrap();
        assert_eq!(r.source, CredentialSource::Environment);
        assert_eq!(r.credentials.access_key_id, "AKIDENV");
        assert_eq!(r.credentials.session_token.as_deref(), Some("tenv"));
        let r = resolve_credentials(&env, Some("dev")).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKIDDEV");
        assert_eq!(r.credentials.session_token.as_deref(), Some("tdev"));
    }

    #[test]
    fn profiles_from_both_files() {
        let files = Files::new(CREDS, CONFIG);
        let env = files.env(&[]);
        assert_eq!(
            resolve_credentials(&env, None)
                .unwrap()
                .credentials
                .access_key_id,
            "AKIDDEFAULT"
        );
        let env = files.env(&[("AWS_PROFILE", "cfg")]);
        let r = resolve_credentials(&env, None).unwrap();
        assert_eq!(r.credentials.access_key_id, "AKIDCFG");
        assert!(matches!(r.source, CredentialSource::ConfigFile { .. }));
        assert_eq!(resolve_region(&env, None, None).unwrap(), "eu-central-1");
        assert_eq!(
            resolve_region(&env, Some("ap-south-1"), None).unwrap(),
            "ap-south-1"
        );
        assert_eq!(
            resolve_region(&files.env(&[]), None, None).unwrap(),
            "us-west-2"
        );
        assert_eq!(
            resolve_region(
                &files.env(&[("AWS_DEFAULT_REGION", "sa-east-1")]),
                None,
                None
            )
            .unwrap(),
            "sa-east-1"
        );
    }

    #[test]
    fn errors_are_specific() {
        let files = Files::new(CREDS, CONFIG);
        let env = files.env(&[]);
        assert!(
            matches!(resolve_credentials(&env, Some("nope")), Err(ConfigError::ProfileNotFound(p)) if p == "nope")
        );
        assert!(matches!(
            resolve_credentials(&env, Some("half")),
            Err(ConfigError::PartialCredentials {
                missing: "aws_secret_access_key",
                ..
            })
        ));
        let env = files.env(&[("AWS_ACCESS_KEY_ID", "x")]);
        assert!(matches!(
            resolve_credentials(&env, None),
            Err(ConfigError::PartialCredentials {
                missing: "AWS_SECRET_ACCESS_KEY",
                ..
            })
        ));
        let empty = Files::new("", "");
        assert!(matches!(
            resolve_credentials(&empty.env(&[]), None),
            Err(ConfigError::NoCredentials)
        ));
        assert!(matches!(
            resolve_region(&empty.env(&[]), None, None),
            Err(ConfigError::NoRegion)
        ));
        let broken = Files::new("not ini", "");
        assert!(matches!(
            resolve_credentials(&broken.env(&[]), None),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn missing_files_are_not_errors() {
        let env = Environment::from_pairs([("HOME", "/nonexistent-home-for-test")]);
        assert!(matches!(
            resolve_credentials(&env, None),
            Err(ConfigError::NoCredentials)
        ));
    }
}
