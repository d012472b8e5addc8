//! Types and pure logic shared by the handshake-monitor kernel programs and
//! the daemon.
//!
//! Everything that crosses the kernel/user boundary is `#[repr(C)]`, has
//! explicit padding and a size assertion, and holds only integers: no
//! `bool`, `enum` or `Option`, whose bit patterns the kernel side could not
//! guarantee. Pure logic (the packet parser, the TCP flag classifier) lives
//! here too so it is unit-tested on the host and runs unchanged in the
//! kernel.
#![no_std]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;
#[cfg(test)]
extern crate std;

#[macro_use]
mod labels;

pub mod capture;
pub mod classify;
#[cfg(any(test, feature = "alloc"))]
pub mod community_id;
pub mod counters;
pub mod flow;
pub mod flow_filter;
pub mod fragment;
#[cfg(any(test, feature = "frames"))]
pub mod frames;
pub mod half_open;
pub mod handshake;
pub mod hash;
pub mod histogram;
pub mod iface;
pub mod ipv6_chain;
pub mod mitigation;
pub mod parse;
pub mod ports;
#[cfg(any(test, feature = "alloc"))]
pub mod reassembly;
pub mod record;
pub mod scan;
pub mod synack;
pub mod syncookie;
pub mod tcp_state;
pub mod tls;

#[cfg(feature = "user")]
mod pod;
