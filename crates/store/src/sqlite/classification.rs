//! Classification tags on database objects.

use rusqlite::params;

use super::{SqliteBackend, parse_column};
use crate::backend::Classification;
use crate::shared::MAX_TAGS_PER_OBJECT;
use crate::{ObjectTag, Result, StoreError};

impl Classification for SqliteBackend {
    fn tag_objects(&self, tags: &[ObjectTag]) -> Result<()> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        for tag in tags {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM databases WHERE name = ?1)",
                [&tag.database],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(StoreError::NoSuchEntity {
                    kind: "database",
                    name: tag.database.clone(),
                });
            }
            if tag.key.is_empty() || tag.key.len() > 128 || tag.value.len() > 256 {
                return Err(StoreError::InvalidInput(
                    "tag keys are 1-128 characters and values at most 256",
                ));
            }
            if tag.schema.is_empty() || tag.object.is_empty() {
                return Err(StoreError::InvalidInput(
                    "an object is named SCHEMA.NAME (for MySQL, DATABASE.TABLE)",
                ));
            }
            tx.execute(
                "INSERT INTO object_tags (database, kind, schema_name, object, col, key, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(database, kind, schema_name, object, col, key) DO UPDATE SET value = excluded.value",
                params![tag.database, tag.kind.as_str(), tag.schema, tag.object, tag.column, tag.key, tag.value],
            )?;
            let count: i64 = tx.query_row(
                "SELECT COUNT(*) FROM object_tags WHERE database = ?1 AND kind = ?2 AND schema_name = ?3 AND object = ?4 AND col = ?5",
                params![tag.database, tag.kind.as_str(), tag.schema, tag.object, tag.column],
                |r| r.get(0),
            )?;
            if count > MAX_TAGS_PER_OBJECT {
                return Err(StoreError::LimitExceeded(
                    "an object or column has at most 50 tags",
                ));
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn untag_object(&self, target: &ObjectTag, keys: &[&str]) -> Result<usize> {
        let conn = self.db();
        let mut removed = 0;
        for key in keys {
            removed += conn.execute(
                "DELETE FROM object_tags WHERE database = ?1 AND kind = ?2 AND schema_name = ?3 AND object = ?4 AND col = ?5 AND key = ?6",
                params![target.database, target.kind.as_str(), target.schema, target.object, target.column, key],
            )?;
        }
        Ok(removed)
    }

    fn object_tags(&self, database: Option<&str>) -> Result<Vec<ObjectTag>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT database, kind, schema_name, object, col, key, value FROM object_tags
             WHERE ?1 IS NULL OR database = ?1
             ORDER BY database, kind, schema_name, object, col, key",
        )?;
        let rows = stmt.query_map([database], |r| {
            Ok(ObjectTag {
                database: r.get(0)?,
                kind: parse_column(r, 1)?,
                schema: r.get(2)?,
                object: r.get(3)?,
                column: r.get(4)?,
                key: r.get(5)?,
                value: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
