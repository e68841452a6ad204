//! `siem-sensor fleet`: the detectors over the events every sensor
//! publishes (`--publish`), merged across nodes in event time (see
//! `sensor::fleet`). Several instances split the partitions
//! (`--partitions`); a restarted one resumes from its durable consumers
//! and rebuilds its detectors from the stream.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use async_nats::{ServerAddr, jetstream};
use clap::Args;
use sensor::{
    detect::DetectConfig,
    exporter::{self, FleetMetrics},
    fleet::{
        analysis::{Analysis, MergeConfig},
        claim::Claims,
        connect::{Connection, parse_server, stream},
        consume::{self, Delivered, Taken},
        subject::Assignment,
    },
    sink::{AlertLog, JsonLines, Records, Sink, Sinks},
};
use tokio::{sync::mpsc, time::interval};
use tracing::{info, warn};

use super::{daemon::shutdown_signal, detect, metrics::MetricsArgs, pipeline::file_mode, syslog};

#[derive(Args)]
pub struct FleetArgs {
    /// Config file (TOML): `[fleet]`, `[detectors]`, `[syslog]`, `[metrics]`,
    /// `[outputs]` alerts and file_mode; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// NATS server: `nats://HOST:PORT` or `tls://HOST:PORT`; repeat for
    /// the servers of one cluster.
    #[arg(long = "nats", value_name = "URL", required = true, value_parser = parse_server)]
    servers: Vec<ServerAddr>,
    /// PEM file of the CAs that sign the servers' certificates (default:
    /// the system's trust store).
    #[arg(long, value_name = "FILE")]
    nats_ca: Option<PathBuf>,
    /// NATS credentials file (user JWT and NKey seed).
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// The partitions this instance analyses (of both families): `all`, or
    /// numbers and ranges from 0 to 15, e.g. `0-7`; every partition must
    /// have exactly one instance.
    #[arg(long, default_value = "all")]
    partitions: Assignment,
    /// The fleet's name: its durable consumers are GROUP-ip-N and
    /// GROUP-cred-N, its raised alerts kept in the bucket siem-alerts-GROUP.
    #[arg(long, default_value = "fleet", value_parser = group_name)]
    group: String,
    /// How late after a node's clock its events may arrive and still be
    /// analysed in order (later ones are counted as late).
    #[arg(long, default_value = "3s")]
    lateness: humantime::Duration,
    /// A node whose clock is this far behind the newest no longer holds
    /// the others back (stopped or cut off).
    #[arg(long, default_value = "30s")]
    node_timeout: humantime::Duration,
    /// Retention of the stream, when this instance creates it.
    #[arg(long, default_value = "2h")]
    retention: humantime::Duration,
    /// Most events waiting for the watermark; past it the oldest goes on early.
    #[arg(long, default_value_t = 1_000_000)]
    max_buffered: usize,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// Write every alert as a JSON line to PATH (`-`: stdout).
    #[arg(long, value_name = "PATH")]
    alerts: Option<PathBuf>,
    /// Mode (octal) of the output files it creates.
    #[arg(long, value_name = "OCTAL", default_value = "0640", value_parser = file_mode)]
    file_mode: u32,
    #[command(flatten)]
    detect: detect::DetectArgs,
    #[command(flatten)]
    syslog: syslog::SyslogArgs,
}

/// A group name: 1 to 32 letters, digits, `_` or `-` (it names consumers
/// and a bucket).
fn group_name(s: &str) -> Result<String, String> {
    let ok = (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| s.to_owned())
        .ok_or_else(|| format!("`{s}`: 1 to 32 letters, digits, `_` or `-`"))
}

/// How far back a rebuild replays: the longest window any detector keeps
/// (the error baseline, the spread window, the sequence windows), the
/// resolve time and the lateness.
fn horizon(d: &DetectConfig, lateness: Duration) -> Duration {
    let baseline = d.window_ns.saturating_mul(d.errors.baseline_windows as u64);
    let sequence = d.sequence.success_window_ns + d.sequence.failure_window_ns;
    let longest = baseline.max(d.spread.window_ns).max(sequence);
    Duration::from_nanos(longest.saturating_add(d.resolve_after_ns)) + lateness
}

impl FleetArgs {
    /// The alert sinks: JSON lines, the log, syslog.
    fn sinks(&self) -> Result<Vec<Box<dyn Sink>>> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(path) = &self.alerts {
            let lines = JsonLines::create(Records::Alerts, "alerts", path, self.file_mode)
                .with_context(|| format!("cannot create {}", path.display()))?;
            sinks.push(Box::new(lines));
        }
        sinks.push(Box::new(AlertLog::Tracing));
        if let Some(syslog) = self.syslog.sink()? {
            sinks.push(Box::new(syslog));
        }
        Ok(sinks)
    }
}

/// Analyses until SIGINT or SIGTERM, then prints a `fleet_summary` line.
///
/// # Errors
/// Setup failures (metrics endpoint, outputs, a bad decoy); the consumers
/// ending.
pub async fn fleet(args: FleetArgs) -> Result<()> {
    let detect = args
        .detect
        .config()
        .context("the fleet analyser runs the detectors: drop --no-detectors")?;
    let lateness = Duration::from(args.lateness);
    let rebuild = horizon(&detect, lateness);
    let merge = MergeConfig {
        lateness_ns: u64::try_from(lateness.as_nanos()).unwrap_or(u64::MAX),
        node_timeout_ns: u64::try_from(Duration::from(args.node_timeout).as_nanos())
            .unwrap_or(u64::MAX),
        max_buffered: args.max_buffered,
    };
    let mut analysis = Analysis::new(detect, merge)?;
    let exporter = match args.metrics.endpoint(9252) {
        None => None,
        Some(endpoint) => Some(
            exporter::install(endpoint)
                .await
                .context("cannot serve metrics")?,
        ),
    };
    let metrics = exporter.is_some();
    if let Some(exporter) = exporter {
        exporter.serve();
    }
    let mut sinks = Sinks::new(args.sinks()?);
    let connection = Connection {
        servers: args.servers.clone(),
        ca: args.nats_ca.clone(),
        creds: args.nats_creds.clone(),
        name: format!("siem-sensor fleet {} {}", args.group, args.partitions),
    };
    let client = connection
        .connect(8192)
        .await
        .context("connecting to NATS")?;
    let js = jetstream::new(client);
    let retention = Duration::from(args.retention);
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    let (stream, mut claims) = loop {
        let ready = async {
            let s = stream(&js, retention).await?;
            let c = Claims::open(&js, &args.group, retention * 2).await?;
            Ok::<_, async_nats::Error>((s, c))
        };
        tokio::select! {
            r = ready => match r {
                Ok(ready) => break ready,
                Err(e) => warn!(error = %e, "fleet: stream or bucket not ready; retrying"),
            },
            () = &mut shutdown => bail!("stopped before the stream was ready"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let kept = stream.cached_info().config.max_age;
    if !kept.is_zero() && kept < rebuild {
        warn!(retention = ?kept, rebuild = ?rebuild, "fleet: the stream keeps less than a rebuild needs");
    }
    let (tx, mut rx) = mpsc::channel::<Delivered>(8192);
    analysis.rebuilding(args.partitions.partitions());
    for p in args.partitions.partitions() {
        let (stream, group, tx) = (stream.clone(), args.group.clone(), tx.clone());
        tokio::spawn(consume::partition(stream, group, p, rebuild, tx));
    }
    drop(tx);
    info!(group = %args.group, partitions = %args.partitions, rebuild = ?rebuild, "fleet started");
    let mut alerts = Vec::new();
    let mut replayed = 0u64;
    let mut publish = interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some(first) = next else { bail!("the consumers ended") };
                let mut batch = Some(first);
                let mut n = 0;
                while let Some(d) = batch.take() {
                    match d.taken {
                        Taken::Replayed(payload) => {
                            replayed += 1;
                            analysis.replayed(d.partition, &payload);
                        }
                        Taken::CaughtUp => analysis.caught_up(d.partition),
                        Taken::Live(payload) => analysis.message(d.partition, &payload),
                    }
                    n += 1;
                    if n < 4096 {
                        batch = rx.try_recv().ok();
                    }
                }
                analysis.release(&mut alerts);
                for alert in alerts.drain(..) {
                    if claims.claim(&alert).await {
                        sinks.alert(&alert);
                    }
                }
                sinks.flush();
            }
            _ = publish.tick() => {
                if metrics {
                    exporter::fleet(&FleetMetrics {
                        analysis: &analysis.counters(),
                        claims: claims.counters(),
                        replayed,
                        sinks: &sinks.delivery(),
                        snapshot: &analysis.snapshot(),
                        memory: analysis.memory(),
                    });
                }
            }
            () = &mut shutdown => break,
        }
    }
    analysis.finish();
    sinks.flush();
    sinks.stop();
    let line = serde_json::json!({
        "event": "fleet_summary",
        "group": args.group,
        "partitions": args.partitions.to_string(),
        "analysis": analysis.counters(),
        "claims": claims.counters(),
        "replayed": replayed,
        "sinks": sinks.delivery(),
        "gauges": analysis.snapshot(),
    });
    println!("{line}");
    info!(summary = %line, "fleet stopped");
    Ok(())
}
