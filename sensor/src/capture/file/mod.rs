//! The capture-file source behind `siem-sensor replay`.
//!
//! [`read_file`] streams one pcap or pcapng file (either byte order, µs or ns
//! pcap timestamps, pcapng `if_tsresol` per interface) through `pcap-parser`'s
//! circular buffer and hands each TCP segment to a callback, borrowing the
//! payload from that buffer: no per-packet allocation (but `pcap-parser`'s
//! own, for pcapng packets that carry options). Frames are decoded by the
//! private `link` module; everything that is not a TCP segment is counted in
//! [`FileCounters`], never an error.

mod link;
pub mod merge;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressStyle};
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{Block, PcapBlockOwned, PcapError, create_reader};

use link::{Checks, Link, Skip, TcpChecksum, decode, ipv4_fragment};

use super::{
    Segment, Source,
    defrag::{Defrag, Fragment, Outcome, reassembled},
};

/// Initial read buffer; it holds whole records, so it grows for larger ones.
const BUFFER: usize = 1 << 20;
/// Largest record accepted, as Wireshark's pcapng reader (16 MiB); a longer
/// one marks the file corrupt.
const MAX_RECORD: usize = 16 << 20;
/// Packets between progress-bar updates.
const PROGRESS_EVERY: u64 = 1 << 16;

/// What one file held, beyond the segments delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileCounters {
    /// Packet records read (pcap records, pcapng enhanced and simple packets).
    pub packets: u64,
    /// Captured bytes in those records.
    pub bytes: u64,
    /// Segments handed to the callback.
    pub tcp_segments: u64,
    /// IP packets that are not TCP (UDP, ICMP...) and non-IP frames (ARP, LLDP...).
    pub not_tcp: u64,
    /// IPv4 and IPv6 fragments. IPv4 fragments of TCP are reassembled
    /// (`reassembled`); IPv6 fragments are counted only.
    pub ip_fragments: u64,
    /// TCP segments rebuilt from IPv4 fragments (counted in
    /// `tcp_segments` too).
    pub reassembled: u64,
    /// IPv4 datagrams whose fragments were dropped: overlapping (as Linux
    /// does), bad offsets, or never completed within 30 s.
    pub fragments_dropped: u64,
    /// Frames whose IP length claims more than the frame carried: the
    /// receiving host drops them, so they are dropped here.
    pub bad_ip_length: u64,
    /// Segments dropped for a wrong IPv4 header or TCP checksum (while
    /// checksums are validated, see `checksums`).
    pub bad_checksum: u64,
    /// Segments whose TCP checksum field held only the pseudo-header's sum:
    /// captured on a sending host that offloads checksums to its NIC (the
    /// wire copy was right); delivered.
    pub offloaded_checksums: u64,
    /// Whether checksums were validated: `on`, `off`, or `offloaded` when
    /// `auto` found most of the file's checksums wrong (captured on a host
    /// that offloads them) and turned validation off.
    pub checksums: &'static str,
    /// Frames whose headers do not parse (bad IHL, bad TCP data offset, a
    /// header cut short by the capture length...).
    pub malformed: u64,
    /// Delivered segments whose capture length cut into the TCP payload.
    pub snapped: u64,
    /// Frames skipped by reason: `"linktype:NAME"` for a link type this reader
    /// does not decode, `"encapsulation:NAME"` (mpls, gre, ipip, ...).
    pub unsupported: BTreeMap<String, u64>,
    /// The file ended mid-record; everything before the cut was delivered.
    pub truncated_file: bool,
    /// A record could not be parsed (bad block length or type); reading
    /// stopped there and everything before it was delivered.
    pub corrupt: bool,
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening the file failed.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading the file failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file starts with neither a pcap header nor a pcapng section header.
    #[error("{} is not a pcap or pcapng file", path.display())]
    NotCapture {
        /// The file.
        path: PathBuf,
    },
}

/// Whether segments with wrong checksums are dropped, as the receiving
/// host would drop them (Suricata's `checksum-validation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checksums {
    /// Validate, taking a checksum field that holds only the pseudo-header
    /// sum for a sending host's offload (counted as `offloaded_checksums`),
    /// unless more than 10% (and at least 10, or all) of the file's first
    /// 1000 checkable segments are still wrong: then the capture host (or a
    /// rewrite of the file) mangled checksums and nothing is dropped. A
    /// pipe, which cannot be read twice, is validated.
    #[default]
    Auto,
    /// Always validate.
    On,
    /// Never validate.
    Off,
}

impl crate::choice::Choice for Checksums {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("auto", Self::Auto), ("on", Self::On), ("off", Self::Off)];
}

/// How `auto` samples a file: its first this many checkable segments...
const SAMPLE: u64 = 1000;
/// ...of which more than this share, and at least [`OFFLOADED_MIN`] or all
/// of them, failing means the capture host mangled checksums (a handful of
/// bad segments among good ones is an attack, not offload; a small file
/// whose every checksum is wrong was rewritten without fixing them).
const OFFLOADED_SHARE: f64 = 0.1;
/// See [`OFFLOADED_SHARE`].
const OFFLOADED_MIN: u64 = 10;

/// Reads every packet of one pcap or pcapng file and calls `on_segment` for
/// each TCP segment, in file order. Segments carry `Source::File` and the
/// packet timestamp in ns since the Unix epoch.
///
/// `progress` draws a bytes-based bar on stderr (pass it only when stderr is
/// a terminal). A file that ends mid-record, or holds a record that cannot be
/// parsed, is read up to that point, logged with `tracing::warn!`, and
/// flagged in the counters.
///
/// `checksums` says whether segments the receiving host would drop for a
/// wrong checksum are dropped; they never are when the capture cut the
/// segment (it cannot be checked).
///
/// # Errors
/// [`FileError`] when the file cannot be opened or read, or is not a capture.
pub fn read_file(
    path: &Path,
    progress: bool,
    checksums: Checksums,
    on_segment: &mut dyn FnMut(&Segment<'_>),
) -> Result<FileCounters, FileError> {
    let validate = match checksums {
        Checksums::On => Some(true),
        Checksums::Off => Some(false),
        Checksums::Auto => None,
    };
    // A pipe cannot be read twice: it is validated without sampling.
    let regular = std::fs::metadata(path).is_ok_and(|m| m.is_file());
    let validate = match validate {
        Some(v) => v,
        None if !regular => true,
        None => {
            let mut sample = State::sampling();
            read(path, false, &mut sample, &mut |_| {})?;
            let (failed, checked) = (sample.sample_failed, sample.sample_checked);
            let mangled = failed as f64 > OFFLOADED_SHARE * checked as f64
                && (failed >= OFFLOADED_MIN || failed == checked);
            !mangled
        }
    };
    let mut state = State {
        validate,
        ..State::default()
    };
    read(path, progress, &mut state, on_segment)?;
    state.counters.checksums = match (checksums, validate) {
        (_, true) => "on",
        (Checksums::Auto, false) => "offloaded",
        _ => "off",
    };
    state.counters.fragments_dropped += state.defrag.expired;
    Ok(state.counters)
}

/// Reads `path` through `state` until its end or until `state` stops.
fn read(
    path: &Path,
    progress: bool,
    state: &mut State,
    on_segment: &mut dyn FnMut(&Segment<'_>),
) -> Result<(), FileError> {
    let file = File::open(path).map_err(|source| FileError::Open {
        path: path.to_owned(),
        source,
    })?;
    let size = file.metadata().map_or(0, |m| m.len());
    let read_error = OnceLock::new();
    let failed = |e: PcapError<&[u8]>| match e {
        PcapError::ReadError => FileError::Read {
            path: path.to_owned(),
            source: read_error.get().map_or_else(
                || io::Error::other("read failed"),
                |e: &io::Error| io::Error::new(e.kind(), e.to_string()),
            ),
        },
        _ => FileError::NotCapture {
            path: path.to_owned(),
        },
    };
    let mut reader = create_reader(
        BUFFER,
        KeepError {
            file,
            error: &read_error,
        },
    )
    .map_err(failed)?;
    let bar = progress.then(|| progress_bar(size));
    let mut capacity = BUFFER;
    while !state.stop {
        // A full buffer that still holds no whole record must grow to progress.
        let full = reader.data().len() >= capacity;
        match reader.next() {
            Ok((len, block)) => {
                state.block(block, on_segment);
                // Shift the buffer only when refilling, not once per record.
                reader.consume_noshift(len);
                if let Some(bar) = &bar
                    && state.counters.packets.is_multiple_of(PROGRESS_EVERY)
                {
                    bar.set_position(reader.consumed() as u64);
                }
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) if !full => reader.refill().map_err(failed)?,
            Err(PcapError::Incomplete(_) | PcapError::BufferTooSmall) if capacity < MAX_RECORD => {
                capacity *= 2;
                reader.grow(capacity);
                reader.refill().map_err(failed)?;
            }
            Err(PcapError::UnexpectedEof) => {
                tracing::warn!(path = %path.display(), "capture file ends mid-record");
                state.counters.truncated_file = true;
                break;
            }
            Err(_) => {
                let offset = reader.consumed();
                tracing::warn!(path = %path.display(), offset, "unparsable capture record; reading stopped");
                state.counters.corrupt = true;
                break;
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// The file, keeping the cause of a read error that `pcap-parser` would
/// reduce to `ReadError`, and retrying interrupted reads.
struct KeepError<'a> {
    file: File,
    error: &'a OnceLock<io::Error>,
}

impl Read for KeepError<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = e.kind();
                    let _ = self.error.set(e);
                    return Err(kind.into());
                }
                ok => return ok,
            }
        }
    }
}

fn progress_bar(size: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(size).with_style(style)
}

/// Decoding state across blocks: the interfaces of the current section.
#[derive(Default)]
struct State {
    counters: FileCounters,
    /// pcap: the one link type; pcapng: one per interface description block.
    interfaces: Vec<Interface>,
    /// Last timestamp seen, for pcapng simple packet blocks, which have none.
    last_ns: u64,
    /// Drop segments with wrong checksums.
    validate: bool,
    /// IPv4 datagrams being reassembled.
    defrag: Defrag,
    /// Sampling checksums for `auto`, not delivering segments.
    sampling: bool,
    /// Checkable segments sampled, and those that failed.
    sample_checked: u64,
    sample_failed: u64,
    /// Stop reading (the sample is complete).
    stop: bool,
}

impl State {
    /// A state that samples checksums for [`Checksums::Auto`].
    fn sampling() -> Self {
        Self {
            sampling: true,
            ..Self::default()
        }
    }

    /// Whether a segment with `checks` reaches the pipeline; counts it.
    fn accept(&mut self, checks: Checks) -> bool {
        let tcp = checks.tcp_checksum;
        self.counters.offloaded_checksums += u64::from(tcp == Some(TcpChecksum::Offloaded));
        let ok = checks.ip_checksum != Some(false) && tcp != Some(TcpChecksum::Wrong);
        if self.sampling {
            if checks.ip_checksum.is_some() || checks.tcp_checksum.is_some() {
                self.sample_checked += 1;
                self.sample_failed += u64::from(!ok);
                self.stop = self.sample_checked >= SAMPLE;
            }
            return false;
        }
        if !ok && self.validate {
            self.counters.bad_checksum += 1;
            return false;
        }
        true
    }

    fn block(&mut self, block: PcapBlockOwned<'_>, on_segment: &mut dyn FnMut(&Segment<'_>)) {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                let per_sec = if h.is_nanosecond_precision() {
                    1_000_000_000
                } else {
                    1_000_000
                };
                self.interfaces = vec![Interface::new(h.network.0, per_sec, 0)];
            }
            PcapBlockOwned::Legacy(b) => {
                let per_sec = self.interfaces.first().map_or(1_000_000, |i| i.per_sec);
                let ticks = u64::from(b.ts_sec) * per_sec + u64::from(b.ts_usec);
                self.packet(0, Some(ticks), b.data, b.origlen, on_segment);
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => self.interfaces.clear(),
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                let per_sec = ticks_per_sec(idb.if_tsresol);
                let iface = Interface::new(idb.linktype.0, per_sec, idb.if_tsoffset);
                self.interfaces.push(iface);
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let data = epb.packet_data();
                self.packet(
                    epb.if_id as usize,
                    Some(ticks),
                    data,
                    epb.origlen,
                    on_segment,
                );
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                self.packet(0, None, spb.packet_data(), spb.origlen, on_segment);
            }
            PcapBlockOwned::NG(_) => {}
        }
    }

    /// Counts and decodes one packet of interface `if_id`; `ticks` is its
    /// timestamp in the interface's units, if it has one.
    fn packet(
        &mut self,
        if_id: usize,
        ticks: Option<u64>,
        data: &[u8],
        orig_len: u32,
        on_segment: &mut dyn FnMut(&Segment<'_>),
    ) {
        let c = &mut self.counters;
        c.packets += 1;
        c.bytes += data.len() as u64;
        let Some(iface) = self.interfaces.get(if_id) else {
            c.malformed += 1;
            return;
        };
        if let Some(ticks) = ticks {
            self.last_ns = iface.ns(ticks);
        }
        let link = match &iface.link {
            Ok(link) => *link,
            Err(reason) => return bump(&mut c.unsupported, reason),
        };
        match decode(link, data, orig_len, self.last_ns) {
            Ok((segment, checks)) => self.deliver(&segment, checks, on_segment),
            Err(Skip::NotTcp) => c.not_tcp += 1,
            Err(Skip::Fragment) => {
                c.ip_fragments += 1;
                if let Some(f) = ipv4_fragment(link, data) {
                    self.fragment(&f, on_segment);
                }
            }
            Err(Skip::Malformed) => c.malformed += 1,
            Err(Skip::BadLength) => c.bad_ip_length += 1,
            Err(Skip::Unsupported(reason)) => bump(&mut c.unsupported, reason),
        }
    }

    /// Counts a decoded segment and hands it on if it passes the checks.
    fn deliver(
        &mut self,
        segment: &Segment<'_>,
        checks: Checks,
        on_segment: &mut dyn FnMut(&Segment<'_>),
    ) {
        if !self.accept(checks) {
            return;
        }
        let c = &mut self.counters;
        c.tcp_segments += 1;
        if segment.payload.len() < segment.payload_len as usize {
            c.snapped += 1;
        }
        on_segment(segment);
    }

    /// Adds an IPv4 fragment; a datagram it completes becomes a segment.
    fn fragment(&mut self, f: &Fragment<'_>, on_segment: &mut dyn FnMut(&Segment<'_>)) {
        match self.defrag.add(f, self.last_ns) {
            Outcome::Pending => {}
            Outcome::Dropped => self.counters.fragments_dropped += 1,
            Outcome::Complete(datagram) => {
                match reassembled(f.src, f.dst, &datagram, self.last_ns, Source::File) {
                    Some((segment, tcp_ok)) => {
                        self.counters.reassembled += 1;
                        let checks = Checks {
                            ip_checksum: Some(true),
                            tcp_checksum: Some(if tcp_ok {
                                TcpChecksum::Right
                            } else {
                                TcpChecksum::Wrong
                            }),
                        };
                        self.deliver(&segment, checks, on_segment);
                    }
                    None => self.counters.malformed += 1,
                }
            }
        }
    }
}

/// Adds one to `map[key]`, allocating the key only on its first occurrence.
fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

/// One capture interface: its link layout and timestamp units.
struct Interface {
    /// The layout, or the `unsupported` key of its link type.
    link: Result<Link, String>,
    /// Timestamp ticks per second.
    per_sec: u64,
    /// Nanoseconds per tick when that is a whole number (µs, ns...).
    ns_per_tick: Option<u64>,
    /// `if_tsoffset`, in nanoseconds.
    offset_ns: i64,
}

impl Interface {
    fn new(linktype: i32, per_sec: u64, offset_s: i64) -> Interface {
        Interface {
            link: Link::from_linktype(linktype),
            per_sec,
            ns_per_tick: (1_000_000_000 % per_sec == 0).then(|| 1_000_000_000 / per_sec),
            offset_ns: offset_s.saturating_mul(1_000_000_000),
        }
    }

    /// Nanoseconds since the Unix epoch of a timestamp in ticks.
    fn ns(&self, ticks: u64) -> u64 {
        let ns = match self.ns_per_tick {
            Some(m) => ticks.saturating_mul(m),
            None => {
                let ns = u128::from(ticks) * 1_000_000_000 / u128::from(self.per_sec);
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        };
        ns.saturating_add_signed(self.offset_ns)
    }
}

/// Ticks per second of a pcapng `if_tsresol` option: 10^n, or 2^n when the
/// high bit is set; microseconds when out of range. (`pcap-parser`'s own
/// decoder rejects every power-of-two resolution.)
fn ticks_per_sec(if_tsresol: u8) -> u64 {
    let n = u32::from(if_tsresol & 0x7f);
    let per_sec = if if_tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n)
    };
    per_sec.unwrap_or(1_000_000)
}

#[cfg(test)]
mod tests;
