//! Who gets in, and the books on who is in: the checks every login goes
//! through whatever its wire protocol, and the audit records and limits
//! of the sessions that follow.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use latchkey_audit::{
    AuditSink, AuthEvent, AuthResult, CredentialChange, CredentialEvent, Event, FailureKind,
    Identity, SessionEndEvent, SessionInfo,
};
use latchkey_dbtoken::{DbAuthToken, TokenAction, TokenError, TokenVerifier};
use latchkey_identity::login_gate::LoginCheck;
use latchkey_identity::{AppState, Caller, CredentialFailure, IdentityError};
use latchkey_sigv4::AmzDate;
use latchkey_store::{Database, Engine, StatementPolicy, StoreError, random};
use zeroize::Zeroizing;

use crate::GatewayConfig;
use crate::activity::{Activity, Minute};
use crate::firewall::{FirewallShelf, Learner, SessionFirewall, reload_books};
use crate::limits::{
    Buckets, Counts, Elsewhere, GAUGE_RATE_IP, GAUGE_RATE_PRINCIPAL, Slot, TakenElsewhere, acquire,
};
use crate::statements::{ObjectTags, ServerCatalog, SessionStatements};

/// Why the login gate turned an address away (for the audit log).
const GATE_REFUSAL: &str =
    "failed logins from the source address reached the brute-force threshold";

/// A login attempt, filled in as it goes, for the audit log.
#[derive(Default, Clone)]
pub struct Attempt {
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub identity: Option<Identity>,
    pub database: Option<String>,
    pub resource_arn: Option<String>,
    /// What the client calls itself (`application_name`, `program_name`).
    pub user_agent: Option<String>,
    /// The token's signature verified with the credential's secret and
    /// was presented for the first time: the client holds the secret (see
    /// `AuthEvent::possession_proven`). A token presented before proves
    /// nothing: anyone who saw it can replay it.
    pub possession_proven: bool,
}

/// A client that passed authentication.
pub struct Authenticated {
    /// Shared with the gateway's list (and every session of the
    /// database), not copied per login.
    pub db: Arc<Database>,
    pub caller: Caller,
    pub session_token: Option<Zeroizing<String>>,
    /// The `rds-db:connect` resource: `arn:aws:rds-db:REGION:ACCOUNT:dbuser:ID/USER`.
    pub resource: String,
}

/// A running session: what the revocation sweep watches and the console
/// lists.
struct LiveSession {
    /// Also what the revocation sweep checks again: the credential's
    /// access key and the client's address (not copied here: one idle
    /// session's memory is what 10,000 of them cost).
    info: Arc<SessionInfo>,
    session_token: Option<Zeroizing<String>>,
    counters: Arc<LiveCounters>,
    end: Option<tokio::sync::oneshot::Sender<Interrupt>>,
    /// Whether the session has the SQL firewall (its database had it on
    /// when the session began).
    firewalled: bool,
    /// Whether its statements are refused by statement policy (the
    /// database's was `enforce` when the session began).
    enforced: bool,
}

/// A session's running figures, published by its relay (relaxed atomics:
/// a reader may see one a moment older than another).
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub bytes_from_client: AtomicU64,
    pub bytes_to_client: AtomicU64,
    pub statements: AtomicU64,
}

impl LiveCounters {
    /// Publishes a relay's running figures: three relaxed stores, no lock.
    pub fn publish(&self, bytes_from_client: u64, bytes_to_client: u64, statements: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.bytes_from_client.store(bytes_from_client, Relaxed);
        self.bytes_to_client.store(bytes_to_client, Relaxed);
        self.statements.store(statements, Relaxed);
    }
}

/// A running session as the console shows it.
#[derive(Debug, Clone)]
pub struct LiveView {
    pub info: Arc<SessionInfo>,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub statements: u64,
}

/// A running session's ways to end regardless of its client: the
/// revocation sweep's message, and its deadline.
pub struct Watch {
    id: u64,
    /// Fires when the session must end: the credential it logged in with
    /// was revoked, or someone ended it; `None` once it can no longer fire
    /// (a completed receiver must not be polled again).
    revoked: Option<tokio::sync::oneshot::Receiver<Interrupt>>,
    counters: Arc<LiveCounters>,
    /// Maximum session duration or credential expiry, whichever is first.
    pub deadline: Option<tokio::time::Instant>,
    pub started: Instant,
}

/// Why the gateway ends a session regardless of its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The credential was revoked; the text is for the client.
    Revoked(&'static str),
    /// The maximum session duration or the credential's expiry.
    LifetimeReached,
    /// Ended by someone allowed to (the console's "end session").
    Ended,
    /// The node is stopping and the drain deadline passed.
    ShuttingDown,
    /// The session's database turned its SQL firewall on after the
    /// session began without one: no session escapes it.
    FirewallOn,
    /// The session's database began enforcing statement policy after the
    /// session began without it.
    PolicyEnforced,
    /// The session's database was deregistered: nothing decides for it
    /// any more (its tags, its policy), so its sessions end.
    DatabaseRemoved,
}

impl Interrupt {
    /// For the session's audit record.
    pub fn reason(self) -> &'static str {
        match self {
            Interrupt::Revoked(_) => "credential revoked",
            Interrupt::LifetimeReached => "session lifetime reached",
            Interrupt::Ended => "ended by an administrator",
            Interrupt::ShuttingDown => "node shutting down",
            Interrupt::FirewallOn => "the SQL firewall was turned on",
            Interrupt::PolicyEnforced => "statement policy is now enforced",
            Interrupt::DatabaseRemoved => "the database was deregistered",
        }
    }

    /// For the client.
    pub fn message(self) -> &'static str {
        match self {
            Interrupt::Revoked(text) => text,
            Interrupt::LifetimeReached => {
                "terminating connection: the session reached its maximum duration or its credential expired"
            }
            // PostgreSQL's own words for pg_terminate_backend and for a
            // server's fast shutdown.
            Interrupt::Ended | Interrupt::ShuttingDown => {
                "terminating connection due to administrator command"
            }
            Interrupt::FirewallOn => {
                "terminating connection: the SQL firewall was turned on for this database"
            }
            Interrupt::PolicyEnforced => {
                "terminating connection: statement policy is now enforced for this database"
            }
            Interrupt::DatabaseRemoved => {
                "terminating connection: the database is no longer served by this gateway"
            }
        }
    }
}

impl Watch {
    /// Where the session's relay publishes its running figures.
    pub fn counters(&self) -> Arc<LiveCounters> {
        self.counters.clone()
    }

    /// Runs `work` until it finishes, or until the session must end.
    ///
    /// `work` is pinned by the caller and taken by reference: taken by
    /// value, it would be held twice in the session's task (as this
    /// future's argument and in its running state), and every idle
    /// session would carry the copy.
    pub async fn guard<T, F: Future<Output = T>>(
        &mut self,
        work: std::pin::Pin<&mut F>,
    ) -> Result<T, Interrupt> {
        let deadline = self.deadline;
        tokio::select! {
            done = work => Ok(done),
            interrupt = revocation(&mut self.revoked) => Err(interrupt),
            () = expired(deadline) => Err(Interrupt::LifetimeReached),
        }
    }
}

/// Resolves when the sweep (or the console) ends the session; never once
/// the sender is gone.
async fn revocation(slot: &mut Option<tokio::sync::oneshot::Receiver<Interrupt>>) -> Interrupt {
    let received = match slot.as_mut() {
        Some(receiver) => receiver.await,
        None => return std::future::pending().await,
    };
    *slot = None;
    match received {
        Ok(text) => text,
        Err(_) => std::future::pending().await,
    }
}

/// Resolves when the deadline passes (never without one).
async fn expired(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How a relayed session ended, for its audit record.
pub struct SessionEnd {
    pub reason: String,
    /// Ended by [`Watch::deadline`].
    pub lifetime_reached: bool,
    pub bytes_from_client: u64,
    pub bytes_to_client: u64,
    pub statements: u64,
}

/// The engine-neutral half of a gateway.
pub struct Gatekeeper {
    pub state: Arc<AppState>,
    pub config: GatewayConfig,
    /// Which registered databases this gateway serves, and the engine in
    /// its audit records and metrics.
    pub engine: Engine,
    pub audit: Arc<dyn AuditSink>,
    verifier: TokenVerifier,
    databases: RwLock<Vec<Arc<Database>>>,
    /// Classification tags of the databases with statement policy on.
    object_tags: RwLock<HashMap<String, Arc<ObjectTags>>>,
    /// SQL firewall profiles of the databases with the firewall on.
    firewall: Arc<FirewallShelf>,
    learner: Learner,
    counts: Mutex<Counts>,
    ip_rate: Buckets<IpAddr>,
    principal_rate: Buckets<String>,
    /// What the other nodes took from their buckets (by address, by
    /// principal), as of the last exchange.
    taken_elsewhere: Mutex<(TakenElsewhere, TakenElsewhere)>,
    live: Mutex<HashMap<u64, LiveSession>>,
    next_session: AtomicU64,
    /// Logins per minute over the last day (the console's Overview).
    activity: Mutex<Activity>,
}

impl Gatekeeper {
    pub fn new(
        state: Arc<AppState>,
        config: GatewayConfig,
        engine: Engine,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Self> {
        let keeper = Self {
            state,
            engine,
            audit,
            verifier: TokenVerifier::new(),
            ip_rate: Buckets::new(config.new_connections_per_ip),
            principal_rate: Buckets::new(config.new_connections_per_principal),
            taken_elsewhere: Mutex::default(),
            config,
            databases: RwLock::new(Vec::new()),
            object_tags: RwLock::new(HashMap::new()),
            firewall: Arc::default(),
            learner: Learner::new(),
            counts: Mutex::new(Counts::default()),
            live: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            activity: Mutex::new(Activity::default()),
        };
        keeper.reload_databases()?;
        Ok(keeper)
    }

    /// Re-reads the registered databases of this engine (called on a
    /// timer by `serve`).
    pub fn reload_databases(&self) -> Result<()> {
        let dbs: Vec<Database> = self
            .state
            .store
            .list_databases()?
            .into_iter()
            .filter(|d| d.engine == self.engine)
            .collect();
        let mut tags = HashMap::new();
        if dbs
            .iter()
            .any(|d| d.statement_policy != StatementPolicy::Off)
        {
            let all = self.state.store.object_tags(None)?;
            for db in dbs
                .iter()
                .filter(|d| d.statement_policy != StatementPolicy::Off)
            {
                tags.insert(db.name.clone(), Arc::new(ObjectTags::of(&db.name, &all)));
            }
        }
        let names: Vec<&str> = dbs.iter().map(|d| d.name.as_str()).collect();
        let old = self.firewall.books();
        // The firewall's tables must not hold up the databases' reload: on
        // an error the books stay as they were.
        match reload_books(&self.state.store, &names, &old) {
            Ok(books) => self.firewall.replace(books),
            Err(e) => tracing::warn!(error = %e, "reading the SQL firewall's profiles failed"),
        }
        *self.object_tags.write().unwrap_or_else(|p| p.into_inner()) = tags;
        *self.databases.write().unwrap_or_else(|p| p.into_inner()) =
            dbs.into_iter().map(Arc::new).collect();
        self.end_sessions_that_escape();
        Ok(())
    }

    /// The session's statement policy and SQL firewall (`None` when its
    /// database has both off). `database` is the database the client connected to;
    /// `catalog` what was read of the server's at login (PostgreSQL).
    pub fn statement_gate(
        &self,
        auth: &Authenticated,
        secure: bool,
        database: &str,
        db_user: &str,
        catalog: Option<Arc<ServerCatalog>>,
    ) -> (Option<Box<dyn latchkey_framing::StatementGate>>, bool) {
        // The registration as now stored: a statement policy changed since
        // login counts from the next session; the firewall follows changes
        // (`SessionFirewall::following`).
        let tags = self
            .object_tags
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&auth.db.name)
            .cloned()
            .unwrap_or_default();
        let book = self.firewall.book(&auth.db.name);
        let firewall = book.and_then(|book| {
            // A role's sessions share the role's profile.
            let identity = auth.caller.audit_identity();
            let principal = identity.session.map_or(identity.arn, |s| s.issuer.arn);
            let state = self.state.clone();
            let learner = self
                .learner
                .sender(move |shapes| state.store.learn_shapes(shapes));
            SessionFirewall::new(
                &book,
                principal,
                self.state.now(),
                learner,
                self.learner.dropped(),
            )
            .map(|firewall| firewall.following(self.firewall.clone()))
        });
        let firewalled = firewall.is_some();
        let gate = SessionStatements::new(
            self.state.clone(),
            auth.caller.clone(),
            &auth.db,
            tags,
            secure,
            Some(database),
            db_user,
            catalog,
            firewall,
        )
        .map(|gate| Box::new(gate) as Box<dyn latchkey_framing::StatementGate>);
        (gate, firewalled)
    }

    /// Periodic upkeep (blocking; run it off the async threads): ends
    /// sessions whose credential was revoked or disabled, and forgets
    /// refilled rate buckets.
    pub fn maintain(&self) {
        let now_instant = Instant::now();
        self.ip_rate.sweep(now_instant);
        self.principal_rate.sweep(now_instant);
        if !self.config.end_sessions_on_revocation {
            return;
        }
        let t = self.state.now();
        type Watched = (u64, Option<Zeroizing<String>>, Arc<SessionInfo>);
        let snapshot: Vec<Watched> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, s)| (*id, s.session_token.clone(), s.info.clone()))
            .collect();
        // Sessions ended, by credential, for one audit record each.
        let mut ended: HashMap<String, (Identity, u64)> = HashMap::new();
        for (id, token, info) in snapshot {
            let akid = &info.identity.access_key_id;
            let ip = info.source_ip.to_string();
            // Revoked, disabled, deleted, or its user or role (or one it
            // descends from) deleted or re-created.
            match self
                .state
                .credentials(akid, token.as_ref().map(|t| t.as_str()), t, &ip)
                .and_then(|(caller, _)| self.state.check_bound(&caller).map(drop))
            {
                Ok(()) => {}
                // Expiry is the session deadline's business.
                Err(IdentityError::Credential(c)) if c.failure == CredentialFailure::Expired => {}
                // The store did not answer: nothing says the credential
                // changed (nothing can change while it is down), and a
                // store outage must not end every session.
                Err(IdentityError::Store(StoreError::Unavailable(_))) => {}
                Err(e) => {
                    tracing::info!(
                        engine = self.engine.as_str(),
                        session = id,
                        access_key_id = %akid,
                        reason = %e,
                        "ending a session: its credential is no longer valid"
                    );
                    let end = self
                        .live
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&id)
                        .and_then(|s| s.end.take());
                    if let Some(end) = end {
                        let _ = end.send(Interrupt::Revoked("terminating connection: the credential this session logged in with was revoked"));
                        ended
                            .entry(akid.clone())
                            .or_insert_with(|| (info.identity.clone(), 0))
                            .1 += 1;
                    }
                }
            }
        }
        for (_, (identity, sessions_ended)) in ended {
            self.audit.record(Event::from(CredentialEvent {
                time: SystemTime::now(),
                change: CredentialChange::Revoked,
                identity,
                sessions_ended,
            }));
        }
    }

    /// Logins in each of the last `minutes` minutes (at most a day),
    /// oldest first.
    pub fn activity(&self, minutes: usize) -> Vec<Minute> {
        self.activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last(self.state.now(), minutes)
    }

    /// The sessions running now, with their figures so far.
    pub fn live_sessions(&self) -> Vec<LiveView> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|s| LiveView {
                info: s.info.clone(),
                bytes_from_client: s.counters.bytes_from_client.load(Ordering::Relaxed),
                bytes_to_client: s.counters.bytes_to_client.load(Ordering::Relaxed),
                statements: s.counters.statements.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Ends the running session whose audit id is `session_id`: its
    /// client is told as PostgreSQL tells a terminated backend's, and its
    /// end record says it was ended. `None` when no such session runs (or
    /// it is ending already).
    pub fn end_session(&self, session_id: &str) -> Option<Arc<SessionInfo>> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let session = live
            .values_mut()
            .find(|s| s.info.session_id == session_id)?;
        let end = session.end.take()?;
        end.send(Interrupt::Ended).ok()?;
        Some(session.info.clone())
    }

    /// Ends the sessions of a database no longer registered, and those
    /// that began without the SQL firewall, or without enforced statement
    /// policy, on a database that has it now: a live session follows a
    /// changed firewall mode or profile, but one that never had the gate
    /// cannot take it up halfway (its statements' state is the relay's),
    /// so it goes rather than escape it.
    fn end_sessions_that_escape(&self) {
        let (registered, enforcing): (HashSet<String>, HashSet<String>) = {
            let databases = self.databases.read().unwrap_or_else(|p| p.into_inner());
            (
                databases.iter().map(|d| d.name.clone()).collect(),
                databases
                    .iter()
                    .filter(|d| d.statement_policy == StatementPolicy::Enforce)
                    .map(|d| d.name.clone())
                    .collect(),
            )
        };
        let books = self.firewall.books();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for session in live.values_mut() {
            let database = session.info.database.as_str();
            let why = if !registered.contains(database) {
                Interrupt::DatabaseRemoved
            } else if !session.firewalled && books.contains_key(database) {
                Interrupt::FirewallOn
            } else if !session.enforced && enforcing.contains(database) {
                Interrupt::PolicyEnforced
            } else {
                continue;
            };
            session.firewalled = true;
            session.enforced = true;
            if let Some(end) = session.end.take() {
                tracing::info!(session = %session.info.session_id, database, reason = why.reason(), "ending a session that would escape its database's gate");
                let _ = end.send(why);
            }
        }
    }

    /// How many sessions are live on this node.
    pub fn live_count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Ends every live session (a stopping node's drain deadline passed);
    /// returns how many were told to end.
    pub fn end_all_sessions(&self) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.values_mut()
            .filter_map(|s| s.end.take())
            .map(|end| end.send(Interrupt::ShuttingDown))
            .filter(Result::is_ok)
            .count()
    }

    /// Counts a new connection and says why it must be turned away before
    /// anything is read from it: a blocked address or too many new
    /// connections from it. The refusal is recorded.
    pub fn refuse_early(&self, peer: SocketAddr) -> Option<&'static str> {
        self.state.metrics.connection(self.engine.as_str());
        let (kind, reason) = if self.state.is_blocked(peer.ip(), self.state.now()) {
            (
                FailureKind::Blocked,
                "the source address is blocked by a detection response",
            )
        } else if self.state.login_gate.full(peer.ip(), self.state.now()) {
            (FailureKind::Throttled, GATE_REFUSAL)
        } else if !self.ip_rate.allow(&peer.ip(), Instant::now()) {
            (
                FailureKind::Throttled,
                "new connection rate limit for the source address",
            )
        } else {
            return None;
        };
        tracing::info!(%peer, engine = self.engine.as_str(), reason, "connection refused");
        self.record_auth(
            peer,
            "",
            Attempt::default(),
            AuthResult::Failure {
                kind,
                reason: reason.into(),
            },
        );
        Some(reason)
    }

    /// Begins checking a login's credentials: `None` (the refusal
    /// recorded) when its address has failed as often as the brute-force
    /// rule allows, counting the checks under way. Hold the check until
    /// the outcome is recorded.
    pub fn begin_check(
        &self,
        peer: SocketAddr,
        user: &str,
        attempt: &Attempt,
    ) -> Option<LoginCheck<'_>> {
        let check = self.state.login_gate.begin(peer.ip(), self.state.now());
        if check.is_none() {
            tracing::info!(%peer, engine = self.engine.as_str(), reason = GATE_REFUSAL, "login refused");
            self.record_throttled(peer, user, attempt, GATE_REFUSAL);
        }
        check
    }

    fn record_throttled(&self, peer: SocketAddr, user: &str, attempt: &Attempt, reason: &str) {
        self.record_auth(
            peer,
            user,
            attempt.clone(),
            AuthResult::Failure {
                kind: FailureKind::Throttled,
                reason: reason.to_owned(),
            },
        );
    }

    /// Records a login's outcome (audit and metrics).
    pub fn record_auth(&self, peer: SocketAddr, user: &str, attempt: Attempt, result: AuthResult) {
        if let AuthResult::Failure { kind, .. } = &result {
            // Counted before the record goes out, so that the next login
            // from the address, on any thread, sees it.
            self.state
                .login_gate
                .failed(peer.ip(), *kind, 1, self.state.now());
        }
        self.state.metrics.auth(self.engine.as_str(), &result);
        self.activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(self.state.now(), matches!(result, AuthResult::Success));
        self.audit.record(Event::from(AuthEvent {
            engine: self.engine.as_str(),
            time: SystemTime::now(),
            source_ip: peer.ip(),
            user_agent: attempt.user_agent,
            db_user: user.to_owned(),
            endpoint: attempt.endpoint,
            database: attempt.database,
            resource_arn: attempt.resource_arn,
            identity: attempt.identity,
            access_key_id: attempt.access_key_id,
            // A success too says whether its token was fresh: a reused
            // token logs in (as with RDS) but proves nothing new.
            possession_proven: attempt.possession_proven,
            result,
        }));
    }

    /// Fail closed: when the audit trail cannot write, nobody gets in
    /// unrecorded. Records the refusal (it lands once the trail writes
    /// again) and says whether logins are accepted.
    pub fn audit_accepting(&self, peer: SocketAddr, user: &str, attempt: &Attempt) -> bool {
        if self.audit.accepting() {
            return true;
        }
        tracing::warn!(%peer, engine = self.engine.as_str(), "login refused: the audit trail cannot write");
        self.record_auth(
            peer,
            user,
            attempt.clone(),
            AuthResult::Failure {
                kind: FailureKind::AuditUnavailable,
                reason: "the audit trail cannot write".into(),
            },
        );
        false
    }

    /// Records that an authenticated client got no session because the
    /// real server could not be reached or refused the gateway's login.
    pub fn upstream_failed(&self, peer: SocketAddr, user: &str, attempt: Attempt, reason: String) {
        self.record_auth(
            peer,
            user,
            attempt,
            AuthResult::Failure {
                kind: FailureKind::UpstreamUnavailable,
                reason,
            },
        );
    }

    /// Token, endpoint, user and policy checks. The error is the kind of
    /// refusal and the precise reason, for the audit log only.
    ///
    /// `sni` is the TLS server name the client sent, if any; `secure`
    /// says whether the client came over TLS (`aws:SecureTransport`).
    pub fn authenticate(
        &self,
        password: &[u8],
        user: &str,
        sni: Option<&str>,
        secure: bool,
        peer: SocketAddr,
        attempt: &mut Attempt,
    ) -> Result<Authenticated, (FailureKind, String)> {
        use FailureKind::*;
        let token = DbAuthToken::parse_bytes(password)
            .map_err(|e| (MalformedToken, format!("token: {e}")))?;
        attempt.access_key_id = Some(token.access_key_id().to_owned());
        if token.action != TokenAction::Connect {
            return Err((
                MalformedToken,
                "token is not an rds-db connect token".into(),
            ));
        }
        let host = token.host.to_ascii_lowercase();
        attempt.endpoint = Some(host.clone());
        if let Some(sni) = sni
            && !sni.eq_ignore_ascii_case(&host)
        {
            return Err((
                WrongTarget,
                format!("token endpoint {host} does not match TLS server name {sni}"),
            ));
        }
        if token.port != Some(self.config.port) {
            return Err((
                WrongTarget,
                match token.port {
                    Some(port) => format!(
                        "token is for port {port}, this gateway listens on {}",
                        self.config.port
                    ),
                    None => format!(
                        "token names no port, this gateway listens on {}",
                        self.config.port
                    ),
                },
            ));
        }
        // The store keeps endpoints unique; should two databases still
        // claim one (a store written otherwise), neither gets the login.
        let db = {
            let databases = self.databases.read().unwrap_or_else(|p| p.into_inner());
            let mut claimed = databases.iter().filter(|d| d.endpoints.contains(&host));
            match (claimed.next(), claimed.next()) {
                (Some(db), None) => db.clone(),
                (None, _) => {
                    return Err((
                        WrongTarget,
                        format!(
                            "no {} database is registered for endpoint {host}",
                            self.engine.as_str()
                        ),
                    ));
                }
                (Some(a), Some(b)) => {
                    return Err((
                        WrongTarget,
                        format!(
                            "endpoint {host} is claimed by databases {} and {}: refused",
                            a.name, b.name
                        ),
                    ));
                }
            }
        };
        attempt.database = Some(db.name.clone());
        if token.db_user.as_deref() != Some(user) {
            return Err((
                WrongTarget,
                match &token.db_user {
                    Some(token_user) => format!(
                        "token is for database user \"{token_user}\", the client asked for \"{user}\""
                    ),
                    None => {
                        format!("token names no database user, the client asked for \"{user}\"")
                    }
                },
            ));
        }
        let t = self.state.now();
        let session_token = token.presigned.security_token.as_deref();
        // An expired, revoked or inactive credential comes back with its
        // refusal, given only after the signature is checked: whether it
        // verified says whether the client holds the secret, or only saw
        // a token (whose session token anyone can reuse) or a key id.
        let found = self
            .state
            .find_credentials(
                token.access_key_id(),
                session_token,
                t,
                &peer.ip().to_string(),
            )
            .map_err(|e| match e {
                IdentityError::Credential(c) => {
                    (c.failure.audit_kind(), format!("credentials: {c}"))
                }
                // Not the client's fault, and no evidence against it. Only
                // an unreachable store: any other store error a client
                // might provoke still counts against it.
                IdentityError::Store(e @ StoreError::Unavailable(_)) => {
                    (StoreUnavailable, format!("credentials: {e}"))
                }
                other => (UnknownKey, format!("credentials: {other}")),
            })?;
        let (caller, secret) = (found.caller, found.secret);
        let at = AmzDate::from_unix(t).ok_or_else(|| (Expired, "clock out of range".to_owned()))?;
        let started = Instant::now();
        let verified = self
            .verifier
            .verify(&token, secret.as_bytes(), at, Some(&self.config.region))
            .map_err(|e| {
                use latchkey_sigv4::SigV4Error as S;
                let kind = match &e {
                    TokenError::Signature(
                        S::Expired { .. } | S::NotYetValid { .. } | S::ClockSkew { .. },
                    ) => Expired,
                    TokenError::Signature(S::SignatureMismatch) => BadSignature,
                    TokenError::Signature(S::WrongRegion { .. } | S::WrongService { .. }) => {
                        WrongTarget
                    }
                    _ => MalformedToken,
                };
                (kind, format!("token: {e}"))
            });
        // A verified signature proves possession only the first time it is
        // presented (on either gateway or the API): a token is reusable for
        // its 15 minutes, so a repeat may be a replay by anyone who saw it.
        // Reuse is still let in; only the proof changes.
        self.state.metrics.token_verify.observe(started.elapsed());
        let fresh = verified.is_ok()
            && self.state.seen_signatures.first_sight(
                token.presigned.signature.as_bytes(),
                token.expires_at().unix(),
                t,
            );
        if let Some(refusal) = found.refusal {
            attempt.possession_proven = fresh;
            return Err((
                refusal.failure.audit_kind(),
                format!(
                    "credentials: {} ({})",
                    refusal.reason,
                    match &verified {
                        Ok(()) if fresh => "the token's signature verified".to_owned(),
                        Ok(()) =>
                            "the token's signature verified, but it was presented before".to_owned(),
                        Err((_, why)) => format!("signature not verified: {why}"),
                    }
                ),
            ));
        }
        attempt.identity = Some(caller.audit_identity());
        let resource = format!(
            "arn:aws:rds-db:{}:{}:dbuser:{}/{}",
            self.config.region, caller.account, db.resource_id, user
        );
        attempt.resource_arn = Some(resource.clone());
        verified?;
        attempt.possession_proven = fresh;
        let context = Self::context(&db, secure);
        let started = Instant::now();
        let decided = self
            .state
            .authorize_with(&caller, "rds-db:connect", &resource, t, &context);
        self.state.metrics.policy_eval.observe(started.elapsed());
        decided.map_err(|e| {
            let replayed = if fresh {
                ""
            } else {
                " (token presented before)"
            };
            match e {
                IdentityError::Credential(c) => (
                    c.failure.audit_kind(),
                    format!("credentials: {c}{replayed}"),
                ),
                IdentityError::Store(e @ StoreError::Unavailable(_)) => {
                    (StoreUnavailable, format!("policy: {e}"))
                }
                other => (PolicyDenied, format!("policy: {other}{replayed}")),
            }
        })?;
        Ok(Authenticated {
            db,
            session_token: session_token.map(|s| Zeroizing::new(s.to_owned())),
            caller,
            resource,
        })
    }

    /// The request context beyond what the caller brings: the database's
    /// tags and whether the client came over TLS.
    fn context(db: &Database, secure: bool) -> Vec<(String, String)> {
        let mut context: Vec<(String, String)> = db
            .tags
            .iter()
            .map(|(k, v)| (format!("aws:ResourceTag/{k}"), v.clone()))
            .collect();
        context.push(("aws:SecureTransport".into(), secure.to_string()));
        context
    }

    /// How a session's statements are audited (none with statement audit
    /// off).
    pub fn statement_audit(&self, session: &Arc<SessionInfo>) -> Option<latchkey_framing::Audit> {
        self.config
            .audit_statements
            .then(|| latchkey_framing::Audit {
                sink: self.audit.clone(),
                session: session.clone(),
                keep_literals: self.config.audit_keep_literals,
                clock: crate::relay::system_clock,
            })
    }

    /// Whether policy allows an authenticated session `action` on its
    /// connect resource (for example `latchkey:LoadDataLocalInfile`),
    /// with the same context as its login. Denied by default.
    pub fn allows(&self, auth: &Authenticated, action: &str, secure: bool) -> bool {
        self.state
            .authorize_with(
                &auth.caller,
                action,
                &auth.resource,
                self.state.now(),
                &Self::context(&auth.db, secure),
            )
            .is_ok()
    }

    /// Whether statement policy allows the session `sql:Admin` on its
    /// database (`arn:aws:sql:…:database/RESOURCE_ID/DATABASE`): what a
    /// role or session authorization set at login takes, as `SET ROLE`
    /// would.
    pub fn allows_sql_admin(&self, auth: &Authenticated, database: &str, secure: bool) -> bool {
        let resource = format!(
            "arn:aws:sql:{}:{}:database/{}/{database}",
            self.config.region, auth.caller.account, auth.db.resource_id
        );
        self.state
            .authorize_with(
                &auth.caller,
                "sql:Admin",
                &resource,
                self.state.now(),
                &Self::context(&auth.db, secure),
            )
            .is_ok()
    }

    /// This gateway's live sessions as gauges for the other nodes sharing
    /// the store: (`ENGINE/what`, key, count).
    /// With them, the tokens taken from the new-connection buckets, so
    /// that the rates hold for the cluster too.
    pub fn session_gauges(&self) -> Vec<(String, String, i64)> {
        let engine = self.engine.as_str();
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut out: Vec<(String, String, i64)> = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .gauges()
            .into_iter()
            .map(|(what, key, n)| (format!("{engine}/{what}"), key, i64::from(n)))
            .collect();
        out.extend(self.ip_rate.taken().into_iter().map(|(ip, n)| {
            (
                format!("{engine}/{GAUGE_RATE_IP}"),
                ip.to_string(),
                count(n),
            )
        }));
        out.extend(
            self.principal_rate
                .taken()
                .into_iter()
                .map(|(arn, n)| (format!("{engine}/{GAUGE_RATE_PRINCIPAL}"), arn, count(n))),
        );
        out
    }

    /// Takes up the other nodes' gauges (all engines': this one picks its
    /// own), which the session limits count with this node's own.
    pub fn set_sessions_elsewhere(&self, gauges: &[(String, String, i64)]) {
        let prefix = format!("{}/", self.engine.as_str());
        let elsewhere = Elsewhere::of(gauges.iter().filter_map(|(kind, key, n)| {
            kind.strip_prefix(&prefix)
                .map(|what| (what, key.as_str(), *n))
        }));
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_elsewhere(elsewhere);
        // New connections the other nodes admitted come out of this
        // node's buckets.
        let now = Instant::now();
        let of = |what: &str| {
            let kind = format!("{prefix}{what}");
            gauges
                .iter()
                .filter(move |(k, _, _)| *k == kind)
                .map(|(_, key, n)| (key.as_str(), *n))
                .collect::<Vec<_>>()
        };
        let mut taken = self
            .taken_elsewhere
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (by_ip, by_principal) = &mut *taken;
        for (ip, n) in by_ip.growth(of(GAUGE_RATE_IP).into_iter()) {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                self.ip_rate.drain(ip, n as f64, now);
            }
        }
        for (arn, n) in by_principal.growth(of(GAUGE_RATE_PRINCIPAL).into_iter()) {
            self.principal_rate.drain(arn.to_owned(), n as f64, now);
        }
    }

    /// A place among the sessions at once (in all, per address, per
    /// principal) and a token from the principal's new-session bucket;
    /// or the limit that is full. A refusal is recorded.
    pub fn admit(
        &self,
        auth: &Authenticated,
        peer: SocketAddr,
        user: &str,
        attempt: &Attempt,
    ) -> Result<Slot<'_>, &'static str> {
        let admitted = acquire(
            &self.counts,
            self.config.limits,
            peer.ip(),
            &auth.caller.arn,
        )
        .and_then(|slot| {
            if self
                .principal_rate
                .allow(auth.caller.arn.as_str(), Instant::now())
            {
                Ok(slot)
            } else {
                Err("too many new connections for this principal")
            }
        });
        if let Err(reason) = admitted {
            tracing::info!(%peer, engine = self.engine.as_str(), principal = %auth.caller.arn, reason, "connection refused");
            self.record_throttled(peer, user, attempt, reason);
        }
        admitted
    }

    /// Records the successful login and the session's start; returns the
    /// session as the audit log knows it.
    pub fn session_started(
        &self,
        peer: SocketAddr,
        attempt: Attempt,
        auth: &Authenticated,
        database_name: String,
        db_user: String,
    ) -> Result<Arc<SessionInfo>> {
        let session_id: [u8; 8] = random()?;
        let info = Arc::new(SessionInfo {
            session_id: session_id.iter().map(|b| format!("{b:02x}")).collect(),
            engine: self.engine.as_str(),
            identity: attempt
                .identity
                .clone()
                .unwrap_or_else(|| auth.caller.audit_identity()),
            source_ip: peer.ip(),
            user_agent: attempt.user_agent.clone(),
            database: auth.db.name.clone(),
            resource_arn: attempt.resource_arn.clone().unwrap_or_default(),
            database_name,
            db_user,
            started: SystemTime::now(),
        });
        self.record_auth(peer, &info.db_user, attempt, AuthResult::Success);
        self.audit.record(Event::SessionStart(info.clone()));
        Ok(info)
    }

    /// Starts watching a session for revocation and its deadline; give
    /// the watch back to [`Gatekeeper::session_ended`].
    pub fn watch(&self, info: &Arc<SessionInfo>, auth: &Authenticated, firewalled: bool) -> Watch {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (end_tx, end_rx) = tokio::sync::oneshot::channel();
        let counters = Arc::new(LiveCounters::default());
        self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            LiveSession {
                info: info.clone(),
                session_token: auth.session_token.clone(),
                counters: counters.clone(),
                end: Some(end_tx),
                firewalled,
                enforced: auth.db.statement_policy == StatementPolicy::Enforce,
            },
        );
        self.state.metrics.sessions(self.engine.as_str()).inc();
        Watch {
            id,
            revoked: Some(end_rx),
            counters,
            deadline: self.deadline(&auth.caller),
            started: Instant::now(),
        }
    }

    /// When the session must end regardless of the client.
    fn deadline(&self, caller: &Caller) -> Option<tokio::time::Instant> {
        let mut at: Option<tokio::time::Instant> = self
            .config
            .max_session_duration
            .map(|d| tokio::time::Instant::now() + d);
        if self.config.end_sessions_at_credential_expiry
            && let Some(claims) = &caller.session
        {
            let left = claims.expires.saturating_sub(self.state.now());
            let expiry =
                tokio::time::Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0));
            at = Some(at.map_or(expiry, |a| a.min(expiry)));
        }
        at
    }

    /// Stops watching and records the session's end (and, when its
    /// deadline was the credential's expiry, that expiry).
    pub fn session_ended(
        &self,
        watch: Watch,
        info: Arc<SessionInfo>,
        caller: &Caller,
        end: SessionEnd,
    ) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&watch.id);
        self.state.metrics.sessions(self.engine.as_str()).dec();
        self.state.metrics.relayed(
            self.engine.as_str(),
            end.bytes_from_client,
            end.bytes_to_client,
        );
        let credential_expired = caller
            .session
            .as_ref()
            .is_some_and(|c| self.state.now() >= c.expires);
        if end.lifetime_reached && credential_expired {
            self.audit.record(Event::from(CredentialEvent {
                time: SystemTime::now(),
                change: CredentialChange::Expired,
                identity: info.identity.clone(),
                sessions_ended: 1,
            }));
        }
        self.audit.record(Event::SessionEnd(SessionEndEvent {
            session: info,
            time: SystemTime::now(),
            duration: watch.started.elapsed(),
            bytes_from_client: end.bytes_from_client,
            bytes_to_client: end.bytes_to_client,
            statements: end.statements,
            reason: end.reason,
        }));
    }
}
