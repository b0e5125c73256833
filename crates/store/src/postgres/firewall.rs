//! [`Firewall`] on PostgreSQL, as SQLite's (`crate::sqlite::firewall`):
//! the SQL firewall's settings, profiles and known shapes.

use std::collections::HashMap;
use std::str::FromStr;

use tokio_postgres::Row;

use super::{PgBackend, Sql, Tx};
use crate::backend::Firewall;
use crate::shared::{fingerprint_from_sql as from_sql, fingerprint_to_sql as to_sql};
use crate::{
    Fingerprint, FirewallConfig, FirewallMode, FirewallProfile, KnownShape, LearnedShape,
    ProfileMode, Result, ShapeSource, StoreError, shape_text,
};

/// A text column holding one of a closed set of values; an unknown one is
/// an error, not a guess.
fn parse_column<T>(r: &Row, i: usize) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text: String = r.try_get(i)?;
    text.parse()
        .map_err(|e| StoreError::Postgres(format!("column {i} of a firewall table: {e}")))
}

fn config_row(r: &Row) -> Result<FirewallConfig> {
    let learning: i64 = r.try_get(2)?;
    Ok(FirewallConfig {
        database: r.try_get(0)?,
        mode: parse_column(r, 1)?,
        learning_secs: u64::try_from(learning).unwrap_or(0),
        revision: r.try_get(3)?,
    })
}

fn profile_row(r: &Row) -> Result<FirewallProfile> {
    Ok(FirewallProfile {
        database: r.try_get(0)?,
        principal: r.try_get(1)?,
        mode: parse_column(r, 2)?,
        learning_until: r.try_get(3)?,
        stacks: r.try_get::<_, i64>(4)? != 0,
        unions: r.try_get::<_, i64>(5)? != 0,
        created: r.try_get(6)?,
        shapes: Vec::new(),
    })
}

/// A row of `principal, fingerprint, text, first_seen, source`.
fn shape_row(r: &Row) -> Result<(String, KnownShape)> {
    Ok((
        r.try_get(0)?,
        KnownShape {
            fingerprint: from_sql(r.try_get(1)?),
            text: r.try_get(2)?,
            first_seen: r.try_get(3)?,
            source: parse_column(r, 4)?,
        },
    ))
}

fn require_database(tx: &Tx<'_>, database: &str) -> Result<()> {
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM databases WHERE name = $1)",
            &[&database],
        )?
        .try_get(0)?;
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
fn bump(tx: &Tx<'_>, database: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO firewall_config (database, mode, learning_secs, revision) VALUES ($1, 'off', 0, 1)
         ON CONFLICT (database) DO UPDATE SET revision = firewall_config.revision + 1",
        &[&database],
    )?;
    Ok(())
}

/// Creates a profile in `learn` mode unless one exists.
fn ensure_profile(
    tx: &Tx<'_>,
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
         VALUES ($1, $2, 'learn', $3, 0, 0, $4) ON CONFLICT (database, principal) DO NOTHING",
        &[&database, &principal, &learning_until, &now],
    )?;
    Ok(())
}

impl Firewall for PgBackend {
    fn configure_firewall(
        &self,
        database: &str,
        mode: FirewallMode,
        learning_secs: u64,
    ) -> Result<FirewallConfig> {
        let learning = i64::try_from(learning_secs)
            .map_err(|_| StoreError::InvalidInput("the learning window is too long"))?;
        self.write(|tx| {
            require_database(tx, database)?;
            tx.execute(
                "INSERT INTO firewall_config (database, mode, learning_secs, revision) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (database) DO UPDATE SET mode = EXCLUDED.mode, learning_secs = EXCLUDED.learning_secs,
                 revision = firewall_config.revision + 1",
                &[&database, &mode.as_str(), &learning],
            )?;
            config_row(&tx.query_one(
                "SELECT database, mode, learning_secs, revision FROM firewall_config WHERE database = $1",
                &[&database],
            )?)
        })
    }

    fn firewall_configs(&self) -> Result<Vec<FirewallConfig>> {
        self.read(|c| {
            c.query(
                "SELECT database, mode, learning_secs, revision FROM firewall_config ORDER BY database COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(config_row)
            .collect()
        })
    }

    fn firewall_profiles(
        &self,
        database: &str,
        principal: Option<&str>,
    ) -> Result<Vec<FirewallProfile>> {
        self.read(|c| {
            let mut profiles = c
                .query(
                    "SELECT database, principal, mode, learning_until, stacks, unions, created FROM firewall_profiles
                     WHERE database = $1 AND ($2::text IS NULL OR principal = $2) ORDER BY principal COLLATE \"C\"",
                    &[&database, &principal],
                )?
                .iter()
                .map(profile_row)
                .collect::<Result<Vec<_>>>()?;
            let at: HashMap<String, usize> = profiles
                .iter()
                .enumerate()
                .map(|(i, p)| (p.principal.clone(), i))
                .collect();
            let shapes = c.query(
                "SELECT principal, fingerprint, text, first_seen, source FROM firewall_shapes
                 WHERE database = $1 AND ($2::text IS NULL OR principal = $2) ORDER BY first_seen, fingerprint",
                &[&database, &principal],
            )?;
            for row in &shapes {
                let (owner, shape) = shape_row(row)?;
                // A shape of a profile written after the profiles were read
                // waits for the next read.
                if let Some(&i) = at.get(&owner) {
                    profiles[i].shapes.push(shape);
                }
            }
            Ok(profiles)
        })
    }

    fn learn_shapes(&self, learned: &[LearnedShape]) -> Result<usize> {
        self.write(|tx| {
            let mut new = 0;
            let mut bumped: Vec<&str> = Vec::new();
            for shape in learned {
                ensure_profile(
                    tx,
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
                let inserted = tx.execute(
                    "INSERT INTO firewall_shapes (database, principal, fingerprint, text, first_seen, source)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (database, principal, fingerprint) DO NOTHING",
                    &[
                        &shape.database,
                        &shape.principal,
                        &to_sql(fingerprint),
                        &shape_text(&shape.text),
                        &shape.at,
                        &ShapeSource::Learned.as_str(),
                    ],
                )?;
                new += usize::try_from(inserted)
                    .map_err(|_| StoreError::Postgres(format!("{inserted} shapes inserted")))?;
                if shape.stacked || shape.union {
                    tx.execute(
                        "UPDATE firewall_profiles
                         SET stacks = CASE WHEN $3 THEN 1 ELSE stacks END, unions = CASE WHEN $4 THEN 1 ELSE unions END
                         WHERE database = $1 AND principal = $2",
                        &[&shape.database, &shape.principal, &shape.stacked, &shape.union],
                    )?;
                }
            }
            for database in bumped {
                bump(tx, database)?;
            }
            Ok(new)
        })
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
        let text = shape_text(text);
        self.write(|tx| {
            require_database(tx, database)?;
            ensure_profile(tx, database, principal, learning_until, now)?;
            let existing = tx.query_opt(
                "SELECT source FROM firewall_shapes WHERE database = $1 AND principal = $2 AND fingerprint = $3",
                &[&database, &principal, &to_sql(fingerprint)],
            )?;
            match existing {
                Some(_) => {
                    tx.execute(
                        "UPDATE firewall_shapes SET source = $4, text = CASE WHEN $5::text = '' THEN text ELSE $5 END
                         WHERE database = $1 AND principal = $2 AND fingerprint = $3",
                        &[
                            &database,
                            &principal,
                            &to_sql(fingerprint),
                            &ShapeSource::Approved.as_str(),
                            &text,
                        ],
                    )?;
                }
                None => {
                    tx.execute(
                        "INSERT INTO firewall_shapes (database, principal, fingerprint, text, first_seen, source)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &[
                            &database,
                            &principal,
                            &to_sql(fingerprint),
                            &text,
                            &now,
                            &ShapeSource::Approved.as_str(),
                        ],
                    )?;
                }
            }
            bump(tx, database)?;
            Ok(existing.is_none())
        })
    }

    fn set_profile_mode(
        &self,
        database: &str,
        principal: &str,
        mode: ProfileMode,
        learning_until: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let until = if mode == ProfileMode::Learn {
            learning_until
        } else {
            None
        };
        self.write(|tx| {
            require_database(tx, database)?;
            ensure_profile(tx, database, principal, learning_until, now)?;
            tx.execute(
                "UPDATE firewall_profiles SET mode = $3, learning_until = $4 WHERE database = $1 AND principal = $2",
                &[&database, &principal, &mode.as_str(), &until],
            )?;
            bump(tx, database)
        })
    }
}
