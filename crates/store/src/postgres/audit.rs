//! [`Audit`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Audit for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn audit_signing_key(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Err(super::unported("Audit"))
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_public_key(&self) -> Result<Option<Vec<u8>>> {
        Err(super::unported("Audit"))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_audit_signing_key(&self, pkcs8: &[u8], public_key: &[u8], now: i64) -> Result<bool> {
        Err(super::unported("Audit"))
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_anchor(&self) -> Result<Option<String>> {
        Err(super::unported("Audit"))
    }

    #[allow(clippy::too_many_arguments)]
    fn put_audit_anchor(
        &self,
        trail_id: &str,
        sequence: u64,
        document: &str,
        now: i64,
    ) -> Result<bool> {
        Err(super::unported("Audit"))
    }

    #[allow(clippy::too_many_arguments)]
    fn forget_audit_anchor(&self) -> Result<Option<String>> {
        Err(super::unported("Audit"))
    }
}
