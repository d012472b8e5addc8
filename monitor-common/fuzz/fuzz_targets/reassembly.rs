//! The hello reassembly on arbitrary scripts of capture chunks (starts,
//! continuations in and out of order, alerts, unknown kinds, expiry). The
//! script format and checks live in `monitor_common::reassembly::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| monitor_common::reassembly::fuzz::chunks(data));
