//! The client address behind trusted proxies.
//!
//! The rule follows nginx's realip module with `real_ip_recursive on`
//! (<https://nginx.org/en/docs/http/ngx_http_realip_module.html>; the walk is
//! `ngx_http_get_forwarded_addr` in `src/http/ngx_http_core_module.c`), which
//! is also what Kong does with `trusted_ips` + `real_ip_recursive`:
//!
//! 1. Start with `addr` = the TCP peer. If the peer is not in
//!    `trusted_proxies`, it is the client: done.
//! 2. Walk the `X-Forwarded-For` entries right to left (several XFF header
//!    lines count as one list joined in order, the last line's entries
//!    first). Entries are separated by `,`, space or tab; empty entries are
//!    skipped. For each entry: if it does not parse as an address (below),
//!    stop. Otherwise `addr` = entry; if that is not trusted, it is the
//!    client: done (the right-most untrusted entry).
//! 3. The walk ended without an untrusted address (the header absent,
//!    every entry trusted, or an unparseable entry reached): the last
//!    address the walk accepted (the left-most trusted entry before the
//!    stop), or the peer when none was. nginx does the same on a parse
//!    failure: it keeps the last good address.
//!
//! The header is nginx's `real_ip_header` (`--real-ip-header`, default
//! `X-Forwarded-For`); any header is read as a list, right to left.
//!
//! On Kong's upstream leg the client is what Kong says: its `X-Real-IP`
//! (Kong sets it to its own `$remote_addr`, after its `trusted_ips`), else
//! the same walk over `X-Forwarded-For` trusting Kong's nodes as well, else
//! the peer (Kong itself).
//!
//! An entry parses, like nginx's `ngx_parse_addr_port`, as an IPv4 or IPv6
//! address, `IPv4:port`, or `[IPv6]:port` (port 1..=65535, the port is
//! dropped); we also accept `[IPv6]` without a port (nginx rejects it).
//! IPv4 octets may have leading zeros and are read as decimal (nginx's
//! `ngx_inet_addr`: `10.000.000.03` is 10.0.0.3; never octal as inet_aton
//! would); empty octets are refused (nginx accepts `1..2.3`). Zone ids
//! (`fe80::1%eth0`), quotes, garbage: unparseable. IPv4-mapped IPv6
//! addresses (`::ffff:a.b.c.d`) are treated as IPv4, for trust checks and in
//! the result, as nginx's `ngx_cidr_match` does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The client behind the peer on the client leg; see the module docs for
/// the rule. `lines` yields the real-IP header's values, last line first.
pub(super) fn client_ip<'h>(
    peer: IpAddr,
    trusted: &[IpNet],
    lines: impl Iterator<Item = &'h [u8]>,
) -> IpAddr {
    walk(peer, |a| trusted.iter().any(|net| net.contains(a)), lines)
}

/// The client Kong named on its upstream leg: `real_ip` (Kong's
/// `X-Real-IP`) if it parses, else the walk over `xff` trusting Kong's
/// nodes and the trusted proxies.
pub(super) fn kong_client_ip<'h>(
    peer: IpAddr,
    real_ip: Option<&[u8]>,
    xff: impl Iterator<Item = &'h [u8]>,
    trusted: impl Fn(&IpAddr) -> bool,
) -> IpAddr {
    match real_ip.and_then(|v| parse_addr(v.trim_ascii())) {
        Some(ip) => ip,
        None => walk(peer, trusted, xff),
    }
}

/// Steps 1-3 of the module docs.
fn walk<'h>(
    peer: IpAddr,
    is_trusted: impl Fn(&IpAddr) -> bool,
    lines: impl Iterator<Item = &'h [u8]>,
) -> IpAddr {
    let mut addr = peer.to_canonical();
    if !is_trusted(&addr) {
        return addr;
    }
    'walk: for value in lines {
        let entries = value
            .rsplit(|&b| matches!(b, b',' | b' ' | b'\t'))
            .filter(|e| !e.is_empty());
        for entry in entries {
            let Some(a) = parse_addr(entry) else {
                break 'walk;
            };
            addr = a;
            if !is_trusted(&a) {
                return a;
            }
        }
    }
    addr
}

/// One forwarded address: see the module docs. Never panics.
pub(super) fn parse_addr(entry: &[u8]) -> Option<IpAddr> {
    // First the usual entry, in one pass: the general parser below takes
    // the same strict dotted quads, at several times the cost.
    if let Some(a) = parse_ipv4_lenient(entry) {
        return Some(IpAddr::V4(a));
    }
    let s = std::str::from_utf8(entry).ok()?;
    let addr = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !after.is_empty() {
            parse_port(after.strip_prefix(':')?)?;
        }
        IpAddr::V6(inner.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(a) = s.parse::<IpAddr>() {
        a
    } else if let Some((host, port)) = s.split_once(':') {
        // More than one ':' and not an IPv6 address: garbage.
        parse_port(port)?;
        IpAddr::V4(parse_ipv4_lenient(host.as_bytes())?)
    } else {
        // A bare dotted quad was taken above; anything else is garbage.
        return None;
    };
    Some(addr.to_canonical())
}

/// A decimal port 1..=65535.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// Dotted quad with 1-3 decimal digits per octet, leading zeros allowed.
fn parse_ipv4_lenient(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let (mut at, mut n, mut digits) = (0, 0u16, 0);
    for &b in s {
        match b {
            b'0'..=b'9' if digits < 3 => {
                n = n * 10 + u16::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && at < 3 => {
                octets[at] = u8::try_from(n).ok()?;
                (at, n, digits) = (at + 1, 0, 0);
            }
            _ => return None,
        }
    }
    if at != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(n).ok()?;
    Some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// The client leg: `real_ip` (an `X-Real-IP` header) is never read.
    fn resolve(peer: &str, trusted: &[&str], xff: &[&str], real_ip: Option<&str>) -> IpAddr {
        let _ignored = real_ip;
        client_ip(
            ip(peer),
            &nets(trusted),
            xff.iter().rev().map(|v| v.as_bytes()),
        )
    }

    /// Kong's upstream leg, Kong at `peer`.
    fn kong(peer: &str, trusted: &[&str], xff: &[&str], real_ip: Option<&str>) -> IpAddr {
        let nets = nets(trusted);
        kong_client_ip(
            ip(peer),
            real_ip.map(str::as_bytes),
            xff.iter().rev().map(|v| v.as_bytes()),
            |a| a == &ip(peer) || nets.iter().any(|n| n.contains(a)),
        )
    }

    #[test]
    fn untrusted_peer_ignores_headers() {
        assert_eq!(
            resolve("203.0.113.9", &[], &["198.51.100.1"], Some("198.51.100.2")),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(
                "203.0.113.9",
                &["10.0.0.0/8"],
                &["198.51.100.1"],
                Some("198.51.100.2")
            ),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_peer_takes_rightmost_untrusted_xff_entry() {
        let t = &["10.0.0.0/8", "192.168.1.1/32"];
        assert_eq!(
            resolve("10.0.0.1", t, &["198.51.100.7"], None),
            ip("198.51.100.7")
        );
        // Several trusted hops, and a spoofed left-most entry that is ignored.
        assert_eq!(
            resolve(
                "10.0.0.1",
                t,
                &["1.1.1.1, 198.51.100.7, 192.168.1.1,10.1.2.3 , 10.9.9.9"],
                Some("10.0.0.2"),
            ),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn several_xff_lines_are_one_list() {
        let t = &["10.0.0.0/8"];
        assert_eq!(
            resolve("10.0.0.1", t, &["198.51.100.7", "10.0.0.5, 10.0.0.6"], None),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve("10.0.0.1", t, &["198.51.100.7", "203.0.113.1"], None),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn all_trusted_gives_the_leftmost_and_x_real_ip_is_not_read() {
        let t = &["10.0.0.0/8"];
        for real_ip in [Some("198.51.100.9"), None] {
            assert_eq!(
                resolve("10.0.0.1", t, &["10.0.0.3, 10.0.0.2"], real_ip),
                ip("10.0.0.3")
            );
            assert_eq!(resolve("10.0.0.1", t, &[], real_ip), ip("10.0.0.1"));
        }
    }

    #[test]
    fn kong_names_the_client_in_x_real_ip_then_x_forwarded_for() {
        let t = &["192.0.2.0/24"];
        assert_eq!(
            kong("10.0.1.1", t, &["198.51.100.1"], Some(" 198.51.100.9 ")),
            ip("198.51.100.9")
        );
        // No usable X-Real-IP: the walk trusts Kong itself and the proxies.
        assert_eq!(
            kong(
                "10.0.1.1",
                t,
                &["198.51.100.1, 192.0.2.7, 10.0.1.1"],
                Some("x")
            ),
            ip("198.51.100.1")
        );
        assert_eq!(kong("10.0.1.1", t, &[], None), ip("10.0.1.1"));
    }

    #[test]
    fn unparseable_entry_stops_the_walk_at_last_good_address() {
        let t = &["10.0.0.0/8"];
        // Right-most entry is garbage: nothing accepted, peer.
        assert_eq!(
            resolve("10.0.0.1", t, &["198.51.100.1, garbage"], None),
            ip("10.0.0.1")
        );
        // Garbage behind a trusted hop: the trusted hop (nginx keeps it too).
        assert_eq!(
            resolve("10.0.0.1", t, &["198.51.100.1, x;y, 10.0.0.4"], None),
            ip("10.0.0.4")
        );
        // An untrusted entry right of the garbage wins before the garbage is reached.
        assert_eq!(
            resolve("10.0.0.1", t, &["garbage, 198.51.100.1"], None),
            ip("198.51.100.1")
        );
        // Odd bytes, empty lists, lone separators: no panic.
        for v in [
            "",
            ",",
            " , ,",
            "\u{ff}\u{fe}",
            "[",
            "[::1",
            "]",
            "1.2.3.4:",
            ":80",
            "[]:",
        ] {
            assert_eq!(resolve("10.0.0.1", t, &[v], None), ip("10.0.0.1"), "{v:?}");
        }
        assert_eq!(
            client_ip(
                ip("10.0.0.1"),
                &nets(t),
                [&b"\xff\x00, 198.51.100.3"[..]].into_iter(),
            ),
            ip("198.51.100.3")
        );
    }

    #[test]
    fn ipv6_peers_entries_and_brackets() {
        let t = &["2001:db8:ffff::/48", "10.0.0.0/8"];
        assert_eq!(
            resolve(
                "2001:db8:ffff::1",
                t,
                &["2001:db8:1::5, 2001:db8:ffff::2"],
                None
            ),
            ip("2001:db8:1::5")
        );
        assert_eq!(
            resolve("2001:db8:ffff::1", t, &["[2001:db8:1::5]:443"], None),
            ip("2001:db8:1::5")
        );
        assert_eq!(
            resolve("2001:db8:ffff::1", t, &["[2001:db8:1::5]"], None),
            ip("2001:db8:1::5")
        );
        assert_eq!(
            resolve("2001:db8:ffff::1", t, &["[::1]:80"], None),
            ip("::1")
        );
        // IPv4 through an IPv6 trusted proxy and vice versa.
        assert_eq!(
            resolve("2001:db8:ffff::1", t, &["198.51.100.4"], None),
            ip("198.51.100.4")
        );
        assert_eq!(
            resolve("10.0.0.1", t, &["2001:db8:1::9"], None),
            ip("2001:db8:1::9")
        );
        // IPv4-mapped peer matches an IPv4 CIDR and comes out as IPv4.
        assert_eq!(
            resolve("::ffff:10.0.0.1", t, &["198.51.100.4"], None),
            ip("198.51.100.4")
        );
        assert_eq!(
            resolve("::ffff:203.0.113.1", t, &[], None),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn entries_with_ports_and_leading_zeros() {
        let t = &["10.0.0.0/8"];
        assert_eq!(
            resolve("10.0.0.1", t, &["198.51.100.4:5555"], None),
            ip("198.51.100.4")
        );
        // Port out of range or zero: unparseable.
        assert_eq!(
            resolve("10.0.0.1", t, &["198.51.100.4:70000"], None),
            ip("10.0.0.1")
        );
        assert_eq!(
            resolve("10.0.0.1", t, &["198.51.100.4:0"], None),
            ip("10.0.0.1")
        );
        assert_eq!(
            resolve("10.0.0.1", t, &["[2001:db8::1]:x"], None),
            ip("10.0.0.1")
        );
        // Leading zeros are decimal, not octal.
        assert_eq!(
            resolve("10.0.0.1", t, &["198.051.100.010"], None),
            ip("198.51.100.10")
        );
        assert_eq!(resolve("10.0.0.1", t, &["1.2.3.256"], None), ip("10.0.0.1"));
        assert_eq!(resolve("10.0.0.1", t, &["1..2.3"], None), ip("10.0.0.1"));
        assert_eq!(resolve("10.0.0.1", t, &["1.2.3.4.5"], None), ip("10.0.0.1"));
        assert_eq!(
            resolve("10.0.0.1", t, &["fe80::1%eth0"], None),
            ip("10.0.0.1")
        );
    }

    /// `X-Forwarded-For: 10.000.000.03` from arkime's tests/pcap/http-xff.pcap
    /// (peer 10.0.0.1): an anonymised address with zero-padded octets.
    #[test]
    fn arkime_http_xff_capture() {
        let xff = "10.000.000.03";
        // Peer untrusted (default config): the peer.
        assert_eq!(resolve("10.0.0.1", &[], &[xff], None), ip("10.0.0.1"));
        // Peer trusted: read as decimal, like nginx: 10.0.0.3.
        assert_eq!(
            resolve("10.0.0.1", &["10.0.0.1/32"], &[xff], None),
            ip("10.0.0.3")
        );
        // Everything trusted and no X-Real-IP: the left-most accepted entry.
        assert_eq!(
            resolve("10.0.0.1", &["10.0.0.0/8"], &[xff], None),
            ip("10.0.0.3")
        );
    }

    /// RFC 3986's dotted quad (section 3.2.2) with up to three digits an
    /// octet and leading zeros allowed, as nginx reads it: four parts.
    fn dotted_quad(s: &[u8]) -> Option<Ipv4Addr> {
        let parts: Vec<&[u8]> = s.split(|&b| b == b'.').collect();
        let octets: Vec<u8> = parts
            .iter()
            .filter(|p| (1..=3).contains(&p.len()) && p.iter().all(u8::is_ascii_digit))
            .filter_map(|p| std::str::from_utf8(p).ok()?.parse().ok())
            .collect();
        <[u8; 4]>::try_from(octets)
            .ok()
            .filter(|_| parts.len() == 4)
            .map(Ipv4Addr::from)
    }

    proptest::proptest! {
        #[test]
        fn dotted_quads_follow_the_rule(entry in "[0-9.]{0,20}") {
            proptest::prop_assert_eq!(parse_ipv4_lenient(entry.as_bytes()), dotted_quad(entry.as_bytes()));
        }

        #[test]
        fn quads_of_any_digits_follow_the_rule(parts in proptest::collection::vec("0{0,2}[0-9]{0,3}", 3..6)) {
            let entry = parts.join(".");
            proptest::prop_assert_eq!(parse_ipv4_lenient(entry.as_bytes()), dotted_quad(entry.as_bytes()));
        }

        /// The shortcut answers before the general parser: on what that
        /// parser takes (every address as std writes it), they agree.
        #[test]
        fn the_shortcut_agrees_with_the_general_parser(v4: [u8; 4], v6: u128) {
            for entry in [Ipv4Addr::from(v4).to_string(), Ipv6Addr::from(v6).to_string()] {
                let general = entry.parse::<IpAddr>().map(|a| a.to_canonical()).ok();
                proptest::prop_assert_eq!(parse_addr(entry.as_bytes()), general);
            }
        }
    }
}
