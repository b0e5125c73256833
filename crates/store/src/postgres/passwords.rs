//! [`Passwords`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Passwords for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn create_login_profile(
        &self,
        user: &str,
        hash: &PasswordHash,
        reset_required: bool,
        now: i64,
    ) -> Result<LoginProfile> {
        Err(super::unported("Passwords"))
    }

    #[allow(clippy::too_many_arguments)]
    fn login_profile(&self, user: &str) -> Result<Option<LoginProfile>> {
        Err(super::unported("Passwords"))
    }

    #[allow(clippy::too_many_arguments)]
    fn login_password(&self, user: &str, previous: usize) -> Result<Option<LoginPassword>> {
        Err(super::unported("Passwords"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_login_profile(
        &self,
        user: &str,
        hash: Option<&PasswordHash>,
        reset_required: Option<bool>,
        now: i64,
    ) -> Result<LoginProfile> {
        Err(super::unported("Passwords"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_login_profile(&self, user: &str) -> Result<()> {
        Err(super::unported("Passwords"))
    }

    #[allow(clippy::too_many_arguments)]
    fn record_password_use(&self, user: &str, at: i64) -> Result<()> {
        Err(super::unported("Passwords"))
    }

    #[allow(clippy::too_many_arguments)]
    fn login_profiles(&self) -> Result<Vec<LoginProfile>> {
        Err(super::unported("Passwords"))
    }

    #[allow(clippy::too_many_arguments)]
    fn password_policy(&self) -> Result<Option<PasswordPolicy>> {
        Err(super::unported("Passwords"))
    }

    #[allow(clippy::too_many_arguments)]
    fn put_password_policy(&self, policy: &PasswordPolicy) -> Result<()> {
        Err(super::unported("Passwords"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_password_policy(&self) -> Result<bool> {
        Err(super::unported("Passwords"))
    }
}
