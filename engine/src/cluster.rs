//! This host in a cluster of hosts sharing overlay networks: joining (the cluster
//! configuration, and the agent started), the hosts, leaving; through the agent's socket
//! (`netctl-overlayd` links the etcd client, the engine does not).

use std::net::IpAddr;
use std::time::Duration;

pub use netctl_overlay_api::{KEY_ROTATION, LIVENESS_TTL, TENURE_TTL};

pub use netctl_overlay_api::StoreAuth;
use netctl_overlay_api::{
    ApiError, Client, ClusterConfig, CreateNetwork, HostStatus, NetworkSpec, Reply, Request,
};

use crate::engine::Engine;
use crate::error::{invalid, state, Context, Error, Result};

fn api(e: ApiError) -> Error {
    Error::State(e.to_string())
}

/// The agent's client.
pub fn client(engine: &Engine) -> Result<Client> {
    Client::connect(engine.run_dir(), Duration::from_secs(10)).map_err(api)
}

fn call(engine: &Engine, req: &Request) -> Result<Reply> {
    client(engine)?.call(req).map_err(api)
}

/// `etcd://h1:2379,h2:2379` (or `http(s)://...` URLs) as etcd client URLs: `https://`
/// when `tls`, and then never a plain `http://` one.
pub fn parse_store(store: &str, tls: bool) -> Result<Vec<String>> {
    let list = store.strip_prefix("etcd://").unwrap_or(store);
    let scheme = if tls { "https" } else { "http" };
    let mut urls = Vec::new();
    for s in list.split(',').filter(|s| !s.is_empty()) {
        if tls && s.starts_with("http://") {
            invalid!("--store member {s} is plain http, but TLS settings (--etcd-cacert, --etcd-cert) were given: use https:// or etcd://");
        }
        urls.push(if s.starts_with("http://") || s.starts_with("https://") {
            s.to_string()
        } else {
            format!("{scheme}://{s}")
        });
    }
    if urls.is_empty() {
        invalid!("--store {store:?}: give etcd://HOST:PORT[,HOST:PORT...]");
    }
    Ok(urls)
}

/// Checks that each file of `auth` is there and readable, and that a certificate comes
/// with its key and a user with a password file.
fn check_auth(auth: &StoreAuth) -> Result<()> {
    if auth.cert.is_some() != auth.key.is_some() {
        invalid!("--etcd-cert and --etcd-key go together: give both or neither");
    }
    if auth.user.is_some() != auth.password_file.is_some() {
        invalid!("--etcd-user and --etcd-password-file go together: give both or neither");
    }
    let files = [&auth.ca, &auth.cert, &auth.key, &auth.password_file];
    for f in files.into_iter().flatten() {
        if !f.is_absolute() {
            invalid!(
                "{}: give an absolute path (the agent reads it from another folder)",
                f.display()
            );
        }
        std::fs::File::open(f).ctx(|| format!("read {}", f.display()))?;
    }
    Ok(())
}

/// What `netctl cluster join` is given.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The etcd members, `etcd://h1:2379,h2:2379`.
    pub store: String,
    /// This host's underlay address.
    pub advertise: IpAddr,
    /// This host's name in the cluster.
    pub host: String,
    /// Seconds this host's endpoints outlive its agent.
    pub liveness_ttl: i64,
    /// Seconds this host's addresses outlive its agent.
    pub tenure_ttl: i64,
    /// Seconds between new key pairs of this host's encrypted tunnels.
    pub key_rotation: i64,
    /// TLS and user settings for etcd.
    pub auth: StoreAuth,
}

/// Joins the cluster: writes this host's cluster configuration and starts its agent (the
/// `netctl-overlayd` beside this binary), waiting until it answers.
pub fn join(engine: &Engine, opts: &JoinOptions) -> Result<()> {
    let (store, advertise) = (&opts.store, opts.advertise);
    if !crate::ids::valid_name(&opts.host) {
        invalid!(
            "invalid host name {:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+",
            opts.host
        );
    }
    if opts.liveness_ttl < 2 || opts.tenure_ttl < opts.liveness_ttl {
        invalid!(
            "--liveness-ttl must be at least 2 s and --tenure-ttl at least as long (got {} and {})",
            opts.liveness_ttl,
            opts.tenure_ttl
        );
    }
    if opts.key_rotation < 10 {
        invalid!(
            "--key-rotation must be at least 10 s (got {})",
            opts.key_rotation
        );
    }
    check_auth(&opts.auth)?;
    let cfg = ClusterConfig {
        store: parse_store(store, opts.auth.tls())?,
        auth: opts.auth.clone(),
        advertise,
        host: opts.host.clone(),
        liveness_ttl: opts.liveness_ttl,
        tenure_ttl: opts.tenure_ttl,
        key_rotation: opts.key_rotation,
        root: engine.root().to_path_buf(),
        run_dir: engine.run_dir().to_path_buf(),
    };
    let path = ClusterConfig::path(engine.root());
    let before = std::fs::read(&path).ok();
    let started = write_config(&path, &cfg).and_then(|()| start_agent(engine, &path));
    if started.is_err() {
        // A join that did not happen leaves the configuration as it was.
        let _ = match before {
            Some(old) => netctl_cni::fsutil::write_atomic(&path, &old),
            None => netctl_cni::fsutil::remove_if_exists(&path),
        };
    }
    started.map_err(|e| e.context(format!("join the cluster at {store} as {advertise}")))
}

/// Writes the cluster configuration, root's alone (it names the key and the password file).
fn write_config(path: &std::path::Path, cfg: &ClusterConfig) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(cfg).ctx(|| "encode the cluster configuration".into())?;
    netctl_cni::fsutil::write_atomic(path, &bytes).ctx(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .ctx(|| format!("restrict {}", path.display()))
}

/// Starts the agent (the `netctl-overlayd` beside this binary) on the configuration at
/// `path` and waits until it answers.
fn start_agent(engine: &Engine, path: &std::path::Path) -> Result<()> {
    let agent = engine.binary("netctl-overlayd").ok_or_else(|| {
        Error::State(
            "netctl-overlayd is not in the plugin path; install it beside the plugins".into(),
        )
    })?;
    let mut client = netctl_overlay_api::connect_or_start(
        &agent,
        path,
        engine.run_dir(),
        Duration::from_secs(10),
    )
    .map_err(api)?;
    client.call(&Request::Ping).map_err(api).map(drop)
}

/// Tells this host's agent, if the host is in a cluster, that its own networks changed, so
/// that no overlay network is created by the name of one (best effort: the agent also looks
/// every minute, and never writes an overlay's conflist over a network of the host's own).
pub fn local_networks_changed(engine: &Engine) {
    if ClusterConfig::read(engine.root()).is_none() {
        return;
    }
    if let Ok(mut c) = Client::connect(engine.run_dir(), Duration::from_secs(2)) {
        let _ = c.call(&Request::LocalNetworksChanged);
    }
}

/// The hosts of the cluster.
pub fn hosts(engine: &Engine) -> Result<Vec<HostStatus>> {
    match call(engine, &Request::Hosts)? {
        Reply::Hosts { hosts } => Ok(hosts),
        other => state!("unexpected reply from the agent: {other:?}"),
    }
}

/// Leaves the cluster (refused while this host has overlay endpoints); the agent ends.
pub fn leave(engine: &Engine) -> Result<()> {
    call(engine, &Request::Leave)?;
    let path = ClusterConfig::path(engine.root());
    netctl_cni::fsutil::remove_if_exists(&path).ctx(|| format!("remove {}", path.display()))
}

/// Makes an overlay network in the cluster (the agent writes its conflist here, and every
/// other agent on its host).
pub fn create_network(engine: &Engine, req: CreateNetwork) -> Result<NetworkSpec> {
    match call(engine, &Request::CreateNetwork(req))? {
        Reply::Network { spec, .. } => Ok(spec),
        other => state!("unexpected reply from the agent: {other:?}"),
    }
}

/// Removes an overlay network from the cluster, refused while any host has endpoints on it.
pub fn remove_network(engine: &Engine, name: &str) -> Result<()> {
    call(engine, &Request::RemoveNetwork { name: name.into() }).map(drop)
}
