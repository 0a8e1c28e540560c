//! `netctl cluster join|ls|leave`: this host in a cluster sharing overlay networks.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use netctl_engine::{cluster, Engine};

use crate::outcome::Outcome;
use crate::output::table;

/// `netctl cluster join`'s arguments.
#[derive(Args)]
pub struct JoinArgs {
    /// etcd members: etcd://HOST:2379[,HOST:2379...] (https with the TLS flags)
    #[arg(long)]
    store: String,
    /// The CA that signed etcd's certificates (PEM): talk TLS to etcd.
    #[arg(long = "etcd-cacert", value_name = "FILE")]
    etcd_cacert: Option<PathBuf>,
    /// This host's client certificate for etcd's --client-cert-auth (PEM).
    #[arg(long = "etcd-cert", value_name = "FILE")]
    etcd_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long = "etcd-key", value_name = "FILE")]
    etcd_key: Option<PathBuf>,
    /// An etcd user, with etcd's authentication on.
    #[arg(long = "etcd-user", value_name = "NAME")]
    etcd_user: Option<String>,
    /// The file that holds the etcd user's password.
    #[arg(long = "etcd-password-file", value_name = "FILE")]
    etcd_password_file: Option<PathBuf>,
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
    /// Seconds between new key pairs of this host's encrypted tunnels (`-o encrypted`
    /// networks).
    #[arg(long = "key-rotation", default_value_t = cluster::KEY_ROTATION)]
    key_rotation: i64,
}

/// `netctl cluster ...`.
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Join a cluster: its etcd members and this host's underlay address; starts the agent.
    /// Give etcd's CA and this host's client certificate: without TLS, anything that reaches
    /// etcd's port can rewrite the cluster.
    Join(Box<JoinArgs>),
    /// The hosts of the cluster, and whether they are alive.
    #[command(alias = "list")]
    Ls,
    /// Leave the cluster (this host's containers on overlay networks must be gone).
    Leave,
}

/// Runs a cluster command.
pub fn run(engine: &Engine, cmd: ClusterCommand) -> Outcome {
    match cmd {
        ClusterCommand::Join(args) => {
            let JoinArgs {
                store,
                etcd_cacert,
                etcd_cert,
                etcd_key,
                etcd_user,
                etcd_password_file,
                advertise,
                host_name,
                liveness_ttl,
                tenure_ttl,
                key_rotation,
            } = *args;
            let host = host_name.unwrap_or_else(netctl_engine::etc::host_hostname);
            let auth = cluster::StoreAuth {
                ca: etcd_cacert,
                cert: etcd_cert,
                key: etcd_key,
                user: etcd_user,
                password_file: etcd_password_file,
            };
            if !auth.tls() {
                eprintln!("warning: etcd without TLS: anything that reaches etcd's port can rewrite the cluster (give --etcd-cacert, --etcd-cert and --etcd-key)");
            }
            cluster::join(
                engine,
                &cluster::JoinOptions {
                    store: store.clone(),
                    advertise,
                    host: host.clone(),
                    liveness_ttl,
                    tenure_ttl,
                    key_rotation,
                    auth,
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
