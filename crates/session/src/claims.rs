//! What a session token carries, and its compact binary encoding.

/// Who a set of temporary credentials belongs to and what limits them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SessionClaims {
    /// Random and unique per session; the access key id and secret derive from it.
    pub token_id: [u8; 16],
    pub account: String,
    /// The long-term identity that obtained the session (user ARN, or the
    /// previous role session for role chaining).
    pub principal_arn: String,
    /// The unique id of that identity (`AIDA...`, or `AROA...:session`).
    pub principal_id: String,
    /// The assumed role's ARN; empty for `GetSessionToken`.
    pub role_arn: String,
    /// The role's unique id (`AROA...`); empty for `GetSessionToken`.
    pub role_id: String,
    pub session_name: String,
    /// Unix seconds.
    pub issued: i64,
    /// Unix seconds.
    pub expires: i64,
    pub mfa_authenticated: bool,
    /// When MFA was presented (Unix seconds), if it was.
    pub mfa_time: Option<i64>,
    pub source_identity: String,
    /// The address that obtained the credentials, for detection rules.
    pub source_ip: String,
    /// Session tags.
    pub tags: Vec<(String, String)>,
    /// Inline session policy JSON; empty when none.
    pub session_policy: String,
    /// Managed session policy ARNs.
    pub policy_arns: Vec<String>,
    /// Role-chaining depth: 0 for credentials from a long-term key.
    pub chain_depth: u8,
    /// Session tag keys that pass on to sessions this one assumes.
    pub transitive_tag_keys: Vec<String>,
    /// Every identity the chain went through before this session, oldest
    /// first, so that revoking or deleting any of them ends this session.
    pub lineage: Vec<Ancestor>,
}

/// An identity earlier in a role chain (the user that started it, or a
/// role whose session assumed the next role).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ancestor {
    /// The user's or role's ARN (`arn:aws:iam::ACCT:role/PATH/NAME`).
    pub arn: String,
    /// Its unique id (`AIDA…`, `AROA…`): a re-created entity of the same
    /// name has another.
    pub id: String,
    /// When that identity's session in the chain was issued (Unix seconds):
    /// what a revocation of the identity is compared with.
    pub issued: i64,
}

/// Why an encoded claim set could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated")]
    Truncated,
    #[error("trailing bytes")]
    Trailing,
    #[error("a string is not UTF-8")]
    NotUtf8,
    #[error("a field is too long to encode")]
    TooLong,
}

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) -> Result<(), DecodeError> {
        let len = u16::try_from(b.len()).map_err(|_| DecodeError::TooLong)?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b);
        Ok(())
    }

    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn count(&mut self, n: usize) -> Result<(), DecodeError> {
        let n = u16::try_from(n).map_err(|_| DecodeError::TooLong)?;
        self.0.extend_from_slice(&n.to_be_bytes());
        Ok(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<usize, DecodeError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.u16()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::NotUtf8)
    }
}

const FLAG_MFA: u8 = 1;
const FLAG_MFA_TIME: u8 = 2;

impl SessionClaims {
    /// Fixed-order, length-prefixed encoding: compact (tokens travel in
    /// every request) and trivially strict to decode.
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        let mut w = Writer(Vec::with_capacity(256));
        w.0.extend_from_slice(&self.token_id);
        w.i64(self.issued);
        w.i64(self.expires);
        let mut flags = 0;
        if self.mfa_authenticated {
            flags |= FLAG_MFA;
        }
        if self.mfa_time.is_some() {
            flags |= FLAG_MFA_TIME;
        }
        w.0.push(flags);
        w.0.push(self.chain_depth);
        w.i64(self.mfa_time.unwrap_or(0));
        for s in [
            &self.account,
            &self.principal_arn,
            &self.principal_id,
            &self.role_arn,
            &self.role_id,
            &self.session_name,
            &self.source_identity,
            &self.source_ip,
            &self.session_policy,
        ] {
            w.bytes(s.as_bytes())?;
        }
        w.count(self.tags.len())?;
        for (k, v) in &self.tags {
            w.bytes(k.as_bytes())?;
            w.bytes(v.as_bytes())?;
        }
        w.count(self.policy_arns.len())?;
        for a in &self.policy_arns {
            w.bytes(a.as_bytes())?;
        }
        w.count(self.transitive_tag_keys.len())?;
        for k in &self.transitive_tag_keys {
            w.bytes(k.as_bytes())?;
        }
        w.count(self.lineage.len())?;
        for a in &self.lineage {
            w.bytes(a.arn.as_bytes())?;
            w.bytes(a.id.as_bytes())?;
            w.i64(a.issued);
        }
        Ok(w.0)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let mut token_id = [0u8; 16];
        token_id.copy_from_slice(r.take(16)?);
        let issued = r.i64()?;
        let expires = r.i64()?;
        let flags = r.take(1)?[0];
        let chain_depth = r.take(1)?[0];
        let mfa_time = r.i64()?;
        let mut c = SessionClaims {
            token_id,
            issued,
            expires,
            mfa_authenticated: flags & FLAG_MFA != 0,
            mfa_time: (flags & FLAG_MFA_TIME != 0).then_some(mfa_time),
            chain_depth,
            account: r.string()?,
            principal_arn: r.string()?,
            principal_id: r.string()?,
            role_arn: r.string()?,
            role_id: r.string()?,
            session_name: r.string()?,
            source_identity: r.string()?,
            source_ip: r.string()?,
            session_policy: r.string()?,
            ..SessionClaims::default()
        };
        for _ in 0..r.u16()? {
            c.tags.push((r.string()?, r.string()?));
        }
        for _ in 0..r.u16()? {
            c.policy_arns.push(r.string()?);
        }
        for _ in 0..r.u16()? {
            c.transitive_tag_keys.push(r.string()?);
        }
        for _ in 0..r.u16()? {
            c.lineage.push(Ancestor {
                arn: r.string()?,
                id: r.string()?,
                issued: r.i64()?,
            });
        }
        if !r.0.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(c)
    }
}
