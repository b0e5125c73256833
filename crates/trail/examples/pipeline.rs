//! The audit pipeline's throughput: statement events queued as fast as
//! one producer can, sealed into the hash chain, written and fsynced in
//! batches, indexed. Prints events per second from the first event queued
//! to the last one on disk and indexed.
//!
//!     taskset -c 0 cargo run --release -p latchkey-trail --example pipeline -- 1000000 [DIR]
//!
//! (`taskset -c 0` puts every thread on one core.)

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use latchkey_audit::trail::SigningKey;
use latchkey_audit::*;
use latchkey_trail::{Index, Trail, TrailConfig, TrailMetrics};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let keep = args.next();
    let tmp = tempfile::tempdir()?;
    let dir = keep.map_or_else(|| tmp.path().to_owned(), Into::into);
    let config = TrailConfig::new(dir.join("trail"), "us-east-1", "123456789012");
    let (key, _) = SigningKey::generate()?;
    let metrics = TrailMetrics::default();
    let trail = Trail::open(config, key, metrics.clone(), Vec::new())?;

    let session = Arc::new(SessionInfo {
        session_id: "3f2a9c1b7d4e8a60".into(),
        engine: "postgres",
        identity: Identity {
            kind: IdentityKind::AssumedRole,
            arn: "arn:aws:sts::123456789012:assumed-role/app/checkout-7".into(),
            principal_id: "AROAEXAMPLEROLEID:checkout-7".into(),
            account_id: "123456789012".into(),
            access_key_id: "ASIAEXAMPLEKEYID0001".into(),
            session: None,
        },
        source_ip: IpAddr::from([10, 1, 2, 3]),
        user_agent: Some("pgbench".into()),
        database: "orders".into(),
        resource_arn:
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/app".into(),
        database_name: "orders".into(),
        db_user: "app".into(),
        started: SystemTime::now(),
    });
    let statement = Arc::new(Statement {
        text: "SELECT abalance FROM pgbench_accounts WHERE aid = $1".into(),
        fingerprint: 0x5e1ec7ab1e,
        truncated: false,
    });
    let started = Instant::now();
    for i in 0..n {
        // Like a gateway whose clients wait on their queries: keep at most
        // about a second's worth queued.
        if i % 1000 == 0 {
            while trail.depth() > 100_000 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        trail.record(Event::Statement(StatementEvent {
            session: session.clone(),
            statement: statement.clone(),
            protocol: Protocol::Extended,
            time: SystemTime::now(),
            duration: Duration::from_micros(87),
            command_tag: Some("SELECT 1".into()),
            rows: Some(1),
            error_code: None,
            policy: None,
        }));
    }
    let queued = started.elapsed();
    while trail.synced() < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let synced = started.elapsed();
    let cpu = thread_cpu();
    trail.close();
    let closed = started.elapsed();
    let index = Index::open_read_only(&dir.join("trail"))?;
    let indexed = index.last_sequence()?;
    let secs = synced.as_secs_f64();
    println!("events             {n}");
    println!("queued in          {:.3} s", queued.as_secs_f64());
    println!(
        "on disk (fsynced)  {secs:.3} s  = {:.0} events/s",
        n as f64 / secs
    );
    println!(
        "indexed, closed    {:.3} s  = {:.0} events/s (index has {indexed})",
        closed.as_secs_f64(),
        n as f64 / closed.as_secs_f64()
    );
    for (thread, secs) in cpu {
        if thread.starts_with("audit") || thread == "pipeline" {
            println!(
                "cpu {thread:<14} {secs:.2} s  = {:.0} events per CPU-second",
                n as f64 / secs.max(0.001)
            );
        }
    }
    println!(
        "batches            {}  mean write+fsync {:.2} ms",
        metrics.write_latency.count(),
        metrics.write_latency.sum().as_secs_f64() * 1000.0
            / metrics.write_latency.count().max(1) as f64
    );
    Ok(())
}

/// CPU seconds (user + system) of each of this process's threads, by name.
fn thread_cpu() -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        out.push((name, (ticks(11) + ticks(12)) / 100.0));
    }
    out
}
