//! Record layer, handshake header, ClientHello and every accessor, on
//! arbitrary bytes. The checks live in `monitor_common::tls::fuzz` so the
//! unit tests replay the corpus through the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| monitor_common::tls::fuzz::client_hello(data));
