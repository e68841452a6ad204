//! The cost of the block check on the ingress path, measured in the
//! kernel with `BPF_PROG_TEST_RUN` (Documentation/bpf/bpf_prog_run.rst):
//! `tc_ingress` runs `repeat` times on one crafted frame (a SYN to a Kong
//! proxy port that is not captured, so no ring-buffer record is made) and
//! the kernel reports the mean ns per run. `cargo xtask bench --only
//! block` runs it through the hidden `siem-sensor bench-block`.

use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::{Context as _, Result, bail};
use aya::{
    EbpfLoader,
    maps::{Array, HashMap},
    programs::SchedClassifier,
};
use sensor_ebpf::{
    PORTS_MAP, TC_INGRESS_PROGRAM,
    block::{ACTIVE, ALIVE_UNTIL, STATE_MAP, V4_MAP},
    port_bits,
};
use serde::Serialize;

use super::OBJECT;
use crate::block::{Clock as _, SystemClock};

/// The proxy port the frame goes to.
const PORT: u16 = 8443;
/// The frame's source address.
const SOURCE: [u8; 4] = [10, 200, 0, 1];

/// Mean ns per `tc_ingress` run, median of the rounds, per case.
#[derive(Clone, Debug, Serialize)]
pub struct BlockBench {
    /// Entries in the IPv4 map for the `miss` and `hit` cases.
    pub entries: u32,
    /// Runs per round.
    pub repeat: u32,
    /// No block in force (the check stops at the state array).
    pub inactive_ns: f64,
    /// `entries` blocked, the frame's source not among them (hash lookup,
    /// pass).
    pub miss_ns: f64,
    /// The frame's source blocked (hash lookup, drop).
    pub hit_ns: f64,
    /// The verdict of the `hit` case (2: `TC_ACT_SHOT`).
    pub hit_verdict: u32,
}

/// Measures the three cases with `entries` blocked addresses, `rounds`
/// rounds of `repeat` runs each.
///
/// # Errors
/// Loading needs `CAP_BPF`/`CAP_SYS_ADMIN`; the kernel refused the test run.
pub fn block_lookup(entries: u32, repeat: u32, rounds: usize) -> Result<BlockBench> {
    let mut ebpf = EbpfLoader::new()
        .load(OBJECT)
        .context("loading the eBPF object")?;
    let mut ports = Array::<_, u8>::try_from(ebpf.map_mut(PORTS_MAP).context(PORTS_MAP)?)?;
    ports.set(u32::from(PORT), port_bits::PROXY, 0)?;
    let program: &mut SchedClassifier = ebpf
        .program_mut(TC_INGRESS_PROGRAM)
        .context(TC_INGRESS_PROGRAM)?
        .try_into()?;
    program.load()?;
    let fd = program.fd()?.as_fd().as_raw_fd();
    let frame = frame();
    let (boot, _) = SystemClock.now();
    let far = boot + 3600 * 1_000_000_000;
    let mut state = Array::<_, u64>::try_from(ebpf.take_map(STATE_MAP).context(STATE_MAP)?)?;
    let mut v4 = HashMap::<_, [u8; 4], u64>::try_from(ebpf.take_map(V4_MAP).context(V4_MAP)?)?;
    let median = |f: &mut dyn FnMut() -> Result<(u32, u32)>| -> Result<(f64, u32)> {
        let mut runs = Vec::new();
        let mut verdict = 0;
        for _ in 0..rounds {
            let (ns, v) = f()?;
            runs.push(ns);
            verdict = v;
        }
        runs.sort_unstable();
        Ok((f64::from(runs[runs.len() / 2]), verdict))
    };
    state.set(ACTIVE, 0, 0)?;
    let (inactive_ns, _) = median(&mut || test_run(fd, &frame, repeat))?;
    for i in 0..entries {
        let b = i.to_be_bytes();
        v4.insert([10, 100 + b[1] % 50, b[2], b[3]], far, 0)?;
    }
    state.set(ALIVE_UNTIL, far, 0)?;
    state.set(ACTIVE, u64::from(entries), 0)?;
    let (miss_ns, miss) = median(&mut || test_run(fd, &frame, repeat))?;
    if miss == 2 {
        bail!("the unblocked frame was dropped");
    }
    v4.insert(SOURCE, far, 0)?;
    let (hit_ns, hit_verdict) = median(&mut || test_run(fd, &frame, repeat))?;
    Ok(BlockBench {
        entries,
        repeat,
        inactive_ns,
        miss_ns,
        hit_ns,
        hit_verdict,
    })
}

/// `BPF_PROG_TEST_RUN` of program `fd` on `frame`, `repeat` times: the
/// mean duration (ns) and the verdict.
fn test_run(fd: i32, frame: &[u8], repeat: u32) -> Result<(u32, u32)> {
    /// `union bpf_attr`'s `test` member (include/uapi/linux/bpf.h), padded.
    #[repr(C)]
    #[derive(Default)]
    struct Test {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        pad: [u32; 13],
    }
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut attr = Test {
        prog_fd: fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ..Test::default()
    };
    // SAFETY: bpf(2) reads `attr` (its size given) and the frame it points
    // to, and writes `retval` and `duration` back into `attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut Test,
            std::mem::size_of::<Test>() as u32,
        )
    };
    if rc != 0 {
        bail!("BPF_PROG_TEST_RUN: {}", std::io::Error::last_os_error());
    }
    Ok((attr.duration, attr.retval))
}

/// Ethernet + IPv4 (checksummed) + TCP SYN from [`SOURCE`] to [`PORT`].
fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&SOURCE);
    ip[16..20].copy_from_slice(&[10, 200, 0, 254]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&PORT.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    f
}
