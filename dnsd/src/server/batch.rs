//! Datagrams in batches: `recvmmsg` reads up to [`BATCH`] queries in one system call and
//! `sendmmsg` sends their answers in one (one more per UDP GSO segment size), which under
//! load is most of what a query costs. The headers are nix's, made once per serving thread
//! and reused for every batch.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;

use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, sendmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrLike,
    SockaddrStorage,
};

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// The longest query read whole; a longer one arrives cut and is answered FORMERR.
pub const QUERY_MAX: usize = 2048;

/// Queries read by one `recvmmsg`, with who sent each. It holds raw message headers, so
/// each serving thread makes its own.
pub struct Inbox {
    bytes: Box<[u8]>,
    lens: [usize; BATCH],
    from: [Option<SockaddrStorage>; BATCH],
    count: usize,
    headers: MultiHeaders<SockaddrStorage>,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            bytes: vec![0; BATCH * QUERY_MAX].into_boxed_slice(),
            lens: [0; BATCH],
            from: [None; BATCH],
            count: 0,
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

impl Inbox {
    /// Reads what is waiting on `fd` (non-blocking): how many queries, 0 when none.
    pub fn recv(&mut self, fd: RawFd) -> std::io::Result<usize> {
        self.count = 0;
        let mut chunks = self.bytes.chunks_exact_mut(QUERY_MAX);
        let mut slices: [[IoSliceMut; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let got = recvmmsg(
            fd,
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        );
        let messages = match got {
            Ok(m) => m,
            Err(Errno::EAGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        for (i, m) in messages.take(BATCH).enumerate() {
            self.lens[i] = m.bytes.min(QUERY_MAX);
            self.from[i] = m.address;
            self.count = i + 1;
        }
        Ok(self.count)
    }

    /// The `i`th query and its sender's address (None for an address that is neither
    /// IPv4 nor IPv6).
    pub fn get(&self, i: usize) -> (&[u8], Option<IpAddr>) {
        if i >= self.count {
            return (&[], None);
        }
        let at = i * QUERY_MAX;
        let bytes = self.bytes.get(at..at + self.lens[i]).unwrap_or_default();
        (bytes, self.peer(i).map(|a| a.ip()))
    }

    /// The `i`th query's sender, address and port.
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        let from = self.from.get(i).filter(|_| i < self.count)?.as_ref()?;
        if let Some(v4) = from.as_sockaddr_in() {
            return Some(SocketAddr::from(*v4));
        }
        from.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
    }
}

/// Answers to the queries of an [`Inbox`], back to back in one buffer.
pub struct Outbox {
    /// The answers' bytes: append one, then [`Outbox::push`] it.
    pub bytes: Vec<u8>,
    /// For each answer: its query's index, where it starts, how long it is.
    spans: Vec<(usize, usize, usize)>,
    /// Headers for messages of one datagram each.
    plain: MultiHeaders<SockaddrStorage>,
    /// Headers for UDP GSO messages, with room for their segment size.
    gso: MultiHeaders<SockaddrStorage>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            bytes: Vec::new(),
            spans: Vec::new(),
            plain: MultiHeaders::preallocate(BATCH, None),
            gso: MultiHeaders::preallocate(BATCH, Some(cmsg_space!(u16))),
        }
    }
}

impl Outbox {
    /// Empties it for the next batch (keeping its memory).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }

    /// Records that `bytes[start..]` answers query `query`.
    pub fn push(&mut self, query: usize, start: usize) {
        self.spans
            .push((query, start, self.bytes.len().saturating_sub(start)));
    }

    /// Sends every answer to its asker on `fd`; what the socket cannot take now is dropped
    /// (the asker retries, as over any UDP path). Answers of one size to one asker (a
    /// resolver asking many names at once) leave as one UDP GSO message: one route lookup
    /// and one trip through the bridge for all of them, split into datagrams on arrival.
    pub fn send(&mut self, fd: RawFd, inbox: &Inbox) {
        let total = self.bytes.len();
        self.spans
            .retain(|&(q, start, len)| q < inbox.count && start + len <= total);
        self.spans.truncate(BATCH);
        let grouping = Grouping::of(&self.spans, inbox);
        let (order, groups) = grouping.parts();
        let datagrams: Vec<&[u8]> = order
            .iter()
            .map(|&j| {
                let (_, start, len) = self.spans[j];
                self.bytes.get(start..start + len).unwrap_or_default()
            })
            .collect();
        let messages: Vec<Message> = groups
            .iter()
            .map(|&(first, count)| {
                let (q, _, len) = self.spans[order[first]];
                Message {
                    datagrams: datagrams.get(first..first + count).unwrap_or_default(),
                    to: inbox.from.get(q).copied().flatten(),
                    size: len,
                }
            })
            .collect();
        let (singles, gso): (Vec<&Message>, Vec<&Message>) =
            messages.iter().partition(|m| m.datagrams.len() == 1);
        send_all(fd, &mut self.plain, &singles, None);
        let mut sizes: Vec<usize> = gso.iter().map(|m| m.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let of_size: Vec<&Message> = gso.iter().copied().filter(|m| m.size == size).collect();
            let segment = u16::try_from(size).unwrap_or(u16::MAX);
            send_all(fd, &mut self.gso, &of_size, Some(segment));
        }
    }
}

/// One message to send: its datagrams, its asker, the size of each datagram.
struct Message<'a> {
    datagrams: &'a [&'a [u8]],
    to: Option<SockaddrStorage>,
    size: usize,
}

/// Sends `messages` with as few `sendmmsg` calls as the socket allows; with `segment`,
/// each is a UDP GSO message cut into datagrams of that size, and one the path cannot take
/// leaves datagram by datagram instead.
fn send_all(
    fd: RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    messages: &[&Message],
    segment: Option<u16>,
) {
    let size = segment.unwrap_or(0);
    let gso = [ControlMessage::UdpGsoSegments(&size)];
    let cmsgs: &[ControlMessage] = if segment.is_some() { &gso } else { &[] };
    let mut sent = 0;
    while let Some(rest) = messages.get(sent..).filter(|r| !r.is_empty()) {
        let iovs: Vec<Vec<IoSlice>> = rest
            .iter()
            .map(|m| m.datagrams.iter().map(|d| IoSlice::new(d)).collect())
            .collect();
        let addrs: Vec<Option<SockaddrStorage>> = rest.iter().map(|m| m.to).collect();
        let outcome = sendmmsg(
            fd,
            &mut *headers,
            iovs.iter(),
            addrs,
            cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map(Iterator::count);
        match outcome {
            Ok(n) if n > 0 => sent += n,
            Err(Errno::EAGAIN) => return,
            // A GSO message the path cannot take: its answers one by one.
            Err(_) if segment.is_some() => {
                for d in &iovs[0] {
                    let one = std::slice::from_ref(d);
                    let _ = sendmsg(fd, one, &[], MsgFlags::MSG_DONTWAIT, rest[0].to.as_ref());
                }
                sent += 1;
            }
            // One answer the kernel refuses (its asker unreachable): skip it.
            _ => sent += 1,
        }
    }
}

/// Answers grouped by asker and size, each group in the place of its first answer: `order`
/// lists the answers group by group, `groups` each group's start in it and length.
struct Grouping {
    order: [usize; BATCH],
    n_order: usize,
    groups: [(usize, usize); BATCH],
    n_groups: usize,
}

impl Grouping {
    fn of(spans: &[(usize, usize, usize)], inbox: &Inbox) -> Self {
        let mut g = Grouping {
            order: [0; BATCH],
            n_order: 0,
            groups: [(0, 0); BATCH],
            n_groups: 0,
        };
        let mut placed = [false; BATCH];
        for i in 0..spans.len() {
            if placed[i] {
                continue;
            }
            let first = g.n_order;
            for j in i..spans.len() {
                if !placed[j]
                    && spans[j].2 == spans[i].2
                    && same_asker(inbox, spans[i].0, spans[j].0)
                {
                    placed[j] = true;
                    g.order[g.n_order] = j;
                    g.n_order += 1;
                }
            }
            // The kernel takes at most 64 segments of one GSO message.
            for at in (first..g.n_order).step_by(GSO_MAX) {
                g.groups[g.n_groups] = (at, (g.n_order - at).min(GSO_MAX));
                g.n_groups += 1;
            }
        }
        g
    }

    fn parts(&self) -> (&[usize], &[(usize, usize)]) {
        (&self.order[..self.n_order], &self.groups[..self.n_groups])
    }
}

/// Segments of one UDP GSO message the kernel takes at most.
const GSO_MAX: usize = 64;

/// Whether queries `x` and `y` of `inbox` came from the same address and port.
fn same_asker(inbox: &Inbox, x: usize, y: usize) -> bool {
    match (inbox.from.get(x), inbox.from.get(y)) {
        (Some(Some(a)), Some(Some(b))) => a.len() == b.len() && a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Reads `count` queries from local askers on `server` in batches and answers each with
    /// `prefix` and the query.
    fn answer_all(server: &std::net::UdpSocket, count: usize, prefix: &[u8]) {
        let (mut inbox, mut outbox) = (Inbox::default(), Outbox::default());
        let mut got = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got < count && std::time::Instant::now() < deadline {
            let n = inbox.recv(server.as_raw_fd()).unwrap();
            outbox.clear();
            for i in 0..n {
                let (q, from) = inbox.get(i);
                assert_eq!(from, Some("127.0.0.1".parse().unwrap()));
                let start = outbox.bytes.len();
                outbox.bytes.extend_from_slice(prefix);
                outbox.bytes.extend_from_slice(q);
                outbox.push(i, start);
            }
            outbox.send(server.as_raw_fd(), &inbox);
            got += n;
        }
    }

    #[test]
    fn a_batch_of_queries_gets_each_its_own_answer() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let at = server.local_addr().unwrap();
        let clients: Vec<_> = (0..5)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, c) in clients.iter().enumerate() {
            c.send_to(format!("query {i}").as_bytes(), at).unwrap();
        }
        answer_all(&server, 5, b"answer to ");
        for (i, c) in clients.iter().enumerate() {
            let mut buf = [0u8; 64];
            c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let n = c.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], format!("answer to query {i}").as_bytes());
        }
    }

    #[test]
    fn answers_of_one_size_to_one_asker_arrive_as_separate_datagrams() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        for i in 0..6 {
            client
                .send_to(format!("q{i}").as_bytes(), server.local_addr().unwrap())
                .unwrap();
        }
        answer_all(&server, 6, b"answer ");
        for i in 0..6 {
            let mut buf = [0u8; 64];
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(
                &buf[..n],
                format!("answer q{i}").as_bytes(),
                "one datagram each, in order"
            );
        }
    }
}
