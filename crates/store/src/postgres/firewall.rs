//! [`Firewall`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Firewall for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn configure_firewall(
        &self,
        database: &str,
        mode: crate::FirewallMode,
        learning_secs: u64,
    ) -> Result<FirewallConfig> {
        Err(super::unported("Firewall"))
    }

    #[allow(clippy::too_many_arguments)]
    fn firewall_configs(&self) -> Result<Vec<FirewallConfig>> {
        Err(super::unported("Firewall"))
    }

    #[allow(clippy::too_many_arguments)]
    fn firewall_profiles(
        &self,
        database: &str,
        principal: Option<&str>,
    ) -> Result<Vec<FirewallProfile>> {
        Err(super::unported("Firewall"))
    }

    #[allow(clippy::too_many_arguments)]
    fn learn_shapes(&self, shapes: &[LearnedShape]) -> Result<usize> {
        Err(super::unported("Firewall"))
    }

    #[allow(clippy::too_many_arguments)]
    fn approve_shape(
        &self,
        database: &str,
        principal: &str,
        fingerprint: Fingerprint,
        text: &str,
        now: i64,
        learning_until: Option<i64>,
    ) -> Result<bool> {
        Err(super::unported("Firewall"))
    }

    #[allow(clippy::too_many_arguments)]
    fn set_profile_mode(
        &self,
        database: &str,
        principal: &str,
        mode: ProfileMode,
        learning_until: Option<i64>,
        now: i64,
    ) -> Result<()> {
        Err(super::unported("Firewall"))
    }
}
