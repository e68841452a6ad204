//! The syslog sink: every alert as a syslog record to one or more targets.
//!
//! ```text
//! <34>1 2026-11-21T21:58:01.123456Z kong-1 siem-sensor 4242 honeypot [siem@32473 detector="honeypot" ...] detector=honeypot severity=high ...
//! ```
//!
//! See [`format`](mod@format) for the record and [`transport`] for delivery.

pub mod format;
#[cfg(test)]
mod tests;
pub mod transport;

use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::Ordering,
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::Duration,
};

use fasyslog::{Facility, format::SyslogContext};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

pub use format::{Body, DEFAULT_MAX_RECORD, Header, MIN_MAX_RECORD};
use transport::Tally;
pub use transport::Target;

use super::interface::{Delivery, Sink};
use crate::detect::{Alert, BlockEvent};

/// The sink's settings.
#[derive(Clone, Debug)]
pub struct SyslogConfig {
    /// Where records go.
    pub targets: Vec<Target>,
    /// RFC 5424 or RFC 3164.
    pub header: Header,
    /// key=value, CEF or JSON.
    pub body: Body,
    /// Facility (default `auth`: security messages).
    pub facility: Facility,
    /// Records queued per target while its receiver is down.
    pub queue: usize,
    /// How long a stopping sensor waits for a receiver that is down.
    pub drain: Duration,
    /// PEM file of the CAs that sign TLS receivers' certificates; the
    /// system's trust store when `None`.
    pub ca: Option<PathBuf>,
    /// Longest record, bytes (default [`DEFAULT_MAX_RECORD`], at least
    /// [`MIN_MAX_RECORD`]); see [`format::record`].
    pub max_record: usize,
}

/// The rustls client configuration for TLS targets.
fn tls_config(ca: Option<&Path>) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
            for cert in certs {
                roots.add(cert).map_err(io::Error::other)?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A facility by its syslog(3) name (`auth`, `local0`, ...), any case.
///
/// # Errors
/// An unknown name.
pub fn parse_facility(name: &str) -> Result<Facility, String> {
    (0..=23u8)
        .filter_map(|code| Facility::try_from(code).ok())
        .find(|f| f.label().eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            format!("`{name}` is not a syslog facility (auth, daemon, local0 ... local7, ...)")
        })
}

struct Sender {
    target: Target,
    queue: Option<SyncSender<Vec<u8>>>,
    delivery: Arc<Tally>,
    thread: Option<JoinHandle<()>>,
}

/// Sends alerts to every target.
pub struct Syslog {
    context: SyslogContext,
    form: (Header, Body),
    max_record: usize,
    senders: Vec<Sender>,
}

impl Syslog {
    /// Starts one sender thread per target. Nothing is connected yet: a
    /// receiver that is down only delays delivery.
    ///
    /// # Errors
    /// The CA file cannot be read; a thread cannot be spawned.
    pub fn start(config: &SyslogConfig) -> io::Result<Self> {
        let tls = if config.targets.iter().any(|t| matches!(t, Target::Tls(..))) {
            Some(tls_config(config.ca.as_deref())?)
        } else {
            None
        };
        let mut context = SyslogContext::new();
        context.appname("siem-sensor").facility(config.facility);
        let mut senders = Vec::new();
        for target in &config.targets {
            let (tx, rx) = sync_channel(config.queue.max(1));
            let delivery = Arc::new(Tally::default());
            let (t, d, drain, tls) = (
                target.clone(),
                Arc::clone(&delivery),
                config.drain,
                tls.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("syslog {target}"))
                .spawn(move || transport::run(t, tls, rx, d, drain))?;
            senders.push(Sender {
                target: target.clone(),
                queue: Some(tx),
                delivery,
                thread: Some(thread),
            });
        }
        Ok(Self {
            context,
            form: (config.header, config.body),
            max_record: config.max_record,
            senders,
        })
    }

    /// Queues `alert` for every target; never blocks. A record that cannot
    /// be made to fit the cap is dropped and counted on every target.
    fn send(&self, alert: &Alert) {
        let Some(record) = format::record(&self.context, self.form, alert, self.max_record) else {
            tracing::warn!(
                detector = alert.detector.as_str(),
                "alert too large for a syslog record; dropped"
            );
            for s in &self.senders {
                s.delivery.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        self.queue(&record.into_bytes());
    }

    /// Queues a block record for every target; never blocks.
    fn send_block(&self, event: &BlockEvent) {
        let record = format::block_record(&self.context, self.form, event);
        self.queue(record.as_bytes());
    }

    /// Queues `record` for every target, counting a full queue.
    fn queue(&self, record: &[u8]) {
        for s in &self.senders {
            let Some(queue) = &s.queue else { continue };
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                queue.try_send(record.to_vec())
            {
                s.delivery.overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Delivery counts so far.
    fn counters(&self) -> Vec<Delivery> {
        self.senders
            .iter()
            .map(|s| Delivery {
                sink: "syslog",
                target: s.target.to_string(),
                sent: s.delivery.sent.load(Ordering::Relaxed),
                overflow: s.delivery.overflow.load(Ordering::Relaxed),
                dropped: s.delivery.dropped.load(Ordering::Relaxed),
                refused: s.delivery.refused.load(Ordering::Relaxed),
                undelivered: s.delivery.undelivered.load(Ordering::Relaxed),
                forgotten: None,
            })
            .collect()
    }
}

impl Sink for Syslog {
    fn alert(&mut self, alert: &Alert) {
        self.send(alert);
    }

    fn block_event(&mut self, event: &BlockEvent) {
        self.send_block(event);
    }

    fn delivery(&self) -> Vec<Delivery> {
        self.counters()
    }

    /// Delivers what is queued (waiting at most `drain` for a receiver that
    /// is down), stops the threads and returns the final counts.
    fn stop(mut self: Box<Self>) -> Vec<Delivery> {
        self.shutdown();
        self.counters()
    }
}

impl Syslog {
    fn shutdown(&mut self) {
        for s in &mut self.senders {
            s.delivery.stopping.store(true, Ordering::Relaxed);
            s.queue = None;
        }
        for s in &mut self.senders {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        self.shutdown();
    }
}
