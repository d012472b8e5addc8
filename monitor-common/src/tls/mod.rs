//! TLS record and hello parsing: zero-copy, `no_std` without `alloc`, and
//! panic-free on any input, so the same code can run on the host (daemon,
//! tests, fuzzing) and later in the kernel.
//!
//! Layers, each with its own length checks:
//! - [`RecordHeader`] (RFC 8446 5.1): content type, legacy version, length.
//! - [`HandshakeHeader`] (RFC 8446 4): message type and 24-bit length.
//! - [`ClientHello`] / [`ServerHello`] (RFC 8446 4.1.2, 4.1.3): parsed from a
//!   complete message body; every list they expose is validated at parse
//!   time, so their accessors are infallible.
//!
//! A hello that spans several records must be reassembled first (the
//! daemon does that); [`parse_client_hello_record`] and
//! [`parse_server_hello_record`] cover the common single-record case.

mod client_hello;
mod ext;
pub mod fuzz;
mod lists;
mod names;
mod reader;
mod record;
mod server_hello;

#[cfg(any(test, feature = "frames"))]
pub mod builder;
#[cfg(any(test, feature = "frames"))]
pub mod samples;

#[cfg(test)]
mod tests_client;
#[cfg(test)]
mod tests_corpus;
#[cfg(test)]
mod tests_crafted;
#[cfg(test)]
mod tests_malformed;
#[cfg(test)]
mod tests_server;

pub use client_hello::ClientHello;
pub use lists::{Extensions, KeyShareEntry, KeyShares, ProtocolNames, ServerNames, U16List};
pub use names::{cipher_name, description_name, group_name, version_name};
pub use record::{
    Alert, HANDSHAKE_HEADER_LEN, HandshakeHeader, MAX_RECORD_LEN, RECORD_HEADER_LEN, RecordHeader,
    parse_client_hello_record, parse_server_hello_record, split_record,
};
pub use server_hello::{HELLO_RETRY_REQUEST_RANDOM, ServerHello};

labelled_enum! {
    /// Why a TLS record or hello could not be parsed.
    pub enum TlsError: u8 {
        /// The input ends inside a fixed-size field or before the length a
        /// record or handshake header announced.
        Truncated = 0 => "truncated",
        /// A length field overruns its container, a list's byte count does
        /// not fit its item size, or a record is longer than TLS allows.
        BadLength = 1 => "bad_length",
        /// The record is not a handshake record.
        NotHandshake = 2 => "not_handshake",
        /// A handshake message, but not the hello type asked for.
        WrongMessage = 3 => "wrong_message",
        /// Bytes left over after a message or vector that should end there.
        TrailingBytes = 4 => "trailing_bytes",
        /// An extension's inner structure overruns or underfills its data.
        BadExtension = 5 => "bad_extension",
        /// An extension the parser interprets appears twice (RFC 8446 4.2
        /// forbids it, and two SNIs would make the hello ambiguous).
        DuplicateExtension = 6 => "duplicate_extension",
        /// The record is not an alert record.
        NotAlert = 7 => "not_alert",
    }
}

impl core::fmt::Display for TlsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Truncated => "TLS data ends before the length its header announced",
            Self::BadLength => "a TLS length field does not fit its container",
            Self::NotHandshake => "the TLS record is not a handshake record",
            Self::WrongMessage => "the handshake message is not the hello expected",
            Self::TrailingBytes => "bytes follow the end of a TLS hello",
            Self::BadExtension => "a TLS extension's contents do not fit its length",
            Self::DuplicateExtension => "a TLS extension appears twice in one hello",
            Self::NotAlert => "the TLS record is not an alert record",
        })
    }
}

/// `core::error::Error`, so daemon error types can wrap it as a source.
impl core::error::Error for TlsError {}

/// Record content types (RFC 8446 5.1).
pub mod content_type {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
}

/// Handshake message types (RFC 8446 4, RFC 5246 7.4).
pub mod handshake_type {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const NEW_SESSION_TICKET: u8 = 4;
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    pub const CERTIFICATE_REQUEST: u8 = 13;
    pub const SERVER_HELLO_DONE: u8 = 14;
    pub const CERTIFICATE_VERIFY: u8 = 15;
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    pub const FINISHED: u8 = 20;
}

/// Extension types the parsers interpret (IANA "TLS ExtensionType Values").
pub mod extension {
    pub const SERVER_NAME: u16 = 0;
    pub const SUPPORTED_GROUPS: u16 = 10;
    pub const EC_POINT_FORMATS: u16 = 11;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const KEY_SHARE: u16 = 51;
    pub const ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
}

/// Protocol versions (RFC 8446 4.1.2 and its predecessors).
pub mod version {
    pub const SSL3: u16 = 0x0300;
    pub const TLS1_0: u16 = 0x0301;
    pub const TLS1_1: u16 = 0x0302;
    pub const TLS1_2: u16 = 0x0303;
    pub const TLS1_3: u16 = 0x0304;
}

/// `server_name` entry type for DNS host names (RFC 6066 3).
pub const NAME_TYPE_HOST_NAME: u8 = 0;

/// Whether `value` is a GREASE value (RFC 8701 2: 0x0A0A, 0x1A1A, ...,
/// 0xFAFA), reserved so that peers exercise their tolerance of unknown
/// cipher suites, extensions, groups and versions.
pub const fn is_grease(value: u16) -> bool {
    let [hi, lo] = value.to_be_bytes();
    hi == lo && lo & 0x0f == 0x0a
}

/// Whether `group` is a post-quantum key exchange (IANA "TLS Supported
/// Groups"): the hybrid ML-KEM groups of draft-ietf-tls-ecdhe-mlkem, the
/// pure ML-KEM groups of draft-ietf-tls-mlkem, and the earlier Kyber
/// drafts browsers shipped.
pub const fn is_post_quantum_group(group: u16) -> bool {
    matches!(
        group,
        // MLKEM512, MLKEM768, MLKEM1024
        0x0200..=0x0202
            // SecP256r1MLKEM768, X25519MLKEM768, SecP384r1MLKEM1024
            | 0x11eb..=0x11ed
            // X25519Kyber768Draft00, SecP256r1Kyber768Draft00
            | 0x6399
            | 0x639a
    )
}
