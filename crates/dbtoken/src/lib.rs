//! IAM database authentication tokens, byte-compatible with
//! `aws rds generate-db-auth-token` (botocore), aws-sdk-rust and
//! aws-sdk-go-v2, plus the Aurora DSQL variant.
//!
//! A token is a SigV4 presigned URL without its `https://` prefix:
//!
//! ```text
//! host:port/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&...&X-Amz-Signature=...
//! ```
//!
//! This crate is pure logic: callers supply the time and look up secrets.

use std::borrow::Cow;
use std::fmt;

use latchkey_sigv4::encoding::decode_utf8;
use latchkey_sigv4::{
    AmzDate, Credentials, Expectations, PresignRequest, PresignedQuery, SigV4Error, TokenPlacement,
    Verifier, split_query,
};

/// Tokens live at most 15 minutes, as RDS enforces.
pub const MAX_EXPIRES_SECS: u64 = 900;

/// Longest token accepted. Real tokens are about 1 KiB with a session token;
/// password fields must take at least 2 KiB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What a token authorises, which also fixes its signing service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenAction {
    /// RDS `Action=connect` (service `rds-db`), with a `DBUser`.
    Connect,
    /// Aurora DSQL `Action=DbConnect` (service `dsql`).
    DsqlConnect,
    /// Aurora DSQL `Action=DbConnectAdmin` (service `dsql`).
    DsqlConnectAdmin,
}

impl TokenAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAction::Connect => "connect",
            TokenAction::DsqlConnect => "DbConnect",
            TokenAction::DsqlConnectAdmin => "DbConnectAdmin",
        }
    }

    /// The SigV4 signing service for this action.
    pub fn service(self) -> &'static str {
        match self {
            TokenAction::Connect => "rds-db",
            TokenAction::DsqlConnect | TokenAction::DsqlConnectAdmin => "dsql",
        }
    }

    fn from_param(value: &str) -> Option<Self> {
        match value {
            "connect" => Some(TokenAction::Connect),
            "DbConnect" => Some(TokenAction::DsqlConnect),
            "DbConnectAdmin" => Some(TokenAction::DsqlConnectAdmin),
            _ => None,
        }
    }
}

impl fmt::Display for TokenAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was rejected or could not be made. Never carries the token,
/// its signature or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {len} bytes, over the maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("token is not valid UTF-8")]
    NotUtf8,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Signature(#[from] SigV4Error),
    #[error("cannot generate a token: {0}")]
    InvalidRequest(&'static str),
}

impl TokenError {
    /// A stable machine-readable name for the reason.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLong { .. } => "TooLong",
            TokenError::NotUtf8 | TokenError::Malformed(_) => "Malformed",
            TokenError::Signature(e) => e.code(),
            TokenError::InvalidRequest(_) => "InvalidRequest",
        }
    }
}

/// Whether the query follows `host:port/` or `host:port` directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointForm {
    /// `host:port/?...` (botocore, aws-sdk-rust).
    Slash,
    /// `host:port?...` (aws-sdk-go-v2).
    Bare,
}

/// A parsed (not yet verified) token.
#[derive(Clone, Debug)]
pub struct DbAuthToken<'a> {
    /// The endpoint host as written in the token (IPv6 keeps its brackets).
    pub host: &'a str,
    /// The port; DSQL tokens carry none.
    pub port: Option<u16>,
    pub form: EndpointForm,
    pub action: TokenAction,
    /// The database user (`DBUser`), for `connect` tokens.
    pub db_user: Option<Cow<'a, str>>,
    /// The SigV4 parameters: access key, scope, times, session token.
    pub presigned: PresignedQuery<'a>,
    /// `host[:port]` exactly as written before the query.
    endpoint: &'a str,
}

fn valid_host(host: &str) -> bool {
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    !inner.is_empty()
        && host.len() <= 255
        && inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
        && (host.starts_with('[') || !inner.contains(':'))
}

fn parse_port(text: &str) -> Result<u16, TokenError> {
    let ok = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && !(text.len() > 1 && text.starts_with('0'));
    match text.parse::<u16>() {
        Ok(port) if ok && port > 0 => Ok(port),
        _ => Err(TokenError::Malformed(
            "port must be a number from 1 to 65535 without leading zeros",
        )),
    }
}

/// Splits `host[:port]`, handling bracketed IPv6 hosts.
fn split_endpoint(endpoint: &str) -> Result<(&str, Option<u16>), TokenError> {
    let (host, port) = if endpoint.starts_with('[') {
        let close = endpoint
            .find(']')
            .ok_or(TokenError::Malformed("an IPv6 host lacks its closing ']'"))?;
        let (host, rest) = endpoint.split_at(close + 1);
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(rest.strip_prefix(':').ok_or(TokenError::Malformed(
                    "expected ':' and a port after the IPv6 host",
                ))?),
            ),
        }
    } else {
        match endpoint.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (endpoint, None),
        }
    };
    if !valid_host(host) {
        return Err(TokenError::Malformed(
            "host must be a DNS name or IP address (letters, digits, '-', '.', '_')",
        ));
    }
    Ok((host, port.map(parse_port).transpose()?))
}

impl<'a> DbAuthToken<'a> {
    /// Parses a token presented as a password, as raw bytes.
    pub fn parse_bytes(token: &'a [u8]) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        Self::parse(std::str::from_utf8(token).map_err(|_| TokenError::NotUtf8)?)
    }

    /// Parses a token.
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        let (endpoint, query) = token
            .split_once('?')
            .ok_or(TokenError::Malformed("expected host:port/?query"))?;
        let (endpoint, form) = match endpoint.strip_suffix('/') {
            Some(e) => (e, EndpointForm::Slash),
            None => (endpoint, EndpointForm::Bare),
        };
        let (host, port) = split_endpoint(endpoint)?;

        let pairs = split_query(query).map_err(SigV4Error::from)?;
        let (mut action, mut user) = (None, None);
        for &(key, value) in &pairs {
            let slot = match key {
                "Action" => &mut action,
                "DBUser" => &mut user,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(TokenError::Malformed(
                    "Action or DBUser appears more than once",
                ));
            }
        }
        let action = action
            .and_then(TokenAction::from_param)
            .ok_or(TokenError::Malformed(
                "Action must be connect, DbConnect or DbConnectAdmin",
            ))?;
        let db_user = match (action, user) {
            (TokenAction::Connect, None) => {
                return Err(TokenError::Malformed("a connect token needs DBUser"));
            }
            (TokenAction::Connect, Some(raw)) => {
                let user = decode_utf8(raw)
                    .map_err(|_| TokenError::Malformed("DBUser is not UTF-8 percent-encoding"))?;
                if user.is_empty() {
                    return Err(TokenError::Malformed("DBUser is empty"));
                }
                Some(user)
            }
            (_, Some(_)) => {
                return Err(TokenError::Malformed("a DSQL token has no DBUser"));
            }
            (_, None) => None,
        };
        if action == TokenAction::Connect && port.is_none() {
            return Err(TokenError::Malformed("a connect token needs host:port"));
        }
        let presigned = PresignedQuery::from_pairs(pairs)?;
        Ok(Self {
            host,
            port,
            form,
            action,
            db_user,
            presigned,
            endpoint,
        })
    }

    /// The `host` header value the signer used: lowercase host, plus
    /// `:port` unless the port is 443. Borrows when the token already has it.
    pub fn canonical_host(&self) -> Cow<'a, str> {
        let lower = !self.host.bytes().any(|b| b.is_ascii_uppercase());
        match (lower, self.port) {
            (true, Some(443) | None) => Cow::Borrowed(self.host),
            (true, Some(_)) => Cow::Borrowed(self.endpoint),
            (false, _) => Cow::Owned(host_header(self.host, self.port)),
        }
    }

    /// When the token was signed.
    pub fn issued_at(&self) -> AmzDate {
        self.presigned.time
    }

    /// When the token stops being valid.
    pub fn expires_at(&self) -> AmzDate {
        self.presigned.expires_at()
    }

    /// The access key id that signed the token.
    pub fn access_key_id(&self) -> &str {
        &self.presigned.access_key_id
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.presigned.region
    }
}

/// `host` header value: lowercase host, `:port` unless it is 443.
pub fn host_header(host: &str, port: Option<u16>) -> String {
    let mut out = host.to_ascii_lowercase();
    if let Some(port) = port.filter(|p| *p != 443) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out
}

/// What to sign.
#[derive(Clone, Debug)]
pub struct TokenRequest<'a> {
    /// Endpoint host, printed as given and signed lowercased.
    pub host: &'a str,
    /// Required for `connect`; DSQL tokens have none.
    pub port: Option<u16>,
    pub action: TokenAction,
    /// Required for `connect`, any UTF-8.
    pub db_user: Option<&'a str>,
    pub region: &'a str,
    pub time: AmzDate,
    /// 1 to 900 seconds.
    pub expires_in: u64,
    pub form: EndpointForm,
    pub token_placement: TokenPlacement,
}

impl<'a> TokenRequest<'a> {
    /// An RDS `connect` token request in botocore's form.
    pub fn rds(host: &'a str, port: u16, db_user: &'a str, region: &'a str, time: AmzDate) -> Self {
        Self {
            host,
            port: Some(port),
            action: TokenAction::Connect,
            db_user: Some(db_user),
            region,
            time,
            expires_in: MAX_EXPIRES_SECS,
            form: EndpointForm::Slash,
            token_placement: TokenPlacement::BeforeSignature,
        }
    }

    /// An Aurora DSQL token request in botocore's form.
    pub fn dsql(host: &'a str, admin: bool, region: &'a str, time: AmzDate) -> Self {
        Self {
            host,
            port: None,
            action: if admin {
                TokenAction::DsqlConnectAdmin
            } else {
                TokenAction::DsqlConnect
            },
            db_user: None,
            region,
            time,
            expires_in: MAX_EXPIRES_SECS,
            form: EndpointForm::Slash,
            token_placement: TokenPlacement::BeforeSignature,
        }
    }
}

/// Signs a token.
pub fn generate(req: &TokenRequest<'_>, credentials: &Credentials) -> Result<String, TokenError> {
    if !valid_host(req.host) {
        return Err(TokenError::InvalidRequest(
            "hostname must be a DNS name or IP address",
        ));
    }
    if !(1..=MAX_EXPIRES_SECS).contains(&req.expires_in) {
        return Err(TokenError::InvalidRequest(
            "expires-in must be from 1 to 900 seconds",
        ));
    }
    if req.region.is_empty() || req.region.contains(['/', ' ']) {
        return Err(TokenError::InvalidRequest("region is empty or malformed"));
    }
    if credentials.access_key_id.is_empty() || credentials.secret_access_key.is_empty() {
        return Err(TokenError::InvalidRequest("credentials are incomplete"));
    }
    let mut params: Vec<(&str, &str)> = vec![("Action", req.action.as_str())];
    match (req.action, req.db_user, req.port) {
        (TokenAction::Connect, Some(user), Some(_)) if !user.is_empty() => {
            params.push(("DBUser", user));
        }
        (TokenAction::Connect, _, _) => {
            return Err(TokenError::InvalidRequest(
                "a connect token needs a port and a non-empty user name",
            ));
        }
        (_, Some(_), _) => {
            return Err(TokenError::InvalidRequest("a DSQL token has no user name"));
        }
        _ => {}
    }
    let host = host_header(req.host, req.port);
    let query = latchkey_sigv4::presign(
        &PresignRequest {
            method: "GET",
            path: "/",
            host: &host,
            params: &params,
            region: req.region,
            service: req.action.service(),
            time: req.time,
            expires_in: req.expires_in,
            token_placement: req.token_placement,
        },
        credentials,
    );
    let mut out = String::with_capacity(req.host.len() + query.len() + 8);
    out.push_str(req.host);
    if let Some(port) = req.port {
        out.push(':');
        out.push_str(&port.to_string());
    }
    if req.form == EndpointForm::Slash {
        out.push('/');
    }
    out.push('?');
    out.push_str(&query);
    Ok(out)
}

/// Verifies tokens. Share one per process: it caches derived signing keys.
pub struct TokenVerifier {
    sigv4: Verifier,
    /// Seconds a token may be dated ahead of the verifier's clock.
    pub clock_skew: u64,
}

impl Default for TokenVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenVerifier {
    /// A verifier with a signing-key cache and no clock-skew allowance.
    pub fn new() -> Self {
        Self {
            sigv4: Verifier::with_cache(4096),
            clock_skew: 0,
        }
    }

    /// A verifier that derives the signing key every time.
    pub fn uncached() -> Self {
        Self {
            sigv4: Verifier::uncached(),
            clock_skew: 0,
        }
    }

    /// Checks the token's lifetime, service, optional region and signature
    /// against `secret` (the secret for `token.access_key_id()`).
    pub fn verify(
        &self,
        token: &DbAuthToken<'_>,
        secret: &[u8],
        now: AmzDate,
        region: Option<&str>,
    ) -> Result<(), TokenError> {
        let expect = Expectations {
            service: token.action.service(),
            region,
            now,
            max_expires: MAX_EXPIRES_SECS,
            clock_skew: self.clock_skew,
        };
        let canonical = token.canonical_host();
        let first = self.verify_with_host(token, &canonical, secret, &expect);
        match first {
            // SDKs differ on lowercasing the host: also try it as written.
            Err(TokenError::Signature(SigV4Error::SignatureMismatch)) => {
                let as_written = match token.port {
                    Some(port) if port != 443 => token.endpoint,
                    _ => token.host,
                };
                if as_written == canonical {
                    return first;
                }
                self.verify_with_host(token, as_written, secret, &expect)
            }
            other => other,
        }
    }

    fn verify_with_host(
        &self,
        token: &DbAuthToken<'_>,
        host: &str,
        secret: &[u8],
        expect: &Expectations<'_>,
    ) -> Result<(), TokenError> {
        self.sigv4
            .verify_presigned(
                &token.presigned,
                "GET",
                "/",
                |name| (name == "host").then_some(host),
                secret,
                expect,
            )
            .map_err(TokenError::from)
    }
}
