//! Kernel programs of handshake-monitor.
//!
//! Entry points stay thin: they hand the packet to [`observe`], which runs
//! the shared parser from `monitor-common` and bumps one per-CPU counter.
//! Nothing here changes a packet; the only packets ever dropped are
//! ingress SYNs that the mitigation refuses in `enforce` mode.
#![no_std]
#![no_main]

mod bench;
mod flows;
mod kernel_state;
mod maps;
mod mitigation;
mod observe;
mod tls;
mod view;

use aya_ebpf::{
    bindings::{TC_ACT_UNSPEC, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use monitor_common::counters::Direction;

use crate::{
    observe::observe,
    view::{SkbView, XdpView},
};

/// Ingress: every frame the interface receives, before the stack sees it.
#[xdp]
pub fn hs_xdp_ingress(ctx: XdpContext) -> u32 {
    let view = XdpView::new(&ctx);
    if observe(&view, ctx.ingress_ifindex() as u32, Direction::Ingress) {
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// Egress: every frame the interface sends. `TC_ACT_UNSPEC` (`TCX_NEXT`)
/// hands the packet on to whatever else is attached, as if we were absent.
#[classifier]
pub fn hs_tc_egress(ctx: TcContext) -> i32 {
    let view = SkbView::new(&ctx);
    observe(&view, view.ifindex(), Direction::Egress);
    TC_ACT_UNSPEC
}

/// The benchmark's baseline: an XDP program that does nothing. Loaded only
/// by `cargo xtask bench`, never attached.
#[xdp]
pub fn hs_bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path
    // that could get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
