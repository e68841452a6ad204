//! Writing records to the ring buffer, and the counters.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::generated::bpf_probe_read_user,
};
use sensor_ebpf::{
    MAX_CAPTURE_LEN,
    tls::{TLS_HEADER_LEN, TlsCounter, TlsHeader, flags},
};

use crate::maps::{TLS_CAPTURE_LEN, TLS_COUNTERS, TLS_RECORDS, TLS_WAKEUP_BYTES};

#[inline(always)]
pub fn count(counter: TlsCounter) {
    if let Some(slot) = TLS_COUNTERS.get_ptr_mut(counter as u32) {
        unsafe { *slot += 1 };
    }
}

/// `bpf_ringbuf_submit` flags for a record of `reserved` bytes: wake the
/// reader only as it takes the waiting data across `TLS_WAKEUP_BYTES`
/// ([`sensor_ebpf::wakes_reader`]).
#[inline(always)]
fn wakeup_flags(reserved: u64) -> u64 {
    let waiting = TLS_RECORDS.query(BPF_RB_AVAIL_DATA as u64);
    let threshold = unsafe { ptr::read_volatile(&TLS_WAKEUP_BYTES) };
    if sensor_ebpf::wakes_reader(waiting, threshold, reserved) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// One call's DATA record: `header` (`full_len` > 0) and the first
/// `TLS_CAPTURE_LEN` bytes of the caller's buffer at `buf`, in user
/// memory. A copy that fails is still recorded, without bytes, so the
/// stream offsets stay right. Counts `Calls`, then `Submitted` or
/// `RingFull`.
#[inline(always)]
pub fn data(mut header: TlsHeader, buf: u64) {
    count(TlsCounter::Calls);
    let cap = unsafe { ptr::read_volatile(&TLS_CAPTURE_LEN) }.min(MAX_CAPTURE_LEN);
    let Some(mut record) = TLS_RECORDS.reserve_bytes(TLS_HEADER_LEN + cap as usize, 0) else {
        count(TlsCounter::RingFull);
        return;
    };
    let base = record.as_mut_ptr();
    // Verifier: the helper's size (which may be 0) must be provably at
    // most `cap`, tested on the value the helper gets: black_box keeps LLVM
    // from dropping the test it knows to be true.
    let n = core::hint::black_box(header.full_len.min(cap));
    let copied = n <= cap
        && unsafe {
            bpf_probe_read_user(
                base.add(TLS_HEADER_LEN) as *mut c_void,
                n,
                buf as *const c_void,
            )
        } == 0;
    if copied {
        header.captured_len = n;
    } else {
        header.flags |= flags::COPY_FAILED;
        count(TlsCounter::CopyError);
    }
    unsafe { ptr::write_unaligned(base as *mut TlsHeader, header) };
    record.submit(wakeup_flags((TLS_HEADER_LEN + cap as usize) as u64));
    count(TlsCounter::Submitted);
}

/// A BIND or CLOSE record: the header alone. Counts `Events` or `EventsLost`.
#[inline(always)]
pub fn event(header: TlsHeader) {
    match TLS_RECORDS.reserve::<TlsHeader>(0) {
        Some(mut record) => {
            record.write(header);
            record.submit(wakeup_flags(TLS_HEADER_LEN as u64));
            count(TlsCounter::Events);
        }
        None => count(TlsCounter::EventsLost),
    }
}
