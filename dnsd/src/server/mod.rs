//! `netctl-dnsd`: one process for every network. It listens on 127.0.0.11:53 (UDP and TCP)
//! inside each registered container's namespace, and on the gateway of each bridge network,
//! and answers from a snapshot of the records that it rebuilds when the plugin reports a
//! change over the control socket. Sockets stay open across updates, so no query is lost.

mod forward;
mod slow;
pub mod view;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use netctl_net::{NetNs, Netlink};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener};
use tokio::task::JoinHandle;

use crate::records::{DnsPaths, Record};
use crate::DnsError;
pub use forward::{parse_resolv_conf, Upstreams};
pub use slow::Outcome;
use view::{Snapshot, View};

/// The address the server answers on inside every container.
pub const CONTAINER_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

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
}

struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Bumped with every new snapshot, so listeners can keep their view between queries.
    generation: AtomicU64,
    upstreams: Upstreams,
    empty: Arc<View>,
}

impl Shared {
    fn view(&self, place: &Place, src: IpAddr) -> Arc<View> {
        let Ok(s) = self.snapshot.read() else {
            return self.empty.clone();
        };
        let found = match place {
            Place::Netns(p) => s.by_netns.get(p),
            Place::Gateway(_, net) => s.by_ip.get(&src).or_else(|| s.by_network.get(net)),
        };
        found.cloned().unwrap_or_else(|| self.empty.clone())
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

    /// Forwards a query the asker's networks do not know.
    async fn forward(&self, place: &Place, src: IpAddr, req: &[u8]) -> Option<Vec<u8>> {
        let own = self.own_upstreams(place, src);
        self.upstreams.forward(req, place.netns(), own).await
    }
}

/// Answers one query: the fast path, else the slow path (which may forward).
async fn respond(
    shared: &Shared,
    place: &Place,
    src: IpAddr,
    req: &[u8],
    out: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    let view = shared.view(place, src);
    if wire::answer(&view, req, out) {
        return Some(std::mem::take(out));
    }
    match slow::handle(&view, req) {
        Outcome::Reply(r) => Some(r),
        Outcome::Drop => None,
        Outcome::Forward => shared.forward(place, src, req).await,
    }
}

/// Answers a query without forwarding: what the fuzz test and benchmarks drive.
pub fn answer_locally(view: &View, req: &[u8]) -> Outcome {
    let mut out = Vec::new();
    if wire::answer(view, req, &mut out) {
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
        let req = &buf[..n];
        let view = shared.view(&place, src.ip());
        if wire::answer(&view, req, &mut out) {
            let _ = sock.send_to(&out, src).await;
            continue;
        }
        match slow::handle(&view, req) {
            Outcome::Reply(r) => {
                let _ = sock.send_to(&r, src).await;
            }
            Outcome::Drop => {}
            Outcome::Forward => {
                let (sock, shared, req, place) =
                    (sock.clone(), shared.clone(), req.to_vec(), place.clone());
                tokio::spawn(async move {
                    if let Some(r) = shared.forward(&place, src.ip(), &req).await {
                        let _ = sock.send_to(&r, src).await;
                    }
                });
            }
        }
    }
}

async fn tcp_conn(mut conn: TcpStream, src: IpAddr, place: Place, shared: Arc<Shared>) {
    let mut out = Vec::new();
    loop {
        let Ok(len) = conn.read_u16().await else {
            return;
        };
        let mut req = vec![0u8; usize::from(len)];
        if conn.read_exact(&mut req).await.is_err() {
            return;
        }
        let Some(reply) = respond(&shared, &place, src, &req, &mut out).await else {
            continue;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        if conn.write_u16(len).await.is_err() || conn.write_all(&reply).await.is_err() {
            return;
        }
    }
}

async fn tcp_loop(listener: TcpListener, place: Place, shared: Arc<Shared>) {
    loop {
        let Ok((conn, src)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(tcp_conn(conn, src.ip(), place.clone(), shared.clone()));
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

struct Listening(Vec<JoinHandle<()>>);

impl Drop for Listening {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

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
                generation: AtomicU64::new(0),
                upstreams: Upstreams::new(resolv_conf),
                empty: Arc::new(View::default()),
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
        let snapshot = Snapshot::build(&records);
        if let Ok(mut s) = self.shared.snapshot.write() {
            *s = Arc::new(snapshot);
        }
        self.shared.generation.fetch_add(1, Ordering::Release);
        let mut wanted: Vec<Place> = Vec::new();
        for r in records {
            wanted.extend(r.netns.clone().map(Place::Netns));
            wanted.extend(
                r.gateways
                    .iter()
                    .map(|g| Place::Gateway(*g, r.network.clone())),
            );
        }
        self.listening.retain(|p, _| wanted.contains(p));
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
    }

    fn listen(&self, place: &Place) -> Result<Listening, DnsError> {
        let (udp, tcp) = open(place)?;
        let fail = |e| DnsError::io("register a DNS socket with the runtime", e);
        let udp = Arc::new(UdpSocket::from_std(udp).map_err(fail)?);
        let tcp = TcpListener::from_std(tcp).map_err(fail)?;
        Ok(Listening(vec![
            tokio::spawn(udp_loop(udp, place.clone(), self.shared.clone())),
            tokio::spawn(tcp_loop(tcp, place.clone(), self.shared.clone())),
        ]))
    }

    /// How many records are loaded.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Serves control requests until the last record is gone.
    pub async fn run(mut self) -> Result<(), DnsError> {
        let sock = self.paths.control();
        let _ = std::fs::remove_file(&sock);
        let control = UnixListener::bind(&sock)
            .map_err(|e| DnsError::io(format!("listen on {}", sock.display()), e))?;
        self.apply();
        while self.record_count() > 0 {
            let Ok((conn, _)) = control.accept().await else {
                continue;
            };
            let (read, mut write) = conn.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                continue;
            }
            let reply = match line.trim().strip_prefix("update ") {
                Some(path) if Path::new(path).starts_with(self.paths.records()) => {
                    self.load(Path::new(path));
                    self.apply();
                    format!("ok {}\n", self.record_count())
                }
                Some(_) => "error: not a record of this server\n".to_string(),
                None if line.trim() == "ping" => format!("ok {}\n", self.record_count()),
                None => "error: unknown request\n".to_string(),
            };
            let _ = write.write_all(reply.as_bytes()).await;
        }
        let _ = std::fs::remove_file(&sock);
        Ok(())
    }
}
