//! Pull and push of a ~100 MiB image in 5 layers against Debian's distribution registry on
//! loopback: netctl against dockerd 20.10 (`docker pull`/`push`, in the same namespace) and
//! `skopeo copy` (to and from a directory), side by side, medians; a second push and a
//! second pull of an image sharing 4 of its 5 layers.
//!
//! Usage: registry-bench NETCTL_BIN_DIR ROUNDS (as root).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use netctl_bench::{median, ms, sh, timed};

const REGISTRY: &str = "127.0.0.1:5000";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(bin), Some(rounds)) = (
        args.get(1),
        args.get(2).and_then(|r| r.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: registry-bench NETCTL_BIN_DIR ROUNDS");
        std::process::exit(2);
    };
    netctl_bench::enter_private_namespaces();
    let dir = tempfile_dir();
    let d = dir.display().to_string();
    for m in [
        "/run/netctl",
        "/var/lib/netctl",
        "/etc/docker",
        "/etc/netctl",
    ] {
        sh(&format!("mkdir -p {m} && mount -t tmpfs tmpfs {m}"));
    }
    sh("ip link set lo up");
    make_images(&dir);
    sh(&format!(
        "printf 'version: 0.1\\nlog:\\n  level: error\\nstorage:\\n  filesystem:\\n    rootdirectory: {d}/registry\\nhttp:\\n  addr: {REGISTRY}\\n' > {d}/registry.yml"
    ));
    let mut registry = start_registry(&d);
    let docker_host = format!("unix://{d}/docker.sock");
    let mut dockerd = Command::new("dockerd")
        .args([
            "--data-root",
            &format!("{d}/docker"),
            "--exec-root",
            &format!("{d}/exec"),
        ])
        .args([
            "--pidfile",
            &format!("{d}/docker.pid"),
            "-H",
            &docker_host,
            "--iptables=false",
            "--bridge=none",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dockerd");
    wait(&format!(
        "curl -sf http://{REGISTRY}/v2/ && docker -H {docker_host} version"
    ));
    let netctl = |root: &str, a: &str| {
        let mut c = Command::new(Path::new(bin).join("netctl"));
        c.args(["--root", &format!("{d}/{root}")])
            .args(a.split(' '));
        c
    };
    let docker = |a: &str| {
        let mut c = Command::new("docker");
        c.args(["-H", &docker_host]).args(a.split(' '));
        c
    };
    timed(
        &mut netctl("src", &format!("load -i {d}/big1.tar")),
        "netctl load",
    );
    timed(
        &mut netctl("src", &format!("load -i {d}/big2.tar")),
        "netctl load",
    );
    timed(&mut docker(&format!("load -i {d}/big1.tar")), "docker load");
    timed(&mut docker(&format!("load -i {d}/big2.tar")), "docker load");

    // Push: each tool in turn to an empty registry, so every blob is uploaded.
    let mut push = [Vec::new(), Vec::new(), Vec::new()];
    let mut second_push = [Vec::new(), Vec::new(), Vec::new()];
    let image = format!("{REGISTRY}/bench/big:1");
    for _ in 0..rounds {
        for (k, tool) in push.iter_mut().enumerate() {
            let _ = registry.kill();
            let _ = registry.wait();
            sh(&format!("rm -rf {d}/registry"));
            registry = start_registry(&d);
            let mut cmd = match k {
                0 => netctl("src", &format!("push -q {image}")),
                1 => docker(&format!("push -q {image}")),
                _ => {
                    let mut c = Command::new("skopeo");
                    c.args([
                        "copy",
                        "-q",
                        "--dest-tls-verify=false",
                        &format!("docker-archive:{d}/big1.tar"),
                        &format!("docker://{image}"),
                    ]);
                    c
                }
            };
            tool.push(timed(&mut cmd, "push").0);
            // Then the image sharing 4 of those 5 layers.
            let big2 = format!("{REGISTRY}/bench/big:2");
            let (t, sent) = match k {
                0 => timed(&mut netctl("src", &format!("push {big2}")), "netctl push"),
                1 => timed(&mut docker(&format!("push {big2}")), "docker push"),
                _ => timed(
                    Command::new("skopeo").args([
                        "copy",
                        "--dest-tls-verify=false",
                        &format!("docker-archive:{d}/big2.tar"),
                        &format!("docker://{big2}"),
                    ]),
                    "skopeo copy",
                ),
            };
            if k < 2 {
                assert_eq!(sent.matches("Layer already exists").count(), 4, "{sent}");
            }
            second_push[k].push(t);
        }
    }
    timed(
        &mut netctl("src", &format!("push -q {REGISTRY}/bench/big:2")),
        "netctl push",
    );

    // Pull: each round into an empty store.
    let mut pull = [Vec::new(), Vec::new(), Vec::new()];
    let mut second = Vec::new();
    for i in 0..rounds {
        sh(&format!("rm -rf {d}/pull{i}"));
        pull[0].push(
            timed(
                &mut netctl(&format!("pull{i}"), &format!("pull -q {image}")),
                "netctl pull",
            )
            .0,
        );
        let (t, fetched) = timed(
            &mut netctl(&format!("pull{i}"), &format!("pull {REGISTRY}/bench/big:2")),
            "netctl pull",
        );
        second.push(t);
        assert_eq!(fetched.matches("Already exists").count(), 4, "{fetched}");
        let _ = docker(&format!("rmi -f {image}")).output();
        sh(&format!(
            "docker -H {docker_host} image prune -af >/dev/null"
        ));
        pull[1].push(timed(&mut docker(&format!("pull -q {image}")), "docker pull").0);
        sh(&format!("rm -rf {d}/skopeo{i}"));
        pull[2].push(
            timed(
                Command::new("skopeo").args([
                    "copy",
                    "-q",
                    "--src-tls-verify=false",
                    &format!("docker://{image}"),
                    &format!("dir:{d}/skopeo{i}"),
                ]),
                "skopeo copy",
            )
            .0,
        );
        sh(&format!("rm -rf {d}/pull{i} {d}/skopeo{i}"));
    }
    println!("| ~100 MiB in 5 layers (incompressible), loopback registry | netctl | docker 20.10 | skopeo copy | docker / netctl | skopeo / netctl |");
    println!("|---|---|---|---|---|---|");
    for (what, t) in [
        ("push (to an empty registry)", &push),
        (
            "second push (an image sharing 4 of its 5 layers)",
            &second_push,
        ),
        ("pull (empty store)", &pull),
    ] {
        let m: Vec<Duration> = t.iter().map(|v| median(v.clone())).collect();
        let ratio = |x: Duration| format!("{:.1}x", x.as_secs_f64() / m[0].as_secs_f64().max(1e-9));
        println!(
            "| {what} | {} ms | {} ms | {} ms | {} | {} |",
            ms(m[0]),
            ms(m[1]),
            ms(m[2]),
            ratio(m[1]),
            ratio(m[2])
        );
    }
    println!("\nA second pull, of an image sharing 4 of its 5 layers: {} ms (only the fifth layer fetched; medians of {rounds}).", ms(median(second)));
    let _ = dockerd.kill();
    let _ = registry.kill();
    let _ = dockerd.wait();
    let _ = registry.wait();
}

/// Starts the registry (storage under `d`) and waits until it answers.
fn start_registry(d: &str) -> std::process::Child {
    let child = Command::new("docker-registry")
        .args(["serve", &format!("{d}/registry.yml")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    wait(&format!("curl -sf http://{REGISTRY}/v2/"));
    child
}

fn tempfile_dir() -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("registry-bench-{}", std::process::id()));
    std::fs::create_dir_all(&p).expect("scratch folder");
    p
}

/// Waits (up to 30 s) for a shell check to pass.
fn wait(check: &str) {
    for _ in 0..300 {
        if Command::new("sh")
            .args(["-c", &format!("({check}) >/dev/null 2>&1")])
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not ready: {check}");
}

/// Two `docker save` archives: big:1 with five layers of 20 MiB of random bytes, big:2 with
/// the same first four and another fifth.
fn make_images(dir: &Path) {
    let d = dir.display();
    sh(&format!(
        r#"cd {d}
for i in 0 1 2 3 4 5; do
  mkdir -p l$i/data && head -c 20971520 /dev/urandom > l$i/data/blob$i && tar -C l$i -cf layer$i.tar data && rm -rf l$i
done
archive() {{ # NAME TAG LAYERS...
  name=$1 tag=$2; shift 2
  mkdir -p a-$name && ids="" files=""
  for l in "$@"; do
    sum=$(sha256sum layer$l.tar | cut -d' ' -f1); mkdir -p a-$name/$sum; cp layer$l.tar a-$name/$sum/layer.tar
    ids="$ids${{ids:+,}}\"sha256:$sum\""; files="$files${{files:+,}}\"$sum/layer.tar\""
  done
  printf '{{"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z","config":{{"Cmd":["/data"]}},"rootfs":{{"type":"layers","diff_ids":[%s]}}}}' "$ids" > a-$name/config.json
  printf '[{{"Config":"config.json","RepoTags":["{REGISTRY}/bench/big:%s"],"Layers":[%s]}}]' "$tag" "$files" > a-$name/manifest.json
  tar -C a-$name -cf $name.tar . && rm -rf a-$name
}}
archive big1 1 0 1 2 3 4
archive big2 2 0 1 2 3 5
rm -f layer*.tar"#
    ));
}
