//! Which processes are the gateway's: decided in the kernel at a
//! process's first SSL call and kept per process, so workers forked on a
//! reload and a master started after the sensor (a restart) are covered
//! alike, with no scan of `/proc`. A gateway process is named like one
//! (`comm`: nginx, openresty; `sensor_ebpf::tls::GATEWAY_NAMES`) and runs
//! in the sensor's network namespace (the node whose traffic it taps).
//! Raw tracepoints forget a verdict when it may change: at exec (another
//! program, another name) and at exit (the pid may be reused). Raw
//! tracepoints need no tracefs.

use core::ptr;

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::maps::{ACTIVE, GATEWAY_NETNS, NETNS_OFFSETS, PROCESSES, add_calls};

/// Whether the calling process is the gateway's (cached per process).
#[inline(always)]
pub fn gateway(pid_tgid: u64) -> bool {
    let tgid = (pid_tgid >> 32) as u32;
    if let Some(verdict) = unsafe { PROCESSES.get(&tgid) } {
        return *verdict == 1;
    }
    let yes = named_like_a_gateway() && netns() == unsafe { ptr::read_volatile(&GATEWAY_NETNS) };
    let _ = PROCESSES.insert(&tgid, &u8::from(yes), 0);
    yes
}

#[inline(always)]
fn named_like_a_gateway() -> bool {
    let Ok(comm) = bpf_get_current_comm() else {
        return false;
    };
    comm[..6] == *b"nginx\0" || comm[..10] == *b"openresty\0"
}

/// The inode of the calling task's network namespace:
/// `task->nsproxy->net_ns->ns.inum`; 0 when a read fails (no namespace
/// has inode 0). Plain integers, not `Option`s: LLVM may compare the
/// payload of a `None`, a register the verifier knows to be unset.
#[inline(always)]
fn netns() -> u32 {
    let offset = |i: usize| unsafe { ptr::read_volatile(&NETNS_OFFSETS[i]) } as usize;
    let read = |at: *const u8| unsafe { bpf_probe_read_kernel(at as *const u64) }.unwrap_or(0);
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let nsproxy = read(task.wrapping_add(offset(0)));
    if nsproxy == 0 {
        return 0;
    }
    let net = read((nsproxy as *const u8).wrapping_add(offset(1)));
    if net == 0 {
        return 0;
    }
    let at = (net as *const u8).wrapping_add(offset(2)) as *const u32;
    unsafe { bpf_probe_read_kernel(at) }.unwrap_or(0)
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct
/// linux_binprm *bprm)`, run by the process after the exec.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn tls_exec(ctx: RawTracePointContext) -> i32 {
    forget();
    // A thread's SSL call slot marks it a gateway's: not after an exec.
    // A thread other than the leader that execs takes the leader's pid,
    // so its slot is under `old_pid`.
    let id = bpf_get_current_pid_tgid();
    let old_pid = ctx.arg::<u64>(1) as u32;
    let _ = ACTIVE.remove(&id);
    let _ = ACTIVE.remove(&(id & !0xffff_ffff | u64::from(old_pid)));
    0
}

/// `sched_process_exit(struct task_struct *p, ...)`, run by the exiting
/// thread: its SSL call slot goes (uncounted if it died inside a counted
/// call); the process is gone when its main thread is.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn tls_exit(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    if let Some(call) = unsafe { ACTIVE.get(&id) } {
        if call.busy != 0 && call.counted != 0 {
            add_calls(u64::MAX);
        }
        let _ = ACTIVE.remove(&id);
    }
    if (id >> 32) as u32 == id as u32 {
        forget();
    }
    0
}

#[inline(always)]
fn forget() {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let _ = PROCESSES.remove(&tgid);
}
