//! A synchronous rtnetlink socket bound to one namespace, with the operations the plugins
//! need. One request at a time; every reply is checked against its sequence number.

use std::io;

use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::NetError;
use crate::netns::NetNs;

/// How often a dump interrupted by a concurrent change is retried.
const DUMP_ATTEMPTS: usize = 5;

/// A network interface as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Hardware address as `aa:bb:cc:dd:ee:ff` (empty when it has none).
    pub mac: String,
    /// MTU.
    pub mtu: Option<u32>,
    /// Whether it is administratively up.
    pub up: bool,
    /// The link kind (`veth`, `bridge`, `macvlan` ...), if any.
    pub kind: Option<String>,
    /// The bridge (or other controller) it is attached to.
    pub master: Option<u32>,
    /// The link it is stacked on or paired with (a veth's peer, in the peer's namespace).
    pub peer: Option<u32>,
}

/// An address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    /// The interface index.
    pub index: u32,
    /// The address with its prefix length.
    pub net: IpNet,
}

/// A route netlink socket bound to one network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// A socket in the calling thread's namespace.
    pub fn new() -> Result<Self, NetError> {
        let fail = |source| NetError::Netlink {
            what: "open a netlink socket".into(),
            source,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        // Lets the kernel filter dumps (addresses of one link) instead of sending them all.
        socket.set_netlink_get_strict_chk(true).map_err(fail)?;
        Ok(Netlink {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// A socket bound to `ns`, usable from any thread.
    pub fn in_ns(ns: &NetNs) -> Result<Self, NetError> {
        ns.run(Netlink::new)?
    }

    /// Sends one request and collects the messages of its reply.
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = flags | NLM_F_REQUEST;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.socket.send(&out, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            self.buf.clear();
            self.socket.recv(&mut self.buf, 0)?;
            let mut offset = 0;
            while offset < self.buf.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                offset += (len + 3) & !3;
                if len == 0 {
                    break;
                }
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                // A dump that a concurrent change interrupted is read to its end (so the
                // socket can dump again) and then reported, for the caller to retry.
                interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
                match msg.payload {
                    NetlinkPayload::Done(_) if interrupted => {
                        return Err(io::Error::from_raw_os_error(4 /* EINTR */));
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            None => Ok(replies),
                        }
                    }
                    NetlinkPayload::InnerMessage(m) => {
                        replies.push(m);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// A dump request, retried when a concurrent change interrupted it.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        let mut last = None;
        for _ in 0..DUMP_ATTEMPTS {
            match self.request(msg.clone(), NLM_F_DUMP) {
                Err(e) if e.raw_os_error() == Some(4) => last = Some(e),
                other => {
                    return other.map_err(|source| NetError::Netlink {
                        what: what.into(),
                        source,
                    })
                }
            }
        }
        Err(NetError::Netlink {
            what: what.into(),
            source: last.unwrap_or_else(|| io::Error::from_raw_os_error(4)),
        })
    }

    /// Every link in the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, NetError> {
        let replies = self.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            "list links",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(&l)),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, if there is one.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg, || format!("look up link {name}"))
    }

    /// The link with `index`, if there is one.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(msg, || format!("look up link #{index}"))
    }

    fn get_link(
        &mut self,
        msg: LinkMessage,
        what: impl FnOnce() -> String,
    ) -> Result<Option<Link>, NetError> {
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(19 /* ENODEV */) => Ok(None),
            Err(source) => Err(NetError::Netlink {
                what: what(),
                source,
            }),
        }
    }

    /// Brings the link with `index` up or down.
    pub fn set_up(&mut self, index: u32, up: bool) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .map(drop)
            .map_err(|source| NetError::Netlink {
                what: format!("set link #{index} {}", if up { "up" } else { "down" }),
                source,
            })
    }

    /// The addresses in the namespace, of one link when `index` is given.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Addr>, NetError> {
        let mut req = AddressMessage::default();
        req.header.index = index.unwrap_or(0);
        let replies = self.dump(RouteNetlinkMessage::GetAddress(req), "list addresses")?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => addr_from(&a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }
}

fn link_from(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        mac: String::new(),
        mtu: None,
        up: l.header.flags.contains(LinkFlags::Up),
        kind: None,
        master: None,
        peer: None,
    };
    for attr in &l.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = format_mac(a),
            LinkAttribute::Mtu(m) => link.mtu = Some(*m),
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::Link(p) => link.peer = Some(*p),
            LinkAttribute::LinkInfo(infos) => {
                link.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    link
}

fn addr_from(a: &AddressMessage) -> Option<Addr> {
    let ip = a
        .attributes
        .iter()
        .find_map(|at| match at {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            a.attributes.iter().find_map(|at| match at {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })?;
    let net = IpNet::new(ip, a.header.prefix_len).ok()?;
    Some(Addr {
        index: a.header.index,
        net,
    })
}

/// Formats a hardware address as lowercase colon-separated hex.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
