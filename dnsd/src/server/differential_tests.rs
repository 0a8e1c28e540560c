//! A differential test of the fast path ([`super::wire`]) against hickory: for generated
//! record sets and queries (names known and unknown in random case, A/AAAA/other types,
//! RD, EDNS payload sizes, single-byte corruptions), whenever the fast path answers,
//! hickory parses both the query and the answer, and the answer says what the slow path
//! (hickory end to end) says: same header, question, EDNS and answers (as a set; the fast
//! path rotates them), or a TC answer within the size limit that holds a subset of them.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use netctl_dnsrecords::Record;
use proptest::prelude::*;

use super::catalog::{Catalog, Found, Place, View};
use super::slow::{handle, Outcome};
use super::wire::{answer, Transport};

const NAMES: [&str; 5] = ["web", "db", "api", "x-1", "Cache"];

/// One container of the generated network: its name, aliases and addresses.
#[derive(Debug, Clone)]
struct Ctr {
    name: usize,
    aliases: Vec<usize>,
    v6: bool,
}

#[derive(Debug, Clone)]
struct Ask {
    name: String,
    qtype: u16,
    rd: bool,
    edns: Option<u16>,
    tcp: bool,
    corrupt: Option<(usize, u8)>,
}

fn ctrs() -> impl Strategy<Value = Vec<Ctr>> {
    prop::collection::vec(
        (
            0..NAMES.len(),
            prop::collection::vec(0..NAMES.len(), 0..3),
            any::<bool>(),
        )
            .prop_map(|(name, aliases, v6)| Ctr { name, aliases, v6 }),
        1..200,
    )
}

fn asks() -> impl Strategy<Value = Ask> {
    let name = prop_oneof![
        (0..NAMES.len()).prop_map(|i| NAMES[i].to_string()),
        (0..NAMES.len()).prop_map(|i| format!("{}.lan", NAMES[i])),
        Just("unknown.example".to_string()),
        (2u8..90).prop_map(|k| format!("{k}.0.0.10.in-addr.arpa")),
    ];
    let name = (name, any::<u64>()).prop_map(|(n, case)| {
        n.chars()
            .enumerate()
            .map(|(i, c)| {
                if case >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    });
    let qtype = prop::sample::select(vec![1u16, 28, 12, 15, 16, 255]);
    let edns = prop_oneof![Just(None), (0u16..5000).prop_map(Some)];
    let corrupt = prop_oneof![3 => Just(None), 1 => (0usize..64, 1u8..=255).prop_map(Some)];
    (name, qtype, any::<bool>(), edns, any::<bool>(), corrupt).prop_map(
        |(name, qtype, rd, edns, tcp, corrupt)| Ask {
            name,
            qtype,
            rd,
            edns,
            tcp,
            corrupt,
        },
    )
}

fn records(ctrs: &[Ctr]) -> Vec<Record> {
    ctrs.iter()
        .enumerate()
        .map(|(i, c)| {
            let k = i + 2;
            let mut ips: Vec<IpAddr> = vec![format!("10.0.0.{k}").parse().unwrap()];
            if c.v6 {
                ips.push(format!("fd00::{k:x}").parse().unwrap());
            }
            Record {
                network: "lan".into(),
                container_id: format!("{k:064x}"),
                ifname: "eth0".into(),
                name: Some(NAMES[c.name].to_string()),
                aliases: c.aliases.iter().map(|a| NAMES[*a].to_string()).collect(),
                ips,
                netns: Some(PathBuf::from(format!("/ns/{k}"))),
                ..Default::default()
            }
        })
        .collect()
}

fn query(ask: &Ask) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = ask.rd;
    let name = Name::from_str(&format!("{}.", ask.name)).unwrap();
    m.add_query(Query::query(name, RecordType::from(ask.qtype)));
    if let Some(payload) = ask.edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.edns = Some(e);
    }
    let mut bytes = m.to_vec().unwrap();
    if let Some((at, x)) = ask.corrupt {
        if let Some(b) = bytes.get_mut(at) {
            *b ^= x;
        }
    }
    bytes
}

/// The parts of a reply both paths must agree on, answers aside.
fn header(m: &Message) -> String {
    format!(
        "id={} type={:?} op={:?} rcode={:?} aa={} rd={} ra={} ad={} cd={} q={:?} edns={:?}",
        m.metadata.id,
        m.metadata.message_type,
        m.metadata.op_code,
        m.metadata.response_code,
        m.metadata.authoritative,
        m.metadata.recursion_desired,
        m.metadata.recursion_available,
        m.metadata.authentic_data,
        m.metadata.checking_disabled,
        m.queries,
        m.edns.as_ref().map(|e| (e.max_payload(), e.version())),
    )
}

fn answers(m: &Message) -> BTreeSet<String> {
    m.answers.iter().map(|r| r.to_string()).collect()
}

fn compare(view: &View, req: &[u8], tcp: bool) -> Result<(), TestCaseError> {
    let transport = if tcp { Transport::Tcp } else { Transport::Udp };
    let mut out = Vec::new();
    if !answer(view, req, &mut out, transport, &mut Found::default()) {
        return Ok(());
    }
    let fast = Message::from_vec(&out);
    prop_assert!(fast.is_ok(), "hickory parses the fast answer: {fast:?}");
    let fast = fast.unwrap();
    let asked = Message::from_vec(req);
    prop_assert!(
        asked.is_ok(),
        "the fast path answered a query hickory refuses"
    );
    let Outcome::Reply(slow) = handle(view, req) else {
        return Err(TestCaseError::fail("the slow path does not reply"));
    };
    let slow = Message::from_vec(&slow).unwrap();
    prop_assert_eq!(header(&fast), header(&slow));
    if fast.metadata.truncation {
        let limit = asked
            .unwrap()
            .edns
            .map_or(512, |e| usize::from(e.max_payload().clamp(512, 4096)));
        prop_assert!(!tcp, "TCP answers are whole");
        prop_assert!(out.len() <= limit, "{} bytes over {limit}", out.len());
        prop_assert!(answers(&fast).is_subset(&answers(&slow)));
        prop_assert!(fast.answers.len() < slow.answers.len());
    } else {
        prop_assert_eq!(fast.answers.len(), slow.answers.len());
        prop_assert_eq!(answers(&fast), answers(&slow));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_path_says_what_hickory_says(ctrs in ctrs(), asks in prop::collection::vec(asks(), 1..8)) {
        let mut catalog = Catalog::default();
        for r in records(&ctrs) {
            catalog.insert(&r).unwrap();
        }
        let place = Place::Netns(PathBuf::from("/ns/2"));
        let view = catalog.view(&place, "127.0.0.1".parse().unwrap()).unwrap();
        for ask in &asks {
            compare(&view, &query(ask), ask.tcp)?;
        }
    }
}
