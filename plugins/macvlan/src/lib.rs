//! The macvlan driver: each container gets a macvlan child of a parent link, so it appears
//! as its own host on the parent's segment, with addresses from IPAM.
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "lan", "type": "netctl-macvlan", "master": "eth0",
//!  "mode": "bridge", "ipam": {"type": "netctl-ipam", "subnet": "192.168.50.0/24",
//!  "ipRange": "192.168.50.64/26", "gateway": "192.168.50.1"}}
//! ```

use netctl_cni::{
    Attachment, Command, Ctx, Error, ErrorCode, Interface, IpConfig, Plugin, Success,
};
use netctl_ipam::plugin::{driver_ipam, driver_ipam_add};
use netctl_net::iface::{self, IfaceSetup};
use netctl_net::{Link, MacvlanMode, NetError, NetNs, Netlink};
use serde::Deserialize;
use serde_json::Value;

/// The plugin.
pub struct MacvlanPlugin;

/// Runs the plugin for this process.
pub fn run() -> ! {
    netctl_cni::skel::run(&MacvlanPlugin)
}

/// The macvlan mode, as configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Children talk to each other directly.
    #[default]
    Bridge,
    /// Everything goes through the external switch.
    Vepa,
    /// Children are isolated from each other.
    Private,
    /// One child takes over the parent.
    Passthru,
}

impl From<Mode> for MacvlanMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Bridge => MacvlanMode::Bridge,
            Mode::Vepa => MacvlanMode::Vepa,
            Mode::Private => MacvlanMode::Private,
            Mode::Passthru => MacvlanMode::Passthru,
        }
    }
}

/// The plugin's configuration (the reference macvlan plugin's keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MacvlanConfig {
    /// The parent link; the link of the host's default route when absent.
    #[serde(default)]
    pub master: Option<String>,
    /// The mode.
    #[serde(default)]
    pub mode: Mode,
    /// MTU of the child.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The parent lives in the container's namespace.
    #[serde(default)]
    pub link_in_container: bool,
    /// The IPAM section.
    pub ipam: Option<Value>,
}

impl MacvlanConfig {
    fn validate(&self) -> Result<&Value, Error> {
        if let Some(mtu) = self.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(Error::invalid_config(format!(
                    "mtu {mtu} is out of range: use 68 to 65535"
                )));
            }
        }
        if let Some(m) = &self.master {
            netctl_cni::validate::ifname(m)
                .map_err(|e| Error::invalid_config(format!("master: {}", e.msg)))?;
        }
        self.ipam
            .as_ref()
            .ok_or_else(|| Error::invalid_config("the macvlan plugin needs an \"ipam\" section"))
    }
}

fn netns(ctx: &Ctx) -> Result<NetNs, Error> {
    let path = ctx
        .args
        .netns
        .as_deref()
        .ok_or_else(|| Error::invalid_env("CNI_NETNS is required"))?;
    Ok(NetNs::open(path)?)
}

/// The parent link, checked: it exists and is not itself a port of a bridge.
fn parent(nl: &mut Netlink, conf: &MacvlanConfig) -> Result<Link, Error> {
    let link = match &conf.master {
        Some(name) => nl.link_by_name(name)?.ok_or_else(|| {
            Error::invalid_config(format!(
                "parent link {name} does not exist: check \"master\" (Docker: -o parent=)"
            ))
        })?,
        None => {
            let index = nl.default_route_link()?.ok_or_else(|| {
                Error::invalid_config(
                    "no \"master\" given and the host has no default route to take it from",
                )
            })?;
            nl.links()?
                .into_iter()
                .find(|l| l.index == index)
                .ok_or_else(|| NetError::LinkNotFound(format!("#{index}")))?
        }
    };
    if let Some(m) = link.master {
        let owner = nl.links()?.into_iter().find(|l| l.index == m);
        if owner.as_ref().and_then(|o| o.kind.as_deref()) == Some("bridge") {
            return Err(Error::invalid_config(format!(
                "parent link {} is a port of bridge {}: a macvlan parent must not be enslaved",
                link.name,
                owner.map(|o| o.name).unwrap_or_default()
            )));
        }
    }
    Ok(link)
}

impl Plugin for MacvlanPlugin {
    type Config = MacvlanConfig;

    fn add(&self, ctx: &Ctx, conf: MacvlanConfig) -> Result<Success, Error> {
        let ipam = conf.validate()?;
        let ns = netns(ctx)?;
        let mut ctr = Netlink::in_ns(&ns)?;
        let mut host = if conf.link_in_container {
            Netlink::in_ns(&ns)?
        } else {
            Netlink::new()?
        };
        let parent = parent(&mut host, &conf)?;
        if ctr.link_by_name(&ctx.args.ifname)?.is_some() {
            return Err(Error::new(
                ErrorCode::Plugin(110),
                format!(
                    "the container already has an interface named {}",
                    ctx.args.ifname
                ),
            ));
        }
        let (lease, made) = driver_ipam_add(ctx, ipam)?;
        match attach(ctx, &conf, &ns, &mut host, &mut ctr, &parent, &lease) {
            Ok(link) => Ok(result(ctx, link, lease)),
            Err(e) => {
                // The name was free when checked: whatever holds it now, this call made.
                let _ = ctr.del_link_by_name(&ctx.args.ifname);
                if made {
                    let _ = driver_ipam(ctx, Command::Del, ipam);
                }
                Err(e)
            }
        }
    }

    fn del(&self, ctx: &Ctx, conf: MacvlanConfig) -> Result<(), Error> {
        let mut first: Option<Error> = None;
        if let Some(ipam) = &conf.ipam {
            if let Err(e) = driver_ipam(ctx, Command::Del, ipam) {
                first.get_or_insert(e);
            }
        }
        if let Some(path) = &ctx.args.netns {
            match NetNs::open(path).and_then(|ns| Netlink::in_ns(&ns)) {
                Ok(mut nl) => {
                    if let Err(e) = nl.del_link_by_name(&ctx.args.ifname) {
                        first.get_or_insert(e.into());
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    first.get_or_insert(e.into());
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn check(&self, ctx: &Ctx, conf: MacvlanConfig) -> Result<(), Error> {
        let ipam = conf.validate()?;
        let prev = ctx
            .prev_result()?
            .ok_or_else(|| Error::invalid_config("CHECK needs prevResult: the result of ADD"))?;
        let mut nl = Netlink::in_ns(&netns(ctx)?)?;
        let link = nl
            .link_by_name(&ctx.args.ifname)?
            .filter(|l| l.kind.as_deref() == Some("macvlan"))
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::Plugin(112),
                    format!("macvlan {} is gone", ctx.args.ifname),
                )
            })?;
        let addrs = nl.addresses(Some(link.index))?;
        if let Some(missing) = prev
            .ips
            .iter()
            .find(|ip| !addrs.iter().any(|a| a.net == ip.address))
        {
            return Err(Error::new(
                ErrorCode::Plugin(112),
                format!("{} lost address {}", link.name, missing.address),
            ));
        }
        driver_ipam(ctx, Command::Check, ipam).map(drop)
    }

    fn gc(&self, ctx: &Ctx, conf: MacvlanConfig, _: &[Attachment]) -> Result<(), Error> {
        match &conf.ipam {
            Some(ipam) => driver_ipam(ctx, Command::Gc, ipam).map(drop),
            None => Ok(()),
        }
    }

    /// ADD can be served when the parent exists and IPAM has addresses left.
    fn status(&self, ctx: &Ctx, conf: MacvlanConfig) -> Result<(), Error> {
        let ipam = conf.validate()?;
        if !conf.link_in_container {
            parent(&mut Netlink::new()?, &conf)
                .map_err(|e| Error::new(ErrorCode::PluginNotAvailable, e.msg))?;
        }
        driver_ipam(ctx, Command::Status, ipam).map(drop)
    }
}

fn attach(
    ctx: &Ctx,
    conf: &MacvlanConfig,
    ns: &NetNs,
    host: &mut Netlink,
    ctr: &mut Netlink,
    parent: &Link,
    lease: &Success,
) -> Result<Link, Error> {
    let asked = ctx
        .conf
        .runtime_config
        .as_ref()
        .and_then(|rc| rc.mac.clone());
    let seed = format!("{}/{}", ctx.args.container_id, ctx.args.ifname);
    let mac = iface::container_mac(asked.as_deref(), &lease.ips, &seed)?;
    let target = (!conf.link_in_container).then_some(ns);
    host.add_macvlan(
        &ctx.args.ifname,
        parent.index,
        conf.mode.into(),
        target,
        conf.mtu,
        Some(mac),
    )?;
    let index = ctr.index_of(&ctx.args.ifname)?;
    iface::ignore_router_advertisements(ns, ctr, &ctx.args.ifname, index, lease)?;
    let setup = IfaceSetup {
        up: true,
        default_route: true,
        nodad: true,
    };
    iface::configure(ctr, index, lease, setup)?;
    Ok(ctr
        .link_by_name(&ctx.args.ifname)?
        .ok_or_else(|| NetError::LinkNotFound(ctx.args.ifname.clone()))?)
}

fn result(ctx: &Ctx, link: Link, lease: Success) -> Success {
    let routes = iface::with_default_routes(&lease);
    Success {
        interfaces: vec![Interface {
            name: link.name,
            mac: link.mac,
            mtu: link.mtu,
            sandbox: ctx.args.netns.as_ref().map(|p| p.display().to_string()),
            ..Interface::default()
        }],
        ips: lease
            .ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: Some(0),
                ..ip
            })
            .collect(),
        routes,
        dns: ctx.conf.dns.clone().unwrap_or_default(),
    }
}
