//! `siem-sensor run`: live capture with eBPF.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use sensor::{
    block::{self, Blocker, Enforcer, NoEnforcer, SharedBlocker, SystemClock},
    capture::{
        live::{AttachPlan, Hook, LiveCapture, LiveOptions, Ports, TcAttach, XdpMode, privileges},
        tls::{TlsCapture, TlsMode, TlsOptions},
    },
    exporter,
    pipeline::Pipeline,
};
use sensor_ebpf::{DEFAULT_CAPTURE_LEN, MAX_CAPTURE_LEN};
use tracing::{info, warn};

use super::{
    block::BlockArgs,
    choice::ChoiceParser,
    daemon::{Daemon, Sources, shutdown_signal},
    metrics::MetricsArgs,
    pipeline::{Mode, PipelineArgs},
};

/// Reads the command line and config file again, as they are now (SIGHUP):
/// the `run` flags, or why they cannot be had.
pub type Reparse = fn() -> Result<RunArgs>;

#[derive(Args)]
pub struct RunArgs {
    /// Interface to capture on; repeat for several.
    #[arg(long = "iface", required = true, value_name = "IF")]
    interfaces: Vec<String>,
    /// Kernel hook: tc sees both directions, xdp only ingress.
    #[arg(long, default_value = "tc", value_parser = ChoiceParser::<Hook>::new())]
    hook: Hook,
    /// How to attach tc programs: TCX, falling back to a netlink clsact
    /// filter (auto), or only one of them.
    #[arg(long, default_value = "auto", value_parser = ChoiceParser::<TcAttach>::new())]
    tc_attach: TcAttach,
    /// How to attach the XDP program: native, falling back to generic
    /// (auto), or only one of them.
    #[arg(long, default_value = "auto", value_parser = ChoiceParser::<XdpMode>::new())]
    xdp_mode: XdpMode,
    /// TCP ports to capture, comma-separated (Kong proxy 8000; upstreams 80, 8080).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "8000,80,8080",
        conflicts_with = "all_ports"
    )]
    ports: Vec<u16>,
    /// Capture every TCP port.
    #[arg(long)]
    all_ports: bool,
    /// Payload bytes captured per segment.
    #[arg(long, default_value_t = DEFAULT_CAPTURE_LEN,
          value_parser = clap::value_parser!(u32).range(1..=MAX_CAPTURE_LEN as i64))]
    capture_len: u32,
    /// The packet tap's rings in MiB (a power of two), split over the
    /// possible CPUs: each gets a power of two of 64 KiB chunks, at least
    /// two.
    #[arg(long, default_value_t = 32, value_parser = ring_size_mib)]
    ring_size_mib: u32,
    /// Leave out of the capture the HTTP/1.1 response bodies (of known
    /// length) with at least this many bytes still to come once they
    /// flow: the kernel records only the last segment's length (0: record
    /// every segment).
    #[arg(long, default_value_t = 16384, value_name = "BYTES")]
    trim_bodies: u64,
    /// Tap the gateway's TLS: uprobes on the OpenSSL its processes (nginx,
    /// OpenResty: Kong) map read each call's plaintext. auto: when a
    /// gateway is found, else say why and go on without; on: or fail.
    #[arg(long, default_value = "auto", value_parser = ChoiceParser::<TlsMode>::new())]
    tls: TlsMode,
    /// A libssl to probe besides those the gateway maps; repeat for several.
    #[arg(long = "tls-lib", value_name = "PATH")]
    tls_libraries: Vec<PathBuf>,
    /// The TLS tap's ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 8, value_parser = ring_size_mib)]
    tls_ring_size_mib: u32,
    /// Print every captured segment to stdout as a JSON line, credential
    /// headers and target secrets redacted.
    #[arg(long)]
    debug_segments: bool,
    /// Like --debug-segments, but payloads verbatim: credentials included
    /// (a lab's debugging aid; never on a production node).
    #[arg(long, conflicts_with = "debug_segments")]
    debug_segments_raw: bool,
    /// Seconds between capture counter log lines (0: never).
    #[arg(long, default_value_t = 60)]
    stats_interval: u64,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    block: BlockArgs,
}

fn ring_size_mib(s: &str) -> Result<u32, String> {
    let mib: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !mib.is_power_of_two() || mib > 1024 {
        return Err("must be a power of two between 1 and 1024".into());
    }
    Ok(mib)
}

impl RunArgs {
    /// Validates the settings without attaching anything (`check-config`).
    ///
    /// # Errors
    /// A setting flag parsing cannot judge is bad; the error names its flag.
    pub fn check(&self) -> Result<(), (&'static str, anyhow::Error)> {
        self.metrics.check().map_err(|e| ("web.config.file", e))?;
        self.pipeline.check()
    }

    /// Where and how metrics are served (:9251); `None` for `--no-metrics`.
    fn endpoint(&self) -> Option<exporter::Endpoint> {
        self.metrics.endpoint(9251)
    }
}

/// Captures until SIGINT or SIGTERM, then prints the capture summary.
///
/// # Errors
/// Setup, attach or ring-buffer failures; counters that do not balance.
pub async fn run(args: RunArgs, reparse: Reparse) -> Result<()> {
    let endpoint = args.endpoint();
    let mode = Mode::Live {
        debug_segments: (args.debug_segments || args.debug_segments_raw)
            .then_some(!args.debug_segments_raw),
        metrics: endpoint.is_some(),
    };
    let policy = args.block.policy(args.pipeline.never_block(mode)?)?;
    let enforce = policy.as_ref().is_some_and(|p| p.mode == block::Mode::On);
    let options = LiveOptions {
        plan: AttachPlan {
            interfaces: args.interfaces,
            hook: args.hook,
            tc: args.tc_attach,
            xdp: args.xdp_mode,
        },
        ports: if args.all_ports {
            Ports::All
        } else {
            Ports::List(args.ports)
        },
        capture_len: args.capture_len,
        ring_bytes: args.ring_size_mib * 1024 * 1024,
        block_ports: if enforce {
            args.pipeline.proxy_ports().to_vec()
        } else {
            Vec::new()
        },
        trim_bodies: args.trim_bodies > 0,
    };
    let tls_options = TlsOptions {
        mode: args.tls,
        libraries: args.tls_libraries,
        capture_len: args.capture_len,
        ring_bytes: args.tls_ring_size_mib * 1024 * 1024,
        proxy_ports: args.pipeline.proxy_ports().to_vec(),
    };
    let exporter = match endpoint {
        Some(endpoint) => Some(
            exporter::install(endpoint)
                .await
                .context("cannot serve metrics")?,
        ),
        None => None,
    };
    let metrics = exporter.is_some();
    let mut pipeline = args.pipeline.pipeline(mode)?;
    pipeline.trim_bodies(args.trim_bodies);
    if let Some(exporter) = exporter {
        // The first scrape sees every series of the pipeline.
        exporter::pipeline(&pipeline.counters(), pipeline.snapshot().as_ref());
        exporter.serve();
    }
    let mut capture = LiveCapture::start(&options)?;
    let blocker = match policy {
        Some(policy) => Some(start_blocker(
            policy,
            &mut capture,
            args.block.control_socket(),
        )),
        None => None,
    };
    if let Some(b) = &blocker {
        pipeline.set_responder(Box::new(b.clone()));
    }
    // Before the capabilities go: finding the gateway reads other users'
    // /proc/PID/maps (CAP_SYS_PTRACE); later forks are followed in the kernel.
    let tls = TlsCapture::start(&tls_options)?;
    if tls.is_some() {
        pipeline.legs_from_two_sources();
    }
    let kept = privileges::drop_after_attach(capture.detach_needs_net_admin())
        .context("dropping capabilities after attach")?;
    info!(capabilities = ?kept, "capabilities dropped after attach; these remain");
    info!(
        version = env!("CARGO_PKG_VERSION"),
        interfaces = ?options.plan.interfaces,
        hook = ?options.plan.hook,
        ports = ?options.ports,
        capture_len = options.capture_len,
        tls = tls.is_some(),
        "capture started"
    );
    // systemd (Type=notify): ready once attached; a no-op outside systemd.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        warn!(error = %e, "cannot notify systemd");
    }
    let daemon = Daemon {
        stats_interval: (args.stats_interval > 0).then(|| Duration::from_secs(args.stats_interval)),
        metrics,
        blocker: blocker.clone(),
    };
    let sources = Sources { live: capture, tls };
    let stopped = daemon
        .run(sources, &mut pipeline, shutdown_signal()?, |p| {
            reload(p, mode, reparse)
        })
        .await?;
    let (capture, tls) = (stopped.live, stopped.tls);
    let balanced = capture.balanced() && tls.as_ref().is_none_or(|t| t.balanced());
    pipeline.finish(false);
    let counters = pipeline.counters();
    let line = serde_json::json!({
        "event": "capture_summary",
        "kernel": capture.kernel,
        "reader": capture.reader,
        "trims": capture.trims,
        "tls": tls,
        "segments": counters.flows.segments,
        "flows": counters.flows,
        "http": counters.http,
        "join": counters.join,
        "detect": counters.detect,
        "sinks": counters.sinks,
        "block": blocker.map(|b| b.with(|b| b.counters())),
        "gauges": pipeline.snapshot(),
        "balanced": balanced,
    });
    println!("{line}");
    info!(summary = %line, "capture stopped, programs detached");
    if !balanced {
        bail!("capture counters do not balance: {line}");
    }
    Ok(())
}

/// The blocker for `policy`: the kernel maps of `capture` when it is `on`,
/// and its control socket at `socket` (a socket that cannot be made is
/// logged: blocks still work, `siem-sensor blocks` cannot reach them).
fn start_blocker(
    policy: block::Policy,
    capture: &mut LiveCapture,
    socket: &std::path::Path,
) -> SharedBlocker {
    let enforcer: Box<dyn Enforcer> = match capture.take_blocks() {
        Some(maps) if policy.mode == block::Mode::On => Box::new(maps),
        _ => Box::new(NoEnforcer),
    };
    info!(
        mode = ?policy.mode,
        detectors = ?policy.detectors,
        ttl = ?policy.ttl,
        allow = ?policy.allow,
        "blocking offenders"
    );
    let shared = SharedBlocker(Arc::new(Mutex::new(Blocker::new(
        policy,
        enforcer,
        Box::new(SystemClock),
    ))));
    if let Some(dir) = socket.parent()
        && !dir.exists()
    {
        use std::os::unix::fs::DirBuilderExt as _;
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir);
    }
    match block::listen(socket) {
        Ok(listener) => {
            tokio::spawn(block::serve(listener, shared.clone()));
            info!(socket = %socket.display(), "control socket ready");
        }
        Err(e) => warn!(
            socket = %socket.display(),
            error = %e,
            "no control socket: `siem-sensor blocks` cannot reach this sensor"
        ),
    }
    shared
}

/// SIGHUP: applies the detector settings and outputs of the config file and
/// command line as they are now, keeping the detectors' state (output files
/// are opened anew, so log rotation works too); a bad file keeps the old
/// settings, reopens the old files and says why.
fn reload(pipeline: &mut Pipeline, mode: Mode, reparse: Reparse) {
    let applied = reparse().and_then(|args| {
        let sinks = args.pipeline.sinks(mode)?;
        pipeline.reconfigure(args.pipeline.detect_config())?;
        pipeline.set_sinks(sinks);
        Ok(())
    });
    match applied {
        Ok(()) => info!("SIGHUP: settings and outputs reloaded"),
        Err(e) => {
            pipeline.reopen();
            warn!(error = %format!("{e:#}"), "SIGHUP: settings not reloaded, the old ones stay");
        }
    }
}
