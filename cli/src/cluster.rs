//! `netctl cluster join|ls|leave`: this host in a cluster sharing overlay networks.

use std::net::IpAddr;

use clap::Subcommand;
use netctl_engine::{cluster, Engine};

use crate::outcome::Outcome;
use crate::output::table;

/// `netctl cluster ...`.
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Join a cluster: its etcd members and this host's underlay address; starts the agent.
    Join {
        /// etcd members: etcd://HOST:2379[,HOST:2379...]
        #[arg(long)]
        store: String,
        /// This host's address on the underlay (the source of its VXLAN tunnels).
        #[arg(long)]
        advertise: IpAddr,
        /// This host's name in the cluster (default: its hostname).
        #[arg(long = "host-name")]
        host_name: Option<String>,
        /// Seconds this host's containers stay known to the others after its agent is gone.
        #[arg(long = "liveness-ttl", default_value_t = cluster::LIVENESS_TTL)]
        liveness_ttl: i64,
        /// Seconds this host's addresses stay taken after its agent is gone (an agent back
        /// within it keeps them).
        #[arg(long = "tenure-ttl", default_value_t = cluster::TENURE_TTL)]
        tenure_ttl: i64,
    },
    /// The hosts of the cluster, and whether they are alive.
    #[command(alias = "list")]
    Ls,
    /// Leave the cluster (this host's containers on overlay networks must be gone).
    Leave,
}

/// Runs a cluster command.
pub fn run(engine: &Engine, cmd: ClusterCommand) -> Outcome {
    match cmd {
        ClusterCommand::Join {
            store,
            advertise,
            host_name,
            liveness_ttl,
            tenure_ttl,
        } => {
            let host = host_name.unwrap_or_else(netctl_engine::etc::host_hostname);
            cluster::join(
                engine,
                &cluster::JoinOptions {
                    store: store.clone(),
                    advertise,
                    host: host.clone(),
                    liveness_ttl,
                    tenure_ttl,
                },
            )?;
            println!("{host} joined the cluster at {store}");
        }
        ClusterCommand::Ls => {
            let rows: Vec<Vec<String>> = cluster::hosts(engine)?
                .into_iter()
                .map(|h| {
                    vec![
                        if h.this {
                            format!("{} *", h.host)
                        } else {
                            h.host
                        },
                        h.addr.to_string(),
                        if h.alive { "Ready" } else { "Down" }.into(),
                    ]
                })
                .collect();
            print!("{}", table(&["HOSTNAME", "ADDRESS", "STATUS"], &rows));
        }
        ClusterCommand::Leave => {
            cluster::leave(engine)?;
            println!("this host left the cluster");
        }
    }
    Ok(0)
}
