//! The pipeline on its own, over in-memory streams: a line protocol
//! stands in for a wire protocol, a counter for the real server, and a
//! store in a temporary directory holds real users, keys, policies and a
//! registered database. Tokens are signed as `aws rds
//! generate-db-auth-token` signs them. Every denial kind, the limits,
//! pooling decisions and revocation are checked against what the client
//! reads and what the audit log records.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_audit::{AuditSink, AuthResult, Event, FailureKind};
use latchkey_dbtoken::{TokenRequest, generate};
use latchkey_identity::AppState;
use latchkey_sigv4::{AmzDate, Credentials};
use latchkey_store::{Database, Engine, PrincipalKind, Store, TlsMode, UpstreamAuth, Vault};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

use super::*;
use crate::limits::ConcurrencyLimits;

const PORT: u16 = 5432;
const REGION: &str = "us-east-1";
const ENDPOINT: &str = "db.example.com";

/// `LOGIN user database token` / `PLAIN user` / `CANCEL`; then any line
/// is a statement, `QUIT` ends the session.
struct Lines {
    next_upstream: AtomicU32,
}

struct FakeUpstream {
    id: u32,
    created: std::time::Instant,
    resets: u32,
}

impl Pooled for FakeUpstream {
    fn created(&self) -> std::time::Instant {
        self.created
    }

    fn alive(&mut self) -> bool {
        true
    }

    fn move_to_this_thread(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct LineClient {
    reader: BufReader<DuplexStream>,
}

impl LineClient {
    async fn say(&mut self, line: &str) -> std::io::Result<()> {
        self.reader.get_mut().write_all(line.as_bytes()).await?;
        self.reader.get_mut().write_all(b"\n").await
    }
}

impl Protocol for Lines {
    const ENGINE: Engine = Engine::Postgres;
    const THREADS: &'static str = "test-sessions";
    type Transport = DuplexStream;
    type Client = LineClient;
    type Startup = ();
    type Upstream = FakeUpstream;
    type ServerRefusal = String;

    async fn refuse_early(&self, mut transport: DuplexStream) {
        let _ = transport.write_all(b"EARLY\n").await;
    }

    async fn open(
        &self,
        _keeper: &Gatekeeper,
        transport: DuplexStream,
        _peer: SocketAddr,
    ) -> Result<Opening<Self>> {
        let mut reader = BufReader::new(transport);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["CANCEL"] => Ok(Opening::Done),
            ["PLAIN", user] => Ok(Opening::Plaintext {
                user: (*user).to_owned(),
            }),
            ["LOGIN", user, database, token] => Ok(Opening::Login {
                login: Login {
                    user: (*user).to_owned(),
                    database: (*database).to_owned(),
                    password: Ok(Zeroizing::new(token.as_bytes().to_vec())),
                    sni: None,
                    secure: true,
                    user_agent: Some("lines".into()),
                    startup: (),
                },
                client: LineClient { reader },
            }),
            _ => Err(anyhow!("not a login: {line:?}")),
        }
    }

    async fn deny(
        &self,
        client: &mut LineClient,
        denial: Denial<'_, String>,
    ) -> std::io::Result<()> {
        let line = match denial {
            Denial::Unavailable => "DENIED audit".to_owned(),
            Denial::LoginRefused { user, .. } => format!("DENIED login {user}"),
            Denial::Throttled(limit) => format!("DENIED throttled {limit}"),
            Denial::Upstream(failure) => {
                format!(
                    "DENIED upstream {}",
                    failure.server.as_deref().unwrap_or("-")
                )
            }
        };
        client.say(&line).await
    }

    fn pool_key(
        &self,
        keeper: &Gatekeeper,
        auth: &Authenticated,
        login: &Login<()>,
    ) -> Option<String> {
        Some(crate::pool::key(
            &auth.db,
            &login.user,
            &login.database,
            &[],
            keeper.state.upstream_credentials_epoch(),
        ))
    }

    async fn connect(
        &self,
        _keeper: &Gatekeeper,
        auth: &Authenticated,
        _login: &Login<()>,
    ) -> Result<FakeUpstream, UpstreamFailure<String>> {
        if auth.db.upstream.starts_with("down") {
            return Err(UpstreamFailure {
                kind: FailureKind::UpstreamCredentialRefused,
                reason: "the server said no".into(),
                server: Some("password authentication failed".into()),
            });
        }
        Ok(FakeUpstream {
            id: self.next_upstream.fetch_add(1, Ordering::Relaxed) + 1,
            created: std::time::Instant::now(),
            resets: 0,
        })
    }

    async fn welcome(
        &self,
        client: &mut LineClient,
        _login: &Login<()>,
        upstream: &mut FakeUpstream,
        _auth: &Authenticated,
    ) -> Result<()> {
        client
            .say(&format!("READY {} {}", upstream.id, upstream.resets))
            .await?;
        Ok(())
    }

    async fn relay(
        &self,
        _keeper: &Gatekeeper,
        session: Session<'_, Self>,
        watch: &mut Watch,
    ) -> Relayed<FakeUpstream> {
        let Session {
            mut client,
            upstream,
            allowed,
            ..
        } = session;
        let mut statements = 0;
        let ended = loop {
            let mut line = String::new();
            let read = watch
                .guard(std::pin::pin!(client.reader.read_line(&mut line)))
                .await;
            match read {
                Ok(Ok(0)) => break Ok("client closed the connection"),
                Ok(Ok(_)) if line.trim() == "QUIT" => break Ok("client quit"),
                Ok(Ok(_)) if line.trim() == "ALLOWED" => {
                    let said = format!(
                        "ALLOWED {} {}",
                        allowed.password_changes, allowed.dynamic_sql
                    );
                    let _ = client.say(&said).await;
                }
                Ok(Ok(_)) => {
                    statements += 1;
                    watch
                        .counters()
                        .statements
                        .store(statements, std::sync::atomic::Ordering::Relaxed);
                    let _ = client.say("OK").await;
                }
                Ok(Err(_)) => break Err("client error"),
                Err(interrupt) => {
                    let _ = client.say(&format!("BYE {}", interrupt.message())).await;
                    break Err(interrupt.reason());
                }
            }
        };
        Relayed {
            upstream: match upstream {
                crate::Link::Session(upstream) => Some(upstream),
                crate::Link::Transaction(_) => None,
            },
            reusable: ended.is_ok(),
            end: SessionEnd {
                reason: ended.unwrap_or_else(|why| why).to_owned(),
                lifetime_reached: ended == Err(crate::Interrupt::LifetimeReached.reason()),
                bytes_from_client: 0,
                bytes_to_client: 0,
                statements,
            },
        }
    }

    async fn reset(upstream: &mut FakeUpstream) -> Result<()> {
        upstream.resets += 1;
        Ok(())
    }
}

/// The audit log, in memory.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    down: AtomicBool,
}

impl AuditSink for Recorder {
    fn record(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }

    fn accepting(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }
}

impl Recorder {
    /// The failure kinds of refused logins, in order.
    fn refusals(&self) -> Vec<FailureKind> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Auth(a) => match &a.result {
                    AuthResult::Failure { kind, .. } => Some(*kind),
                    AuthResult::Success => None,
                },
                _ => None,
            })
            .collect()
    }

    fn session_ends(&self) -> Vec<(String, u64)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::SessionEnd(end) => Some((end.reason.clone(), end.statements)),
                _ => None,
            })
            .collect()
    }

    fn logins(&self) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Auth(a) if matches!(a.result, AuthResult::Success)))
            .count()
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    gateway: Arc<Gateway<Lines>>,
    audit: Arc<Recorder>,
    /// alice may connect as `app` and change passwords; bob has no policy.
    alice: Credentials,
    bob: Credentials,
}

const ALICE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:us-east-1:*:dbuser:*/app"},
  {"Effect":"Allow","Action":"latchkey:ChangeDatabasePassword","Resource":"*"}]}"#;

fn rig(configure: impl FnOnce(&mut GatewayConfig), upstream: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store.db"), Vault::new(1, &[7; 32])).unwrap();
    let now = latchkey_identity::clock::system_now();
    let mut keys = Vec::new();
    for user in ["alice", "bob"] {
        store.create_user(user, "/", &[], now).unwrap();
        let (key, secret) = store.create_access_key(user, now).unwrap();
        keys.push(Credentials::new(key.id, secret.as_str(), None));
    }
    store
        .put_inline_policy(PrincipalKind::User, "alice", "connect", ALICE_POLICY)
        .unwrap();
    store
        .register_database(
            &Database {
                name: "shop".into(),
                engine: Engine::Postgres,
                endpoints: vec![ENDPOINT.into()],
                upstream: upstream.into(),
                upstream_auth: UpstreamAuth::Trust,
                upstream_tls: TlsMode::Disable,
                ..Database::default()
            },
            now,
        )
        .unwrap();
    let clusters = store.cluster_keys(now).unwrap();
    let state = Arc::new(AppState::new(store, clusters).unwrap());
    let mut config = GatewayConfig::new(REGION, PORT);
    configure(&mut config);
    let audit = Arc::new(Recorder::default());
    let protocol = Lines {
        next_upstream: AtomicU32::new(0),
    };
    let gateway = Arc::new(Gateway::new(protocol, state, config, audit.clone()).unwrap());
    let bob = keys.pop().unwrap();
    let alice = keys.pop().unwrap();
    Rig {
        _dir: dir,
        gateway,
        audit,
        alice,
        bob,
    }
}

fn token(creds: &Credentials, user: &str) -> String {
    let now = AmzDate::from_unix(latchkey_identity::clock::system_now()).unwrap();
    generate(&TokenRequest::rds(ENDPOINT, PORT, user, REGION, now), creds).unwrap()
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 40000))
}

/// A client connected to the gateway: what it says goes through the
/// pipeline, which runs as its own task.
struct Client {
    lines: tokio::io::Lines<BufReader<DuplexStream>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Client {
    async fn connect(rig: &Rig, from: SocketAddr, first: &str) -> Self {
        let (ours, theirs) = tokio::io::duplex(4096);
        let gateway = rig.gateway.clone();
        let task = tokio::spawn(async move { gateway.client(theirs, from, 0).await });
        let mut client = Self {
            lines: BufReader::new(ours).lines(),
            task,
        };
        client.say(first).await;
        client
    }

    async fn login(rig: &Rig, creds: &Credentials, user: &str) -> Self {
        let line = format!("LOGIN {user} shop {}", token(creds, user));
        Self::connect(rig, peer(1), &line).await
    }

    async fn say(&mut self, line: &str) {
        let stream = self.lines.get_mut().get_mut();
        stream.write_all(line.as_bytes()).await.unwrap();
        stream.write_all(b"\n").await.unwrap();
    }

    async fn hear(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("an answer in time")
            .unwrap()
            .unwrap_or_else(|| "<closed>".into())
    }

    /// Ends the session and waits for the pipeline to finish with it.
    async fn quit(mut self) {
        self.say("QUIT").await;
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_login_relays_and_is_recorded() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(client.hear().await, "READY 1 0");
    client.say("SELECT 1").await;
    assert_eq!(client.hear().await, "OK");
    // Policy grants alice password changes, not dynamic SQL.
    client.say("ALLOWED").await;
    assert_eq!(client.hear().await, "ALLOWED true false");
    client.quit().await;
    assert_eq!(rig.audit.logins(), 1);
    assert!(rig.audit.refusals().is_empty());
    assert_eq!(
        rig.audit.session_ends(),
        vec![("client quit".to_owned(), 1)]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn every_refusal_says_only_what_rds_says_and_records_why() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let alice_token = token(&rig.alice, "app");
    let forged = {
        let mut wrong = rig.alice.clone();
        wrong.secret_access_key = Zeroizing::new("not-the-secret".into());
        token(&wrong, "app")
    };
    let cases: Vec<(String, &str, FailureKind)> = vec![
        (
            "LOGIN app shop not-a-token".into(),
            "DENIED login app",
            FailureKind::MalformedToken,
        ),
        // A token for `app`, presented for `admin`.
        (
            format!("LOGIN admin shop {alice_token}"),
            "DENIED login admin",
            FailureKind::WrongTarget,
        ),
        (
            format!("LOGIN app shop {forged}"),
            "DENIED login app",
            FailureKind::BadSignature,
        ),
        // Bob has no policy: deny by default.
        (
            format!("LOGIN app shop {}", token(&rig.bob, "app")),
            "DENIED login app",
            FailureKind::PolicyDenied,
        ),
        ("PLAIN app".into(), "<closed>", FailureKind::Plaintext),
    ];
    for (line, answer, _) in &cases {
        let mut client = Client::connect(&rig, peer(2), line).await;
        assert_eq!(client.hear().await, *answer, "{line}");
    }
    let kinds: Vec<FailureKind> = cases.iter().map(|(_, _, kind)| *kind).collect();
    assert_eq!(rig.audit.refusals(), kinds);

    // A deactivated key, then a deleted one.
    let store = &rig.gateway.keeper.state.store;
    store
        .update_access_key(&rig.alice.access_key_id, false)
        .unwrap();
    rig.gateway.keeper.state.invalidate_caches();
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(client.hear().await, "DENIED login app");
    store.delete_access_key(&rig.alice.access_key_id).unwrap();
    rig.gateway.keeper.state.invalidate_caches();
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(client.hear().await, "DENIED login app");
    let kinds = rig.audit.refusals();
    assert_eq!(
        kinds[kinds.len() - 2..],
        [FailureKind::InactiveKey, FailureKind::UnknownKey]
    );
    assert_eq!(rig.audit.logins(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn nobody_gets_in_unrecorded() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    rig.audit.down.store(true, Ordering::Relaxed);
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(client.hear().await, "DENIED audit");
    assert_eq!(rig.audit.refusals(), vec![FailureKind::AuditUnavailable]);
    assert_eq!(rig.audit.logins(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn an_upstream_refusal_is_not_a_login() {
    let rig = rig(|_| {}, "down:5432");
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(
        client.hear().await,
        "DENIED upstream password authentication failed"
    );
    assert_eq!(
        rig.audit.refusals(),
        vec![FailureKind::UpstreamCredentialRefused]
    );
    assert_eq!(rig.audit.logins(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn limits_turn_clients_away() {
    let rig = rig(
        |c| {
            c.limits = ConcurrencyLimits {
                total: 10,
                per_ip: 10,
                per_principal: 1,
            }
        },
        "127.0.0.1:1",
    );
    let mut first = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(first.hear().await, "READY 1 0");
    let mut second = Client::login(&rig, &rig.alice, "app").await;
    assert!(second.hear().await.starts_with("DENIED throttled"));
    assert_eq!(rig.audit.refusals(), vec![FailureKind::Throttled]);
    first.quit().await;
    // The reset runs on its own task.
    tokio::task::yield_now().await;
    // The place is free again.
    let mut third = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(third.hear().await, "READY 1 1", "the pooled connection");
    third.quit().await;

    // A blocked address is turned away before anything is read.
    let state = &rig.gateway.keeper.state;
    assert!(
        state
            .block_ip(peer(9).ip(), state.now() + 60, state.now())
            .unwrap()
    );
    let mut blocked = Client::connect(&rig, peer(9), "CANCEL").await;
    assert_eq!(blocked.hear().await, "EARLY");
    assert_eq!(rig.audit.refusals().last(), Some(&FailureKind::Blocked));
}

#[tokio::test(flavor = "current_thread")]
async fn an_address_that_failed_the_threshold_is_not_checked_again() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let state = &rig.gateway.keeper.state;
    state
        .login_gate
        .arm(latchkey_identity::login_gate::GateRule {
            threshold: 3,
            window_secs: 60,
            counted: vec![FailureKind::BadSignature],
            max_tracked: 100,
            hold_secs: 15,
        });
    let forged = {
        let mut wrong = rig.alice.clone();
        wrong.secret_access_key = Zeroizing::new("not-the-secret".into());
        token(&wrong, "app")
    };
    let guess = format!("LOGIN app shop {forged}");
    for _ in 0..3 {
        let mut client = Client::connect(&rig, peer(3), &guess).await;
        assert_eq!(client.hear().await, "DENIED login app");
    }
    // The threshold's worth of failures: turned away before anything is
    // read, a good token too; another address is not.
    let mut client = Client::connect(&rig, peer(3), &guess).await;
    assert_eq!(client.hear().await, "EARLY");
    let good = format!("LOGIN app shop {}", token(&rig.alice, "app"));
    let mut client = Client::connect(&rig, peer(3), &good).await;
    assert_eq!(client.hear().await, "EARLY");
    let mut client = Client::connect(&rig, peer(4), &good).await;
    assert_eq!(client.hear().await, "READY 1 0");
    client.quit().await;
    assert_eq!(
        rig.audit.refusals(),
        [
            [FailureKind::BadSignature; 3].as_slice(),
            &[FailureKind::Throttled; 2]
        ]
        .concat()
    );

    // Blocked by detection, then unblocked: the address starts afresh.
    assert!(
        state
            .block_ip(peer(3).ip(), state.now() + 60, state.now())
            .unwrap()
    );
    state.reload_blocklist().unwrap();
    state
        .store
        .unblock_address(&peer(3).ip().to_string(), state.now())
        .unwrap();
    state.reload_blocklist().unwrap();
    let mut client = Client::connect(&rig, peer(3), &good).await;
    assert_eq!(client.hear().await, "READY 1 1");
    client.quit().await;
}

#[tokio::test(flavor = "current_thread")]
async fn clean_connections_are_pooled_per_key() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let mut first = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(first.hear().await, "READY 1 0");
    first.quit().await;
    // The reset runs on its own task.
    tokio::task::yield_now().await;
    assert_eq!(rig.gateway.pooled_connections(), 1);
    let mut again = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(
        again.hear().await,
        "READY 1 1",
        "taken from the pool, reset once"
    );
    // A connection ended by the gateway is not clean: it is dropped.
    rig.gateway
        .keeper
        .state
        .store
        .update_access_key(&rig.alice.access_key_id, false)
        .unwrap();
    rig.gateway.keeper.state.invalidate_caches();
    tokio::task::spawn_blocking({
        let gateway = rig.gateway.clone();
        move || gateway.maintain()
    })
    .await
    .unwrap();
    assert!(again.hear().await.starts_with("BYE terminating connection"));
    again.task.await.unwrap().unwrap();
    tokio::task::yield_now().await;
    assert_eq!(rig.gateway.pooled_connections(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_credential_change_keeps_pooled_connections_from_new_sessions() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let state = rig.gateway.keeper.state.clone();
    let first = Client::login(&rig, &rig.alice, "app").await;
    first.quit().await;
    tokio::task::yield_now().await;
    let mut again = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(again.hear().await, "READY 1 1", "reused: nothing changed");
    // Opened before the change, pooled after it, under the old epoch.
    state.bump_upstream_credentials_epoch();
    again.quit().await;
    tokio::task::yield_now().await;
    assert_eq!(rig.gateway.pooled_connections(), 1);
    let mut after = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(after.hear().await, "READY 2 0", "a fresh upstream login");
    after.quit().await;
    tokio::task::yield_now().await;
    let mut next = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(next.hear().await, "READY 2 1", "pooled under the new epoch");
    next.quit().await;
}

#[tokio::test(flavor = "current_thread")]
async fn revocation_ends_live_sessions_and_is_recorded() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(client.hear().await, "READY 1 0");
    // Nothing changed: the sweep leaves the session alone.
    rig.gateway.maintain();
    client.say("SELECT 1").await;
    assert_eq!(client.hear().await, "OK");
    let store = &rig.gateway.keeper.state.store;
    store
        .update_access_key(&rig.alice.access_key_id, false)
        .unwrap();
    rig.gateway.keeper.state.invalidate_caches();
    rig.gateway.maintain();
    assert_eq!(
        client.hear().await,
        "BYE terminating connection: the credential this session logged in with was revoked"
    );
    client.task.await.unwrap().unwrap();
    assert_eq!(
        rig.audit.session_ends(),
        vec![("credential revoked".to_owned(), 1)]
    );
    assert!(
        rig.audit
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Credential(c) if c.sessions_ended == 1))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_session_without_enforced_statement_policy_ends_when_its_database_starts_enforcing() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(client.hear().await, "READY 1 0");
    // A reload that changes nothing leaves it alone.
    rig.gateway.reload_databases().unwrap();
    client.say("SELECT 1").await;
    assert_eq!(client.hear().await, "OK");
    let store = &rig.gateway.keeper.state.store;
    let mut shop = store.get_database("shop").unwrap();
    shop.statement_policy = latchkey_store::StatementPolicy::Enforce;
    store.update_database(&shop).unwrap();
    rig.gateway.reload_databases().unwrap();
    assert_eq!(
        client.hear().await,
        "BYE terminating connection: statement policy is now enforced for this database"
    );
    client.task.await.unwrap().unwrap();
    assert_eq!(
        rig.audit.session_ends(),
        vec![("statement policy is now enforced".to_owned(), 1)]
    );
}

/// Red team (console, multi-node): a session outlived its database's
/// deregistration, and with it the tags that policies decide on.
#[tokio::test(flavor = "current_thread")]
async fn a_session_ends_when_its_database_is_deregistered() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(client.hear().await, "READY 1 0");
    let store = &rig.gateway.keeper.state.store;
    store.remove_database("shop").unwrap();
    rig.gateway.reload_databases().unwrap();
    assert_eq!(
        client.hear().await,
        "BYE terminating connection: the database is no longer served by this gateway"
    );
    client.task.await.unwrap().unwrap();
    assert_eq!(
        rig.audit.session_ends(),
        vec![("the database was deregistered".to_owned(), 0)]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn running_sessions_are_listed_and_can_be_ended() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let keeper = &rig.gateway.keeper;
    assert!(keeper.live_sessions().is_empty());
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(client.hear().await, "READY 1 0");
    for _ in 0..2 {
        client.say("SELECT 1").await;
        assert_eq!(client.hear().await, "OK");
    }
    let live = keeper.live_sessions();
    assert_eq!(live.len(), 1);
    let session = &live[0];
    assert_eq!(session.statements, 2);
    assert_eq!(session.info.db_user, "app");
    assert!(session.info.identity.arn.ends_with(":user/alice"));
    // An id that is not running ends nothing.
    assert!(keeper.end_session("0000000000000000").is_none());
    let ended = keeper.end_session(&session.info.session_id).unwrap();
    assert_eq!(ended.session_id, session.info.session_id);
    assert_eq!(
        client.hear().await,
        "BYE terminating connection due to administrator command"
    );
    client.task.await.unwrap().unwrap();
    assert_eq!(
        rig.audit.session_ends(),
        vec![("ended by an administrator".to_owned(), 2)]
    );
    assert!(keeper.live_sessions().is_empty());
    assert!(keeper.end_session(&session.info.session_id).is_none());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn sessions_end_at_their_maximum_duration() {
    let rig = rig(
        |c| c.max_session_duration = Some(Duration::from_secs(5)),
        "127.0.0.1:1",
    );
    let mut client = Client::login(&rig, &rig.alice, "app").await;
    assert_eq!(client.hear().await, "READY 1 0");
    // Paused time jumps to the deadline once everything waits.
    assert!(
        client
            .hear()
            .await
            .starts_with("BYE terminating connection: the session reached its maximum duration")
    );
    client.task.await.unwrap().unwrap();
    assert_eq!(
        rig.audit.session_ends(),
        vec![("session lifetime reached".to_owned(), 0)]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_silent_client_times_out_at_startup() {
    let rig = rig(|_| {}, "127.0.0.1:1");
    let (_ours, theirs) = tokio::io::duplex(64);
    let outcome = rig.gateway.client(theirs, peer(3), 0).await;
    assert_eq!(outcome.unwrap_err().to_string(), "startup timed out");
}
