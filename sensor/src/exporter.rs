//! The Prometheus exporter (`metrics` + `metrics-exporter-prometheus`):
//! serves `/metrics` and publishes the counters of the sources, the
//! pipeline and the sinks, and the detectors' gauges under the reference
//! SIEM's names, so loss is never silent. Per-transaction metrics are a
//! sink (`sink::metrics`).
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `aps_siem_ip_topn` | gauge | `client_ip` (or `other`) | requests of the 10 busiest client IPs in the last closed 15 s window; `other`: all the rest |
//! | `aps_siem_ip` | gauge | | distinct client IPs in that window |
//! | `aps_siem_requests` | gauge | | requests in that window |
//! | `aps_siem_ip_buffer` | gauge | | client IPs held in the window table at its close |
//! | `aps_siem_counter` | gauge | | credentials tracked (the reference's credential-to-IP mappings) |
//! | `aps_siem_error_ip_topn` | gauge | `client_ip` | errors of the 15 IPs with most errors in that window |
//! | `aps_siem_credential_ips` | gauge | `credential`, `principal` | distinct IPs of the 50 most spread credentials (fingerprint, never the secret) |
//! | `siem_sensor_kernel_segments_total` | counter | `result`: `seen`, `submitted`, `ring_full`, `copy_error` | the kernel tap's per-CPU counters, summed |
//! | `siem_sensor_records_total` | counter | `result`: `received`, `malformed` | ring-buffer records read |
//! | `siem_sensor_ip_fragments_total` | counter | | IP fragments of TCP on captured interfaces (IPv4 ones reassembled, IPv6 ones only counted) |
//! | `siem_sensor_reassembled_segments_total` | counter | | TCP segments rebuilt from IPv4 fragments |
//! | `siem_sensor_fragments_dropped_total` | counter | | IPv4 datagrams given up: overlapping fragments (as Linux), cut by the capture length, or incomplete after 30 s |
//! | `siem_sensor_segments_dropped_total` | counter | `reason`: `bad_ip_length`, `bad_ip_checksum`, `bad_tcp_checksum` | segments the gateway's stack drops, dropped before reassembly (insertion attempts) |
//! | `siem_sensor_tcp_checksum_unknown_total` | counter | | segments whose TCP checksum could not be judged (XDP, too long to sum in the kernel, no BTF) |
//! | `siem_sensor_segments_total` | counter | | segments into the pipeline |
//! | `siem_sensor_flows_active` | gauge | | TCP connections tracked |
//! | `siem_sensor_flows_ended_total` | counter | `how`: `closed`, `expired`, `evicted` | connections ended |
//! | `siem_sensor_gaps_total` / `siem_sensor_gap_bytes_total` | counter | | reassembly holes skipped, and their bytes |
//! | `siem_sensor_retransmitted_bytes_total` | counter | | bytes seen twice and dropped |
//! | `siem_sensor_overlap_different_data_total` | counter | | copies of seen bytes with other content (the first copy kept): evasion attempts |
//! | `siem_sensor_http_errors_total` | counter | `kind` | HTTP framing losses by kind |
//! | `siem_sensor_transactions_total` | counter | `class`: `1xx`..`5xx`, `none` | transactions by status class |
//! | `siem_sensor_transaction_latency_seconds` | histogram | | request start to response start |
//! | `siem_sensor_alerts_total` | counter | `detector` | alerts sent |
//! | `siem_sensor_alerts_suppressed_total` | counter | | alerts held back by the cooldown |
//! | `siem_sensor_transactions_unconfirmed_total` | counter | | transactions neither answered nor acknowledged on a handshaken flow (possibly forged), which no detector counts |
//! | `siem_sensor_detector_evictions_total` | counter | | detector table entries evicted |
//! | `siem_sensor_state_bytes` | gauge | `part`: `flows`, `detectors`, `join` | bytes the traffic-driven state holds (estimated) |
//! | `siem_sensor_state_budget_bytes` | gauge | | the memory budget (`--memory-budget`) |
//! | `siem_sensor_shed_total` | counter | `what`: `flow_buffers`, `flows`, `messages` | state dropped to stay within the budget |
//! | `siem_sensor_syslog_records_total` | counter | `target`, `result`: `sent`, `overflow`, `dropped`, `refused`, `undelivered` | syslog delivery per target |
//! | `siem_sensor_build_info` | gauge | `version` | always 1 |
//!
//! Top-N series are refreshed every second; a series not refreshed for
//! [`TOP_N_IDLE`] (its IP left the top N) is dropped, so label cardinality
//! stays bounded.

use std::{net::SocketAddr, time::Duration};

use ipnet::IpNet;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use metrics_util::MetricKindMask;

use crate::{capture::live::CaptureCounters, detect::Snapshot, pipeline::PipelineCounters};

/// How long a gauge lives without an update: two windows.
pub const TOP_N_IDLE: Duration = Duration::from_secs(30);

/// Serves `/metrics` on `listen` to the `allow`ed addresses (all when
/// empty), on the current tokio runtime.
///
/// # Errors
/// The listener or the global recorder cannot be installed.
pub fn install(listen: SocketAddr, allow: &[IpNet]) -> Result<(), BuildError> {
    let mut builder = PrometheusBuilder::new()
        .with_http_listener(listen)
        .idle_timeout(MetricKindMask::GAUGE, Some(TOP_N_IDLE))
        .set_buckets_for_metric(
            Matcher::Full(crate::sink::metrics::LATENCY.into()),
            &[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )?;
    for net in allow {
        builder = builder.add_allowed_address(net.to_string())?;
    }
    builder.install()?;
    gauge!("siem_sensor_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(())
}

/// Publishes the live tap's counters.
pub fn capture(c: &CaptureCounters) {
    let (kernel, reader) = (&c.kernel, &c.reader);
    for (result, n) in [
        ("seen", kernel.seen),
        ("submitted", kernel.submitted),
        ("ring_full", kernel.ring_full),
        ("copy_error", kernel.copy_error),
    ] {
        counter!("siem_sensor_kernel_segments_total", "result" => result).absolute(n);
    }
    counter!("siem_sensor_records_total", "result" => "received").absolute(reader.received);
    counter!("siem_sensor_records_total", "result" => "malformed").absolute(reader.malformed);
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
}

/// Publishes the pipeline's counters and the detectors' gauges.
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
    for (detector, n) in &c.detect.alerts {
        counter!("siem_sensor_alerts_total", "detector" => detector.as_str()).absolute(*n);
    }
    counter!("siem_sensor_alerts_suppressed_total").absolute(c.detect.suppressed);
    counter!("siem_sensor_transactions_unconfirmed_total").absolute(c.detect.unconfirmed);
    for d in &c.sinks {
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
    }
    counter!("siem_sensor_detector_evictions_total").absolute(c.detect.evictions);
    gauge!("siem_sensor_state_bytes", "part" => "flows").set(c.memory.flows as f64);
    gauge!("siem_sensor_state_bytes", "part" => "detectors").set(c.memory.detectors as f64);
    gauge!("siem_sensor_state_bytes", "part" => "join").set(c.memory.join as f64);
    gauge!("siem_sensor_state_budget_bytes").set(c.memory.budget as f64);
    counter!("siem_sensor_shed_total", "what" => "flow_buffers").absolute(f.shed_flows);
    counter!("siem_sensor_shed_total", "what" => "flows").absolute(f.budget_evictions);
    counter!("siem_sensor_shed_total", "what" => "messages").absolute(c.http.shed_messages);
    let Some(snap) = snapshot else { return };
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
    let Some(w) = &snap.window else { return };
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
