//! Source guards of the iptables backend, as ebtables rules (one `ebtables-restore
//! --noflush` transaction each): `NETCTL-MACGUARD`, jumped to from FORWARD and INPUT, sends
//! each guarded port to its own chain `NETCTL-SG-<hash>`, which drops what the port may not
//! send (see [`SourceGuard`]).

use std::net::IpAddr;

use crate::rules::SourceGuard;
use crate::xtables::{chain_for, has_chain};

/// The chain every guarded port passes.
pub const MACGUARD: &str = "NETCTL-MACGUARD";

fn port_chain(g: &SourceGuard) -> String {
    chain_for("NETCTL-SG-", g.port.as_str())
}

/// The restore script that guards `g`'s port (replacing an older guard of it).
pub fn guard_script(g: &SourceGuard, saved: &str) -> String {
    let chain = port_chain(g);
    let (port, mac) = (&g.port, &g.mac);
    let mut s = String::from("*filter\n");
    if !has_chain(saved, MACGUARD) {
        s += &format!(":{MACGUARD} RETURN\n");
    }
    for hook in ["FORWARD", "INPUT"] {
        if !saved
            .lines()
            .any(|l| l.trim_end() == format!("-A {hook} -j {MACGUARD}"))
        {
            s += &format!("-I {hook} 1 -j {MACGUARD}\n");
        }
    }
    s += &format!(":{chain} RETURN\n");
    s += &format!("-A {chain} -p 802_1Q -j DROP\n");
    s += &format!("-A {chain} -s ! {mac} -j DROP\n");
    s += &format!("-A {chain} -p ARP --arp-mac-src ! {mac} -j DROP\n");
    let v4: Vec<&IpAddr> = g.ips.iter().filter(|ip| ip.is_ipv4()).collect();
    let v6: Vec<&IpAddr> = g.ips.iter().filter(|ip| ip.is_ipv6()).collect();
    for (proto, opt, own, config) in [
        ("ARP", "--arp-ip-src", &v4, vec!["0.0.0.0"]),
        ("IPv4", "--ip-src", &v4, vec!["0.0.0.0"]),
        ("IPv6", "--ip6-src", &v6, vec!["::", "fe80::/10"]),
    ] {
        for ip in own
            .iter()
            .map(ToString::to_string)
            .chain(config.iter().map(|c| c.to_string()))
        {
            s += &format!("-A {chain} -p {proto} {opt} {ip} -j RETURN\n");
        }
        s += &format!("-A {chain} -p {proto} -j DROP\n");
    }
    let jump = format!("-A {MACGUARD} -i {port} -j {chain}");
    if !saved.lines().any(|l| l.trim_end() == jump) {
        s += &format!("{jump}\n");
    }
    s + "COMMIT\n"
}

/// Whether `saved` shows `g`'s port guarded: the jump to its chain, and the chain's rule for
/// its MAC.
pub fn guarded(g: &SourceGuard, saved: &str) -> bool {
    let chain = port_chain(g);
    let jump = format!("-A {MACGUARD} -i {} -j {chain}", g.port);
    let mac = format!("-A {chain} -s ! {} -j DROP", g.mac);
    let has = |line: &str| saved.lines().any(|l| l.trim_end() == line);
    has(&jump) && has(&mac)
}

/// The restore script that removes `g`'s port guard; gone already is fine.
pub fn unguard_script(g: &SourceGuard, saved: &str) -> String {
    let chain = port_chain(g);
    let mut s = String::from("*filter\n");
    let jump = format!("-A {MACGUARD} -i {} -j {chain}", g.port);
    for _ in saved.lines().filter(|l| l.trim_end() == jump) {
        s += &format!("-D{}\n", &jump[2..]);
    }
    if has_chain(saved, &chain) {
        s += &format!(":{chain} RETURN\n-X {chain}\n");
    }
    s + "COMMIT\n"
}

/// The restore script that removes `NETCTL-MACGUARD` and its jumps when no port is guarded;
/// empty when one is (or when there is no such chain).
pub fn unused_script(saved: &str) -> String {
    let guarded = saved
        .lines()
        .any(|l| l.starts_with(&format!("-A {MACGUARD} ")));
    if guarded || !has_chain(saved, MACGUARD) {
        return String::new();
    }
    let mut s = String::from("*filter\n");
    for hook in ["FORWARD", "INPUT"] {
        let jump = format!("-A {hook} -j {MACGUARD}");
        for _ in saved.lines().filter(|l| l.trim_end() == jump) {
            s += &format!("-D {hook} -j {MACGUARD}\n");
        }
    }
    s + &format!("-X {MACGUARD}\nCOMMIT\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn guard() -> SourceGuard {
        SourceGuard {
            port: "veth0123".parse().unwrap(),
            index: 7,
            mac: "02:42:ac:12:00:02".parse().unwrap(),
            ips: vec!["172.18.0.2".parse().unwrap()],
        }
    }

    #[test]
    fn a_port_may_send_only_its_own_mac_and_addresses() {
        let s = guard_script(&guard(), "");
        let c = port_chain(&guard());
        for want in [
            format!("-A {c} -s ! 02:42:ac:12:00:02 -j DROP"),
            format!("-A {c} -p ARP --arp-ip-src 172.18.0.2 -j RETURN"),
            format!("-A {c} -p ARP -j DROP"),
            format!("-A {c} -p IPv4 --ip-src 172.18.0.2 -j RETURN"),
            format!("-A {c} -p IPv6 --ip6-src fe80::/10 -j RETURN"),
            format!("-A {MACGUARD} -i veth0123 -j {c}"),
            "-I FORWARD 1 -j NETCTL-MACGUARD".to_string(),
        ] {
            assert!(s.contains(&want), "{want}\n{s}");
        }
        let saved = format!("-A {MACGUARD} -i veth0123 -j {c}\n:{c} RETURN\n");
        assert!(!guarded(&guard(), &saved), "no MAC rule yet");
        let full: String = s
            .lines()
            .map(|l| l.replace("-I ", "-A ").replace(" 1 -j", " -j") + "\n")
            .collect();
        assert!(
            guarded(&guard(), &full),
            "what the script makes is seen as the guard"
        );
        let u = unguard_script(&guard(), &saved);
        assert!(
            u.contains(&format!("-D {MACGUARD} -i veth0123 -j {c}"))
                && u.contains(&format!("-X {c}")),
            "{u}"
        );
    }
}
