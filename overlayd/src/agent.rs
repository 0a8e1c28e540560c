//! The agent: one etcd session, two leases (liveness: seconds, carrying the host's marker,
//! its endpoints and their DNS names; tenure: minutes, carrying its address allocations),
//! the requests of local clients, and what every host must know about every other.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use ipnet::IpNet;
use netctl_ipam::{AllocationOrder, Allocator, IpamConfig, IpamError, Owner, RangeConfig};
use netctl_overlay_api::{
    ClusterConfig, CreateNetwork, EndpointRecord, HostRecord, HostStatus, LeasedAddress,
    NetworkSpec, Reply, Request, StoreAuth, FIRST_VNI, TUNNEL_OVERHEAD, VXLAN_OVERHEAD,
};
use tokio::sync::Mutex;

use crate::keys;
use crate::local;
use crate::store::EtcdStore;

/// The agent's state.
pub struct Agent {
    /// This host's configuration.
    pub cfg: ClusterConfig,
    /// The etcd client (cheap to clone: one channel).
    pub etcd: Client,
    /// The liveness lease (changes when it had expired and was granted again).
    pub liveness: Mutex<i64>,
    /// The tenure lease.
    pub tenure: i64,
    /// This host's underlay MTU.
    pub mtu: u32,
    /// What the watch has seen: networks and remote endpoints.
    pub view: Mutex<View>,
    /// Set by `Leave`: the agent ends.
    pub leaving: tokio::sync::Notify,
    /// Told when a host record or a network came, changed or went (the firewall's rules and
    /// the tunnel's peers follow).
    pub cluster_changed: tokio::sync::Notify,
    /// What [`Agent::publish_local_networks`] last put, and on which lease.
    published_local: Mutex<Option<(i64, Vec<u8>)>>,
    /// Held while a network is taken from this host ([`Agent::remove_locally`]): `network
    /// rm` here and the watch seeing the network go must not run its plugins at once.
    removing: Mutex<()>,
    /// This host's end of the encrypted tunnels; None where it could not be made (no
    /// /dev/net/tun): encrypted networks are then refused here, saying why.
    pub tunnel: Option<Arc<crate::crypt::Tunnel>>,
    /// Why there is no tunnel, when there is none.
    pub tunnel_missing: Option<String>,
}

/// The hosts, networks and remote endpoints this host knows (each checked by
/// [`crate::trust`] when read).
#[derive(Default)]
pub struct View {
    /// Hosts by name.
    pub hosts: BTreeMap<String, HostRecord>,
    /// Networks by name.
    pub networks: BTreeMap<String, NetworkSpec>,
    /// Remote endpoints by key.
    pub remote: BTreeMap<String, EndpointRecord>,
    /// When each host's beat (its `alive/` marker rewritten) was last seen here.
    pub beats: std::collections::HashMap<String, std::time::Instant>,
    /// Hosts taken as dead here (silent for the liveness TTL): their endpoints stay in
    /// `remote` but are not programmed, until they beat again or their keys expire.
    pub suspects: std::collections::BTreeSet<String>,
}

fn local_endpoints_dir(cfg: &ClusterConfig) -> PathBuf {
    cfg.run_dir.join("overlay").join("endpoints")
}

fn tenure_file(cfg: &ClusterConfig) -> PathBuf {
    cfg.root.join("overlay").join("tenure.lease")
}

/// A failure the client may retry (etcd away, a lost race) or not.
fn failure(retry: bool, e: impl std::fmt::Display) -> Reply {
    Reply::Error {
        retry,
        message: e.to_string(),
    }
}

impl Agent {
    /// Connects to etcd, takes up the tenure lease of an earlier run when it still lives (so
    /// addresses survive a restart), grants a liveness lease and registers the host.
    pub async fn start(cfg: ClusterConfig) -> Result<Agent> {
        let opts = connect_options(&cfg.auth)?;
        let reachable = crate::members::reachable(&cfg.store).await;
        if reachable.is_empty() {
            // Say so at once: a client would wait out its timeouts first.
            return Err(anyhow!(
                "no etcd member accepts connections at {}",
                cfg.store.join(",")
            ));
        }
        let mut etcd = Client::connect(&reachable, Some(opts))
            .await
            .with_context(|| format!("connect to etcd at {}", cfg.store.join(",")))?;
        let mtu = local::underlay_mtu(cfg.advertise)?;
        refuse_small_underlay(&mut etcd, mtu).await?;
        let tenure = tenure_lease(&mut etcd, &cfg).await?;
        let liveness = etcd.lease_grant(cfg.liveness_ttl, None).await?.id();
        let (tunnel, tunnel_missing) = match open_tunnel(&mut etcd, &cfg, mtu).await {
            Ok(t) => (Some(Arc::new(t)), None),
            Err(e) => {
                eprintln!("netctl-overlayd: no encrypted tunnels on this host: {e:#}");
                (None, Some(format!("{e:#}")))
            }
        };
        let agent = Agent {
            cfg,
            etcd,
            liveness: Mutex::new(liveness),
            tenure,
            mtu,
            view: Mutex::new(View::default()),
            leaving: tokio::sync::Notify::new(),
            cluster_changed: tokio::sync::Notify::new(),
            removing: Mutex::new(()),
            published_local: Mutex::new(None),
            tunnel,
            tunnel_missing,
        };
        // Copies an earlier run was killed writing were never registered: not kept.
        netctl_cni::fsutil::sweep_stale_tmp(&local_endpoints_dir(&agent.cfg));
        agent.announce(liveness).await?;
        Ok(agent)
    }

    /// Puts the host's record (refused while another live host has its name), its liveness
    /// marker, its own networks' names and its endpoints (from the local copies) on lease
    /// `liveness`.
    pub async fn announce(&self, liveness: i64) -> Result<()> {
        let mut etcd = self.etcd.clone();
        self.claim_host_name(liveness).await?;
        self.publish_local_networks(liveness).await?;
        let on_lease = Some(PutOptions::new().with_lease(liveness));
        etcd.put(keys::alive(&self.cfg.host), "", on_lease.clone())
            .await?;
        for e in self.local_endpoints() {
            let key = keys::endpoint(&e.network, &e.host, &e.container_id, &e.ifname);
            etcd.put(key, serde_json::to_vec(&e)?, on_lease.clone())
                .await?;
        }
        Ok(())
    }

    /// Puts this host's record by compare-and-swap: refused when another machine, alive now
    /// (its `alive/` marker on a lease not ours), has the name at another address; a dead
    /// one's name is taken over.
    async fn claim_host_name(&self, liveness: i64) -> Result<()> {
        let mut etcd = self.etcd.clone();
        let key = keys::host(&self.cfg.host);
        let ours = self.host_record()?;
        let seen = etcd.get(key.as_str(), None).await?;
        let (revision, theirs) = match seen.kvs().first() {
            Some(kv) => (
                kv.mod_revision(),
                serde_json::from_slice::<HostRecord>(kv.value()).ok(),
            ),
            None => (0, None),
        };
        if let Some(t) = theirs.filter(|t| t.addr != ours.addr) {
            let alive = etcd.get(keys::alive(&self.cfg.host), None).await?;
            if alive.kvs().iter().any(|kv| kv.lease() != liveness) {
                return Err(anyhow!(
                    "host name {} is taken by the live host at {}: join with another --host-name",
                    self.cfg.host,
                    t.addr
                ));
            }
        }
        let txn = Txn::new()
            .when(vec![Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                revision,
            )])
            .and_then(vec![TxnOp::put(
                key.as_str(),
                serde_json::to_vec(&ours)?,
                None,
            )]);
        if !etcd.txn(txn).await?.succeeded() {
            return Err(anyhow!(
                "another machine registered host name {} at this moment: try again",
                self.cfg.host
            ));
        }
        Ok(())
    }

    /// This host's record: name, underlay address and MTU, and its tunnel end.
    pub fn host_record(&self) -> Result<HostRecord> {
        let tunnel = match &self.tunnel {
            Some(t) => Some(netctl_overlay_api::TunnelEnd {
                addr: t.addr,
                key: crate::crypt::key_text(&t.public()?),
            }),
            None => None,
        };
        Ok(HostRecord {
            host: self.cfg.host.clone(),
            addr: self.cfg.advertise,
            mtu: self.mtu,
            tunnel,
        })
    }

    /// This host's address for the VXLAN devices of `spec`: its tunnel address for an
    /// encrypted network, else its underlay address.
    pub fn vtep_for(&self, spec: &NetworkSpec) -> Result<IpAddr> {
        match (&self.tunnel, spec.encrypted) {
            (_, false) => Ok(self.cfg.advertise),
            (Some(t), true) => Ok(IpAddr::V4(t.addr)),
            (None, true) => Err(anyhow!(
                "network {} is encrypted, but this host has no encrypted tunnel: {}",
                spec.name,
                self.tunnel_missing.as_deref().unwrap_or("unknown reason")
            )),
        }
    }

    /// A new key pair for the tunnels, announced in this host's record.
    pub async fn rotate_key(&self) -> Result<()> {
        let Some(t) = &self.tunnel else {
            return Ok(());
        };
        let secret = crate::crypt::fresh_secret()?;
        save_secret(&self.cfg, &secret)?;
        t.rotate(secret)?;
        let liveness = *self.liveness.lock().await;
        self.claim_host_name(liveness).await
    }

    /// Puts the names of this host's own networks under `localnets/` (on lease `liveness`),
    /// when they changed: no overlay network may be created by one of them.
    pub async fn publish_local_networks(&self, liveness: i64) -> Result<()> {
        let names = serde_json::to_vec(&local::local_network_names(&self.cfg))?;
        let mut last = self.published_local.lock().await;
        if last.as_ref() == Some(&(liveness, names.clone())) {
            return Ok(());
        }
        let on_lease = Some(PutOptions::new().with_lease(liveness));
        self.etcd
            .clone()
            .put(
                keys::local_networks(&self.cfg.host),
                names.clone(),
                on_lease,
            )
            .await?;
        *last = Some((liveness, names));
        Ok(())
    }

    fn local_endpoints(&self) -> Vec<EndpointRecord> {
        netctl_cni::fsutil::written_files(&local_endpoints_dir(&self.cfg))
            .filter_map(|(_, path)| std::fs::read(path).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Answers one request of a local client.
    pub async fn handle(self: &Arc<Self>, req: Request) -> Reply {
        match req {
            Request::Ping => match self
                .etcd
                .clone()
                .get(keys::alive(&self.cfg.host), None)
                .await
            {
                Ok(_) => Reply::Ok,
                Err(e) => failure(true, format!("the agent cannot reach etcd: {e}")),
            },
            Request::Join { network } => self.join(&network).await,
            Request::Allocate {
                network,
                container_id,
                ifname,
                requested,
            } => {
                let owner = self.owner(&container_id, ifname);
                self.allocate(&network, owner, requested).await
            }
            Request::Release {
                network,
                container_id,
                ifname,
            } => {
                let owner = self.owner(&container_id, ifname);
                self.release(&network, owner).await
            }
            Request::Register { endpoint } => reply(self.register(endpoint).await),
            Request::Unregister {
                network,
                container_id,
                ifname,
            } => reply(self.unregister(&network, &container_id, &ifname).await),
            Request::CreateNetwork(c) => match self.create_network(c).await {
                Ok(spec) => Reply::Network {
                    spec,
                    local: self.cfg.advertise,
                },
                Err(e) => failure(false, format!("{e:#}")),
            },
            Request::RemoveNetwork { name } => reply(self.remove_network(&name).await),
            Request::LocalNetworksChanged => {
                let liveness = *self.liveness.lock().await;
                reply(self.publish_local_networks(liveness).await)
            }
            Request::Hosts => match self.hosts().await {
                Ok(hosts) => Reply::Hosts { hosts },
                Err(e) => failure(true, format!("{e:#}")),
            },
            Request::Leave => match self.leave().await {
                Ok(()) => {
                    self.leaving.notify_one();
                    Reply::Ok
                }
                Err(e) => failure(false, format!("{e:#}")),
            },
        }
    }

    /// The owner of an interface's addresses in the cluster's IPAM: the container on this
    /// host (runtimes name containers as they like, so the same ID on two hosts is two
    /// owners).
    fn owner(&self, container_id: &str, ifname: String) -> Owner {
        Owner {
            container_id: format!("{container_id}@{}", self.cfg.host),
            ifname,
        }
    }

    async fn spec(&self, network: &str) -> Option<NetworkSpec> {
        if let Some(s) = self.view.lock().await.networks.get(network) {
            return Some(s.clone());
        }
        let resp = self
            .etcd
            .clone()
            .get(keys::network(network), None)
            .await
            .ok()?;
        let spec: NetworkSpec = resp
            .kvs()
            .first()
            .and_then(|kv| serde_json::from_slice(kv.value()).ok())?;
        crate::trust::network(network, &spec).ok().map(|()| spec)
    }

    async fn join(&self, network: &str) -> Reply {
        let Some(spec) = self.spec(network).await else {
            return failure(
                false,
                format!("no overlay network {network} in the cluster"),
            );
        };
        let local = self.cfg.advertise;
        if !spec.is_overlay() {
            return Reply::Network { spec, local };
        }
        let vtep = match self.vtep_for(&spec) {
            Ok(v) => v,
            Err(e) => return failure(false, format!("{e:#}")),
        };
        match local::ensure_vxlan(&spec, vtep, self.mtu) {
            Ok(_) => Reply::Network { spec, local },
            Err(e) => failure(false, format!("{e:#}")),
        }
    }

    fn allocator(&self, spec: &NetworkSpec) -> Result<Allocator<EtcdStore>, IpamError> {
        let cfg = IpamConfig {
            ranges: vec![vec![RangeConfig {
                subnet: spec.subnet.to_string(),
                gateway: spec.gateway,
                ip_range: spec.ip_range.map(|r| r.to_string()),
                ..RangeConfig::default()
            }]],
            allocation: AllocationOrder::Lowest,
            ..IpamConfig::default()
        };
        let store = EtcdStore::new(
            self.etcd.clone(),
            tokio::runtime::Handle::current(),
            &spec.name,
            self.tenure,
        );
        Ok(Allocator::new(
            &spec.name,
            cfg.range_sets()?,
            cfg.allocation,
            store,
        ))
    }

    /// Runs `op` on the network's allocator on a blocking thread, again (with jitter) while
    /// another host's commit wins the race.
    async fn with_allocator<T: Send + 'static>(
        &self,
        network: &str,
        op: impl Fn(&Allocator<EtcdStore>) -> Result<T, IpamError> + Send + 'static,
    ) -> Result<T, IpamError> {
        let spec = self
            .spec(network)
            .await
            .ok_or_else(|| IpamError::InvalidConfig(format!("no overlay network {network}")))?;
        let alloc = self.allocator(&spec)?;
        tokio::task::spawn_blocking(move || {
            let mut tries = 0u64;
            loop {
                match op(&alloc) {
                    Err(IpamError::Conflict(_)) if tries < 20 => {
                        tries += 1;
                        let jitter = (u64::from(std::process::id()) * 7 + tries * 13) % 20;
                        std::thread::sleep(Duration::from_millis(1 + jitter));
                    }
                    other => return other,
                }
            }
        })
        .await
        .map_err(|e| IpamError::Unreachable(e.to_string()))?
    }

    async fn allocate(&self, network: &str, owner: Owner, requested: Vec<IpAddr>) -> Reply {
        let got = self
            .with_allocator(network, move |a| a.allocate(&owner, &requested))
            .await;
        match got {
            Ok(leases) => Reply::Addresses {
                leases: leases
                    .into_iter()
                    .map(|l| LeasedAddress {
                        address: l.address,
                        gateway: Some(l.gateway),
                    })
                    .collect(),
            },
            Err(e) => failure(
                matches!(e, IpamError::Conflict(_) | IpamError::Unreachable(_)),
                e,
            ),
        }
    }

    async fn release(&self, network: &str, owner: Owner) -> Reply {
        if self.spec(network).await.is_none() {
            return Reply::Ok; // the network is gone, and its allocations with it
        }
        match self
            .with_allocator(network, move |a| a.release(&owner))
            .await
        {
            // The network went meanwhile, and its allocations with it.
            Ok(_) | Err(IpamError::InvalidConfig(_)) => Reply::Ok,
            Err(e) => failure(true, e),
        }
    }

    async fn register(&self, mut e: EndpointRecord) -> Result<()> {
        e.host = self.cfg.host.clone();
        e.vtep = self.cfg.advertise;
        let dir = local_endpoints_dir(&self.cfg);
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!(
            "{}:{}:{}.json",
            e.network, e.container_id, e.ifname
        ));
        netctl_cni::fsutil::write_atomic(&file, &serde_json::to_vec(&e)?)?;
        let key = keys::endpoint(&e.network, &e.host, &e.container_id, &e.ifname);
        let lease = *self.liveness.lock().await;
        self.etcd
            .clone()
            .put(
                key,
                serde_json::to_vec(&e)?,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        Ok(())
    }

    async fn unregister(&self, network: &str, container_id: &str, ifname: &str) -> Result<()> {
        let file =
            local_endpoints_dir(&self.cfg).join(format!("{network}:{container_id}:{ifname}.json"));
        let _ = std::fs::remove_file(file);
        let key = keys::endpoint(network, &self.cfg.host, container_id, ifname);
        self.etcd.clone().delete(key, None).await?;
        Ok(())
    }

    async fn hosts_mtu(&self) -> Result<u32> {
        let resp = self
            .etcd
            .clone()
            .get(keys::hosts(), Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice::<HostRecord>(kv.value()).ok())
            .map(|h| h.mtu)
            .chain([self.mtu])
            .min()
            .unwrap_or(self.mtu))
    }

    async fn create_network(&self, c: CreateNetwork) -> Result<NetworkSpec> {
        let mut etcd = self.etcd.clone();
        let existing = etcd
            .get(keys::networks(), Some(GetOptions::new().with_prefix()))
            .await?;
        let specs: Vec<NetworkSpec> = existing
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect();
        if specs.iter().any(|s| s.name == c.name) {
            return Err(anyhow!("network with name {} already exists", c.name));
        }
        local::check_name_free(&self.cfg, &c.name)?;
        self.check_no_host_has(&c.name).await?;
        check_macvlan(&c)?;
        if c.encrypted && self.tunnel.is_none() {
            return Err(anyhow!(
                "this host cannot carry encrypted networks: {}",
                self.tunnel_missing.as_deref().unwrap_or("no tunnel")
            ));
        }
        let subnet = match c.subnet {
            Some(s) => s,
            None => free_subnet(&specs)?,
        };
        if let Some(t) = specs
            .iter()
            .find(|s| s.subnet.contains(&subnet.network()) || subnet.contains(&s.subnet.network()))
        {
            return Err(anyhow!(
                "subnet {subnet} overlaps with cluster network {} ({})",
                t.name,
                t.subnet
            ));
        }
        let range = netctl_ipam::Range::new(&RangeConfig {
            subnet: subnet.to_string(),
            gateway: c.gateway,
            ip_range: c.ip_range.map(|r| r.to_string()),
            ..RangeConfig::default()
        })?;
        let mut spec = NetworkSpec {
            name: c.name.clone(),
            id: random_id()?,
            vni: 0,
            subnet,
            gateway: Some(range.gateway()),
            ip_range: c.ip_range,
            mtu: self.hosts_mtu().await?
                - VXLAN_OVERHEAD
                - if c.encrypted { TUNNEL_OVERHEAD } else { 0 },
            created: netctl_cni::clock::now_rfc3339(),
            encrypted: c.encrypted,
            macvlan: c.macvlan,
        };
        if spec.is_overlay() {
            self.put_overlay(&mut spec, &specs).await?;
        } else {
            self.put_network(&spec, Vec::new()).await?;
        }
        local::write_conflist(&self.cfg, &spec)?;
        self.view
            .lock()
            .await
            .networks
            .insert(spec.name.clone(), spec.clone());
        self.cluster_changed.notify_one();
        Ok(spec)
    }

    /// Puts an overlay network with the first VNI no other network has.
    async fn put_overlay(&self, spec: &mut NetworkSpec, specs: &[NetworkSpec]) -> Result<()> {
        spec.vni = specs
            .iter()
            .map(|s| s.vni + 1)
            .max()
            .unwrap_or(FIRST_VNI)
            .max(FIRST_VNI);
        loop {
            let free = Compare::version(keys::vni(spec.vni), CompareOp::Equal, 0);
            let take = TxnOp::put(keys::vni(spec.vni), spec.name.clone(), None);
            if self.put_network(spec, vec![(free, take)]).await? {
                return Ok(());
            }
            spec.vni += 1; // another network took this VNI meanwhile
        }
    }

    /// Puts `spec`, and `also`'s puts when their conditions hold, unless a network of its
    /// name exists (an error); false when one of `also`'s conditions failed.
    async fn put_network(&self, spec: &NetworkSpec, also: Vec<(Compare, TxnOp)>) -> Result<bool> {
        let mut etcd = self.etcd.clone();
        let name = keys::network(&spec.name);
        let (mut when, mut then) = (
            vec![Compare::version(name.as_str(), CompareOp::Equal, 0)],
            vec![TxnOp::put(name.as_str(), serde_json::to_vec(spec)?, None)],
        );
        for (c, op) in also {
            when.push(c);
            then.push(op);
        }
        if etcd
            .txn(Txn::new().when(when).and_then(then))
            .await?
            .succeeded()
        {
            return Ok(true);
        }
        if etcd.get(name, None).await?.count() > 0 {
            return Err(anyhow!("network with name {} already exists", spec.name));
        }
        Ok(false)
    }

    /// Refused when any host has a network of its own named `name` (what the hosts put
    /// under `localnets/`).
    async fn check_no_host_has(&self, name: &str) -> Result<()> {
        let resp = self
            .etcd
            .clone()
            .get(
                keys::all_local_networks(),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        for kv in resp.kvs() {
            let names: Vec<String> = serde_json::from_slice(kv.value()).unwrap_or_default();
            if names.iter().any(|n| n == name) {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let host = key.rsplit('/').next().unwrap_or_default().to_string();
                return Err(anyhow!(
                    "network with name {name} already exists on host {host} (a network of that host alone)"
                ));
            }
        }
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let mut etcd = self.etcd.clone();
        let spec = self
            .spec(name)
            .await
            .ok_or_else(|| anyhow!("no overlay network {name}"))?;
        let mut ops = vec![
            TxnOp::delete(keys::network(name), None),
            TxnOp::delete(
                keys::ipam(name),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            ),
        ];
        if spec.is_overlay() {
            ops.push(TxnOp::delete(keys::vni(spec.vni), None));
        }
        // Only while no host has an endpoint on it, in the same transaction: an endpoint
        // registered since any earlier look keeps the network.
        let none = Compare::version(keys::endpoints_of(name), CompareOp::Equal, 0).with_prefix();
        if !etcd
            .txn(Txn::new().when(vec![none]).and_then(ops))
            .await?
            .succeeded()
        {
            return Err(self.active_endpoints(name).await);
        }
        self.view.lock().await.networks.remove(name);
        self.remove_locally(spec).await
    }

    /// Takes a network from this host (its devices, its plugins' state, its conflist), one
    /// removal at a time: what a removal before found gone, it leaves.
    pub async fn remove_locally(&self, spec: NetworkSpec) -> Result<()> {
        let _one = self.removing.lock().await;
        let cfg = self.cfg.clone();
        tokio::task::spawn_blocking(move || local::remove_network(&cfg, &spec)).await?
    }

    /// Why a network with endpoints is not removed: the hosts that have them.
    async fn active_endpoints(&self, name: &str) -> anyhow::Error {
        let eps = self
            .etcd
            .clone()
            .get(
                keys::endpoints_of(name),
                Some(GetOptions::new().with_prefix()),
            )
            .await;
        let mut hosts: Vec<String> = eps
            .iter()
            .flat_map(|r| r.kvs())
            .filter_map(|kv| serde_json::from_slice::<EndpointRecord>(kv.value()).ok())
            .map(|e| e.host)
            .collect();
        hosts.sort();
        hosts.dedup();
        anyhow!(
            "error while removing network: network {name} has active endpoints on {}",
            hosts.join(", ")
        )
    }

    async fn hosts(&self) -> Result<Vec<HostStatus>> {
        let mut etcd = self.etcd.clone();
        let hosts = etcd
            .get(keys::hosts(), Some(GetOptions::new().with_prefix()))
            .await?;
        let alive = etcd
            .get(
                keys::alives(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        let alive: Vec<String> = alive
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect();
        Ok(hosts
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice::<HostRecord>(kv.value()).ok())
            .filter(|h| crate::trust::host(&h.host, h).is_ok())
            .map(|h| HostStatus {
                alive: alive.contains(&keys::alive(&h.host)),
                this: h.host == self.cfg.host,
                host: h.host,
                addr: h.addr,
            })
            .collect())
    }

    async fn leave(&self) -> Result<()> {
        if !self.local_endpoints().is_empty() {
            return Err(anyhow!(
                "this host still has endpoints on overlay networks: remove its containers first"
            ));
        }
        let mut etcd = self.etcd.clone();
        let key = keys::host(&self.cfg.host);
        let seen = etcd.get(key.as_str(), None).await?;
        // Only this machine's record: a name another machine took over is that one's.
        if let Some(kv) = seen.kvs().first().filter(|kv| {
            serde_json::from_slice::<HostRecord>(kv.value())
                .is_ok_and(|h| h.addr == self.cfg.advertise)
        }) {
            let txn = Txn::new()
                .when(vec![Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then(vec![TxnOp::delete(key.as_str(), None)]);
            etcd.txn(txn).await?;
        }
        if let Some(t) = &self.tunnel {
            let key = keys::tunnel(t.addr);
            let ours = Compare::value(key.as_str(), CompareOp::Equal, self.cfg.host.as_str());
            let txn = Txn::new()
                .when(vec![ours])
                .and_then(vec![TxnOp::delete(key.as_str(), None)]);
            etcd.txn(txn).await?;
        }
        let liveness = *self.liveness.lock().await;
        let _ = etcd.lease_revoke(liveness).await;
        let _ = etcd.lease_revoke(self.tenure).await;
        let _ = std::fs::remove_file(tenure_file(&self.cfg));
        crate::guard::remove().await
    }
}

/// How the client reaches etcd: deadlines, and the TLS identity and user of `auth`.
fn connect_options(auth: &StoreAuth) -> Result<etcd_client::ConnectOptions> {
    let read =
        |p: &std::path::Path| std::fs::read(p).with_context(|| format!("read {}", p.display()));
    let mut opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(3));
    if auth.tls() {
        let mut tls = etcd_client::TlsOptions::new();
        if let Some(ca) = &auth.ca {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        }
        match (&auth.cert, &auth.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(anyhow!(
                    "a client certificate needs its key, and a key its certificate"
                ))
            }
        }
        opts = opts.with_tls(tls);
    }
    if let Some(user) = &auth.user {
        let file = auth
            .password_file
            .as_deref()
            .ok_or_else(|| anyhow!("etcd user {user} needs a password file"))?;
        let password = String::from_utf8(read(file)?)
            .with_context(|| format!("{} is not text", file.display()))?;
        opts = opts.with_user(user, password.trim_end_matches(['\n', '\r']));
    }
    Ok(opts)
}

fn reply(r: Result<()>) -> Reply {
    match r {
        Ok(()) => Reply::Ok,
        Err(e) => failure(true, format!("{e:#}")),
    }
}

/// A host whose underlay cannot carry a network's frames would drop them silently: it may
/// not join.
async fn refuse_small_underlay(etcd: &mut Client, mtu: u32) -> Result<()> {
    let nets = etcd
        .get(keys::networks(), Some(GetOptions::new().with_prefix()))
        .await?;
    for spec in nets
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice::<NetworkSpec>(kv.value()).ok())
    {
        local::check_underlay(&spec, mtu)?;
    }
    Ok(())
}

/// This host's tunnel: an address of [`netctl_overlay_api::TUNNEL_SUBNET`] no other host
/// holds (its earlier one when it is still its own), and its key pair (the earlier one while
/// younger than the rotation period).
async fn open_tunnel(
    etcd: &mut Client,
    cfg: &ClusterConfig,
    mtu: u32,
) -> Result<crate::crypt::Tunnel> {
    let addr = claim_tunnel_addr(etcd, cfg).await?;
    let secret = match saved_secret(cfg) {
        Some(s) => s,
        None => {
            let s = crate::crypt::fresh_secret()?;
            save_secret(cfg, &s)?;
            s
        }
    };
    crate::crypt::Tunnel::open(addr, cfg.advertise, mtu, secret).await
}

fn tunnel_file(cfg: &ClusterConfig, what: &str) -> PathBuf {
    cfg.root.join("overlay").join(what)
}

/// The tunnel address this host had, if it still holds it in etcd; else the first free
/// one, taken by compare-and-swap.
async fn claim_tunnel_addr(etcd: &mut Client, cfg: &ClusterConfig) -> Result<std::net::Ipv4Addr> {
    let file = tunnel_file(cfg, "tunnel.addr");
    let subnet: ipnet::Ipv4Net = netctl_overlay_api::TUNNEL_SUBNET.parse()?;
    let taken = etcd
        .get(keys::tunnels(), Some(GetOptions::new().with_prefix()))
        .await?;
    let holder = |a: std::net::Ipv4Addr| {
        let key = keys::tunnel(a);
        taken
            .kvs()
            .iter()
            .find(|kv| kv.key() == key.as_bytes())
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
    };
    let earlier = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|a| subnet.contains(a));
    for a in earlier.into_iter().chain(subnet.hosts()) {
        match holder(a) {
            Some(h) if h == cfg.host => return Ok(a),
            Some(_) => continue,
            None => {}
        }
        let key = keys::tunnel(a);
        let txn = Txn::new()
            .when(vec![Compare::version(key.as_str(), CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(key.as_str(), cfg.host.as_str(), None)]);
        if etcd.txn(txn).await?.succeeded() {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&file, a.to_string())?;
            return Ok(a);
        }
    }
    Err(anyhow!("every tunnel address of {subnet} is taken"))
}

/// The key pair saved by an earlier run, while younger than the rotation period.
fn saved_secret(cfg: &ClusterConfig) -> Option<boringtun::x25519::StaticSecret> {
    let file = tunnel_file(cfg, "tunnel.key");
    let age = std::fs::metadata(&file)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()?;
    if age.as_secs() >= u64::try_from(cfg.key_rotation).unwrap_or(0) {
        return None;
    }
    let text = std::fs::read_to_string(&file).ok()?;
    crate::crypt::parse_key(text.trim()).map(boringtun::x25519::StaticSecret::from)
}

/// Saves the private key, readable by root alone.
fn save_secret(cfg: &ClusterConfig, s: &boringtun::x25519::StaticSecret) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file = tunnel_file(cfg, "tunnel.key");
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text: String = s.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &file)?;
    Ok(())
}

/// The tenure lease of an earlier run if etcd still has it, else a new one (saved).
async fn tenure_lease(etcd: &mut Client, cfg: &ClusterConfig) -> Result<i64> {
    let file = tenure_file(cfg);
    if let Some(id) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        if let Ok(r) = etcd.lease_time_to_live(id, None).await {
            if r.ttl() > 0 {
                return Ok(id);
            }
        }
    }
    let id = etcd.lease_grant(cfg.tenure_ttl, None).await?.id();
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&file, id.to_string())?;
    Ok(id)
}

/// A cluster macvlan network: no encryption, its LAN's subnet given, a parent and mode
/// every host can use.
fn check_macvlan(c: &CreateNetwork) -> Result<()> {
    let Some(m) = &c.macvlan else {
        return Ok(());
    };
    if c.encrypted {
        return Err(anyhow!("-o encrypted is an option of overlay networks"));
    }
    if c.subnet.is_none() {
        return Err(anyhow!(
            "a macvlan network of the cluster needs its LAN's --subnet (and --gateway, the LAN's router, unless it is the subnet's first address)"
        ));
    }
    crate::trust::macvlan(m).map_err(|why| anyhow!(why))
}

/// The first /24 of 10.200.0.0/16 no overlay network uses.
fn free_subnet(specs: &[NetworkSpec]) -> Result<IpNet> {
    for third in 0..=255u8 {
        let net: IpNet = format!("10.200.{third}.0/24").parse()?;
        if !specs
            .iter()
            .any(|s| s.subnet.contains(&net.network()) || net.contains(&s.subnet.network()))
        {
            return Ok(net);
        }
    }
    Err(anyhow!(
        "every /24 of 10.200.0.0/16 is taken: give --subnet"
    ))
}

/// 64 hex digits from the kernel's random source.
fn random_id() -> Result<String> {
    let mut b = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
