//! The few ethtool ioctls the SYN-cookie guard reads: whether an
//! interface's GRO is on, and its driver statistics (a veth's
//! `peer_ifindex` and `*_xdp_tx_errors`). None of them needs a capability,
//! so they keep working after the daemon drops its own.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;
/// Room for statistics that appear between two calls (a queue added):
/// older kernels write as many as they have, whatever the request says
/// (newer ones answer a count that is not theirs with none).
const SPARE_STATS: usize = 256;

#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[repr(C)]
struct Value {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// A socket to send ethtool ioctls on, in the namespace it was made in.
pub struct Ethtool(OwnedFd);

impl Ethtool {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ioctl(&self, iface: &str, data: *mut libc::c_void) -> io::Result<()> {
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data,
            _pad: [0; 16],
        };
        let name = iface.as_bytes();
        if name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name too long",
            ));
        }
        req.name[..name.len()].copy_from_slice(name);
        // SAFETY: `req` and the buffer behind `data` live across the call
        // and are as large as the command's structure.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn drvinfo(&self, iface: &str) -> io::Result<DrvInfo> {
        // SAFETY: all-zero is a valid DrvInfo (integers and byte arrays).
        let mut info: DrvInfo = unsafe { std::mem::zeroed() };
        info.cmd = ETHTOOL_GDRVINFO;
        self.ioctl(iface, (&raw mut info).cast())?;
        Ok(info)
    }

    /// Whether generic receive offload is on.
    pub fn gro(&self, iface: &str) -> io::Result<bool> {
        let mut value = Value {
            cmd: ETHTOOL_GGRO,
            data: 0,
        };
        self.ioctl(iface, (&raw mut value).cast())?;
        Ok(value.data != 0)
    }

    /// The driver's statistics, as `ethtool -S` lists them.
    pub fn stats(&self, iface: &str) -> io::Result<Vec<(String, u64)>> {
        let count = self.drvinfo(iface)?.n_stats as usize;
        let room = count + SPARE_STATS;
        // struct ethtool_gstrings: cmd, string_set, len, then the strings;
        // `len` must be the device's count.
        let mut strings = vec![0u32; 3 + room * ETH_GSTRING_LEN / 4];
        strings[0] = ETHTOOL_GSTRINGS;
        strings[1] = ETH_SS_STATS;
        strings[2] = count as u32;
        self.ioctl(iface, strings.as_mut_ptr().cast())?;
        let names_len = (strings[2] as usize).min(room);
        // struct ethtool_stats: cmd, n_stats, then u64 values.
        let mut values = vec![0u64; 1 + room];
        values[0] = u64::from(ETHTOOL_GSTATS) | (count as u64) << 32;
        self.ioctl(iface, values.as_mut_ptr().cast())?;
        let values_len = ((values[0] >> 32) as usize).min(room);
        let bytes: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        Ok(bytes
            .chunks(ETH_GSTRING_LEN)
            .take(names_len.min(values_len))
            .map(c_string)
            .zip(values[1..].iter().copied())
            .collect())
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// XDP_TX frames a veth could not hand to its peer (the sum over its
/// receive queues of `rx_queue_N_xdp_tx_errors`); `None` if it lists none
/// (then nothing is known, which is not the same as none failed).
pub fn xdp_tx_errors(stats: &[(String, u64)]) -> Option<u64> {
    stats
        .iter()
        .filter(|(name, _)| name.starts_with("rx_queue_") && name.ends_with("_xdp_tx_errors"))
        .map(|(_, v)| *v)
        .reduce(|a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_errors_sum_the_receive_queues_only() {
        let stats: Vec<(String, u64)> = [
            ("peer_ifindex", 7),
            ("rx_queue_0_xdp_tx_errors", 3),
            ("rx_queue_1_xdp_tx_errors", 4),
            ("rx_queue_0_xdp_tx", 100),
            ("tx_queue_0_xdp_xmit_errors", 50),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
        assert_eq!(xdp_tx_errors(&stats), Some(7));
        assert_eq!(xdp_tx_errors(&stats[..1]), None);
    }

    #[test]
    fn unknown_interfaces_are_errors() {
        // Runs unprivileged: these ioctls need no capability.
        let ethtool = Ethtool::open().expect("socket");
        assert!(ethtool.gro("no-such-if0").is_err());
        assert!(ethtool.stats("no-such-if0").is_err());
    }

    #[test]
    fn c_strings_stop_at_the_nul() {
        assert_eq!(c_string(b"veth\0\0junk"), "veth");
        assert_eq!(c_string(b"full"), "full");
    }
}
