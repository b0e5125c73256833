//! Generic server responses: OK, ERR, EOF, column definitions, the
//! prepare-OK and the LOCAL INFILE request.

use std::fmt;

use crate::WireError;
use crate::codec::{Reader, write_lenenc_bytes, write_lenenc_int};
use crate::consts::*;

/// The contents of an OK packet (or of an EOF packet, with zero counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OkInfo {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
    /// Human-readable info ("Rows matched: 1  Changed: 1 ..."), lossily
    /// decoded.
    pub info: String,
    /// Raw session-state-change data, present when `status` has
    /// [`SERVER_SESSION_STATE_CHANGED`] and `CLIENT_SESSION_TRACK` was
    /// negotiated.
    pub session_state: Vec<u8>,
}

impl OkInfo {
    /// Whether another result follows (multi-statements, stored
    /// procedures).
    pub fn more_results(&self) -> bool {
        self.status & SERVER_MORE_RESULTS_EXISTS != 0
    }
}

/// The contents of an ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrInfo {
    pub code: u16,
    /// The 5-character SQLSTATE, absent from pre-4.1 errors and from
    /// errors sent before the handshake.
    pub sqlstate: Option<String>,
    /// Lossily decoded message.
    pub message: String,
}

impl fmt::Display for ErrInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(s) => write!(f, "ERROR {} ({}): {}", self.code, s, self.message),
            None => write!(f, "ERROR {}: {}", self.code, self.message),
        }
    }
}

/// The contents of an EOF packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EofInfo {
    pub warnings: u16,
    pub status: u16,
}

impl From<EofInfo> for OkInfo {
    fn from(e: EofInfo) -> Self {
        OkInfo {
            status: e.status,
            warnings: e.warnings,
            ..OkInfo::default()
        }
    }
}

fn write_ok_body(out: &mut Vec<u8>, header: u8, ok: &OkInfo, caps: u64) {
    out.push(header);
    write_lenenc_int(out, ok.affected_rows);
    write_lenenc_int(out, ok.last_insert_id);
    if caps & CLIENT_PROTOCOL_41 != 0 {
        out.extend_from_slice(&ok.status.to_le_bytes());
        out.extend_from_slice(&ok.warnings.to_le_bytes());
    } else if caps & CLIENT_TRANSACTIONS != 0 {
        out.extend_from_slice(&ok.status.to_le_bytes());
    }
    let state_changed =
        caps & CLIENT_SESSION_TRACK != 0 && ok.status & SERVER_SESSION_STATE_CHANGED != 0;
    if !ok.info.is_empty() || state_changed {
        write_lenenc_bytes(out, ok.info.as_bytes());
    }
    if state_changed {
        write_lenenc_bytes(out, &ok.session_state);
    }
}

/// An OK packet payload (header 0x00). The info string is written
/// length-encoded, as MySQL and MariaDB servers do, and only when it is
/// not empty (or session state follows). `session_state` is written only
/// when `ok.status` has [`SERVER_SESSION_STATE_CHANGED`] and `caps`
/// has [`CLIENT_SESSION_TRACK`].
pub fn ok_packet(out: &mut Vec<u8>, ok: &OkInfo, caps: u64) {
    write_ok_body(out, 0x00, ok, caps);
}

/// The OK packet with header 0xFE that ends a result set when
/// `CLIENT_DEPRECATE_EOF` is negotiated.
pub fn ok_eof_packet(out: &mut Vec<u8>, ok: &OkInfo, caps: u64) {
    write_ok_body(out, 0xfe, ok, caps);
}

/// Parses an OK packet payload, with header 0x00 or 0xFE.
pub fn parse_ok(payload: &[u8], caps: u64) -> Result<OkInfo, WireError> {
    let mut r = Reader::new(payload, "OK packet");
    match r.u8("header")? {
        0x00 | 0xfe => {}
        header => {
            return Err(WireError::Unexpected {
                expected: "an OK packet",
                header,
            });
        }
    }
    let mut ok = OkInfo {
        affected_rows: r.lenenc_int("affected rows")?,
        last_insert_id: r.lenenc_int("last insert id")?,
        ..OkInfo::default()
    };
    if caps & CLIENT_PROTOCOL_41 != 0 {
        ok.status = r.u16("status flags")?;
        ok.warnings = r.u16("warning count")?;
    } else if caps & CLIENT_TRANSACTIONS != 0 {
        ok.status = r.u16("status flags")?;
    }
    if r.is_empty() {
        return Ok(ok);
    }
    ok.info = String::from_utf8_lossy(r.lenenc_bytes("info")?).into_owned();
    if caps & CLIENT_SESSION_TRACK != 0
        && ok.status & SERVER_SESSION_STATE_CHANGED != 0
        && !r.is_empty()
    {
        ok.session_state = r.lenenc_bytes("session state")?.to_vec();
    }
    r.finish("info")?;
    Ok(ok)
}

/// An ERR packet payload (protocol 4.1 form, with the SQLSTATE).
pub fn err_packet(out: &mut Vec<u8>, code: u16, sqlstate: &[u8; 5], message: &str) {
    out.push(0xff);
    out.extend_from_slice(&code.to_le_bytes());
    out.push(b'#');
    out.extend_from_slice(sqlstate);
    out.extend_from_slice(message.as_bytes());
}

/// Parses an ERR packet payload.
pub fn parse_err(payload: &[u8]) -> Result<ErrInfo, WireError> {
    let mut r = Reader::new(payload, "ERR packet");
    let header = r.u8("header")?;
    if header != 0xff {
        return Err(WireError::Unexpected {
            expected: "an ERR packet",
            header,
        });
    }
    let code = r.u16("error code")?;
    let sqlstate = if r.peek() == Some(b'#') {
        r.take(1, "SQLSTATE marker")?;
        Some(String::from_utf8_lossy(r.take(5, "SQLSTATE")?).into_owned())
    } else {
        None
    };
    Ok(ErrInfo {
        code,
        sqlstate,
        message: String::from_utf8_lossy(r.rest()).into_owned(),
    })
}

/// The error code of a MariaDB progress report, sent as an ERR packet
/// to clients that negotiated [`MARIADB_CLIENT_PROGRESS`].
pub const PROGRESS_REPORT_CODE: u16 = 0xffff;

/// Whether `payload` is a MariaDB progress report (not an error) under
/// the negotiated capabilities.
pub fn is_progress_report(payload: &[u8], caps: u64) -> bool {
    caps & MARIADB_CLIENT_PROGRESS != 0 && payload.starts_with(&[0xff, 0xff, 0xff])
}

/// An EOF packet payload (protocol 4.1 form).
pub fn eof_packet(out: &mut Vec<u8>, warnings: u16, status: u16) {
    out.push(0xfe);
    out.extend_from_slice(&warnings.to_le_bytes());
    out.extend_from_slice(&status.to_le_bytes());
}

/// Parses an EOF packet payload: exactly 0xFE, warnings, status.
pub fn parse_eof(payload: &[u8]) -> Result<EofInfo, WireError> {
    let mut r = Reader::new(payload, "EOF packet");
    let header = r.u8("header")?;
    if header != 0xfe {
        return Err(WireError::Unexpected {
            expected: "an EOF packet",
            header,
        });
    }
    let eof = EofInfo {
        warnings: r.u16("warning count")?,
        status: r.u16("status flags")?,
    };
    r.finish("status flags")?;
    Ok(eof)
}

/// Whether a payload met where rows (or definitions) may come is the
/// 0xFE packet that ends them: an EOF, or an OK with a 0xFE header. A
/// text row can start with 0xFE only when its first value is at least
/// 16 MiB long, which makes the payload at least 0xFFFFFF bytes.
pub fn is_eof_or_ok_terminator(payload: &[u8]) -> bool {
    payload.first() == Some(&0xfe) && payload.len() < crate::MAX_PACKET_PAYLOAD
}

/// Parses the packet that ends rows: an EOF, or (with
/// `CLIENT_DEPRECATE_EOF`) an OK with header 0xFE.
pub fn parse_terminator(payload: &[u8], caps: u64) -> Result<OkInfo, WireError> {
    if caps & CLIENT_DEPRECATE_EOF != 0 {
        parse_ok(payload, caps)
    } else {
        parse_eof(payload).map(OkInfo::from)
    }
}

/// A column definition (`ColumnDefinition41`). Names are raw bytes in
/// the connection's character set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnDefinition<'a> {
    pub catalog: &'a [u8],
    pub schema: &'a [u8],
    pub table: &'a [u8],
    pub org_table: &'a [u8],
    pub name: &'a [u8],
    pub org_name: &'a [u8],
    /// MariaDB extended type information (with
    /// [`MARIADB_CLIENT_EXTENDED_METADATA`]), raw.
    pub extended: &'a [u8],
    pub charset: u16,
    pub column_length: u32,
    pub column_type: u8,
    pub flags: u16,
    pub decimals: u8,
    /// The default value that `COM_FIELD_LIST` replies add.
    pub default_value: Option<&'a [u8]>,
}

/// Parses a column definition. `caps` decides whether MariaDB's extended
/// metadata is present.
pub fn parse_column_definition(
    payload: &[u8],
    caps: u64,
) -> Result<ColumnDefinition<'_>, WireError> {
    let mut r = Reader::new(payload, "column definition");
    let mut c = ColumnDefinition {
        catalog: r.lenenc_bytes("catalog")?,
        schema: r.lenenc_bytes("schema")?,
        table: r.lenenc_bytes("table")?,
        org_table: r.lenenc_bytes("original table")?,
        name: r.lenenc_bytes("name")?,
        org_name: r.lenenc_bytes("original name")?,
        ..ColumnDefinition::default()
    };
    if caps & MARIADB_CLIENT_EXTENDED_METADATA != 0 {
        c.extended = r.lenenc_bytes("extended metadata")?;
    }
    if r.lenenc_int("length of fixed fields")? != 0x0c {
        return Err(r.invalid("the fixed fields are not 12 bytes long"));
    }
    c.charset = r.u16("character set")?;
    c.column_length = r.u32("column length")?;
    c.column_type = r.u8("column type")?;
    c.flags = r.u16("flags")?;
    c.decimals = r.u8("decimals")?;
    r.take(2, "filler")?;
    if !r.is_empty() {
        c.default_value = Some(r.lenenc_bytes("default value")?);
    }
    r.finish("default value")?;
    Ok(c)
}

/// A column definition payload.
pub fn column_definition(out: &mut Vec<u8>, c: &ColumnDefinition<'_>, caps: u64) {
    for f in [
        c.catalog,
        c.schema,
        c.table,
        c.org_table,
        c.name,
        c.org_name,
    ] {
        write_lenenc_bytes(out, f);
    }
    if caps & MARIADB_CLIENT_EXTENDED_METADATA != 0 {
        write_lenenc_bytes(out, c.extended);
    }
    out.push(0x0c);
    out.extend_from_slice(&c.charset.to_le_bytes());
    out.extend_from_slice(&c.column_length.to_le_bytes());
    out.push(c.column_type);
    out.extend_from_slice(&c.flags.to_le_bytes());
    out.push(c.decimals);
    out.extend_from_slice(&[0, 0]);
    if let Some(d) = c.default_value {
        write_lenenc_bytes(out, d);
    }
}

/// The column count that starts a result set, and whether column
/// definitions follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnCount {
    pub columns: u64,
    pub metadata_follows: bool,
}

/// Whether the column-count packet (and prepare-OK) carries a
/// "metadata follows" byte under `caps`.
fn has_metadata_flag(caps: u64) -> bool {
    caps & (CLIENT_OPTIONAL_RESULTSET_METADATA | MARIADB_CLIENT_CACHE_METADATA) != 0
}

/// Parses the column-count packet that starts a result set.
pub fn parse_column_count(payload: &[u8], caps: u64) -> Result<ColumnCount, WireError> {
    let mut r = Reader::new(payload, "column count packet");
    let columns = r.lenenc_int("column count")?;
    if columns == 0 {
        return Err(r.invalid("a result set without columns"));
    }
    let metadata_follows = if has_metadata_flag(caps) {
        match r.u8("metadata flag")? {
            0 => false,
            1 => true,
            _ => return Err(r.invalid("metadata flag is neither 0 nor 1")),
        }
    } else {
        true
    };
    r.finish("column count")?;
    Ok(ColumnCount {
        columns,
        metadata_follows,
    })
}

/// A column-count packet payload.
pub fn column_count(out: &mut Vec<u8>, count: ColumnCount, caps: u64) {
    write_lenenc_int(out, count.columns);
    if has_metadata_flag(caps) {
        out.push(count.metadata_follows.into());
    }
}

/// The server's `COM_STMT_PREPARE_OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareOk {
    pub statement_id: u32,
    pub num_columns: u16,
    pub num_params: u16,
    pub warnings: u16,
    /// MySQL 8 with `CLIENT_OPTIONAL_RESULTSET_METADATA`: whether the
    /// parameter and column definitions follow. `true` otherwise.
    pub metadata_follows: bool,
}

/// Parses `COM_STMT_PREPARE_OK`.
pub fn parse_prepare_ok(payload: &[u8], caps: u64) -> Result<PrepareOk, WireError> {
    let mut r = Reader::new(payload, "prepare OK");
    let header = r.u8("status")?;
    if header != 0 {
        return Err(WireError::Unexpected {
            expected: "a prepare OK",
            header,
        });
    }
    let statement_id = r.u32("statement id")?;
    let num_columns = r.u16("column count")?;
    let num_params = r.u16("parameter count")?;
    r.take(1, "reserved byte")?;
    let warnings = r.u16("warning count")?;
    let mut metadata_follows = true;
    if caps & CLIENT_OPTIONAL_RESULTSET_METADATA != 0 && !r.is_empty() {
        metadata_follows = match r.u8("metadata flag")? {
            0 => false,
            1 => true,
            _ => return Err(r.invalid("metadata flag is neither 0 nor 1")),
        };
    }
    r.finish("warning count")?;
    Ok(PrepareOk {
        statement_id,
        num_columns,
        num_params,
        warnings,
        metadata_follows,
    })
}

/// A `COM_STMT_PREPARE_OK` payload.
pub fn prepare_ok(out: &mut Vec<u8>, p: &PrepareOk, caps: u64) {
    out.push(0);
    out.extend_from_slice(&p.statement_id.to_le_bytes());
    out.extend_from_slice(&p.num_columns.to_le_bytes());
    out.extend_from_slice(&p.num_params.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&p.warnings.to_le_bytes());
    if caps & CLIENT_OPTIONAL_RESULTSET_METADATA != 0 {
        out.push(p.metadata_follows.into());
    }
}

/// The file name of a LOCAL INFILE request (0xFB + file name).
pub fn parse_local_infile(payload: &[u8]) -> Result<&[u8], WireError> {
    match payload.split_first() {
        Some((0xfb, name)) => Ok(name),
        Some((&header, _)) => Err(WireError::Unexpected {
            expected: "a LOCAL INFILE request",
            header,
        }),
        None => Err(WireError::Truncated {
            packet: "LOCAL INFILE request",
            field: "header",
        }),
    }
}

/// A LOCAL INFILE request payload.
pub fn local_infile_request(out: &mut Vec<u8>, filename: &[u8]) {
    out.push(0xfb);
    out.extend_from_slice(filename);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: u64 = CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS;

    #[test]
    fn ok_round_trips() {
        let cases = [
            (OkInfo::default(), CAPS),
            (
                OkInfo {
                    affected_rows: 300,
                    last_insert_id: 1 << 40,
                    status: SERVER_STATUS_AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS,
                    warnings: 2,
                    info: "Rows matched: 1  Changed: 1  Warnings: 0".into(),
                    session_state: vec![],
                },
                CAPS,
            ),
            (
                OkInfo {
                    status: SERVER_SESSION_STATE_CHANGED,
                    session_state: b"\x01\x05\x04test".to_vec(),
                    ..OkInfo::default()
                },
                CAPS | CLIENT_SESSION_TRACK,
            ),
            (
                OkInfo {
                    info: "x".into(),
                    ..OkInfo::default()
                },
                CAPS | CLIENT_SESSION_TRACK,
            ),
            (
                OkInfo {
                    status: 2,
                    ..OkInfo::default()
                },
                CLIENT_TRANSACTIONS,
            ),
        ];
        for (ok, caps) in cases {
            for eof_form in [false, true] {
                let mut out = Vec::new();
                if eof_form {
                    ok_eof_packet(&mut out, &ok, caps);
                    assert_eq!(out[0], 0xfe);
                } else {
                    ok_packet(&mut out, &ok, caps);
                }
                assert_eq!(parse_ok(&out, caps).unwrap(), ok);
                for cut in 0..out.len() {
                    let r = parse_ok(&out[..cut], caps);
                    assert!(r.is_err() || r.unwrap() != ok, "{cut} {out:?}");
                }
            }
        }
        // The exact bytes of a plain OK: 00 00 00 02 00 00 00.
        let mut out = Vec::new();
        ok_packet(
            &mut out,
            &OkInfo {
                status: SERVER_STATUS_AUTOCOMMIT,
                ..OkInfo::default()
            },
            CAPS,
        );
        assert_eq!(out, [0, 0, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn ok_rejects() {
        assert_eq!(
            parse_ok(&[0xff, 0, 0], CAPS),
            Err(WireError::Unexpected {
                expected: "an OK packet",
                header: 0xff
            })
        );
        assert_eq!(
            parse_ok(&[0, 0, 0, 2, 0], CAPS),
            Err(WireError::Truncated {
                packet: "OK packet",
                field: "warning count"
            })
        );
        assert_eq!(
            parse_ok(&[0, 0xfb, 0, 2, 0, 0, 0], CAPS),
            Err(WireError::BadLenenc {
                packet: "OK packet",
                field: "affected rows",
                prefix: 0xfb
            })
        );
        assert_eq!(
            parse_ok(&[0, 0, 0, 2, 0, 0, 0, 5, b'a'], CAPS),
            Err(WireError::Overlong {
                packet: "OK packet",
                field: "info",
                len: 5,
                left: 1
            })
        );
        assert_eq!(
            parse_ok(&[0, 0, 0, 2, 0, 0, 0, 1, b'a', b'b'], CAPS),
            Err(WireError::Trailing {
                packet: "OK packet",
                after: "info",
                count: 1
            })
        );
    }

    #[test]
    fn err_round_trips() {
        let mut out = Vec::new();
        err_packet(
            &mut out,
            ER_ACCESS_DENIED_ERROR,
            SQLSTATE_ACCESS_DENIED,
            "Access denied for user 'app'@'10.0.0.1'",
        );
        assert_eq!(&out[..9], b"\xff\x15\x04#28000");
        let e = parse_err(&out).unwrap();
        assert_eq!(
            e,
            ErrInfo {
                code: 1045,
                sqlstate: Some("28000".into()),
                message: "Access denied for user 'app'@'10.0.0.1'".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "ERROR 1045 (28000): Access denied for user 'app'@'10.0.0.1'"
        );
        // Every cut before the message ends is refused precisely.
        assert_eq!(
            parse_err(&out[..2]),
            Err(WireError::Truncated {
                packet: "ERR packet",
                field: "error code"
            })
        );
        for cut in 4..9 {
            assert_eq!(
                parse_err(&out[..cut]),
                Err(WireError::Truncated {
                    packet: "ERR packet",
                    field: "SQLSTATE"
                })
            );
        }
        // Without a SQLSTATE (errors sent before the handshake).
        let e = parse_err(b"\xff\x10\x04Too many connections").unwrap();
        assert_eq!(
            (e.code, e.sqlstate, e.message.as_str()),
            (1040, None, "Too many connections")
        );
        assert!(matches!(
            parse_err(b"\x00"),
            Err(WireError::Unexpected { header: 0, .. })
        ));
        assert!(parse_err(b"").is_err());
    }

    #[test]
    fn eof_round_trips() {
        let mut out = Vec::new();
        eof_packet(&mut out, 1, SERVER_MORE_RESULTS_EXISTS);
        assert_eq!(out, [0xfe, 1, 0, 8, 0]);
        assert_eq!(
            parse_eof(&out).unwrap(),
            EofInfo {
                warnings: 1,
                status: 8
            }
        );
        for cut in 0..out.len() {
            assert!(matches!(
                parse_eof(&out[..cut]),
                Err(WireError::Truncated { .. })
            ));
        }
        assert!(matches!(
            parse_eof(&[0xfe, 0, 0, 2, 0, 0, 0]),
            Err(WireError::Trailing { count: 2, .. })
        ));
        assert!(is_eof_or_ok_terminator(&out));
        assert!(!is_eof_or_ok_terminator(&[0x00]));
        let row = vec![0xfe; crate::MAX_PACKET_PAYLOAD];
        assert!(!is_eof_or_ok_terminator(&row));
    }

    #[test]
    fn column_definitions_round_trip() {
        let c = ColumnDefinition {
            catalog: b"def",
            schema: b"shop",
            table: b"o",
            org_table: b"orders",
            name: b"id",
            org_name: b"id",
            extended: b"",
            charset: 63,
            column_length: 20,
            column_type: MYSQL_TYPE_LONGLONG,
            flags: 0x4203,
            decimals: 0,
            default_value: None,
        };
        for (caps, c) in [
            (CAPS, c.clone()),
            (
                CAPS | MARIADB_CLIENT_EXTENDED_METADATA,
                ColumnDefinition {
                    extended: b"\x00\x04json",
                    ..c.clone()
                },
            ),
            (
                CAPS,
                ColumnDefinition {
                    default_value: Some(b"0"),
                    ..c.clone()
                },
            ),
        ] {
            let mut out = Vec::new();
            column_definition(&mut out, &c, caps);
            assert_eq!(parse_column_definition(&out, caps).unwrap(), c);
            for cut in 0..out.len() {
                let r = parse_column_definition(&out[..cut], caps);
                assert!(r.is_err() || r.unwrap() != c);
            }
        }
        let mut out = Vec::new();
        column_definition(&mut out, &c, CAPS);
        let at = out.iter().position(|&b| b == 0x0c).unwrap();
        out[at] = 0x0b;
        assert_eq!(
            parse_column_definition(&out, CAPS),
            Err(WireError::Invalid {
                packet: "column definition",
                reason: "the fixed fields are not 12 bytes long"
            })
        );
    }

    #[test]
    fn prepare_ok_round_trips() {
        let p = PrepareOk {
            statement_id: 7,
            num_columns: 3,
            num_params: 2,
            warnings: 1,
            metadata_follows: true,
        };
        for caps in [CAPS, CAPS | CLIENT_OPTIONAL_RESULTSET_METADATA] {
            let mut out = Vec::new();
            prepare_ok(&mut out, &p, caps);
            assert_eq!(parse_prepare_ok(&out, caps).unwrap(), p);
            for cut in 0..12 {
                assert!(matches!(
                    parse_prepare_ok(&out[..cut], caps),
                    Err(WireError::Truncated { .. })
                ));
            }
        }
        let mut out = Vec::new();
        prepare_ok(&mut out, &p, CAPS);
        assert_eq!(out, [0, 7, 0, 0, 0, 3, 0, 2, 0, 0, 1, 0]);
    }

    #[test]
    fn column_counts() {
        for caps in [CAPS, CAPS | MARIADB_CLIENT_CACHE_METADATA] {
            for count in [
                ColumnCount {
                    columns: 3,
                    metadata_follows: true,
                },
                ColumnCount {
                    columns: 300,
                    metadata_follows: caps == CAPS,
                },
            ] {
                let mut out = Vec::new();
                column_count(&mut out, count, caps);
                assert_eq!(parse_column_count(&out, caps).unwrap(), count);
            }
        }
        assert!(matches!(
            parse_column_count(&[0xfc, 0, 0], CAPS),
            Err(WireError::Invalid { .. })
        ));
        assert!(matches!(
            parse_column_count(&[1, 2], CAPS | MARIADB_CLIENT_CACHE_METADATA),
            Err(WireError::Invalid { .. })
        ));
    }

    #[test]
    fn local_infile() {
        let mut out = Vec::new();
        local_infile_request(&mut out, b"/etc/passwd");
        assert_eq!(parse_local_infile(&out).unwrap(), b"/etc/passwd");
        assert!(parse_local_infile(b"").is_err());
        assert!(parse_local_infile(b"\x00").is_err());
    }
}
