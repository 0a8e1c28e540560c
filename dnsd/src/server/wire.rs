//! The fast path: A and AAAA questions for names the asker's view holds, answered straight
//! from the request bytes (ID, flags and question copied, answers appended in rotated order)
//! without decoding the whole message. Anything unusual returns `false` and takes the slow
//! path.

use crate::server::catalog::{Found, View};

/// TTL of container answers: Docker's 600 s (its embedded server's), which clients and
/// caches inside containers expect.
pub const TTL: u32 = 600;
/// The UDP payload size we announce with EDNS.
pub const EDNS_PAYLOAD: u16 = 1232;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// A parsed simple query.
pub struct Question {
    /// The name, lowercase, no trailing dot, in a fixed buffer (no allocation per query).
    name: [u8; 255],
    name_len: usize,
    /// QTYPE.
    pub qtype: u16,
    /// Where the question section ends.
    pub end: usize,
    /// The EDNS payload size, if the query had an OPT record.
    pub edns: Option<u16>,
}

impl Question {
    /// The name, lowercase, without the trailing dot.
    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.name[..self.name_len]).unwrap_or("")
    }
}

/// Parses a standard query with one question and at most an OPT record; None otherwise.
pub fn parse(req: &[u8]) -> Option<Question> {
    if req.len() < 12 || req[2] & 0xf8 != 0 {
        return None; // a response, or not a standard query
    }
    let (qd, an, ns, ar) = (
        u16_at(req, 4)?,
        u16_at(req, 6)?,
        u16_at(req, 8)?,
        u16_at(req, 10)?,
    );
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut i = 12;
    let (mut name, mut n) = ([0u8; 255], 0usize);
    loop {
        let len = usize::from(*req.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 || n + len + 1 > 255 {
            return None;
        }
        let label = req.get(i..i + len)?;
        if n > 0 {
            name[n] = b'.';
            n += 1;
        }
        for &c in label {
            if c == b'.' || !c.is_ascii_graphic() {
                return None;
            }
            name[n] = c.to_ascii_lowercase();
            n += 1;
        }
        i += len;
    }
    let qtype = u16_at(req, i)?;
    if u16_at(req, i + 2)? != 1 {
        return None; // not class IN
    }
    let end = i + 4;
    let edns = if ar == 1 {
        Some(parse_opt(req, end)?)
    } else {
        None
    };
    if ar == 0 && end != req.len() {
        return None;
    }
    Some(Question {
        name,
        name_len: n,
        qtype,
        end,
        edns,
    })
}

/// An OPT record at `at` (root name, version 0), spanning the rest of the message.
fn parse_opt(req: &[u8], at: usize) -> Option<u16> {
    if *req.get(at)? != 0 || u16_at(req, at + 1)? != TYPE_OPT || *req.get(at + 6)? != 0 {
        return None;
    }
    let rdlen = usize::from(u16_at(req, at + 9)?);
    (at + 11 + rdlen == req.len()).then(|| u16_at(req, at + 3).unwrap_or(512))
}

/// How a query arrived, which bounds the answer's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: at most the asker's EDNS payload size (512 without EDNS); more is truncated (TC).
    Udp,
    /// TCP: the whole answer, up to 65,535 bytes.
    Tcp,
}

impl Transport {
    /// The largest answer for a query that announced `edns` (its EDNS payload size).
    fn limit(self, edns: Option<u16>) -> usize {
        match self {
            Transport::Udp => usize::from(edns.unwrap_or(512).clamp(512, 4096)),
            Transport::Tcp => usize::from(u16::MAX),
        }
    }
}

/// Appends the answer to an A/AAAA query for a name `view` knows to `out`; false (and
/// `out` untouched) when the query is not one the fast path answers. `found` is scratch
/// space the caller keeps, so that answering allocates nothing.
pub fn answer(
    view: &View,
    req: &[u8],
    out: &mut Vec<u8>,
    transport: Transport,
    found: &mut Found,
) -> bool {
    let Some(q) = parse(req) else { return false };
    if q.qtype != TYPE_A && q.qtype != TYPE_AAAA {
        return false;
    }
    let v6 = q.qtype == TYPE_AAAA;
    if !view.lookup(q.name(), v6, found) {
        return false;
    }
    let count = found.addrs.len();
    let rdlen = if v6 { 16 } else { 4 };
    let limit = transport.limit(q.edns);
    let opt_len = if q.edns.is_some() { 11 } else { 0 };
    let room = limit.saturating_sub(q.end + opt_len) / (12 + rdlen);
    let n = count.min(room);
    out.extend_from_slice(&req[..2]);
    let truncated = if n < count { 0x02 } else { 0 };
    // QR, TC when cut, RD as asked; no AA (Docker's server sets none).
    out.push(0x80 | truncated | (req[2] & 0x01));
    out.push(0x80);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, u8::from(q.edns.is_some())]);
    out.extend_from_slice(&req[12..q.end]);
    let start = if count > 0 {
        found.turn.unwrap_or(0) % count
    } else {
        0
    };
    for k in 0..n {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(rdlen as u16).to_be_bytes());
        match found.addrs[(start + k) % count] {
            std::net::IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            std::net::IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    if q.edns.is_some() {
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::catalog::{Catalog, Place};
    use netctl_dnsrecords::Record;
    use std::path::PathBuf;

    /// A query as dig 9.18 sends it: RD, AD, EDNS with a client cookie.
    fn dig_query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8]);
        q.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        q
    }

    fn catalog() -> Catalog {
        let rec = |id: &str, ip: &str| Record {
            network: "lan".into(),
            container_id: id.into(),
            ifname: "eth0".into(),
            name: Some(id.into()),
            aliases: vec!["web".into()],
            ips: vec![ip.parse().unwrap()],
            netns: Some(PathBuf::from(format!("/ns/{id}"))),
            ..Default::default()
        };
        let mut c = Catalog::default();
        c.insert(&rec("ma", "10.0.0.2")).unwrap();
        c.insert(&rec("mb", "10.0.0.3")).unwrap();
        c
    }

    fn ask(c: &Catalog, name: &str) -> Option<Vec<u8>> {
        let place = Place::Netns(PathBuf::from("/ns/ma"));
        let view = c.view(&place, "127.0.0.1".parse().unwrap()).unwrap();
        let mut out = Vec::new();
        let q = dig_query(name, TYPE_A);
        answer(&view, &q, &mut out, Transport::Udp, &mut Found::default()).then_some(out)
    }

    #[test]
    fn dig_queries_for_every_name_take_the_fast_path() {
        let c = catalog();
        for name in ["ma", "mb", "web", "MB.lan", "web.LAN"] {
            let out = ask(&c, name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(&out[..2], &[0xab, 0xcd], "ID copied");
            assert_eq!(out[3] & 0x0f, 0, "NOERROR");
        }
        assert!(ask(&c, "mb.other").is_none(), "another network's name");
        assert!(ask(&c, ".lan").is_none());
    }

    #[test]
    fn the_alias_answer_rotates_and_carries_every_address() {
        let c = catalog();
        let (a, b) = (ask(&c, "web").unwrap(), ask(&c, "web").unwrap());
        assert_eq!(u16_at(&a, 6), Some(2));
        assert_ne!(a, b, "the order rotated");
    }
}
