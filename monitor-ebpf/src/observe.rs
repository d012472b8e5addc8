//! The per-packet work shared by the XDP and TC programs.

use monitor_common::{
    classify::{FlagClass, classify},
    counters::{Direction, counter_index},
    iface::{IFINDEX_PROBES, table_position},
    parse::{MAX_HEADER_OFFSET, PacketView, SkipReason, parse_tcp},
};

use crate::{
    maps::{COUNTERS, IFINDEX_SLOTS},
    mitigation::SynVerdict,
    view::LoadBytes,
};

/// What to do with an ingress frame.
pub enum Verdict {
    Pass,
    /// Refused by the mitigation (an ingress SYN in `enforce` mode).
    Drop,
    /// An ingress SYN to answer with a cookie (staged for
    /// `syncookie::answer`).
    Cookie,
}

/// Parses one packet and counts it, either by TCP flag class or by the
/// reason the parser skipped it, and says what becomes of it.
#[inline(always)]
pub fn observe<V: PacketView + LoadBytes>(pkt: &V, ifindex: u32, direction: Direction) -> Verdict {
    let Some(slot) = slot_of(ifindex) else {
        return Verdict::Pass;
    };
    let Some(counters) = COUNTERS.get_ptr_mut(counter_index(slot, direction)) else {
        return Verdict::Pass;
    };
    // SAFETY: a per-CPU map value is only touched by this CPU, and BPF
    // programs are not preempted on it mid-run.
    let counters = unsafe { &mut *counters };
    let tcp = match parse_tcp(pkt) {
        Ok(tcp) => tcp,
        Err(reason) => {
            counters.skipped[reason as usize] += 1;
            if direction != Direction::Ingress {
                return Verdict::Pass;
            }
            let refused = match reason {
                SkipReason::Fragment => crate::mitigation::refuse_fragment(pkt, slot),
                SkipReason::VlanDepth | SkipReason::Ipv6ExtLimit => {
                    crate::mitigation::refuse_header_chain(slot)
                }
                // Headers that run past the parser's window, not past the
                // frame: a chain as long as the frame allows.
                SkipReason::Truncated if pkt.frame_len() > MAX_HEADER_OFFSET => {
                    crate::mitigation::refuse_header_chain(slot)
                }
                _ => false,
            };
            return if refused {
                Verdict::Drop
            } else {
                Verdict::Pass
            };
        }
    };
    let class = classify(tcp.flags, tcp.payload_len);
    counters.tcp[class as usize] += 1;
    match class {
        FlagClass::Data => {
            crate::tls::inspect(pkt, &tcp, slot, direction);
            return Verdict::Pass;
        }
        // Data segments, the bulk of traffic, never touch the flow tables.
        FlagClass::Syn | FlagClass::SynAck | FlagClass::Ack | FlagClass::Fin | FlagClass::Rst => {}
        FlagClass::Invalid => return Verdict::Pass,
    }
    let Some(staged) = crate::segment::stage(pkt, &tcp, class, slot, direction) else {
        return Verdict::Pass;
    };
    if class != FlagClass::Syn {
        crate::flows::track(staged, slot, counters);
        return Verdict::Pass;
    }
    // A SYN's one clock read, shared by the mitigation and the budget.
    let now = crate::clock::coarse_now();
    if direction == Direction::Ingress {
        match crate::mitigation::judge_syn(staged, slot, now) {
            SynVerdict::Pass => {}
            SynVerdict::Drop => return Verdict::Drop,
            // A cookie costs no state: such SYNs skip the flow tables.
            SynVerdict::Cookie => return Verdict::Cookie,
        }
    }
    crate::flows::syn(staged, slot, now);
    Verdict::Pass
}

/// Counter slot of a monitored interface; `None` for any other.
#[inline(always)]
pub fn slot_of(ifindex: u32) -> Option<u32> {
    for probe in 0..IFINDEX_PROBES {
        let entry = IFINDEX_SLOTS.get(table_position(ifindex, probe))?;
        if entry.ifindex == ifindex {
            return Some(entry.slot);
        }
        if entry.ifindex == 0 {
            return None;
        }
    }
    None
}
