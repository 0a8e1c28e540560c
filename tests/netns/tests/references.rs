//! Image references as a Docker user types them, right and wrong: netctl accepts exactly
//! the references Docker 20.10's CLI accepts and refuses the others in Docker's words.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use netctl_netns_tests::{exit_and_streams, TestHost};

/// What a parser said of a reference: accepted, or the error it gave.
#[derive(Debug, PartialEq)]
enum Verdict {
    Accepted,
    Refused(String),
}

/// The words of a refused reference, as both print them.
fn reference_error(line: &str) -> Option<String> {
    let line = line.trim().trim_start_matches("netctl: ");
    let words = [
        "invalid reference format",
        "repository name must",
        "invalid repository name",
        "unsupported digest algorithm",
        "invalid checksum digest",
    ];
    words
        .iter()
        .any(|w| line.starts_with(w))
        .then(|| line.to_string())
}

/// Docker's CLI parses the reference before it reaches for a daemon: with none there, an
/// accepted reference ends at "Cannot connect to the Docker daemon".
fn docker(reference: &str, config: &std::path::Path) -> Verdict {
    let out = Command::new("/usr/bin/docker")
        .args(["pull", "--", reference])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("DOCKER_CONFIG", config)
        .output()
        .unwrap();
    let (_, _, err) = exit_and_streams(&out);
    let first = err.lines().next().unwrap_or("").to_string();
    if first.contains("Cannot connect to the Docker daemon") {
        return Verdict::Accepted;
    }
    Verdict::Refused(reference_error(&first).unwrap_or_else(|| panic!("docker said {err}")))
}

/// netctl pulls in a namespace with no registry: an accepted reference fails later, at
/// the registry.
fn netctl(host: &TestHost, reference: &str) -> Verdict {
    let (code, _, err) = host.netctl(&["--registry-deadline", "2", "pull", "--", reference]);
    assert_ne!(code, 0, "{reference} pulled from nowhere");
    match err.lines().find_map(reference_error) {
        Some(e) => Verdict::Refused(e),
        None => Verdict::Accepted,
    }
}

/// References built from pieces Docker users type, mostly right, now and then wrong (one
/// piece in five), picked by a fixed sequence (the same corpus every run).
fn corpus() -> Vec<String> {
    let hex = "0123456789abcdef".repeat(4);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // Each piece: what users mostly type, then what they type wrong.
    let pieces = [
        (
            s(&[
                "",
                "localhost/",
                "localhost:5000/",
                "reg.example/",
                "reg.example:5000/",
                "127.0.0.1:5000/",
                "index.docker.io/",
                "docker.io/",
                "a.b.c:1/",
            ]),
            s(&[
                "Reg.Example/",
                "reg-.example/",
                "-reg.example/",
                "reg:port/",
                "reg.example:/",
            ]),
        ),
        (
            s(&[
                "busybox",
                "library/busybox",
                "team/web",
                "a__b",
                "a.b",
                "a-b",
                "a--b",
                "x/y/z",
                "0",
            ]),
            s(&[
                "a___b", "a..b", "a-", "_a", "Web", "a/B", "a//b", "web.", "", "a._b", "a.-b",
            ]),
        ),
        (
            vec![
                String::new(),
                ":1".into(),
                ":latest".into(),
                ":Tag_1.0-x".into(),
                ":_x".into(),
                format!(":{}", "t".repeat(128)),
            ],
            vec![
                ":".into(),
                ":-x".into(),
                ":.x".into(),
                format!(":{}", "t".repeat(129)),
                ":a:b".into(),
                ":a/b".into(),
            ],
        ),
        (
            vec![String::new(), format!("@sha256:{hex}")],
            vec![
                "@sha256:12".into(),
                format!("@sha256:{}", hex.to_uppercase()),
                format!("@sha512:{hex}"),
                "@".into(),
                format!("@md5:{hex}"),
            ],
        ),
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut refs: Vec<String> = (0..240)
        .map(|_| {
            pieces
                .iter()
                .map(|(usual, odd)| {
                    let from = if next(5) == 0 { odd } else { usual };
                    from[next(from.len())].clone()
                })
                .collect()
        })
        .collect();
    refs.extend([
        hex.clone(),
        format!("{hex}:1"),
        "a".repeat(255),
        "a".repeat(256),
        format!("reg.example/{}", "a".repeat(243)),
        format!("reg.example/{}", "a".repeat(244)),
        "a b".into(),
        "http://reg.example/web".into(),
        "localhost:5000".into(),
        "UPPER.example/web".into(),
    ]);
    refs.sort();
    refs.dedup();
    refs
}

/// A user types each reference of the corpus to `netctl pull` and to `docker pull`: the
/// same references are accepted, and the refused ones get the same words. (IPv6 registry
/// hosts, `[::1]:5000/web`, are left out: Docker 20.10 refuses them, today's Docker and
/// netctl take them.)
#[test]
fn references_are_accepted_and_refused_as_dockers_cli_does() {
    let host = TestHost::new();
    let config = host.dir().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let refs = corpus();
    let mut differ = Vec::new();
    let mut refused = 0;
    for r in &refs {
        let (theirs, ours) = (docker(r, &config), netctl(&host, r));
        if theirs != Verdict::Accepted {
            refused += 1;
        }
        if theirs != ours {
            differ.push(format!("{r:?}: docker {theirs:?}, netctl {ours:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{}",
        differ.len(),
        refs.len(),
        differ.join("\n")
    );
    // The corpus holds both kinds in earnest.
    assert!(
        refused > 40 && refs.len() - refused > 40,
        "{refused} of {} refused",
        refs.len()
    );
}
