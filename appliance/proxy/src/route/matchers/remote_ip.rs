//! `http.matchers.remote_ip` and `http.matchers.client_ip`: the peer address (or, for
//! `client_ip`, the client address the server derived through its trusted proxies, the
//! `client_ip` variable) lies in one of the CIDR ranges or equals one of the addresses.

use std::net::IpAddr;

use serde_json::Value;

use super::super::ctx::Ctx;
use super::super::{err, str_list, Result};

#[derive(Debug)]
pub struct MatchRemoteIp {
    ranges: Vec<(IpAddr, u8)>,
    client: bool,
}

pub fn parse_range(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

/// Parses CIDR ranges or single addresses, Caddy's error text on the first bad one.
pub fn parse_ranges(list: &[String]) -> Result<Vec<(IpAddr, u8)>> {
    list.iter()
        .map(|r| match parse_range(r) {
            Some(x) => Ok(x),
            None => err(format!("invalid IP address: '{r}'")),
        })
        .collect()
}

pub fn in_range(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl MatchRemoteIp {
    pub fn compile(v: &Value, client: bool) -> Result<MatchRemoteIp> {
        let ranges = parse_ranges(&str_list(v.get("ranges"), "ranges")?)?;
        Ok(MatchRemoteIp { ranges, client })
    }

    pub fn matches(&self, ctx: &Ctx<'_, '_>) -> bool {
        let ip = if self.client {
            ctx.var("client_ip")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
        } else {
            ctx.remote.map(|a| a.ip())
        };
        ip.is_some_and(|ip| self.ranges.iter().any(|r| in_range(ip, *r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |s| parse_range(s).unwrap();
        assert!(in_range("10.1.2.3".parse().unwrap(), r("10.0.0.0/8")));
        assert!(!in_range("11.1.2.3".parse().unwrap(), r("10.0.0.0/8")));
        assert!(in_range("127.0.0.1".parse().unwrap(), r("127.0.0.1")));
        assert!(in_range("::1".parse().unwrap(), r("::/0")));
        assert!(!in_range("::1".parse().unwrap(), r("0.0.0.0/0")));
        assert!(parse_range("1.2.3.4/33").is_none());
    }
}
