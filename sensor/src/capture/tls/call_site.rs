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
//! [`LibraryCode::inner_call`] checks that `SSL_read` and `SSL_read_ex` call the same
//! function, so the call found is `ssl_read_internal`'s. Any other shape
//! leaves the function to the entry and return probes.
//!
//! A function probed on entry only (`SSL_free`, `SSL_set_accept_state`)
//! is probed at [`entry_point`] instead: its first branch or call, reached
//! by every call, where the argument registers still hold the arguments.

use std::path::Path;

use anyhow::{Context as _, Result};
use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, Register,
};
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
    let mut instructions = decode(code, ip);
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
    plain_call(&call).then_some(call)
}

/// The first [`MAX_INSTRUCTIONS`] instructions of `code`, a function at
/// address `ip`.
fn decode(code: &[u8], ip: u64) -> impl Iterator<Item = Instruction> + '_ {
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    (0..MAX_INSTRUCTIONS).map_while(move |_| decoder.can_decode().then(|| decoder.decode()))
}

/// The System V AMD64 argument registers, in order (the ABI's section
/// 3.2.3): a probe reads argument `n` from the `n`th.
const ARGUMENTS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];

/// Where an entry-only probe of the function `code` (at address `ip`) can
/// sit on an emulated instruction: the offset of its first instruction
/// that is not straight-line code, when that is a plain `jcc` or `call
/// rel32` (every call reaches it; the kernel emulates it) and nothing
/// before it writes an argument register. `SSL_free` (`test %rdi,%rdi;
/// je`) gives 3. `None` without that shape.
pub fn entry_point(code: &[u8], ip: u64) -> Option<u64> {
    let mut info = InstructionInfoFactory::new();
    for i in decode(code, ip) {
        if i.is_invalid() {
            return None;
        }
        if i.flow_control() != FlowControl::Next {
            return (plain_call(&i) || plain_jcc(&i)).then(|| i.ip() - ip);
        }
        let writes_argument = info.info(&i).used_registers().iter().any(|r| {
            ARGUMENTS.contains(&r.register().full_register())
                && !matches!(r.access(), OpAccess::Read | OpAccess::CondRead)
        });
        if writes_argument {
            return None;
        }
    }
    None
}

/// The target of the first `call rel32` in `code` (a function at `ip`).
fn call_target(code: &[u8], ip: u64) -> Option<u64> {
    first_call(&mut decode(code, ip)).map(|c| c.near_branch_target())
}

/// A `call rel32` (5 bytes), no prefix.
fn plain_call(i: &Instruction) -> bool {
    i.code() == Code::Call_rel32_64 && i.len() == 5
}

/// A `jcc rel8` (2 bytes) or `jcc rel32` (`0F 8x`, 6 bytes), no prefix.
fn plain_jcc(i: &Instruction) -> bool {
    i.is_jcc_short_or_near() && matches!(i.len(), 2 | 6)
}

/// A library's code, to decode its exported functions.
pub struct LibraryCode {
    data: Vec<u8>,
}

impl LibraryCode {
    /// Reads the ELF library at `path`.
    ///
    /// # Errors
    /// The file cannot be read or is not an object file.
    pub fn read(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Self { data })
    }

    /// [`call_site`] of `function`, when its `_ex` sibling's first call
    /// goes to the same function.
    pub fn inner_call(&self, function: &str, sibling: &str) -> Option<CallSite> {
        let site = self.code(function, call_site)?;
        let target = self.code(sibling, call_target)?;
        (site.target == target).then_some(site)
    }

    /// [`entry_point`] of `function`.
    pub fn entry_point(&self, function: &str) -> Option<u64> {
        self.code(function, entry_point)
    }

    /// `decode` of the first 256 bytes of the exported `function` and its
    /// address; `None` when either is missing.
    fn code<T>(&self, function: &str, decode: impl Fn(&[u8], u64) -> Option<T>) -> Option<T> {
        let file = object::File::parse(&*self.data).ok()?;
        let symbol = file.dynamic_symbols().find(|s| s.name() == Ok(function))?;
        let section = file.section_by_index(symbol.section_index()?).ok()?;
        let data = section.data().ok()?;
        let start = usize::try_from(symbol.address().checked_sub(section.address())?).ok()?;
        let len = usize::try_from(symbol.size()).ok()?.min(256);
        decode(data.get(start..start + len)?, symbol.address())
    }
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

    /// `SSL_free` of Debian 12's libssl 3.0 (at 0x3b350), its first
    /// three instructions.
    const SSL_FREE: &[u8] = &[
        0x48, 0x85, 0xff, // test %rdi,%rdi
        0x0f, 0x84, 0x97, 0x03, 0, 0, // je 0x3b6f0
        0x41, 0x55, // push %r13
    ];

    /// `SSL_set_accept_state` of the same library (at 0x38e50), up to its
    /// first call.
    const SSL_SET_ACCEPT_STATE: &[u8] = &[
        0x53, // push %rbx
        0x48, 0x89, 0xfb, // mov %rdi,%rbx
        0xc7, 0x47, 0x38, 1, 0, 0, 0, // movl $0x1,0x38(%rdi)
        0xc7, 0x47, 0x44, 0, 0, 0, 0, // movl $0x0,0x44(%rdi)
        0xe8, 0x19, 0xcf, 0x02, 0x00, // call 0x65d80
    ];

    #[test]
    fn entry_only_probes_move_to_the_first_branch_or_call() {
        assert_eq!(entry_point(SSL_FREE, 0x3b350), Some(3));
        assert_eq!(entry_point(SSL_SET_ACCEPT_STATE, 0x38e50), Some(0x12));
        assert_eq!(entry_point(SSL_READ_EX, 0x354c0), Some(4));
    }

    #[test]
    fn no_entry_point_past_a_written_argument_or_an_odd_branch() {
        let moved = [0x48, 0x89, 0xc7, 0xe8, 0, 0, 0, 0]; // mov %rax,%rdi; call
        assert_eq!(entry_point(&moved, 0), None, "%rdi written");
        let esi = [0x31, 0xf6, 0x74, 0x02]; // xor %esi,%esi; je
        assert_eq!(entry_point(&esi, 0), None, "%esi is half of %rsi");
        assert_eq!(entry_point(&[0xc3], 0), None, "ret");
        assert_eq!(entry_point(&[0xff, 0xd0], 0), None, "call *%rax");
        assert_eq!(entry_point(&[0x48, 0x89, 0xfb], 0), None, "no branch");
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
