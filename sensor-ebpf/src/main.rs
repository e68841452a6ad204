//! siem-sensor's kernel programs. Built only for `target_arch = "bpf"` (by
//! `sensor/build.rs` through aya-build); on the host this binary is an empty
//! stub so `cargo build --workspace` works.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod programs;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
