//! Handshake records, daemon half: one `tcp_handshake` line when a
//! handshake's outcome is known and one `tcp_close` line when a tracked
//! connection ends, to the events log and to `watch`.

pub mod hub;
