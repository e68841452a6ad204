//! `cargo xtask setup`: installs the build and lab prerequisites, idempotently
//! (each step checks first). Recipe and pins from `../shared/DESIGN.md`.

use std::process::Command;

use anyhow::Result;

use lab::{run, run_quiet};

/// Debian packages: LLVM 22 for bpf-linker; the lab's servers and clients;
/// tcpdump for captures the tests replay; Prometheus (and promtool),
/// rsyslog (with its openssl driver for TLS) and Alertmanager, the real
/// receivers of the metrics, syslog and Alertmanager tests; ab
/// (apache2-utils) for the scenarios; tshark, GNU time, perf and valgrind
/// (cachegrind's instruction counts) for the benchmarks; scapy and
/// nftables for the differential test's crafted segments.
pub const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "iproute2",
    "nginx",
    "curl",
    "wrk",
    "apache2-utils",
    "bpftool",
    "procps",
    "tcpdump",
    "tshark",
    "time",
    "linux-perf",
    "valgrind",
    "prometheus",
    "prometheus-alertmanager",
    "rsyslog",
    "rsyslog-openssl",
    "python3-scapy",
    "python3-grpcio",
    "python3-h2",
    "nghttp2-client",
    "nftables",
    "nats-server",
];

/// bpf-linker release built against LLVM 22 (the nightly's LLVM major).
const BPF_LINKER_VERSION: &str = "0.13.0";

/// cargo-deb, which builds the Debian package (pinned: later releases may
/// refuse the dev-profile package the tests build from the binary under test).
const CARGO_DEB_VERSION: &str = "3.8.0";

/// cargo-modules, whose path-resolved module graph `cargo xtask test`
/// checks for cycles (0.28 needs rustc 1.98).
const CARGO_MODULES_VERSION: &str = "0.27.0";

/// The nightly that builds the kernel programs. Never `rustup update` it: a
/// nightly on LLVM 23 emits bitcode that bpf-linker on LLVM 22 rejects.
const EBPF_TOOLCHAIN: &str = "nightly";

/// Installs whatever is missing.
///
/// # Errors
/// A failing apt-get, rustup or cargo install.
pub fn setup() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !apt_installed(p))
        .collect();
    if !missing.is_empty() {
        eprintln!("setup: installing {}", missing.join(" "));
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let components = run_quiet(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        EBPF_TOOLCHAIN,
    ]))?;
    if !String::from_utf8_lossy(&components.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        eprintln!("setup: adding rust-src to the {EBPF_TOOLCHAIN} toolchain");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            EBPF_TOOLCHAIN,
        ]))?;
    }
    let linker = Command::new("bpf-linker").arg("--version").output();
    let current =
        linker.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION));
    if !current {
        eprintln!(
            "setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about 2 minutes)"
        );
        run(Command::new("cargo")
            .args(["install", &format!("bpf-linker@{BPF_LINKER_VERSION}")])
            .args(["--locked", "--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22"))?;
    }
    let deb = Command::new("cargo").args(["deb", "--version"]).output();
    if !deb.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_DEB_VERSION)) {
        eprintln!("setup: building cargo-deb {CARGO_DEB_VERSION} (about a minute)");
        run(Command::new("cargo").args([
            "install",
            &format!("cargo-deb@{CARGO_DEB_VERSION}"),
            "--locked",
        ]))?;
    }
    let modules = Command::new("cargo")
        .args(["modules", "--version"])
        .output();
    if !modules.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_MODULES_VERSION)) {
        eprintln!("setup: building cargo-modules {CARGO_MODULES_VERSION} (about 5 minutes)");
        run(Command::new("cargo").args([
            "install",
            &format!("cargo-modules@{CARGO_MODULES_VERSION}"),
            "--locked",
        ]))?;
    }
    eprintln!("setup: everything is installed");
    Ok(())
}

fn apt_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b"install ok installed"))
}
