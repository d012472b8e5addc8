//! The packet parser (`parse_tcp`, then `read_fields` and the
//! classifier) on arbitrary frames. The checks live in
//! `monitor_common::parse::fuzz` so the unit tests replay the corpus
//! through the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = monitor_common::parse::fuzz::frame(data);
});
