//! ServerHello and HelloRetryRequest parsing, and the label names.

use super::builder::ServerHelloBuilder;
use super::samples::{self, bytes};
use super::*;

#[test]
fn openssl_tls13_server_hello() {
    let rec = bytes(samples::OPENSSL13_SERVER_HELLO);
    let h = parse_server_hello_record(&rec).unwrap();
    assert_eq!(h.legacy_version(), 0x0303);
    assert_eq!(
        &h.random()[..],
        bytes("987d89dda41d190480ef572f70596c90eccd4e2c2c2c9ff60498326696a090a5")
    );
    // TLS 1.3 servers echo the client's legacy_session_id.
    let client = bytes(samples::OPENSSL13_CLIENT_HELLO);
    let ch = parse_client_hello_record(&client).unwrap();
    assert_eq!(h.session_id(), ch.session_id());
    assert_eq!(h.cipher_suite(), 0x1302);
    assert_eq!(cipher_name(h.cipher_suite()), "TLS_AES_256_GCM_SHA384");
    assert_eq!(h.compression_method(), 0);
    assert_eq!(
        h.extensions()
            .map(|(ty, _)| ty)
            .collect::<alloc::vec::Vec<_>>(),
        [43, 51]
    );
    assert_eq!(h.selected_version(), 0x0304);
    assert_eq!(h.key_share_group(), Some(0x001d));
    assert_eq!(
        h.alpn(),
        None,
        "TLS 1.3 answers ALPN in EncryptedExtensions"
    );
    assert!(!h.is_hello_retry_request());
}

#[test]
fn curl_server_hello() {
    let rec = bytes(samples::CURL_SERVER_HELLO);
    let h = parse_server_hello_record(&rec).unwrap();
    assert_eq!(h.selected_version(), 0x0304);
    assert_eq!(h.cipher_suite(), 0x1302);
    assert_eq!(h.key_share_group(), Some(0x001d));
}

#[test]
fn openssl_tls12_server_hello_in_its_flight() {
    let flight = bytes(samples::OPENSSL12_SERVER_FLIGHT);
    let h = parse_server_hello_record(&flight).unwrap();
    assert_eq!(h.legacy_version(), 0x0303);
    assert_eq!(
        h.selected_version(),
        0x0303,
        "no supported_versions before 1.3"
    );
    assert_eq!(h.cipher_suite(), 0xc02c);
    assert_eq!(
        cipher_name(0xc02c),
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    );
    assert!(h.session_id().is_empty());
    let exts: alloc::vec::Vec<_> = h.extensions().collect();
    assert_eq!(
        exts,
        [
            (0xff01, &[0][..]),
            (11, &[3, 0, 1, 2][..]),
            (35, &[][..]),
            (23, &[][..])
        ]
    );
    assert_eq!(h.key_share_group(), None);
    // A 1.3-capable server negotiating 1.2 marks its random (RFC 8446
    // 4.1.3): "DOWNGRD" then 0x01.
    assert_eq!(&h.random()[24..], b"DOWNGRD\x01");
    // The rest of the flight: Certificate, ServerKeyExchange, ServerHelloDone.
    let mut rest = &flight[..];
    let mut types = alloc::vec::Vec::new();
    while let Ok((header, fragment, next)) = split_record(rest) {
        assert_eq!(header.content_type, content_type::HANDSHAKE);
        types.push(HandshakeHeader::parse(fragment).unwrap().msg_type);
        rest = next;
    }
    assert!(rest.is_empty());
    assert_eq!(types, [2, 11, 12, 14]);
}

#[test]
fn real_hello_retry_request() {
    let rec = bytes(samples::OPENSSL_HRR_RETRY);
    let h = parse_server_hello_record(&rec).unwrap();
    assert!(h.is_hello_retry_request());
    assert_eq!(*h.random(), HELLO_RETRY_REQUEST_RANDOM);
    assert_eq!(h.selected_version(), 0x0304);
    assert_eq!(h.key_share_group(), Some(0x0018), "asks for secp384r1");
    assert_eq!(h.cipher_suite(), 0x1302);
}

#[test]
fn crafted_server_hellos() {
    let pq = ServerHelloBuilder::new()
        .cipher(0x1301)
        .selected_version(0x0304)
        .key_share(0x11ec, 1120)
        .body();
    let h = ServerHello::parse(&pq).unwrap();
    assert_eq!(h.key_share_group(), Some(0x11ec));
    assert!(is_post_quantum_group(0x11ec));
    // A HelloRetryRequest key_share is the group alone; a key is an error.
    let hrr = ServerHelloBuilder::new()
        .selected_version(0x0304)
        .hello_retry_request(0x11ec);
    assert_eq!(
        ServerHello::parse(&hrr.body()).unwrap().key_share_group(),
        Some(0x11ec)
    );
    let mut bad = ServerHelloBuilder::new()
        .selected_version(0x0304)
        .key_share(0x001d, 32);
    bad.random = HELLO_RETRY_REQUEST_RANDOM;
    assert_eq!(
        ServerHello::parse(&bad.body()).map(|_| ()),
        Err(TlsError::BadExtension)
    );
    // A ServerHello key_share needs the key.
    let short = ServerHelloBuilder::new().ext(extension::KEY_SHARE, &[0, 0x1d]);
    assert_eq!(
        ServerHello::parse(&short.body()).map(|_| ()),
        Err(TlsError::BadExtension)
    );
    let sv = ServerHelloBuilder::new().ext(extension::SUPPORTED_VERSIONS, &[3, 4, 0]);
    assert_eq!(
        ServerHello::parse(&sv.body()).map(|_| ()),
        Err(TlsError::BadExtension)
    );
    // TLS 1.2 ALPN answer.
    let alpn = ServerHelloBuilder::new().ext(extension::ALPN, &[0, 3, 2, b'h', b'2']);
    assert_eq!(
        ServerHello::parse(&alpn.body()).unwrap().alpn(),
        Some(&b"h2"[..])
    );
    // Fixed fields cut short.
    let body = ServerHelloBuilder::new().body();
    assert_eq!(
        ServerHello::parse(&body[..36]).map(|_| ()),
        Err(TlsError::Truncated)
    );
}

#[test]
fn label_names() {
    assert_eq!(version_name(0x0300), "ssl3");
    assert_eq!(version_name(0x0301), "tls1.0");
    assert_eq!(version_name(0x0302), "tls1.1");
    assert_eq!(version_name(0x0303), "tls1.2");
    assert_eq!(version_name(0x0304), "tls1.3");
    assert_eq!(version_name(0x7f1c), "other");
    assert_eq!(version_name(0x0a0a), "other");
    assert_eq!(cipher_name(0x1301), "TLS_AES_128_GCM_SHA256");
    assert_eq!(cipher_name(0x1303), "TLS_CHACHA20_POLY1305_SHA256");
    assert_eq!(cipher_name(0xc02f), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    assert_eq!(
        cipher_name(0xcca8),
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    );
    assert_eq!(cipher_name(0x002f), "TLS_RSA_WITH_AES_128_CBC_SHA");
    assert_eq!(
        cipher_name(0x00ff),
        "other",
        "a signalling value, never negotiated"
    );
    assert_eq!(cipher_name(0x0a0a), "other");
    assert_eq!(group_name(0x001d), "x25519");
    assert_eq!(group_name(0x0017), "secp256r1");
    assert_eq!(group_name(0x11eb), "secp256r1mlkem768");
    assert_eq!(group_name(0x0201), "mlkem768");
    assert_eq!(group_name(0x3a3a), "other");
    assert_eq!(description_name(0), "close_notify");
    assert_eq!(description_name(70), "protocol_version");
    assert_eq!(description_name(112), "unrecognized_name");
    assert_eq!(description_name(120), "no_application_protocol");
    assert_eq!(description_name(255), "other");
}
