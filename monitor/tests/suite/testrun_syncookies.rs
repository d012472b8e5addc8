//! SYN cookies through the loaded programs (BPF_PROG_TEST_RUN): a SYN to a
//! protected port comes back XDP_TX as a SYN-ACK carrying a cookie (headers
//! and checksums checked byte by byte); at TC ingress an ACK with that
//! cookie is validated, one with a wrong cookie dropped and counted.
//!
//! Needs root: run through `cargo xtask test`.

use crate::support;

use std::net::TcpListener;

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions};
use monitor::{
    interfaces::Interface,
    loader::Programs,
    syncookies::{SyncookieSettings, Syncookies, TC_INGRESS_PROGRAM},
};
use monitor_common::{
    classify::tcp_flags::{ACK, SYN},
    frames::{CLIENT_V4, Ip, SERVER_V4, TcpFrame, internet_checksum},
    syncookie::{CookieEvent, SyncookieMode},
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const TC_ACT_SHOT: u32 = 2;
const ISN: u32 = 0x1234_5678;

struct Lab {
    programs: Programs,
    cookies: Syncookies,
    slot: u32,
    port: u16,
    /// A listener on the protected port, for the ACK's socket lookup.
    _listener: TcpListener,
}

impl Lab {
    fn new() -> Self {
        support::require_root();
        let listener = TcpListener::bind("[::]:0").expect("listener");
        let port = listener.local_addr().unwrap().port();
        let mut programs = Programs::load().expect("load programs");
        let lo = Interface {
            name: "lo".into(),
            ifindex: 1,
        };
        let slot = programs.register(&lo).expect("register lo");
        let settings = SyncookieSettings {
            mode: SyncookieMode::Always,
            ports: vec![port],
            ..SyncookieSettings::default()
        };
        // Attached nowhere: the programs only run in test runs.
        let cookies = Syncookies::start(&mut programs, settings, &[], vec![("lo".into(), slot)])
            .expect("syncookies");
        Self {
            programs,
            cookies,
            slot,
            port,
            _listener: listener,
        }
    }

    fn xdp(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        };
        let r = self
            .programs
            .xdp()
            .unwrap()
            .test_run(opts)
            .expect("xdp run");
        out.truncate(r.data_size_out as usize);
        (r.return_value, out)
    }

    fn tc_ingress(&mut self, frame: &[u8]) -> u32 {
        let program: &mut SchedClassifier = self
            .programs
            .ebpf_mut()
            .program_mut(TC_INGRESS_PROGRAM)
            .unwrap()
            .try_into()
            .unwrap();
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..Default::default()
        };
        program.test_run(opts).expect("tc run").return_value
    }

    fn count(&self, event: CookieEvent) -> u64 {
        self.cookies.counters(self.slot).expect("counters").events[event as usize]
    }

    fn syn(&self, ip: Ip) -> TcpFrame {
        let mut f = TcpFrame::new(ip, SYN).with_syn_options();
        f.src_port = 40_000;
        f.dst_port = self.port;
        f.seq = ISN;
        f
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Checks the SYN-ACK against the SYN and returns (cookie, TSval).
fn check_synack(syn: &[u8], out: &[u8], l3: usize, v4: bool, port: u16) -> (u32, u32) {
    assert_eq!(
        &out[0..6],
        &syn[6..12],
        "destination MAC is the SYN's source"
    );
    assert_eq!(&out[6..12], &syn[0..6]);
    let (l4, addr, alen) = if v4 {
        (l3 + 20, 12, 4)
    } else {
        (l3 + 40, 8, 16)
    };
    let (src, dst) = (l3 + addr, l3 + addr + alen);
    assert_eq!(
        &out[src..src + alen],
        &syn[dst..dst + alen],
        "addresses swapped"
    );
    assert_eq!(&out[dst..dst + alen], &syn[src..src + alen]);
    let tcp = &out[l4..];
    assert_eq!(tcp.len(), 40, "MSS, SACK_PERM, TS, NOP, WS");
    assert_eq!(be16(tcp, 0), port);
    assert_eq!(be16(tcp, 2), 40_000);
    assert_eq!(be32(tcp, 8), ISN + 1, "acks the ISN");
    assert_eq!(tcp[13], SYN | ACK);
    assert_eq!(tcp[12] >> 4, 10);
    assert_eq!(&tcp[20..22], &[2, 4]);
    assert_eq!(&tcp[24..28], &[4, 2, 8, 10], "SACK_PERM then timestamps");
    assert_eq!(be32(tcp, 32), 1, "TSecr echoes the SYN's TSval");
    assert_eq!(&tcp[36..40], &[1, 3, 3, 7]);
    assert_eq!(
        be32(tcp, 28) & 0x3f,
        7 | 1 << 4,
        "TSval keeps WS 7 and SACK"
    );
    // Checksums: a correct header or segment sums to zero.
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&out[src..src + alen]);
    pseudo.extend_from_slice(&out[dst..dst + alen]);
    pseudo.extend_from_slice(&[0, 6, 0, tcp.len() as u8]);
    pseudo.extend_from_slice(tcp);
    assert_eq!(internet_checksum(&pseudo), 0, "TCP checksum");
    if v4 {
        assert_eq!(internet_checksum(&out[l3..l3 + 20]), 0, "IPv4 checksum");
        assert_eq!(be16(out, l3 + 2), 60, "total length");
    } else {
        assert_eq!(be16(out, l3 + 4), 40, "payload length");
    }
    (be32(tcp, 4), be32(tcp, 28))
}

fn ack(lab: &Lab, ip: Ip, cookie_ack: u32, tsecr: u32) -> Vec<u8> {
    let mut f = TcpFrame::new(ip, ACK);
    f.src_port = 40_000;
    f.dst_port = lab.port;
    f.seq = ISN + 1;
    f.ack = cookie_ack;
    // NOP, NOP, TS (TSval 2, TSecr = our TSval).
    let mut opts = vec![1, 1, 8, 10, 0, 0, 0, 2];
    opts.extend_from_slice(&tsecr.to_be_bytes());
    f.tcp_options = opts;
    f.build()
}

fn round_trip(ip: Ip, v4: bool) {
    let mut lab = Lab::new();
    let syn = lab.syn(ip.clone()).build();
    let (verdict, out) = lab.xdp(&syn);
    assert_eq!(verdict, XDP_TX);
    assert_eq!(out.len(), syn.len(), "same size: 40-byte TCP headers both");
    let (cookie, tsval) = check_synack(&syn, &out, 14, v4, lab.port);
    assert_eq!(lab.count(CookieEvent::Sent), 1);

    // A wrong cookie is dropped before the stack. (Not cookie + 2: the
    // low bits hold the MSS index, so a neighbour of a cookie can be
    // another valid one, as with the kernel's own cookies.)
    assert_eq!(
        lab.tc_ingress(&ack(
            &lab,
            ip.clone(),
            (cookie ^ 0x5a5a_0000).wrapping_add(1),
            tsval
        )),
        TC_ACT_SHOT
    );
    assert_eq!(lab.count(CookieEvent::Invalid), 1);
    // The right one passes. (A test run is not at TC ingress, so the
    // kernel refuses the request socket itself: counted, still passed.)
    let verdict = lab.tc_ingress(&ack(&lab, ip, cookie.wrapping_add(1), tsval));
    assert_ne!(verdict, TC_ACT_SHOT);
    assert_eq!(lab.count(CookieEvent::Validated), 1);
    assert_eq!(
        lab.count(CookieEvent::Handed) + lab.count(CookieEvent::AssignFailed),
        1
    );
}

#[test]
fn an_ipv4_syn_gets_a_cookie_synack_and_only_its_cookie_passes() {
    round_trip(
        Ip::V4 {
            src: CLIENT_V4,
            dst: SERVER_V4,
            options: Vec::new(),
            more_fragments: false,
        },
        true,
    );
}

#[test]
fn an_ipv6_syn_gets_a_cookie_synack_and_only_its_cookie_passes() {
    round_trip(Ip::v6(), false);
}

#[test]
fn other_ports_and_ipv4_options_are_left_to_the_stack() {
    let mut lab = Lab::new();
    let mut other = lab.syn(Ip::v4());
    other.dst_port = lab.port.wrapping_add(1);
    assert_eq!(lab.xdp(&other.build()).0, XDP_PASS);
    let with_options = lab.syn(Ip::V4 {
        src: CLIENT_V4,
        dst: SERVER_V4,
        options: vec![1, 1, 1, 0],
        more_fragments: false,
    });
    assert_eq!(lab.xdp(&with_options.build()).0, XDP_PASS);
    assert_eq!(lab.count(CookieEvent::Unsupported), 1);
    assert_eq!(lab.count(CookieEvent::Sent), 0);
}

#[test]
fn a_vlan_tagged_syn_is_answered_on_its_vlan() {
    let mut lab = Lab::new();
    let syn = lab.syn(Ip::v4()).with_vlans(&[0x8100]).build();
    let (verdict, out) = lab.xdp(&syn);
    assert_eq!(verdict, XDP_TX);
    assert_eq!(&out[12..16], &syn[12..16], "the tag is kept");
    check_synack(&syn, &out, 18, true, lab.port);
}

#[test]
fn a_syn_without_options_gets_an_mss_only_synack() {
    let mut lab = Lab::new();
    let mut f = lab.syn(Ip::v4());
    f.tcp_options.clear();
    let syn = f.build();
    let (verdict, out) = lab.xdp(&syn);
    assert_eq!(verdict, XDP_TX);
    let tcp = &out[34..];
    assert_eq!(tcp.len(), 24, "the frame grew by the MSS option");
    assert_eq!((tcp[12] >> 4, tcp[13]), (6, SYN | ACK));
    assert_eq!(&tcp[20..24], &[2, 4, 0x05, 0xb4]);
    let mut pseudo = out[26..34].to_vec();
    pseudo.extend_from_slice(&[0, 6, 0, 24]);
    pseudo.extend_from_slice(tcp);
    assert_eq!(internet_checksum(&pseudo), 0, "TCP checksum");
    assert_eq!(internet_checksum(&out[14..34]), 0, "IPv4 checksum");
}

/// Every TCP header length (20 to 60 bytes), with and without a payload,
/// in both families: the frame shrinks or grows to the answer, 40 bytes
/// with timestamps, else 24 (the cookie helper is called in place with
/// each length).
#[test]
fn syns_of_every_header_length_are_answered_in_place() {
    let mut lab = Lab::new();
    let mut sent = 0;
    for (ip, v4, l4) in [(Ip::v4(), true, 34), (Ip::v6(), false, 54)] {
        for th_len in (20..=60).step_by(4) {
            for payload in [&[][..], b"early data"] {
                let mut f = lab.syn(ip.clone()).with_payload(payload);
                if th_len < 40 {
                    // MSS only, then NOPs: no room for the timestamps.
                    f.tcp_options = vec![2, 4, 0x05, 0xb4];
                    f.tcp_options.truncate(th_len - 20);
                }
                f.tcp_options.resize(th_len - 20, 1);
                let syn = f.build();
                let case = format!(
                    "v4 {v4}, {th_len}-byte header, {} bytes of data",
                    payload.len()
                );
                let (verdict, out) = lab.xdp(&syn);
                assert_eq!(verdict, XDP_TX, "{case}");
                sent += 1;
                if th_len >= 40 {
                    check_synack(&syn, &out, l4 - if v4 { 20 } else { 40 }, v4, lab.port);
                    continue;
                }
                let tcp = &out[l4..];
                assert_eq!(tcp.len(), 24, "{case}");
                assert_eq!((tcp[12] >> 4, tcp[13]), (6, SYN | ACK), "{case}");
                let mss: u16 = if v4 { 1460 } else { 1440 };
                assert_eq!(&tcp[20..22], &[2, 4], "{case}");
                assert_eq!(be16(tcp, 22), mss, "{case}");
                assert_eq!(be32(tcp, 8), ISN + 1, "{case}");
                let (addrs, alen) = if v4 { (26, 8) } else { (22, 32) };
                let mut pseudo = out[addrs..addrs + alen].to_vec();
                pseudo.extend_from_slice(&[0, 6, 0, 24]);
                pseudo.extend_from_slice(tcp);
                assert_eq!(internet_checksum(&pseudo), 0, "TCP checksum, {case}");
                if v4 {
                    assert_eq!(internet_checksum(&out[14..34]), 0, "{case}");
                    assert_eq!(be16(&out, 16), 44, "total length, {case}");
                } else {
                    assert_eq!(be16(&out, 18), 24, "payload length, {case}");
                }
            }
        }
    }
    assert_eq!(lab.count(CookieEvent::Sent), sent);
    assert_eq!(lab.count(CookieEvent::Unsupported), 0);
}
