//! `netctl network ...`: Docker's network commands, flags and output.

use clap::{Args, Subcommand, ValueEnum};
use netctl_engine::network::{create, parse_subnet, CreateRequest, Driver, Network};
use netctl_engine::Engine;
use serde_json::json;

use crate::input::{confirm, options};
use crate::outcome::Outcome;

/// The network commands.
#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network; prints its ID.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON.
    Inspect {
        /// Go template over each network: `{{.IPAM.Config}}`, `{{json .Containers}}`.
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Names or IDs (unique prefixes work).
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Names or IDs.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every user network no container uses.
    Prune {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network: a new interface at once if it runs.
    Connect {
        /// A network-scoped alias; repeatable.
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address.
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        /// IPv6 address.
        #[arg(long)]
        ip6: Option<std::net::IpAddr>,
        /// An endpoint driver option, KEY=VALUE; repeatable.
        #[arg(long = "driver-opt")]
        driver_opt: Vec<String>,
        /// NAME:ALIAS: ALIAS answers as container NAME for this container on the network;
        /// repeatable.
        #[arg(long)]
        link: Vec<String>,
        /// A link-local address more on the new interface; repeatable.
        #[arg(long = "link-local-ip")]
        link_local_ip: Vec<std::net::IpAddr>,
        /// The network with the highest priority carries the default route (Docker 28).
        #[arg(
            long = "gw-priority",
            default_value_t = 0,
            allow_negative_numbers = true
        )]
        gw_priority: i64,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Change a network's own resolvers (podman's); running containers use them at once.
    Update {
        /// Add a resolver; repeatable.
        #[arg(long = "dns-add")]
        dns_add: Vec<std::net::IpAddr>,
        /// Remove a resolver; repeatable.
        #[arg(long = "dns-drop")]
        dns_drop: Vec<std::net::IpAddr>,
        /// The network.
        network: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Also when it is not connected.
        #[arg(short, long)]
        force: bool,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Put back every network's firewall rules (after `nft flush ruleset` or a firewalld
    /// reload) by asking each network's plugins for their STATUS.
    Repair,
}

/// The drivers `network create -d` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    /// A Linux bridge.
    Bridge,
    /// macvlan children of a parent link (`-o parent=`).
    Macvlan,
    /// Across the hosts of a cluster (`netctl cluster join` first).
    Overlay,
}

/// `network create` flags, as Docker spells them.
#[derive(Args)]
pub struct CreateArgs {
    /// The driver.
    #[arg(short, long, value_enum, default_value = "bridge")]
    driver: DriverArg,
    /// A subnet in CIDR form; repeat for IPv4 and IPv6.
    #[arg(long)]
    subnet: Vec<String>,
    /// Hand out container addresses from this sub-range (CIDR inside --subnet).
    #[arg(long = "ip-range")]
    ip_range: Option<String>,
    /// An address of the subnet never handed out to containers, NAME=IP; repeatable.
    #[arg(long = "aux-address")]
    aux_address: Vec<String>,
    /// A static route every container gets, DESTINATION/PREFIX,GATEWAY[,METRIC]
    /// (podman's); repeatable.
    #[arg(long = "route")]
    route: Vec<String>,
    /// A resolver of the network's own (podman's), for names it does not know; repeatable.
    #[arg(long = "dns")]
    dns: Vec<std::net::IpAddr>,
    /// The gateway (default: the first address of the subnet).
    #[arg(long)]
    gateway: Option<String>,
    /// Give the network an IPv6 subnet too.
    #[arg(long)]
    ipv6: bool,
    /// `--ipv4=false` with --ipv6: an IPv6-only network (Docker 28).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    ipv4: bool,
    /// No access to or from outside the network.
    #[arg(long)]
    internal: bool,
    /// local, or swarm (also global): a macvlan network of the whole cluster, its
    /// addresses from the cluster's IPAM (`netctl cluster join` first).
    #[arg(long)]
    scope: Option<String>,
    /// KEY=VALUE metadata; repeatable.
    #[arg(long)]
    label: Vec<String>,
    /// Driver options KEY=VALUE; repeatable.
    ///
    /// bridge: com.docker.network.bridge.name (or bridge);
    /// com.docker.network.bridge.gateway_mode_ipv4 and _ipv6 (nat, nat-unprotected, routed,
    /// isolated; each family its own); com.docker.network.bridge.trusted_host_interfaces
    /// (IF:IF...); isolate=strict (podman); no_default_route=true (podman);
    /// firewall=auto|nftables|iptables|none. macvlan: parent, macvlan_mode (bridge, vepa,
    /// private, passthru). overlay: encrypted.
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// The network's name.
    name: String,
}

/// `network ls` flags.
#[derive(Args)]
pub struct LsArgs {
    /// Only IDs.
    #[arg(short, long)]
    quiet: bool,
    /// driver, id, name, label, scope, type (custom, builtin) or dangling=KEY; repeatable.
    #[arg(short, long)]
    filter: Vec<String>,
    /// `json` for one JSON object per line, or a Go template: `{{.Name}}`.
    #[arg(long)]
    format: Option<String>,
    /// Full network IDs.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

/// Runs a network command.
pub fn run(engine: &Engine, cmd: NetworkCommand) -> Outcome {
    let store = engine.networks()?;
    match cmd {
        NetworkCommand::Create(a) => {
            let req = CreateRequest {
                name: a.name,
                driver: match a.driver {
                    DriverArg::Bridge => Driver::Bridge,
                    DriverArg::Macvlan => Driver::Macvlan,
                    DriverArg::Overlay => Driver::Overlay,
                },
                subnets: a
                    .subnet
                    .iter()
                    .map(|s| parse_subnet(s))
                    .collect::<Result<_, _>>()?,
                ip_range: a.ip_range.as_deref().map(parse_subnet).transpose()?,
                gateway: a
                    .gateway
                    .as_deref()
                    .map(|g| {
                        g.parse().map_err(|_| {
                            anyhow::anyhow!("invalid gateway {g:?}: expected an IP address")
                        })
                    })
                    .transpose()?,
                ipv6: a.ipv6,
                no_ipv4: !a.ipv4,
                internal: a.internal,
                labels: options(&a.label),
                options: options(&a.opt),
                aux_addresses: a
                    .aux_address
                    .iter()
                    .map(|kv| {
                        kv.split_once('=')
                            .and_then(|(n, ip)| Some((n.to_string(), ip.parse().ok()?)))
                            .ok_or_else(|| {
                                anyhow::anyhow!("invalid --aux-address {kv:?}: give NAME=IP")
                            })
                    })
                    .collect::<Result<_, _>>()?,
                routes: a
                    .route
                    .iter()
                    .map(|r| netctl_engine::network::parse_route(r))
                    .collect::<Result<_, _>>()?,
                dns_servers: a.dns.clone(),
                scope: a.scope.clone(),
            };
            println!("{}", create(engine, &req)?.id);
        }
        NetworkCommand::Ls(a) => ls(engine, &store.all()?, &a)?,
        NetworkCommand::Inspect { networks, format } => {
            let found = networks
                .iter()
                .map(|n| store.find(n))
                .collect::<Result<Vec<_>, _>>()?;
            let out: Vec<_> = found
                .iter()
                .map(|n| netctl_engine::view::inspect_network(engine, n))
                .collect();
            crate::output::objects(&out, format.as_deref())?;
        }
        NetworkCommand::Rm { networks } => {
            crate::output::repair(engine);
            for key in networks {
                store.remove(engine, &store.find(&key)?)?;
                println!("{key}");
            }
        }
        NetworkCommand::Prune { force } => {
            crate::output::repair(engine);
            prune(engine, force)?;
        }
        NetworkCommand::Connect {
            alias,
            ip,
            ip6,
            driver_opt,
            link,
            link_local_ip,
            gw_priority,
            network,
            container,
        } => {
            let driver_opts = driver_opt
                .iter()
                .map(|o| match o.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                    _ => Err(netctl_engine::Error::Invalid(format!(
                        "invalid key/value pair format in driver options: {o}"
                    ))),
                })
                .collect::<Result<_, _>>()?;
            let asked = netctl_engine::netattach::ConnectRequest {
                aliases: alias,
                ips: ip.into_iter().chain(ip6).collect(),
                driver_opts,
                gw_priority,
                links: link
                    .iter()
                    .map(|l| netctl_engine::spec::parse_endpoint_link(l))
                    .collect::<Result<_, _>>()?,
                link_local_ips: link_local_ip,
            };
            netctl_engine::netattach::connect(engine, &network, &container, &asked)?;
        }
        NetworkCommand::Update {
            dns_add,
            dns_drop,
            network,
        } => {
            let n = netctl_engine::network::update_dns(engine, &network, &dns_add, &dns_drop)?;
            println!("{}", n.name);
        }
        NetworkCommand::Disconnect {
            force,
            network,
            container,
        } => netctl_engine::netattach::disconnect(engine, &network, &container, force)?,
        NetworkCommand::Repair => {
            for n in store.all()? {
                engine
                    .cni
                    .status(&n.list)
                    .map_err(|e| anyhow::anyhow!("network {}: {e}", n.name))?;
                println!("{}", n.name);
            }
        }
    }
    Ok(0)
}

fn ls(engine: &Engine, all: &[Network], a: &LsArgs) -> anyhow::Result<()> {
    let filter = netctl_engine::filter::NetworkFilter::parse(&a.filter)?;
    let nets: Vec<&Network> = all
        .iter()
        .filter(|n| filter.matches(n, || !n.attachments(engine).is_empty()))
        .collect();
    let id = |n: &Network| {
        if a.no_trunc {
            n.id.clone()
        } else {
            n.short_id().to_string()
        }
    };
    if a.quiet {
        nets.iter().for_each(|n| println!("{}", id(n)));
        return Ok(());
    }
    if let Some(format) = a.format.as_deref() {
        let rows: Vec<_> = nets
            .iter()
            .map(|n| json!({"ID": id(n), "Name": n.name, "Driver": n.driver(), "Scope": n.scope(), "Internal": n.meta.internal, "CreatedAt": n.meta.created}))
            .collect();
        if format == "json" {
            rows.iter().for_each(|r| println!("{r}"));
        } else {
            let header = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Internal": "INTERNAL", "CreatedAt": "CREATED AT"});
            print!("{}", crate::template::render_list(format, &header, &rows)?);
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = nets
        .iter()
        .map(|n| vec![id(n), n.name.clone(), n.driver(), n.scope().into()])
        .collect();
    print!(
        "{}",
        crate::output::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
    );
    Ok(())
}

fn prune(engine: &Engine, force: bool) -> anyhow::Result<()> {
    if !force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )?
    {
        return Ok(());
    }
    let pruned = netctl_engine::system::prune_networks(engine)?;
    if !pruned.deleted.is_empty() {
        println!("Deleted Networks:\n{}", pruned.deleted.join("\n"));
    }
    Ok(())
}
