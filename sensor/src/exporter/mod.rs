//! The Prometheus exporter (`metrics` + `metrics-exporter-prometheus`'s
//! recorder): publishes the counters of the sources, the pipeline and the
//! sinks, and the detectors' gauges under the reference SIEM's names, so
//! loss is never silent, and serves them at `/metrics` from its own small
//! server (`server`), protected as the web config file asks
//! ([`web_config`]: TLS, client certificates, basic auth). Per-transaction
//! metrics are a sink (`sink::metrics`).
//!
//! | name | type | labels | series (label values) | meaning |
//! |---|---|---|---|---|
//! | `aps_siem_ip_topn` | gauge | `client_ip` (or `other`) | 11: the top 10 + `other` | requests of the 10 busiest client IPs in the last closed 15 s window; `other`: all the rest |
//! | `aps_siem_ip` | gauge | | 1 | distinct client IPs in that window (0 until the first window closes) |
//! | `aps_siem_requests` | gauge | | 1 | requests in that window (0 until the first window closes) |
//! | `aps_siem_ip_buffer` | gauge | | 1 | client IPs held in the window table at its close (0 until the first window closes) |
//! | `aps_siem_counter` | gauge | | 1 | credentials tracked (the reference's credential-to-IP mappings) |
//! | `aps_siem_error_ip_topn` | gauge | `client_ip` | 15: the top 15 | errors of the 15 IPs with most errors in that window |
//! | `aps_siem_credential_ips` | gauge | `credential`, `principal`, `principal_source` | 50: the 50 most spread credentials; `principal` values capped at 256 bytes; `principal_source`: 4 values | distinct IPs of the 50 most spread credentials (fingerprint, never the secret) |
//! | `siem_sensor_kernel_segments_total` | counter | `result`: `seen`, `submitted`, `ring_full`, `copy_error`, `trimmed` | 5 | the kernel tap's per-CPU counters, summed; `trimmed`: inside a body the daemon does not read, not recorded (`--trim-bodies`) |
//! | `siem_sensor_body_trims_total` | counter | `result`: `advised`, `over_rate`, `written`, `failed` | 4 | body ranges the daemon handed the kernel tap to leave out (`--trim-bodies`): advised, not advised past 10,000 a second, written to the kernel map, refused by it |
//! | `siem_sensor_trimmed_bytes_total` | counter | | 1 | body bytes the kernel tap left out, delivered to framing as a known length (not gaps) |
//! | `siem_sensor_records_total` | counter | `result`: `received`, `malformed` | 2 | records read from the kernel tap's per-CPU rings; `malformed` also counts a ring found holding bytes that are not a record |
//! | `siem_sensor_records_reordered_total` | counter | | 1 | records read after a newer one from another CPU (published more than 2 ms after their kernel time); should stay 0 |
//! | `siem_sensor_ip_fragments_total` | counter | | 1 | IP fragments of TCP on captured interfaces (IPv4 ones reassembled, IPv6 ones only counted) |
//! | `siem_sensor_reassembled_segments_total` | counter | | 1 | TCP segments rebuilt from IPv4 fragments |
//! | `siem_sensor_fragments_dropped_total` | counter | | 1 | IPv4 datagrams given up: overlapping fragments (as Linux), cut by the capture length, or incomplete after 30 s |
//! | `siem_sensor_segments_dropped_total` | counter | `reason`: `bad_ip_length`, `bad_ip_checksum`, `bad_tcp_checksum` | 3 | segments the gateway's stack drops, dropped before reassembly (insertion attempts) |
//! | `siem_sensor_tcp_checksum_unknown_total` | counter | | 1 | segments whose TCP checksum could not be judged (XDP, longer than 2 KiB with `CHECKSUM_NONE`, no BTF) |
//! | `siem_sensor_tls_calls_total` | counter | `result`: `seen`, `submitted`, `ring_full`, `copy_error` | 4 | the TLS tap's kernel counters: the gateway's SSL calls that moved data, their records submitted, lost to a full ring, submitted without bytes |
//! | `siem_sensor_tls_chunks_total` | counter | `result`: `delivered`, `unbound`, `other_port` | 3 | what became of the calls' plaintext: into the pipeline, never tied to a socket, not proxy traffic |
//! | `siem_sensor_tls_events_total` | counter | `result`: `submitted`, `ring_full` | 2 | the TLS tap's socket and end records |
//! | `siem_sensor_tls_bytes_beyond_capture_total` | counter | | 1 | plaintext bytes past the capture length (framed by length, never read) |
//! | `siem_sensor_tls_gateway_processes` | gauge | | 1 | the gateway processes the TLS tap records (0: it sees nothing) |
//! | `siem_sensor_tls_socket_tracepoint_attaches_total` | counter | | 1 | times the socket tracepoints were attached, for TLS connections older than the tap (they run on every send and receive of the host while attached) |
//! | `siem_sensor_segments_total` | counter | | 1 | segments into the pipeline |
//! | `siem_sensor_packets_dropped_total` | counter | `reason`: `blocked_source` | 1 | packets the kernel programs dropped on ingress: from a blocked source to a Kong proxy port (`--block on`) |
//! | `siem_sensor_blocks_active` | gauge | | 1 | addresses blocked now (`--block on` or `dry-run`; dry-run blocks are counted, not enforced) |
//! | `siem_sensor_blocks_total` | counter | `detector` | 5 | blocks started, by the detector whose alert made them |
//! | `siem_sensor_unblocks_total` | counter | `detector`, `reason`: `expired`, `removed`, `stopped` | 15 | blocks ended: TTL over, removed with `siem-sensor blocks remove`, sensor stopped |
//! | `siem_sensor_block_decisions_total` | counter | `action`: `blocked`, `dry_run`, `advised`, `allow_listed`, `rate_capped`, `unconfirmed`, `failed` | 7 | decisions on triggering alerts (see the alert's `response`) |
//! | `siem_sensor_flows_active` | gauge | | 1 | TCP connections tracked |
//! | `siem_sensor_flows_ended_total` | counter | `how`: `closed`, `expired`, `evicted` | 3 | connections ended |
//! | `siem_sensor_gaps_total` / `siem_sensor_gap_bytes_total` | counter | | 1 each | reassembly holes skipped, and their bytes |
//! | `siem_sensor_retransmitted_bytes_total` | counter | | 1 | bytes seen twice and dropped |
//! | `siem_sensor_overlap_different_data_total` | counter | | 1 | copies of seen bytes with other content (the first copy kept): evasion attempts |
//! | `siem_sensor_http_errors_total` | counter | `kind` | 6 | HTTP framing losses by kind |
//! | `siem_sensor_http2_total` | counter | `what`: `connections`, `streams`, `hpack_lost`, `framing_lost`, `capped_blocks`, `evicted_streams`, `responses_without_request` | 7 | HTTP/2 flows and streams read, and what was lost: directions whose HPACK table or framing became unknown, header blocks capped (HPACK bombs), streams emitted early |
//! | `siem_sensor_transactions_total` | counter | `class`: `1xx`..`5xx`, `none` | 6 | transactions by status class |
//! | `siem_sensor_transaction_latency_seconds` | histogram | `le` | 15: 12 buckets, `+Inf`, `_sum`, `_count` | request start to response start |
//! | `siem_sensor_alerts_total` | counter | `detector` | 5: one per detector | alert episodes fired |
//! | `siem_sensor_alert_transitions_total` | counter | `state`: `firing`, `updated`, `resolved` | 3 | alert transitions sent |
//! | `siem_sensor_alerts_active` | gauge | `detector`, `severity` | 5: one per detector | alert episodes open now (fired, not yet resolved) |
//! | `siem_sensor_alerts_suppressed_total` | counter | | 1 | raises folded into an open alert episode (no transition) |
//! | `siem_sensor_transactions_unconfirmed_total` | counter | | 1 | transactions neither answered nor acknowledged on a handshaken flow (possibly forged), which no detector counts |
//! | `siem_sensor_detector_evictions_total` | counter | | 1 | detector table entries evicted |
//! | `siem_sensor_state_bytes` | gauge | `part`: `flows`, `detectors`, `join` | 3 | bytes the traffic-driven state holds (estimated) |
//! | `siem_sensor_state_budget_bytes` | gauge | | 1 | `--memory-budget` |
//! | `siem_sensor_shed_total` | counter | `what`: `flow_buffers`, `flows`, `messages` | 3 | state dropped to stay within the budget |
//! | `siem_sensor_syslog_records_total` | counter | `target`, `result`: `sent`, `overflow`, `dropped`, `refused`, `undelivered` | 5 per configured syslog target | syslog delivery per target |
//! | `siem_sensor_alertmanager_records_total` | counter | `target`, `result`: `sent`, `overflow`, `dropped`, `refused`, `undelivered`, `forgotten` | 6 per configured Alertmanager | alert transitions per Alertmanager (`forgotten`: firing episodes no longer re-sent, the set being full) |
//! | `siem_sensor_publish_records_total` | counter | `target`, `result`: `sent`, `overflow`, `dropped`, `refused` (always 0), `undelivered` | 5 with `--publish` | request events to the fleet stream (`sink::publish`) |
//! | `siem_sensor_publish_retries_total` / `_duplicates_total` / `_heartbeats_total` | counter | | 1 each | messages sent again after a lost acknowledgement; acknowledged as duplicates (stored once); heartbeats stored |
//! | `siem_sensor_fleet_messages_total` | counter | `result`: `taken`, `malformed`, `too_many_nodes` | 3 (`fleet`) | stream messages the fleet analyser took or dropped |
//! | `siem_sensor_fleet_events_total` | counter | `node`, `family`: `ip`, `cred` | 2 per node (at most 1024 nodes) | request events per node and subject family |
//! | `siem_sensor_fleet_heartbeats_total` | counter | `node` | 1 per node | heartbeats per node |
//! | `siem_sensor_fleet_late_events_total` / `_forced_events_total` | counter | | 1 each | events that arrived after the watermark passed them; released early because the merge buffer was full |
//! | `siem_sensor_fleet_buffered_events` | gauge | | 1 | events waiting for the watermark |
//! | `siem_sensor_fleet_watermark_seconds` | gauge | | 1 | the watermark, Unix time |
//! | `siem_sensor_fleet_replayed_total` | counter | | 1 | messages replayed to rebuild the detectors at start |
//! | `siem_sensor_fleet_claims_total` | counter | `result`: `claimed`, `already_raised`, `unclaimed` | 3 | alert transitions raised, found already raised (restart, another instance), raised without a claim |
//! | `siem_sensor_metrics_auth_failures_total` | counter | `reason`: `no_credentials`, `bad_credentials`, `address`, `tls` | 4 | scrapes of `/metrics` refused: no or wrong basic-auth credentials (401), an address outside `--metrics-allow` (403), a failed TLS handshake (no or untrusted client certificate, plain HTTP) |
//! | `siem_sensor_build_info` | gauge | `version` | 1 | always 1 |
//!
//! Top-N series are refreshed every second; a series not refreshed for
//! [`TOP_N_IDLE`] (its IP left the top N) is dropped, so label cardinality
//! stays bounded: the series column counts one refresh, and an IP or
//! credential that has just left its top N lingers up to 30 s beside it.
//! The window gauges are 0 from the start (before the first window
//! closes), so an `absent()` rule does not fire at startup.

mod auth;
mod endpoint;
mod fleet;
mod server;
pub mod web_config;

pub use endpoint::{Endpoint, Exporter, ExporterError, TOP_N_IDLE, install};
pub use fleet::{FleetMetrics, fleet};
use metrics::{counter, gauge};

use crate::{
    block::BlockCounters,
    capture::{live::CaptureCounters, tls::TlsCounters},
    detect::{Action, DetectCounters, Detector, Snapshot, State, UnblockReason},
    pipeline::PipelineCounters,
    sink::Delivery,
};

/// Publishes the live tap's counters.
pub fn capture(c: &CaptureCounters) {
    let (kernel, reader) = (&c.kernel, &c.reader);
    for (result, n) in [
        ("seen", kernel.seen),
        ("submitted", kernel.submitted),
        ("ring_full", kernel.ring_full),
        ("copy_error", kernel.copy_error),
        ("trimmed", kernel.trimmed),
    ] {
        counter!("siem_sensor_kernel_segments_total", "result" => result).absolute(n);
    }
    counter!("siem_sensor_body_trims_total", "result" => "written").absolute(c.trims.written);
    counter!("siem_sensor_body_trims_total", "result" => "failed").absolute(c.trims.failed);
    counter!("siem_sensor_records_total", "result" => "received").absolute(reader.received);
    counter!("siem_sensor_records_total", "result" => "malformed").absolute(reader.malformed);
    counter!("siem_sensor_records_reordered_total").absolute(reader.reordered);
    counter!("siem_sensor_ip_fragments_total").absolute(kernel.fragments);
    counter!("siem_sensor_reassembled_segments_total").absolute(reader.reassembled);
    counter!("siem_sensor_fragments_dropped_total").absolute(reader.fragments_dropped);
    for (reason, n) in [
        ("bad_ip_length", reader.bad_ip_length),
        ("bad_ip_checksum", reader.bad_ip_checksum),
        ("bad_tcp_checksum", reader.bad_tcp_checksum),
    ] {
        counter!("siem_sensor_segments_dropped_total", "reason" => reason).absolute(n);
    }
    counter!("siem_sensor_tcp_checksum_unknown_total").absolute(reader.tcp_checksum_unknown);
    counter!("siem_sensor_packets_dropped_total", "reason" => "blocked_source")
        .absolute(kernel.blocked);
}

/// Publishes the block policy's counters (`--block` on or dry-run); every
/// series from the start.
pub fn blocks(c: &BlockCounters) {
    gauge!("siem_sensor_blocks_active").set(c.active as f64);
    for action in Action::ALL {
        let n = c.decisions.get(&action).copied().unwrap_or(0);
        counter!("siem_sensor_block_decisions_total", "action" => action.as_str()).absolute(n);
    }
    for detector in Detector::ALL {
        let n = c.blocks.get(&detector).copied().unwrap_or(0);
        counter!("siem_sensor_blocks_total", "detector" => detector.as_str()).absolute(n);
        let ended = c.unblocks.get(&detector);
        for reason in [
            UnblockReason::Expired,
            UnblockReason::Removed,
            UnblockReason::Stopped,
        ] {
            let n = ended.and_then(|m| m.get(&reason)).copied().unwrap_or(0);
            counter!("siem_sensor_unblocks_total", "detector" => detector.as_str(),
                     "reason" => reason.as_str())
            .absolute(n);
        }
    }
}

/// Publishes the TLS tap's counters.
pub fn tls(c: &TlsCounters) {
    let (k, r) = (&c.kernel, &c.reader.chunks);
    for (result, n) in [
        ("seen", k.calls),
        ("submitted", k.submitted),
        ("ring_full", k.ring_full),
        ("copy_error", k.copy_error),
    ] {
        counter!("siem_sensor_tls_calls_total", "result" => result).absolute(n);
    }
    for (result, n) in [
        ("delivered", r.delivered),
        ("unbound", r.unbound),
        ("other_port", r.other_port),
    ] {
        counter!("siem_sensor_tls_chunks_total", "result" => result).absolute(n);
    }
    counter!("siem_sensor_tls_events_total", "result" => "submitted").absolute(k.events);
    counter!("siem_sensor_tls_events_total", "result" => "ring_full").absolute(k.events_lost);
    counter!("siem_sensor_tls_bytes_beyond_capture_total").absolute(r.beyond_capture_bytes);
    gauge!("siem_sensor_tls_gateway_processes").set(c.processes as f64);
    counter!("siem_sensor_tls_socket_tracepoint_attaches_total")
        .absolute(c.socket_tracepoint_attaches);
}

/// Publishes the pipeline's counters and the detectors' gauges (the window
/// gauges as 0 until the first window closes).
pub fn pipeline(c: &PipelineCounters, snapshot: Option<&Snapshot>) {
    let f = &c.flows;
    counter!("siem_sensor_segments_total").absolute(f.segments);
    gauge!("siem_sensor_flows_active").set(f.active as f64);
    for (how, n) in [
        ("closed", f.closed),
        ("expired", f.expired),
        ("evicted", f.evicted),
    ] {
        counter!("siem_sensor_flows_ended_total", "how" => how).absolute(n);
    }
    counter!("siem_sensor_gaps_total").absolute(f.gaps);
    counter!("siem_sensor_gap_bytes_total").absolute(f.gap_bytes);
    counter!("siem_sensor_body_trims_total", "result" => "advised").absolute(f.trims);
    counter!("siem_sensor_body_trims_total", "result" => "over_rate").absolute(f.trims_over_rate);
    counter!("siem_sensor_trimmed_bytes_total").absolute(f.trimmed_bytes);
    counter!("siem_sensor_retransmitted_bytes_total").absolute(f.retransmitted_bytes);
    counter!("siem_sensor_overlap_different_data_total").absolute(f.overlap_different_data);
    let e = &c.http.errors;
    for (kind, n) in [
        ("bad_request_head", e.bad_request_head),
        ("bad_response_head", e.bad_response_head),
        ("head_too_large", e.head_too_large),
        ("head_truncated", e.head_truncated),
        ("bad_chunk", e.bad_chunk),
        ("bad_content_length", e.bad_content_length),
    ] {
        counter!("siem_sensor_http_errors_total", "kind" => kind).absolute(n);
    }
    let h2 = &c.http.h2;
    for (what, n) in [
        ("connections", h2.connections),
        ("streams", h2.streams),
        ("hpack_lost", h2.hpack_lost),
        ("framing_lost", h2.framing_lost),
        ("capped_blocks", h2.capped_blocks),
        ("evicted_streams", h2.evicted_streams),
        ("responses_without_request", h2.responses_without_request),
    ] {
        counter!("siem_sensor_http2_total", "what" => what).absolute(n);
    }
    detection(&c.detect);
    deliveries(&c.sinks);
    gauge!("siem_sensor_state_bytes", "part" => "flows").set(c.memory.flows as f64);
    gauge!("siem_sensor_state_bytes", "part" => "detectors").set(c.memory.detectors as f64);
    gauge!("siem_sensor_state_bytes", "part" => "join").set(c.memory.join as f64);
    gauge!("siem_sensor_state_budget_bytes").set(c.memory.budget as f64);
    counter!("siem_sensor_shed_total", "what" => "flow_buffers").absolute(f.shed_flows);
    counter!("siem_sensor_shed_total", "what" => "flows").absolute(f.budget_evictions);
    counter!("siem_sensor_shed_total", "what" => "messages").absolute(c.http.shed_messages);
    gauges(snapshot);
}

/// Publishes the detectors' counters (a sensor's or a fleet analyser's).
fn detection(c: &DetectCounters) {
    for (detector, n) in &c.alerts {
        counter!("siem_sensor_alerts_total", "detector" => detector.as_str()).absolute(*n);
    }
    counter!("siem_sensor_alerts_suppressed_total").absolute(c.suppressed);
    for state in [State::Firing, State::Updated, State::Resolved] {
        let n = c.transitions.get(&state).copied().unwrap_or(0);
        counter!("siem_sensor_alert_transitions_total", "state" => state.as_str()).absolute(n);
    }
    counter!("siem_sensor_transactions_unconfirmed_total").absolute(c.unconfirmed);
    counter!("siem_sensor_detector_evictions_total").absolute(c.evictions);
}

/// Publishes the sinks' delivery counts.
fn deliveries(sinks: &[Delivery]) {
    for d in sinks {
        let name = format!("siem_sensor_{}_records_total", d.sink);
        for (result, n) in [
            ("sent", d.sent),
            ("overflow", d.overflow),
            ("dropped", d.dropped),
            ("refused", d.refused),
            ("undelivered", d.undelivered),
        ] {
            counter!(name.clone(), "target" => d.target.clone(), "result" => result).absolute(n);
        }
        if let Some(n) = d.forgotten {
            counter!(name.clone(), "target" => d.target.clone(), "result" => "forgotten")
                .absolute(n);
        }
    }
}

/// Publishes the detectors' gauges (the window gauges as 0 until the
/// first window closes).
fn gauges(snapshot: Option<&Snapshot>) {
    let Some(snap) = snapshot else { return };
    for a in &snap.active {
        gauge!("siem_sensor_alerts_active", "detector" => a.detector.as_str(),
               "severity" => a.severity.as_str())
        .set(a.open as f64);
    }
    gauge!("aps_siem_counter").set(snap.tracked_credentials as f64);
    for cred in &snap.credentials {
        let (principal, source) = cred
            .principal
            .as_ref()
            .map_or((String::new(), ""), |p| (p.name.clone(), p.source.as_str()));
        gauge!("aps_siem_credential_ips", "credential" => cred.credential.to_string(),
               "principal" => principal, "principal_source" => source)
        .set(cred.ips as f64);
    }
    let Some(w) = &snap.window else {
        // No window has closed yet: zeros, so the series exist from the start.
        for name in ["aps_siem_requests", "aps_siem_ip", "aps_siem_ip_buffer"] {
            gauge!(name).set(0.0);
        }
        gauge!("aps_siem_ip_topn", "client_ip" => "other").set(0.0);
        return;
    };
    gauge!("aps_siem_requests").set(w.requests as f64);
    gauge!("aps_siem_ip").set(w.distinct_ips as f64);
    gauge!("aps_siem_ip_buffer").set(w.buffered_ips as f64);
    gauge!("aps_siem_ip_topn", "client_ip" => "other").set(w.other_requests as f64);
    for (ip, n) in &w.top_ips {
        gauge!("aps_siem_ip_topn", "client_ip" => ip.to_string()).set(*n as f64);
    }
    for (ip, n) in &w.top_error_ips {
        gauge!("aps_siem_error_ip_topn", "client_ip" => ip.to_string()).set(*n as f64);
    }
}
