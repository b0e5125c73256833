//! [`Secrets`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Secrets for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn create_secret(
        &self,
        arn: &str,
        name: &str,
        document: &str,
        value: Option<(&str, &[u8])>,
    ) -> Result<()> {
        Err(super::unported("Secrets"))
    }

    #[allow(clippy::too_many_arguments)]
    fn secret_by_name(&self, name: &str) -> Result<Option<StoredSecret>> {
        Err(super::unported("Secrets"))
    }

    #[allow(clippy::too_many_arguments)]
    fn secret_by_arn(&self, arn: &str) -> Result<Option<StoredSecret>> {
        Err(super::unported("Secrets"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_secrets(&self) -> Result<Vec<StoredSecret>> {
        Err(super::unported("Secrets"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_secret(
        &self,
        arn: &str,
        revision: i64,
        document: &str,
        value: Option<(&str, &[u8])>,
        dropped: &[String],
    ) -> Result<bool> {
        Err(super::unported("Secrets"))
    }

    #[allow(clippy::too_many_arguments)]
    fn secret_value(&self, arn: &str, version: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Err(super::unported("Secrets"))
    }

    #[allow(clippy::too_many_arguments)]
    fn purge_secret(&self, arn: &str) -> Result<()> {
        Err(super::unported("Secrets"))
    }
}
