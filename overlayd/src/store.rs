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
        let mut client = s.client.clone();
        let txn = EtcdTxn::new().when(vec![when]).and_then(ops);
        let resp = s
            .handle
            .block_on(async move { client.txn(txn).await })
            .map_err(unreachable)?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(IpamError::Conflict(s.network.clone()))
        }
    }
}
