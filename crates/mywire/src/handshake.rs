//! The connection phase: the server's `HandshakeV10`, the client's
//! `SSLRequest` and `HandshakeResponse41`, and the auth-switch packets.

use std::borrow::Cow;

use crate::WireError;
use crate::codec::{Reader, write_lenenc_bytes, write_nul_bytes};
use crate::consts::*;
use crate::response::{ErrInfo, OkInfo, parse_err, parse_ok};

/// Splits a 64-bit capability set into the 32 bits that go in the
/// capability fields and the 32 MariaDB bits that go in the filler.
/// MariaDB clears [`CLIENT_MYSQL`] when it sends extended capabilities.
fn split_caps(caps: u64) -> (u32, u32) {
    let ext = (caps >> 32) as u32;
    let mut low = caps as u32;
    if ext != 0 {
        low &= !(CLIENT_MYSQL as u32);
    }
    (low, ext)
}

fn join_caps(low: u32, ext_field: [u8; 4]) -> u64 {
    let mut caps = u64::from(low);
    if caps & CLIENT_MYSQL == 0 {
        caps |= u64::from(u32::from_le_bytes(ext_field)) << 32;
    }
    caps
}

/// Connection attributes: name/value pairs, lossily decoded (they are
/// informational).
pub type Attrs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// The server's initial handshake (protocol version 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeV10 {
    pub server_version: String,
    pub connection_id: u32,
    /// The auth-plugin data ("scramble"/"nonce"), parts 1 and 2 joined,
    /// without the trailing NUL: 20 bytes from MySQL and MariaDB.
    pub scramble: Vec<u8>,
    /// Low 32 bits plus MariaDB's extended capabilities in the high 32.
    pub capabilities: u64,
    /// The server's default collation id.
    pub charset: u8,
    pub status: u16,
    /// The default authentication plugin; empty without
    /// `CLIENT_PLUGIN_AUTH`.
    pub auth_plugin: String,
}

impl HandshakeV10 {
    /// Whether the server is MariaDB (by its version string, which
    /// MariaDB 10.x prefixes with "5.5.5-" for old clients).
    pub fn is_mariadb(&self) -> bool {
        self.server_version.contains("MariaDB")
    }

    /// The version without MariaDB's "5.5.5-" compatibility prefix.
    pub fn version(&self) -> &str {
        if self.is_mariadb() {
            self.server_version
                .strip_prefix("5.5.5-")
                .unwrap_or(&self.server_version)
        } else {
            &self.server_version
        }
    }
}

/// Makes caller-supplied random bytes into a scramble as MySQL makes
/// them: 7-bit, without NUL (which old clients would read as the end of
/// the string) or `$`.
pub fn scramble_from_random(random: [u8; 20]) -> [u8; 20] {
    random.map(|b| match b & 0x7f {
        0 | b'$' => (b & 0x7f) + 1,
        c => c,
    })
}

/// A `HandshakeV10` payload. The scramble must be 8 to 254 bytes
/// without a zero byte (use [`scramble_from_random`]); more than 8 need
/// `CLIENT_SECURE_CONNECTION`. Extended (MariaDB) capabilities are
/// written in the filler and clear [`CLIENT_MYSQL`] in the flags.
pub fn handshake_v10(out: &mut Vec<u8>, h: &HandshakeV10) -> Result<(), WireError> {
    let bad = |reason| WireError::Unencodable {
        what: "HandshakeV10",
        reason,
    };
    let n = h.scramble.len();
    if !(8..=254).contains(&n) {
        return Err(bad("the scramble must be 8 to 254 bytes long"));
    }
    if h.scramble.contains(&0) {
        return Err(bad("the scramble contains a zero byte"));
    }
    if n > 8 && h.capabilities & CLIENT_SECURE_CONNECTION == 0 {
        return Err(bad(
            "a scramble over 8 bytes needs CLIENT_SECURE_CONNECTION",
        ));
    }
    let plugin_auth = h.capabilities & CLIENT_PLUGIN_AUTH != 0;
    if n > 20 && !plugin_auth {
        return Err(bad("a scramble over 20 bytes needs CLIENT_PLUGIN_AUTH"));
    }
    if !plugin_auth && !h.auth_plugin.is_empty() {
        return Err(bad("a plugin name needs CLIENT_PLUGIN_AUTH"));
    }
    let start = out.len();
    let result = (|| {
        out.push(10);
        write_nul_bytes(out, h.server_version.as_bytes())?;
        out.extend_from_slice(&h.connection_id.to_le_bytes());
        out.extend_from_slice(&h.scramble[..8]);
        out.push(0);
        let (low, ext) = split_caps(h.capabilities);
        out.extend_from_slice(&low.to_le_bytes()[..2]);
        out.push(h.charset);
        out.extend_from_slice(&h.status.to_le_bytes());
        out.extend_from_slice(&low.to_le_bytes()[2..]);
        out.push(if plugin_auth { n as u8 + 1 } else { 0 });
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&ext.to_le_bytes());
        if h.capabilities & CLIENT_SECURE_CONNECTION != 0 {
            // Part 2 is max(13, length - 8) bytes: the rest and a NUL.
            let part2 = &h.scramble[8..];
            out.extend_from_slice(part2);
            out.push(0);
            out.resize(out.len() + 12usize.saturating_sub(part2.len()), 0);
        }
        if plugin_auth {
            write_nul_bytes(out, h.auth_plugin.as_bytes())?;
        }
        Ok(())
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Parses the server's `HandshakeV10`. A server that refuses the
/// connection sends an ERR packet instead: that gives
/// [`WireError::Unexpected`] with header 0xFF (parse it with
/// [`parse_err`](crate::parse_err)).
pub fn parse_handshake_v10(payload: &[u8]) -> Result<HandshakeV10, WireError> {
    let mut r = Reader::new(payload, "HandshakeV10");
    let version = r.u8("protocol version")?;
    if version != 10 {
        return Err(WireError::Unexpected {
            expected: "a HandshakeV10 (protocol version 10)",
            header: version,
        });
    }
    let server_version = r.nul_str("server version")?.to_owned();
    let connection_id = r.u32("connection id")?;
    let part1 = r.take(8, "auth-plugin-data part 1")?;
    r.take(1, "filler")?;
    let caps_low = r.u16("capability flags")?;
    let charset = r.u8("character set")?;
    let status = r.u16("status flags")?;
    let caps_high = r.u16("capability flags (upper)")?;
    let data_len = r.u8("auth-plugin-data length")?;
    r.take(6, "reserved bytes")?;
    let ext = r.array::<4>("MariaDB capability flags")?;
    let capabilities = join_caps(u32::from(caps_low) | u32::from(caps_high) << 16, ext);
    let mut scramble = part1.to_vec();
    if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let part2_len = usize::from(data_len).saturating_sub(8).max(13);
        let part2 = r.take(part2_len, "auth-plugin-data part 2")?;
        if data_len == 0 {
            // No length given: part 2 runs to its NUL.
            let end = part2.iter().position(|&b| b == 0).unwrap_or(part2.len());
            scramble.extend_from_slice(&part2[..end]);
        } else if data_len < 9 {
            return Err(r.invalid("auth-plugin-data length under 9"));
        } else {
            // The data is length - 1 bytes; a NUL follows it.
            scramble.extend_from_slice(&part2[..usize::from(data_len) - 9]);
        }
    }
    let mut auth_plugin = String::new();
    if capabilities & CLIENT_PLUGIN_AUTH != 0 {
        // Some 5.5 servers omit the NUL at the end of the packet.
        let rest = r.rest();
        let name = match rest.iter().position(|&b| b == 0) {
            Some(end) if end + 1 == rest.len() => &rest[..end],
            Some(end) => {
                return Err(WireError::Trailing {
                    packet: "HandshakeV10",
                    after: "auth plugin name",
                    count: rest.len() - end - 1,
                });
            }
            None => rest,
        };
        auth_plugin = r.utf8(name, "auth plugin name")?.to_owned();
    }
    r.finish("auth-plugin-data")?;
    Ok(HandshakeV10 {
        server_version,
        connection_id,
        scramble,
        capabilities,
        charset,
        status,
        auth_plugin,
    })
}

/// The fixed 32-byte start of a client's reply: all of an `SSLRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslRequest {
    pub capabilities: u64,
    pub max_packet_size: u32,
    pub charset: u8,
}

fn write_client_prefix(out: &mut Vec<u8>, caps: u64, max_packet_size: u32, charset: u8) {
    let (low, ext) = split_caps(caps);
    out.extend_from_slice(&low.to_le_bytes());
    out.extend_from_slice(&max_packet_size.to_le_bytes());
    out.push(charset);
    out.extend_from_slice(&[0; 19]);
    out.extend_from_slice(&ext.to_le_bytes());
}

/// An `SSLRequest` payload (`CLIENT_SSL` is added to the capabilities).
pub fn ssl_request(out: &mut Vec<u8>, s: &SslRequest) {
    write_client_prefix(
        out,
        s.capabilities | CLIENT_SSL,
        s.max_packet_size,
        s.charset,
    );
}

/// The client's `HandshakeResponse41`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse<'a> {
    /// Low 32 bits plus MariaDB's extended capabilities in the high 32.
    pub capabilities: u64,
    pub max_packet_size: u32,
    pub charset: u8,
    pub username: &'a str,
    /// The auth data as sent (for `mysql_clear_password`, the password
    /// and its NUL: see [`parse_clear_password`]).
    pub auth_response: &'a [u8],
    /// Present exactly when `CLIENT_CONNECT_WITH_DB` is set.
    pub database: Option<&'a str>,
    /// The plugin the client used; may be absent even with
    /// `CLIENT_PLUGIN_AUTH` (servers accept that).
    pub auth_plugin: Option<&'a str>,
    /// Connection attributes, lossily decoded (they are informational).
    pub attrs: Attrs<'a>,
    /// With `CLIENT_ZSTD_COMPRESSION_ALGORITHM`: the zstd level.
    pub zstd_level: Option<u8>,
}

impl HandshakeResponse<'_> {
    /// A connection attribute by name (`_client_name`, `program_name`...).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// What a client sends after the server's handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHello<'a> {
    /// Switch to TLS, then the full response follows.
    SslRequest(SslRequest),
    Response(HandshakeResponse<'a>),
}

fn parse_client_prefix(r: &mut Reader<'_>) -> Result<SslRequest, WireError> {
    let low = r.u32("capability flags")?;
    if u64::from(low) & CLIENT_PROTOCOL_41 == 0 {
        return Err(r.invalid("the client does not speak protocol 4.1"));
    }
    let max_packet_size = r.u32("max packet size")?;
    let charset = r.u8("character set")?;
    r.take(19, "reserved bytes")?;
    let ext = r.array::<4>("MariaDB capability flags")?;
    Ok(SslRequest {
        capabilities: join_caps(low, ext),
        max_packet_size,
        charset,
    })
}

/// Tells an `SSLRequest` (exactly 32 bytes with `CLIENT_SSL`) from a
/// full `HandshakeResponse41`. Whether a response that has `CLIENT_SSL`
/// really arrived over TLS is for the caller to check.
pub fn parse_client_hello(payload: &[u8]) -> Result<ClientHello<'_>, WireError> {
    if payload.len() == 32 {
        let mut r = Reader::new(payload, "SSLRequest");
        let s = parse_client_prefix(&mut r)?;
        if s.capabilities & CLIENT_SSL != 0 {
            return Ok(ClientHello::SslRequest(s));
        }
    }
    parse_handshake_response(payload).map(ClientHello::Response)
}

/// Parses a `HandshakeResponse41`. The capabilities the client sends
/// decide which fields are present.
pub fn parse_handshake_response(payload: &[u8]) -> Result<HandshakeResponse<'_>, WireError> {
    let mut r = Reader::new(payload, "HandshakeResponse41");
    let prefix = parse_client_prefix(&mut r)?;
    let caps = prefix.capabilities;
    let username = r.nul_str("username")?;
    let auth_response = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_bytes("auth response")?
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        r.u8_bytes("auth response")?
    } else {
        r.nul_bytes("auth response")?
    };
    let database = if caps & CLIENT_CONNECT_WITH_DB != 0 {
        Some(r.nul_str("database")?)
    } else {
        None
    };
    let auth_plugin = if caps & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        Some(r.nul_str("auth plugin name")?)
    } else {
        None
    };
    let attrs = if caps & CLIENT_CONNECT_ATTRS != 0 {
        parse_attrs(&mut r)?
    } else {
        Vec::new()
    };
    let zstd_level = if caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0 {
        Some(r.u8("zstd compression level")?)
    } else {
        None
    };
    r.finish("last field")?;
    Ok(HandshakeResponse {
        capabilities: caps,
        max_packet_size: prefix.max_packet_size,
        charset: prefix.charset,
        username,
        auth_response,
        database,
        auth_plugin,
        attrs,
        zstd_level,
    })
}

/// Connection attributes: a length-encoded total, then length-encoded
/// key/value pairs filling it exactly.
pub(crate) fn parse_attrs<'a>(r: &mut Reader<'a>) -> Result<Attrs<'a>, WireError> {
    let block = r.lenenc_bytes("connection attributes")?;
    let mut a = Reader::new(block, "connection attributes");
    let mut attrs = Vec::new();
    while !a.is_empty() {
        let k = a.lenenc_bytes("attribute name")?;
        let v = a.lenenc_bytes("attribute value")?;
        attrs.push((String::from_utf8_lossy(k), String::from_utf8_lossy(v)));
    }
    Ok(attrs)
}

pub(crate) fn write_attrs(out: &mut Vec<u8>, attrs: &[(Cow<'_, str>, Cow<'_, str>)]) {
    let mut block = Vec::new();
    for (k, v) in attrs {
        write_lenenc_bytes(&mut block, k.as_bytes());
        write_lenenc_bytes(&mut block, v.as_bytes());
    }
    write_lenenc_bytes(out, &block);
}

/// A `HandshakeResponse41` payload. The auth response is encoded as the
/// capabilities say: length-encoded with
/// `CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA` (needed for a token over 255
/// bytes), one length byte with `CLIENT_SECURE_CONNECTION`, else
/// NUL-terminated. Fields must agree with the capabilities.
pub fn handshake_response(out: &mut Vec<u8>, h: &HandshakeResponse<'_>) -> Result<(), WireError> {
    let bad = |reason| WireError::Unencodable {
        what: "HandshakeResponse41",
        reason,
    };
    let caps = h.capabilities;
    if caps & CLIENT_PROTOCOL_41 == 0 {
        return Err(bad("CLIENT_PROTOCOL_41 is required"));
    }
    if (caps & CLIENT_CONNECT_WITH_DB != 0) != h.database.is_some() {
        return Err(bad("a database goes with CLIENT_CONNECT_WITH_DB"));
    }
    if caps & CLIENT_PLUGIN_AUTH == 0 && h.auth_plugin.is_some() {
        return Err(bad("a plugin name needs CLIENT_PLUGIN_AUTH"));
    }
    if caps & CLIENT_PLUGIN_AUTH != 0
        && h.auth_plugin.is_none()
        && caps & (CLIENT_CONNECT_ATTRS | CLIENT_ZSTD_COMPRESSION_ALGORITHM) != 0
    {
        return Err(bad("fields after the plugin name need the plugin name"));
    }
    if caps & CLIENT_CONNECT_ATTRS == 0 && !h.attrs.is_empty() {
        return Err(bad("attributes need CLIENT_CONNECT_ATTRS"));
    }
    if (caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0) != h.zstd_level.is_some() {
        return Err(bad(
            "a zstd level goes with CLIENT_ZSTD_COMPRESSION_ALGORITHM",
        ));
    }
    let start = out.len();
    let result = (|| {
        write_client_prefix(out, caps, h.max_packet_size, h.charset);
        write_nul_bytes(out, h.username.as_bytes())?;
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            write_lenenc_bytes(out, h.auth_response);
        } else if caps & CLIENT_SECURE_CONNECTION != 0 {
            let n = u8::try_from(h.auth_response.len())
                .map_err(|_| bad("an auth response over 255 bytes needs the lenenc form"))?;
            out.push(n);
            out.extend_from_slice(h.auth_response);
        } else {
            write_nul_bytes(out, h.auth_response)?;
        }
        if let Some(db) = h.database {
            write_nul_bytes(out, db.as_bytes())?;
        }
        if let Some(p) = h.auth_plugin {
            write_nul_bytes(out, p.as_bytes())?;
        }
        if caps & CLIENT_CONNECT_ATTRS != 0 {
            write_attrs(out, &h.attrs);
        }
        if let Some(level) = h.zstd_level {
            out.push(level);
        }
        Ok(())
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// The password from `mysql_clear_password` auth data: exactly one
/// trailing NUL is removed (clients send one; its absence is tolerated).
/// A zero byte left inside is refused.
pub fn parse_clear_password(auth_data: &[u8]) -> Result<&[u8], WireError> {
    let password = auth_data.strip_suffix(&[0]).unwrap_or(auth_data);
    if password.contains(&0) {
        return Err(WireError::Invalid {
            packet: "cleartext password",
            reason: "a zero byte inside the password",
        });
    }
    Ok(password)
}

/// An `AuthSwitchRequest` payload: 0xFE, plugin name, plugin data. For
/// `mysql_native_password` servers send the 20-byte scramble and a NUL.
pub fn auth_switch_request(out: &mut Vec<u8>, plugin: &str, data: &[u8]) -> Result<(), WireError> {
    let start = out.len();
    out.push(0xfe);
    if let Err(e) = write_nul_bytes(out, plugin.as_bytes()) {
        out.truncate(start);
        return Err(e);
    }
    out.extend_from_slice(data);
    Ok(())
}

/// An `AuthMoreData` payload: 0x01 and the data.
pub fn auth_more_data(out: &mut Vec<u8>, data: &[u8]) {
    out.push(0x01);
    out.extend_from_slice(data);
}

/// The client's reply to an auth switch or to more data is the raw auth
/// data; this is the identity, named for readability.
pub fn parse_auth_switch_response(payload: &[u8]) -> &[u8] {
    payload
}

/// What the server says during authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply<'a> {
    Ok(OkInfo),
    Err(ErrInfo),
    /// Use `plugin` with `data`.
    Switch {
        plugin: &'a str,
        data: &'a [u8],
    },
    /// The bare 0xFE of pre-4.1 servers asking for `mysql_old_password`.
    OldSwitch,
    /// 0x01 and plugin-specific data (`caching_sha2_password`'s 0x03 or
    /// 0x04, a public key...).
    MoreData(&'a [u8]),
}

/// Parses a server packet during authentication.
pub fn parse_auth_reply(payload: &[u8], caps: u64) -> Result<AuthReply<'_>, WireError> {
    match payload.first() {
        Some(0x00) => parse_ok(payload, caps).map(AuthReply::Ok),
        Some(0xff) => parse_err(payload).map(AuthReply::Err),
        Some(0x01) => Ok(AuthReply::MoreData(&payload[1..])),
        Some(0xfe) if payload.len() == 1 => Ok(AuthReply::OldSwitch),
        Some(0xfe) => {
            let mut r = Reader::new(&payload[1..], "AuthSwitchRequest");
            let plugin = r.nul_str("plugin name")?;
            Ok(AuthReply::Switch {
                plugin,
                data: r.rest(),
            })
        }
        Some(&header) => Err(WireError::Unexpected {
            expected: "OK, ERR, AuthSwitchRequest or AuthMoreData",
            header,
        }),
        None => Err(WireError::Truncated {
            packet: "authentication reply",
            field: "header",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> HandshakeV10 {
        HandshakeV10 {
            server_version: "5.5.5-10.11.6-MariaDB-0+deb12u1".into(),
            connection_id: 42,
            scramble: b"abcdefgh12345678ABCD".to_vec(),
            capabilities: CLIENT_PROTOCOL_41
                | CLIENT_SECURE_CONNECTION
                | CLIENT_PLUGIN_AUTH
                | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
                | CLIENT_CONNECT_WITH_DB
                | CLIENT_CONNECT_ATTRS
                | CLIENT_SSL
                | CLIENT_TRANSACTIONS
                | CLIENT_DEPRECATE_EOF
                | MARIADB_CLIENT_PROGRESS
                | MARIADB_CLIENT_EXTENDED_METADATA,
            charset: UTF8MB4_GENERAL_CI,
            status: SERVER_STATUS_AUTOCOMMIT,
            auth_plugin: MYSQL_CLEAR_PASSWORD.into(),
        }
    }

    #[test]
    fn handshake_v10_layout() {
        let h = server();
        let mut out = Vec::new();
        handshake_v10(&mut out, &h).unwrap();
        let v = h.server_version.len();
        assert_eq!(out[0], 10);
        assert_eq!(&out[1 + v + 1..1 + v + 5], 42u32.to_le_bytes());
        let at = 1 + v + 5;
        assert_eq!(&out[at..at + 8], b"abcdefgh");
        assert_eq!(out[at + 8], 0);
        // MariaDB: CLIENT_MYSQL cleared, extended bits in the last 4
        // filler bytes.
        assert_eq!(out[at + 9] & 1, 0);
        assert_eq!(out[at + 16], 21, "auth-plugin-data length");
        assert_eq!(&out[at + 17..at + 23], [0; 6]);
        assert_eq!(
            u32::from_le_bytes(out[at + 23..at + 27].try_into().unwrap()),
            ((MARIADB_CLIENT_PROGRESS | MARIADB_CLIENT_EXTENDED_METADATA) >> 32) as u32
        );
        assert_eq!(&out[at + 27..at + 40], b"12345678ABCD\0");
        assert_eq!(&out[at + 40..], b"mysql_clear_password\0");
        let back = parse_handshake_v10(&out).unwrap();
        assert_eq!(back, h);
        assert!(back.is_mariadb());
        assert_eq!(back.version(), "10.11.6-MariaDB-0+deb12u1");
        // Every cut fails, or (only where the plugin name may lack its
        // NUL) gives a shorter plugin name; only the NUL may go unnoticed.
        for cut in 0..out.len() {
            match parse_handshake_v10(&out[..cut]) {
                Err(_) => assert!(cut < at + 40, "{cut}"),
                Ok(p) if cut == out.len() - 1 => assert_eq!(p, h),
                Ok(p) => {
                    assert!(cut >= at + 40, "{cut}");
                    assert_ne!(p.auth_plugin, h.auth_plugin);
                }
            }
        }
    }

    /// A MySQL 8.0 handshake as captured from a server (version 8.0.36,
    /// caching_sha2_password, 20-byte scramble).
    #[test]
    fn parses_a_mysql_handshake() {
        let mut p = vec![10];
        p.extend_from_slice(b"8.0.36\0");
        p.extend_from_slice(&[0x0b, 0, 0, 0]);
        p.extend_from_slice(b"\x1a\x2b\x3c\x4d\x5e\x6f\x10\x21");
        p.push(0);
        p.extend_from_slice(&[0xff, 0xff]); // caps low
        p.push(255); // utf8mb4_0900_ai_ci
        p.extend_from_slice(&[2, 0]);
        p.extend_from_slice(&[0xff, 0xdf]); // caps high
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\0");
        p.extend_from_slice(b"caching_sha2_password\0");
        let h = parse_handshake_v10(&p).unwrap();
        assert_eq!(h.server_version, "8.0.36");
        assert_eq!(h.connection_id, 11);
        assert_eq!(h.scramble.len(), 20);
        assert_eq!(
            &h.scramble[8..],
            b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"
        );
        assert_eq!(h.capabilities, 0xdfff_ffff);
        assert!(!h.is_mariadb());
        assert_eq!(h.auth_plugin, CACHING_SHA2_PASSWORD);
        // Without the final NUL (MySQL 5.5.7 - 5.5.x).
        let h2 = parse_handshake_v10(&p[..p.len() - 1]).unwrap();
        assert_eq!(h2, h);
        // Extra bytes after the plugin name.
        p.push(b'x');
        assert!(matches!(
            parse_handshake_v10(&p),
            Err(WireError::Trailing { count: 1, .. })
        ));
        // An ERR instead of a handshake.
        assert!(matches!(
            parse_handshake_v10(b"\xff\x10\x04Too many connections"),
            Err(WireError::Unexpected { header: 0xff, .. })
        ));
    }

    #[test]
    fn handshake_v10_variants_round_trip() {
        let mut h = server();
        // A 32-byte nonce (client_ed25519 as the default plugin).
        h.scramble = (1..=32).collect();
        h.auth_plugin = CLIENT_ED25519.into();
        let mut out = Vec::new();
        handshake_v10(&mut out, &h).unwrap();
        assert_eq!(parse_handshake_v10(&out).unwrap(), h);
        // A MySQL peer: no extended capabilities, CLIENT_MYSQL set.
        h.capabilities = (h.capabilities & 0xffff_ffff) | CLIENT_MYSQL;
        h.scramble = b"12345678".to_vec();
        out.clear();
        handshake_v10(&mut out, &h).unwrap();
        assert_eq!(parse_handshake_v10(&out).unwrap(), h);
        // No plugin auth.
        h.capabilities &= !CLIENT_PLUGIN_AUTH;
        h.auth_plugin.clear();
        h.scramble = b"0123456789abcdefghij".to_vec();
        out.clear();
        handshake_v10(&mut out, &h).unwrap();
        assert_eq!(parse_handshake_v10(&out).unwrap(), h);
        // Refused inputs leave nothing behind.
        out.clear();
        h.scramble = b"0123456\x00".to_vec();
        assert!(handshake_v10(&mut out, &h).is_err());
        h.scramble = b"short".to_vec();
        assert!(handshake_v10(&mut out, &h).is_err());
        h.scramble = b"0123456789".to_vec();
        h.server_version = "a\0b".into();
        assert!(handshake_v10(&mut out, &h).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn scrambles_have_no_nul_or_dollar() {
        let s = scramble_from_random([
            0, b'$', 0x80, 0xa4, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        ]);
        assert!(s.iter().all(|&b| b != 0 && b != b'$' && b < 0x80));
        assert_eq!(&s[..5], [1, b'%', 1, b'%', 0x7f]);
    }

    fn client(caps: u64) -> HandshakeResponse<'static> {
        HandshakeResponse {
            capabilities: caps,
            max_packet_size: 16 * 1024 * 1024,
            charset: UTF8MB4_GENERAL_CI,
            username: "app_user",
            auth_response: b"secret-token\0",
            database: (caps & CLIENT_CONNECT_WITH_DB != 0).then_some("orders"),
            auth_plugin: (caps & CLIENT_PLUGIN_AUTH != 0).then_some(MYSQL_CLEAR_PASSWORD),
            attrs: if caps & CLIENT_CONNECT_ATTRS != 0 {
                vec![
                    ("_client_name".into(), "libmariadb".into()),
                    ("program_name".into(), "mysql".into()),
                ]
            } else {
                vec![]
            },
            zstd_level: (caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0).then_some(3),
        }
    }

    const FULL: u64 = CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_CONNECT_ATTRS
        | CLIENT_LONG_PASSWORD
        | CLIENT_TRANSACTIONS;

    #[test]
    fn handshake_response_round_trips() {
        for caps in [
            FULL,
            FULL | MARIADB_CLIENT_PROGRESS | MARIADB_CLIENT_CACHE_METADATA,
            FULL & !CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
            FULL & !(CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SECURE_CONNECTION),
            FULL & !(CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS),
            CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION,
            FULL | CLIENT_ZSTD_COMPRESSION_ALGORITHM | CLIENT_SSL,
        ] {
            let mut h = client(caps);
            if caps & (CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SECURE_CONNECTION) == 0 {
                // The NUL-terminated form cannot carry the password's NUL.
                let mut out = Vec::new();
                assert!(handshake_response(&mut out, &h).is_err());
                assert!(out.is_empty());
                h.auth_response = b"secret-token";
            }
            let mut out = Vec::new();
            handshake_response(&mut out, &h).unwrap();
            let expected_caps = if caps >> 32 != 0 {
                caps & !CLIENT_MYSQL
            } else {
                caps
            };
            let back = parse_handshake_response(&out).unwrap();
            assert_eq!(
                back,
                HandshakeResponse {
                    capabilities: expected_caps,
                    ..h.clone()
                }
            );
            assert_eq!(
                parse_client_hello(&out).unwrap(),
                ClientHello::Response(back.clone())
            );
            assert_eq!(
                parse_clear_password(back.auth_response).unwrap(),
                b"secret-token"
            );
            // Every cut is refused, except (without attributes) the cut
            // right before the optional plugin name.
            for cut in 0..out.len() {
                if let Ok(p) = parse_handshake_response(&out[..cut]) {
                    assert!(caps & CLIENT_CONNECT_ATTRS == 0, "{caps:#x} {cut}");
                    assert_eq!(p.auth_plugin, None);
                    assert!(h.auth_plugin.is_some());
                }
            }
        }
        let h = client(FULL);
        let mut out = Vec::new();
        handshake_response(&mut out, &h).unwrap();
        assert_eq!(h.attr("program_name"), Some("mysql"));
        // Layout: caps, max packet, charset, 23 zero bytes, user NUL.
        assert_eq!(&out[..4], (FULL as u32).to_le_bytes());
        assert_eq!(&out[9..32], [0; 23]);
        assert_eq!(&out[32..41], b"app_user\0");
        assert_eq!(out[41], 13);
    }

    #[test]
    fn long_tokens_need_lenenc() {
        let token = vec![b'T'; 2100];
        let mut h = client(FULL);
        h.auth_response = &token;
        let mut out = Vec::new();
        handshake_response(&mut out, &h).unwrap();
        assert_eq!(
            parse_handshake_response(&out).unwrap().auth_response,
            &token[..]
        );
        h.capabilities &= !CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        let mut out2 = Vec::new();
        assert!(matches!(
            handshake_response(&mut out2, &h),
            Err(WireError::Unencodable { .. })
        ));
        assert!(out2.is_empty());
    }

    #[test]
    fn handshake_response_rejects() {
        let mut out = Vec::new();
        handshake_response(&mut out, &client(FULL)).unwrap();
        // Protocol 3.20 clients.
        let mut old = out.clone();
        old[1] &= !((CLIENT_PROTOCOL_41 >> 8) as u8);
        assert_eq!(
            parse_handshake_response(&old),
            Err(WireError::Invalid {
                packet: "HandshakeResponse41",
                reason: "the client does not speak protocol 4.1"
            })
        );
        // The auth data length runs past the end.
        let mut bad = out.clone();
        bad[41] = 200;
        assert!(matches!(
            parse_handshake_response(&bad),
            Err(WireError::Overlong {
                field: "auth response",
                len: 200,
                ..
            })
        ));
        // A bad lenenc prefix for the auth data.
        bad[41] = 0xff;
        assert!(matches!(
            parse_handshake_response(&bad),
            Err(WireError::BadLenenc {
                field: "auth response",
                prefix: 0xff,
                ..
            })
        ));
        // Trailing garbage.
        let mut long = out.clone();
        long.push(0);
        assert!(matches!(
            parse_handshake_response(&long),
            Err(WireError::Trailing { count: 1, .. })
        ));
        // A non-UTF-8 user name.
        let mut latin = out.clone();
        latin[32] = 0xe9;
        assert_eq!(
            parse_handshake_response(&latin),
            Err(WireError::NotUtf8 {
                packet: "HandshakeResponse41",
                field: "username"
            })
        );
        // An attribute block whose pairs overrun it.
        let h = client(FULL);
        let mut out = Vec::new();
        handshake_response(&mut out, &HandshakeResponse { attrs: vec![], ..h }).unwrap();
        let n = out.len();
        out[n - 1] = 2;
        out.extend_from_slice(&[5, b'a']);
        assert!(matches!(
            parse_handshake_response(&out),
            Err(WireError::Overlong {
                field: "attribute name",
                len: 5,
                left: 1,
                ..
            })
        ));
        out[n - 1] = 2;
        out[n] = 1;
        assert!(matches!(
            parse_handshake_response(&out),
            Err(WireError::Truncated {
                field: "attribute value",
                ..
            })
        ));
    }

    #[test]
    fn ssl_requests() {
        let s = SslRequest {
            capabilities: FULL | MARIADB_CLIENT_PROGRESS,
            max_packet_size: 1 << 24,
            charset: 45,
        };
        let mut out = Vec::new();
        ssl_request(&mut out, &s);
        assert_eq!(out.len(), 32);
        assert_eq!(
            parse_client_hello(&out).unwrap(),
            ClientHello::SslRequest(SslRequest {
                capabilities: (FULL | CLIENT_SSL | MARIADB_CLIENT_PROGRESS) & !CLIENT_MYSQL,
                ..s
            })
        );
        for cut in 0..32 {
            assert!(parse_client_hello(&out[..cut]).is_err());
        }
        // 32 bytes without CLIENT_SSL is a truncated response.
        out[1] &= !((CLIENT_SSL >> 8) as u8);
        assert_eq!(
            parse_client_hello(&out),
            Err(WireError::Unterminated {
                packet: "HandshakeResponse41",
                field: "username"
            })
        );
    }

    #[test]
    fn clear_passwords() {
        assert_eq!(parse_clear_password(b"tok\0").unwrap(), b"tok");
        assert_eq!(parse_clear_password(b"tok").unwrap(), b"tok");
        assert_eq!(parse_clear_password(b"\0").unwrap(), b"");
        assert_eq!(parse_clear_password(b"").unwrap(), b"");
        assert!(parse_clear_password(b"tok\0\0").is_err());
        assert!(parse_clear_password(b"t\0ok\0").is_err());
        let token = vec![b'a'; 4096];
        let mut data = token.clone();
        data.push(0);
        assert_eq!(parse_clear_password(&data).unwrap(), &token[..]);
    }

    #[test]
    fn auth_replies() {
        let mut out = Vec::new();
        auth_switch_request(&mut out, MYSQL_CLEAR_PASSWORD, b"").unwrap();
        assert_eq!(out, b"\xfemysql_clear_password\0");
        assert_eq!(
            parse_auth_reply(&out, FULL).unwrap(),
            AuthReply::Switch {
                plugin: MYSQL_CLEAR_PASSWORD,
                data: b""
            }
        );
        out.clear();
        auth_switch_request(&mut out, MYSQL_NATIVE_PASSWORD, b"01234567890123456789\0").unwrap();
        assert_eq!(
            parse_auth_reply(&out, FULL).unwrap(),
            AuthReply::Switch {
                plugin: MYSQL_NATIVE_PASSWORD,
                data: b"01234567890123456789\0"
            }
        );
        for cut in 2..1 + MYSQL_NATIVE_PASSWORD.len() + 1 {
            let r = parse_auth_reply(&out[..cut], FULL);
            assert!(
                matches!(
                    r,
                    Err(WireError::Unterminated {
                        field: "plugin name",
                        ..
                    })
                ),
                "{cut} {r:?}"
            );
        }
        assert!(auth_switch_request(&mut Vec::new(), "a\0b", b"").is_err());
        // A switch request captured from go-sql-driver/mysql's tests.
        let captured = [
            254, 109, 121, 115, 113, 108, 95, 111, 108, 100, 95, 112, 97, 115, 115, 119, 111, 114,
            100, 0, 95, 84, 103, 43, 61, 49, 123, 61, 91, 50, 40, 113, 35, 84, 96, 101, 92, 123,
            121, 107, 0,
        ];
        assert!(matches!(
            parse_auth_reply(&captured, FULL).unwrap(),
            AuthReply::Switch { plugin: "mysql_old_password", data } if data.len() == 21
        ));
        assert_eq!(
            parse_auth_reply(&[0xfe], FULL).unwrap(),
            AuthReply::OldSwitch
        );
        out.clear();
        auth_more_data(&mut out, &[4]);
        assert_eq!(
            parse_auth_reply(&out, FULL).unwrap(),
            AuthReply::MoreData(&[4])
        );
        assert!(matches!(
            parse_auth_reply(&[0, 0, 0, 2, 0, 0, 0], FULL).unwrap(),
            AuthReply::Ok(OkInfo { status: 2, .. })
        ));
        assert!(matches!(
            parse_auth_reply(b"\xff\x15\x04#28000denied", FULL).unwrap(),
            AuthReply::Err(ErrInfo { code: 1045, .. })
        ));
        assert!(matches!(
            parse_auth_reply(&[0x02], FULL),
            Err(WireError::Unexpected { header: 2, .. })
        ));
        assert!(parse_auth_reply(&[], FULL).is_err());
        assert_eq!(parse_auth_switch_response(b"abc"), b"abc");
    }
}
