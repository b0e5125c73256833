//! KMS keys: one row of metadata per key, one sealed key material per
//! version, and the aliases.

use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::SqliteBackend;
use crate::backend::{KmsAlias, KmsKeys, StoredKmsKey};
use crate::shared::{MATERIAL_CACHE, kms_context as context};
use crate::{Result, StoreError};

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredKmsKey> {
    Ok(StoredKmsKey {
        id: r.get(0)?,
        revision: r.get(1)?,
        document: r.get(2)?,
    })
}

fn alias(r: &rusqlite::Row<'_>) -> rusqlite::Result<KmsAlias> {
    Ok(KmsAlias {
        name: r.get(0)?,
        key_id: r.get(1)?,
        created: r.get(2)?,
        updated: r.get(3)?,
    })
}

const KEY_COLUMNS: &str = "SELECT id, revision, document FROM kms_keys";
const ALIAS_COLUMNS: &str = "SELECT name, key_id, created, updated FROM kms_aliases";

impl KmsKeys for SqliteBackend {
    fn create_kms_key(&self, id: &str, document: &str, material: &[u8]) -> Result<()> {
        let sealed = self.vault().seal(material, &context(id, 1))?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO kms_keys (id, revision, document) VALUES (?1, 1, ?2) ON CONFLICT DO NOTHING",
            params![id, document],
        )?;
        if inserted == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "key",
                name: id.to_owned(),
            });
        }
        tx.execute(
            "INSERT INTO kms_key_materials (key_id, version, material) VALUES (?1, 1, ?2)",
            params![id, sealed],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn kms_key(&self, id: &str) -> Result<Option<StoredKmsKey>> {
        Ok(self
            .reader()
            .prepare_cached("SELECT id, revision, document FROM kms_keys WHERE id = ?1")?
            .query_row([id], stored)
            .optional()?)
    }

    fn list_kms_keys(&self) -> Result<Vec<StoredKmsKey>> {
        let db = self.db();
        let mut stmt = db.prepare(&format!("{KEY_COLUMNS} ORDER BY rowid"))?;
        let rows = stmt.query_map([], stored)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
                    .map(|s| (version, s))
            })
            .transpose()?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let updated = tx.execute(
            "UPDATE kms_keys SET document = ?1, revision = revision + 1 WHERE id = ?2 AND revision = ?3",
            params![document, id, revision],
        )?;
        if updated == 0 {
            return Ok(false);
        }
        if let Some((version, sealed)) = sealed {
            tx.execute(
                "INSERT INTO kms_key_materials (key_id, version, material) VALUES (?1, ?2, ?3)",
                params![id, version, sealed],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn kms_key_material(&self, id: &str, version: u32) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if let Some(material) = self.cached_material(id, version) {
            return Ok(Some(material));
        }
        let sealed: Option<Vec<u8>> = self
            .reader()
            .prepare_cached(
                "SELECT material FROM kms_key_materials WHERE key_id = ?1 AND version = ?2",
            )?
            .query_row(params![id, version], |r| r.get(0))
            .optional()?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let material = self.vault().open(&sealed, &context(id, version))?;
        self.cache_material(id, version, &material);
        Ok(Some(material))
    }

    fn purge_kms_key(&self, id: &str) -> Result<()> {
        self.forget_materials(id);
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM kms_aliases WHERE key_id = ?1", [id])?;
        tx.execute("DELETE FROM kms_key_materials WHERE key_id = ?1", [id])?;
        tx.execute("DELETE FROM kms_keys WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    fn create_kms_alias(&self, name: &str, key_id: &str, now: i64) -> Result<()> {
        let inserted = self.db().execute(
            "INSERT INTO kms_aliases (name, key_id, created, updated) VALUES (?1, ?2, ?3, ?3) ON CONFLICT DO NOTHING",
            params![name, key_id, now],
        )?;
        if inserted == 0 {
            return Err(StoreError::EntityAlreadyExists {
                kind: "alias",
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn kms_alias(&self, name: &str) -> Result<Option<KmsAlias>> {
        Ok(self
            .reader()
            .prepare_cached(
                "SELECT name, key_id, created, updated FROM kms_aliases WHERE name = ?1",
            )?
            .query_row([name], alias)
            .optional()?)
    }

    fn list_kms_aliases(&self) -> Result<Vec<KmsAlias>> {
        let db = self.db();
        let mut stmt = db.prepare(&format!("{ALIAS_COLUMNS} ORDER BY name"))?;
        let rows = stmt.query_map([], alias)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn kms_aliases_of(&self, key_id: &str) -> Result<Vec<KmsAlias>> {
        let db = self.reader();
        let mut stmt =
            db.prepare_cached(
            "SELECT name, key_id, created, updated FROM kms_aliases WHERE key_id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([key_id], alias)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn update_kms_alias(&self, name: &str, key_id: &str, now: i64) -> Result<bool> {
        Ok(self.db().execute(
            "UPDATE kms_aliases SET key_id = ?2, updated = ?3 WHERE name = ?1",
            params![name, key_id, now],
        )? > 0)
    }

    fn delete_kms_alias(&self, name: &str) -> Result<bool> {
        Ok(self
            .db()
            .execute("DELETE FROM kms_aliases WHERE name = ?1", [name])?
            > 0)
    }
}

impl SqliteBackend {
    fn cached_material(&self, id: &str, version: u32) -> Option<Zeroizing<Vec<u8>>> {
        let cache = self.materials.read().unwrap_or_else(|p| p.into_inner());
        cache
            .get(id)
            .and_then(|versions| versions.get(&version))
            .cloned()
    }

    fn cache_material(&self, id: &str, version: u32, material: &Zeroizing<Vec<u8>>) {
        let mut cache = self.materials.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MATERIAL_CACHE && !cache.contains_key(id) {
            cache.clear();
        }
        cache
            .entry(id.to_owned())
            .or_default()
            .insert(version, material.clone());
    }

    fn forget_materials(&self, id: &str) {
        self.materials
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}
