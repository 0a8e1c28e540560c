//! `-u`, `--group-add`, `--cap-add`, `--cap-drop`, `--privileged` and `exec -u`, each asked
//! of a real Docker 20.10 (in this test's namespaces, on the same busybox image) and of
//! netctl, and the answers compared. netctl differs on purpose in one place: CAP_MKNOD is
//! not among its default capabilities (it has no device cgroup to make device nodes
//! harmless), so Docker's capability masks are compared without that bit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netctl_netns_tests::docker::Dockerd;
use netctl_netns_tests::TestHost;

/// CAP_MKNOD's bit in /proc's capability masks.
const MKNOD: u64 = 1 << 27;

fn netctl_run(host: &TestHost, args: &[&str]) -> (i32, String) {
    let mut all = vec!["run", "--rm", "--net", "none"];
    all.extend_from_slice(args);
    let (code, out, err) = host.netctl(&all);
    (code, out + &err)
}

fn docker_run(docker: &Dockerd, args: &[&str], image_at: usize) -> (i32, String) {
    let mut all = vec!["run", "--rm", "--net", "none"];
    let mut args = args.to_vec();
    args[image_at] = "dbox";
    all.extend_from_slice(&args);
    docker.run(&all)
}

/// `args` (with "busybox" as the image) run by both; their answers.
fn both(host: &TestHost, docker: &Dockerd, args: &[&str]) -> ((i32, String), (i32, String)) {
    let at = args.iter().position(|a| *a == "busybox").unwrap();
    (netctl_run(host, args), docker_run(docker, args, at))
}

fn cap_eff(text: &str) -> u64 {
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff in {text:?}"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

fn started() -> (TestHost, Dockerd) {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    (host, docker)
}

/// The users, groups and homes of Docker's `-u` and `--group-add`, name or number, known
/// or not, and its errors for names the image does not have.
#[test]
fn users_and_groups_are_resolved_as_docker_resolves_them() {
    let (host, docker) = started();
    let cases: [&[&str]; 14] = [
        &[
            "-u",
            "www",
            "busybox",
            "grep",
            "Groups",
            "/proc/self/status",
        ],
        &[
            "-u",
            "www:staff",
            "--group-add",
            "daemon",
            "busybox",
            "grep",
            "Groups",
            "/proc/self/status",
        ],
        &[
            "-u",
            "1234",
            "--group-add",
            "staff",
            "busybox",
            "grep",
            "Groups",
            "/proc/self/status",
        ],
        &["-u", "www", "busybox", "id"],
        &["-u", "33", "busybox", "id"],
        &["-u", "33:50", "busybox", "id"],
        &["-u", "www:staff", "busybox", "id"],
        &["-u", "1234", "busybox", "id"],
        &["-u", "0", "busybox", "id"],
        &["--group-add", "staff", "busybox", "id"],
        &["--group-add", "777", "busybox", "id"],
        &["-u", "www", "--group-add", "daemon", "busybox", "id"],
        &["-u", "www", "busybox", "sh", "-c", "echo $HOME; pwd"],
        &[
            "-u",
            "1234",
            "busybox",
            "sh",
            "-c",
            "echo $HOME; touch /x || echo denied",
        ],
    ];
    for args in cases {
        let (ours, theirs) = both(&host, &docker, args);
        assert_eq!(theirs.0, 0, "docker {args:?}: {}", theirs.1);
        assert_eq!(ours, theirs, "netctl {args:?} against docker");
    }
    for (args, says) in [
        (
            &["-u", "nobody", "busybox", "id"][..],
            "unable to find user nobody: no matching entries in passwd file",
        ),
        (
            &["-u", "www:nogroup", "busybox", "id"][..],
            "unable to find group nogroup",
        ),
    ] {
        let (ours, theirs) = both(&host, &docker, args);
        assert_eq!((ours.0, theirs.0), (125, 125), "{ours:?} {theirs:?}");
        assert!(
            theirs.1.contains(says) && ours.1.contains(says),
            "{ours:?} {theirs:?}"
        );
    }
}

/// Docker's capability rules (adds, drops, ALL, an add beating a drop, names in any case
/// with or without CAP_), compared as CapEff; unknown names are refused alike; an added
/// NET_ADMIN lets the container change its links, which the default set does not.
#[test]
fn capabilities_are_added_and_dropped_as_docker_does() {
    let (host, docker) = started();
    let status = ["busybox", "grep", "CapEff", "/proc/self/status"];
    let cases: [&[&str]; 6] = [
        &[],
        &["--cap-add", "NET_ADMIN"],
        &["--cap-add", "cap_net_admin"],
        &["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"],
        &["--cap-add", "NET_ADMIN", "--cap-drop", "NET_ADMIN"],
        &["--cap-drop", "chown", "--cap-drop", "CAP_KILL"],
    ];
    for flags in cases {
        let args: Vec<&str> = flags.iter().chain(status.iter()).copied().collect();
        let (ours, theirs) = both(&host, &docker, &args);
        assert_eq!((ours.0, theirs.0), (0, 0), "{flags:?}: {ours:?} {theirs:?}");
        assert_eq!(cap_eff(&ours.1), cap_eff(&theirs.1) & !MKNOD, "{flags:?}");
    }
    for (flags, says) in [
        (
            ["--cap-add", "FOO"],
            "invalid CapAdd: unknown capability: \"CAP_FOO\"",
        ),
        (
            ["--cap-drop", "bar"],
            "invalid CapDrop: unknown capability: \"CAP_BAR\"",
        ),
    ] {
        let args: Vec<&str> = flags.iter().chain(status.iter()).copied().collect();
        let (ours, theirs) = both(&host, &docker, &args);
        assert_eq!((ours.0, theirs.0), (125, 125), "{ours:?} {theirs:?}");
        assert!(
            ours.1.contains(says) && theirs.1.contains(says),
            "{ours:?} {theirs:?}"
        );
    }
    let mtu = ["busybox", "ip", "link", "set", "lo", "mtu", "1300"];
    assert_ne!(netctl_run(&host, &mtu).0, 0, "NET_ADMIN by default");
    let added: Vec<&str> = ["--cap-add", "NET_ADMIN"]
        .iter()
        .chain(mtu.iter())
        .copied()
        .collect();
    assert_eq!(netctl_run(&host, &added).0, 0);
    let chown = ["--cap-drop", "CHOWN", "busybox", "chown", "1", "/tmp"];
    assert_ne!(netctl_run(&host, &chown).0, 0, "chown without CAP_CHOWN");
}

/// `inspect` shows the flags as Docker does, and `exec` (with and without `-u`) runs with
/// the container's capabilities and user as in Docker.
#[test]
fn inspect_and_exec_show_the_containers_user_and_capabilities() {
    let (host, docker) = started();
    let flags = [
        "-d",
        "--name",
        "c1",
        "--net",
        "none",
        "-u",
        "www",
        "--group-add",
        "daemon",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "chown",
    ];
    let mut ours: Vec<&str> = vec!["run"];
    ours.extend_from_slice(&flags);
    ours.extend_from_slice(&["busybox", "sleep", "1000"]);
    host.netctl_ok(&ours);
    let mut theirs: Vec<&str> = vec!["run"];
    theirs.extend_from_slice(&flags);
    theirs.extend_from_slice(&["dbox", "sleep", "1000"]);
    assert_eq!(docker.run(&theirs).0, 0);
    let shown = "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}} {{json .HostConfig.GroupAdd}} {{.HostConfig.Privileged}} {{.Config.User}}";
    let (code, mine, err) = host.netctl(&["inspect", "-f", shown, "c1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mine, docker.run(&["inspect", "-f", shown, "c1"]).1);
    for exec in [
        &["exec", "c1", "id"][..],
        &["exec", "-u", "root", "c1", "id"][..],
        &[
            "exec",
            "-u",
            "0",
            "c1",
            "grep",
            "CapEff",
            "/proc/self/status",
        ][..],
        &["exec", "c1", "sh", "-c", "echo $HOME"][..],
    ] {
        let (code, out, err) = host.netctl(exec);
        let theirs = docker.run(exec);
        assert_eq!(code, theirs.0, "{exec:?}: {out}{err} / {theirs:?}");
        if exec.contains(&"CapEff") {
            assert_eq!(cap_eff(&out), cap_eff(&theirs.1) & !MKNOD);
        } else {
            assert_eq!(out, theirs.1, "{exec:?}");
        }
    }
    host.netctl_ok(&["rm", "-f", "c1"]);
}

/// `--privileged` (which this host's Docker cannot start: its runc asks for capabilities
/// the host's bounding set lacks): every capability the host has, no seccomp filter, no
/// no_new_privs, a writable /sys and /proc/sys, no masked /proc files, the host's devices;
/// and the default container has none of that.
#[test]
fn privileged_containers_get_what_the_host_has() {
    let host = TestHost::new();
    host.busybox_image();
    let probe = "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; grep -c ' /proc/sys ' /proc/mounts; ls /dev/net/tun 2>&1; echo 1 > /proc/sys/net/ipv4/ip_forward && echo wrote";
    let (code, out) = netctl_run(&host, &["--privileged", "busybox", "sh", "-c", probe]);
    assert_eq!(code, 0, "{out}");
    let bounding = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = bounding
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(cap_eff(&out), bnd, "{out}");
    for want in [
        "Seccomp:\t0",
        "NoNewPrivs:\t0",
        "\nrw\n",
        "\n0\n",
        "/dev/net/tun",
        "wrote",
    ] {
        assert!(out.contains(want), "{want:?} missing from: {out}");
    }
    let (code, out) = netctl_run(&host, &["busybox", "sh", "-c", probe]);
    assert_ne!(code, 0, "the default container wrote /proc/sys: {out}");
    for want in [
        "Seccomp:\t2",
        "NoNewPrivs:\t1",
        "\nro\n",
        "\n1\n",
        "No such file",
    ] {
        assert!(out.contains(want), "{want:?} missing from: {out}");
    }
}

/// An image whose /etc/passwd is a FIFO (an open of it would wait forever): `-u www` fails
/// at once saying the user is not there, and a container without `-u` runs.
#[test]
fn hostile_account_files_make_a_clear_error_not_a_hang() {
    let host = TestHost::new();
    let root = netctl_netns_tests::busybox_rootfs(host.dir());
    std::fs::remove_file(root.join("etc/passwd")).unwrap();
    nix::unistd::mkfifo(
        &root.join("etc/passwd"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    host.netctl_ok(&["image", "import", &root.display().to_string(), "odd"]);
    let started = std::time::Instant::now();
    let (code, out) = netctl_run(&host, &["-u", "www", "odd", "id"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("unable to find user www"), "{out}");
    assert_eq!(netctl_run(&host, &["odd", "true"]).0, 0);
}
