//! What one asker can resolve: the names of every network its container is attached to,
//! with the addresses behind each name and a counter that rotates their order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use netctl_dnsrecords::Record;

/// The addresses behind one name (boxed slices: 16 bytes each, no spare capacity, since a
/// server may hold tens of thousands of names).
#[derive(Debug, Default)]
pub struct Answers {
    /// IPv4 addresses, no duplicates.
    pub v4: Box<[Ipv4Addr]>,
    /// IPv6 addresses, no duplicates.
    pub v6: Box<[Ipv6Addr]>,
    next: AtomicUsize,
}

/// Addresses gathered for a name while a view is built.
#[derive(Default)]
struct Gathering {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

impl Gathering {
    fn add(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) if !self.v4.contains(&a) => self.v4.push(a),
            IpAddr::V6(a) if !self.v6.contains(&a) => self.v6.push(a),
            _ => {}
        }
    }
}

impl Answers {
    /// Where this answer's rotation starts; each call moves it on by one (round robin).
    pub fn rotation(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// The names one asker sees.
#[derive(Debug, Default)]
pub struct View {
    /// Lowercase names without the trailing dot.
    pub names: HashMap<Box<str>, Answers>,
    /// Address to `name.network`, for PTR.
    pub ptr: HashMap<IpAddr, Box<str>>,
    /// Whether names it does not know may be forwarded upstream (not on internal networks).
    pub forward: bool,
}

impl View {
    fn build<'a>(records: impl Iterator<Item = &'a Record>) -> View {
        let mut v = View::default();
        let mut gathered: HashMap<String, Gathering> = HashMap::new();
        for r in records {
            v.forward |= !r.internal;
            for name in r.names() {
                let e = gathered.entry(name).or_default();
                for ip in &r.ips {
                    e.add(*ip);
                }
            }
            let label = r.name.clone().unwrap_or_else(|| r.short_id().to_string());
            for ip in &r.ips {
                v.ptr.entry(*ip).or_insert_with(|| {
                    format!("{}.{}", label.to_ascii_lowercase(), r.network).into()
                });
            }
        }
        v.names = gathered
            .into_iter()
            .map(|(k, g)| {
                let a = Answers {
                    v4: g.v4.into(),
                    v6: g.v6.into(),
                    next: AtomicUsize::new(0),
                };
                (k.into_boxed_str(), a)
            })
            .collect();
        v
    }
}

/// Every view, by the socket a query arrives on.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// For the listener inside a container's namespace.
    pub by_netns: HashMap<PathBuf, Arc<View>>,
    /// For a gateway listener: the view of the container that owns the source address.
    pub by_ip: HashMap<IpAddr, Arc<View>>,
    /// For a gateway listener and an unknown source: the network's own names.
    pub by_network: HashMap<String, Arc<View>>,
    /// A container's own upstream resolvers, by its namespace.
    pub upstreams_by_netns: HashMap<PathBuf, Vec<SocketAddr>>,
    /// A container's own upstream resolvers, by its addresses (queries to a gateway).
    pub upstreams_by_ip: HashMap<IpAddr, Vec<SocketAddr>>,
    /// The addresses of each network's members: the only askers a gateway answers besides
    /// the host itself.
    pub members: HashMap<String, HashSet<IpAddr>>,
    /// The host's own addresses, which a gateway answers too (filled in by the server).
    pub host: HashSet<IpAddr>,
}

impl Snapshot {
    /// Whether `ip` is an address of a member of `network`.
    pub fn is_member(&self, network: &str, ip: &IpAddr) -> bool {
        self.members.get(network).is_some_and(|m| m.contains(ip))
    }
}

impl Snapshot {
    /// Builds every view from the records; containers attached to the same set of networks
    /// share one view.
    pub fn build(records: &[&Record]) -> Snapshot {
        let mut networks_of: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        let mut members_of: HashMap<&str, Vec<&Record>> = HashMap::new();
        for r in records {
            networks_of
                .entry(&r.container_id)
                .or_default()
                .insert(&r.network);
            members_of.entry(&r.network).or_default().push(r);
        }
        // One view per distinct set of networks, built from those networks' records only:
        // linear in the records, however many networks there are.
        let mut cache: HashMap<Vec<String>, Arc<View>> = HashMap::new();
        let mut view_for = |nets: &BTreeSet<&str>| {
            let key: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
            cache
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(View::build(
                        nets.iter()
                            .filter_map(|n| members_of.get(n))
                            .flatten()
                            .copied(),
                    ))
                })
                .clone()
        };
        let mut s = Snapshot::default();
        for r in records {
            let Some(nets) = networks_of.get(r.container_id.as_str()) else {
                continue;
            };
            let view = view_for(nets);
            if let Some(ns) = &r.netns {
                s.by_netns.insert(ns.clone(), view.clone());
            }
            for ip in &r.ips {
                s.by_ip.insert(*ip, view.clone());
            }
            if !r.upstreams.is_empty() {
                let ups: Vec<SocketAddr> = r
                    .upstreams
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, 53))
                    .collect();
                if let Some(ns) = &r.netns {
                    s.upstreams_by_netns.insert(ns.clone(), ups.clone());
                }
                for ip in &r.ips {
                    s.upstreams_by_ip.insert(*ip, ups.clone());
                }
            }
            s.members
                .entry(r.network.clone())
                .or_default()
                .extend(r.ips.iter().copied());
            let own: BTreeSet<&str> = [r.network.as_str()].into();
            s.by_network
                .entry(r.network.clone())
                .or_insert_with(|| view_for(&own));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(net: &str, id: &str, name: &str, alias: &str, ip: &str) -> Record {
        Record {
            network: net.into(),
            container_id: id.into(),
            ifname: "eth0".into(),
            name: Some(name.into()),
            aliases: vec![alias.into()],
            ips: vec![ip.parse().unwrap()],
            netns: Some(PathBuf::from(format!("/ns/{id}"))),
            gateways: vec![],
            internal: net == "int",
            ..Default::default()
        }
    }

    #[test]
    fn an_alias_behind_three_containers_has_three_addresses_and_rotates() {
        let rs = [
            rec("web", "a", "a1", "web", "172.18.0.2"),
            rec("web", "b", "b1", "web", "172.18.0.3"),
            rec("web", "c", "c1", "web", "172.18.0.4"),
        ];
        let s = Snapshot::build(&rs.iter().collect::<Vec<_>>());
        let v = &s.by_netns[&PathBuf::from("/ns/a")];
        assert_eq!(v.names["web"].v4.len(), 3);
        assert_eq!(v.names["web.web"].v4.len(), 3);
        assert_eq!(
            v.ptr[&"172.18.0.3".parse::<IpAddr>().unwrap()],
            "b1.web".into()
        );
        let first = v.names["web"].rotation();
        assert_eq!(v.names["web"].rotation(), first + 1);
    }

    #[test]
    fn a_container_sees_only_the_networks_it_is_attached_to() {
        let rs = [
            rec("a", "x", "x", "xa", "10.1.0.2"),
            rec("b", "x", "x", "xb", "10.2.0.2"),
            rec("b", "y", "y", "yb", "10.2.0.3"),
            rec("int", "z", "z", "zi", "10.3.0.2"),
        ];
        let s = Snapshot::build(&rs.iter().collect::<Vec<_>>());
        let x = &s.by_netns[&PathBuf::from("/ns/x")];
        assert!(x.names.contains_key("y") && x.names.contains_key("xa"));
        assert_eq!(
            x.names["x"].v4.len(),
            2,
            "x has an address on both networks"
        );
        assert!(!x.names.contains_key("z"));
        let z = &s.by_netns[&PathBuf::from("/ns/z")];
        assert!(
            !z.names.contains_key("x") && !z.forward,
            "internal: no forwarding"
        );
        assert!(Arc::ptr_eq(
            &s.by_ip[&"10.2.0.2".parse::<IpAddr>().unwrap()],
            x
        ));
        assert!(s.is_member("b", &"10.2.0.3".parse().unwrap()));
        assert!(
            !s.is_member("a", &"10.2.0.3".parse().unwrap()),
            "y is not on a"
        );
    }

    #[test]
    fn a_containers_own_upstreams_are_found_by_its_namespace_and_addresses() {
        let mut r = rec("web", "c1", "a", "x", "172.18.0.2");
        r.netns = Some(PathBuf::from("/run/netctl/netns/c1"));
        r.upstreams = vec!["10.0.0.53".parse().unwrap()];
        let other = rec("web", "c2", "b", "x", "172.18.0.3");
        let s = Snapshot::build(&[&r, &other]);
        let want = vec![SocketAddr::from(([10, 0, 0, 53], 53))];
        assert_eq!(
            s.upstreams_by_netns
                .get(&PathBuf::from("/run/netctl/netns/c1")),
            Some(&want)
        );
        assert_eq!(
            s.upstreams_by_ip.get(&"172.18.0.2".parse().unwrap()),
            Some(&want)
        );
        assert!(!s
            .upstreams_by_ip
            .contains_key(&"172.18.0.3".parse().unwrap()));
    }
}
