//! [`Usage`] on PostgreSQL, as SQLite's (`crate::sqlite::usage`): last uses
//! (forward only), access-advisor jobs and the credential report.
//!
//! Columns SQLite compares with `NOCASE` sort here by `lower(col COLLATE
//! "C")` (ASCII folding, then bytes), as `NOCASE` does.

use tokio_postgres::Row;

use super::{PgBackend, Sql};
use crate::Result;
use crate::backend::{AdvisorJob, CredentialLastUse, LastAccess, Usage};

fn last_access_row(r: &Row) -> Result<LastAccess> {
    Ok(LastAccess {
        principal: r.try_get(0)?,
        action: r.try_get(1)?,
        resource: r.try_get(2)?,
        at: r.try_get(3)?,
    })
}

fn credential_row(r: &Row) -> Result<CredentialLastUse> {
    Ok(CredentialLastUse {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        service: r.try_get(2)?,
    })
}

fn advisor_job_row(r: &Row) -> Result<AdvisorJob> {
    Ok(AdvisorJob {
        id: r.try_get(0)?,
        arn: r.try_get(1)?,
        granularity: r.try_get(2)?,
        created: r.try_get(3)?,
        report: r.try_get(4)?,
    })
}

impl Usage for PgBackend {
    fn record_usage(
        &self,
        permissions: &[LastAccess],
        credentials: &[CredentialLastUse],
    ) -> Result<()> {
        if permissions.is_empty() && credentials.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            for u in permissions {
                tx.execute(
                    "INSERT INTO last_accessed (principal, action, resource, at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (principal, action, resource) DO UPDATE SET at = EXCLUDED.at
                     WHERE EXCLUDED.at > last_accessed.at",
                    &[&u.principal, &u.action, &u.resource, &u.at],
                )?;
            }
            for c in credentials {
                tx.execute(
                    "INSERT INTO credential_last_used (id, at, service) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at, service = EXCLUDED.service
                     WHERE EXCLUDED.at > credential_last_used.at",
                    &[&c.id, &c.at, &c.service],
                )?;
            }
            Ok(())
        })
    }

    fn last_accesses(&self, principals: &[&str]) -> Result<Vec<LastAccess>> {
        let mut principals = principals.to_vec();
        principals.sort_by_key(|p| p.to_ascii_lowercase());
        principals.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        self.read(|c| {
            let mut out = Vec::new();
            for p in principals {
                for row in c.query(
                    "SELECT principal, action, resource, at FROM last_accessed WHERE principal = $1
                     ORDER BY lower(action COLLATE \"C\"), resource COLLATE \"C\"",
                    &[&p],
                )? {
                    out.push(last_access_row(&row)?);
                }
            }
            Ok(out)
        })
    }

    fn credential_last_use(&self, id: &str) -> Result<Option<CredentialLastUse>> {
        self.read(|c| {
            c.query_opt(
                "SELECT id, at, service FROM credential_last_used WHERE id = $1",
                &[&id],
            )?
            .as_ref()
            .map(credential_row)
            .transpose()
        })
    }

    fn credential_last_uses(&self) -> Result<Vec<CredentialLastUse>> {
        self.read(|c| {
            c.query(
                "SELECT id, at, service FROM credential_last_used ORDER BY lower(id COLLATE \"C\")",
                &[],
            )?
            .iter()
            .map(credential_row)
            .collect()
        })
    }

    fn clear_usage(&self) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM last_accessed", &[])?;
            tx.execute("DELETE FROM credential_last_used", &[])?;
            Ok(())
        })
    }

    /// Among jobs created in the same second, the latest stored is kept
    /// first (`seq`, as SQLite's `rowid`).
    fn put_advisor_job(&self, job: &AdvisorJob, expire_before: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM advisor_jobs WHERE created < $1",
                &[&expire_before],
            )?;
            tx.execute(
                "INSERT INTO advisor_jobs (id, arn, granularity, created, report) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET arn = EXCLUDED.arn, granularity = EXCLUDED.granularity,
                 created = EXCLUDED.created, report = EXCLUDED.report, seq = DEFAULT",
                &[&job.id, &job.arn, &job.granularity, &job.created, &job.report],
            )?;
            tx.execute(
                "DELETE FROM advisor_jobs WHERE arn = $1 AND granularity = $2 AND id NOT IN
                 (SELECT id FROM advisor_jobs WHERE arn = $1 AND granularity = $2
                  ORDER BY created DESC, seq DESC LIMIT $3)",
                &[
                    &job.arn,
                    &job.granularity,
                    &crate::MAX_ADVISOR_JOBS_PER_SUBJECT,
                ],
            )?;
            tx.execute(
                "DELETE FROM advisor_jobs WHERE id NOT IN
                 (SELECT id FROM advisor_jobs ORDER BY created DESC, seq DESC LIMIT $1)",
                &[&crate::MAX_ADVISOR_JOBS],
            )?;
            Ok(())
        })
    }

    fn advisor_job(&self, id: &str) -> Result<Option<AdvisorJob>> {
        self.read(|c| {
            c.query_opt(
                "SELECT id, arn, granularity, created, report FROM advisor_jobs WHERE id = $1",
                &[&id],
            )?
            .as_ref()
            .map(advisor_job_row)
            .transpose()
        })
    }

    fn advisor_jobs(&self, granularity: &str, arn: Option<&str>) -> Result<Vec<AdvisorJob>> {
        self.read(|c| {
            c.query(
                "SELECT id, arn, granularity, created, report FROM advisor_jobs
                 WHERE granularity = $1 AND ($2::text IS NULL OR arn = $2) ORDER BY created, seq",
                &[&granularity, &arn],
            )?
            .iter()
            .map(advisor_job_row)
            .collect()
        })
    }

    fn put_credential_report(&self, generated: i64, csv: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO credential_report (id, generated, csv) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET generated = EXCLUDED.generated, csv = EXCLUDED.csv",
                &[&generated, &csv],
            )?;
            Ok(())
        })
    }

    fn credential_report(&self) -> Result<Option<(i64, String)>> {
        self.read(|c| {
            c.query_opt(
                "SELECT generated, csv FROM credential_report WHERE id = 1",
                &[],
            )?
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
        })
    }
}
