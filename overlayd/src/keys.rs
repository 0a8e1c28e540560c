//! The etcd keys, one builder each (docs/overlay.md lists them).

use netctl_overlay_api::PREFIX;

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
    /// `networks/<name>`.
    Network(&'a str),
    /// `endpoints/<network>/<host>/<id>`.
    Endpoint,
    /// `alive/<host>`.
    Alive(&'a str),
    /// Anything else (hosts, IPAM, VNIs).
    Other,
}

/// What `key` is.
pub fn kind(key: &str) -> Kind<'_> {
    let Some(rel) = key.strip_prefix(PREFIX) else {
        return Kind::Other;
    };
    if let Some(name) = rel.strip_prefix("networks/") {
        Kind::Network(name)
    } else if rel.starts_with("endpoints/") {
        Kind::Endpoint
    } else if let Some(host) = rel.strip_prefix("alive/") {
        Kind::Alive(host)
    } else {
        Kind::Other
    }
}
