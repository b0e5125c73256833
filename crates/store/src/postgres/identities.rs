//! [`Identities`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Identities for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn create_user(
        &self,
        name: &str,
        path: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<User> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn get_user(&self, name: &str) -> Result<User> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_users(&self) -> Result<Vec<User>> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_user(&self, name: &str) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn tag_user(&self, name: &str, tags: &[(String, String)]) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn untag_user(&self, name: &str, keys: &[&str]) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_role(
        &self,
        name: &str,
        path: &str,
        trust_policy: &str,
        max_session_duration: i64,
        description: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<Role> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn get_role(&self, name: &str) -> Result<Role> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_roles(&self) -> Result<Vec<Role>> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_role(&self, name: &str) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_assume_role_policy(&self, name: &str, document: &str) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update_role(
        &self,
        name: &str,
        description: Option<&str>,
        max_session_duration: Option<i64>,
    ) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn tag_role(&self, name: &str, tags: &[(String, String)]) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn untag_role(&self, name: &str, keys: &[&str]) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_group(&self, name: &str, path: &str, now: i64) -> Result<(String, String)> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn get_group(&self, name: &str) -> Result<Group> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_groups(&self) -> Result<Vec<Group>> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn add_user_to_group(&self, group: &str, user: &str) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn remove_user_from_group(&self, group: &str, user: &str) -> Result<()> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn groups_for_user(&self, user: &str) -> Result<Vec<String>> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn groups_of_user(&self, user: &str) -> Result<Vec<Group>> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn group_members(&self, group: &str) -> Result<Vec<User>> {
        Err(super::unported("Identities"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_group(&self, name: &str) -> Result<()> {
        Err(super::unported("Identities"))
    }
}
