//! The walk over an IPv6 packet's extension headers, to the header that
//! ends the chain. The parser and the fragment check both take it, so they
//! agree on where every chain ends.

use core::ops::ControlFlow;

use crate::parse::{IPPROTO_TCP, MAX_IPV6_EXT_HEADERS, PacketView, Step, read};

/// IPv6 extension headers (RFC 8200 section 4, IANA "IPv6 Extension
/// Header Types").
pub(crate) mod ipv6_ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTH: u8 = 51;
    pub const DEST_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

/// Where a chain of IPv6 headers ends; offsets are the frame's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainEnd {
    /// The TCP header, at this offset.
    Tcp(usize),
    /// A Fragment header, at this offset.
    Fragment(usize),
    /// Another upper layer (UDP, ICMPv6, ESP, no next header, ...).
    Other,
    /// An extension header runs past the data.
    Truncated,
    /// More than [`MAX_IPV6_EXT_HEADERS`] extension headers.
    TooLong,
}

/// Follows the chain that starts with header type `next` at `cursor` (the
/// fixed header's Next Header field and the offset just past it).
#[inline(always)]
pub fn walk<V: PacketView + ?Sized>(pkt: &V, next: u8, cursor: usize) -> ChainEnd {
    let mut chain = Chain {
        next: u64::from(next),
        cursor: cursor as u64,
        end: NOT_WALKED,
    };
    // One pass per extension header, and one for the header after them.
    pkt.repeat(MAX_IPV6_EXT_HEADERS as u32 + 1, &mut chain);
    let at = chain.cursor as usize;
    match chain.end {
        TCP => ChainEnd::Tcp(at),
        FRAGMENT => ChainEnd::Fragment(at),
        OTHER => ChainEnd::Other,
        TRUNCATED => ChainEnd::Truncated,
        TOO_LONG => ChainEnd::TooLong,
        // Not walked at all (the kernel found no room for the walk, which
        // does not happen): as before there was a walk, nothing judged.
        _ => ChainEnd::Other,
    }
}

/// The walk's state: the next header's type and offset, and how the chain
/// ended (one of the codes below) once it has.
#[repr(C)]
struct Chain {
    next: u64,
    cursor: u64,
    end: u64,
}

const NOT_WALKED: u64 = 0;
const TCP: u64 = 1;
const FRAGMENT: u64 = 2;
const OTHER: u64 = 3;
const TRUNCATED: u64 = 4;
const TOO_LONG: u64 = 5;

impl Step for Chain {
    #[inline(always)]
    fn step<V: PacketView + ?Sized>(&mut self, pkt: &V, pass: u32) -> ControlFlow<()> {
        let cursor = self.cursor as usize;
        // Length of the header in 8-octet units, less one; AH counts
        // 4-octet units, less two (RFC 4302).
        let (unit, extra) = match self.next as u8 {
            IPPROTO_TCP => return self.end(TCP),
            ipv6_ext::FRAGMENT => return self.end(FRAGMENT),
            ipv6_ext::HOP_BY_HOP
            | ipv6_ext::ROUTING
            | ipv6_ext::DEST_OPTS
            | ipv6_ext::MOBILITY
            | ipv6_ext::HIP
            | ipv6_ext::SHIM6 => (8, 1),
            ipv6_ext::AUTH => (4, 2),
            _ => return self.end(OTHER),
        };
        // The last pass is for the header after the extension headers.
        if pass >= MAX_IPV6_EXT_HEADERS as u32 {
            return self.end(TOO_LONG);
        }
        let Ok(ext) = read::<V, 2>(pkt, cursor) else {
            return self.end(TRUNCATED);
        };
        self.next = u64::from(ext[0]);
        self.cursor = (cursor + (usize::from(ext[1]) + extra) * unit) as u64;
        ControlFlow::Continue(())
    }
}

impl Chain {
    #[inline(always)]
    fn end(&mut self, end: u64) -> ControlFlow<()> {
        self.end = end;
        ControlFlow::Break(())
    }
}
