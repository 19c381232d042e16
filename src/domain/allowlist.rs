//! Per-key client IP allowlists (CIDR). An empty list allows every address.

use ipnet::IpNet;
use std::net::IpAddr;

pub const MAX_ENTRIES: usize = 100;

/// Parses entries given as CIDR (`10.0.0.0/8`) or bare addresses; returns them normalized.
pub fn parse(entries: &[String]) -> Result<Vec<IpNet>, String> {
    if entries.len() > MAX_ENTRIES {
        return Err(format!("ip_allowlist may hold at most {MAX_ENTRIES} entries"));
    }
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("ip_allowlist entry {e:?} is not an IP address or CIDR block"))
        })
        .collect()
}

pub fn allows(list: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    list.is_empty() || list.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_addresses() {
        let list = parse(&["10.1.2.3/8".into(), "192.168.1.7".into(), "2001:db8::/32".into()]).unwrap();
        assert_eq!(list[0].to_string(), "10.0.0.0/8");
        assert!(allows(&list, "10.200.0.1".parse().unwrap()));
        assert!(allows(&list, "192.168.1.7".parse().unwrap()));
        assert!(!allows(&list, "192.168.1.8".parse().unwrap()));
        assert!(allows(&list, "2001:db8::1".parse().unwrap()));
        assert!(allows(&list, "::ffff:10.0.0.1".parse().unwrap()), "v4-mapped v6 counts as v4");
        assert!(allows(&[], "8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn junk_is_refused() {
        assert!(parse(&["10.0.0.0/33".into()]).is_err());
        assert!(parse(&["example.com".into()]).is_err());
        assert!(parse(&vec!["10.0.0.1".to_string(); MAX_ENTRIES + 1]).is_err());
    }
}
