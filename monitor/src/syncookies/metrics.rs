//! SYN-cookie metrics, read from the kernel counters at scrape time.

use std::sync::{Arc, Mutex};

use monitor_common::syncookie::{CookieEvent, SyncookieMode};
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
};

use super::Syncookies;
use crate::promfam::{Family, desc};

const ACTIVE: (&str, &str) = (
    "handshake_syncookie_active",
    "1 while XDP answers the port's SYNs with SYN cookies on the interface, else 0.",
);
const MODE: (&str, &str) = (
    "handshake_syncookie_mode",
    "1 for the SYN-cookie mode in force (off, on-flood, always), 0 for the others.",
);

const FALLBACKS: (&str, &str) = (
    "handshake_syncookie_fallbacks_total",
    "Times the interface stopped answering SYNs with XDP cookies and left them to the stack: \
     reason peer_cannot_receive (its veth peer runs no native XDP program) or no_validated_acks \
     (cookie SYN-ACKs got no ACK back).",
);

/// One counter family per event: (name, help).
const EVENTS: [(&str, &str); CookieEvent::COUNT] = [
    (
        "handshake_syncookie_sent_total",
        "SYNs answered from XDP with a SYN-cookie SYN-ACK (XDP_TX).",
    ),
    (
        "handshake_syncookie_validated_total",
        "ACKs to a listener that carried a valid SYN cookie.",
    ),
    (
        "handshake_syncookie_invalid_total",
        "ACKs to a listener with no valid SYN cookie, dropped at TC ingress while the port answers SYNs.",
    ),
    (
        "handshake_syncookie_handed_total",
        "Validated cookie ACKs handed to the stack as connections (bpf_sk_assign_tcp_reqsk).",
    ),
    (
        "handshake_syncookie_unsupported_total",
        "SYNs to a port in cookie mode left to the stack (IPv4 options, IPv6 extension headers, or the cookie helper or frame resize failed).",
    ),
    (
        "handshake_syncookie_assign_failed_total",
        "Validated cookie ACKs the kernel would not turn into a request socket (passed on; the stack resets them).",
    ),
];

pub struct SyncookieCollector {
    cookies: Arc<Mutex<Syncookies>>,
    descs: Vec<Desc>,
}

impl SyncookieCollector {
    pub fn new(cookies: Arc<Mutex<Syncookies>>) -> Self {
        let mut descs = vec![
            desc(ACTIVE.0, ACTIVE.1, &["interface", "port"]),
            desc(MODE.0, MODE.1, &["mode"]),
            desc(FALLBACKS.0, FALLBACKS.1, &["interface", "reason"]),
        ];
        descs.extend(EVENTS.iter().map(|(n, h)| desc(n, h, &["interface"])));
        Self { cookies, descs }
    }
}

impl Collector for SyncookieCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let c = self.cookies.lock().unwrap_or_else(|p| p.into_inner());
        let mut active = Family::gauge(ACTIVE.0, ACTIVE.1);
        let mut events: Vec<Family> = EVENTS.iter().map(|(n, h)| Family::counter(n, h)).collect();
        for (name, slot) in c.interfaces() {
            for &port in &c.settings().ports {
                let on = c.active(*slot, port);
                let port = port.to_string();
                let labels = [("interface", name.as_str()), ("port", port.as_str())];
                active.add(&labels, if on { 1.0 } else { 0.0 });
            }
            let Ok(counts) = c.counters(*slot) else {
                continue;
            };
            for (family, value) in events.iter_mut().zip(counts.events) {
                family.add(&[("interface", name.as_str())], value as f64);
            }
        }
        let mut mode = Family::gauge(MODE.0, MODE.1);
        for each in SyncookieMode::ALL {
            let on = each == c.settings().mode;
            mode.add(&[("mode", each.name())], if on { 1.0 } else { 0.0 });
        }
        let mut fallbacks = Family::counter(FALLBACKS.0, FALLBACKS.1);
        for (interface, reason, n) in c.fallbacks() {
            let labels = [("interface", interface), ("reason", reason.name())];
            fallbacks.add(&labels, n as f64);
        }
        let mut out = vec![active.finish(), mode.finish(), fallbacks.finish()];
        out.extend(events.into_iter().map(Family::finish));
        out
    }
}
