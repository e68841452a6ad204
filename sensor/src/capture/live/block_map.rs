//! The kernel side of `--block on`: the blocked-address maps and the state
//! array of the loaded object (`sensor_ebpf::block`), written through the
//! file descriptors the daemon holds (no capability needed after attach).

use std::{io, net::IpAddr};

use aya::maps::{Array, HashMap, MapData, MapError};
use sensor_ebpf::block::{ACTIVE, ALIVE_UNTIL, STATE_MAP, V4_MAP, V6_MAP};

use crate::{block::Enforcer, capture::kernel_map};

/// The blocked-address maps of a running capture.
pub struct KernelBlocks {
    v4: HashMap<MapData, [u8; 4], u64>,
    v6: HashMap<MapData, [u8; 16], u64>,
    state: Array<MapData, u64>,
}

impl KernelBlocks {
    /// Takes the maps out of the loaded object.
    ///
    /// # Errors
    /// A map is missing from the object or of another type.
    pub(super) fn take(ebpf: &mut aya::Ebpf) -> anyhow::Result<Self> {
        Ok(Self {
            v4: kernel_map(ebpf, V4_MAP)?,
            v6: kernel_map(ebpf, V6_MAP)?,
            state: kernel_map(ebpf, STATE_MAP)?,
        })
    }
}

fn io_error(e: MapError) -> io::Error {
    io::Error::other(e)
}

impl Enforcer for KernelBlocks {
    fn insert(&mut self, ip: IpAddr, deadline_ns: u64) -> io::Result<()> {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.insert(a.octets(), deadline_ns, 0),
            IpAddr::V6(a) => self.v6.insert(a.octets(), deadline_ns, 0),
        }
        .map_err(io_error)
    }

    fn remove(&mut self, ip: IpAddr) -> io::Result<()> {
        let removed = match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.remove(&a.octets()),
            IpAddr::V6(a) => self.v6.remove(&a.octets()),
        };
        match removed {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            Err(e) => Err(io_error(e)),
        }
    }

    fn state(&mut self, active: u64, alive_until_ns: u64) -> io::Result<()> {
        // Liveness first: a count that goes up never meets a stale deadline.
        self.state
            .set(ALIVE_UNTIL, alive_until_ns, 0)
            .map_err(io_error)?;
        self.state.set(ACTIVE, active, 0).map_err(io_error)
    }
}
