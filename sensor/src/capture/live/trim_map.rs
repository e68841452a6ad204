//! The kernel side of `--trim-bodies`: the body-range map and its state
//! slot in the loaded object (`sensor_ebpf::trim`), written through the
//! file descriptors the daemon holds (no capability needed after attach).

use std::net::{IpAddr, SocketAddr};

use aya::maps::{Array, HashMap, MapData};
use sensor_ebpf::trim::{self, KEY_LEN, MAP, STATE_MAP};

use crate::capture::{Trim, kernel_map};

/// The body-range map of a running capture.
pub struct KernelTrims {
    ranges: HashMap<MapData, [u8; KEY_LEN], u64>,
    state: Array<MapData, u64>,
    /// Whether the state slot says ranges exist.
    armed: bool,
}

/// Counters of the advice written to the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrimCounters {
    /// Ranges written.
    pub written: u64,
    /// Ranges the map refused (logged once); their bodies are recorded.
    pub failed: u64,
}

impl KernelTrims {
    /// Takes the maps out of the loaded object.
    ///
    /// # Errors
    /// A map is missing from the object or of another type.
    pub(super) fn take(ebpf: &mut aya::Ebpf) -> anyhow::Result<Self> {
        Ok(Self {
            ranges: kernel_map(ebpf, MAP)?,
            state: kernel_map(ebpf, STATE_MAP)?,
            armed: false,
        })
    }

    /// Writes `advice`'s range (replacing the direction's previous one).
    ///
    /// # Errors
    /// The map update failed.
    pub(super) fn write(&mut self, advice: &Trim) -> Result<(), aya::maps::MapError> {
        self.ranges.insert(
            key(advice.src, advice.dst),
            trim::range(advice.from_seq, advice.until_seq),
            0,
        )?;
        if !self.armed {
            self.state.set(0, 1, 0)?;
            self.armed = true;
        }
        Ok(())
    }
}

/// The kernel's key for the direction `src` -> `dst`, as the programs build
/// it from a segment's header.
fn key(src: SocketAddr, dst: SocketAddr) -> [u8; KEY_LEN] {
    let (family, saddr) = bytes(src.ip());
    let (_, daddr) = bytes(dst.ip());
    let mut k = [0u8; KEY_LEN];
    trim::write_key(&mut k, family, &saddr, &daddr, src.port(), dst.port());
    k
}

/// An address as the kernel programs store it: family, and 16 bytes with
/// IPv4 in the first 4.
fn bytes(ip: IpAddr) -> (u8, [u8; 16]) {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (4, b)
        }
        IpAddr::V6(a) => (6, a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_what_a_record_header_holds() {
        let src: SocketAddr = "10.77.1.2:8080".parse().unwrap();
        let dst: SocketAddr = "10.77.1.1:40000".parse().unwrap();
        let k = key(src, dst);
        assert_eq!(&k[..4], &[10, 77, 1, 2]);
        assert_eq!(&k[16..20], &[10, 77, 1, 1]);
        assert_eq!(u16::from_ne_bytes([k[32], k[33]]), 8080);
        assert_eq!(u16::from_ne_bytes([k[34], k[35]]), 40000);
        assert_eq!(k[36], 4);
        let v6 = key("[fd77::1]:8000".parse().unwrap(), dst);
        assert_eq!(v6[36], 6);
        assert_ne!(v6[..16], k[..16]);
    }
}
