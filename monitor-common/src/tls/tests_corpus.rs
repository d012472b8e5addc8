//! Replays the fuzz seed corpus (`monitor-common/fuzz/corpus/<target>/`)
//! through the fuzz entry points, so `cargo test` runs what the fuzzer
//! runs, and checks the corpus still holds every captured sample.

use alloc::vec::Vec;
use std::path::PathBuf;

use super::builder::{ClientHelloBuilder, ServerHelloBuilder};
use super::{fuzz, samples};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let data = std::fs::read(&path).expect("corpus file");
            (path, data)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn client_hello_corpus() {
    let files = corpus("tls_client_hello");
    assert!(!files.is_empty());
    for (_, data) in &files {
        fuzz::client_hello(data);
    }
    for (stem, hex) in samples::ALL.iter().filter(|(s, _)| samples::is_client(s)) {
        let data = samples::bytes(hex);
        assert!(
            files.iter().any(|(_, f)| *f == data),
            "{stem} missing from the corpus"
        );
    }
}

#[test]
fn server_hello_corpus() {
    let files = corpus("tls_server_hello");
    assert!(!files.is_empty());
    for (_, data) in &files {
        fuzz::server_hello(data);
    }
    for (stem, hex) in samples::ALL.iter().filter(|(s, _)| !samples::is_client(s)) {
        let data = samples::bytes(hex);
        assert!(
            files.iter().any(|(_, f)| *f == data),
            "{stem} missing from the corpus"
        );
    }
}

/// The invariants the fuzz targets assert also hold on every prefix of
/// every sample and on crafted hellos.
#[test]
fn fuzz_invariants_on_prefixes_and_crafted_hellos() {
    for (stem, hex) in samples::ALL {
        let data = samples::bytes(hex);
        let run = if samples::is_client(stem) {
            fuzz::client_hello
        } else {
            fuzz::server_hello
        };
        for n in 0..=data.len() {
            run(&data[..n]);
            run(&data[n..]);
        }
    }
    let pq = ClientHelloBuilder::new()
        .sni("pq.example")
        .alpn(&["h2"])
        .supported_versions(&[0x0a0a, 0x0304])
        .key_shares(&[(0x11ec, 1216)]);
    fuzz::client_hello(&pq.record());
    fuzz::client_hello(&pq.body());
    let hrr = ServerHelloBuilder::new()
        .selected_version(0x0304)
        .hello_retry_request(0x11ec);
    fuzz::server_hello(&hrr.record());
}
