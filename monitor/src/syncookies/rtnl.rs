//! Two rtnetlink questions, asked on a route socket of the namespace it was
//! made in: a link's kind, peer, peer namespace and XDP state
//! (RTM_GETLINK), and which id this namespace gives another one
//! (RTM_GETNSID). Neither needs a capability.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWNSID: u16 = 88;
const RTM_GETNSID: u16 = 90;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
/// struct ifinfomsg.
const IFINFO_LEN: usize = 16;
/// struct rtgenmsg, padded to the netlink alignment.
const RTGEN_LEN: usize = 4;

const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const XDP_ATTACHED_DRV: u8 = 1;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// What RTM_GETLINK says of one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// `IFLA_INFO_KIND`: `veth`, `bridge`, ... (none for a physical NIC).
    pub kind: Option<String>,
    /// `IFLA_LINK`: a veth's peer, by its index in the peer's namespace.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when that namespace is another one.
    pub link_netnsid: Option<i32>,
    /// A native (driver-mode) XDP program is attached: on a veth, that
    /// is what runs NAPI and so receives XDP_TX frames. Generic XDP does
    /// not.
    pub native_xdp: bool,
}

/// A route netlink socket.
pub struct Route {
    fd: OwnedFd,
    seq: u32,
}

impl Route {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned from here on.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: a valid option value of the right size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as u32,
            );
        }
        Ok(Self { fd, seq: 0 })
    }

    /// The link with index `ifindex`.
    pub fn link(&mut self, ifindex: u32) -> io::Result<Link> {
        let mut body = [0u8; IFINFO_LEN];
        body[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
        let reply = self.ask(RTM_GETLINK, &body, RTM_NEWLINK)?;
        parse_link(reply.get(IFINFO_LEN..).unwrap_or_default())
    }

    /// The id this namespace gives the namespace behind `netns` (None: it
    /// has none).
    pub fn nsid(&mut self, netns: BorrowedFd<'_>) -> io::Result<Option<i32>> {
        let mut body = vec![0u8; RTGEN_LEN];
        push_attr(
            &mut body,
            NETNSA_FD,
            &(netns.as_raw_fd() as u32).to_ne_bytes(),
        );
        let reply = self.ask(RTM_GETNSID, &body, RTM_NEWNSID)?;
        let nsid = attrs(reply.get(RTGEN_LEN..).unwrap_or_default())
            .find(|(kind, _)| *kind == NETNSA_NSID)
            .and_then(|(_, v)| Some(i32::from_ne_bytes(v.get(..4)?.try_into().ok()?)));
        Ok(nsid.filter(|&id| id >= 0))
    }

    /// Sends one request, returns the payload of its `expect` reply.
    fn ask(&mut self, kind: u16, body: &[u8], expect: u16) -> io::Result<Vec<u8>> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: a live buffer of that length.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 32 * 1024];
        // A bounded number of reads: stale replies of an earlier request
        // (a timed-out one) are skipped by their sequence number.
        for _ in 0..8 {
            // SAFETY: a live buffer of that length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
                let seq = u32::from_ne_bytes(rest[8..12].try_into().unwrap());
                if len < NLMSG_HDRLEN || len > rest.len() {
                    break;
                }
                let payload = &rest[NLMSG_HDRLEN..len];
                if seq == self.seq {
                    if kind == NLMSG_ERROR {
                        let errno = payload
                            .get(..4)
                            .map_or(0, |e| i32::from_ne_bytes(e.try_into().unwrap()));
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    if kind == expect {
                        return Ok(payload.to_vec());
                    }
                }
                rest = &rest[align(len).min(rest.len())..];
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no rtnetlink reply to the request",
        ))
    }
}

fn align(len: usize) -> usize {
    len.div_ceil(4) * 4
}

fn push_attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align(out.len()), 0);
}

/// The (type, value) attributes of a netlink attribute stream.
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            return None;
        }
        let value = &data[4..len];
        data = &data[align(len).min(data.len())..];
        Some((kind, value))
    })
}

fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

fn string_of(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// A link from the attributes of an RTM_NEWLINK.
fn parse_link(data: &[u8]) -> io::Result<Link> {
    let mut link = Link::default();
    let mut xdp_attached = 0u8;
    let mut drv_prog = false;
    for (kind, value) in attrs(data) {
        match kind {
            IFLA_IFNAME => link.name = string_of(value),
            IFLA_LINK => link.link = u32_of(value),
            IFLA_LINK_NETNSID => link.link_netnsid = u32_of(value).map(|v| v as i32),
            IFLA_LINKINFO => {
                link.kind = attrs(value)
                    .find(|(k, _)| *k == IFLA_INFO_KIND)
                    .map(|(_, v)| string_of(v));
            }
            IFLA_XDP => {
                for (k, v) in attrs(value) {
                    match k {
                        IFLA_XDP_ATTACHED => xdp_attached = v.first().copied().unwrap_or(0),
                        IFLA_XDP_DRV_PROG_ID => drv_prog = u32_of(v).is_some_and(|id| id != 0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // One program reports its mode in IFLA_XDP_ATTACHED; several
    // (XDP_ATTACHED_MULTI) name the driver-mode one in DRV_PROG_ID.
    link.native_xdp = xdp_attached == XDP_ATTACHED_DRV || drv_prog;
    if link.name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an RTM_NEWLINK without IFLA_IFNAME",
        ));
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(kind: u16, inner: &[(u16, &[u8])]) -> Vec<u8> {
        let mut value = Vec::new();
        for (k, v) in inner {
            push_attr(&mut value, *k, v);
        }
        let mut out = Vec::new();
        push_attr(&mut out, kind, &value);
        out
    }

    #[test]
    fn parses_a_veth_in_another_namespace_with_native_xdp() {
        let mut data = Vec::new();
        push_attr(&mut data, IFLA_IFNAME, b"veth0\0");
        push_attr(&mut data, IFLA_LINK, &7u32.to_ne_bytes());
        push_attr(&mut data, IFLA_LINK_NETNSID, &2i32.to_ne_bytes());
        data.extend(nested(IFLA_LINKINFO, &[(IFLA_INFO_KIND, b"veth\0")]));
        data.extend(nested(
            IFLA_XDP,
            &[(IFLA_XDP_ATTACHED, &[XDP_ATTACHED_DRV])],
        ));
        let link = parse_link(&data).unwrap();
        assert_eq!(
            link,
            Link {
                name: "veth0".into(),
                kind: Some("veth".into()),
                link: Some(7),
                link_netnsid: Some(2),
                native_xdp: true,
            }
        );
    }

    #[test]
    fn generic_xdp_is_not_native() {
        let mut data = Vec::new();
        push_attr(&mut data, IFLA_IFNAME, b"v\0");
        data.extend(nested(IFLA_XDP, &[(IFLA_XDP_ATTACHED, &[2])]));
        assert!(!parse_link(&data).unwrap().native_xdp);
        // Several programs: the driver-mode one is named.
        let mut data = Vec::new();
        push_attr(&mut data, IFLA_IFNAME, b"v\0");
        data.extend(nested(
            IFLA_XDP,
            &[
                (IFLA_XDP_ATTACHED, &[4]),
                (IFLA_XDP_DRV_PROG_ID, &9u32.to_ne_bytes()),
            ],
        ));
        assert!(parse_link(&data).unwrap().native_xdp);
    }

    #[test]
    fn truncated_attributes_end_the_walk() {
        let data = [8u8, 0, 3, 0, b'a'];
        assert_eq!(attrs(&data).count(), 0);
    }

    #[test]
    fn the_loopback_is_link_one() {
        // RTM_GETLINK needs no capability.
        let link = Route::open().unwrap().link(1).unwrap();
        assert_eq!(link.name, "lo");
        assert_eq!(link.kind, None);
    }
}
