//! Where allocations live. [`FileStore`] keeps one folder per network; every record is a
//! symbolic link, because creating one is a single atomic, exclusive system call that carries
//! its content: `ip:<address>` → `<container>:<ifname>` reserves an address,
//! `owner:<container>:<ifname>` → `<address>,<address>` commits an attachment. A lookup is
//! one `readlink`, so the cost of an allocation does not grow with the number of addresses
//! taken; one fsync of the folder per allocation makes it durable.
//!
//! Where the next search starts (the last address handed out from each range set) is a hint,
//! not a record: it lives in the `lock` file the process holds open anyway, one fixed-width
//! line per set written in place, so an allocation makes no extra link. A lost or garbled
//! hint only moves where the search starts; the search itself checks every address.
//!
//! Crash safety: addresses are reserved before the owner record that commits them, so a
//! crash between the two leaves only orphaned reservations, never an address handed out
//! twice. An orphan (an `ip:` record whose owner does not list it) counts as free and is
//! reclaimed when the allocator reaches it, or by GC.

use std::fs::{self, File};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{symlink, FileExt};
use std::path::{Path, PathBuf};

use crate::error::IpamError;

/// Who holds an allocation: one interface of one container.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The container ID.
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

impl Owner {
    /// `container:ifname`: neither part may contain ':' (the CNI skeleton checks that).
    pub fn key(&self) -> String {
        format!("{}:{}", self.container_id, self.ifname)
    }

    /// Parses what [`Owner::key`] wrote.
    pub fn from_key(key: &str) -> Option<Owner> {
        let (c, i) = key.split_once(':')?;
        Some(Owner {
            container_id: c.into(),
            ifname: i.into(),
        })
    }
}

/// A store of allocations for one network; [`Store::lock`] gives exclusive access.
pub trait Store {
    /// A locked view; dropping it releases the lock.
    type Txn<'a>: Txn
    where
        Self: 'a;

    /// Waits for exclusive access to the network's allocations.
    fn lock(&self) -> Result<Self::Txn<'_>, IpamError>;
}

/// Operations under the store's lock.
pub trait Txn {
    /// Who holds `ip`; None when it is free (an orphaned reservation is free).
    fn owner_of(&self, ip: IpAddr) -> Result<Option<Owner>, IpamError>;
    /// The addresses `owner` holds, if it holds any.
    fn lease_of(&self, owner: &Owner) -> Result<Option<Vec<IpAddr>>, IpamError>;
    /// Reserves `ips` for `owner`, then commits the owner record.
    fn reserve(&mut self, owner: &Owner, ips: &[IpAddr]) -> Result<(), IpamError>;
    /// Releases everything `owner` holds; returns the addresses freed.
    fn release(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, IpamError>;
    /// The last address handed out from range set `set`.
    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, IpamError>;
    /// Records the last address handed out from range set `set`.
    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), IpamError>;
    /// Every owner with a committed record.
    fn owners(&self) -> Result<Vec<Owner>, IpamError>;
    /// Removes reservations no owner record lists; returns how many.
    fn remove_orphans(&mut self) -> Result<usize, IpamError>;
    /// Makes every change so far durable.
    fn commit(&mut self) -> Result<(), IpamError>;
}

/// The file-backed store: one folder per network under the data folder.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// The store of `network` under `data_dir` (the network name is validated by the caller).
    pub fn new(data_dir: &Path, network: &str) -> Self {
        FileStore {
            dir: data_dir.join(network),
        }
    }

    /// The network's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Store for FileStore {
    type Txn<'a> = FileTxn<'a>;

    fn lock(&self) -> Result<FileTxn<'_>, IpamError> {
        let err = |e| IpamError::store(&self.dir, e);
        if !self.dir.is_dir() {
            fs::create_dir_all(&self.dir).map_err(err)?;
            if let Some(parent) = self.dir.parent() {
                File::open(parent).and_then(|f| f.sync_all()).map_err(err)?;
            }
        }
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| IpamError::store(&lock_path, e))?;
        lock.lock().map_err(|e| IpamError::store(&lock_path, e))?;
        Ok(FileTxn {
            store: self,
            lock,
            dirty: false,
        })
    }
}

/// The file store under its lock.
pub struct FileTxn<'a> {
    store: &'a FileStore,
    /// The locked file; it also holds the search hints.
    lock: File,
    /// Whether records were made since the last fsync.
    dirty: bool,
}

/// The file every process locks; it also holds the search hints.
const LOCK_FILE: &str = "lock";

/// The width of one range set's line of search hints in the lock file: the longest IPv6
/// address, padded, and a newline.
const HINT_WIDTH: usize = 40;

impl FileTxn<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.store.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Option<String>, IpamError> {
        let p = self.path(name);
        match fs::read_link(&p) {
            Ok(t) => Ok(Some(t.to_string_lossy().into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IpamError::store(&p, e)),
        }
    }

    fn write_new(&mut self, name: &str, target: &str) -> Result<(), IpamError> {
        let p = self.path(name);
        self.dirty = true;
        symlink(target, &p).map_err(|e| IpamError::store(&p, e))
    }

    fn unlink(&mut self, name: &str) -> Result<(), IpamError> {
        self.dirty = true;
        remove(&self.path(name))
    }

    fn names(&self, prefix: &str) -> Result<Vec<String>, IpamError> {
        let dir = &self.store.dir;
        let rd = fs::read_dir(dir).map_err(|e| IpamError::store(dir, e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| IpamError::store(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(prefix) {
                out.push(rest.to_string());
            }
        }
        Ok(out)
    }
}

fn hint_offset(set: usize) -> u64 {
    (set * HINT_WIDTH) as u64
}

fn remove(p: &Path) -> Result<(), IpamError> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(IpamError::store(p, e)),
        _ => Ok(()),
    }
}

fn parse_ips(list: &str) -> Vec<IpAddr> {
    list.split(',').filter_map(|s| s.parse().ok()).collect()
}

fn join_ips(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Txn for FileTxn<'_> {
    fn owner_of(&self, ip: IpAddr) -> Result<Option<Owner>, IpamError> {
        let Some(owner) = self
            .read(&format!("ip:{ip}"))?
            .as_deref()
            .and_then(Owner::from_key)
        else {
            return Ok(None);
        };
        let committed = self.lease_of(&owner)?.is_some_and(|ips| ips.contains(&ip));
        Ok(committed.then_some(owner))
    }

    fn lease_of(&self, owner: &Owner) -> Result<Option<Vec<IpAddr>>, IpamError> {
        Ok(self
            .read(&format!("owner:{}", owner.key()))?
            .map(|s| parse_ips(&s)))
    }

    fn reserve(&mut self, owner: &Owner, ips: &[IpAddr]) -> Result<(), IpamError> {
        let key = owner.key();
        for ip in ips {
            let name = format!("ip:{ip}");
            if self.read(&name)?.is_some() {
                // Only an orphan can be here: the allocator checked owner_of under this lock.
                self.unlink(&name)?;
            }
            self.write_new(&name, &key)?;
        }
        // The owner record does not exist (the allocator returned early if it did); made in
        // one call, it commits the reservations above.
        self.write_new(&format!("owner:{key}"), &join_ips(ips))
    }

    fn release(&mut self, owner: &Owner) -> Result<Vec<IpAddr>, IpamError> {
        let key = owner.key();
        let Some(ips) = self.lease_of(owner)? else {
            return Ok(Vec::new());
        };
        // The owner record goes first: its addresses become orphans, which count as free.
        // Not forced to disk at commit (see `Allocator::release`).
        remove(&self.path(&format!("owner:{key}")))?;
        for ip in &ips {
            let name = format!("ip:{ip}");
            if self.read(&name)?.as_deref() == Some(key.as_str()) {
                remove(&self.path(&name))?;
            }
        }
        Ok(ips)
    }

    fn last_reserved(&self, set: usize) -> Result<Option<IpAddr>, IpamError> {
        let mut line = [0u8; HINT_WIDTH];
        let n = self
            .lock
            .read_at(&mut line, hint_offset(set))
            .map_err(|e| IpamError::store(&self.path(LOCK_FILE), e))?;
        Ok(std::str::from_utf8(&line[..n])
            .ok()
            .and_then(|s| s.trim().parse().ok()))
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<(), IpamError> {
        let line = format!("{ip:<width$}\n", width = HINT_WIDTH - 1);
        self.lock
            .write_all_at(line.as_bytes(), hint_offset(set))
            .map_err(|e| IpamError::store(&self.path(LOCK_FILE), e))
    }

    fn owners(&self) -> Result<Vec<Owner>, IpamError> {
        Ok(self
            .names("owner:")?
            .iter()
            .filter_map(|k| Owner::from_key(k))
            .collect())
    }

    fn remove_orphans(&mut self) -> Result<usize, IpamError> {
        let mut removed = 0;
        for ip in self.names("ip:")? {
            let Ok(addr) = ip.parse::<IpAddr>() else {
                continue;
            };
            if self.owner_of(addr)?.is_none() {
                self.unlink(&format!("ip:{ip}"))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn commit(&mut self) -> Result<(), IpamError> {
        if self.dirty {
            let dir = &self.store.dir;
            File::open(dir)
                .and_then(|f| f.sync_all())
                .map_err(|e| IpamError::store(dir, e))?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(c: &str) -> Owner {
        Owner {
            container_id: c.into(),
            ifname: "eth0".into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reserve_lookup_release_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path(), "net1");
        let mut t = store.lock().unwrap();
        t.reserve(&owner("a"), &[ip("10.0.0.2"), ip("fd00::2")])
            .unwrap();
        t.set_last_reserved(0, ip("10.0.0.2")).unwrap();
        t.commit().unwrap();
        assert_eq!(t.owner_of(ip("10.0.0.2")).unwrap(), Some(owner("a")));
        assert_eq!(t.owner_of(ip("fd00::2")).unwrap(), Some(owner("a")));
        assert_eq!(t.lease_of(&owner("a")).unwrap().unwrap().len(), 2);
        assert_eq!(t.last_reserved(0).unwrap(), Some(ip("10.0.0.2")));
        assert_eq!(t.owners().unwrap(), vec![owner("a")]);
        assert_eq!(t.release(&owner("a")).unwrap().len(), 2);
        assert_eq!(t.owner_of(ip("10.0.0.2")).unwrap(), None);
        assert!(t.release(&owner("a")).unwrap().is_empty());
    }

    /// A crash after the address was reserved but before the owner record was written
    /// leaves an orphan: it counts as free, can be handed out again, and GC removes it.
    #[test]
    fn an_orphaned_reservation_is_free_and_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path(), "net1");
        let mut t = store.lock().unwrap();
        symlink("dead:eth0", store.dir().join("ip:10.0.0.7")).unwrap();
        assert_eq!(t.owner_of(ip("10.0.0.7")).unwrap(), None);
        t.reserve(&owner("b"), &[ip("10.0.0.7")]).unwrap();
        assert_eq!(t.owner_of(ip("10.0.0.7")).unwrap(), Some(owner("b")));
        symlink("dead:eth0", store.dir().join("ip:10.0.0.8")).unwrap();
        assert_eq!(t.remove_orphans().unwrap(), 1);
        assert!(fs::symlink_metadata(store.dir().join("ip:10.0.0.8")).is_err());
    }

    /// Where each range set's search starts is kept per set, across processes, without a
    /// record of its own; a garbled hint reads as none.
    #[test]
    fn search_hints_are_per_set_survive_the_lock_and_tolerate_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path(), "net1");
        {
            let mut t = store.lock().unwrap();
            assert_eq!(t.last_reserved(1).unwrap(), None);
            t.set_last_reserved(1, ip("fd00::ffff:1")).unwrap();
            t.set_last_reserved(0, ip("10.0.0.200")).unwrap();
            t.set_last_reserved(0, ip("10.0.0.9")).unwrap();
        }
        let t = store.lock().unwrap();
        assert_eq!(t.last_reserved(0).unwrap(), Some(ip("10.0.0.9")));
        assert_eq!(t.last_reserved(1).unwrap(), Some(ip("fd00::ffff:1")));
        assert_eq!(t.last_reserved(2).unwrap(), None);
        let names = t.names("").unwrap();
        assert_eq!(names, vec![LOCK_FILE.to_string()], "no record per hint");
        t.lock.write_all_at(b"10.0.0.x", 0).unwrap();
        assert_eq!(t.last_reserved(0).unwrap(), None);
    }
}
