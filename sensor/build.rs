//! Builds the kernel programs in `sensor-ebpf` for `bpfel-unknown-none` with
//! the nightly toolchain (aya-build runs `cargo +nightly build -Z
//! build-std=core`) and leaves the objects at `$OUT_DIR/sensor-ebpf` (tc,
//! XDP), where `src/capture/live/mod.rs` embeds it, and `$OUT_DIR/sensor-tls`
//! (the TLS tap), embedded by `src/capture/tls/mod.rs`. `SENSOR_EBPF_TOOLCHAIN` overrides the
//! toolchain name.

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = format!("{manifest_dir}/../sensor-ebpf");
    println!("cargo:rerun-if-env-changed=SENSOR_EBPF_TOOLCHAIN");
    let toolchain = std::env::var("SENSOR_EBPF_TOOLCHAIN").ok();
    let toolchain = toolchain
        .as_deref()
        .map_or(Toolchain::Nightly, Toolchain::Custom);
    aya_build::build_ebpf(
        [Package {
            name: "sensor-ebpf",
            root_dir: &ebpf_dir,
            ..Default::default()
        }],
        toolchain,
    )
}
