//! Who is trusted on the network: `trusted_proxies` (whose `X-Forwarded-*`
//! headers are kept) and `proxy_protocol` (which peers must send a PROXY
//! protocol header). Entries are IP addresses or CIDR blocks, parsed by
//! `ipnet`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use ipnet::IpNet;

/// `"10.0.0.0/8"`, `"::1/128"` or a bare address (a one-address network).
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let bad = || format!("{text:?} is not an IP address or CIDR block");
    if text.contains('/') {
        text.parse::<IpNet>()
            .map(|net| net.trunc())
            .map_err(|_| bad())
    } else {
        text.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad())
    }
}

/// Whether `ip` is inside one of `nets` (an IPv4-mapped IPv6 address
/// counts as its IPv4 address).
pub fn any_contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|net| net.contains(&ip))
}

/// `proxy_protocol = { enabled = false, trusted = { "10.0.0.0/8" } }`: the
/// proxy listener sits behind TCP balancers that send a PROXY protocol
/// header (v1 or v2) with the real client address.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyProtocolSettings {
    pub enabled: bool,
    /// The balancers: connections from them must start with a header;
    /// a header from anyone else closes the connection.
    pub trusted: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_and_mapped_ones() {
        let nets = [
            parse_net("10.1.0.0/16").unwrap(),
            parse_net("127.0.0.1").unwrap(),
        ];
        assert!(any_contains(&nets, "10.1.200.3".parse().unwrap()));
        assert!(!any_contains(&nets, "10.2.0.1".parse().unwrap()));
        assert!(any_contains(&nets, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!any_contains(&nets, "127.0.0.2".parse().unwrap()));
        let odd = [parse_net("192.168.1.7/23").unwrap()];
        assert!(any_contains(&odd, "192.168.0.1".parse().unwrap()));
        assert!(!any_contains(&odd, "192.168.2.0".parse().unwrap()));
        for bad in ["1.2.3.4/33", "nope", "10.0.0.0/", "::1/129"] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
    }
}
