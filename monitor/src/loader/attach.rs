//! Attaching the programs to an interface: XDP in native mode with a
//! generic-mode fallback, TC egress as a TCX link (a clsact filter before
//! Linux 6.6), and the errors that name what to do when that fails.

use aya::{
    Ebpf,
    programs::{
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        tc::{self, TcAttachOptions},
        xdp::XdpLinkId,
    },
    util::KernelVersion,
};

use super::{EbpfError, TC_PROGRAM, XDP_PROGRAM};
use crate::interfaces::Interface;

/// Where XDP runs on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// In the driver, before an skb exists.
    Native,
    /// In the stack after skb allocation: slower, works on any device.
    Generic,
    /// Attached nowhere: a replay runs frames through BPF_PROG_TEST_RUN.
    TestRun,
}

impl XdpAttachMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
            Self::TestRun => "test_run",
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
    /// Attached nowhere: a replay runs frames through BPF_PROG_TEST_RUN.
    TestRun,
}

impl TcAttachMode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
            Self::TestRun => "test_run",
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

pub(crate) fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, EbpfError> {
    ebpf.program_mut(XDP_PROGRAM)
        .and_then(|p| p.try_into().ok())
        .ok_or(EbpfError::Missing {
            kind: "XDP program",
            name: XDP_PROGRAM,
        })
}

pub(crate) fn tc_program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, EbpfError> {
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

pub(crate) fn attach_xdp(
    program: &mut Xdp,
    iface: &Interface,
) -> Result<(XdpAttachMode, XdpLinkId), EbpfError> {
    let native = match program.attach_to_if_index(iface.ifindex, XdpMode::Driver) {
        Ok(id) => return Ok((XdpAttachMode::Native, id)),
        Err(err) if is_busy(&err) => {
            return Err(EbpfError::XdpBusy {
                iface: iface.name.clone(),
            });
        }
        Err(err) => err,
    };
    match program.attach_to_if_index(iface.ifindex, XdpMode::Skb) {
        Ok(id) => {
            tracing::warn!(
                interface = %iface.name,
                reason = %describe(&native),
                "native XDP is not available on this interface; running in generic (SKB) mode, \
                 which sees the same packets at a higher cost per packet"
            );
            Ok((XdpAttachMode::Generic, id))
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

pub(crate) fn attach_tc(
    program: &mut SchedClassifier,
    iface: &Interface,
) -> Result<TcAttachMode, EbpfError> {
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
