//! The segment log: one JSON object per segment (JSON lines), for watching
//! what the capture delivers (`siem-sensor run --debug-segments`), with
//! credentials redacted ([`PayloadRedactor`]) unless asked for raw.

mod redact;

use std::{borrow::Cow, collections::HashMap, io::Write};

pub use redact::PayloadRedactor;

use serde::Serialize;

use super::{
    interface::Sink,
    json_lines::{JsonLines, Records},
};
use crate::{
    capture::{Direction, Segment, Source},
    choice::Choice as _,
    time::Rfc3339,
};

/// Writes segments as JSON lines (see [`JsonLines`] for write errors).
pub struct SegmentLog {
    out: JsonLines,
    interface_names: HashMap<u32, String>,
    redactor: Option<PayloadRedactor>,
}

/// The JSON shape of one segment line.
#[derive(Serialize)]
struct Line<'a> {
    event: &'static str,
    /// RFC 3339, nanoseconds.
    time: String,
    /// The live tap's hook (`tc`, `xdp`, or `tls` for the TLS tap),
    /// direction and interface; null for file segments.
    hook: Option<&'static str>,
    direction: Option<Direction>,
    ifindex: Option<u32>,
    /// The TLS tap's gateway process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    /// Interface name, resolved in the sensor's network namespace.
    iface: Option<&'a str>,
    src: String,
    dst: String,
    seq: u32,
    ack: u32,
    flags: String,
    payload_len: u32,
    captured_len: usize,
    /// Captured payload, printable ASCII kept, other bytes as `\xNN`.
    payload: &'a str,
}

impl SegmentLog {
    /// A log writing to `out` (buffered by the caller if needed),
    /// redacting payloads with `redactor` (`None`: raw payloads, secrets
    /// included).
    pub fn new(out: Box<dyn Write + Send>, redactor: Option<PayloadRedactor>) -> Self {
        Self {
            out: JsonLines::new(Records::Other, "segment log", out),
            interface_names: HashMap::new(),
            redactor,
        }
    }

    /// Writes one segment line.
    fn write(&mut self, s: &Segment<'_>) {
        let payload = match &mut self.redactor {
            Some(r) => r.redact((s.src, s.dst), s.payload),
            None => Cow::Borrowed(s.payload),
        };
        let payload = escape_payload(&payload);
        let (hook, direction, ifindex, pid) = match s.source {
            Source::Live {
                hook,
                direction,
                ifindex,
            } => (Some(hook.name()), Some(direction), Some(ifindex), None),
            Source::Tls { direction, pid } => (Some("tls"), Some(direction), None, Some(pid)),
            Source::File => (None, None, None, None),
        };
        let iface = ifindex.map(|i| {
            self.interface_names
                .entry(i)
                .or_insert_with(|| interface_name(i))
                .as_str()
        });
        let line = Line {
            event: "segment",
            time: Rfc3339(s.time_ns).to_string(),
            hook,
            direction,
            ifindex,
            pid,
            iface,
            src: s.src.to_string(),
            dst: s.dst.to_string(),
            seq: s.seq,
            ack: s.ack,
            flags: flags_string(s.flags),
            payload_len: s.payload_len,
            captured_len: s.payload.len(),
            payload: &payload,
        };
        self.out.write(&line);
    }
}

impl Sink for SegmentLog {
    fn takes_segments(&self) -> bool {
        true
    }

    fn segment(&mut self, segment: &Segment<'_>) {
        self.write(segment);
    }

    fn flush(&mut self) {
        self.out.flush_lines();
    }
}

/// The interface's name, or its index as text when it has none (gone).
fn interface_name(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let name = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if name.is_null() {
        return ifindex.to_string();
    }
    // SAFETY: on success `buf` holds a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// TCP flags as letters, tcpdump style: `S` SYN, `F` FIN, `R` RST, `P` PSH,
/// `.` ACK, `U` URG.
pub fn flags_string(flags: u8) -> String {
    use sensor_ebpf::tcp_flags::*;
    [
        (SYN, 'S'),
        (FIN, 'F'),
        (RST, 'R'),
        (PSH, 'P'),
        (ACK, '.'),
        (URG, 'U'),
    ]
    .iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// Printable ASCII, CR, LF and TAB as themselves; every other byte as `\xNN`.
pub fn escape_payload(payload: &[u8]) -> String {
    let mut out = String::with_capacity(payload.len());
    for &b in payload {
        match b {
            b'\r' | b'\n' | b'\t' | 0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::capture::Hook;

    #[test]
    fn flags_read_like_tcpdump() {
        assert_eq!(flags_string(0x02), "S");
        assert_eq!(flags_string(0x12), "S.");
        assert_eq!(flags_string(0x18), "P.");
        assert_eq!(flags_string(0x11), "F.");
        assert_eq!(flags_string(0), "");
    }

    #[test]
    fn payload_escape_keeps_http_text_and_marks_binary() {
        assert_eq!(escape_payload(b"GET / HTTP/1.1\r\n"), "GET / HTTP/1.1\r\n");
        assert_eq!(
            escape_payload(&[0x16, 0x03, b'a', 0xff]),
            "\\x16\\x03a\\xff"
        );
    }

    #[test]
    fn writes_one_json_object_per_segment() {
        #[derive(Clone, Default)]
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Shared::default();
        let mut log = SegmentLog::new(Box::new(buf.clone()), None);
        let seg = Segment {
            time_ns: 1_700_000_000_123_456_789,
            src: "10.0.0.2:5000".parse().unwrap(),
            dst: "10.0.0.1:8000".parse().unwrap(),
            seq: 1,
            ack: 2,
            flags: 0x18,
            payload_len: 40,
            payload: b"GET / HTTP/1.1\r\n",
            source: Source::Live {
                hook: Hook::Tc,
                direction: Direction::Ingress,
                ifindex: 1,
            },
        };
        log.write(&seg);
        log.write(&seg);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["time"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(lines[0]["src"], "10.0.0.2:5000");
        assert_eq!(lines[0]["direction"], "ingress");
        assert_eq!(lines[0]["hook"], "tc");
        assert_eq!(lines[0]["iface"], "lo");
        assert_eq!(lines[0]["flags"], "P.");
        assert_eq!(lines[0]["payload"], "GET / HTTP/1.1\r\n");
        assert_eq!(lines[0]["payload_len"], 40);
        assert_eq!(lines[0]["captured_len"], 16);
    }
}
