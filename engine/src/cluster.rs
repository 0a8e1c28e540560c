//! This host in a cluster of hosts sharing overlay networks: joining (the cluster
//! configuration, and the agent started), the hosts, leaving; through the agent's socket
//! (`netctl-overlayd` links the etcd client, the engine does not).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

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
    Client::connect(&engine.run_dir, Duration::from_secs(10)).map_err(api)
}

fn call(engine: &Engine, req: &Request) -> Result<Reply> {
    client(engine)?.call(req).map_err(api)
}

/// `etcd://h1:2379,h2:2379` (or `http://...` URLs) as etcd client URLs.
pub fn parse_store(store: &str) -> Result<Vec<String>> {
    let list = store.strip_prefix("etcd://").unwrap_or(store);
    let urls: Vec<String> = list
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with("http://") || s.starts_with("https://") {
                s.to_string()
            } else {
                format!("http://{s}")
            }
        })
        .collect();
    if urls.is_empty() {
        invalid!("--store {store:?}: give etcd://HOST:PORT[,HOST:PORT...]");
    }
    Ok(urls)
}

/// Joins the cluster: writes this host's cluster configuration and starts its agent (the
/// `netctl-overlayd` beside this binary), waiting until it answers.
pub fn join(engine: &Engine, store: &str, advertise: IpAddr, host: &str) -> Result<()> {
    if !crate::ids::valid_name(host) {
        invalid!("invalid host name {host:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+");
    }
    let cfg = ClusterConfig {
        store: parse_store(store)?,
        advertise,
        host: host.into(),
        liveness_ttl: 5,
        tenure_ttl: 300,
        root: engine.root.clone(),
        run_dir: engine.run_dir.clone(),
    };
    let path = ClusterConfig::path(&engine.root);
    let bytes =
        serde_json::to_vec_pretty(&cfg).ctx(|| "encode the cluster configuration".into())?;
    netctl_cni::fsutil::write_atomic(&path, &bytes).ctx(|| format!("write {}", path.display()))?;
    if client(engine).is_err() {
        start_agent(&path)?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match call(engine, &Request::Ping) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "the agent did not come up (is etcd at {store} reachable from {advertise}?)"
                )))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn start_agent(config: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().ctx(|| "find the running executable".into())?;
    let agent = exe
        .parent()
        .map(|d| d.join("netctl-overlayd"))
        .filter(|p| p.is_file())
        .ok_or_else(|| Error::State("netctl-overlayd is not beside netctl".into()))?;
    std::process::Command::new(agent)
        .arg("--config")
        .arg(config)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .ctx(|| "start netctl-overlayd".into())?;
    Ok(())
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
    let path = ClusterConfig::path(&engine.root);
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
