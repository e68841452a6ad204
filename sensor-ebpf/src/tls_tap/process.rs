//! Raw tracepoints keeping the gateway's process set current without
//! userspace: a gateway process's fork (nginx's master starting workers on
//! start, reload or a worker's crash; `ngx_spawn_process`) adds the child;
//! a process's exit (its main thread's) removes it, so a reused pid is
//! never taken for the gateway's. Raw tracepoints need no tracefs.

use core::ptr;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::maps::{GATEWAY_TGIDS, TASK_TGID_OFFSET};

/// `sched_process_fork(struct task_struct *parent, struct task_struct
/// *child)`, run by the parent.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn tls_fork(ctx: RawTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if unsafe { GATEWAY_TGIDS.get(&tgid) }.is_none() {
        return 0;
    }
    let offset = unsafe { ptr::read_volatile(&TASK_TGID_OFFSET) };
    if offset == 0 {
        return 0;
    }
    let child: u64 = ctx.arg(1);
    let at = (child as *const u8).wrapping_add(offset as usize) as *const i32;
    // A new thread shares its parent's tgid: nothing to add.
    if let Ok(child_tgid) = unsafe { bpf_probe_read_kernel(at) }
        && child_tgid as u32 != tgid
    {
        let _ = GATEWAY_TGIDS.insert(&(child_tgid as u32), &1, 0);
    }
    0
}

/// `sched_process_exit(struct task_struct *p, ...)`, run by the exiting
/// thread.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn tls_exit(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    let (tgid, pid) = ((id >> 32) as u32, id as u32);
    if tgid == pid {
        let _ = GATEWAY_TGIDS.remove(&tgid);
    }
    0
}
