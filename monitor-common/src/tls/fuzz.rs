//! Fuzz entry points, shared by the cargo-fuzz targets in
//! `monitor-common/fuzz` and by a unit test that replays the seed corpus,
//! so `cargo test` exercises the same code the fuzzer runs.
//!
//! Each takes arbitrary bytes, runs every parser layer and accessor on
//! them, and asserts invariants a correct parser keeps: a hello that
//! parsed has lists that iterate to their full length (validation and
//! iteration agree). The parsers themselves never panic; a panic here is a
//! finding.
#![doc(hidden)]

use core::hint::black_box;

use super::{Alert, ClientHello, RecordHeader, ServerHello, extension, split_record};
use super::{content_type, handshake_type};
use super::{parse_client_hello_record, parse_server_hello_record};
use crate::capture::{Located, MAX_RECORDS_SKIPPED, PayloadStart, locate_record, payload_start};

/// `data` as a record holding a ClientHello, and as a bare hello body.
pub fn client_hello(data: &[u8]) {
    records(data);
    if let Ok(hello) = parse_client_hello_record(data) {
        check_client(&hello);
    }
    if let Ok(hello) = ClientHello::parse(data) {
        check_client(&hello);
    }
}

/// `data` as a record holding a ServerHello, and as a bare hello body.
pub fn server_hello(data: &[u8]) {
    records(data);
    if let Ok(hello) = parse_server_hello_record(data) {
        check_server(&hello);
    }
    if let Ok(hello) = ServerHello::parse(data) {
        check_server(&hello);
    }
}

fn records(data: &[u8]) {
    let _ = black_box(RecordHeader::parse(data));
    let _ = black_box(Alert::parse_record(data));
    let mut rest = data;
    while let Ok((header, fragment, next)) = split_record(rest) {
        assert_eq!(fragment.len(), usize::from(header.length));
        assert!(next.len() < rest.len());
        rest = next;
    }
    capture_walk(data);
}

/// The kernel capture's search for a hello (`capture::locate_record`) on
/// `data` as one segment's payload, checked against the record parser: it
/// reads only inside the payload; a hello it finds lies behind at most
/// [`MAX_RECORDS_SKIPPED`] whole records, none of them a hello; giving up
/// means that many whole records and another header after them.
fn capture_walk(data: &[u8]) {
    let (Some(first), Ok(len)) = (data.get(..6), u32::try_from(data.len())) else {
        return;
    };
    let first: [u8; 6] = first.try_into().expect("6 bytes");
    let found = locate_record(first, len, |offset| {
        let at = offset as usize;
        assert!(at > 0 && at + 6 <= data.len(), "read at {at}");
        data.get(at..at + 6)?.try_into().ok()
    });
    match found {
        Located::Hello { offset, total_len } => {
            let at = offset as usize;
            let mut rest = &data[..at];
            let mut skipped = 0;
            while !rest.is_empty() {
                rest = skip_record(rest);
                skipped += 1;
            }
            assert!(skipped <= MAX_RECORDS_SKIPPED);
            let head = data[at..at + 6].try_into().expect("6 bytes");
            assert_eq!(payload_start(head), PayloadStart::Hello { total_len });
        }
        Located::Alert => assert_eq!(payload_start(first), PayloadStart::Alert),
        Located::TooManyRecords => {
            let mut rest = data;
            for _ in 0..=MAX_RECORDS_SKIPPED {
                rest = skip_record(rest);
            }
            assert!(rest.len() >= 6);
        }
        Located::Nothing => {}
    }
}

/// What follows the whole record at the start of `bytes`, which the walk
/// skipped: a ChangeCipherSpec, alert or handshake record of version 3.x,
/// not a hello.
fn skip_record(bytes: &[u8]) -> &[u8] {
    let (header, fragment, next) = split_record(bytes).expect("a whole record was skipped");
    assert_eq!(header.version >> 8, 3);
    assert!(matches!(
        header.content_type,
        content_type::CHANGE_CIPHER_SPEC | content_type::ALERT | content_type::HANDSHAKE
    ));
    let hello = matches!(
        fragment.first().copied(),
        Some(handshake_type::CLIENT_HELLO | handshake_type::SERVER_HELLO)
    );
    assert!(!(header.content_type == content_type::HANDSHAKE && hello && fragment.len() >= 4));
    next
}

/// Bytes the extensions occupy on the wire, headers included.
fn extensions_len<'a>(exts: impl Iterator<Item = (u16, &'a [u8])>) -> usize {
    exts.map(|(_, data)| 4 + data.len()).sum()
}

fn check_client(h: &ClientHello<'_>) {
    black_box((h.legacy_version(), h.random(), h.session_id()));
    black_box(h.compression_methods());
    assert_eq!(
        h.cipher_suites().count() * 2,
        h.cipher_suites().as_bytes().len()
    );
    let block = h.extensions();
    for (ty, data) in block {
        black_box((ty, data));
    }
    // The extensions iterate to exactly the bytes the parser accepted.
    assert_eq!(extensions_len(block), block.as_bytes().len());

    if let Some(data) = h.extension(extension::ALPN) {
        let names: usize = h.alpn().map(|n| 1 + n.len()).sum();
        assert_eq!(2 + names, data.len());
    }
    if let Some(data) = h.extension(extension::KEY_SHARE) {
        let shares: usize = h.key_shares().map(|k| 4 + k.key_exchange.len()).sum();
        assert_eq!(2 + shares, data.len());
    }
    if let Some(data) = h.extension(extension::SERVER_NAME) {
        let names: usize = h.server_names().map(|(_, n)| 3 + n.len()).sum();
        assert!(data.is_empty() || 2 + names == data.len());
        assert_eq!(h.sni().is_some(), h.server_names().any(|(ty, _)| ty == 0));
    }
    if let Some(data) = h.extension(extension::SUPPORTED_VERSIONS) {
        assert_eq!(1 + 2 * h.supported_versions().count(), data.len());
    }
    if let Some(data) = h.extension(extension::SUPPORTED_GROUPS) {
        assert_eq!(2 + 2 * h.supported_groups().count(), data.len());
    }
    if let Some(data) = h.extension(extension::SIGNATURE_ALGORITHMS) {
        assert_eq!(2 + 2 * h.signature_algorithms().count(), data.len());
    }
    if let Some(data) = h.extension(extension::EC_POINT_FORMATS) {
        assert_eq!(1 + h.ec_point_formats().len(), data.len());
    }
    black_box(h.key_share_groups().count());
    black_box(h.has_ech());
    let max = h.max_version();
    assert!(
        h.supported_versions()
            .filter(|&v| !super::is_grease(v))
            .all(|v| v <= max)
    );
}

fn check_server(h: &ServerHello<'_>) {
    black_box((h.legacy_version(), h.random(), h.session_id()));
    black_box((h.cipher_suite(), h.compression_method()));
    let block = h.extensions();
    for (ty, data) in block {
        black_box((ty, data));
    }
    assert_eq!(extensions_len(block), block.as_bytes().len());
    black_box((h.selected_version(), h.key_share_group(), h.alpn()));
    black_box(h.is_hello_retry_request());
    if h.extension(extension::SUPPORTED_VERSIONS).is_none() {
        assert_eq!(h.selected_version(), h.legacy_version());
    }
}
