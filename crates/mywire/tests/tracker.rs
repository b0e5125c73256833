//! The response tracker, fed byte sequences written by hand from the
//! protocol documentation (MySQL's "Text Resultset" and
//! "COM_STMT_PREPARE Response" pages, MariaDB's "Result Set Packets").
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use latchkey_mywire::*;

const BASE: u64 = CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_TRANSACTIONS
    | CLIENT_MULTI_RESULTS
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_PS_MULTI_RESULTS;
const DEP: u64 = BASE | CLIENT_DEPRECATE_EOF;

/// Splits framed bytes into payloads (checking the sequence ids count up
/// from `first_seq`).
fn payloads(bytes: &[u8], first_seq: u8) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut seq = first_seq;
    while !rest.is_empty() {
        let p = next_payload(rest, 1 << 26).unwrap().unwrap();
        assert_eq!(p.first_seq, seq, "sequence ids");
        seq = p.last_seq.wrapping_add(1);
        out.push(p.data.into_owned());
        rest = &rest[p.consumed..];
    }
    out
}

/// Feeds every payload; all but the last must leave the response
/// pending, and the last must complete it. Returns the completion.
fn run(expect: Expect, caps: u64, packets: &[Vec<u8>]) -> (Progress, ResponseTracker) {
    let mut t = ResponseTracker::new(expect, caps);
    let (last, init) = packets.split_last().unwrap();
    for (i, p) in init.iter().enumerate() {
        let got = t.feed(p).unwrap_or_else(|e| panic!("packet {i}: {e}"));
        assert!(
            matches!(got, Progress::Pending | Progress::LocalInfile { .. }),
            "packet {i} ended the response early: {got:?}"
        );
        assert!(!t.is_complete());
    }
    let end = t.feed(last).unwrap();
    assert!(matches!(end, Progress::Complete { .. }), "{end:?}");
    assert!(t.is_complete());
    // Nothing may follow.
    assert!(matches!(
        t.clone().feed(&[0, 0, 0, 2, 0, 0, 0]),
        Err(WireError::Invalid { .. })
    ));
    (end, t)
}

fn ok_of(p: &Progress) -> &OkInfo {
    match p {
        Progress::Complete {
            ok: Some(ok),
            err: None,
            ..
        } => ok,
        other => panic!("not an OK completion: {other:?}"),
    }
}

fn err_of(p: &Progress) -> &ErrInfo {
    match p {
        Progress::Complete {
            ok: None,
            err: Some(e),
            ..
        } => e,
        other => panic!("not an ERR completion: {other:?}"),
    }
}

// `SELECT @@version_comment LIMIT 1`, as in MySQL's protocol docs.
const COUNT: &[u8] = b"\x01\x00\x00\x01\x01";
const DEF: &[u8] = b"\x27\x00\x00\x02\x03def\x00\x00\x00\x11@@version_comment\x00\x0c\x08\x00\x1c\x00\x00\x00\xfd\x00\x00\x1f\x00\x00";
const ROW: &[u8] = b"\x1d\x00\x00\x04\x1cMySQL Community Server (GPL)";

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// One framed packet.
fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    split_payload(&mut out, seq, payload);
    out
}

#[test]
fn text_result_set_with_eof() {
    let bytes = concat(&[
        COUNT,
        DEF,
        b"\x05\x00\x00\x03\xfe\x00\x00\x02\x00",
        ROW,
        b"\x05\x00\x00\x05\xfe\x00\x00\x02\x00",
    ]);
    let packets = payloads(&bytes, 1);
    let (end, t) = run(Expect::TextResult, BASE, &packets);
    assert_eq!(ok_of(&end).status, SERVER_STATUS_AUTOCOMMIT);
    assert_eq!((t.rows(), t.result_sets()), (1, 1));
    let def = parse_column_definition(&packets[1], BASE).unwrap();
    assert_eq!(def.name, b"@@version_comment");
    assert_eq!(
        (
            def.charset,
            def.column_length,
            def.column_type,
            def.decimals
        ),
        (8, 28, 0xfd, 0x1f)
    );
}

#[test]
fn text_result_set_with_deprecate_eof() {
    let bytes = concat(&[
        COUNT,
        DEF,
        b"\x1d\x00\x00\x03\x1cMySQL Community Server (GPL)",
        b"\x07\x00\x00\x04\xfe\x00\x00\x02\x00\x00\x00",
    ]);
    let (end, t) = run(Expect::TextResult, DEP, &payloads(&bytes, 1));
    assert_eq!(ok_of(&end).status, SERVER_STATUS_AUTOCOMMIT);
    assert_eq!(t.rows(), 1);
    // The same bytes without DEPRECATE_EOF: the row is taken for the EOF
    // after the definitions and the 0xFE-OK is not an EOF (7 bytes).
    let mut t = ResponseTracker::new(Expect::TextResult, BASE);
    let p = payloads(&bytes, 1);
    t.feed(&p[0]).unwrap();
    t.feed(&p[1]).unwrap();
    assert!(matches!(
        t.feed(&p[2]),
        Err(WireError::Unexpected { header: 0x1c, .. })
    ));
    assert!(t.is_complete(), "an error stops the tracker");
}

#[test]
fn empty_result_sets() {
    let with_eof = concat(&[
        COUNT,
        DEF,
        b"\x05\x00\x00\x03\xfe\x00\x00\x22\x00",
        b"\x05\x00\x00\x04\xfe\x00\x00\x22\x00",
    ]);
    let (end, t) = run(Expect::TextResult, BASE, &payloads(&with_eof, 1));
    assert_eq!(ok_of(&end).status, 0x22);
    assert_eq!(t.rows(), 0);
    let deprecated = concat(&[COUNT, DEF, b"\x07\x00\x00\x03\xfe\x00\x00\x02\x00\x00\x00"]);
    let (_, t) = run(Expect::TextResult, DEP, &payloads(&deprecated, 1));
    assert_eq!((t.rows(), t.result_sets()), (0, 1));
}

#[test]
fn rows_that_look_like_terminators() {
    // A NULL first column (0xFB) and an empty string (0x00) are rows.
    let bytes = concat(&[
        COUNT,
        DEF,
        b"\x05\x00\x00\x03\xfe\x00\x00\x02\x00",
        b"\x01\x00\x00\x04\xfb",
        b"\x01\x00\x00\x05\x00",
        b"\x05\x00\x00\x06\xfe\x00\x00\x02\x00",
    ]);
    let (_, t) = run(Expect::TextResult, BASE, &payloads(&bytes, 1));
    assert_eq!(t.rows(), 2);
    // A row whose first value is 16 MiB starts with 0xFE: it is a row
    // because its payload is not shorter than 0xFFFFFF.
    let value = vec![b'v'; 1 << 24];
    let mut row = Vec::new();
    write_lenenc_bytes(&mut row, &value);
    assert_eq!(row[0], 0xfe);
    let mut big = Vec::new();
    split_payload(&mut big, 3, &row);
    let mut eof = Vec::new();
    let seq = 3 + (row.len() / MAX_PACKET_PAYLOAD) as u8 + 1;
    let end = OkInfo {
        status: SERVER_STATUS_AUTOCOMMIT,
        ..OkInfo::default()
    };
    frame(&mut eof, seq, |b| ok_eof_packet(b, &end, DEP));
    let bytes = concat(&[COUNT, DEF, &big, &eof]);
    let (_, t) = run(Expect::TextResult, DEP, &payloads(&bytes, 1));
    assert_eq!(t.rows(), 1);
}

#[test]
fn ok_and_errors_alone() {
    let (end, _) = run(
        Expect::TextResult,
        BASE,
        &[b"\x00\x01\x05\x02\x00\x00\x00".to_vec()],
    );
    let ok = ok_of(&end);
    assert_eq!((ok.affected_rows, ok.last_insert_id), (1, 5));
    let (end, _) = run(
        Expect::TextResult,
        BASE,
        &[b"\xff\x7a\x04#42S02Table 'shop.nope' doesn't exist".to_vec()],
    );
    let e = err_of(&end);
    assert_eq!((e.code, e.sqlstate.as_deref()), (1146, Some("42S02")));
    assert_eq!(e.message, "Table 'shop.nope' doesn't exist");
}

#[test]
fn errors_mid_result() {
    // Killed while rows were streaming.
    let bytes = concat(&[
        COUNT,
        DEF,
        b"\x05\x00\x00\x03\xfe\x00\x00\x02\x00",
        ROW,
        &pkt(5, b"\xff\x25\x05#70100Query execution was interrupted"),
    ]);
    let (end, t) = run(Expect::TextResult, BASE, &payloads(&bytes, 1));
    assert_eq!(err_of(&end).code, 1317);
    assert_eq!(t.rows(), 1);
    // Between column definitions (it should not happen, but an ERR ends
    // any response).
    let bytes = concat(&[COUNT, &pkt(2, b"\xff\x25\x05#70100x")]);
    let (end, _) = run(Expect::TextResult, BASE, &payloads(&bytes, 1));
    assert_eq!(err_of(&end).code, 1317);
}

#[test]
fn multi_results() {
    // SELECT 1; SELECT 2 — the first EOF says more results exist.
    let more = SERVER_MORE_RESULTS_EXISTS | SERVER_STATUS_AUTOCOMMIT;
    for caps in [BASE, DEP] {
        let mut packets = Vec::new();
        for (i, last) in [(1u8, false), (2, true)] {
            let status = if last { SERVER_STATUS_AUTOCOMMIT } else { more };
            let mut p = Vec::new();
            column_count(
                &mut p,
                ColumnCount {
                    columns: 1,
                    metadata_follows: true,
                },
                caps,
            );
            packets.push(p);
            let mut p = Vec::new();
            column_definition(
                &mut p,
                &ColumnDefinition {
                    catalog: b"def",
                    name: &[b'0' + i],
                    column_type: MYSQL_TYPE_LONGLONG,
                    ..ColumnDefinition::default()
                },
                caps,
            );
            packets.push(p);
            if caps & CLIENT_DEPRECATE_EOF == 0 {
                let mut p = Vec::new();
                eof_packet(&mut p, 0, more);
                packets.push(p);
            }
            packets.push(vec![1, b'0' + i]);
            let mut p = Vec::new();
            if caps & CLIENT_DEPRECATE_EOF == 0 {
                eof_packet(&mut p, 0, status);
            } else {
                ok_eof_packet(
                    &mut p,
                    &OkInfo {
                        status,
                        ..OkInfo::default()
                    },
                    caps,
                );
            }
            packets.push(p);
        }
        let (end, t) = run(Expect::TextResult, caps, &packets);
        assert!(!ok_of(&end).more_results());
        assert_eq!((t.rows(), t.result_sets()), (2, 2));
    }

    // INSERT ...; SELECT ... ; then a CALL's trailing OK.
    let mut def = Vec::new();
    column_definition(
        &mut def,
        &ColumnDefinition {
            catalog: b"def",
            ..Default::default()
        },
        DEP,
    );
    let packets = vec![
        b"\x00\x01\x00\x0a\x00\x00\x00".to_vec(), // OK, more results
        vec![1],                                  // column count
        def,
        b"\x01x".to_vec(),
        b"\xfe\x00\x00\x0a\x00\x00\x00".to_vec(), // end of rows, more results
        b"\x00\x00\x00\x02\x00\x00\x00".to_vec(), // the CALL's final OK
    ];
    let (end, t) = run(Expect::TextResult, DEP, &packets);
    assert_eq!(ok_of(&end).status, 2);
    assert_eq!((t.rows(), t.result_sets()), (1, 1));

    // An error in the second statement ends everything.
    let packets = vec![
        b"\x00\x00\x00\x0a\x00\x00\x00".to_vec(),
        b"\xff\x28\x04#42000You have an error".to_vec(),
    ];
    let (end, _) = run(Expect::TextResult, BASE, &packets);
    assert_eq!(err_of(&end).code, 1064);
}

#[test]
fn local_infile() {
    let mut t = ResponseTracker::new(Expect::TextResult, BASE | CLIENT_LOCAL_FILES);
    assert_eq!(
        t.feed(b"\xfbdata.csv").unwrap(),
        Progress::LocalInfile {
            filename: b"data.csv".to_vec()
        }
    );
    assert!(!t.is_complete());
    // After the upload only OK or ERR may come.
    assert!(matches!(
        t.clone().feed(b"\x01"),
        Err(WireError::Unexpected { header: 1, .. })
    ));
    let end = t.feed(b"\x00\x03\x00\x02\x00\x00\x00").unwrap();
    assert_eq!(ok_of(&end).affected_rows, 3);
    // Refused upload, then an error; and an upload among multi-results.
    let mut t = ResponseTracker::new(Expect::TextResult, BASE);
    t.feed(b"\xfb/etc/passwd").unwrap();
    let end = t
        .feed(b"\xff\x94\x07#HY000LOAD DATA LOCAL is forbidden")
        .unwrap();
    assert_eq!(err_of(&end).code, 1940);
    let (end, _) = run(
        Expect::TextResult,
        BASE,
        &[
            b"\xfba.csv".to_vec(),
            b"\x00\x01\x00\x0a\x00\x00\x00".to_vec(),
            b"\xfbb.csv".to_vec(),
            b"\x00\x02\x00\x02\x00\x00\x00".to_vec(),
        ],
    );
    assert_eq!(ok_of(&end).affected_rows, 2);
    // Not a thing prepared statements get.
    let mut t = ResponseTracker::new(Expect::BinaryResult, BASE);
    assert!(matches!(
        t.feed(b"\xfba.csv"),
        Err(WireError::BadLenenc { prefix: 0xfb, .. })
    ));
}

fn def_payload(name: &[u8], caps: u64) -> Vec<u8> {
    let mut p = Vec::new();
    column_definition(
        &mut p,
        &ColumnDefinition {
            catalog: b"def",
            name,
            column_type: MYSQL_TYPE_VAR_STRING,
            ..ColumnDefinition::default()
        },
        caps,
    );
    p
}

#[test]
fn prepare_responses() {
    // PREPARE "SELECT ? , ?" style: statement 1, 1 column, 2 params.
    // As in MySQL's docs: 0c 00 00 01 00 01 00 00 00 01 00 02 00 00 00 00.
    let ok = b"\x00\x01\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00".to_vec();
    let eof = b"\xfe\x00\x00\x02\x00".to_vec();
    let packets = vec![
        ok.clone(),
        def_payload(b"?", BASE),
        def_payload(b"?", BASE),
        eof.clone(),
        def_payload(b"col", BASE),
        eof.clone(),
    ];
    let mut t = ResponseTracker::new(Expect::Prepare, BASE);
    t.feed(&packets[0]).unwrap();
    let early = t.prepared().unwrap();
    assert_eq!(
        (early.statement_id, early.num_columns, early.num_params),
        (1, 1, 2)
    );
    let (end, _) = run(Expect::Prepare, BASE, &packets);
    let Progress::Complete {
        prepared: Some(p),
        ok: None,
        err: None,
    } = end
    else {
        panic!("{end:?}")
    };
    assert_eq!(p, early);
    // With DEPRECATE_EOF the two EOFs go.
    let packets = vec![
        ok.clone(),
        def_payload(b"?", DEP),
        def_payload(b"?", DEP),
        def_payload(b"c", DEP),
    ];
    run(Expect::Prepare, DEP, &packets);
    // No parameters, no columns: complete at once.
    let (end, _) = run(
        Expect::Prepare,
        BASE,
        &[b"\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec()],
    );
    assert!(matches!(
        end,
        Progress::Complete {
            prepared: Some(PrepareOk {
                statement_id: 7,
                ..
            }),
            ..
        }
    ));
    // Columns only.
    let only_cols = b"\x00\x02\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00".to_vec();
    run(
        Expect::Prepare,
        BASE,
        &[
            only_cols.clone(),
            def_payload(b"a", BASE),
            def_payload(b"b", BASE),
            eof.clone(),
        ],
    );
    run(
        Expect::Prepare,
        DEP,
        &[only_cols, def_payload(b"a", DEP), def_payload(b"b", DEP)],
    );
    // MySQL 8, metadata not sent.
    let caps = DEP | CLIENT_OPTIONAL_RESULTSET_METADATA;
    run(
        Expect::Prepare,
        caps,
        &[b"\x00\x01\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00\x00".to_vec()],
    );
    // Errors.
    let (end, _) = run(
        Expect::Prepare,
        BASE,
        &[b"\xff\x28\x04#42000syntax".to_vec()],
    );
    assert_eq!(err_of(&end).code, 1064);
    let mut t = ResponseTracker::new(Expect::Prepare, BASE);
    assert!(matches!(
        t.feed(&ok[..9]),
        Err(WireError::Truncated {
            packet: "prepare OK",
            field: "reserved byte"
        })
    ));
    // A missing EOF shows as a definition that is not one.
    let mut t = ResponseTracker::new(Expect::Prepare, BASE);
    t.feed(&ok).unwrap();
    t.feed(&def_payload(b"?", BASE)).unwrap();
    t.feed(&def_payload(b"?", BASE)).unwrap();
    assert!(matches!(
        t.feed(&def_payload(b"c", BASE)),
        Err(WireError::Unexpected { header: 3, .. })
    ));
}

fn binary_result(caps: u64, rows: usize, end_status: u16) -> Vec<Vec<u8>> {
    let mut packets = vec![vec![2], def_payload(b"a", caps), def_payload(b"b", caps)];
    if caps & CLIENT_DEPRECATE_EOF == 0 {
        packets.push(b"\xfe\x00\x00\x02\x00".to_vec());
    }
    for _ in 0..rows {
        // header, null bitmap (2 columns + 2 offset bits), two values.
        packets.push(b"\x00\x00\x01a\x01b".to_vec());
    }
    let mut p = Vec::new();
    if caps & CLIENT_DEPRECATE_EOF == 0 {
        eof_packet(&mut p, 0, end_status);
    } else {
        ok_eof_packet(
            &mut p,
            &OkInfo {
                status: end_status,
                ..OkInfo::default()
            },
            caps,
        );
    }
    packets.push(p);
    packets
}

#[test]
fn execute_responses() {
    for caps in [BASE, DEP] {
        let (_, t) = run(Expect::BinaryResult, caps, &binary_result(caps, 3, 2));
        assert_eq!(t.rows(), 3);
        // A CALL through a prepared statement: result, then OK.
        let mut packets = binary_result(
            caps,
            1,
            2 | SERVER_MORE_RESULTS_EXISTS | SERVER_PS_OUT_PARAMS,
        );
        packets.push(b"\x00\x00\x00\x02\x00\x00\x00".to_vec());
        let (_, t) = run(Expect::BinaryResult, caps, &packets);
        assert_eq!((t.rows(), t.result_sets()), (1, 1));
        // A binary row must start with 0x00.
        let mut packets = binary_result(caps, 1, 2);
        let at = packets.len() - 2;
        packets[at][0] = 0x01;
        let mut t = ResponseTracker::new(Expect::BinaryResult, caps);
        let mut failed = false;
        for p in &packets {
            if t.feed(p).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }
    // Statements without a result set answer OK.
    run(
        Expect::BinaryResult,
        BASE,
        &[b"\x00\x01\x00\x02\x00\x00\x00".to_vec()],
    );
}

#[test]
fn cursors_and_fetch() {
    let cursor = SERVER_STATUS_AUTOCOMMIT | SERVER_STATUS_CURSOR_EXISTS;
    // Without DEPRECATE_EOF the EOF after the definitions ends it.
    let mut eof = Vec::new();
    eof_packet(&mut eof, 0, cursor);
    let (end, t) = run(
        Expect::BinaryResult,
        BASE,
        &[vec![1], def_payload(b"a", BASE), eof],
    );
    assert_eq!(ok_of(&end).status, cursor);
    assert_eq!(t.rows(), 0);
    // With it, an OK with header 0xFE does.
    let mut ok = Vec::new();
    ok_eof_packet(
        &mut ok,
        &OkInfo {
            status: cursor,
            ..OkInfo::default()
        },
        DEP,
    );
    run(
        Expect::BinaryResult,
        DEP,
        &[vec![1], def_payload(b"a", DEP), ok],
    );
    // COM_STMT_FETCH: rows then EOF; MORE_RESULTS is not followed.
    for caps in [BASE, DEP] {
        let mut end = Vec::new();
        if caps == BASE {
            eof_packet(
                &mut end,
                0,
                cursor | SERVER_STATUS_LAST_ROW_SENT | SERVER_MORE_RESULTS_EXISTS,
            );
        } else {
            ok_eof_packet(
                &mut end,
                &OkInfo {
                    status: cursor | SERVER_STATUS_LAST_ROW_SENT,
                    ..Default::default()
                },
                caps,
            );
        }
        let (_, t) = run(
            Expect::Fetch,
            caps,
            &[b"\x00\x00\x01a".to_vec(), b"\x00\x00\x01b".to_vec(), end],
        );
        assert_eq!(t.rows(), 2);
    }
    run(
        Expect::Fetch,
        BASE,
        &[b"\xff\x0f\x07#HY000Unknown cursor".to_vec()],
    );
}

#[test]
fn mariadb_metadata_skipping_and_progress() {
    let caps = DEP | MARIADB_CLIENT_CACHE_METADATA | MARIADB_CLIENT_PROGRESS;
    // Column count 2, metadata does not follow: straight to rows.
    let (_, t) = run(
        Expect::BinaryResult,
        caps,
        &[
            vec![2, 0],
            b"\x00\x00\x01a\x01b".to_vec(),
            b"\xfe\x00\x00\x02\x00\x00\x00".to_vec(),
        ],
    );
    assert_eq!(t.rows(), 1);
    // With metadata.
    run(
        Expect::TextResult,
        caps,
        &[
            vec![1, 1],
            def_payload(b"a", caps),
            b"\x01a".to_vec(),
            b"\xfe\x00\x00\x02\x00\x00\x00".to_vec(),
        ],
    );
    // Progress reports (ERR code 0xFFFF) before the OK of an ALTER.
    let progress = b"\xff\xff\xff\x01\x01\x02\x10\x27\x00\x05stage".to_vec();
    let (end, _) = run(
        Expect::TextResult,
        caps,
        &[
            progress.clone(),
            progress.clone(),
            b"\x00\x00\x00\x02\x00\x00\x00".to_vec(),
        ],
    );
    assert_eq!(ok_of(&end).status, 2);
    // Without the capability it is an error with code 65535.
    let (end, _) = run(Expect::TextResult, DEP, &[progress]);
    assert_eq!(err_of(&end).code, 0xffff);
    // Extended metadata in the definitions.
    let caps = DEP | MARIADB_CLIENT_EXTENDED_METADATA;
    let mut def = Vec::new();
    column_definition(
        &mut def,
        &ColumnDefinition {
            catalog: b"def",
            extended: b"\x00\x04json",
            ..Default::default()
        },
        caps,
    );
    run(
        Expect::TextResult,
        caps,
        &[
            vec![1],
            def.clone(),
            b"\xfe\x00\x00\x02\x00\x00\x00".to_vec(),
        ],
    );
    // Read without the capability the definition is malformed.
    let mut t = ResponseTracker::new(Expect::TextResult, DEP);
    t.feed(&[1]).unwrap();
    assert!(t.feed(&def).is_err());
}

#[test]
fn other_commands() {
    // COM_PING, COM_INIT_DB...
    assert_eq!(expected_response(COM_PING), Expect::OkOrErr);
    run(
        Expect::OkOrErr,
        BASE,
        &[b"\x00\x00\x00\x02\x00\x00\x00".to_vec()],
    );
    // COM_SET_OPTION and COM_DEBUG answer EOF.
    let (end, _) = run(Expect::OkOrErr, BASE, &[b"\xfe\x00\x00\x02\x00".to_vec()]);
    assert_eq!(ok_of(&end).status, 2);
    let mut t = ResponseTracker::new(Expect::OkOrErr, BASE);
    assert!(matches!(
        t.feed(&[1]),
        Err(WireError::Unexpected { header: 1, .. })
    ));
    // COM_STATISTICS: one string.
    let (end, _) = run(
        Expect::Statistics,
        BASE,
        &[b"Uptime: 5  Threads: 1  Questions: 2".to_vec()],
    );
    assert!(matches!(
        end,
        Progress::Complete {
            ok: None,
            err: None,
            prepared: None
        }
    ));
    // COM_FIELD_LIST: definitions with defaults, then EOF.
    let mut def = Vec::new();
    column_definition(
        &mut def,
        &ColumnDefinition {
            catalog: b"def",
            name: b"id",
            default_value: Some(b"0"),
            ..Default::default()
        },
        BASE,
    );
    run(
        Expect::FieldList,
        BASE,
        &[def.clone(), def, b"\xfe\x00\x00\x02\x00".to_vec()],
    );
    // COM_CHANGE_USER: a switch, more data, then OK.
    let (end, _) = run(
        Expect::Auth,
        BASE,
        &[
            b"\xfemysql_native_password\x0001234567890123456789\x00".to_vec(),
            b"\x01\x03".to_vec(),
            b"\x00\x00\x00\x02\x00\x00\x00".to_vec(),
        ],
    );
    assert_eq!(ok_of(&end).status, 2);
    run(
        Expect::Auth,
        BASE,
        &[b"\xff\x15\x04#28000Access denied".to_vec()],
    );
    // COM_BINLOG_DUMP: events then EOF.
    run(
        Expect::Stream,
        BASE,
        &[
            b"\x00event1".to_vec(),
            b"\x00event2".to_vec(),
            b"\xfe\x00\x00\x02\x00".to_vec(),
        ],
    );
    // No response expected.
    let mut t = ResponseTracker::for_command(COM_STMT_CLOSE, BASE);
    assert!(t.is_complete());
    assert!(matches!(
        t.feed(&[0, 0, 0, 2, 0, 0, 0]),
        Err(WireError::Invalid {
            reason: "a packet for a command that gets no response",
            ..
        })
    ));
    for (code, expect) in [
        (COM_QUERY, Expect::TextResult),
        (COM_STMT_EXECUTE, Expect::BinaryResult),
        (COM_STMT_PREPARE, Expect::Prepare),
        (COM_STMT_FETCH, Expect::Fetch),
        (COM_FIELD_LIST, Expect::FieldList),
        (COM_STATISTICS, Expect::Statistics),
        (COM_CHANGE_USER, Expect::Auth),
        (COM_BINLOG_DUMP, Expect::Stream),
        (COM_QUIT, Expect::Nothing),
        (COM_STMT_SEND_LONG_DATA, Expect::Nothing),
        (COM_RESET_CONNECTION, Expect::OkOrErr),
        (COM_STMT_RESET, Expect::OkOrErr),
    ] {
        assert_eq!(expected_response(code), expect, "{}", command_name(code));
    }
}

#[test]
fn malformed_responses_are_refused_precisely() {
    let cases: &[(Expect, u64, &[&[u8]], WireError)] = &[
        (
            Expect::TextResult,
            BASE,
            &[b""],
            WireError::Truncated {
                packet: "server response",
                field: "header",
            },
        ),
        (
            Expect::TextResult,
            BASE,
            &[b"\x00\x00\x00\x02"],
            WireError::Truncated {
                packet: "OK packet",
                field: "status flags",
            },
        ),
        (
            Expect::TextResult,
            BASE,
            &[b"\xfc\x01"],
            WireError::Truncated {
                packet: "column count packet",
                field: "column count",
            },
        ),
        (
            Expect::TextResult,
            BASE,
            &[b"\x01", b"\x03def\x00"],
            WireError::Truncated {
                packet: "column definition",
                field: "table",
            },
        ),
        (
            Expect::TextResult,
            BASE,
            &[b"\xfe\x00\x00\x02\x00"],
            WireError::Unexpected {
                expected: "OK, ERR or a result set",
                header: 0xfe,
            },
        ),
        (
            Expect::TextResult,
            BASE,
            &[b"\xff\x01"],
            WireError::Truncated {
                packet: "ERR packet",
                field: "error code",
            },
        ),
        (
            Expect::TextResult,
            DEP,
            &[b"\x01", b"\x05de"],
            WireError::Overlong {
                packet: "column definition",
                field: "catalog",
                len: 5,
                left: 2,
            },
        ),
    ];
    for (expect, caps, packets, want) in cases {
        let mut t = ResponseTracker::new(*expect, *caps);
        let (last, init) = packets.split_last().unwrap();
        for p in init {
            assert_eq!(t.feed(p).unwrap(), Progress::Pending);
        }
        assert_eq!(t.feed(last).as_ref(), Err(want), "{packets:?}");
    }
}

#[test]
fn large_rows_counted_from_their_first_byte() {
    // Text rows: anything but an ERR or a short 0xFE terminator.
    let mut t = ResponseTracker::new(Expect::TextResult, DEP);
    for p in payloads(&concat(&[COUNT, DEF]), 1) {
        assert_eq!(t.feed(&p).unwrap(), Progress::Pending);
    }
    t.feed_large_row(0xfc, 70_000).unwrap();
    t.feed_large_row(0xfe, MAX_PACKET_PAYLOAD).unwrap();
    assert_eq!(t.feed(b"\x01x").unwrap(), Progress::Pending);
    assert_eq!(t.rows(), 3);
    let end = t.feed(b"\xfe\x00\x00\x02\x00\x00\x00").unwrap();
    assert_eq!(ok_of(&end).status, SERVER_STATUS_AUTOCOMMIT);
    for (first, len) in [(0xff, 70_000), (0xfe, 70_000)] {
        let mut t = ResponseTracker::new(Expect::TextResult, DEP);
        for p in payloads(&concat(&[COUNT, DEF]), 1) {
            t.feed(&p).unwrap();
        }
        assert!(t.feed_large_row(first, len).is_err());
        assert!(t.is_complete(), "an error stops the tracker");
    }
    // Binary rows start with 0x00.
    let packets = binary_result(DEP, 0, 2);
    let mut t = ResponseTracker::new(Expect::BinaryResult, DEP);
    for p in &packets[..3] {
        t.feed(p).unwrap();
    }
    t.feed_large_row(0x00, 70_000).unwrap();
    assert_eq!(t.rows(), 1);
    assert!(t.feed_large_row(0x01, 70_000).is_err());
    // Nowhere else: not before the result set, not in the definitions.
    let mut t = ResponseTracker::new(Expect::TextResult, DEP);
    assert!(matches!(
        t.feed_large_row(0x00, 70_000),
        Err(WireError::Invalid { .. })
    ));
    assert!(t.is_complete());
    let mut t = ResponseTracker::new(Expect::TextResult, DEP);
    t.feed(&[1]).unwrap();
    assert!(t.feed_large_row(0x03, 70_000).is_err());
    // Binlog events stream like rows.
    let mut t = ResponseTracker::new(Expect::Stream, DEP);
    t.feed_large_row(0x00, 70_000).unwrap();
    assert!(t.feed_large_row(0x01, 70_000).is_err());
}
