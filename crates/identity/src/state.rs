//! Shared server state, request authentication (SigV4 with long-term or
//! sealed temporary credentials) and authorisation (the policy engine).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use latchkey_policy::{CompiledPolicy, Decision, PolicyKind, PolicySet, Request};
use latchkey_session::{ClusterKey, KeyRing, SessionClaims};
use latchkey_sigv4::Verifier;
use latchkey_store::{PrincipalKind, Store, StoreError};

use crate::caller::{Caller, Identity};
use crate::clock::{Clock, SystemClock};
use crate::error::{CredentialError, CredentialFailure, Denial, IdentityError};

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
    /// Bumped by every invalidation: a store read that began before one
    /// is not cached (it may predate the change).
    cache_generation: std::sync::atomic::AtomicU64,
    /// Bumped when this node may have missed a change (its change feed
    /// dropped, and at every poll while it is down): entries cached before
    /// are read again, and serve only while the store does not answer,
    /// within [`AppState::store_outage_grace`].
    confirmed_epoch: std::sync::atomic::AtomicU64,
    /// How long after it was read a cached key or policy may still serve
    /// while the store does not answer (seconds; 0: never).
    store_outage_grace: std::sync::atomic::AtomicI64,
    /// Upstream logins (database, client user) the gateways read lately,
    /// for new upstream connections while the store does not answer.
    pub upstream_logins:
        crate::outage::OutageCache<(String, String), Option<latchkey_store::UpstreamLogins>>,
    /// Resource policies (a KMS key's, a secret's) compiled, by the
    /// resource's ARN, with the text they were compiled from: a changed
    /// text is compiled again, so an entry is never stale.
    resource_policies: RwLock<HashMap<String, (String, Arc<CompiledPolicy>)>>,
    /// Source addresses a detection response blocked, until when (Unix
    /// seconds). `any_blocked` spares every connection the lock while the
    /// list is empty.
    blocked: RwLock<HashMap<std::net::IpAddr, i64>>,
    any_blocked: std::sync::atomic::AtomicBool,
    /// Blocks made here: (until, its number in `block_seq`, whether the
    /// store took it). A reload replaces `blocked` with the store's list
    /// (so that a block lifted in the store is lifted here) but keeps
    /// those the store did not take, and those made since the reload
    /// began reading (the store may not have had them yet).
    local_blocks: std::sync::Mutex<HashMap<std::net::IpAddr, (i64, u64, bool)>>,
    block_seq: std::sync::atomic::AtomicU64,
    /// Failed database logins per source address, counted as they are
    /// decided, so that a burst gets no more checks than the brute-force
    /// rule's threshold before detection's block lands.
    pub login_gate: crate::login_gate::SharedLoginGate,
    /// Bumped whenever an upstream database credential changes (a
    /// rotation step): part of the gateways' pool keys, so that no idle
    /// connection opened before the change is handed out again (see
    /// [`AppState::upstream_credentials_epoch`]).
    upstream_credentials: std::sync::atomic::AtomicU64,
    /// Counters and latencies for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where API calls and logins are recorded; none until `serve` sets it.
    audit: std::sync::OnceLock<Arc<dyn latchkey_audit::AuditSink>>,
    /// The region requests must be signed for (`us-east-1` unless set).
    region: String,
    /// Verified signatures already presented, to the API or a gateway: a
    /// repeat proves nothing about who presents it.
    pub seen_signatures: crate::replay::SeenSignatures,
    clock: Arc<dyn Clock>,
    /// Wake-ups for the background jobs API calls start.
    pub jobs: crate::jobs::Jobs,
    /// Failed console sign-ins (and `ChangePassword` old passwords), per
    /// user name and address (`password.rs`).
    pub(crate) sign_ins: std::sync::Mutex<latchkey_password::SignInThrottle>,
    /// Password hashes computed at once (`password.rs`).
    pub(crate) hashes: crate::password::HashGate,
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
    /// [`AppState::confirmed_epoch`] when read.
    epoch: u64,
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

/// A cached long-term key: its caller, secret, when it was read and the
/// confirmed epoch then.
type CachedKey = (Caller, zeroize::Zeroizing<String>, i64, u64);

/// How long a long-term key stays cached (bounds how late another node's
/// deactivation is seen).
pub const KEY_CACHE_SECS: i64 = 30;

/// [`AppState::set_store_outage_grace`] unless configured (seconds): about
/// a PostgreSQL failover.
pub const DEFAULT_STORE_OUTAGE_GRACE: i64 = 30;

/// The region when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The credential behind an access key, found before its signature is
/// checked (see [`AppState::find_credentials`]).
pub struct FoundCredential {
    pub caller: Caller,
    pub secret: zeroize::Zeroizing<String>,
    /// Why it must be refused (expired, revoked, inactive), to be given
    /// once the signature was checked.
    pub refusal: Option<CredentialError>,
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
            cache_generation: std::sync::atomic::AtomicU64::new(0),
            confirmed_epoch: std::sync::atomic::AtomicU64::new(0),
            store_outage_grace: std::sync::atomic::AtomicI64::new(DEFAULT_STORE_OUTAGE_GRACE),
            upstream_logins: crate::outage::OutageCache::new(10_000),
            resource_policies: RwLock::new(HashMap::new()),
            blocked: RwLock::new(HashMap::new()),
            any_blocked: std::sync::atomic::AtomicBool::new(false),
            local_blocks: std::sync::Mutex::new(HashMap::new()),
            block_seq: std::sync::atomic::AtomicU64::new(0),
            login_gate: crate::login_gate::SharedLoginGate::default(),
            upstream_credentials: std::sync::atomic::AtomicU64::new(0),
            metrics: Arc::default(),
            audit: std::sync::OnceLock::new(),
            region: DEFAULT_REGION.to_owned(),
            seen_signatures: crate::replay::SeenSignatures::default(),
            clock: Arc::new(SystemClock),
            jobs: crate::jobs::Jobs::default(),
            sign_ins: std::sync::Mutex::default(),
            hashes: crate::password::HashGate::default(),
        })
    }

    /// Decides by `clock` instead of the system's (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Unix seconds by the injected clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
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

    /// Refuses `ip` until `until` (Unix seconds), on the gateways and the
    /// API: here at once, and on every node sharing the store as it
    /// reloads the blocklist (its change feed wakes it). `evidence` is
    /// when the last failure behind it was seen: an operator who lifted a
    /// block of `ip` since forgave it, and nothing is blocked (`Ok(false)`).
    /// When the store does not answer, the block holds here all the same
    /// (fail closed) and the error is returned.
    pub fn block_ip(
        &self,
        ip: std::net::IpAddr,
        until: i64,
        evidence: i64,
    ) -> Result<bool, StoreError> {
        let stored = self.store.block_address(&ip.to_string(), until, evidence);
        if matches!(stored, Ok(false)) {
            return Ok(false);
        }
        // Numbered after the write: a reload that read the store before
        // it began before this number, and keeps the block.
        let seq = self
            .block_seq
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        {
            let mut local = self.local_blocks.lock().unwrap_or_else(|p| p.into_inner());
            let slot = local.entry(ip).or_insert((until, seq, false));
            *slot = (slot.0.max(until), seq, stored.is_ok());
        }
        self.block_here(ip, until);
        stored
    }

    fn block_here(&self, ip: std::net::IpAddr, until: i64) {
        let mut blocked = self.blocked.write().unwrap_or_else(|p| p.into_inner());
        let now = self.now();
        blocked.retain(|_, t| *t > now);
        let slot = blocked.entry(ip).or_insert(until);
        *slot = (*slot).max(until);
        self.any_blocked
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Re-reads the blocklist from the store (what other nodes blocked,
    /// without what was lifted there); blocks made here that the store
    /// did not take stay.
    pub fn reload_blocklist(&self) -> Result<(), StoreError> {
        let now = self.now();
        let began = self.block_seq.load(std::sync::atomic::Ordering::Acquire);
        let mut fresh: HashMap<std::net::IpAddr, i64> = HashMap::new();
        for (ip, until) in self.store.blocked_addresses(now)? {
            // Written by `block_ip`; anything else in the table is not an
            // address and blocks nothing.
            if let Ok(ip) = ip.parse() {
                fresh.insert(ip, until);
            }
        }
        {
            let mut local = self.local_blocks.lock().unwrap_or_else(|p| p.into_inner());
            local.retain(|_, (until, seq, stored)| *until > now && (!*stored || *seq > began));
            for (ip, (until, _, _)) in local.iter() {
                let slot = fresh.entry(*ip).or_insert(*until);
                *slot = (*slot).max(*until);
            }
        }
        let any = !fresh.is_empty();
        let before = std::mem::replace(
            &mut *self.blocked.write().unwrap_or_else(|p| p.into_inner()),
            fresh,
        );
        // An address lifted (unblocked, or its block over) starts afresh
        // at the login gate too.
        let blocked = self.blocked.read().unwrap_or_else(|p| p.into_inner());
        self.login_gate.forgive(
            before.into_keys().filter(|ip| !blocked.contains_key(ip)),
            now,
        );
        drop(blocked);
        self.any_blocked
            .store(any, std::sync::atomic::Ordering::Release);
        Ok(())
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

    /// The upstream credentials epoch: how many times an upstream
    /// database credential changed on this node since it started. The
    /// gateways put it in their pool keys, so a pooled idle connection
    /// opened before a change is never handed out again (it ages out with
    /// the idle timeout). One counter for every database and user, not a
    /// version per login read from the store: rotations are rare, so
    /// draining every pool on each costs little, while a store read on
    /// every pool checkout (the hot path of a pooled session) would not be
    /// acceptable.
    pub fn upstream_credentials_epoch(&self) -> u64 {
        self.upstream_credentials
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks a change of upstream credentials (call it after the store
    /// holds the new ones): connections pooled until now are not reused.
    pub fn bump_upstream_credentials_epoch(&self) {
        self.upstream_logins.clear();
        self.upstream_credentials
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Sets the audit sink (once, at start).
    pub fn set_audit(&self, sink: Arc<dyn latchkey_audit::AuditSink>) {
        let _ = self.audit.set(sink);
    }

    /// Stores a finding, counts it and records it in the trail (where
    /// the detection observer posts it to the webhook).
    pub fn raise_finding(&self, finding: latchkey_audit::Finding) -> Result<(), StoreError> {
        let json = latchkey_audit::finding_json(&finding);
        let at = finding
            .last_seen
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.store.put_finding(
            &finding.id,
            &finding.kind,
            finding.severity.as_str(),
            at,
            &json,
        )?;
        self.metrics
            .finding(&finding.kind, finding.severity.as_str());
        self.audit()
            .record(latchkey_audit::Event::Finding(Box::new(finding)));
        Ok(())
    }

    pub fn audit(&self) -> &dyn latchkey_audit::AuditSink {
        match self.audit.get() {
            Some(sink) => sink.as_ref(),
            None => &latchkey_audit::NullSink,
        }
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
    ) -> Result<(Caller, zeroize::Zeroizing<String>), IdentityError> {
        let found = self.find_credentials(akid, session_token, now, source_ip)?;
        match found.refusal {
            Some(refusal) => Err(refusal.into()),
            None => Ok((found.caller, found.secret)),
        }
    }

    /// As [`AppState::credentials`], but an expired, revoked or inactive
    /// credential is returned with its refusal, for the caller to give
    /// after checking the signature: only then does the refusal say
    /// whether the client proved it holds the secret
    /// ([`CredentialError::possession_proven`]). An unknown key or a session
    /// token that does not open is refused at once (nothing to check a
    /// signature against).
    pub fn find_credentials(
        &self,
        akid: &str,
        session_token: Option<&str>,
        now: i64,
        source_ip: &str,
    ) -> Result<FoundCredential, IdentityError> {
        // IAM's own shape for a key id, checked before any store read: a
        // byte the store cannot take (a NUL) must not turn a guess into a
        // store error, which brute-force detection would not count.
        if !(16..=128).contains(&akid.len())
            || !akid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(CredentialError::new(
                CredentialFailure::Malformed,
                format!("malformed access key id {akid:?}"),
            )
            .into());
        }
        if akid.starts_with("ASIA") {
            self.temporary_caller(akid, session_token, now, source_ip)
        } else if session_token.is_some() {
            // A long-term key never comes with a session token: AWS
            // refuses the pair rather than ignoring the token.
            Err(CredentialError::new(
                CredentialFailure::Malformed,
                format!("long-term access key {akid} sent with a session token"),
            )
            .into())
        } else {
            self.long_term_caller(akid, source_ip, now)
        }
    }

    fn long_term_caller(
        &self,
        akid: &str,
        source_ip: &str,
        now: i64,
    ) -> Result<FoundCredential, IdentityError> {
        let cached = self
            .key_cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(akid)
            .cloned();
        let cached = match cached {
            Some((mut caller, secret, at, epoch))
                if now - at < KEY_CACHE_SECS && epoch == self.confirmed_epoch() =>
            {
                caller.source_ip = source_ip.to_owned();
                return Ok(FoundCredential::valid(caller, secret));
            }
            // Stale: read again, and kept for a store outage.
            stale => stale,
        };
        // A change reported while this reads must not be cached over.
        let generation = self.cache_generation();
        let epoch = self.confirmed_epoch();
        let read = self.store.access_key_secret(akid).and_then(|found| {
            found
                .map(|(key, secret)| Ok((self.store.get_user(&key.user)?, key, secret)))
                .transpose()
        });
        let (user, key, secret) = match read {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Err(CredentialError::new(
                    CredentialFailure::UnknownKey,
                    format!("unknown access key {akid}"),
                )
                .into());
            }
            Err(StoreError::Unavailable(why)) => {
                // The store does not answer: what was read from it lately
                // serves until the grace runs out.
                return match cached {
                    Some((mut caller, secret, at, _)) if self.within_outage_grace(at, now) => {
                        caller.source_ip = source_ip.to_owned();
                        Ok(FoundCredential::valid(caller, secret))
                    }
                    _ => Err(StoreError::Unavailable(why).into()),
                };
            }
            Err(e) => return Err(e.into()),
        };
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
                refusal: Some(CredentialError::new(
                    CredentialFailure::InactiveKey,
                    format!("inactive access key {akid}"),
                )),
            });
        }
        let mut cache = self.key_cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 10_000 {
            cache.clear();
        }
        if self.cache_generation() == generation {
            cache.insert(
                akid.to_owned(),
                (caller.clone(), secret.clone(), now, epoch),
            );
        }
        Ok(FoundCredential::valid(caller, secret))
    }

    /// Re-reads the revocation list from the store. `serve` calls this
    /// every few seconds so that every node sharing the store honours a
    /// revocation made on another.
    pub fn reload_revocations(&self) -> Result<(), StoreError> {
        let fresh: HashMap<String, i64> = self.store.revocations()?.into_iter().collect();
        *self.revocations.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Rotates the cluster key when due (on any node; the store makes it
    /// happen once) and reloads the key ring, so that every node seals with
    /// the newest key and still opens sessions sealed by older ones.
    pub fn refresh_cluster_keys(&self, now: i64, every: i64) -> Result<(), StoreError> {
        // Keep a retired key as long as a session it sealed may live
        // (GetSessionToken: 36 h), plus an hour of margin.
        let keep = 129_600 + 3600;
        self.store.rotate_cluster_keys(now, every, keep)?;
        if let Some(ring) = key_ring(self.store.cluster_keys(now)?) {
            *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = ring;
        }
        Ok(())
    }

    fn confirmed_epoch(&self) -> u64 {
        self.confirmed_epoch
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether an entry read at `at` may serve at `now` while the store
    /// does not answer.
    fn within_outage_grace(&self, at: i64, now: i64) -> bool {
        now - at < self.store_outage_grace()
    }

    /// [`AppState::set_store_outage_grace`]'s seconds.
    pub fn store_outage_grace(&self) -> i64 {
        self.store_outage_grace
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long (seconds) a cached key or policy serves after it was read,
    /// while the store does not answer; 0 refuses at once.
    pub fn set_store_outage_grace(&self, secs: i64) {
        self.store_outage_grace
            .store(secs.max(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// After this node may have missed a change (its change feed dropped,
    /// or polls while it is down): cached keys and policies are read again
    /// before they serve, and serve as they are only while the store does
    /// not answer. Where a change is known, [`AppState::invalidate_caches`].
    pub fn unconfirm_caches(&self) {
        self.confirmed_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn cache_generation(&self) -> u64 {
        self.cache_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets cached long-term keys and policies (after IAM changed
    /// anything).
    pub fn invalidate_caches(&self) {
        // First: a read in flight from before now is not cached after.
        self.cache_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.key_cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.principal_cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The temporary access key id of a session token that opens with
    /// this node's cluster keys (`None` for any other string): what a
    /// leaked token alone says of its key.
    pub fn session_access_key_id(&self, token: &str) -> Option<String> {
        self.keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .open(token)
            .ok()
            .map(|opened| opened.access_key_id)
    }

    fn temporary_caller(
        &self,
        akid: &str,
        token: Option<&str>,
        now: i64,
        source_ip: &str,
    ) -> Result<FoundCredential, IdentityError> {
        let token = token.ok_or_else(|| {
            CredentialError::new(
                CredentialFailure::Malformed,
                "temporary key without a session token",
            )
        })?;
        let opened = self
            .keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .open(token)
            .map_err(|e| CredentialError::new(CredentialFailure::UnknownKey, e.to_string()))?;
        if opened.access_key_id != akid {
            return Err(CredentialError::new(
                CredentialFailure::Malformed,
                "access key id does not belong to the session token",
            )
            .into());
        }
        let c = opened.claims;
        let refusal = if now > c.expires {
            Some(CredentialError::new(
                CredentialFailure::Expired,
                format!("session expired at {}", crate::iso8601(c.expires)),
            ))
        } else if self.is_revoked(&c) {
            Some(CredentialError::new(
                CredentialFailure::SessionRevoked,
                "session issued before the revocation time",
            ))
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
    fn principal_tags(&self, caller: &Caller) -> Result<Vec<(String, String)>, IdentityError> {
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
    pub fn check_bound(&self, caller: &Caller) -> Result<Arc<PrincipalRecord>, IdentityError> {
        let gone = |what: &str| -> IdentityError {
            CredentialError::new(
                CredentialFailure::PrincipalGone,
                format!(
                    "{what} no longer exists as the credentials were issued for (deleted or re-created)"
                ),
            )
            .into()
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
    fn entity_is(&self, kind: PrincipalKind, name: &str, id: &str) -> Result<bool, IdentityError> {
        Ok(self
            .find_principal(kind, name)?
            .is_some_and(|record| !id.is_empty() && record.id == id))
    }

    pub fn request(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        now: i64,
    ) -> Result<Request, IdentityError> {
        let mut r = Request::new(action, resource).with_caller(&caller.arn);
        r.set_context("aws:SourceIp", [caller.source_ip.as_str()]);
        r.set_context("aws:CurrentTime", [crate::iso8601(now)]);
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
            r.set_context("aws:TokenIssueTime", [crate::iso8601(c.issued)]);
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
    pub fn policy_set(&self, caller: &Caller) -> Result<PolicySet, IdentityError> {
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
    ) -> Result<Arc<PrincipalRecord>, IdentityError> {
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
    ) -> Result<Option<Arc<PrincipalRecord>>, IdentityError> {
        let key = format!("{}/{}", kind.as_str(), name.to_ascii_lowercase());
        let t = self.now();
        let cached = self
            .principal_cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(record) = &cached
            && t - record.read_at < POLICY_CACHE_SECS
            && record.epoch == self.confirmed_epoch()
        {
            return Ok(Some(record.clone()));
        }
        let generation = self.cache_generation();
        let epoch = self.confirmed_epoch();
        let record = match self.read_principal(kind, name, t, epoch) {
            Ok(Some(record)) => Arc::new(record),
            Ok(None) => return Ok(None),
            Err(IdentityError::Store(StoreError::Unavailable(why))) => {
                // The store does not answer: what was read from it lately
                // serves until the grace runs out.
                return match cached {
                    Some(record) if self.within_outage_grace(record.read_at, t) => Ok(Some(record)),
                    _ => Err(StoreError::Unavailable(why).into()),
                };
            }
            Err(e) => return Err(e),
        };
        let mut cache = self
            .principal_cache
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 10_000 {
            cache.clear();
        }
        if self.cache_generation() == generation {
            cache.insert(key, record.clone());
        }
        Ok(Some(record))
    }

    /// A user's, role's or group's record from the store.
    fn read_principal(
        &self,
        kind: PrincipalKind,
        name: &str,
        read_at: i64,
        epoch: u64,
    ) -> Result<Option<PrincipalRecord>, IdentityError> {
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
        Ok(Some(PrincipalRecord {
            id,
            tags,
            policies,
            read_at,
            epoch,
        }))
    }

    /// Allows the call or says why not ([`IdentityError::Denied`] for a
    /// policy decision).
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        now: i64,
    ) -> Result<(), IdentityError> {
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
    ) -> Result<(), IdentityError> {
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
    ) -> Result<(), IdentityError> {
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
    ) -> Result<(), IdentityError> {
        self.authorize_on_resource(caller, action, resource, shown, now, context, None)
    }

    /// As [`AppState::authorize_shown`], with the resource's own policy
    /// (a secret's, a key's) evaluated together with the caller's identity
    /// policies, as AWS does within one account: either may allow, and a
    /// Deny in either wins.
    #[allow(clippy::too_many_arguments)]
    pub fn authorize_on_resource(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        shown: &str,
        now: i64,
        context: &ActionContext,
        resource_policy: Option<Arc<CompiledPolicy>>,
    ) -> Result<(), IdentityError> {
        let mut set = self.policy_set(caller)?;
        set.resource = resource_policy;
        let mut req = self.request(caller, action, resource, now)?;
        for (k, v) in context.iter() {
            req.set_context(k, v.iter().map(String::as_str));
        }
        match set.decide(&req) {
            Decision::Allowed => Ok(()),
            d => Err(IdentityError::Denied(Denial {
                caller: caller.arn.clone(),
                action: action.to_owned(),
                resource: resource.to_owned(),
                shown: shown.to_owned(),
                decision: d.as_str(),
                by_resource_policy: set.resource.as_ref().is_some_and(|p| p.evaluate(&req).deny),
            })),
        }
    }
}

impl AppState {
    /// `doc`, the policy of the resource `arn`, compiled (once for each
    /// text it has had).
    pub fn resource_policy(
        &self,
        arn: &str,
        doc: &str,
    ) -> Result<Arc<CompiledPolicy>, IdentityError> {
        if let Some((text, compiled)) = self
            .resource_policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(arn)
            && text == doc
        {
            return Ok(compiled.clone());
        }
        let compiled = Arc::new(compile_resource_policy(arn, doc)?);
        let mut cache = self
            .resource_policies
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(arn.to_owned(), (doc.to_owned(), compiled.clone()));
        Ok(compiled)
    }

    /// Authorises `action` on a resource whose policy is a gate, as a KMS
    /// key policy is: it must allow the caller, by its ARN or by its
    /// account (the account root as principal, which then needs an
    /// identity-policy Allow too). An identity-policy Allow alone does not
    /// grant, and an explicit Deny anywhere refuses.
    #[allow(clippy::too_many_arguments)]
    pub fn authorize_gated(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        shown: &str,
        now: i64,
        context: &ActionContext,
        gate: Arc<CompiledPolicy>,
    ) -> Result<(), IdentityError> {
        let mut set = self.policy_set(caller)?;
        set.resource = Some(gate.clone());
        let mut req = self.request(caller, action, resource, now)?;
        for (k, v) in context.iter() {
            req.set_context(k, v.iter().map(String::as_str));
        }
        match set.decide_gated(&req) {
            Decision::Allowed => Ok(()),
            d => {
                let gated = gate.evaluate(&req);
                Err(IdentityError::Denied(Denial {
                    caller: caller.arn.clone(),
                    action: action.to_owned(),
                    resource: resource.to_owned(),
                    shown: shown.to_owned(),
                    decision: d.as_str(),
                    by_resource_policy: gated.deny || !(gated.allow || gated.allow_via_account),
                }))
            }
        }
    }

    /// Whether `policy` (a gate, see [`Self::authorize_gated`]) would let
    /// `caller` do `action` on `resource`: KMS's check that a new key
    /// policy does not lock its author out.
    pub fn gate_allows(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        now: i64,
        gate: Arc<CompiledPolicy>,
    ) -> Result<bool, IdentityError> {
        let mut set = self.policy_set(caller)?;
        set.resource = Some(gate);
        let req = self.request(caller, action, resource, now)?;
        Ok(set.decide_gated(&req) == Decision::Allowed)
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

/// Compiles a stored identity policy; a stored policy that no longer
/// validates is a server fault, and denies (fail closed).
pub fn compile_stored(label: &str, doc: &str) -> Result<CompiledPolicy, IdentityError> {
    compile_as(PolicyKind::Identity, label, doc)
}

/// As [`compile_stored`], for a resource's own policy (a secret's, a
/// key's).
pub fn compile_resource_policy(label: &str, doc: &str) -> Result<CompiledPolicy, IdentityError> {
    compile_as(PolicyKind::Resource, label, doc)
}

fn compile_as(kind: PolicyKind, label: &str, doc: &str) -> Result<CompiledPolicy, IdentityError> {
    latchkey_policy::parse(doc, kind)
        .map(|p| CompiledPolicy::compile(label, &p))
        .map_err(|f| {
            let reasons: Vec<String> = f.iter().map(ToString::to_string).collect();
            IdentityError::InvalidStoredPolicy(format!(
                "stored policy {label} is invalid: {}",
                reasons.join("; ")
            ))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn failure(state: &AppState, akid: &str) -> CredentialFailure {
        match state.find_credentials(akid, None, 0, "10.0.0.1") {
            Err(IdentityError::Credential(c)) => c.failure,
            Err(e) => panic!("{akid:?}: {e}"),
            Ok(_) => panic!("{akid:?} was found"),
        }
    }

    #[test]
    fn malformed_key_ids_are_refused_before_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("store.db"),
            latchkey_store::Vault::new(1, &[7; 32]),
        )
        .unwrap();
        let state = AppState::new(store, vec![(1, zeroize::Zeroizing::new([3; 32]))]).unwrap();
        let long = "A".repeat(129);
        for bad in [
            "AKIA\0AAAAAAAAAAAAAAA",
            "AKIA",
            long.as_str(),
            "AKIA-AAAAAAAAAAAAAAA",
            "ASIA\u{e9}AAAAAAAAAAAAAA",
        ] {
            assert_eq!(
                failure(&state, bad),
                CredentialFailure::Malformed,
                "{bad:?}"
            );
        }
        // Well formed but unknown: unknown, from the store.
        assert_eq!(
            failure(&state, "AKIAZZZZZZZZZZZZZZZZ"),
            CredentialFailure::UnknownKey
        );
    }
}
