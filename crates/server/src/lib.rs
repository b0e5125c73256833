//! Latchkey's token service: STS and an IAM subset over the AWS Query
//! protocol, and Secrets Manager over the AWS JSON 1.1 protocol, on one
//! HTTPS endpoint, so the stock AWS CLI and SDKs work against it.
//!
//! A thin layer over the identity core (`latchkey-identity`: credentials,
//! revocation, authorisation) and the pure crates: `latchkey-sigv4`
//! authenticates, `latchkey-session` seals temporary credentials,
//! `latchkey-policy` decides, `latchkey-store` persists. This crate adds
//! the AWS Query protocol, XML, the STS and IAM handlers, the JSON 1.1
//! front ([`json`]) and its services' handlers, and TLS.

/// The type of the finding a leaked access key raises
/// (`RevokeLeakedAccessKey`, called by `latchkey scan --revoke`).
pub const LEAKED_KEY_KIND: &str = "CredentialAccess:Repository/LeakedKey";

/// Characters that change how the text around them reads without
/// showing themselves: bidirectional controls and marks (U+061C,
/// U+200E/F, U+202A-U+202E, U+2066-U+2069), line and paragraph
/// separators, zero-width and other invisible formatting characters, and
/// tags. Text shown to people (a finding's location, a file's name in a
/// terminal) must not carry them.
pub fn is_hidden_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

pub mod accessanalyzer;
pub mod advisor;
pub mod auth;
pub mod bootstrap;
pub mod error;
mod files;
pub mod http;
mod iam;
pub mod json;
mod kms;
pub mod master_key;
pub mod query;
mod secretsmanager;
pub mod shipped;
mod simulate;
mod ssm;
mod sts;
pub use sts::{check_console_mfa, console_credentials};
pub mod tls;
pub mod xml;

#[cfg(test)]
mod tests {
    /// The action names a dispatcher's `match` arms name (`"CreateUser" =>`,
    /// `| "DeleteGroupPolicy" =>`), read from its source.
    fn dispatched(source: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for line in source.lines() {
            let arm = line.trim().trim_start_matches('|').trim();
            if !arm.starts_with('"') {
                continue;
            }
            let names = arm.split("=>").next().unwrap_or_default();
            let quoted: Vec<&str> = names
                .split('|')
                .map(|n| n.trim().trim_matches('"'))
                .collect();
            let is_name = |n: &&str| {
                n.starts_with(|c: char| c.is_ascii_uppercase())
                    && n.chars().all(|c| c.is_ascii_alphanumeric())
            };
            if (arm.contains("=>") || arm.ends_with('|')) && quoted.iter().all(is_name) {
                out.extend(quoted);
            }
        }
        out
    }

    /// Every action a service answers is in the policy catalogue, which
    /// `policy validate`, the access advisor and policy generation read: an
    /// action missing there is reported as unknown and never listed as
    /// granted or used.
    #[test]
    fn every_dispatched_action_is_catalogued() {
        let sources = [
            ("iam", include_str!("iam/mod.rs")),
            ("iam", include_str!("simulate.rs")),
            ("kms", include_str!("kms/mod.rs")),
            ("ssm", include_str!("ssm/mod.rs")),
            ("secretsmanager", include_str!("secretsmanager/mod.rs")),
        ];
        // Authorised as other actions: `ReEncryptFrom`/`ReEncryptTo`, and
        // `iam:UpdateAccessKey` for Latchkey's leaked-key revocation.
        let authorised_otherwise = ["kms:ReEncrypt", "iam:RevokeLeakedAccessKey"];
        let mut seen = 0;
        for (service, source) in sources {
            for name in dispatched(source) {
                let action = format!("{service}:{name}");
                seen += 1;
                assert!(
                    latchkey_policy::catalog::condition_keys(&action).is_some()
                        || authorised_otherwise.contains(&action.as_str()),
                    "{action} is answered but not catalogued"
                );
            }
        }
        for name in super::http::STS_ACTIONS {
            assert!(latchkey_policy::catalog::condition_keys(&format!("sts:{name}")).is_some());
        }
        assert!(seen > 120, "the dispatchers were read: {seen}");
    }

    #[test]
    fn hidden_characters_are_known() {
        for c in [
            '\u{200F}',
            '\u{061C}',
            '\u{200B}',
            '\u{202E}',
            '\u{2066}',
            '\u{E0041}',
            '\u{FEFF}',
        ] {
            assert!(super::is_hidden_char(c), "{c:?}");
        }
        for c in ['a', 'é', '中', ' ', '/'] {
            assert!(!super::is_hidden_char(c), "{c:?}");
        }
    }
}
