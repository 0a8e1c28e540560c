//! The etcd keys, one builder each (docs/overlay.md lists them).

use netctl_overlay_api::PREFIX;

pub use crate::trust::EndpointKey;

/// Every key of the cluster.
pub fn all() -> String {
    PREFIX.to_string()
}

/// A host's record (kept while the host is in the cluster).
pub fn host(host: &str) -> String {
    format!("{PREFIX}hosts/{host}")
}

/// Every host.
pub fn hosts() -> String {
    format!("{PREFIX}hosts/")
}

/// A host's liveness marker (on its liveness lease).
pub fn alive(host: &str) -> String {
    format!("{PREFIX}alive/{host}")
}

/// Every liveness marker.
pub fn alives() -> String {
    format!("{PREFIX}alive/")
}

/// The names of a host's own (not overlay) networks, which no overlay network may take.
pub fn local_networks(host: &str) -> String {
    format!("{PREFIX}localnets/{host}")
}

/// Every host's own networks.
pub fn all_local_networks() -> String {
    format!("{PREFIX}localnets/")
}

/// Who holds a tunnel address.
pub fn tunnel(addr: std::net::Ipv4Addr) -> String {
    format!("{PREFIX}tunnels/{addr}")
}

/// Every tunnel address.
pub fn tunnels() -> String {
    format!("{PREFIX}tunnels/")
}

/// A network's spec.
pub fn network(name: &str) -> String {
    format!("{PREFIX}networks/{name}")
}

/// Every network.
pub fn networks() -> String {
    format!("{PREFIX}networks/")
}

/// Who has a VNI.
pub fn vni(vni: u32) -> String {
    format!("{PREFIX}vnis/{vni}")
}

/// A network's IPAM keys.
pub fn ipam(network: &str) -> String {
    format!("{PREFIX}ipam/{network}/")
}

/// An endpoint.
pub fn endpoint(network: &str, host: &str, container_id: &str, ifname: &str) -> String {
    format!("{PREFIX}endpoints/{network}/{host}/{container_id}:{ifname}")
}

/// Every endpoint of a network.
pub fn endpoints_of(network: &str) -> String {
    format!("{PREFIX}endpoints/{network}/")
}

/// What a key is, for the watch.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `hosts/<host>`.
    Host(&'a str),
    /// `networks/<name>`.
    Network(&'a str),
    /// `endpoints/<network>/<host>/<id>`.
    Endpoint(EndpointKey<'a>),
    /// `alive/<host>`.
    Alive(&'a str),
    /// Anything else (IPAM, VNIs, and endpoint keys of another shape).
    Other,
}

/// What `key` is.
pub fn kind(key: &str) -> Kind<'_> {
    let Some(rel) = key.strip_prefix(PREFIX) else {
        return Kind::Other;
    };
    if let Some(name) = rel.strip_prefix("networks/") {
        Kind::Network(name)
    } else if let Some(path) = rel.strip_prefix("endpoints/") {
        let mut parts = path.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(network), Some(host), Some(id)) => {
                Kind::Endpoint(EndpointKey { network, host, id })
            }
            _ => Kind::Other,
        }
    } else if let Some(host) = rel.strip_prefix("alive/") {
        Kind::Alive(host)
    } else if let Some(host) = rel.strip_prefix("hosts/") {
        Kind::Host(host)
    } else {
        Kind::Other
    }
}
