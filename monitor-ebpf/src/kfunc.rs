//! Calls to kernel functions (kfuncs) without loader support.
//!
//! aya 0.14 relocates helper calls, BPF-to-BPF calls and maps, but not
//! kfunc calls (`ksym` externs: no `BPF_PSEUDO_KFUNC_CALL` fix-up, and an
//! extern call fails its call relocation). So the call is emitted here as
//! one raw instruction, `BPF_JMP | BPF_CALL` with src_reg
//! `BPF_PSEUDO_KFUNC_CALL` and a placeholder id, and the daemon writes the
//! kfunc's BTF id from `/sys/kernel/btf/vmlinux` into it before loading
//! (`monitor::syncookies::kfunc`). Arguments go in r1-r5 and the result
//! comes back in r0, as for any call; r1-r5 are clobbered.

use core::ffi::c_void;

use aya_ebpf::bindings::__sk_buff;
use monitor_common::syncookie::ReqAttrs;

/// `int bpf_sk_assign_tcp_reqsk(struct __sk_buff *skb, struct sock *sk,
/// struct bpf_tcp_req_attrs *attrs, int attrs__sz)` (net/core/filter.c).
///
/// # Safety
/// `skb` is the program's context, `sk` a trusted listener pointer and
/// `attrs` points to `size` readable bytes.
#[inline(always)]
pub unsafe fn sk_assign_tcp_reqsk(
    skb: *mut __sk_buff,
    sk: *mut c_void,
    attrs: *mut ReqAttrs,
    size: u32,
) -> i64 {
    let ret: i64;
    // The bytes of KFUNC_PLACEHOLDER_INSN (monitor_common::syncookie).
    // SAFETY: a call following the BPF calling convention.
    unsafe {
        core::arch::asm!(
            ".quad 0x7eac000100002085",
            inlateout("r1") skb => _,
            inlateout("r2") sk => _,
            inlateout("r3") attrs => _,
            inlateout("r4") u64::from(size) => _,
            lateout("r5") _,
            lateout("r0") ret,
        );
    }
    ret
}
