//! Caddy listen addresses (`caddy.ParseNetworkAddress`): `[network/]host:port[-port]`.

use std::net::{SocketAddr, ToSocketAddrs};

use super::{err, Result};

/// One listen entry, expanded to the socket addresses it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// The address as written in the config.
    pub original: String,
    pub addrs: Vec<SocketAddr>,
}

/// Parses `addr` and resolves its host (empty host = all interfaces, dual-stack).
pub fn parse(addr: &str) -> Result<ListenAddr> {
    let (network, rest) = match addr.split_once('/') {
        Some((n, r)) if !n.contains(':') && !n.contains('[') => (n, r),
        _ => ("tcp", addr),
    };
    let (v4_only, v6_only) = match network {
        "tcp" => (false, false),
        "tcp4" => (true, false),
        "tcp6" => (false, true),
        other => {
            return err(format!(
                "listen address {addr:?}: network {other:?} is not supported by the engine"
            ))
        }
    };
    let (host, ports) = match rest.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => {
            return err(format!(
                "parsing listener address: address {rest}: missing port in address"
            ))
        }
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a, b),
        None => (ports, ports),
    };
    let bad_port =
        || format!("invalid start port: strconv.ParseUint: parsing {lo:?}: invalid syntax");
    let lo: u16 = lo.parse().map_err(|_| super::CompileError(bad_port()))?;
    let hi: u16 = hi
        .parse()
        .map_err(|_| super::CompileError(format!("invalid end port: {hi:?}")))?;
    if hi < lo {
        return err(format!("end port must not be less than start port: {addr}"));
    }
    let mut addrs = Vec::new();
    for port in lo..=hi {
        if host.is_empty() {
            addrs.push(if v4_only {
                SocketAddr::from(([0, 0, 0, 0], port))
            } else {
                SocketAddr::from(([0u16; 8], port))
            });
            continue;
        }
        let candidates: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| super::CompileError(format!("listen address {addr:?}: {e}")))?
            .filter(|a| (!v4_only || a.is_ipv4()) && (!v6_only || a.is_ipv6()))
            .collect();
        // Go listens on one address of a name that resolves to several, IPv4 first.
        let resolved = candidates
            .iter()
            .find(|a| a.is_ipv4())
            .or(candidates.first())
            .copied();
        match resolved {
            Some(a) => addrs.push(a),
            None => return err(format!("listen address {addr:?}: no usable address")),
        }
    }
    Ok(ListenAddr {
        original: addr.to_owned(),
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            parse("127.0.0.1:8080").unwrap().addrs,
            vec!["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(
            parse(":80").unwrap().addrs,
            vec!["[::]:80".parse().unwrap()]
        );
        assert_eq!(
            parse("tcp4/:80").unwrap().addrs,
            vec!["0.0.0.0:80".parse().unwrap()]
        );
        assert_eq!(parse("127.0.0.1:9000-9002").unwrap().addrs.len(), 3);
        assert_eq!(
            parse("[::1]:81").unwrap().addrs,
            vec!["[::1]:81".parse().unwrap()]
        );
        assert!(parse("unix//tmp/x.sock").is_err());
        assert!(parse("127.0.0.1").is_err());
        assert!(parse(":abc").is_err());
    }
}
