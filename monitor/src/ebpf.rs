//! Loading the kernel programs and attaching them to interfaces.
//!
//! Everything attached is held by [`Programs`]: attachments are BPF links
//! owned by this process, so dropping it (or the process dying) detaches
//! them. Only the mitigation's policy tables are pinned (see
//! `mitigation::pins`), so blocks outlive the process.

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray},
    programs::{
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        tc::{self, TcAttachOptions},
    },
    util::KernelVersion,
};
use monitor_common::{
    counters::{Direction, DirectionCounters, counter_index},
    flow::RateLimit,
    iface::{IFINDEX_TABLE_SIZE, IfindexSlot, place},
};
use thiserror::Error;

use crate::{flows::FlowSettings, interfaces::Interface};

pub const XDP_PROGRAM: &str = "hs_xdp_ingress";
pub const TC_PROGRAM: &str = "hs_tc_egress";
const IFINDEX_SLOTS_MAP: &str = "IFINDEX_SLOTS";
const COUNTERS_MAP: &str = "COUNTERS";
const FLOWS_MAP: &str = "FLOWS";
const FLOW_CONFIG_MAP: &str = "FLOW_CONFIG";
const TLS_CONFIG_MAP: &str = "TLS_CONFIG";

#[derive(Debug, Error)]
pub enum EbpfError {
    #[error("loading the BPF object into the kernel failed")]
    Object(#[source] aya::EbpfError),
    #[error("the kernel rejected program {program}")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error(
        "the BPF object has no {kind} named {name} (build mismatch; rebuild with `cargo xtask build`)"
    )]
    Missing {
        kind: &'static str,
        name: &'static str,
    },
    #[error("BPF map {map}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(
        "interface {iface} already has an XDP program attached by another tool (or another \
         handshake-monitor); see `ip link show dev {iface}`, detach it with \
         `ip link set dev {iface} xdp off` if it is not needed, or monitor another interface"
    )]
    XdpBusy { iface: String },
    #[error(
        "attaching XDP to {iface} failed in native mode ({native}) and in generic mode \
         ({generic})"
    )]
    XdpAttach {
        iface: String,
        native: String,
        generic: String,
    },
    #[error("attaching the TC egress program to {iface} failed")]
    TcAttach {
        iface: String,
        #[source]
        source: ProgramError,
    },
    #[error("no room for interface {iface} (ifindex {ifindex}) in the interface table")]
    TableFull { iface: String, ifindex: u32 },
}

/// Where XDP runs on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// In the driver, before an skb exists.
    Native,
    /// In the stack after skb allocation: slower, works on any device.
    Generic,
}

impl XdpAttachMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

/// How the egress program is hooked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcAttachMode {
    /// TCX link (Linux 6.6+): owned by the process, composes with others.
    Tcx,
    /// clsact qdisc filter on older kernels.
    Clsact,
}

impl TcAttachMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub iface: Interface,
    pub slot: u32,
    pub xdp: XdpAttachMode,
    pub tc: TcAttachMode,
}

/// The loaded kernel object: programs, maps and the links holding them on
/// interfaces.
pub struct Programs {
    ebpf: Ebpf,
    slots: Vec<IfindexSlot>,
}

impl Programs {
    /// Loads the programs with the default flow settings.
    pub fn load() -> Result<Self, EbpfError> {
        Self::load_with(&FlowSettings::default())
    }

    /// Loads both programs into the kernel (the verifier runs here), with
    /// the flow table sized and its insert budget set from `flows`.
    pub fn load_with(flows: &FlowSettings) -> Result<Self, EbpfError> {
        Self::load_pinned(flows, None)
    }

    /// [`Programs::load_with`], with the mitigation's policy tables pinned
    /// in (and, when pinned there by an earlier run, reused from) `pin_dir`.
    pub fn load_pinned(flows: &FlowSettings, pin_dir: Option<&Path>) -> Result<Self, EbpfError> {
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(FLOWS_MAP, flows.table_size);
        let pins: Vec<(&'static str, PathBuf)> = pin_dir
            .map(|dir| {
                crate::mitigation::pins::pinned_maps()
                    .iter()
                    .map(|(name, _, _)| (*name, dir.join(name)))
                    .collect()
            })
            .unwrap_or_default();
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        // The cookie ACK program's kfunc call, resolved here (aya cannot).
        let kfunc =
            crate::syncookies::kfunc::assign_reqsk_id(Path::new(crate::preflight::KERNEL_BTF_PATH));
        let (object, _) = crate::syncookies::kfunc::patch(crate::EBPF_OBJECT, kfunc);
        let mut ebpf = loader.load(object.bytes()).map_err(EbpfError::Object)?;
        let budget = RateLimit {
            per_sec_per_cpu: flows.inserts_per_sec_per_cpu,
            burst: flows.insert_burst,
        };
        write_settings(&mut ebpf, FLOW_CONFIG_MAP, budget)?;
        let load_err = |program| move |source| EbpfError::Program { program, source };
        xdp_program(&mut ebpf)?
            .load()
            .map_err(load_err(XDP_PROGRAM))?;
        tc_program(&mut ebpf)?
            .load()
            .map_err(load_err(TC_PROGRAM))?;
        Ok(Self {
            ebpf,
            slots: vec![IfindexSlot::default(); IFINDEX_TABLE_SIZE as usize],
        })
    }

    /// Sets how many TLS hello captures each CPU may start per second.
    pub fn set_tls_budget(&mut self, per_sec_per_cpu: u64, burst: u64) -> Result<(), EbpfError> {
        let budget = RateLimit {
            per_sec_per_cpu,
            burst,
        };
        write_settings(&mut self.ebpf, TLS_CONFIG_MAP, budget)
    }

    /// Gives `iface` a counter slot; the programs count its packets from
    /// then on. Returns the slot.
    pub fn register(&mut self, iface: &Interface) -> Result<u32, EbpfError> {
        let table_full = || EbpfError::TableFull {
            iface: iface.name.clone(),
            ifindex: iface.ifindex,
        };
        let position = place(&self.slots, iface.ifindex).ok_or_else(table_full)?;
        let existing = self.slots[position as usize];
        if existing.ifindex == iface.ifindex {
            return Ok(existing.slot);
        }
        let slot = self.slots.iter().filter(|s| s.ifindex != 0).count() as u32;
        if slot >= monitor_common::iface::MAX_INTERFACES {
            return Err(table_full());
        }
        let entry = IfindexSlot {
            ifindex: iface.ifindex,
            slot,
        };
        let map = self
            .ebpf
            .map_mut(IFINDEX_SLOTS_MAP)
            .ok_or(EbpfError::Missing {
                kind: "map",
                name: IFINDEX_SLOTS_MAP,
            })?;
        let mut table: Array<_, IfindexSlot> =
            Array::try_from(map).map_err(|source| EbpfError::Map {
                map: IFINDEX_SLOTS_MAP,
                source,
            })?;
        table
            .set(position, entry, 0)
            .map_err(|source| EbpfError::Map {
                map: IFINDEX_SLOTS_MAP,
                source,
            })?;
        self.slots[position as usize] = entry;
        Ok(slot)
    }

    /// Registers `iface` and attaches XDP (native, else generic) on ingress
    /// and TC on egress.
    pub fn attach(&mut self, iface: &Interface) -> Result<Attachment, EbpfError> {
        let slot = self.register(iface)?;
        let xdp = attach_xdp(xdp_program(&mut self.ebpf)?, iface)?;
        let tc = attach_tc(tc_program(&mut self.ebpf)?, iface)?;
        Ok(Attachment {
            iface: iface.clone(),
            slot,
            xdp,
            tc,
        })
    }

    /// Takes the counter map out, for the metrics collector.
    pub fn take_counters(&mut self) -> Result<CounterReader, EbpfError> {
        Ok(CounterReader {
            map: self.take_map(COUNTERS_MAP)?,
        })
    }

    /// Takes map `name` out of the loaded object as a typed aya map, for
    /// the part of the daemon that owns it from then on.
    pub fn take_map<T>(&mut self, name: &'static str) -> Result<T, EbpfError>
    where
        T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
    {
        take_map(&mut self.ebpf, name)
    }

    /// The loaded object, for subsystems that bring programs of their own
    /// (they stay attached as long as it lives).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    pub fn xdp(&mut self) -> Result<&mut Xdp, EbpfError> {
        xdp_program(&mut self.ebpf)
    }

    pub fn tc(&mut self) -> Result<&mut SchedClassifier, EbpfError> {
        tc_program(&mut self.ebpf)
    }
}

/// Takes map `name` out of `ebpf` as a typed aya map.
pub fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, EbpfError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(EbpfError::Missing { kind: "map", name })?;
    T::try_from(map).map_err(|source| EbpfError::Map { map: name, source })
}

/// Writes the one entry of a settings array map the programs read.
pub fn write_settings<T: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    value: T,
) -> Result<(), EbpfError> {
    let map = ebpf
        .map_mut(name)
        .ok_or(EbpfError::Missing { kind: "map", name })?;
    let map_err = |source| EbpfError::Map { map: name, source };
    let mut table: Array<_, T> = Array::try_from(map).map_err(map_err)?;
    table.set(0, value, 0).map_err(map_err)
}

fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, EbpfError> {
    ebpf.program_mut(XDP_PROGRAM)
        .and_then(|p| p.try_into().ok())
        .ok_or(EbpfError::Missing {
            kind: "XDP program",
            name: XDP_PROGRAM,
        })
}

fn tc_program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, EbpfError> {
    ebpf.program_mut(TC_PROGRAM)
        .and_then(|p| p.try_into().ok())
        .ok_or(EbpfError::Missing {
            kind: "TC program",
            name: TC_PROGRAM,
        })
}

/// The errno behind an attach failure, through aya's error layers.
fn errno(err: &ProgramError) -> Option<i32> {
    match err {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        ProgramError::XdpError(aya::programs::xdp::XdpError::NetlinkError(e)) => e.raw_os_error(),
        _ => None,
    }
}

/// An error with its sources: aya's messages name the syscall, the source
/// names the errno.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn is_busy(err: &ProgramError) -> bool {
    matches!(errno(err), Some(libc::EBUSY | libc::EEXIST))
}

fn attach_xdp(program: &mut Xdp, iface: &Interface) -> Result<XdpAttachMode, EbpfError> {
    let native = match program.attach_to_if_index(iface.ifindex, XdpMode::Driver) {
        Ok(_) => return Ok(XdpAttachMode::Native),
        Err(err) if is_busy(&err) => {
            return Err(EbpfError::XdpBusy {
                iface: iface.name.clone(),
            });
        }
        Err(err) => err,
    };
    match program.attach_to_if_index(iface.ifindex, XdpMode::Skb) {
        Ok(_) => {
            tracing::warn!(
                interface = %iface.name,
                reason = %describe(&native),
                "native XDP is not available on this interface; running in generic (SKB) mode, \
                 which sees the same packets at a higher cost per packet"
            );
            Ok(XdpAttachMode::Generic)
        }
        Err(err) if is_busy(&err) => Err(EbpfError::XdpBusy {
            iface: iface.name.clone(),
        }),
        Err(generic) => Err(EbpfError::XdpAttach {
            iface: iface.name.clone(),
            native: describe(&native),
            generic: describe(&generic),
        }),
    }
}

fn attach_tc(program: &mut SchedClassifier, iface: &Interface) -> Result<TcAttachMode, EbpfError> {
    let tc_err = |source| EbpfError::TcAttach {
        iface: iface.name.clone(),
        source,
    };
    if KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0)) {
        program
            .attach_with_options(
                &iface.name,
                TcAttachType::Egress,
                TcAttachOptions::TcxOrder(Default::default()),
            )
            .map_err(tc_err)?;
        return Ok(TcAttachMode::Tcx);
    }
    match tc::qdisc_add_clsact(&iface.name) {
        Ok(()) => {}
        // Someone (maybe an earlier run) already added one: share it.
        Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(tc_err(ProgramError::TcError(e))),
    }
    program
        .attach(&iface.name, TcAttachType::Egress)
        .map_err(tc_err)?;
    Ok(TcAttachMode::Clsact)
}

/// Reads the per-CPU counters and sums the CPUs.
pub struct CounterReader {
    map: PerCpuArray<MapData, DirectionCounters>,
}

impl CounterReader {
    pub fn read(&self, slot: u32, direction: Direction) -> io::Result<DirectionCounters> {
        let values = self
            .map
            .get(&counter_index(slot, direction), 0)
            .map_err(io::Error::other)?;
        let mut sum = DirectionCounters::default();
        for cpu in values.iter() {
            sum.accumulate(cpu);
        }
        Ok(sum)
    }
}
