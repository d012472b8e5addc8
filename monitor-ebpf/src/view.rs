//! [`PacketView`] over XDP and TC packet memory: the one bounds-checked
//! accessor every packet read goes through.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_skb_load_bytes, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};
use monitor_common::parse::{PacketView, Step};

/// Direct reads of `[data, data_end)`, checked the way the verifier
/// requires: pointer plus constant length compared with `data_end`.
#[inline(always)]
fn direct<const N: usize>(data: usize, data_end: &usize, offset: usize) -> Option<[u8; N]> {
    let start = span(data, data_end, offset)?;
    // SAFETY: the N bytes at `start` lie inside the packet (checked).
    Some(unsafe { ptr::read_unaligned(start) })
}

/// The `N` bytes at `offset` in `[data, data_end)`, as a pointer the
/// verifier lets the program read and write those bytes through (until
/// the frame is resized).
#[inline(always)]
fn span<const N: usize>(data: usize, data_end: &usize, offset: usize) -> Option<*mut [u8; N]> {
    // No header of interest starts this far in (see MAX_HEADER_OFFSET);
    // the mask then changes nothing, but it bounds the offset right where
    // it is added to the packet pointer: older verifiers (6.1) lose the
    // bounds an earlier check gave a value once it was spilled to the
    // stack and reloaded.
    if offset > DIRECT_OFFSET_MASK {
        return None;
    }
    let start = data + (opaque_usize(offset) & DIRECT_OFFSET_MASK);
    // A fresh (volatile) read of data_end keeps LLVM from dropping this
    // check as implied by an earlier one: the verifier only trusts a check
    // made on the very pointer it is about to dereference.
    // SAFETY: `data_end` is a valid reference.
    let data_end = unsafe { ptr::read_volatile(data_end) };
    if start + N > data_end {
        return None;
    }
    Some(start as *mut [u8; N])
}

const DIRECT_OFFSET_MASK: usize = 0x0fff;

/// A value the compiler cannot see through, so the mask above stays.
#[inline(always)]
fn opaque_usize(value: usize) -> usize {
    // SAFETY: reads a valid local.
    unsafe { ptr::read_volatile(&value) }
}

pub struct XdpView {
    ctx: *mut xdp_md,
    data: usize,
    data_end: usize,
}

impl XdpView {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Self {
            ctx: ctx.ctx,
            data: ctx.data(),
            data_end: ctx.data_end(),
        }
    }

    /// The `N` bytes at `offset` for reading and writing in place. Valid
    /// until the frame is resized: take a new view after
    /// `bpf_xdp_adjust_tail`.
    #[inline(always)]
    pub fn span<const N: usize>(&self, offset: usize) -> Option<*mut [u8; N]> {
        span(self.data, &self.data_end, offset)
    }
}

impl PacketView for XdpView {
    /// Unrolled: XDP ingress's own frame leaves no room on the stack for
    /// a callback's (512 bytes for the whole call chain).
    #[inline(always)]
    fn repeat<S: Step>(&self, passes: u32, walk: &mut S) {
        crate::walk::unrolled(self, passes, walk);
    }

    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        direct(self.data, &self.data_end, offset)
    }

    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.data_end - self.data
    }
}

/// A socket buffer at TC. Headers the stack builds are in the linear part;
/// payload often is not (page fragments), so payload bytes are copied with
/// `bpf_skb_load_bytes` (see [`LoadBytes`]).
pub struct SkbView<'a> {
    ctx: &'a TcContext,
    data: usize,
    data_end: usize,
}

impl<'a> SkbView<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a TcContext) -> Self {
        Self {
            ctx,
            data: ctx.data(),
            data_end: ctx.data_end(),
        }
    }

    #[inline(always)]
    pub fn ifindex(&self) -> u32 {
        // SAFETY: the context pointer is valid for the program's run.
        unsafe { (*self.ctx.skb.skb).ifindex }
    }
}

impl PacketView for SkbView<'_> {
    #[inline(always)]
    fn repeat<S: Step>(&self, passes: u32, walk: &mut S) {
        crate::walk::repeat(self, passes, walk);
    }

    /// Direct reads only: the stack builds headers in the linear part. A
    /// fallback copy for each read would double the paths the verifier
    /// walks at every header; payload bytes use [`LoadBytes`] instead.
    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        direct(self.data, &self.data_end, offset)
    }

    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.ctx.len() as usize
    }
}

/// Bytes copied out of a packet (into map memory), read like the packet:
/// the slice's own reads, with walks run by `bpf_loop`.
pub struct Copied<'a>(pub &'a [u8]);

impl PacketView for Copied<'_> {
    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.0.bytes(offset)
    }

    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.0.len()
    }

    #[inline(always)]
    fn repeat<S: Step>(&self, passes: u32, walk: &mut S) {
        crate::walk::repeat(self, passes, walk);
    }
}

/// Copies packet bytes out with a helper, which checks the bounds itself:
/// no packet pointer arithmetic for the verifier to follow.
pub trait LoadBytes {
    /// Copies `len` bytes at `offset` to `dst`; false if they are not there.
    fn load(&self, offset: u32, dst: *mut u8, len: u32) -> bool;

    /// [`LoadBytes::load`] for a length only known at run time (1 to
    /// 4096): passed to the helper in a form whose bounds every verifier
    /// we support can follow.
    #[inline(always)]
    fn load_var(&self, offset: u32, dst: *mut u8, len: u32) -> bool {
        match load_len(len) {
            Some(len) => self.load(offset, dst, len),
            None => false,
        }
    }
}

/// Longest copy: a capture chunk.
const MAX_LOAD: u32 = 4096;

/// `len` in 1..=MAX_LOAD as a value whose bounds an older verifier (6.1)
/// still sees at the helper call: it does not narrow a register's minimum
/// from a `len != 0` test, and rejects a possibly empty copy. For lengths
/// already in range the arithmetic changes nothing.
#[inline(always)]
fn load_len(len: u32) -> Option<u32> {
    if len == 0 || len > MAX_LOAD {
        return None;
    }
    // SAFETY: reads a valid local (volatile, so LLVM keeps the arithmetic).
    let len = unsafe { ptr::read_volatile(&len) };
    Some(((len - 1) & (MAX_LOAD - 1)) + 1)
}

impl LoadBytes for XdpView {
    #[inline(always)]
    fn load(&self, offset: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: `dst` has room for `len` bytes (the caller's contract).
        unsafe { bpf_xdp_load_bytes(self.ctx, offset, dst as *mut c_void, len) == 0 }
    }
}

impl LoadBytes for SkbView<'_> {
    #[inline(always)]
    fn load(&self, offset: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: `dst` has room for `len` bytes (the caller's contract).
        unsafe {
            bpf_skb_load_bytes(
                self.ctx.skb.skb as *const c_void,
                offset,
                dst as *mut c_void,
                len,
            ) == 0
        }
    }
}
