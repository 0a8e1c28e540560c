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
    /// (the asker retries, as over any UDP path).
    pub fn send(&mut self, fd: RawFd, inbox: &mut Inbox) {
        let m = self.spans.len().min(BATCH);
        // SAFETY: plain C structs; zeroed is valid.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let base = self.bytes.as_mut_ptr();
        for (k, &(q, start, len)) in self.spans.iter().take(m).enumerate() {
            if q >= inbox.count || start + len > self.bytes.len() {
                continue;
            }
            iov[k] = libc::iovec {
                // SAFETY: start + len <= bytes.len(), checked above.
                iov_base: unsafe { base.add(start) }.cast(),
                iov_len: len,
            };
            let h = &mut hdrs[k].msg_hdr;
            h.msg_name = std::ptr::from_mut(&mut inbox.from[q]).cast();
            h.msg_namelen = inbox.from_lens[q];
            h.msg_iov = &mut iov[k];
            h.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < m {
            // SAFETY: headers sent..m point at live buffers of this Outbox and addresses of
            // the Inbox, sized as they say, for the length of the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs[sent..].as_mut_ptr(),
                    (m - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(n) {
                Ok(n) if n > 0 => sent += n,
                _ if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => break,
                // One answer the kernel refuses (its asker unreachable): skip it.
                _ => sent += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

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
        let (mut inbox, mut outbox) = (Inbox::default(), Outbox::default());
        let mut got = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got < 5 && std::time::Instant::now() < deadline {
            let n = inbox.recv(server.as_raw_fd()).unwrap();
            outbox.clear();
            for i in 0..n {
                let (q, from) = inbox.get(i);
                assert_eq!(from, Some("127.0.0.1".parse().unwrap()));
                let start = outbox.bytes.len();
                outbox.bytes.extend_from_slice(b"answer to ");
                outbox.bytes.extend_from_slice(q);
                outbox.push(i, start);
            }
            outbox.send(server.as_raw_fd(), &mut inbox);
            got += n;
        }
        for (i, c) in clients.iter().enumerate() {
            let mut buf = [0u8; 64];
            c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let n = c.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], format!("answer to query {i}").as_bytes());
        }
    }
}
