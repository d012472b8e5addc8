//! Real hellos captured from this machine's OpenSSL 3.0.19 and curl 7.88.1
//! (see the comment lines of each file under `testdata/`), for the tests
//! here and in the daemon. Each is the raw TCP bytes of one or more whole
//! records, stored as hex.

use alloc::vec::Vec;

macro_rules! samples {
    ($($name:ident => $file:literal),+ $(,)?) => {
        $(pub const $name: &str = include_str!(concat!("testdata/", $file, ".hex"));)+
        /// Every sample as `(file stem, hex text)`.
        pub const ALL: &[(&str, &str)] = &[$(($file, $name)),+];
    };
}

samples! {
    OPENSSL13_CLIENT_HELLO => "openssl13_client_hello",
    OPENSSL13_SERVER_HELLO => "openssl13_server_hello",
    OPENSSL12_CLIENT_HELLO => "openssl12_client_hello",
    OPENSSL12_SERVER_FLIGHT => "openssl12_server_flight",
    OPENSSL_NOSNI_CLIENT_HELLO => "openssl_nosni_client_hello",
    CURL_CLIENT_HELLO => "curl_client_hello",
    CURL_SERVER_HELLO => "curl_server_hello",
    OPENSSL_HRR_CLIENT_HELLO => "openssl_hrr_client_hello",
    OPENSSL_HRR_RETRY => "openssl_hrr_retry",
    OPENSSL_HRR_CLIENT_HELLO2 => "openssl_hrr_client_hello2",
}

/// Decodes a sample: hex digits, whitespace ignored, `#` lines are
/// comments.
pub fn bytes(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.bytes().filter(|b| !b.is_ascii_whitespace()))
        .map(|d| match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => panic!("not a hex digit: {:?}", char::from(d)),
        })
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// Whether the sample `stem` holds ClientHello records (else server ones).
pub fn is_client(stem: &str) -> bool {
    stem.contains("client_hello")
}
