//! Record layer, handshake header, ServerHello / HelloRetryRequest and
//! every accessor, on arbitrary bytes (see `tls_client_hello`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| monitor_common::tls::fuzz::server_hello(data));
