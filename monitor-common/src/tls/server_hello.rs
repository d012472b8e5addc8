//! ServerHello and HelloRetryRequest (RFC 8446 4.1.3, 4.1.4; RFC 5246
//! 7.4.1.3).

use super::ext::{self, Seen};
use super::lists::{Extensions, ProtocolNames};
use super::reader::Reader;
use super::{TlsError, extension};

/// The random of a HelloRetryRequest: SHA-256("HelloRetryRequest")
/// (RFC 8446 4.1.3). A HelloRetryRequest is a ServerHello carrying it.
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A parsed ServerHello (or HelloRetryRequest), borrowing the body.
#[derive(Clone, Copy, Debug)]
pub struct ServerHello<'a> {
    legacy_version: u16,
    random: &'a [u8; 32],
    session_id: &'a [u8],
    cipher_suite: u16,
    compression_method: u8,
    extensions: &'a [u8],
    supported_version: Option<u16>,
    key_share_group: Option<u16>,
    alpn: &'a [u8],
}

impl<'a> ServerHello<'a> {
    /// Parses a complete ServerHello body (without the handshake header).
    pub fn parse(body: &'a [u8]) -> Result<Self, TlsError> {
        let mut r = Reader::new(body);
        let (legacy_version, random, session_id) = r.hello_prefix()?;
        let cipher_suite = r.u16()?;
        let compression_method = r.u8()?;
        let extensions = ext::extensions_block(&mut r)?;
        let mut hello = Self {
            legacy_version,
            random,
            session_id,
            cipher_suite,
            compression_method,
            extensions,
            supported_version: None,
            key_share_group: None,
            alpn: &[],
        };
        hello.parse_known()?;
        Ok(hello)
    }

    fn parse_known(&mut self) -> Result<(), TlsError> {
        let hrr = self.is_hello_retry_request();
        let mut seen = Seen::default();
        ext::walk(self.extensions, |ty, data| {
            match ty {
                extension::SUPPORTED_VERSIONS => {
                    seen.mark(0)?;
                    self.supported_version = Some(ext::single_u16(data)?);
                }
                // A HelloRetryRequest names only the group it wants
                // (RFC 8446 4.2.8); a ServerHello carries its key too.
                extension::KEY_SHARE => {
                    seen.mark(1)?;
                    self.key_share_group = Some(if hrr {
                        ext::single_u16(data)?
                    } else {
                        ext::server_key_share(data)?
                    });
                }
                // Only TLS 1.2 servers answer ALPN here (1.3 moves it to
                // EncryptedExtensions).
                extension::ALPN => {
                    seen.mark(2)?;
                    self.alpn = ext::alpn_list(data)?;
                }
                _ => {}
            }
            Ok(())
        })
    }

    pub const fn legacy_version(&self) -> u16 {
        self.legacy_version
    }

    pub const fn random(&self) -> &'a [u8; 32] {
        self.random
    }

    pub const fn session_id(&self) -> &'a [u8] {
        self.session_id
    }

    pub const fn cipher_suite(&self) -> u16 {
        self.cipher_suite
    }

    pub const fn compression_method(&self) -> u8 {
        self.compression_method
    }

    /// Every extension in wire order.
    pub const fn extensions(&self) -> Extensions<'a> {
        Extensions::new(self.extensions)
    }

    /// Data of the first extension of type `ty`.
    pub fn extension(&self, ty: u16) -> Option<&'a [u8]> {
        self.extensions().get(ty)
    }

    /// The negotiated version: supported_versions when present (TLS 1.3
    /// always sends it), else legacy_version.
    pub fn selected_version(&self) -> u16 {
        self.supported_version.unwrap_or(self.legacy_version)
    }

    /// The key exchange group: of the server's share, or the one a
    /// HelloRetryRequest asks for. `None` before TLS 1.3.
    pub const fn key_share_group(&self) -> Option<u16> {
        self.key_share_group
    }

    /// The ALPN protocol a TLS 1.2 server selected.
    pub fn alpn(&self) -> Option<&'a [u8]> {
        ProtocolNames::new(self.alpn).next()
    }

    pub fn is_hello_retry_request(&self) -> bool {
        *self.random == HELLO_RETRY_REQUEST_RANDOM
    }
}
