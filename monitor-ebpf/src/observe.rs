//! The per-packet work shared by the XDP and TC programs.

use monitor_common::{
    classify::{FlagClass, classify},
    counters::{Direction, counter_index},
    iface::{IFINDEX_PROBES, table_position},
    parse::{PacketView, parse_tcp},
};

use crate::{
    maps::{COUNTERS, IFINDEX_SLOTS},
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
    match parse_tcp(pkt) {
        Ok(tcp) => {
            let class = classify(tcp.flags, tcp.payload_len);
            counters.tcp[class as usize] += 1;
            if class == FlagClass::Data {
                crate::tls::inspect(pkt, &tcp, slot, direction);
            }
            // Data segments, the bulk of traffic, never touch the flow table.
            if matches!(
                class,
                FlagClass::Syn
                    | FlagClass::SynAck
                    | FlagClass::Ack
                    | FlagClass::Fin
                    | FlagClass::Rst
            ) {
                if class == FlagClass::Syn && direction == Direction::Ingress {
                    // A cookie costs no state: such SYNs skip the limits
                    // and the flow table.
                    if crate::syncookie::wanted(pkt, &tcp, slot) {
                        return Verdict::Cookie;
                    }
                    if crate::mitigation::refuse(pkt, &tcp, slot) {
                        return Verdict::Drop;
                    }
                }
                crate::flows::track(pkt, &tcp, class, slot, direction, counters);
            }
        }
        Err(reason) => counters.skipped[reason as usize] += 1,
    }
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
