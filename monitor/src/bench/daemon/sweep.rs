//! The daemon's once-a-second sweep with both flow tables full: every
//! half-open slot taken by SYNs and the flow table filled with completed
//! handshakes, all through the loaded programs (BPF_PROG_TEST_RUN). The
//! figure is the share of a core the sweeps then take: the half-open
//! scan every second, the flow-table count amortised over its interval.

use std::time::Instant;

use aya::programs::{TestRun as _, TestRunOptions};
use monitor_common::{
    classify::tcp_flags::{ACK, SYN},
    frames::{Ip, SERVER_V4, TcpFrame},
};

use crate::{
    bench::{live::lab::pin_to_cpu, programs_for_bench},
    loader::Programs,
    ports::PortSettings,
    {
        clock::monotonic_ns,
        flows::{FILL_INTERVAL, FlowSettings, FlowTracker},
    },
};

pub struct FullTables {
    pub half_open_used: u64,
    pub flows: u64,
    /// One sweep that only scans the half-open table.
    pub scan_ms: f64,
    /// One flow-table count (a sweep that counts minus one that does not).
    pub count_ms: f64,
}

impl FullTables {
    /// % of a core: a scan a second and a count every interval.
    pub fn cpu_percent(&self) -> f64 {
        (self.scan_ms + self.count_ms / FILL_INTERVAL.as_secs_f64()) / 10.0
    }
}

fn run(programs: &mut Programs, ingress: bool, frame: &TcpFrame) -> anyhow::Result<()> {
    let bytes = frame.build();
    let opts = TestRunOptions {
        data_in: Some(&bytes),
        ..Default::default()
    };
    if ingress {
        programs.xdp()?.test_run(opts)?;
    } else {
        programs.tc()?.test_run(opts)?;
    }
    Ok(())
}

/// A segment between client `c` (its address and port from `n`) and the
/// server's port 443.
fn segment(n: u32, to_server: bool, flags: u8, seq: u32, ack: u32) -> TcpFrame {
    let mut f = TcpFrame::v4(flags);
    let client = [198, 18, (n >> 16) as u8, (n >> 8) as u8];
    let port = 1024 + (n & 0xff) as u16 * 211;
    if let Ip::V4 { src, dst, .. } = &mut f.ip {
        (*src, *dst) = if to_server {
            (client, SERVER_V4)
        } else {
            (SERVER_V4, client)
        };
    }
    (f.src_port, f.dst_port) = if to_server { (port, 443) } else { (443, port) };
    (f.seq, f.ack) = (seq, ack);
    f
}

pub fn measure() -> anyhow::Result<FullTables> {
    let settings = FlowSettings::default();
    let (mut programs, _capture) = programs_for_bench(u64::MAX / 4)?;
    let slots = u64::from(settings.table_size);
    let cpus = aya::util::nr_cpus().map_or(1, |n| n);
    // Completed handshakes, then half-open ones on every CPU's partition.
    for n in 0..settings.table_size {
        let (x, y) = (n.wrapping_mul(7919), n.wrapping_mul(104_729));
        run(&mut programs, true, &segment(n, true, SYN, x, 0))?;
        run(
            &mut programs,
            false,
            &segment(n, false, SYN | ACK, y, x + 1),
        )?;
        run(&mut programs, true, &segment(n, true, ACK, x + 1, y + 1))?;
    }
    for cpu in 0..cpus {
        pin_to_cpu(cpu);
        for n in 0..2 * settings.table_size / cpus as u32 {
            let n = n | 1 << 23 | (cpu as u32) << 22;
            run(&mut programs, true, &segment(n, true, SYN, n, 0))?;
        }
    }
    let mut tracker = FlowTracker::new(&mut programs, settings, PortSettings::default(), vec![1])?;
    let started = Instant::now();
    tracker.sweep(monotonic_ns())?;
    let first_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    tracker.sweep(monotonic_ns())?;
    let scan_ms = started.elapsed().as_secs_f64() * 1e3;
    let totals = tracker.totals();
    anyhow::ensure!(
        totals.entries * 10 >= slots * 9,
        "the flow table holds {} of {slots} after the fill",
        totals.entries
    );
    Ok(FullTables {
        half_open_used: totals.half_open_slots_used,
        flows: totals.entries,
        scan_ms,
        count_ms: (first_ms - scan_ms).max(0.0),
    })
}
