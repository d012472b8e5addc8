//! The kernel's own view of TCP next to the packet view: BTF tracepoint
//! programs (`monitor-ebpf/src/kernel_state.rs`) on socket state changes,
//! SYN-ACK retransmits and resets, counted for this daemon's network
//! namespace only.
//!
//! The programs cannot relocate struct fields themselves (aya-ebpf has no
//! CO-RE), so [`attach`] resolves the offsets they need from the running
//! kernel's BTF, writes them with the namespace's inode number into the
//! `KS_CONFIG` map, and only then attaches: a program never runs
//! unconfigured.

mod collector;

use std::{os::unix::fs::MetadataExt as _, path::Path};

use aya::{
    Ebpf,
    programs::{BtfTracePoint, ProgramError},
};
use monitor_common::tcp_state::KernelStateConfig;
use thiserror::Error;

pub use self::collector::KernelStateCollector;
use crate::loader::{
    EbpfError,
    btf::{self, Btf, BtfError, KERNEL_BTF_PATH, Shape},
    take_map, write_settings,
};

const CONFIG_MAP: &str = "KS_CONFIG";
const COUNTERS_MAP: &str = "KS_COUNTERS";
const NETNS_PATH: &str = "/proc/self/ns/net";

/// (program in the object, kernel tracepoint it attaches to).
pub const PROGRAMS: [(&str, &str); 4] = [
    ("hs_sock_state", "inet_sock_set_state"),
    ("hs_synack_rtx", "tcp_retransmit_synack"),
    ("hs_rst_sent", "tcp_send_reset"),
    ("hs_rst_recv", "tcp_receive_reset"),
];

#[derive(Debug, Error)]
pub enum KernelStateError {
    #[error("reading the kernel's BTF for the tracepoint programs")]
    Btf(#[source] BtfError),
    #[error(
        "cannot resolve {field} from the kernel's BTF for the tracepoint programs \
         (handshake-monitor knows Linux with BTF, tested on 6.18)"
    )]
    Offset {
        field: String,
        #[source]
        source: BtfError,
    },
    #[error("reading this process's network namespace ({NETNS_PATH})")]
    Netns(#[source] std::io::Error),
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
    #[error(
        "loading or attaching tracepoint program {program} to tp_btf/{tracepoint} failed \
         (needs BTF and CAP_BPF with CAP_PERFMON)"
    )]
    Program {
        program: &'static str,
        tracepoint: &'static str,
        #[source]
        source: ProgramError,
    },
}

/// Loads and attaches the tracepoint programs in `ebpf` and returns the
/// collector for their counters. They stay attached as long as `ebpf`
/// lives; on error, what was attached is dropped with `ebpf` by the caller.
pub fn attach(ebpf: &mut Ebpf) -> Result<KernelStateCollector, KernelStateError> {
    let btf = Btf::from_file(Path::new(KERNEL_BTF_PATH)).map_err(KernelStateError::Btf)?;
    let mut config = resolve_offsets(&btf)?;
    config.netns_inum = own_netns_inum()?;
    write_settings(ebpf, CONFIG_MAP, config)?;

    // aya's own parse, which it needs to find each tracepoint's BTF id.
    let kernel_btf = aya::Btf::from_sys_fs().map_err(|source| {
        KernelStateError::Btf(BtfError::Malformed(format!(
            "aya could not parse {KERNEL_BTF_PATH}: {source}"
        )))
    })?;
    for (program, tracepoint) in PROGRAMS {
        let prog_err = |source| KernelStateError::Program {
            program,
            tracepoint,
            source,
        };
        let prog: &mut BtfTracePoint = ebpf
            .program_mut(program)
            .and_then(|p| p.try_into().ok())
            .ok_or(EbpfError::Missing {
                kind: "tp_btf program",
                name: program,
            })?;
        crate::loader::load_retrying(|| prog.load(tracepoint, &kernel_btf)).map_err(prog_err)?;
        prog.attach().map_err(prog_err)?;
    }

    let counters = take_map(ebpf, COUNTERS_MAP)?;
    Ok(KernelStateCollector::new(counters))
}

/// The offsets `KernelStateConfig` documents, from `btf`, each checked to
/// have the type the programs read it as.
pub fn resolve_offsets(btf: &Btf) -> Result<KernelStateConfig, KernelStateError> {
    let sock_net = offset(
        btf,
        "sock",
        &["__sk_common", "skc_net", "net"],
        Want::Pointer,
    )?;
    let net_inum = offset(btf, "net", &["ns", "inum"], Want::Int(&[4]))?;
    let protocol = field(btf, "sock", &["sk_protocol"])?;
    let sock_protocol_size = match btf.shape(protocol.type_id) {
        Shape::Int(size @ (1 | 2)) => size,
        found => return Err(unexpected("sock.sk_protocol", found, "a u8 or u16")),
    };
    Ok(KernelStateConfig {
        netns_inum: 0,
        sock_net,
        net_inum,
        sock_protocol: protocol.offset,
        sock_protocol_size,
        skb_dev: offset(btf, "sk_buff", &["dev"], Want::Pointer)?,
        dev_net: offset(btf, "net_device", &["nd_net", "net"], Want::Pointer)?,
        _reserved: 0,
    })
}

enum Want {
    Pointer,
    Int(&'static [u32]),
}

fn offset(btf: &Btf, root: &str, path: &[&str], want: Want) -> Result<u32, KernelStateError> {
    let found = field(btf, root, path)?;
    let shape = btf.shape(found.type_id);
    let ok = match want {
        Want::Pointer => shape == Shape::Pointer,
        Want::Int(sizes) => matches!(shape, Shape::Int(size) if sizes.contains(&size)),
    };
    if !ok {
        let expected = match want {
            Want::Pointer => "a pointer",
            Want::Int(_) => "a 4-byte integer",
        };
        return Err(unexpected(&dotted(root, path), shape, expected));
    }
    Ok(found.offset)
}

fn field(btf: &Btf, root: &str, path: &[&str]) -> Result<btf::Field, KernelStateError> {
    btf.field(root, path)
        .map_err(|source| KernelStateError::Offset {
            field: dotted(root, path),
            source,
        })
}

fn unexpected(field: &str, found: Shape, expected: &'static str) -> KernelStateError {
    KernelStateError::Offset {
        field: field.to_string(),
        source: BtfError::Unexpected {
            field: field.to_string(),
            found: format!("{found:?}"),
            expected,
        },
    }
}

fn dotted(root: &str, path: &[&str]) -> String {
    format!("{root}.{}", path.join("."))
}

/// The inode number of this process's network namespace: what the kernel
/// stores in `net->ns.inum` and `ls -l /proc/self/ns/net` shows.
pub fn own_netns_inum() -> Result<u32, KernelStateError> {
    let ino = std::fs::metadata(NETNS_PATH)
        .map_err(KernelStateError::Netns)?
        .ino();
    u32::try_from(ino).map_err(|_| {
        KernelStateError::Netns(std::io::Error::other(format!(
            "namespace inode {ino} does not fit the kernel's 32-bit ns.inum"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_the_running_kernel() {
        let btf = Btf::from_file(Path::new(KERNEL_BTF_PATH)).unwrap();
        let config = resolve_offsets(&btf).unwrap();
        // Stable for years; a change here is worth a look, not a failure
        // of the daemon (which uses whatever BTF says).
        assert_eq!(config.sock_protocol_size, 2, "u16 since Linux 5.6");
        assert_eq!(config.skb_dev, 16, "after sk_buff's next and prev");
        assert!(config.sock_net > 0 && config.net_inum > 0 && config.dev_net > 0);
        assert_ne!(own_netns_inum().unwrap(), 0);
    }

    #[test]
    fn a_missing_struct_names_the_field() {
        // A valid BTF blob with no types at all.
        let mut blob = Vec::new();
        for word in [0xeb9f_u32 | 1 << 16, 24, 0, 0, 0, 1] {
            blob.extend_from_slice(&word.to_le_bytes());
        }
        blob.push(0);
        let err = resolve_offsets(&Btf::parse(blob).unwrap()).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::new(err));
        assert_eq!(
            chain,
            "cannot resolve sock.__sk_common.skc_net.net from the kernel's BTF for the \
             tracepoint programs (handshake-monitor knows Linux with BTF, tested on 6.18): \
             the kernel's BTF has no struct sock"
        );
    }
}
