//! Firewall rules for bridge networks, behind the [`Firewall`] trait so that an iptables
//! backend can be added beside [`Nftables`].
//!
//! Rules are kept per network, not per container: a network gets its chains once (at its
//! first attachment), and a published port is one element in a map. The nftables backend keeps
//! everything in its own `inet netctl` table and applies each operation as one `nft -f`
//! transaction, so a failure changes nothing.

mod nft;
mod rules;

pub use nft::Nftables;
pub use rules::{MacGuard, NetworkRules, PortForward, Proto};

use std::path::PathBuf;

/// What went wrong while changing the firewall.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The `nft` program could not be run.
    #[error("failed to run {program}: {source} (is the nftables package installed?)")]
    Exec {
        /// The program.
        program: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `nft` refused the transaction; nothing was changed.
    #[error("nftables refused to {what}: {stderr}")]
    Rejected {
        /// The operation.
        what: String,
        /// What nft said.
        stderr: String,
    },
    /// A host port is already published by another container.
    #[error("host port {0} is already published by another container")]
    PortInUse(String),
}

/// A firewall backend.
pub trait Firewall {
    /// Makes the network's rules (masquerade, isolation, inbound protection) exist, replacing
    /// any older version of them. Idempotent.
    fn setup_network(&self, net: &NetworkRules) -> Result<(), FirewallError>;
    /// Removes the network's rules; rules already gone are fine.
    fn teardown_network(&self, net: &NetworkRules) -> Result<(), FirewallError>;
    /// Whether the network's rules are in place.
    fn network_present(&self, net: &NetworkRules) -> Result<bool, FirewallError>;
    /// Publishes ports, all or none.
    fn add_ports(&self, ports: &[PortForward]) -> Result<(), FirewallError>;
    /// Withdraws ports; ports not published (or published by someone else) are left alone.
    fn del_ports(&self, ports: &[PortForward]) -> Result<(), FirewallError>;
    /// Drops frames entering from the guard's port with any other source MAC.
    fn add_mac_guard(&self, guard: &MacGuard) -> Result<(), FirewallError>;
    /// Removes a MAC guard; one already gone is fine.
    fn del_mac_guard(&self, guard: &MacGuard) -> Result<(), FirewallError>;
}
