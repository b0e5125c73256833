//! [`Usage`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Usage for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn record_usage(
        &self,
        permissions: &[LastAccess],
        credentials: &[CredentialLastUse],
    ) -> Result<()> {
        Err(super::unported("Usage"))
    }

    #[allow(clippy::too_many_arguments)]
    fn last_accesses(&self, principals: &[&str]) -> Result<Vec<LastAccess>> {
        Err(super::unported("Usage"))
    }

    #[allow(clippy::too_many_arguments)]
    fn credential_last_use(&self, id: &str) -> Result<Option<CredentialLastUse>> {
        Err(super::unported("Usage"))
    }

    #[allow(clippy::too_many_arguments)]
    fn credential_last_uses(&self) -> Result<Vec<CredentialLastUse>> {
        Err(super::unported("Usage"))
    }

    #[allow(clippy::too_many_arguments)]
    fn clear_usage(&self) -> Result<()> {
        Err(super::unported("Usage"))
    }

    #[allow(clippy::too_many_arguments)]
    fn put_advisor_job(&self, job: &AdvisorJob, expire_before: i64) -> Result<()> {
        Err(super::unported("Usage"))
    }

    #[allow(clippy::too_many_arguments)]
    fn advisor_job(&self, id: &str) -> Result<Option<AdvisorJob>> {
        Err(super::unported("Usage"))
    }

    #[allow(clippy::too_many_arguments)]
    fn advisor_jobs(&self, granularity: &str, arn: Option<&str>) -> Result<Vec<AdvisorJob>> {
        Err(super::unported("Usage"))
    }

    #[allow(clippy::too_many_arguments)]
    fn put_credential_report(&self, generated: i64, csv: &str) -> Result<()> {
        Err(super::unported("Usage"))
    }

    #[allow(clippy::too_many_arguments)]
    fn credential_report(&self) -> Result<Option<(i64, String)>> {
        Err(super::unported("Usage"))
    }
}
