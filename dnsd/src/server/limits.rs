//! Bounds on what askers can make the server hold: in-flight forwarded queries and open
//! TCP connections, each capped in total and per asker, so that one container flooding the
//! server cannot starve the others or grow the server without end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Who asked: a container (by its namespace), or an address asking at a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Asker {
    /// Through 127.0.0.11 inside this namespace.
    Netns(PathBuf),
    /// At a gateway, from this address.
    Ip(IpAddr),
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_asker: HashMap<Asker, usize>,
}

/// A counter with a total and a per-asker cap.
#[derive(Debug, Clone)]
pub struct Limiter {
    total: usize,
    per_asker: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One slot of a [`Limiter`], given back when dropped.
#[derive(Debug)]
pub struct Slot {
    asker: Asker,
    counts: Arc<Mutex<Counts>>,
}

impl Limiter {
    /// At most `total` slots, `per_asker` of them for one asker.
    pub fn new(total: usize, per_asker: usize) -> Self {
        Limiter {
            total,
            per_asker,
            counts: Arc::default(),
        }
    }

    /// A slot for `asker`, or None when it or everyone holds all they may.
    pub fn take(&self, asker: &Asker) -> Option<Slot> {
        let mut c = self.counts.lock().ok()?;
        let mine = c.by_asker.get(asker).copied().unwrap_or(0);
        if c.total >= self.total || mine >= self.per_asker {
            return None;
        }
        c.total += 1;
        *c.by_asker.entry(asker.clone()).or_default() += 1;
        Some(Slot {
            asker: asker.clone(),
            counts: self.counts.clone(),
        })
    }

    /// Slots in use now.
    pub fn in_use(&self) -> usize {
        self.counts.lock().map_or(0, |c| c.total)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.by_asker.get_mut(&self.asker) {
                *n -= 1;
                if *n == 0 {
                    c.by_asker.remove(&self.asker);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_asker_cannot_take_every_slot_and_slots_come_back() {
        let l = Limiter::new(3, 2);
        let a = Asker::Ip("10.0.0.2".parse().unwrap());
        let b = Asker::Netns("/ns/b".into());
        let a1 = l.take(&a).unwrap();
        let _a2 = l.take(&a).unwrap();
        assert!(l.take(&a).is_none(), "a holds its share");
        let _b1 = l.take(&b).unwrap();
        assert!(l.take(&b).is_none(), "the total is reached");
        drop(a1);
        let _b2 = l.take(&b).expect("a's slot came back");
        assert_eq!(l.in_use(), 3);
    }
}
