//! Giving up capabilities once the programs are attached: nothing the
//! daemon does afterwards (reading the ring buffer and counter maps through
//! the file descriptors it holds, writing outputs, serving metrics) needs
//! them, so a compromise of the traffic-facing code inherits none.
//!
//! What stays, and why: `CAP_NET_ADMIN` only while a netlink-attached tc
//! filter or an XDP program must be detached at exit (netlink requests
//! need it; TCX links are file descriptors, detached by closing them).
//! `CAP_BPF`, `CAP_PERFMON`, `CAP_SYS_ADMIN` and every other capability
//! (root's full set included) are dropped from the effective, permitted,
//! inheritable and ambient sets (capabilities(7)).

use caps::{CapSet, Capability, CapsHashSet};

/// Drops every capability but `CAP_NET_ADMIN` when `keep_net_admin` and
/// it is held (a process attaching with `CAP_SYS_ADMIN` alone made links,
/// not netlink attachments). Returns the capabilities left in the
/// permitted set.
///
/// # Errors
/// The kernel refuses a capset change.
pub fn drop_after_attach(keep_net_admin: bool) -> Result<CapsHashSet, caps::errors::CapsError> {
    let mut keep = CapsHashSet::new();
    if keep_net_admin && caps::has_cap(None, CapSet::Permitted, Capability::CAP_NET_ADMIN)? {
        keep.insert(Capability::CAP_NET_ADMIN);
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())?;
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    caps::read(None, CapSet::Permitted)
}
