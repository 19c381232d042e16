//! The caller's address when keyward sits behind a gateway (nginx, Envoy).
//!
//! A gateway keyward trusts (`KEYWARD_TRUSTED_PROXIES`) appends the address
//! it was connected from to `X-Forwarded-For`, so the last entry is the one it
//! vouches for; anything before it is what the caller claimed. From any other
//! peer the header is the caller's own claim and is ignored. Without this, a
//! key's IP allowlist would see only the gateway, and every caller behind it
//! would share one refusal budget.

use super::allowlist;
use ipnet::IpNet;
use std::net::IpAddr;

/// The gateways whose `X-Forwarded-For` keyward believes. Empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Addresses or CIDR blocks.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        allowlist::parse_networks(entries).map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        !self.0.is_empty() && allowlist::allows(&self.0, ip)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The caller's address: the peer's, or, from a trusted gateway, the last
/// entry of its `X-Forwarded-For` (every value of the header, in order). A
/// trusted gateway that sends no usable entry is itself the caller.
pub fn caller_address<'a>(
    peer: IpAddr,
    trusted: &TrustedProxies,
    forwarded_for: impl IntoIterator<Item = &'a [u8]>,
) -> IpAddr {
    if !trusted.trusts(peer) {
        return peer;
    }
    let Some(last_value) = forwarded_for.into_iter().last() else { return peer };
    let last_entry = last_value.rsplit(|b| *b == b',').next().unwrap_or_default();
    std::str::from_utf8(last_entry).ok().and_then(|s| s.trim().parse::<IpAddr>().ok()).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let gateways = trusted(&["10.0.0.0/24", "192.0.2.7"]);
        let xff: [&[u8]; 1] = [b"203.0.113.9"];
        assert_eq!(caller_address(ip("10.0.0.5"), &gateways, xff), ip("203.0.113.9"));
        assert_eq!(caller_address(ip("192.0.2.7"), &gateways, xff), ip("203.0.113.9"));
        assert_eq!(caller_address(ip("192.0.2.8"), &gateways, xff), ip("192.0.2.8"), "not a gateway");
        assert_eq!(caller_address(ip("10.0.0.5"), &TrustedProxies::default(), xff), ip("10.0.0.5"), "none trusted");
        // An IPv4 gateway seen as an IPv4-mapped IPv6 peer is the same gateway.
        assert_eq!(caller_address(ip("::ffff:10.0.0.5"), &gateways, xff), ip("203.0.113.9"));
    }

    #[test]
    fn the_last_entry_is_the_gateways_the_rest_the_callers_claim() {
        let gateways = trusted(&["10.0.0.1"]);
        let gw = ip("10.0.0.1");
        let one: [&[u8]; 1] = [b"198.51.100.1, 203.0.113.9"];
        assert_eq!(caller_address(gw, &gateways, one), ip("203.0.113.9"));
        let two: [&[u8]; 2] = [b"198.51.100.1", b"203.0.113.9 "];
        assert_eq!(caller_address(gw, &gateways, two), ip("203.0.113.9"));
        let v6: [&[u8]; 1] = [b"2001:db8::1"];
        assert_eq!(caller_address(gw, &gateways, v6), ip("2001:db8::1"));
    }

    #[test]
    fn a_gateway_without_a_usable_entry_is_the_caller() {
        let gateways = trusted(&["10.0.0.1"]);
        let gw = ip("10.0.0.1");
        assert_eq!(caller_address(gw, &gateways, std::iter::empty()), gw);
        for bad in [&b""[..], b"unknown", b"203.0.113.9,", b"203.0.113.9:443", b"\xff\xfe", b"[2001:db8::1]"] {
            assert_eq!(caller_address(gw, &gateways, [bad]), gw, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn entries_are_addresses_or_blocks() {
        assert!(trusted(&["10.0.0.0/8", " 127.0.0.1 ", "::1"]).trusts(ip("10.1.2.3")));
        assert!(TrustedProxies::parse(&["localhost".to_string()]).is_err());
        assert!(TrustedProxies::parse(&["10.0.0.0/33".to_string()]).is_err());
        assert!(!TrustedProxies::default().trusts(ip("127.0.0.1")));
    }
}
