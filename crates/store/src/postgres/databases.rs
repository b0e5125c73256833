//! [`Databases`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Databases for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn register_database(&self, db: &Database, now: i64) -> Result<Database> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_database(&self, db: &Database) -> Result<Database> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_databases(&self) -> Result<Vec<Database>> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn remove_database(&self, name: &str) -> Result<()> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn database_password(&self, database: &str, user: &str) -> Result<Option<Zeroizing<String>>> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn database_logins(&self, database: &str, user: &str) -> Result<Option<UpstreamLogins>> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn set_database_login(
        &self,
        database: &str,
        user: &str,
        login_user: &str,
        password: &str,
    ) -> Result<()> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn set_database_next_login(
        &self,
        database: &str,
        user: &str,
        next: Option<(&str, &str)>,
    ) -> Result<()> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn bind_database_secret(&self, database: &str, user: &str, arn: &str) -> Result<()> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn database_secret_binding(&self, arn: &str) -> Result<Option<(String, String)>> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn database_ca(&self) -> Result<Option<(String, Zeroizing<String>)>> {
        Err(super::unported("Databases"))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_database_ca(&self, cert_pem: &str, key_pem: &str, now: i64) -> Result<bool> {
        Err(super::unported("Databases"))
    }
}
