//! The record layer (RFC 8446 5.1) and handshake message headers (RFC 8446
//! 4), plus the single-record shortcuts for hellos and plaintext alerts.

use super::reader::Reader;
use super::{ClientHello, ServerHello, TlsError, content_type, handshake_type};

pub const RECORD_HEADER_LEN: usize = 5;
pub const HANDSHAKE_HEADER_LEN: usize = 4;
/// Longest record fragment accepted: 2^14 bytes of plaintext plus the
/// 2048 bytes of expansion TLS 1.2 allows for ciphertext (RFC 5246 6.2.3;
/// TLS 1.3 allows less). Anything longer is not TLS.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// A TLS record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: u8,
    /// Legacy record version; 0x0301 or 0x0303 in practice, never
    /// authoritative for the negotiated version.
    pub version: u16,
    /// Length of the fragment that follows the header.
    pub length: u16,
}

impl RecordHeader {
    /// Parses the first five bytes of `bytes`. `BadLength` for a fragment
    /// longer than [`MAX_RECORD_LEN`].
    pub fn parse(bytes: &[u8]) -> Result<Self, TlsError> {
        let mut r = Reader::new(bytes);
        let header = Self {
            content_type: r.u8()?,
            version: r.u16()?,
            length: r.u16()?,
        };
        if usize::from(header.length) > MAX_RECORD_LEN {
            return Err(TlsError::BadLength);
        }
        Ok(header)
    }

    /// Header plus fragment length.
    pub const fn total_len(&self) -> usize {
        RECORD_HEADER_LEN + self.length as usize
    }
}

/// Splits the first record off `bytes`: its header, its fragment, and what
/// follows. `Truncated` when the fragment is incomplete.
pub fn split_record(bytes: &[u8]) -> Result<(RecordHeader, &[u8], &[u8]), TlsError> {
    let header = RecordHeader::parse(bytes)?;
    let mut r = Reader::new(bytes);
    r.take(RECORD_HEADER_LEN)?;
    let fragment = r.take(usize::from(header.length))?;
    Ok((header, fragment, r.remaining()))
}

/// A handshake message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeHeader {
    pub msg_type: u8,
    /// Body length (24 bits on the wire).
    pub length: u32,
}

impl HandshakeHeader {
    /// Parses the first four bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, TlsError> {
        let mut r = Reader::new(bytes);
        Ok(Self {
            msg_type: r.u8()?,
            length: r.u24()?,
        })
    }

    /// Splits `bytes` (handshake-layer bytes starting at a message) into
    /// the header, the complete body and what follows. `Truncated` when the
    /// body is incomplete.
    pub fn split(bytes: &[u8]) -> Result<(Self, &[u8], &[u8]), TlsError> {
        let header = Self::parse(bytes)?;
        let mut r = Reader::new(bytes);
        r.take(HANDSHAKE_HEADER_LEN)?;
        let len = usize::try_from(header.length).map_err(|_| TlsError::BadLength)?;
        let body = r.take(len)?;
        Ok((header, body, r.remaining()))
    }
}

/// The body of the handshake message of type `msg_type` that opens the
/// record at the start of `bytes`. The record must be a handshake record
/// and hold the whole message; messages after it in the same record are
/// ignored (a TLS 1.2 server may pack its whole flight into one record).
fn single_record_message(bytes: &[u8], msg_type: u8) -> Result<&[u8], TlsError> {
    let (header, fragment, _) = split_record(bytes)?;
    if header.content_type != content_type::HANDSHAKE {
        return Err(TlsError::NotHandshake);
    }
    let (hs, body, _) = HandshakeHeader::split(fragment)?;
    if hs.msg_type != msg_type {
        return Err(TlsError::WrongMessage);
    }
    Ok(body)
}

/// Parses a ClientHello held entirely in the first record of `bytes`.
pub fn parse_client_hello_record(bytes: &[u8]) -> Result<ClientHello<'_>, TlsError> {
    ClientHello::parse(single_record_message(bytes, handshake_type::CLIENT_HELLO)?)
}

/// Parses a ServerHello (or HelloRetryRequest) held entirely in the first
/// record of `bytes`.
pub fn parse_server_hello_record(bytes: &[u8]) -> Result<ServerHello<'_>, TlsError> {
    ServerHello::parse(single_record_message(bytes, handshake_type::SERVER_HELLO)?)
}

/// A plaintext alert (RFC 8446 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alert {
    /// 1 = warning, 2 = fatal.
    pub level: u8,
    /// See [`super::description_name`].
    pub description: u8,
}

impl Alert {
    pub const LEVEL_WARNING: u8 = 1;
    pub const LEVEL_FATAL: u8 = 2;

    /// Reads the alert record at the start of `bytes`. `NotAlert` for any
    /// other record type; `BadLength` unless the fragment is exactly two
    /// bytes, which also rules out alerts encrypted after a TLS 1.2
    /// ChangeCipherSpec (TLS 1.3 encrypts them as application data).
    pub fn parse_record(bytes: &[u8]) -> Result<Self, TlsError> {
        let (header, fragment, _) = split_record(bytes)?;
        if header.content_type != content_type::ALERT {
            return Err(TlsError::NotAlert);
        }
        match *fragment {
            [level, description] => Ok(Self { level, description }),
            _ => Err(TlsError::BadLength),
        }
    }
}
