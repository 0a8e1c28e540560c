//! Datagrams in batches: `recvmmsg` reads up to [`BATCH`] queries in one system call and
//! `sendmmsg` sends their answers in one, which under load is most of what a query costs.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// The longest query read whole; a longer one arrives cut and is answered FORMERR.
pub const QUERY_MAX: usize = 2048;

/// Queries read by one `recvmmsg`, with who sent each.
pub struct Inbox {
    bytes: Box<[u8]>,
    lens: [usize; BATCH],
    from: [libc::sockaddr_storage; BATCH],
    from_lens: [libc::socklen_t; BATCH],
    count: usize,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            bytes: vec![0; BATCH * QUERY_MAX].into_boxed_slice(),
            lens: [0; BATCH],
            // SAFETY: sockaddr_storage is plain bytes; all zeros is a valid value.
            from: unsafe { std::mem::zeroed() },
            from_lens: [0; BATCH],
            count: 0,
        }
    }
}

impl Inbox {
    /// Reads what is waiting on `fd` (non-blocking): how many queries, 0 when none.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: iovec and mmsghdr are plain C structs; zeroed is valid for both.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let base = self.bytes.as_mut_ptr();
        for i in 0..BATCH {
            iov[i] = libc::iovec {
                // SAFETY: i * QUERY_MAX + QUERY_MAX <= bytes.len(), so the buffer is in bounds.
                iov_base: unsafe { base.add(i * QUERY_MAX) }.cast(),
                iov_len: QUERY_MAX,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = std::ptr::from_mut(&mut self.from[i]).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live buffer and address of this Inbox (or the
        // local iovecs), sized as the header says, for the length of the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        self.count = usize::try_from(n).unwrap_or(0).min(BATCH);
        for (i, h) in hdrs.iter().take(self.count).enumerate() {
            self.lens[i] = (h.msg_len as usize).min(QUERY_MAX);
            self.from_lens[i] = h.msg_hdr.msg_namelen;
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
        (&self.bytes[at..at + self.lens[i]], sender(&self.from[i]))
    }

    /// The `i`th query's sender, address and port.
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        if i >= self.count {
            return None;
        }
        peer(&self.from[i])
    }
}

fn sender(s: &libc::sockaddr_storage) -> Option<IpAddr> {
    peer(s).map(|a| a.ip())
}

fn peer(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET); storage is larger
            // and aligned for it.
            let a = unsafe { &*std::ptr::from_ref(s).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6 (family AF_INET6).
            let a = unsafe { &*std::ptr::from_ref(s).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::new(IpAddr::V6(ip), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

/// Answers to the queries of an [`Inbox`], back to back in one buffer.
#[derive(Default)]
pub struct Outbox {
    /// The answers' bytes: append one, then [`Outbox::push`] it.
    pub bytes: Vec<u8>,
    /// For each answer: its query's index, where it starts, how long it is.
    spans: Vec<(usize, usize, usize)>,
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
    pub fn send(&mut self, fd: RawFd, inbox: &mut Inbox) {
        let total = self.bytes.len();
        self.spans
            .retain(|&(q, start, len)| q < inbox.count && start + len <= total);
        self.spans.truncate(BATCH);
        let spans = &self.spans;
        let grouping = Grouping::of(spans, inbox);
        let (order, groups) = grouping.parts();
        // SAFETY: plain C structs; zeroed is valid.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let mut control = [[0u64; 4]; BATCH];
        let base = self.bytes.as_ptr();
        for (k, &j) in order.iter().enumerate() {
            let (_, start, len) = spans[j];
            iov[k] = libc::iovec {
                // SAFETY: start + len <= bytes.len(), checked above.
                iov_base: unsafe { base.add(start) }.cast_mut().cast(),
                iov_len: len,
            };
        }
        for (m, &(first, count)) in groups.iter().enumerate() {
            let (q, _, len) = spans[order[first]];
            let h = &mut hdrs[m].msg_hdr;
            h.msg_name = std::ptr::from_mut(&mut inbox.from[q]).cast();
            h.msg_namelen = inbox.from_lens[q];
            h.msg_iov = &mut iov[first];
            h.msg_iovlen = count;
            if count > 1 {
                segment(h, &mut control[m], len);
            }
        }
        let mut sent = 0;
        while sent < groups.len() {
            // SAFETY: headers sent.. point at live buffers of this Outbox, addresses of the
            // Inbox and control buffers of this frame, sized as they say, for the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs[sent..].as_mut_ptr(),
                    (groups.len() - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(n) {
                Ok(n) if n > 0 => sent += n,
                _ if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => break,
                // A GSO message the path cannot take: its answers one by one.
                _ if groups[sent].1 > 1 => {
                    let (first, count) = groups[sent];
                    for one_iov in &mut iov[first..first + count] {
                        let mut one = hdrs[sent].msg_hdr;
                        one.msg_iov = one_iov;
                        one.msg_iovlen = 1;
                        one.msg_control = std::ptr::null_mut();
                        one.msg_controllen = 0;
                        // SAFETY: as above, one answer.
                        unsafe { libc::sendmsg(fd, &one, libc::MSG_DONTWAIT) };
                    }
                    sent += 1;
                }
                // One answer the kernel refuses (its asker unreachable): skip it.
                _ => sent += 1,
            }
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
/// `UDP_SEGMENT` (linux/udp.h): the size each datagram of a GSO message is cut to.
const UDP_SEGMENT: libc::c_int = 103;

/// Whether queries `x` and `y` of `inbox` came from the same address and port.
fn same_asker(inbox: &Inbox, x: usize, y: usize) -> bool {
    let len = inbox.from_lens[x] as usize;
    if len != inbox.from_lens[y] as usize || len > std::mem::size_of::<libc::sockaddr_storage>() {
        return false;
    }
    // SAFETY: both are sockaddr_storage values; the first `len` bytes are initialised
    // (zeroed at creation, written by the kernel).
    let bytes = |s: &libc::sockaddr_storage| unsafe {
        std::slice::from_raw_parts(std::ptr::from_ref(s).cast::<u8>(), len)
    };
    bytes(&inbox.from[x]) == bytes(&inbox.from[y])
}

/// Asks for `h`'s data to be cut into datagrams of `size` bytes (UDP GSO).
fn segment(h: &mut libc::msghdr, control: &mut [u64; 4], size: usize) {
    // SAFETY: `control` is 32 bytes, 8-aligned: room for one cmsghdr with a u16
    // (CMSG_SPACE(2) is 24 on 64-bit Linux); the header is written through CMSG_FIRSTHDR.
    unsafe {
        h.msg_control = control.as_mut_ptr().cast();
        h.msg_controllen = libc::CMSG_SPACE(2) as usize;
        let c = libc::CMSG_FIRSTHDR(h);
        if c.is_null() {
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            return;
        }
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
        let size = u16::try_from(size).unwrap_or(u16::MAX);
        std::ptr::copy_nonoverlapping(size.to_ne_bytes().as_ptr(), libc::CMSG_DATA(c), 2);
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
            outbox.send(server.as_raw_fd(), &mut inbox);
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
