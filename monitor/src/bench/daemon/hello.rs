//! ClientHellos parsed and fingerprinted per second on one core: what the
//! TLS pipeline does with every reassembled hello (parse, then the summary
//! with JA3 and JA4), against a byte-sum over the same records in the same
//! process (the floor of merely touching the bytes).

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use monitor_common::tls::{builder::ClientHelloBuilder, parse_client_hello_record, samples};

use crate::{bench::Figure, tls::client_hello_summary};

/// Time each side of a round runs for, checked every pass over the set.
const RUN_TIME: Duration = Duration::from_millis(300);

/// Real hellos (OpenSSL, curl) and built ones of typical shapes: SNI and
/// ALPN, TLS 1.2 only, a post-quantum key share.
fn records() -> Vec<Vec<u8>> {
    let mut records: Vec<Vec<u8>> = samples::ALL
        .iter()
        .filter(|(stem, _)| samples::is_client(stem))
        .map(|(_, hex)| samples::bytes(hex))
        .filter(|bytes| parse_client_hello_record(bytes).is_ok())
        .collect();
    records.push(
        ClientHelloBuilder::new()
            .sni("bench.example.test")
            .alpn(&["h2", "http/1.1"])
            .record(),
    );
    records.push(
        ClientHelloBuilder::new()
            .sni("legacy.example.test")
            .version(0x0303)
            .record(),
    );
    records.push(
        ClientHelloBuilder::new()
            .sni("pq.example.test")
            .supported_versions(&[0x0304])
            .key_shares(&[(0x11ec, 1216), (0x001d, 32)])
            .record(),
    );
    records
}

/// Runs `f` over every record until the time is up; records per second.
fn rate(records: &[Vec<u8>], mut f: impl FnMut(&[u8])) -> f64 {
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < RUN_TIME {
        for record in records {
            f(black_box(record));
        }
        done += records.len() as u64;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// (hellos/s parsed + fingerprinted, hellos/s byte-summed).
pub fn round() -> anyhow::Result<(f64, f64)> {
    let records = records();
    anyhow::ensure!(!records.is_empty(), "no ClientHello sample parses");
    let parsed = rate(&records, |bytes| {
        if let Ok(hello) = parse_client_hello_record(bytes) {
            black_box(client_hello_summary(&hello));
        }
    });
    let summed = rate(&records, |bytes| {
        let sum = bytes
            .iter()
            .fold(0u64, |s, &b| s.wrapping_add(u64::from(b)));
        black_box(sum);
    });
    Ok((parsed, summed))
}

pub fn figure(rounds: &[(f64, f64)]) -> Figure {
    crate::bench::paired("client_hello_parse_fingerprint", "hellos/s", rounds)
}
