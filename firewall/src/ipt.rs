//! The iptables backend, for hosts where iptables (nft or legacy flavour) rules the
//! firewall: the same semantics as [`crate::Nftables`], in chains of netctl's own, each
//! operation one `*-restore --noflush` transaction per family.
//!
//! Per network (`<h>` = a hash of the bridge's name), jumped to first from the built-in
//! chains: `NETCTL-F-<h>` in filter FORWARD (replies, the bridge to itself, published ports
//! in, nothing else in, isolation from every other bridge, then out), `NETCTL-I-<h>` (the
//! isolation list: every other bridge on the host, read when the rules are made),
//! `NETCTL-L-<h>` in filter INPUT (nothing from the bridge to the host's 127.0.0.0/8 but
//! replies) and `NETCTL-N-<h>` in nat POSTROUTING (hairpin, masquerade, 127.0.0.1 sources).
//! Published ports are DNAT rules in `NETCTL-DNAT` (nat PREROUTING and OUTPUT, for local
//! destinations). Source guards are ebtables rules (see the `ebt` module).

use std::net::IpAddr;
use std::path::PathBuf;

use crate::cluster::{self, ClusterRules};
use crate::ebt;
use crate::hostfw::HostChains;
use crate::names::IfName;
use crate::rules::{NetworkRules, PortForward, SourceGuard, GUARDED_HOST_PORTS};
use crate::xtables::{chain_for, has_chain, Family, Flavour, Xtables};
use crate::{find_program, run_tool, Backend, Firewall, FirewallError};

const DNAT: &str = "NETCTL-DNAT";

/// The iptables backend.
#[derive(Debug, Clone)]
pub struct Iptables {
    v4: Xtables,
    v6: Xtables,
    ebtables_save: PathBuf,
    ebtables_restore: PathBuf,
}

impl Iptables {
    /// The flavour this host uses: legacy when its filter table exists and the nft one does
    /// not, else nft.
    pub fn detect() -> Self {
        let legacy = Xtables::new(Family::V4, Flavour::Legacy);
        let nft = Xtables::new(Family::V4, Flavour::Nft);
        let flavour = if legacy.has_table("filter") && !nft.has_table("filter") {
            Flavour::Legacy
        } else {
            Flavour::Nft
        };
        Self::with(flavour)
    }

    /// The backend on one flavour.
    pub fn with(flavour: Flavour) -> Self {
        Iptables {
            v4: Xtables::new(Family::V4, flavour),
            v6: Xtables::new(Family::V6, flavour),
            ebtables_save: find_program("ebtables-save"),
            ebtables_restore: find_program("ebtables-restore"),
        }
    }

    /// Whether iptables runs here.
    pub fn works(&self) -> bool {
        self.v4.works()
    }

    fn family(&self, v4: bool) -> &Xtables {
        if v4 {
            &self.v4
        } else {
            &self.v6
        }
    }

    fn ebtables_save(&self) -> Result<String, FirewallError> {
        match run_tool(&self.ebtables_save, "iptables", &["-t", "filter"], None)? {
            (true, _, out) => Ok(out),
            (false, stderr, _) => Err(FirewallError::Rejected {
                program: "ebtables-save".into(),
                what: "read the bridge filter table".into(),
                stderr,
            }),
        }
    }

    fn ebtables_restore(&self, script: &str, what: &str) -> Result<(), FirewallError> {
        match run_tool(
            &self.ebtables_restore,
            "iptables",
            &["--noflush"],
            Some(script),
        )? {
            (true, _, _) => Ok(()),
            (false, stderr, _) => Err(FirewallError::Rejected {
                program: "ebtables-restore".into(),
                what: what.into(),
                stderr: format!("{stderr}\n{script}"),
            }),
        }
    }
}

/// The chain names of a network.
struct Chains {
    forward: String,
    isolate: String,
    input: String,
    nat: String,
}

fn chains(bridge: &IfName) -> Chains {
    let b = bridge.as_str();
    Chains {
        forward: chain_for("NETCTL-F-", b),
        isolate: chain_for("NETCTL-I-", b),
        input: chain_for("NETCTL-L-", b),
        nat: chain_for("NETCTL-N-", b),
    }
}

/// Every bridge of this network namespace but `own`, and every VLAN interface on top of a
/// bridge: the networks a network is kept apart from.
fn other_bridges(own: &IfName) -> Vec<IfName> {
    let links = netctl_net::Netlink::new()
        .and_then(|mut nl| nl.links())
        .unwrap_or_default();
    let bridges: Vec<u32> = links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .map(|l| l.index)
        .collect();
    let mut out: Vec<IfName> = links
        .iter()
        .filter(|l| {
            bridges.contains(&l.index)
                || (l.kind.as_deref() == Some("vlan")
                    && l.peer.is_some_and(|p| bridges.contains(&p)))
        })
        .filter(|l| l.name != own.as_str())
        .filter_map(|l| l.name.parse().ok())
        .collect();
    out.sort();
    out
}

/// The filter and nat part of a network's rules for one family, as restore input.
fn network_script(n: &NetworkRules, v4: bool, saved_filter: &str, saved_nat: &str) -> String {
    let c = chains(&n.bridge);
    let br = &n.bridge;
    let subnets: Vec<_> = n
        .subnets
        .iter()
        .filter(|s| s.addr().is_ipv4() == v4)
        .map(|s| s.trunc())
        .collect();
    let mut f = format!(
        "*filter\n:{fw} - [0:0]\n:{iso} - [0:0]\n",
        fw = c.forward,
        iso = c.isolate
    );
    let fw = &c.forward;
    f += &format!("-A {fw} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    f += &format!("-A {fw} -i {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    f += &format!("-A {fw} -i {br} -o {br} -j ACCEPT\n");
    if n.internal {
        f += &format!("-A {fw} -i {br} -j DROP\n-A {fw} -o {br} -j DROP\n");
    }
    f += &format!("-A {fw} -o {br} -m conntrack --ctstate DNAT -j ACCEPT\n");
    for t in &n.trusted {
        f += &format!("-A {fw} -i {t} -o {br} -j ACCEPT\n");
    }
    let policy = n.policy(v4);
    if policy.unprotected && !n.internal {
        // Not from another network's bridge: those stay apart.
        for other in other_bridges(br) {
            f += &format!("-A {fw} -i {other} -o {br} -j DROP\n");
        }
        f += &format!("-A {fw} -o {br} -j ACCEPT\n");
    }
    f += &format!("-A {fw} -o {br} -j DROP\n");
    f += &format!("-A {fw} -i {br} -m conntrack --ctstate DNAT -j ACCEPT\n");
    f += &format!("-A {fw} -i {br} -j {}\n", c.isolate);
    f += &format!("-A {fw} -i {br} -j ACCEPT\n");
    for other in other_bridges(br) {
        f += &format!("-A {} -o {other} -j DROP\n", c.isolate);
    }
    if !jumps_to(saved_filter, "FORWARD", fw) {
        f += &format!("-I FORWARD 1 -j {fw}\n");
    }
    f += &format!(":{} - [0:0]\n", c.input);
    if v4 {
        f += &format!(
            "-A {} -i {br} -d 127.0.0.0/8 -m conntrack --ctdir REPLY -j ACCEPT\n-A {} -i {br} -d 127.0.0.0/8 -j DROP\n",
            c.input, c.input
        );
    }
    for (proto, port) in GUARDED_HOST_PORTS {
        let p = proto.as_str();
        f += &format!(
            "-A {} -i {br} -p {p} -m {p} --dport {port} -j DROP\n",
            c.input
        );
    }
    if !jumps_to(saved_filter, "INPUT", &c.input) {
        f += &format!("-I INPUT 1 -j {}\n", c.input);
    }
    f += "COMMIT\n";
    let nat = &c.nat;
    let mut t = format!("*nat\n:{nat} - [0:0]\n");
    for s in &subnets {
        t += &format!("-A {nat} -s {s} -o {br} -m conntrack --ctstate DNAT -j MASQUERADE\n");
        if policy.masquerade && !n.internal {
            t += &format!("-A {nat} -s {s} ! -o {br} -j MASQUERADE\n");
        }
    }
    if v4 {
        t += &format!("-A {nat} -s 127.0.0.0/8 -o {br} -j MASQUERADE\n");
    }
    if !jumps_to(saved_nat, "POSTROUTING", nat) {
        t += &format!("-I POSTROUTING 1 -j {nat}\n");
    }
    t += &dnat_base(saved_nat, v4);
    t += "COMMIT\n";
    f + &t
}

/// Creates `NETCTL-DNAT` and its jumps when missing (never re-declared: that would flush
/// the published ports). From PREROUTING, never for the loopback addresses: those come
/// only from another machine (the host's own packets pass OUTPUT), which must not reach
/// a port published on 127.0.0.1 by sending to 127.0.0.1 with the host's MAC
/// (CVE-2020-8558). A jump of the older form, without that exception, is taken away.
fn dnat_base(saved_nat: &str, v4: bool) -> String {
    let mut s = String::new();
    if !has_chain(saved_nat, DNAT) {
        s += &format!(":{DNAT} - [0:0]\n");
    }
    for builtin in ["PREROUTING", "OUTPUT"] {
        if !jumps_to_local(saved_nat, builtin, v4) {
            s += &format!("-I {builtin} 1 {}\n", local_jump(builtin, v4));
        }
    }
    let old = format!("-A PREROUTING -m addrtype --dst-type LOCAL -j {DNAT}");
    for _ in saved_nat.lines().filter(|l| l.trim_end() == old) {
        s += &format!("-D PREROUTING -m addrtype --dst-type LOCAL -j {DNAT}\n");
    }
    s
}

/// The jump from `builtin` to `NETCTL-DNAT`, as iptables-save prints it (after `-A builtin`).
fn local_jump(builtin: &str, v4: bool) -> String {
    let not_loopback = match (builtin, v4) {
        ("PREROUTING", true) => "! -d 127.0.0.0/8 ",
        ("PREROUTING", false) => "! -d ::1/128 ",
        _ => "",
    };
    format!("{not_loopback}-m addrtype --dst-type LOCAL -j {DNAT}")
}

fn jumps_to(saved: &str, builtin: &str, chain: &str) -> bool {
    let rule = format!("-A {builtin} -j {chain}");
    saved.lines().any(|l| l.trim_end() == rule)
}

fn jumps_to_local(saved: &str, builtin: &str, v4: bool) -> bool {
    let rule = format!("-A {builtin} {}", local_jump(builtin, v4));
    saved.lines().any(|l| l.trim_end() == rule)
}

/// The restore script that removes `NETCTL-DNAT` and its jumps when no network's chain is
/// left (in `saved_filter`, `saved_nat`) and no port is published; empty when something is.
fn unused_dnat_script(saved_filter: &str, saved_nat: &str) -> String {
    let networks = |saved: &str, prefix: &str| {
        saved
            .lines()
            .any(|l| l.strip_prefix(':').is_some_and(|c| c.starts_with(prefix)))
    };
    let ports = saved_nat
        .lines()
        .any(|l| l.starts_with(&format!("-A {DNAT} ")));
    if !has_chain(saved_nat, DNAT)
        || ports
        || networks(saved_filter, "NETCTL-F-")
        || networks(saved_nat, "NETCTL-N-")
    {
        return String::new();
    }
    let mut s = String::from("*nat\n");
    for l in saved_nat.lines().map(str::trim_end) {
        let jump = ["PREROUTING", "OUTPUT"]
            .iter()
            .any(|b| l.starts_with(&format!("-A {b} ")));
        if jump && l.ends_with(&format!("-j {DNAT}")) {
            s += &format!("-D{}\n", &l[2..]);
        }
    }
    s + &format!("-X {DNAT}\nCOMMIT\n")
}

/// Removes a network's chains and jumps from what `saved` shows.
fn teardown_script(n: &NetworkRules, saved_filter: &str, saved_nat: &str) -> String {
    let c = chains(&n.bridge);
    let mut f = String::from("*filter\n");
    let remove = |s: &mut String, saved: &str, builtin: &str, chain: &str| {
        if !has_chain(saved, chain) {
            return;
        }
        *s += &format!(":{chain} - [0:0]\n");
        let rule = format!("-A {builtin} -j {chain}");
        for _ in saved.lines().filter(|l| l.trim_end() == rule) {
            *s += &format!("-D {builtin} -j {chain}\n");
        }
    };
    remove(&mut f, saved_filter, "FORWARD", &c.forward);
    remove(&mut f, saved_filter, "INPUT", &c.input);
    for chain in [&c.forward, &c.isolate, &c.input] {
        if has_chain(saved_filter, chain) {
            f += &format!(":{chain} - [0:0]\n-X {chain}\n");
        }
    }
    f += "COMMIT\n*nat\n";
    remove(&mut f, saved_nat, "POSTROUTING", &c.nat);
    if has_chain(saved_nat, &c.nat) {
        f += &format!("-X {}\n", c.nat);
    }
    f + "COMMIT\n"
}

/// A published port's DNAT rule spec (after `-A NETCTL-DNAT `), in iptables-save's form.
fn dnat_rule(p: &PortForward) -> String {
    let dst = p
        .host_ip
        .map(|ip| match ip {
            IpAddr::V4(a) => format!("-d {a}/32 "),
            IpAddr::V6(a) => format!("-d {a}/128 "),
        })
        .unwrap_or_default();
    let to = match p.container_ip {
        IpAddr::V4(a) => format!("{a}:{}", p.container_port),
        IpAddr::V6(a) => format!("[{a}]:{}", p.container_port),
    };
    let proto = p.proto.as_str();
    format!(
        "{dst}-p {proto} -m {proto} --dport {} -j DNAT --to-destination {to}",
        p.host_port
    )
}

/// The DNAT rule in `saved` that takes the same host address, port and protocol as `p`.
fn rule_for<'a>(saved: &'a str, p: &PortForward) -> Option<&'a str> {
    let want = dnat_rule(p);
    let key = |r: &str| r.split(" -j ").next().map(str::to_string);
    let wanted_key = key(&want);
    saved
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix(&format!("-A {DNAT} ")))
        .find(|r| key(r) == wanted_key)
}

impl Firewall for Iptables {
    fn backend(&self) -> Backend {
        Backend::Iptables
    }

    fn setup_network(&self, n: &NetworkRules) -> Result<(), FirewallError> {
        if n.strict {
            // Each network's chain runs in turn, newest first: a newer network's accepting
            // of published ports would come before this one's refusal.
            return Err(FirewallError::Unsupported(
                "isolate=strict needs the nftables backend: create the network with -o firewall=nftables".into(),
            ));
        }
        if n.any_routed() {
            return Err(FirewallError::Unsupported(
                "gateway mode routed needs the nftables backend: create the network with -o firewall=nftables".into(),
            ));
        }
        for v4 in [true, false] {
            let x = self.family(v4);
            let script = network_script(n, v4, &x.save("filter")?, &x.save("nat")?);
            x.restore(&script, &format!("set up the rules of bridge {}", n.bridge))?;
        }
        // The other flavour's FORWARD (legacy beside nft, or the reverse) decides too.
        HostChains::detect_except(Some(self.v4.flavour)).allow(&n.bridge)
    }

    fn teardown_network(&self, n: &NetworkRules) -> Result<(), FirewallError> {
        HostChains::detect_except(Some(self.v4.flavour)).disallow(&n.bridge)?;
        for v4 in [true, false] {
            let x = self.family(v4);
            let script = teardown_script(n, &x.save("filter")?, &x.save("nat")?);
            x.restore(&script, &format!("remove the rules of bridge {}", n.bridge))?;
        }
        Ok(())
    }

    fn network_present(&self, n: &NetworkRules) -> Result<bool, FirewallError> {
        let c = chains(&n.bridge);
        for v4 in [true, false] {
            let x = self.family(v4);
            let (filter, nat) = (x.save("filter")?, x.save("nat")?);
            if !jumps_to(&filter, "FORWARD", &c.forward)
                || !jumps_to(&nat, "POSTROUTING", &c.nat)
                || !jumps_to_local(&nat, "PREROUTING", v4)
            {
                return Ok(false);
            }
        }
        HostChains::detect_except(Some(self.v4.flavour)).present(&n.bridge)
    }

    fn add_ports(&self, ports: &[PortForward]) -> Result<(), FirewallError> {
        for v4 in [true, false] {
            let mine: Vec<&PortForward> = ports
                .iter()
                .filter(|p| p.container_ip.is_ipv4() == v4)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let x = self.family(v4);
            let saved = x.save("nat")?;
            let mut s = format!("*nat\n{}", dnat_base(&saved, v4));
            for p in mine {
                match rule_for(&saved, p) {
                    Some(r) if r == dnat_rule(p) => {}
                    Some(_) => return Err(FirewallError::PortInUse(p.describe())),
                    None => s += &format!("-A {DNAT} {}\n", dnat_rule(p)),
                }
            }
            s += "COMMIT\n";
            x.restore(&s, "publish ports")?;
        }
        Ok(())
    }

    fn del_ports(&self, ports: &[PortForward]) -> Result<(), FirewallError> {
        for v4 in [true, false] {
            let x = self.family(v4);
            let saved = x.save("nat")?;
            let gone: Vec<String> = ports
                .iter()
                .filter(|p| p.container_ip.is_ipv4() == v4)
                .filter(|p| rule_for(&saved, p) == Some(dnat_rule(p).as_str()))
                .map(|p| format!("-D {DNAT} {}\n", dnat_rule(p)))
                .collect();
            if !gone.is_empty() {
                x.restore(
                    &format!("*nat\n{}COMMIT\n", gone.concat()),
                    "withdraw ports",
                )?;
            }
        }
        Ok(())
    }

    fn ports_present(&self, ports: &[PortForward]) -> Result<bool, FirewallError> {
        for v4 in [true, false] {
            let saved = self.family(v4).save("nat")?;
            if ports
                .iter()
                .filter(|p| p.container_ip.is_ipv4() == v4)
                .any(|p| rule_for(&saved, p) != Some(dnat_rule(p).as_str()))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn add_source_guard(&self, g: &SourceGuard) -> Result<(), FirewallError> {
        let saved = self.ebtables_save()?;
        self.ebtables_restore(
            &ebt::guard_script(g, &saved),
            &format!("guard the sources of port {}", g.port),
        )
    }

    fn missing_source_guards<'a>(
        &self,
        guards: &'a [SourceGuard],
    ) -> Result<Vec<&'a SourceGuard>, FirewallError> {
        if guards.is_empty() {
            return Ok(Vec::new());
        }
        let saved = self.ebtables_save()?;
        Ok(guards.iter().filter(|g| !ebt::guarded(g, &saved)).collect())
    }

    fn del_source_guard(&self, g: &SourceGuard) -> Result<(), FirewallError> {
        let saved = self.ebtables_save()?;
        self.ebtables_restore(
            &ebt::unguard_script(g, &saved),
            &format!("remove the source guard of port {}", g.port),
        )
    }

    fn remove_if_unused(&self) -> Result<(), FirewallError> {
        for v4 in [true, false] {
            let x = self.family(v4);
            let script = unused_dnat_script(&x.save("filter")?, &x.save("nat")?);
            if !script.is_empty() {
                x.restore(
                    &script,
                    "remove netctl's port chain, which nothing uses any more",
                )?;
            }
        }
        let script = ebt::unused_script(&self.ebtables_save()?);
        if !script.is_empty() {
            self.ebtables_restore(
                &script,
                "remove netctl's guard chain, which nothing uses any more",
            )?;
        }
        let nft = crate::Nftables::new();
        if self.v4.flavour == Flavour::Nft && nft.works() {
            nft.prune_xtables()?;
        }
        Ok(())
    }

    fn set_cluster(&self, rules: &ClusterRules) -> Result<(), FirewallError> {
        for v4 in [true, false] {
            let x = self.family(v4);
            let script = cluster::ipt_script(rules, x.family, &x.save("filter")?);
            x.restore(&script, "set the cluster's rules")?;
        }
        Ok(())
    }

    fn clear_cluster(&self) -> Result<(), FirewallError> {
        for v4 in [true, false] {
            let x = self.family(v4);
            let script = cluster::ipt_clear_script(&x.save("filter")?);
            x.restore(&script, "remove the cluster's rules")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::rules::Proto;

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
    fn trusted_interfaces_and_unprotected_networks_let_traffic_in_before_the_drop() {
        let n = NetworkRules {
            unprotected: true,
            trusted: vec!["uplink".parse().unwrap()],
            ..net(false)
        };
        let s = network_script(&n, true, "", "");
        let fw = chain_for("NETCTL-F-", "br-0123");
        let trusted = s
            .find(&format!("-A {fw} -i uplink -o br-0123 -j ACCEPT\n"))
            .unwrap();
        let open = s.find(&format!("-A {fw} -o br-0123 -j ACCEPT\n")).unwrap();
        let drop = s.find(&format!("-A {fw} -o br-0123 -j DROP\n")).unwrap();
        assert!(trusted < open && open < drop, "{s}");
        let closed = network_script(
            &NetworkRules {
                internal: true,
                ..n
            },
            true,
            "",
            "",
        );
        assert!(
            !closed.contains(&format!("-A {fw} -o br-0123 -j ACCEPT\n")),
            "{closed}"
        );
    }

    #[test]
    fn a_network_gets_isolation_inbound_protection_and_masquerade() {
        let s = network_script(&net(false), true, "", "");
        let fw = chain_for("NETCTL-F-", "br-0123");
        assert!(s.contains(&format!("-A {fw} -o br-0123 -m conntrack --ctstate DNAT -j ACCEPT\n-A {fw} -o br-0123 -j DROP\n")), "{s}");
        assert!(s.contains(&format!("-I FORWARD 1 -j {fw}\n")));
        assert!(s.contains("-s 172.18.0.0/16 ! -o br-0123 -j MASQUERADE"));
        assert!(!s.contains("fd00:18"), "IPv6 goes to ip6tables");
        assert!(s.contains(&format!(":{DNAT} - [0:0]\n")));
        let nat = format!(
            ":{DNAT} - [0:0]\n-A PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {DNAT}\n-A OUTPUT -m addrtype --dst-type LOCAL -j {DNAT}\n"
        );
        let again = network_script(&net(false), true, &format!("-A FORWARD -j {fw}\n"), &nat);
        assert!(!again.contains("-I FORWARD"), "the jump is made once");
        assert!(
            !again.contains(&format!(":{DNAT}")) && !again.contains("-I PREROUTING"),
            "the published ports' chain is never flushed: {again}"
        );
        let old = nat.replace("PREROUTING ! -d 127.0.0.0/8 ", "PREROUTING ");
        let upgraded = network_script(&net(false), true, "", &old);
        assert!(
            upgraded.contains(&format!(
                "-I PREROUTING 1 ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {DNAT}\n"
            )) && upgraded.contains(&format!(
                "-D PREROUTING -m addrtype --dst-type LOCAL -j {DNAT}\n"
            )),
            "a jump that let 127.0.0.1 in from outside is replaced: {upgraded}"
        );
        let internal = network_script(&net(true), true, "", "");
        assert!(internal.contains(&format!("-A {fw} -i br-0123 -j DROP")));
        assert!(!internal.contains("! -o br-0123 -j MASQUERADE"));
    }

    /// `iptables-nft-restore --test` (parse and build, no commit) in a namespace of its own.
    fn restore_accepts(family: &str, script: &str) -> Result<(), String> {
        use std::io::Write;
        let program = format!("{family}-nft-restore");
        let mut child = std::process::Command::new("unshare")
            .args(["--net", "--", &program, "--test", "--noflush"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("run unshare {program}: {e} (the firewall tests need root)"))?;
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

    #[test]
    fn every_network_script_passes_iptables_restore_test() {
        for internal in [false, true] {
            for (v4, family) in [(true, "iptables"), (false, "ip6tables")] {
                let s = network_script(&net(internal), v4, "", "");
                if let Err(e) = restore_accepts(family, &s) {
                    panic!("{family} internal={internal}: {e}");
                }
            }
        }
        let p = PortForward {
            host_ip: None,
            host_port: 8080,
            container_ip: "fd00:18::2".parse().unwrap(),
            container_port: 80,
            proto: Proto::Udp,
        };
        let s = format!(
            "*nat\n{}-A {DNAT} {}\nCOMMIT\n",
            dnat_base("", false),
            dnat_rule(&p)
        );
        restore_accepts("ip6tables", &s).unwrap();
    }

    #[test]
    fn published_ports_are_dnat_rules_in_save_form() {
        let p = PortForward {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 8080,
            container_ip: "172.18.0.2".parse().unwrap(),
            container_port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(
            dnat_rule(&p),
            "-d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80"
        );
        let saved = format!("-A {DNAT} -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.9:80\n");
        assert!(
            rule_for(&saved, &p).is_some_and(|r| r != dnat_rule(&p)),
            "taken by another"
        );
    }
}
