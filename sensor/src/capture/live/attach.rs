//! Attaching the kernel programs to interfaces.
//!
//! tc: TCX links (kernel >= 6.6, `bpf_link` based, detached when the link fd
//! closes) with classic `clsact` + `cls_bpf` over netlink as the fallback.
//! XDP (ingress only): native driver mode with generic (skb) mode as the
//! fallback. Attachments are owned by the [`aya::Ebpf`] they came from, so
//! dropping it detaches everything, on success and on error alike.
//!
//! A sensor killed with SIGKILL in netlink mode leaves its `cls_bpf`
//! filters behind (TCX and XDP links go with the process). Before
//! attaching, a starting sensor removes every tc filter named after its own
//! programs on its interfaces, so one set of programs runs after a
//! restart; until then the leftovers are inert for blocking (their
//! liveness deadline passed: `sensor_ebpf::block`).

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, Xdp,
        tc::{self, NlOptions, TcAttachOptions},
    },
};
use sensor_ebpf::{TC_EGRESS_PROGRAM, TC_INGRESS_PROGRAM, XDP_PROGRAM};
use tracing::{info, warn};

use crate::choice::Choice;

/// Which kernel hook captures segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// tc classifier on ingress and egress: both directions, after GRO.
    Tc,
    /// XDP on ingress only: earliest and cheapest, one direction.
    Xdp,
}

/// How tc programs are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcAttach {
    /// TCX, falling back to netlink when TCX is refused.
    Auto,
    /// TCX only (kernel >= 6.6).
    Tcx,
    /// Classic clsact qdisc + cls_bpf filter over netlink. Adds the qdisc
    /// when missing and leaves it (empty) on exit.
    Netlink,
}

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native mode, falling back to generic mode when the driver refuses it.
    Auto,
    /// Native (driver) mode only.
    Driver,
    /// Generic (skb) mode only.
    Skb,
}

impl Choice for Hook {
    const CHOICES: &'static [(&'static str, Self)] = &[("tc", Self::Tc), ("xdp", Self::Xdp)];
}

impl Choice for TcAttach {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("auto", Self::Auto),
        ("tcx", Self::Tcx),
        ("netlink", Self::Netlink),
    ];
}

impl Choice for XdpMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("auto", Self::Auto),
        ("driver", Self::Driver),
        ("skb", Self::Skb),
    ];
}

/// What to attach where.
#[derive(Clone, Debug)]
pub struct AttachPlan {
    /// Interfaces to attach to, by name.
    pub interfaces: Vec<String>,
    /// The hook.
    pub hook: Hook,
    /// tc attach mode (used when `hook` is [`Hook::Tc`]).
    pub tc: TcAttach,
    /// XDP attach mode (used when `hook` is [`Hook::Xdp`]).
    pub xdp: XdpMode,
}

/// Loads the programs the plan needs (running the verifier) and attaches them
/// to every interface, logging each attachment as it is made. Returns
/// whether some attachment was made over netlink (tc clsact; XDP, which aya
/// may attach either way), so detaching it needs `CAP_NET_ADMIN`.
///
/// # Errors
/// The verifier's log when the kernel refuses a program; the interface and
/// mode when an attach fails. Attachments made before the error stay owned by
/// `ebpf` and are detached when it is dropped.
pub fn attach(ebpf: &mut Ebpf, plan: &AttachPlan) -> Result<bool> {
    let mut netlink = false;
    remove_stale_filters(&plan.interfaces);
    match plan.hook {
        Hook::Tc => {
            for (name, direction) in [
                (TC_INGRESS_PROGRAM, TcAttachType::Ingress),
                (TC_EGRESS_PROGRAM, TcAttachType::Egress),
            ] {
                let program: &mut SchedClassifier = program(ebpf, name)?.try_into()?;
                program
                    .load()
                    .with_context(|| format!("the kernel refused program {name}"))?;
                for iface in &plan.interfaces {
                    let how = attach_tc(program, iface, direction, plan.tc)
                        .with_context(|| format!("attaching {name} to {iface}"))?;
                    info!("attached {name} on {iface} ({how})");
                    netlink |= how != "tcx";
                }
            }
        }
        Hook::Xdp => {
            let program: &mut Xdp = program(ebpf, XDP_PROGRAM)?.try_into()?;
            program
                .load()
                .with_context(|| format!("the kernel refused program {XDP_PROGRAM}"))?;
            for iface in &plan.interfaces {
                let how = attach_xdp(program, iface, plan.xdp)
                    .with_context(|| format!("attaching {XDP_PROGRAM} to {iface}"))?;
                info!("attached {XDP_PROGRAM} on {iface} ({how})");
                netlink = true;
            }
        }
    }
    Ok(netlink)
}

/// Removes the `cls_bpf` filters a killed sensor left on `interfaces`
/// (named `tc_ingress` / `tc_egress`), logging what was removed; a failure
/// (no `CAP_NET_ADMIN`, no clsact qdisc) is only logged.
pub fn remove_stale_filters(interfaces: &[String]) {
    for iface in interfaces {
        for (name, direction) in [
            (TC_INGRESS_PROGRAM, TcAttachType::Ingress),
            (TC_EGRESS_PROGRAM, TcAttachType::Egress),
        ] {
            match tc::qdisc_detach_program(iface, direction, name) {
                Ok(()) => warn!(iface, "removed a stale {name} filter (a killed sensor's)"),
                Err(tc::TcError::IoError(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::debug!(iface, error = %e, "no stale {name} filter removed"),
            }
        }
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .with_context(|| format!("program {name} missing from the eBPF object"))
}

fn attach_tc(
    program: &mut SchedClassifier,
    iface: &str,
    direction: TcAttachType,
    mode: TcAttach,
) -> Result<&'static str> {
    if mode != TcAttach::Netlink {
        let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
        match program.attach_with_options(iface, direction, tcx) {
            Ok(_) => return Ok("tcx"),
            Err(e) if mode == TcAttach::Tcx => return Err(e.into()),
            Err(e) => {
                warn!(iface, error = %e, "TCX attach refused, falling back to netlink clsact")
            }
        }
    }
    if let Err(e) = tc::qdisc_add_clsact(iface) {
        // EEXIST: the qdisc is already there, which is what we need.
        info!(iface, error = %e, "clsact qdisc not added");
    }
    program.attach_with_options(
        iface,
        direction,
        TcAttachOptions::Netlink(NlOptions::default()),
    )?;
    Ok("netlink clsact")
}

fn attach_xdp(program: &mut Xdp, iface: &str, mode: XdpMode) -> Result<&'static str> {
    if mode != XdpMode::Skb {
        match program.attach(iface, aya::programs::XdpMode::Driver) {
            Ok(_) => return Ok("xdp driver"),
            Err(e) if mode == XdpMode::Driver => return Err(e.into()),
            Err(e) => warn!(iface, error = %e, "native XDP refused, falling back to generic mode"),
        }
    }
    program.attach(iface, aya::programs::XdpMode::Skb)?;
    Ok("xdp generic")
}
