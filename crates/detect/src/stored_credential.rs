//! Rule 9: the real server refused the credential the gateway holds.
//!
//! The gateway logs in upstream with a password the client never sees.
//! If the server stops taking it, someone changed it behind the gateway's
//! back (through a direct connection, or a session allowed
//! `latchkey:ChangeDatabasePassword`) and may now log in directly, past
//! IAM, the audit trail and revocation; meanwhile every gateway login for
//! that user fails. That is not an outage, so it is a finding of its own.

use std::net::IpAddr;

use latchkey_audit::{AuthEvent, Severity};

use crate::findings::{Hit, Proof};
use crate::{Detector, Outcome, kinds};

impl Detector {
    pub(crate) fn stored_credential_refused(
        &mut self,
        event_id: &str,
        auth: &AuthEvent,
        ip: IpAddr,
        reason: &str,
        out: &mut Vec<Outcome>,
    ) {
        let database = auth
            .database
            .clone()
            .or_else(|| auth.endpoint.clone())
            .unwrap_or_else(|| "unknown database".to_owned());
        let principal = auth.identity.as_ref().map(|i| i.arn.clone());
        let cfg = &self.config.stored_credential_refused;
        let hit = Hit {
            kind: kinds::STORED_CREDENTIAL_REFUSED,
            severity: Severity::High,
            title: format!(
                "The {} server refused the stored credential of database user {:?} on {database}",
                auth.engine, auth.db_user
            ),
            description: format!(
                "A login from {ip}{} passed every check, but the server refused the credential \
                 Latchkey holds for database user {:?} on {database} ({reason}). Its password may \
                 have been changed behind the gateway, by someone who can now log in directly; \
                 every gateway login for this user fails until it is set again (`latchkey db \
                 set-password`). Check the server's log for who changed it.",
                principal
                    .as_deref()
                    .map_or(String::new(), |p| format!(" by {p}")),
                auth.db_user,
            ),
            resource: format!("{database}/{}", auth.db_user),
            principal,
            source_ip: Some(ip),
            time: auth.time,
            evidence: vec![event_id.to_owned()],
            response: cfg.action,
            block_secs: cfg.block_secs,
        };
        // The login passed every check, but with a reused token that may be
        // anyone's replay: only a fresh signature lets this act against
        // the principal.
        self.findings
            .report_with(hit, Proof::of(auth.possession_proven, ip), out);
    }
}
