//! A registry that breaks down under a pull: connections cut mid-layer, bodies that trickle
//! or stall, a pull killed halfway, two pulls of one image at once. What a user sees: a
//! download resumed where it broke off, a clear error within the deadline, nothing
//! half-made left in the store, and a retry that fetches only what is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use netctl_netns_tests::fake_registry::{one_file_tar, Answer, FakeImage, FakeRegistry, Sending};
use netctl_netns_tests::{binary, eventually, exit_and_streams, TestHost};

const LAYERS: &str = "/var/lib/netctl/image/layers";

/// Every entry of the layer store, its tar records and the image records.
fn store_entries() -> Vec<String> {
    [
        LAYERS,
        "/var/lib/netctl/image/layers-records",
        "/var/lib/netctl/image/images",
    ]
    .iter()
    .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
    .map(|e| e.path().display().to_string())
    .collect()
}

/// What unfinished work left in the store: unpacking layers and scratch folders.
fn unfinished() -> Vec<String> {
    let image = Path::new("/var/lib/netctl/image");
    [
        image.join("layers"),
        image.join("layers-records"),
        image.to_path_buf(),
    ]
    .iter()
    .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
    .map(|e| e.file_name().to_string_lossy().into_owned())
    .filter(|n| n.starts_with(".tmp-") || n.starts_with(".scratch-"))
    .collect()
}

/// An image of two one-file layers, big enough to cut in the middle.
fn two_layer_image() -> FakeImage {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    FakeImage::of_files(&[(b"one", b"first layer\n"), (b"two", &big)], false)
}

/// The answer for a layer request from byte `from` on (`Range: bytes=N-`), as a registry
/// that honours ranges gives it.
fn ranged(layer: &[u8], range: &str) -> Answer {
    match range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
    {
        Some(from) => {
            let from: usize = from.parse().unwrap();
            Answer::new(206, layer[from..].to_vec()).header(
                "Content-Range",
                &format!("bytes {from}-{}/{}", layer.len() - 1, layer.len()),
            )
        }
        None => Answer::new(200, layer.to_vec()),
    }
}

/// A user pulls while the registry's connection drops in the middle of each layer once: one
/// registry honours `Range` and sends the rest, the other sends the whole layer again.
/// netctl resumes both downloads and the pull succeeds as if nothing happened.
#[test]
fn a_download_cut_off_resumes_where_it_broke() {
    let host = TestHost::new();
    let image = Arc::new(two_layer_image());
    let (one, two) = (image.layer_digest(0), image.layer_digest(1));
    let served = image.clone();
    let reg = FakeRegistry::start(move |a| {
        let path = a.path.as_str();
        let firsts = |d: &str| path.ends_with(d) && a.range.is_empty();
        if path.ends_with(&two) {
            let answer = ranged(&served.layers[1], &a.range);
            return if firsts(&two) {
                answer.sent(Sending::CutAfter(100_000))
            } else {
                answer
            };
        }
        let answer = served
            .answer("web", "1", path)
            .unwrap_or_else(|| Answer::new(404, ""));
        if path.ends_with(&one) && !a.range.is_empty() {
            // This registry ignores ranges: the whole layer again.
            return Answer::new(200, served.layers[0].clone());
        }
        if path.ends_with(&one) {
            return answer.sent(Sending::CutAfter(600));
        }
        answer
    });
    let web = format!("{}/web:1", reg.host());
    let out = host.netctl_ok(&["pull", &web]);
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    let ranges: Vec<String> = reg
        .seen()
        .into_iter()
        .map(|a| a.range)
        .filter(|r| !r.is_empty())
        .collect();
    assert!(ranges.contains(&"bytes=100000-".to_string()), "{ranges:?}");
    assert!(ranges.contains(&"bytes=600-".to_string()), "{ranges:?}");
    assert_eq!(
        host.netctl_ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &web]),
        "2\n"
    );
    assert_eq!(unfinished(), Vec::<String>::new());
}

/// The registry cuts one layer's every connection: the pull gives up after Docker's five
/// attempts with an error naming the layer, stores no image and leaves no half-unpacked
/// layer. Once the registry is mended the user pulls again, and only the missing layer is
/// fetched (the other "Already exists").
#[test]
fn a_pull_that_keeps_breaking_stores_no_image_and_its_retry_fetches_only_what_is_missing() {
    let host = TestHost::new();
    let image = Arc::new(two_layer_image());
    let two = image.layer_digest(1);
    let mended = Arc::new(AtomicBool::new(false));
    let (served, healed, broken) = (image.clone(), mended.clone(), two.clone());
    let reg = FakeRegistry::start(move |a| {
        let answer = served
            .answer("web", "1", &a.path)
            .unwrap_or_else(|| Answer::new(404, ""));
        if a.path.ends_with(&broken) && !healed.load(Ordering::SeqCst) {
            return ranged(&served.layers[1], &a.range).sent(Sending::CutAfter(1000));
        }
        answer
    });
    let web = format!("{}/web:1", reg.host());
    let (code, _, err) = host.netctl(&["pull", &web]);
    assert_ne!(code, 0);
    assert!(err.contains(&two), "{err}");
    assert_eq!(reg.count("GET", &format!("/v2/web/blobs/{two}")), 5);
    assert!(host.netctl_ok(&["images", "-q"]).is_empty());
    assert_eq!(unfinished(), Vec::<String>::new());

    mended.store(true, Ordering::SeqCst);
    let one_asked = reg.count("GET", &format!("/v2/web/blobs/{}", image.layer_digest(0)));
    let out = host.netctl_ok(&["pull", &web]);
    assert!(
        out.contains(&format!(
            "{}: Already exists",
            &image.layer_digest(0)[7..19]
        )),
        "{out}"
    );
    assert_eq!(
        reg.count("GET", &format!("/v2/web/blobs/{}", image.layer_digest(0))),
        one_asked
    );
    host.netctl_ok(&["image", "inspect", &web]);
}

/// A registry that trickles a manifest or a layer a byte at a time, sends a layer's head and
/// then nothing, or never answers at all: with `--registry-deadline 2` each pull fails with
/// words saying so within seconds, and stores nothing.
#[test]
fn a_registry_that_trickles_or_stalls_is_given_up_at_the_deadline() {
    let host = TestHost::new();
    let image = Arc::new(FakeImage::of_files(&[(b"hello", &[b'x'; 4000])], false));
    let layer = image.layer_digest(0);
    let served = image.clone();
    let reg = FakeRegistry::start(move |a| {
        let repo = a.path.split('/').nth(2).unwrap_or("").to_string();
        let answer = served
            .answer(&repo, "1", &a.path)
            .unwrap_or_else(|| Answer::new(404, ""));
        let is_layer = a.path.ends_with(&layer);
        match repo.as_str() {
            "slowmanifest" if a.path.contains("/manifests/") => {
                answer.sent(Sending::Trickle(Duration::from_millis(50)))
            }
            "slowlayer" if is_layer => answer.sent(Sending::Trickle(Duration::from_millis(20))),
            "stalledlayer" if is_layer => answer.sent(Sending::Stall(2000)),
            "mute" if a.path.contains("/manifests/") => answer.sent(Sending::Mute),
            _ => answer,
        }
    });
    let cases = [
        ("slowmanifest", "did not arrive within 2 s"),
        ("slowlayer", "bytes a second"),
        ("stalledlayer", "timed out"),
        ("mute", "timed out"),
    ];
    for (repo, words) in cases {
        let started = Instant::now();
        let reference = format!("{}/{repo}:1", reg.host());
        let (code, _, err) = host.netctl(&["--registry-deadline", "2", "pull", &reference]);
        assert_ne!(code, 0, "{repo}");
        assert!(err.contains(words), "{repo}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{repo} took {:?}",
            started.elapsed()
        );
        assert!(
            store_entries().iter().all(|e| !e.contains("/images/")),
            "{repo}: {:?}",
            store_entries()
        );
        assert_eq!(unfinished(), Vec::<String>::new(), "{repo}");
    }
}

/// A user pushes a 16 MiB layer to a registry that takes the upload's head and then never
/// reads its body: with `--registry-deadline 2` the push fails within seconds saying it
/// timed out (before, the write waited on the full socket for ever).
#[test]
fn a_registry_that_stops_reading_an_upload_fails_the_push_at_the_deadline() {
    let host = TestHost::new();
    let rootfs = host.dir().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    // Incompressible, so the gzip stream stays as big as the file.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..16 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    std::fs::write(rootfs.join("noise"), noise).unwrap();
    let reg = FakeRegistry::start(|a| match (a.method.as_str(), a.path.as_str()) {
        ("GET", "/v2/") => Answer::new(200, ""),
        ("POST", p) if p.starts_with("/v2/big/blobs/uploads/") && !p.contains("mount=") => {
            Answer::new(202, "").header("Location", "/v2/big/blobs/uploads/u1")
        }
        ("PATCH" | "PUT", _) => Answer::new(202, "").sent(Sending::Mute),
        _ => Answer::new(404, ""),
    });
    let big = format!("{}/big:1", reg.host());
    host.netctl_ok(&["image", "import", &rootfs.display().to_string(), &big]);
    let started = Instant::now();
    let (code, out, err) = host.netctl(&["--registry-deadline", "2", "push", &big]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("timed out"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// A user's pull is killed (kill -9) while a layer is half unpacked: the half layer stays
/// only until the store is next added to, and the next pull, of another image, finds it
/// gone and succeeds.
#[test]
fn a_pull_killed_halfway_leaves_nothing_once_the_store_is_next_used() {
    let host = TestHost::new();
    let stuck = Arc::new(two_layer_image());
    let fine = Arc::new(FakeImage::of_files(&[(b"fine", b"fine\n")], false));
    let (s, f, cut) = (stuck.clone(), fine.clone(), stuck.layer_digest(1));
    let reg = FakeRegistry::start(move |a| {
        if a.path.ends_with(&cut) {
            return Answer::new(200, s.layers[1].clone()).sent(Sending::Stall(100_000));
        }
        s.answer("stuck", "1", &a.path)
            .or_else(|| f.answer("fine", "1", &a.path))
            .unwrap_or_else(|| Answer::new(404, ""))
    });
    let mut pull = Command::new(binary("netctl"))
        .args(["pull", &format!("{}/stuck:1", reg.host())])
        .env_remove("NETCTL_ROOT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        "the pull is unpacking the stalled layer",
        Duration::from_secs(20),
        || {
            let left = unfinished();
            if left.iter().any(|n| n.starts_with(".tmp-")) {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
    pull.kill().unwrap();
    pull.wait().unwrap();
    host.netctl_ok(&["pull", &format!("{}/fine:1", reg.host())]);
    assert_eq!(unfinished(), Vec::<String>::new());
    let images = host.netctl_ok(&["images", "--format", "{{.Repository}}"]);
    assert_eq!(images, format!("{}/fine\n", reg.host()));
}

/// Two users pull the same image at once, an image that names one layer twice: both pulls
/// succeed, each process fetches that layer once, and the store holds each layer once.
#[test]
fn two_pulls_of_one_image_at_once_both_succeed() {
    let host = TestHost::new();
    let shared = one_file_tar(b"shared", &[b's'; 30_000]);
    let top = one_file_tar(b"top", b"top\n");
    let image = Arc::new(FakeImage::of_layers(
        vec![shared.clone(), shared, top],
        b"top",
        false,
    ));
    // Every layer's last byte waits until both pulls are about to finish it.
    let gates: Vec<Arc<Barrier>> = (0..2).map(|_| Arc::new(Barrier::new(2))).collect();
    let served = image.clone();
    let digests = [image.layer_digest(0), image.layer_digest(2)];
    let reg = FakeRegistry::start(move |a| {
        let answer = served
            .answer("web", "1", &a.path)
            .unwrap_or_else(|| Answer::new(404, ""));
        match digests.iter().position(|d| a.path.ends_with(d.as_str())) {
            Some(i) => answer.sent(Sending::HoldLast(gates[i].clone())),
            None => answer,
        }
    });
    let web = format!("{}/web:1", reg.host());
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            Command::new(binary("netctl"))
                .args(["pull", &web])
                .env_remove("NETCTL_ROOT")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in pulls {
        let (code, out, err) = exit_and_streams(&p.wait_with_output().unwrap());
        assert_eq!(code, 0, "{out}{err}");
    }
    assert_eq!(
        reg.count("GET", &format!("/v2/web/blobs/{}", image.layer_digest(0))),
        2
    );
    assert_eq!(
        host.netctl_ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &web]),
        "3\n"
    );
    let layers = std::fs::read_dir(LAYERS).unwrap().count();
    assert_eq!(layers, 2, "{:?}", store_entries());
    assert_eq!(unfinished(), Vec::<String>::new());
}
