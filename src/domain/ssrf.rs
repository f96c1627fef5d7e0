//! The SSRF address policy: which resolved addresses an outbound webhook call may connect to.
//!
//! Endpoints are chosen by API clients, so without a guard a webhook could reach loopback
//! services, the private network or a cloud metadata endpoint. The connector resolves the host,
//! keeps only the addresses this policy allows and connects to those (never resolving twice, so
//! DNS rebinding cannot slip through). Operators can turn the guard off or exempt CIDRs.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) reach the IPv4 host, so they are judged as that
//! IPv4 address, by the block list and by the allow list alike. The translation and tunnelling
//! prefixes (NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4 `2002::/16`) can reach any IPv4
//! address through a gateway, so they are blocked whole (spec §7.1).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Blocked IPv4 ranges that std has no stable predicate for: "this network" (std's
/// `is_unspecified` is only `0.0.0.0`), shared address space (CGNAT), benchmarking, and the
/// reserved `240.0.0.0/4`, which holds the broadcast address.
const BLOCKED_V4: [Ipv4Net; 4] = [
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
    Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15),
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// Blocked IPv6 prefixes that carry IPv4 addresses to a gateway: NAT64 (RFC 6052 and the
/// local-use RFC 8215 prefix) and 6to4 (RFC 3056).
const BLOCKED_V6: [Ipv6Net; 3] = [
    Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
    Ipv6Net::new_assert(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
];

/// Which addresses outbound calls may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPolicy {
    allow_private: bool,
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// `allow_private` turns the guard off; `allowed` exempts ranges from the block list.
    ///
    /// An allowed IPv6 range inside `::ffff:0:0/96` is stored as the IPv4 range it maps, so that
    /// `::ffff:10.0.0.0/104` and `10.0.0.0/8` mean the same thing.
    pub fn new(allow_private: bool, allowed: Vec<IpNet>) -> Self {
        let allowed = allowed.into_iter().map(unmap_net).collect();
        Self {
            allow_private,
            allowed,
        }
    }

    /// Whether a connection to `ip` is permitted.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        if self.allow_private {
            return true;
        }
        let ip = unmap(ip);
        !is_blocked(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// `ip` with an IPv4-mapped IPv6 address replaced by its IPv4 address. Only `::ffff:0:0/96`:
/// the deprecated IPv4-compatible form `::a.b.c.d` is not routed to IPv4 by any stack.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// An IPv6 range lying inside `::ffff:0:0/96`, turned into the IPv4 range it covers; any other
/// range unchanged. A wider IPv6 range (`::/0`) stays IPv6 and, by design, does not cover mapped
/// addresses: those are judged as IPv4 only.
fn unmap_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

/// Whether `ip` (already unmapped) lies in a blocked range of spec §7.1. Loopback, private
/// (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`), link-local (cloud metadata lives at
/// `169.254.169.254` and `fd00:ec2::254`), multicast and broadcast come from std's predicates.
fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || BLOCKED_V4.iter().any(|net| net.contains(&v4))
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.is_multicast()
                || BLOCKED_V6.iter().any(|net| net.contains(&v6))
        }
    }
}

/// An `--allowed-endpoint-cidrs` item that is not a CIDR.
///
/// With `thiserror` (main crate): `#[error("invalid CIDR address: {input}")]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError {
    pub input: String,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go's `net.ParseError` text for `ParseCIDR`.
        write!(f, "invalid CIDR address: {}", self.input)
    }
}

impl std::error::Error for CidrError {}

/// Parses `<ip>/<prefix length>` as Go's `net.ParseCIDR` does: IPv4 or IPv6 (no zone), a decimal
/// length within the family's bits; host bits may be set and are cleared (`10.1.2.3/8` is
/// `10.0.0.0/8`). A bare address is refused, as Go refuses it: an operator who wrote `10.0.0.1`
/// may have meant a /8 as well as a /32, so we do not guess.
pub fn parse_cidr(s: &str) -> Result<IpNet, CidrError> {
    let invalid = || CidrError { input: s.to_owned() };
    let (addr, len) = s.split_once('/').ok_or_else(invalid)?;
    // Rust's parsers accept the same spellings as Go's `netip.ParseAddr` minus zones, which
    // `ParseCIDR` refuses anyway; both reject IPv4 octets with leading zeros.
    let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
    let max_len = if addr.is_ipv4() { 32 } else { 128 };
    // Go's `dtoi`: ASCII digits only, leading zeros allowed (`/08`), no sign.
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let len: u8 = len.parse().map_err(|_| invalid())?;
    if len > max_len {
        return Err(invalid());
    }
    let net = match addr {
        IpAddr::V4(v4) => Ipv4Net::new(v4, len).map(IpNet::V4),
        IpAddr::V6(v6) => Ipv6Net::new(v6, len).map(IpNet::V6),
    };
    net.map(|net| net.trunc()).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        match s.parse::<Ipv4Addr>() {
            Ok(ip) => IpAddr::V4(ip),
            Err(e) => panic!("bad test address {s}: {e}"),
        }
    }

    fn v6(s: &str) -> IpAddr {
        match s.parse::<Ipv6Addr>() {
            Ok(ip) => IpAddr::V6(ip),
            Err(e) => panic!("bad test address {s}: {e}"),
        }
    }

    fn nets(list: &[&str]) -> Result<Vec<IpNet>, CidrError> {
        list.iter().map(|s| parse_cidr(s)).collect()
    }

    fn guard() -> AddressPolicy {
        AddressPolicy::new(false, Vec::new())
    }

    /// (first blocked, last blocked, just below, just above) for every IPv4 range; `None` where
    /// the neighbour does not exist.
    const V4_EDGES: [(&str, &str, Option<&str>, Option<&str>); 10] = [
        ("0.0.0.0", "0.255.255.255", None, Some("1.0.0.0")),
        (
            "127.0.0.0",
            "127.255.255.255",
            Some("126.255.255.255"),
            Some("128.0.0.0"),
        ),
        (
            "10.0.0.0",
            "10.255.255.255",
            Some("9.255.255.255"),
            Some("11.0.0.0"),
        ),
        (
            "172.16.0.0",
            "172.31.255.255",
            Some("172.15.255.255"),
            Some("172.32.0.0"),
        ),
        (
            "192.168.0.0",
            "192.168.255.255",
            Some("192.167.255.255"),
            Some("192.169.0.0"),
        ),
        (
            "169.254.0.0",
            "169.254.255.255",
            Some("169.253.255.255"),
            Some("169.255.0.0"),
        ),
        (
            "224.0.0.0",
            "239.255.255.255",
            Some("223.255.255.255"),
            // 240.0.0.0/4 above is blocked too.
            None,
        ),
        (
            "100.64.0.0",
            "100.127.255.255",
            Some("100.63.255.255"),
            Some("100.128.0.0"),
        ),
        (
            "198.18.0.0",
            "198.19.255.255",
            Some("198.17.255.255"),
            Some("198.20.0.0"),
        ),
        // Reserved, up to and including the broadcast address; multicast lies just below.
        ("240.0.0.0", "255.255.255.255", None, None),
    ];

    #[test]
    fn ipv4_range_edges() {
        let policy = guard();
        for (first, last, below, above) in V4_EDGES {
            assert!(!policy.is_allowed(v4(first)), "{first}");
            assert!(!policy.is_allowed(v4(last)), "{last}");
            if let Some(below) = below {
                assert!(policy.is_allowed(v4(below)), "{below}");
            }
            if let Some(above) = above {
                assert!(policy.is_allowed(v4(above)), "{above}");
            }
        }
    }

    #[test]
    fn ipv4_well_known_addresses() {
        let policy = guard();
        for blocked in [
            "127.0.0.1",
            "169.254.169.254",
            "10.1.2.3",
            "192.168.1.1",
            "0.0.0.0",
        ] {
            assert!(!policy.is_allowed(v4(blocked)), "{blocked}");
        }
        for blocked in ["100.64.0.1", "198.18.0.1", "240.0.0.1", "255.255.255.255"] {
            assert!(!policy.is_allowed(v4(blocked)), "{blocked}");
        }
        // Not in the spec's table, so not blocked: documentation, the other special ranges.
        for allowed in ["8.8.8.8", "1.1.1.1", "192.0.2.1", "192.88.99.1", "100.63.255.255"] {
            assert!(policy.is_allowed(v4(allowed)), "{allowed}");
        }
    }

    /// (first blocked, last blocked, just below, just above) for every IPv6 range; `None` where
    /// the neighbour does not exist or is itself blocked (`::` and `::1` are adjacent).
    const V6_EDGES: [(&str, &str, Option<&str>, Option<&str>); 5] = [
        ("::", "::", None, None),
        ("::1", "::1", None, Some("::2")),
        (
            "fc00::",
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            Some("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            Some("fe00::"),
        ),
        (
            "fe80::",
            "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            Some("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            Some("fec0::"),
        ),
        (
            "ff00::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            Some("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            None,
        ),
    ];

    #[test]
    fn ipv6_range_edges() {
        let policy = guard();
        for (first, last, below, above) in V6_EDGES {
            assert!(!policy.is_allowed(v6(first)), "{first}");
            assert!(!policy.is_allowed(v6(last)), "{last}");
            for neighbour in [below, above].into_iter().flatten() {
                assert!(policy.is_allowed(v6(neighbour)), "{neighbour}");
            }
        }
        assert!(policy.is_allowed(v6("::2")));
        assert!(!policy.is_allowed(v6("fd00:ec2::254")));
        assert!(policy.is_allowed(v6("2001:4860:4860::8888")));
        assert!(policy.is_allowed(v6("2606:4700:4700::1111")));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_judged_as_ipv4() {
        let policy = guard();
        for blocked in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::ffff:224.0.0.1",
            "::ffff:7f00:1",
        ] {
            assert!(!policy.is_allowed(v6(blocked)), "{blocked}");
        }
        assert!(policy.is_allowed(v6("::ffff:8.8.8.8")));
        assert!(policy.is_allowed(v6("::ffff:172.32.0.0")));
        for blocked in ["::ffff:100.64.0.1", "::ffff:198.19.0.1", "::ffff:255.255.255.255"] {
            assert!(!policy.is_allowed(v6(blocked)), "{blocked}");
        }
        // The deprecated IPv4-compatible form is an ordinary IPv6 address.
        assert!(policy.is_allowed(v6("::127.0.0.1")));
    }

    #[test]
    fn ipv4_embedding_prefixes_are_blocked_whole() {
        let policy = guard();
        for blocked in [
            // NAT64 of 10.0.0.1 and of a public address: the gateway reaches either.
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "64:ff9b::",
            "64:ff9b::ffff:ffff",
            // The local-use NAT64 prefix.
            "64:ff9b:1::",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
            "64:ff9b:1::a00:1",
            // 6to4 of 10.0.0.1 and of 8.8.8.8.
            "2002:a00:1::",
            "2002:808:808::1",
            "2002::",
            "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(!policy.is_allowed(v6(blocked)), "{blocked}");
        }
        for allowed in [
            // Just outside each prefix.
            "64:ff9b::1:0:0",
            "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff",
            "64:ff9b:0:ffff:ffff:ffff:ffff:ffff",
            "64:ff9b:2::",
            "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2003::",
        ] {
            assert!(policy.is_allowed(v6(allowed)), "{allowed}");
        }
    }

    #[test]
    fn allow_list_exempts_the_added_ranges() -> Result<(), CidrError> {
        let policy = AddressPolicy::new(false, nets(&["100.64.0.0/10", "64:ff9b::/96", "2002:a00::/24"])?);
        assert!(policy.is_allowed(v4("100.100.1.1")));
        assert!(policy.is_allowed(v6("::ffff:100.100.1.1")));
        assert!(policy.is_allowed(v6("64:ff9b::a00:1")));
        assert!(policy.is_allowed(v6("2002:a00:1::")));
        assert!(!policy.is_allowed(v6("2002:808:808::")));
        assert!(!policy.is_allowed(v6("64:ff9b:1::a00:1")));
        assert!(!policy.is_allowed(v4("198.18.0.1")));
        Ok(())
    }

    #[test]
    fn allow_private_turns_the_guard_off() {
        let policy = AddressPolicy::new(true, Vec::new());
        for ip in [
            v4("127.0.0.1"),
            v4("10.0.0.1"),
            v6("::1"),
            v6("fe80::1"),
            v6("::ffff:127.0.0.1"),
        ] {
            assert!(policy.is_allowed(ip), "{ip}");
        }
    }

    #[test]
    fn allow_list_exempts_only_its_ranges() -> Result<(), CidrError> {
        let policy = AddressPolicy::new(false, nets(&["10.1.0.0/16", "127.0.0.1/32", "fd00::/8"])?);
        assert!(policy.is_allowed(v4("10.1.0.0")));
        assert!(policy.is_allowed(v4("10.1.255.255")));
        assert!(!policy.is_allowed(v4("10.0.255.255")));
        assert!(!policy.is_allowed(v4("10.2.0.0")));
        assert!(policy.is_allowed(v4("127.0.0.1")));
        assert!(!policy.is_allowed(v4("127.0.0.2")));
        assert!(policy.is_allowed(v6("fd12::1")));
        assert!(!policy.is_allowed(v6("fc00::1")));
        assert!(!policy.is_allowed(v6("::1")));
        // Public addresses stay allowed whatever the list says.
        assert!(policy.is_allowed(v4("8.8.8.8")));
        Ok(())
    }

    #[test]
    fn allow_list_applies_to_mapped_addresses_through_ipv4() -> Result<(), CidrError> {
        let policy = AddressPolicy::new(false, nets(&["10.0.0.0/8"])?);
        assert!(policy.is_allowed(v6("::ffff:10.9.8.7")));
        assert!(!policy.is_allowed(v6("::ffff:127.0.0.1")));

        // A range written in mapped form means the IPv4 range.
        let policy = AddressPolicy::new(false, nets(&["::ffff:10.0.0.0/104", "::ffff:127.0.0.1/128"])?);
        assert!(policy.is_allowed(v4("10.200.0.1")));
        assert!(policy.is_allowed(v6("::ffff:10.200.0.1")));
        assert!(policy.is_allowed(v4("127.0.0.1")));
        assert!(!policy.is_allowed(v4("127.0.0.2")));
        assert!(!policy.is_allowed(v4("192.168.0.1")));
        Ok(())
    }

    #[test]
    fn a_wide_ipv6_allow_range_does_not_cover_mapped_ipv4() -> Result<(), CidrError> {
        let policy = AddressPolicy::new(false, nets(&["::/0"])?);
        assert!(policy.is_allowed(v6("::1")));
        assert!(policy.is_allowed(v6("fe80::1")));
        assert!(!policy.is_allowed(v6("::ffff:127.0.0.1")));
        assert!(!policy.is_allowed(v4("127.0.0.1")));

        let policy = AddressPolicy::new(false, nets(&["0.0.0.0/0"])?);
        assert!(policy.is_allowed(v6("::ffff:127.0.0.1")));
        assert!(!policy.is_allowed(v6("::1")));
        Ok(())
    }

    #[test]
    fn parse_cidr_accepts_go_spellings() -> Result<(), CidrError> {
        assert_eq!(parse_cidr("10.0.0.0/8")?.to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("::1/128")?.to_string(), "::1/128");
        assert_eq!(parse_cidr("0.0.0.0/0")?.to_string(), "0.0.0.0/0");
        assert_eq!(parse_cidr("::/0")?.to_string(), "::/0");
        assert_eq!(parse_cidr("fd00:ec2::254/128")?.to_string(), "fd00:ec2::254/128");
        // Host bits are cleared, as Go's IPNet has them.
        assert_eq!(parse_cidr("10.1.2.3/8")?.to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("2001:db8::1/32")?.to_string(), "2001:db8::/32");
        // Go's dtoi takes leading zeros in the length.
        assert_eq!(parse_cidr("10.0.0.0/08")?.to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("10.0.0.0/00000008")?.to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_cidr("::ffff:1.2.3.4/128")?.to_string(),
            "::ffff:1.2.3.4/128"
        );
        Ok(())
    }

    #[test]
    fn parse_cidr_refuses_what_go_refuses() {
        for s in [
            "",
            "10.0.0.1",
            "::1",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8 ",
            " 10.0.0.0/8",
            "10.0.0.0/8/8",
            "10.0.0.0/0x8",
            "010.0.0.0/8",
            "10.0.0/8",
            "fe80::1%eth0/64",
            "example.com/8",
            "10.0.0.0/1000",
            "10.0.0.0/99999999999999999999",
            "/8",
        ] {
            assert_eq!(parse_cidr(s), Err(CidrError { input: s.to_owned() }), "{s:?}");
        }
        assert_eq!(
            CidrError {
                input: "10.0.0.1".to_owned()
            }
            .to_string(),
            "invalid CIDR address: 10.0.0.1"
        );
    }
}
