//! An in-memory [`Store`] for tests: the allocator's rules without a file system.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use crate::error::IpamError;
use crate::store::{Owner, Store, Txn};

/// Allocations in memory, behind a mutex (the file store's lock).
#[derive(Default)]
pub struct MemStore(Mutex<Mem>);

/// What the store holds.
#[derive(Default)]
pub struct Mem {
    ips: HashMap<IpAddr, Owner>,
    owners: HashMap<Owner, Vec<IpAddr>>,
    last: HashMap<usize, IpAddr>,
}

/// The locked store.
pub struct MemTxn<'a>(MutexGuard<'a, Mem>);

impl Store for MemStore {
    type Txn<'a> = MemTxn<'a>;
    fn lock(&self) -> Result<MemTxn<'_>, IpamError> {
        Ok(MemTxn(self.0.lock().unwrap()))
    }
}

impl Txn for MemTxn<'_> {
    fn owner_of(&self, ip: IpAddr) -> Result<Option<Owner>, IpamError> {
        Ok(self.0.ips.get(&ip).cloned())
    }
    fn lease_of(&self, owner: &Owner) -> Result<Option<Vec<IpAddr>>, IpamError> {
        Ok(self.0.owners.get(owner).cloned())
    }
    fn reserve(&mut self, owner: &Owner, ips: &[IpAddr]) -> Result<(), IpamError> {
        for ip in ips {
            self.0.ips.insert(*ip, owner.clone());
        }
        self.0.owners.insert(owner.clone(), ips.to_vec());
        Ok(())
    }
    fn release(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, IpamError> {
        let ips = self.0.owners.remove(owner).unwrap_or_default();
        for ip in &ips {
            self.0.ips.remove(ip);
        }
        Ok(ips)
    }
    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, IpamError> {
        Ok(self.0.last.get(&set).copied())
    }
    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), IpamError> {
        self.0.last.insert(set, ip);
        Ok(())
    }
    fn owners(&self) -> Result<Vec<Owner>, IpamError> {
        Ok(self.0.owners.keys().cloned().collect())
    }
    fn remove_orphans(&mut self) -> Result<usize, IpamError> {
        Ok(0)
    }
    fn commit(&mut self) -> Result<(), IpamError> {
        Ok(())
    }
}
