//! The TLS tap's records: what the uprobes on the gateway's OpenSSL
//! (`SSL_read`, `SSL_write`, their `_ex` forms, `SSL_free`) and the
//! tracepoints on socket sends and receives hand to userspace, and the
//! names of the object's maps, globals and programs.
//!
//! Every record starts with a [`TlsHeader`]; a [`kind::DATA`] record is
//! followed by up to [`TlsHeader::captured_len`] bytes of plaintext. The
//! records of one connection (one `SSL*` of one process) arrive in call
//! order: nginx serves a connection on one thread, one call at a time, and
//! the ring buffer hands records over in the order they were reserved
//! (kernel doc: bpf/ringbuf.rst).

/// Name of the TLS tap's ring buffer (`BPF_MAP_TYPE_RINGBUF`).
pub const TLS_RECORDS_MAP: &str = "TLS_RECORDS";
/// Name of its per-CPU counter array, indexed by [`TlsCounter`].
pub const TLS_COUNTERS_MAP: &str = "TLS_COUNTERS";
/// Name of the per-process verdicts: `LruHashMap<u32, u8>`, tgid -> 1 when
/// the process is the gateway's (see [`GATEWAY_NAMES`]), 0 when not;
/// decided in the kernel at a process's first SSL call, forgotten at its
/// exec and exit. Only the gateway's calls are recorded.
pub const PROCESSES_MAP: &str = "PROCESSES";
/// Name of the SSL call counter (`Array<u64>`): slot [`CALLS_IN_PROGRESS`]
/// counts the gateway's calls in progress while slot [`CALLS_COUNTING`]
/// is non-zero, which the daemon sets while [`SOCK_PROBES`] are attached
/// (they skip their lookup when no call is in progress).
pub const CALLS_MAP: &str = "CALLS";
/// [`CALLS_MAP`] slot: calls in progress, counted.
pub const CALLS_IN_PROGRESS: u32 = 0;
/// [`CALLS_MAP`] slot: non-zero while calls are counted.
pub const CALLS_COUNTING: u32 = 1;
/// Process names (`comm`, as `/proc/PID/comm` shows them) of a gateway:
/// nginx, and OpenResty's nginx that Kong runs (also named `nginx`).
pub const GATEWAY_NAMES: [&str; 2] = ["nginx", "openresty"];
/// Name of the `.rodata` global: the inode of the network namespace the
/// gateway runs in, the sensor's own (u32).
pub const GATEWAY_NETNS_GLOBAL: &str = "GATEWAY_NETNS";
/// Name of the `.rodata` global: byte offsets from the running kernel's
/// BTF, `[task_struct.nsproxy, nsproxy.net_ns, net.ns.inum]` (`[u32; 3]`),
/// the path from a task to its network namespace's inode.
pub const NETNS_OFFSETS_GLOBAL: &str = "NETNS_OFFSETS";
/// Name of the `.rodata` global: plaintext bytes copied per call (u32),
/// at most [`crate::MAX_CAPTURE_LEN`].
pub const TLS_CAPTURE_LEN_GLOBAL: &str = "TLS_CAPTURE_LEN";
/// Name of the `.rodata` global: bytes waiting in the ring buffer before a
/// submit wakes the reader (u64).
pub const TLS_WAKEUP_BYTES_GLOBAL: &str = "TLS_WAKEUP_BYTES";
/// Name of the `.rodata` global: byte offsets in `struct sock_common` of
/// the running kernel, from its BTF, indexed by [`SockField`] (`[u32; 7]`).
pub const SOCK_OFFSETS_GLOBAL: &str = "SOCK_OFFSETS";

/// Name of the `.rodata` global: byte offsets from the running kernel's
/// BTF, indexed by [`FdField`] (`[u32; 7]`), the path from a task's file
/// descriptor to its socket.
pub const FD_OFFSETS_GLOBAL: &str = "FD_OFFSETS";

/// The members on the path from the calling task's file descriptor to its
/// socket (`task->files->fdt->fd[fd]->private_data`, a `struct socket`
/// whose `file` points back; include/linux/fdtable.h, fs.h, net.h), in the
/// order of [`FD_OFFSETS_GLOBAL`].
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdField {
    /// `task_struct.files`.
    TaskFiles = 0,
    /// `files_struct.fdt`.
    FilesFdt = 1,
    /// `fdtable.max_fds`.
    FdtMaxFds = 2,
    /// `fdtable.fd`: the array of `struct file *`.
    FdtFd = 3,
    /// `file.private_data`: a socket file's `struct socket`.
    FilePrivateData = 4,
    /// `socket.file`: the file it belongs to.
    SocketFile = 5,
    /// `socket.sk`: its `struct sock`.
    SocketSk = 6,
}

impl FdField {
    /// Every member, in index order, as `(field, struct, member)` in BTF.
    pub const ALL: [(Self, &'static str, &'static str); 7] = [
        (Self::TaskFiles, "task_struct", "files"),
        (Self::FilesFdt, "files_struct", "fdt"),
        (Self::FdtMaxFds, "fdtable", "max_fds"),
        (Self::FdtFd, "fdtable", "fd"),
        (Self::FilePrivateData, "file", "private_data"),
        (Self::SocketFile, "socket", "file"),
        (Self::SocketSk, "socket", "sk"),
    ];
}

/// The fields of `struct sock_common` (include/net/sock.h) the binding
/// programs read, in the order of [`SOCK_OFFSETS_GLOBAL`].
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockField {
    /// `skc_daddr`: the peer's IPv4 address (network order).
    Daddr = 0,
    /// `skc_rcv_saddr`: the local IPv4 address (network order).
    RcvSaddr = 1,
    /// `skc_dport`: the peer's port (network order).
    Dport = 2,
    /// `skc_num`: the local port (host order).
    Num = 3,
    /// `skc_family`: `AF_INET` (2) or `AF_INET6` (10).
    Family = 4,
    /// `skc_v6_daddr`: the peer's IPv6 address.
    V6Daddr = 5,
    /// `skc_v6_rcv_saddr`: the local IPv6 address.
    V6RcvSaddr = 6,
}

impl SockField {
    /// Every field, in index order, with its member name in BTF.
    pub const ALL: [(Self, &'static str); 7] = [
        (Self::Daddr, "skc_daddr"),
        (Self::RcvSaddr, "skc_rcv_saddr"),
        (Self::Dport, "skc_dport"),
        (Self::Num, "skc_num"),
        (Self::Family, "skc_family"),
        (Self::V6Daddr, "skc_v6_daddr"),
        (Self::V6RcvSaddr, "skc_v6_rcv_saddr"),
    ];
}

/// Per-CPU counters of the TLS tap. Invariants, summed over CPUs:
/// `Calls == Submitted + RingFull` (`CopyError` counts submitted records
/// without their bytes) and the events ring-full count stands apart.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsCounter {
    /// SSL calls of the gateway that returned data (one [`kind::DATA`] record each).
    Calls = 0,
    /// Their records submitted to the ring buffer.
    Submitted = 1,
    /// Their records lost because the ring buffer was full.
    RingFull = 2,
    /// Submitted records whose plaintext could not be copied
    /// (`bpf_probe_read_user` failed): the length is kept, the bytes not.
    CopyError = 3,
    /// [`kind::BIND`] and [`kind::CLOSE`] records submitted.
    Events = 4,
    /// Those lost because the ring buffer was full.
    EventsLost = 5,
}

/// Number of [`TlsCounter`] slots.
pub const TLS_COUNTER_SLOTS: u32 = 6;

/// [`TlsHeader::kind`] values.
pub mod kind {
    /// One SSL call's plaintext: its length and its first bytes.
    pub const DATA: u8 = 1;
    /// The connection's socket became known: at its start (the socket of
    /// the descriptor `SSL_set_fd` gave, once the role probe that follows
    /// ran), or, for a connection older than the tap, when a socket send
    /// or receive ran inside one of its SSL calls. The tuple is set.
    pub const BIND: u8 = 2;
    /// `SSL_free`: the connection ended.
    pub const CLOSE: u8 = 3;
}

/// [`TlsHeader::op`] values: which way the plaintext went.
pub mod op {
    /// `SSL_read` / `SSL_read_ex`: from the peer to the gateway.
    pub const READ: u8 = 0;
    /// `SSL_write` / `SSL_write_ex`: from the gateway to the peer.
    pub const WRITE: u8 = 1;
}

/// [`TlsHeader::flags`] bits.
pub mod flags {
    /// The plaintext could not be copied; `captured_len` is 0.
    pub const COPY_FAILED: u8 = 1;
    /// `SSL_set_accept_state` was seen: the gateway is the TLS server and
    /// the connection began while the tap was attached.
    pub const ACCEPTED: u8 = 2;
    /// `SSL_set_connect_state` was seen: the gateway is the TLS client
    /// (an upstream over TLS) and the connection began while attached.
    pub const CONNECTED: u8 = 4;
}

/// Fixed header of every TLS record (80 bytes). Addresses are as in
/// [`crate::SegmentHeader`]: IPv4 in the first 4 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsHeader {
    /// `bpf_ktime_get_ns()` at the call's return (DATA), the socket call
    /// (BIND) or `SSL_free` (CLOSE).
    pub ktime_ns: u64,
    /// The `SSL*`: with `tgid`, the connection's identity until `SSL_free`.
    pub ssl: u64,
    /// DATA: plaintext bytes of this direction before this call.
    pub stream_offset: u64,
    /// The gateway process.
    pub tgid: u32,
    /// DATA: the connection's call number, from 0; a jump means records
    /// were lost.
    pub seq: u32,
    /// DATA: bytes the call returned.
    pub full_len: u32,
    /// DATA: plaintext bytes following this header (`<= full_len`).
    pub captured_len: u32,
    /// The gateway's address.
    pub local: [u8; 16],
    /// The peer's address.
    pub peer: [u8; 16],
    /// The gateway's port.
    pub local_port: u16,
    /// The peer's port.
    pub peer_port: u16,
    /// 4 or 6 once bound to a socket; 0 while not.
    pub family: u8,
    /// A [`kind`] value.
    pub kind: u8,
    /// An [`op`] value (DATA).
    pub op: u8,
    /// [`flags`] bits.
    pub flags: u8,
}

/// Size of [`TlsHeader`] in bytes.
pub const TLS_HEADER_LEN: usize = core::mem::size_of::<TlsHeader>();
const _: () = assert!(TLS_HEADER_LEN == 80);

/// Program names in the TLS object: uprobes on OpenSSL.
pub const SSL_PROBES: [SslProbe; 9] = [
    SslProbe::entry("ssl_read_in", "SSL_read"),
    SslProbe::entry("ssl_read_in", "SSL_read_ex"),
    SslProbe::ret("ssl_read_ret", "SSL_read"),
    SslProbe::ret("ssl_rdex_ret", "SSL_read_ex"),
    SslProbe::entry("ssl_write_in", "SSL_write"),
    SslProbe::entry("ssl_write_in", "SSL_write_ex"),
    SslProbe::ret("ssl_write_ret", "SSL_write"),
    SslProbe::ret("ssl_wrex_ret", "SSL_write_ex"),
    SslProbe::entry("ssl_free_in", "SSL_free"),
];

/// `SSL_read` and `SSL_write` probed inside instead, where the daemon finds
/// the wrapper's shape (`sensor::capture::tls::call_site`): the entry
/// program on the call of the inner function, the `done` program on the
/// branch that tests its result (`%eax`; the count where the call's fourth
/// argument points). Both instructions are emulated by the kernel, never
/// single-stepped. Where the shape is not found, [`SSL_PROBES`] apply.
pub const WRAPPERS: [Wrapper; 2] = [
    Wrapper {
        function: "SSL_read",
        sibling: "SSL_read_ex",
        call: "ssl_read_in",
        branch: "ssl_read_done",
    },
    Wrapper {
        function: "SSL_write",
        sibling: "SSL_write_ex",
        call: "ssl_write_in",
        branch: "ssl_write_done",
    },
];

/// One of [`WRAPPERS`].
#[derive(Clone, Copy, Debug)]
pub struct Wrapper {
    /// The exported wrapper.
    pub function: &'static str,
    /// Its `_ex` form, which must call the same inner function.
    pub sibling: &'static str,
    /// The program for the call.
    pub call: &'static str,
    /// The program for the branch on the result.
    pub branch: &'static str,
}

/// Uprobes on the connection's start, which tell its socket (`SSL_set_fd`,
/// which nginx calls just before the role: `ngx_ssl_create_connection`,
/// src/event/ngx_event_openssl.c) and who the server is.
pub const SSL_ROLE_PROBES: [SslProbe; 3] = [
    SslProbe::entry("ssl_set_fd_in", "SSL_set_fd"),
    SslProbe::entry("ssl_accept_in", "SSL_set_accept_state"),
    SslProbe::entry("ssl_connect_in", "SSL_set_connect_state"),
];

/// Raw tracepoints binding an `SSL*` to its socket from a socket send or
/// receive inside one of its calls: `(program, tracepoint)`. They run on
/// every send and receive of the host, so the daemon attaches them only
/// while a connection whose start the tap missed waits for its socket.
pub const SOCK_PROBES: [(&str, &str); 2] = [
    ("tls_sock_send", "sock_send_length"),
    ("tls_sock_recv", "sock_recv_length"),
];

/// Raw tracepoints that forget a process's verdict in [`PROCESSES_MAP`]
/// when it may change (exec) or its pid may be reused (exit):
/// `(program, tracepoint)`.
pub const PROCESS_PROBES: [(&str, &str); 2] = [
    ("tls_exec", "sched_process_exec"),
    ("tls_exit", "sched_process_exit"),
];

/// One uprobe: a program and the OpenSSL function it attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SslProbe {
    /// Program name in the object.
    pub program: &'static str,
    /// The exported OpenSSL function (`ssl/ssl_lib.c`).
    pub function: &'static str,
    /// Whether it is a return probe.
    pub on_return: bool,
}

impl SslProbe {
    const fn entry(program: &'static str, function: &'static str) -> Self {
        Self {
            program,
            function,
            on_return: false,
        }
    }

    const fn ret(program: &'static str, function: &'static str) -> Self {
        Self {
            program,
            function,
            on_return: true,
        }
    }
}
