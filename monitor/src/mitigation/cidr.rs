//! Address prefixes as operators write them (`198.18.0.0/24`,
//! `2001:2::/48`, or a bare address for a single host) and durations
//! (`90s`, `10m`, `2h`, `1d`), both validated strictly: a typo must not
//! block the wrong network.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr},
    str::FromStr,
    time::Duration,
};

use monitor_common::mitigation::PolicyKey;

/// An IPv4 or IPv6 prefix with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or prefix (expected e.g. 198.18.0.0/24 or 2001:2::/48)")]
    Syntax(String),
    #[error("prefix length /{len} is too long for {family} (at most /{max})")]
    Length {
        len: u8,
        family: &'static str,
        max: u8,
    },
    #[error("{given} has host bits set; the prefix is {masked}")]
    HostBits { given: String, masked: Cidr },
    #[error("{0} contains ::ffff:0:0/96, every IPv4-mapped address; write IPv4 prefixes as IPv4")]
    CoversIpv4(String),
}

impl Cidr {
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, CidrError> {
        // IPv4-mapped IPv6 is IPv4: one spelling per prefix.
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
            && len >= 96
        {
            return Self::new(IpAddr::V4(v4), len - 96);
        }
        let (family, max) = match addr {
            IpAddr::V4(_) => ("IPv4", 32),
            IpAddr::V6(_) => ("IPv6", 128),
        };
        if len > max {
            return Err(CidrError::Length { len, family, max });
        }
        let masked = Self {
            addr: mask(addr, len),
            len,
        };
        if masked.addr != addr {
            return Err(CidrError::HostBits {
                given: format!("{addr}/{len}"),
                masked,
            });
        }
        // The kernel stores IPv4 as IPv4-mapped IPv6, so such a prefix
        // would silently match IPv4 sources too.
        let mapped_range = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0));
        if addr.is_ipv6() && len < 96 && mask(mapped_range, len) == addr {
            return Err(CidrError::CoversIpv4(format!("{addr}/{len}")));
        }
        Ok(masked)
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this prefix covers every address of its family.
    pub fn is_everything(&self) -> bool {
        self.len == 0
    }

    /// Whether the two prefixes share any address (one contains the other).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let (a, b) = (self.policy_key(), other.policy_key());
        let len = a.prefix_len.min(b.prefix_len);
        mask_bytes(a.addr, len) == mask_bytes(b.addr, len)
    }

    /// Whether `addr` is in this prefix; an IPv4-mapped IPv6 address is
    /// its IPv4 address, as everywhere here.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let key = self.policy_key();
        let addr = match addr {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        mask_bytes(key.addr, key.prefix_len) == mask_bytes(addr, key.prefix_len)
    }

    /// The kernel policy table's key: IPv4 as IPv4-mapped IPv6.
    pub fn policy_key(&self) -> PolicyKey {
        match self.addr {
            IpAddr::V4(v4) => PolicyKey {
                prefix_len: 96 + u32::from(self.len),
                addr: v4.to_ipv6_mapped().octets(),
            },
            IpAddr::V6(v6) => PolicyKey {
                prefix_len: u32::from(self.len),
                addr: v6.octets(),
            },
        }
    }

    /// The inverse of [`Cidr::policy_key`].
    pub fn from_policy_key(key: &PolicyKey) -> Option<Self> {
        let v6 = Ipv6Addr::from(key.addr);
        let len = u8::try_from(key.prefix_len).ok()?;
        match v6.to_ipv4_mapped() {
            Some(v4) if len >= 96 => Self::new(IpAddr::V4(v4), len - 96).ok(),
            _ => Self::new(IpAddr::V6(v6), len).ok(),
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let syntax = || CidrError::Syntax(text.to_string());
        let (addr, len) = match text.trim().split_once('/') {
            Some((addr, len)) => {
                let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
                if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                (addr, len.parse::<u8>().unwrap_or(u8::MAX))
            }
            None => {
                let addr: IpAddr = text.trim().parse().map_err(|_| syntax())?;
                let len = if addr.is_ipv4() { 32 } else { 128 };
                (addr, len)
            }
        };
        Self::new(addr, len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(bits.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(bits.into())
        }
    }
}

fn mask_bytes(addr: [u8; 16], len: u32) -> u128 {
    u128::from_be_bytes(addr) & u128::MAX.checked_shl(128 - len).unwrap_or(0)
}

/// Longest duration accepted for a block (a year); longer is a typo.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `90`, `90s`, `10m`, `2h` or `1d` (a whole number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (expected e.g. 90s, 10m, 2h or 1d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h or d)"
            ));
        }
    };
    let secs = number
        .checked_mul(scale)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{text:?} must be more than zero and at most a year"))?;
    let duration = Duration::from_secs(secs);
    if duration > MAX_TTL {
        return Err(format!("{text:?} is longer than a year"));
    }
    Ok(duration)
}

/// `Duration` as the shortest of `3d`, `2h`, `10m`, `42s` that is exact
/// (or a combination, e.g. `1h30m`).
pub fn format_duration(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
#[path = "cidr_tests.rs"]
mod tests;
