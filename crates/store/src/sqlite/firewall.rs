//! The SQL firewall's settings, profiles and known shapes.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{SqliteBackend, parse_column};
use crate::backend::Firewall;
use crate::shared::{fingerprint_from_sql as from_sql, fingerprint_to_sql as to_sql};
use crate::{
    Fingerprint, FirewallConfig, FirewallMode, FirewallProfile, KnownShape, LearnedShape,
    ProfileMode, Result, ShapeSource, StoreError, shape_text,
};

fn require_database(tx: &Transaction<'_>, database: &str) -> Result<()> {
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM databases WHERE name = ?1)",
        [database],
        |r| r.get(0),
    )?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::NoSuchEntity {
            kind: "database",
            name: database.to_owned(),
        })
    }
}

/// Bumps a database's firewall revision (creating its settings, off).
fn bump(tx: &Transaction<'_>, database: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO firewall_config (database, mode, learning_secs, revision) VALUES (?1, 'off', 0, 1)
         ON CONFLICT(database) DO UPDATE SET revision = revision + 1",
        [database],
    )?;
    Ok(())
}

/// Creates a profile in `learn` mode unless one exists.
fn ensure_profile(
    tx: &Transaction<'_>,
    database: &str,
    principal: &str,
    learning_until: Option<i64>,
    now: i64,
) -> Result<()> {
    if principal.is_empty() || principal.len() > 2048 {
        return Err(StoreError::InvalidInput(
            "a principal is an ARN of at most 2048 characters",
        ));
    }
    tx.execute(
        "INSERT INTO firewall_profiles (database, principal, mode, learning_until, stacks, unions, created)
         VALUES (?1, ?2, 'learn', ?3, 0, 0, ?4) ON CONFLICT(database, principal) DO NOTHING",
        params![database, principal, learning_until, now],
    )?;
    Ok(())
}

impl Firewall for SqliteBackend {
    fn configure_firewall(
        &self,
        database: &str,
        mode: FirewallMode,
        learning_secs: u64,
    ) -> Result<FirewallConfig> {
        let learning = i64::try_from(learning_secs)
            .map_err(|_| StoreError::InvalidInput("the learning window is too long"))?;
        let mut conn = self.db();
        let tx = conn.transaction()?;
        require_database(&tx, database)?;
        tx.execute(
            "INSERT INTO firewall_config (database, mode, learning_secs, revision) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT(database) DO UPDATE SET mode = excluded.mode, learning_secs = excluded.learning_secs, revision = revision + 1",
            params![database, mode.as_str(), learning],
        )?;
        let config = tx.query_row(
            "SELECT database, mode, learning_secs, revision FROM firewall_config WHERE database = ?1",
            [database],
            config_row,
        )?;
        tx.commit()?;
        Ok(config)
    }

    fn firewall_configs(&self) -> Result<Vec<FirewallConfig>> {
        let conn = self.db();
        let mut stmt = conn.prepare(
            "SELECT database, mode, learning_secs, revision FROM firewall_config ORDER BY database",
        )?;
        let rows = stmt.query_map([], config_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn firewall_profiles(
        &self,
        database: &str,
        principal: Option<&str>,
    ) -> Result<Vec<FirewallProfile>> {
        let conn = self.db();
        let mut stmt = conn.prepare(
            "SELECT database, principal, mode, learning_until, stacks, unions, created FROM firewall_profiles
             WHERE database = ?1 AND (?2 IS NULL OR principal = ?2) ORDER BY principal",
        )?;
        let mut profiles = stmt
            .query_map(params![database, principal], |r| {
                Ok(FirewallProfile {
                    database: r.get(0)?,
                    principal: r.get(1)?,
                    mode: parse_column(r, 2)?,
                    learning_until: r.get(3)?,
                    stacks: r.get(4)?,
                    unions: r.get(5)?,
                    created: r.get(6)?,
                    shapes: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut shapes = conn.prepare(
            "SELECT fingerprint, text, first_seen, source FROM firewall_shapes
             WHERE database = ?1 AND principal = ?2 ORDER BY first_seen, fingerprint",
        )?;
        for profile in &mut profiles {
            profile.shapes = shapes
                .query_map(params![database, profile.principal], |r| {
                    Ok(KnownShape {
                        fingerprint: from_sql(r.get(0)?),
                        text: r.get(1)?,
                        first_seen: r.get(2)?,
                        source: parse_column(r, 3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(profiles)
    }

    fn learn_shapes(&self, learned: &[LearnedShape]) -> Result<usize> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let mut new = 0;
        let mut bumped: Vec<&str> = Vec::new();
        for shape in learned {
            ensure_profile(
                &tx,
                &shape.database,
                &shape.principal,
                shape.learning_until,
                shape.at,
            )?;
            if !bumped.contains(&shape.database.as_str()) {
                bumped.push(&shape.database);
            }
            let Some(fingerprint) = shape.fingerprint else {
                continue;
            };
            new += tx.execute(
                "INSERT INTO firewall_shapes (database, principal, fingerprint, text, first_seen, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(database, principal, fingerprint) DO NOTHING",
                params![
                    shape.database,
                    shape.principal,
                    to_sql(fingerprint),
                    shape_text(&shape.text),
                    shape.at,
                    ShapeSource::Learned.as_str()
                ],
            )?;
            if shape.stacked || shape.union {
                tx.execute(
                    "UPDATE firewall_profiles SET stacks = stacks OR ?3, unions = unions OR ?4
                     WHERE database = ?1 AND principal = ?2",
                    params![shape.database, shape.principal, shape.stacked, shape.union],
                )?;
            }
        }
        for database in bumped {
            bump(&tx, database)?;
        }
        tx.commit()?;
        Ok(new)
    }

    fn approve_shape(
        &self,
        database: &str,
        principal: &str,
        fingerprint: Fingerprint,
        text: &str,
        now: i64,
        learning_until: Option<i64>,
    ) -> Result<bool> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        require_database(&tx, database)?;
        ensure_profile(&tx, database, principal, learning_until, now)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT source FROM firewall_shapes WHERE database = ?1 AND principal = ?2 AND fingerprint = ?3",
                params![database, principal, to_sql(fingerprint)],
                |r| r.get(0),
            )
            .optional()?;
        let text = shape_text(text);
        match existing {
            Some(_) => {
                tx.execute(
                    "UPDATE firewall_shapes SET source = ?4, text = CASE WHEN ?5 = '' THEN text ELSE ?5 END
                     WHERE database = ?1 AND principal = ?2 AND fingerprint = ?3",
                    params![database, principal, to_sql(fingerprint), ShapeSource::Approved.as_str(), text],
                )?;
            }
            None => {
                tx.execute(
                    "INSERT INTO firewall_shapes (database, principal, fingerprint, text, first_seen, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![database, principal, to_sql(fingerprint), text, now, ShapeSource::Approved.as_str()],
                )?;
            }
        }
        bump(&tx, database)?;
        tx.commit()?;
        Ok(existing.is_none())
    }

    fn set_profile_mode(
        &self,
        database: &str,
        principal: &str,
        mode: ProfileMode,
        learning_until: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let mut conn = self.db();
        let tx = conn.transaction()?;
        require_database(&tx, database)?;
        ensure_profile(&tx, database, principal, learning_until, now)?;
        tx.execute(
            "UPDATE firewall_profiles SET mode = ?3, learning_until = ?4 WHERE database = ?1 AND principal = ?2",
            params![
                database,
                principal,
                mode.as_str(),
                if mode == ProfileMode::Learn { learning_until } else { None }
            ],
        )?;
        bump(&tx, database)?;
        tx.commit()?;
        Ok(())
    }
}

fn config_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FirewallConfig> {
    let learning: i64 = r.get(2)?;
    Ok(FirewallConfig {
        database: r.get(0)?,
        mode: parse_column(r, 1)?,
        learning_secs: u64::try_from(learning).unwrap_or(0),
        revision: r.get(3)?,
    })
}
