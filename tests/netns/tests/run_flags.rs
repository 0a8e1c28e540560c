//! `run` flags from compose files and tutorials — `--label`/`--label-file` and `ps
//! --filter`, `--read-only`, `--stop-signal`, `--stop-timeout`, `--domainname`, `--init`,
//! `--cidfile` — each asked of a real Docker 20.10 (in this test's namespaces, on the same
//! busybox image) and of netctl, and the answers compared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use netctl_netns_tests::docker::{both, started, Dockerd};
use netctl_netns_tests::TestHost;

/// Both give the same exit code and output (netctl's errors carry the same message).
fn same(host: &TestHost, docker: &Dockerd, args: &[&str]) -> String {
    let ((ncode, nout), (dcode, dout)) = both(host, docker, args);
    assert_eq!(ncode, dcode, "{args:?}: docker {dout:?}, netctl {nout:?}");
    let an_id = |s: &str| s.trim().len() == 64 && s.trim().bytes().all(|b| b.is_ascii_hexdigit());
    if dcode == 0 {
        if !(an_id(&nout) && an_id(&dout)) {
            assert_eq!(nout, dout, "{args:?}");
        }
    } else {
        let said = dout
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("docker: ")
            .trim_start_matches("Error response from daemon: ")
            .trim_end_matches('.');
        assert!(
            nout.contains(said),
            "{args:?}: docker said {said:?}, netctl {nout:?}"
        );
    }
    nout
}

/// A compose-style user labels containers and lists them by label, as Docker does.
#[test]
fn labels_are_kept_shown_and_filtered_as_docker_does() {
    let (host, docker) = started();
    let file = host.dir().join("labels");
    std::fs::write(&file, "# team labels\nteam=core\n\nowner=ops\n").unwrap();
    let file = file.display().to_string();
    for (name, extra) in [("l1", "tier=web"), ("l2", "tier=db")] {
        same(
            &host,
            &docker,
            &[
                "create",
                "--net",
                "none",
                "--name",
                name,
                "-l",
                extra,
                "--label",
                "flag",
                "--label-file",
                &file,
                "busybox",
                "true",
            ],
        );
    }
    same(
        &host,
        &docker,
        &["inspect", "-f", "{{json .Config.Labels}}", "l1"],
    );
    for filters in [
        &["label=tier=web"][..],
        &["label=tier"],
        &["label=team=core", "label=flag"],
        &["label=team=core", "label=nosuch"],
        &["label=tier=db", "name=^l"],
        &["status=created", "status=exited"],
    ] {
        let mut args = vec!["ps", "-a", "--format", "{{.Names}} {{.Labels}}"];
        for f in filters {
            args.extend_from_slice(&["--filter", f]);
        }
        let (n, d) = both(&host, &docker, &args);
        // Docker lists a container's labels in Go's map order (random): compare them sorted.
        let sorted = |s: &str| {
            let mut l: Vec<String> = s
                .lines()
                .map(|line| {
                    let (name, labels) = line.split_once(' ').unwrap_or((line, ""));
                    let mut labels: Vec<&str> = labels.split(',').collect();
                    labels.sort_unstable();
                    format!("{name} {}", labels.join(","))
                })
                .collect();
            l.sort();
            l
        };
        assert_eq!(sorted(&n.1), sorted(&d.1), "{filters:?}");
    }
    same(&host, &docker, &["ps", "-a", "--filter", "colour=red"]);
}

/// `--read-only`: the root cannot be written, a tmpfs and the working directory can be.
#[test]
fn a_read_only_root_refuses_writes_as_dockers_does() {
    let (host, docker) = started();
    fn run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["run", "--rm", "--net", "none", "--read-only"];
        a.extend_from_slice(extra);
        a
    }
    let refused = same(&host, &docker, &run(&["busybox", "touch", "/x"]));
    assert!(refused.contains("Read-only file system"), "{refused}");
    same(
        &host,
        &docker,
        &run(&["--tmpfs", "/tmp", "busybox", "touch", "/tmp/x"]),
    );
    // A tmpfs's options are in force: its size, mode and flags as the mount table shows.
    let shown = same(
        &host,
        &docker,
        &run(&[
            "--tmpfs",
            "/t:size=1m,mode=1770,noexec",
            "busybox",
            "sh",
            "-c",
            "grep ' /t ' /proc/mounts; stat -c %a /t",
        ]),
    );
    assert!(
        shown.contains("size=1024k") && shown.contains("1770"),
        "{shown}"
    );
    same(
        &host,
        &docker,
        &run(&["-w", "/made/here", "busybox", "pwd"]),
    );
    same(
        &host,
        &docker,
        &run(&["busybox", "sh", "-c", "echo x > /etc/hosts && echo ok"]),
    );
    same(
        &host,
        &docker,
        &[
            "create",
            "--net",
            "none",
            "--name",
            "ro",
            "--read-only",
            "busybox",
            "true",
        ],
    );
    same(
        &host,
        &docker,
        &["inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", "ro"],
    );
}

/// `--stop-signal` and `--stop-timeout`: `stop` asks with the container's signal and
/// kills after its timeout; a bad signal is refused at create.
#[test]
fn stop_signal_and_timeout_are_used_by_stop_as_dockers_are() {
    let (host, docker) = started();
    let traps = "trap 'echo got usr1; exit 7' USR1; while :; do sleep 0.1; done";
    same(
        &host,
        &docker,
        &[
            "run",
            "-d",
            "--net",
            "none",
            "--name",
            "sig",
            "--stop-signal",
            "usr1",
            "busybox",
            "sh",
            "-c",
            traps,
        ],
    );
    let ignores = "trap '' TERM; while :; do sleep 0.1; done";
    same(
        &host,
        &docker,
        &[
            "run",
            "-d",
            "--net",
            "none",
            "--name",
            "slow",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            ignores,
        ],
    );
    let shown = "{{.Config.StopSignal}} {{json .Config.StopTimeout}}";
    same(&host, &docker, &["inspect", "-f", shown, "sig", "slow"]);
    // Let both shells set their traps before they are asked to stop.
    netctl_netns_tests::eventually("traps set", Duration::from_secs(10), || {
        let n = host.netctl(&["top", "sig"]).1;
        let d = docker.run(&["top", "sig"]).1;
        if n.contains("sleep") && d.contains("sleep") {
            Ok(())
        } else {
            Err(format!("{n} / {d}"))
        }
    });
    for name in ["sig", "slow"] {
        let began = Instant::now();
        host.netctl_ok(&["stop", name]);
        assert!(
            began.elapsed() < Duration::from_secs(8),
            "{name}: the container's own timeout, not Docker's default 10 s"
        );
        assert_eq!(docker.run(&["stop", name]).0, 0);
    }
    same(
        &host,
        &docker,
        &["inspect", "-f", "{{.State.ExitCode}}", "sig", "slow"],
    );
    same(&host, &docker, &["logs", "sig"]);
    same(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "--stop-signal",
            "NOPE",
            "busybox",
            "true",
        ],
    );
}

/// `--domainname` sets the UTS domain name; /etc/hosts names the container as Docker's
/// does.
#[test]
fn the_domain_name_is_set_as_dockers_is() {
    let (host, docker) = started();
    let script = "cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname; grep web /etc/hosts | sed 's/^[0-9.]*//'";
    same(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--hostname",
            "web",
            "--domainname",
            "example.org",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
}

/// `-p` exposes the ports it publishes (a script reading `Config.ExposedPorts` sees them), and
/// `-P` then publishes only the exposed ports `-p` left unbound: one host port each.
#[test]
fn published_ports_are_exposed_and_publish_all_binds_the_rest_once() {
    let (host, docker) = started();
    same(
        &host,
        &docker,
        &[
            "create",
            "--name",
            "pp",
            "-p",
            "7000-7001",
            "-p",
            "53/udp",
            "-p",
            "127.0.0.1::7200",
            "--expose",
            "7100",
            "-P",
            "busybox",
            "sleep",
            "60",
        ],
    );
    same(
        &host,
        &docker,
        &["inspect", "-f", "{{json .Config.ExposedPorts}}", "pp"],
    );
    same(&host, &docker, &["start", "pp"]);
    // The host ports picked differ (both run in one namespace); the bindings must not.
    let shape = |out: String| -> Vec<String> {
        let mut lines: Vec<String> = out
            .lines()
            .map(|l| match l.rsplit_once(':') {
                Some((head, port)) if port.parse::<u16>().is_ok() => format!("{head}:N"),
                _ => l.to_string(),
            })
            .collect();
        lines.sort();
        lines
    };
    let ((nc, n), (dc, d)) = both(&host, &docker, &["port", "pp"]);
    assert_eq!((nc, shape(n)), (dc, shape(d)));
}

/// An image's `VOLUME` gets a volume in each of its containers, filled from the image and
/// shown in `Config.Volumes`; `-v` on the path replaces it; `--rm` takes the anonymous one
/// away — as Docker does.
#[test]
fn an_images_volumes_are_made_for_its_containers_as_dockers_are() {
    let (host, docker) = started();
    let seed = "mkdir /data && echo seeded > /data/seed";
    let made = [
        &["run", "--name", "base", "busybox", "sh", "-c", seed][..],
        &["commit", "--change", "VOLUME /data", "base", "volimg"],
    ];
    for args in made {
        let ((nc, n), (dc, d)) = both(&host, &docker, args);
        assert_eq!((nc, dc), (0, 0), "{args:?}: {n} / {d}");
    }
    let look = "cat /data/seed; grep -c ' /data ' /proc/mounts; echo x > /data/new && echo wrote";
    same(&host, &docker, &["run", "--rm", "volimg", "sh", "-c", look]);
    same(
        &host,
        &docker,
        &["run", "--rm", "-v", "named:/data", "volimg", "ls", "/data"],
    );
    same(
        &host,
        &docker,
        &["create", "--name", "vc", "volimg", "true"],
    );
    let shown = "{{json .Config.Volumes}} {{range .Mounts}}{{.Type}} {{.Destination}} \
        [{{.Mode}}] {{.RW}}{{end}} {{json .HostConfig.Binds}}";
    same(&host, &docker, &["inspect", "-f", shown, "vc"]);
    // The --rm runs' anonymous volumes are gone; vc's and the named one stay.
    let ((nc, n), (dc, d)) = both(&host, &docker, &["volume", "ls", "-q"]);
    assert_eq!(
        (nc, n.lines().count()),
        (dc, d.lines().count()),
        "{n} / {d}"
    );
    assert_eq!(n.lines().count(), 2, "{n}");
    // A volume over the whole root: Docker 20.10 makes it and its runtime then fails to
    // start (127, "open /proc/sys/...: no such file"); netctl refuses it before making
    // anything, as the bad flag it is.
    let ((nc, n), (dc, _)) = both(
        &host,
        &docker,
        &["run", "--rm", "-v", "/", "busybox", "true"],
    );
    assert_eq!((nc, dc), (125, 127), "{n}");
    assert!(n.contains("destination can't be '/'"), "{n}");
}

/// `--init`: a stop reaches a command that has no handler of its own (it is not PID 1),
/// and an orphan is reaped; without it the orphan stays a zombie — in Docker as in netctl.
#[test]
fn an_init_passes_signals_on_and_reaps_orphans_as_dockers_does() {
    let (host, docker) = started();
    let orphan = "(sleep 0.1 &); exec sleep 60";
    for (name, init) in [("with", true), ("without", false)] {
        let mut args = vec!["run", "-d", "--net", "none", "--name", name];
        if init {
            args.push("--init");
        }
        args.extend_from_slice(&["busybox", "sh", "-c", orphan]);
        same(&host, &docker, &args);
    }
    let zombies = |out: &str| {
        out.lines()
            .filter(|l| l.trim_start().starts_with('Z'))
            .count()
    };
    for (name, want) in [("with", 0), ("without", 1)] {
        netctl_netns_tests::eventually(name, Duration::from_secs(10), || {
            let n = zombies(&host.netctl(&["exec", name, "ps", "-o", "stat,comm"]).1);
            let d = zombies(&docker.run(&["exec", name, "ps", "-o", "stat,comm"]).1);
            if (n, d) == (want, want) {
                Ok(())
            } else {
                Err(format!("zombies: netctl {n}, docker {d}"))
            }
        });
    }
    let began = Instant::now();
    host.netctl_ok(&["stop", "with"]);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "TERM passed on, no kill needed"
    );
    assert_eq!(docker.run(&["stop", "with"]).0, 0);
    same(
        &host,
        &docker,
        &[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{json .HostConfig.Init}}",
            "with",
        ],
    );
    same(
        &host,
        &docker,
        &["inspect", "-f", "{{json .HostConfig.Init}}", "without"],
    );
}

/// `--cidfile` gets the full ID; a second run that would overwrite it is refused.
#[test]
fn the_cidfile_holds_the_id_and_is_never_overwritten() {
    let (host, docker) = started();
    let nfile = host.dir().join("n.cid").display().to_string();
    let dfile = host.dir().join("d.cid").display().to_string();
    let id = host.netctl_ok(&[
        "create",
        "--net",
        "none",
        "--cidfile",
        &nfile,
        "busybox",
        "true",
    ]);
    assert_eq!(std::fs::read_to_string(&nfile).unwrap(), id.trim());
    let (code, _) = docker.run(&[
        "create",
        "--net",
        "none",
        "--cidfile",
        &dfile,
        "dbox",
        "true",
    ]);
    assert_eq!(code, 0);
    let (ncode, nout, nerr) = host.netctl(&[
        "create",
        "--net",
        "none",
        "--cidfile",
        &nfile,
        "busybox",
        "true",
    ]);
    let (dcode, dout) = docker.run(&[
        "create",
        "--net",
        "none",
        "--cidfile",
        &dfile,
        "dbox",
        "true",
    ]);
    assert_eq!(
        ncode, dcode,
        "exit codes {ncode} {dcode}: {dout} / {nout}{nerr}"
    );
    let said = dout
        .trim()
        .trim_start_matches("docker: ")
        .replace(&dfile, &nfile);
    assert!(nerr.contains(said.trim_end_matches('.')), "{said} / {nerr}");
    let (ncode, _, nerr) = host.netctl(&[
        "run",
        "--net",
        "none",
        "--cidfile",
        &nfile,
        "busybox",
        "true",
    ]);
    let (dcode, dout) = docker.run(&["run", "--net", "none", "--cidfile", &dfile, "dbox", "true"]);
    assert_eq!((ncode, dcode), (125, 125), "{dout} / {nerr}");
    assert_eq!(host.netctl_ok(&["ps", "-aq"]).lines().count(), 1);
}

/// A mistyped flag before the image, a bad value, and flags after the image (which are the
/// command's): Docker's exit codes and the command's own `-c`.
#[test]
fn flags_end_at_the_image_and_bad_ones_exit_125_as_dockers_do() {
    let (host, docker) = started();
    for args in [
        &["run", "--rm", "--foo", "busybox", "true"][..],
        &["run", "--rm", "--cpu-shares", "lots", "busybox", "true"],
        &["create", "--restart", "sometimes", "busybox", "true"],
    ] {
        let ((ncode, nout), (dcode, dout)) = both(&host, &docker, args);
        assert_eq!(ncode, dcode, "{args:?}: docker {dout:?}, netctl {nout:?}");
    }
    same(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo -c is sh's",
        ],
    );
}

/// `--uts host` keeps the host's hostname (and refuses `--hostname` with it), `--isolation
/// default` and `--runtime runc` are Docker's defaults on Linux and show in inspect, and
/// any other isolation or runtime is refused, all as Docker does.
#[test]
fn uts_isolation_and_runtime_are_taken_as_docker_takes_them() {
    let (host, docker) = started();
    let hostname = host.sh("hostname");
    let shown = same(
        &host,
        &docker,
        &[
            "run", "--rm", "--net", "none", "--uts", "host", "busybox", "hostname",
        ],
    );
    assert_eq!(shown, hostname);
    same(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--uts",
            "host",
            "--hostname",
            "x1",
            "busybox",
            "true",
        ],
    );
    same(
        &host,
        &docker,
        &["create", "--isolation", "hyperv", "busybox", "true"],
    );
    same(
        &host,
        &docker,
        &["create", "--runtime", "kata", "busybox", "true"],
    );
    let args = [
        "create",
        "--name",
        "iso",
        "--uts",
        "host",
        "--isolation",
        "default",
        "--runtime",
        "runc",
        "busybox",
        "true",
    ];
    same(&host, &docker, &args);
    let format = "{{.HostConfig.UTSMode}} {{.HostConfig.Isolation}} {{.HostConfig.Runtime}}";
    let shown = same(&host, &docker, &["inspect", "-f", format, "iso"]);
    assert_eq!(shown.trim(), "host default runc");
}

/// A legacy `--link NAME:ALIAS` gives the container Docker's variables for it: the link's
/// name, the target's exposed ports (URL, address, port, protocol) and its own variables.
#[test]
fn a_legacy_link_gives_dockers_variables() {
    let (host, docker) = started();
    same(
        &host,
        &docker,
        &[
            "run", "-d", "--name", "db", "-e", "FOO=1", "--expose", "5432", "--expose", "53/udp",
            "busybox", "sleep", "100",
        ],
    );
    let shown = same(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--name",
            "app",
            "--link",
            "db:my-db",
            "busybox",
            "sh",
            "-c",
            "env | grep ^MY_DB | sed 's/172\\.17\\.0\\.[0-9]*/IP/' | sort",
        ],
    );
    assert!(
        shown.contains("MY_DB_ENV_FOO=1") && shown.contains("MY_DB_PORT_5432_TCP_ADDR=IP"),
        "{shown}"
    );
}

/// `network create --aux-address`: the addresses named are kept from containers (the first
/// container gets the next one) and shown in the network's IPAM config, as Docker does; one
/// outside every subnet is refused in Docker's words.
#[test]
fn aux_addresses_are_kept_from_containers_as_dockers_are() {
    let (host, docker) = started();
    same(
        &host,
        &docker,
        &[
            "network",
            "create",
            "--subnet",
            "172.29.0.0/24",
            "--aux-address",
            "router=172.29.0.2",
            "--aux-address",
            "printer=172.29.0.3",
            "auxnet",
        ],
    );
    let addr = same(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--net",
            "auxnet",
            "busybox",
            "sh",
            "-c",
            "ip -o -4 addr show eth0 | awk '{print $4}'",
        ],
    );
    assert_eq!(addr.trim(), "172.29.0.4/24");
    let shown = same(
        &host,
        &docker,
        &[
            "network",
            "inspect",
            "-f",
            "{{json (index .IPAM.Config 0).AuxiliaryAddresses}}",
            "auxnet",
        ],
    );
    assert_eq!(
        shown.trim(),
        r#"{"printer":"172.29.0.3","router":"172.29.0.2"}"#
    );
    same(
        &host,
        &docker,
        &[
            "network",
            "create",
            "--subnet",
            "172.30.0.0/24",
            "--aux-address",
            "x=10.9.9.9",
            "badaux",
        ],
    );
}

/// `--link` on a user network, as the docker CLI sends it, and `network connect --link`:
/// the alias answers as the linked container for the linking container alone, also when
/// the linked one comes later; no legacy variables and no /etc/hosts line; the links are
/// shown under the network's `Links`.
#[test]
fn links_on_a_user_network_are_names_for_the_linking_container_alone() {
    let (host, docker) = started();
    for (name, subnet) in [("app", "172.73.0.0/24"), ("app2", "172.73.1.0/24")] {
        same(
            &host,
            &docker,
            &["network", "create", "--subnet", subnet, name],
        );
    }
    let sleeper = |name: &'static str, net: &'static str, extra: &[&'static str]| {
        let mut args = vec!["run", "-d", "--name", name, "--net", net];
        args.extend_from_slice(extra);
        args.extend(["busybox", "sleep", "300"]);
        same(&host, &docker, &args);
    };
    sleeper("linker", "app", &["--link", "up:bar"]);
    sleeper("other", "app", &[]);
    sleeper("up", "app", &["--ip", "172.73.0.50"]);
    sleeper("late", "app2", &[]);
    same(
        &host,
        &docker,
        &["network", "connect", "--link", "up:baz", "app", "late"],
    );
    for (who, name) in [
        ("linker", "bar"),
        ("other", "bar"),
        ("late", "baz"),
        ("late", "bar"),
    ] {
        let ask = format!("nslookup {name} 2>&1 | grep -c 172.73.0.50");
        same(&host, &docker, &["exec", who, "sh", "-c", &ask]);
    }
    same(
        &host,
        &docker,
        &[
            "exec",
            "linker",
            "sh",
            "-c",
            "grep -c bar /etc/hosts; env | grep -c ^BAR_",
        ],
    );
    same(
        &host,
        &docker,
        &[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks.app.Links}} {{json .HostConfig.Links}}",
            "linker",
            "late",
        ],
    );
    same(
        &host,
        &docker,
        &["rm", "-f", "linker", "other", "late", "up"],
    );
}

/// `--link-local-ip` (docker-py's `link_local_ips`, `network connect --link-local-ip`): the
/// addresses are on the container's interface beside the network's (IPv4 with /16) and
/// shown under `IPAMConfig.LinkLocalIPs`, on the default bridge and on a user network; a
/// bad one is refused in Docker's words. (The networks are named: Docker 20.10's CLI files
/// the addresses of a `run` without `--net` under a network "default" its daemon never
/// attaches, so they are lost there; netctl puts them on the first network.)
#[test]
fn link_local_addresses_are_added_as_dockers_are() {
    let (host, docker) = started();
    let shown = "ip -o addr show eth0 | grep -o '169.254[.0-9]*/[0-9]*' | sort";
    same(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--net",
            "bridge",
            "--link-local-ip",
            "169.254.8.8",
            "busybox",
            "sh",
            "-c",
            shown,
        ],
    );
    same(
        &host,
        &docker,
        &[
            "create",
            "--name",
            "ll",
            "--net",
            "bridge",
            "--link-local-ip",
            "169.254.9.9",
            "--link-local-ip",
            "fe80::99",
            "busybox",
            "true",
        ],
    );
    same(
        &host,
        &docker,
        &[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks.bridge.IPAMConfig}}",
            "ll",
        ],
    );
    same(
        &host,
        &docker,
        &["network", "create", "--subnet", "172.74.0.0/24", "lln"],
    );
    same(
        &host,
        &docker,
        &[
            "run", "-d", "--name", "llc", "--net", "lln", "busybox", "sleep", "300",
        ],
    );
    same(
        &host,
        &docker,
        &[
            "network",
            "connect",
            "--link-local-ip",
            "169.254.6.6",
            "bridge",
            "llc",
        ],
    );
    same(
        &host,
        &docker,
        &["exec", "llc", "sh", "-c", &shown.replace("eth0", "eth1")],
    );
    same(
        &host,
        &docker,
        &[
            "run",
            "--rm",
            "--net",
            "bridge",
            "--link-local-ip",
            "not-an-ip",
            "busybox",
            "true",
        ],
    );
    same(&host, &docker, &["rm", "-f", "ll", "llc"]);
}

/// A legacy link (`--link` on the default bridge) is listed among its target's names and
/// goes with `rm --link PARENT/ALIAS`, both containers staying; the default name and a
/// link that is not there are refused in Docker's words.
#[test]
fn a_legacy_link_is_named_and_removed_as_dockers_is() {
    let (host, docker) = started();
    for (name, extra) in [("lsrc", None), ("ldst", Some("lsrc:mylink"))] {
        let mut args = vec!["run", "-d", "--name", name];
        if let Some(l) = extra {
            args.extend(["--link", l]);
        }
        args.extend(["busybox", "sleep", "300"]);
        same(&host, &docker, &args);
    }
    let names = [
        "ps",
        "--no-trunc",
        "--format",
        "{{.Names}}",
        "-f",
        "name=lsrc",
    ];
    same(&host, &docker, &names);
    same(&host, &docker, &["rm", "--link", "ldst/mylink"]);
    same(&host, &docker, &names);
    same(
        &host,
        &docker,
        &["inspect", "-f", "{{json .HostConfig.Links}}", "ldst"],
    );
    same(
        &host,
        &docker,
        &[
            "ps",
            "--format",
            "{{.Names}}",
            "-f",
            "name=ldst",
            "-f",
            "name=lsrc",
        ],
    );
    for bad in ["lsrc", "ldst/nothere"] {
        same(&host, &docker, &["rm", "--link", bad]);
    }
    same(&host, &docker, &["rm", "-f", "lsrc", "ldst"]);
}
