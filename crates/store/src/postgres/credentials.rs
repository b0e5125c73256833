//! [`Credentials`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Credentials for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn create_access_key(&self, user: &str, now: i64) -> Result<(AccessKey, Zeroizing<String>)> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_access_key(&self, id: &str, active: bool) -> Result<()> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_access_key(&self, id: &str) -> Result<()> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn access_key(&self, id: &str) -> Result<Option<AccessKey>> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn deleted_access_key(&self, id: &str) -> Result<Option<(String, i64)>> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn access_key_secret(&self, id: &str) -> Result<Option<(AccessKey, Zeroizing<String>)>> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_virtual_mfa(&self, name: &str, path: &str) -> Result<(String, Zeroizing<String>)> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn mfa_seed(&self, serial: &str) -> Result<(MfaDevice, Zeroizing<Vec<u8>>, Option<i64>)> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn use_mfa_step(&self, serial: &str, step: i64) -> Result<bool> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn enable_mfa(&self, serial: &str, user: &str, step: i64, now: i64) -> Result<()> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn deactivate_mfa(&self, serial: &str, user: &str) -> Result<()> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_mfa_devices(&self, user: &str) -> Result<Vec<MfaDevice>> {
        Err(super::unported("Credentials"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_virtual_mfa_devices(&self) -> Result<Vec<MfaDevice>> {
        Err(super::unported("Credentials"))
    }
}
