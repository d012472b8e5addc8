//! What is attached to a lab interface, seen from outside the daemon.
//!
//! bpftool 7.1 (Debian's, installed here) predates TCX: `bpftool net show`
//! prints an empty `tc:` section while a TCX program is attached. So the
//! TCX hook is read with BPF_PROG_QUERY directly, and bpftool and `tc` are
//! only consulted for the older hooks (clsact filters, XDP).

use std::ffi::CString;

use super::{cmd, netns::in_netns};

/// The `prog/xdp ...` detail line of `ip -d link show`, if an XDP program is
/// attached; also catches the bare `xdp`/`xdpgeneric` flags of older output.
pub fn xdp_program(ns: &str, ifname: &str) -> Option<String> {
    let out = cmd::ip(&["-n", ns, "-d", "link", "show", "dev", ifname]);
    let attached = out
        .split_whitespace()
        .any(|word| word.starts_with("xdp") || word.starts_with("prog/xdp"));
    attached.then(|| {
        out.lines()
            .find(|line| line.contains("prog/xdp"))
            .unwrap_or(&out)
            .trim()
            .to_string()
    })
}

const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_TCX_EGRESS: u32 = 47;

/// The `query` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// Ids of the programs on the TCX egress hook of `ifname` in `ns`.
pub fn tcx_egress_programs(ns: &str, ifname: &str) -> Vec<u32> {
    in_netns(ns, || {
        let name = CString::new(ifname).expect("interface name");
        // SAFETY: name is NUL-terminated; the lookup happens in this
        // thread's namespace, which is where the kernel resolves the
        // query's ifindex too.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(ifindex, 0, "no interface {ifname} in {ns}");
        let mut ids = [0u32; 64];
        let mut attr = ProgQuery {
            target_ifindex: ifindex,
            attach_type: BPF_TCX_EGRESS,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..ProgQuery::default()
        };
        // SAFETY: attr is a valid bpf_attr prefix of the size passed, and
        // prog_ids points to prog_cnt writable u32s that outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_QUERY,
                &mut attr as *mut ProgQuery,
                size_of::<ProgQuery>(),
            )
        };
        assert_eq!(
            rc,
            0,
            "BPF_PROG_QUERY tcx egress on {ifname}: {}",
            std::io::Error::last_os_error()
        );
        ids[..attr.prog_cnt as usize].to_vec()
    })
}

/// `bpftool prog show id ID` (names are global, ids too).
pub fn program_info(id: u32) -> String {
    cmd::run("bpftool", &["prog", "show", "id", &id.to_string()])
}

/// Lines of `bpftool net show dev IF` that name an attachment (its output
/// is section headers such as `xdp:` and `tc:`, each followed by entries).
pub fn bpftool_net_entries(ns: &str, ifname: &str) -> Vec<String> {
    cmd::run(
        "ip",
        &["netns", "exec", ns, "bpftool", "net", "show", "dev", ifname],
    )
    .lines()
    .map(str::trim)
    .filter(|line| !line.is_empty() && !line.ends_with(':'))
    .map(str::to_string)
    .collect()
}

/// `tc filter show dev IF egress`: clsact filters, where a pre-6.6 kernel
/// would have put the egress program.
pub fn tc_egress_filters(ns: &str, ifname: &str) -> String {
    cmd::run(
        "ip",
        &[
            "netns", "exec", ns, "tc", "filter", "show", "dev", ifname, "egress",
        ],
    )
    .trim()
    .to_string()
}

/// Fails unless `ifname` in `ns` has nothing attached on any hook the
/// daemon uses.
pub fn assert_nothing_attached(ns: &str, ifname: &str) {
    if let Some(xdp) = xdp_program(ns, ifname) {
        panic!("{ifname} still has an XDP program: {xdp}");
    }
    let tcx = tcx_egress_programs(ns, ifname);
    assert!(
        tcx.is_empty(),
        "{ifname} still has TCX egress programs {tcx:?}"
    );
    let entries = bpftool_net_entries(ns, ifname);
    assert!(
        entries.is_empty(),
        "bpftool lists attachments on {ifname}: {entries:?}"
    );
    let filters = tc_egress_filters(ns, ifname);
    assert!(
        filters.is_empty(),
        "{ifname} still has egress filters: {filters}"
    );
}
