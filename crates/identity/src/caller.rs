//! An authenticated principal, as authorisation and the audit log see it.

use std::time::UNIX_EPOCH;

use latchkey_session::SessionClaims;

/// Who is calling.
#[derive(Clone, Debug)]
pub enum Identity {
    /// An IAM user, with a long-term key or a `GetSessionToken` session.
    User { name: String },
    /// A role session from `AssumeRole`.
    Role { name: String, session: String },
}

#[derive(Clone, Debug)]
pub struct Caller {
    /// User ARN, or `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// `AIDA...` or `AROA...:session`.
    pub user_id: String,
    pub account: String,
    pub identity: Identity,
    pub access_key_id: String,
    /// Present for temporary credentials.
    pub session: Option<SessionClaims>,
    pub source_ip: String,
    pub tags: Vec<(String, String)>,
}

impl Caller {
    /// The unique id of the principal behind the credentials: the user's
    /// (`AIDA…`), or for a role session the role's (`AROA…`, without
    /// the session's name). Re-created entities of the same name get
    /// another.
    pub fn principal_id(&self) -> &str {
        self.user_id.split(':').next().unwrap_or(&self.user_id)
    }

    /// CloudTrail's `userIdentity` for this caller.
    pub fn audit_identity(&self) -> latchkey_audit::Identity {
        use latchkey_audit::{IdentityKind, SessionContext, SessionIssuer};
        let kind = match self.identity {
            Identity::User { .. } => IdentityKind::IamUser,
            Identity::Role { .. } => IdentityKind::AssumedRole,
        };
        let session = self.session.as_ref().map(|c| {
            let issuer = if c.role_arn.is_empty() {
                SessionIssuer {
                    kind: "IAMUser",
                    arn: c.principal_arn.clone(),
                    principal_id: c.principal_id.clone(),
                    account_id: c.account.clone(),
                    user_name: c
                        .principal_arn
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                }
            } else {
                SessionIssuer {
                    kind: "Role",
                    arn: c.role_arn.clone(),
                    principal_id: c.role_id.clone(),
                    account_id: c.account.clone(),
                    user_name: c.role_arn.rsplit('/').next().unwrap_or_default().to_owned(),
                }
            };
            SessionContext {
                mfa_authenticated: c.mfa_authenticated,
                creation_date: UNIX_EPOCH
                    + std::time::Duration::from_secs(u64::try_from(c.issued).unwrap_or(0)),
                issuer,
                source_ip: c.source_ip.clone(),
            }
        });
        latchkey_audit::Identity {
            kind,
            arn: self.arn.clone(),
            principal_id: self.user_id.clone(),
            account_id: self.account.clone(),
            access_key_id: self.access_key_id.clone(),
            session,
        }
    }
}
