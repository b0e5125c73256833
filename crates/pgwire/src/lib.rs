//! The parts of the PostgreSQL v3 protocol a token-authenticating proxy
//! needs before it relays: startup packets, message framing, password and
//! authentication messages, errors. Pure: bytes in, bytes out.

use std::fmt;

/// `SSLRequest` code.
pub const SSL_REQUEST: u32 = 80_877_103;
/// `GSSENCRequest` code.
pub const GSSENC_REQUEST: u32 = 80_877_104;
/// `CancelRequest` code.
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// Protocol 3.0.
pub const PROTOCOL_3_0: u32 = 196_608;
/// Startup packets larger than this are refused (PostgreSQL uses 10,000).
pub const MAX_STARTUP_LEN: usize = 10_000;

/// Why bytes from a peer were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message length {0} is out of range")]
    Length(usize),
    #[error("unsupported protocol version {major}.{minor}")]
    Version { major: u16, minor: u16 },
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("expected a {expected:?} message, got {got:?}")]
    Unexpected { expected: char, got: char },
}

/// The first packet of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Ssl,
    GssEnc,
    Cancel { pid: u32, key: u32 },
    Startup { params: Vec<(String, String)> },
}

impl Startup {
    /// A startup parameter (`user`, `database`, `application_name`...).
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            Startup::Startup { params } => params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The length a startup packet announces in its first four bytes
/// (including those four), checked against the limits.
pub fn startup_length(header: [u8; 4]) -> Result<usize, WireError> {
    let len = be32(&header) as usize;
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return Err(WireError::Length(len));
    }
    Ok(len)
}

fn cstring(b: &[u8]) -> Result<(&str, &[u8]), WireError> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or(WireError::Malformed("string without its terminating zero"))?;
    let s =
        std::str::from_utf8(&b[..end]).map_err(|_| WireError::Malformed("string is not UTF-8"))?;
    Ok((s, &b[end + 1..]))
}

/// Parses a startup packet's body (everything after the length).
pub fn parse_startup(body: &[u8]) -> Result<Startup, WireError> {
    if body.len() < 4 {
        return Err(WireError::Malformed("startup packet"));
    }
    let code = be32(body);
    let rest = &body[4..];
    match code {
        SSL_REQUEST if rest.is_empty() => Ok(Startup::Ssl),
        GSSENC_REQUEST if rest.is_empty() => Ok(Startup::GssEnc),
        CANCEL_REQUEST if rest.len() == 8 => Ok(Startup::Cancel {
            pid: be32(rest),
            key: be32(&rest[4..]),
        }),
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => {
            Err(WireError::Malformed("request packet length"))
        }
        PROTOCOL_3_0 => {
            let mut params = Vec::new();
            let mut b = rest;
            loop {
                let (key, after) = cstring(b)?;
                if key.is_empty() {
                    if !after.is_empty() {
                        return Err(WireError::Malformed("bytes after the startup parameters"));
                    }
                    break;
                }
                let (value, after) = cstring(after)?;
                if params.iter().any(|(k, _)| k == key) {
                    return Err(WireError::Malformed("a startup parameter appears twice"));
                }
                params.push((key.to_owned(), value.to_owned()));
                b = after;
            }
            if !params.iter().any(|(k, _)| k == "user") {
                return Err(WireError::Malformed("startup packet without a user"));
            }
            Ok(Startup::Startup { params })
        }
        v => Err(WireError::Version {
            major: (v >> 16) as u16,
            minor: (v & 0xffff) as u16,
        }),
    }
}

/// A regular message header: tag and body length, checked against `max`.
pub fn message_header(header: [u8; 5], max: usize) -> Result<(u8, usize), WireError> {
    let len = be32(&header[1..]) as usize;
    if len < 4 || len - 4 > max {
        return Err(WireError::Length(len));
    }
    Ok((header[0], len - 4))
}

/// The password from a `PasswordMessage` ('p') body.
pub fn parse_password(body: &[u8]) -> Result<&[u8], WireError> {
    match body.split_last() {
        Some((0, password)) if !password.contains(&0) => Ok(password),
        _ => Err(WireError::Malformed("password message")),
    }
}

fn message(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = u32::try_from(out.len() - at).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// `AuthenticationCleartextPassword`.
pub fn auth_cleartext(out: &mut Vec<u8>) {
    message(out, b'R', |b| b.extend_from_slice(&3u32.to_be_bytes()));
}

/// `AuthenticationOk`.
pub fn auth_ok(out: &mut Vec<u8>) {
    message(out, b'R', |b| b.extend_from_slice(&0u32.to_be_bytes()));
}

/// Error severities the gateway sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        })
    }
}

/// `ErrorResponse` with severity, SQLSTATE and message.
pub fn error_response(out: &mut Vec<u8>, severity: Severity, code: &str, text: &str) {
    message(out, b'E', |b| {
        let sev = severity.to_string();
        for (field, value) in [
            (b'S', sev.as_str()),
            (b'V', sev.as_str()),
            (b'C', code),
            (b'M', text),
        ] {
            b.push(field);
            // A zero byte would end the field early: drop any.
            b.extend(value.bytes().filter(|&c| c != 0));
            b.push(0);
        }
        b.push(0);
    });
}

/// A `StartupMessage` for the upstream server.
pub fn startup_message(out: &mut Vec<u8>, params: &[(&str, &str)]) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
    for (k, v) in params {
        out.extend(k.bytes().filter(|&c| c != 0));
        out.push(0);
        out.extend(v.bytes().filter(|&c| c != 0));
        out.push(0);
    }
    out.push(0);
    let len = u32::try_from(out.len() - at).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// A `PasswordMessage` ('p') or SASL response with raw bytes.
pub fn password_message(out: &mut Vec<u8>, password: &[u8]) {
    message(out, b'p', |b| {
        b.extend_from_slice(password);
        b.push(0);
    });
}

/// `SASLInitialResponse` for `mechanism`.
pub fn sasl_initial_response(out: &mut Vec<u8>, mechanism: &str, data: &[u8]) {
    message(out, b'p', |b| {
        b.extend_from_slice(mechanism.as_bytes());
        b.push(0);
        b.extend_from_slice(&i32::try_from(data.len()).unwrap_or(i32::MAX).to_be_bytes());
        b.extend_from_slice(data);
    });
}

/// `SASLResponse`.
pub fn sasl_response(out: &mut Vec<u8>, data: &[u8]) {
    message(out, b'p', |b| b.extend_from_slice(data));
}

/// A `CancelRequest` packet.
pub fn cancel_request(out: &mut Vec<u8>, pid: u32, key: u32) {
    out.extend_from_slice(&16u32.to_be_bytes());
    out.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out.extend_from_slice(&pid.to_be_bytes());
    out.extend_from_slice(&key.to_be_bytes());
}

/// An `SSLRequest` packet (a client asking the server for TLS).
pub fn ssl_request(out: &mut Vec<u8>) {
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(&SSL_REQUEST.to_be_bytes());
}

/// An upstream `Authentication*` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    Ok,
    Cleartext,
    Md5 { salt: [u8; 4] },
    Sasl { mechanisms: Vec<String> },
    SaslContinue(Vec<u8>),
    SaslFinal(Vec<u8>),
    Other(u32),
}

/// Parses an 'R' message body.
pub fn parse_auth(body: &[u8]) -> Result<AuthRequest, WireError> {
    if body.len() < 4 {
        return Err(WireError::Malformed("authentication message"));
    }
    let rest = &body[4..];
    Ok(match be32(body) {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 if rest.len() == 4 => AuthRequest::Md5 {
            salt: [rest[0], rest[1], rest[2], rest[3]],
        },
        10 => {
            let mut mechanisms = Vec::new();
            let mut b = rest;
            loop {
                let (m, after) = cstring(b)?;
                if m.is_empty() {
                    break;
                }
                mechanisms.push(m.to_owned());
                b = after;
            }
            AuthRequest::Sasl { mechanisms }
        }
        11 => AuthRequest::SaslContinue(rest.to_vec()),
        12 => AuthRequest::SaslFinal(rest.to_vec()),
        other => AuthRequest::Other(other),
    })
}

/// The columns of a `DataRow` body, as text (`None` for NULL).
pub fn text_columns(body: &[u8]) -> Result<Vec<Option<String>>, WireError> {
    let malformed = || WireError::Malformed("DataRow");
    let count = body.get(..2).ok_or_else(malformed)?;
    let count = u16::from_be_bytes([count[0], count[1]]);
    let mut at = 2;
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let len = body.get(at..at + 4).ok_or_else(malformed)?;
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let len = usize::try_from(len).map_err(|_| malformed())?;
        let value = body.get(at..at + len).ok_or_else(malformed)?;
        at += len;
        out.push(Some(
            String::from_utf8(value.to_vec()).map_err(|_| malformed())?,
        ));
    }
    if at != body.len() {
        return Err(malformed());
    }
    Ok(out)
}

/// The SQLSTATE and message of an `ErrorResponse` body.
pub fn parse_error(body: &[u8]) -> (String, String) {
    let (mut code, mut text) = (String::new(), String::new());
    for field in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = value,
            b'M' => text = value,
            _ => {}
        }
    }
    (code, text)
}

/// `ParameterStatus` ('S') from a server.
pub fn parameter_status(out: &mut Vec<u8>, name: &str, value: &str) {
    message(out, b'S', |b| {
        b.extend(name.bytes().filter(|&c| c != 0));
        b.push(0);
        b.extend(value.bytes().filter(|&c| c != 0));
        b.push(0);
    });
}

/// `BackendKeyData` ('K').
pub fn backend_key_data(out: &mut Vec<u8>, pid: u32, key: u32) {
    message(out, b'K', |b| {
        b.extend_from_slice(&pid.to_be_bytes());
        b.extend_from_slice(&key.to_be_bytes());
    });
}

/// `ReadyForQuery` ('Z') with a transaction status (`I`, `T` or `E`).
pub fn ready_for_query(out: &mut Vec<u8>, status: u8) {
    message(out, b'Z', |b| b.push(status));
}

/// A simple `Query` ('Q').
pub fn query(out: &mut Vec<u8>, sql: &str) {
    message(out, b'Q', |b| {
        b.extend(sql.bytes().filter(|&c| c != 0));
        b.push(0);
    });
}

/// `Parse` ('P') of the unnamed statement, its parameters' types left to
/// the server.
pub fn parse_unnamed(out: &mut Vec<u8>, sql: &str) {
    message(out, b'P', |b| {
        b.push(0);
        b.extend(sql.bytes().filter(|&c| c != 0));
        b.push(0);
        b.extend_from_slice(&0u16.to_be_bytes());
    });
}

/// `Bind` ('B') of the unnamed statement to the unnamed portal, every
/// parameter as text and every result column as text. The values travel
/// apart from the statement: nothing in them is read as SQL, whatever the
/// connection's encoding.
pub fn bind_unnamed_text(out: &mut Vec<u8>, params: &[&str]) {
    message(out, b'B', |b| {
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(
            &u16::try_from(params.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        for p in params {
            b.extend_from_slice(&i32::try_from(p.len()).unwrap_or(i32::MAX).to_be_bytes());
            b.extend_from_slice(p.as_bytes());
        }
        b.extend_from_slice(&0u16.to_be_bytes());
    });
}

/// `Execute` ('E') of the unnamed portal, every row.
pub fn execute_unnamed(out: &mut Vec<u8>) {
    message(out, b'E', |b| {
        b.push(0);
        b.extend_from_slice(&0u32.to_be_bytes());
    });
}

/// `Sync` ('S').
pub fn sync(out: &mut Vec<u8>) {
    message(out, b'S', |_| {});
}

/// `Terminate` ('X').
pub fn terminate(out: &mut Vec<u8>) {
    message(out, b'X', |_| {});
}

/// Name and value of a `ParameterStatus` body.
pub fn parse_parameter_status(body: &[u8]) -> Result<(&str, &str), WireError> {
    let (name, rest) = cstring(body)?;
    let (value, _) = cstring(rest)?;
    Ok((name, value))
}

/// The leading zero-terminated string of a message body: the tag of a
/// `CommandComplete`, the portal of an `Execute`.
pub fn leading_str(body: &[u8]) -> Result<&str, WireError> {
    let (s, _) = cstring(body)?;
    Ok(s)
}

/// The leading string of a body of which only a prefix may have been
/// read (the SQL of a `Query`): the terminating zero may be missing, and
/// a prefix that ends inside a multi-byte character gives the valid part.
pub fn leading_str_prefix(body: &[u8]) -> Result<&str, WireError> {
    let end = body.iter().position(|&c| c == 0).unwrap_or(body.len());
    match std::str::from_utf8(&body[..end]) {
        Ok(s) => Ok(s),
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&body[..e.valid_up_to()]).map_err(|_| WireError::Malformed("UTF-8"))
        }
        Err(_) => Err(WireError::Malformed("string is not UTF-8")),
    }
}

/// The statement name and SQL of a `Parse` ('P') body. The SQL may be a
/// prefix when only part of the body was read.
pub fn parse_parse(body: &[u8]) -> Result<(&str, &str), WireError> {
    let (name, rest) = cstring(body)?;
    Ok((name, leading_str_prefix(rest)?))
}

/// Portal and statement names of a `Bind` ('B') body.
pub fn parse_bind(body: &[u8]) -> Result<(&str, &str), WireError> {
    let (portal, rest) = cstring(body)?;
    let (statement, _) = cstring(rest)?;
    Ok((portal, statement))
}

/// Kind (`S` statement or `P` portal) and name of a `Close` ('C') body.
pub fn parse_close(body: &[u8]) -> Result<(u8, &str), WireError> {
    let (&kind, rest) = body
        .split_first()
        .ok_or(WireError::Malformed("close message"))?;
    let (name, _) = cstring(rest)?;
    Ok((kind, name))
}

/// The SQLSTATE of an `ErrorResponse` body, without allocating.
pub fn error_code(body: &[u8]) -> Option<&str> {
    error_field(body, b'C').and_then(|f| std::str::from_utf8(f).ok())
}

/// One field of an `ErrorResponse` or `NoticeResponse` body (`b'M'` the
/// message, `b'C'` the code...), without its type byte.
pub fn error_field(body: &[u8], field: u8) -> Option<&[u8]> {
    body.split(|&b| b == 0)
        .take_while(|f| !f.is_empty())
        .find(|f| f[0] == field)
        .map(|f| &f[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(packet: &[u8]) -> &[u8] {
        assert_eq!(
            startup_length([packet[0], packet[1], packet[2], packet[3]]).unwrap(),
            packet.len()
        );
        &packet[4..]
    }

    #[test]
    fn startup_packets() {
        let mut p = Vec::new();
        startup_message(&mut p, &[("user", "app"), ("database", "orders")]);
        let s = parse_startup(body(&p)).unwrap();
        assert_eq!(s.param("user"), Some("app"));
        assert_eq!(s.param("database"), Some("orders"));
        let mut c = Vec::new();
        cancel_request(&mut c, 7, 9);
        assert_eq!(
            parse_startup(body(&c)).unwrap(),
            Startup::Cancel { pid: 7, key: 9 }
        );
        assert_eq!(
            parse_startup(&SSL_REQUEST.to_be_bytes()).unwrap(),
            Startup::Ssl
        );
        assert_eq!(
            parse_startup(&GSSENC_REQUEST.to_be_bytes()).unwrap(),
            Startup::GssEnc
        );
        assert!(matches!(
            parse_startup(&0x0002_0000u32.to_be_bytes()),
            Err(WireError::Version { major: 2, .. })
        ));
        let mut no_user = Vec::new();
        startup_message(&mut no_user, &[("database", "x")]);
        assert!(parse_startup(body(&no_user)).is_err());
        assert!(startup_length([0, 0, 0, 4]).is_err());
        assert!(startup_length([0, 1, 0, 0]).is_err());
    }

    #[test]
    fn messages() {
        let mut out = Vec::new();
        error_response(
            &mut out,
            Severity::Fatal,
            "28P01",
            "PAM authentication failed for user \"app\"",
        );
        let (tag, len) = message_header([out[0], out[1], out[2], out[3], out[4]], 1024).unwrap();
        assert_eq!((tag, len), (b'E', out.len() - 5));
        assert_eq!(
            parse_error(&out[5..]),
            (
                "28P01".into(),
                "PAM authentication failed for user \"app\"".into()
            )
        );
        assert_eq!(parse_password(b"token\0").unwrap(), b"token");
        assert!(parse_password(b"to\0ken\0").is_err());
        assert!(parse_password(b"").is_err());
        let mut q = Vec::new();
        query(&mut q, "SELECT 1");
        assert_eq!(leading_str(&q[5..]).unwrap(), "SELECT 1");
        let mut ps = Vec::new();
        parameter_status(&mut ps, "TimeZone", "UTC");
        assert_eq!(
            parse_parameter_status(&ps[5..]).unwrap(),
            ("TimeZone", "UTC")
        );
        assert_eq!(
            parse_parse(b"s1\0SELECT $1\0\0\0").unwrap(),
            ("s1", "SELECT $1")
        );
        assert_eq!(parse_parse(b"\0SELECT '\xc3").unwrap(), ("", "SELECT '"));
        assert_eq!(parse_bind(b"p\0s1\0\0\0").unwrap(), ("p", "s1"));
        assert_eq!(parse_close(b"Ss1\0").unwrap(), (b'S', "s1"));
        assert_eq!(error_code(&out[5..]), Some("28P01"));
        assert!(message_header([b'p', 0, 0, 0, 3], 10).is_err());
        assert!(message_header([b'p', 0, 1, 0, 0], 10).is_err());
        let mut a = Vec::new();
        auth_cleartext(&mut a);
        assert_eq!(a, [b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
        assert_eq!(
            parse_auth(&[0, 0, 0, 10, b'S', b'C', 0, 0]).unwrap(),
            AuthRequest::Sasl {
                mechanisms: vec!["SC".into()]
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_startup(&b);
            let _ = parse_auth(&b);
            let _ = parse_password(&b);
            let _ = parse_error(&b);
            let _ = parse_parameter_status(&b);
            let _ = parse_parse(&b);
            let _ = parse_bind(&b);
            let _ = parse_close(&b);
            let _ = error_code(&b);
            let _ = leading_str_prefix(&b);
        }
    }
}

#[cfg(test)]
mod data_row_tests {
    use super::*;

    #[test]
    fn text_columns_read_values_and_nulls_and_refuse_short_rows() {
        let row = [
            0, 2, 0, 0, 0, 6, b'p', b'u', b'b', b'l', b'i', b'c', 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(
            text_columns(&row).unwrap(),
            [Some("public".to_owned()), None]
        );
        assert!(text_columns(&row[..8]).is_err());
        assert!(text_columns(&[0, 1, 0, 0, 0, 1, b'x', b'y']).is_err());
        assert_eq!(text_columns(&[0, 0]).unwrap(), []);
    }
}
