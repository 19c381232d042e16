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

/// Addresses or CIDR blocks from configuration (no entry limit), each error
/// naming the entry it is about.
pub fn parse_networks(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            parse(&[e.to_string()])
                .map(|mut nets| nets.remove(0))
                .map_err(|_| format!("{e:?} is not an IP address or CIDR block"))
        })
        .collect()
}

/// A key's allowlist, normalized: what is stored (as a JSON array of CIDR
/// blocks) and what key checks test addresses against. Empty: every address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowlist(Vec<IpNet>);

impl IpAllowlist {
    /// Entries as a caller gives them (see [`parse`]).
    pub fn parse(entries: &[String]) -> Result<IpAllowlist, String> {
        parse(entries).map(IpAllowlist)
    }

    /// The stored JSON array; None if it is not one of valid entries, so
    /// that a damaged row fails its read (closed) instead of allowing every address.
    pub fn from_json(text: &str) -> Option<IpAllowlist> {
        let entries: Vec<String> = serde_json::from_str(text).ok()?;
        IpAllowlist::parse(&entries).ok()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.entries()).expect("strings")
    }

    /// The CIDR blocks, as the API shows them.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(IpNet::to_string).collect()
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        allows(&self.0, ip)
    }

    /// Whether every address is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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
    fn a_stored_list_reads_back_and_a_damaged_one_does_not() {
        let list = IpAllowlist::parse(&["10.1.2.3/8".into(), "192.168.1.7".into()]).unwrap();
        assert_eq!(list.to_json(), r#"["10.0.0.0/8","192.168.1.7/32"]"#);
        assert_eq!(IpAllowlist::from_json(&list.to_json()), Some(list));
        assert_eq!(IpAllowlist::from_json("[]"), Some(IpAllowlist::default()));
        for damaged in ["", "{}", r#"["not an address"]"#, "[1]"] {
            assert_eq!(IpAllowlist::from_json(damaged), None, "{damaged}");
        }
    }

    #[test]
    fn junk_is_refused() {
        assert!(parse(&["10.0.0.0/33".into()]).is_err());
        assert!(parse(&["example.com".into()]).is_err());
        assert!(parse(&vec!["10.0.0.1".to_string(); MAX_ENTRIES + 1]).is_err());
    }
}
