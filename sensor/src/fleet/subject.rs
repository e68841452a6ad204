//! Where events go on the fleet stream: the subject families, their fixed
//! partitions, partition assignments (`--partitions`) and the
//! `Nats-Msg-Id` of each message.
//!
//! | family | subjects | key | feeds |
//! |---|---|---|---|
//! | client IP | `siem.ip.0` ... `siem.ip.15` | the client IP | `request_flood`, `error_rate`, `success_then_failure`, `honeypot` |
//! | credential | `siem.cred.0` ... `siem.cred.15` | each credential fingerprint the request counts for | `credential_spread` |
//!
//! Every request goes to one IP partition and to the credential partition
//! of each credential it counts for (Kong's authenticated credential when
//! Kong named one, else every credential it carried: the rule of
//! `credential_spread`), so a fleet instance that owns a partition sees
//! every event of its keys, from every node. The partition of a key is
//! the first 8 bytes of the BLAKE3 hash of its text form (the address as
//! `10.0.0.1` / `fd00::1`, the fingerprint's 32 hex digits), read as a
//! little-endian integer, modulo [`PARTITIONS`]: the same on every node and
//! release. Changing the number of partitions means a new stream.

use std::{
    collections::BTreeSet,
    fmt,
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use arrayvec::ArrayString;

use crate::identity::Fingerprint;

/// The JetStream stream holding every family's subjects.
pub const STREAM: &str = "SIEM_EVENTS";

/// Partitions per family; fixed (see the module documentation).
pub const PARTITIONS: u16 = 16;

/// A subject family: what its events are partitioned by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// By client IP: the per-IP detectors.
    Ip,
    /// By credential fingerprint: `credential_spread`.
    Credential,
}

impl Family {
    /// Both families.
    pub const ALL: [Family; 2] = [Self::Ip, Self::Credential];

    /// The subject token: `ip`, `cred`.
    pub fn token(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Credential => "cred",
        }
    }

    /// The stream's subject filter for the family: `siem.ip.*`.
    pub fn wildcard(self) -> String {
        format!("siem.{}.*", self.token())
    }
}

/// One partition of one family: one subject, one durable consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// The family.
    pub family: Family,
    /// Its number, below [`PARTITIONS`].
    pub number: u16,
}

impl Partition {
    /// The subject: `siem.ip.3`, `siem.cred.12`.
    pub fn subject(self) -> String {
        format!("siem.{}.{}", self.family.token(), self.number)
    }

    /// A dense index over both families (`0..2 * PARTITIONS`).
    pub fn index(self) -> usize {
        let base = match self.family {
            Family::Ip => 0,
            Family::Credential => PARTITIONS,
        };
        usize::from(base + self.number)
    }

    /// Every partition of both families.
    pub fn all() -> impl Iterator<Item = Partition> {
        Family::ALL
            .into_iter()
            .flat_map(|family| (0..PARTITIONS).map(move |number| Partition { family, number }))
    }
}

/// `hash(text) mod PARTITIONS` (see the module documentation).
fn partition_of(text: &str) -> u16 {
    let hash = blake3::hash(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(PARTITIONS)) as u16
}

/// [`partition_of`] `value`'s text, written on the stack: an address
/// (45 bytes at most) or a fingerprint's 32 digits fits.
fn partition_of_text(value: impl fmt::Display) -> u16 {
    let mut text = ArrayString::<64>::new();
    match write!(text, "{value}") {
        Ok(()) => partition_of(&text),
        Err(_) => partition_of(&value.to_string()),
    }
}

/// The IP partition of a client address.
pub fn ip_partition(ip: IpAddr) -> Partition {
    Partition {
        family: Family::Ip,
        number: partition_of_text(ip),
    }
}

/// The credential partition of a fingerprint.
pub fn credential_partition(fp: Fingerprint) -> Partition {
    Partition {
        family: Family::Credential,
        number: partition_of_text(fp),
    }
}

/// A `Nats-Msg-Id` ([`msg_id`]): at most 39 bytes, kept inline.
pub type MsgId = ArrayString<40>;

/// The `Nats-Msg-Id` of a request's message to `partition`: 32 hex digits
/// of BLAKE3 over the node name, the flow's 4-tuple (client, server) and
/// the request's first-byte time in ns (never a header a client chose),
/// then `-ip` or `-cN` for the partition, e.g. `3f0c...9a1e-c12`. One
/// request goes to a partition once, so the id is unique per (request,
/// subject); a retried publish carries the same id and is stored once.
pub fn msg_id(node: &str, flow: [SocketAddr; 2], time_ns: u64, partition: Partition) -> MsgId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(node.as_bytes());
    hasher.update(&[0]);
    for end in flow {
        // A family tag, then the family's fixed-length address: the
        // input names one 4-tuple only.
        match end.ip() {
            IpAddr::V4(ip) => hasher.update(&[4]).update(&ip.octets()),
            IpAddr::V6(ip) => hasher.update(&[6]).update(&ip.octets()),
        };
        hasher.update(&end.port().to_le_bytes());
    }
    hasher.update(&time_ns.to_le_bytes());
    let hex = hasher.finalize().to_hex();
    let mut id = MsgId::new();
    id.push_str(&hex[..32]);
    // 32 digits and `-ip`, or `-c` and a number below 65,536, fit in 40
    // bytes: the write cannot fail.
    let _ = match partition.family {
        Family::Ip => write!(id, "-ip"),
        Family::Credential => write!(id, "-c{}", partition.number),
    };
    id
}

/// A set of partition numbers, as `--partitions` takes it: `all`, or
/// comma-separated numbers and inclusive ranges below [`PARTITIONS`]
/// (`0-7`, `0-3,8-11`). Each number selects that partition of both
/// families.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment(BTreeSet<u16>);

impl Assignment {
    /// Every partition.
    pub fn all() -> Self {
        Self((0..PARTITIONS).collect())
    }

    /// The partitions, both families, IP family first.
    pub fn partitions(&self) -> Vec<Partition> {
        Family::ALL
            .into_iter()
            .flat_map(|family| {
                self.0
                    .iter()
                    .map(move |&number| Partition { family, number })
            })
            .collect()
    }
}

impl FromStr for Assignment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(Self::all());
        }
        let number = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|&n| n < PARTITIONS)
                .ok_or_else(|| format!("`{t}` is not a partition number (0 to {})", PARTITIONS - 1))
        };
        let mut set = BTreeSet::new();
        for part in s.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if a > b {
                        return Err(format!("`{part}`: the range is backwards"));
                    }
                    set.extend(a..=b);
                }
                None => {
                    set.insert(number(part)?);
                }
            }
        }
        Ok(Self(set))
    }
}

impl fmt::Display for Assignment {
    /// Ranges, comma-separated: `0-7,12`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut numbers = self.0.iter().copied().peekable();
        while let Some(start) = numbers.next() {
            let mut end = start;
            while numbers.peek() == Some(&(end + 1)) {
                end += 1;
                numbers.next();
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_parse_and_print() {
        let a: Assignment = "0-3,8,10-11".parse().unwrap();
        assert_eq!(a.to_string(), "0-3,8,10-11");
        assert_eq!(a.partitions().len(), 14);
        assert_eq!("all".parse::<Assignment>().unwrap(), Assignment::all());
        assert_eq!(Assignment::all().to_string(), "0-15");
        for bad in ["16", "3-1", "x", "", "0-"] {
            assert!(bad.parse::<Assignment>().is_err(), "{bad}");
        }
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        let ip: IpAddr = "10.77.0.2".parse().unwrap();
        assert_eq!(ip_partition(ip), ip_partition(ip));
        let used: BTreeSet<u16> = (0..=255u8)
            .map(|i| ip_partition(IpAddr::from([10, 0, 0, i])).number)
            .collect();
        assert_eq!(used.len(), usize::from(PARTITIONS));
        assert_eq!(Partition::all().count(), 32);
        let indices: BTreeSet<usize> = Partition::all().map(Partition::index).collect();
        assert_eq!(indices, (0..32).collect());
    }

    #[test]
    fn message_ids_differ_by_request_and_subject() {
        let p = ip_partition("10.0.0.1".parse().unwrap());
        let c = Partition {
            family: Family::Credential,
            number: 3,
        };
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let flow = [addr("10.0.0.1:4000"), addr("10.0.0.9:8000")];
        let id = msg_id("gw1", flow, 7, p);
        assert_eq!(id, msg_id("gw1", flow, 7, p));
        assert!(id.ends_with("-ip") && id.len() == 35, "{id}");
        let widest = Partition {
            family: Family::Credential,
            number: u16::MAX,
        };
        assert!(msg_id("gw1", flow, 7, widest).ends_with("-c65535"));
        for other in [
            msg_id("gw2", flow, 7, p),
            msg_id("gw1", [addr("10.0.0.1:4001"), flow[1]], 7, p),
            msg_id("gw1", [flow[1], flow[0]], 7, p),
            msg_id("gw1", [addr("[::ffff:10.0.0.1]:4000"), flow[1]], 7, p),
            msg_id("gw1", flow, 8, p),
            msg_id("gw1", flow, 7, c),
        ] {
            assert_ne!(id, other);
        }
    }
}
