//! [`Findings`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Findings for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn put_finding(
        &self,
        id: &str,
        kind: &str,
        severity: &str,
        last_seen: i64,
        document: &str,
    ) -> Result<()> {
        Err(super::unported("Findings"))
    }

    #[allow(clippy::too_many_arguments)]
    fn findings(
        &self,
        archived: bool,
        severity: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, bool)>> {
        Err(super::unported("Findings"))
    }

    #[allow(clippy::too_many_arguments)]
    fn get_finding(&self, id: &str) -> Result<Option<(String, bool)>> {
        Err(super::unported("Findings"))
    }

    #[allow(clippy::too_many_arguments)]
    fn archive_findings(&self, ids: &[String], archived: bool) -> Result<usize> {
        Err(super::unported("Findings"))
    }
}
