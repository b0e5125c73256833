//! Client commands, parsed as far as a proxy needs: the SQL of
//! `COM_QUERY` and `COM_STMT_PREPARE`, statement ids, `COM_CHANGE_USER`'s
//! fields. Everything else is kept raw.

use crate::WireError;
use crate::codec::{Reader, write_lenenc_bytes, write_lenenc_int, write_nul_bytes};
use crate::consts::*;
use crate::handshake::{Attrs, parse_attrs, write_attrs};

/// A query attribute (MySQL 8.0.23+, `CLIENT_QUERY_ATTRIBUTES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAttribute<'a> {
    pub name: &'a [u8],
    /// Field type in the low byte, 0x80 in the high byte for unsigned.
    pub type_and_flag: u16,
    /// The value in the binary protocol's encoding, as on the wire
    /// (length prefix included for strings); `None` for NULL.
    pub value: Option<&'a [u8]>,
}

/// `COM_CHANGE_USER`'s fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeUser<'a> {
    pub user: &'a str,
    pub auth_response: &'a [u8],
    pub schema: &'a str,
    /// Sent by every 4.1+ client, but optional on the wire.
    pub charset: Option<u16>,
    pub auth_plugin: Option<&'a str>,
    pub attrs: Attrs<'a>,
}

/// A client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Quit,
    InitDb {
        schema: &'a [u8],
    },
    Query {
        sql: &'a [u8],
        /// Empty unless `CLIENT_QUERY_ATTRIBUTES` was negotiated and the
        /// client sent some.
        attributes: Vec<QueryAttribute<'a>>,
    },
    FieldList {
        table: &'a [u8],
        wildcard: &'a [u8],
    },
    Statistics,
    Debug,
    Ping,
    ResetConnection,
    ProcessKill {
        connection_id: u32,
    },
    ChangeUser(ChangeUser<'a>),
    StmtPrepare {
        sql: &'a [u8],
    },
    StmtExecute {
        statement_id: u32,
        /// Cursor type and (MySQL 8) parameter-count-available flags.
        flags: u8,
        iteration_count: u32,
        /// Null bitmap, types and values: their layout needs the
        /// parameter count from the prepare reply.
        params: &'a [u8],
    },
    StmtSendLongData {
        statement_id: u32,
        param_id: u16,
        data: &'a [u8],
    },
    StmtClose {
        statement_id: u32,
    },
    StmtReset {
        statement_id: u32,
    },
    StmtFetch {
        statement_id: u32,
        rows: u32,
    },
    SetOption {
        option: u16,
    },
    BinlogDump {
        position: u32,
        flags: u16,
        server_id: u32,
        filename: &'a [u8],
    },
    /// Any other command, with its body.
    Other {
        code: u8,
        body: &'a [u8],
    },
}

impl Command<'_> {
    /// The command byte.
    pub fn code(&self) -> u8 {
        match self {
            Command::Quit => COM_QUIT,
            Command::InitDb { .. } => COM_INIT_DB,
            Command::Query { .. } => COM_QUERY,
            Command::FieldList { .. } => COM_FIELD_LIST,
            Command::Statistics => COM_STATISTICS,
            Command::Debug => COM_DEBUG,
            Command::Ping => COM_PING,
            Command::ResetConnection => COM_RESET_CONNECTION,
            Command::ProcessKill { .. } => COM_PROCESS_KILL,
            Command::ChangeUser(_) => COM_CHANGE_USER,
            Command::StmtPrepare { .. } => COM_STMT_PREPARE,
            Command::StmtExecute { .. } => COM_STMT_EXECUTE,
            Command::StmtSendLongData { .. } => COM_STMT_SEND_LONG_DATA,
            Command::StmtClose { .. } => COM_STMT_CLOSE,
            Command::StmtReset { .. } => COM_STMT_RESET,
            Command::StmtFetch { .. } => COM_STMT_FETCH,
            Command::SetOption { .. } => COM_SET_OPTION,
            Command::BinlogDump { .. } => COM_BINLOG_DUMP,
            Command::Other { code, .. } => *code,
        }
    }

    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        command_name(self.code())
    }

    /// The SQL of `COM_QUERY` or `COM_STMT_PREPARE`.
    pub fn sql(&self) -> Option<&[u8]> {
        match self {
            Command::Query { sql, .. } | Command::StmtPrepare { sql } => Some(sql),
            _ => None,
        }
    }

    /// The statement id of the `COM_STMT_*` commands that name one.
    pub fn statement_id(&self) -> Option<u32> {
        match self {
            Command::StmtExecute { statement_id, .. }
            | Command::StmtSendLongData { statement_id, .. }
            | Command::StmtClose { statement_id }
            | Command::StmtReset { statement_id }
            | Command::StmtFetch { statement_id, .. } => Some(*statement_id),
            _ => None,
        }
    }

    /// Writes the command's payload. `caps` are the negotiated
    /// capabilities (query attributes, change-user fields).
    pub fn write(&self, out: &mut Vec<u8>, caps: u64) -> Result<(), WireError> {
        let start = out.len();
        let r = self.write_inner(out, caps);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn write_inner(&self, out: &mut Vec<u8>, caps: u64) -> Result<(), WireError> {
        out.push(self.code());
        match self {
            Command::Quit
            | Command::Statistics
            | Command::Debug
            | Command::Ping
            | Command::ResetConnection => {}
            Command::InitDb { schema } => out.extend_from_slice(schema),
            Command::Query { sql, attributes } => {
                if caps & CLIENT_QUERY_ATTRIBUTES != 0 {
                    write_query_attributes(out, attributes)?;
                } else if !attributes.is_empty() {
                    return Err(WireError::Unencodable {
                        what: "COM_QUERY",
                        reason: "attributes need CLIENT_QUERY_ATTRIBUTES",
                    });
                }
                out.extend_from_slice(sql);
            }
            Command::FieldList { table, wildcard } => {
                write_nul_bytes(out, table)?;
                out.extend_from_slice(wildcard);
            }
            Command::ProcessKill { connection_id } => {
                out.extend_from_slice(&connection_id.to_le_bytes());
            }
            Command::ChangeUser(c) => write_change_user(out, c, caps)?,
            Command::StmtPrepare { sql } => out.extend_from_slice(sql),
            Command::StmtExecute {
                statement_id,
                flags,
                iteration_count,
                params,
            } => {
                out.extend_from_slice(&statement_id.to_le_bytes());
                out.push(*flags);
                out.extend_from_slice(&iteration_count.to_le_bytes());
                out.extend_from_slice(params);
            }
            Command::StmtSendLongData {
                statement_id,
                param_id,
                data,
            } => {
                out.extend_from_slice(&statement_id.to_le_bytes());
                out.extend_from_slice(&param_id.to_le_bytes());
                out.extend_from_slice(data);
            }
            Command::StmtClose { statement_id } | Command::StmtReset { statement_id } => {
                out.extend_from_slice(&statement_id.to_le_bytes());
            }
            Command::StmtFetch { statement_id, rows } => {
                out.extend_from_slice(&statement_id.to_le_bytes());
                out.extend_from_slice(&rows.to_le_bytes());
            }
            Command::SetOption { option } => out.extend_from_slice(&option.to_le_bytes()),
            Command::BinlogDump {
                position,
                flags,
                server_id,
                filename,
            } => {
                out.extend_from_slice(&position.to_le_bytes());
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&server_id.to_le_bytes());
                out.extend_from_slice(filename);
            }
            Command::Other { body, .. } => out.extend_from_slice(body),
        }
        Ok(())
    }
}

/// Parses a client command payload under the negotiated capabilities.
pub fn parse_command(payload: &[u8], caps: u64) -> Result<Command<'_>, WireError> {
    let Some((&code, body)) = payload.split_first() else {
        return Err(WireError::Truncated {
            packet: "command",
            field: "command byte",
        });
    };
    let fixed = |name: &'static str, len: usize| -> Result<Reader<'_>, WireError> {
        if body.len() < len {
            return Err(WireError::Truncated {
                packet: name,
                field: "body",
            });
        }
        if body.len() > len {
            return Err(WireError::Trailing {
                packet: name,
                after: "body",
                count: body.len() - len,
            });
        }
        Ok(Reader::new(body, name))
    };
    Ok(match code {
        COM_QUIT => {
            fixed("COM_QUIT", 0)?;
            Command::Quit
        }
        COM_PING => {
            fixed("COM_PING", 0)?;
            Command::Ping
        }
        COM_STATISTICS => {
            fixed("COM_STATISTICS", 0)?;
            Command::Statistics
        }
        COM_DEBUG => {
            fixed("COM_DEBUG", 0)?;
            Command::Debug
        }
        COM_RESET_CONNECTION => {
            fixed("COM_RESET_CONNECTION", 0)?;
            Command::ResetConnection
        }
        COM_INIT_DB => Command::InitDb { schema: body },
        COM_QUERY => {
            let mut r = Reader::new(body, "COM_QUERY");
            let attributes = if caps & CLIENT_QUERY_ATTRIBUTES != 0 {
                parse_query_attributes(&mut r)?
            } else {
                Vec::new()
            };
            Command::Query {
                sql: r.rest(),
                attributes,
            }
        }
        COM_STMT_PREPARE => Command::StmtPrepare { sql: body },
        COM_FIELD_LIST => {
            let mut r = Reader::new(body, "COM_FIELD_LIST");
            let table = r.nul_bytes("table")?;
            Command::FieldList {
                table,
                wildcard: r.rest(),
            }
        }
        COM_PROCESS_KILL => Command::ProcessKill {
            connection_id: fixed("COM_PROCESS_KILL", 4)?.u32("connection id")?,
        },
        COM_CHANGE_USER => Command::ChangeUser(parse_change_user(body, caps)?),
        COM_STMT_EXECUTE => {
            let mut r = Reader::new(body, "COM_STMT_EXECUTE");
            Command::StmtExecute {
                statement_id: r.u32("statement id")?,
                flags: r.u8("flags")?,
                iteration_count: r.u32("iteration count")?,
                params: r.rest(),
            }
        }
        COM_STMT_SEND_LONG_DATA => {
            let mut r = Reader::new(body, "COM_STMT_SEND_LONG_DATA");
            Command::StmtSendLongData {
                statement_id: r.u32("statement id")?,
                param_id: r.u16("parameter id")?,
                data: r.rest(),
            }
        }
        COM_STMT_CLOSE => Command::StmtClose {
            statement_id: fixed("COM_STMT_CLOSE", 4)?.u32("statement id")?,
        },
        COM_STMT_RESET => Command::StmtReset {
            statement_id: fixed("COM_STMT_RESET", 4)?.u32("statement id")?,
        },
        COM_STMT_FETCH => {
            let mut r = fixed("COM_STMT_FETCH", 8)?;
            Command::StmtFetch {
                statement_id: r.u32("statement id")?,
                rows: r.u32("row count")?,
            }
        }
        COM_SET_OPTION => Command::SetOption {
            option: fixed("COM_SET_OPTION", 2)?.u16("option")?,
        },
        COM_BINLOG_DUMP => {
            let mut r = Reader::new(body, "COM_BINLOG_DUMP");
            Command::BinlogDump {
                position: r.u32("binlog position")?,
                flags: r.u16("flags")?,
                server_id: r.u32("server id")?,
                filename: r.rest(),
            }
        }
        code => Command::Other { code, body },
    })
}

/// The binary-protocol value of field type `t` at the start of `r`, as
/// encoded. Types that never appear as parameters are refused.
fn binary_value<'a>(r: &mut Reader<'a>, t: u8) -> Result<&'a [u8], WireError> {
    let mut probe = *r;
    let len = match t {
        MYSQL_TYPE_NULL => 0,
        MYSQL_TYPE_TINY => 1,
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => 2,
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 | MYSQL_TYPE_FLOAT => 4,
        MYSQL_TYPE_LONGLONG | MYSQL_TYPE_DOUBLE => 8,
        MYSQL_TYPE_TIMESTAMP
        | MYSQL_TYPE_DATE
        | MYSQL_TYPE_TIME
        | MYSQL_TYPE_DATETIME
        | MYSQL_TYPE_NEWDATE
        | MYSQL_TYPE_TIMESTAMP2
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIME2 => 1 + usize::from(probe.u8("parameter value")?),
        MYSQL_TYPE_DECIMAL
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_BIT
        | MYSQL_TYPE_VECTOR
        | MYSQL_TYPE_JSON..=MYSQL_TYPE_GEOMETRY => {
            let before = probe.remaining();
            probe.lenenc_bytes("parameter value")?;
            before - probe.remaining()
        }
        _ => return Err(r.invalid("a parameter of unknown type")),
    };
    r.take(len, "parameter value")
}

fn parse_query_attributes<'a>(r: &mut Reader<'a>) -> Result<Vec<QueryAttribute<'a>>, WireError> {
    let count = r.lenenc_int("parameter count")?;
    let sets = r.lenenc_int("parameter set count")?;
    if sets != 1 {
        return Err(r.invalid("parameter set count is not 1"));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    // Each attribute takes at least 3 bytes (type, empty name); refuse
    // counts the packet cannot hold before allocating for them.
    let count = match usize::try_from(count) {
        Ok(n) if n <= r.remaining() / 3 => n,
        _ => return Err(r.invalid("more attributes than the packet can hold")),
    };
    let bitmap = r.take(count.div_ceil(8), "null bitmap")?;
    if r.u8("new-params-bound flag")? != 1 {
        return Err(r.invalid("attributes without their types"));
    }
    let mut attrs = Vec::with_capacity(count);
    for _ in 0..count {
        let type_and_flag = r.u16("parameter type")?;
        let name = r.lenenc_bytes("parameter name")?;
        attrs.push(QueryAttribute {
            name,
            type_and_flag,
            value: None,
        });
    }
    for (i, a) in attrs.iter_mut().enumerate() {
        if bitmap[i / 8] & (1 << (i % 8)) == 0 {
            a.value = Some(binary_value(r, a.type_and_flag as u8)?);
        }
    }
    Ok(attrs)
}

fn write_query_attributes(
    out: &mut Vec<u8>,
    attrs: &[QueryAttribute<'_>],
) -> Result<(), WireError> {
    write_lenenc_int(out, attrs.len() as u64);
    write_lenenc_int(out, 1);
    if attrs.is_empty() {
        return Ok(());
    }
    let mut bitmap = vec![0u8; attrs.len().div_ceil(8)];
    for (i, a) in attrs.iter().enumerate() {
        if a.value.is_none() {
            bitmap[i / 8] |= 1 << (i % 8);
        }
    }
    out.extend_from_slice(&bitmap);
    out.push(1);
    for a in attrs {
        out.extend_from_slice(&a.type_and_flag.to_le_bytes());
        write_lenenc_bytes(out, a.name);
    }
    for a in attrs {
        if let Some(v) = a.value {
            // The value must be exactly one encoded value of its type.
            let mut r = Reader::new(v, "query attribute");
            let one = binary_value(&mut r, a.type_and_flag as u8)?;
            if one.len() != v.len() {
                return Err(WireError::Unencodable {
                    what: "query attribute",
                    reason: "the value is not one encoded value of its type",
                });
            }
            out.extend_from_slice(v);
        }
    }
    Ok(())
}

fn parse_change_user(body: &[u8], caps: u64) -> Result<ChangeUser<'_>, WireError> {
    let mut r = Reader::new(body, "COM_CHANGE_USER");
    let user = r.nul_str("user")?;
    // Always a one-byte length here, even with the lenenc capability.
    let auth_response = if caps & CLIENT_SECURE_CONNECTION != 0 {
        r.u8_bytes("auth response")?
    } else {
        r.nul_bytes("auth response")?
    };
    let schema = r.nul_str("schema")?;
    let mut c = ChangeUser {
        user,
        auth_response,
        schema,
        charset: None,
        auth_plugin: None,
        attrs: Vec::new(),
    };
    if r.is_empty() {
        return Ok(c);
    }
    c.charset = Some(r.u16("character set")?);
    if caps & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        c.auth_plugin = Some(r.nul_str("auth plugin name")?);
    }
    if caps & CLIENT_CONNECT_ATTRS != 0 && !r.is_empty() {
        c.attrs = parse_attrs(&mut r)?;
    }
    r.finish("last field")?;
    Ok(c)
}

fn write_change_user(out: &mut Vec<u8>, c: &ChangeUser<'_>, caps: u64) -> Result<(), WireError> {
    let bad = |reason| WireError::Unencodable {
        what: "COM_CHANGE_USER",
        reason,
    };
    write_nul_bytes(out, c.user.as_bytes())?;
    if caps & CLIENT_SECURE_CONNECTION != 0 {
        let n = u8::try_from(c.auth_response.len())
            .map_err(|_| bad("an auth response over 255 bytes (use an auth switch)"))?;
        out.push(n);
        out.extend_from_slice(c.auth_response);
    } else {
        write_nul_bytes(out, c.auth_response)?;
    }
    write_nul_bytes(out, c.schema.as_bytes())?;
    let later = c.auth_plugin.is_some() || !c.attrs.is_empty();
    match c.charset {
        Some(cs) => out.extend_from_slice(&cs.to_le_bytes()),
        None if later => return Err(bad("a plugin name or attributes need a charset")),
        None => return Ok(()),
    }
    if let Some(p) = c.auth_plugin {
        if caps & CLIENT_PLUGIN_AUTH == 0 {
            return Err(bad("a plugin name needs CLIENT_PLUGIN_AUTH"));
        }
        write_nul_bytes(out, p.as_bytes())?;
    } else if !c.attrs.is_empty() && caps & CLIENT_PLUGIN_AUTH != 0 {
        return Err(bad("attributes after a missing plugin name"));
    }
    if !c.attrs.is_empty() {
        if caps & CLIENT_CONNECT_ATTRS == 0 {
            return Err(bad("attributes need CLIENT_CONNECT_ATTRS"));
        }
        write_attrs(out, &c.attrs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: u64 = CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_CONNECT_ATTRS
        | CLIENT_TRANSACTIONS;

    fn round_trip(c: &Command<'_>, caps: u64) -> Vec<u8> {
        let mut out = Vec::new();
        c.write(&mut out, caps).unwrap();
        assert_eq!(&parse_command(&out, caps).unwrap(), c);
        out
    }

    #[test]
    fn simple_commands_round_trip() {
        let cu = ChangeUser {
            user: "bob",
            auth_response: &[7; 20],
            schema: "shop",
            charset: Some(45),
            auth_plugin: Some(MYSQL_NATIVE_PASSWORD),
            attrs: vec![("_os".into(), "Linux".into())],
        };
        let commands = [
            Command::Quit,
            Command::Ping,
            Command::Statistics,
            Command::Debug,
            Command::ResetConnection,
            Command::InitDb { schema: b"shop" },
            Command::Query {
                sql: b"SELECT 1",
                attributes: vec![],
            },
            Command::Query {
                sql: b"",
                attributes: vec![],
            },
            Command::StmtPrepare { sql: b"SELECT ?" },
            Command::FieldList {
                table: b"orders",
                wildcard: b"id%",
            },
            Command::ProcessKill { connection_id: 77 },
            Command::StmtExecute {
                statement_id: 3,
                flags: 1,
                iteration_count: 1,
                params: b"\x00\x01\x08\x00\x05\x00\x00\x00\x00\x00\x00\x00",
            },
            Command::StmtSendLongData {
                statement_id: 3,
                param_id: 1,
                data: b"blob",
            },
            Command::StmtClose { statement_id: 9 },
            Command::StmtReset { statement_id: 9 },
            Command::StmtFetch {
                statement_id: 9,
                rows: 100,
            },
            Command::SetOption { option: 1 },
            Command::BinlogDump {
                position: 4,
                flags: 0,
                server_id: 2,
                filename: b"binlog.000001",
            },
            Command::Other {
                code: COM_REGISTER_SLAVE,
                body: b"xyz",
            },
            Command::ChangeUser(cu.clone()),
            Command::ChangeUser(ChangeUser {
                charset: None,
                auth_plugin: None,
                attrs: vec![],
                ..cu.clone()
            }),
            Command::ChangeUser(ChangeUser {
                attrs: vec![],
                ..cu.clone()
            }),
        ];
        for c in &commands {
            let out = round_trip(c, CAPS);
            assert_eq!(out[0], c.code());
            assert_ne!(c.name(), "COM_UNKNOWN", "{c:?}");
        }
        assert_eq!(commands[6].sql(), Some(&b"SELECT 1"[..]));
        assert_eq!(commands[8].sql(), Some(&b"SELECT ?"[..]));
        assert_eq!(commands[11].statement_id(), Some(3));
        assert_eq!(commands[13].statement_id(), Some(9));
        assert_eq!(commands[0].statement_id(), None);
        // Exact bytes.
        let mut out = Vec::new();
        Command::StmtClose {
            statement_id: 0x0102_0304,
        }
        .write(&mut out, CAPS)
        .unwrap();
        assert_eq!(out, [0x19, 4, 3, 2, 1]);
    }

    #[test]
    fn fixed_size_commands_are_exact() {
        for (code, len) in [
            (COM_STMT_CLOSE, 4),
            (COM_STMT_RESET, 4),
            (COM_PROCESS_KILL, 4),
            (COM_STMT_FETCH, 8),
            (COM_SET_OPTION, 2),
            (COM_PING, 0),
            (COM_QUIT, 0),
        ] {
            let mut p = vec![code];
            p.resize(len + 1, 1);
            assert!(parse_command(&p, CAPS).is_ok());
            for cut in 1..p.len() {
                assert!(
                    matches!(
                        parse_command(&p[..cut], CAPS),
                        Err(WireError::Truncated { field: "body", .. })
                    ),
                    "{code} {cut}"
                );
            }
            p.push(0);
            assert!(matches!(
                parse_command(&p, CAPS),
                Err(WireError::Trailing { count: 1, .. })
            ));
        }
        assert!(parse_command(&[], CAPS).is_err());
        for cut in 1..10 {
            assert!(matches!(
                parse_command(&b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00"[..cut], CAPS),
                Err(WireError::Truncated {
                    packet: "COM_STMT_EXECUTE",
                    ..
                })
            ));
        }
    }

    #[test]
    fn change_user_rejects() {
        let c = Command::ChangeUser(ChangeUser {
            user: "bob",
            auth_response: b"x",
            schema: "s",
            charset: Some(33),
            auth_plugin: Some("p"),
            attrs: vec![("k".into(), "v".into())],
        });
        let mut out = Vec::new();
        c.write(&mut out, CAPS).unwrap();
        // Every cut fails or gives fewer fields.
        for cut in 1..out.len() {
            if let Ok(p) = parse_command(&out[..cut], CAPS) {
                assert_ne!(p, c, "{cut}");
            }
        }
        // One stray byte where the charset goes.
        let p = b"\x11bob\0\x00s\0\x21";
        assert_eq!(
            parse_command(p, CAPS),
            Err(WireError::Truncated {
                packet: "COM_CHANGE_USER",
                field: "character set"
            })
        );
        // The auth length overruns.
        assert!(matches!(
            parse_command(b"\x11bob\0\x09ab", CAPS),
            Err(WireError::Overlong {
                field: "auth response",
                len: 9,
                left: 2,
                ..
            })
        ));
        // Over 255 bytes cannot be written.
        let long = [1u8; 256];
        let c = Command::ChangeUser(ChangeUser {
            user: "bob",
            auth_response: &long,
            schema: "",
            charset: None,
            auth_plugin: None,
            attrs: vec![],
        });
        let mut out = vec![9];
        assert!(c.write(&mut out, CAPS).is_err());
        assert_eq!(out, [9]);
    }

    #[test]
    fn query_attributes() {
        let caps = CAPS | CLIENT_QUERY_ATTRIBUTES;
        // No attributes: two zero-ish lenencs then the SQL.
        let out = round_trip(
            &Command::Query {
                sql: b"SELECT 1",
                attributes: vec![],
            },
            caps,
        );
        assert_eq!(out, b"\x03\x00\x01SELECT 1");
        let attrs = vec![
            QueryAttribute {
                name: b"trace_id",
                type_and_flag: u16::from(MYSQL_TYPE_VAR_STRING),
                value: Some(b"\x03abc"),
            },
            QueryAttribute {
                name: b"n",
                type_and_flag: u16::from(MYSQL_TYPE_LONGLONG) | 0x8000,
                value: Some(&[1, 0, 0, 0, 0, 0, 0, 0]),
            },
            QueryAttribute {
                name: b"gone",
                type_and_flag: u16::from(MYSQL_TYPE_NULL),
                value: None,
            },
            QueryAttribute {
                name: b"when",
                type_and_flag: u16::from(MYSQL_TYPE_DATETIME),
                value: Some(&[4, 0xe8, 0x07, 1, 2]),
            },
        ];
        let q = Command::Query {
            sql: b"SELECT * FROM t",
            attributes: attrs.clone(),
        };
        let out = round_trip(&q, caps);
        // count 4, one set, bitmap 0b0100, bound flag 1.
        assert_eq!(&out[..5], [3, 4, 1, 0b0100, 1]);
        assert!(out.ends_with(b"SELECT * FROM t"));
        // Cuts inside the attributes fail; cuts in the SQL shorten it.
        let sql_at = out.len() - 15;
        for cut in 1..sql_at {
            assert!(parse_command(&out[..cut], caps).is_err(), "{cut}");
        }
        // Without the capability the same bytes are all SQL.
        let Command::Query { sql, attributes } = parse_command(&out, CAPS).unwrap() else {
            panic!()
        };
        assert_eq!((sql, attributes.len()), (&out[1..], 0));
        // A count the packet cannot hold, a bad set count, an unknown type.
        assert!(matches!(
            parse_command(b"\x03\xfc\xff\xff\x01", caps),
            Err(WireError::Invalid {
                reason: "more attributes than the packet can hold",
                ..
            })
        ));
        assert!(matches!(
            parse_command(b"\x03\x00\x02", caps),
            Err(WireError::Invalid {
                reason: "parameter set count is not 1",
                ..
            })
        ));
        assert!(matches!(
            parse_command(b"\x03\x01\x01\x00\x01\x14\x00\x01aSELECT", caps),
            Err(WireError::Invalid {
                reason: "a parameter of unknown type",
                ..
            })
        ));
        assert!(matches!(
            parse_command(b"\x03\x01\x01\x00\x00\x14\x00\x01aSELECT", caps),
            Err(WireError::Invalid {
                reason: "attributes without their types",
                ..
            })
        ));
        // A value must be exactly one encoded value.
        let bad = Command::Query {
            sql: b"",
            attributes: vec![QueryAttribute {
                name: b"x",
                type_and_flag: u16::from(MYSQL_TYPE_TINY),
                value: Some(&[1, 2]),
            }],
        };
        assert!(bad.write(&mut Vec::new(), caps).is_err());
        assert!(
            Command::Query {
                sql: b"",
                attributes: attrs
            }
            .write(&mut Vec::new(), CAPS)
            .is_err()
        );
    }
}
