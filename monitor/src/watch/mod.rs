//! `handshake-monitor watch`: finished records streamed live from the
//! running daemon over its control socket. The daemon filters
//! ([`filter`]) and writes ([`stream`]) each watcher's records from the
//! records hub; the command ([`client`]) prints them as they come.

pub mod client;
pub mod filter;
pub mod stream;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod stream_tests;
