//! Bounded walks (`Step`) run by `bpf_loop` (5.17+): the verifier checks
//! the step once as a callback, where an unrolled loop is checked once per
//! pass and per combination of what the earlier passes read. The kernel
//! inlines the call (its callback is a constant and its flags are 0).
//!
//! The walk runs in map memory, whose contents the verifier does not
//! follow: the program after the loop is checked once, not once for each
//! state the walk could have stopped in. (Map memory as the callback's
//! context is not allowed: it must point to the stack.)

use core::{ffi::c_void, mem, ptr};

use aya_ebpf::{helpers::generated::bpf_loop, macros::map, maps::PerCpuArray};
use monitor_common::parse::{PacketView, Step};

/// Room for the largest walk (the TCP option walk: 9 words).
type WalkSpace = [u64; 12];

#[map]
static WALK: PerCpuArray<WalkSpace> = PerCpuArray::with_max_entries(1, 0);

/// Runs `walk` over `pkt` for passes `0..passes`, until a pass breaks.
#[inline(always)]
pub fn repeat<V: PacketView, S: Step>(pkt: &V, passes: u32, walk: &mut S) {
    let Some(space) = enter(walk) else {
        return;
    };
    // SAFETY: the callback's context is `pkt`, alive for the call. It is
    // the frame alone: each pass finds the walk's place again, which costs
    // a few inlined instructions and no stack.
    unsafe {
        bpf_loop(
            passes,
            pass::<V, S> as *mut c_void,
            ptr::from_ref(pkt).cast_mut().cast(),
            0,
        );
    }
    leave(space, walk);
}

/// [`repeat`] as a loop the verifier unrolls, for a program with no stack
/// to spare for a callback's frame (XDP ingress). The walk still runs in
/// map memory: each pass starts from values the verifier does not follow,
/// so it checks each pass once rather than once per combination of what
/// the earlier passes read.
#[inline(always)]
pub fn unrolled<V: PacketView, S: Step>(pkt: &V, passes: u32, walk: &mut S) {
    let Some(space) = enter(walk) else {
        return;
    };
    for pass in 0..passes {
        // SAFETY: this CPU's space, which holds the walk; a volatile
        // pointer, so that each pass reads the walk from the map again.
        let walk = unsafe { &mut *ptr::read_volatile(&space) };
        if walk.step(pkt, pass).is_break() {
            break;
        }
    }
    leave(space, walk);
}

/// Moves `walk` into this CPU's space; `None` leaves it where it is.
#[inline(always)]
fn enter<S: Step>(walk: &S) -> Option<*mut S> {
    const {
        assert!(mem::size_of::<S>() <= mem::size_of::<WalkSpace>());
        assert!(mem::align_of::<S>() <= mem::align_of::<WalkSpace>());
    }
    let space = space::<S>()?;
    // SAFETY: `space` is this CPU's, large and aligned enough (checked
    // above); a walk's fields are plain words, no padding (see `Step`).
    unsafe { ptr::copy_nonoverlapping(walk, space, 1) };
    Some(space)
}

/// Moves the finished walk back from `space` (see [`enter`]).
#[inline(always)]
fn leave<S: Step>(space: *mut S, walk: &mut S) {
    // SAFETY: as in `enter`.
    unsafe { ptr::copy_nonoverlapping(space, walk, 1) };
}

/// This CPU's room for a walk of type `S`.
#[inline(always)]
fn space<S>() -> Option<*mut S> {
    WALK.get_ptr_mut(0).map(|space| space.cast::<S>())
}

/// `bpf_loop` callback: one pass; 1 stops the loop.
extern "C" fn pass<V: PacketView, S: Step>(index: u64, ctx: *mut c_void) -> i64 {
    let Some(walk) = space::<S>() else {
        return 1;
    };
    // SAFETY: `repeat` passes the frame's view, alive for the whole loop,
    // and has put the walk in this CPU's space.
    let (pkt, walk) = unsafe { (&*ctx.cast::<V>(), &mut *walk) };
    i64::from(walk.step(pkt, index as u32).is_break())
}
