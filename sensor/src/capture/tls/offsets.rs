//! The kernel offsets the TLS tap's programs need, from the running
//! kernel's BTF ([`crate::capture::btf`]): `struct sock_common`'s address
//! and port fields (include/net/sock.h) and the path from a file
//! descriptor to its socket, for the programs binding a connection to its
//! socket, and the path from a task to its network
//! namespace's inode (`task->nsproxy->net_ns->ns.inum`) for telling the
//! gateway's processes. Without them the tap does not load: a wrong offset
//! would tie plaintext to the wrong connection.

use sensor_ebpf::tls::{FdField, SockField};

use crate::capture::btf::KernelBtf;

/// The offsets, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// Indexed by [`SockField`].
    pub sock: [u32; 7],
    /// Indexed by [`FdField`].
    pub fd: [u32; 7],
    /// `[task_struct.nsproxy, nsproxy.net_ns, net.ns.inum]`.
    pub netns: [u32; 3],
}

/// Reads them from the running kernel's BTF.
///
/// # Errors
/// Why not: no BTF, or a member missing or not on a byte boundary.
pub fn kernel_offsets() -> Result<KernelOffsets, String> {
    let btf = KernelBtf::load().ok_or_else(|| {
        format!(
            "the kernel has no BTF ({}), so the socket's address fields cannot be located",
            crate::capture::btf::VMLINUX_BTF
        )
    })?;
    let offset = |ty: &str, name: &str| {
        btf.member(ty, name)
            .and_then(|m| m.byte_offset())
            .ok_or_else(|| format!("`{ty}.{name}` not found in the kernel's BTF"))
    };
    let mut sock = [0; 7];
    for (field, name) in SockField::ALL {
        sock[field as usize] = offset("sock_common", name)?;
    }
    let mut fd = [0; 7];
    for (field, ty, name) in FdField::ALL {
        fd[field as usize] = offset(ty, name)?;
    }
    Ok(KernelOffsets {
        sock,
        fd,
        netns: [
            offset("task_struct", "nsproxy")?,
            offset("nsproxy", "net_ns")?,
            offset("net", "ns")? + offset("ns_common", "inum")?,
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sock_common_offsets_match_the_classic_layout() {
        if KernelBtf::load().is_none() {
            eprintln!("skipped: no BTF");
            return;
        }
        let o = kernel_offsets().unwrap();
        // The layout BCC's tcp tools rely on since 4.x: the address pair
        // first, then the port pair (skc_dport, then skc_num), the family.
        let at = |f: SockField| o.sock[f as usize];
        assert_eq!((at(SockField::Daddr), at(SockField::RcvSaddr)), (0, 4));
        assert_eq!((at(SockField::Dport), at(SockField::Num)), (12, 14));
        assert_eq!(at(SockField::Family), 16);
        assert!(at(SockField::V6RcvSaddr) == at(SockField::V6Daddr) + 16);
        assert!(o.netns.iter().all(|&at| at > 0), "{o:?}");
        // include/linux/fdtable.h: `struct fdtable` opens with `max_fds`,
        // then the `fd` array's pointer; include/linux/net.h: a socket's
        // `sk` follows its `file`.
        let fd = |f: FdField| o.fd[f as usize];
        assert_eq!(
            (fd(FdField::FdtMaxFds), fd(FdField::FdtFd)),
            (0, 8),
            "{o:?}"
        );
        assert_eq!(fd(FdField::SocketSk), fd(FdField::SocketFile) + 8, "{o:?}");
        assert!(
            fd(FdField::TaskFiles) > 0 && fd(FdField::FilesFdt) > 0,
            "{o:?}"
        );
    }
}
