//! Kernel programs of handshake-monitor.
//!
//! Entry points stay thin: they hand the packet to [`observe`], which runs
//! the shared parser from `monitor-common` and bumps one per-CPU counter.
//! Nothing here changes a packet; the only packets ever dropped are
//! ingress SYNs that the mitigation refuses in `enforce` mode.
#![no_std]
#![no_main]
// Inline assembly on BPF: the raw kfunc call instruction (see `kfunc`).
#![feature(asm_experimental_arch)]

mod bench;
mod clock;
mod flows;
mod half_open;
mod kernel_state;
mod kfunc;
mod maps;
mod mitigation;
mod observe;
mod ports;
mod records;
mod scan;
mod segment;
mod syncookie;
mod syncookie_tc;
mod tls;
mod view;
mod walk;

use aya_ebpf::{
    bindings::{TC_ACT_UNSPEC, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use monitor_common::counters::Direction;

use crate::{
    observe::{Verdict, observe},
    view::{SkbView, XdpView},
};

/// Ingress: every frame the interface receives, before the stack sees it.
#[xdp]
pub fn hs_xdp_ingress(ctx: XdpContext) -> u32 {
    let view = XdpView::new(&ctx);
    match observe(&view, ctx.ingress_ifindex() as u32, Direction::Ingress) {
        Verdict::Pass => xdp_action::XDP_PASS,
        Verdict::Drop => xdp_action::XDP_DROP,
        Verdict::Cookie => {
            let mut dropped = false;
            if syncookie::answer(&ctx, &mut dropped) {
                xdp_action::XDP_TX
            } else if dropped {
                xdp_action::XDP_DROP
            } else {
                xdp_action::XDP_PASS
            }
        }
    }
}

/// Ingress at TC (only attached with SYN cookies configured): ACKs that
/// may carry a cookie are checked and handed to the stack as connections.
#[classifier]
pub fn hs_tc_ingress(ctx: TcContext) -> i32 {
    let view = SkbView::new(&ctx);
    let Some(slot) = observe::slot_of(view.ifindex()) else {
        return TC_ACT_UNSPEC;
    };
    match monitor_common::parse::parse_tcp(&view) {
        Ok(tcp) if syncookie_tc::candidate(&view, &tcp, slot) => syncookie_tc::validate(&ctx),
        _ => TC_ACT_UNSPEC,
    }
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
