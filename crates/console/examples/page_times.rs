//! Server time of the console's pages at scale: 10,000 users (in ten
//! groups, a third with a policy of their own), 1,000 databases,
//! 1,000,000 audit records, each page rendered in
//! process through the console's own handler (what `latchkey serve` runs
//! behind TLS), signed in as an administrator.
//!
//!   cargo run --release -p latchkey-console --example page_times [USERS] [RECORDS]
//!
//! Prints each page's first request, then the median and 99th
//! percentile over 100 more, in ms.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is the report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use latchkey_audit::{ApiEvent, ApiService, AuditSink, Event, Identity, IdentityKind};
use latchkey_console::Console;
use latchkey_console::session::SessionLimits;
use latchkey_identity::AppState;
use latchkey_server::http::WebFront;
use latchkey_store::{PasswordHash, Store, Vault};

fn request(
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> (hyper::http::request::Parts, Vec<u8>) {
    let (parts, ()) = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost:7443")
        .header("origin", "https://localhost:7443")
        .header("sec-fetch-site", "same-origin")
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(())
        .unwrap()
        .into_parts();
    (parts, body.as_bytes().to_vec())
}

fn cookie_of(r: &hyper::Response<http_body_util::Full<bytes::Bytes>>, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(name))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned()
}

async fn body_text(r: hyper::Response<http_body_util::Full<bytes::Bytes>>) -> String {
    use http_body_util::BodyExt;
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// 1,000 secrets, 1,000 parameters and 100 KMS keys, stored as the APIs
/// store them (documents of the secrets, ssm and kms crates).
fn vault_items(store: &Store, account: &str, now: i64) {
    let started = Instant::now();
    let region = "us-east-1";
    for i in 0..1_000u32 {
        let name = format!("app/{i:04}/db");
        let [a, b, c, d] = i.to_be_bytes();
        let suffix = latchkey_secrets::secret::arn_suffix([a, b, c, d, 7, 9]);
        let mut secret =
            latchkey_secrets::Secret::new(region, account, &name, &suffix, now).unwrap();
        secret.description = format!("Database login of service {i}");
        let document = serde_json::to_string(&secret).unwrap();
        store
            .create_secret(&secret.arn, &name, &document, None)
            .unwrap();
    }
    let admin = format!("arn:aws:iam::{account}:user/admin");
    for i in 0..1_000 {
        let name = latchkey_ssm::ParameterName::parse(&format!("/app/{i:04}/url")).unwrap();
        let version = latchkey_ssm::Version {
            version: 1,
            kind: latchkey_ssm::ParameterType::String,
            key_id: None,
            description: Some(format!("Service {i}'s address")),
            allowed_pattern: None,
            tier: latchkey_ssm::Tier::Standard,
            data_type: latchkey_ssm::DataType::Text,
            labels: Vec::new(),
            modified: now,
            modified_user: admin.clone(),
        };
        let parameter = latchkey_ssm::Parameter::new(name.clone(), version, Vec::new());
        let document = serde_json::to_string(&parameter).unwrap();
        store
            .create_parameter(
                name.as_str(),
                &document,
                1,
                format!("https://svc-{i}.internal").as_bytes(),
            )
            .unwrap();
    }
    for i in 0..100u8 {
        let id = latchkey_kms::key_id::KeyUuid::from_bytes([i; 16]);
        let key = latchkey_kms::key::Key::new(
            &id,
            region,
            account,
            latchkey_kms::key::NewKey {
                description: format!("Key {i}"),
                spec: latchkey_kms::key::KeySpec::SymmetricDefault,
                manager: latchkey_kms::key::KeyManager::Customer,
                policy: latchkey_kms::policy::default_policy(account),
                tags: Vec::new(),
            },
            now,
        )
        .unwrap();
        let document = serde_json::to_string(&key).unwrap();
        store.create_kms_key(&key.id, &document, &[i; 32]).unwrap();
    }
    eprintln!(
        "1,000 secrets, 1,000 parameters, 100 keys in {:?}",
        started.elapsed()
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let users = args.first().copied().unwrap_or(10_000);
    let records = args.get(1).copied().unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("latchkey.db"), Vault::new(1, &[7; 32])).unwrap();
    let now = latchkey_identity::clock::system_now();
    let started = Instant::now();
    store.create_user("admin", "/", &[], now).unwrap();
    store
        .put_inline_policy(
            latchkey_store::PrincipalKind::User,
            "admin",
            "all",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )
        .unwrap();
    let hash = PasswordHash::new("Admin-Passw0rd!", &[3; 16]).unwrap();
    store
        .create_login_profile("admin", &hash, false, now)
        .unwrap();
    // Ten groups: one may connect as `app` everywhere, the others as a
    // reader on some databases.
    for g in 0..10 {
        let group = format!("group-{g}");
        store.create_group(&group, "/", now).unwrap();
        let resource = if g == 0 {
            "arn:aws:rds-db:*:*:dbuser:*/app".to_owned()
        } else {
            format!("arn:aws:rds-db:*:*:dbuser:db-*{g}/reader")
        };
        let (arn, _) = store
            .create_managed_policy(
                &format!("connect-{g}"),
                "/",
                &format!(
                    r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"rds-db:connect","Resource":"{resource}"}}]}}"#
                ),
                now,
            )
            .unwrap();
        store
            .attach_policy(latchkey_store::PrincipalKind::Group, &group, &arn)
            .unwrap();
    }
    for i in 0..users {
        let name = format!("user-{i:05}");
        store.create_user(&name, "/", &[], now).unwrap();
        store
            .add_user_to_group(&format!("group-{}", i % 10), &name)
            .unwrap();
        if i % 3 == 0 {
            store
                .put_inline_policy(
                    latchkey_store::PrincipalKind::User,
                    &name,
                    "own",
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:*:*:dbuser:*/${aws:username}"}]}"#,
                )
                .unwrap();
        }
    }
    eprintln!("{users} users in {:?}", started.elapsed());
    for d in 0..1_000 {
        store
            .register_database(
                &latchkey_store::Database {
                    name: format!("db-{d:04}"),
                    endpoints: vec![format!("db-{d:04}.internal")],
                    upstream: format!("10.0.{}.{}:5432", d / 250, d % 250),
                    tags: vec![("team".into(), format!("t{}", d % 7))],
                    ..latchkey_store::Database::default()
                },
                now,
            )
            .unwrap();
    }
    let account = store.account_id().to_owned();
    vault_items(&store, &account, now);
    // The middle user's two access keys, for its page.
    for _ in 0..2 {
        store
            .create_access_key(&format!("user-{:05}", users / 2), now)
            .unwrap();
    }
    let keys = store.cluster_keys(now).unwrap();
    let state = Arc::new(AppState::new(store, keys).unwrap());

    let trail_dir = dir.path().join("audit");
    let key = latchkey_audit::trail::SigningKey::generate().unwrap().0;
    let trail = Arc::new(
        latchkey_trail::Trail::open(
            latchkey_trail::TrailConfig::new(trail_dir.clone(), "us-east-1", &account),
            key,
            latchkey_trail::TrailMetrics::default(),
            Vec::new(),
        )
        .unwrap(),
    );
    let started = Instant::now();
    for i in 0..records {
        let user = format!("user-{:05}", i % users.max(1));
        trail.record(Event::from(ApiEvent {
            time: SystemTime::now(),
            service: ApiService::Iam,
            action: if i % 10 == 0 { "CreateUser" } else { "GetUser" }.into(),
            identity: Some(Identity {
                kind: IdentityKind::IamUser,
                arn: format!("arn:aws:iam::{account}:user/{user}"),
                principal_id: "AIDAEXAMPLE".into(),
                account_id: account.clone(),
                access_key_id: "AKIAEXAMPLE".into(),
                session: None,
            }),
            access_key_id: Some("AKIAEXAMPLE".into()),
            source_ip: std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
            user_agent: Some("aws-cli/1.45".into()),
            request_parameters: Some(format!(r#"{{"userName":"{user}"}}"#)),
            response_elements: None,
            error: None,
            possession_proven: true,
            request_id: format!("r{i}"),
            read_only: i % 10 != 0,
            resources: Vec::new(),
        }));
    }
    while trail.depth() > 0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    // And indexed (the index follows the segments on its own thread).
    let index = latchkey_trail::Index::open_read_only(&trail_dir).unwrap();
    while index.last_sequence().unwrap() < records as u64 {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{records} audit records in {:?}", started.elapsed());
    state.set_audit(trail.clone());

    let console = Console::new(
        state.clone(),
        SessionLimits::default(),
        Some(trail_dir),
        Vec::new(),
    );
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Sign in as the administrator.
    let (parts, body) = request("GET", "/console/signin", "", "");
    let page = console.handle(&parts, &body, peer);
    let signin_cookie = cookie_of(&page, "__Host-latchkey-signin");
    let token = signin_cookie.split('=').nth(1).unwrap().to_owned();
    let (parts, body) = request(
        "POST",
        "/console/signin",
        &signin_cookie,
        &format!("csrf={token}&username=admin&password=Admin-Passw0rd%21"),
    );
    let session = cookie_of(
        &console.handle(&parts, &body, peer),
        "__Host-latchkey-session",
    );

    println!("| page | first ms | median ms | p99 ms | bytes |");
    println!("|---|---|---|---|---|");
    for path in [
        "/console",
        "/console/users",
        "/console/users/{middle}",
        "/console/groups",
        "/console/groups/group-3",
        "/console/roles",
        "/console/policies",
        "/console/databases",
        "/console/databases/db-0500",
        "/console/sessions",
        "/console/simulate",
        "/console/findings",
        "/console/secrets",
        "/console/secrets/app%2F0500%2Fdb",
        "/console/parameters",
        "/console/keys",
        "/console/users/new",
        "/console/roles/new",
        "/console/policies/new",
        "/console/databases/new",
        "/console/audit",
        "/console/audit?format=jsonl",
        "/console/audit?event-name=CreateUser",
        "/console/audit?principal=arn%3Aaws%3Aiam%3A%3A{account}%3Auser%2Fuser-00042",
        "/console/audit?event-id={event}",
    ] {
        let path = path
            .replace("{account}", &account)
            .replace("{middle}", &format!("user-{:05}", users / 2))
            .replace(
                "{event}",
                &latchkey_audit::trail::event_id(trail.trail_id(), records as u64 / 2),
            );
        let mut times = Vec::new();
        let mut size = 0;
        // The first request (cold caches) is shown apart.
        let (parts, body) = request("GET", &path, &session, "");
        let t = Instant::now();
        let r = console.handle(&parts, &body, peer);
        let first = t.elapsed();
        assert_eq!(r.status(), 200, "{path}");
        for _ in 0..100 {
            let (parts, body) = request("GET", &path, &session, "");
            let t = Instant::now();
            let r = console.handle(&parts, &body, peer);
            times.push(t.elapsed());
            assert_eq!(r.status(), 200, "{path}");
            let body = runtime.block_on(body_text(r));
            // A page that answers with a refusal or an error is no
            // measure of the page.
            assert!(
                !body.contains("AccessDenied") && !body.contains("NoSuch"),
                "{path}: {body}"
            );
            size = body.len();
        }
        times.sort();
        println!(
            "| `{path}` | {:.1} | {:.1} | {:.1} | {size} |",
            first.as_secs_f64() * 1000.0,
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() * 99 / 100].as_secs_f64() * 1000.0,
        );
    }
    trail.close();
}
