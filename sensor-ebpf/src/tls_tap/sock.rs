//! A connection's socket, two ways.
//!
//! - **At its start:** `SSL_set_fd(ssl, fd)` (nginx calls it in
//!   `ngx_ssl_create_connection`, before the handshake, on a connected or
//!   connecting socket) names the descriptor; [`sock_of_fd`] follows it to
//!   the socket. This costs nothing outside the gateway's SSL calls.
//! - **Later, for a connection older than the tap:** raw tracepoints
//!   `sock_send_length(struct sock *sk, int ret, int flags)` and
//!   `sock_recv_length(...)` (include/trace/events/sock.h; fired by
//!   `sock_sendmsg_nosec` / `sock_recvmsg_nosec` in net/socket.c, Linux 6.3
//!   and later, in the calling thread, for every socket send and receive,
//!   the `read(2)` / `write(2)` OpenSSL's socket BIO makes included): one
//!   running inside an SSL call of a gateway thread is that connection's
//!   socket I/O, so it ties the `SSL*` to the socket's 4-tuple, once.
//!   Grafana Beyla binds the same way from kprobes on `tcp_sendmsg` /
//!   `tcp_recvmsg` (bpf/generictracer/libssl.c); tracepoints need neither
//!   kprobes nor BPF trampolines, which kernels may lack (this lab's has
//!   neither `CONFIG_KPROBES` nor the tracing program type). They run on
//!   every send and receive of the host, so the daemon attaches them only
//!   while such a connection waits. A call served from OpenSSL's buffer
//!   (nginx sets read-ahead) runs no socket I/O; its record goes out
//!   unbound and userspace places it once a later call binds.

use core::ptr;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_ebpf::tls::{FdField, SockField, kind};

use crate::{
    emit,
    maps::{ACTIVE, ConnKey, FD_OFFSETS, SOCK_OFFSETS, calls_in_progress, conn_mut},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

#[raw_tracepoint(tracepoint = "sock_send_length")]
pub fn tls_sock_send(ctx: RawTracePointContext) -> i32 {
    bind(ctx.arg::<u64>(0));
    0
}

#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub fn tls_sock_recv(ctx: RawTracePointContext) -> i32 {
    bind(ctx.arg::<u64>(0));
    0
}

/// `sk`: the socket the call runs on.
#[inline(always)]
fn bind(sk: u64) {
    if !calls_in_progress() {
        return;
    }
    let id = bpf_get_current_pid_tgid();
    // Only gateway threads have an entry; `busy` inside an SSL call.
    let Some(call) = ACTIVE.get_ptr_mut(&id) else {
        return;
    };
    let call = unsafe { &mut *call };
    if call.busy == 0 || call.bound != 0 {
        return;
    }
    call.bound = 1;
    let key = ConnKey::new((id >> 32) as u32, call.ssl);
    let Some(conn) = conn_mut(&key) else {
        return;
    };
    let conn = unsafe { &mut *conn };
    if conn.family != 0 {
        return;
    }
    if read_tuple(sk, conn).is_none() {
        return;
    }
    emit::event(conn.header(&key, kind::BIND, unsafe { bpf_ktime_get_ns() }));
}

/// The `struct sock` behind the calling task's descriptor `fd`:
/// `task->files->fdt->fd[fd]->private_data` is a `struct socket` when the
/// file is a socket, and then its `file` points back to the file (any
/// other file's `private_data` is something else, and fails that test).
/// 0 when `fd` is not an open socket or a read fails. Plain integers, as in
/// `process::netns`.
#[inline(always)]
pub fn sock_of_fd(fd: u64) -> u64 {
    let offset = |f: FdField| unsafe { ptr::read_volatile(&FD_OFFSETS[f as usize]) } as u64;
    let read = |at: u64| unsafe { bpf_probe_read_kernel(at as *const u64) }.unwrap_or(0);
    let task = unsafe { bpf_get_current_task() };
    let files = read(task + offset(FdField::TaskFiles));
    if files == 0 {
        return 0;
    }
    let fdt = read(files + offset(FdField::FilesFdt));
    if fdt == 0 {
        return 0;
    }
    let at = (fdt + offset(FdField::FdtMaxFds)) as *const u32;
    let max_fds = unsafe { bpf_probe_read_kernel(at) }.unwrap_or(0);
    let array = read(fdt + offset(FdField::FdtFd));
    if fd >= u64::from(max_fds) || array == 0 {
        return 0;
    }
    let file = read(array + fd * 8);
    if file == 0 {
        return 0;
    }
    let socket = read(file + offset(FdField::FilePrivateData));
    if socket == 0 || read(socket + offset(FdField::SocketFile)) != file {
        return 0;
    }
    read(socket + offset(FdField::SocketSk))
}

/// Reads `struct sock_common`'s tuple into `conn` (sets its family last).
#[inline(always)]
pub fn read_tuple(sk: u64, conn: &mut crate::maps::Conn) -> Option<()> {
    let family: u16 = field(sk, SockField::Family)?;
    let dport: u16 = field(sk, SockField::Dport)?;
    conn.local_port = field(sk, SockField::Num)?;
    conn.peer_port = u16::from_be(dport);
    match family {
        AF_INET => {
            let local: [u8; 4] = field(sk, SockField::RcvSaddr)?;
            let peer: [u8; 4] = field(sk, SockField::Daddr)?;
            conn.local[..4].copy_from_slice(&local);
            conn.peer[..4].copy_from_slice(&peer);
            conn.family = 4;
        }
        AF_INET6 => {
            conn.local = field(sk, SockField::V6RcvSaddr)?;
            conn.peer = field(sk, SockField::V6Daddr)?;
            conn.family = 6;
        }
        _ => return None,
    }
    Some(())
}

/// The field at its BTF offset in the socket at `sk`.
#[inline(always)]
fn field<T>(sk: u64, which: SockField) -> Option<T> {
    let offset = unsafe { ptr::read_volatile(&SOCK_OFFSETS[which as usize]) };
    let at = (sk as *const u8).wrapping_add(offset as usize) as *const T;
    unsafe { bpf_probe_read_kernel(at) }.ok()
}
