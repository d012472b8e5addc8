//! The packet classes the benchmark measures, each as a set of distinct
//! frames (distinct flows where the class would insert or look up one).

use monitor_common::{
    classify::tcp_flags::{ACK, FIN, PSH, RST, SYN},
    frames::{Ip, TcpFrame, arp_request, udp_v4},
    tls::builder::ClientHelloBuilder,
};

/// Distinct frames per class.
const FRAMES: u16 = 4000;

pub struct Case {
    pub name: &'static str,
    pub frames: Vec<Vec<u8>>,
    /// Runs per frame in one test run: many for classes whose cost does
    /// not depend on the flow (warm caches, as at line rate), one where
    /// every packet must be a new key.
    pub repeat: u32,
    /// Run first, unmeasured (e.g. to create the flows the case hits).
    pub warmup: Vec<Vec<u8>>,
    pub inserts_per_sec: u64,
    /// Configures the freshly loaded programs of each round.
    pub setup: Option<fn(&mut crate::loader::Programs) -> anyhow::Result<()>>,
}

fn tcp(flags: u8, port: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = TcpFrame::v4(flags).with_payload(payload);
    f.src_port = port;
    (f.seq, f.ack) = (1000, 5000);
    f.build()
}

/// An IPv6 segment behind `ext` Destination Options headers (the walk over
/// the extension-header chain).
fn tcp6(flags: u8, port: u16, payload: &[u8], ext: usize) -> Vec<u8> {
    let mut f = TcpFrame::v6(flags).with_payload(payload);
    if let Ip::V6 { ext: chain, .. } = &mut f.ip {
        chain.extend((0..ext).map(|_| (60u8, vec![1, 4, 0, 0, 0, 0])));
    }
    f.src_port = port;
    (f.seq, f.ack) = (1000, 5000);
    f.build()
}

/// A SYN with Linux's options (so its SYN-ACK is the same size) to the
/// cookie port.
fn syn_with_options(port: u16) -> Vec<u8> {
    let mut f = TcpFrame::v4(SYN).with_syn_options();
    (f.src_port, f.dst_port) = (port, super::mitigation::COOKIE_PORT);
    f.build()
}

fn each(make: impl Fn(u16) -> Vec<u8>) -> Vec<Vec<u8>> {
    (0..FRAMES).map(|i| make(20_000 + i)).collect()
}

pub fn cases() -> Vec<Case> {
    let plenty = 100_000_000;
    let hello = ClientHelloBuilder::new().sni("bench.example.test").record();
    let case = |name, frames: Vec<Vec<u8>>, warmup, inserts_per_sec| Case {
        name,
        repeat: if frames.len() == 1 { 100_000 } else { 1 },
        frames,
        warmup,
        inserts_per_sec,
        setup: None,
    };
    vec![
        case("non_ip", vec![arp_request()], vec![], plenty),
        case("udp", vec![udp_v4()], vec![], plenty),
        case(
            "tcp_data",
            vec![tcp(ACK | PSH, 40_000, &[0x42; 100])],
            vec![],
            plenty,
        ),
        case(
            "tcp_data_distinct_flows",
            each(|p| tcp(ACK | PSH, p, &[0x42; 100])),
            vec![],
            plenty,
        ),
        case("syn_new_flow", each(|p| tcp(SYN, p, &[])), vec![], plenty),
        case(
            "tcp_data_ipv6",
            vec![tcp6(ACK | PSH, 40_000, &[0x42; 100], 0)],
            vec![],
            plenty,
        ),
        case(
            "tcp_data_ipv6_two_ext_headers",
            vec![tcp6(ACK | PSH, 40_000, &[0x42; 100], 2)],
            vec![],
            plenty,
        ),
        // Insert budget spent: the SYN is counted, not tracked.
        case("syn_over_budget", each(|p| tcp(SYN, p, &[])), vec![], 1),
        case(
            "syn_ack_no_flow",
            each(|p| tcp(SYN | ACK, p, &[])),
            vec![],
            plenty,
        ),
        case(
            "pure_ack_no_flow",
            each(|p| tcp(ACK, p, &[])),
            vec![],
            plenty,
        ),
        case(
            "fin_no_flow",
            each(|p| tcp(FIN | ACK, p, &[])),
            vec![],
            plenty,
        ),
        case("rst_no_flow", each(|p| tcp(RST, p, &[])), vec![], plenty),
        case(
            "client_hello_first_segment",
            each(|p| tcp(ACK | PSH, p, &hello)),
            vec![],
            plenty,
        ),
        // SYN floods with the mitigation in enforce mode, warm (one frame
        // repeated, as at line rate): the attacker already blocked, and an
        // attacker not (yet) blocked whose SYNs the per-source limit
        // refuses (the warm-up spends its burst).
        Case {
            setup: Some(|p| super::mitigation::enforce(p, Some(super::mitigation::FLOOD_SOURCE))),
            ..case(
                "syn_flood_blocked_source",
                vec![tcp(SYN, 40_000, &[])],
                vec![],
                plenty,
            )
        },
        Case {
            setup: Some(|p| super::mitigation::enforce(p, None)),
            ..case(
                "syn_flood_over_source_rate",
                vec![tcp(SYN, 40_000, &[])],
                vec![tcp(SYN, 40_000, &[]); 1000],
                plenty,
            )
        },
        // SYN cookies: each SYN answered with a cookie SYN-ACK (XDP_TX),
        // against the cheapest refusal, a blocked source's drop, both on
        // 4,000 distinct frames (a test run repeating one frame would see
        // the SYN-ACK it made after the first run).
        Case {
            setup: Some(super::mitigation::syncookies),
            ..case("syn_cookie_answer", each(syn_with_options), vec![], plenty)
        },
        Case {
            setup: Some(|p| super::mitigation::enforce(p, Some(super::mitigation::FLOOD_SOURCE))),
            ..case(
                "syn_blocked_source_distinct",
                each(syn_with_options),
                vec![],
                plenty,
            )
        },
    ]
}
