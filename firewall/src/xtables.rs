//! iptables and ip6tables, in either flavour (iptables-nft, iptables-legacy): reading a
//! table with `*-save` and changing it with one `*-restore --noflush` transaction.

use std::path::PathBuf;

use crate::{find_program, run_tool, FirewallError};

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// iptables.
    V4,
    /// ip6tables.
    V6,
}

/// Which iptables implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// iptables-nft: the `ip filter` / `ip6 filter` nftables tables.
    Nft,
    /// iptables-legacy: the kernel's x_tables.
    Legacy,
}

/// One iptables program set: a family in a flavour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xtables {
    /// IPv4 or IPv6.
    pub family: Family,
    /// nft or legacy.
    pub flavour: Flavour,
    save: PathBuf,
    restore: PathBuf,
}

impl Xtables {
    /// The programs of `family` in `flavour` (`iptables-nft-save`, `ip6tables-legacy-restore` ...).
    pub fn new(family: Family, flavour: Flavour) -> Self {
        let base = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        let fl = match flavour {
            Flavour::Nft => "nft",
            Flavour::Legacy => "legacy",
        };
        Xtables {
            family,
            flavour,
            save: find_program(&format!("{base}-{fl}-save")),
            restore: find_program(&format!("{base}-{fl}-restore")),
        }
    }

    /// Whether this flavour already has `table` (so that rules there decide over packets):
    /// for legacy the kernel's list of tables, for nft the `ip`/`ip6` nftables table.
    pub fn has_table(&self, table: &str) -> bool {
        match self.flavour {
            Flavour::Legacy => {
                let names = match self.family {
                    Family::V4 => "/proc/net/ip_tables_names",
                    Family::V6 => "/proc/net/ip6_tables_names",
                };
                std::fs::read_to_string(names).is_ok_and(|s| s.lines().any(|l| l == table))
            }
            Flavour::Nft => {
                let fam = match self.family {
                    Family::V4 => "ip",
                    Family::V6 => "ip6",
                };
                run_tool(
                    &find_program("nft"),
                    "nftables",
                    &["list", "table", fam, table],
                    None,
                )
                .is_ok_and(|(ok, _, _)| ok)
            }
        }
    }

    /// Whether the programs run.
    pub fn works(&self) -> bool {
        run_tool(&self.save, "iptables", &["-t", "filter"], None).is_ok_and(|(ok, _, _)| ok)
    }

    /// `*-save -t table`: the table's rules in restore syntax.
    pub fn save(&self, table: &str) -> Result<String, FirewallError> {
        let (ok, stderr, out) = run_tool(&self.save, "iptables", &["-t", table], None)?;
        if ok {
            Ok(out)
        } else {
            Err(self.rejected(&format!("read table {table}"), stderr))
        }
    }

    /// Applies `script` (restore syntax, with COMMIT lines) as one transaction that keeps
    /// everything it does not name.
    pub fn restore(&self, script: &str, what: &str) -> Result<(), FirewallError> {
        let (ok, stderr, _) = run_tool(
            &self.restore,
            "iptables",
            &["--noflush", "-w"],
            Some(script),
        )?;
        if ok {
            Ok(())
        } else {
            Err(self.rejected(what, format!("{stderr}\n{script}")))
        }
    }

    fn rejected(&self, what: &str, stderr: String) -> FirewallError {
        FirewallError::Rejected {
            program: self.restore.display().to_string(),
            what: what.into(),
            stderr,
        }
    }
}

/// Whether `saved` declares chain `chain`.
pub fn has_chain(saved: &str, chain: &str) -> bool {
    saved.lines().any(|l| {
        l.strip_prefix(':')
            .and_then(|r| r.split_whitespace().next())
            == Some(chain)
    })
}

/// A chain name for a bridge: `prefix` + 8 hex digits of its name's hash (iptables chain
/// names are at most 28 characters).
pub fn chain_for(prefix: &str, bridge: &str) -> String {
    let hash = bridge.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{prefix}{hash:08x}")
}

/// What `nft -j list ruleset` says, as far as pruning needs it.
#[derive(Debug, Default, serde::Deserialize)]
struct Ruleset {
    #[serde(default)]
    nftables: Vec<Object>,
}

/// One object of a listing: a table, a chain, a rule or something else (sets, maps ...).
#[derive(Debug, Default, serde::Deserialize)]
struct Object {
    table: Option<Named>,
    chain: Option<Chain>,
    rule: Option<Placed>,
    set: Option<Placed>,
    map: Option<Placed>,
}

#[derive(Debug, serde::Deserialize)]
struct Named {
    family: String,
    name: String,
}

#[derive(Debug, serde::Deserialize)]
struct Chain {
    family: String,
    table: String,
    name: String,
    #[serde(default)]
    policy: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Placed {
    family: String,
    table: String,
    #[serde(default)]
    chain: Option<String>,
}

/// The nft script that deletes what iptables-nft (and ebtables-nft) made as a side effect of
/// netctl's rules and that now holds nothing: its built-in chains (`ip`, `ip6` and `bridge`
/// tables `filter` and `nat`) with no rule and an accept policy, and then such tables left
/// with no chain, set or map. An empty accepting built-in chain decides nothing, so the host
/// filters exactly as before; `iptables -S` still shows its policy.
pub fn empty_builtins_script(listing_json: &str) -> String {
    let listing: Ruleset = serde_json::from_str(listing_json).unwrap_or_default();
    let xt_table = |family: &str, table: &str| {
        ["ip", "ip6", "bridge"].contains(&family) && ["filter", "nat"].contains(&table)
    };
    let builtin = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];
    let mut script = String::new();
    let mut gone = Vec::new();
    for c in listing.nftables.iter().filter_map(|o| o.chain.as_ref()) {
        let empty = !listing
            .nftables
            .iter()
            .filter_map(|o| o.rule.as_ref())
            .any(|r| {
                r.family == c.family && r.table == c.table && r.chain.as_deref() == Some(&c.name)
            });
        if xt_table(&c.family, &c.table)
            && builtin.contains(&c.name.as_str())
            && c.policy.as_deref() == Some("accept")
            && empty
        {
            script += &format!("delete chain {} {} {}\n", c.family, c.table, c.name);
            gone.push((c.family.as_str(), c.table.as_str(), c.name.as_str()));
        }
    }
    for t in listing.nftables.iter().filter_map(|o| o.table.as_ref()) {
        let holds_more = listing.nftables.iter().any(|o| {
            o.chain.as_ref().is_some_and(|c| {
                c.family == t.family
                    && c.table == t.name
                    && !gone.contains(&(c.family.as_str(), c.table.as_str(), c.name.as_str()))
            }) || [&o.set, &o.map]
                .into_iter()
                .flatten()
                .any(|s| s.family == t.family && s.table == t.name)
        });
        if xt_table(&t.family, &t.name) && !holds_more {
            script += &format!("delete table {} {}\n", t.family, t.name);
        }
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_accepting_builtin_chains_and_tables_left_empty_go() {
        let listing = r#"{"nftables": [
            {"table": {"family": "ip", "name": "filter"}},
            {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "policy": "accept"}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "policy": "accept"}},
            {"rule": {"family": "ip", "table": "filter", "chain": "INPUT"}},
            {"table": {"family": "ip6", "name": "nat"}},
            {"chain": {"family": "ip6", "table": "nat", "name": "PREROUTING", "policy": "accept"}},
            {"table": {"family": "bridge", "name": "filter"}},
            {"chain": {"family": "bridge", "table": "filter", "name": "FORWARD", "policy": "drop"}},
            {"table": {"family": "inet", "name": "admin"}},
            {"chain": {"family": "inet", "table": "admin", "name": "INPUT", "policy": "accept"}}
        ]}"#;
        assert_eq!(
            empty_builtins_script(listing),
            "delete chain ip filter FORWARD\ndelete chain ip6 nat PREROUTING\ndelete table ip6 nat\n"
        );
    }
}
