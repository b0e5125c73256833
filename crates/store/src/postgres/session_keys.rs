//! [`SessionKeys`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl SessionKeys for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn revoke_sessions(&self, arn: &str, before: i64) -> Result<()> {
        Err(super::unported("SessionKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn revocations(&self) -> Result<Vec<(String, i64)>> {
        Err(super::unported("SessionKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn cluster_keys(&self, now: i64) -> Result<Vec<(u32, Zeroizing<[u8; 32]>)>> {
        Err(super::unported("SessionKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn add_cluster_key(&self, id: u32, now: i64) -> Result<()> {
        Err(super::unported("SessionKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn rotate_cluster_keys(&self, now: i64, every: i64, keep: i64) -> Result<bool> {
        Err(super::unported("SessionKeys"))
    }
}
