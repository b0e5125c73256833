//! [`Classification`] on PostgreSQL.

#![allow(unused_variables)]

use super::PgBackend;
#[allow(unused_imports)]
use crate::backend::*;
#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use zeroize::Zeroizing;

impl Classification for PgBackend {
    #[allow(clippy::too_many_arguments)]
    fn tag_objects(&self, tags: &[ObjectTag]) -> Result<()> {
        Err(super::unported("Classification"))
    }

    #[allow(clippy::too_many_arguments)]
    fn untag_object(&self, target: &ObjectTag, keys: &[&str]) -> Result<usize> {
        Err(super::unported("Classification"))
    }

    #[allow(clippy::too_many_arguments)]
    fn object_tags(&self, database: Option<&str>) -> Result<Vec<ObjectTag>> {
        Err(super::unported("Classification"))
    }
}
