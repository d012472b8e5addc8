//! `aya::Pod` for the boundary types: they are `repr(C)`, hold only
//! integers and have no implicit padding (size asserts next to each type).

use crate::{counters::DirectionCounters, iface::IfindexSlot};

// SAFETY: repr(C), integer fields only, no padding (see the size asserts).
unsafe impl aya::Pod for DirectionCounters {}
// SAFETY: repr(C), two u32 fields, no padding.
unsafe impl aya::Pod for IfindexSlot {}
// SAFETY: repr(C), u64 arrays only, no padding (size assert next to it).
unsafe impl aya::Pod for crate::tcp_state::KernelStateCounters {}
// SAFETY: repr(C), eight u32 fields, no padding (size assert next to it).
unsafe impl aya::Pod for crate::tcp_state::KernelStateConfig {}

// SAFETY (all below): repr(C), integer fields only, no implicit padding
// (explicit `_pad` fields; see the size asserts next to each type).
unsafe impl aya::Pod for crate::flow::FlowKey {}
unsafe impl aya::Pod for crate::flow::FlowState {}
unsafe impl aya::Pod for crate::flow::HandshakeCounters {}
unsafe impl aya::Pod for crate::flow::RateLimit {}
unsafe impl aya::Pod for crate::half_open::HalfOpen {}
unsafe impl aya::Pod for crate::half_open::FlowConfig {}
unsafe impl aya::Pod for crate::histogram::Histogram {}
unsafe impl aya::Pod for crate::ports::PortCounters {}
unsafe impl aya::Pod for crate::ports::VolumeSketch {}
unsafe impl aya::Pod for crate::capture::CaptureCounters {}
unsafe impl aya::Pod for crate::capture::ChunkHeader {}
unsafe impl aya::Pod for crate::record::FlowRecord {}
unsafe impl aya::Pod for crate::record::RecordCounters {}
unsafe impl aya::Pod for crate::flow::ScanKey {}
unsafe impl aya::Pod for crate::flow::ScanState {}
unsafe impl aya::Pod for crate::scan::ScanSlot {}
unsafe impl aya::Pod for crate::scan::ScanConfig {}
unsafe impl aya::Pod for crate::mitigation::PolicyKey {}
unsafe impl aya::Pod for crate::mitigation::PolicyEntry {}
unsafe impl aya::Pod for crate::mitigation::MitigationConfig {}
unsafe impl aya::Pod for crate::mitigation::MitigationCounters {}
unsafe impl aya::Pod for crate::mitigation::OffenderSketch {}
unsafe impl aya::Pod for crate::syncookie::SyncookieCounters {}
unsafe impl aya::Pod for crate::syncookie::PortState {}
unsafe impl aya::Pod for crate::syncookie::SyncookieConfig {}
