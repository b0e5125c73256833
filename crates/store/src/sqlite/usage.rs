//! The access advisor's data: last uses (forward only), jobs, and the
//! credential report.

use rusqlite::{OptionalExtension, params};

use super::SqliteBackend;
use crate::Result;
use crate::backend::{AdvisorJob, CredentialLastUse, LastAccess, Usage};

impl Usage for SqliteBackend {
    fn record_usage(
        &self,
        permissions: &[LastAccess],
        credentials: &[CredentialLastUse],
    ) -> Result<()> {
        if permissions.is_empty() && credentials.is_empty() {
            return Ok(());
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO last_accessed (principal, action, resource, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET at = excluded.at WHERE excluded.at > at",
            )?;
            for u in permissions {
                put.execute(params![u.principal, u.action, u.resource, u.at])?;
            }
            let mut put = tx.prepare_cached(
                "INSERT INTO credential_last_used (id, at, service) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO UPDATE SET at = excluded.at, service = excluded.service WHERE excluded.at > at",
            )?;
            for c in credentials {
                put.execute(params![c.id, c.at, c.service])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn last_accesses(&self, principals: &[&str]) -> Result<Vec<LastAccess>> {
        let db = self.reader();
        let mut stmt = db.prepare_cached(
            "SELECT principal, action, resource, at FROM last_accessed WHERE principal = ?1 ORDER BY action, resource",
        )?;
        let mut out = Vec::new();
        let mut principals = principals.to_vec();
        principals.sort_by_key(|p| p.to_ascii_lowercase());
        principals.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        for p in principals {
            let rows = stmt.query_map([p], |r| {
                Ok(LastAccess {
                    principal: r.get(0)?,
                    action: r.get(1)?,
                    resource: r.get(2)?,
                    at: r.get(3)?,
                })
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    fn credential_last_use(&self, id: &str) -> Result<Option<CredentialLastUse>> {
        Ok(self
            .reader()
            .prepare_cached("SELECT id, at, service FROM credential_last_used WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(CredentialLastUse {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    service: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn credential_last_uses(&self) -> Result<Vec<CredentialLastUse>> {
        let db = self.reader();
        let mut stmt =
            db.prepare_cached("SELECT id, at, service FROM credential_last_used ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(CredentialLastUse {
                id: r.get(0)?,
                at: r.get(1)?,
                service: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn clear_usage(&self) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM last_accessed", [])?;
        tx.execute("DELETE FROM credential_last_used", [])?;
        tx.commit()?;
        Ok(())
    }

    fn put_advisor_job(&self, job: &AdvisorJob, expire_before: i64) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "DELETE FROM advisor_jobs WHERE created < ?1",
            [expire_before],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO advisor_jobs (id, arn, granularity, created, report) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![job.id, job.arn, job.granularity, job.created, job.report],
        )?;
        tx.execute(
            "DELETE FROM advisor_jobs WHERE arn = ?1 AND granularity = ?2 AND id NOT IN \
             (SELECT id FROM advisor_jobs WHERE arn = ?1 AND granularity = ?2 \
              ORDER BY created DESC, rowid DESC LIMIT ?3)",
            params![
                job.arn,
                job.granularity,
                crate::MAX_ADVISOR_JOBS_PER_SUBJECT
            ],
        )?;
        tx.execute(
            "DELETE FROM advisor_jobs WHERE id NOT IN \
             (SELECT id FROM advisor_jobs ORDER BY created DESC, rowid DESC LIMIT ?1)",
            [crate::MAX_ADVISOR_JOBS],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn advisor_job(&self, id: &str) -> Result<Option<AdvisorJob>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT id, arn, granularity, created, report FROM advisor_jobs WHERE id = ?1",
                [id],
                advisor_job_row,
            )
            .optional()?)
    }

    fn advisor_jobs(&self, granularity: &str, arn: Option<&str>) -> Result<Vec<AdvisorJob>> {
        let db = self.reader();
        let mut stmt = db.prepare(
            "SELECT id, arn, granularity, created, report FROM advisor_jobs \
             WHERE granularity = ?1 AND (?2 IS NULL OR arn = ?2) ORDER BY created, rowid",
        )?;
        let rows = stmt.query_map(params![granularity, arn], advisor_job_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn put_credential_report(&self, generated: i64, csv: &str) -> Result<()> {
        self.db().execute(
            "INSERT OR REPLACE INTO credential_report (id, generated, csv) VALUES (1, ?1, ?2)",
            params![generated, csv],
        )?;
        Ok(())
    }

    fn credential_report(&self) -> Result<Option<(i64, String)>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT generated, csv FROM credential_report WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}

fn advisor_job_row(r: &rusqlite::Row) -> rusqlite::Result<AdvisorJob> {
    Ok(AdvisorJob {
        id: r.get(0)?,
        arn: r.get(1)?,
        granularity: r.get(2)?,
        created: r.get(3)?,
        report: r.get(4)?,
    })
}
