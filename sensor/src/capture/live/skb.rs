//! Where the running kernel keeps `sk_buff.ip_summed`, read from its BTF
//! (`/sys/kernel/btf/vmlinux`, through `btf-rs`): the tc programs read it
//! to judge a segment's TCP checksum as the stack will (`CHECKSUM_NONE`
//! and `CHECKSUM_COMPLETE` are verified by TCP, `CHECKSUM_UNNECESSARY` and
//! `CHECKSUM_PARTIAL` are not). Kernels lay `sk_buff` out differently, so
//! the offset is looked up, never assumed.

use btf_rs::{Btf, BtfType, Type};

/// The kernel's BTF.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

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
    let btf = Btf::from_file(VMLINUX_BTF).ok()?;
    let skb = btf
        .resolve_types_by_name("sk_buff")
        .ok()?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(_)))?;
    let bit = find(&btf, &skb, "ip_summed", 0, 0)?;
    Some(IpSummed {
        byte: bit / 8,
        shift: (bit % 8) as u8,
    })
}

/// The bit offset of the 2-bit field `name` in struct or union `ty`
/// (whose own offset is `base` bits), looking into anonymous members.
fn find(btf: &Btf, ty: &Type, name: &str, base: u32, depth: u8) -> Option<u32> {
    let members = match ty {
        Type::Struct(s) => &s.members,
        Type::Union(u) => &u.members,
        _ => return None,
    };
    for m in members {
        let offset = base + m.bit_offset();
        match btf.resolve_name(m).ok()?.as_str() {
            n if n == name => return (m.bitfield_size() == Some(2)).then_some(offset),
            "" if depth < 4 => {
                let inner = btf.resolve_chained_type(m as &dyn BtfType).ok()?;
                if let Some(found) = find(btf, &inner, name, offset, depth + 1) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_kernel_has_ip_summed_in_its_btf() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipped: no {VMLINUX_BTF}");
            return;
        }
        let at = ip_summed().expect("sk_buff.ip_summed in BTF");
        // It sits in the byte after `active_extensions`, past the first
        // hundred bytes on every 5.x/6.x layout.
        assert!(at.byte > 100 && at.byte < 256, "{at:?}");
        assert!(at.shift <= 6, "{at:?}");
    }
}
