//! The packet tap's per-CPU rings, run in the kernel with
//! `BPF_PROG_TEST_RUN` on chosen CPUs and read back by the daemon's
//! reader: records from two CPUs come out in kernel-time order, a ring
//! wraps its chunks without losing or tearing a record, and a full ring
//! refuses records (counted) rather than overwrite what it holds. Each
//! test runs both ways of publishing a record: the plain store this
//! host's order allows, and the `BPF_XCHG` a host without total store
//! order takes (forced here, so the verifier and the reader see it).

mod support;

use sensor::capture::live::ring_run::RingRun;
use support::require_root;

/// The default capture length: payload bytes a record keeps.
const CAPTURED: u32 = 512;

/// Publishing by a plain store, then by `BPF_XCHG`.
const PUBLISH: [bool; 2] = [true, false];

#[test]
#[ignore = "live: needs root (cargo xtask test runs it)"]
fn records_from_two_cpus_come_out_in_kernel_time_order() {
    require_root();
    for in_order in PUBLISH {
        let mut run = RingRun::new(4, in_order).unwrap();
        let cpus = run.cpus(2);
        assert!(!cpus.is_empty());
        // An irregular pattern: runs of one CPU, then the other.
        let order: Vec<usize> = (0..300).map(|i| cpus[(i * i / 7) % cpus.len()]).collect();
        for (seq, &cpu) in order.iter().enumerate() {
            run.segment(cpu, seq as u32, 100).unwrap();
        }
        let read = run.drain().unwrap();
        let expected: Vec<(u32, u32)> = (0..300).map(|seq| (seq, 100)).collect();
        assert_eq!(read, expected, "stores in order: {in_order}");
        assert_eq!(run.ring_full().unwrap(), 0);
    }
}

#[test]
#[ignore = "live: needs root (cargo xtask test runs it)"]
fn a_ring_wraps_its_chunks_without_losing_or_tearing_a_record() {
    require_root();
    for in_order in PUBLISH {
        // Two chunks (128 KiB) per CPU; about 700 KB of records go through.
        let mut run = RingRun::new(2, in_order).unwrap();
        let cpu = run.cpus(1)[0];
        let mut expected = Vec::new();
        let mut seq = 0u32;
        for _round in 0..20 {
            for i in 0..70u16 {
                // Sizes that leave chunk ends of every length.
                let payload = 1 + (i * 97 + seq as u16 * 13) % 1400;
                run.segment(cpu, seq, payload).unwrap();
                expected.push((seq, u32::from(payload).min(CAPTURED)));
                seq += 1;
            }
            let read = run.drain().unwrap();
            assert_eq!(
                read, expected,
                "round ending at {seq}, in order: {in_order}"
            );
            expected.clear();
        }
        assert_eq!(run.ring_full().unwrap(), 0);
    }
}

#[test]
#[ignore = "live: needs root (cargo xtask test runs it)"]
fn a_full_ring_refuses_records_and_keeps_what_it_holds() {
    require_root();
    for in_order in PUBLISH {
        let mut run = RingRun::new(2, in_order).unwrap();
        let cpu = run.cpus(1)[0];
        for seq in 0..400 {
            run.segment(cpu, seq, 1000).unwrap();
        }
        let read = run.drain().unwrap();
        // 592-byte records; one starts only where the largest (1104 bytes)
        // would fit, so 109 to a 64 KiB chunk: two chunks hold 218.
        let kept = read.len() as u32;
        assert_eq!(kept, 218, "stores in order: {in_order}");
        let expected: Vec<(u32, u32)> = (0..kept).map(|seq| (seq, CAPTURED)).collect();
        assert_eq!(read, expected, "the oldest records, intact");
        assert_eq!(run.ring_full().unwrap(), u64::from(400 - kept));
        // Drained, the ring takes records again.
        run.segment(cpu, 1000, 10).unwrap();
        assert_eq!(run.drain().unwrap(), [(1000, 10)]);
    }
}
