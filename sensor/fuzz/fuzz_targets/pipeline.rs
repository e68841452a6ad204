//! Fuzzes the whole pipeline (reassembly, HTTP framing and pairing,
//! identity, detectors, the JSON sinks) with segments of two connections:
//! any sides, flags, sequence and acknowledgement numbers, capture cuts and
//! times.
//!
//! Run it from `sensor/` with the nightly toolchain. New inputs go to
//! `fuzz/corpus/pipeline`, crashing ones to `fuzz/artifacts/pipeline`;
//! `-jobs=N` runs N processes, logging to `fuzz-<i>.log` in the current
//! directory.
//!
//! ```sh
//! mkdir -p fuzz/corpus/pipeline
//! cargo +nightly fuzz run pipeline fuzz/corpus/pipeline fuzz/seeds/pipeline -- \
//!     -dict=fuzz/http.dict -max_total_time=600
//! ```
//!
//! The input is `sensor_fuzz::Input`, decoded by `arbitrary`; `fuzz/seeds/`
//! holds valid HTTP exchanges in that encoding.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: sensor_fuzz::Input| {
    sensor_fuzz::run_pipeline(&input);
});
