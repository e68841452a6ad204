//! The TLS tap's maps, load-time globals and per-connection state.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use sensor_ebpf::{
    DEFAULT_CAPTURE_LEN,
    tls::{CALLS_COUNTING, CALLS_IN_PROGRESS, TLS_COUNTER_SLOTS, TlsHeader},
};

/// Plaintext bytes copied per call; set by userspace before load. Lives in
/// frozen `.rodata`, so the verifier sees a constant reservation size.
#[unsafe(no_mangle)]
pub static TLS_CAPTURE_LEN: u32 = DEFAULT_CAPTURE_LEN;

/// Wake the reader only once this many bytes wait in the ring buffer (as
/// the tc programs' `WAKEUP_BYTES`).
#[unsafe(no_mangle)]
pub static TLS_WAKEUP_BYTES: u64 = 1 << 20;

/// Byte offsets of `struct sock_common`'s fields, indexed by
/// `sensor_ebpf::tls::SockField`; userspace reads them from the running
/// kernel's BTF and refuses to load without them.
#[unsafe(no_mangle)]
pub static SOCK_OFFSETS: [u32; 7] = [0; 7];

/// Byte offsets on the path from a file descriptor to its socket, indexed
/// by `sensor_ebpf::tls::FdField`, from BTF (userspace refuses to load
/// without them).
#[unsafe(no_mangle)]
pub static FD_OFFSETS: [u32; 7] = [0; 7];

/// `[task_struct.nsproxy, nsproxy.net_ns, net.ns.inum]` byte offsets,
/// from BTF (userspace refuses to load without them).
#[unsafe(no_mangle)]
pub static NETNS_OFFSETS: [u32; 3] = [0; 3];

/// The inode of the gateway's network namespace (the sensor's).
#[unsafe(no_mangle)]
pub static GATEWAY_NETNS: u32 = 0;

/// Per process (tgid): 1 when it is the gateway's, 0 when not. LRU: the
/// exit tracepoint forgets a process, but one that exited before the tap
/// attached never reaches it.
#[map]
pub static PROCESSES: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);

/// Each gateway thread's SSL call (`pid_tgid`): the one in progress, or
/// the last one (`busy` 0). An entry stays from the thread's first call to
/// its exit or exec, so a call writes its slot in place: no insert or
/// delete, and their locks, per call. LRU: a thread whose exit the tap
/// missed leaves an entry nobody removes.
#[map]
pub static ACTIVE: LruHashMap<u64, Active> = LruHashMap::with_max_entries(16384, 0);

/// `sensor_ebpf::tls::CALLS_MAP`. Slot [`CALLS_COUNTING`]: non-zero while
/// the socket tracepoints are attached (set by userspace before it
/// attaches them, cleared after it detaches them). Slot
/// [`CALLS_IN_PROGRESS`]: calls entered while it was set and not yet
/// left; 0 means no counted call is in progress, and the socket
/// tracepoints, which run on every send and receive of the host, skip the
/// hash lookup. Counting is two atomic adds per call on a line every CPU
/// writes, so it runs only while they are attached; a call entered before
/// (uncounted) binds at its connection's next call.
#[map]
pub static CALLS: Array<u64> = Array::with_max_entries(2, 0);

/// Adds `delta` (wrapping) to the calls in progress ([`CALLS`])
/// atomically (`BPF_ATOMIC | BPF_ADD`,
/// Documentation/bpf/standardization/instruction-set.rst; the bpf target
/// offers no `fetch_add`, its spec has no compare-and-swap).
#[inline(always)]
pub fn add_calls(delta: u64) {
    if let Some(slot) = CALLS.get_ptr_mut(CALLS_IN_PROGRESS) {
        unsafe { core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) slot, in(reg) delta) };
    }
}

/// Whether calls are counted now (see [`CALLS`]).
#[inline(always)]
pub fn counting() -> bool {
    CALLS.get(CALLS_COUNTING).is_some_and(|n| *n != 0)
}

/// Whether some thread may be inside a counted SSL call (see [`CALLS`]).
#[inline(always)]
pub fn calls_in_progress() -> bool {
    CALLS.get(CALLS_IN_PROGRESS).is_some_and(|n| *n != 0)
}

/// Each connection's state, from its first call (or its start) to `SSL_free`.
#[map]
pub static CONNS: LruHashMap<ConnKey, Conn> = LruHashMap::with_max_entries(65536, 0);

/// Records for userspace. Resized by userspace before load.
#[map]
pub static TLS_RECORDS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Per-CPU counters, indexed by `sensor_ebpf::tls::TlsCounter`.
#[map]
pub static TLS_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(TLS_COUNTER_SLOTS, 0);

/// An SSL call in progress: its arguments, kept for the return probe.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Active {
    /// The `SSL*`.
    pub ssl: u64,
    /// The caller's buffer (plaintext out for reads, in for writes).
    pub buf: u64,
    /// `_ex` forms: where the byte count is written (`size_t *`).
    pub len_ptr: u64,
    /// `sensor_ebpf::tls::op`.
    pub op: u8,
    /// A socket call already ran inside this call (bind once per call).
    pub bound: u8,
    /// 1 from the call's entry to its return.
    pub busy: u8,
    /// 1 when the call was counted in [`CALLS`].
    pub counted: u8,
    pub _pad: [u8; 4],
}

/// A connection: the process and its `SSL*`. The padding is zeroed, the
/// hash covers every byte.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConnKey {
    pub tgid: u32,
    pub _pad: u32,
    pub ssl: u64,
}

impl ConnKey {
    pub fn new(tgid: u32, ssl: u64) -> Self {
        Self { tgid, _pad: 0, ssl }
    }
}

/// What the kernel keeps per connection.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Conn {
    /// Plaintext bytes read so far.
    pub read: u64,
    /// Plaintext bytes written so far.
    pub written: u64,
    /// DATA records so far.
    pub seq: u32,
    /// 0 until bound, then 4 or 6.
    pub family: u8,
    /// `sensor_ebpf::tls::flags` role bits.
    pub flags: u8,
    pub local_port: u16,
    pub peer_port: u16,
    /// 1 from `SSL_set_fd` until the role probe that follows it: the
    /// state is this start's, not a stale one's.
    pub starting: u8,
    pub _pad: [u8; 5],
    pub local: [u8; 16],
    pub peer: [u8; 16],
}

impl Conn {
    pub const EMPTY: Self = Self {
        read: 0,
        written: 0,
        seq: 0,
        family: 0,
        flags: 0,
        local_port: 0,
        peer_port: 0,
        starting: 0,
        _pad: [0; 5],
        local: [0; 16],
        peer: [0; 16],
    };

    /// A record header of `kind` for this connection, its tuple filled in.
    pub fn header(&self, key: &ConnKey, record: u8, ktime_ns: u64) -> TlsHeader {
        TlsHeader {
            ktime_ns,
            ssl: key.ssl,
            tgid: key.tgid,
            local: self.local,
            peer: self.peer,
            local_port: self.local_port,
            peer_port: self.peer_port,
            family: self.family,
            kind: record,
            flags: self.flags,
            ..TlsHeader::default()
        }
    }
}

/// The connection's state, created empty when absent.
#[inline(always)]
pub fn conn_mut(key: &ConnKey) -> Option<*mut Conn> {
    if let Some(conn) = CONNS.get_ptr_mut(key) {
        return Some(conn);
    }
    // BPF_NOEXIST: another CPU may have created it meanwhile; keep theirs.
    let _ = CONNS.insert(key, &Conn::EMPTY, 1);
    CONNS.get_ptr_mut(key)
}
