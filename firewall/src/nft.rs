//! The nftables backend: scripts for `nft -f -`, built as text (what a user reads back with
//! `nft list table inet netctl`), each applied as one atomic transaction.

use std::path::PathBuf;

use crate::cluster::{self, ClusterRules};
use crate::hostfw::HostChains;
use crate::rules::{NetworkRules, PortForward, Proto, SourceGuard, GUARDED_HOST_PORTS};
use crate::{find_program, run_tool, Backend, Firewall, FirewallError};

/// The table every rule lives in.
pub const TABLE: &str = "inet netctl";

/// The nftables backend.
#[derive(Debug, Clone)]
pub struct Nftables {
    program: PathBuf,
}

impl Default for Nftables {
    fn default() -> Self {
        Nftables::new()
    }
}

impl Nftables {
    /// Uses `nft` from `PATH`, or from /usr/sbin and /sbin when `PATH` lacks it.
    pub fn new() -> Self {
        Nftables {
            program: find_program("nft"),
        }
    }

    /// Whether `nft` runs and the kernel has nf_tables.
    pub fn works(&self) -> bool {
        self.run(&["list", "tables"], None).is_ok_and(|ok| ok.0)
    }

    /// Runs one script as one transaction.
    fn apply(&self, script: &str, what: &str) -> Result<(), FirewallError> {
        let out = self.run(&["-f", "-"], Some(script))?;
        if out.0 {
            Ok(())
        } else {
            Err(FirewallError::Rejected {
                program: "nftables".into(),
                what: what.into(),
                stderr: out.1,
            })
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<(bool, String), FirewallError> {
        let (ok, stderr, _) = run_tool(&self.program, "nftables", args, stdin)?;
        Ok((ok, stderr))
    }

    /// Deletes the empty built-in chains and tables iptables-nft made for netctl's rules
    /// ([`crate::xtables::empty_builtins_script`]).
    pub fn prune_xtables(&self) -> Result<(), FirewallError> {
        let (ok, _, listing) =
            run_tool(&self.program, "nftables", &["-j", "list", "ruleset"], None)?;
        let script = crate::xtables::empty_builtins_script(&listing);
        if !ok || script.is_empty() {
            return Ok(());
        }
        self.apply(
            &script,
            "remove the empty iptables chains made for netctl's rules",
        )
    }

    /// Whether a source guard is left for a port that exists (a deleted port's guard may
    /// still be on its way out).
    fn guards_live_ports(&self) -> Result<bool, FirewallError> {
        let (ok, _, json) = run_tool(
            &self.program,
            "nftables",
            &["-j", "list", "set", "bridge", "netctl", "ports"],
            None,
        )?;
        if !ok {
            return Ok(false);
        }
        let listing: SetListing = serde_json::from_str(&json).map_err(|e| {
            FirewallError::BadValue(format!("nft's listing of the guarded ports: {e}"))
        })?;
        let mut nl = netctl_net::Netlink::new()
            .map_err(|e| FirewallError::BadValue(format!("list the host's links: {e}")))?;
        let mut exists = |i: u64| {
            u32::try_from(i)
                .ok()
                .is_some_and(|i| nl.link_by_index(i).ok().flatten().is_some())
        };
        for port in listing
            .nftables
            .iter()
            .filter_map(|o| o.set.as_ref())
            .flat_map(|s| &s.elem)
        {
            // nft names an index whose interface exists; a bare number may be one gone.
            let live = match port {
                Scalar::Number(i) => exists(*i),
                Scalar::Text(t) => t.parse::<u64>().map_or(true, &mut exists),
            };
            if live {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `nft list table FAMILY NAME`; None when there is no such table.
    fn list_table(&self, family: &str, name: &str) -> Result<Option<String>, FirewallError> {
        let (ok, _, out) = run_tool(
            &self.program,
            "nftables",
            &["list", "table", family, name],
            None,
        )?;
        Ok(ok.then_some(out))
    }
}

/// `nft -j list set bridge netctl macs`: its (index, MAC) elements.
#[derive(Debug, Default, serde::Deserialize)]
struct MacListing {
    #[serde(default)]
    nftables: Vec<MacObject>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct MacObject {
    set: Option<MacElems>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct MacElems {
    #[serde(default)]
    elem: Vec<MacElem>,
}

#[derive(Debug, serde::Deserialize)]
struct MacElem {
    concat: (Scalar, Scalar),
}

/// A value nft prints as a string or a number, depending on its version.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(u64),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Text(t) => f.write_str(t),
            Scalar::Number(n) => write!(f, "{n}"),
        }
    }
}

/// `nft -j list set ...` as far as its elements (interface indexes) go.
#[derive(Debug, Default, serde::Deserialize)]
struct SetListing {
    #[serde(default)]
    nftables: Vec<SetObject>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct SetObject {
    set: Option<SetElems>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct SetElems {
    #[serde(default)]
    elem: Vec<Scalar>,
}

/// Whether nft refused a script because a table, chain or set it names is not there.
fn missing_table(stderr: &str) -> bool {
    stderr.contains("No such file or directory") || stderr.contains("does not exist")
}

/// Whether a table's listing shows nothing of any network: no network chain, no element in
/// any set or map.
pub fn unused(listing: &str) -> bool {
    !listing.contains("elements =")
        && !listing.lines().any(|l| {
            let t = l.trim_start();
            ["chain from_", "chain to_", "chain nat_"]
                .iter()
                .any(|c| t.starts_with(c))
        })
}

/// The port maps: `portmap_<proto><4|6>` keyed by port, `..._ip` keyed by address . port.
fn map_name(p: Proto, v4: bool, by_ip: bool) -> String {
    format!(
        "portmap_{}{}{}",
        p.as_str(),
        if v4 { 4 } else { 6 },
        if by_ip { "_ip" } else { "" }
    )
}

/// The table, its sets and maps, and the base chains with their fixed rules. Flushing and
/// refilling the base chains in the same transaction keeps this idempotent.
pub fn base_script() -> String {
    let mut s = format!("add table {TABLE}\n");
    for (chain, hook) in [
        ("forward", "type filter hook forward priority filter"),
        ("postrouting", "type nat hook postrouting priority srcnat"),
        ("prerouting", "type nat hook prerouting priority dstnat"),
        ("output", "type nat hook output priority -100"),
        ("input", "type filter hook input priority filter"),
    ] {
        s += &format!(
            "add chain {TABLE} {chain} {{ {hook}; policy accept; }}\nflush chain {TABLE} {chain}\n"
        );
    }
    s += &format!("add set {TABLE} bridges {{ type ifname; }}\n");
    s += &format!("add map {TABLE} from_bridge {{ type ifname : verdict; }}\n");
    s += &format!("add map {TABLE} to_bridge {{ type ifname : verdict; }}\n");
    s += &format!("add map {TABLE} nat_from_bridge {{ type ifname : verdict; }}\n");
    s += &format!("add map {TABLE} strict_to {{ type ifname : verdict; }}\n");
    // Every published container port, for routed networks to let in directly.
    s += &format!("add set {TABLE} routed4 {{ type ipv4_addr . inet_proto . inet_service; }}\n");
    s += &format!("add set {TABLE} routed6 {{ type ipv6_addr . inet_proto . inet_service; }}\n");
    s += &format!("add map {TABLE} strict_from {{ type ifname : verdict; }}\n");
    // Bridges route 127.0.0.0/8 (route_localnet, for ports published on the host's
    // loopback), so a container could otherwise send to the host's loopback services. Only
    // replies of connections the host made (to a port published on 127.0.0.1) get in;
    // connections to a published port are DNAT'ed to a container before this.
    s += &format!(
        "add rule {TABLE} input iifname @bridges ip daddr 127.0.0.0/8 ct direction reply accept\n"
    );
    s += &format!("add rule {TABLE} input iifname @bridges ip daddr 127.0.0.0/8 drop\n");
    for (proto, port) in GUARDED_HOST_PORTS {
        let p = proto.as_str();
        s += &format!("add rule {TABLE} input iifname @bridges {p} dport {port} drop\n");
    }
    s += &format!("add rule {TABLE} forward ct state established,related accept\n");
    // Strictly isolated networks first: another network's chain would accept a published
    // port's traffic before theirs were asked.
    s += &format!("add rule {TABLE} forward oifname vmap @strict_to\n");
    s += &format!("add rule {TABLE} forward iifname vmap @strict_from\n");
    s += &format!("add rule {TABLE} forward iifname vmap @from_bridge\n");
    s += &format!("add rule {TABLE} forward oifname vmap @to_bridge\n");
    s +=
        &format!("add rule {TABLE} postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade\n");
    s += &format!("add rule {TABLE} postrouting iifname vmap @nat_from_bridge\n");
    // Loopback destinations arrive from outside only (the host's own packets pass output):
    // another machine sending to 127.0.0.1 with the host's MAC must not reach a port
    // published on 127.0.0.1 (CVE-2020-8558). Not translated, the kernel drops them.
    s += &format!("add rule {TABLE} prerouting ip daddr 127.0.0.0/8 return\n");
    s += &format!("add rule {TABLE} prerouting ip6 daddr ::1 return\n");
    for v4 in [true, false] {
        let (fam, addr, ty) = if v4 {
            ("ip", "ip", "ipv4_addr")
        } else {
            ("ip6", "ip6", "ipv6_addr")
        };
        for p in [Proto::Tcp, Proto::Udp] {
            let (any, by_ip) = (map_name(p, v4, false), map_name(p, v4, true));
            s += &format!("add map {TABLE} {any} {{ type inet_service : {ty} . inet_service; }}\n");
            s += &format!(
                "add map {TABLE} {by_ip} {{ type {ty} . inet_service : {ty} . inet_service; }}\n"
            );
            for chain in ["prerouting", "output"] {
                let pr = p.as_str();
                s += &format!("add rule {TABLE} {chain} fib daddr type local dnat {fam} to {addr} daddr . {pr} dport map @{by_ip}\n");
                s += &format!("add rule {TABLE} {chain} fib daddr type local dnat {fam} to {pr} dport map @{any}\n");
            }
        }
    }
    s
}

/// The network's chains and its entries in the base maps.
pub fn network_script(n: &NetworkRules) -> String {
    let (tag, br) = (n.tag(), &n.bridge);
    let (from, to, nat) = (
        format!("from_{tag}"),
        format!("to_{tag}"),
        format!("nat_{tag}"),
    );
    let mut s = String::new();
    for c in [&from, &to, &nat] {
        s += &format!("add chain {TABLE} {c}\nflush chain {TABLE} {c}\n");
    }
    // Leaving the bridge: stays on it, or goes out unless internal; to another bridge only
    // through a port published there (as in Docker, any network reaches published ports).
    s += &format!("add rule {TABLE} {from} oifname \"{br}\" accept\n");
    if n.internal {
        s += &format!("add rule {TABLE} {from} drop\n");
    }
    s += &format!("add rule {TABLE} {from} ct status dnat accept\n");
    s += &format!("add rule {TABLE} {from} oifname @bridges drop\n");
    // Other engines' bridges (docker0, virbr0 ...) are networks too, not the outside.
    s += &format!("add rule {TABLE} {from} meta oifkind \"bridge\" drop\n");
    // Entering the bridge from elsewhere: only through a published port, or from a trusted
    // host interface, or anything when the network is unprotected.
    s += &format!("add rule {TABLE} {to} ct status dnat accept\n");
    for t in &n.trusted {
        s += &format!("add rule {TABLE} {to} iifname \"{t}\" accept\n");
    }
    let families = [
        (true, "ip", "routed4", "icmp"),
        (false, "ip6", "routed6", "ipv6-icmp"),
    ];
    for (v4, fam, set, icmp) in families {
        if n.policy(v4).routed && !n.internal {
            s += &format!(
                "add rule {TABLE} {to} {fam} daddr . meta l4proto . th dport @{set} accept\n"
            );
            s += &format!("add rule {TABLE} {to} meta l4proto {icmp} accept\n");
        }
    }
    let open = [true, false].map(|v4| n.policy(v4).unprotected && !n.internal);
    if open.contains(&true) {
        s += &format!("add rule {TABLE} {to} iifname @bridges drop\n");
        s += &format!("add rule {TABLE} {to} meta iifkind \"bridge\" drop\n");
        s += &match open {
            [true, true] => format!("add rule {TABLE} {to} accept\n"),
            [true, false] => format!("add rule {TABLE} {to} meta nfproto ipv4 accept\n"),
            _ => format!("add rule {TABLE} {to} meta nfproto ipv6 accept\n"),
        };
    }
    s += &format!("add rule {TABLE} {to} drop\n");
    // Source NAT: hairpin through a published port; everything leaving the host.
    s += &format!("add rule {TABLE} {nat} oifname \"{br}\" ct status dnat masquerade\n");
    if !n.internal {
        for net in n
            .subnets
            .iter()
            .filter(|s| n.policy(s.addr().is_ipv4()).masquerade)
        {
            let fam = if net.addr().is_ipv4() { "ip" } else { "ip6" };
            s += &format!(
                "add rule {TABLE} {nat} {fam} saddr {} oifname != \"{br}\" masquerade\n",
                net.trunc()
            );
        }
    }
    s += &format!("add element {TABLE} bridges {{ \"{br}\" }}\n");
    s += &format!("add element {TABLE} from_bridge {{ \"{br}\" : jump {from} }}\n");
    s += &format!("add element {TABLE} to_bridge {{ \"{br}\" : jump {to} }}\n");
    s += &format!("add element {TABLE} nat_from_bridge {{ \"{br}\" : jump {nat} }}\n");
    if n.strict {
        s += &strict_script(n);
    }
    s
}

/// podman's `isolate=strict`: nothing between this bridge and another, not even through a
/// published port (each chain returns for its own bridge's traffic).
fn strict_script(n: &NetworkRules) -> String {
    let (tag, br) = (n.tag(), &n.bridge);
    let (sto, sfrom) = (format!("sto_{tag}"), format!("sfrom_{tag}"));
    let mut s = String::new();
    for c in [&sto, &sfrom] {
        s += &format!("add chain {TABLE} {c}\nflush chain {TABLE} {c}\n");
    }
    s += &format!("add rule {TABLE} {sto} iifname \"{br}\" return\n");
    s += &format!("add rule {TABLE} {sto} iifname @bridges drop\n");
    s += &format!("add rule {TABLE} {sto} meta iifkind \"bridge\" drop\n");
    s += &format!("add rule {TABLE} {sfrom} oifname \"{br}\" return\n");
    s += &format!("add rule {TABLE} {sfrom} oifname @bridges drop\n");
    s += &format!("add rule {TABLE} {sfrom} meta oifkind \"bridge\" drop\n");
    s += &format!("add element {TABLE} strict_to {{ \"{br}\" : jump {sto} }}\n");
    s += &format!("add element {TABLE} strict_from {{ \"{br}\" : jump {sfrom} }}\n");
    s
}

/// Removes the network's entries and chains; each is first added, so that removing what is
/// already gone is not an error.
pub fn teardown_script(n: &NetworkRules) -> String {
    let mut s = base_script();
    s += &network_script(n);
    let (tag, br) = (n.tag(), &n.bridge);
    for map in ["from_bridge", "to_bridge", "nat_from_bridge", "bridges"] {
        s += &format!("delete element {TABLE} {map} {{ \"{br}\" }}\n");
    }
    for c in ["from", "to", "nat"] {
        s += &format!("delete chain {TABLE} {c}_{tag}\n");
    }
    if n.strict {
        for map in ["strict_to", "strict_from"] {
            s += &format!("delete element {TABLE} {map} {{ \"{br}\" }}\n");
        }
        for c in ["sto", "sfrom"] {
            s += &format!("delete chain {TABLE} {c}_{tag}\n");
        }
    }
    s
}

fn port_element(p: &PortForward) -> Option<(String, String)> {
    let v4 = p.container_ip.is_ipv4();
    if p.host_ip.is_some_and(|h| h.is_ipv4() != v4) {
        return None;
    }
    let map = map_name(p.proto, v4, p.host_ip.is_some());
    let key = match p.host_ip {
        Some(h) => format!("{h} . {}", p.host_port),
        None => p.host_port.to_string(),
    };
    Some((
        map,
        format!("{key} : {} . {}", p.container_ip, p.container_port),
    ))
}

/// The bridge-family table that checks what guarded ports send, by interface index: ports
/// in `ports` may only send frames whose (port, source MAC) is in `macs`, ARP whose sender
/// MAC and address are theirs, IPv4 and IPv6 from their addresses (`ips4`, `ips6`; the
/// unspecified source and IPv6 link-local are let through for address configuration), and no
/// VLAN tags. The name-keyed sets of earlier versions (`guarded`, `allowed`) are taken away.
pub fn source_guard_base() -> String {
    let t = "bridge netctl";
    let mut s = format!(
        "add table {t}\n\
         add chain {t} prerouting {{ type filter hook prerouting priority -300; policy accept; }}\n\
         flush chain {t} prerouting\n\
         add set {t} guarded {{ type ifname; }}\n\
         delete set {t} guarded\n\
         add set {t} allowed {{ type ifname . ether_addr; }}\n\
         delete set {t} allowed\n\
         add set {t} ports {{ type iface_index; }}\n\
         add set {t} macs {{ type iface_index . ether_addr; }}\n\
         add set {t} ips4 {{ type iface_index . ipv4_addr; }}\n\
         add set {t} ips6 {{ type iface_index . ipv6_addr; }}\n"
    );
    for rule in [
        "ether type { 8021q, 8021ad } drop",
        "iif . ether saddr != @macs drop",
        "iif . arp saddr ether != @macs drop",
        "arp saddr ip != 0.0.0.0 iif . arp saddr ip != @ips4 drop",
        "ip saddr != 0.0.0.0 iif . ip saddr != @ips4 drop",
        "ip6 saddr != { ::, fe80::/10 } iif . ip6 saddr != @ips6 drop",
    ] {
        s += &format!("add rule {t} prerouting iif @ports {rule}\n");
    }
    s
}

/// The guard's elements, each line `{verb} element ...`; the port is guarded last.
fn source_guard_elements(g: &SourceGuard, verb: &str) -> String {
    let (t, i) = ("bridge netctl", g.index);
    let mut s = format!("{verb} element {t} macs {{ {i} . {} }}\n", g.mac);
    for ip in &g.ips {
        let set = if ip.is_ipv4() { "ips4" } else { "ips6" };
        s += &format!("{verb} element {t} {set} {{ {i} . {ip} }}\n");
    }
    s + &format!("{verb} element {t} ports {{ {i} }}\n")
}

/// Adds the ports' map elements, and their container ports to the routed sets.
pub fn add_ports_script(ports: &[PortForward]) -> String {
    let mut s: String = ports
        .iter()
        .filter_map(port_element)
        .map(|(map, el)| format!("add element {TABLE} {map} {{ {el} }}\n"))
        .collect();
    for (set, el) in ports.iter().filter_map(routed_element) {
        s += &format!("add element {TABLE} {set} {{ {el} }}\n");
    }
    s
}

/// A published port's element of the routed sets: container address, protocol, port.
/// None for a mapping that is not published (a host address of the other family).
fn routed_element(p: &PortForward) -> Option<(&'static str, String)> {
    port_element(p)?;
    let set = if p.container_ip.is_ipv4() {
        "routed4"
    } else {
        "routed6"
    };
    Some((
        set,
        format!(
            "{} . {} . {}",
            p.container_ip,
            p.proto.as_str(),
            p.container_port
        ),
    ))
}

/// Removes the ports' map elements (added first, so a missing one is no error; one that
/// points at another container makes the add fail and nothing is removed).
pub fn del_ports_script(ports: &[PortForward]) -> String {
    let routed: String = ports
        .iter()
        .filter_map(routed_element)
        .map(|(set, el)| {
            format!(
                "add element {TABLE} {set} {{ {el} }}\ndelete element {TABLE} {set} {{ {el} }}\n"
            )
        })
        .collect();
    routed
        + &ports
            .iter()
            .filter_map(port_element)
            .map(|(map, el)| {
                let key = el.split(" : ").next().unwrap_or_default().to_string();
                format!(
                "add element {TABLE} {map} {{ {el} }}\ndelete element {TABLE} {map} {{ {key} }}\n"
            )
            })
            .collect::<String>()
}

impl Firewall for Nftables {
    fn backend(&self) -> Backend {
        Backend::Nftables
    }

    fn setup_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        let script = base_script() + &network_script(net);
        self.apply(
            &script,
            &format!("set up the rules of bridge {}", net.bridge),
        )?;
        HostChains::detect().allow(&net.bridge)
    }

    fn teardown_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        HostChains::detect().disallow(&net.bridge)?;
        self.apply(
            &teardown_script(net),
            &format!("remove the rules of bridge {}", net.bridge),
        )
    }

    fn network_present(&self, net: &NetworkRules) -> Result<bool, FirewallError> {
        let chain = format!("to_{}", net.tag());
        Ok(self
            .run(&["list", "chain", "inet", "netctl", &chain], None)?
            .0
            && HostChains::detect().present(&net.bridge)?)
    }

    fn ports_present(&self, ports: &[PortForward]) -> Result<bool, FirewallError> {
        for (map, el) in ports.iter().filter_map(port_element) {
            let key = el.split(" : ").next().unwrap_or_default();
            let get = format!("get element {TABLE} {map} {{ {key} }}");
            let args: Vec<&str> = get.split(' ').collect();
            if !self.run(&args, None)?.0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn add_ports(&self, ports: &[PortForward]) -> Result<(), FirewallError> {
        self.publish(ports, None)
    }

    /// One transaction for the guard and the ports (one `nft` run per ADD).
    fn publish(
        &self,
        ports: &[PortForward],
        guard: Option<&SourceGuard>,
    ) -> Result<(), FirewallError> {
        let guard_elements = guard.map_or(String::new(), |g| source_guard_elements(g, "add"));
        let script = guard_elements + &add_ports_script(ports);
        if script.is_empty() {
            return Ok(());
        }
        // The guard's table is made once, not by every ADD (re-making its rules costs nft a
        // dozen milliseconds): only when the elements find no table to go into.
        let applied = match self.apply(&script, "publish ports") {
            Err(FirewallError::Rejected { stderr, .. })
                if guard.is_some() && missing_table(&stderr) =>
            {
                self.apply(&(source_guard_base() + &script), "publish ports")
            }
            other => other,
        };
        applied.map_err(|e| match e {
            FirewallError::Rejected { stderr, .. } if stderr.contains("File exists") => {
                let list: Vec<String> = ports.iter().map(PortForward::describe).collect();
                FirewallError::PortInUse(list.join(", "))
            }
            other => other,
        })
    }

    fn del_ports(&self, ports: &[PortForward]) -> Result<(), FirewallError> {
        if ports.is_empty()
            || self
                .apply(&del_ports_script(ports), "withdraw ports")
                .is_ok()
        {
            return Ok(());
        }
        // Some port now belongs to another container: withdraw ours one by one.
        for p in ports {
            let _ = self.apply(
                &del_ports_script(std::slice::from_ref(p)),
                "withdraw a port",
            );
        }
        Ok(())
    }

    fn add_source_guard(&self, g: &SourceGuard) -> Result<(), FirewallError> {
        let script = source_guard_base() + &source_guard_elements(g, "add");
        self.apply(&script, &format!("guard the sources of port {}", g.port))
    }

    fn missing_source_guards<'a>(
        &self,
        guards: &'a [SourceGuard],
    ) -> Result<Vec<&'a SourceGuard>, FirewallError> {
        if guards.is_empty() {
            return Ok(Vec::new());
        }
        let (ok, _, json) = run_tool(
            &self.program,
            "nftables",
            &["-j", "list", "set", "bridge", "netctl", "macs"],
            None,
        )?;
        let listing: MacListing = match ok {
            // What cannot be read is no reason to add anything (that would wake the watcher).
            true => serde_json::from_str(&json).map_err(|e| {
                FirewallError::BadValue(format!("nft's listing of the guards: {e}"))
            })?,
            false => MacListing::default(), // no table or set: every guard is missing
        };
        let present: std::collections::HashSet<(String, String)> = listing
            .nftables
            .iter()
            .filter_map(|o| o.set.as_ref())
            .flat_map(|s| &s.elem)
            .map(|e| {
                (
                    e.concat.0.to_string(),
                    e.concat.1.to_string().to_ascii_lowercase(),
                )
            })
            .collect();
        // nft shows an index by the interface's name while it exists, else as a number.
        let has = |g: &SourceGuard, port: String| present.contains(&(port, g.mac.to_string()));
        Ok(guards
            .iter()
            .filter(|g| !has(g, g.index.to_string()) && !has(g, g.port.to_string()))
            .collect())
    }

    /// Deleting set elements makes the kernel wait for an RCU grace period (~15 ms here),
    /// and a guard keyed by a deleted port's index matches nothing any more: the deletion
    /// runs on after this returns (a DEL is not kept waiting), in an `nft` of its own.
    fn del_source_guard(&self, g: &SourceGuard) -> Result<(), FirewallError> {
        if g.index == 0 {
            return Ok(()); // a guard of a port whose index was never known: nothing keyed by it
        }
        // Added first, so that deleting what is already gone is no error.
        let script = source_guard_elements(g, "add") + &source_guard_elements(g, "delete");
        crate::start_tool(&self.program, "nftables", &["-f", "-"], &script)
    }

    fn remove_if_unused(&self) -> Result<(), FirewallError> {
        let mut script = String::new();
        if self
            .list_table("inet", "netctl")?
            .is_some_and(|l| unused(&l))
        {
            script += &format!("delete table {TABLE}\n");
        }
        if self.list_table("bridge", "netctl")?.is_some() && !self.guards_live_ports()? {
            script += "delete table bridge netctl\n";
        }
        if !script.is_empty() {
            self.apply(
                &script,
                "remove netctl's tables, which nothing uses any more",
            )?;
        }
        self.prune_xtables()
    }

    fn set_cluster(&self, rules: &ClusterRules) -> Result<(), FirewallError> {
        self.apply(&cluster::nft_script(rules), "set the cluster's rules")
    }

    fn clear_cluster(&self) -> Result<(), FirewallError> {
        self.apply(&cluster::nft_clear_script(), "remove the cluster's rules")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    /// Prints the scripts, for trying them with `nft -c -f`.
    #[test]
    fn scripts_are_printable() {
        let n = net(false);
        let all = base_script() + &network_script(&n) + &teardown_script(&n);
        assert!(all
            .lines()
            .all(|l| l.starts_with("add ") || l.starts_with("flush ") || l.starts_with("delete ")));
        if std::env::var_os("NETCTL_PRINT_NFT").is_some() {
            println!("{}", base_script() + &network_script(&n));
        }
    }

    use super::*;

    /// Runs `script` through `nft -c -f -` (check only) in a network namespace of its own.
    fn nft_accepts(script: &str) -> Result<(), String> {
        use std::io::Write;
        let mut child = std::process::Command::new("unshare")
            .args(["--net", "--", "nft", "-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("run unshare nft: {e} (the firewall tests need root and nftables)")
            })?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}\n{script}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Every script the backend makes, for every kind of network, port and guard, is one
    /// that nft accepts.
    #[test]
    fn every_generated_script_passes_nft_check() {
        let ports = [
            PortForward {
                host_ip: None,
                host_port: 8080,
                container_ip: "172.18.0.2".parse().unwrap(),
                container_port: 80,
                proto: Proto::Tcp,
            },
            PortForward {
                host_ip: Some("::1".parse().unwrap()),
                host_port: 5353,
                container_ip: "fd00:18::2".parse().unwrap(),
                container_port: 53,
                proto: Proto::Udp,
            },
        ];
        let guard = SourceGuard {
            port: "veth0123".parse().unwrap(),
            index: 7,
            mac: "02:42:ac:12:00:02".parse().unwrap(),
            ips: vec!["172.18.0.2".parse().unwrap(), "fd00:18::2".parse().unwrap()],
        };
        let cluster = ClusterRules {
            peers: vec!["10.99.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            store: vec!["10.99.0.1:2379".parse().unwrap()],
            tunnel: Some(crate::TunnelRules {
                device: "netctl-crypt".parse().unwrap(),
                port: 51821,
                encrypted_vnis: vec![4096, 4097],
            }),
        };
        let mut scripts = vec![
            cluster::nft_script(&cluster),
            cluster::nft_script(&ClusterRules::default()),
            cluster::nft_clear_script(),
            add_ports_script(&ports),
            del_ports_script(&ports),
            source_guard_base() + &source_guard_elements(&guard, "add"),
            source_guard_base()
                + &source_guard_elements(&guard, "add")
                + &source_guard_elements(&guard, "delete"),
        ];
        for internal in [false, true] {
            scripts.push(base_script() + &network_script(&net(internal)));
            scripts.push(teardown_script(&net(internal)));
        }
        let shaped = NetworkRules {
            routed: true,
            unprotected: true,
            trusted: vec!["uplink".parse().unwrap()],
            strict: true,
            ..net(false)
        };
        scripts.push(base_script() + &network_script(&shaped));
        scripts.push(teardown_script(&shaped));
        for (i, s) in scripts.iter().enumerate() {
            let full = if s.starts_with("add table") || s.contains("bridge netctl") {
                s.clone()
            } else {
                base_script() + s
            };
            if let Err(e) = nft_accepts(&full) {
                panic!("script {i} refused: {e}");
            }
        }
    }

    fn net(internal: bool) -> NetworkRules {
        NetworkRules {
            bridge: "br-0123".parse().unwrap(),
            subnets: vec![
                "172.18.0.0/16".parse().unwrap(),
                "fd00:18::/64".parse().unwrap(),
            ],
            masquerade: true,
            internal,
            unprotected: false,
            trusted: Vec::new(),
            strict: false,
            routed: false,
            ipv6: None,
        }
    }

    #[test]
    fn nothing_from_a_bridge_reaches_the_hosts_loopback() {
        assert!(base_script()
            .contains("add rule inet netctl input iifname @bridges ip daddr 127.0.0.0/8 drop"));
    }

    #[test]
    fn trusted_interfaces_and_unprotected_networks_let_traffic_in_but_not_other_bridges() {
        let n = NetworkRules {
            unprotected: true,
            trusted: vec!["uplink".parse().unwrap()],
            ..net(false)
        };
        let s = network_script(&n);
        let tag = n.tag();
        let at = |rule: &str| {
            s.find(&format!("add rule inet netctl to_{tag} {rule}\n"))
                .unwrap_or_else(|| panic!("{rule} missing in {s}"))
        };
        assert!(at("iifname \"uplink\" accept") < at("iifname @bridges drop"));
        assert!(at("iifname @bridges drop") < at("accept"));
        assert!(at("accept") < at("drop"));
        let plain = network_script(&net(false));
        assert!(!plain.contains(&format!("to_{tag} accept")), "{plain}");
    }

    #[test]
    fn a_network_gets_isolation_inbound_protection_and_masquerade() {
        let s = network_script(&net(false));
        let tag = net(false).tag();
        assert!(tag.starts_with("br_0123_"), "{tag}");
        assert!(s.contains(&format!(
            "add rule inet netctl from_{tag} oifname @bridges drop"
        )));
        assert!(s.contains(&format!(
            "add rule inet netctl to_{tag} ct status dnat accept"
        )));
        assert!(s.contains(&format!(
            "add rule inet netctl nat_{tag} ip saddr 172.18.0.0/16 oifname != \"br-0123\" masquerade"
        )));
        assert!(s.contains(&format!(
            "add rule inet netctl nat_{tag} ip6 saddr fd00:18::/64 oifname != \"br-0123\" masquerade"
        )));
        assert!(s.contains(&format!(
            "add element inet netctl nat_from_bridge {{ \"br-0123\" : jump nat_{tag} }}"
        )));
    }

    /// Docker 28's `gateway_mode_ipv4=nat` with `gateway_mode_ipv6=routed`: IPv4 leaves
    /// masqueraded and comes in through published ports only; IPv6 is not masqueraded and
    /// reaches the containers' published ports (and ICMPv6) at their own addresses.
    #[test]
    fn each_family_follows_its_own_gateway_mode() {
        let n = NetworkRules {
            ipv6: Some(crate::FamilyPolicy {
                masquerade: false,
                unprotected: false,
                routed: true,
            }),
            ..net(false)
        };
        let (s, tag) = (network_script(&n), n.tag());
        assert!(s.contains(&format!("nat_{tag} ip saddr 172.18.0.0/16 oifname")));
        assert!(!s.contains(&format!("nat_{tag} ip6 saddr")), "{s}");
        assert!(s.contains(&format!(
            "to_{tag} ip6 daddr . meta l4proto . th dport @routed6 accept"
        )));
        assert!(s.contains(&format!("to_{tag} meta l4proto ipv6-icmp accept")));
        assert!(
            !s.contains("@routed4") && !s.contains("l4proto icmp accept"),
            "{s}"
        );
        let open_v4 = NetworkRules {
            unprotected: true,
            ipv6: Some(crate::FamilyPolicy {
                masquerade: true,
                ..Default::default()
            }),
            ..net(false)
        };
        let s = network_script(&open_v4);
        assert!(
            s.contains(&format!("to_{tag} meta nfproto ipv4 accept")),
            "{s}"
        );
        assert!(!s.contains(&format!("to_{tag} accept")), "{s}");
    }

    #[test]
    fn an_internal_network_drops_everything_leaving_and_never_masquerades() {
        let s = network_script(&net(true));
        let tag = net(true).tag();
        assert!(s.contains(&format!("add rule inet netctl from_{tag} drop")));
        assert!(!s.contains("!= \"br-0123\" masquerade"));
    }

    #[test]
    fn chains_of_similar_bridge_names_differ() {
        let a = NetworkRules {
            bridge: "br-x".parse().unwrap(),
            ..net(false)
        };
        let b = NetworkRules {
            bridge: "br_x".parse().unwrap(),
            ..net(false)
        };
        assert_ne!(a.tag(), b.tag());
    }

    #[test]
    fn ports_go_to_the_map_of_their_family_protocol_and_host_ip() {
        let p = PortForward {
            host_ip: None,
            host_port: 8080,
            container_ip: "172.18.0.2".parse().unwrap(),
            container_port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(
            add_ports_script(&[p]),
            "add element inet netctl portmap_tcp4 { 8080 : 172.18.0.2 . 80 }\nadd element inet netctl routed4 { 172.18.0.2 . tcp . 80 }\n"
        );
        let local = PortForward {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            proto: Proto::Udp,
            ..p
        };
        assert_eq!(
            add_ports_script(&[local]),
            "add element inet netctl portmap_udp4_ip { 127.0.0.1 . 8080 : 172.18.0.2 . 80 }\nadd element inet netctl routed4 { 172.18.0.2 . udp . 80 }\n"
        );
        let mixed = PortForward {
            host_ip: Some("::1".parse().unwrap()),
            ..p
        };
        assert!(add_ports_script(&[mixed]).is_empty());
        assert!(del_ports_script(&[p]).contains("delete element inet netctl portmap_tcp4 { 8080 }"));
    }

    #[test]
    fn teardown_adds_before_deleting_so_it_is_idempotent() {
        let s = teardown_script(&net(false));
        let add = s.find("add element inet netctl bridges").unwrap();
        let del = s.find("delete element inet netctl bridges").unwrap();
        assert!(add < del);
    }
}
