//! Zero-copy iterators over the lists inside hellos. The hello parsers
//! validate each list before handing one out, so these never meet
//! malformed bytes in practice; should they, they stop instead of
//! panicking.

use super::reader::Reader;

/// Big-endian `u16` items (cipher suites, groups, signature schemes,
/// versions), in wire order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct U16List<'a> {
    bytes: &'a [u8],
}

impl<'a> U16List<'a> {
    /// Items of `bytes`; a trailing odd byte is never yielded.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The raw bytes (two per item).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub const fn is_empty(&self) -> bool {
        self.bytes.len() < 2
    }

    /// Whether `value` is one of the items.
    pub fn contains(&self, value: u16) -> bool {
        let mut items = *self;
        items.any(|v| v == value)
    }
}

impl Iterator for U16List<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        let (item, rest) = self.bytes.split_first_chunk::<2>()?;
        self.bytes = rest;
        Some(u16::from_be_bytes(*item))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.bytes.len() / 2;
        (n, Some(n))
    }
}

impl ExactSizeIterator for U16List<'_> {}

/// `(extension_type, extension_data)` pairs in wire order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extensions<'a> {
    reader: Reader<'a>,
}

impl<'a> Extensions<'a> {
    /// Extensions in `bytes`: the contents of the extensions vector,
    /// without its two-byte length.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self {
            reader: Reader::new(bytes),
        }
    }

    /// The bytes not iterated yet.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.reader.remaining()
    }

    /// Data of the first extension of type `ty`.
    pub fn get(&self, ty: u16) -> Option<&'a [u8]> {
        let mut exts = *self;
        exts.find(|&(t, _)| t == ty).map(|(_, data)| data)
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let mut r = self.reader;
        let item = (r.u16().ok()?, r.vec16().ok()?);
        self.reader = r;
        Some(item)
    }
}

/// Items with a one-byte length prefix (ALPN protocol names).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtocolNames<'a> {
    reader: Reader<'a>,
}

impl<'a> ProtocolNames<'a> {
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Self {
            reader: Reader::new(bytes),
        }
    }
}

impl<'a> Iterator for ProtocolNames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let mut r = self.reader;
        let name = r.vec8().ok()?;
        self.reader = r;
        Some(name)
    }
}

/// One entry of a key_share extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyShareEntry<'a> {
    pub group: u16,
    pub key_exchange: &'a [u8],
}

/// The client's key shares, in wire order.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyShares<'a> {
    reader: Reader<'a>,
}

impl<'a> KeyShares<'a> {
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Self {
            reader: Reader::new(bytes),
        }
    }
}

impl<'a> Iterator for KeyShares<'a> {
    type Item = KeyShareEntry<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut r = self.reader;
        let group = r.u16().ok()?;
        let key_exchange = r.vec16().ok()?;
        self.reader = r;
        Some(KeyShareEntry {
            group,
            key_exchange,
        })
    }
}

/// `(name_type, name)` entries of a server_name extension.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerNames<'a> {
    reader: Reader<'a>,
}

impl<'a> ServerNames<'a> {
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Self {
            reader: Reader::new(bytes),
        }
    }
}

impl<'a> Iterator for ServerNames<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let mut r = self.reader;
        let item = (r.u8().ok()?, r.vec16().ok()?);
        self.reader = r;
        Some(item)
    }
}
