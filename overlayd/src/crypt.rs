//! Encrypted overlay networks (`-o encrypted`, Docker's `--opt encrypted`). This kernel has
//! neither IPsec ESP nor WireGuard, so each agent runs WireGuard's protocol itself
//! (boringtun's implementation of its Noise handshake and transport) over a TUN device: an
//! encrypted network's VXLAN device sends from this host's tunnel address to the other
//! hosts' tunnel addresses; the kernel routes those packets into the TUN device, where the
//! agent encrypts each for its peer and sends it over UDP; what arrives is decrypted,
//! checked to come from the tunnel address of the peer whose key opened it, and handed back
//! to the kernel, which gives it to the VXLAN device. On the underlay, an encrypted
//! network's frames appear only as WireGuard datagrams.
//!
//! Keys: each host's X25519 key pair is its own (the private key never leaves it, in
//! `<root>/overlay/tunnel.key`); its public key is in its host record in etcd, replaced by a
//! fresh pair every `key_rotation` seconds; WireGuard itself derives new session keys every
//! two minutes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use netctl_overlay_api::{HostRecord, TunnelEnd, TUNNEL_DEVICE, TUNNEL_OVERHEAD, TUNNEL_PORT};
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

/// Room for the largest packet plus WireGuard's overhead.
const BUF: usize = 65_535 + 148;
/// The tunnel socket's send and receive buffers (the kernel caps them at its wmem/rmem_max).
const SOCKET_BUFFER: usize = 4 << 20;
/// How often WireGuard's timers (handshake retries, rekeying, keepalives) are run.
const TICK: Duration = Duration::from_millis(250);

/// This host's end of the tunnels and its peers.
pub struct Tunnel {
    tun: AsyncFd<OwnedFd>,
    udp: UdpSocket,
    /// This host's address inside the tunnels.
    pub addr: Ipv4Addr,
    secret: Mutex<StaticSecret>,
    peers: RwLock<Peers>,
    index: AtomicU32,
}

#[derive(Default)]
struct Peers {
    by_addr: HashMap<Ipv4Addr, Arc<Peer>>,
    by_underlay: HashMap<IpAddr, Arc<Peer>>,
}

struct Peer {
    addr: Ipv4Addr,
    underlay: SocketAddr,
    key: [u8; 32],
    tunn: Mutex<Tunn>,
}

/// A key as the host record carries it: 64 hex digits.
pub fn key_text(key: &PublicKey) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes of a key in [`key_text`]'s form.
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A fresh private key from the kernel's random source.
pub fn fresh_secret() -> Result<StaticSecret> {
    let mut b = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    Ok(StaticSecret::from(b))
}

impl Tunnel {
    /// Makes the TUN device (address `addr`, sized for an underlay of `underlay_mtu`) and the
    /// UDP socket on `advertise`'s tunnel port.
    pub async fn open(
        addr: Ipv4Addr,
        advertise: IpAddr,
        underlay_mtu: u32,
        secret: StaticSecret,
    ) -> Result<Tunnel> {
        let fd = netctl_net::create_tun(TUNNEL_DEVICE)?;
        let mut nl = netctl_net::Netlink::new()?;
        let index = nl.index_of(TUNNEL_DEVICE)?;
        nl.set_mtu(index, underlay_mtu - TUNNEL_OVERHEAD)?;
        let subnet: ipnet::Ipv4Net = netctl_overlay_api::TUNNEL_SUBNET.parse()?;
        nl.add_address(
            index,
            ipnet::Ipv4Net::new(addr, subnet.prefix_len())?.into(),
            true,
        )?;
        nl.no_ipv6_link_local(index)?;
        nl.set_up(index, true)?;
        let udp = UdpSocket::bind(SocketAddr::new(advertise, TUNNEL_PORT))
            .await
            .with_context(|| {
                format!("listen on {advertise}:{TUNNEL_PORT} for the encrypted tunnels")
            })?;
        // Room for a burst: a datagram dropped here is a TCP segment lost inside the tunnel.
        use nix::sys::socket::{setsockopt, sockopt};
        let _ = setsockopt(&udp, sockopt::RcvBuf, &SOCKET_BUFFER);
        let _ = setsockopt(&udp, sockopt::SndBuf, &SOCKET_BUFFER);
        Ok(Tunnel {
            tun: register(fd)?,
            udp,
            addr,
            secret: Mutex::new(secret),
            peers: RwLock::default(),
            index: AtomicU32::new(1),
        })
    }

    /// This host's public key.
    pub fn public(&self) -> Result<PublicKey> {
        let secret = self
            .secret
            .lock()
            .map_err(|_| anyhow!("tunnel key lock poisoned"))?;
        Ok(PublicKey::from(&*secret))
    }

    /// Takes a new private key: every peer's sessions start again with it.
    pub fn rotate(&self, secret: StaticSecret) -> Result<()> {
        let public = PublicKey::from(&secret);
        let peers = self
            .peers
            .read()
            .map_err(|_| anyhow!("tunnel peers lock poisoned"))?;
        for p in peers.by_addr.values() {
            if let Ok(mut t) = p.tunn.lock() {
                t.set_static_private(secret.clone(), public, None);
            }
        }
        *self
            .secret
            .lock()
            .map_err(|_| anyhow!("tunnel key lock poisoned"))? = secret;
        Ok(())
    }

    /// Makes the peers the other hosts with a tunnel end (a peer whose key or address
    /// changed starts afresh; one gone is dropped).
    pub fn set_peers<'a>(&self, hosts: impl Iterator<Item = &'a HostRecord>) -> Result<()> {
        let secret = self
            .secret
            .lock()
            .map_err(|_| anyhow!("tunnel key lock poisoned"))?
            .clone();
        let mut peers = self
            .peers
            .write()
            .map_err(|_| anyhow!("tunnel peers lock poisoned"))?;
        let mut fresh = Peers::default();
        for h in hosts {
            let Some(TunnelEnd { addr, key }) = &h.tunnel else {
                continue;
            };
            let Some(key) = parse_key(key) else { continue };
            if *addr == self.addr {
                continue;
            }
            let underlay = SocketAddr::new(h.addr, TUNNEL_PORT);
            let peer = match peers.by_addr.get(addr) {
                Some(p) if p.key == key && p.underlay == underlay => p.clone(),
                _ => Arc::new(Peer {
                    addr: *addr,
                    underlay,
                    key,
                    tunn: Mutex::new(Tunn::new(
                        secret.clone(),
                        PublicKey::from(key),
                        None,
                        None,
                        self.index.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff,
                        None,
                    )),
                }),
            };
            fresh.by_underlay.insert(h.addr, peer.clone());
            fresh.by_addr.insert(*addr, peer);
        }
        *peers = fresh;
        Ok(())
    }

    fn peer_to(&self, dst: Ipv4Addr) -> Option<Arc<Peer>> {
        self.peers.read().ok()?.by_addr.get(&dst).cloned()
    }

    fn peer_from(&self, src: IpAddr) -> Option<Arc<Peer>> {
        self.peers.read().ok()?.by_underlay.get(&src).cloned()
    }

    fn all_peers(&self) -> Vec<Arc<Peer>> {
        self.peers
            .read()
            .map(|p| p.by_addr.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// The TUN device's descriptor, registered with the runtime's reactor.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd owns its descriptor and always returns the same one, open until
    // the AsyncFd (which owns it) is dropped.
    unsafe { AsyncFd::register(fd) }.map_err(|e| anyhow!("watch the TUN device: {e}"))
}

/// The destination of an IPv4 packet.
fn ipv4_dst(packet: &[u8]) -> Option<Ipv4Addr> {
    let d: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
    (packet.first()? >> 4 == 4).then(|| Ipv4Addr::from(d))
}

/// Forever: packets the kernel routes into the TUN device, encrypted for their peer.
pub async fn outbound(t: Arc<Tunnel>) {
    let mut packet = vec![0u8; BUF];
    let mut out = vec![0u8; BUF];
    loop {
        let Ok(mut ready) = t.tun.readable().await else {
            return;
        };
        let n = match ready
            .try_io(|fd| nix::unistd::read(fd.get_ref(), &mut packet).map_err(std::io::Error::from))
        {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => continue,
        };
        let Some(peer) = packet
            .get(..n)
            .and_then(ipv4_dst)
            .and_then(|d| t.peer_to(d))
        else {
            continue; // no host has that tunnel address
        };
        let sent = match peer.tunn.lock() {
            Ok(mut tunn) => match tunn.encapsulate(&packet[..n], &mut out) {
                TunnResult::WriteToNetwork(p) => p.len(),
                _ => 0, // queued until the handshake completes
            },
            Err(_) => 0,
        };
        if sent > 0 {
            let _ = t.udp.send_to(&out[..sent], peer.underlay).await;
        }
    }
}

/// Forever: datagrams from the peers, decrypted; what a peer's key opened and that comes
/// from that peer's tunnel address goes to the kernel, anything else is dropped.
pub async fn inbound(t: Arc<Tunnel>) {
    let mut datagram = vec![0u8; BUF];
    let mut out = vec![0u8; BUF];
    loop {
        let Ok((n, from)) = t.udp.recv_from(&mut datagram).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(peer) = t.peer_from(from.ip()) else {
            continue;
        };
        let mut input: &[u8] = &datagram[..n];
        loop {
            let step = match peer.tunn.lock() {
                Ok(mut tunn) => match tunn.decapsulate(Some(from.ip()), input, &mut out) {
                    TunnResult::WriteToNetwork(p) => Step::Send(p.len()),
                    TunnResult::WriteToTunnelV4(p, src) if src == peer.addr => {
                        Step::Deliver(p.len())
                    }
                    _ => Step::Done,
                },
                Err(_) => Step::Done,
            };
            match step {
                Step::Send(len) => {
                    let _ = t.udp.send_to(&out[..len], peer.underlay).await;
                    input = &[]; // then what was queued behind the handshake
                }
                Step::Deliver(len) => {
                    // A full device queue drops the packet, as a full NIC would.
                    let _ = nix::unistd::write(t.tun.get_ref(), &out[..len]);
                    break;
                }
                Step::Done => break,
            }
        }
    }
}

/// What one call into the tunnel state asked for.
enum Step {
    Send(usize),
    Deliver(usize),
    Done,
}

/// Forever: WireGuard's timers for every peer (handshake retries, rekeying).
pub async fn timers(t: Arc<Tunnel>) {
    let mut out = vec![0u8; BUF];
    loop {
        tokio::time::sleep(TICK).await;
        for peer in t.all_peers() {
            let len = match peer.tunn.lock() {
                Ok(mut tunn) => match tunn.update_timers(&mut out) {
                    TunnResult::WriteToNetwork(p) => p.len(),
                    _ => 0,
                },
                Err(_) => 0,
            };
            if len > 0 {
                let _ = t.udp.send_to(&out[..len], peer.underlay).await;
            }
        }
    }
}
