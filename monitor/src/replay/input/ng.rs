//! pcapng sections: which interface a packet came from decides its link type
//! and how to read its timestamp.

use pcap_parser::pcapng::{Block, InterfaceDescriptionBlock, OptionCode};

use super::{MAX_BLOCK, NANOS_PER_SEC, Packet};

/// Obsolete Packet Block, superseded by the EPB but still written by old
/// tools; pcap-parser hands it over as an unknown block.
const OBSOLETE_PACKET_BLOCK: u32 = 2;
/// Its header after the block type and length: interface (u16), drops (u16),
/// timestamp high and low, captured and original length (u32 each).
const OBSOLETE_PACKET_HEADER: usize = 20;
const BOM_BIG_ENDIAN: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];
const BOM_LITTLE_ENDIAN: [u8; 4] = [0x4d, 0x3c, 0x2b, 0x1a];

/// State of the current section; a new Section Header Block resets it.
#[derive(Default)]
pub(super) struct Section {
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// Simple Packet Blocks carry no timestamp: they get the last one seen,
    /// which keeps the replay's clock monotonic.
    last_ts_ns: u64,
}

struct Interface {
    linktype: u16,
    snaplen: u32,
    scale: Scale,
    offset_ns: i64,
}

/// Timestamp ticks → nanoseconds, decided once per interface so the common
/// resolutions cost one multiplication per packet.
#[derive(Clone, Copy)]
enum Scale {
    /// 10^-n with n ≤ 9: nanoseconds per tick.
    Mul(u64),
    /// 10^-n with 9 < n ≤ 19: ticks per nanosecond.
    Div(u64),
    /// 2^-n.
    Pow2(u32),
}

impl Scale {
    fn new(tsresol: u8) -> Option<Scale> {
        let exponent = u32::from(tsresol & 0x7f);
        if tsresol & 0x80 != 0 {
            (exponent < 64).then_some(Scale::Pow2(exponent))
        } else if exponent <= 9 {
            Some(Scale::Mul(10u64.pow(9 - exponent)))
        } else if exponent <= 19 {
            Some(Scale::Div(10u64.pow(exponent - 9)))
        } else {
            None
        }
    }

    fn to_ns(self, ticks: u64) -> u64 {
        match self {
            Scale::Mul(ns_per_tick) => ticks.saturating_mul(ns_per_tick),
            Scale::Div(ticks_per_ns) => ticks / ticks_per_ns,
            Scale::Pow2(bits) => {
                let whole = (ticks >> bits).saturating_mul(NANOS_PER_SEC);
                let fraction = u128::from(ticks & ((1u64 << bits) - 1));
                // Below one second's worth of nanoseconds, so it fits.
                let fraction_ns = ((fraction * u128::from(NANOS_PER_SEC)) >> bits) as u64;
                whole.saturating_add(fraction_ns)
            }
        }
    }
}

impl Section {
    pub(super) fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// Takes in one block: a packet comes back, the other blocks update the
    /// section or are of no interest.
    pub(super) fn packet<'a>(&mut self, block: Block<'a>) -> Result<Option<Packet<'a>>, String> {
        let packet = match block {
            Block::SectionHeader(shb) => {
                self.big_endian = shb.big_endian();
                self.interfaces.clear();
                return Ok(None);
            }
            Block::InterfaceDescription(idb) => {
                let interface = Interface::new(&idb, self.big_endian)?;
                self.interfaces.push(interface);
                return Ok(None);
            }
            Block::EnhancedPacket(epb) => {
                let interface = self.interface(epb.if_id)?;
                let data: &'a [u8] = epb.data;
                // pcap-parser checked caplen against the block; `data` is
                // only longer by the padding.
                let captured = data.len().min(epb.caplen as usize);
                Packet {
                    linktype: interface.linktype,
                    ts_ns: interface.ts_ns(epb.ts_high, epb.ts_low),
                    data: &data[..captured],
                    orig_len: epb.origlen,
                }
            }
            Block::SimplePacket(spb) => {
                let interface = self.interface(0)?;
                let data: &'a [u8] = spb.data;
                let mut captured = data.len().min(spb.origlen as usize);
                if interface.snaplen != 0 {
                    captured = captured.min(interface.snaplen as usize);
                }
                Packet {
                    linktype: interface.linktype,
                    ts_ns: self.last_ts_ns,
                    data: &data[..captured],
                    orig_len: spb.origlen,
                }
            }
            Block::Unknown(unknown) if self.native(unknown.block_type) == OBSOLETE_PACKET_BLOCK => {
                self.obsolete_packet(unknown.data)?
            }
            _ => return Ok(None),
        };
        self.last_ts_ns = packet.ts_ns;
        Ok(Some(packet))
    }

    fn obsolete_packet<'a>(&self, body: &'a [u8]) -> Result<Packet<'a>, String> {
        let (Some(header), Some(data)) = (
            body.first_chunk::<OBSOLETE_PACKET_HEADER>(),
            body.get(OBSOLETE_PACKET_HEADER..),
        ) else {
            return Err("packet block shorter than its header".into());
        };
        let u32_at =
            |at: usize| self.u32([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let interface_id = if self.big_endian {
            u16::from_be_bytes([header[0], header[1]])
        } else {
            u16::from_le_bytes([header[0], header[1]])
        };
        let interface = self.interface(u32::from(interface_id))?;
        let caplen = u32_at(12);
        let Some(data) = data.get(..caplen as usize) else {
            return Err(format!(
                "packet block captured length {caplen} overruns the block"
            ));
        };
        Ok(Packet {
            linktype: interface.linktype,
            ts_ns: interface.ts_ns(u32_at(4), u32_at(8)),
            data,
            orig_len: u32_at(16),
        })
    }

    fn interface(&self, id: u32) -> Result<&Interface, String> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.interfaces.get(i))
            .ok_or_else(|| {
                format!(
                    "packet of interface {id}, but the section describes {} interfaces",
                    self.interfaces.len()
                )
            })
    }

    /// pcap-parser reads unknown block types as little-endian.
    fn native(&self, block_type: u32) -> u32 {
        if self.big_endian {
            block_type.swap_bytes()
        } else {
            block_type
        }
    }

    fn u32(&self, bytes: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    }
}

impl Interface {
    fn new(idb: &InterfaceDescriptionBlock<'_>, big_endian: bool) -> Result<Self, String> {
        let scale = Scale::new(idb.if_tsresol).ok_or_else(|| {
            format!(
                "if_tsresol {:#04x} is beyond what 64 bits hold",
                idb.if_tsresol
            )
        })?;
        // pcap-parser's `if_tsoffset` is always decoded little-endian.
        let offset_s = idb
            .options
            .iter()
            .find(|option| option.code == OptionCode::IfTsoffset)
            .and_then(|option| option.value.first_chunk::<8>().copied())
            .map_or(0, |bytes| {
                if big_endian {
                    i64::from_be_bytes(bytes)
                } else {
                    i64::from_le_bytes(bytes)
                }
            });
        Ok(Self {
            // The field is a u16 in the file; pcap-parser widens it.
            linktype: idb.linktype.0 as u16,
            snaplen: idb.snaplen,
            scale,
            offset_ns: offset_s.saturating_mul(NANOS_PER_SEC as i64),
        })
    }

    fn ts_ns(&self, high: u32, low: u32) -> u64 {
        let ticks = (u64::from(high) << 32) | u64::from(low);
        self.scale
            .to_ns(ticks)
            .saturating_add_signed(self.offset_ns)
    }
}

/// Checks a block's lengths while it is still raw bytes: pcap-parser does not
/// compare the trailing length of every block type, nor cap the leading one.
pub(super) fn check_framing(data: &[u8], big_endian: bool) -> Result<(), String> {
    let Some((kind, rest)) = data.split_first_chunk::<4>() else {
        return Ok(());
    };
    let Some(&len) = rest.first_chunk::<4>() else {
        return Ok(());
    };
    let big_endian = if *kind == pcap_parser::SHB_MAGIC.to_le_bytes() {
        match rest.get(4..8) {
            None => return Ok(()),
            Some(bom) if bom == BOM_BIG_ENDIAN => true,
            Some(bom) if bom == BOM_LITTLE_ENDIAN => false,
            Some(bom) => {
                return Err(format!(
                    "section header byte-order magic {bom:02x?} is invalid"
                ));
            }
        }
    } else {
        big_endian
    };
    let read = |bytes: [u8; 4]| {
        if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    };
    let total = read(len);
    if total < 12 || total % 4 != 0 || total > MAX_BLOCK {
        return Err(format!(
            "block total length {total} is not a multiple of 4 between 12 and {MAX_BLOCK}"
        ));
    }
    let Some(&trailer) = data
        .get(total as usize - 4..total as usize)
        .and_then(|b| b.first_chunk::<4>())
    else {
        return Ok(());
    };
    let trailing = read(trailer);
    if trailing != total {
        return Err(format!(
            "trailing block total length {trailing} differs from the leading {total}"
        ));
    }
    Ok(())
}

/// Names a block by its type field, for error messages.
pub(super) fn block_name(kind: [u8; 4], big_endian: bool) -> &'static str {
    let kind = if big_endian {
        u32::from_be_bytes(kind)
    } else {
        u32::from_le_bytes(kind)
    };
    match kind {
        pcap_parser::SHB_MAGIC => "section header block",
        pcap_parser::IDB_MAGIC => "interface description block",
        pcap_parser::EPB_MAGIC => "enhanced packet block",
        pcap_parser::SPB_MAGIC => "simple packet block",
        pcap_parser::NRB_MAGIC => "name resolution block",
        pcap_parser::ISB_MAGIC => "interface statistics block",
        OBSOLETE_PACKET_BLOCK => "packet block",
        _ => "block",
    }
}
