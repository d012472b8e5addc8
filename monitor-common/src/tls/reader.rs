//! A bounds-checked cursor over a byte slice. Every read either returns the
//! bytes or an error; nothing indexes past the end, so the parsers built on
//! it cannot panic on any input.

use super::TlsError;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) const fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) const fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// `n` bytes of a fixed-size field; running out is `Truncated`.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], TlsError> {
        self.take_or(n, TlsError::Truncated)
    }

    fn take_or(&mut self, n: usize, err: TlsError) -> Result<&'a [u8], TlsError> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(err)?;
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], TlsError> {
        self.take(N)?.try_into().map_err(|_| TlsError::Truncated)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, TlsError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, TlsError> {
        Ok(u16::from_be_bytes(*self.array::<2>()?))
    }

    pub(crate) fn u24(&mut self) -> Result<u32, TlsError> {
        let [a, b, c] = *self.array::<3>()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    /// A vector with a one-byte length prefix. A length that runs past the
    /// container is `BadLength`: the container's own length is trusted
    /// (it was checked one level up), so the inner field is the liar.
    pub(crate) fn vec8(&mut self) -> Result<&'a [u8], TlsError> {
        let len = self.u8()?;
        self.take_or(usize::from(len), TlsError::BadLength)
    }

    /// A vector with a two-byte length prefix; see [`Reader::vec8`].
    pub(crate) fn vec16(&mut self) -> Result<&'a [u8], TlsError> {
        let len = self.u16()?;
        self.take_or(usize::from(len), TlsError::BadLength)
    }

    /// Fails with `err` unless everything was consumed.
    /// The start both hellos share: legacy_version, random, session id
    /// (at most 32 bytes, RFC 8446 section 4.1.2).
    pub(crate) fn hello_prefix(&mut self) -> Result<(u16, &'a [u8; 32], &'a [u8]), TlsError> {
        let legacy_version = self.u16()?;
        let random = self.array::<32>()?;
        let session_id = self.vec8()?;
        if session_id.len() > 32 {
            return Err(TlsError::BadLength);
        }
        Ok((legacy_version, random, session_id))
    }

    pub(crate) fn finish(&self, err: TlsError) -> Result<(), TlsError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// Reads a whole vector of `width`-byte items: `BadLength` when the byte
/// count is not a multiple of the item size.
pub(crate) fn check_items(bytes: &[u8], width: usize) -> Result<&[u8], TlsError> {
    if width == 0 || !bytes.len().is_multiple_of(width) {
        return Err(TlsError::BadLength);
    }
    Ok(bytes)
}
