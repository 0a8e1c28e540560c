//! The local clients of the agent's socket: at most [`MAX_CLIENTS`] connections at once, and
//! a new one never turned away for clients that only sit there. When every place is taken,
//! the connection that has waited longest for its next request is closed to make room (a
//! plugin opens one, asks, and goes; an idle one loses nothing but its connection).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Connections served at once.
pub const MAX_CLIENTS: usize = 64;
/// How long a new connection waits for a place held by clients that are all mid-request.
const WAIT_FOR_PLACE: Duration = Duration::from_secs(5);

/// The places, and the connections that wait for their next request, oldest first.
#[derive(Clone)]
pub struct Clients {
    places: Arc<Semaphore>,
    idle: Arc<Mutex<BTreeMap<u64, Arc<Notify>>>>,
    seq: Arc<AtomicU64>,
}

impl Default for Clients {
    fn default() -> Self {
        Clients {
            places: Arc::new(Semaphore::new(MAX_CLIENTS)),
            idle: Arc::default(),
            seq: Arc::default(),
        }
    }
}

/// A connection's mark while it waits for a request: [`Idle::closed`] fires when the place
/// is wanted for a new connection.
pub struct Idle {
    clients: Clients,
    id: u64,
    notify: Arc<Notify>,
}

impl Idle {
    /// Resolves when this connection is to make room.
    pub async fn closed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        if let Ok(mut idle) = self.clients.idle.lock() {
            idle.remove(&self.id);
        }
    }
}

impl Clients {
    /// A place for a new connection: a free one, else the place of the longest-idle
    /// connection; None when all are busy for [`WAIT_FOR_PLACE`].
    pub async fn place(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.places.clone().try_acquire_owned() {
            return Some(p);
        }
        let oldest = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop_first().map(|(_, n)| n));
        if let Some(n) = oldest {
            n.notify_one();
        }
        tokio::time::timeout(WAIT_FOR_PLACE, self.places.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Marks a connection as waiting for its next request, until the mark is dropped.
    pub fn idle(&self) -> Idle {
        let id = self.seq.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        if let Ok(mut idle) = self.idle.lock() {
            idle.insert(id, notify.clone());
        }
        Idle {
            clients: self.clone(),
            id,
            notify,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every place held by an idle connection: a new one still gets a place, the oldest
    /// idle one is told to close.
    #[tokio::test]
    async fn a_new_client_takes_the_place_of_the_longest_idle_one() {
        let clients = Clients::default();
        let mut held = Vec::new();
        for _ in 0..MAX_CLIENTS {
            let place = clients.place().await.unwrap();
            let idle = clients.idle();
            let c = idle.clients.clone();
            let task = tokio::spawn(async move {
                idle.closed().await;
                drop(place);
                drop(c);
            });
            held.push(task);
        }
        let newcomer = tokio::time::timeout(Duration::from_secs(1), clients.place()).await;
        assert!(matches!(newcomer, Ok(Some(_))), "a place within a second");
        assert!(
            held[0].is_finished()
                || tokio::time::timeout(Duration::from_secs(1), &mut held[0])
                    .await
                    .is_ok()
        );
        assert!(!held[1].is_finished(), "only the oldest made room");
    }
}
