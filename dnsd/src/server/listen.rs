//! The listeners: each place's UDP socket and TCP listener, all waited on by one thread
//! (epoll), so that 10,000 containers' sockets cost no thread or task each. UDP queries are
//! read and answered there in batches; TCP connections and forwarded queries go to the async
//! runtime.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netctl_dnsrecords::DnsError;
use netctl_net::{NetNs, Netlink};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::runtime::Handle;

use super::batch::{Inbox, Outbox, BATCH};
use super::catalog::{Found, Place};
use super::{decide, tcp_conn, Decision, Query, Shared, Transport, CONTAINER_DNS};

/// The token of the event that stops the thread.
const STOP: u64 = u64::MAX;
/// How long a TCP listener rests after `accept` failed for want of descriptors or memory.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

enum Kind {
    Udp(UdpSocket),
    Tcp(TcpListener),
}

/// One socket and where it listens.
struct Socket {
    place: Place,
    kind: Kind,
}

impl Socket {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.kind {
            Kind::Udp(s) => s.as_fd(),
            Kind::Tcp(l) => l.as_fd(),
        }
    }
}

type Table = RwLock<HashMap<u64, Arc<Socket>>>;
/// A query to forward: the asker's resolvers and its slot within the bound.
type Forward = (Vec<SocketAddr>, super::limits::Slot);

/// A place's two sockets, and for a container's namespace which namespace it was (device
/// and inode of its file), so the server notices when it is gone.
struct Opened {
    tokens: [u64; 2],
    netns: Option<(u64, u64)>,
}

/// Every open listener and the thread that serves them.
pub struct Listeners {
    epoll: Arc<Epoll>,
    table: Arc<Table>,
    open: HashMap<Place, Opened>,
    next: u64,
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

fn io_err(what: &str, e: nix::errno::Errno) -> DnsError {
    DnsError::io(what, std::io::Error::from(e))
}

impl Listeners {
    /// Starts the serving thread; forwarded queries and TCP connections run on `rt`.
    pub fn start(shared: Arc<Shared>, rt: Handle) -> Result<Self, DnsError> {
        let epoll = Arc::new(
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
                .map_err(|e| io_err("create an epoll", e))?,
        );
        let stop = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| io_err("create an eventfd", e))?;
        epoll
            .add(&stop, EpollEvent::new(EpollFlags::EPOLLIN, STOP))
            .map_err(|e| io_err("watch the eventfd", e))?;
        let table: Arc<Table> = Arc::default();
        let (worker_epoll, worker_table) = (epoll.clone(), table.clone());
        // The worker's message headers hold raw pointers: it is made on its own thread.
        let thread = std::thread::Builder::new()
            .name("dns-listeners".into())
            .spawn(move || {
                Worker {
                    epoll: worker_epoll,
                    table: worker_table,
                    shared,
                    rt,
                    inbox: Inbox::default(),
                    outbox: Outbox::default(),
                    found: Found::default(),
                    paused: Vec::new(),
                }
                .run()
            })
            .map_err(|e| DnsError::io("start the listener thread", e))?;
        Ok(Listeners {
            epoll,
            table,
            open: HashMap::new(),
            next: 0,
            stop,
            thread: Some(thread),
        })
    }

    /// Whether `place` has its sockets.
    pub fn is_open(&self, place: &Place) -> bool {
        self.open.contains_key(place)
    }

    /// Opens `place`'s sockets and starts serving them.
    pub fn open(&mut self, place: &Place) -> Result<(), DnsError> {
        let (udp, tcp) = bind(place)?;
        let mut tokens = [0u64; 2];
        for (k, kind) in [Kind::Udp(udp), Kind::Tcp(tcp)].into_iter().enumerate() {
            let token = self.next;
            self.next += 1;
            let flags = match kind {
                Kind::Udp(_) => EpollFlags::EPOLLIN,
                Kind::Tcp(_) => EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT,
            };
            let sock = Arc::new(Socket {
                place: place.clone(),
                kind,
            });
            if let Ok(mut t) = self.table.write() {
                t.insert(token, sock.clone());
            }
            if let Err(e) = self.epoll.add(sock.fd(), EpollEvent::new(flags, token)) {
                self.forget(&tokens[..k]);
                self.forget(&[token]);
                return Err(io_err("watch a DNS socket", e));
            }
            tokens[k] = token;
        }
        let netns = place.netns().and_then(ns_identity);
        self.open.insert(place.clone(), Opened { tokens, netns });
        Ok(())
    }

    /// Closes `place`'s sockets.
    pub fn close(&mut self, place: &Place) {
        if let Some(o) = self.open.remove(place) {
            self.forget(&o.tokens);
        }
    }

    fn forget(&mut self, tokens: &[u64]) {
        let Ok(mut t) = self.table.write() else {
            return;
        };
        for token in tokens {
            if let Some(sock) = t.remove(token) {
                let _ = self.epoll.delete(sock.fd());
            }
        }
    }

    /// The gateways listened on (which are never forwarded to).
    pub fn gateways(&self) -> Vec<IpAddr> {
        self.open
            .keys()
            .filter_map(|p| match p {
                Place::Gateway(ip, _) => Some(*ip),
                Place::Netns(_) => None,
            })
            .collect()
    }

    /// Closes the sockets in every container namespace whose file is gone or names another
    /// namespace now (a runtime removed it without DEL): sockets would keep a deleted
    /// namespace, and its interfaces, alive.
    pub fn sweep_gone_namespaces(&mut self) {
        let gone: Vec<Place> = self
            .open
            .iter()
            .filter(|(place, o)| match (place.netns(), o.netns) {
                (Some(path), Some(id)) => ns_identity(path) != Some(id),
                _ => false,
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in gone {
            self.close(&p);
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Device and inode of a namespace file, which identify the namespace.
fn ns_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Opens UDP and TCP port 53 on `ip` in the calling thread's namespace.
fn bind_here(ip: IpAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let addr = SocketAddr::new(ip, 53);
    let udp = UdpSocket::bind(addr)?;
    let tcp = TcpListener::bind(addr)?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

/// Opens the sockets of a place: inside the container's namespace (bringing its loopback
/// up if needed), or on the host.
fn bind(place: &Place) -> Result<(UdpSocket, TcpListener), DnsError> {
    let fail = |e: std::io::Error| DnsError::io(format!("listen for DNS at {place:?}"), e);
    match place {
        Place::Gateway(ip, _) => bind_here(*ip).map_err(fail),
        Place::Netns(path) => {
            let ns = NetNs::open(path).map_err(|e| fail(std::io::Error::other(e.to_string())))?;
            ns.run(|| {
                let other = |e: netctl_net::NetError| std::io::Error::other(e.to_string());
                let mut nl = Netlink::new().map_err(other)?;
                if let Some(lo) = nl.link_by_name("lo").map_err(other)?.filter(|l| !l.up) {
                    nl.set_up(lo.index, true).map_err(other)?;
                }
                bind_here(IpAddr::V4(CONTAINER_DNS))
            })
            .map_err(|e| fail(std::io::Error::other(e.to_string())))?
            .map_err(fail)
        }
    }
}

/// The serving thread's state: its buffers and message headers are reused for every batch.
struct Worker {
    epoll: Arc<Epoll>,
    table: Arc<Table>,
    shared: Arc<Shared>,
    rt: Handle,
    inbox: Inbox,
    outbox: Outbox,
    found: Found,
    /// TCP listeners resting after a failed accept, and when to watch them again.
    paused: Vec<(Instant, u64)>,
}

impl Worker {
    fn run(mut self) {
        let mut events = [EpollEvent::empty(); 64];
        loop {
            let wait = self
                .paused
                .iter()
                .map(|(at, _)| at.saturating_duration_since(Instant::now()))
                .min()
                .map_or(EpollTimeout::NONE, |d| {
                    EpollTimeout::try_from(d.as_millis().clamp(1, 1000) as i32)
                        .unwrap_or(EpollTimeout::ZERO)
                });
            let n = match self.epoll.wait(&mut events, wait) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            };
            self.resume_paused();
            for ev in &events[..n] {
                let token = ev.data();
                if token == STOP {
                    return;
                }
                let sock = self.table.read().ok().and_then(|t| t.get(&token).cloned());
                let Some(sock) = sock else { continue };
                match &sock.kind {
                    Kind::Udp(udp) => self.serve_udp(&sock, udp),
                    Kind::Tcp(l) => self.accept(&sock, l, token),
                }
            }
        }
    }

    /// Reads and answers what waits on `udp`, a few batches at most before the other
    /// sockets get their turn.
    fn serve_udp(&mut self, sock: &Arc<Socket>, udp: &UdpSocket) {
        for _ in 0..4 {
            let n = match self.inbox.recv(udp.as_raw_fd()) {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            self.outbox.clear();
            for (i, forward) in self.answer_batch(&sock.place, n) {
                let (shared, sock, req) = (
                    self.shared.clone(),
                    sock.clone(),
                    self.inbox.get(i).0.to_vec(),
                );
                let from = self.inbox.peer(i);
                self.rt.spawn(async move {
                    let (own, _slot) = forward;
                    let reply = shared
                        .upstreams
                        .forward(&req, sock.place.netns(), own)
                        .await;
                    if let (Some(r), Some(to), Kind::Udp(udp)) = (reply, from, &sock.kind) {
                        let _ = udp.send_to(&r, to);
                    }
                });
            }
            self.outbox.send(udp.as_raw_fd(), &self.inbox);
            if n < BATCH {
                return;
            }
        }
    }

    /// Answers the `n` queries of the inbox into the outbox under one read lock of the
    /// catalog, working out whom an asker is answered for once per run of its queries.
    /// Returns the queries to forward, with their resolvers and bound slots.
    fn answer_batch(&mut self, place: &Place, n: usize) -> Vec<(usize, Forward)> {
        let mut forwards = Vec::new();
        let Ok(catalog) = self.shared.catalog.read() else {
            return forwards;
        };
        let mut last = None;
        for i in 0..n {
            let (req, src) = self.inbox.get(i);
            let Some(src) = src else { continue };
            let view = match last {
                Some((at, view)) if at == src => view,
                _ => {
                    let view = catalog.view(place, src);
                    last = Some((src, view));
                    view
                }
            };
            let query = Query {
                place,
                src,
                req,
                transport: Transport::Udp,
            };
            let start = self.outbox.bytes.len();
            let bytes = &mut self.outbox.bytes;
            match decide(&self.shared, view, &query, bytes, &mut self.found) {
                Decision::Answered => self.outbox.push(i, start),
                Decision::Ignore | Decision::Outsider => {}
                Decision::Forward(own, slot) => forwards.push((i, (own, slot))),
            }
        }
        forwards
    }

    /// Accepts what waits on `listener` and hands each connection from an asker this place
    /// serves (within the bounds) to the runtime.
    fn accept(&mut self, sock: &Arc<Socket>, listener: &TcpListener, token: u64) {
        loop {
            let (conn, src) = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Out of descriptors or memory: rest rather than spin.
                Err(_) => {
                    self.paused.push((Instant::now() + ACCEPT_PAUSE, token));
                    return;
                }
            };
            let served = self
                .shared
                .catalog
                .read()
                .is_ok_and(|c| c.view(&sock.place, src.ip()).is_some());
            if !served {
                continue;
            }
            let Some(slot) = self.shared.tcp.take(&sock.place.asker(src.ip())) else {
                continue;
            };
            if conn.set_nonblocking(true).is_err() {
                continue;
            }
            let (shared, place) = (self.shared.clone(), sock.place.clone());
            self.rt.spawn(async move {
                let _slot = slot;
                if let Ok(conn) = tokio::net::TcpStream::from_std(conn) {
                    tcp_conn(conn, src.ip(), place, shared).await;
                }
            });
        }
        self.rearm(token);
    }

    fn rearm(&self, token: u64) {
        let Some(sock) = self.table.read().ok().and_then(|t| t.get(&token).cloned()) else {
            return;
        };
        let mut ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT, token);
        let _ = self.epoll.modify(sock.fd(), &mut ev);
    }

    fn resume_paused(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .paused
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, t)| *t)
            .collect();
        self.paused.retain(|(at, _)| *at > now);
        for token in due {
            self.rearm(token);
        }
    }
}
