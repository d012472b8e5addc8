//! Hostile input: truncation at every byte, lying lengths at every layer,
//! broken extension internals, duplicates, wrong record and message types.

use alloc::vec::Vec;

use super::builder::{ClientHelloBuilder, ServerHelloBuilder, vec8, vec16};
use super::samples::{self, bytes};
use super::*;

/// Offset of the extensions block in a ClientHello body.
fn client_extensions_offset(body: &[u8]) -> usize {
    let sid = usize::from(body[34]);
    let ciphers = usize::from(u16::from_be_bytes([body[35 + sid], body[36 + sid]]));
    let comp = usize::from(body[37 + sid + ciphers]);
    38 + sid + ciphers + comp
}

#[test]
fn every_truncation_of_real_client_hellos_is_an_error() {
    for (stem, hex) in samples::ALL.iter().filter(|(s, _)| samples::is_client(s)) {
        let rec = bytes(hex);
        for n in 0..rec.len() {
            assert_eq!(
                parse_client_hello_record(&rec[..n]).map(|_| ()),
                Err(TlsError::Truncated),
                "{stem} cut to {n} bytes"
            );
        }
        assert!(parse_client_hello_record(&rec).is_ok(), "{stem}");
    }
}

#[test]
fn every_truncation_of_real_server_hellos_is_an_error() {
    for (stem, hex) in samples::ALL.iter().filter(|(s, _)| !samples::is_client(s)) {
        let all = bytes(hex);
        let rec = &all[..RecordHeader::parse(&all).unwrap().total_len()];
        for n in 0..rec.len() {
            assert_eq!(
                parse_server_hello_record(&rec[..n]).map(|_| ()),
                Err(TlsError::Truncated),
                "{stem} cut to {n} bytes"
            );
        }
        assert!(parse_server_hello_record(rec).is_ok(), "{stem}");
    }
}

/// A bare body cut short errs everywhere except exactly where the
/// extensions block begins: that prefix is itself a valid extension-less
/// hello. Outer lengths are what tell the two apart, which is why the
/// record path above never misparses.
#[test]
fn truncated_bodies_err_except_at_the_extensions_boundary() {
    let rec = bytes(samples::OPENSSL13_CLIENT_HELLO);
    let body = &rec[9..];
    let boundary = client_extensions_offset(body);
    for n in 0..body.len() {
        let result = ClientHello::parse(&body[..n]);
        if n == boundary {
            assert_eq!(result.unwrap().extensions().count(), 0);
        } else {
            assert!(result.is_err(), "cut to {n}");
        }
    }
}

#[test]
fn record_lengths() {
    let mut rec = ClientHelloBuilder::new().record();
    assert!(parse_client_hello_record(&rec).is_ok());
    // Over 2^14 + 2048: not TLS, whatever follows.
    rec[3..5].copy_from_slice(&0x4801u16.to_be_bytes());
    assert_eq!(RecordHeader::parse(&rec), Err(TlsError::BadLength));
    rec[3..5].copy_from_slice(&0x4800u16.to_be_bytes());
    assert_eq!(RecordHeader::parse(&rec).unwrap().length, 0x4800);
    assert_eq!(split_record(&rec).map(|_| ()), Err(TlsError::Truncated));
}

#[test]
fn handshake_length_lies() {
    let msg = ClientHelloBuilder::new().sni("a.example").message();
    let body_len = msg.len() - 4;
    let with_len = |len: usize| {
        let mut m = msg.clone();
        m[1..4].copy_from_slice(&u32::try_from(len).unwrap().to_be_bytes()[1..]);
        handshake_record(&m)
    };
    // Longer than the record holds: the rest would be in a later record.
    assert_eq!(parse(&with_len(body_len + 1)), Err(TlsError::Truncated));
    // Shorter: the extensions vector now overruns the message.
    assert_eq!(parse(&with_len(body_len - 1)), Err(TlsError::BadLength));
    assert_eq!(parse(&with_len(body_len)), Ok(()));
}

fn handshake_record(msg: &[u8]) -> Vec<u8> {
    builder::records(content_type::HANDSHAKE, msg, usize::MAX)
}

fn parse(rec: &[u8]) -> Result<(), TlsError> {
    parse_client_hello_record(rec).map(|_| ())
}

fn parse_body(body: &[u8]) -> Result<(), TlsError> {
    ClientHello::parse(body).map(|_| ())
}

#[test]
fn fixed_field_lies() {
    let base = ClientHelloBuilder::new()
        .ciphers(&[0x1301, 0x1302])
        .sni("a.example")
        .body();
    let mut b = base.clone();
    b[34] = 33; // session id longer than 32
    b.splice(35..35, [0u8; 33]);
    assert_eq!(parse_body(&b), Err(TlsError::BadLength));
    let mut b = base.clone();
    b[34] = 255; // session id overruns the body
    assert_eq!(parse_body(&b), Err(TlsError::BadLength));
    let mut b = base.clone();
    b[36] = 3; // odd cipher suite byte count
    assert_eq!(parse_body(&b), Err(TlsError::BadLength));
    let mut b = base.clone();
    b[35] = 0xff; // cipher suites overrun the body
    assert_eq!(parse_body(&b), Err(TlsError::BadLength));
    let mut b = base.clone();
    b[41] = 200; // compression methods overrun
    assert_eq!(parse_body(&b), Err(TlsError::BadLength));
    assert_eq!(
        parse_body(&base[..20]),
        Err(TlsError::Truncated),
        "inside random"
    );
}

#[test]
fn extensions_block_lies() {
    let base = ClientHelloBuilder::new()
        .sni("a.example")
        .alpn(&["h2"])
        .body();
    let at = client_extensions_offset(&base);
    let block_len = usize::from(u16::from_be_bytes([base[at], base[at + 1]]));
    let with_block_len = |len: usize| {
        let mut b = base.clone();
        b[at..at + 2].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        parse_body(&b)
    };
    assert_eq!(with_block_len(block_len + 1), Err(TlsError::BadLength));
    // Shorter: bytes are left after the block, whether or not it now
    // ends on an extension boundary (the ALPN extension is 4 + 5 bytes).
    assert_eq!(with_block_len(block_len - 1), Err(TlsError::TrailingBytes));
    assert_eq!(with_block_len(block_len - 9), Err(TlsError::TrailingBytes));
    // The last extension's own length overruns the block.
    let mut b = base.clone();
    let alpn_len_at = base.len() - 7;
    assert_eq!(b[alpn_len_at..alpn_len_at + 2], [0, 5]);
    b[alpn_len_at + 1] = 6;
    assert_eq!(parse_body(&b), Err(TlsError::BadLength));
    let mut b = base.clone();
    b.push(0);
    assert_eq!(parse_body(&b), Err(TlsError::TrailingBytes));
    let mut b = base.clone();
    b.truncate(at + 1); // half a block length
    assert_eq!(parse_body(&b), Err(TlsError::Truncated));
    // A block ending inside an extension header.
    let odd = ClientHelloBuilder {
        extensions: None,
        ..ClientHelloBuilder::new()
    }
    .body();
    let b = [&odd[..], &vec16(&[0, 0, 0])].concat();
    assert_eq!(parse_body(&b), Err(TlsError::BadLength));
}

fn ext_error(ty: u16, data: &[u8]) -> Result<(), TlsError> {
    parse_body(&ClientHelloBuilder::new().ext(ty, data).body())
}

#[test]
fn extension_internals_are_validated() {
    use extension::*;
    let bad = Err(TlsError::BadExtension);
    // server_name: list length, name length, trailing byte.
    assert_eq!(ext_error(SERVER_NAME, &[0, 4, 0, 0, 9, b'a']), bad);
    assert_eq!(ext_error(SERVER_NAME, &[0, 9, 0, 0, 1, b'a']), bad);
    assert_eq!(ext_error(SERVER_NAME, &[0, 4, 0, 0, 1, b'a', 0]), bad);
    assert_eq!(
        ext_error(SERVER_NAME, &[]),
        Ok(()),
        "empty, as servers echo it"
    );
    // ALPN: name overruns the list, list overruns the data.
    assert_eq!(ext_error(ALPN, &[0, 3, 5, b'h', b'2']), bad);
    assert_eq!(ext_error(ALPN, &[0, 9, 2, b'h', b'2']), bad);
    assert_eq!(ext_error(ALPN, &[]), bad);
    // u16 lists: odd counts and overruns.
    assert_eq!(ext_error(SUPPORTED_VERSIONS, &vec8(&[3, 4, 3])), bad);
    assert_eq!(ext_error(SUPPORTED_VERSIONS, &[4, 3, 4]), bad);
    assert_eq!(ext_error(SUPPORTED_GROUPS, &vec16(&[0, 0x1d, 0])), bad);
    assert_eq!(ext_error(SIGNATURE_ALGORITHMS, &[0, 4, 4, 3]), bad);
    assert_eq!(ext_error(EC_POINT_FORMATS, &[3, 0]), bad);
    assert_eq!(ext_error(EC_POINT_FORMATS, &[1, 0, 0]), bad);
    // key_share: key overruns, entry cut inside its header.
    assert_eq!(ext_error(KEY_SHARE, &vec16(&[0, 0x1d, 0, 32, 1])), bad);
    assert_eq!(ext_error(KEY_SHARE, &vec16(&[0, 0x1d, 0])), bad);
    assert_eq!(ext_error(KEY_SHARE, &vec16(&[0, 0x1d, 0, 1, 7])), Ok(()));
    // Opaque extensions are not looked into.
    assert_eq!(ext_error(ENCRYPTED_CLIENT_HELLO, &[]), Ok(()));
    assert_eq!(ext_error(0x0023, &[1, 2, 3]), Ok(()));
}

#[test]
fn interpreted_extensions_must_not_repeat() {
    let twice = ClientHelloBuilder::new()
        .sni("a.example")
        .sni("b.example")
        .body();
    assert_eq!(parse_body(&twice), Err(TlsError::DuplicateExtension));
    let twice = ClientHelloBuilder::new()
        .supported_versions(&[0x0304])
        .supported_versions(&[0x0303]);
    assert_eq!(parse_body(&twice.body()), Err(TlsError::DuplicateExtension));
    let sh = ServerHelloBuilder::new()
        .selected_version(0x0304)
        .selected_version(0x0303);
    assert_eq!(
        ServerHello::parse(&sh.body()).map(|_| ()),
        Err(TlsError::DuplicateExtension)
    );
}

#[test]
fn wrong_record_or_message_type() {
    let ch = ClientHelloBuilder::new().record();
    assert_eq!(
        parse_server_hello_record(&ch).map(|_| ()),
        Err(TlsError::WrongMessage)
    );
    let mut app = ch.clone();
    app[0] = content_type::APPLICATION_DATA;
    assert_eq!(parse(&app), Err(TlsError::NotHandshake));
    let sh = ServerHelloBuilder::new().record();
    assert_eq!(parse(&sh), Err(TlsError::WrongMessage));
    assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Err(TlsError::Truncated));
}

#[test]
fn alerts() {
    let fatal = [21, 3, 3, 0, 2, 2, 40];
    assert_eq!(
        Alert::parse_record(&fatal),
        Ok(Alert {
            level: 2,
            description: 40
        })
    );
    assert_eq!(description_name(40), "handshake_failure");
    assert_eq!(Alert::parse_record(&fatal[..6]), Err(TlsError::Truncated));
    let handshake = [22, 3, 3, 0, 2, 2, 40];
    assert_eq!(Alert::parse_record(&handshake), Err(TlsError::NotAlert));
    // An alert encrypted after a TLS 1.2 ChangeCipherSpec.
    let mut encrypted = alloc::vec![21, 3, 3, 0, 26];
    encrypted.extend_from_slice(&[0x5a; 26]);
    assert_eq!(Alert::parse_record(&encrypted), Err(TlsError::BadLength));
}

#[test]
fn error_labels_are_stable() {
    let names: Vec<_> = TlsError::ALL.iter().map(|e| e.name()).collect();
    assert_eq!(
        names,
        [
            "truncated",
            "bad_length",
            "not_handshake",
            "wrong_message",
            "trailing_bytes",
            "bad_extension",
            "duplicate_extension",
            "not_alert",
        ]
    );
}
