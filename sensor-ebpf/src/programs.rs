//! The tc and XDP programs, their maps and the record emitter. Passive
//! unless a kernel block is active (`--block on`): then an ingress segment
//! from a blocked source to a Kong proxy port is dropped (`TC_ACT_SHOT` /
//! `XDP_DROP`, see [`sensor_ebpf::block`]); everything else returns
//! `TC_ACT_UNSPEC` / `XDP_PASS`.

use core::{
    ptr,
    sync::atomic::{Ordering, compiler_fence},
};

use aya_ebpf::{
    bindings::{
        __sk_buff, BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, TC_ACT_SHOT, TC_ACT_UNSPEC, xdp_action,
    },
    helpers::{
        bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::{bpf_csum_diff, bpf_skb_load_bytes, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    },
    macros::{classifier, map, xdp},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::warn;
use sensor_ebpf::{
    COUNTER_SLOTS, Counter, DEFAULT_CAPTURE_LEN, DIRECTION_EGRESS, DIRECTION_INGRESS, HEADER_LEN,
    HOOK_TC, HOOK_XDP, MAX_CAPTURE_LEN, SegmentHeader, block, checks, port_bits,
    ring::{self, Position},
    tcp_flags::{FIN, RST, SYN},
    trim::{self, Verdict},
};

use sensor_ebpf::headers::{Parsed, Skip, fold, pseudo_header_sum, walk};

/// Payload bytes copied per record; set by userspace before load. Lives in
/// frozen `.rodata`, so the verifier sees a constant reservation size.
#[unsafe(no_mangle)]
static CAPTURE_LEN: u32 = DEFAULT_CAPTURE_LEN;

/// Non-zero: record every TCP port and ignore `PORTS`.
#[unsafe(no_mangle)]
static ALL_PORTS: u8 = 0;

/// Chunks in each CPU's ring ([`ring`]), a power of two; set by userspace.
#[unsafe(no_mangle)]
static RING_CHUNKS_PER_CPU: u32 = 1;

/// Non-zero: the host keeps stores in program order (see [`publish`]);
/// set by userspace.
#[unsafe(no_mangle)]
static RING_STORES_IN_ORDER: u8 = 0;

/// Byte offset of the byte holding `sk_buff.ip_summed` (from the running
/// kernel's BTF, set by userspace); 0 when unknown.
#[unsafe(no_mangle)]
static IP_SUMMED_BYTE: u32 = 0;

/// Bit position of the 2-bit `ip_summed` in that byte.
#[unsafe(no_mangle)]
static IP_SUMMED_SHIFT: u8 = 0;

/// `ip_summed` values (include/linux/skbuff.h).
const CHECKSUM_NONE: u8 = 0;
const CHECKSUM_UNNECESSARY: u8 = 1;
const CHECKSUM_COMPLETE: u8 = 2;
const CHECKSUM_PARTIAL: u8 = 3;

/// Longest TCP segment (header and payload) whose checksum is summed here:
/// four `bpf_csum_diff` calls of 512 bytes.
const MAX_SUMMED: u32 = 2048;
/// Bytes summed per `bpf_csum_diff` call (the helper's limit).
const SUM_CHUNK: u32 = 512;

/// Scratch space for summing a segment, one chunk at a time, and for a
/// [`TRIMS`] key.
#[map]
static SCRATCH: PerCpuArray<[u8; SUM_CHUNK as usize + 4]> = PerCpuArray::with_max_entries(1, 0);

/// Each CPU's ring positions ([`ring`]); one entry per possible CPU, set
/// by userspace.
#[map]
static RING_POSITIONS: Array<Position> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// The rings' chunks ([`ring`]); sized by userspace.
#[map]
static RING_CHUNKS: Array<[u8; ring::CHUNK]> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Per-CPU counters, indexed by [`Counter`].
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Port filter: [`port_bits`] at index `port`.
#[map]
static PORTS: Array<u8> = Array::with_max_entries(65536, 0);

/// Blocked IPv4 sources: address bytes -> deadline (boot-clock ns).
#[map]
static BLOCKED_V4: HashMap<[u8; 4], u64> =
    HashMap::with_max_entries(block::MAX_ENTRIES, BPF_F_NO_PREALLOC as u32);

/// Blocked IPv6 sources: address bytes -> deadline (boot-clock ns).
#[map]
static BLOCKED_V6: HashMap<[u8; 16], u64> =
    HashMap::with_max_entries(block::MAX_ENTRIES, BPF_F_NO_PREALLOC as u32);

/// [`block::ACTIVE`] and [`block::ALIVE_UNTIL`].
#[map]
static BLOCK_STATE: Array<u64> = Array::with_max_entries(block::STATE_SLOTS, 0);

/// Body ranges the daemon will not read: [`trim::write_key`] ->
/// [`trim::range`].
#[map]
static TRIMS: LruHashMap<[u8; trim::KEY_LEN], u64> =
    LruHashMap::with_max_entries(trim::MAX_ENTRIES, 0);

/// Slot 0 non-zero once the daemon wrote a range.
#[map]
static TRIM_STATE: Array<u64> = Array::with_max_entries(1, 0);

/// What to do with a wanted segment given the daemon's body ranges
/// ([`trim`]): nothing for a segment the capture length does not cut, one
/// array read while no range was ever written.
#[inline(always)]
fn trim_verdict(header: &SegmentHeader) -> Verdict {
    let control = header.tcp_flags & (SYN | FIN | RST) != 0;
    // Only segments the capture length cuts are worth a lookup; a SYN,
    // FIN or RST clears the direction's range, so a new connection on the
    // same 4-tuple (its ISN chosen by the sender) never meets a stale one.
    let capture = unsafe { ptr::read_volatile(&CAPTURE_LEN) };
    if (!control && header.payload_len <= capture) || TRIM_STATE.get(0).is_none_or(|n| *n == 0) {
        return Verdict::Record;
    }
    // The key is built in the scratch map: the stack has no room for it.
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return Verdict::Record;
    };
    let key = unsafe { &mut *(scratch as *mut [u8; trim::KEY_LEN]) };
    let h = header;
    trim::write_key(key, h.family, &h.saddr, &h.daddr, h.sport, h.dport);
    let key: &[u8; trim::KEY_LEN] = key;
    if control {
        let _ = TRIMS.remove(key);
        return Verdict::Record;
    }
    let Some(range) = (unsafe { TRIMS.get(key) }) else {
        return Verdict::Record;
    };
    let verdict = trim::verdict(*range, header.seq, header.payload_len);
    if matches!(verdict, Verdict::Last | Verdict::Past) {
        let _ = TRIMS.remove(key);
    }
    verdict
}

/// Whether an ingress segment must be dropped: its source is blocked and
/// it goes to a Kong proxy port. With no block active this is one array
/// read. A daemon that stopped refreshing [`block::ALIVE_UNTIL`] (killed)
/// blocks nothing: fail-open.
#[inline(always)]
fn blocked(header: &SegmentHeader) -> bool {
    if BLOCK_STATE.get(block::ACTIVE).is_none_or(|n| *n == 0) {
        return false;
    }
    if !PORTS
        .get(header.dport as u32)
        .is_some_and(|v| *v & port_bits::PROXY != 0)
    {
        return false;
    }
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if BLOCK_STATE
        .get(block::ALIVE_UNTIL)
        .is_none_or(|alive| now >= *alive)
    {
        return false;
    }
    let deadline = if header.family == 4 {
        let s = &header.saddr;
        unsafe { BLOCKED_V4.get([s[0], s[1], s[2], s[3]]) }
    } else {
        unsafe { BLOCKED_V6.get(header.saddr) }
    };
    deadline.is_some_and(|d| now < *d)
}

/// Frame offsets past this are read by the helper only: the verifier
/// needs a bound on the offset it adds to a packet pointer.
const MAX_DIRECT_OFFSET: u32 = 0x3fff;

/// Copies `len` bytes at frame offset `off` to `dst` straight from the
/// packet's linear data, `[data, data_end)` (direct packet access, kernel
/// doc bpf/verifier.rst): no helper call. False when they are not all in
/// it (see [`sensor_ebpf::headers::walk`]).
#[inline(always)]
fn direct(data: usize, data_end: usize, off: u32, dst: *mut u8, len: u32) -> bool {
    if off > MAX_DIRECT_OFFSET {
        return false;
    }
    let start = data + off as usize;
    if start + len as usize > data_end {
        return false;
    }
    unsafe { ptr::copy_nonoverlapping(start as *const u8, dst, len as usize) };
    true
}

#[inline(always)]
fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn wanted(header: &SegmentHeader) -> bool {
    if unsafe { ptr::read_volatile(&ALL_PORTS) } != 0 {
        return true;
    }
    let on = |port: u16| {
        PORTS
            .get(port as u32)
            .is_some_and(|v| *v & port_bits::CAPTURE != 0)
    };
    on(header.sport) || on(header.dport)
}

/// Writes the segment's record to this CPU's ring; `bare`: the header
/// only (the last segment of a trimmed body). `copy(offset, dst, len)`
/// copies `len` payload bytes from frame offset `offset` to `dst`.
#[inline(always)]
fn emit<C: Fn(u32, *mut u8, u32) -> bool>(
    parsed: &mut Parsed,
    bare: bool,
    copy: C,
) -> Result<(), Counter> {
    let header = &mut parsed.header;
    header.ktime_ns = unsafe { bpf_ktime_get_ns() };
    let capture = unsafe { ptr::read_volatile(&CAPTURE_LEN) }.min(MAX_CAPTURE_LEN);
    header.captured_len = if bare {
        0
    } else {
        header.payload_len.min(capture)
    };
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let position = RING_POSITIONS.get_ptr_mut(cpu).ok_or(Counter::RingFull)?;
    let busy = unsafe { &raw mut (*position).busy };
    if unsafe { ptr::read_volatile(busy) } != 0 {
        return Err(Counter::RingFull);
    }
    unsafe { ptr::write_volatile(busy, 1) };
    let outcome = write_record(position, cpu, header, parsed.payload_offset, copy);
    unsafe { ptr::write_volatile(busy, 0) };
    outcome
}

/// [`emit`]'s record, written at `position`'s head of CPU `cpu`'s ring
/// and published (see [`ring`]).
#[inline(always)]
fn write_record<C: Fn(u32, *mut u8, u32) -> bool>(
    position: *mut Position,
    cpu: u32,
    header: &SegmentHeader,
    offset: u32,
    copy: C,
) -> Result<(), Counter> {
    const ROOM: u64 = ring::MAX_RECORD as u64;
    let chunks = unsafe { ptr::read_volatile(&RING_CHUNKS_PER_CPU) };
    let head = unsafe { ptr::read_volatile(&raw const (*position).head) };
    let tail = unsafe { ptr::read_volatile(&raw const (*position).tail) };
    let start = ring::placement(head, ROOM);
    let len = header.captured_len;
    let end = start + ring::record_len(len);
    if end.wrapping_sub(tail) > u64::from(chunks) << ring::CHUNK_SHIFT {
        return Err(Counter::RingFull);
    }
    if start != head {
        // The rest of head's chunk stays unused.
        let (chunk, at) = ring::slot(head, chunks);
        let chunk = RING_CHUNKS
            .get_ptr_mut(cpu * chunks + chunk)
            .ok_or(Counter::RingFull)?;
        // Verifier: `at` is a multiple of 8 below CHUNK; the mask says so.
        let at = at & (ring::CHUNK - 8);
        unsafe { ptr::write_volatile((chunk as *mut u8).add(at) as *mut u32, ring::SKIP) };
    }
    let (chunk, at) = ring::slot(start, chunks);
    let chunk = RING_CHUNKS
        .get_ptr_mut(cpu * chunks + chunk)
        .ok_or(Counter::RingFull)?;
    if at > ring::CHUNK - ring::MAX_RECORD {
        return Err(Counter::RingFull); // never: placement() made room
    }
    let base = unsafe { (chunk as *mut u8).add(at) };
    if len > 0 {
        // Verifier: the helper's size must be provably within [1,
        // MAX_CAPTURE_LEN]. LLVM folds any test of it into a form the
        // verifier cannot follow, so the bound is rebuilt from a mask: for
        // a length in that range (a power of two) this is the length
        // itself.
        const { assert!(MAX_CAPTURE_LEN.is_power_of_two()) };
        let n = (core::hint::black_box(len).wrapping_sub(1) & (MAX_CAPTURE_LEN - 1)) + 1;
        if !copy(offset, unsafe { base.add(ring::PREFIX + HEADER_LEN) }, n) {
            return Err(Counter::CopyError);
        }
    }
    let used = (ring::PREFIX + HEADER_LEN) as u32 + len;
    unsafe {
        ptr::write_unaligned(base as *mut u32, used);
        ptr::write_unaligned(base.add(ring::PREFIX) as *mut SegmentHeader, *header);
        publish(&raw mut (*position).head, end);
    }
    Ok(())
}

/// Stores `value` at `at` after every store before it is visible to
/// other CPUs (a store-release). On a host that keeps stores in program
/// order (x86-64, Intel SDM vol. 3A 9.2.2; `RING_STORES_IN_ORDER` set by
/// userspace) a plain store after a compiler fence is one, as the kernel's
/// own `smp_store_release` on x86; measured, it saves about 60 ns a record
/// against the locked exchange. Elsewhere `BPF_XCHG` (Linux 5.12), fully
/// ordered on every JIT (kernel doc: bpf/standardization/
/// instruction-set.rst, atomic operations), written as assembly because
/// LLVM emits atomics other than a plain add only for `-mcpu=v3` and
/// aya-build asks for `generic`.
#[inline(always)]
unsafe fn publish(at: *mut u64, value: u64) {
    if unsafe { ptr::read_volatile(&RING_STORES_IN_ORDER) } != 0 {
        compiler_fence(Ordering::SeqCst);
        unsafe { ptr::write_volatile(at, value) };
        return;
    }
    unsafe {
        core::arch::asm!(
            "{v} = xchg_64({p} + 0, {v})",
            p = in(reg) at,
            v = inout(reg) value => _,
            options(nostack),
        );
    }
}

/// Counts the outcome of one wanted segment; `Seen` always, then exactly one
/// of `Submitted`, `RingFull`, `CopyError` or `Trimmed`.
#[inline(always)]
fn account(outcome: Result<(), Counter>) -> Result<(), Counter> {
    count(Counter::Seen);
    count(outcome.err().unwrap_or(Counter::Submitted));
    outcome
}

#[classifier]
pub fn tc_ingress(ctx: TcContext) -> i32 {
    if tc_segment(&ctx, DIRECTION_INGRESS) {
        TC_ACT_SHOT as i32
    } else {
        TC_ACT_UNSPEC
    }
}

#[classifier]
pub fn tc_egress(ctx: TcContext) -> i32 {
    tc_segment(&ctx, DIRECTION_EGRESS);
    TC_ACT_UNSPEC
}

/// The segment's `ip_summed`, read from the kernel's `sk_buff` (the tc
/// context is one) at the offset userspace found in BTF.
#[inline(always)]
fn ip_summed(skb: *mut __sk_buff) -> Option<u8> {
    let byte = unsafe { ptr::read_volatile(&IP_SUMMED_BYTE) };
    if byte == 0 {
        return None;
    }
    let shift = unsafe { ptr::read_volatile(&IP_SUMMED_SHIFT) } & 7;
    let at = (skb as *const u8).wrapping_add(byte as usize);
    let value: u8 = unsafe { bpf_probe_read_kernel(at) }.ok()?;
    Some((value >> shift) & 3)
}

/// Whether the TCP checksum of the segment at `tcp_offset` (`tcp_len`
/// bytes) is right, summing it here; `None` when it is too long to sum.
#[inline(always)]
fn tcp_checksum_ok(skb: *mut __sk_buff, parsed: &Parsed) -> Option<bool> {
    let len = parsed.tcp_len;
    if len == 0 || len > MAX_SUMMED {
        return None;
    }
    let scratch = SCRATCH.get_ptr_mut(0)?;
    let mut acc = pseudo_header_sum(&parsed.header, len);
    for i in 0..(MAX_SUMMED / SUM_CHUNK) {
        let start = i * SUM_CHUNK;
        if start >= len {
            break;
        }
        let n = core::hint::black_box((len - start).min(SUM_CHUNK));
        if n == 0 || n > SUM_CHUNK {
            return None;
        }
        let buf = scratch as *mut u8;
        // Zero the word the chunk ends in, so padding adds nothing.
        let pad = (n & !3) as usize;
        unsafe { ptr::write_unaligned(buf.add(pad) as *mut u32, 0) };
        let off = parsed.tcp_offset + start;
        if unsafe { bpf_skb_load_bytes(skb as *const _, off, buf as *mut _, n) } != 0 {
            return None;
        }
        let words = core::hint::black_box((n + 3) & !3);
        if words == 0 || words > SUM_CHUNK {
            return None;
        }
        let sum = unsafe { bpf_csum_diff(ptr::null_mut(), 0, buf as *mut _, words, 0) };
        if sum < 0 {
            return None;
        }
        acc += sum as u32 as u64;
    }
    Some(fold(acc) == 0xffff)
}

/// The TCP checksum bits of an ingress segment, as the stack will judge
/// it: a NIC-verified (`UNNECESSARY`) or locally made (`PARTIAL`) segment
/// is good; one the stack verifies (`NONE`, `COMPLETE`) is summed here.
#[inline(always)]
fn tcp_checks(skb: *mut __sk_buff, parsed: &Parsed) -> u32 {
    match ip_summed(skb) {
        Some(CHECKSUM_UNNECESSARY | CHECKSUM_PARTIAL) => checks::TCP_CHECKSUM_KNOWN_GOOD,
        Some(CHECKSUM_NONE | CHECKSUM_COMPLETE) => match tcp_checksum_ok(skb, parsed) {
            Some(true) => checks::TCP_CHECKSUM_KNOWN_GOOD,
            Some(false) => checks::BAD_TCP_CHECKSUM,
            None => 0,
        },
        _ => 0,
    }
}

/// Records the segment if wanted; returns whether to drop it (an ingress
/// segment of a blocked source, never recorded: the stack never sees it).
#[inline(always)]
fn tc_segment(ctx: &TcContext, direction: u8) -> bool {
    let skb = ctx.skb.skb;
    let load = |off: u32, dst: *mut u8, len: u32| unsafe {
        bpf_skb_load_bytes(skb as *const _, off, dst as *mut _, len) == 0
    };
    let frame_len = unsafe { (*skb).len };
    let (data, data_end) = (ctx.data(), ctx.data_end());
    let in_place = |off, dst, len| direct(data, data_end, off, dst, len);
    let mut parsed = match walk(&in_place, &load, data_end.wrapping_sub(data), frame_len) {
        Ok(p) => p,
        Err(Skip::Fragment) => {
            count(Counter::Fragments);
            return false;
        }
        Err(Skip::Other | Skip::Unread) => return false,
    };
    let fragment = parsed.header.checks & checks::FRAGMENT != 0;
    if !fragment && direction == DIRECTION_INGRESS && blocked(&parsed.header) {
        count(Counter::Blocked);
        return true;
    }
    let mut bare = false;
    if fragment {
        count(Counter::Fragments);
    } else if !wanted(&parsed.header) {
        return false;
    } else {
        match trim_verdict(&parsed.header) {
            Verdict::Drop => {
                let _ = account(Err(Counter::Trimmed));
                return false;
            }
            verdict => bare = verdict == Verdict::Last,
        }
        parsed.header.checks |= if direction == DIRECTION_INGRESS {
            tcp_checks(skb, &parsed)
        } else {
            // Made by this host: the stack fills the checksum in (or the NIC).
            checks::TCP_CHECKSUM_KNOWN_GOOD
        };
    }
    parsed.header.direction = direction;
    parsed.header.hook = HOOK_TC;
    parsed.header.ifindex = unsafe { (*skb).ifindex };
    if account(emit(&mut parsed, bare, load)) == Err(Counter::CopyError) {
        warn!(ctx, "tc: payload copy failed");
    }
    false
}

#[xdp]
pub fn xdp_ingress(ctx: XdpContext) -> u32 {
    let md = ctx.ctx;
    let load = |off: u32, dst: *mut u8, len: u32| unsafe {
        bpf_xdp_load_bytes(md, off, dst as *mut _, len) == 0
    };
    let frame_len = unsafe { bpf_xdp_get_buff_len(md) } as u32;
    let (data, data_end) = (ctx.data(), ctx.data_end());
    let in_place = |off, dst, len| direct(data, data_end, off, dst, len);
    let mut parsed = match walk(&in_place, &load, data_end.wrapping_sub(data), frame_len) {
        Ok(p) => p,
        Err(Skip::Fragment) => {
            count(Counter::Fragments);
            return xdp_action::XDP_PASS;
        }
        Err(Skip::Other | Skip::Unread) => return xdp_action::XDP_PASS,
    };
    let fragment = parsed.header.checks & checks::FRAGMENT != 0;
    if !fragment && blocked(&parsed.header) {
        count(Counter::Blocked);
        return xdp_action::XDP_DROP;
    }
    let mut bare = false;
    if fragment {
        count(Counter::Fragments);
    } else if !wanted(&parsed.header) {
        return xdp_action::XDP_PASS;
    } else {
        match trim_verdict(&parsed.header) {
            Verdict::Drop => {
                let _ = account(Err(Counter::Trimmed));
                return xdp_action::XDP_PASS;
            }
            verdict => bare = verdict == Verdict::Last,
        }
    }
    parsed.header.direction = DIRECTION_INGRESS;
    parsed.header.hook = HOOK_XDP;
    parsed.header.ifindex = unsafe { (*md).ingress_ifindex };
    if account(emit(&mut parsed, bare, load)) == Err(Counter::CopyError) {
        warn!(&ctx, "xdp: payload copy failed");
    }
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
