//! Extension block walking and the inner-structure checks of the
//! extensions the hello parsers interpret. Each check returns the list's
//! contents (without its length prefix) once the whole structure is known
//! to fill the extension data exactly, which is what lets the iterators in
//! `lists` assume well-formed input.

use super::TlsError;
use super::reader::{Reader, check_items};

/// Reads the optional extensions block that ends a hello: absent when the
/// hello ends right after the fixed fields (pre-TLS-1.2 clients), else a
/// two-byte length and exactly that many bytes, with nothing after them.
pub(crate) fn extensions_block<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], TlsError> {
    if r.is_empty() {
        return Ok(&[]);
    }
    let block = r.vec16()?;
    r.finish(TlsError::TrailingBytes)?;
    Ok(block)
}

/// Calls `f` for each `(type, data)` of an extensions block. An entry that
/// overruns the block is `BadLength`: the block's own length was checked
/// against the message, so the entry's length is the wrong one.
pub(crate) fn walk<'a>(
    block: &'a [u8],
    mut f: impl FnMut(u16, &'a [u8]) -> Result<(), TlsError>,
) -> Result<(), TlsError> {
    let mut r = Reader::new(block);
    while !r.is_empty() {
        let ty = r.u16().map_err(|_| TlsError::BadLength)?;
        let data = r.vec16().map_err(|_| TlsError::BadLength)?;
        f(ty, data)?;
    }
    Ok(())
}

/// Remembers which interpreted extensions were seen, to reject repeats.
#[derive(Default)]
pub(crate) struct Seen(u16);

impl Seen {
    /// Marks `slot` (0..16) seen; `DuplicateExtension` the second time.
    pub(crate) fn mark(&mut self, slot: u8) -> Result<(), TlsError> {
        let bit = 1u16.checked_shl(u32::from(slot)).unwrap_or(0);
        if self.0 & bit != 0 {
            return Err(TlsError::DuplicateExtension);
        }
        self.0 |= bit;
        Ok(())
    }
}

/// Runs `check` over an extension's data; any failure inside is
/// `BadExtension`, and so are bytes left after the structure.
fn inner<'a>(
    data: &'a [u8],
    check: impl FnOnce(&mut Reader<'a>) -> Result<&'a [u8], TlsError>,
) -> Result<&'a [u8], TlsError> {
    let mut r = Reader::new(data);
    let out = check(&mut r).map_err(|_| TlsError::BadExtension)?;
    r.finish(TlsError::BadExtension)?;
    Ok(out)
}

/// `u16` items behind a two-byte length (supported_groups,
/// signature_algorithms).
pub(crate) fn u16_list16(data: &[u8]) -> Result<&[u8], TlsError> {
    inner(data, |r| check_items(r.vec16()?, 2))
}

/// `u16` items behind a one-byte length (ClientHello supported_versions).
pub(crate) fn u16_list8(data: &[u8]) -> Result<&[u8], TlsError> {
    inner(data, |r| check_items(r.vec8()?, 2))
}

/// Bytes behind a one-byte length (ec_point_formats).
pub(crate) fn u8_list8(data: &[u8]) -> Result<&[u8], TlsError> {
    inner(data, |r| r.vec8())
}

/// Exactly one `u16` (ServerHello supported_versions, HelloRetryRequest
/// key_share).
pub(crate) fn single_u16(data: &[u8]) -> Result<u16, TlsError> {
    match *data {
        [hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(TlsError::BadExtension),
    }
}

/// Checks that `list` is a sequence of `item` structures with nothing left
/// over.
fn items<'a>(
    list: &'a [u8],
    mut item: impl FnMut(&mut Reader<'a>) -> Result<(), TlsError>,
) -> Result<&'a [u8], TlsError> {
    let mut r = Reader::new(list);
    while !r.is_empty() {
        item(&mut r)?;
    }
    Ok(list)
}

/// ALPN (RFC 7301 3.1): a two-byte-length list of one-byte-length names.
pub(crate) fn alpn_list(data: &[u8]) -> Result<&[u8], TlsError> {
    inner(data, |r| items(r.vec16()?, |r| r.vec8().map(drop)))
}

/// server_name (RFC 6066 3): a two-byte-length list of (type, two-byte-length
/// name). Empty data is allowed: it is what a server echoes, and a client
/// sending it has simply named nothing.
pub(crate) fn server_name_list(data: &[u8]) -> Result<&[u8], TlsError> {
    if data.is_empty() {
        return Ok(data);
    }
    inner(data, |r| {
        items(r.vec16()?, |r| {
            r.u8()?;
            r.vec16().map(drop)
        })
    })
}

/// ClientHello key_share (RFC 8446 4.2.8): a two-byte-length list of
/// (group, two-byte-length key).
pub(crate) fn client_key_shares(data: &[u8]) -> Result<&[u8], TlsError> {
    inner(data, |r| {
        items(r.vec16()?, |r| {
            r.u16()?;
            r.vec16().map(drop)
        })
    })
}

/// ServerHello key_share: one (group, two-byte-length key) entry.
pub(crate) fn server_key_share(data: &[u8]) -> Result<u16, TlsError> {
    let mut group = 0;
    inner(data, |r| {
        group = r.u16()?;
        r.vec16()
    })?;
    Ok(group)
}
