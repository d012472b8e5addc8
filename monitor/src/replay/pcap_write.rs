//! Minimal pcap and pcapng writers, so tests and the benchmark can make the
//! captures they replay without shipping binary fixtures.
//!
//! Both write little-endian files that libpcap and Wireshark read. They issue
//! several small writes per packet: wrap files in a [`std::io::BufWriter`].

use std::io::{self, Write};

/// Snapshot length written in headers: libpcap's current maximum, so no
/// reader treats a written packet as longer than the file allows.
pub const SNAPLEN: u32 = 262_144;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A legacy pcap file with one link type.
pub struct PcapWriter<W: Write> {
    out: W,
    nanos: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header; `nanos` picks the nanosecond-resolution magic
    /// instead of the microsecond one.
    pub fn new(mut out: W, linktype: u32, nanos: bool) -> io::Result<Self> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&magic.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        header.extend_from_slice(&SNAPLEN.to_le_bytes());
        header.extend_from_slice(&linktype.to_le_bytes());
        out.write_all(&header)?;
        Ok(Self { out, nanos })
    }

    /// Writes one whole packet; `ts_ns` is nanoseconds since the Unix epoch
    /// (cut to microseconds in a microsecond file).
    pub fn write(&mut self, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        self.write_truncated(ts_ns, data, len32(data)?)
    }

    /// Writes a packet that was `orig_len` bytes on the wire, of which only
    /// `data` was captured.
    pub fn write_truncated(&mut self, ts_ns: u64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let secs = u32::try_from(ts_ns / NANOS_PER_SEC)
            .map_err(|_| invalid("timestamp past 2106 does not fit a pcap record"))?;
        let sub = ts_ns % NANOS_PER_SEC;
        let frac = if self.nanos { sub } else { sub / 1_000 };
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&secs.to_le_bytes());
        // Below 10^9, so it fits.
        header[4..8].copy_from_slice(&(frac as u32).to_le_bytes());
        header[8..12].copy_from_slice(&len32(data)?.to_le_bytes());
        header[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(data)
    }

    /// Flushes and returns the output.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A pcapng file: sections of interfaces, each with its link type and
/// timestamp resolution.
pub struct PcapNgWriter<W: Write> {
    out: W,
    /// Per interface id of the current section: `if_tsresol` and `if_tsoffset`.
    interfaces: Vec<(u8, i64)>,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the first Section Header Block.
    pub fn new(out: W) -> io::Result<Self> {
        let mut writer = Self {
            out,
            interfaces: Vec::new(),
        };
        writer.new_section()?;
        Ok(writer)
    }

    /// Starts another section: interfaces described so far no longer apply.
    pub fn new_section(&mut self) -> io::Result<()> {
        self.interfaces.clear();
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        // Section length unknown, as streaming writers declare it.
        body.extend_from_slice(&(-1i64).to_le_bytes());
        self.block(0x0a0d_0d0a, &body, &[])
    }

    /// Writes an Interface Description Block and returns its interface id.
    /// `tsresol` is the raw `if_tsresol` byte (10^-n, or 2^-n with the high
    /// bit set); without it readers assume microseconds.
    pub fn add_interface(&mut self, linktype: u16, tsresol: Option<u8>) -> io::Result<u32> {
        self.add_interface_with_offset(linktype, tsresol, 0)
    }

    /// Like [`Self::add_interface`], with an `if_tsoffset` of `tsoffset_s`
    /// seconds added to every timestamp of the interface (written only when
    /// not zero).
    pub fn add_interface_with_offset(
        &mut self,
        linktype: u16,
        tsresol: Option<u8>,
        tsoffset_s: i64,
    ) -> io::Result<u32> {
        let resol = tsresol.unwrap_or(6);
        units_per_sec(resol).ok_or_else(|| invalid("if_tsresol beyond 10^19 or 2^63"))?;
        let id =
            u32::try_from(self.interfaces.len()).map_err(|_| invalid("too many interfaces"))?;
        let mut body = Vec::with_capacity(40);
        body.extend_from_slice(&linktype.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&SNAPLEN.to_le_bytes());
        let mut options = Vec::new();
        if let Some(resol) = tsresol {
            option(&mut options, 9, &[resol]);
        }
        if tsoffset_s != 0 {
            option(&mut options, 14, &tsoffset_s.to_le_bytes());
        }
        if !options.is_empty() {
            option(&mut options, 0, &[]);
        }
        self.block(1, &body, &options)?;
        self.interfaces.push((resol, tsoffset_s));
        Ok(id)
    }

    /// Writes an Enhanced Packet Block, its timestamp in the interface's
    /// resolution (truncated).
    pub fn write(&mut self, interface: u32, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        let &(resol, offset_s) = usize::try_from(interface)
            .ok()
            .and_then(|i| self.interfaces.get(i))
            .ok_or_else(|| invalid("no such interface in this section"))?;
        let since_offset = i128::from(ts_ns) - i128::from(offset_s) * i128::from(NANOS_PER_SEC);
        let ticks = u64::try_from(since_offset)
            .ok()
            .and_then(|ns| ns_to_ticks(ns, resol))
            .ok_or_else(|| invalid("timestamp not representable on this interface"))?;
        let len = len32(data)?;
        let mut header = [0u8; 20];
        header[0..4].copy_from_slice(&interface.to_le_bytes());
        header[4..8].copy_from_slice(&((ticks >> 32) as u32).to_le_bytes());
        header[8..12].copy_from_slice(&(ticks as u32).to_le_bytes());
        header[12..16].copy_from_slice(&len.to_le_bytes());
        header[16..20].copy_from_slice(&len.to_le_bytes());
        self.packet_block(6, &header, data)
    }

    /// Writes a Simple Packet Block, which belongs to interface 0 and has no
    /// timestamp.
    pub fn write_simple(&mut self, data: &[u8]) -> io::Result<()> {
        if self.interfaces.is_empty() {
            return Err(invalid("a simple packet needs interface 0"));
        }
        self.packet_block(3, &len32(data)?.to_le_bytes(), data)
    }

    /// Flushes and returns the output.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    /// Packet data goes straight to the output rather than through a copy.
    fn packet_block(&mut self, kind: u32, header: &[u8], data: &[u8]) -> io::Result<()> {
        let total = len32(data)?
            .checked_add(pad(data.len()) as u32 + header.len() as u32 + 12)
            .ok_or_else(|| invalid("packet too long for a block"))?;
        self.out.write_all(&kind.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(header)?;
        self.out.write_all(data)?;
        self.out.write_all(&[0; 3][..pad(data.len())])?;
        self.out.write_all(&total.to_le_bytes())
    }

    fn block(&mut self, kind: u32, body: &[u8], options: &[u8]) -> io::Result<()> {
        // Bodies here are a few dozen bytes, built in this module.
        let total = (12 + body.len() + options.len()) as u32;
        self.out.write_all(&kind.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(body)?;
        self.out.write_all(options)?;
        self.out.write_all(&total.to_le_bytes())
    }
}

/// Units per second of an `if_tsresol` byte, `None` past what a u64 holds.
fn units_per_sec(tsresol: u8) -> Option<u64> {
    let exponent = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(exponent)
    } else {
        1u64.checked_shl(exponent)
    }
}

fn ns_to_ticks(ns: u64, tsresol: u8) -> Option<u64> {
    let per_sec = u128::from(units_per_sec(tsresol)?);
    u64::try_from(u128::from(ns) * per_sec / u128::from(NANOS_PER_SEC)).ok()
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    // Option values here are at most 8 bytes.
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(&[0; 3][..pad(value.len())]);
}

/// Bytes of padding that bring `len` to a multiple of 4.
fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn len32(data: &[u8]) -> io::Result<u32> {
    u32::try_from(data.len()).map_err(|_| invalid("packet longer than 4 GiB"))
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
