//! The slow path, on hickory-proto: PTR, names the view knows asked with other types,
//! malformed or unusual messages; and the decision to forward what the view does not know.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::server::catalog::{Found, View};
use crate::server::wire::{EDNS_PAYLOAD, TTL};

/// What to do with a query the fast path did not answer.
pub enum Outcome {
    /// Send this reply.
    Reply(Vec<u8>),
    /// Ask the upstream resolvers.
    Forward,
    /// Ignore it (a response, or bytes too short to answer).
    Drop,
}

/// A reply that carries only a header: ID and opcode of the request, and `rcode`.
pub fn header_only(req: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let head = req.get(..12)?;
    let mut out = head.to_vec();
    out[2] = 0x80 | (head[2] & 0x79);
    out[3] = 0x80 | (rcode & 0x0f);
    out[4..12].fill(0);
    Some(out)
}

/// Handles a query the fast path passed on.
pub fn handle(view: &View, req: &[u8]) -> Outcome {
    let msg = match Message::from_vec(req) {
        Ok(m) => m,
        Err(_) => return header_only(req, 1).map_or(Outcome::Drop, Outcome::Reply), // FORMERR
    };
    if msg.metadata.message_type != MessageType::Query {
        return Outcome::Drop;
    }
    if msg.metadata.op_code != OpCode::Query {
        return reply(&msg, ResponseCode::NotImp, Vec::new());
    }
    // RFC 6891: an EDNS version we do not speak gets BADVERS (with our version, 0).
    if msg.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return reply(&msg, ResponseCode::BADVERS, Vec::new());
    }
    let [q] = msg.queries.as_slice() else {
        return reply(&msg, ResponseCode::FormErr, Vec::new());
    };
    let name = q.name.to_lowercase().to_ascii();
    let key = name.trim_end_matches('.');
    if q.query_type == RecordType::PTR {
        if let Some(target) = reverse(key).and_then(|ip| view.ptr(ip)) {
            let rdata = Name::from_str(&format!("{target}.")).map(|n| RData::PTR(PTR(n)));
            if let Ok(rdata) = rdata {
                return reply(
                    &msg,
                    ResponseCode::NoError,
                    vec![Record::from_rdata(q.name.clone(), TTL, rdata)],
                );
            }
        }
    }
    let mut found = Found::default();
    let v6 = q.query_type == RecordType::AAAA;
    if view.lookup(key, v6, &mut found) {
        let records = match q.query_type {
            RecordType::A | RecordType::AAAA => found
                .addrs
                .iter()
                .map(|ip| match ip {
                    IpAddr::V4(a) => RData::A(A(*a)),
                    IpAddr::V6(a) => RData::AAAA(AAAA(*a)),
                })
                .map(|r| Record::from_rdata(q.name.clone(), TTL, r))
                .collect(),
            _ => Vec::new(),
        };
        return reply(&msg, ResponseCode::NoError, records);
    }
    if view.forward() {
        Outcome::Forward
    } else {
        reply(&msg, ResponseCode::Refused, Vec::new())
    }
}

fn reply(req: &Message, code: ResponseCode, answers: Vec<Record>) -> Outcome {
    let mut resp = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.response_code = code;
    resp.queries = req.queries.clone();
    resp.answers = answers;
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        resp.edns = Some(edns);
    }
    resp.to_vec().map_or(Outcome::Drop, Outcome::Reply)
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`, nibbles `.ip6.arpa`) stands for.
fn reverse(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut parts: Vec<u8> = rest
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        if parts.len() != 4 {
            return None;
        }
        parts.reverse();
        return Some(IpAddr::V4(Ipv4Addr::new(
            parts[0], parts[1], parts[2], parts[3],
        )));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .split('.')
        .map(|p| {
            u8::from_str_radix(p, 16)
                .ok()
                .filter(|n| p.len() == 1 && *n < 16)
        })
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let value = nibbles
        .iter()
        .rev()
        .fold(0u128, |acc, n| (acc << 4) | u128::from(*n));
    Some(IpAddr::V6(Ipv6Addr::from(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edns_version_above_0_gets_badvers() {
        let mut q = Message::new(7, MessageType::Query, OpCode::Query);
        q.add_query(hickory_proto::op::Query::query(
            Name::from_str("web.").unwrap(),
            RecordType::A,
        ));
        let mut edns = Edns::new();
        edns.set_version(1);
        q.edns = Some(edns);
        let catalog = crate::server::catalog::Catalog::default();
        let Outcome::Reply(r) = handle(&View::nobody(&catalog), &q.to_vec().unwrap()) else {
            panic!("no reply");
        };
        let r = Message::from_vec(&r).unwrap();
        // (16 is BADVERS in replies with OPT; hickory names the code BADSIG.)
        assert_eq!(u16::from(r.metadata.response_code), 16);
        assert_eq!(r.edns.map(|e| e.version()), Some(0));
    }

    #[test]
    fn reverse_names_map_back_to_addresses() {
        assert_eq!(
            reverse("2.0.18.172.in-addr.arpa"),
            "172.18.0.2".parse().ok()
        );
        let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(reverse(v6), "fd00::2".parse().ok());
        assert_eq!(reverse("1.2.3.in-addr.arpa"), None);
        assert_eq!(reverse("example.com"), None);
    }
}
