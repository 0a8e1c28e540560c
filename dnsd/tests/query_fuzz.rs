//! The query path never crashes on malformed packets: the corpus of real queries in
//! `tests/corpus/` (add a file there to keep any input that once broke something), each
//! mutated thousands of ways, and random bytes of every length, all go through the fast and
//! slow paths; every reply carries the asker's ID.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use netctl_dnsd::server::catalog::{Catalog, Place, View};
use netctl_dnsd::server::{answer_locally, Outcome};
use netctl_dnsrecords::Record;

/// A small deterministic generator (xorshift), so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(out.len() >= 5, "the corpus is there");
    out.sort();
    out
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.next() as u8);
            }
            _ => b.extend((0..rng.below(8)).map(|_| rng.next() as u8)),
        }
    }
    b
}

fn check(view: &View, input: &[u8]) {
    if let Outcome::Reply(r) = answer_locally(view, input) {
        assert!(r.len() >= 12, "a reply has a header: {input:02x?}");
        assert_eq!(
            &r[..2],
            &input[..2],
            "the reply carries the query's ID: {input:02x?}"
        );
        assert!(r[2] & 0x80 != 0, "the reply is a response: {input:02x?}");
    }
}

#[test]
fn malformed_queries_never_crash_and_replies_carry_the_id() {
    let rec = |id: &str, ip: &str| Record {
        network: "web".into(),
        container_id: id.into(),
        ifname: "eth0".into(),
        name: Some(id.into()),
        aliases: vec!["web".into()],
        ips: vec![ip.parse().unwrap()],
        netns: Some(PathBuf::from(format!("/ns/{id}"))),
        ..Default::default()
    };
    let mut catalog = Catalog::default();
    for r in [
        rec("w1", "172.18.0.2"),
        rec("w2", "172.18.0.3"),
        rec("w3", "fd00::3"),
    ] {
        catalog.insert(&r).unwrap();
    }
    let place = Place::Netns(PathBuf::from("/ns/w1"));
    let view = catalog.view(&place, "127.0.0.1".parse().unwrap()).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in corpus() {
        check(&view, &seed);
        for _ in 0..5000 {
            check(&view, &mutate(&mut rng, &seed));
        }
    }
    for _ in 0..50_000 {
        let len = rng.below(600);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&view, &bytes);
    }
}
