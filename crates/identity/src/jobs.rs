//! Background jobs' wake-ups and the settings API calls check against:
//! `RotateSecret` wakes the rotation job at once instead of leaving the
//! work to its next periodic pass, and may name a rotation webhook only
//! under a URL prefix the operator allowed.

use std::sync::OnceLock;

use tokio::sync::Notify;

#[derive(Default)]
pub struct Jobs {
    rotation: Notify,
    /// URL prefixes rotation webhooks may be under; none until `serve`
    /// sets them, so no webhook rotation by default.
    rotation_webhooks: OnceLock<Vec<String>>,
}

impl Jobs {
    /// A rotation was asked for. Wakes the job if it waits, or makes its
    /// next wait return at once.
    pub fn wake_rotation(&self) {
        self.rotation.notify_one();
    }

    /// Returns when [`Self::wake_rotation`] is called (or was, since the
    /// last return).
    pub async fn rotation_requested(&self) {
        self.rotation.notified().await;
    }

    /// Sets the URL prefixes rotation webhooks may be under (once).
    pub fn allow_rotation_webhooks(&self, prefixes: Vec<String>) {
        let _ = self.rotation_webhooks.set(prefixes);
    }

    /// Whether `url` is under an allowed prefix. A prefix ends at a path
    /// boundary: `https://hooks.internal` allows `https://hooks.internal/x`
    /// but not `https://hooks.internal.evil.example/`.
    pub fn rotation_webhook_allowed(&self, url: &str) -> bool {
        self.rotation_webhooks
            .get()
            .is_some_and(|prefixes| prefixes.iter().any(|p| under_prefix(url, p)))
    }
}

fn under_prefix(url: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return false;
    }
    match url.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#']),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_only_under_allowed_prefixes() {
        let jobs = Jobs::default();
        assert!(!jobs.rotation_webhook_allowed("https://hooks.internal/rotate"));
        jobs.allow_rotation_webhooks(vec![
            "https://hooks.internal".into(),
            "http://127.0.0.1:9000/rotate/".into(),
        ]);
        for ok in [
            "https://hooks.internal",
            "https://hooks.internal/rotate",
            "https://hooks.internal?x=1",
            "http://127.0.0.1:9000/rotate/db",
        ] {
            assert!(jobs.rotation_webhook_allowed(ok), "{ok}");
        }
        for refused in [
            "https://hooks.internal.evil.example/",
            "https://hooks.internal:444/",
            "http://hooks.internal/rotate",
            "http://127.0.0.1:9000/rotatex",
            "http://127.0.0.1:9000/",
        ] {
            assert!(!jobs.rotation_webhook_allowed(refused), "{refused}");
        }
    }
}
