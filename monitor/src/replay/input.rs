//! Capture files → timestamped Ethernet frames, streamed in file order.
//!
//! Reading never fails as a whole: whatever precedes a problem is delivered,
//! and the problem is reported with its byte offset, so a replay of a damaged
//! or still-growing capture still shows what it could read.

mod ng;
mod stream;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use pcap_parser::PcapBlockOwned;
use pcap_parser::nom::error::ErrorKind;

use super::link;

/// Largest record or block accepted; anything claiming more is taken for a
/// corrupt length rather than read (and buffered) to the end of the file.
const MAX_BLOCK: u32 = 32 << 20;
const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Enough leading bytes to recognise a format and to show in an error.
const HEAD: usize = 8;

/// One packet as the kernel programs will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The captured bytes, as an Ethernet frame.
    pub ethernet: &'a [u8],
    /// Length on the wire, which the captured bytes may fall short of.
    pub orig_len: u32,
    /// The capture's own word on the direction (Linux cooked captures):
    /// sent by the capturing host, or received by it.
    pub captured: Option<link::Captured>,
}

/// Why a packet record is not replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// The link layer has no Ethernet equivalent.
    LinkType,
    /// The link header names something other than IP (raw IP, loopback), or
    /// no ethertype at all (cooked captures).
    NotIp,
    /// Too short to hold its link header.
    Short,
}

impl Skip {
    /// Stable name for metrics and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Skip::LinkType => "link_type",
            Skip::NotIp => "not_ip",
            Skip::Short => "short",
        }
    }
}

/// One packet record of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Frame(Frame<'a>),
    Skipped { ts_ns: u64, reason: Skip },
}

/// What reading one file amounted to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// Packet records read: `frames` plus every skip.
    pub records: u64,
    pub frames: u64,
    pub skipped: BTreeMap<Skip, u64>,
    /// Why reading stopped before the end of the file, if it did.
    pub error: Option<InputError>,
}

/// Why a file could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("cannot open {}: {reason}", path.display())]
    Open {
        path: PathBuf,
        kind: io::ErrorKind,
        reason: String,
    },
    #[error("empty file")]
    Empty,
    #[error("not a pcap or pcapng file (first bytes {})", hex(first_bytes))]
    NotCapture { first_bytes: Vec<u8> },
    #[error(
        "truncated: the file ends inside a record at byte {offset} (after {after_records} records)"
    )]
    Truncated { after_records: u64, offset: u64 },
    #[error("corrupt block at byte {offset}: {detail}")]
    Corrupt { offset: u64, detail: String },
    #[error("read error at byte {offset}: {reason}")]
    Read {
        offset: u64,
        kind: io::ErrorKind,
        reason: String,
    },
}

/// Reads `path` in order, calling `each` for every record; stops early if
/// `each` returns `ControlFlow::Break(())`.
///
/// Never fails: what could not be read is in the report's `error` (everything
/// read before it was delivered).
pub fn read_file(path: &Path, each: impl FnMut(Item<'_>) -> ControlFlow<()>) -> FileReport {
    match File::open(path) {
        Ok(file) => read_from(file, each),
        Err(e) => FileReport {
            error: Some(InputError::Open {
                path: path.to_owned(),
                kind: e.kind(),
                reason: e.to_string(),
            }),
            ..FileReport::default()
        },
    }
}

/// [`read_file`] for any byte stream (a pipe, or a capture built in memory).
pub fn read_from(
    mut input: impl Read,
    mut each: impl FnMut(Item<'_>) -> ControlFlow<()>,
) -> FileReport {
    let failed = |error| FileReport {
        error: Some(error),
        ..FileReport::default()
    };
    let mut head = [0u8; HEAD];
    let head = match stream::read_full(&mut input, &mut head) {
        (_, Some(e)) => return failed(read_error(0, &e)),
        (0, None) => return failed(InputError::Empty),
        (n, None) => &head[..n],
    };
    let Some(format) = Format::sniff(head) else {
        return failed(InputError::NotCapture {
            first_bytes: head.to_vec(),
        });
    };
    let mut ctx = Ctx::new(format);
    ctx.report.error = stream::run(format, head.chain(input), &mut ctx, &mut each).err();
    ctx.report
}

#[derive(Clone, Copy)]
enum Format {
    Legacy,
    Ng,
}

impl Format {
    fn sniff(head: &[u8]) -> Option<Format> {
        match u32::from_le_bytes(*head.first_chunk()?) {
            // Microsecond and nanosecond magic in either byte order, and
            // the "modified" (Alexey Kuznetsov) format that pcap-parser reads.
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0xa1b2_cd34 => {
                Some(Format::Legacy)
            }
            pcap_parser::SHB_MAGIC => Some(Format::Ng),
            _ => None,
        }
    }
}

/// A packet record before link conversion.
struct Packet<'a> {
    linktype: u16,
    ts_ns: u64,
    data: &'a [u8],
    orig_len: u32,
}

/// Legacy pcap's global header, as far as records need it.
#[derive(Clone, Copy)]
struct Legacy {
    linktype: u16,
    ns_per_tick: u64,
    big_endian: bool,
}

struct Ctx {
    format: Format,
    report: FileReport,
    /// Link conversion writes here, so frames need no allocation of their own.
    scratch: Vec<u8>,
    legacy: Option<Legacy>,
    section: ng::Section,
}

impl Ctx {
    fn new(format: Format) -> Self {
        Self {
            format,
            report: FileReport::default(),
            scratch: Vec::new(),
            legacy: None,
            section: ng::Section::default(),
        }
    }

    /// Rejects impossible lengths before pcap-parser acts on them: it would
    /// buffer up to a bogus length, and it does not check every trailer.
    fn check_framing(&self, data: &[u8]) -> Result<(), String> {
        match (self.format, self.legacy) {
            (Format::Ng, _) => ng::check_framing(data, self.section.big_endian()),
            (Format::Legacy, Some(legacy)) => check_record(data, legacy.big_endian),
            // The global header, which pcap-parser has already read.
            (Format::Legacy, None) => Ok(()),
        }
    }

    fn block(
        &mut self,
        block: PcapBlockOwned<'_>,
        offset: u64,
        each: &mut impl FnMut(Item<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, InputError> {
        let packet = match block {
            PcapBlockOwned::LegacyHeader(header) => {
                self.legacy = Some(Legacy {
                    // The upper bits carry FCS flags, not the link type.
                    linktype: (header.network.0 & 0xffff) as u16,
                    ns_per_tick: if header.is_nanosecond_precision() {
                        1
                    } else {
                        1_000
                    },
                    big_endian: header.is_bigendian(),
                });
                return Ok(ControlFlow::Continue(()));
            }
            PcapBlockOwned::Legacy(record) => {
                let Some(legacy) = self.legacy else {
                    return Err(corrupt(offset, "record before the file header".into()));
                };
                // u32 seconds and sub-second ticks below 2^32 µs cannot
                // overflow u64 nanoseconds.
                let ts_ns = u64::from(record.ts_sec) * NANOS_PER_SEC
                    + u64::from(record.ts_usec) * legacy.ns_per_tick;
                Packet {
                    linktype: legacy.linktype,
                    ts_ns,
                    data: record.data,
                    orig_len: record.origlen,
                }
            }
            PcapBlockOwned::NG(block) => match self.section.packet(block) {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(ControlFlow::Continue(())),
                Err(detail) => return Err(corrupt(offset, detail)),
            },
        };
        Ok(self.deliver(packet, each))
    }

    fn deliver(
        &mut self,
        packet: Packet<'_>,
        each: &mut impl FnMut(Item<'_>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.report.records += 1;
        let ts_ns = packet.ts_ns;
        let captured = link::captured(packet.linktype, packet.data);
        let item = match link::to_ethernet(packet.linktype, packet.data, &mut self.scratch) {
            Ok(ethernet) => {
                self.report.frames += 1;
                Item::Frame(Frame {
                    ts_ns,
                    ethernet,
                    orig_len: packet.orig_len,
                    captured,
                })
            }
            Err(reason) => {
                *self.report.skipped.entry(reason).or_default() += 1;
                Item::Skipped { ts_ns, reason }
            }
        };
        each(item)
    }

    fn malformed(&self, kind: [u8; 4], check: ErrorKind) -> String {
        let what = match self.format {
            Format::Legacy => "record",
            Format::Ng => ng::block_name(kind, self.section.big_endian()),
        };
        format!("malformed {what} (failed check: {check:?})")
    }
}

fn check_record(data: &[u8], big_endian: bool) -> Result<(), String> {
    let Some(&caplen) = data.get(8..12).and_then(|b| b.first_chunk::<4>()) else {
        return Ok(());
    };
    let caplen = if big_endian {
        u32::from_be_bytes(caplen)
    } else {
        u32::from_le_bytes(caplen)
    };
    if caplen > MAX_BLOCK {
        return Err(format!(
            "record claims {caplen} captured bytes, more than the {} MiB limit",
            MAX_BLOCK >> 20
        ));
    }
    Ok(())
}

fn corrupt(offset: u64, detail: String) -> InputError {
    InputError::Corrupt { offset, detail }
}

fn read_error(offset: u64, e: &io::Error) -> InputError {
    InputError::Read {
        offset,
        kind: e.kind(),
        reason: e.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    let pairs: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    pairs.join(" ")
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
