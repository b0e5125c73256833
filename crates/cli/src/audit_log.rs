//! The audit log file: JSON lines, written by a background thread so the
//! gateways never wait on the disk. (The tamper-evident, fsynced trail
//! replaces this writer; the events and the sink interface stay.)

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use latchkey_audit::{AuditSink, Event};

/// How often queued events are written out.
const WRITE_INTERVAL: Duration = Duration::from_millis(50);

pub struct JsonLinesSink {
    queue: Arc<Mutex<Vec<Event>>>,
    stop: Arc<AtomicBool>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl JsonLinesSink {
    /// Appends to `path` (created 0600 if missing).
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening the audit log {}", path.display()))?;
        let queue: Arc<Mutex<Vec<Event>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queue.clone(), stop.clone());
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(file, &q, &s))?;
        Ok(Self {
            queue,
            stop,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Writes what is queued and stops the writer.
    pub fn close(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }
}

fn write_loop(file: std::fs::File, queue: &Mutex<Vec<Event>>, stop: &AtomicBool) {
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut batch = Vec::new();
    let mut line = String::with_capacity(1024);
    loop {
        let stopping = stop.load(Ordering::Acquire);
        std::mem::swap(
            &mut batch,
            &mut *queue.lock().unwrap_or_else(|p| p.into_inner()),
        );
        for event in batch.drain(..) {
            line.clear();
            event.write_json(&mut line);
            line.push('\n');
            if out.write_all(line.as_bytes()).is_err() {
                tracing::error!("writing the audit log failed");
            }
        }
        if out.flush().is_err() {
            tracing::error!("writing the audit log failed");
        }
        if stopping {
            return;
        }
        std::thread::sleep(WRITE_INTERVAL);
    }
}

impl AuditSink for JsonLinesSink {
    fn record(&self, event: Event) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }
}
