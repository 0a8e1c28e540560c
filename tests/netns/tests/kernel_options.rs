//! `--ulimit`, `--sysctl`, `--shm-size`, `--device`, `--pid` and `--ipc`: what a user (or an
//! image's careless instructions) asks of the kernel for a container, asked of a real
//! Docker 20.10 and of netctl, and compared; and that nothing of it reaches the host.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use netctl_netns_tests::docker::{both, started, Dockerd};
use netctl_netns_tests::{eventually, TestHost};

/// Both succeed with the same output, or both fail with the same code (and, for errors
/// Docker's command line makes, the same words).
fn same(host: &TestHost, docker: &Dockerd, args: &[&str]) -> String {
    let ((ncode, nout), (dcode, dout)) = both(host, docker, args);
    assert_eq!(ncode, dcode, "{args:?}: docker {dout:?}, netctl {nout:?}");
    let an_id = |s: &str| s.trim().len() == 64;
    if dcode == 0 && !(an_id(&nout) && an_id(&dout)) {
        assert_eq!(nout, dout, "{args:?}");
    }
    if let Some(flag_error) = dout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("invalid argument"))
    {
        let said = flag_error.split(':').next().unwrap_or_default();
        assert!(
            nout.contains(said),
            "{args:?}: docker {dout:?}, netctl {nout:?}"
        );
    }
    nout
}

/// `create --net none --name NAME FLAGS busybox true` by both, which must make it (so that
/// what is inspected next is that container, not an image whose ID happens to start with
/// its name), then `inspect -f TEMPLATE NAME` compared.
fn created_shows(host: &TestHost, docker: &Dockerd, name: &str, flags: &[&str], template: &str) {
    let mut args = vec!["create", "--net", "none", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "true"]);
    let id = same(host, docker, &args);
    assert_eq!(id.trim().len(), 64, "{args:?}: {id}");
    same(host, docker, &["inspect", "-f", template, name]);
}

fn run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", "--rm", "--net", "none"];
    a.extend_from_slice(extra);
    a
}

/// Ulimits and /dev/shm sizes as a database image's instructions ask for them.
#[test]
fn ulimits_and_shm_size_are_set_as_dockers_are() {
    let (host, docker) = started();
    same(
        &host,
        &docker,
        &run(&[
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "nproc=300",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn; ulimit -u",
        ]),
    );
    for bad in ["nofiles=1", "nofile=10:5", "nofile"] {
        same(&host, &docker, &run(&["--ulimit", bad, "busybox", "true"]));
    }
    same(
        &host,
        &docker,
        &run(&["--shm-size", "128m", "busybox", "df", "-k", "/dev/shm"]),
    );
    same(&host, &docker, &run(&["busybox", "df", "-k", "/dev/shm"]));
    created_shows(
        &host,
        &docker,
        "kl",
        &["--ulimit", "nofile=100:200", "--shm-size", "1g"],
        "{{json .HostConfig.Ulimits}} {{.HostConfig.ShmSize}}",
    );
}

/// A container sets its own network sysctls; host-wide ones, paths and host namespaces are
/// refused; the host's values never change.
#[test]
fn sysctls_reach_the_containers_kernel_only_as_dockers_do() {
    let (host, docker) = started();
    let before = host.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax");
    let flip = if before.starts_with('1') { "0" } else { "1" };
    let forward = format!("net.ipv4.ip_forward={flip}");
    same(
        &host,
        &docker,
        &run(&[
            "--sysctl",
            &forward,
            "--sysctl",
            "kernel.shmmax=123456789",
            "busybox",
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/kernel/shmmax",
        ]),
    );
    assert_eq!(
        host.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax"),
        before
    );
    for bad in ["kernel.core_pattern=|/tmp/x", "vm.swappiness=1"] {
        same(&host, &docker, &run(&["--sysctl", bad, "busybox", "true"]));
    }
    // Docker takes a key that walks up and fails when runc opens it (127, "no such file"):
    // netctl refuses it as a bad flag.
    let walks_up = run(&[
        "--sysctl",
        "net../../kernel/core_pattern=x",
        "busybox",
        "true",
    ]);
    let ((ncode, nout), (dcode, _)) = both(&host, &docker, &walks_up);
    assert_eq!((ncode, dcode != 0), (125, true), "{nout}");
    let ((ncode, nout), (dcode, _)) = both(
        &host,
        &docker,
        &[
            "run", "--rm", "--net", "host", "--sysctl", &forward, "busybox", "true",
        ],
    );
    assert_eq!((ncode, dcode), (125, 125));
    assert!(
        nout.contains("not allowed in host network namespace"),
        "{nout}"
    );
    assert_eq!(
        host.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax"),
        before
    );
    created_shows(
        &host,
        &docker,
        "ss",
        &["--sysctl", "net.core.somaxconn=512"],
        "{{json .HostConfig.Sysctls}}",
    );
}

/// `--device` gives the container the host's node at the path asked, with its mode.
#[test]
fn devices_are_added_as_dockers_are() {
    let (host, docker) = started();
    same(
        &host,
        &docker,
        &run(&[
            "--device",
            "/dev/null:/dev/mynull",
            "busybox",
            "sh",
            "-c",
            "ls -l /dev/mynull | cut -c1-10; echo x > /dev/mynull && echo wrote",
        ]),
    );
    for bad in ["dev/null", "/dev/null:/dev/x:abc"] {
        same(&host, &docker, &run(&["--device", bad, "busybox", "true"]));
    }
    // Docker answers a missing device with 127 (its code for "no such file"); netctl with
    // 125 and the same words, as for any other container it cannot make.
    let missing = run(&["--device", "/dev/nosuch", "busybox", "true"]);
    let ((ncode, nout), (dcode, dout)) = both(&host, &docker, &missing);
    assert_eq!((ncode, dcode), (125, 127), "{dout} / {nout}");
    let words = "error gathering device information while adding custom device \"/dev/nosuch\"";
    assert!(nout.contains(words), "{nout}");
    created_shows(
        &host,
        &docker,
        "dz",
        &["--device", "/dev/zero:/dev/z:r"],
        "{{json .HostConfig.Devices}}",
    );
}

/// `--pid host` sees the host's processes, `--pid container:X` X's; `top` of a container
/// that shares the host's PID namespace lists its own processes only.
#[test]
fn pid_namespaces_are_shared_as_dockers_are() {
    let (mut host, docker) = started();
    host.spawn("exec sleep 4242");
    let seen = "ps -o args | grep -c '[s]leep 4242'";
    same(
        &host,
        &docker,
        &run(&["--pid", "host", "busybox", "sh", "-c", seen]),
    );
    same(
        &host,
        &docker,
        &run(&["busybox", "sh", "-c", &format!("{seen}; true")]),
    );
    same(
        &host,
        &docker,
        &[
            "run", "-d", "--net", "none", "--name", "target", "busybox", "sleep", "60",
        ],
    );
    same(
        &host,
        &docker,
        &run(&[
            "--pid",
            "container:target",
            "busybox",
            "sh",
            "-c",
            "ps -o comm | grep -c '^sleep'",
        ]),
    );
    let ((ncode, _), (dcode, _)) = both(
        &host,
        &docker,
        &run(&["--pid", "container:nosuch", "busybox", "true"]),
    );
    assert_eq!(ncode, dcode);
    host.netctl_ok(&[
        "run", "-d", "--net", "none", "--name", "hostpid", "--pid", "host", "busybox", "sleep",
        "60",
    ]);
    let top = host.netctl_ok(&["top", "hostpid"]);
    assert_eq!(top.lines().count(), 2, "only its own process: {top}");
    host.netctl_ok(&["pause", "hostpid"]);
    let marker = host.sh("pgrep -f '^sleep 4242'").trim().to_string();
    let state = host.sh(&format!("cat /proc/{marker}/cgroup"));
    assert!(
        !state.contains("netctl"),
        "pause left the host's processes alone: {state}"
    );
    host.netctl_ok(&["unpause", "hostpid"]);
    same(
        &host,
        &docker,
        &[
            "inspect",
            "-f",
            "{{.HostConfig.PidMode}} {{.HostConfig.IpcMode}}",
            "target",
        ],
    );
}

/// `--ipc host`, `--ipc shareable` and `--ipc container:X` as Docker gives them; joining a
/// container whose IPC is not shareable is refused.
#[test]
fn ipc_namespaces_are_shared_as_dockers_are() {
    let (host, docker) = started();
    let ns = "readlink /proc/self/ns/ipc";
    let host_ipc = host.sh(ns);
    let out = same(
        &host,
        &docker,
        &run(&["--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc"]),
    );
    assert_eq!(out, host_ipc);
    for (name, mode) in [("donor", "shareable"), ("closed", "private")] {
        same(
            &host,
            &docker,
            &[
                "run", "-d", "--net", "none", "--name", name, "--ipc", mode, "busybox", "sleep",
                "60",
            ],
        );
    }
    let donor = eventually("the donor runs", std::time::Duration::from_secs(10), || {
        let (code, out, _) = host.netctl(&["exec", "donor", "readlink", "/proc/self/ns/ipc"]);
        if code == 0 {
            Ok(out)
        } else {
            Err(out)
        }
    });
    let (code, joined, err) = host.netctl(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--ipc",
        "container:donor",
        "busybox",
        "readlink",
        "/proc/self/ns/ipc",
    ]);
    assert_eq!((code, joined.as_str()), (0, donor.as_str()), "{err}");
    let ((ncode, nout), (dcode, dout)) = both(
        &host,
        &docker,
        &run(&["--ipc", "container:closed", "busybox", "true"]),
    );
    assert_eq!(ncode, dcode, "{dout} / {nout}");
    assert!(nout.contains("non-shareable IPC"), "{nout}");
    same(
        &host,
        &docker,
        &[
            "inspect",
            "-f",
            "{{.HostConfig.IpcMode}}",
            "donor",
            "closed",
        ],
    );
}

/// `--cpu-rt-period`/`--cpu-rt-runtime` (docker-py's `cpu_rt_period`/`cpu_rt_runtime`): kept
/// and shown as Docker shows them, a runtime above the period refused in its words; and,
/// where Docker 20.10 leaves its parent group without real-time time (its start fails until
/// the daemon is given `--cpu-rt-runtime`), netctl's container starts with its budget in
/// its cgroup, the `netctl` parent given what its containers ask and giving it back after.
#[test]
fn real_time_cpu_budgets_are_kept_and_put_in_force() {
    let (host, docker) = started();
    let rt = Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us");
    created_shows(
        &host,
        &docker,
        "rt",
        &["--cpu-rt-period", "1000", "--cpu-rt-runtime", "500"],
        "{{.HostConfig.CpuRealtimePeriod}} {{.HostConfig.CpuRealtimeRuntime}}",
    );
    same(
        &host,
        &docker,
        &[
            "create",
            "--net",
            "none",
            "--cpu-rt-period",
            "1000",
            "--cpu-rt-runtime",
            "2000",
            "busybox",
            "true",
        ],
    );
    if !rt.exists() {
        return; // no real-time groups here: nothing more to put in force
    }
    let id = host.netctl_ok(&[
        "run",
        "-d",
        "--net",
        "none",
        "--cpu-rt-period",
        "1000",
        "--cpu-rt-runtime",
        "500",
        "busybox",
        "sleep",
        "300",
    ]);
    let group = Path::new("/sys/fs/cgroup/cpu/netctl").join(id.trim());
    let read = |f: &str| std::fs::read_to_string(group.join(f)).unwrap_or_default();
    assert_eq!(
        (read("cpu.rt_period_us"), read("cpu.rt_runtime_us")),
        ("1000\n".into(), "500\n".into())
    );
    host.netctl_ok(&["rm", "-f", id.trim(), "rt"]);
    // No container asks for real-time time any more: the host's root has it back.
    eventually(
        "the netctl group gives its real-time time back",
        std::time::Duration::from_secs(5),
        || match std::fs::read_to_string("/sys/fs/cgroup/cpu/netctl/cpu.rt_runtime_us") {
            Ok(v) if v == "0\n" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

/// `--device-cgroup-rule` (docker-py's `device_cgroup_rules`): kept and shown, the rule in
/// the container's own /sys/fs/cgroup/devices/devices.list; a node outside the rules and
/// Docker's defaults does not open, also for a container given CAP_MKNOD without rules
/// (which could otherwise make and read the host's memory or disks); a bad rule refused in
/// Docker's words.
#[test]
fn device_groups_allow_only_the_defaults_devices_and_rules() {
    let (host, docker) = started();
    if !Path::new("/sys/fs/cgroup/devices/devices.allow").exists() {
        return; // cgroup v2: no device groups (netctl refuses the rules there)
    }
    let rule = "c 7:128 rwm";
    let listed = "grep -x 'c 7:128 rwm' /sys/fs/cgroup/devices/devices.list";
    same(
        &host,
        &docker,
        &run(&["--device-cgroup-rule", rule, "busybox", "sh", "-c", listed]),
    );
    created_shows(
        &host,
        &docker,
        "dcg",
        &["--device-cgroup-rule", rule],
        "{{json .HostConfig.DeviceCgroupRules}}",
    );
    let mem = "mknod /dev/mem2 c 1 1 && head -c1 /dev/mem2 >/dev/null; echo $?";
    for extra in [
        vec!["--cap-add", "MKNOD"],
        vec!["--cap-add", "MKNOD", "--device-cgroup-rule", rule],
    ] {
        let mut args = extra.clone();
        args.extend(["busybox", "sh", "-c", mem]);
        same(&host, &docker, &run(&args));
    }
    same(
        &host,
        &docker,
        &run(&["--device-cgroup-rule", "c 7:128", "busybox", "true"]),
    );
    same(&host, &docker, &["rm", "dcg"]);
}
