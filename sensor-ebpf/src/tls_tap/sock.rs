//! Raw tracepoints `sock_send_length(struct sock *sk, int ret, int flags)`
//! and `sock_recv_length(...)` (include/trace/events/sock.h; fired by
//! `sock_sendmsg_nosec` / `sock_recvmsg_nosec` in net/socket.c, Linux 6.3
//! and later, in the calling thread, for every socket send and receive,
//! the `read(2)` / `write(2)` OpenSSL's socket BIO makes included): one
//! running inside an SSL call of a gateway thread is that connection's
//! socket I/O (nginx sets a socket BIO on the connection's fd: `SSL_set_fd`
//! in `ngx_ssl_create_connection`), so it ties the `SSL*` to the socket's
//! 4-tuple, once. Grafana Beyla binds the same way from kprobes on
//! `tcp_sendmsg` / `tcp_recvmsg` (bpf/generictracer/libssl.c); tracepoints
//! need neither kprobes nor BPF trampolines, which kernels may lack (this
//! lab's has neither `CONFIG_KPROBES` nor the tracing program type). A call
//! served from OpenSSL's buffer (nginx sets read-ahead) runs no socket
//! I/O; its record goes out unbound and userspace places it once a later
//! call binds.

use core::ptr;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_ebpf::tls::{SockField, kind};

use crate::{
    emit,
    maps::{ACTIVE, ConnKey, SOCK_OFFSETS, calls_in_progress, conn_mut},
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
    // Only gateway threads inside an SSL call have an entry.
    let Some(call) = ACTIVE.get_ptr_mut(&id) else {
        return;
    };
    let call = unsafe { &mut *call };
    if call.bound != 0 {
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

/// Reads `struct sock_common`'s tuple into `conn` (sets its family last).
#[inline(always)]
fn read_tuple(sk: u64, conn: &mut crate::maps::Conn) -> Option<()> {
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
