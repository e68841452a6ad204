//! Fuzzes the HTTP/2 analyzer (frames, HPACK, streams, gRPC) through the
//! whole pipeline: after a handshake and the client preface, chunks from
//! either side, each possibly followed by uncaptured bytes.
//!
//! Run it from `sensor/` with the nightly toolchain (see `pipeline.rs`):
//!
//! ```sh
//! mkdir -p fuzz/corpus/http2
//! cargo +nightly fuzz run http2 fuzz/corpus/http2 fuzz/seeds/http2 -- -max_total_time=600
//! ```
//!
//! The input is `sensor_fuzz::H2Input`, decoded by `arbitrary`; `fuzz/seeds/`
//! holds a GET answered 200 in that encoding.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: sensor_fuzz::H2Input| {
    sensor_fuzz::run_pipeline(&sensor_fuzz::h2_pipeline_input(&input));
});
