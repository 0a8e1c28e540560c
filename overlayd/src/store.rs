//! The allocator's store on etcd: a [`Txn`] is a snapshot of the network's IPAM keys read at
//! one revision, changed in memory; its commit is one etcd transaction guarded by the
//! network's `guard` key (compare-and-swap on its revision), so two hosts allocating at
//! once never both win: the loser gets [`IpamError::Conflict`] and the caller tries again.
//! Allocations ride on this host's tenure lease.
//!
//! The allocator is synchronous; its calls run on blocking threads of the agent's runtime,
//! which wait for etcd through the runtime's handle.

use std::collections::BTreeMap;
use std::net::IpAddr;

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn as EtcdTxn, TxnOp};
use netctl_ipam::{IpamError, Owner, Store, Txn};
use tokio::runtime::Handle;

/// The IPAM keys of one network.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    handle: Handle,
    network: String,
    prefix: String,
    lease: i64,
}

impl EtcdStore {
    /// The store of `network`, allocations on `lease`.
    pub fn new(client: Client, handle: Handle, network: &str, lease: i64) -> Self {
        EtcdStore {
            client,
            handle,
            network: network.into(),
            prefix: crate::keys::ipam(network),
            lease,
        }
    }
}

/// A snapshot and the changes made to it.
pub struct EtcdSnapshot<'a> {
    store: &'a EtcdStore,
    values: BTreeMap<String, String>,
    guard_revision: i64,
    puts: BTreeMap<String, (String, bool)>,
    deletes: Vec<String>,
}

fn unreachable(e: etcd_client::Error) -> IpamError {
    IpamError::Unreachable(format!("etcd does not answer: {e}"))
}

impl Store for EtcdStore {
    type Txn<'a> = EtcdSnapshot<'a>;

    fn lock(&self) -> Result<EtcdSnapshot<'_>, IpamError> {
        let mut client = self.client.clone();
        let prefix = self.prefix.clone();
        let resp = self
            .handle
            .block_on(async move {
                client
                    .get(prefix, Some(GetOptions::new().with_prefix()))
                    .await
            })
            .map_err(unreachable)?;
        let mut values = BTreeMap::new();
        let mut guard_revision = 0;
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let rel = key.strip_prefix(&self.prefix).unwrap_or(&key).to_string();
            if rel == "guard" {
                guard_revision = kv.mod_revision();
            }
            values.insert(rel, String::from_utf8_lossy(kv.value()).into_owned());
        }
        Ok(EtcdSnapshot {
            store: self,
            values,
            guard_revision,
            puts: BTreeMap::new(),
            deletes: Vec::new(),
        })
    }
}

impl EtcdSnapshot<'_> {
    fn put(&mut self, rel: String, value: String, leased: bool) {
        self.deletes.retain(|d| d != &rel);
        self.values.insert(rel.clone(), value.clone());
        self.puts.insert(rel, (value, leased));
    }

    fn delete(&mut self, rel: &str) {
        self.values.remove(rel);
        self.puts.remove(rel);
        self.deletes.push(rel.to_string());
    }
}

impl Txn for EtcdSnapshot<'_> {
    fn owner_of(&self, ip: IpAddr) -> Result<Option<Owner>, IpamError> {
        Ok(self
            .values
            .get(&format!("ip/{ip}"))
            .and_then(|k| Owner::from_key(k))
            .filter(|o| self.values.contains_key(&format!("owner/{}", o.key()))))
    }

    fn lease_of(&self, owner: &Owner) -> Result<Option<Vec<IpAddr>>, IpamError> {
        Ok(self
            .values
            .get(&format!("owner/{}", owner.key()))
            .and_then(|v| serde_json::from_str(v).ok()))
    }

    fn reserve(&mut self, owner: &Owner, ips: &[IpAddr]) -> Result<(), IpamError> {
        let key = owner.key();
        for ip in ips {
            self.put(format!("ip/{ip}"), key.clone(), true);
        }
        let list = serde_json::to_string(ips).unwrap_or_default();
        self.put(format!("owner/{key}"), list, true);
        Ok(())
    }

    fn release(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, IpamError> {
        let key = owner.key();
        let Some(ips) = self.lease_of(owner)? else {
            return Ok(Vec::new());
        };
        self.delete(&format!("owner/{key}"));
        for ip in &ips {
            let rel = format!("ip/{ip}");
            if self.values.get(&rel) == Some(&key) {
                self.delete(&rel);
            }
        }
        Ok(ips)
    }

    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, IpamError> {
        Ok(self
            .values
            .get(&format!("last/{set}"))
            .and_then(|v| v.parse().ok()))
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), IpamError> {
        self.put(format!("last/{set}"), ip.to_string(), false);
        Ok(())
    }

    fn owners(&self) -> Result<Vec<Owner>, IpamError> {
        Ok(self
            .values
            .keys()
            .filter_map(|k| k.strip_prefix("owner/"))
            .filter_map(Owner::from_key)
            .collect())
    }

    fn remove_orphans(&mut self) -> Result<usize, IpamError> {
        let orphans: Vec<String> = self
            .values
            .iter()
            .filter(|(k, v)| {
                k.starts_with("ip/") && !self.values.contains_key(&format!("owner/{v}"))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for o in &orphans {
            self.delete(o);
        }
        Ok(orphans.len())
    }

    /// One transaction: every change, and the guard's new revision, only if no one else
    /// committed since the snapshot.
    fn commit(&mut self) -> Result<(), IpamError> {
        if self.puts.is_empty() && self.deletes.is_empty() {
            return Ok(());
        }
        let s = self.store;
        let abs = |rel: &str| format!("{}{rel}", s.prefix);
        let guard = abs("guard");
        let when = if self.guard_revision == 0 {
            Compare::version(guard.clone(), CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(guard.clone(), CompareOp::Equal, self.guard_revision)
        };
        let mut ops: Vec<TxnOp> = Vec::new();
        for (rel, (value, leased)) in std::mem::take(&mut self.puts) {
            let opts = leased.then(|| PutOptions::new().with_lease(s.lease));
            ops.push(TxnOp::put(abs(&rel), value, opts));
        }
        for rel in std::mem::take(&mut self.deletes) {
            ops.push(TxnOp::delete(abs(&rel), None));
        }
        ops.push(TxnOp::put(guard, "", None));
        // Only while the network exists: an allocation committed after its removal would
        // outlive it, under a name the next network of that name inherits.
        let network = crate::keys::network(&s.network);
        let exists = Compare::version(network.as_str(), CompareOp::Greater, 0);
        let mut client = s.client.clone();
        let txn = EtcdTxn::new().when(vec![when, exists]).and_then(ops);
        let resp = s
            .handle
            .block_on(async move {
                let resp = client.txn(txn).await?;
                let gone = !resp.succeeded() && client.get(network, None).await?.count() == 0;
                Ok::<_, etcd_client::Error>((resp.succeeded(), gone))
            })
            .map_err(unreachable)?;
        match resp {
            (true, _) => Ok(()),
            (false, true) => Err(IpamError::InvalidConfig(format!(
                "network {} was removed from the cluster",
                s.network
            ))),
            (false, false) => Err(IpamError::Conflict(s.network.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real etcd on loopback (Debian's `etcd-server`), started per test.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use netctl_ipam::{AllocationOrder, Allocator, IpamConfig, RangeConfig};
    use std::time::{Duration, Instant};

    /// An etcd member on 127.0.0.1 with a data folder of its own; killed when dropped.
    struct Etcd {
        child: std::process::Child,
        url: String,
        _dir: tempfile::TempDir,
    }

    impl Drop for Etcd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn etcd() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = std::process::Command::new("etcd")
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("etcd (Debian etcd-server) is installed: scripts/deps test");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Etcd {
            child,
            url,
            _dir: dir,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn store(rt: &tokio::runtime::Runtime, e: &Etcd, lease_ttl: i64) -> EtcdStore {
        let mut client = rt
            .block_on(Client::connect([e.url.as_str()], None))
            .unwrap();
        rt.block_on(client.put(crate::keys::network("web"), "{}", None))
            .unwrap();
        let lease = rt
            .block_on(client.lease_grant(lease_ttl, None))
            .unwrap()
            .id();
        EtcdStore::new(client, rt.handle().clone(), "web", lease)
    }

    fn owner(id: &str) -> Owner {
        Owner {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_second_of_two_commits_from_one_snapshot_revision_conflicts() {
        let (rt, e) = (runtime(), etcd());
        let (a, b) = (store(&rt, &e, 60), store(&rt, &e, 60));
        let mut ta = a.lock().unwrap();
        let mut tb = b.lock().unwrap();
        ta.reserve(&owner("c1"), &[ip("10.9.0.2")]).unwrap();
        tb.reserve(&owner("c2"), &[ip("10.9.0.2")]).unwrap();
        ta.commit().unwrap();
        assert!(matches!(tb.commit(), Err(IpamError::Conflict(n)) if n == "web"));
        let fresh = b.lock().unwrap();
        assert_eq!(fresh.owner_of(ip("10.9.0.2")).unwrap(), Some(owner("c1")));
    }

    /// An ADD's allocation racing `network rm`: once the network's key is gone, a commit
    /// fails saying so and writes nothing (the removal took the network's keys before).
    #[test]
    fn nothing_is_committed_for_a_network_removed_meanwhile() {
        let (rt, e) = (runtime(), etcd());
        let a = store(&rt, &e, 60);
        let mut t = a.lock().unwrap();
        t.reserve(&owner("c1"), &[ip("10.9.0.2")]).unwrap();
        let mut client = a.client.clone();
        rt.block_on(client.delete(crate::keys::network("web"), None))
            .unwrap();
        let e = t.commit().unwrap_err().to_string();
        assert!(e.contains("network web was removed"), "{e}");
        let left = rt
            .block_on(client.get(
                crate::keys::ipam("web"),
                Some(GetOptions::new().with_prefix()),
            ))
            .unwrap();
        assert_eq!(left.count(), 0);
    }

    #[test]
    fn allocators_on_two_hosts_never_hand_out_one_address_and_release_commits() {
        let (rt, e) = (runtime(), etcd());
        let cfg = IpamConfig {
            ranges: vec![vec![RangeConfig {
                subnet: "10.9.0.0/29".into(),
                ..RangeConfig::default()
            }]],
            ..IpamConfig::default()
        };
        let hosts: Vec<Allocator<EtcdStore>> = (0..2)
            .map(|_| {
                Allocator::new(
                    "web",
                    cfg.range_sets().unwrap(),
                    AllocationOrder::Lowest,
                    store(&rt, &e, 60),
                )
            })
            .collect();
        let got: Vec<IpAddr> = std::thread::scope(|s| {
            let running: Vec<_> = (0..4)
                .map(|k| {
                    let host = &hosts[k % 2];
                    s.spawn(move || loop {
                        match host.allocate(&owner(&format!("c{k}")), &[]) {
                            Err(IpamError::Conflict(_)) => continue,
                            other => break other.unwrap()[0].address.addr(),
                        }
                    })
                })
                .collect();
            running.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let distinct: std::collections::BTreeSet<_> = got.iter().collect();
        assert_eq!(distinct.len(), 4, "{got:?}");
        let released = hosts[1].release(&owner("c0")).unwrap();
        assert_eq!(released.len(), 1);
        let check = store(&rt, &e, 60);
        let t = check.lock().unwrap();
        assert_eq!(
            t.owner_of(released[0]).unwrap(),
            None,
            "the release was committed"
        );
    }

    #[test]
    fn allocations_go_with_the_hosts_tenure_lease() {
        let (rt, e) = (runtime(), etcd());
        let s = store(&rt, &e, 60);
        let mut t = s.lock().unwrap();
        t.reserve(&owner("c1"), &[ip("10.9.0.3")]).unwrap();
        t.commit().unwrap();
        let mut client = s.client.clone();
        rt.block_on(client.lease_revoke(s.lease)).unwrap();
        let after = s.lock().unwrap();
        assert_eq!(after.owner_of(ip("10.9.0.3")).unwrap(), None);
        assert_eq!(after.lease_of(&owner("c1")).unwrap(), None);
    }
}
