//! `stoke serve`'s flags of a node of a cluster ([`NodeArgs`]): its id (`--node-id`, default
//! the one kept in the data dir), the address the other nodes reach it at (`--advertise`,
//! default the listen address, on loopback when it listens on every address), the heartbeat
//! and the node timeout, and the async queue's lease; and this node's [`Membership`] from them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use stoke_engine::cluster::{Membership, Peer};
use stoke_engine::nodes::NodeConfig;

use crate::units::parse_duration;

/// The node flags of `stoke serve`; each has an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// This node's id in the cluster (letters, digits, '.', '_', '-'; at most 64). Default: one
    /// made on the first start and kept in the data dir's `node-id`.
    #[arg(long, env = "STOKE_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,
    /// `host:port` where the other nodes reach this one. Default: the listen address (on
    /// loopback when it listens on 0.0.0.0 or [::]).
    #[arg(long, env = "STOKE_ADVERTISE", value_parser = parse_advertise)]
    pub advertise: Option<String>,
    /// A node whose last heartbeat is older than this is dead (`stoke nodes` says so, and no
    /// call is sent to it).
    #[arg(long, env = "STOKE_NODE_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub node_timeout: Duration,
    /// How often this node heartbeats (for tests).
    #[arg(long, env = "STOKE_HEARTBEAT", default_value = "1s", value_parser = parse_timeout, hide = true)]
    pub heartbeat: Duration,
    /// How long a node's lease on an async event lasts; renewed every third of it while the
    /// event runs, so a dead node's events are taken over at most this long after (for tests).
    #[arg(long, env = "STOKE_ASYNC_LEASE", default_value = "30s", value_parser = parse_timeout, hide = true)]
    pub async_lease: Duration,
}

/// At least 100 ms (the loops tick on it), at most a day.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(86_400) {
        return Err(format!("{s:?} is not between 100ms and 24h"));
    }
    Ok(d)
}

/// Letters, digits, '.', '_', '-'; 1 to 64 of them.
pub fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a node id (1 to 64 letters, digits, '.', '_' or '-')"
        ))
    }
}

/// `host:port` (a name, an IPv4 address or a bracketed IPv6 address, and a port above 0).
fn parse_advertise(s: &str) -> Result<String, String> {
    let bad = || format!("{s:?} is not host:port (such as 10.0.0.7:9000 or node1.internal:9000)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(s.to_owned())
}

/// What `--advertise` defaults to: the listen address, on loopback if it is unspecified.
fn default_advertise(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port()).to_string()
}

impl NodeArgs {
    /// This node (`node_id`: the flag's, or the kept one) as a cluster of one, until its
    /// heartbeats find the others.
    pub fn membership(&self, node_id: &str, listen: SocketAddr) -> Arc<Membership> {
        Arc::new(Membership::new(Peer {
            node_id: node_id.to_owned(),
            address: self
                .advertise
                .clone()
                .unwrap_or_else(|| default_advertise(listen)),
            warm: 0,
            load: 0,
        }))
    }

    /// The heartbeat and the node timeout.
    pub fn config(&self) -> NodeConfig {
        NodeConfig {
            heartbeat: self.heartbeat,
            timeout: self.node_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_and_addresses_are_checked() {
        assert_eq!(parse_node_id("node-1.a_b"), Ok("node-1.a_b".into()));
        assert!(parse_node_id("").is_err());
        assert!(parse_node_id("a b").is_err());
        assert!(parse_node_id(&"x".repeat(65)).is_err());
        for ok in ["10.0.0.7:9000", "node1.internal:9000", "[::1]:9000"] {
            assert_eq!(parse_advertise(ok), Ok(ok.to_owned()));
        }
        for bad in ["10.0.0.7", ":9000", "host:0", "host:x", "[nope]:1", "a b:1"] {
            assert!(parse_advertise(bad).is_err(), "{bad}");
        }
        assert!(parse_timeout("50ms").is_err());
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn the_advertised_address_defaults_to_the_listen_address_on_loopback() {
        let at = |s: &str| default_advertise(s.parse().unwrap());
        assert_eq!(at("0.0.0.0:9000"), "127.0.0.1:9000");
        assert_eq!(at("[::]:9000"), "[::1]:9000");
        assert_eq!(at("10.1.2.3:9001"), "10.1.2.3:9001");
    }
}
