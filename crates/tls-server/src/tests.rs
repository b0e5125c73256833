//! The stream against tokio-rustls's client (rustls's buffered API, a
//! TLS implementation we did not write the state handling of) over
//! in-memory pipes.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream as ClientStream;

use super::*;

struct Pki {
    server: ServerConfig,
    roots: rustls::RootCertStore,
}

fn pki() -> Pki {
    let names = vec![
        "db.example.test".to_owned(),
        "other.example.test".to_owned(),
    ];
    let issued = rcgen::generate_simple_self_signed(names).expect("certificate");
    let der: CertificateDer<'static> = issued.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).expect("root");
    Pki { server, roots }
}

fn connector(
    roots: &rustls::RootCertStore,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A handshake over an in-memory pipe of `pipe` bytes each way.
async fn connect(
    pki: &Pki,
    name: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    pipe: usize,
) -> (
    TlsStream<DuplexStream>,
    Option<String>,
    ClientStream<DuplexStream>,
) {
    let acceptor = TlsAcceptor::new(pki.server.clone());
    let (client_io, server_io) = duplex(pipe);
    let name = ServerName::try_from(name.to_owned()).expect("name");
    let connector = connector(&pki.roots, versions);
    let (server, client) = tokio::join!(
        acceptor.accept(server_io),
        connector.connect(name, client_io)
    );
    let (server, seen) = server.expect("server handshake");
    (server, seen, client.expect("client handshake"))
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// A pattern whose every offset is distinguishable.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Reads exactly `len` bytes in reads of at most `step`.
async fn read_in_steps(stream: &mut TlsStream<DuplexStream>, len: usize, step: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0; step];
    while got.len() < len {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "stream ended after {} of {len} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    got
}

async fn echo_both_ways(versions: &[&'static rustls::SupportedProtocolVersion], pipe: usize) {
    let pki = pki();
    let (mut server, seen, mut client) = connect(&pki, "db.example.test", versions, pipe).await;
    assert_eq!(seen.as_deref(), Some("db.example.test"));
    // More than a record's worth in one write; read back in small reads
    // (records larger than the reader's room) and in large ones.
    let sent = pattern(300_000);
    let to_server = sent.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&to_server).await.expect("client write");
        client.flush().await.expect("client flush");
        client
    });
    let got = read_in_steps(&mut server, sent.len(), 1000).await;
    assert!(got == sent, "the server read what the client sent");
    let mut client = writer.await.expect("writer");
    let reader = tokio::spawn(async move {
        let mut back = vec![0; sent.len()];
        client.read_exact(&mut back).await.expect("client read");
        (client, back, sent)
    });
    for piece in got.chunks(70_000) {
        server.write_all(piece).await.expect("server write");
    }
    server.flush().await.expect("server flush");
    let (_client, back, sent) = reader.await.expect("reader");
    assert!(back == sent, "the client read what the server sent");
}

#[tokio::test]
async fn tls13_carries_bytes_both_ways_and_notes_the_server_name() {
    echo_both_ways(TLS13, 4096).await;
}

#[tokio::test]
async fn tls12_carries_bytes_both_ways_and_notes_the_server_name() {
    echo_both_ways(TLS12, 4096).await;
}

#[tokio::test]
async fn pipes_that_take_a_few_bytes_at_a_time_carry_everything() {
    // Every write and read is partial: the handshake's flights, records
    // and the queue of ciphertext all wait on the pipe.
    echo_both_ways(TLS13, 61).await;
    echo_both_ways(TLS12, 61).await;
}

#[tokio::test]
async fn an_idle_session_holds_no_buffer() {
    let pki = pki();
    let (mut server, _, mut client) = connect(&pki, "db.example.test", TLS13, 1 << 16).await;
    client.write_all(b"SELECT 1").await.expect("write");
    client.flush().await.expect("flush");
    let mut buf = [0u8; 64];
    let n = server.read(&mut buf).await.expect("read");
    assert_eq!(&buf[..n], b"SELECT 1");
    server.write_all(b"one row").await.expect("write");
    server.flush().await.expect("flush");
    // The next read waits: nothing is in flight, so nothing is held.
    let waited = tokio::time::timeout(Duration::from_millis(20), server.read(&mut buf)).await;
    assert!(waited.is_err(), "nothing more was sent");
    assert_eq!(server.buffered_capacity(), 0);
    // And the session goes on after.
    client.write_all(b"SELECT 2").await.expect("write");
    client.flush().await.expect("flush");
    let n = server.read(&mut buf).await.expect("read");
    assert_eq!(&buf[..n], b"SELECT 2");
    let mut back = [0u8; 7];
    client.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"one row");
}

#[tokio::test]
async fn close_notify_ends_the_stream_and_a_bare_close_is_an_unexpected_eof() {
    let pki = pki();
    let (mut server, _, mut client) = connect(&pki, "db.example.test", TLS13, 4096).await;
    client.write_all(b"bye").await.expect("write");
    client.shutdown().await.expect("close_notify");
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.expect("a clean end");
    assert_eq!(got, b"bye");

    let (mut server, _, client) = connect(&pki, "db.example.test", TLS13, 4096).await;
    drop(client);
    let err = server
        .read(&mut [0u8; 8])
        .await
        .expect_err("no close_notify");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn shutdown_sends_close_notify() {
    let pki = pki();
    let (mut server, _, mut client) = connect(&pki, "db.example.test", TLS13, 4096).await;
    server.write_all(b"last words").await.expect("write");
    server.shutdown().await.expect("shutdown");
    let mut got = Vec::new();
    client
        .read_to_end(&mut got)
        .await
        .expect("the client sees a clean end");
    assert_eq!(got, b"last words");
    assert!(
        server.write(b"more").await.is_err(),
        "nothing after close_notify"
    );
}

#[tokio::test]
async fn a_key_update_from_the_client_is_followed() {
    let pki = pki();
    let (mut server, _, mut client) = connect(&pki, "db.example.test", TLS13, 4096).await;
    for round in 0..3u8 {
        client
            .get_mut()
            .1
            .refresh_traffic_keys()
            .expect("key update");
        client.write_all(&[round; 100]).await.expect("write");
        client.flush().await.expect("flush");
        let got = read_in_steps(&mut server, 100, 100).await;
        assert_eq!(got, [round; 100]);
        server.write_all(&[round + 10; 50]).await.expect("write");
        server.flush().await.expect("flush");
        let mut back = [0u8; 50];
        client.read_exact(&mut back).await.expect("read");
        assert_eq!(back, [round + 10; 50]);
    }
}

#[tokio::test]
async fn no_server_name_is_noted_when_the_client_sends_none() {
    let pki = pki();
    let acceptor = TlsAcceptor::new(pki.server.clone());
    let (client_io, server_io) = duplex(4096);
    // rustls sends no SNI for an IP address; the certificate does not
    // cover it, so the client gives up, but the server has seen the hello.
    let name = ServerName::try_from("127.0.0.1").expect("ip");
    let connector = connector(&pki.roots, TLS13);
    let (server, _client) = tokio::join!(
        acceptor.accept(server_io),
        connector.connect(name, client_io)
    );
    match server {
        Ok((_, seen)) => assert_eq!(seen, None),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
    }
    // A name noted by an earlier handshake on this thread is not carried
    // over to one without.
    let (_, seen, _) = connect(&pki, "other.example.test", TLS13, 4096).await;
    assert_eq!(seen.as_deref(), Some("other.example.test"));
}

#[tokio::test]
async fn interleaved_handshakes_on_one_thread_keep_their_own_names() {
    let pki = pki();
    let (a, b) = tokio::join!(
        connect(&pki, "db.example.test", TLS13, 4096),
        connect(&pki, "other.example.test", TLS12, 4096),
    );
    assert_eq!(a.1.as_deref(), Some("db.example.test"));
    assert_eq!(b.1.as_deref(), Some("other.example.test"));
}

#[tokio::test]
async fn bytes_that_are_not_tls_fail_the_handshake_with_an_alert() {
    let pki = pki();
    let acceptor = TlsAcceptor::new(pki.server.clone());
    let (mut client_io, server_io) = duplex(4096);
    client_io
        .write_all(b"GET / HTTP/1.1\r\nHost: db.example.test\r\n\r\n")
        .await
        .expect("write");
    let err = acceptor
        .accept(server_io)
        .await
        .expect_err("not a ClientHello");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let mut alert = [0u8; 7];
    client_io.read_exact(&mut alert).await.expect("an alert");
    assert_eq!(alert[0], 0x15, "an alert record");
    assert_eq!(alert[5], 2, "a fatal one");
}

#[tokio::test]
async fn a_handshake_cut_short_is_an_unexpected_eof() {
    let pki = pki();
    let acceptor = TlsAcceptor::new(pki.server.clone());
    let (mut client_io, server_io) = duplex(4096);
    client_io
        .write_all(b"\x16\x03\x01\x02\x00\x01")
        .await
        .expect("write");
    drop(client_io);
    let err = acceptor.accept(server_io).await.expect_err("cut short");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_record_longer_than_allowed_is_refused() {
    let pki = pki();
    let (mut server, _, client) = connect(&pki, "db.example.test", TLS13, 1 << 17).await;
    // Past the handshake, a raw application-data record claiming 60 KiB.
    let (mut client_io, _) = client.into_inner();
    let mut record = vec![0x17, 0x03, 0x03, 0xf0, 0x00];
    record.resize(5 + 0xf000, 0);
    client_io.write_all(&record).await.expect("write");
    let err = server.read(&mut [0u8; 16]).await.expect_err("too long");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn a_request_and_close_notify_right_behind_the_finished_are_read() {
    // As a PostgreSQL cancel request comes: the client's Finished, its
    // message and its close_notify reach the server in one read.
    let pki = pki();
    for versions in [TLS13, TLS12] {
        let acceptor = TlsAcceptor::new(pki.server.clone());
        let (client_io, server_io) = duplex(1 << 16);
        let connector = connector(&pki.roots, versions);
        let client = tokio::spawn(async move {
            let name = ServerName::try_from("db.example.test").expect("name");
            let mut client = connector
                .connect(name, client_io)
                .await
                .expect("client handshake");
            client.write_all(b"cancel 1234").await.expect("write");
            client.shutdown().await.expect("close_notify");
            client
        });
        let (mut server, seen) = acceptor.accept(server_io).await.expect("server handshake");
        assert_eq!(seen.as_deref(), Some("db.example.test"));
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.expect("a clean end");
        assert_eq!(got, b"cancel 1234");
        drop(client.await.expect("client"));
    }
}
