//! `latchkey serve`, `latchkey init` and `latchkey rotate-master-key`
//! (their configuration is [`crate::config`]).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use latchkey_identity::AppState;
use latchkey_server::bootstrap::{DataDir, InitReport, init, load_vault, rotate_master_key};

use crate::config::{Config, ServerArgs};
use crate::exit;
use crate::output::OutputFormat;

/// How often each node re-reads revocations and cluster keys from the
/// store (and rotates the cluster key when due).
const REVOCATION_REFRESH_SECS: u64 = 5;
/// The refresh while the store's change feed is down: changes still reach
/// this node within a second.
const FEED_DOWN_REFRESH: std::time::Duration = std::time::Duration::from_millis(400);
/// The least time between two refreshes.
const REFRESH_SPACING: std::time::Duration = std::time::Duration::from_millis(50);

fn endpoint(listen: SocketAddr) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() || ip.is_loopback() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("https://{host}:{}", listen.port())
}

fn report(config: &Config, dir: &DataDir, r: &InitReport) {
    println!("Latchkey account {}", r.account);
    println!("  data directory   {}", dir.root.display());
    println!("  token service    {}", endpoint(config.listen));
    println!("  CA certificate   {}", dir.tls().ca_cert.display());
    if let Some((id, secret)) = &r.admin_key {
        println!();
        println!(
            "Administrator access key (shown once; also saved to {}):",
            dir.admin_credentials().display()
        );
        println!("  aws_access_key_id     = {id}");
        println!("  aws_secret_access_key = {}", secret.as_str());
    }
    println!();
    println!("Try it with the AWS CLI:");
    println!(
        "  AWS_CONFIG_FILE={} AWS_SHARED_CREDENTIALS_FILE={} aws sts get-caller-identity",
        dir.aws_config().display(),
        dir.admin_credentials().display()
    );
}

/// Creates what is missing in the data directory, says what there is,
/// and opens the store.
fn bootstrap(config: &Config) -> Result<(DataDir, latchkey_store::Store)> {
    if let Some(store) = &config.store
        && store.ssl_mode() == latchkey_store::postgres::SslMode::Disable
        && !store.is_local()
    {
        tracing::warn!(store = %store, "the store is reached over the network without TLS (sslmode=disable): use sslrootcert for verify-full");
    }
    let dir = config.data();
    let (store, r) = init(
        &dir,
        &config.server_names,
        &endpoint(config.listen),
        &config.region,
    )?;
    crate::db::sync_databases(
        &store,
        &config.databases,
        latchkey_identity::clock::system_now(),
    )?;
    // The audit trail, when it lives in the data directory, is as private.
    if config.audit.dir.starts_with(&config.data_dir) {
        latchkey_server::bootstrap::private_tree(&config.audit.dir)
            .with_context(|| format!("making {} private", config.audit.dir.display()))?;
    }
    report(config, &dir, &r);
    Ok((dir, store))
}

pub fn run_init(args: &ServerArgs) -> Result<u8> {
    bootstrap(&args.resolve()?)?;
    Ok(exit::OK)
}

/// `latchkey serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the configuration in effect (defaults, latchkey.toml,
    /// environment and flags merged; secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
    /// With --print-config: TOML (text) or JSON.
    #[arg(long, value_enum, default_value_t, requires = "print_config")]
    output: OutputFormat,
}

/// The configuration in effect, secrets redacted, as TOML or JSON.
fn print_config(config: &Config, output: OutputFormat) -> Result<()> {
    let settings = config.settings.redacted();
    match output {
        OutputFormat::Text => print!("{}", toml::to_string(&settings)?),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&settings)?),
    }
    Ok(())
}

pub fn run_serve(args: &ServeArgs) -> Result<u8> {
    let config = args.server.resolve()?;
    if args.print_config {
        // What `serve` would refuse is refused here too.
        crate::db::check_databases(&config.databases)?;
        print_config(&config, args.output)?;
        return Ok(exit::OK);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (dir, store) = bootstrap(&config)?;
    let clusters = store.cluster_keys(latchkey_identity::clock::system_now())?;
    let state = Arc::new(AppState::new(store, clusters)?.with_region(&config.region));
    state.set_store_outage_grace(
        i64::try_from(config.store_outage_grace.as_secs()).unwrap_or(i64::MAX),
    );
    let tls = latchkey_server::tls::server_config(&dir.tls())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        tracing::info!(address = %config.listen, "token service listening");
        let pg_listener = tokio::net::TcpListener::bind(config.postgres_listen)
            .await
            .with_context(|| format!("listening on {}", config.postgres_listen))?;
        let mysql_listener = tokio::net::TcpListener::bind(config.mysql_listen)
            .await
            .with_context(|| format!("listening on {}", config.mysql_listen))?;
        let mut trail_config = config.audit.clone();
        trail_config.account = state.store.account_id().to_owned();
        let metrics = &state.metrics;
        let mut observers: Vec<Box<dyn latchkey_trail::Observer>> =
            vec![Box::new(crate::advisor::UsageRecorder::new(state.clone()))];
        // Failed logins counted for the cluster, on a shared store.
        let failures = (config.store.is_some() && config.detection.is_some())
            .then(|| Arc::new(crate::findings::FailureExchange::default()));
        if let Some(rules) = config.detection.clone() {
            crate::findings::arm_login_gate(&state, &rules);
            let webhook = match config.webhook.clone() {
                Some(w) => Some(latchkey_webhook::Webhook::start(w)?),
                None => None,
            };
            observers.push(Box::new(crate::findings::Detection {
                detector: latchkey_detect::Detector::try_new(rules)?,
                state: state.clone(),
                webhook,
                exchange: failures.clone(),
            }));
        }
        let node = dir.node_id()?;
        let audit = crate::audit::open_trail(
            &state,
            &node,
            trail_config,
            latchkey_trail::TrailMetrics {
                records_written: metrics.audit_records.clone(),
                write_failures: metrics.audit_write_failures.clone(),
                write_latency: metrics.audit_write.clone(),
            },
            observers,
        )?;
        state.set_audit(audit.clone());
        // On a shared store the trail is copied there, for the cluster's
        // `audit verify` and `audit lookup`.
        let shipper = if config.store.is_some() {
            {
                let shipper = Arc::new(crate::ship::Shipper::new(
                    state.clone(),
                    audit.clone(),
                    node.clone(),
                    config.audit.dir.clone(),
                )?);
                shipper.spawn()?;
                Some(shipper)
            }
        } else {
            None
        };
        let weak = Arc::downgrade(&audit);
        metrics.registry.gauge_fn(
            "latchkey_audit_queue_depth",
            "Audit records waiting to be written.",
            move || {
                weak.upgrade()
                    .map_or(0, |t| i64::try_from(t.depth()).unwrap_or(i64::MAX))
            },
        )?;
        let gateway = Arc::new(latchkey_gateway::Gateway::new(
            latchkey_pg_gateway::Postgres::new(tls.clone()),
            state.clone(),
            config.postgres_gateway.clone(),
            audit.clone(),
        )?);
        tracing::info!(address = %config.postgres_listen, "postgres gateway listening");
        let mysql = Arc::new(latchkey_gateway::Gateway::new(
            latchkey_my_gateway::Mysql::new(tls.clone())?,
            state.clone(),
            config.mysql_gateway.clone(),
            audit.clone(),
        )?);
        tracing::info!(address = %config.mysql_listen, "mysql gateway listening");
        let (weak_pg, weak_my) = (Arc::downgrade(&gateway), Arc::downgrade(&mysql));
        state.metrics.registry.gauge_fn(
            "latchkey_pool_idle_connections",
            "Idle upstream connections kept for session pooling.",
            move || {
                let pg = weak_pg.upgrade().map_or(0, |g| g.pooled_connections());
                let my = weak_my.upgrade().map_or(0, |g| g.pooled_connections());
                i64::try_from(pg + my).unwrap_or(i64::MAX)
            },
        )?;
        let weak_pg = Arc::downgrade(&gateway);
        state.metrics.registry.gauge_fn(
            "latchkey_pool_server_connections",
            "Server connections open in transaction pools (lent, idle or being opened).",
            move || {
                let open = weak_pg.upgrade().map_or(0, |g| g.transaction_pools().open);
                i64::try_from(open).unwrap_or(i64::MAX)
            },
        )?;
        let weak_pg = Arc::downgrade(&gateway);
        state.metrics.registry.gauge_fn(
            "latchkey_pool_waiting_clients",
            "Transaction-pooled clients waiting for a server connection.",
            move || {
                let waiting = weak_pg.upgrade().map_or(0, |g| g.transaction_pools().waiting);
                i64::try_from(waiting).unwrap_or(i64::MAX)
            },
        )?;
        // Both gateways share one budget (see `config::load`).
        let budget = Arc::downgrade(&config.postgres_gateway.large_messages);
        state.metrics.registry.gauge_fn(
            "latchkey_gateway_large_message_bytes",
            "Memory leased to client messages over 1 MiB (each counted at 25 times its size).",
            move || {
                let held = budget.upgrade().map_or(0, |b| b.held());
                i64::try_from(held).unwrap_or(i64::MAX)
            },
        )?;
        let budget = Arc::downgrade(&config.postgres_gateway.large_messages);
        state.metrics.registry.gauge_fn(
            "latchkey_gateway_large_message_waiting",
            "Sessions not read while their message over 1 MiB waits for room in the gateway's budget.",
            move || {
                let waiting = budget.upgrade().map_or(0, |b| b.waiting());
                i64::try_from(waiting).unwrap_or(i64::MAX)
            },
        )?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let pg = tokio::spawn(gateway.clone().serve(pg_listener, stopped(stop_rx.clone())));
        let my = tokio::spawn(
            mysql
                .clone()
                .serve(mysql_listener, stopped(stop_rx.clone())),
        );
        // Set on SIGTERM: /readyz answers 503 while sessions drain.
        let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Cleared while this node's master keys do not open the store's
        // secrets (the master key was rotated on another node).
        let vault_ok = Arc::new(std::sync::atomic::AtomicBool::new(true));
        // The metrics listener outlives the drain, so that /readyz says why.
        let (metrics_stop_tx, metrics_stop_rx) = tokio::sync::watch::channel(false);
        if let Some(addr) = config.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            tracing::info!(address = %addr, "metrics, /healthz and /readyz listening (plain HTTP)");
            let ready: latchkey_server::http::Readiness = {
                let draining = draining.clone();
                let vault_ok = vault_ok.clone();
                let state = state.clone();
                let audit = audit.clone();
                let outage = StoreOutage::default();
                let grace = config.store_outage_grace;
                Arc::new(move || {
                    if draining.load(std::sync::atomic::Ordering::Relaxed) {
                        return Err("draining".into());
                    }
                    if !vault_ok.load(std::sync::atomic::Ordering::Relaxed) {
                        return Err("this node's master.key does not open the store's secrets, or lacks the key the nodes seal with (see the log; copy master.key from another node)".into());
                    }
                    match state.store.ready() {
                        Ok(()) => outage.answered(),
                        // A store failover should not take every node out
                        // of the load balancer at once: ready for the grace.
                        Err(e @ latchkey_store::StoreError::Unavailable(_)) => {
                            if outage.beyond(grace) {
                                return Err(e.to_string());
                            }
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                    match audit.last_error() {
                        Some(e) => Err(format!("audit trail: {e}")),
                        None => Ok(()),
                    }
                })
            };
            tokio::spawn(latchkey_server::http::serve_metrics(
                state.clone(),
                listener,
                ready,
                stopped(metrics_stop_rx),
            ));
        }
        let mut rotator =
            latchkey_rotator::Rotator::new(state.clone(), crate::rotation::GatewayServers)
                .with_crash_after(crate::rotation::crash_after_from_env()?)
                .with_node(&node);
        if let Some(w) = &config.rotation_webhooks {
            state.jobs.allow_rotation_webhooks(w.allow.clone());
            rotator = rotator.with_webhook(w.secret.clone(), w.ca.clone());
        }
        let rotation_job = tokio::spawn(Arc::new(rotator).run(stop_rx.clone()));
        crate::audit::spawn_trail_checks(
            state.clone(),
            config.audit.dir.clone(),
            node.clone(),
            config.audit_verify_every,
        )?;
        let check_settings = crate::advisor::CheckSettings::of(&config);
        check_settings.publish()?;
        crate::advisor::spawn_checks(
            state.clone(),
            check_settings,
            config.security_checks_every,
            config.security_check_findings,
            node.clone(),
        )?;
        // Another node's change (through the store's change feed, where it
        // has one) refreshes at once; the timer is the safety net, and
        // ticks fast while the feed is down.
        let poke = Arc::new(tokio::sync::Notify::new());
        let feed_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let feed = state.store.watch_changes({
            let state = state.clone();
            let poke = poke.clone();
            let feed_up = feed_up.clone();
            Arc::new(move |change| {
                use latchkey_store::StoreChange;
                match change {
                    StoreChange::Identities => state.invalidate_caches(),
                    // Something may have changed unseen: read again before
                    // trusting the caches (they serve as they are only
                    // while the store does not answer).
                    StoreChange::Lost => {
                        state.unconfirm_caches();
                        if feed_up.swap(false, std::sync::atomic::Ordering::AcqRel) {
                            tracing::warn!(
                                "the store's change feed is down: polling the store every {} ms",
                                FEED_DOWN_REFRESH.as_millis()
                            );
                        }
                    }
                    StoreChange::Listening => {
                        state.unconfirm_caches();
                        if !feed_up.swap(true, std::sync::atomic::Ordering::AcqRel) {
                            tracing::info!("following the store's change feed");
                        }
                    }
                    StoreChange::Everything => state.unconfirm_caches(),
                    StoreChange::Revocations
                    | StoreChange::Blocklist
                    | StoreChange::Databases
                    | StoreChange::ClusterKeys => {}
                }
                poke.notify_one();
            })
        })?;
        if !feed {
            // No feed to wait for: the timer alone.
            feed_up.store(true, std::sync::atomic::Ordering::Release);
        }
        let refresher = state.clone();
        let gateway_refresher = gateway.clone();
        let mysql_refresher = mysql.clone();
        let rotation = config.cluster_key_rotation;
        let master_key = dir.master_key();
        let report = Arc::new(NodeReporter::new(
            node.clone(),
            audit.clone(),
            config.data_dir.clone(),
            crate::advisor::CheckSettings::of(&config),
        ));
        let final_report = report.clone();
        let final_store = state.clone();
        // Nodes report themselves only to a store they share: an embedded
        // one is written by one process, and every write there competes
        // with the CLI's.
        let shared_store = config.store.is_some();
        tokio::spawn(async move {
            loop {
                let following = feed_up.load(std::sync::atomic::Ordering::Acquire);
                let every = if following {
                    std::time::Duration::from_secs(REVOCATION_REFRESH_SECS)
                } else {
                    FEED_DOWN_REFRESH
                };
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = poke.notified() => {}
                }
                if !following {
                    // No feed tells of changes: cached keys and policies
                    // are read again, as revocations are below.
                    refresher.unconfirm_caches();
                }
                let s = refresher.clone();
                let every = i64::try_from(rotation.as_secs())
                    .unwrap_or(i64::MAX)
                    .max(60);
                let master = master_key.clone();
                let gw = gateway_refresher.clone();
                let my = mysql_refresher.clone();
                let vault_ok = vault_ok.clone();
                let report = report.clone();
                let shared = shared_store;
                let refreshed = move || -> anyhow::Result<()> {
                    // Revocations first, and whatever else fails: ending
                    // revoked sessions must not wait on anything else.
                    let revocations = s.reload_revocations();
                    // Ends sessions whose credential was just revoked.
                    gw.maintain();
                    my.maintain();
                    // Addresses another node's detection blocked.
                    let blocklist = s.reload_blocklist();
                    revocations?;
                    blocklist?;
                    gw.reload_databases()?;
                    my.reload_databases()?;
                    // A master key added by `latchkey rotate-master-key`
                    // (on this node, or on another sharing the store:
                    // then this node is not ready until it has the key).
                    let loaded = load_vault(&master);
                    let keys = loaded
                        .as_ref()
                        .map(|v| (v.fingerprints(), v.current_id()))
                        .ok();
                    let vault = loaded.and_then(|v| Ok(s.store.set_vault(v)?));
                    // A store that does not answer says nothing of the keys
                    // (the outage grace decides readiness then).
                    let unknown = vault.as_ref().err().is_some_and(|e| {
                        matches!(
                            e.downcast_ref::<latchkey_store::StoreError>(),
                            Some(latchkey_store::StoreError::Unavailable(_))
                        )
                    });
                    if !unknown {
                        let was_ok =
                            vault_ok.swap(vault.is_ok(), std::sync::atomic::Ordering::Relaxed);
                        if let (true, Err(e)) = (was_ok, &vault) {
                            tracing::error!(error = %e, "this node cannot use its master keys: not ready");
                        }
                    }
                    // What the other nodes (and a coordinated master-key
                    // rotation) see of this one.
                    if let (true, Some((master_keys, newest))) = (shared, keys) {
                        report.send(&s.store, master_keys, newest, vault.is_ok())?;
                    }
                    vault?;
                    s.refresh_cluster_keys(latchkey_identity::clock::system_now(), every)?;
                    Ok(())
                };
                match tokio::task::spawn_blocking(refreshed).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "refreshing keys and revocations failed")
                    }
                    Err(e) => tracing::warn!(error = %e, "refreshing keys and revocations failed"),
                }
                // Notifications arriving meanwhile make one refresh, not a
                // storm (any role that reaches the store may NOTIFY).
                tokio::time::sleep(REFRESH_SPACING).await;
            }
        });
        if config.store.is_some() {
            spawn_gauge_exchange(
                state.clone(),
                gateway.clone(),
                mysql.clone(),
                node.clone(),
                failures.clone(),
            );
        }
        let drain_timeout = config.drain_timeout;
        let drain_delay = config.drain_delay;
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            // Not ready first, so that load balancers stop sending (they
            // notice within their check interval: `drain_delay`); then no
            // new connections; sessions get until the deadline to finish.
            draining.store(true, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(drain_delay).await;
            let _ = stop_tx.send(true);
            let keepers = [&gateway.keeper, &mysql.keeper];
            let live = || keepers.iter().map(|k| k.live_count()).sum::<usize>();
            tracing::info!(sessions = live(), deadline = ?drain_timeout, "draining");
            let deadline = tokio::time::Instant::now() + drain_timeout;
            while live() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let ended: usize = keepers.iter().map(|k| k.end_all_sessions()).sum();
            if ended > 0 {
                tracing::info!(sessions = ended, "drain deadline passed: ending sessions");
                let grace = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
                while live() > 0 && tokio::time::Instant::now() < grace {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            tracing::info!("shutting down");
            let _ = metrics_stop_tx.send(true);
        };
        let console = config.console.map(|limits| {
            let console = latchkey_console::Console::new(
                state.clone(),
                limits,
                Some(config.audit.dir.clone()),
                vec![
                    gateway.clone() as Arc<dyn latchkey_gateway::Running>,
                    mysql.clone(),
                ],
            );
            // On a shared store the Audit page shows every node's records.
            let console = if config.store.is_some() {
                console.in_cluster(node.clone())
            } else {
                console
            };
            Arc::new(console) as Arc<dyn latchkey_server::http::WebFront>
        });
        latchkey_server::http::serve(state, listener, tls, config.api.clone(), console, shutdown)
            .await?;
        pg.await??;
        my.await??;
        rotation_job.await?;
        audit.close();
        // The final digest, and whatever the last rounds left.
        if let Some(shipper) = shipper {
            shipper.round_logged();
        }
        if config.store.is_some() {
            final_report.send_final(&final_store.store);
        }
        anyhow::Ok(())
    })?;
    Ok(exit::OK)
}

/// `latchkey rotate-master-key`.
#[derive(Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// How long to give running servers to take up a key change (they
    /// re-read master.key every 5 seconds).
    #[arg(long, default_value = "11s", value_parser = humantime::parse_duration)]
    settle: std::time::Duration,
    /// With a shared PostgreSQL store, step 2: once every running node's master.key holds the
    /// staged key, every node seals with it and every secret is re-wrapped with it.
    #[arg(long, conflicts_with_all = ["retire", "other_nodes_stopped"])]
    commit: bool,
    /// With a shared PostgreSQL store, step 3: drop the older keys from this node's master.key
    /// (then from every node's: copy this file, or run it there).
    #[arg(long, conflicts_with = "other_nodes_stopped")]
    retire: bool,
    /// How long --commit waits for every node to seal with the new key.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    wait: std::time::Duration,
    /// With a shared PostgreSQL store: rotate in one go, as with an embedded store, the other
    /// nodes being stopped (copy the new master.key to them before they start again).
    #[arg(long)]
    other_nodes_stopped: bool,
}

pub fn run_rotate_master_key(args: &RotateArgs) -> Result<u8> {
    use latchkey_server::master_key;
    let config = args.server.resolve()?;
    let dir = config.data();
    let now = latchkey_identity::clock::system_now;
    if args.commit {
        let (id, count) = master_key::commit(&dir, args.wait, now, |step| {
            eprintln!("latchkey: {step}");
        })?;
        println!(
            "master key {id}: every node seals with it; {count} secrets re-wrapped. Retire the older keys: `latchkey rotate-master-key --retire` on each node (or copy this node's master.key after it)"
        );
        return Ok(exit::OK);
    }
    if args.retire {
        let dropped = master_key::retire(&dir, now())?;
        let ids: Vec<String> = dropped.iter().map(u32::to_string).collect();
        println!(
            "master keys retired from {}: {}",
            dir.master_key().display(),
            if ids.is_empty() {
                "none".into()
            } else {
                ids.join(", ")
            }
        );
        return Ok(exit::OK);
    }
    if config.store.is_some() && !args.other_nodes_stopped {
        // Each node reads its own master.key: the new key reaches the
        // others by hand, and nobody seals with it until all hold it.
        let staged = master_key::stage(&dir, now())?;
        println!(
            "master key {} (fingerprint {}) added to {}; every node goes on sealing with key {}. Copy this master.key to every node (each re-reads it within seconds; `latchkey store nodes` shows which hold it), then run `latchkey rotate-master-key --commit`",
            staged.id,
            staged.fingerprint,
            dir.master_key().display(),
            staged.sealing
        );
        return Ok(exit::OK);
    }
    let (id, count) = rotate_master_key(&dir, args.settle, |step| eprintln!("latchkey: {step}"))?;
    println!("master key {id}: {count} secrets re-wrapped");
    Ok(exit::OK)
}

/// Since when the store has not answered /readyz's checks.
#[derive(Default)]
struct StoreOutage(std::sync::Mutex<Option<std::time::Instant>>);

impl StoreOutage {
    fn answered(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Notes a failed check; whether the store has been down longer than
    /// `grace`.
    fn beyond(&self, grace: std::time::Duration) -> bool {
        let mut since = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let since = *since.get_or_insert_with(std::time::Instant::now);
        since.elapsed() >= grace
    }
}

/// Tells the store about this node every [`NODE_REPORT_SECS`]: its master
/// keys' fingerprints and the key it seals with (`latchkey store nodes`; a
/// coordinated `rotate-master-key` waits on them).
struct NodeReporter {
    node: String,
    started: i64,
    last: std::sync::atomic::AtomicI64,
    /// Its audit trail: how far it reached goes in the report.
    trail: Arc<latchkey_trail::Trail>,
    /// Where the other nodes are remembered (`crate::peers`).
    data_dir: std::path::PathBuf,
    /// The last report sent, for the final one at shutdown.
    sent: std::sync::Mutex<Option<latchkey_store::NodeReport>>,
    /// What its settings are read from, for the security checks the other
    /// nodes run; and the last reading (when, JSON), kept a while since it
    /// walks the data directory.
    checks: crate::advisor::CheckSettings,
    posture: std::sync::Mutex<(i64, String)>,
}

/// How long a node's reading of its own settings is reported again before
/// it is read anew.
const POSTURE_REFRESH_SECS: i64 = 60;

/// How often a node reports itself to the store.
const NODE_REPORT_SECS: i64 = 5;

impl NodeReporter {
    /// At shutdown, once the trail is closed: how far it reached in the
    /// end, which `audit verify` holds this node's copy to once it is gone.
    fn send_final(&self, store: &latchkey_store::Store) {
        let last = self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(mut report) = last {
            report.seen = latchkey_identity::clock::system_now();
            report.sealed = self.trail.synced();
            if let Err(e) = store.report_node(&report) {
                tracing::warn!(error = %e, "the final report to the store failed");
            }
        }
    }

    fn new(
        node: String,
        trail: Arc<latchkey_trail::Trail>,
        data_dir: std::path::PathBuf,
        checks: crate::advisor::CheckSettings,
    ) -> Self {
        Self {
            data_dir,
            checks,
            posture: std::sync::Mutex::new((i64::MIN, String::new())),
            sent: std::sync::Mutex::new(None),
            node,
            started: latchkey_identity::clock::system_now(),
            last: std::sync::atomic::AtomicI64::new(i64::MIN),
            trail,
        }
    }

    fn send(
        &self,
        store: &latchkey_store::Store,
        master_keys: Vec<(u32, String)>,
        newest: u32,
        vault_ok: bool,
    ) -> anyhow::Result<()> {
        let now = latchkey_identity::clock::system_now();
        let last = self.last.load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) < NODE_REPORT_SECS {
            return Ok(());
        }
        // 0: it does not seal as the nodes agreed (it lacks the key).
        let sealing_key = if vault_ok {
            store.sealing_master_key()?.unwrap_or(newest)
        } else {
            0
        };
        let posture = {
            let mut cached = self.posture.lock().unwrap_or_else(|p| p.into_inner());
            if now.saturating_sub(cached.0) >= POSTURE_REFRESH_SECS {
                let settings = crate::advisor::node_settings(&self.checks);
                *cached = (now, serde_json::to_string(&settings)?);
            }
            cached.1.clone()
        };
        let report = latchkey_store::NodeReport {
            node: self.node.clone(),
            started: self.started,
            seen: now,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            master_keys,
            sealing_key,
            sealed: self.trail.synced(),
            posture,
        };
        store.report_node(&report)?;
        *self.sent.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
        self.last.store(now, std::sync::atomic::Ordering::Relaxed);
        // The others, as this node sees them, where the store cannot
        // change them (`audit verify` holds the store to this record).
        let others = store
            .nodes()?
            .into_iter()
            .filter(|n| n.node != self.node)
            .map(|n| (n.node, n.sealed));
        match crate::peers::remember(&self.data_dir, others) {
            // Named in this node's anchors too, signed, where a fresh data
            // directory's `audit verify` finds them.
            Ok(peers) => self.trail.witness(peers),
            Err(e) => tracing::warn!(error = %e, "recording the other nodes failed"),
        }
        Ok(())
    }
}

/// The gauge kind failed console sign-ins are exchanged under.
const SIGN_IN_GAUGE: &str = "console/failures";

/// How often a node exchanges its live-session gauges with the others.
const GAUGE_EXCHANGE: std::time::Duration = std::time::Duration::from_millis(500);
/// A node that has not exchanged for this long no longer counts.
const GAUGE_ALIVE_SECS: i64 = 3;

/// A running session's counters (statements, bytes) are published at
/// most this often; its start and end at every other exchange.
const COUNTERS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Every running session is published again this often, changed or not:
/// rows another node's clean-up deleted (this node was cut off for an
/// hour) come back.
const REPUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// What this node last published of its running sessions: each one's
/// counters (statements, bytes from and to the client) and when.
type Published = std::collections::HashMap<String, ((u64, u64, u64), std::time::Instant)>;

/// What changed in the running sessions `views` since `published`: the
/// rows to add or update, the session ids that ended, and what will have
/// been published once they are. A session that starts and ends between
/// two publishes (a short login) never reaches the store.
fn live_session_changes(
    views: &[latchkey_gateway::LiveView],
    published: &Published,
    now: std::time::Instant,
) -> (
    Vec<latchkey_store::PublishedSession>,
    Vec<String>,
    Published,
) {
    let mut upsert = Vec::new();
    let mut next = Published::with_capacity(views.len());
    for v in views {
        let counters = (v.statements, v.bytes_from_client, v.bytes_to_client);
        match published.get(&v.info.session_id) {
            Some(&(sent, at))
                if now.duration_since(at) < REPUBLISH_EVERY
                    && (sent == counters || now.duration_since(at) < COUNTERS_EVERY) =>
            {
                next.insert(v.info.session_id.clone(), (sent, at));
            }
            _ => {
                upsert.push(latchkey_console::pages::sessions::published(v));
                next.insert(v.info.session_id.clone(), (counters, now));
            }
        }
    }
    let ended = published
        .keys()
        .filter(|id| !next.contains_key(*id))
        .cloned()
        .collect();
    (upsert, ended, next)
}

/// Session limits for the cluster: every [`GAUGE_EXCHANGE`] this node
/// publishes what changed in its gateways' live-session counts and takes up
/// the other nodes', which `admit` adds to its own. Nothing on a login
/// waits for the store; a limit may be overshot by what the nodes admit
/// within one exchange. While the store does not answer, each node counts
/// its own sessions only.
///
/// Every other exchange also publishes the node's running sessions for the
/// other nodes' consoles, and ends those another node's console asked it to.
fn spawn_gauge_exchange<A, B>(
    state: Arc<AppState>,
    postgres: Arc<latchkey_gateway::Gateway<A>>,
    mysql: Arc<latchkey_gateway::Gateway<B>>,
    node: String,
    failures: Option<Arc<crate::findings::FailureExchange>>,
) where
    A: latchkey_gateway::Protocol,
    B: latchkey_gateway::Protocol,
{
    tokio::spawn(async move {
        type Key = (String, String);
        let mut sent: std::collections::HashMap<Key, i64> = std::collections::HashMap::new();
        let mut fresh = true;
        let mut failing = false;
        // Failed console sign-ins, so that lockouts hold for the cluster.
        let mut sign_ins_elsewhere = latchkey_gateway::limits::TakenElsewhere::default();
        let mut published = Published::new();
        let mut publish_fresh = true;
        let mut tick: u64 = 0;
        loop {
            tokio::time::sleep(GAUGE_EXCHANGE).await;
            tick = tick.wrapping_add(1);
            let publish = tick.is_multiple_of(2).then(|| {
                let views: Vec<latchkey_gateway::LiveView> = postgres
                    .keeper
                    .live_sessions()
                    .into_iter()
                    .chain(mysql.keeper.live_sessions())
                    .collect();
                live_session_changes(&views, &published, std::time::Instant::now())
            });
            let current: std::collections::HashMap<Key, i64> = postgres
                .keeper
                .session_gauges()
                .into_iter()
                .chain(mysql.keeper.session_gauges())
                .chain(failures.iter().flat_map(|f| f.gauges()))
                .chain(state.sign_in_tally().into_iter().map(|(key, n)| {
                    (
                        SIGN_IN_GAUGE.to_owned(),
                        key,
                        i64::try_from(n).unwrap_or(i64::MAX),
                    )
                }))
                .map(|(kind, key, n)| ((kind, key), n))
                .collect();
            let mut changed: Vec<(String, String, i64)> = current
                .iter()
                .filter(|(k, n)| fresh || sent.get(*k) != Some(*n))
                .map(|((kind, key), n)| (kind.clone(), key.clone(), *n))
                .collect();
            changed.extend(
                sent.keys()
                    .filter(|k| !current.contains_key(*k))
                    .map(|(kind, key)| (kind.clone(), key.clone(), 0)),
            );
            let s = state.clone();
            let me = node.clone();
            let (upsert, ended, next) = match publish {
                Some((upsert, ended, next)) => (upsert, ended, Some(next)),
                None => (Vec::new(), Vec::new(), None),
            };
            let publishing = next.is_some();
            let exchanged = tokio::task::spawn_blocking(move || {
                let now = latchkey_identity::clock::system_now();
                let exchanged =
                    s.store
                        .exchange_gauges(&me, now, fresh, &changed, now - GAUGE_ALIVE_SECS);
                let requests = publishing.then(|| {
                    s.store
                        .publish_live_sessions(&me, publish_fresh, &upsert, &ended)
                });
                (exchanged, requests)
            })
            .await;
            let exchanged = match exchanged {
                Ok((exchanged, requests)) => {
                    match (requests, next) {
                        (Some(Ok(requests)), Some(next)) => {
                            published = next;
                            publish_fresh = false;
                            for id in requests {
                                if postgres.keeper.end_session(&id).is_none()
                                    && mysql.keeper.end_session(&id).is_none()
                                {
                                    tracing::debug!(session = %id, "asked to end a session that is not running");
                                }
                            }
                        }
                        (Some(Err(e)), _) => {
                            tracing::debug!(error = %e, "publishing running sessions failed");
                        }
                        _ => {}
                    }
                    Ok(exchanged)
                }
                Err(e) => Err(e),
            };
            match exchanged {
                Ok(Ok(others)) => {
                    postgres.keeper.set_sessions_elsewhere(&others);
                    mysql.keeper.set_sessions_elsewhere(&others);
                    if let Some(failures) = &failures {
                        failures.take_up(&others, &state);
                    }
                    let sums = others
                        .iter()
                        .filter(|(kind, _, _)| kind == SIGN_IN_GAUGE)
                        .map(|(_, key, n)| (key.as_str(), *n));
                    for (key, n) in sign_ins_elsewhere.growth(sums) {
                        state.sign_ins_failed_elsewhere(key, u64::try_from(n).unwrap_or(0));
                    }
                    sent = current;
                    fresh = false;
                    if failing {
                        tracing::info!("exchanging session counts with the other nodes again");
                        failing = false;
                    }
                }
                Ok(Err(e)) => {
                    // Stale counts from the others would only refuse: each
                    // node counts its own until the store answers.
                    postgres.keeper.set_sessions_elsewhere(&[]);
                    mysql.keeper.set_sessions_elsewhere(&[]);
                    if !failing {
                        tracing::warn!(error = %e, "exchanging session counts failed: session limits count this node's sessions only");
                        failing = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the session count exchange stopped"),
            }
        }
    });
}
