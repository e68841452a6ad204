//! Probe points that the kernel emulates instead of single-stepping.
//!
//! A uprobe replaces an instruction with a breakpoint; on a hit the kernel
//! runs the original instruction either by emulating it (x86 emulates
//! `call`, `jmp` and `jcc`: `branch_setup_xol_ops` in
//! arch/x86/kernel/uprobes.c) or by single-stepping a copy of it, a second
//! trap. Where a debug trap leaves the virtual machine (AMD guests), that
//! is about 12 us against 1 us (BENCHMARKS.md, "Where the TLS tap's cost
//! comes from"). `SSL_read` and `SSL_write` begin with `sub $N,%rsp`, and a
//! return probe must sit on the first instruction.
//!
//! In OpenSSL 1.1.1 and 3.x both are thin wrappers (`ssl/ssl_lib.c`):
//! `SSL_read(s, buf, num)` calls `ssl_read_internal(s, buf, num,
//! &readbytes)` and, if it returned more than 0, returns `readbytes`
//! (likewise `SSL_write` and `ssl_write_internal`). So the call and the
//! branch that tests its result are emulated instructions where the tap
//! learns all it needs: at the call, the four arguments of the `_ex` form
//! (`SSL*`, buffer, length, where the count goes); at the branch, the
//! result in `%eax`. [`call_site`] finds them by decoding the function;
//! [`inner_call`] checks that `SSL_read` and `SSL_read_ex` call the same
//! function, so the call found is `ssl_read_internal`'s. Any other shape
//! leaves the function to the entry and return probes.

use std::path::Path;

use anyhow::{Context as _, Result};
use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

/// Instructions decoded from a function's start, at most.
const MAX_INSTRUCTIONS: usize = 32;

/// Where to probe a wrapper: offsets from the function's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// The `call` of the inner function (its arguments are in registers).
    pub call: u64,
    /// The conditional branch that tests its result (`%eax`).
    pub branch: u64,
    /// The called function's address (to compare with a sibling's).
    pub target: u64,
}

/// The first `call rel32` in `code` (a function at address `ip`), with
/// nothing before it but straight-line code and conditional branches (an
/// early exit such as `SSL_read`'s `num < 0` check skips both probes), and
/// the first conditional branch after it with only `test`/`cmp` between
/// (they write no register); `None` without that shape. Plain encodings
/// only: the kernel emulates a branch without prefixes.
pub fn call_site(code: &[u8], ip: u64) -> Option<CallSite> {
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut instructions =
        (0..MAX_INSTRUCTIONS).map_while(|_| decoder.can_decode().then(|| decoder.decode()));
    let call = first_call(&mut instructions)?;
    let branch = instructions.find(|i| !matches!(i.mnemonic(), Mnemonic::Test | Mnemonic::Cmp))?;
    if !plain_jcc(&branch) {
        return None;
    }
    Some(CallSite {
        call: call.ip() - ip,
        branch: branch.ip() - ip,
        target: call.near_branch_target(),
    })
}

/// The first `call rel32` of `instructions`, with nothing before it but
/// straight-line code and conditional branches.
fn first_call(instructions: &mut impl Iterator<Item = Instruction>) -> Option<Instruction> {
    let call = instructions
        .find(|i| i.is_invalid() || !(i.flow_control() == FlowControl::Next || plain_jcc(i)))?;
    (call.code() == Code::Call_rel32_64 && call.len() == 5).then_some(call)
}

/// The target of the first `call rel32` in `code` (a function at `ip`).
fn call_target(code: &[u8], ip: u64) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut instructions =
        (0..MAX_INSTRUCTIONS).map_while(|_| decoder.can_decode().then(|| decoder.decode()));
    first_call(&mut instructions).map(|c| c.near_branch_target())
}

/// A `jcc rel8` (2 bytes) or `jcc rel32` (`0F 8x`, 6 bytes), no prefix.
fn plain_jcc(i: &Instruction) -> bool {
    i.is_jcc_short_or_near() && matches!(i.len(), 2 | 6)
}

/// [`call_site`] of `function` in the ELF library at `path`, when its
/// `_ex` sibling's first call goes to the same function.
///
/// # Errors
/// The library cannot be read or parsed.
pub fn inner_call(path: &Path, function: &str, sibling: &str) -> Result<Option<CallSite>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    let code = |name: &str| -> Option<(&[u8], u64)> {
        let symbol = file.dynamic_symbols().find(|s| s.name() == Ok(name))?;
        let section = file.section_by_index(symbol.section_index()?).ok()?;
        let data = section.data().ok()?;
        let start = usize::try_from(symbol.address().checked_sub(section.address())?).ok()?;
        let len = usize::try_from(symbol.size()).ok()?.min(256);
        Some((data.get(start..start + len)?, symbol.address()))
    };
    let site = code(function).and_then(|(c, ip)| call_site(c, ip));
    let target = code(sibling).and_then(|(c, ip)| call_target(c, ip));
    Ok(site.filter(|s| Some(s.target) == target))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SSL_read` of Debian 12's libssl 3.0 (at 0x35430), up to the
    /// instruction after the branch.
    const SSL_READ: &[u8] = &[
        0x48, 0x83, 0xec, 0x18, // sub $0x18,%rsp
        0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0, // mov %fs:0x28,%rax
        0x48, 0x89, 0x44, 0x24, 0x08, // mov %rax,0x8(%rsp)
        0x31, 0xc0, // xor %eax,%eax
        0x85, 0xd2, // test %edx,%edx
        0x78, 0x2f, // js +0x2f
        0x48, 0x89, 0xe1, // mov %rsp,%rcx
        0x48, 0x63, 0xd2, // movslq %edx,%rdx
        0xe8, 0x3d, 0xfe, 0xff, 0xff, // call 0x35290
        0x85, 0xc0, // test %eax,%eax
        0x7e, 0x03, // jle +3
        0x8b, 0x04, 0x24, // mov (%rsp),%eax
    ];

    /// `SSL_read_ex` of the same library (at 0x354c0): no branch after
    /// the call.
    const SSL_READ_EX: &[u8] = &[
        0x48, 0x83, 0xec, 0x08, // sub $0x8,%rsp
        0xe8, 0xc7, 0xfd, 0xff, 0xff, // call 0x35290
        0x31, 0xd2, // xor %edx,%edx
        0x85, 0xc0, // test %eax,%eax
        0x0f, 0x48, 0xc2, // cmovs %edx,%eax
        0x48, 0x83, 0xc4, 0x08, // add $0x8,%rsp
        0xc3, // ret
    ];

    #[test]
    fn the_wrapper_call_and_its_result_test_are_found() {
        assert_eq!(
            call_site(SSL_READ, 0x35430),
            Some(CallSite {
                call: 0x1e,
                branch: 0x25,
                target: 0x35290
            })
        );
    }

    #[test]
    fn the_ex_form_calls_the_same_inner_function() {
        assert_eq!(call_target(SSL_READ_EX, 0x354c0), Some(0x35290));
    }

    #[test]
    fn other_shapes_are_left_to_the_entry_and_return_probes() {
        assert_eq!(call_site(SSL_READ_EX, 0x354c0), None, "no branch after");
        assert_eq!(call_site(&[0x48, 0x83, 0xec, 0x18], 0), None, "no call");
        assert_eq!(
            call_site(&[0xff, 0xd0, 0x85, 0xc0, 0x7e, 0x03], 0),
            None,
            "call *%rax"
        );
    }
}
