//! [`Classification`] on PostgreSQL: the same rules as
//! `crate::sqlite::classification`.

use tokio_postgres::Row;

use super::{PgBackend, Sql};
use crate::backend::Classification;
use crate::shared::MAX_TAGS_PER_OBJECT;
use crate::{ObjectKind, ObjectTag, Result, StoreError};

fn row_to_tag(r: &Row) -> Result<ObjectTag> {
    let kind: String = r.try_get(1)?;
    Ok(ObjectTag {
        database: r.try_get(0)?,
        kind: kind
            .parse::<ObjectKind>()
            .map_err(|e| StoreError::Postgres(format!("object_tags.kind: {e}")))?,
        schema: r.try_get(2)?,
        object: r.try_get(3)?,
        column: r.try_get(4)?,
        key: r.try_get(5)?,
        value: r.try_get(6)?,
    })
}

impl Classification for PgBackend {
    fn tag_objects(&self, tags: &[ObjectTag]) -> Result<()> {
        self.write(|tx| {
            for tag in tags {
                let exists: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM databases WHERE name = $1)",
                        &[&tag.database],
                    )?
                    .try_get(0)?;
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
                let kind = tag.kind.as_str();
                tx.execute(
                    "INSERT INTO object_tags (database, kind, schema_name, object, col, key, value)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (database, kind, schema_name, object, col, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&tag.database, &kind, &tag.schema, &tag.object, &tag.column, &tag.key, &tag.value],
                )?;
                let count: i64 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM object_tags WHERE database = $1 AND kind = $2 AND schema_name = $3 AND object = $4 AND col = $5",
                        &[&tag.database, &kind, &tag.schema, &tag.object, &tag.column],
                    )?
                    .try_get(0)?;
                if count > MAX_TAGS_PER_OBJECT {
                    return Err(StoreError::LimitExceeded(
                        "an object or column has at most 50 tags",
                    ));
                }
            }
            Ok(())
        })
    }

    fn untag_object(&self, target: &ObjectTag, keys: &[&str]) -> Result<usize> {
        let kind = target.kind.as_str();
        let removed = self.write(|tx| {
            let mut removed: u64 = 0;
            for key in keys {
                removed += tx.execute(
                    "DELETE FROM object_tags WHERE database = $1 AND kind = $2 AND schema_name = $3 AND object = $4 AND col = $5 AND key = $6",
                    &[&target.database, &kind, &target.schema, &target.object, &target.column, key],
                )?;
            }
            Ok(removed)
        })?;
        usize::try_from(removed)
            .map_err(|_| StoreError::Postgres(format!("{removed} tags removed")))
    }

    fn object_tags(&self, database: Option<&str>) -> Result<Vec<ObjectTag>> {
        self.read(|c| {
            c.query(
                "SELECT database, kind, schema_name, object, col, key, value FROM object_tags
                 WHERE $1::TEXT IS NULL OR database = $1
                 ORDER BY database COLLATE \"C\", kind COLLATE \"C\", schema_name COLLATE \"C\",
                          object COLLATE \"C\", col COLLATE \"C\", key COLLATE \"C\"",
                &[&database],
            )?
            .iter()
            .map(row_to_tag)
            .collect()
        })
    }
}
