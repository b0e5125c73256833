//! [`Parameters`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Parameters for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn create_parameter(
        &self,
        name: &str,
        document: &str,
        version: u64,
        value: &[u8],
    ) -> Result<()> {
        Err(super::unported("Parameters"))
    }

    #[allow(clippy::too_many_arguments)]
    fn parameter(&self, name: &str) -> Result<Option<StoredParameter>> {
        Err(super::unported("Parameters"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_parameters(&self, prefix: &str) -> Result<Vec<StoredParameter>> {
        Err(super::unported("Parameters"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_parameter(
        &self,
        name: &str,
        revision: i64,
        document: &str,
        value: Option<(u64, &[u8])>,
        dropped: &[u64],
    ) -> Result<bool> {
        Err(super::unported("Parameters"))
    }

    #[allow(clippy::too_many_arguments)]
    fn parameter_value(&self, name: &str, version: u64) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Err(super::unported("Parameters"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_parameter(&self, name: &str) -> Result<bool> {
        Err(super::unported("Parameters"))
    }
}
