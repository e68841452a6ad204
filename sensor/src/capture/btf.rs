//! Where the running kernel keeps struct members, read from its BTF
//! (`/sys/kernel/btf/vmlinux`, format: kernel doc bpf/btf.rst) with
//! `btf-rs`. The kernel programs cannot relocate field accesses (there is
//! no CO-RE from Rust), so userspace looks each offset up and hands it in
//! as a `.rodata` global; kernels lay structs out differently, so an
//! offset is never assumed.

use btf_rs::{Btf, BtfType, Type};

/// The kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// A struct member's place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u32,
    /// Width in bits when the member is a bitfield.
    pub bitfield_size: Option<u32>,
}

impl Member {
    /// The byte offset, for a member that starts on a byte.
    pub fn byte_offset(&self) -> Option<u32> {
        self.bit_offset
            .is_multiple_of(8)
            .then_some(self.bit_offset / 8)
    }
}

/// The running kernel's BTF.
pub struct KernelBtf(Btf);

impl KernelBtf {
    /// Reads [`VMLINUX_BTF`]; `None` when the kernel has none.
    pub fn load() -> Option<Self> {
        Btf::from_file(VMLINUX_BTF).ok().map(Self)
    }

    /// Member `name` of struct `ty`, looking into anonymous struct and
    /// union members (as `struct sock_common` nests its fields); `None`
    /// when either is absent.
    pub fn member(&self, ty: &str, name: &str) -> Option<Member> {
        let found = self.0.resolve_types_by_name(ty).ok()?;
        let outer = found.into_iter().find(|t| matches!(t, Type::Struct(_)))?;
        self.find(&outer, name, 0, 0)
    }

    fn find(&self, ty: &Type, name: &str, base: u32, depth: u8) -> Option<Member> {
        let members = match ty {
            Type::Struct(s) => &s.members,
            Type::Union(u) => &u.members,
            _ => return None,
        };
        for m in members {
            let bit_offset = base + m.bit_offset();
            match self.0.resolve_name(m).ok()?.as_str() {
                n if n == name => {
                    return Some(Member {
                        bit_offset,
                        bitfield_size: m.bitfield_size(),
                    });
                }
                "" if depth < 4 => {
                    let inner = self.0.resolve_chained_type(m as &dyn BtfType).ok()?;
                    if let Some(found) = self.find(&inner, name, bit_offset, depth + 1) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_members_are_found_in_the_running_kernel() {
        let Some(btf) = KernelBtf::load() else {
            eprintln!("skipped: no {VMLINUX_BTF}");
            return;
        };
        // skc_dport sits in an anonymous union inside an anonymous struct.
        let dport = btf.member("sock_common", "skc_dport").unwrap();
        let num = btf.member("sock_common", "skc_num").unwrap();
        assert_eq!(num.byte_offset().unwrap(), dport.byte_offset().unwrap() + 2);
        assert_eq!(btf.member("sock_common", "no_such_member"), None);
        assert_eq!(btf.member("no_such_struct", "skc_num"), None);
    }
}
