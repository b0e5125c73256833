//! [`KmsKeys`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl KmsKeys for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn create_kms_key(&self, id: &str, document: &str, material: &[u8]) -> Result<()> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn kms_key(&self, id: &str) -> Result<Option<StoredKmsKey>> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_kms_keys(&self) -> Result<Vec<StoredKmsKey>> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_kms_key(
        &self,
        id: &str,
        revision: i64,
        document: &str,
        material: Option<(u32, &[u8])>,
    ) -> Result<bool> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn kms_key_material(&self, id: &str, version: u32) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn purge_kms_key(&self, id: &str) -> Result<()> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_kms_alias(&self, name: &str, key_id: &str, now: i64) -> Result<()> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn kms_alias(&self, name: &str) -> Result<Option<KmsAlias>> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_kms_aliases(&self) -> Result<Vec<KmsAlias>> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn kms_aliases_of(&self, key_id: &str) -> Result<Vec<KmsAlias>> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_kms_alias(&self, name: &str, key_id: &str, now: i64) -> Result<bool> {
        Err(super::unported("KmsKeys"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_kms_alias(&self, name: &str) -> Result<bool> {
        Err(super::unported("KmsKeys"))
    }
}
