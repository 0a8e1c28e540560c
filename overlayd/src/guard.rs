//! The cluster's firewall rules on this host ([`netctl_firewall::ClusterRules`]): VXLAN
//! only from the cluster's hosts, nothing forwarded to their VXLAN port or to etcd's ports.
//! Applied when the agent starts, again whenever the hosts change, and every minute (a
//! flushed ruleset heals by itself); removed when the host leaves the cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use netctl_firewall::{Backend, ClusterRules, TunnelRules};
use netctl_overlay_api::{TUNNEL_DEVICE, TUNNEL_PORT};

use crate::agent::Agent;

/// How often the rules are applied again when nothing asked for it.
const REFRESH: Duration = Duration::from_secs(60);

/// The rules for the hosts the agent knows now (itself always among them).
async fn current(agent: &Agent) -> ClusterRules {
    let view = agent.view.lock().await;
    let mut peers: Vec<_> = view.hosts.values().map(|h| h.addr).collect();
    peers.push(agent.cfg.advertise);
    peers.sort();
    peers.dedup();
    let store = agent
        .cfg
        .store
        .iter()
        .filter_map(|url| crate::members::host_port(url)?.parse::<SocketAddr>().ok())
        .collect();
    let tunnel = agent.tunnel.as_ref().and_then(|_| {
        Some(TunnelRules {
            device: TUNNEL_DEVICE.parse().ok()?,
            port: TUNNEL_PORT,
            encrypted_vnis: view
                .networks
                .values()
                .filter(|s| s.encrypted)
                .map(|s| s.vni)
                .collect(),
        })
    });
    ClusterRules {
        peers,
        store,
        tunnel,
    }
}

/// Applies `rules` with the host's firewall backend.
async fn apply(rules: ClusterRules) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || netctl_firewall::open(Backend::Auto)?.set_cluster(&rules))
        .await??;
    Ok(())
}

/// Forever: applies the rules when the hosts change ([`Agent::cluster_changed`]) and every
/// [`REFRESH`].
pub async fn keep(agent: Arc<Agent>) {
    let mut last: Option<ClusterRules> = None;
    let mut since = tokio::time::Instant::now();
    // The first listing brings the hosts: rules made before it would turn their VXLAN away.
    let _ = tokio::time::timeout(Duration::from_secs(5), agent.cluster_changed.notified()).await;
    loop {
        if let Some(t) = &agent.tunnel {
            let view = agent.view.lock().await;
            if let Err(e) = t.set_peers(view.hosts.values()) {
                eprintln!("netctl-overlayd: update the tunnel's peers: {e:#}");
            }
        }
        let rules = current(&agent).await;
        if last.as_ref() != Some(&rules) || since.elapsed() >= REFRESH {
            match apply(rules.clone()).await {
                Ok(()) => {
                    last = Some(rules);
                    since = tokio::time::Instant::now();
                }
                Err(e) => eprintln!("netctl-overlayd: apply the cluster's firewall rules: {e:#}"),
            }
        }
        let _ = tokio::time::timeout(REFRESH, agent.cluster_changed.notified()).await;
    }
}

/// Removes the rules (the host leaves the cluster).
pub async fn remove() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(|| netctl_firewall::open(Backend::Auto)?.clear_cluster()).await??;
    Ok(())
}
