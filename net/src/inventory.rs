//! What a namespace has: its interfaces and addresses, as a CNI result.

use netctl_cni::{Interface, IpConfig, Success};

use crate::error::NetError;
use crate::netlink::Netlink;

/// The interfaces of the namespace behind `nl` (loopback included when `with_lo`) and their
/// addresses, as a CNI result; `sandbox` is set on every interface when given.
pub fn namespace_result(
    nl: &mut Netlink,
    sandbox: Option<&str>,
    with_lo: bool,
) -> Result<Success, NetError> {
    let links: Vec<_> = nl
        .links()?
        .into_iter()
        .filter(|l| with_lo || l.name != "lo")
        .collect();
    let addrs = nl.addresses(None)?;
    let mut out = Success::default();
    for (i, l) in links.iter().enumerate() {
        out.interfaces.push(Interface {
            name: l.name.clone(),
            mac: l.mac.clone(),
            mtu: l.mtu,
            sandbox: sandbox.map(str::to_string),
            ..Interface::default()
        });
        out.ips.extend(
            addrs
                .iter()
                .filter(|a| a.index == l.index)
                .map(|a| IpConfig {
                    address: a.net,
                    gateway: None,
                    interface: Some(i),
                }),
        );
    }
    Ok(out)
}
