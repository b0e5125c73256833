//! The gateways' TLS server stream on arbitrary client bytes, delivered in
//! reads of arbitrary sizes, with writes taken a few bytes at a time and
//! some reads and writes made to wait: the handshake fails or the stream
//! ends with an error, never a panic or a hang.
#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use latchkey_tls_server::TlsAcceptor;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

static ACCEPTOR: LazyLock<TlsAcceptor> = LazyLock::new(|| {
    let issued = rcgen::generate_simple_self_signed(vec!["db.example.test".to_owned()])
        .expect("certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(issued.signing_key.serialize_der()),
    );
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![issued.cert.der().clone()], key)
    .expect("config");
    TlsAcceptor::new(config)
});

/// The client's side, scripted: its bytes in reads of `chunk`, writes
/// taken `chunk` at a time, and every `wait`th call made to wait once.
struct Scripted<'a> {
    input: &'a [u8],
    chunk: usize,
    wait: usize,
    calls: usize,
}

impl Scripted<'_> {
    fn waits(&mut self, cx: &mut Context<'_>) -> bool {
        self.calls += 1;
        if self.wait > 1 && self.calls % self.wait == 0 {
            cx.waker().wake_by_ref();
            return true;
        }
        false
    }
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.waits(cx) {
            return Poll::Pending;
        }
        let n = this.input.len().min(this.chunk).min(buf.remaining());
        buf.put_slice(&this.input[..n]);
        this.input = &this.input[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.waits(cx) {
            return Poll::Pending;
        }
        Poll::Ready(Ok(data.len().min(this.chunk)))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let io = Scripted {
        input,
        chunk: usize::from(control % 32) * 61 + 1,
        wait: usize::from(control >> 5) + 1,
        calls: 0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let Ok((mut stream, _)) = ACCEPTOR.accept(io).await else {
            return;
        };
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
        let _ = stream.write_all(b"after").await;
        let _ = stream.shutdown().await;
    });
});
