//! TLS on the daemon side: reassembling hellos from captured record bytes
//! ([`stream`]), fingerprinting them ([`fingerprint`]), and owned summaries
//! of what an event reports. Parsing itself is `monitor_common::tls`.

pub mod fingerprint;
pub mod stream;

#[cfg(test)]
mod fingerprint_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod summary_tests;

use monitor_common::tls::{
    ClientHello, ServerHello, cipher_name, group_name, is_post_quantum_group, version_name,
};

pub use fingerprint::{Ja3, ja3, ja3s, ja4, ja4_raw};
pub use stream::{Extract, MAX_MESSAGE_LEN, first_handshake_message, read_alert};

/// What a ClientHello says, owned, for events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHelloSummary {
    /// First host_name, lossily decoded (the peer's bytes, not validated
    /// as a DNS name).
    pub sni: Option<String>,
    /// ALPN protocol names in preference order, lossily decoded.
    pub alpn: Vec<String>,
    /// [`version_name`] of `max_version`.
    pub version_name: &'static str,
    /// Highest version offered (supported_versions, else legacy_version).
    pub max_version: u16,
    /// The hello's legacy_version field (0x0303 from TLS 1.3 clients).
    pub legacy_version: u16,
    /// Cipher suites, extensions and groups in wire order, GREASE included.
    pub cipher_suites: Vec<u16>,
    pub extensions: Vec<u16>,
    pub supported_groups: Vec<u16>,
    pub key_share_groups: Vec<u16>,
    /// A key share of a post-quantum (ML-KEM or hybrid) group was sent.
    pub pq_key_share: bool,
    /// encrypted_client_hello was sent: `sni` is the public outer name.
    pub has_ech: bool,
    /// JA3 MD5 and string.
    pub ja3: String,
    pub ja3_string: String,
    pub ja4: String,
}

/// What a ServerHello (or HelloRetryRequest) says, owned, for events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHelloSummary {
    /// Negotiated version (supported_versions, else legacy_version).
    pub version: u16,
    pub version_name: &'static str,
    pub cipher: u16,
    pub cipher_name: &'static str,
    /// Group of the server's key share, or the one a HelloRetryRequest asks
    /// for; `None` before TLS 1.3.
    pub key_share_group: Option<u16>,
    pub key_share_group_name: Option<&'static str>,
    /// The key exchange is post-quantum.
    pub pq: bool,
    /// JA3S MD5 and string.
    pub ja3s: String,
    pub ja3s_string: String,
    pub hello_retry_request: bool,
}

pub fn client_hello_summary(hello: &ClientHello<'_>) -> ClientHelloSummary {
    let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let max_version = hello.max_version();
    let key_share_groups: Vec<u16> = hello.key_share_groups().collect();
    let Ja3 { string, hash } = ja3(hello);
    ClientHelloSummary {
        sni: hello.sni().map(lossy),
        alpn: hello.alpn().map(lossy).collect(),
        version_name: version_name(max_version),
        max_version,
        legacy_version: hello.legacy_version(),
        cipher_suites: hello.cipher_suites().collect(),
        extensions: hello.extensions().map(|(ty, _)| ty).collect(),
        supported_groups: hello.supported_groups().collect(),
        pq_key_share: key_share_groups.iter().any(|&g| is_post_quantum_group(g)),
        key_share_groups,
        has_ech: hello.has_ech(),
        ja3: hash,
        ja3_string: string,
        ja4: ja4(hello),
    }
}

pub fn server_hello_summary(hello: &ServerHello<'_>) -> ServerHelloSummary {
    let version = hello.selected_version();
    let group = hello.key_share_group();
    let Ja3 { string, hash } = ja3s(hello);
    ServerHelloSummary {
        version,
        version_name: version_name(version),
        cipher: hello.cipher_suite(),
        cipher_name: cipher_name(hello.cipher_suite()),
        key_share_group: group,
        key_share_group_name: group.map(group_name),
        pq: group.is_some_and(is_post_quantum_group),
        ja3s: hash,
        ja3s_string: string,
        hello_retry_request: hello.is_hello_retry_request(),
    }
}
