//! Shared server state, request authentication (SigV4 with long-term or
//! sealed temporary credentials) and authorisation (the policy engine).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use latchkey_audit::FailureKind;
use latchkey_policy::{CompiledPolicy, Decision, PolicyKind, PolicySet, Request};
use latchkey_session::{ClusterKey, KeyRing, SessionClaims};
use latchkey_sigv4::{AmzDate, AuthorizationHeader, Expectations, SigV4Error, Verifier};
use latchkey_store::{PrincipalKind, Store, StoreError};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Everything a request handler needs.
pub struct AppState {
    pub store: Store,
    pub keyring: RwLock<KeyRing>,
    /// ARN -> sessions issued before this time are revoked.
    pub revocations: RwLock<HashMap<String, i64>>,
    pub verifier: Verifier,
    /// Long-term keys recently used: access key id -> caller and secret.
    /// Saves a store read and two AES-GCM opens per request; entries live
    /// [`KEY_CACHE_SECS`] and are dropped at once when IAM changes keys or users.
    key_cache: RwLock<HashMap<String, CachedKey>>,
    /// What authorisation reads about a user or role (`user/NAME`,
    /// `role/NAME`): its unique id, tags and compiled identity policies.
    /// Saves the store reads and the compile on every connection. Entries
    /// live [`POLICY_CACHE_SECS`] and are dropped at once when IAM changes
    /// anything on this node.
    principal_cache: RwLock<HashMap<String, Arc<PrincipalRecord>>>,
    /// Source addresses a detection response blocked, until when (Unix
    /// seconds). `any_blocked` spares every connection the lock while the
    /// list is empty.
    blocked: RwLock<HashMap<std::net::IpAddr, i64>>,
    any_blocked: std::sync::atomic::AtomicBool,
    /// Counters and latencies for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where API calls and logins are recorded; none until `serve` sets it.
    audit: std::sync::OnceLock<Arc<dyn latchkey_audit::AuditSink>>,
    /// The region requests must be signed for (`us-east-1` unless set).
    region: String,
    /// Verified signatures already presented, to the API or a gateway: a
    /// repeat proves nothing about who presents it.
    pub seen_signatures: crate::replay::SeenSignatures,
}

/// A user or role as authorisation sees it.
pub struct PrincipalRecord {
    /// `AIDA…` or `AROA…`: sessions and keys are bound to it, so that a
    /// re-created entity of the same name inherits nothing.
    pub id: String,
    pub tags: Vec<(String, String)>,
    /// Inline and attached policies (and, for a user, its groups').
    pub policies: Vec<Arc<CompiledPolicy>>,
    read_at: i64,
}

/// Condition keys that an action carries beyond the caller's own: the
/// target's tags, the tags a request sets, `iam:PolicyARN`, and so on.
#[derive(Debug, Default, Clone)]
pub struct ActionContext {
    keys: Vec<(String, Vec<String>)>,
}

impl ActionContext {
    pub fn new() -> Self {
        Self::default()
    }

    /// One key with its values.
    #[must_use]
    pub fn key<V: Into<String>>(
        mut self,
        name: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        self.keys
            .push((name.into(), values.into_iter().map(Into::into).collect()));
        self
    }

    /// `aws:RequestTag/KEY` for each tag a request sets, and `aws:TagKeys`.
    #[must_use]
    pub fn request_tags(mut self, tags: &[(String, String)]) -> Self {
        for (k, v) in tags {
            self = self.key(format!("aws:RequestTag/{k}"), [v.as_str()]);
        }
        self.tag_keys(tags.iter().map(|(k, _)| k.as_str()))
    }

    /// `aws:TagKeys`: the tag keys a request sets or removes.
    #[must_use]
    pub fn tag_keys<'a>(self, keys: impl IntoIterator<Item = &'a str>) -> Self {
        self.key("aws:TagKeys", keys)
    }

    /// `aws:ResourceTag/KEY` and IAM's own `iam:ResourceTag/KEY` for each
    /// tag of the user or role acted on.
    #[must_use]
    pub fn resource_tags(mut self, tags: &[(String, String)]) -> Self {
        for (k, v) in tags {
            self = self
                .key(format!("aws:ResourceTag/{k}"), [v.as_str()])
                .key(format!("iam:ResourceTag/{k}"), [v.as_str()]);
        }
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// How long compiled identity policies stay cached (bounds how late
/// another node's policy change is seen, like the revocation refresh).
pub const POLICY_CACHE_SECS: i64 = 5;

/// A cached long-term key: its caller, secret, and when it was read.
type CachedKey = (Caller, zeroize::Zeroizing<String>, i64);

/// How long a long-term key stays cached (bounds how late another node's
/// deactivation is seen).
pub const KEY_CACHE_SECS: i64 = 30;

/// Requests dated further than this from the server's clock are refused
/// (`RequestExpired`), as AWS does.
pub const MAX_CLOCK_SKEW_SECS: u64 = 900;

/// The region when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

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

/// The credential behind an access key, found before its signature is
/// checked (see [`AppState::find_credentials`]).
pub struct FoundCredential {
    pub caller: Caller,
    pub secret: zeroize::Zeroizing<String>,
    /// Why it must be refused (expired, revoked, inactive), to be given
    /// once the signature was checked.
    pub refusal: Option<ApiError>,
}

impl FoundCredential {
    fn valid(caller: Caller, secret: zeroize::Zeroizing<String>) -> Self {
        Self {
            caller,
            secret,
            refusal: None,
        }
    }
}

/// A caller whose request's signature verified ([`AppState::authenticate`]).
pub struct SignedCaller {
    pub caller: Caller,
    /// The signature was presented for the first time, so whoever sent it
    /// holds the secret. A repeat (a reused or replayed request) proves
    /// only that someone once signed it: detection must not act against
    /// the principal on it (see [`crate::replay`]).
    pub possession_proven: bool,
}

/// The parts of an HTTP request that authentication reads.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
    pub body: &'a [u8],
    pub source_ip: String,
}

impl AppState {
    pub fn new(
        store: Store,
        clusters: Vec<(u32, zeroize::Zeroizing<[u8; 32]>)>,
    ) -> anyhow::Result<Self> {
        let mut keys = clusters.into_iter();
        let (id, material) = keys
            .next()
            .ok_or_else(|| anyhow::anyhow!("no cluster key"))?;
        let mut ring = KeyRing::new(ClusterKey::new(id, &material));
        for (id, material) in keys {
            // The newest key seals; older ones still open.
            ring.add(ClusterKey::new(id, &material), true);
        }
        let revocations = store.revocations()?.into_iter().collect();
        Ok(Self {
            store,
            keyring: RwLock::new(ring),
            revocations: RwLock::new(revocations),
            verifier: Verifier::with_cache(4096),
            key_cache: RwLock::new(HashMap::new()),
            principal_cache: RwLock::new(HashMap::new()),
            blocked: RwLock::new(HashMap::new()),
            any_blocked: std::sync::atomic::AtomicBool::new(false),
            metrics: Arc::default(),
            audit: std::sync::OnceLock::new(),
            region: DEFAULT_REGION.to_owned(),
            seen_signatures: crate::replay::SeenSignatures::default(),
        })
    }

    /// Sets the region API requests must be signed for.
    #[must_use]
    pub fn with_region(mut self, region: &str) -> Self {
        region.clone_into(&mut self.region);
        self
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Refuses `ip` until `until` (Unix seconds), on the gateways and the API.
    pub fn block_ip(&self, ip: std::net::IpAddr, until: i64) {
        let mut blocked = self.blocked.write().unwrap_or_else(|p| p.into_inner());
        let now = now();
        blocked.retain(|_, t| *t > now);
        let slot = blocked.entry(ip).or_insert(until);
        *slot = (*slot).max(until);
        self.any_blocked
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_blocked(&self, ip: std::net::IpAddr, now: i64) -> bool {
        self.any_blocked.load(std::sync::atomic::Ordering::Acquire)
            && self
                .blocked
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&ip)
                .is_some_and(|until| *until > now)
    }

    /// Sets the audit sink (once, at start).
    pub fn set_audit(&self, sink: Arc<dyn latchkey_audit::AuditSink>) {
        let _ = self.audit.set(sink);
    }

    pub fn audit(&self) -> &dyn latchkey_audit::AuditSink {
        match self.audit.get() {
            Some(sink) => sink.as_ref(),
            None => &latchkey_audit::NullSink,
        }
    }

    /// Authenticates a SigV4 header-signed request for `service`.
    pub fn authenticate(
        &self,
        req: &SignedRequest<'_>,
        service: &str,
        now: i64,
    ) -> Result<SignedCaller, ApiError> {
        let header = req.header;
        let Some(auth) = header("authorization") else {
            return Err(ApiError::new(
                403,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ));
        };
        let auth = AuthorizationHeader::parse(auth).map_err(|e| {
            ApiError::new(
                400,
                "IncompleteSignature",
                "The request signature does not conform to AWS standards.",
            )
            .because(e.to_string())
        })?;
        let payload_hash = hex::encode(Sha256::digest(req.body));
        if let Some(declared) = header("x-amz-content-sha256")
            && declared != payload_hash
            && declared != "UNSIGNED-PAYLOAD"
        {
            return Err(ApiError::new(
                400,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
        let akid = auth.access_key_id.to_string();
        let found =
            self.find_credentials(&akid, header("x-amz-security-token"), now, &req.source_ip)?;
        let (caller, secret) = (found.caller, found.secret);
        let expect = Expectations {
            service,
            // A request signed for another region is refused, as AWS does.
            region: Some(&self.region),
            now: AmzDate::from_unix(now).ok_or_else(ApiError::internal)?,
            max_expires: 0,
            clock_skew: MAX_CLOCK_SKEW_SECS,
        };
        let verified = self.verifier.verify_header(
            &auth,
            req.method,
            req.path,
            req.query,
            header,
            &payload_hash,
            secret.as_bytes(),
            &expect,
        );
        // A verified signature proves possession only the first time it is
        // presented: a captured request can be sent again for as long as
        // its date is within the clock skew.
        let fresh = verified.is_ok() && {
            let valid_until = header("x-amz-date")
                .and_then(|d| AmzDate::parse(d).ok())
                .map_or(now, AmzDate::unix)
                .saturating_add(MAX_CLOCK_SKEW_SECS as i64);
            self.seen_signatures
                .first_sight(auth.signature.as_bytes(), valid_until, now)
        };
        // An expired, revoked or inactive credential gets the same answer
        // whatever its signature; the audit learns whether it verified.
        if let Some(refusal) = found.refusal {
            return Err(refusal.proven(fresh));
        }
        verified
            .map_err(|e| match e {
                SigV4Error::ClockSkew { .. } => ApiError::new(400, "RequestExpired", "Request has expired.").because(e.to_string()),
                SigV4Error::SignatureMismatch => ApiError::new(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
                ),
                SigV4Error::WrongRegion { .. } => ApiError::new(
                    403,
                    "SignatureDoesNotMatch",
                    "Credential should be scoped to a valid region.",
                ).because(e.to_string()),
                SigV4Error::WrongService { .. } | SigV4Error::Malformed(_) | SigV4Error::UnsupportedAlgorithm => {
                    ApiError::new(400, "IncompleteSignature", "The request signature does not conform to AWS standards.").because(e.to_string())
                }
                other => ApiError::new(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.").because(other.to_string()),
            })?;
        Ok(SignedCaller {
            caller,
            possession_proven: fresh,
        })
    }

    /// The caller behind an access key and its secret: a long-term key from
    /// the store (cached), or temporary credentials from their sealed
    /// session token (no store read). Refuses expired, revoked and
    /// inactive credentials. Used by the revocation sweep; logins and
    /// calls use [`AppState::find_credentials`] and check the signature
    /// before they refuse.
    pub fn credentials(
        &self,
        akid: &str,
        session_token: Option<&str>,
        now: i64,
        source_ip: &str,
    ) -> Result<(Caller, zeroize::Zeroizing<String>), ApiError> {
        let found = self.find_credentials(akid, session_token, now, source_ip)?;
        match found.refusal {
            Some(refusal) => Err(refusal),
            None => Ok((found.caller, found.secret)),
        }
    }

    /// As [`AppState::credentials`], but an expired, revoked or inactive
    /// credential is returned with its refusal, for the caller to give
    /// after checking the signature: only then does the refusal say
    /// whether the client proved it holds the secret
    /// ([`ApiError::possession_proven`]). An unknown key or a session
    /// token that does not open is refused at once (nothing to check a
    /// signature against).
    pub fn find_credentials(
        &self,
        akid: &str,
        session_token: Option<&str>,
        now: i64,
        source_ip: &str,
    ) -> Result<FoundCredential, ApiError> {
        if akid.starts_with("ASIA") {
            self.temporary_caller(akid, session_token, now, source_ip)
        } else if session_token.is_some() {
            // A long-term key never comes with a session token: AWS
            // refuses the pair rather than ignoring the token.
            Err(ApiError::invalid_token()
                .because(format!(
                    "long-term access key {akid} sent with a session token"
                ))
                .kind(FailureKind::MalformedToken))
        } else {
            self.long_term_caller(akid, source_ip, now)
        }
    }

    fn long_term_caller(
        &self,
        akid: &str,
        source_ip: &str,
        now: i64,
    ) -> Result<FoundCredential, ApiError> {
        if let Some((caller, secret, at)) = self
            .key_cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(akid)
            && now - at < KEY_CACHE_SECS
        {
            let mut caller = caller.clone();
            caller.source_ip = source_ip.to_owned();
            return Ok(FoundCredential::valid(caller, secret.clone()));
        }
        let (key, secret) = self.store.access_key_secret(akid)?.ok_or_else(|| {
            ApiError::invalid_token()
                .because(format!("unknown access key {akid}"))
                .kind(FailureKind::UnknownKey)
        })?;
        let user = self.store.get_user(&key.user)?;
        let caller = Caller {
            arn: user.arn,
            user_id: user.id,
            account: self.store.account_id().to_owned(),
            identity: Identity::User { name: user.name },
            access_key_id: akid.to_owned(),
            session: None,
            source_ip: source_ip.to_owned(),
            tags: user.tags,
        };
        if !key.active {
            // Not cached: the refusal is decided afresh each time.
            return Ok(FoundCredential {
                caller,
                secret,
                refusal: Some(
                    ApiError::invalid_token()
                        .because(format!("inactive access key {akid}"))
                        .kind(FailureKind::InactiveKey),
                ),
            });
        }
        let mut cache = self.key_cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(akid.to_owned(), (caller.clone(), secret.clone(), now));
        Ok(FoundCredential::valid(caller, secret))
    }

    /// Re-reads the revocation list from the store. `serve` calls this
    /// every few seconds so that every node sharing the store honours a
    /// revocation made on another.
    pub fn reload_revocations(&self) -> Result<(), ApiError> {
        let fresh: HashMap<String, i64> = self.store.revocations()?.into_iter().collect();
        *self.revocations.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Rotates the cluster key when due (on any node; the store makes it
    /// happen once) and reloads the key ring, so that every node seals with
    /// the newest key and still opens sessions sealed by older ones.
    pub fn refresh_cluster_keys(&self, now: i64, every: i64) -> Result<(), ApiError> {
        // Keep a retired key as long as a session it sealed may live
        // (GetSessionToken: 36 h), plus an hour of margin.
        let keep = 129_600 + 3600;
        self.store.rotate_cluster_keys(now, every, keep)?;
        if let Some(ring) = key_ring(self.store.cluster_keys(now)?) {
            *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = ring;
        }
        Ok(())
    }

    /// Forgets cached long-term keys and policies (after IAM changed
    /// anything).
    pub fn invalidate_caches(&self) {
        self.key_cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.principal_cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn temporary_caller(
        &self,
        akid: &str,
        token: Option<&str>,
        now: i64,
        source_ip: &str,
    ) -> Result<FoundCredential, ApiError> {
        let token = token.ok_or_else(|| {
            ApiError::invalid_token()
                .because("temporary key without a session token")
                .kind(FailureKind::MalformedToken)
        })?;
        let opened = self
            .keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .open(token)
            .map_err(|e| {
                ApiError::invalid_token()
                    .because(e.to_string())
                    .kind(FailureKind::UnknownKey)
            })?;
        if opened.access_key_id != akid {
            return Err(ApiError::invalid_token()
                .because("access key id does not belong to the session token")
                .kind(FailureKind::MalformedToken));
        }
        let c = opened.claims;
        let refusal = if now > c.expires {
            Some(
                ApiError::new(
                    400,
                    "ExpiredToken",
                    "The security token included in the request is expired",
                )
                .kind(FailureKind::Expired),
            )
        } else if self.is_revoked(&c) {
            Some(
                ApiError::new(
                    403,
                    "AccessDenied",
                    "The security token included in the request has been revoked.",
                )
                .because("session issued before the revocation time")
                .kind(FailureKind::Revoked),
            )
        } else {
            None
        };
        // Stateless: everything comes from the sealed claims. Principal
        // tags are read at authorisation time, with the policies.
        let (arn, user_id, identity) = if c.role_arn.is_empty() {
            let name = c
                .principal_arn
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            (
                c.principal_arn.clone(),
                c.principal_id.clone(),
                Identity::User { name },
            )
        } else {
            let role_name = c.role_arn.rsplit('/').next().unwrap_or_default().to_owned();
            (
                format!(
                    "arn:aws:sts::{}:assumed-role/{}/{}",
                    c.account, role_name, c.session_name
                ),
                format!("{}:{}", c.role_id, c.session_name),
                Identity::Role {
                    name: role_name,
                    session: c.session_name.clone(),
                },
            )
        };
        let tags = c.tags.clone();
        Ok(FoundCredential {
            caller: Caller {
                arn,
                user_id,
                account: c.account.clone(),
                identity,
                access_key_id: akid.to_owned(),
                session: Some(c),
                source_ip: source_ip.to_owned(),
                tags,
            },
            secret: opened.secret_access_key,
            refusal,
        })
    }

    fn is_revoked(&self, c: &SessionClaims) -> bool {
        let revoked = self.revocations.read().unwrap_or_else(|p| p.into_inner());
        // Issue times have one-second precision: a session issued in the
        // second of the revocation counts as revoked (fail closed), or a
        // detection response would miss the credentials that set it off.
        let hit = |arn: &str, issued: i64| revoked.get(arn).is_some_and(|&before| issued <= before);
        hit(&c.principal_arn, c.issued)
            || hit(&c.role_arn, c.issued)
            // A chained session dies with any identity it descends from.
            || c.lineage.iter().any(|a| hit(&a.arn, a.issued))
    }

    /// The user or role behind a caller.
    fn caller_principal(caller: &Caller) -> (PrincipalKind, &str) {
        match &caller.identity {
            Identity::User { name } => (PrincipalKind::User, name.as_str()),
            Identity::Role { name, .. } => (PrincipalKind::Role, name.as_str()),
        }
    }

    /// The caller's principal tags: the user's or role's stored tags, with
    /// session tags taking precedence.
    fn principal_tags(&self, caller: &Caller) -> Result<Vec<(String, String)>, ApiError> {
        if caller.session.is_none() {
            return Ok(caller.tags.clone());
        }
        let (kind, name) = Self::caller_principal(caller);
        let mut tags = self.principal_record(kind, name)?.tags.clone();
        for (k, v) in &caller.tags {
            match tags.iter_mut().find(|(tk, _)| tk.eq_ignore_ascii_case(k)) {
                Some(slot) => slot.1 = v.clone(),
                None => tags.push((k.clone(), v.clone())),
            }
        }
        Ok(tags)
    }

    /// Refuses a caller whose user or role, or any identity its session
    /// descends from, was deleted (and perhaps re-created under the same
    /// name) since the credentials were issued: credentials are bound to
    /// unique ids, never to names.
    ///
    /// Returns the caller's own user or role, for the policies.
    pub fn check_bound(&self, caller: &Caller) -> Result<Arc<PrincipalRecord>, ApiError> {
        let gone = |what: &str| {
            ApiError::invalid_token()
                .because(format!(
                    "{what} no longer exists as the credentials were issued for (deleted or re-created)"
                ))
                .kind(FailureKind::Revoked)
        };
        let (kind, name) = Self::caller_principal(caller);
        let expected = match (&caller.identity, &caller.session) {
            (Identity::Role { .. }, Some(c)) => c.role_id.as_str(),
            (Identity::User { .. }, Some(c)) => c.principal_id.as_str(),
            (_, None) => caller.user_id.as_str(),
        };
        let own = self
            .find_principal(kind, name)?
            .filter(|record| !expected.is_empty() && record.id == expected)
            .ok_or_else(|| gone(&format!("{} {name}", kind.as_str())))?;
        let Some(c) = &caller.session else {
            return Ok(own);
        };
        // The user a role session was obtained by (a chained session's
        // principal is a role session, covered by the lineage).
        let principal = (!c.role_arn.is_empty())
            .then(|| iam_entity(&c.principal_arn, &c.principal_id))
            .flatten();
        let lineage = c.lineage.iter().filter_map(|a| iam_entity(&a.arn, &a.id));
        for (kind, name, id) in principal.into_iter().chain(lineage) {
            if !self.entity_is(kind, name, id)? {
                return Err(gone(&format!("{} {name}", kind.as_str())));
            }
        }
        Ok(own)
    }

    /// Whether the user or role `name` exists with unique id `id`.
    fn entity_is(&self, kind: PrincipalKind, name: &str, id: &str) -> Result<bool, ApiError> {
        Ok(self
            .find_principal(kind, name)?
            .is_some_and(|record| !id.is_empty() && record.id == id))
    }

    /// What credentials from `GetSessionToken` may call, as AWS has it: no
    /// IAM unless MFA was given (or a short-lived credential could mint a
    /// permanent key), and no STS action but `AssumeRole` and
    /// `GetCallerIdentity`.
    pub fn check_session_scope(
        &self,
        caller: &Caller,
        service: &str,
        action: &str,
    ) -> Result<(), ApiError> {
        let Some(c) = &caller.session else {
            return Ok(());
        };
        if !c.role_arn.is_empty() {
            return Ok(());
        }
        match service {
            "iam" if !c.mfa_authenticated => Err(ApiError::invalid_token().because(format!(
                "{action}: GetSessionToken credentials obtained without MFA may not call IAM"
            ))),
            "sts" if !matches!(action, "AssumeRole" | "GetCallerIdentity") => Err(ApiError::new(
                403,
                "AccessDenied",
                format!("Cannot call {action} with session credentials"),
            )),
            _ => Ok(()),
        }
    }

    pub fn request(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        now: i64,
    ) -> Result<Request, ApiError> {
        let mut r = Request::new(action, resource).with_caller(&caller.arn);
        r.set_context("aws:SourceIp", [caller.source_ip.as_str()]);
        r.set_context(
            "aws:CurrentTime",
            [crate::xml::timestamp(now).replace(".000", "")],
        );
        r.set_context("aws:EpochTime", [now.to_string()]);
        r.set_context("aws:SecureTransport", ["true"]);
        r.set_context("aws:userid", [caller.user_id.as_str()]);
        r.set_context("aws:PrincipalAccount", [caller.account.as_str()]);
        match &caller.identity {
            Identity::User { name } => {
                r.set_context("aws:username", [name.as_str()]);
                r.set_context("aws:PrincipalArn", [caller.arn.as_str()]);
                r.set_context("aws:PrincipalType", ["User"]);
            }
            Identity::Role { .. } => {
                let role_arn = caller.session.as_ref().map_or("", |c| c.role_arn.as_str());
                r.set_context("aws:PrincipalArn", [role_arn]);
                r.set_context("aws:PrincipalType", ["AssumedRole"]);
            }
        }
        if let Some(c) = &caller.session {
            r.set_context(
                "aws:MultiFactorAuthPresent",
                [if c.mfa_authenticated { "true" } else { "false" }],
            );
            if let Some(t) = c.mfa_time {
                r.set_context("aws:MultiFactorAuthAge", [(now - t).max(0).to_string()]);
            }
            r.set_context(
                "aws:TokenIssueTime",
                [crate::xml::timestamp(c.issued).replace(".000", "")],
            );
            if !c.source_identity.is_empty() {
                r.set_context("aws:SourceIdentity", [c.source_identity.as_str()]);
            }
        }
        for (k, v) in self.principal_tags(caller)? {
            r.set_context(&format!("aws:PrincipalTag/{k}"), [v.as_str()]);
        }
        Ok(r)
    }

    /// The caller's identity policies (and session policies), compiled.
    /// Refuses a caller whose identity was deleted or re-created.
    pub fn policy_set(&self, caller: &Caller) -> Result<PolicySet, ApiError> {
        let own = self.check_bound(caller)?;
        let mut set = PolicySet {
            identity: own.policies.clone(),
            ..PolicySet::default()
        };
        if let Some(c) = &caller.session {
            if !c.session_policy.is_empty() {
                set.session
                    .push(compile_stored("session policy", &c.session_policy)?);
            }
            // The inline and managed session policies together form the
            // session's limit (see PolicySet::session).
            for arn in &c.policy_arns {
                set.session
                    .push(compile_stored(arn, &self.store.managed_policy(arn)?)?);
            }
        }
        Ok(set)
    }

    /// A user or role with its compiled identity policies, from the cache
    /// when fresh; `NoSuchEntity` when there is none.
    pub fn principal_record(
        &self,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Arc<PrincipalRecord>, ApiError> {
        self.find_principal(kind, name)?.ok_or_else(|| {
            StoreError::NoSuchEntity {
                kind: kind.as_str(),
                name: name.to_owned(),
            }
            .into()
        })
    }

    /// As [`AppState::principal_record`]; `None` when there is none.
    fn find_principal(
        &self,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Option<Arc<PrincipalRecord>>, ApiError> {
        let key = format!("{}/{}", kind.as_str(), name.to_ascii_lowercase());
        let t = now();
        if let Some(record) = self
            .principal_cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && t - record.read_at < POLICY_CACHE_SECS
        {
            return Ok(Some(record.clone()));
        }
        let found = match kind {
            PrincipalKind::User => self.store.get_user(name).map(|u| (u.id, u.tags)),
            PrincipalKind::Role => self.store.get_role(name).map(|r| (r.id, r.tags)),
            PrincipalKind::Group => self.store.get_group(name).map(|g| (g.id, Vec::new())),
        };
        let (id, tags) = match found {
            Ok(entity) => entity,
            Err(StoreError::NoSuchEntity { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut policies = Vec::new();
        for (label, doc) in self.store.identity_policies(kind, name)? {
            policies.push(Arc::new(compile_stored(&label, &doc)?));
        }
        let record = Arc::new(PrincipalRecord {
            id,
            tags,
            policies,
            read_at: t,
        });
        let mut cache = self
            .principal_cache
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(key, record.clone());
        Ok(Some(record))
    }

    /// Allows the call or returns AWS's `AccessDenied`.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        now: i64,
    ) -> Result<(), ApiError> {
        self.authorize_with(caller, action, resource, now, &[])
    }

    /// As [`AppState::authorize`], with extra single-valued context keys
    /// (e.g. `aws:ResourceTag/env` for a database).
    pub fn authorize_with(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        now: i64,
        extra: &[(String, String)],
    ) -> Result<(), ApiError> {
        let context = extra
            .iter()
            .fold(ActionContext::new(), |c, (k, v)| c.key(k, [v.as_str()]));
        self.authorize_in(caller, action, resource, now, &context)
    }

    /// As [`AppState::authorize`], with the condition keys the action
    /// carries.
    pub fn authorize_in(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        now: i64,
        context: &ActionContext,
    ) -> Result<(), ApiError> {
        self.authorize_shown(caller, action, resource, resource, now, context)
    }

    /// As [`AppState::authorize_in`], naming `shown` rather than
    /// `resource` in a refusal: the resource as the request named it, so
    /// that a caller who may not act on an entity learns neither whether it
    /// exists nor its path (the log keeps the stored ARN).
    pub fn authorize_shown(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        shown: &str,
        now: i64,
        context: &ActionContext,
    ) -> Result<(), ApiError> {
        let set = self.policy_set(caller)?;
        let mut req = self.request(caller, action, resource, now)?;
        for (k, v) in context.iter() {
            req.set_context(k, v.iter().map(String::as_str));
        }
        match set.decide(&req) {
            Decision::Allowed => Ok(()),
            d => Err(ApiError::access_denied(&caller.arn, action, shown)
                .because(format!("{} on {resource}", d.as_str()))),
        }
    }
}

/// The (kind, name, id) of an IAM user or role ARN; `None` for anything
/// else (an assumed-role session's ARN).
fn iam_entity<'a>(arn: &'a str, id: &'a str) -> Option<(PrincipalKind, &'a str, &'a str)> {
    let resource = arn.split(':').nth(5)?;
    let name = resource.rsplit('/').next()?;
    if resource.starts_with("user/") {
        Some((PrincipalKind::User, name, id))
    } else if resource.starts_with("role/") {
        Some((PrincipalKind::Role, name, id))
    } else {
        None
    }
}

/// A key ring from (id, material) pairs in id order: the newest seals,
/// all open.
fn key_ring(clusters: Vec<(u32, zeroize::Zeroizing<[u8; 32]>)>) -> Option<KeyRing> {
    let mut keys = clusters.into_iter();
    let (id, material) = keys.next()?;
    let mut ring = KeyRing::new(ClusterKey::new(id, &material));
    for (id, material) in keys {
        ring.add(ClusterKey::new(id, &material), true);
    }
    Some(ring)
}

/// Compiles a stored policy; a stored policy that no longer validates is a
/// server fault, and denies (fail closed).
pub fn compile_stored(label: &str, doc: &str) -> Result<CompiledPolicy, ApiError> {
    latchkey_policy::parse(doc, PolicyKind::Identity)
        .map(|p| CompiledPolicy::compile(label, &p))
        .map_err(|f| {
            let reasons: Vec<String> = f.iter().map(ToString::to_string).collect();
            ApiError::internal().because(format!(
                "stored policy {label} is invalid: {}",
                reasons.join("; ")
            ))
        })
}
