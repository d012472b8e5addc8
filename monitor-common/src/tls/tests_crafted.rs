//! ClientHello parsing: crafted hellos with GREASE, ECH, post-quantum key
//! shares and the less common shapes.

use alloc::vec::Vec;

use super::builder::ClientHelloBuilder;
use super::*;

fn ext_types(h: &ClientHello<'_>) -> Vec<u16> {
    h.extensions().map(|(ty, _)| ty).collect()
}

#[test]
fn grease_everywhere() {
    let body = ClientHelloBuilder::new()
        .ciphers(&[0x0a0a, 0x1301, 0x1302])
        .ext(0x1a1a, &[])
        .sni("grease.example")
        .supported_versions(&[0x2a2a, 0x0304, 0x0303])
        .supported_groups(&[0x3a3a, 0x001d, 0x0017])
        .key_shares(&[(0x3a3a, 1), (0x001d, 32)])
        .ext(0xfafa, &[0])
        .body();
    let h = ClientHello::parse(&body).unwrap();
    assert_eq!(
        h.cipher_suites().collect::<Vec<_>>(),
        [0x0a0a, 0x1301, 0x1302]
    );
    assert_eq!(ext_types(&h), [0x1a1a, 0, 43, 10, 51, 0xfafa]);
    assert_eq!(h.key_share_groups().collect::<Vec<_>>(), [0x3a3a, 0x001d]);
    assert_eq!(h.max_version(), 0x0304);
    assert_eq!(h.cipher_suites().filter(|&c| is_grease(c)).count(), 1);
}

#[test]
fn max_version_ignores_grease_and_falls_back() {
    let only_grease = ClientHelloBuilder::new()
        .version(0x0301)
        .supported_versions(&[0xfafa]);
    assert_eq!(
        ClientHello::parse(&only_grease.body())
            .unwrap()
            .max_version(),
        0x0301
    );
    // The highest, not the first: order is the client's preference.
    let unordered = ClientHelloBuilder::new().supported_versions(&[0x0303, 0x8a8a, 0x0304]);
    assert_eq!(
        ClientHello::parse(&unordered.body()).unwrap().max_version(),
        0x0304
    );
}

#[test]
fn grease_values_are_exactly_the_sixteen_of_rfc_8701() {
    let grease: Vec<u16> = (0..=u16::MAX).filter(|&v| is_grease(v)).collect();
    let expected: Vec<u16> = (0..16u16).map(|i| 0x0a0a | (i << 12) | (i << 4)).collect();
    assert_eq!(grease, expected);
    assert_eq!(grease.first(), Some(&0x0a0a));
    assert_eq!(grease.last(), Some(&0xfafa));
}

#[test]
fn encrypted_client_hello() {
    let body = ClientHelloBuilder::new()
        .sni("public.example")
        .supported_versions(&[0x0304])
        .ext(
            extension::ENCRYPTED_CLIENT_HELLO,
            &[0, 0, 1, 0, 1, 0x42, 0, 0],
        )
        .body();
    let h = ClientHello::parse(&body).unwrap();
    assert!(h.has_ech());
    assert_eq!(
        h.sni(),
        Some(&b"public.example"[..]),
        "the outer, public name"
    );
    let plain = ClientHelloBuilder::new().sni("a.example").body();
    assert!(!ClientHello::parse(&plain).unwrap().has_ech());
}

#[test]
fn post_quantum_key_share() {
    // X25519MLKEM768: 1184-byte ML-KEM-768 encapsulation key + 32-byte
    // X25519 share (draft-ietf-tls-ecdhe-mlkem), as Chrome and Firefox send.
    let builder = ClientHelloBuilder::new()
        .ciphers(&[0x1301, 0x1302, 0x1303])
        .sni("pq.example")
        .supported_versions(&[0x0304])
        .supported_groups(&[0x11ec, 0x001d])
        .key_shares(&[(0x11ec, 1216), (0x001d, 32)]);
    let rec = builder.record();
    // Past the IPv6 minimum MTU even in this bare form; browsers' real
    // hellos with it run to about 1.8 KB, more than one segment.
    assert!(rec.len() > 1280, "{}", rec.len());
    let h = parse_client_hello_record(&rec).unwrap();
    let shares: Vec<_> = h
        .key_shares()
        .map(|k| (k.group, k.key_exchange.len()))
        .collect();
    assert_eq!(shares, [(0x11ec, 1216), (0x001d, 32)]);
    assert!(h.key_share_groups().any(is_post_quantum_group));
    assert_eq!(group_name(0x11ec), "x25519mlkem768");
}

#[test]
fn post_quantum_groups() {
    for g in [
        0x11ec, 0x11eb, 0x11ed, 0x6399, 0x639a, 0x0200, 0x0201, 0x0202,
    ] {
        assert!(is_post_quantum_group(g), "{g:#06x}");
    }
    for g in [
        0x001d, 0x0017, 0x0018, 0x0019, 0x001e, 0x0100, 0x0104, 0x0203, 0x11ea, 0x11ee,
    ] {
        assert!(!is_post_quantum_group(g), "{g:#06x}");
    }
}

#[test]
fn hello_without_extensions_block() {
    // Pre-TLS-1.2 clients may end the hello after compression_methods.
    let body = ClientHelloBuilder::new()
        .version(0x0301)
        .no_extensions()
        .body();
    let h = ClientHello::parse(&body).unwrap();
    assert_eq!(h.extensions().count(), 0);
    assert_eq!(h.sni(), None);
    assert_eq!(h.max_version(), 0x0301);
    // An empty block (length 0) is the same to every accessor.
    let empty = ClientHelloBuilder::new().body();
    assert_eq!(ClientHello::parse(&empty).unwrap().extensions().count(), 0);
}

#[test]
fn unknown_and_repeated_unknown_extensions_pass_through() {
    let body = ClientHelloBuilder::new()
        .ext(0x4469, &[1, 2])
        .ext(0x4469, &[3])
        .body();
    let h = ClientHello::parse(&body).unwrap();
    assert_eq!(
        h.extensions().collect::<Vec<_>>(),
        [(0x4469, &[1, 2][..]), (0x4469, &[3][..])]
    );
    assert_eq!(h.extension(0x4469), Some(&[1, 2][..]));
}

#[test]
fn sni_skips_other_name_types() {
    use super::builder::vec16;
    let list = [&[1u8][..], &vec16(b"other"), &[0], &vec16(b"host.example")].concat();
    let body = ClientHelloBuilder::new().ext(0, &vec16(&list)).body();
    let h = ClientHello::parse(&body).unwrap();
    assert_eq!(h.server_names().count(), 2);
    assert_eq!(h.sni(), Some(&b"host.example"[..]));
}
