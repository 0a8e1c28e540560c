//! `netctl-dnsd`: one process for every network. It listens on 127.0.0.11:53 (UDP and TCP)
//! inside each registered container's namespace, and on the gateway of each bridge network,
//! and answers from a snapshot of the records that it rebuilds when the plugin reports a
//! change over the control socket. Sockets stay open across updates, so no query is lost.
//!
//! What one asker can make the server hold is bounded: a gateway answers only its network's
//! members and the host itself (never an open resolver); forwarded queries in flight and
//! TCP connections are capped in total and per asker (past the cap a query gets SERVFAIL,
//! a connection is closed), TCP connections that sit idle are closed, and a control client
//! that stalls holds up nobody.

#[cfg(test)]
mod differential_tests;
mod forward;
mod limits;
mod slow;
pub mod view;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use netctl_net::{NetNs, Netlink};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener};
use tokio::task::JoinHandle;
use tokio::time::timeout;

pub use forward::{parse_resolv_conf, Upstreams};
pub use limits::{Asker, Limiter};
use netctl_dnsrecords::DnsError;
use netctl_dnsrecords::{DnsPaths, Record};
pub use slow::Outcome;
use view::{Snapshot, View};
pub use wire::Transport;

/// The address the server answers on inside every container.
pub const CONTAINER_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// Forwarded queries in flight at once, in all and per asker.
pub const MAX_FORWARDS: (usize, usize) = (512, 64);
/// Open TCP connections, in all and per asker.
pub const MAX_TCP: (usize, usize) = (512, 32);
/// How long a TCP connection may sit between queries (or in the middle of one).
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Control connections read at once, and how long one may take to send its request.
const MAX_CONTROL: usize = 64;
const CONTROL_WAIT: Duration = Duration::from_secs(1);

/// Where a listener sits, which decides whose view answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Place {
    /// 127.0.0.11 inside a container's namespace.
    Netns(PathBuf),
    /// A bridge network's gateway on the host.
    Gateway(IpAddr, String),
}

impl Place {
    /// The container namespace a query from this place came from.
    fn netns(&self) -> Option<&Path> {
        match self {
            Place::Netns(p) => Some(p),
            Place::Gateway(..) => None,
        }
    }

    /// Who asked, for the bounds.
    fn asker(&self, src: IpAddr) -> Asker {
        match self {
            Place::Netns(p) => Asker::Netns(p.clone()),
            Place::Gateway(..) => Asker::Ip(src),
        }
    }
}

struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    upstreams: Upstreams,
    empty: Arc<View>,
    forwards: Limiter,
    tcp: Limiter,
}

impl Shared {
    /// The view that answers `src` at `place`; None for an asker the place does not serve:
    /// at a gateway, anyone but the network's members and the host itself.
    fn view(&self, place: &Place, src: IpAddr) -> Option<Arc<View>> {
        let s = self.snapshot.read().ok()?;
        let found = match place {
            Place::Netns(p) => s.by_netns.get(p),
            Place::Gateway(_, net) if s.is_member(net, &src) => s.by_ip.get(&src),
            Place::Gateway(_, net) if src.is_loopback() || s.host.contains(&src) => {
                s.by_network.get(net)
            }
            Place::Gateway(..) => return None,
        };
        Some(found.cloned().unwrap_or_else(|| self.empty.clone()))
    }

    /// The asker's own upstream resolvers, if its container has any.
    fn own_upstreams(&self, place: &Place, src: IpAddr) -> Vec<SocketAddr> {
        let Ok(s) = self.snapshot.read() else {
            return Vec::new();
        };
        match place {
            Place::Netns(p) => s.upstreams_by_netns.get(p),
            Place::Gateway(..) => s.upstreams_by_ip.get(&src),
        }
        .cloned()
        .unwrap_or_default()
    }

    /// Forwards a query the asker's networks do not know, holding `slot` until it is done.
    async fn forward(
        &self,
        _slot: limits::Slot,
        place: &Place,
        src: IpAddr,
        req: &[u8],
    ) -> Option<Vec<u8>> {
        let own = self.own_upstreams(place, src);
        self.upstreams.forward(req, place.netns(), own).await
    }
}

/// Answers one query: the fast path, else the slow path (which may forward, within the
/// asker's bound: past it, SERVFAIL).
async fn respond(
    shared: &Shared,
    view: &View,
    place: &Place,
    src: IpAddr,
    req: &[u8],
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    if wire::answer(view, req, out, transport) {
        return Some(std::mem::take(out));
    }
    match slow::handle(view, req) {
        Outcome::Reply(r) => Some(r),
        Outcome::Drop => None,
        Outcome::Forward => match shared.forwards.take(&place.asker(src)) {
            Some(slot) => shared.forward(slot, place, src, req).await,
            None => slow::header_only(req, 2),
        },
    }
}

/// Answers a query without forwarding: what the fuzz test and benchmarks drive.
pub fn answer_locally(view: &View, req: &[u8]) -> Outcome {
    let mut out = Vec::new();
    if wire::answer(view, req, &mut out, Transport::Udp) {
        return Outcome::Reply(out);
    }
    slow::handle(view, req)
}

async fn udp_loop(sock: Arc<UdpSocket>, place: Place, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(1500);
    loop {
        let Ok((n, src)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let Some(view) = shared.view(&place, src.ip()) else {
            continue; // an outsider at a gateway: no answer at all
        };
        let req = &buf[..n];
        if wire::answer(&view, req, &mut out, Transport::Udp) {
            let _ = sock.send_to(&out, src).await;
            continue;
        }
        match slow::handle(&view, req) {
            Outcome::Reply(r) => {
                let _ = sock.send_to(&r, src).await;
            }
            Outcome::Drop => {}
            Outcome::Forward => {
                let Some(slot) = shared.forwards.take(&place.asker(src.ip())) else {
                    if let Some(r) = slow::header_only(req, 2) {
                        let _ = sock.send_to(&r, src).await;
                    }
                    continue;
                };
                let (sock, shared, req, place) =
                    (sock.clone(), shared.clone(), req.to_vec(), place.clone());
                tokio::spawn(async move {
                    if let Some(r) = shared.forward(slot, &place, src.ip(), &req).await {
                        let _ = sock.send_to(&r, src).await;
                    }
                });
            }
        }
    }
}

/// Serves one TCP connection: length-prefixed queries, each answered whole (up to 65,535
/// bytes), until the asker closes it or leaves it idle for [`TCP_IDLE`].
async fn tcp_conn(mut conn: TcpStream, src: IpAddr, place: Place, shared: Arc<Shared>) {
    let mut out = Vec::new();
    loop {
        let Ok(Ok(len)) = timeout(TCP_IDLE, conn.read_u16()).await else {
            return;
        };
        let mut req = vec![0u8; usize::from(len)];
        if !matches!(
            timeout(TCP_IDLE, conn.read_exact(&mut req)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Some(view) = shared.view(&place, src) else {
            return;
        };
        let Some(reply) =
            respond(&shared, &view, &place, src, &req, Transport::Tcp, &mut out).await
        else {
            continue;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        if !matches!(timeout(TCP_IDLE, conn.write_all(&framed)).await, Ok(Ok(()))) {
            return;
        }
    }
}

async fn tcp_loop(listener: TcpListener, place: Place, shared: Arc<Shared>) {
    loop {
        let (conn, src) = match listener.accept().await {
            Ok(c) => c,
            // Out of descriptors or memory: wait rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if shared.view(&place, src.ip()).is_none() {
            continue;
        }
        let Some(slot) = shared.tcp.take(&place.asker(src.ip())) else {
            continue;
        };
        let (place, shared) = (place.clone(), shared.clone());
        tokio::spawn(async move {
            let _slot = slot;
            tcp_conn(conn, src.ip(), place, shared).await;
        });
    }
}

/// Opens UDP and TCP port 53 on `ip` in the calling thread's namespace.
fn bind_std(ip: IpAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let addr = SocketAddr::new(ip, 53);
    let udp = std::net::UdpSocket::bind(addr)?;
    let tcp = std::net::TcpListener::bind(addr)?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

/// Opens the sockets of a place: inside the container's namespace (bringing its loopback
/// up if needed), or on the host.
fn open(place: &Place) -> Result<(std::net::UdpSocket, std::net::TcpListener), DnsError> {
    let fail = |e: std::io::Error| DnsError::io(format!("listen for DNS at {place:?}"), e);
    match place {
        Place::Gateway(ip, _) => bind_std(*ip).map_err(fail),
        Place::Netns(path) => {
            let ns = NetNs::open(path).map_err(|e| fail(std::io::Error::other(e.to_string())))?;
            ns.run(|| {
                let other = |e: netctl_net::NetError| std::io::Error::other(e.to_string());
                let mut nl = Netlink::new().map_err(other)?;
                if let Some(lo) = nl.link_by_name("lo").map_err(other)?.filter(|l| !l.up) {
                    nl.set_up(lo.index, true).map_err(other)?;
                }
                bind_std(IpAddr::V4(CONTAINER_DNS))
            })
            .map_err(|e| fail(std::io::Error::other(e.to_string())))?
            .map_err(fail)
        }
    }
}

/// The tasks serving one place, and for a container's namespace which namespace it was
/// (device and inode of its file), so the server notices when it is gone.
struct Listening {
    tasks: Vec<JoinHandle<()>>,
    netns: Option<(u64, u64)>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Device and inode of a namespace file, which identify the namespace.
fn ns_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// How often the server looks for container namespaces that went away without a DEL.
const NETNS_SWEEP: Duration = Duration::from_secs(2);

/// The running server's state.
pub struct Server {
    paths: DnsPaths,
    records: HashMap<PathBuf, Record>,
    listening: HashMap<Place, Listening>,
    shared: Arc<Shared>,
}

impl Server {
    /// A server for the records under `paths`, forwarding to the resolvers of `resolv_conf`.
    pub fn new(paths: DnsPaths, resolv_conf: PathBuf) -> Self {
        Server {
            paths,
            records: HashMap::new(),
            listening: HashMap::new(),
            shared: Arc::new(Shared {
                snapshot: RwLock::new(Arc::new(Snapshot::default())),
                upstreams: Upstreams::new(resolv_conf),
                empty: Arc::new(View::default()),
                forwards: Limiter::new(MAX_FORWARDS.0, MAX_FORWARDS.1),
                tcp: Limiter::new(MAX_TCP.0, MAX_TCP.1),
            }),
        }
    }

    /// Loads every record (what a restart after a crash does).
    pub fn load_all(&mut self) {
        for p in self.paths.record_files(None) {
            self.load(&p);
        }
    }

    fn load(&mut self, path: &Path) {
        match DnsPaths::read(path) {
            Ok(Some(r)) => {
                self.records.insert(path.to_path_buf(), r);
            }
            Ok(None) | Err(_) => {
                self.records.remove(path);
            }
        }
    }

    /// Rebuilds the views and opens or closes listeners to match the records.
    pub fn apply(&mut self) {
        let records: Vec<&Record> = self.records.values().collect();
        let mut snapshot = Snapshot::build(&records);
        snapshot.host = host_addresses();
        // Swapped under the lock, dropped after it: freeing the old views (thousands of
        // names) inside the write lock would hold up every query waiting to read.
        let old = self
            .shared
            .snapshot
            .write()
            .map(|mut s| std::mem::replace(&mut *s, Arc::new(snapshot)));
        drop(old);
        let mut wanted: HashSet<Place> = HashSet::new();
        for r in records {
            wanted.extend(r.netns.clone().map(Place::Netns));
            wanted.extend(
                r.gateways
                    .iter()
                    .map(|g| Place::Gateway(*g, r.network.clone())),
            );
        }
        self.listening.retain(|p, _| wanted.contains(p)); // a set: no N x N walk per update
        for place in wanted {
            if self.listening.contains_key(&place) {
                continue;
            }
            // A gateway the host does not have (macvlan's router) is simply not listened on.
            if let Ok(l) = self.listen(&place) {
                self.listening.insert(place, l);
            }
        }
        let ours = self
            .listening
            .keys()
            .filter_map(|p| match p {
                Place::Gateway(ip, _) => Some(*ip),
                Place::Netns(_) => None,
            })
            .collect();
        self.shared.upstreams.set_exclude(ours);
        give_back_free_memory();
    }

    fn listen(&self, place: &Place) -> Result<Listening, DnsError> {
        let (udp, tcp) = open(place)?;
        let fail = |e| DnsError::io("register a DNS socket with the runtime", e);
        let udp = Arc::new(UdpSocket::from_std(udp).map_err(fail)?);
        let tcp = TcpListener::from_std(tcp).map_err(fail)?;
        Ok(Listening {
            tasks: vec![
                tokio::spawn(udp_loop(udp, place.clone(), self.shared.clone())),
                tokio::spawn(tcp_loop(tcp, place.clone(), self.shared.clone())),
            ],
            netns: place.netns().and_then(ns_identity),
        })
    }

    /// Closes the sockets in every container namespace whose file is gone or names another
    /// namespace now (a runtime removed it without DEL): sockets would keep a deleted
    /// namespace, and its interfaces, alive.
    fn sweep_gone_namespaces(&mut self) {
        self.listening
            .retain(|place, l| match (place.netns(), l.netns) {
                (Some(path), Some(id)) => ns_identity(path) == Some(id),
                _ => true,
            });
    }

    /// How many records are loaded.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Serves control requests until the last record is gone. Each connection's request is
    /// read on its own (a client that stalls holds up nobody, and is dropped after
    /// [`CONTROL_WAIT`]); the requests are then handled one at a time.
    pub async fn run(mut self) -> Result<(), DnsError> {
        let sock = self.paths.control();
        let _ = std::fs::remove_file(&sock);
        let control = UnixListener::bind(&sock)
            .map_err(|e| DnsError::io(format!("listen on {}", sock.display()), e))?;
        self.apply();
        let readers = Limiter::new(MAX_CONTROL, MAX_CONTROL);
        let (tx, mut rx) = tokio::sync::mpsc::channel(MAX_CONTROL);
        let mut sweep = tokio::time::interval(NETNS_SWEEP);
        while self.record_count() > 0 {
            tokio::select! {
                _ = sweep.tick() => self.sweep_gone_namespaces(),
                accepted = control.accept() => {
                    let Ok((conn, _)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let Some(slot) = readers.take(&Asker::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED))) else {
                        continue;
                    };
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let (read, write) = conn.into_split();
                        let mut line = String::new();
                        let mut reader = BufReader::new(read.take(4096));
                        if let Ok(Ok(1..)) = timeout(CONTROL_WAIT, reader.read_line(&mut line)).await {
                            let _ = tx.send((line, write)).await;
                        }
                    });
                }
                Some((line, mut write)) = rx.recv() => {
                    // A reply of a few bytes on a fresh connection fits its buffer: this
                    // never waits on the client, and is sent before a last record's exit.
                    let reply = self.handle(&line);
                    let _ = timeout(CONTROL_WAIT, write.write_all(reply.as_bytes())).await;
                }
            }
        }
        let _ = std::fs::remove_file(&sock);
        Ok(())
    }

    /// One control request: `update PATH` (a record was written or removed) or `ping`.
    fn handle(&mut self, line: &str) -> String {
        match line.trim().strip_prefix("update ") {
            Some(path) if Path::new(path).starts_with(self.paths.records()) => {
                self.load(Path::new(path));
                self.apply();
                format!("ok {}\n", self.record_count())
            }
            Some(_) => "error: not a record of this server\n".to_string(),
            None if line.trim() == "ping" => format!("ok {}\n", self.record_count()),
            None => "error: unknown request\n".to_string(),
        }
    }
}

/// Returns the heap the last rebuild freed (the old views, the rebuild's scratch maps) to the
/// kernel: without it, the allocator keeps its peak, and the server's resident memory is
/// that of two snapshots at once.
#[allow(unsafe_code)]
fn give_back_free_memory() {
    // SAFETY: malloc_trim takes no pointers and only releases memory the allocator holds
    // free; it is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The host's own addresses (the server runs in the host's namespace): askers at a gateway
/// with one of them are the host itself.
fn host_addresses() -> HashSet<IpAddr> {
    Netlink::new()
        .and_then(|mut nl| nl.addresses(None))
        .map(|addrs| addrs.into_iter().map(|a| a.net.addr()).collect())
        .unwrap_or_default()
}
