//! Fuzzes HTTP/1.1 message framing (`sensor::http::message::Framer`) on one
//! direction's byte stream, cut into chunks with bytes of unknown content.
//!
//! Run it from `sensor/` with the nightly toolchain. New inputs go to
//! `fuzz/corpus/http_message`, crashing ones to `fuzz/artifacts/http_message`;
//! `-jobs=N` runs N processes, logging to `fuzz-<i>.log` in the current
//! directory.
//!
//! ```sh
//! mkdir -p fuzz/corpus/http_message
//! cargo +nightly fuzz run http_message fuzz/corpus/http_message fuzz/seeds/http_message -- \
//!     -dict=fuzz/http.dict -max_total_time=600
//! ```
//!
//! Input layout (`sensor_fuzz::run_http_message`):
//! - byte 0: bit 0 response (else request); bits 1-2 head limit
//!   (16, 200, 4096 or 32768 bytes); bits 3-5 number of chunk specs - 1;
//! - that many chunk specs of 2 bytes: captured length (0-255), then
//!   unknown bytes after it (below 0x80 none, up to 0xef a few, above that
//!   up to 2^31); specs are reused in turn until the stream is fed;
//! - 8 body-framing choices, used in turn by each head (0-2: from the
//!   headers, else none, a small length, chunked, until close, tunnel);
//! - the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sensor_fuzz::run_http_message(data);
});
