//! Per-port series: handshakes by result, SYNs and half-open flows for the
//! named ports and the `other` port of each IANA class.

use monitor_common::flow::Role;
use prometheus::{core::Desc, proto::MetricFamily};

use crate::{
    flows::FlowTracker,
    promfam::{Family, desc},
};

const PORT_HANDSHAKES: &str = "handshake_tcp_port_handshakes_total";
const PORT_SYNS: &str = "handshake_tcp_port_syns_total";
const PORT_HALF_OPEN: &str = "handshake_tcp_port_half_open";
const PORT_REFUSED: &str = "handshake_tcp_port_refused_syns_total";

const LABELS: [&str; 4] = ["interface", "role", "port", "port_class"];

const FAMILIES: [(&str, &str); 4] = [
    (
        PORT_HANDSHAKES,
        "TCP handshakes per service port (configured and top-N ports; `other` per IANA class) \
         by result.",
    ),
    (
        PORT_SYNS,
        "SYNs that started a handshake, per service port.",
    ),
    (PORT_HALF_OPEN, "Half-open handshakes per service port."),
    (
        PORT_REFUSED,
        "SYNs the mitigation dropped in XDP (mode enforce), per service port (role server only).",
    ),
];

pub fn descs() -> Vec<Desc> {
    FAMILIES
        .iter()
        .map(|(name, help)| {
            let mut labels = LABELS.to_vec();
            if *name == PORT_HANDSHAKES {
                labels.push("result");
            }
            desc(name, help, &labels)
        })
        .collect()
}

pub fn collect(tracker: &FlowTracker, interfaces: &[(String, u32)]) -> Vec<MetricFamily> {
    let [handshakes, syns, half_open, refused] = FAMILIES;
    let mut handshakes = Family::counter(handshakes.0, handshakes.1);
    let mut syns = Family::counter(syns.0, syns.1);
    let mut half_open = Family::gauge(half_open.0, half_open.1);
    let mut refused = Family::counter(refused.0, refused.1);
    let totals = tracker.totals();
    let labels = tracker.ports().labels();
    for (iface, slot) in interfaces {
        for role in Role::ALL {
            for label in &labels {
                let Ok(c) = tracker.ports().counters(*slot, role, *label) else {
                    continue;
                };
                let port = label.port();
                let base = [
                    ("interface", iface.as_str()),
                    ("role", role.name()),
                    ("port", port.as_str()),
                    ("port_class", label.class().name()),
                ];
                let id = (*slot, role, *label);
                let timed_out = c.timed_out + totals.port_timed_out.get(&id).copied().unwrap_or(0);
                for (result, value) in [
                    ("completed", c.completed),
                    ("reset", c.reset),
                    ("timed_out", timed_out),
                ] {
                    let mut l = base.to_vec();
                    l.push(("result", result));
                    handshakes.add(&l, value as f64);
                }
                syns.add(&base, c.syns as f64);
                let open = totals.port_half_open.get(&id).copied().unwrap_or(0);
                half_open.add(&base, open as f64);
                if role == Role::Server {
                    refused.add(&base, c.refused_syns as f64);
                }
            }
        }
    }
    vec![
        handshakes.finish(),
        syns.finish(),
        half_open.finish(),
        refused.finish(),
    ]
}

#[cfg(test)]
mod tests {
    use monitor_common::ports::PortClass;

    use crate::ports::PortLabel;

    #[test]
    fn labels_of_named_and_other_ports() {
        assert_eq!(PortLabel::Named(443).port(), "443");
        assert_eq!(PortLabel::Named(443).class(), PortClass::WellKnown);
        assert_eq!(PortLabel::Other(PortClass::Dynamic).port(), "other");
    }
}
