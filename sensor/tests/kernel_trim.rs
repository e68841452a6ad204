//! The kernel programs' body trimming (`--trim-bodies`), run in the kernel
//! with `BPF_PROG_TEST_RUN`: what is recorded inside, at the end of and
//! past a body range, and that a SYN, FIN or RST clears a stale range.

mod support;

use sensor::capture::live::bench::trim_records;
use sensor_ebpf::tcp_flags::{ACK, FIN, PSH, SYN};
use support::require_root;

const DATA: u8 = ACK | PSH;

#[test]
#[ignore = "live: needs root (cargo xtask test runs it)"]
fn the_kernel_leaves_out_what_is_inside_a_body_range() {
    require_root();
    let records = trim_records(
        10_000,
        20_000,
        &[
            (DATA, 10_000, 1400), // inside: not recorded
            (DATA, 11_400, 300),  // inside, but not cut by the capture length
            (DATA, 18_600, 1400), // ends the range: a bare header
            (DATA, 20_000, 1400), // past it: recorded as usual
            (DATA, 10_000, 1400), // the range is gone
        ],
    )
    .unwrap();
    assert_eq!(records, [None, Some(300), Some(0), Some(512), Some(512)]);
}

#[test]
#[ignore = "live: needs root (cargo xtask test runs it)"]
fn a_syn_or_fin_clears_a_stale_range() {
    require_root();
    for control in [SYN, FIN | ACK] {
        let records = trim_records(
            10_000,
            20_000,
            &[
                (DATA, 10_000, 1400),
                (control, 12_000, 0),
                // A new connection whose sender picked an ISN inside the old
                // range: its data is recorded.
                (DATA, 12_001, 1400),
            ],
        )
        .unwrap();
        assert_eq!(records, [None, Some(0), Some(512)], "flags {control:#x}");
    }
}
