//! Uprobes on OpenSSL (`ssl/ssl_lib.c`): each `SSL_read` / `SSL_write`
//! (and `_ex`) of a gateway process is remembered at entry and recorded at
//! return, when the byte count is known and the buffer holds the
//! plaintext; `SSL_free` ends the connection; `SSL_set_fd`, then
//! `SSL_set_accept_state` / `SSL_set_connect_state`, which nginx calls
//! once per connection (`ngx_ssl_create_connection`,
//! src/event/ngx_event_openssl.c), mark its start, its socket and who the
//! server is.
//!
//! In OpenSSL 1.1.1 and 3.x `SSL_read` and `SSL_read_ex` both call the
//! static `ssl_read_internal` (likewise for writes), so probing all four
//! records each application call once.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use sensor_ebpf::tls::{flags, kind, op};

use crate::{
    emit,
    maps::{ACTIVE, Active, CONNS, Conn, ConnKey, add_calls, conn_mut, counting},
    process::gateway,
    sock::{read_tuple, sock_of_fd},
};

/// `SSL_read(SSL *s, void *buf, int num)`, `SSL_read_ex(SSL *s, void
/// *buf, size_t num, size_t *readbytes)`.
#[uprobe]
pub fn ssl_read_in(ctx: ProbeContext) -> u32 {
    enter(&ctx, op::READ);
    0
}

/// `SSL_write(SSL *s, const void *buf, int num)`, `SSL_write_ex(SSL *s,
/// const void *buf, size_t num, size_t *written)`.
#[uprobe]
pub fn ssl_write_in(ctx: ProbeContext) -> u32 {
    enter(&ctx, op::WRITE);
    0
}

/// `SSL_read` returns the bytes read, or <= 0.
#[uretprobe]
pub fn ssl_read_ret(ctx: RetProbeContext) -> u32 {
    let n: i32 = ctx.ret();
    leave(op::READ, |_| (n > 0).then_some(n as u64));
    0
}

/// `SSL_read_ex` returns 1 on success with the count in `*readbytes`.
#[uretprobe]
pub fn ssl_rdex_ret(ctx: RetProbeContext) -> u32 {
    let ok: i32 = ctx.ret();
    leave(op::READ, |a| ex_count(ok, a));
    0
}

/// `SSL_write` returns the bytes written, or <= 0.
#[uretprobe]
pub fn ssl_write_ret(ctx: RetProbeContext) -> u32 {
    let n: i32 = ctx.ret();
    leave(op::WRITE, |_| (n > 0).then_some(n as u64));
    0
}

/// `SSL_write_ex` returns 1 on success with the count in `*written`.
#[uretprobe]
pub fn ssl_wrex_ret(ctx: RetProbeContext) -> u32 {
    let ok: i32 = ctx.ret();
    leave(op::WRITE, |a| ex_count(ok, a));
    0
}

/// Inside `SSL_read`, at the branch on `ssl_read_internal`'s result
/// (`sensor_ebpf::tls::WRAPPERS`; the entry program ran at its call):
/// `%eax` is 1 on success, the count where the call's fourth argument
/// points.
#[uprobe]
pub fn ssl_read_done(ctx: ProbeContext) -> u32 {
    let ok = inner_result(&ctx);
    leave(op::READ, |a| ex_count(ok, a));
    0
}

/// Inside `SSL_write`, as [`ssl_read_done`] for `ssl_write_internal`.
#[uprobe]
pub fn ssl_write_done(ctx: ProbeContext) -> u32 {
    let ok = inner_result(&ctx);
    leave(op::WRITE, |a| ex_count(ok, a));
    0
}

/// `%eax` at a probe inside a function: the result of the call before it.
#[inline(always)]
fn inner_result(ctx: &ProbeContext) -> i32 {
    unsafe { (*ctx.regs).rax as i32 }
}

/// `SSL_free(SSL *s)`: the connection's end (nginx always frees, even
/// when it skips `SSL_shutdown`); the address may be reused at once.
#[uprobe]
pub fn ssl_free_in(ctx: ProbeContext) -> u32 {
    let Some(ssl) = ctx.arg::<u64>(0) else {
        return 0;
    };
    let key = ConnKey::new((bpf_get_current_pid_tgid() >> 32) as u32, ssl);
    let Some(conn) = (unsafe { CONNS.get(&key) }).copied() else {
        return 0;
    };
    let _ = CONNS.remove(&key);
    emit::event(conn.header(&key, kind::CLOSE, unsafe { bpf_ktime_get_ns() }));
    0
}

/// `SSL_set_fd(SSL *s, int fd)`: a connection begins on socket `fd`
/// (see `sock`). A fresh state with the socket's tuple (an `SSL*` whose
/// free was missed starts over), marked for the role probe that follows.
#[uprobe]
pub fn ssl_set_fd_in(ctx: ProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if !gateway(id) {
        return 0;
    }
    let (Some(ssl), Some(fd)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return 0;
    };
    let mut conn = Conn {
        starting: 1,
        ..Conn::EMPTY
    };
    // An `int`: a negative one is past every descriptor table. A tuple
    // not read leaves the family 0: unbound.
    let sk = sock_of_fd(fd & 0xffff_ffff);
    if sk != 0 {
        let _ = read_tuple(sk, &mut conn);
    }
    let _ = CONNS.insert(&ConnKey::new((id >> 32) as u32, ssl), &conn, 0);
    0
}

/// `SSL_set_accept_state(SSL *s)`: a connection the gateway serves begins.
#[uprobe]
pub fn ssl_accept_in(ctx: ProbeContext) -> u32 {
    begin(&ctx, flags::ACCEPTED);
    0
}

/// `SSL_set_connect_state(SSL *s)`: a connection the gateway opens begins.
#[uprobe]
pub fn ssl_connect_in(ctx: ProbeContext) -> u32 {
    begin(&ctx, flags::CONNECTED);
    0
}

#[inline(always)]
fn begin(ctx: &ProbeContext, role: u8) {
    let id = bpf_get_current_pid_tgid();
    if !gateway(id) {
        return;
    }
    let Some(ssl) = ctx.arg::<u64>(0) else {
        return;
    };
    let key = ConnKey::new((id >> 32) as u32, ssl);
    // The state `SSL_set_fd` just made: its role, and its socket told.
    if let Some(conn) = CONNS.get_ptr_mut(&key) {
        let conn = unsafe { &mut *conn };
        if conn.starting != 0 {
            conn.starting = 0;
            conn.flags = role;
            if conn.family != 0 {
                emit::event(conn.header(&key, kind::BIND, unsafe { bpf_ktime_get_ns() }));
            }
            return;
        }
    }
    // A fresh state: an `SSL*` whose free was missed starts over.
    let conn = Conn {
        flags: role,
        ..Conn::EMPTY
    };
    let _ = CONNS.insert(&key, &conn, 0);
}

#[inline(always)]
fn enter(ctx: &ProbeContext, direction: u8) {
    let id = bpf_get_current_pid_tgid();
    // A thread with a slot is a gateway's (exec and exit remove it): the
    // slot is written in place. Else the process is judged, and a
    // gateway thread's slot made at its first call.
    let slot = ACTIVE.get_ptr_mut(&id);
    if slot.is_none() && !gateway(id) {
        return;
    }
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return;
    };
    let counted = counting();
    let call = Active {
        ssl,
        buf,
        // Meaningful for the `_ex` forms only; the others never read it.
        len_ptr: ctx.arg::<u64>(3).unwrap_or(0),
        op: direction,
        bound: 0,
        busy: 1,
        counted: u8::from(counted),
        _pad: [0; 4],
    };
    // Counted first: this thread's socket tracepoints must see it.
    if counted {
        add_calls(1);
    }
    match slot {
        Some(slot) => unsafe { *slot = call },
        None => {
            if ACTIVE.insert(&id, &call, 0).is_err() && counted {
                add_calls(u64::MAX);
            }
        }
    }
}

/// The `_ex` forms' count: `*len_ptr` when they returned 1.
#[inline(always)]
fn ex_count(ok: i32, call: &Active) -> Option<u64> {
    if ok != 1 {
        return None;
    }
    unsafe { bpf_probe_read_user(call.len_ptr as *const u64) }.ok()
}

/// The return of a call entered on this thread: records its plaintext
/// when `count` says it moved any.
#[inline(always)]
fn leave(direction: u8, count: impl Fn(&Active) -> Option<u64>) {
    let id = bpf_get_current_pid_tgid();
    let Some(slot) = ACTIVE.get_ptr_mut(&id) else {
        return;
    };
    let call = unsafe { *slot };
    if call.busy == 0 {
        return;
    }
    unsafe { (*slot).busy = 0 };
    if call.counted != 0 {
        add_calls(u64::MAX);
    }
    if call.op != direction {
        return;
    }
    let n = match count(&call) {
        Some(n) if n > 0 => n,
        _ => return,
    };
    let key = ConnKey::new((id >> 32) as u32, call.ssl);
    let Some(conn) = conn_mut(&key) else {
        return;
    };
    let conn = unsafe { &mut *conn };
    let mut header = conn.header(&key, kind::DATA, unsafe { bpf_ktime_get_ns() });
    header.op = direction;
    header.seq = conn.seq;
    header.full_len = n.min(u64::from(u32::MAX)) as u32;
    let offset = if direction == op::READ {
        &mut conn.read
    } else {
        &mut conn.written
    };
    header.stream_offset = *offset;
    *offset += n;
    conn.seq = conn.seq.wrapping_add(1);
    emit::data(header, call.buf);
}
