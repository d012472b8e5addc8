//! Client and server fingerprints, exactly as their public specifications
//! define them:
//! - JA3 / JA3S: github.com/salesforce/ja3 (README, `python/ja3.py`,
//!   `python/ja3s.py`).
//! - JA4: github.com/FoxIO-LLC/ja4, `technical_details/JA4.md`, TLS over TCP
//!   only (the `t` prefix).

use std::fmt::Write as _;

use md5::{Digest as _, Md5};
use monitor_common::tls::{ClientHello, ServerHello, extension, is_grease};
use sha2::Sha256;

/// A JA3 or JA3S fingerprint: the string and its MD5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ja3 {
    pub string: String,
    /// Lower-case hex MD5 of `string`.
    pub hash: String,
}

impl Ja3 {
    fn new(string: String) -> Self {
        let hash = hex(&Md5::digest(string.as_bytes()));
        Self { string, hash }
    }
}

/// JA3: `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`,
/// decimal values joined by `-`, GREASE left out of every list, the version
/// being the ClientHello's legacy_version. Empty lists leave empty fields.
pub fn ja3(hello: &ClientHello<'_>) -> Ja3 {
    let string = format!(
        "{},{},{},{},{}",
        hello.legacy_version(),
        decimal(hello.cipher_suites().filter(|&v| !is_grease(v))),
        decimal(
            hello
                .extensions()
                .map(|(ty, _)| ty)
                .filter(|&v| !is_grease(v))
        ),
        decimal(hello.supported_groups().filter(|&v| !is_grease(v))),
        decimal(hello.ec_point_formats().iter().copied()),
    );
    Ja3::new(string)
}

/// JA3S: `SSLVersion,Cipher,Extensions` of the ServerHello, the version
/// being its legacy_version and the extensions in wire order (the
/// reference `ja3s.py` filters nothing: servers send no GREASE).
pub fn ja3s(hello: &ServerHello<'_>) -> Ja3 {
    let string = format!(
        "{},{},{}",
        hello.legacy_version(),
        hello.cipher_suite(),
        decimal(hello.extensions().map(|(ty, _)| ty)),
    );
    Ja3::new(string)
}

/// JA4, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
pub fn ja4(hello: &ClientHello<'_>) -> String {
    let parts = Ja4Parts::new(hello);
    format!(
        "{}_{}_{}",
        parts.a,
        hash12(&parts.ciphers),
        hash12(&parts.extensions)
    )
}

/// JA4_r, the raw (unhashed, sorted) form of [`ja4`], for debugging and
/// for comparing with other implementations.
pub fn ja4_raw(hello: &ClientHello<'_>) -> String {
    let parts = Ja4Parts::new(hello);
    format!("{}_{}_{}", parts.a, parts.ciphers, parts.extensions)
}

/// The three sections of JA4 before hashing.
struct Ja4Parts {
    /// `t`, version, SNI flag, cipher and extension counts, ALPN.
    a: String,
    /// Sorted 4-hex-digit cipher suites, comma-separated.
    ciphers: String,
    /// Sorted extensions without SNI and ALPN, then `_` and the signature
    /// algorithms in wire order (no `_` when there are none).
    extensions: String,
}

impl Ja4Parts {
    fn new(hello: &ClientHello<'_>) -> Self {
        let mut ciphers: Vec<u16> = hello.cipher_suites().filter(|&v| !is_grease(v)).collect();
        let exts: Vec<u16> = hello
            .extensions()
            .map(|(ty, _)| ty)
            .filter(|&v| !is_grease(v))
            .collect();
        let sni = if hello.has_extension(extension::SERVER_NAME) {
            'd'
        } else {
            'i'
        };
        let a = format!(
            "t{}{sni}{:02}{:02}{}",
            ja4_version(hello),
            ciphers.len().min(99),
            exts.len().min(99),
            ja4_alpn(hello.alpn().next()),
        );
        ciphers.sort_unstable();
        // SNI and ALPN are already in section a: leaving them out of c
        // keeps c the same whether the client named a host or a protocol.
        let mut sorted: Vec<u16> = exts
            .into_iter()
            .filter(|&ty| ty != extension::SERVER_NAME && ty != extension::ALPN)
            .collect();
        sorted.sort_unstable();
        let sigalgs: Vec<u16> = hello
            .signature_algorithms()
            .filter(|&v| !is_grease(v))
            .collect();
        let mut extensions = hex_list(&sorted);
        if !sigalgs.is_empty() {
            extensions.push('_');
            extensions.push_str(&hex_list(&sigalgs));
        }
        Self {
            a,
            ciphers: hex_list(&ciphers),
            extensions,
        }
    }
}

/// The highest non-GREASE supported_versions entry when the extension is
/// present (even if that leaves none: "00"), else legacy_version.
fn ja4_version(hello: &ClientHello<'_>) -> &'static str {
    let version = if hello.has_extension(extension::SUPPORTED_VERSIONS) {
        hello
            .supported_versions()
            .filter(|&v| !is_grease(v))
            .max()
            .unwrap_or(0)
    } else {
        hello.legacy_version()
    };
    match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// First and last character of the first ALPN value; "00" when there is
/// none or it is empty. When either byte is not ASCII alphanumeric, the
/// first hex digit of the first byte and the last hex digit of the last
/// byte instead (so `0xAB 0xCD` gives "ad").
fn ja4_alpn(first: Option<&[u8]>) -> String {
    let (Some(&head), Some(&tail)) = (first.and_then(|v| v.first()), first.and_then(|v| v.last()))
    else {
        return "00".to_owned();
    };
    if head.is_ascii_alphanumeric() && tail.is_ascii_alphanumeric() {
        [char::from(head), char::from(tail)].iter().collect()
    } else {
        format!("{:x}{:x}", head >> 4, tail & 0x0f)
    }
}

/// First 12 hex digits of the SHA-256 of `input`; twelve zeros for an empty
/// input, so an empty list reads as such rather than as the hash of "".
fn hash12(input: &str) -> String {
    if input.is_empty() {
        return "0".repeat(12);
    }
    let mut digest = hex(&Sha256::digest(input.as_bytes()));
    digest.truncate(12);
    digest
}

fn hex_list(values: &[u16]) -> String {
    let mut out = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v:04x}");
    }
    out
}

fn decimal<T: std::fmt::Display>(values: impl Iterator<Item = T>) -> String {
    let mut out = String::new();
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push('-');
        }
        let _ = write!(out, "{v}");
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
