//! The kernel programs' cost, measured in the kernel with
//! `BPF_PROG_TEST_RUN` (Documentation/bpf/bpf_prog_run.rst): a program
//! runs `repeat` times on one crafted frame and the kernel reports the
//! mean ns per run. The block check: `tc_ingress` on a SYN to a Kong proxy
//! port that is not captured (no ring-buffer record). A record:
//! `tc_egress` on segments to a captured port. `cargo xtask bench --only
//! block` runs both through the hidden `siem-sensor bench-block`.

use std::{
    net::SocketAddr,
    os::fd::{AsFd as _, AsRawFd as _},
};

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

use super::{
    OBJECT,
    rings::{CpuRings, Layout},
};
use crate::capture::Trim;
use crate::{
    block::{Clock as _, SystemClock},
    capture::kernel_map,
};

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
    let (mut ebpf, fd, _rings) = loaded(TC_INGRESS_PROGRAM, port_bits::PROXY, big_rings()?)?;
    let frame = frame(0);
    let (boot, _) = SystemClock.now();
    let far = boot + 3600 * 1_000_000_000;
    let mut state: Array<_, u64> = kernel_map(&mut ebpf, STATE_MAP)?;
    let mut v4: HashMap<_, [u8; 4], u64> = kernel_map(&mut ebpf, V4_MAP)?;
    let median = |f: &mut dyn FnMut() -> Result<(u32, u32)>| -> Result<(f64, u32)> {
        let mut runs = Vec::new();
        let mut verdict = 0;
        for _ in 0..rounds {
            let (ns, v) = f()?;
            runs.push(ns);
            verdict = v;
        }
        Ok((median(runs), verdict))
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
pub(super) fn test_run(fd: i32, frame: &[u8], repeat: u32) -> Result<(u32, u32)> {
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

/// One case of [`record_costs`].
#[derive(Clone, Debug, Serialize)]
pub struct RecordCost {
    /// What the frame is.
    pub case: &'static str,
    /// TCP payload bytes; `None`: the port is not captured.
    pub payload: Option<u16>,
    /// Mean ns per `tc_egress` run, median of the rounds.
    pub ns: f64,
}

/// The cost of a record by segment size, at the default capture length:
/// `repeat` runs a round, median of `rounds`.
///
/// # Errors
/// As [`block_lookup`]; a round that did not leave one record per run.
pub fn record_costs(repeat: u32, rounds: usize) -> Result<Vec<RecordCost>> {
    use Trimming::{Elsewhere, Inside, Off};
    let cases = [
        ("port not captured (header walk and filter only)", None, Off),
        ("control segment (SYN), bare header", Some(0), Off),
        ("64-byte payload", Some(64), Off),
        ("200-byte payload (a request head)", Some(200), Off),
        ("1400-byte payload (copies 512)", Some(1400), Off),
        (
            "1400-byte payload, body ranges armed, none for this flow (a map miss)",
            Some(1400),
            Elsewhere,
        ),
        (
            "1400-byte payload inside a trimmed body (not recorded)",
            Some(1400),
            Inside,
        ),
    ];
    cases
        .into_iter()
        .map(|(case, payload, trimming)| {
            Ok(RecordCost {
                case,
                payload,
                ns: record_cost(payload, trimming, repeat, rounds)?,
            })
        })
        .collect()
}

/// The body ranges (`sensor_ebpf::trim`) a [`record_cost`] case runs with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trimming {
    /// None ever written (the programs read one array slot).
    Off,
    /// Armed, with a range for another flow only.
    Elsewhere,
    /// A range covering the segment.
    Inside,
}

/// Mean ns per `tc_egress` run on one segment of `payload` bytes to a
/// captured port: `repeat` runs a round (the CPU's ring holds them all and
/// is drained between rounds), median of `rounds`. `payload == None`: the
/// port is not captured (the header walk and filter only).
fn record_cost(
    payload: Option<u16>,
    trimming: Trimming,
    repeat: u32,
    rounds: usize,
) -> Result<f64> {
    let bits = if payload.is_some() {
        port_bits::CAPTURE
    } else {
        0
    };
    let (mut ebpf, fd, mut rings) = loaded(sensor_ebpf::TC_EGRESS_PROGRAM, bits, big_rings()?)?;
    if trimming != Trimming::Off {
        let mut trims = super::trim_map::KernelTrims::take(&mut ebpf)?;
        let to = SocketAddr::from(([10, 200, 0, 254], PORT));
        let other = SocketAddr::from((SOURCE, 40001));
        let from = SocketAddr::from((SOURCE, 40000));
        let src = if trimming == Trimming::Inside {
            from
        } else {
            other
        };
        trims.write(&Trim {
            src,
            dst: to,
            from_seq: 0,
            until_seq: 1 << 30,
        })?;
    }
    let expected = match (payload, trimming) {
        (None, _) | (_, Trimming::Inside) => 0,
        _ => repeat,
    };
    let frame = frame(payload.unwrap_or(0));
    let mut runs = Vec::new();
    for _ in 0..rounds {
        runs.push(test_run(fd, &frame, repeat)?.0);
        let n = rings.drain(u64::MAX, usize::MAX, &mut |_| {});
        if n != expected as usize {
            bail!("{n} records, not {expected}");
        }
    }
    Ok(median(runs))
}

/// A segment for [`trim_records`]: TCP flags, sequence number, payload
/// bytes.
pub type TestSegment = (u8, u32, u16);

/// The trimming rules (`sensor_ebpf::trim`) as the kernel applies them:
/// writes the body range `[from, until)` for the direction `SOURCE`:40000
/// -> `PORT` (captured), runs `tc_egress` once on each of `segments` of
/// that direction, in order, and returns the captured length of each
/// run's record (`None`: not recorded).
///
/// # Errors
/// As [`block_lookup`]; a run that left more than one record.
pub fn trim_records(from: u32, until: u32, segments: &[TestSegment]) -> Result<Vec<Option<u32>>> {
    let (mut ebpf, fd, mut rings) = loaded(
        sensor_ebpf::TC_EGRESS_PROGRAM,
        port_bits::CAPTURE,
        big_rings()?,
    )?;
    super::trim_map::KernelTrims::take(&mut ebpf)?.write(&Trim {
        src: SocketAddr::from((SOURCE, 40000)),
        dst: SocketAddr::from(([10, 200, 0, 254], PORT)),
        from_seq: from,
        until_seq: until,
    })?;
    let mut out = Vec::new();
    for &(flags, seq, payload) in segments {
        let mut f = frame(payload);
        f[47] = flags;
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        test_run(fd, &f, 1)?;
        let mut captured = Vec::new();
        rings.drain(u64::MAX, usize::MAX, &mut |record| {
            // SAFETY: the rings hand on whole records, a SegmentHeader
            // first (plain data, every bit pattern valid).
            let h: sensor_ebpf::SegmentHeader =
                unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
            captured.push(h.captured_len);
        });
        if captured.len() > 1 {
            bail!("a run left more than one record");
        }
        out.push(captured.first().copied());
    }
    Ok(out)
}

/// Rings of 16 MiB on every possible CPU.
fn big_rings() -> Result<Layout> {
    Ok(Layout {
        cpus: Layout::possible_cpus()?,
        ..Layout::split(16 << 20, 1)
    })
}

/// The object loaded with [`PORT`]'s filter bits set to `bits` and rings
/// of `layout`, the fd of its tc program `name`, loaded, and the rings.
pub(super) fn loaded(name: &str, bits: u8, layout: Layout) -> Result<(aya::Ebpf, i32, CpuRings)> {
    let mut loader = EbpfLoader::new();
    layout.apply(&mut loader);
    let mut ebpf = loader.load(OBJECT).context("loading the eBPF object")?;
    let rings = CpuRings::open(&mut ebpf, layout)?;
    let mut ports = Array::<_, u8>::try_from(ebpf.map_mut(PORTS_MAP).context(PORTS_MAP)?)?;
    ports.set(u32::from(PORT), bits, 0)?;
    let program: &mut SchedClassifier = ebpf
        .program_mut(name)
        .context(name.to_owned())?
        .try_into()?;
    program.load()?;
    let fd = program.fd()?.as_fd().as_raw_fd();
    Ok((ebpf, fd, rings))
}

/// The median (the upper one of an even count) of per-round ns figures.
fn median(mut runs: Vec<u32>) -> f64 {
    runs.sort_unstable();
    f64::from(runs[runs.len() / 2])
}

/// Ethernet + IPv4 (checksummed) + TCP from [`SOURCE`] to [`PORT`]: a SYN
/// when `payload` is 0, else ACK|PSH with `payload` bytes of data.
pub(super) fn frame(payload: u16) -> Vec<u8> {
    let mut f = vec![b'x'; 14 + 20 + 20 + usize::from(payload)];
    f[..54].fill(0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(40 + payload).to_be_bytes());
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
    tcp[13] = if payload == 0 { 0x02 } else { 0x18 };
    f
}
