//! Published ports on IPv6, as Docker's userland proxy gives them: a `-p 8080:80` (every
//! address) is also published on `[::]:8080`, for TCP and UDP. The firewall forwards IPv4
//! to the container; a container of an IPv4-only network cannot be reached by IPv6 that
//! way, so the monitor listens on `[::]:PORT` itself and relays each connection (each UDP
//! client's datagrams) to the container's IPv4 address. Where the host has no IPv6 the
//! port is published on IPv4 alone.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netctl_cni::types::Protocol;

use crate::container::PortBinding;

/// How long a relayed connection may take to reach the container.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A UDP client's flow ends when the container has not answered it for this long (Docker's
/// proxy waits as long).
const UDP_IDLE: Duration = Duration::from_secs(90);
/// UDP clients relayed at once per port; datagrams of further ones are dropped, as a full
/// connection-tracking table would.
const UDP_FLOWS: usize = 1024;

/// The IPv6 twins of the host-wide bindings in `requested`, at the ports `bound` got: each
/// socket bound (IPv6 only) and its binding. A port the host cannot bind on IPv6 is left
/// out.
pub fn bind_v6(requested: &[PortBinding], bound: &[PortBinding]) -> Vec<(OwnedFd, PortBinding)> {
    use rustix::net::{bind, socket_with, sockopt, AddressFamily, SocketFlags, SocketType};
    requested
        .iter()
        .zip(bound)
        .filter(|(r, _)| r.host_ip.is_none())
        .filter_map(|(_, b)| {
            let kind = match b.protocol {
                Protocol::Udp => SocketType::DGRAM,
                _ => SocketType::STREAM,
            };
            let fd = socket_with(AddressFamily::INET6, kind, SocketFlags::CLOEXEC, None).ok()?;
            sockopt::set_ipv6_v6only(&fd, true).ok()?;
            let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), b.host_port);
            bind(&fd, &addr).ok()?;
            let twin = PortBinding {
                host_ip: Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                ..*b
            };
            Some((fd, twin))
        })
        .collect()
}

/// Listens on each socket and relays every connection (every UDP client's datagrams) to
/// `target`'s IPv4 address at the binding's container port, for as long as the monitor
/// lives.
pub fn serve(sockets: Vec<(OwnedFd, PortBinding)>, target: IpAddr) {
    for (fd, binding) in sockets {
        let to = SocketAddr::new(target, binding.container_port);
        if binding.protocol == Protocol::Udp {
            let socket = UdpSocket::from(fd);
            std::thread::spawn(move || relay_datagrams(&socket, to));
            continue;
        }
        if rustix::net::listen(&fd, 128).is_err() {
            continue;
        }
        let listener = TcpListener::from(fd);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                std::thread::spawn(move || relay(client, to));
            }
        });
    }
}

/// The UDP clients being relayed, each by the socket its datagrams go to the container on.
type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

/// Relays each client's datagrams from `listener` to `to` on a socket of the client's own,
/// and the container's answers on it back to the client.
fn relay_datagrams(listener: &UdpSocket, to: SocketAddr) {
    let flows: Flows = Arc::default();
    let mut buf = vec![0u8; 65_535];
    while let Ok((n, client)) = listener.recv_from(&mut buf) {
        let Some(upstream) = flow(&flows, listener, client, to) else {
            continue;
        };
        let _ = upstream.send(buf.get(..n).unwrap_or_default());
    }
}

/// The client's flow, made (with its answering thread) on its first datagram; none when
/// the table is full or no socket can be made.
fn flow(
    flows: &Flows,
    listener: &UdpSocket,
    client: SocketAddr,
    to: SocketAddr,
) -> Option<Arc<UdpSocket>> {
    let mut table = flows.lock().ok()?;
    if let Some(upstream) = table.get(&client) {
        return Some(upstream.clone());
    }
    if table.len() >= UDP_FLOWS {
        return None;
    }
    let upstream = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).ok()?;
    upstream.connect(to).ok()?;
    upstream.set_read_timeout(Some(UDP_IDLE)).ok()?;
    let upstream = Arc::new(upstream);
    let (back, answers, table_ref) = (listener.try_clone().ok()?, upstream.clone(), flows.clone());
    table.insert(client, upstream.clone());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_535];
        while let Ok(n) = answers.recv(&mut buf) {
            if back
                .send_to(buf.get(..n).unwrap_or_default(), client)
                .is_err()
            {
                break;
            }
        }
        if let Ok(mut table) = table_ref.lock() {
            table.remove(&client);
        }
    });
    Some(upstream)
}

/// Copies both ways between the client and the container until both sides are done.
fn relay(client: TcpStream, to: SocketAddr) {
    let Ok(upstream) = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT) else {
        return;
    };
    let (Ok(client_in), Ok(upstream_in)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || pump(upstream_in, client));
    pump(client_in, upstream);
    let _ = back.join();
}

/// Copies `from` to `to`, then ends `to`'s writing side.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
