//! The owned summaries, and the whole path: stream bytes to summary.

use monitor_common::tls::builder::{self, ClientHelloBuilder, ServerHelloBuilder};
use monitor_common::tls::samples::{self, bytes};
use monitor_common::tls::{
    ClientHello, ServerHello, content_type, handshake_type, parse_client_hello_record,
    parse_server_hello_record,
};

use super::stream::{Extract, first_handshake_message};
use super::{client_hello_summary, server_hello_summary};

#[test]
fn curl_client_hello_summary() {
    let rec = bytes(samples::CURL_CLIENT_HELLO);
    let s = client_hello_summary(&parse_client_hello_record(&rec).unwrap());
    assert_eq!(s.sni.as_deref(), Some("test.example"));
    assert_eq!(s.alpn, ["h2", "http/1.1"]);
    assert_eq!((s.version_name, s.max_version), ("tls1.3", 0x0304));
    assert_eq!(s.cipher_suites.len(), 31);
    assert_eq!(
        s.extensions,
        [0, 11, 10, 16, 22, 23, 49, 13, 43, 45, 51, 21]
    );
    assert_eq!(s.supported_groups[..2], [0x001d, 0x0017]);
    assert_eq!(s.key_share_groups, [0x001d]);
    assert!(!s.pq_key_share);
    assert!(!s.has_ech);
    assert_eq!(s.ja3, "0149f47eabf9a20d0893e2a44e5a6323");
    assert!(s.ja3_string.starts_with("771,4866-4867-4865-"));
    assert_eq!(s.ja4, "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6");
}

#[test]
fn lossy_names_and_tls12() {
    let body = ClientHelloBuilder::new()
        .ext(0, &[0, 6, 0, 0, 3, b'a', 0xff, b'b'])
        .ext(16, &[0, 3, 2, 0xc3, b'x'])
        .body();
    let s = client_hello_summary(&ClientHello::parse(&body).unwrap());
    assert_eq!(s.sni.as_deref(), Some("a\u{fffd}b"));
    assert_eq!(s.alpn, ["\u{fffd}x"]);
    assert_eq!((s.version_name, s.max_version), ("tls1.2", 0x0303));
}

/// A post-quantum, ECH-carrying hello split over two records, through
/// reassembly, parsing and summary.
#[test]
fn post_quantum_hello_from_stream_to_summary() {
    let message = ClientHelloBuilder::new()
        .ciphers(&[0x1301])
        .sni("public.example")
        .supported_versions(&[0x0304])
        .key_shares(&[(0x11ec, 1216), (0x001d, 32)])
        .ext(0xfe0d, &[0; 100])
        .message();
    let stream = builder::records(content_type::HANDSHAKE, &message, 1200);
    let Ok(Extract::Complete {
        msg_type,
        body,
        records_used,
        ..
    }) = first_handshake_message(&stream)
    else {
        panic!("incomplete");
    };
    assert_eq!((msg_type, records_used), (handshake_type::CLIENT_HELLO, 2));
    let s = client_hello_summary(&ClientHello::parse(&body).unwrap());
    assert_eq!(s.key_share_groups, [0x11ec, 0x001d]);
    assert!(s.pq_key_share);
    assert!(s.has_ech);
    assert_eq!(s.sni.as_deref(), Some("public.example"));
}

#[test]
fn server_hello_summaries() {
    let rec = bytes(samples::OPENSSL13_SERVER_HELLO);
    let s = server_hello_summary(&parse_server_hello_record(&rec).unwrap());
    assert_eq!((s.version, s.version_name), (0x0304, "tls1.3"));
    assert_eq!(
        (s.cipher, s.cipher_name),
        (0x1302, "TLS_AES_256_GCM_SHA384")
    );
    assert_eq!(
        (s.key_share_group, s.key_share_group_name),
        (Some(0x001d), Some("x25519"))
    );
    assert!(!s.pq);
    assert_eq!(s.ja3s_string, "771,4866,43-51");
    assert_eq!(s.ja3s, "15af977ce25de452b96affa2addb1036");
    assert!(!s.hello_retry_request);

    let rec = bytes(samples::OPENSSL_HRR_RETRY);
    let s = server_hello_summary(&parse_server_hello_record(&rec).unwrap());
    assert!(s.hello_retry_request);
    assert_eq!(s.key_share_group_name, Some("secp384r1"));

    let flight = bytes(samples::OPENSSL12_SERVER_FLIGHT);
    let s = server_hello_summary(&parse_server_hello_record(&flight).unwrap());
    assert_eq!((s.version_name, s.key_share_group), ("tls1.2", None));
    assert_eq!(s.cipher_name, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");

    let pq = ServerHelloBuilder::new()
        .cipher(0x1301)
        .selected_version(0x0304)
        .key_share(0x11ec, 1120);
    let body = pq.body();
    let s = server_hello_summary(&ServerHello::parse(&body).unwrap());
    assert!(s.pq);
    assert_eq!(s.key_share_group_name, Some("x25519mlkem768"));
}
