//! Published ports on IPv6, as Docker's userland proxy gives them: a `-p 8080:80` (every
//! address) is also published on `[::]:8080` for TCP. The firewall forwards IPv4 to the
//! container; a container of an IPv4-only network cannot be reached by IPv6 that way, so the
//! monitor listens on `[::]:PORT` itself and relays each connection to the container's IPv4
//! address. Where the host has no IPv6 the port is published on IPv4 alone.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use netctl_cni::types::Protocol;

use crate::container::PortBinding;

/// How long a relayed connection may take to reach the container.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The IPv6 twins of the host-wide TCP bindings in `requested`, at the ports `bound` got:
/// each socket bound (IPv6 only) and its binding. A port the host cannot bind on IPv6 is
/// left out.
pub fn bind_v6(requested: &[PortBinding], bound: &[PortBinding]) -> Vec<(OwnedFd, PortBinding)> {
    use rustix::net::{bind, socket_with, sockopt, AddressFamily, SocketFlags, SocketType};
    requested
        .iter()
        .zip(bound)
        .filter(|(r, _)| r.host_ip.is_none() && r.protocol == Protocol::Tcp)
        .filter_map(|(_, b)| {
            let fd = socket_with(
                AddressFamily::INET6,
                SocketType::STREAM,
                SocketFlags::CLOEXEC,
                None,
            )
            .ok()?;
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

/// Listens on each socket and relays every connection to `target`'s IPv4 address at the
/// binding's container port, for as long as the monitor lives.
pub fn serve(sockets: Vec<(OwnedFd, PortBinding)>, target: IpAddr) {
    for (fd, binding) in sockets {
        if rustix::net::listen(&fd, 128).is_err() {
            continue;
        }
        let listener = TcpListener::from(fd);
        let to = SocketAddr::new(target, binding.container_port);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                std::thread::spawn(move || relay(client, to));
            }
        });
    }
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
