//! Property tests: random bytes never panic a parser, and what the
//! builders write parses back, for generated values.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::borrow::Cow;

use latchkey_mywire::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// One result of a generated multi-result response.
#[derive(Debug, Clone)]
enum Gen {
    /// An OK with this many affected rows.
    Ok(u64),
    /// A result set: column count and rows of values (NULL as `None`).
    Rows(u64, Vec<Vec<Option<Vec<u8>>>>),
}

const CLIENT: u64 = CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
    | CLIENT_TRANSACTIONS
    | CLIENT_MULTI_RESULTS
    | CLIENT_MULTI_STATEMENTS;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(b in vec(any::<u8>(), 0..400)) {
        fuzz_all(&b);
    }

    /// Random payloads with a plausible first byte, framed: the trackers
    /// and parsers get past the framing and the header checks.
    #[test]
    fn framed_random_payloads_never_panic(
        payloads in vec(
            (prop::sample::select(vec![0x00u8, 0x01, 0x03, 0x0a, 0xfb, 0xfc, 0xfe, 0xff]),
             vec(any::<u8>(), 0..48)),
            0..10,
        )
    ) {
        let mut framed = Vec::new();
        let mut chunked = Vec::new();
        for (i, (head, body)) in payloads.iter().enumerate() {
            let mut p = vec![*head];
            p.extend_from_slice(body);
            split_payload(&mut framed, i as u8, &p);
            chunked.push(p.len() as u8);
            chunked.extend_from_slice(&p);
        }
        fuzz_all(&framed);
        fuzz_all(&chunked);
    }

    #[test]
    fn lenenc_round_trips(v in any::<u64>(), s in vec(any::<u8>(), 0..300), tail in vec(any::<u8>(), 0..4)) {
        let mut out = Vec::new();
        write_lenenc_int(&mut out, v);
        prop_assert_eq!(out.len(), lenenc_int_len(v));
        out.extend_from_slice(&tail);
        prop_assert_eq!(read_lenenc_int(&out).unwrap(), (v, &tail[..]));
        let mut out = Vec::new();
        write_lenenc_bytes(&mut out, &s);
        let n = out.len();
        out.extend_from_slice(&tail);
        prop_assert_eq!(read_lenenc_bytes(&out).unwrap(), (&s[..], &tail[..]));
        // Cut anywhere inside: refused.
        for cut in 0..n {
            prop_assert!(read_lenenc_bytes(&out[..cut]).is_err());
        }
    }

    #[test]
    fn split_payloads_reassemble(len in 0usize..4096, seq in any::<u8>(), max in 0usize..5000) {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut out = Vec::new();
        let next = split_payload(&mut out, seq, &payload);
        prop_assert_eq!(next, seq.wrapping_add(1));
        match next_payload(&out, max).unwrap() {
            Ok(p) => {
                prop_assert!(len <= max);
                prop_assert_eq!(p.data.as_ref(), &payload[..]);
                prop_assert_eq!(p.consumed, out.len());
            }
            Err(e) => {
                prop_assert!(len > max);
                prop_assert_eq!(e, WireError::TooLarge { len, max });
            }
        }
    }

    #[test]
    fn handshake_responses_round_trip(
        user in "[a-zA-Z0-9_@.-]{0,32}",
        auth in vec(any::<u8>(), 0..2500),
        db in option::of("[a-z_]{0,16}"),
        plugin in option::of(prop::sample::select(vec![MYSQL_CLEAR_PASSWORD, MYSQL_NATIVE_PASSWORD, CLIENT_ED25519])),
        attrs in option::of(vec(("[a-z_]{1,12}", "\\PC{0,16}"), 0..6)),
        lenenc in any::<bool>(),
        ext in any::<u32>(),
        charset in any::<u8>(),
        max_packet in any::<u32>(),
    ) {
        let mut caps = CLIENT | u64::from(ext) << 32;
        if lenenc { caps |= CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA; }
        if db.is_some() { caps |= CLIENT_CONNECT_WITH_DB; }
        if attrs.is_some() { caps |= CLIENT_CONNECT_ATTRS; }
        let plugin = if attrs.is_some() { Some(plugin.unwrap_or(MYSQL_CLEAR_PASSWORD)) } else { plugin };
        let h = HandshakeResponse {
            capabilities: caps,
            max_packet_size: max_packet,
            charset,
            username: &user,
            auth_response: &auth,
            database: db.as_deref(),
            auth_plugin: plugin,
            attrs: attrs
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
                .collect(),
            zstd_level: None,
        };
        let mut out = Vec::new();
        let r = handshake_response(&mut out, &h);
        if !lenenc && auth.len() > 255 {
            prop_assert!(r.is_err());
            prop_assert!(out.is_empty());
            return Ok(());
        }
        r.unwrap();
        let back = parse_handshake_response(&out).unwrap();
        let caps = if ext != 0 { caps & !CLIENT_MYSQL } else { caps };
        prop_assert_eq!(back, HandshakeResponse { capabilities: caps, ..h });
    }

    #[test]
    fn handshakes_round_trip(
        version in "[0-9A-Za-z.+-]{1,40}",
        id in any::<u32>(),
        scramble in vec(1u8..=255, 8..=64),
        ext in any::<u32>(),
        low in any::<u32>(),
        charset in any::<u8>(),
        status in any::<u16>(),
        plugin in "[a-z_0-9]{0,24}",
    ) {
        let caps = (u64::from(low) | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH)
            | u64::from(ext) << 32;
        let h = HandshakeV10 {
            server_version: version,
            connection_id: id,
            scramble,
            capabilities: caps,
            charset,
            status,
            auth_plugin: plugin,
        };
        let mut out = Vec::new();
        handshake_v10(&mut out, &h).unwrap();
        let caps = if ext != 0 { caps & !CLIENT_MYSQL } else { caps };
        prop_assert_eq!(parse_handshake_v10(&out).unwrap(), HandshakeV10 { capabilities: caps, ..h });
    }

    #[test]
    fn ok_packets_round_trip(
        affected in any::<u64>(),
        last_id in any::<u64>(),
        status in any::<u16>(),
        warnings in any::<u16>(),
        info in "\\PC{0,40}",
        state in vec(any::<u8>(), 0..40),
        track in any::<bool>(),
    ) {
        let caps = CLIENT | if track { CLIENT_SESSION_TRACK } else { 0 };
        let changed = track && status & SERVER_SESSION_STATE_CHANGED != 0;
        let ok = OkInfo {
            affected_rows: affected,
            last_insert_id: last_id,
            status,
            warnings,
            info,
            session_state: if changed { state } else { vec![] },
        };
        let mut out = Vec::new();
        ok_packet(&mut out, &ok, caps);
        prop_assert_eq!(parse_ok(&out, caps).unwrap(), ok.clone());
        let mut t = ResponseTracker::new(Expect::OkOrErr, caps);
        prop_assert_eq!(
            t.feed(&out).unwrap(),
            Progress::Complete { ok: Some(ok), err: None, prepared: None }
        );
    }

    #[test]
    fn queries_round_trip(sql in vec(any::<u8>(), 0..200), attrs in vec(("[a-z]{0,8}", option::of(vec(any::<u8>(), 0..300))), 0..4)) {
        let encoded: Vec<Option<Vec<u8>>> = attrs
            .iter()
            .map(|(_, v)| v.as_ref().map(|v| { let mut e = Vec::new(); write_lenenc_bytes(&mut e, v); e }))
            .collect();
        let attributes: Vec<QueryAttribute<'_>> = attrs
            .iter()
            .zip(&encoded)
            .map(|((name, _), v)| QueryAttribute {
                name: name.as_bytes(),
                type_and_flag: u16::from(MYSQL_TYPE_VAR_STRING),
                value: v.as_deref(),
            })
            .collect();
        let caps = CLIENT | CLIENT_QUERY_ATTRIBUTES;
        let q = Command::Query { sql: &sql, attributes };
        let mut out = Vec::new();
        q.write(&mut out, caps).unwrap();
        prop_assert_eq!(parse_command(&out, caps).unwrap(), q);
    }

    /// Generated result streams (OKs and result sets, text or binary,
    /// with or without DEPRECATE_EOF, optionally ending in an ERR) stay
    /// pending until their last packet, which completes them.
    #[test]
    fn generated_result_streams_complete_exactly_at_the_end(
        results in vec(
            prop_oneof![
                any::<u64>().prop_map(Gen::Ok),
                (1u64..5, vec(vec(option::of(vec(any::<u8>(), 0..300)), 1..3), 0..6))
                    .prop_map(|(c, r)| Gen::Rows(c, r)),
            ],
            1..5,
        ),
        deprecate in any::<bool>(),
        binary in any::<bool>(),
        end_with_err in any::<bool>(),
    ) {
        let caps = CLIENT | if deprecate { CLIENT_DEPRECATE_EOF } else { 0 };
        let mut packets = Vec::new();
        let mut rows = 0;
        let mut sets = 0;
        let n = results.len();
        for (i, r) in results.iter().enumerate() {
            let last = i + 1 == n && !end_with_err;
            let status = SERVER_STATUS_AUTOCOMMIT | if last { 0 } else { SERVER_MORE_RESULTS_EXISTS };
            let end = OkInfo { status, ..OkInfo::default() };
            match r {
                Gen::Ok(affected) => {
                    let mut p = Vec::new();
                    ok_packet(&mut p, &OkInfo { affected_rows: *affected, ..end }, caps);
                    packets.push(p);
                }
                Gen::Rows(columns, data) => {
                    sets += 1;
                    let mut p = Vec::new();
                    column_count(&mut p, ColumnCount { columns: *columns, metadata_follows: true }, caps);
                    packets.push(p);
                    for _ in 0..*columns {
                        let mut p = Vec::new();
                        column_definition(&mut p, &ColumnDefinition { catalog: b"def", name: b"c", ..Default::default() }, caps);
                        packets.push(p);
                    }
                    if !deprecate {
                        let mut p = Vec::new();
                        eof_packet(&mut p, 0, SERVER_STATUS_AUTOCOMMIT);
                        packets.push(p);
                    }
                    for row in data {
                        rows += 1;
                        let mut p = Vec::new();
                        if binary {
                            p.push(0);
                        }
                        for v in row {
                            match v {
                                Some(v) => write_lenenc_bytes(&mut p, v),
                                None if binary => {}
                                None => p.push(0xfb),
                            }
                        }
                        packets.push(p);
                    }
                    let mut p = Vec::new();
                    if deprecate {
                        ok_eof_packet(&mut p, &end, caps);
                    } else {
                        eof_packet(&mut p, 0, status);
                    }
                    packets.push(p);
                }
            }
        }
        if end_with_err {
            let mut p = Vec::new();
            err_packet(&mut p, 1317, b"70100", "Query execution was interrupted");
            packets.push(p);
        }
        let expect = if binary { Expect::BinaryResult } else { Expect::TextResult };
        let mut t = ResponseTracker::new(expect, caps);
        let (last, init) = packets.split_last().unwrap();
        for p in init {
            prop_assert_eq!(t.feed(p).unwrap(), Progress::Pending);
        }
        match t.feed(last).unwrap() {
            Progress::Complete { ok: Some(ok), err: None, prepared: None } => {
                prop_assert!(!end_with_err);
                prop_assert!(!ok.more_results());
            }
            Progress::Complete { ok: None, err: Some(e), prepared: None } => {
                prop_assert!(end_with_err);
                prop_assert_eq!(e.code, 1317);
            }
            other => prop_assert!(false, "{:?}", other),
        }
        prop_assert_eq!((t.rows(), t.result_sets()), (rows, sets));
        prop_assert!(t.is_complete());
    }
}

/// Valid messages of every kind the parsers take.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let mut out = Vec::new();
    handshake_v10(
        &mut out,
        &HandshakeV10 {
            server_version: "5.5.5-10.11.6-MariaDB".into(),
            connection_id: 9,
            scramble: b"abcdefgh12345678ABCD".to_vec(),
            capabilities: CLIENT | CLIENT_CONNECT_ATTRS | MARIADB_CLIENT_PROGRESS,
            charset: 45,
            status: 2,
            auth_plugin: MYSQL_NATIVE_PASSWORD.into(),
        },
    )
    .unwrap();
    seeds.push(std::mem::take(&mut out));
    handshake_response(
        &mut out,
        &HandshakeResponse {
            capabilities: CLIENT
                | CLIENT_CONNECT_WITH_DB
                | CLIENT_CONNECT_ATTRS
                | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
            max_packet_size: 1 << 24,
            charset: 45,
            username: "app",
            auth_response: b"token\0",
            database: Some("db"),
            auth_plugin: Some(MYSQL_CLEAR_PASSWORD),
            attrs: vec![("k".into(), "v".into())],
            zstd_level: None,
        },
    )
    .unwrap();
    seeds.push(std::mem::take(&mut out));
    ok_packet(
        &mut out,
        &OkInfo {
            affected_rows: 3,
            status: SERVER_SESSION_STATE_CHANGED,
            info: "i".into(),
            session_state: vec![1, 2],
            ..OkInfo::default()
        },
        u64::MAX,
    );
    seeds.push(std::mem::take(&mut out));
    column_definition(
        &mut out,
        &ColumnDefinition {
            catalog: b"def",
            name: b"id",
            extended: b"\x00\x04json",
            default_value: Some(b"0"),
            ..ColumnDefinition::default()
        },
        u64::MAX,
    );
    seeds.push(std::mem::take(&mut out));
    prepare_ok(
        &mut out,
        &PrepareOk {
            statement_id: 1,
            num_columns: 2,
            num_params: 1,
            warnings: 0,
            metadata_follows: true,
        },
        u64::MAX,
    );
    seeds.push(std::mem::take(&mut out));
    Command::Query {
        sql: b"SELECT 1",
        attributes: vec![QueryAttribute {
            name: b"a",
            type_and_flag: u16::from(MYSQL_TYPE_TINY),
            value: Some(&[1]),
        }],
    }
    .write(&mut out, u64::MAX)
    .unwrap();
    seeds.push(std::mem::take(&mut out));
    Command::ChangeUser(ChangeUser {
        user: "u",
        auth_response: b"x",
        schema: "s",
        charset: Some(45),
        auth_plugin: Some("p"),
        attrs: vec![("k".into(), "v".into())],
    })
    .write(&mut out, u64::MAX)
    .unwrap();
    seeds.push(out);
    seeds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Valid messages with a byte changed, inserted or removed: the
    /// round-trip checks inside `fuzz_all` get inputs that parse.
    #[test]
    fn mutated_messages_never_panic(which in 0usize..7, at in any::<prop::sample::Index>(), byte in any::<u8>(), op in 0u8..5) {
        let mut m = seeds()[which].clone();
        let i = at.index(m.len());
        match op {
            0 => m[i] = byte,
            1 => m.insert(i, byte),
            2 => { m.remove(i); }
            3 => m.truncate(i),
            _ => {}
        }
        fuzz_all(&m);
    }
}
