//! Which interfaces to monitor: the ones named, or the default route's.

use std::{ffi::CString, fs};

use monitor_common::iface::MAX_INTERFACES;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
}

#[derive(Debug, Error)]
pub enum InterfaceError {
    #[error(
        "interface {name:?} does not exist (present: {present}); pass an existing one with --iface"
    )]
    Unknown { name: String, present: String },
    #[error(
        "no default route found in /proc/net/route or /proc/net/ipv6_route; \
         name the interface to monitor with --iface"
    )]
    NoDefaultRoute,
    #[error("{count} interfaces given; at most {MAX_INTERFACES} can be monitored at once")]
    TooMany { count: usize },
    #[error("interface name {0:?} is not valid")]
    InvalidName(String),
}

/// Resolves the `--iface` arguments, or the default route's interface when
/// there are none. Duplicates are dropped, order kept.
pub fn resolve(names: &[String]) -> Result<Vec<Interface>, InterfaceError> {
    let names = if names.is_empty() {
        vec![default_route_interface()?]
    } else {
        let mut unique: Vec<String> = Vec::new();
        for name in names {
            if !unique.contains(name) {
                unique.push(name.clone());
            }
        }
        unique
    };
    if names.len() > MAX_INTERFACES as usize {
        return Err(InterfaceError::TooMany { count: names.len() });
    }
    names.into_iter().map(|name| lookup(&name)).collect()
}

pub fn lookup(name: &str) -> Result<Interface, InterfaceError> {
    let c_name = CString::new(name).map_err(|_| InterfaceError::InvalidName(name.to_string()))?;
    // SAFETY: c_name is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if ifindex == 0 {
        return Err(InterfaceError::Unknown {
            name: name.to_string(),
            present: present_interfaces().join(", "),
        });
    }
    Ok(Interface {
        name: name.to_string(),
        ifindex,
    })
}

fn present_interfaces() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The interface of the IPv4 default route with the lowest metric, else of
/// the IPv6 one.
pub fn default_route_interface() -> Result<String, InterfaceError> {
    let v4 = fs::read_to_string("/proc/net/route").ok();
    let v6 = fs::read_to_string("/proc/net/ipv6_route").ok();
    v4.as_deref()
        .and_then(default_route_v4)
        .or_else(|| v6.as_deref().and_then(default_route_v6))
        .ok_or(InterfaceError::NoDefaultRoute)
}

/// From /proc/net/route: `Iface Destination Gateway Flags RefCnt Use Metric
/// Mask ...`, hex fields; a default route has destination and mask 0 and
/// the UP flag (0x1).
pub fn default_route_v4(table: &str) -> Option<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let metric: u32 = f.get(6)?.parse().ok()?;
            let is_default = *f.get(1)? == "00000000" && *f.get(7)? == "00000000";
            (is_default && flags & 0x1 != 0).then(|| (metric, f[0].to_string()))
        })
        .min()
        .map(|(_, name)| name)
}

/// From /proc/net/ipv6_route: `dest dest_len src src_len next_hop metric
/// refcnt use flags iface`; a default route is ::/0 through a real device.
pub fn default_route_v6(table: &str) -> Option<String> {
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let is_default = f.first()?.chars().all(|c| c == '0') && *f.get(1)? == "00";
            let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
            let name = f.get(9)?;
            (is_default && *name != "lo").then(|| (metric, name.to_string()))
        })
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010012C6\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    #[test]
    fn v4_default_route_lowest_metric_wins() {
        assert_eq!(default_route_v4(ROUTE).as_deref(), Some("eth0"));
    }

    #[test]
    fn v4_without_default_route() {
        let table = ROUTE
            .lines()
            .take(1)
            .chain(ROUTE.lines().skip(3))
            .collect::<Vec<_>>();
        assert_eq!(default_route_v4(&table.join("\n")), None);
    }

    #[test]
    fn v6_default_route() {
        let table = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 ens3
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
20010002000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 ens3
";
        assert_eq!(default_route_v6(table).as_deref(), Some("ens3"));
    }

    #[test]
    fn unknown_interface_is_named() {
        let err = lookup("hm-nonexistent0").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"hm-nonexistent0\" does not exist"), "{msg}");
        assert!(msg.contains("lo"), "{msg}");
    }

    #[test]
    fn duplicates_are_dropped() {
        let ifaces = resolve(&["lo".into(), "lo".into()]).unwrap();
        assert_eq!(ifaces.len(), 1);
        assert_eq!(ifaces[0].ifindex, 1);
    }
}
