//! [`Policies`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Policies for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn put_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
        document: &str,
    ) -> Result<()> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn get_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
    ) -> Result<String> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_inline_policy(&self, kind: PrincipalKind, principal: &str, name: &str) -> Result<()> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn inline_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<(String, String)>> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        description: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<ManagedPolicy> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn get_policy(&self, arn: &str) -> Result<ManagedPolicy> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_policies(&self) -> Result<Vec<ManagedPolicy>> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn managed_policy(&self, arn: &str) -> Result<String> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_policy(&self, arn: &str) -> Result<()> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_default: bool,
        now: i64,
    ) -> Result<PolicyVersion> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<()> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn set_default_policy_version(&self, arn: &str, version_id: &str, now: i64) -> Result<()> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn tag_policy(&self, arn: &str, tags: &[(String, String)]) -> Result<()> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn untag_policy(&self, arn: &str, keys: &[&str]) -> Result<()> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn attach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn detach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn attached_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<ManagedPolicy>> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn policy_entities(&self, arn: &str) -> Result<Vec<PolicyEntity>> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn identity_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<(String, String)>> {
        Err(super::unported("Policies"))
    }

    #[allow(clippy::too_many_arguments)]
    fn all_identity_policies(&self) -> Result<Vec<(PrincipalKind, String, String, String)>> {
        Err(super::unported("Policies"))
    }
}
