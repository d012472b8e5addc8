//! [`PacketView`] over XDP and TC packet memory: the one bounds-checked
//! accessor every packet read goes through.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    helpers::generated::bpf_skb_load_bytes,
    programs::{TcContext, XdpContext},
};
use monitor_common::parse::PacketView;

/// Direct reads of `[data, data_end)`, checked the way the verifier
/// requires: pointer plus constant length compared with `data_end`.
#[inline(always)]
fn direct<const N: usize>(data: usize, data_end: &usize, offset: usize) -> Option<[u8; N]> {
    let start = data + offset;
    // A fresh (volatile) read of data_end keeps LLVM from dropping this
    // check as implied by an earlier one: the verifier only trusts a check
    // made on the very pointer it is about to dereference.
    // SAFETY: `data_end` is a valid reference.
    let data_end = unsafe { ptr::read_volatile(data_end) };
    if start + N > data_end {
        return None;
    }
    // SAFETY: the N bytes at `start` lie inside the packet (checked above).
    Some(unsafe { ptr::read_unaligned(start as *const [u8; N]) })
}

pub struct XdpView {
    data: usize,
    data_end: usize,
}

impl XdpView {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Self {
            data: ctx.data(),
            data_end: ctx.data_end(),
        }
    }
}

impl PacketView for XdpView {
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
/// anything beyond it (a non-linear skb) is copied with
/// `bpf_skb_load_bytes` rather than reported as truncated.
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
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        if let Some(bytes) = direct(self.data, &self.data_end, offset) {
            return Some(bytes);
        }
        let mut out = [0u8; N];
        // SAFETY: `out` is N writable bytes; the helper checks the skb.
        let ret = unsafe {
            bpf_skb_load_bytes(
                self.ctx.skb.skb as *const c_void,
                offset as u32,
                out.as_mut_ptr() as *mut c_void,
                N as u32,
            )
        };
        (ret == 0).then_some(out)
    }

    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.ctx.len() as usize
    }
}
