//! ClientHello (RFC 8446 4.1.2; RFC 5246 7.4.1.2 for the fields TLS 1.2
//! clients send the same way).

use super::ext::{self, Seen};
use super::lists::{Extensions, KeyShares, ProtocolNames, ServerNames, U16List};
use super::reader::{Reader, check_items};
use super::{NAME_TYPE_HOST_NAME, TlsError, extension, is_grease};

/// A parsed ClientHello, borrowing the message body.
#[derive(Clone, Copy, Debug)]
pub struct ClientHello<'a> {
    legacy_version: u16,
    random: &'a [u8; 32],
    session_id: &'a [u8],
    cipher_suites: &'a [u8],
    compression_methods: &'a [u8],
    extensions: &'a [u8],
    known: Known<'a>,
}

/// Contents of the interpreted extensions, validated, without their length
/// prefixes.
#[derive(Clone, Copy, Debug, Default)]
struct Known<'a> {
    server_name: Option<&'a [u8]>,
    supported_groups: &'a [u8],
    ec_point_formats: &'a [u8],
    signature_algorithms: &'a [u8],
    alpn: &'a [u8],
    supported_versions: Option<&'a [u8]>,
    key_shares: &'a [u8],
    ech: bool,
}

impl<'a> ClientHello<'a> {
    /// Parses a complete ClientHello body (the handshake message without
    /// its four-byte header). The body must end exactly where the hello
    /// does.
    pub fn parse(body: &'a [u8]) -> Result<Self, TlsError> {
        let mut r = Reader::new(body);
        let (legacy_version, random, session_id) = r.hello_prefix()?;
        let cipher_suites = check_items(r.vec16()?, 2)?;
        let compression_methods = r.vec8()?;
        let extensions = ext::extensions_block(&mut r)?;
        let known = Known::parse(extensions)?;
        Ok(Self {
            legacy_version,
            random,
            session_id,
            cipher_suites,
            compression_methods,
            extensions,
            known,
        })
    }

    /// legacy_version: 0x0303 for TLS 1.2 and 1.3 clients (1.3 is offered in
    /// supported_versions instead).
    pub const fn legacy_version(&self) -> u16 {
        self.legacy_version
    }

    pub const fn random(&self) -> &'a [u8; 32] {
        self.random
    }

    pub const fn session_id(&self) -> &'a [u8] {
        self.session_id
    }

    /// Offered cipher suites in wire order, GREASE included.
    pub const fn cipher_suites(&self) -> U16List<'a> {
        U16List::new(self.cipher_suites)
    }

    pub const fn compression_methods(&self) -> &'a [u8] {
        self.compression_methods
    }

    /// Every extension in wire order, GREASE included.
    pub const fn extensions(&self) -> Extensions<'a> {
        Extensions::new(self.extensions)
    }

    /// Data of the first extension of type `ty`.
    pub fn extension(&self, ty: u16) -> Option<&'a [u8]> {
        self.extensions().get(ty)
    }

    pub fn has_extension(&self, ty: u16) -> bool {
        self.extension(ty).is_some()
    }

    /// Entries of the server_name extension (empty when absent).
    pub fn server_names(&self) -> ServerNames<'a> {
        ServerNames::new(self.known.server_name.unwrap_or(&[]))
    }

    /// The first host_name of the server_name extension. Raw bytes: the
    /// peer is not trusted to send valid DNS names.
    pub fn sni(&self) -> Option<&'a [u8]> {
        self.server_names()
            .find(|&(ty, _)| ty == NAME_TYPE_HOST_NAME)
            .map(|(_, name)| name)
    }

    /// ALPN protocol names in preference order (empty when absent).
    pub const fn alpn(&self) -> ProtocolNames<'a> {
        ProtocolNames::new(self.known.alpn)
    }

    /// supported_versions entries (empty when absent; see
    /// [`Self::has_extension`] to tell an absent extension from an empty one).
    pub fn supported_versions(&self) -> U16List<'a> {
        U16List::new(self.known.supported_versions.unwrap_or(&[]))
    }

    pub const fn supported_groups(&self) -> U16List<'a> {
        U16List::new(self.known.supported_groups)
    }

    /// The client's key shares (group and key), in wire order.
    pub const fn key_shares(&self) -> KeyShares<'a> {
        KeyShares::new(self.known.key_shares)
    }

    /// Groups of the client's key shares, in wire order.
    pub fn key_share_groups(&self) -> impl Iterator<Item = u16> + Clone + use<'a> {
        self.key_shares().map(|entry| entry.group)
    }

    pub const fn signature_algorithms(&self) -> U16List<'a> {
        U16List::new(self.known.signature_algorithms)
    }

    pub const fn ec_point_formats(&self) -> &'a [u8] {
        self.known.ec_point_formats
    }

    /// Whether the client sent encrypted_client_hello: the SNI above is
    /// then the public (outer) name, not the real destination.
    pub const fn has_ech(&self) -> bool {
        self.known.ech
    }

    /// The highest version offered: the largest non-GREASE
    /// supported_versions entry, else legacy_version.
    pub fn max_version(&self) -> u16 {
        self.supported_versions()
            .filter(|&v| !is_grease(v))
            .max()
            .unwrap_or(self.legacy_version)
    }
}

impl<'a> Known<'a> {
    fn parse(block: &'a [u8]) -> Result<Self, TlsError> {
        let mut known = Self::default();
        let mut seen = Seen::default();
        ext::walk(block, |ty, data| {
            match ty {
                extension::SERVER_NAME => {
                    seen.mark(0)?;
                    known.server_name = Some(ext::server_name_list(data)?);
                }
                extension::SUPPORTED_GROUPS => {
                    seen.mark(1)?;
                    known.supported_groups = ext::u16_list16(data)?;
                }
                extension::EC_POINT_FORMATS => {
                    seen.mark(2)?;
                    known.ec_point_formats = ext::u8_list8(data)?;
                }
                extension::SIGNATURE_ALGORITHMS => {
                    seen.mark(3)?;
                    known.signature_algorithms = ext::u16_list16(data)?;
                }
                extension::ALPN => {
                    seen.mark(4)?;
                    known.alpn = ext::alpn_list(data)?;
                }
                extension::SUPPORTED_VERSIONS => {
                    seen.mark(5)?;
                    known.supported_versions = Some(ext::u16_list8(data)?);
                }
                extension::KEY_SHARE => {
                    seen.mark(6)?;
                    known.key_shares = ext::client_key_shares(data)?;
                }
                extension::ENCRYPTED_CLIENT_HELLO => {
                    seen.mark(7)?;
                    known.ech = true;
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(known)
    }
}
