//! The parts of the MySQL/MariaDB client/server protocol a
//! token-authenticating proxy needs, in both directions. Pure: bytes in,
//! bytes out, no I/O; parsers take `&[u8]` and never panic, builders
//! append payloads to a `Vec<u8>`.
//!
//! Scope:
//!
//! - **Framing** ([`next_packet`], [`next_payload`], [`Reassembler`],
//!   [`split_payload`], [`frame`]): 3-byte length and sequence id,
//!   payloads of 16 MiB and more split over several packets, size limits.
//! - **Encodings** ([`read_lenenc_int`], [`write_lenenc_bytes`]...):
//!   length-encoded integers and strings, NUL-terminated strings.
//! - **Server side** (the gateway facing clients): [`handshake_v10`];
//!   [`parse_client_hello`] telling an `SSLRequest` from a
//!   `HandshakeResponse41`; [`auth_switch_request`] and
//!   [`parse_clear_password`] for `mysql_clear_password` tokens of any
//!   length; [`ok_packet`], [`err_packet`], [`eof_packet`];
//!   [`parse_command`] for the commands a proxy looks into.
//! - **Client side** (the gateway facing a real server):
//!   [`parse_handshake_v10`] (MariaDB's extended capabilities included),
//!   [`ssl_request`], [`handshake_response`], the auth computations
//!   ([`native_password`], [`caching_sha2_password`], [`ed25519_sign`],
//!   [`clear_password`]) and [`UpstreamAuth`], which drives the exchange
//!   to OK or ERR.
//! - **Result tracking** ([`ResponseTracker`]): fed the server's payloads
//!   after a command, it tells when the response is complete (multi-result
//!   sets, with or without `CLIENT_DEPRECATE_EOF`, errors mid-result,
//!   prepared statements, cursors) and when the server asks for a LOCAL
//!   INFILE upload.
//!
//! Out of scope: compression, the RSA key exchange of `sha256_password`
//! and `caching_sha2_password` without TLS, decoding row values, the
//! replication protocol beyond tracking where a dump ends.
//!
//! Capabilities are `u64`: MySQL's 32 flags in the low half, MariaDB's
//! extended capabilities in the high half (MariaDB carries them in the
//! handshake packets' reserved bytes and clears [`CLIENT_MYSQL`] to say
//! so; builders and parsers here do the same).
//!
//! Text that identifies (user names, database and plugin names) must be
//! UTF-8, so that two byte strings never decode to the same name;
//! informational text (connection attributes, messages) is decoded
//! lossily; SQL is left as bytes ([`utf8_prefix`] decodes it).

mod auth;
mod codec;
mod command;
mod consts;
mod handshake;
mod packet;
mod response;
mod tracker;

pub use auth::*;
pub use codec::{
    lenenc_int_len, read_lenenc_bytes, read_lenenc_int, read_nul_bytes, utf8_prefix,
    write_lenenc_bytes, write_lenenc_int, write_nul_bytes,
};
pub use command::*;
pub use consts::*;
pub use handshake::*;
pub use packet::*;
pub use response::*;
pub use tracker::*;

/// Why bytes could not be parsed or a packet could not be built. Every
/// parse error names the packet and the field it was reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{packet} is cut short in its {field}")]
    Truncated {
        packet: &'static str,
        field: &'static str,
    },
    #[error("{packet}: the {field} has no terminating zero")]
    Unterminated {
        packet: &'static str,
        field: &'static str,
    },
    #[error("{packet}: the {field} claims {len} bytes but {left} remain")]
    Overlong {
        packet: &'static str,
        field: &'static str,
        len: u64,
        left: usize,
    },
    #[error(
        "{packet}: the {field} starts with {prefix:#04x}, which is not a length-encoded integer"
    )]
    BadLenenc {
        packet: &'static str,
        field: &'static str,
        prefix: u8,
    },
    #[error("{packet}: the {field} is not UTF-8")]
    NotUtf8 {
        packet: &'static str,
        field: &'static str,
    },
    #[error("{packet}: {count} unexpected bytes after the {after}")]
    Trailing {
        packet: &'static str,
        after: &'static str,
        count: usize,
    },
    #[error("{packet}: {reason}")]
    Invalid {
        packet: &'static str,
        reason: &'static str,
    },
    #[error("expected {expected}, got a packet starting with {header:#04x}")]
    Unexpected { expected: &'static str, header: u8 },
    #[error("payload of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("packet sequence id {got} where {expected} was due")]
    Sequence { expected: u8, got: u8 },
    #[error("cannot encode the {what}: {reason}")]
    Unencodable {
        what: &'static str,
        reason: &'static str,
    },
    #[error("unsupported authentication plugin {0:?}")]
    UnsupportedPlugin(String),
    #[error("{0} would send the password in clear without TLS")]
    NeedsSecureTransport(&'static str),
}

/// Capability sets [`fuzz_all`] tries each parser with.
const FUZZ_CAPS: [u64; 6] = [
    0,
    CLIENT_PROTOCOL_41,
    CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_TRANSACTIONS
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_CONNECT_ATTRS,
    CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CLIENT_TRANSACTIONS
        | CLIENT_DEPRECATE_EOF
        | CLIENT_SESSION_TRACK
        | CLIENT_QUERY_ATTRIBUTES
        | CLIENT_OPTIONAL_RESULTSET_METADATA
        | CLIENT_CONNECT_ATTRS,
    CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_TRANSACTIONS
        | MARIADB_CLIENT_PROGRESS
        | MARIADB_CLIENT_EXTENDED_METADATA
        | MARIADB_CLIENT_CACHE_METADATA,
    u64::MAX,
];

const FUZZ_EXPECT: [Expect; 10] = [
    Expect::Nothing,
    Expect::OkOrErr,
    Expect::TextResult,
    Expect::BinaryResult,
    Expect::Prepare,
    Expect::Fetch,
    Expect::FieldList,
    Expect::Statistics,
    Expect::Auth,
    Expect::Stream,
];

/// Payload sequences from fuzz input: each chunk is a length byte and up
/// to that many bytes, and also whatever framing [`next_payload`] finds.
fn fuzz_payloads(data: &[u8]) -> [Vec<std::borrow::Cow<'_, [u8]>>; 2] {
    let mut chunks = Vec::new();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        chunks.push(std::borrow::Cow::Borrowed(&tail[..n]));
        rest = &tail[n..];
    }
    let mut framed = Vec::new();
    let mut rest = data;
    while let Some(Ok(p)) = next_payload(rest, 1 << 20) {
        rest = &rest[p.consumed..];
        framed.push(p.data);
    }
    [chunks, framed]
}

/// Runs every parser (and the trackers and the upstream authenticator)
/// on `data`, checking that what parses and can be written back parses
/// to the same value. For the fuzz target; panics only on a bug.
pub fn fuzz_all(data: &[u8]) {
    let _ = read_lenenc_int(data);
    let _ = read_lenenc_bytes(data);
    let _ = read_nul_bytes(data);
    let _ = utf8_prefix(data);
    let _ = next_packet(data, MAX_PACKET_PAYLOAD);
    let _ = next_payload(data, 1 << 20);
    let mut reassembler = Reassembler::new(1 << 20);
    let mut rest = data;
    while let Some(Ok(p)) = next_packet(rest, MAX_PACKET_PAYLOAD) {
        let _ = reassembler.push(p.seq, &rest[p.payload.clone()]);
        rest = &rest[p.consumed..];
    }

    if let Ok(h) = parse_handshake_v10(data) {
        let mut out = Vec::new();
        if handshake_v10(&mut out, &h).is_ok() {
            assert_eq!(parse_handshake_v10(&out), Ok(h));
        }
    }
    if let Ok(h) = parse_handshake_response(data) {
        let mut out = Vec::new();
        if handshake_response(&mut out, &h).is_ok() {
            assert_eq!(parse_handshake_response(&out), Ok(h));
        }
    }
    let _ = parse_client_hello(data);
    let _ = parse_clear_password(data);
    let _ = parse_caching_sha2_more_data(data);
    let _ = parse_local_infile(data);
    let _ = parse_eof(data);
    if let Ok(e) = parse_err(data) {
        let _ = e.to_string();
    }

    for caps in FUZZ_CAPS {
        if let Ok(c) = parse_command(data, caps) {
            let mut out = Vec::new();
            if c.write(&mut out, caps).is_ok() {
                assert_eq!(parse_command(&out, caps).as_ref(), Ok(&c));
            }
        }
        if let Ok(ok) = parse_ok(data, caps) {
            let mut out = Vec::new();
            ok_packet(&mut out, &ok, caps);
            assert_eq!(parse_ok(&out, caps), Ok(ok));
        }
        if let Ok(c) = parse_column_definition(data, caps) {
            let mut out = Vec::new();
            column_definition(&mut out, &c, caps);
            assert_eq!(parse_column_definition(&out, caps).as_ref(), Ok(&c));
        }
        if let Ok(p) = parse_prepare_ok(data, caps) {
            let mut out = Vec::new();
            prepare_ok(&mut out, &p, caps);
            assert_eq!(parse_prepare_ok(&out, caps), Ok(p));
        }
        let _ = parse_column_count(data, caps);
        let _ = parse_terminator(data, caps);
        let _ = parse_auth_reply(data, caps);
    }

    let handshake = HandshakeV10 {
        server_version: "10.11.6-MariaDB".into(),
        connection_id: 1,
        scramble: b"0123456789abcdefghij".to_vec(),
        capabilities: FUZZ_CAPS[2],
        charset: UTF8MB4_GENERAL_CI,
        status: SERVER_STATUS_AUTOCOMMIT,
        auth_plugin: CACHING_SHA2_PASSWORD.into(),
    };
    for payloads in fuzz_payloads(data) {
        for caps in FUZZ_CAPS {
            for expect in FUZZ_EXPECT {
                let mut t = ResponseTracker::new(expect, caps);
                for p in &payloads {
                    match t.feed(p) {
                        Ok(Progress::Complete { .. }) | Err(_) => {
                            assert!(t.is_complete());
                            break;
                        }
                        Ok(_) => assert!(!t.is_complete()),
                    }
                }
            }
        }
        for secure in [false, true] {
            if let Ok((mut a, _)) = UpstreamAuth::start(&handshake, b"pw", secure, FUZZ_CAPS[2]) {
                for p in &payloads {
                    if !matches!(
                        a.on_server_packet(p),
                        Ok(AuthStep::Send(_) | AuthStep::Wait)
                    ) {
                        break;
                    }
                }
            }
        }
    }
}
