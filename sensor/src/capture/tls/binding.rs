//! The socket tracepoints ([`SOCK_PROBES`]), attached only while a
//! connection whose start the tap missed (open before it attached) waits
//! for its socket. A connection that starts while the tap is attached is
//! bound at `SSL_set_fd`, which runs only in the gateway's SSL calls; the
//! tracepoints run on every socket send and receive of the host, so with
//! them detached the tap costs nothing on plaintext traffic. While they
//! are attached, the SSL probes also count the calls in progress (two
//! atomic adds per call, `CALLS_MAP`), so the tracepoints skip their
//! lookup outside a call.

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::Array,
    programs::{RawTracePoint, raw_trace_point::RawTracePointLinkId},
};
use sensor_ebpf::tls::{CALLS_COUNTING, CALLS_MAP, SOCK_PROBES};

use super::{attach::program, connections::UNBOUND_WAIT_NS};

/// How long the tracepoints stay attached after the last record that
/// came without its socket (event time, ns): as long as such a record
/// waits for it.
pub const QUIET_NS: u64 = UNBOUND_WAIT_NS;

/// The socket tracepoints' attachment.
#[derive(Default)]
pub struct SockBinding {
    /// The links while attached, with the time they were.
    attached: Option<(u64, Vec<(&'static str, RawTracePointLinkId)>)>,
    /// When they were last detached (event time, ns).
    detached_ns: u64,
    /// Times they were attached.
    attaches: u64,
}

impl SockBinding {
    /// Times the tracepoints were attached.
    pub fn attaches(&self) -> u64 {
        self.attaches
    }

    /// Attaches the tracepoints when a record came without its socket
    /// (`unbound_ns`, its time) since they were last detached; detaches
    /// them once none has for [`QUIET_NS`]. The programs were loaded by
    /// `attach`.
    ///
    /// # Errors
    /// The kernel refused an attach or a detach; the binding stays as it
    /// was (what attached stays owned by `ebpf`).
    pub fn update(&mut self, ebpf: &mut Ebpf, unbound_ns: Option<u64>, now_ns: u64) -> Result<()> {
        let since = self.attached.as_ref().map(|(since, _)| *since);
        match decide(since, self.detached_ns, unbound_ns, now_ns) {
            Some(Action::Attach) => self.attach(ebpf, now_ns),
            Some(Action::Detach) => self.detach(ebpf, now_ns),
            None => Ok(()),
        }
    }

    fn attach(&mut self, ebpf: &mut Ebpf, now_ns: u64) -> Result<()> {
        // Calls entered from now on are counted, so the tracepoints skip
        // their lookup only when none is in progress.
        counting(ebpf, true)?;
        let mut links = Vec::new();
        for (name, tracepoint) in SOCK_PROBES {
            let program: &mut RawTracePoint = program(ebpf, name)?.try_into()?;
            let link = program
                .attach(tracepoint)
                .with_context(|| format!("attaching {name} to raw tracepoint {tracepoint}"));
            match link {
                Ok(link) => links.push((name, link)),
                Err(e) => {
                    self.attached = Some((now_ns, links));
                    return Err(e);
                }
            }
        }
        self.attached = Some((now_ns, links));
        self.attaches += 1;
        Ok(())
    }

    /// Detaches every link, each even when another fails.
    fn detach(&mut self, ebpf: &mut Ebpf, now_ns: u64) -> Result<()> {
        self.detached_ns = now_ns;
        let mut result = Ok(());
        for (name, link) in self.attached.take().map(|(_, l)| l).unwrap_or_default() {
            let detached = program(ebpf, name)
                .and_then(|p| Ok(<&mut RawTracePoint>::try_from(p)?))
                .and_then(|p| Ok(p.detach(link)?))
                .with_context(|| format!("detaching {name}"));
            result = result.and(detached);
        }
        result.and(counting(ebpf, false))
    }
}

/// Turns the counting of SSL calls in progress on or off (`CALLS_MAP`):
/// on while the tracepoints, which read it, are attached.
fn counting(ebpf: &mut Ebpf, on: bool) -> Result<()> {
    let map = ebpf.map_mut(CALLS_MAP).context(CALLS_MAP)?;
    Array::<_, u64>::try_from(map)?
        .set(CALLS_COUNTING, u64::from(on), 0)
        .context("setting the TLS tap's call counting")
}

/// A change to the tracepoints' attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Attach,
    Detach,
}

/// What [`SockBinding::update`] does, given when the tracepoints were
/// attached (`None`: detached), when they were last detached, the time of
/// the last record without its socket and the time now (ns).
fn decide(
    attached: Option<u64>,
    detached_ns: u64,
    unbound_ns: Option<u64>,
    now_ns: u64,
) -> Option<Action> {
    // A record older than the last detach was already waited for.
    let waiting = unbound_ns.filter(|&t| t >= detached_ns);
    match attached {
        None => waiting.map(|_| Action::Attach),
        Some(since) => {
            let last = waiting.map_or(since, |t| t.max(since));
            (now_ns.saturating_sub(last) > QUIET_NS).then_some(Action::Detach)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Action, QUIET_NS, decide};

    const S: u64 = 1_000_000_000;

    /// Detached until a record comes without its socket; attached until
    /// none has for `QUIET_NS`; a record from before the detach does not
    /// attach them again, a later one does.
    #[test]
    fn attached_while_a_record_waits_for_its_socket() {
        assert_eq!(decide(None, 0, None, 100 * S), None);
        assert_eq!(
            decide(None, 0, Some(100 * S), 100 * S),
            Some(Action::Attach)
        );
        // Attached at 100 s; records keep coming without their socket.
        assert_eq!(decide(Some(100 * S), 0, Some(103 * S), 104 * S), None);
        assert_eq!(
            decide(Some(100 * S), 0, Some(103 * S), 103 * S + QUIET_NS),
            None
        );
        assert_eq!(
            decide(Some(100 * S), 0, Some(103 * S), 103 * S + QUIET_NS + 1),
            Some(Action::Detach)
        );
        // Attached with no record since: quiet from the attach on.
        assert_eq!(
            decide(Some(100 * S), 0, Some(90 * S), 100 * S + QUIET_NS),
            None
        );
        assert_eq!(
            decide(Some(100 * S), 0, Some(90 * S), 101 * S + QUIET_NS),
            Some(Action::Detach)
        );
        // Detached at 110 s: the record of 103 s is spent, one at 111 s is not.
        assert_eq!(decide(None, 110 * S, Some(103 * S), 112 * S), None);
        assert_eq!(
            decide(None, 110 * S, Some(111 * S), 112 * S),
            Some(Action::Attach)
        );
    }
}
