//! The configuration in effect, section by section ([`Settings`]): the
//! layers are applied to it in order of precedence, and it is what
//! `latchkey serve --print-config` prints, with secrets redacted.

use serde::Serialize;

use super::file::DatabaseConfig;
use super::sections::{Api, Audit, Detection, Gateway, General, Layer, Webhook};

/// The configuration in effect, section by section: what
/// `latchkey serve --print-config` prints.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Settings {
    pub general: General,
    pub api: Api,
    pub gateway: Gateway,
    pub audit: Audit,
    /// `enabled` and the rule thresholds given in the file (the others
    /// keep the defaults of `crates/detect`).
    pub detection: DetectionSettings,
    pub webhook: Webhook,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectionSettings {
    pub enabled: bool,
    #[serde(flatten)]
    pub rules: toml::Table,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        Self {
            enabled: Detection::default().enabled,
            rules: toml::Table::new(),
        }
    }
}

impl Settings {
    /// Takes every value `layer` sets.
    pub fn apply(&mut self, layer: Layer) {
        self.general.apply(layer.general);
        self.api.apply(layer.api);
        self.gateway.apply(layer.gateway);
        self.audit.apply(layer.audit);
        let mut detection = Detection {
            enabled: self.detection.enabled,
        };
        detection.apply(layer.detection);
        self.detection.enabled = detection.enabled;
        self.webhook.apply(layer.webhook);
    }

    /// The same with secrets hidden: a webhook URL keeps only its scheme
    /// and host (its path, query or user part often is the credential).
    /// Nothing else here is secret: passwords and keys live in the store,
    /// sealed, and `[[databases]]` only names the variables holding them.
    pub fn redacted(&self) -> Self {
        let mut s = self.clone();
        s.webhook.url = s.webhook.url.as_deref().map(redact_url);
        s
    }
}

pub(super) fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let prefix = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    if host.len() == rest.len() {
        format!("{prefix}{host}")
    } else {
        format!("{prefix}{host}/<redacted>")
    }
}
