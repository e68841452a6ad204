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
/// The counts are added to the registry once a batch ([`Sink::flush`]):
/// each increment there is an atomic add shared with the exporter's
/// thread.
pub struct TransactionMetrics {
    /// By class: 1xx, 2xx, 3xx, 4xx, 5xx, none.
    classes: [Counter; 6],
    /// Transactions of each class since the last flush.
    pending: [u64; 6],
    latency: Histogram,
}

impl Default for TransactionMetrics {
    /// Handles on the installed recorder: create after
    /// `exporter::install`.
    fn default() -> Self {
        let class = |c: &'static str| counter!("siem_sensor_transactions_total", "class" => c);
        Self {
            classes: ["1xx", "2xx", "3xx", "4xx", "5xx", "none"].map(class),
            pending: [0; 6],
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
        self.pending[class] += 1;
        if let Some(ms) = tx.latency_ms {
            self.latency.record(ms / 1000.0);
        }
    }

    fn flush(&mut self) {
        for (counter, n) in self.classes.iter().zip(&mut self.pending) {
            if *n > 0 {
                counter.increment(std::mem::take(n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    /// The counts reach the exporter's registry at a flush, every class
    /// once, and a flush with nothing new adds nothing.
    #[test]
    fn class_counts_reach_the_exporter_at_each_flush() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut sink = metrics::with_local_recorder(&recorder, TransactionMetrics::default);
        let count = |class: &str| {
            let line = format!("siem_sensor_transactions_total{{class=\"{class}\"}} ");
            let text = handle.render();
            text.lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .map(|n| n.parse::<u64>().unwrap())
        };
        let mut none = Transaction::sample("192.0.2.1", 0, 200);
        none.status = None;
        for tx in [200, 204, 404, 503, 200].map(|s| Transaction::sample("192.0.2.1", 0, s)) {
            sink.transaction(&tx);
        }
        sink.transaction(&none);
        assert_eq!(count("2xx"), Some(0), "counted before the flush");
        sink.flush();
        let after = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"].map(count);
        assert_eq!(after, [0, 3, 0, 1, 1, 1].map(Some));
        sink.transaction(&Transaction::sample("192.0.2.1", 0, 302));
        sink.flush();
        sink.flush();
        assert_eq!((count("2xx"), count("3xx")), (Some(3), Some(1)));
    }
}
