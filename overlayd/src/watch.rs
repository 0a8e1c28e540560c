//! Keeping up with the cluster: the leases kept alive, and one watch on the whole prefix,
//! resumed from the last revision seen and re-listed after a compaction or a lost stream,
//! so no event is missed and nothing stays stale.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use etcd_client::{EventType, GetOptions, KeyValue, WatchOptions};
use netctl_overlay_api::{EndpointRecord, HostRecord, NetworkSpec};

use crate::agent::{Agent, View};
use crate::keys::{self, Kind};
use crate::local;
use crate::trust;

/// How often everything is listed again, whatever the watch said.
const RESYNC: Duration = Duration::from_secs(60);

/// Keeps a lease alive, sending every third of its TTL; when etcd says the lease is gone
/// (a partition longer than the TTL), `expired` runs (the liveness lease is granted again
/// and everything re-announced).
pub async fn keep_alive(agent: Arc<Agent>, liveness: bool) {
    let ttl = if liveness {
        agent.cfg.liveness_ttl
    } else {
        agent.cfg.tenure_ttl
    };
    let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(300));
    loop {
        let id = if liveness {
            *agent.liveness.lock().await
        } else {
            agent.tenure
        };
        let alive = match agent.etcd.clone().lease_keep_alive(id).await {
            Ok((mut keeper, mut stream)) => loop {
                if keeper.keep_alive().await.is_err() {
                    break true; // the stream broke: connect again
                }
                match stream.message().await {
                    Ok(Some(r)) if r.ttl() > 0 => {
                        if liveness {
                            beat_out(&agent, id).await;
                        }
                        tokio::time::sleep(period).await
                    }
                    Ok(Some(_)) => break false,
                    _ => break true,
                }
            },
            Err(_) => true,
        };
        if !alive && liveness {
            renew_liveness(&agent).await;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Rewrites this host's `alive/` marker (a counter, on its liveness lease): the beat every
/// other agent watches, so a dead host is noticed even when etcd re-grants its lease in full
/// (as a new etcd leader does).
async fn beat_out(agent: &Arc<Agent>, lease: i64) {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = agent
        .etcd
        .clone()
        .put(
            keys::alive(&agent.cfg.host),
            n.to_string(),
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await;
}

async fn renew_liveness(agent: &Arc<Agent>) {
    let granted = agent
        .etcd
        .clone()
        .lease_grant(agent.cfg.liveness_ttl, None)
        .await;
    if let Ok(g) = granted {
        *agent.liveness.lock().await = g.id();
        report("announce this host again", agent.announce(g.id()).await);
    }
}

/// Lists everything, applies it, and watches from the next revision; forever.
pub async fn follow(agent: Arc<Agent>) {
    loop {
        let revision = match relist(&agent).await {
            Ok(r) => r,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let liveness = *agent.liveness.lock().await;
        report(
            "publish this host's own networks",
            agent.publish_local_networks(liveness).await,
        );
        // Listed again now and then, too: whatever a change missed here is made good.
        if let Ok(r) = tokio::time::timeout(RESYNC, watch_from(&agent, revision + 1)).await {
            report("watch the cluster", r);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A value read from etcd as a `T`, or (logged) nothing.
fn parsed<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Option<T> {
    serde_json::from_slice(value)
        .map_err(|e| skipped(key, &format!("not a record: {e}")))
        .ok()
}

/// A record that fails the checks of [`crate::trust`] is logged and changes nothing.
fn skipped(key: &str, why: &str) {
    eprintln!("netctl-overlayd: skipped {key}: {why}");
}

/// The host record at `key`, if it is one and passes the checks.
fn checked_host(key: &str, name: &str, value: &[u8]) -> Option<HostRecord> {
    let h: HostRecord = parsed(key, value)?;
    trust::host(name, &h)
        .map_err(|why| skipped(key, &why))
        .ok()?;
    Some(h)
}

/// The network spec at `key`, if it is one and passes the checks.
fn checked_network(key: &str, name: &str, value: &[u8]) -> Option<NetworkSpec> {
    let s: NetworkSpec = parsed(key, value)?;
    trust::network(name, &s)
        .map_err(|why| skipped(key, &why))
        .ok()?;
    Some(s)
}

/// Another host's endpoint at `key`, if it is one and passes the checks against the
/// network and host records `view` has (and, when `new`, its host has room for one more).
fn checked_endpoint(
    agent: &Agent,
    view: &View,
    key: &str,
    value: &[u8],
    new: bool,
) -> Option<EndpointRecord> {
    let Kind::Endpoint(k) = keys::kind(key) else {
        return None;
    };
    if k.host == agent.cfg.host {
        return None; // this host's own
    }
    let e: EndpointRecord = parsed(key, value)?;
    let (Some(spec), Some(owner)) = (view.networks.get(k.network), view.hosts.get(k.host)) else {
        skipped(
            key,
            "its network or its host is not (validly) in the cluster",
        );
        return None;
    };
    trust::endpoint(&k, &e, spec, owner)
        .map_err(|why| skipped(key, &why))
        .ok()?;
    let held = view.remote.values().filter(|o| o.host == e.host).count();
    if new && held >= trust::MAX_ENDPOINTS_PER_HOST {
        skipped(
            key,
            &format!("host {} already has {held} endpoints", e.host),
        );
        return None;
    }
    Some(e)
}

/// Reads every host, network and endpoint and makes this host match (what was removed while
/// the watch was away goes too); the revision read at.
async fn relist(agent: &Arc<Agent>) -> Result<i64> {
    let resp = agent
        .etcd
        .clone()
        .get(keys::all(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut fresh = View::default();
    let kvs: Vec<(String, &[u8])> = resp
        .kvs()
        .iter()
        .map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), kv.value()))
        .collect();
    for (key, value) in &kvs {
        match keys::kind(key) {
            Kind::Host(name) => {
                if let Some(h) = checked_host(key, name, value) {
                    fresh.hosts.insert(name.to_string(), h);
                }
            }
            Kind::Network(name) => {
                if let Some(s) = checked_network(key, name, value) {
                    fresh.networks.insert(name.to_string(), s);
                }
            }
            _ => {}
        }
    }
    for (key, value) in &kvs {
        if let Some(e) = checked_endpoint(agent, &fresh, key, value, true) {
            fresh.remote.insert(key.clone(), e);
        }
    }
    let mut view = agent.view.lock().await;
    let gone_nets: Vec<NetworkSpec> = view
        .networks
        .values()
        .filter(|s| !fresh.networks.contains_key(&s.name))
        .cloned()
        .collect();
    let gone_eps: Vec<(String, EndpointRecord)> = view
        .remote
        .iter()
        .filter(|(k, _)| !fresh.remote.contains_key(*k))
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    if view.hosts != fresh.hosts || view.networks != fresh.networks {
        agent.cluster_changed.notify_one();
    }
    *view = View {
        hosts: fresh.hosts,
        networks: fresh.networks,
        remote: Default::default(),
        beats: std::mem::take(&mut view.beats),
        suspects: std::mem::take(&mut view.suspects),
    };
    for (key, e) in fresh.remote {
        endpoint_put(agent, &mut view, key, e);
    }
    for (_, e) in gone_eps {
        endpoint_gone(agent, &view, &e);
    }
    for s in view.networks.values() {
        network_put(agent, s);
    }
    drop(view);
    remove_locally(agent, gone_nets).await;
    Ok(revision)
}

async fn watch_from(agent: &Arc<Agent>, revision: i64) -> Result<()> {
    let opts = WatchOptions::new()
        .with_prefix()
        .with_prev_key()
        .with_start_revision(revision);
    let mut stream = agent.etcd.clone().watch(keys::all(), Some(opts)).await?;
    while let Some(resp) = stream.message().await? {
        if resp.canceled() || resp.compact_revision() > 0 {
            return Ok(()); // compacted past us: list again
        }
        let mut removed = Vec::new();
        {
            let mut view = agent.view.lock().await;
            for ev in resp.events() {
                let (Some(kv), put) = (ev.kv(), ev.event_type() == EventType::Put) else {
                    continue;
                };
                removed.extend(apply(agent, &mut view, kv, ev.prev_kv(), put));
            }
        }
        // Outside the view's lock: removing runs the network's plugins, which ask this agent.
        remove_locally(agent, removed).await;
    }
    Ok(())
}

async fn remove_locally(agent: &Arc<Agent>, specs: Vec<NetworkSpec>) {
    for s in specs {
        let name = s.name.clone();
        report(
            &format!("remove network {name} from this host"),
            agent.remove_locally(s).await,
        );
    }
}

/// Applies one event; a network that went is returned, for removing outside the lock.
fn apply(
    agent: &Arc<Agent>,
    view: &mut View,
    kv: &KeyValue,
    prev: Option<&KeyValue>,
    put: bool,
) -> Option<NetworkSpec> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    match keys::kind(&key) {
        Kind::Host(name) if put => {
            if let Some(h) = checked_host(&key, name, kv.value()) {
                view.hosts.insert(name.to_string(), h);
                agent.cluster_changed.notify_one();
            }
        }
        Kind::Host(name) => {
            view.hosts.remove(name);
            agent.cluster_changed.notify_one();
        }
        Kind::Network(name) if put => {
            if let Some(s) = checked_network(&key, name, kv.value()) {
                network_put(agent, &s);
                view.networks.insert(name.to_string(), s);
                agent.cluster_changed.notify_one();
            }
        }
        Kind::Network(name) => {
            agent.cluster_changed.notify_one();
            return view.networks.remove(name);
        }
        Kind::Endpoint(_) if put => {
            let new = !view.remote.contains_key(&key);
            if let Some(e) = checked_endpoint(agent, view, &key, kv.value(), new) {
                beat(agent, view, &e.host.clone()); // a fresh write: its agent lives
                endpoint_put(agent, view, key, e);
            }
        }
        Kind::Alive(host) if put => beat(agent, view, host),
        Kind::Endpoint(_) => {
            let gone = view.remote.remove(&key).or_else(|| {
                prev.and_then(|p| checked_endpoint(agent, view, &key, p.value(), false))
            });
            if let Some(e) = gone {
                endpoint_gone(agent, view, &e);
            }
        }
        _ => {}
    }
    None
}

fn network_put(agent: &Arc<Agent>, s: &NetworkSpec) {
    report(
        &format!("write the conflist of {}", s.name),
        local::write_conflist(&agent.cfg, s),
    );
    if !s.is_overlay() {
        return;
    }
    report(
        &format!("make the VXLAN device of {}", s.name),
        agent
            .vtep_for(s)
            .and_then(|vtep| local::ensure_vxlan(s, vtep, agent.mtu))
            .map(drop),
    );
}

/// Where frames for endpoint `e` of `spec` are tunnelled to: its host's underlay address,
/// or that host's tunnel address on an encrypted network (None: that host has no tunnel).
fn tunnel_dst(view: &View, spec: &NetworkSpec, e: &EndpointRecord) -> Option<std::net::IpAddr> {
    if !spec.encrypted {
        return Some(e.vtep);
    }
    let end = view.hosts.get(&e.host)?.tunnel.as_ref()?;
    Some(std::net::IpAddr::V4(end.addr))
}

fn endpoint_put(agent: &Arc<Agent>, view: &mut View, key: String, e: EndpointRecord) {
    if view.suspects.contains(&e.host) {
        view.remote.insert(key, e); // programmed when its host beats again
        return;
    }
    if let Some(spec) = view.networks.get(&e.network) {
        report(
            &format!("point at {}", e.container_id),
            tunnel_dst(view, spec, &e)
                .ok_or_else(|| anyhow::anyhow!("host {} has no encrypted tunnel", e.host))
                .and_then(|dst| local::program(spec, &e, dst)),
        );
    }
    report(
        &format!("mirror the names of {}", e.container_id),
        local::mirror_dns(&agent.cfg.run_dir, &e),
    );
    view.remote.insert(key, e);
}

fn endpoint_gone(agent: &Arc<Agent>, view: &View, e: &EndpointRecord) {
    let others: Vec<&EndpointRecord> = view
        .remote
        .values()
        .filter(|o| o.network == e.network && !view.suspects.contains(&o.host))
        .filter(|o| !(o.host == e.host && o.container_id == e.container_id && o.ifname == e.ifname))
        .collect();
    if let Some(spec) = view.networks.get(&e.network) {
        if let Some(dst) = tunnel_dst(view, spec, e) {
            report(
                &format!("forget {}", e.container_id),
                local::unprogram(spec, e, dst, &others),
            );
        }
    }
    if !others
        .iter()
        .any(|o| o.container_id == e.container_id && o.ifname == e.ifname)
    {
        report(
            &format!("drop the names of {}", e.container_id),
            local::unmirror_dns(&agent.cfg.run_dir, e),
        );
    }
}

/// A change this host could not make is written to the agent's log (stderr) and the agent
/// goes on: the next relist tries again.
fn report(what: &str, r: Result<()>) {
    if let Err(e) = r {
        eprintln!("netctl-overlayd: {what}: {e:#}");
    }
}

/// Forever: a new key pair for this host's tunnels every `key_rotation` seconds.
pub async fn rotate_keys(agent: Arc<Agent>) {
    let every = Duration::from_secs(u64::try_from(agent.cfg.key_rotation).unwrap_or(86_400));
    loop {
        tokio::time::sleep(every).await;
        report("rotate the tunnel key", agent.rotate_key().await);
    }
}

/// A beat of `host` seen: a suspect is back, and its endpoints are programmed again.
fn beat(agent: &Arc<Agent>, view: &mut View, host: &str) {
    view.beats.insert(host.to_string(), Instant::now());
    if view.suspects.remove(host) {
        let back: Vec<(String, EndpointRecord)> = view
            .remote
            .iter()
            .filter(|(_, e)| e.host == host)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for (k, e) in back {
            endpoint_put(agent, view, k, e);
        }
    }
}

/// How often silent hosts are looked for.
const SUSPECT_EVERY: Duration = Duration::from_millis(250);

/// Forever: a host not heard for the liveness TTL, while this host's own beats come back
/// through etcd (so the silence is not this host's), is taken as dead here: its forwarding
/// entries and names go at once, before etcd expires its lease (a new etcd leader re-grants
/// every lease in full, which would add an election and a TTL).
pub async fn suspect_silent(agent: Arc<Agent>) {
    let ttl = Duration::from_secs(u64::try_from(agent.cfg.liveness_ttl).unwrap_or(5));
    loop {
        tokio::time::sleep(SUSPECT_EVERY).await;
        let mut view = agent.view.lock().await;
        let now = Instant::now();
        let heard = |view: &View, host: &str| {
            view.beats
                .get(host)
                .is_some_and(|t| now.duration_since(*t) < ttl)
        };
        if !heard(&view, &agent.cfg.host) {
            continue;
        }
        let hosts: std::collections::BTreeSet<String> =
            view.remote.values().map(|e| e.host.clone()).collect();
        for host in hosts {
            if view.suspects.contains(&host) {
                continue;
            }
            if !view.beats.contains_key(&host) {
                view.beats.insert(host.clone(), now); // first seen: a TTL of grace
                continue;
            }
            if !heard(&view, &host) {
                view.suspects.insert(host.clone());
                let gone: Vec<EndpointRecord> = view
                    .remote
                    .values()
                    .filter(|e| e.host == host)
                    .cloned()
                    .collect();
                for e in &gone {
                    endpoint_gone(&agent, &view, e);
                }
            }
        }
    }
}
