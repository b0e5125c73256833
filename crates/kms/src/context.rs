//! The encryption context: string pairs bound to a ciphertext as
//! associated data, which decryption must repeat exactly.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::KmsError;

/// At most this many bytes of keys and values together.
pub const MAX_CONTEXT_BYTES: usize = 8192;

/// An encryption context, in a canonical (sorted) order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// The `EncryptionContext` member of a request (absent: empty).
    pub fn from_json(value: Option<&Value>) -> Result<Self, KmsError> {
        let Some(value) = value else {
            return Ok(Self::default());
        };
        let Some(map) = value.as_object() else {
            return Err(KmsError::Validation(
                "EncryptionContext must be a map of strings to strings.".into(),
            ));
        };
        Self::from_map(map)
    }

    fn from_map(map: &Map<String, Value>) -> Result<Self, KmsError> {
        let mut out = BTreeMap::new();
        let mut size = 0;
        for (k, v) in map {
            let Some(v) = v.as_str() else {
                return Err(KmsError::Validation(
                    "EncryptionContext must be a map of strings to strings.".into(),
                ));
            };
            size += k.len() + v.len();
            out.insert(k.clone(), v.to_owned());
        }
        if size > MAX_CONTEXT_BYTES {
            return Err(KmsError::Validation(format!(
                "EncryptionContext must be at most {MAX_CONTEXT_BYTES} bytes."
            )));
        }
        // Policies name context keys without case (`kms:EncryptionContext:
        // Tenant` is `...:tenant`): two keys that differ only in case would
        // give one condition key two values, and let one hide the other.
        let mut folded: Vec<String> = out.keys().map(|k| k.to_ascii_lowercase()).collect();
        folded.sort_unstable();
        if let Some(pair) = folded.windows(2).find(|w| w[0] == w[1]) {
            return Err(KmsError::Validation(format!(
                "EncryptionContext keys must differ by more than letter case ({} appears twice).",
                pair[0]
            )));
        }
        Ok(Self(out))
    }

    /// From pairs (a service's own context, e.g. `PARAMETER_ARN`).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The associated data: each pair as a length-prefixed key and value,
    /// in key order, so that no two contexts give the same bytes.
    pub fn append_aad(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (k, v) in &self.0 {
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn aad(v: Value) -> Vec<u8> {
        let mut out = Vec::new();
        EncryptionContext::from_json(Some(&v))
            .expect("context")
            .append_aad(&mut out);
        out
    }

    #[test]
    fn order_does_not_matter_and_boundaries_do() {
        assert_eq!(
            aad(json!({"a": "1", "b": "2"})),
            aad(json!({"b": "2", "a": "1"}))
        );
        assert_ne!(aad(json!({"ab": "c"})), aad(json!({"a": "bc"})));
        assert_ne!(aad(json!({})), aad(json!({"": ""})));
    }

    #[test]
    fn only_strings() {
        for bad in [json!([]), json!({"a": 1}), json!("x"), json!({"a": null})] {
            assert!(EncryptionContext::from_json(Some(&bad)).is_err(), "{bad}");
        }
        // Keys that differ only in case would be one condition key.
        let twins = EncryptionContext::from_json(Some(&json!({"Tenant": "admin", "tenant": "x"})));
        assert!(matches!(twins, Err(KmsError::Validation(m)) if m.contains("tenant")));
        assert!(
            EncryptionContext::from_json(Some(&json!({"Tenant": "a", "Tenants": "b"}))).is_ok()
        );
        let big = json!({"k": "v".repeat(MAX_CONTEXT_BYTES)});
        assert!(EncryptionContext::from_json(Some(&big)).is_err());
        assert!(
            EncryptionContext::from_json(None)
                .expect("empty")
                .is_empty()
        );
    }
}
