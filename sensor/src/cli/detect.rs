//! The detector flags: every threshold and window of [`DetectConfig`].

use anyhow::Result;
use clap::Args;
use humantime::Duration;
use sensor::detect::{
    DetectConfig, Detectors, ErrorConfig, FloodConfig, RUNBOOK_URL, SequenceConfig, SpreadConfig,
};

/// Detector settings; defaults from [`DetectConfig::default`] (see the
/// README's detector table for why).
#[derive(Args)]
#[command(next_help_heading = "Detectors")]
pub struct DetectArgs {
    /// Transactions only: run no detector (to measure their cost, or when
    /// only `--transactions` is wanted).
    #[arg(long)]
    no_detectors: bool,
    /// Tumbling window of request_flood and error_rate.
    #[arg(long, default_value = "15s")]
    window: Duration,
    /// request_flood: requests one client IP may send per window.
    #[arg(long, default_value_t = DetectConfig::default().flood.budget)]
    flood_budget: u64,
    /// error_rate: fewest 4xx/5xx in a window.
    #[arg(long, default_value_t = DetectConfig::default().errors.min_errors)]
    error_min: u64,
    /// error_rate: smallest share of the IP's requests that are errors.
    #[arg(long, default_value_t = DetectConfig::default().errors.min_ratio)]
    error_ratio: f64,
    /// error_rate: how many times the population baseline an IP must reach.
    #[arg(long, default_value_t = DetectConfig::default().errors.baseline_factor)]
    error_baseline_factor: f64,
    /// error_rate: history the baseline covers.
    #[arg(long, default_value = "1h")]
    error_baseline: Duration,
    /// credential_spread: distinct client IPs that make an alert.
    #[arg(long, default_value_t = DetectConfig::default().spread.min_ips)]
    spread_min_ips: usize,
    /// credential_spread: sliding window.
    #[arg(long, default_value = "5m")]
    spread_window: Duration,
    /// success_then_failure: successes needed before the failures.
    #[arg(long, default_value_t = DetectConfig::default().sequence.min_successes)]
    sequence_successes: u64,
    /// success_then_failure: how far back before the spike successes count.
    #[arg(long, default_value = "60s")]
    sequence_success_window: Duration,
    /// success_then_failure: failures needed in the spike.
    #[arg(long, default_value_t = DetectConfig::default().sequence.min_failures)]
    sequence_failures: u64,
    /// success_then_failure: share of the spike's requests that are failures.
    #[arg(long, default_value_t = DetectConfig::default().sequence.min_failure_ratio)]
    sequence_failure_ratio: f64,
    /// success_then_failure: how long a spike lasts from its first failure.
    #[arg(long, default_value = "15s")]
    sequence_failure_window: Duration,
    /// Decoy route (a path glob, optionally `HOST/PATH`); repeat for several.
    #[arg(long = "decoy", value_name = "ROUTE")]
    decoys: Vec<String>,
    /// An alert's episode resolves after its subject has been quiet this
    /// long (no raise; event time).
    #[arg(long, default_value = "5m")]
    resolve_after: Duration,
    /// Where the runbook is: every alert links URL#DETECTOR.
    #[arg(long, value_name = "URL", default_value = RUNBOOK_URL)]
    runbook_url: String,
    /// Client IPs tracked per detector table (bounds memory).
    #[arg(long, default_value_t = DetectConfig::default().max_ips)]
    max_ips: usize,
    /// Credentials tracked (bounds memory).
    #[arg(long, default_value_t = DetectConfig::default().max_credentials)]
    max_credentials: usize,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl DetectArgs {
    /// The detectors, or none with `--no-detectors`.
    ///
    /// # Errors
    /// A decoy route that is not a valid glob.
    pub fn detectors(&self) -> Result<Option<Detectors>> {
        self.config()
            .map(Detectors::new)
            .transpose()
            .map_err(Into::into)
    }

    /// The detector settings, or none with `--no-detectors`.
    pub fn config(&self) -> Option<DetectConfig> {
        if self.no_detectors {
            return None;
        }
        let window_ns = ns(self.window);
        let c = DetectConfig {
            window_ns,
            flood: FloodConfig {
                budget: self.flood_budget,
            },
            errors: ErrorConfig {
                min_errors: self.error_min,
                min_ratio: self.error_ratio,
                baseline_factor: self.error_baseline_factor,
                baseline_windows: usize::try_from(ns(self.error_baseline) / window_ns)
                    .unwrap_or(1)
                    .max(1),
            },
            spread: SpreadConfig {
                min_ips: self.spread_min_ips,
                window_ns: ns(self.spread_window),
            },
            sequence: SequenceConfig {
                min_successes: self.sequence_successes,
                success_window_ns: ns(self.sequence_success_window),
                min_failures: self.sequence_failures,
                min_failure_ratio: self.sequence_failure_ratio,
                failure_window_ns: ns(self.sequence_failure_window),
            },
            decoys: self.decoys.clone(),
            resolve_after_ns: ns(self.resolve_after),
            runbook_url: self.runbook_url.clone(),
            max_ips: self.max_ips,
            max_credentials: self.max_credentials,
        };
        Some(c)
    }
}
