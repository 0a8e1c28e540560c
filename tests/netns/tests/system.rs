//! `info`, `system df` and the prunes, as a user cleaning up a host runs them — side by side
//! with a real Docker 20.10 holding the same containers, networks and images.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netctl_netns_tests::docker::{both, Dockerd};
use netctl_netns_tests::TestHost;

fn ok_both(host: &TestHost, docker: &Dockerd, args: &[&str]) {
    let ((nc, n), (dc, d)) = both(host, docker, args);
    assert_eq!((nc, dc), (0, 0), "{args:?}: {n} / {d}");
}

/// Output with IDs and sizes masked: what the two must share.
fn shape(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| {
            l.split_whitespace()
                .map(|w| {
                    let hex = w.trim_start_matches("sha256:");
                    if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        "ID".to_string()
                    } else if w.ends_with('B') && w.starts_with(|c: char| c.is_ascii_digit()) {
                        "SIZE".to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// A host with a running and a stopped container, an unused network and an unused image:
/// `info` counts them, `system df` sums them, and the prunes remove what Docker removes.
#[test]
fn info_df_and_prunes_count_and_clean_as_dockers() {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    for args in [
        &["run", "-d", "--name", "up", "busybox", "sleep", "600"][..],
        &["run", "--name", "done", "busybox", "true"],
        &["network", "create", "unused"],
        &["tag", "busybox", "spare:v1"],
    ] {
        ok_both(&host, &docker, args);
    }
    let f = "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.OSType}} {{.LoggingDriver}} {{.CgroupDriver}} {{.Architecture}}";
    let ((_, n), (_, d)) = both(&host, &docker, &["info", "--format", f]);
    assert_eq!(n, d);
    let ((_, n), (_, d)) = both(&host, &docker, &["system", "df"]);
    assert_eq!(shape(&n), shape(&d), "{n}\n{d}");
    let ((_, n), (_, d)) = both(&host, &docker, &["container", "prune", "-f"]);
    assert_eq!(shape(&n), shape(&d), "{n}\n{d}");
    let ((_, n), (_, d)) = both(&host, &docker, &["system", "prune", "-f"]);
    assert_eq!(shape(&n), shape(&d), "{n}\n{d}");
    let ((_, n), (_, d)) = both(&host, &docker, &["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(n, d, "the unused network is gone");
    ok_both(&host, &docker, &["rm", "-f", "up"]);
    ok_both(&host, &docker, &["tag", "busybox", "spare:v2"]);
    let ((_, n), (_, d)) = both(&host, &docker, &["image", "prune", "-a", "-f"]);
    let lines = |s: &str| {
        let mut v = shape(s);
        v.sort();
        v
    };
    assert_eq!(
        lines(&n),
        lines(&d)
            .iter()
            .map(|l| l.replace("dbox", "busybox"))
            .collect::<Vec<_>>(),
        "{n}\n{d}"
    );
    assert_eq!(
        host.netctl_ok(&["images", "-q"]),
        "",
        "every unused image is gone"
    );
}
