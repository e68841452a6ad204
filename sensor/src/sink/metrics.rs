//! Per-transaction metrics: `siem_sensor_transactions_total` by status
//! class and the latency histogram (the table in `exporter.rs`).

use metrics::{Counter, Histogram, counter, histogram};

use super::interface::Sink;
use crate::http::Transaction;

/// The latency histogram's name; the exporter sets its buckets.
pub const LATENCY: &str = "siem_sensor_transaction_latency_seconds";

/// The per-transaction metrics sink: `siem_sensor_transactions_total` by class and
/// the latency histogram. The handles are looked up once; a `counter!` with
/// labels builds and hashes its key and searches the registry on every
/// call, which showed in the per-record profile (`cargo xtask bench`).
pub struct TransactionMetrics {
    /// By class: 1xx, 2xx, 3xx, 4xx, 5xx, none.
    classes: [Counter; 6],
    latency: Histogram,
}

impl Default for TransactionMetrics {
    /// Handles on the installed recorder: create after
    /// `exporter::install`.
    fn default() -> Self {
        let class = |c: &'static str| counter!("siem_sensor_transactions_total", "class" => c);
        Self {
            classes: ["1xx", "2xx", "3xx", "4xx", "5xx", "none"].map(class),
            latency: histogram!(LATENCY),
        }
    }
}

impl Sink for TransactionMetrics {
    fn transaction(&mut self, tx: &Transaction) {
        let class = match tx.status {
            Some(s @ 100..=599) => usize::from(s / 100 - 1),
            _ => 5,
        };
        self.classes[class].increment(1);
        if let Some(ms) = tx.latency_ms {
            self.latency.record(ms / 1000.0);
        }
    }
}
