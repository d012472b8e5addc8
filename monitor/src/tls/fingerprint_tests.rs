//! JA3, JA3S and JA4 against the values the specifications and their
//! reference implementations publish, and against real captures.

use monitor_common::tls::builder::{ClientHelloBuilder, vec16};
use monitor_common::tls::samples::{self, bytes};
use monitor_common::tls::{ClientHello, parse_client_hello_record, parse_server_hello_record};

use super::fingerprint::{ja3, ja3s, ja4, ja4_raw};

fn parse(body: &[u8]) -> ClientHello<'_> {
    ClientHello::parse(body).expect("valid hello")
}

/// The README of salesforce/ja3: "769,47-53-5-10-49161-49162-49171-49172-
/// 50-56-19-4,0-10-11,23-24-25,0 --> ada70206e40642a3e4461f35503241d5".
#[test]
fn ja3_readme_example() {
    let body = ClientHelloBuilder::new()
        .version(769)
        .ciphers(&[47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4])
        .sni("example.com")
        .supported_groups(&[23, 24, 25])
        .ec_point_formats(&[0])
        .body();
    let fp = ja3(&parse(&body));
    assert_eq!(
        fp.string,
        "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    );
    assert_eq!(fp.hash, "ada70206e40642a3e4461f35503241d5");
}

/// The README's hello without extensions: "769,4-5-10-9-100-98-3-6-19-18-
/// 99,,, --> de350869b8c85de67a350c8d186f11e6".
#[test]
fn ja3_readme_example_without_extensions() {
    let body = ClientHelloBuilder::new()
        .version(769)
        .ciphers(&[4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99])
        .no_extensions()
        .body();
    let fp = ja3(&parse(&body));
    assert_eq!(fp.string, "769,4-5-10-9-100-98-3-6-19-18-99,,,");
    assert_eq!(fp.hash, "de350869b8c85de67a350c8d186f11e6");
}

#[test]
fn ja3_ignores_grease() {
    let plain = ClientHelloBuilder::new()
        .ciphers(&[0x1301, 0xc02f])
        .sni("a.example")
        .supported_groups(&[0x001d])
        .ec_point_formats(&[0]);
    let greased = ClientHelloBuilder::new()
        .ciphers(&[0x2a2a, 0x1301, 0xc02f])
        .ext(0x0a0a, &[])
        .sni("a.example")
        .supported_groups(&[0xbaba, 0x001d])
        .ec_point_formats(&[0])
        .ext(0xfafa, &[0]);
    let (a, b) = (plain.body(), greased.body());
    assert_eq!(ja3(&parse(&a)), ja3(&parse(&b)));
    assert_eq!(ja3(&parse(&a)).string, "771,4865-49199,0-10-11,29,0");
}

/// Real curl 7.88.1 / OpenSSL 3.0 hello: the JA3 and JA4 that public
/// fingerprint services report for curl on OpenSSL 3.0.
#[test]
fn curl_capture() {
    let rec = bytes(samples::CURL_CLIENT_HELLO);
    let hello = parse_client_hello_record(&rec).unwrap();
    let fp = ja3(&hello);
    assert_eq!(
        fp.string,
        "771,4866-4867-4865-49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-\
         49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,\
         0-11-10-16-22-23-49-13-43-45-51-21,29-23-30-25-24-256-257-258-259-260,0-1-2"
    );
    assert_eq!(fp.hash, "0149f47eabf9a20d0893e2a44e5a6323");
    assert_eq!(ja4(&hello), "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6");
}

/// The other captures, against an independent Python implementation of
/// both specifications run on the same bytes.
#[test]
fn openssl_captures() {
    let cases = [
        (
            samples::OPENSSL13_CLIENT_HELLO,
            "5a1edc7f170af1014fc65c994878e63c",
            "t13d3111h2_e8f1e7e78f70_1f22a2ca17c4",
        ),
        (
            samples::OPENSSL12_CLIENT_HELLO,
            "871a754af286dfb70c1b53c6887c62e0",
            "t12d280700_d943125447b4_e7e480e5a997",
        ),
        (
            samples::OPENSSL_NOSNI_CLIENT_HELLO,
            "c216e752cae6f8755fd27f561d031636",
            "t13i310900_e8f1e7e78f70_1f22a2ca17c4",
        ),
        (
            samples::OPENSSL_HRR_CLIENT_HELLO,
            "d7d477dd98b3fab865d1970dc88a3b9c",
            "t13d311000_e8f1e7e78f70_1f22a2ca17c4",
        ),
    ];
    for (hex, ja3_hash, ja4_value) in cases {
        let rec = bytes(hex);
        let hello = parse_client_hello_record(&rec).unwrap();
        assert_eq!(ja3(&hello).hash, ja3_hash);
        assert_eq!(ja4(&hello), ja4_value);
    }
}

#[test]
fn ja3s_of_real_server_hellos() {
    let rec = bytes(samples::OPENSSL13_SERVER_HELLO);
    let fp = ja3s(&parse_server_hello_record(&rec).unwrap());
    assert_eq!(fp.string, "771,4866,43-51");
    assert_eq!(fp.hash, "15af977ce25de452b96affa2addb1036");
    let flight = bytes(samples::OPENSSL12_SERVER_FLIGHT);
    let fp = ja3s(&parse_server_hello_record(&flight).unwrap());
    assert_eq!(fp.string, "771,49196,65281-11-35-23");
    assert_eq!(fp.hash, "abade5a4a7f42baf54766e5d108283b6");
}

/// Chrome's cipher suites of the JA4 specification's example, GREASE
/// first as Chrome sends it.
const SPEC_CIPHERS: [u16; 16] = [
    0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
    0x009c, 0x009d, 0x002f, 0x0035,
];
const SPEC_SIGALGS: [u16; 8] = [
    0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
];

/// A ClientHello with the extensions `order` (GREASE allowed), real
/// contents for the interpreted ones and `sigalgs` in extension 13.
fn chrome_like(ciphers: &[u16], order: &[u16], sigalgs: &[u16]) -> Vec<u8> {
    let mut b = ClientHelloBuilder::new().ciphers(ciphers);
    for &ty in order {
        b = match ty {
            0x0000 => b.sni("example.com"),
            0x0010 => b.alpn(&["h2", "http/1.1"]),
            0x000a => b.supported_groups(&[0x4a4a, 0x11ec, 0x001d, 0x0017, 0x0018]),
            0x000b => b.ec_point_formats(&[0]),
            0x000d => b.signature_algorithms(sigalgs),
            0x002b => b.supported_versions(&[0x5a5a, 0x0304, 0x0303]),
            0x0033 => b.key_shares(&[(0x4a4a, 1), (0x11ec, 1216), (0x001d, 32)]),
            other => b.ext(other, &[]),
        };
    }
    b.body()
}

/// technical_details/JA4.md: "JA4 = t13d1516h2_8daaf6152771_e5627efa2ab1"
/// with its JA4_r, from the extensions in the order it lists them.
#[test]
fn ja4_specification_example() {
    let order = [
        0x1a1a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023,
        0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015, 0x2a2a,
    ];
    let body = chrome_like(&SPEC_CIPHERS, &order, &SPEC_SIGALGS);
    let hello = parse(&body);
    assert_eq!(ja4(&hello), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    assert_eq!(
        ja4_raw(&hello),
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_\
         0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_\
         0403,0804,0401,0503,0805,0501,0806,0601"
    );
    // The same hello with another extension order (Chrome shuffles them)
    // has the same JA4.
    let mut shuffled = order;
    shuffled.reverse();
    let body = chrome_like(&SPEC_CIPHERS, &shuffled, &SPEC_SIGALGS);
    assert_eq!(ja4(&parse(&body)), "t13d1516h2_8daaf6152771_e5627efa2ab1");
}

/// JA4.md: without signature algorithms the extension list is hashed
/// alone, no underscore: "0005,...,ff01 = 6d807ffa2a79".
#[test]
fn ja4_specification_example_without_signature_algorithms() {
    let order = [
        0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
        0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
    ];
    let body = chrome_like(&SPEC_CIPHERS, &order, &[]);
    let hello = parse(&body);
    assert!(
        ja4_raw(&hello)
            .ends_with("_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01")
    );
    assert_eq!(ja4(&hello), "t13d1516h2_8daaf6152771_6d807ffa2a79");
}

/// FoxIO's `python/test/testdata/sigalg-grease.pcapng.json` (Chrome with a
/// post-quantum key share, ECH, and 0x0a0a first among its signature
/// algorithms, which JA4 ignores like every GREASE value).
#[test]
fn ja4_foxio_sigalg_grease_capture() {
    let order = [
        0x0a0a, 0xfe0d, 0x0010, 0x0017, 0x0033, 0x44cd, 0xff01, 0x000a, 0x000d, 0x0023, 0x002b,
        0x000b, 0xca34, 0x002d, 0x0000, 0x0005, 0x001b, 0x0012, 0x3a3a,
    ];
    let sigalgs = [
        0x0a0a, 0x0904, 0x0905, 0x0906, 0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806,
        0x0601,
    ];
    let body = chrome_like(&SPEC_CIPHERS, &order, &sigalgs);
    let hello = parse(&body);
    assert_eq!(ja4(&hello), "t13d1517h2_8daaf6152771_cb7bf5808d99");
    assert_eq!(
        ja4_raw(&hello),
        "t13d1517h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_\
         0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,ca34,fe0d,ff01_\
         0904,0905,0906,0403,0804,0401,0503,0805,0501,0806,0601"
    );
}

/// FoxIO's `python/test/testdata/badcurveball.pcap.json`: 16 suites with
/// 3DES last, 15 extensions, 9 signature algorithms.
#[test]
fn ja4_foxio_badcurveball_capture() {
    let mut ciphers = SPEC_CIPHERS[1..].to_vec();
    ciphers.push(0x000a);
    let order = [
        0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x000d, 0x0012, 0x0033,
        0x002d, 0x002b, 0x001b, 0x0015,
    ];
    let mut sigalgs = SPEC_SIGALGS.to_vec();
    sigalgs.push(0x0201);
    let body = chrome_like(&ciphers, &order, &sigalgs);
    assert_eq!(ja4(&parse(&body)), "t13d1615h2_46e7e9700bed_45f260be83e2");
}

fn ja4_with_alpn(first: &[u8]) -> String {
    let list = [&[u8::try_from(first.len()).unwrap()][..], first].concat();
    let body = ClientHelloBuilder::new().ext(0x0010, &vec16(&list)).body();
    ja4(&parse(&body))
}

/// JA4.md "ALPN Extension Value", including its examples for values that
/// are not alphanumeric at either end.
#[test]
fn ja4_alpn_rules() {
    let alpn = |v: &[u8]| ja4_with_alpn(v)[8..10].to_owned();
    assert_eq!(alpn(b"h2"), "h2");
    assert_eq!(alpn(b"http/1.1"), "h1");
    assert_eq!(alpn(b"a"), "aa", "a single character is first and last");
    assert_eq!(alpn(b""), "00");
    assert_eq!(alpn(&[0xab]), "ab");
    assert_eq!(alpn(&[0xab, 0xcd]), "ad");
    assert_eq!(alpn(&[0x30, 0xab]), "3b");
    assert_eq!(alpn(&[0x30, 0x31, 0xab, 0xcd]), "3d");
    assert_eq!(alpn(&[0x30, 0xab, 0xcd, 0x31]), "01");
    let none = ClientHelloBuilder::new().body();
    assert_eq!(&ja4(&parse(&none))[8..10], "00");
}

#[test]
fn ja4_empty_lists_and_versions() {
    // No suites, no extensions: both hashes are twelve zeros.
    let body = ClientHelloBuilder::new()
        .ciphers(&[])
        .no_extensions()
        .body();
    assert_eq!(ja4(&parse(&body)), "t12i000000_000000000000_000000000000");
    // Only SNI and ALPN: counted in a, absent from c.
    let body = ClientHelloBuilder::new()
        .sni("a.example")
        .alpn(&["h2"])
        .body();
    assert_eq!(ja4(&parse(&body))[..10], *"t12d0102h2");
    assert!(ja4(&parse(&body)).ends_with("_000000000000"));
    let version = |b: ClientHelloBuilder| ja4(&parse(&b.body()))[1..3].to_owned();
    assert_eq!(version(ClientHelloBuilder::new().version(0x0301)), "10");
    assert_eq!(version(ClientHelloBuilder::new().version(0x0300)), "s3");
    assert_eq!(version(ClientHelloBuilder::new().version(0x0305)), "00");
    // supported_versions wins over legacy_version, GREASE ignored; with
    // nothing but GREASE in it, the version is unknown.
    let sv = |v: &[u16]| {
        ClientHelloBuilder::new()
            .version(0x0301)
            .supported_versions(v)
    };
    assert_eq!(version(sv(&[0x0a0a, 0x0303, 0x0304])), "13");
    assert_eq!(version(sv(&[0x0a0a])), "00");
}

#[test]
fn ja4_counts_cap_at_99() {
    let ciphers: Vec<u16> = (1..=120).collect();
    let mut b = ClientHelloBuilder::new().ciphers(&ciphers);
    for ty in 100..220 {
        b = b.ext(ty, &[]);
    }
    assert_eq!(ja4(&parse(&b.body()))[..10], *"t12i999900");
}
