//! The loader: loading the kernel object, attaching its programs to
//! interfaces, pinning maps and links. It sits between monitor-common and
//! the features (flows, mitigation, SYN cookies, TLS capture, ...): the
//! features import it, it imports none of them (`layers_tests` checks).
//!
//! Everything attached is held by [`Programs`]: attachments are BPF links
//! owned by this process, so dropping it (or the process dying) detaches
//! them. Unless `persist` pins them too, only the mitigation's policy tables
//! are pinned (see [`pins`]), so blocks outlive the process.

pub mod attach;
pub mod btf;
pub mod kfunc;
pub mod links;
pub mod map_batch;
pub mod mmap;
pub mod pins;
pub mod replay;
mod retry;
mod settings;

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray},
    programs::{ProgramError, SchedClassifier, Xdp},
};
use monitor_common::{
    counters::{Direction, DirectionCounters, counter_index},
    flow::RateLimit,
    iface::{IFINDEX_TABLE_SIZE, IfindexSlot, place},
};
use thiserror::Error;

pub(crate) use self::attach::{attach_tc, attach_xdp, tc_program, xdp_program};
pub use self::{
    attach::{Attachment, TcAttachMode, XdpAttachMode},
    retry::load_retrying,
    settings::LoadSettings,
};
use crate::interfaces::Interface;

/// The kernel object built by `build.rs` from `monitor-ebpf`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

pub const XDP_PROGRAM: &str = "hs_xdp_ingress";
pub const TC_PROGRAM: &str = "hs_tc_egress";
const IFINDEX_SLOTS_MAP: &str = "IFINDEX_SLOTS";
const COUNTERS_MAP: &str = "COUNTERS";
/// Sized at load; its pin must match the size (see [`pins`]).
const FLOWS_MAP: &str = "FLOWS";
/// `FLOWS`' entries per bucket of flow hashes (kept beside it).
const FLOW_FILTER_MAP: &str = "FLOW_FILTER";
pub const HALF_OPEN_MAP: &str = "HALF_OPEN";
const FLOW_CONFIG_MAP: &str = "FLOW_CONFIG";
const TLS_CONFIG_MAP: &str = "TLS_CONFIG";
/// The programs' clock switch, a frozen global (`monitor-ebpf/src/clock.rs`).
const REPLAY_GLOBAL: &str = "REPLAY";

/// Which clock the programs read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// The kernel's: live on interfaces.
    Kernel,
    /// The replayed capture's, written by [`replay::ReplayClock`].
    Capture,
}

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
    #[error("running a frame through {program} (BPF_PROG_TEST_RUN)")]
    TestRun {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("pinned state: {0}")]
    Pins(String),
    #[error("mapping BPF map {map} into memory")]
    Mmap {
        map: &'static str,
        #[source]
        source: io::Error,
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

/// The loaded kernel object: programs, maps and the links holding them on
/// interfaces.
pub struct Programs {
    ebpf: Ebpf,
    slots: Vec<IfindexSlot>,
    /// With persist: where the links are pinned.
    links: Option<PathBuf>,
    /// Links pinned by this run, unpinned (detached) if it fails to start.
    new_pins: Vec<PathBuf>,
}

impl Drop for Programs {
    fn drop(&mut self) {
        for path in &self.new_pins {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Programs {
    /// Loads the programs with the default settings.
    pub fn load() -> Result<Self, EbpfError> {
        Self::load_with(&LoadSettings::default())
    }

    /// Loads both programs into the kernel (the verifier runs here), with
    /// the flow table sized and its insert budget set from `settings`.
    pub fn load_with(settings: &LoadSettings) -> Result<Self, EbpfError> {
        Self::load_pinned(settings, None, false)
    }

    /// [`Programs::load_with`], with maps pinned in (and, when pinned there
    /// by an earlier run, reused from) `pin_dir`: the policy tables, or with
    /// `persist` every map, and then the links too (see [`Programs::attach`]).
    /// [`pins::prepare`] has checked the pins' shapes.
    pub fn load_pinned(
        settings: &LoadSettings,
        pin_dir: Option<&Path>,
        persist: bool,
    ) -> Result<Self, EbpfError> {
        let names = match pin_dir {
            Some(_) => pins::names_to_pin(persist).map_err(|e| EbpfError::Pins(e.to_string()))?,
            None => Vec::new(),
        };
        let pins: Vec<(&str, PathBuf)> = pin_dir
            .map(|dir| {
                names
                    .iter()
                    .map(|name| (name.as_str(), dir.join(name)))
                    .collect()
            })
            .unwrap_or_default();
        let mut programs = Self::load_object(settings, &pins, Clock::Kernel)?;
        if persist && let Some(dir) = pin_dir {
            programs.adopt_slots()?;
            programs.links = Some(pins::links_dir(dir));
        }
        Ok(programs)
    }

    /// Loads the object with maps pinned at `pins`; `clock` is frozen into
    /// the programs (see `monitor-ebpf/src/clock.rs`).
    fn load_object(
        settings: &LoadSettings,
        pins: &[(&str, PathBuf)],
        clock: Clock,
    ) -> Result<Self, EbpfError> {
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(FLOWS_MAP, settings.flow_table_size);
        let flow_config = settings.kernel_config();
        loader.map_max_entries(HALF_OPEN_MAP, flow_config.slots());
        for (name, path) in pins {
            loader.map_pin_path(name, path.as_path());
        }
        let replay = u8::from(clock == Clock::Capture);
        loader.override_global(REPLAY_GLOBAL, &replay, true);
        // The cookie ACK program's kfunc call, resolved here (aya cannot).
        let kfunc = kfunc::assign_reqsk_id(Path::new(btf::KERNEL_BTF_PATH));
        let (object, _) = kfunc::patch(EBPF_OBJECT, kfunc);
        let mut ebpf = loader.load(object.bytes()).map_err(EbpfError::Object)?;
        write_settings(&mut ebpf, FLOW_CONFIG_MAP, flow_config)?;
        let load_err = |program| move |source| EbpfError::Program { program, source };
        let xdp = xdp_program(&mut ebpf)?;
        load_retrying(|| xdp.load()).map_err(load_err(XDP_PROGRAM))?;
        let tc = tc_program(&mut ebpf)?;
        load_retrying(|| tc.load()).map_err(load_err(TC_PROGRAM))?;
        Ok(Self {
            ebpf,
            slots: vec![IfindexSlot::default(); IFINDEX_TABLE_SIZE as usize],
            links: None,
            new_pins: Vec::new(),
        })
    }

    /// With a pinned slot table, the slots an earlier run gave interfaces:
    /// the same interface keeps its slot (and its pinned counters).
    fn adopt_slots(&mut self) -> Result<(), EbpfError> {
        let table = slot_table(&mut self.ebpf)?;
        for (position, entry) in self.slots.iter_mut().enumerate() {
            *entry = table.get(&(position as u32), 0).map_err(slot_map_err)?;
        }
        Ok(())
    }

    /// Forgets every interface but `keep` in the slot table (persist: the
    /// ones an earlier run watched and this one does not).
    pub fn forget_other_interfaces(&mut self, keep: &[u32]) -> Result<Vec<u32>, EbpfError> {
        let mut table = slot_table(&mut self.ebpf)?;
        let mut forgotten = Vec::new();
        for (position, entry) in self.slots.iter_mut().enumerate() {
            if entry.ifindex != 0 && !keep.contains(&entry.ifindex) {
                forgotten.push(entry.ifindex);
                *entry = IfindexSlot::default();
                table
                    .set(position as u32, *entry, 0)
                    .map_err(slot_map_err)?;
            }
        }
        Ok(forgotten)
    }

    /// Whether links are pinned (and so stay attached after exit).
    pub fn persistent(&self) -> bool {
        self.links.is_some()
    }

    /// The start succeeded: the links pinned by this run stay pinned.
    pub fn keep_pins(&mut self) {
        self.new_pins.clear();
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
        slot_table(&mut self.ebpf)?
            .set(position, entry, 0)
            .map_err(slot_map_err)?;
        self.slots[position as usize] = entry;
        Ok(slot)
    }

    /// Registers `iface` and attaches XDP (native, else generic) on ingress
    /// and TC on egress.
    pub fn attach(&mut self, iface: &Interface) -> Result<Attachment, EbpfError> {
        let slot = self.register(iface)?;
        if let Some(dir) = self.links.clone() {
            let (xdp, tc) = links::attach_pinned(&mut self.ebpf, iface, &dir, &mut self.new_pins)?;
            return Ok(Attachment {
                iface: iface.clone(),
                slot,
                xdp,
                tc,
            });
        }
        let (xdp, _) = attach_xdp(xdp_program(&mut self.ebpf)?, iface)?;
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

/// The ifindex -> slot table the programs read.
fn slot_table(ebpf: &mut Ebpf) -> Result<Array<&mut MapData, IfindexSlot>, EbpfError> {
    let map = ebpf.map_mut(IFINDEX_SLOTS_MAP).ok_or(EbpfError::Missing {
        kind: "map",
        name: IFINDEX_SLOTS_MAP,
    })?;
    Array::try_from(map).map_err(slot_map_err)
}

fn slot_map_err(source: aya::maps::MapError) -> EbpfError {
    EbpfError::Map {
        map: IFINDEX_SLOTS_MAP,
        source,
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
