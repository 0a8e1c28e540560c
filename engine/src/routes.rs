//! The container's default route, as Docker keeps it: one per address family, via the
//! attached network with the highest `--gw-priority` (Docker 28), ties to the name that
//! sorts first, among those that give one (internal networks give none). Each ADD installs its network's default route over the last one, and a DEL
//! takes its route away with the interface, so the engine settles the routes after every
//! attach and detach.

use std::net::IpAddr;

use ipnet::IpNet;
use netctl_net::{Netlink, RouteSpec};

use crate::container::{Container, Endpoint, NetMode};
use crate::engine::Engine;
use crate::error::{Context, Error, Result};

/// The endpoint and gateway that carry the default route of one family, if any does.
pub fn default_route_for(endpoints: &[Endpoint], v4: bool) -> Option<(&Endpoint, IpAddr)> {
    let mut eps: Vec<&Endpoint> = endpoints.iter().filter(|e| !e.pending).collect();
    eps.sort_by(|a, b| {
        b.gw_priority
            .cmp(&a.gw_priority)
            .then_with(|| a.network.cmp(&b.network))
    });
    eps.into_iter().find_map(|e| {
        e.default_via
            .iter()
            .find(|g| g.is_ipv4() == v4)
            .map(|g| (e, *g))
    })
}

/// One default route a container should have: through `gateway` on interface `ifname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    /// The interface in the container.
    pub ifname: String,
    /// The next hop.
    pub gateway: IpAddr,
}

/// The default routes [`default_route_for`] names for `endpoints`, IPv4 first.
pub fn default_routes(endpoints: &[Endpoint]) -> Vec<DefaultRoute> {
    [true, false]
        .into_iter()
        .filter_map(|v4| default_route_for(endpoints, v4))
        .map(|(ep, gateway)| DefaultRoute {
            ifname: ep.ifname.clone(),
            gateway,
        })
        .collect()
}

/// Makes the container's default routes the ones [`default_route_for`] names, removing any
/// other default route of the family.
pub fn settle(engine: &Engine, c: &Container) -> Result<()> {
    if c.config.net_mode != NetMode::Private {
        return Ok(());
    }
    let routes = default_routes(&c.state.endpoints);
    engine
        .sys
        .set_default_routes(&engine.netns_path(&c.config.id), &routes)
        .ctx(|| format!("set the default route of {}", c.config.name))
}

/// In the container's namespace: each route in place, every other default route of its
/// family gone.
pub(crate) fn apply_here(routes: &[DefaultRoute]) -> Result<()> {
    let mut nl = Netlink::new()?;
    for r in routes {
        let any: IpNet = match r.gateway {
            IpAddr::V4(_) => IpNet::V4(Default::default()),
            IpAddr::V6(_) => IpNet::V6(Default::default()),
        };
        let link = nl
            .link_by_name(&r.ifname)?
            .ok_or_else(|| Error::State(format!("{} is not in the container", r.ifname)))?;
        let want = RouteSpec {
            dst: any,
            gw: Some(r.gateway),
            oif: link.index,
        };
        nl.add_route(&want, true)?;
        for other in nl
            .routes()?
            .into_iter()
            .filter(|r| r.dst == any && *r != want)
        {
            nl.del_route(&other)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ep(network: &str, via: &[&str], pending: bool) -> Endpoint {
        Endpoint {
            network: network.into(),
            ifname: format!("eth-{network}"),
            default_via: via.iter().map(|g| g.parse().unwrap()).collect(),
            pending,
            ..Endpoint::default()
        }
    }

    #[test]
    fn the_highest_gw_priority_wins_before_names() {
        let mut web = ep("web", &["172.18.0.1"], false);
        web.gw_priority = 10;
        let mut low = ep("aaa", &["172.20.0.1"], false);
        low.gw_priority = -1;
        let eps = [low, ep("app", &["172.19.0.1"], false), web];
        assert_eq!(default_route_for(&eps, true).unwrap().0.network, "web");
        assert_eq!(default_route_for(&eps[..2], true).unwrap().0.network, "app");
    }

    #[test]
    fn the_network_that_sorts_first_and_gives_a_route_carries_it() {
        let eps = [
            ep("web", &["172.18.0.1"], false),
            ep("app", &["172.19.0.1", "fd00::1"], false),
            ep("aaa-internal", &[], false),
            ep("000", &["10.0.0.1"], true),
        ];
        let (e, gw) = default_route_for(&eps, true).unwrap();
        assert_eq!(
            (e.network.as_str(), gw.to_string().as_str()),
            ("app", "172.19.0.1")
        );
        let (e, _) = default_route_for(&eps, false).unwrap();
        assert_eq!(e.network, "app");
        assert!(
            default_route_for(&eps[2..3], true).is_none(),
            "internal only: none"
        );
    }
}
