//! The host's iptables, beside netctl's nftables table. A packet forwarded through the host
//! must be accepted by every base chain at the forward hook: netctl's `inet netctl` and, when
//! the host has them, iptables-nft's and iptables-legacy's FORWARD chains, whose policy is
//! DROP on hosts with Docker or ufw. So for each network, each iptables flavour that has a
//! filter table gets a chain `NETCTL-FWD-<hash>` (jumped to first from FORWARD) accepting
//! what enters or leaves the network's bridge: `inet netctl` has already dropped what the
//! network's rules forbid, and nothing that does not touch the bridge is accepted.

use crate::names::IfName;
use crate::xtables::{chain_for, has_chain, Family, Flavour, Xtables};
use crate::FirewallError;

/// The iptables flavours and families that have a filter table on this host.
#[derive(Debug, Clone, Default)]
pub struct HostChains {
    present: Vec<Xtables>,
}

impl HostChains {
    /// Looks at the host: which of iptables-nft, iptables-legacy (v4 and v6) have a filter
    /// table now. None at all on a host whose firewall is only nftables.
    pub fn detect() -> Self {
        Self::detect_except(None)
    }

    /// As [`HostChains::detect`], leaving out one flavour (the one the iptables backend itself
    /// writes its rules to).
    pub fn detect_except(own: Option<Flavour>) -> Self {
        let mut present = Vec::new();
        for flavour in [Flavour::Nft, Flavour::Legacy]
            .into_iter()
            .filter(|f| Some(*f) != own)
        {
            for family in [Family::V4, Family::V6] {
                let x = Xtables::new(family, flavour);
                if x.has_table("filter") {
                    present.push(x);
                }
            }
        }
        HostChains { present }
    }

    /// The chain of `bridge`.
    pub fn chain(bridge: &IfName) -> String {
        chain_for("NETCTL-FWD-", bridge.as_str())
    }

    /// Accepts the bridge's traffic in every filter table found; idempotent.
    pub fn allow(&self, bridge: &IfName) -> Result<(), FirewallError> {
        let chain = Self::chain(bridge);
        for x in &self.present {
            let saved = x.save("filter")?;
            let jump = format!("-A FORWARD -j {chain}");
            let mut s = format!(
                "*filter\n:{chain} - [0:0]\n\
                 -A {chain} -i {bridge} -m comment --comment \"netctl {bridge}\" -j ACCEPT\n\
                 -A {chain} -o {bridge} -m comment --comment \"netctl {bridge}\" -j ACCEPT\n"
            );
            if !saved.lines().any(|l| l.trim_end() == jump) {
                s += &format!("-I FORWARD 1 -j {chain}\n");
            }
            s += "COMMIT\n";
            x.restore(&s, &format!("accept the traffic of bridge {bridge}"))?;
        }
        Ok(())
    }

    /// Removes the bridge's chain and its jump; gone already is fine.
    pub fn disallow(&self, bridge: &IfName) -> Result<(), FirewallError> {
        let chain = Self::chain(bridge);
        for x in &self.present {
            let saved = x.save("filter")?;
            if !has_chain(&saved, &chain) {
                continue;
            }
            let mut s = format!("*filter\n:{chain} - [0:0]\n");
            let jump = format!("-A FORWARD -j {chain}");
            for _ in saved.lines().filter(|l| l.trim_end() == jump) {
                s += &format!("-D FORWARD -j {chain}\n");
            }
            s += &format!("-X {chain}\nCOMMIT\n");
            x.restore(&s, &format!("remove the chain of bridge {bridge}"))?;
        }
        Ok(())
    }

    /// Whether every filter table found has the bridge's chain and jump.
    pub fn present(&self, bridge: &IfName) -> Result<bool, FirewallError> {
        let chain = Self::chain(bridge);
        for x in &self.present {
            let saved = x.save("filter")?;
            let jump = format!("-A FORWARD -j {chain}");
            if !has_chain(&saved, &chain) || !saved.lines().any(|l| l.trim_end() == jump) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
