//! [`KmsKeys`] on PostgreSQL, as SQLite's (`crate::sqlite::kms`): one row
//! of metadata per key, one sealed key material per version, and the
//! aliases. Unsealed material is kept in [`PgBackend::materials`].

use tokio_postgres::Row;
use zeroize::Zeroizing;

use super::{PgBackend, Sql};
use crate::backend::{KmsAlias, KmsKeys, StoredKmsKey};
use crate::shared::{MATERIAL_CACHE, kms_context as context};
use crate::{Result, StoreError};

fn stored(r: &Row) -> Result<StoredKmsKey> {
    Ok(StoredKmsKey {
        id: r.try_get(0)?,
        revision: r.try_get(1)?,
        document: r.try_get(2)?,
    })
}

fn alias(r: &Row) -> Result<KmsAlias> {
    Ok(KmsAlias {
        name: r.try_get(0)?,
        key_id: r.try_get(1)?,
        created: r.try_get(2)?,
        updated: r.try_get(3)?,
    })
}

fn cached_material(store: &PgBackend, id: &str, version: u32) -> Option<Zeroizing<Vec<u8>>> {
    let cache = store.materials().read().unwrap_or_else(|p| p.into_inner());
    cache
        .get(id)
        .and_then(|versions| versions.get(&version))
        .cloned()
}

fn cache_material(store: &PgBackend, id: &str, version: u32, material: &Zeroizing<Vec<u8>>) {
    let mut cache = store.materials().write().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= MATERIAL_CACHE && !cache.contains_key(id) {
        cache.clear();
    }
    cache
        .entry(id.to_owned())
        .or_default()
        .insert(version, material.clone());
}

fn forget_materials(store: &PgBackend, id: &str) {
    store
        .materials()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(id);
}

impl KmsKeys for PgBackend {
    fn create_kms_key(&self, id: &str, document: &str, material: &[u8]) -> Result<()> {
        let sealed = self.vault().seal(material, &context(id, 1))?;
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO kms_keys (id, revision, document) VALUES ($1, 1, $2) ON CONFLICT DO NOTHING",
                &[&id, &document],
            )?;
            if inserted == 0 {
                return Err(StoreError::EntityAlreadyExists {
                    kind: "key",
                    name: id.to_owned(),
                });
            }
            tx.execute(
                "INSERT INTO kms_key_materials (key_id, version, material) VALUES ($1, 1, $2)",
                &[&id, &sealed],
            )?;
            Ok(())
        })
    }

    fn kms_key(&self, id: &str) -> Result<Option<StoredKmsKey>> {
        self.read(|c| {
            c.query_opt(
                "SELECT id, revision, document FROM kms_keys WHERE id = $1",
                &[&id],
            )?
            .as_ref()
            .map(stored)
            .transpose()
        })
    }

    fn list_kms_keys(&self) -> Result<Vec<StoredKmsKey>> {
        self.read(|c| {
            c.query(
                "SELECT id, revision, document FROM kms_keys ORDER BY seq",
                &[],
            )?
            .iter()
            .map(stored)
            .collect::<Result<Vec<_>>>()
        })
    }

    fn update_kms_key(
        &self,
        id: &str,
        revision: i64,
        document: &str,
        material: Option<(u32, &[u8])>,
    ) -> Result<bool> {
        let sealed = material
            .map(|(version, plain)| {
                self.vault()
                    .seal(plain, &context(id, version))
                    .map(|s| (i64::from(version), s))
            })
            .transpose()?;
        self.write(|tx| {
            let updated = tx.execute(
                "UPDATE kms_keys SET document = $1, revision = revision + 1 WHERE id = $2 AND revision = $3",
                &[&document, &id, &revision],
            )?;
            if updated == 0 {
                return Ok(false);
            }
            if let Some((version, sealed)) = &sealed {
                tx.execute(
                    "INSERT INTO kms_key_materials (key_id, version, material) VALUES ($1, $2, $3)",
                    &[&id, version, sealed],
                )?;
            }
            Ok(true)
        })
    }

    fn kms_key_material(&self, id: &str, version: u32) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if let Some(material) = cached_material(self, id, version) {
            return Ok(Some(material));
        }
        let sealed: Option<Vec<u8>> = self.read(|c| {
            Ok(c.query_opt(
                "SELECT material FROM kms_key_materials WHERE key_id = $1 AND version = $2",
                &[&id, &i64::from(version)],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
        })?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let material = self.vault().open(&sealed, &context(id, version))?;
        cache_material(self, id, version, &material);
        Ok(Some(material))
    }

    fn purge_kms_key(&self, id: &str) -> Result<()> {
        forget_materials(self, id);
        self.write(|tx| {
            tx.execute("DELETE FROM kms_aliases WHERE key_id = $1", &[&id])?;
            tx.execute("DELETE FROM kms_key_materials WHERE key_id = $1", &[&id])?;
            tx.execute("DELETE FROM kms_keys WHERE id = $1", &[&id])?;
            Ok(())
        })
    }

    fn create_kms_alias(&self, name: &str, key_id: &str, now: i64) -> Result<()> {
        let inserted = self.write(|tx| {
            tx.execute(
                "INSERT INTO kms_aliases (name, key_id, created, updated) VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING",
                &[&name, &key_id, &now],
            )
        })?;
        if inserted == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "alias",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn kms_alias(&self, name: &str) -> Result<Option<KmsAlias>> {
        self.read(|c| {
            c.query_opt(
                "SELECT name, key_id, created, updated FROM kms_aliases WHERE name = $1",
                &[&name],
            )?
            .as_ref()
            .map(alias)
            .transpose()
        })
    }

    fn list_kms_aliases(&self) -> Result<Vec<KmsAlias>> {
        self.read(|c| {
            c.query(
                "SELECT name, key_id, created, updated FROM kms_aliases ORDER BY name COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(alias)
            .collect()
        })
    }

    fn kms_aliases_of(&self, key_id: &str) -> Result<Vec<KmsAlias>> {
        self.read(|c| {
            c.query(
                "SELECT name, key_id, created, updated FROM kms_aliases WHERE key_id = $1 ORDER BY name COLLATE \"C\"",
                &[&key_id],
            )?
            .iter()
            .map(alias)
            .collect()
        })
    }

    fn update_kms_alias(&self, name: &str, key_id: &str, now: i64) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE kms_aliases SET key_id = $2, updated = $3 WHERE name = $1",
                &[&name, &key_id, &now],
            )? > 0)
        })
    }

    fn delete_kms_alias(&self, name: &str) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("DELETE FROM kms_aliases WHERE name = $1", &[&name])? > 0))
    }
}
