//! Forwarding to the host's resolvers: at most three from resolv.conf (re-read when it
//! changes, never one of our own addresses), failing over on timeout, SERVFAIL or REFUSED,
//! all within a budget shorter than a client's 5 s timeout; then an upstream's REFUSED as it
//! came (with its question, as Docker relays it), else SERVFAIL, never silence.
//!
//! A query that came from inside a container leaves from that container's namespace, so it
//! only ever uses interfaces and routes the container could use itself; only a loopback
//! upstream (a host-local resolver such as 127.0.0.53) is asked from the host.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use netctl_net::NetNs;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;

use crate::server::slow::header_only;

/// The whole budget for one forwarded query.
pub const BUDGET: Duration = Duration::from_millis(3600);
/// How long one upstream gets.
pub const PER_TRY: Duration = Duration::from_millis(1200);

/// The upstream resolvers.
pub struct Upstreams {
    path: PathBuf,
    exclude: Mutex<Vec<IpAddr>>,
    cache: Mutex<(Option<SystemTime>, Vec<SocketAddr>)>,
    ids: RandomState,
}

impl Upstreams {
    /// Upstreams from `resolv_conf`.
    pub fn new(resolv_conf: PathBuf) -> Self {
        Upstreams {
            path: resolv_conf,
            exclude: Mutex::new(Vec::new()),
            cache: Mutex::new((None, Vec::new())),
            ids: RandomState::new(),
        }
    }

    /// Our own listening addresses, never used as upstreams.
    pub fn set_exclude(&self, ours: Vec<IpAddr>) {
        if let Ok(mut e) = self.exclude.lock() {
            *e = ours;
        }
        if let Ok(mut c) = self.cache.lock() {
            c.0 = None;
        }
    }

    /// The current upstreams, re-reading resolv.conf when it changed.
    pub fn current(&self) -> Vec<SocketAddr> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let Ok(mut cache) = self.cache.lock() else {
            return Vec::new();
        };
        if cache.0.is_none() || cache.0 != mtime {
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            let exclude = self.exclude.lock().map(|e| e.clone()).unwrap_or_default();
            *cache = (mtime, parse_resolv_conf(&text, &exclude));
        }
        cache.1.clone()
    }

    /// Forwards `req`, from inside `netns` when given, to the asker's `own` upstreams, else
    /// the host's, and returns the reply to send (when every upstream failed: the last
    /// REFUSED one relayed, else SERVFAIL).
    pub async fn forward(
        &self,
        req: &[u8],
        netns: Option<&Path>,
        own: Vec<SocketAddr>,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + BUDGET;
        let upstreams = if own.is_empty() { self.current() } else { own };
        let mut refused = None;
        for upstream in upstreams {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let from = netns.filter(|_| !upstream.ip().is_loopback());
            if let Some(reply) = self.ask(upstream, from, req, left.min(PER_TRY)).await {
                match reply.get(3).map_or(2, |b| b & 0x0f) {
                    2 => {}
                    5 => refused = Some(reply),
                    _ => return Some(reply),
                }
            }
        }
        refused.or_else(|| header_only(req, 2))
    }

    async fn ask(
        &self,
        upstream: SocketAddr,
        netns: Option<&Path>,
        req: &[u8],
        wait: Duration,
    ) -> Option<Vec<u8>> {
        let local: SocketAddr = if upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let std_sock = match netns {
            None => std::net::UdpSocket::bind(local).ok()?,
            Some(path) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || {
                    NetNs::open(&path)
                        .ok()?
                        .run(|| std::net::UdpSocket::bind(local).ok())
                        .ok()?
                })
                .await
                .ok()??
            }
        };
        std_sock.set_nonblocking(true).ok()?;
        let sock = UdpSocket::from_std(std_sock).ok()?;
        sock.connect(upstream).await.ok()?;
        let id = (self.ids.hash_one(Instant::now()) as u16).to_be_bytes();
        let mut out = req.to_vec();
        out.get_mut(..2)?.copy_from_slice(&id);
        sock.send(&out).await.ok()?;
        // As large as the asker said it takes (the upstream answers within that).
        let cap = crate::server::wire::parse(req)
            .and_then(|q| q.edns)
            .map_or(4096, |e| usize::from(e.max(512)));
        let mut buf = vec![0u8; cap];
        let got = tokio::time::timeout(wait, async {
            loop {
                let n = sock.recv(&mut buf).await.ok()?;
                if n >= 12 && buf[..2] == id {
                    return Some(n);
                }
            }
        })
        .await
        .ok()??;
        buf.truncate(got);
        buf[..2].copy_from_slice(req.get(..2)?);
        Some(buf)
    }
}

/// The first three `nameserver` lines, without our own addresses.
pub fn parse_resolv_conf(text: &str, exclude: &[IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .filter(|ip| !exclude.contains(ip) && *ip != IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)))
        .take(3)
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_gives_at_most_three_upstreams_and_never_ourselves() {
        let text = "# comment\nsearch example\nnameserver 127.0.0.11\nnameserver 10.0.0.1\nnameserver 172.18.0.1\nnameserver fe80::1%eth0\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        let got = parse_resolv_conf(text, &["172.18.0.1".parse().unwrap()]);
        let want: Vec<SocketAddr> = ["10.0.0.1:53", "[fe80::1]:53", "10.0.0.2:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
    }
}
