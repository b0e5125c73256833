//! The accept loop every Latchkey listener shares (the token service and
//! both gateways).
//!
//! Accept errors are mostly the process running out of file descriptors
//! (`EMFILE`, `ENFILE`) or memory: retrying at once spins a core and
//! floods the log while nothing can change. The loop backs off instead,
//! doubling from [`MIN_BACKOFF`] to [`MAX_BACKOFF`], and logs the error
//! once per streak of failures.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// The first pause after a failed accept.
pub const MIN_BACKOFF: Duration = Duration::from_millis(5);
/// The longest pause between failed accepts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The pause after `failures` accept errors in a row: 5 ms, 10 ms, 20 ms…
/// up to [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    MIN_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF)
}

/// Accepts TCP connections until `shutdown` resolves, handing each (with
/// `TCP_NODELAY` set, and an IPv4-mapped peer address made plain IPv4) to
/// `on_connection`.
pub async fn accept_until(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut on_connection: impl FnMut(TcpStream, SocketAddr),
) {
    tokio::pin!(shutdown);
    let mut failures: u32 = 0;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::warn!(error = %e, "accept failed; backing off until it works again");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff(failures)) => {}
                        () = &mut shutdown => return,
                    }
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        if failures > 0 {
            tracing::info!(failures, "accept works again");
            failures = 0;
        }
        let _ = tcp.set_nodelay(true);
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; policies,
        // limits and the audit trail want a.b.c.d.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        on_connection(tcp, peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), MIN_BACKOFF);
        assert_eq!(backoff(2), MIN_BACKOFF * 2);
        assert_eq!(backoff(3), MIN_BACKOFF * 4);
        assert_eq!(backoff(8), MAX_BACKOFF.min(MIN_BACKOFF * 128));
        assert_eq!(backoff(40), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hands_over_connections_until_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(accept_until(
            listener,
            async {
                let _ = stop_rx.await;
            },
            move |tcp, peer| {
                let _ = seen_tx.send((tcp.nodelay().unwrap_or(false), peer));
            },
        ));
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (nodelay, peer) = seen_rx.recv().await.expect("a connection");
        assert!(nodelay, "TCP_NODELAY is set");
        assert!(peer.ip().is_loopback());
        let _ = stop_tx.send(());
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the loop ends on shutdown")
            .expect("no panic");
    }
}
