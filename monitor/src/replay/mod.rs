//! `handshake-monitor replay`: captures through the same kernel programs.

pub mod args;
pub mod engine;
pub mod input;
pub mod link;
pub mod local;
pub mod pcap_write;
mod run;
mod summary;
pub mod tally;

pub use run::{Ending, run};
