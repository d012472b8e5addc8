//! ClientHello parsing: real captures, every field asserted.

use alloc::vec::Vec;

use super::samples::{self, bytes};
use super::*;

/// OpenSSL 3.0's default offer: TLS 1.3 suites, then its TLS 1.2 list.
const OPENSSL_SUITES_13: [u16; 3] = [0x1302, 0x1303, 0x1301];
const OPENSSL_SUITES_12: [u16; 28] = [
    0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8, 0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024, 0xc028, 0x006b,
    0xc023, 0xc027, 0x0067, 0xc00a, 0xc014, 0x0039, 0xc009, 0xc013, 0x0033, 0x009d, 0x009c, 0x003d,
    0x003c, 0x0035, 0x002f, 0x00ff,
];
const OPENSSL_SIGALGS: [u16; 20] = [
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080a, 0x080b, 0x0804, 0x0805, 0x0806, 0x0401,
    0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0402, 0x0502, 0x0602,
];
const OPENSSL_GROUPS: [u16; 10] = [
    0x001d, 0x0017, 0x001e, 0x0019, 0x0018, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104,
];
const ALL_VERSIONS: [u16; 4] = [0x0304, 0x0303, 0x0302, 0x0301];

fn hex(s: &str) -> Vec<u8> {
    bytes(s)
}

fn ext_types(h: &ClientHello<'_>) -> Vec<u16> {
    h.extensions().map(|(ty, _)| ty).collect()
}

fn suites_13_and_12() -> Vec<u16> {
    [&OPENSSL_SUITES_13[..], &OPENSSL_SUITES_12[..]].concat()
}

#[test]
fn openssl_tls13_client_hello() {
    let rec = bytes(samples::OPENSSL13_CLIENT_HELLO);
    let header = RecordHeader::parse(&rec).unwrap();
    assert_eq!(
        header,
        RecordHeader {
            content_type: 22,
            version: 0x0301,
            length: 331
        }
    );
    let h = parse_client_hello_record(&rec).unwrap();
    assert_eq!(h.legacy_version(), 0x0303);
    assert_eq!(
        &h.random()[..],
        hex("7b8024d2c9fb9649af4e2d504d52e163399145a45a23efcb78241cfa56454b50")
    );
    assert_eq!(
        h.session_id(),
        hex("6fd1d6f67745fbb364f0796888442194be53fad2b8cb4558fdd05da9ba197566")
    );
    assert_eq!(h.cipher_suites().collect::<Vec<_>>(), suites_13_and_12());
    assert_eq!(h.cipher_suites().len(), 31);
    assert_eq!(h.compression_methods(), [0]);
    assert_eq!(ext_types(&h), [0, 11, 10, 35, 16, 22, 23, 13, 43, 45, 51]);
    assert_eq!(h.sni(), Some(&b"test.example"[..]));
    assert_eq!(
        h.server_names().collect::<Vec<_>>(),
        [(0, &b"test.example"[..])]
    );
    assert_eq!(h.alpn().collect::<Vec<_>>(), [&b"h2"[..], b"http/1.1"]);
    assert_eq!(h.supported_versions().collect::<Vec<_>>(), ALL_VERSIONS);
    assert_eq!(h.supported_groups().collect::<Vec<_>>(), OPENSSL_GROUPS);
    assert_eq!(h.key_share_groups().collect::<Vec<_>>(), [0x001d]);
    assert_eq!(
        h.key_shares()
            .map(|k| k.key_exchange.len())
            .collect::<Vec<_>>(),
        [32]
    );
    assert_eq!(
        h.signature_algorithms().collect::<Vec<_>>(),
        OPENSSL_SIGALGS
    );
    assert_eq!(h.ec_point_formats(), [0, 1, 2]);
    assert_eq!(h.extension(35), Some(&[][..]), "empty session_ticket");
    assert!(!h.has_ech());
    assert_eq!(h.max_version(), 0x0304);
}

#[test]
fn openssl_tls12_only_client_hello() {
    let rec = bytes(samples::OPENSSL12_CLIENT_HELLO);
    let h = parse_client_hello_record(&rec).unwrap();
    assert_eq!(h.legacy_version(), 0x0303);
    assert_eq!(
        &h.random()[..],
        hex("15a07f83014889fa1867be6870384c2f2f946b1b4887af7d82497905592f4445")
    );
    assert!(h.session_id().is_empty());
    assert_eq!(h.cipher_suites().collect::<Vec<_>>(), OPENSSL_SUITES_12);
    assert_eq!(ext_types(&h), [0, 11, 10, 35, 22, 23, 13]);
    assert_eq!(h.sni(), Some(&b"test.example"[..]));
    assert_eq!(h.alpn().count(), 0);
    assert!(!h.has_extension(extension::SUPPORTED_VERSIONS));
    assert_eq!(h.supported_versions().count(), 0);
    assert_eq!(
        h.supported_groups().collect::<Vec<_>>(),
        OPENSSL_GROUPS[..5]
    );
    assert_eq!(h.key_share_groups().count(), 0);
    assert_eq!(
        h.signature_algorithms().collect::<Vec<_>>(),
        OPENSSL_SIGALGS
    );
    assert_eq!(
        h.max_version(),
        0x0303,
        "legacy_version without supported_versions"
    );
}

#[test]
fn openssl_client_hello_without_sni() {
    let rec = bytes(samples::OPENSSL_NOSNI_CLIENT_HELLO);
    let h = parse_client_hello_record(&rec).unwrap();
    assert_eq!(ext_types(&h), [11, 10, 35, 22, 23, 13, 43, 45, 51]);
    assert_eq!(h.sni(), None);
    assert_eq!(h.server_names().count(), 0);
    assert_eq!(h.cipher_suites().len(), 31);
    assert_eq!(h.max_version(), 0x0304);
}

#[test]
fn curl_client_hello() {
    let rec = bytes(samples::CURL_CLIENT_HELLO);
    assert_eq!(
        rec.len(),
        517,
        "curl pads its hello to 512 bytes of handshake"
    );
    let h = parse_client_hello_record(&rec).unwrap();
    assert_eq!(
        &h.random()[..],
        hex("3ef64906531fbd0ef409246934a75c34931fabea797bf03807fe34d980813d9f")
    );
    assert_eq!(h.session_id().len(), 32);
    assert_eq!(h.cipher_suites().collect::<Vec<_>>(), suites_13_and_12());
    assert_eq!(
        ext_types(&h),
        [0, 11, 10, 16, 22, 23, 49, 13, 43, 45, 51, 21]
    );
    assert_eq!(h.sni(), Some(&b"test.example"[..]));
    assert_eq!(h.alpn().collect::<Vec<_>>(), [&b"h2"[..], b"http/1.1"]);
    assert_eq!(h.supported_versions().collect::<Vec<_>>(), ALL_VERSIONS);
    assert_eq!(h.supported_groups().collect::<Vec<_>>(), OPENSSL_GROUPS);
    assert_eq!(h.key_share_groups().collect::<Vec<_>>(), [0x001d]);
    assert_eq!(h.ec_point_formats(), [0, 1, 2]);
    assert_eq!(h.max_version(), 0x0304);
}

#[test]
fn client_hellos_around_a_hello_retry_request() {
    let first = bytes(samples::OPENSSL_HRR_CLIENT_HELLO);
    let second = bytes(samples::OPENSSL_HRR_CLIENT_HELLO2);
    let a = parse_client_hello_record(&first).unwrap();
    let b = parse_client_hello_record(&second).unwrap();
    assert_eq!(a.supported_groups().collect::<Vec<_>>(), [0x001d, 0x0018]);
    assert_eq!(a.key_share_groups().collect::<Vec<_>>(), [0x001d]);
    // The retry offers the group the server asked for, with a P-384 point.
    assert_eq!(b.key_share_groups().collect::<Vec<_>>(), [0x0018]);
    assert_eq!(
        b.key_shares()
            .map(|k| k.key_exchange.len())
            .collect::<Vec<_>>(),
        [97]
    );
    // RFC 8446 4.1.2: the second hello repeats random and session id.
    assert_eq!(a.random(), b.random());
    assert_eq!(a.session_id(), b.session_id());
}
