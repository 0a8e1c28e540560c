//! `netctl-dnsd`: one process for every network. It listens on 127.0.0.11:53 (UDP and TCP)
//! inside each registered container's namespace, and on the gateway of each bridge network,
//! and answers from a catalog of the records that it changes one record at a time when the
//! plugin reports a change over the control socket. Sockets stay open across updates, so no
//! query is lost; one thread waits on all of them and answers UDP in batches.
//!
//! What one asker can make the server hold is bounded: a gateway answers only its network's
//! members and the host itself (never an open resolver); forwarded queries in flight and
//! TCP connections are capped in total and per asker (past the cap a query gets SERVFAIL,
//! a connection is closed), TCP connections that sit idle are closed, and a control client
//! that stalls holds up nobody.

mod batch;
pub mod catalog;
#[cfg(test)]
mod differential_tests;
mod forward;
mod limits;
mod listen;
mod slow;
pub mod wire;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use netctl_net::Netlink;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener};
use tokio::time::timeout;

use catalog::{Catalog, Found, Place, View};
pub use forward::{parse_resolv_conf, Upstreams};
pub use limits::{Asker, Limiter};
use listen::Listeners;
use netctl_dnsrecords::DnsError;
use netctl_dnsrecords::DnsPaths;
pub use slow::Outcome;
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

impl Place {
    /// Who asked, for the bounds.
    fn asker(&self, src: IpAddr) -> Asker {
        match self {
            Place::Netns(p) => Asker::Netns(p.clone()),
            Place::Gateway(..) => Asker::Ip(src),
        }
    }
}

/// What the listeners and the control loop share.
struct Shared {
    catalog: RwLock<Catalog>,
    upstreams: Upstreams,
    forwards: Limiter,
    tcp: Limiter,
}

/// What to do with one query.
enum Decision {
    /// The answer was appended to the output.
    Answered,
    /// No answer (bytes that are no query).
    Ignore,
    /// No answer at all, to an asker the place does not serve (an outsider at a gateway).
    Outsider,
    /// Ask these resolvers of the asker's own (or the host's, if none), holding the slot.
    Forward(Vec<SocketAddr>, limits::Slot),
}

/// One query: where it arrived, who sent it, its bytes and how.
struct Query<'a> {
    place: &'a Place,
    src: IpAddr,
    req: &'a [u8],
    transport: Transport,
}

/// Decides one query under the catalog's read lock: the fast path, else the slow path,
/// which may forward within the asker's bound (past it, SERVFAIL). `view` is whom the
/// catalog answers the asker for at its place (None: one the place does not serve), which a
/// batch works out once for a run of queries from one asker. Answers are appended to `out`.
fn decide(
    shared: &Shared,
    view: Option<View<'_>>,
    q: &Query,
    out: &mut Vec<u8>,
    found: &mut Found,
) -> Decision {
    let Some(view) = view else {
        return Decision::Outsider;
    };
    if wire::answer(&view, q.req, out, q.transport, found) {
        return Decision::Answered;
    }
    let reply = match slow::handle(&view, q.req) {
        Outcome::Reply(r) => Some(r),
        Outcome::Drop => None,
        Outcome::Forward => match shared.forwards.take(&q.place.asker(q.src)) {
            Some(slot) => return Decision::Forward(view.own_upstreams(), slot),
            None => slow::header_only(q.req, 2),
        },
    };
    match reply {
        Some(r) => {
            out.extend_from_slice(&r);
            Decision::Answered
        }
        None => Decision::Ignore,
    }
}

/// [`decide`] for one query on its own, taking the lock for it.
fn decide_one(shared: &Shared, q: &Query, out: &mut Vec<u8>, found: &mut Found) -> Decision {
    match shared.catalog.read() {
        Ok(catalog) => decide(shared, catalog.view(q.place, q.src), q, out, found),
        Err(_) => Decision::Ignore,
    }
}

/// Answers a query without forwarding: what the fuzz test and benchmarks drive.
pub fn answer_locally(view: &View, req: &[u8]) -> Outcome {
    let mut out = Vec::new();
    if wire::answer(view, req, &mut out, Transport::Udp, &mut Found::default()) {
        return Outcome::Reply(out);
    }
    slow::handle(view, req)
}

/// Serves one TCP connection: length-prefixed queries, each answered whole (up to 65,535
/// bytes), until the asker closes it or leaves it idle for [`TCP_IDLE`].
async fn tcp_conn(mut conn: TcpStream, src: IpAddr, place: Place, shared: Arc<Shared>) {
    let (mut out, mut found) = (Vec::new(), Found::default());
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
        out.clear();
        out.extend_from_slice(&[0, 0]);
        let query = Query {
            place: &place,
            src,
            req: &req,
            transport: Transport::Tcp,
        };
        match decide_one(&shared, &query, &mut out, &mut found) {
            Decision::Answered => {}
            Decision::Outsider => return,
            Decision::Ignore => continue,
            Decision::Forward(own, slot) => {
                let reply = shared.upstreams.forward(&req, place.netns(), own).await;
                drop(slot);
                match reply {
                    Some(r) => out.extend_from_slice(&r),
                    None => continue,
                }
            }
        }
        let Ok(len) = u16::try_from(out.len() - 2) else {
            return;
        };
        out[..2].copy_from_slice(&len.to_be_bytes());
        if !matches!(timeout(TCP_IDLE, conn.write_all(&out)).await, Ok(Ok(()))) {
            return;
        }
    }
}

/// How long a server without records stays after its last request before it exits.
const LINGER: Duration = Duration::from_millis(500);

/// How often the server looks for container namespaces that went away without a DEL, and
/// refreshes the host's own addresses.
const NETNS_SWEEP: Duration = Duration::from_secs(2);

/// The running server's state.
pub struct Server {
    paths: DnsPaths,
    shared: Arc<Shared>,
    listeners: Option<Listeners>,
}

impl Server {
    /// A server for the records under `paths`, forwarding to the resolvers of `resolv_conf`.
    pub fn new(paths: DnsPaths, resolv_conf: PathBuf) -> Self {
        Server {
            paths,
            listeners: None,
            shared: Arc::new(Shared {
                catalog: RwLock::new(Catalog::default()),
                upstreams: Upstreams::new(resolv_conf),
                forwards: Limiter::new(MAX_FORWARDS.0, MAX_FORWARDS.1),
                tcp: Limiter::new(MAX_TCP.0, MAX_TCP.1),
            }),
        }
    }

    /// Loads every record (what a restart after a crash does).
    pub fn load_all(&mut self) {
        for p in self.paths.record_files(None) {
            let _ = self.load(&p);
        }
    }

    /// Serves the record at `path` as it now is (gone: no longer). Returns the places it
    /// touched; an error when the file holds no record the server can serve (any record it
    /// held under that path is dropped).
    fn load(&mut self, path: &Path) -> Result<Vec<Place>, String> {
        let (network, cid, ifname) =
            record_key(path).ok_or("not a record file: <network>/<container>:<ifname>.json")?;
        // The file is read before the catalog is locked: answers never wait on the disk.
        let read = DnsPaths::read(path);
        let Ok(mut catalog) = self.shared.catalog.write() else {
            return Err("the server's catalog is poisoned".into());
        };
        let record = match read {
            Ok(Some(r)) if r.network == network && r.file_name() == file_name(path) => r,
            Ok(None) => return Ok(catalog.remove(&network, &cid, &ifname)),
            Ok(Some(_)) => {
                let _ = catalog.remove(&network, &cid, &ifname);
                return Err(
                    "the record's network, container or interface is not its file's".into(),
                );
            }
            Err(e) => {
                let _ = catalog.remove(&network, &cid, &ifname);
                return Err(e.to_string());
            }
        };
        catalog.insert(&record).map_err(|e| {
            let _ = catalog.remove(&network, &cid, &ifname);
            e.to_string()
        })
    }

    /// Opens or closes the listeners of `places` to match the records.
    fn settle(&mut self, places: Vec<Place>) {
        let Some(listeners) = self.listeners.as_mut() else {
            return;
        };
        let mut gateways_changed = false;
        for place in places {
            let wanted = self.shared.catalog.read().is_ok_and(|c| c.wants(&place));
            let open = listeners.is_open(&place);
            if wanted && !open {
                // A gateway the host does not have (macvlan's router) is simply not listened on.
                let _ = listeners.open(&place);
            } else if !wanted && open {
                listeners.close(&place);
            }
            gateways_changed |= matches!(place, Place::Gateway(..)) && wanted != open;
        }
        if gateways_changed {
            self.shared.upstreams.set_exclude(listeners.gateways());
            self.refresh_host();
        }
    }

    fn refresh_host(&self) {
        let host = host_addresses();
        if let Ok(mut c) = self.shared.catalog.write() {
            c.set_host(host);
        }
    }

    /// How many records are loaded.
    pub fn record_count(&self) -> usize {
        self.shared.catalog.read().map_or(0, |c| c.len())
    }

    /// Serves control requests until the last record is gone (and [`LINGER`] passed with no
    /// request). Each connection's request is
    /// read on its own (a client that stalls holds up nobody, and is dropped after
    /// [`CONTROL_WAIT`]); the requests are then handled one at a time.
    pub async fn run(mut self) -> Result<(), DnsError> {
        let sock = self.paths.control();
        let _ = std::fs::remove_file(&sock);
        let control = UnixListener::bind(&sock)
            .map_err(|e| DnsError::io(format!("listen on {}", sock.display()), e))?;
        self.listeners = Some(Listeners::start(
            self.shared.clone(),
            tokio::runtime::Handle::current(),
        )?);
        self.refresh_host();
        let places = self
            .shared
            .catalog
            .read()
            .map(|c| c.places())
            .unwrap_or_default();
        self.settle(places);
        give_back_free_memory();
        let readers = Limiter::new(MAX_CONTROL, MAX_CONTROL);
        let (tx, mut rx) = tokio::sync::mpsc::channel(MAX_CONTROL);
        let mut sweep = tokio::time::interval(NETNS_SWEEP);
        let mut empty_since = Some(tokio::time::Instant::now());
        loop {
            match (self.record_count(), empty_since) {
                (0, Some(since)) if since.elapsed() >= LINGER => break,
                (0, None) => empty_since = Some(tokio::time::Instant::now()),
                (0, Some(_)) => {}
                _ => empty_since = None,
            }
            let linger = async {
                match empty_since {
                    Some(since) => tokio::time::sleep_until(since + LINGER).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = linger => {}
                _ = sweep.tick() => {
                    if let Some(l) = self.listeners.as_mut() {
                        l.sweep_gone_namespaces();
                    }
                    self.refresh_host();
                }
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
                    // Without records, stay a moment after each request: the plugin that
                    // started this server asks next about the record it could not load.
                    if self.record_count() == 0 {
                        empty_since = Some(tokio::time::Instant::now());
                    }
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
                let result = self.load(Path::new(path));
                let reply = match &result {
                    Ok(_) => format!("ok {}\n", self.record_count()),
                    Err(e) => format!("error: {path}: {e}\n"),
                };
                if let Ok(places) = result {
                    self.settle(places);
                }
                reply
            }
            Some(_) => "error: not a record of this server\n".to_string(),
            None if line.trim() == "ping" => format!("ok {}\n", self.record_count()),
            None => "error: unknown request\n".to_string(),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The network, container and interface a record file's path names:
/// `.../<network>/<container>:<ifname>.json` (an interface name has no colon).
fn record_key(path: &Path) -> Option<(String, String, String)> {
    let network = path.parent()?.file_name()?.to_str()?;
    let stem = path.file_name()?.to_str()?.strip_suffix(".json")?;
    let (cid, ifname) = stem.rsplit_once(':')?;
    Some((network.into(), cid.into(), ifname.into()))
}

/// Returns the heap that loading every record at start-up used and freed (files read,
/// parsed records) to the kernel: without it, the allocator keeps that peak.
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
