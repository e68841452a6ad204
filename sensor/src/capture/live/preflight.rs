//! Checks made before anything is loaded, so a bad interface name or a
//! missing capability is a clear error rather than an `EPERM` from deep
//! inside a syscall, and nothing is attached when they fail.

use caps::{CapSet, Capability};

/// Capabilities the live capture needs, each with what it is for
/// (capabilities(7); kernel's `bpf_capable()`, `perfmon_capable()` and
/// `bpf_net_capable()` checks in kernel/bpf/syscall.c and verifier.c).
/// `CAP_SYS_ADMIN` also grants `CAP_BPF` and `CAP_PERFMON`, as before Linux
/// 5.8 split them out, and `bpf_net_capable()`: loading tc and XDP programs
/// and attaching them as links (TCX, XDP links); only netlink attachments
/// (`--tc-attach netlink`, an XDP fallback) need `CAP_NET_ADMIN` itself.
/// Without `CAP_PERFMON` the verifier refuses the programs' packet-pointer
/// arithmetic ("pointer arithmetic ... prohibited for !root", EACCES),
/// measured on Linux 6.18.
const REQUIRED: &[(Capability, &str)] = &[
    (Capability::CAP_BPF, "create maps and load eBPF programs"),
    (
        Capability::CAP_PERFMON,
        "let the verifier accept the programs' packet-pointer arithmetic",
    ),
    (
        Capability::CAP_NET_ADMIN,
        "attach tc and XDP programs to interfaces",
    ),
];

/// A reason the live capture cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// A named interface does not exist in this network namespace.
    #[error("interface {0:?} does not exist in this network namespace (see `ip link`)")]
    NoSuchInterface(String),
    /// An interface name was given twice.
    #[error("interface {0:?} is listed twice")]
    DuplicateInterface(String),
    /// A required capability is missing from the effective set.
    #[error(
        "missing capability {name}: needed to {why}; run as root or grant it (systemd AmbientCapabilities=)"
    )]
    MissingCapability {
        /// Capability name, e.g. `CAP_BPF`.
        name: String,
        /// What it is needed for.
        why: &'static str,
    },
    /// The capability sets could not be read.
    #[error("reading the process capabilities: {0}")]
    Caps(#[from] caps::errors::CapsError),
}

/// Checks that every interface exists and none is named twice.
///
/// # Errors
/// [`PreflightError::NoSuchInterface`] or [`PreflightError::DuplicateInterface`].
pub fn interfaces(names: &[String]) -> Result<(), PreflightError> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(PreflightError::DuplicateInterface(name.clone()));
        }
        let index = std::ffi::CString::new(name.as_str())
            // SAFETY: a valid NUL-terminated string; if_nametoindex only reads it.
            .map(|c| unsafe { libc::if_nametoindex(c.as_ptr()) })
            .unwrap_or(0);
        if index == 0 {
            return Err(PreflightError::NoSuchInterface(name.clone()));
        }
    }
    Ok(())
}

/// Checks the effective capability set for every required capability;
/// `links`: the programs are attached as links only (no netlink), which
/// `CAP_SYS_ADMIN` allows without `CAP_NET_ADMIN`.
///
/// # Errors
/// [`PreflightError::MissingCapability`] naming the first one missing.
pub fn capabilities(links: bool) -> Result<(), PreflightError> {
    let effective = caps::read(None, CapSet::Effective)?;
    let admin = effective.contains(&Capability::CAP_SYS_ADMIN);
    for (cap, why) in REQUIRED {
        let by_admin = admin
            && (matches!(cap, Capability::CAP_BPF | Capability::CAP_PERFMON)
                || (*cap == Capability::CAP_NET_ADMIN && links));
        let granted = effective.contains(cap) || by_admin;
        if !granted {
            return Err(PreflightError::MissingCapability {
                name: cap.to_string(),
                why,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_and_unknown_names_are_named() {
        assert!(interfaces(&["lo".into()]).is_ok());
        let err = interfaces(&["lo".into(), "nope0".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "interface \"nope0\" does not exist in this network namespace (see `ip link`)"
        );
        assert!(matches!(
            interfaces(&["lo".into(), "lo".into()]),
            Err(PreflightError::DuplicateInterface(_))
        ));
    }
}
