//! siem-sensor's TLS tap: uprobes on the gateway's OpenSSL read the
//! plaintext of each `SSL_read` / `SSL_write` (and their `_ex` forms),
//! `SSL_set_fd` (or, for a connection older than the tap, tracepoints on
//! socket sends and receives) ties an `SSL*` to its socket, raw
//! tracepoints keep the set of gateway processes current. Built only
//! for `target_arch = "bpf"` (by `sensor/build.rs` through aya-build); on
//! the host this binary is an empty stub. Strictly passive: nothing here
//! changes a call's arguments, its result or a packet.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod emit;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod process;
#[cfg(target_arch = "bpf")]
mod sock;
#[cfg(target_arch = "bpf")]
mod ssl;

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(all(target_arch = "bpf", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// `bpf_probe_read_user` and `bpf_probe_read_kernel` are GPL-only helpers.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
