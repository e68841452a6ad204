//! Where the running kernel keeps `sk_buff.ip_summed` ([`crate::capture::btf`]):
//! the tc programs read it to judge a segment's TCP checksum as the stack
//! will (`CHECKSUM_NONE` and `CHECKSUM_COMPLETE` are verified by TCP,
//! `CHECKSUM_UNNECESSARY` and `CHECKSUM_PARTIAL` are not).

use crate::capture::btf::KernelBtf;

/// Where `ip_summed` is: the byte holding it and its bit position there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpSummed {
    /// Byte offset from the start of `struct sk_buff`.
    pub byte: u32,
    /// Bit position of the 2-bit field in that byte (little endian).
    pub shift: u8,
}

/// `ip_summed`'s place in the running kernel's `struct sk_buff`; `None`
/// when the kernel has no BTF or the field is not a 2-bit bitfield there.
pub fn ip_summed() -> Option<IpSummed> {
    let member = KernelBtf::load()?.member("sk_buff", "ip_summed")?;
    (member.bitfield_size == Some(2)).then_some(IpSummed {
        byte: member.bit_offset / 8,
        shift: (member.bit_offset % 8) as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_kernel_has_ip_summed_in_its_btf() {
        if !std::path::Path::new(crate::capture::btf::VMLINUX_BTF).exists() {
            eprintln!("skipped: no BTF");
            return;
        }
        let at = ip_summed().expect("sk_buff.ip_summed in BTF");
        // It sits in the byte after `active_extensions`, past the first
        // hundred bytes on every 5.x/6.x layout.
        assert!(at.byte > 100 && at.byte < 256, "{at:?}");
        assert!(at.shift <= 6, "{at:?}");
    }
}
