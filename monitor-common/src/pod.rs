//! `aya::Pod` for the boundary types: they are `repr(C)`, hold only
//! integers and have no implicit padding (size asserts next to each type).

use crate::{counters::DirectionCounters, iface::IfindexSlot};

// SAFETY: repr(C), integer fields only, no padding (see the size asserts).
unsafe impl aya::Pod for DirectionCounters {}
// SAFETY: repr(C), two u32 fields, no padding.
unsafe impl aya::Pod for IfindexSlot {}
