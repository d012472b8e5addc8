//! Hello and record builders for tests (crafted GREASE, ECH, post-quantum
//! key shares, lying lengths). Test support: panics on inputs that cannot
//! be encoded instead of returning errors.

use alloc::vec;
use alloc::vec::Vec;

use super::{content_type, extension, handshake_type};

pub fn vec8(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(bytes.len()).expect("vec8 item fits")];
    out.extend_from_slice(bytes);
    out
}

pub fn vec16(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("vec16 item fits");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

pub fn u16s(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// A handshake message: type, 24-bit length, body.
pub fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("body fits");
    assert!(len < 1 << 24, "handshake body too long");
    let mut out = vec![msg_type];
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

/// `payload` cut into records of at most `max_fragment` bytes each.
pub fn records(content_type: u8, payload: &[u8], max_fragment: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in payload.chunks(max_fragment.max(1)) {
        out.push(content_type);
        out.extend_from_slice(&0x0303u16.to_be_bytes());
        out.extend_from_slice(&vec16(chunk));
    }
    out
}

/// A ClientHello, by default TLS 1.2-shaped with one suite and an empty
/// extensions block.
#[derive(Clone, Debug)]
pub struct ClientHelloBuilder {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<u16>,
    pub compression_methods: Vec<u8>,
    /// `None`: no extensions block at all (not even its length).
    pub extensions: Option<Vec<(u16, Vec<u8>)>>,
}

impl Default for ClientHelloBuilder {
    fn default() -> Self {
        Self {
            legacy_version: 0x0303,
            random: [0x11; 32],
            session_id: Vec::new(),
            cipher_suites: vec![0x1301],
            compression_methods: vec![0],
            extensions: Some(Vec::new()),
        }
    }
}

impl ClientHelloBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn version(mut self, version: u16) -> Self {
        self.legacy_version = version;
        self
    }

    pub fn ciphers(mut self, suites: &[u16]) -> Self {
        self.cipher_suites = suites.to_vec();
        self
    }

    pub fn no_extensions(mut self) -> Self {
        self.extensions = None;
        self
    }

    /// Appends an extension with raw `data`.
    pub fn ext(mut self, ty: u16, data: &[u8]) -> Self {
        self.extensions
            .get_or_insert_with(Vec::new)
            .push((ty, data.to_vec()));
        self
    }

    pub fn sni(self, host: &str) -> Self {
        let entry = [&[0u8][..], &vec16(host.as_bytes())].concat();
        self.ext(extension::SERVER_NAME, &vec16(&entry))
    }

    pub fn alpn(self, protocols: &[&str]) -> Self {
        let list: Vec<u8> = protocols.iter().flat_map(|p| vec8(p.as_bytes())).collect();
        self.ext(extension::ALPN, &vec16(&list))
    }

    pub fn supported_versions(self, versions: &[u16]) -> Self {
        self.ext(extension::SUPPORTED_VERSIONS, &vec8(&u16s(versions)))
    }

    pub fn supported_groups(self, groups: &[u16]) -> Self {
        self.ext(extension::SUPPORTED_GROUPS, &vec16(&u16s(groups)))
    }

    pub fn signature_algorithms(self, schemes: &[u16]) -> Self {
        self.ext(extension::SIGNATURE_ALGORITHMS, &vec16(&u16s(schemes)))
    }

    pub fn ec_point_formats(self, formats: &[u8]) -> Self {
        self.ext(extension::EC_POINT_FORMATS, &vec8(formats))
    }

    /// Key shares of the given groups, with keys of the given lengths
    /// (filled with a recognisable pattern).
    pub fn key_shares(self, shares: &[(u16, usize)]) -> Self {
        let mut list = Vec::new();
        for &(group, len) in shares {
            list.extend_from_slice(&group.to_be_bytes());
            let key: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            list.extend_from_slice(&vec16(&key));
        }
        self.ext(extension::KEY_SHARE, &vec16(&list))
    }

    pub fn body(&self) -> Vec<u8> {
        let mut out = self.legacy_version.to_be_bytes().to_vec();
        out.extend_from_slice(&self.random);
        out.extend_from_slice(&vec8(&self.session_id));
        out.extend_from_slice(&vec16(&u16s(&self.cipher_suites)));
        out.extend_from_slice(&vec8(&self.compression_methods));
        if let Some(exts) = &self.extensions {
            out.extend_from_slice(&vec16(&encode_extensions(exts)));
        }
        out
    }

    /// The handshake message (header and body).
    pub fn message(&self) -> Vec<u8> {
        handshake(handshake_type::CLIENT_HELLO, &self.body())
    }

    /// The message in one handshake record.
    pub fn record(&self) -> Vec<u8> {
        records(content_type::HANDSHAKE, &self.message(), usize::MAX)
    }
}

pub fn encode_extensions(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ty, data) in exts {
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&vec16(data));
    }
    out
}

/// A ServerHello, by default TLS 1.2-shaped with no extensions block.
#[derive(Clone, Debug)]
pub struct ServerHelloBuilder {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suite: u16,
    pub compression_method: u8,
    pub extensions: Option<Vec<(u16, Vec<u8>)>>,
}

impl Default for ServerHelloBuilder {
    fn default() -> Self {
        Self {
            legacy_version: 0x0303,
            random: [0x22; 32],
            session_id: Vec::new(),
            cipher_suite: 0xc02f,
            compression_method: 0,
            extensions: None,
        }
    }
}

impl ServerHelloBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cipher(mut self, suite: u16) -> Self {
        self.cipher_suite = suite;
        self
    }

    pub fn ext(mut self, ty: u16, data: &[u8]) -> Self {
        self.extensions
            .get_or_insert_with(Vec::new)
            .push((ty, data.to_vec()));
        self
    }

    pub fn selected_version(self, version: u16) -> Self {
        self.ext(extension::SUPPORTED_VERSIONS, &version.to_be_bytes())
    }

    pub fn key_share(self, group: u16, key_len: usize) -> Self {
        let key: Vec<u8> = (0..key_len).map(|i| (i % 251) as u8).collect();
        let data = [&group.to_be_bytes()[..], &vec16(&key)].concat();
        self.ext(extension::KEY_SHARE, &data)
    }

    /// Turns this into a HelloRetryRequest asking for `group`.
    pub fn hello_retry_request(mut self, group: u16) -> Self {
        self.random = super::HELLO_RETRY_REQUEST_RANDOM;
        self.ext(extension::KEY_SHARE, &group.to_be_bytes())
    }

    pub fn body(&self) -> Vec<u8> {
        let mut out = self.legacy_version.to_be_bytes().to_vec();
        out.extend_from_slice(&self.random);
        out.extend_from_slice(&vec8(&self.session_id));
        out.extend_from_slice(&self.cipher_suite.to_be_bytes());
        out.push(self.compression_method);
        if let Some(exts) = &self.extensions {
            out.extend_from_slice(&vec16(&encode_extensions(exts)));
        }
        out
    }

    pub fn message(&self) -> Vec<u8> {
        handshake(handshake_type::SERVER_HELLO, &self.body())
    }

    pub fn record(&self) -> Vec<u8> {
        records(content_type::HANDSHAKE, &self.message(), usize::MAX)
    }
}
