//! What scripts read from listings and inspect: `ps --no-trunc/-s/--filter publish=|expose=`,
//! `port`, `rm -f` of a missing container, `-f` on network, volume and image inspect,
//! `--format` on `images` and `volume ls`, and the `container VERB` forms — asked of a real
//! Docker 20.10 and of netctl side by side.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netctl_netns_tests::docker::Dockerd;
use netctl_netns_tests::TestHost;

/// `args` run by both (`busybox` is Docker's `dbox`; both share the host's ports, so
/// Docker publishes 9080 where netctl publishes 8080, and its answers are read back as
/// 8080); their exit codes and output.
fn both(host: &TestHost, docker: &Dockerd, args: &[&str]) -> ((i32, String), (i32, String)) {
    let (code, out, err) = host.netctl(args);
    let dargs: Vec<String> = args
        .iter()
        .map(|a| {
            if *a == "busybox" {
                "dbox".to_string()
            } else {
                a.replace("8080", "9080")
            }
        })
        .collect();
    let dargs: Vec<&str> = dargs.iter().map(String::as_str).collect();
    let (dcode, dout) = docker.run(&dargs);
    ((code, out + &err), (dcode, dout.replace("9080", "8080")))
}

fn same(host: &TestHost, docker: &Dockerd, args: &[&str]) -> String {
    let ((nc, n), (dc, d)) = both(host, docker, args);
    assert_eq!(
        (nc, n.replace("dbox", "busybox")),
        (dc, d.replace("dbox", "busybox")),
        "{args:?}"
    );
    n
}

#[test]
fn listings_and_inspect_templates_read_as_dockers() {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    for args in [
        &[
            "run", "-d", "--name", "web", "-p", "8080:80", "--expose", "443", "busybox", "httpd",
            "-f", "-p", "80",
        ][..],
        &["volume", "create", "--label", "tier=db", "data"],
        &["tag", "busybox", "mybox:v1"],
    ] {
        let ((nc, n), (dc, d)) = both(&host, &docker, args);
        assert_eq!((nc, dc), (0, 0), "{args:?}: {n} / {d}");
    }
    let id = host.netctl_ok(&["ps", "-q", "--no-trunc"]);
    assert_eq!(id.trim().len(), 64, "--no-trunc gives the full ID: {id}");
    for filter in [
        "publish=8080",
        "publish=8080/tcp",
        "publish=8080/udp",
        "expose=80",
        "expose=443",
        "expose=22",
    ] {
        same(
            &host,
            &docker,
            &["ps", "--filter", filter, "--format", "{{.Names}}"],
        );
    }
    same(&host, &docker, &["port", "web", "80/tcp"]);
    same(&host, &docker, &["port", "web"]);
    // The IPv6 twin answers, through netctl's proxy as through Docker's.
    for port in ["8080", "9080"] {
        let page = host.sh(&format!(
            "busybox wget -q -O- http://[::1]:{port}/www/index.html"
        ));
        assert_eq!(page, "hello from busybox httpd\n", "[::1]:{port}");
    }
    let ((nc, n), (dc, d)) = both(&host, &docker, &["rm", "-f", "nosuch"]);
    assert_eq!(
        (nc, n.trim()),
        (dc, d.trim()),
        "rm -f of a missing container"
    );
    same(
        &host,
        &docker,
        &[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Scope}}",
            "bridge",
            "host",
        ],
    );
    same(
        &host,
        &docker,
        &[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Labels}}",
            "data",
        ],
    );
    same(
        &host,
        &docker,
        &[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Labels}}",
        ],
    );
    same(
        &host,
        &docker,
        &["volume", "ls", "--format", "table {{.Name}}\t{{.Driver}}"],
    );
    same(
        &host,
        &docker,
        &["images", "--format", "{{.Repository}}:{{.Tag}}", "mybox"],
    );
    same(
        &host,
        &docker,
        &["image", "inspect", "-f", "{{.RepoTags}}", "mybox:v1"],
    );
    same(
        &host,
        &docker,
        &["container", "ls", "--format", "{{.Names}} {{.Ports}}"],
    );
    same(
        &host,
        &docker,
        &[
            "container",
            "run",
            "--rm",
            "--net",
            "none",
            "busybox",
            "echo",
            "hi",
        ],
    );
    let sizes = host.netctl_ok(&["ps", "-s", "--format", "{{.Size}}"]);
    assert!(
        sizes.starts_with("0B (virtual ") || sizes.contains("B (virtual "),
        "{sizes}"
    );
    let header = host.netctl_ok(&["ps", "-s"]);
    assert!(header.lines().next().unwrap().ends_with("SIZE"), "{header}");
}

/// On a user network a started container's `Aliases` are its aliases, its short ID and its
/// hostname, and `DNSNames` adds its name first, as Docker 20.10 shows them.
#[test]
fn aliases_list_the_short_id_and_hostname_as_dockers() {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    for args in [
        &["network", "create", "app"][..],
        &[
            "run",
            "-d",
            "--name",
            "db",
            "--net",
            "app",
            "--net-alias",
            "database",
            "busybox",
            "sleep",
            "60",
        ],
        &[
            "run",
            "-d",
            "--name",
            "cache",
            "--net",
            "app",
            "--hostname",
            "myhost",
            "busybox",
            "sleep",
            "60",
        ],
    ] {
        let ((nc, n), (dc, d)) = both(&host, &docker, args);
        assert_eq!((nc, dc), (0, 0), "{args:?}: {n} / {d}");
    }
    for name in ["db", "cache"] {
        let f = "{{json .NetworkSettings.Networks.app.Aliases}}";
        let nid = host.netctl_ok(&["inspect", "-f", "{{.Id}}", name]);
        let did = docker.run(&["inspect", "-f", "{{.Id}}", name]).1;
        let n = host
            .netctl_ok(&["inspect", "-f", f, name])
            .replace(&nid.trim()[..12], "ID");
        let d = docker
            .run(&["inspect", "-f", f, name])
            .1
            .replace(&did.trim()[..12], "ID");
        assert_eq!(n, d, "{name}");
    }
    // The top-level endpoint fields are Docker's copy of the default bridge's endpoint:
    // empty for a container on a user network, filled for one on `bridge`.
    host.netctl_ok(&["run", "-d", "--name", "bb", "busybox", "sleep", "60"]);
    docker.run(&["run", "-d", "--name", "bb", "dbox", "sleep", "60"]);
    let f = "{{.NetworkSettings.IPAddress}}/{{.NetworkSettings.IPPrefixLen}} \
             {{.NetworkSettings.Gateway}} {{.NetworkSettings.MacAddress}} \
             [{{.NetworkSettings.Bridge}}] [{{.NetworkSettings.GlobalIPv6Address}}] \
             [{{.NetworkSettings.IPv6Gateway}}] {{.NetworkSettings.GlobalIPv6PrefixLen}} \
             {{.NetworkSettings.HairpinMode}} [{{.NetworkSettings.LinkLocalIPv6Address}}] \
             {{json .NetworkSettings.SecondaryIPAddresses}} {{len .NetworkSettings.EndpointID}}";
    for name in ["db", "bb"] {
        let ((nc, n), (dc, d)) = both(&host, &docker, &["inspect", "-f", f, name]);
        assert_eq!((nc, n), (dc, d), "{name}");
    }
}

/// `top` lists the container's processes as Docker's does (sh runs its last command in its
/// own place: two processes): `ps -ef` titles by default,
/// `ps` options passed through, only the container's own rows.
#[test]
fn top_lists_the_containers_processes_as_dockers() {
    let (host, docker) = netctl_netns_tests::docker::started();
    let (nc, dc) = (
        host.netctl(&[
            "run",
            "-d",
            "--net",
            "none",
            "--name",
            "tp",
            "busybox",
            "sh",
            "-c",
            "sleep 600 & sleep 601",
        ])
        .0,
        docker
            .run(&[
                "run",
                "-d",
                "--net",
                "none",
                "--name",
                "tp",
                "dbox",
                "sh",
                "-c",
                "sleep 600 & sleep 601",
            ])
            .0,
    );
    assert_eq!((nc, dc), (0, 0));
    let titles = |s: &str| {
        s.lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let commands = |s: &str| {
        let mut v: Vec<String> = s
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    };
    netctl_netns_tests::eventually("both trees run", std::time::Duration::from_secs(10), || {
        let n = host.netctl_ok(&["top", "tp"]);
        let d = docker.run(&["top", "tp"]).1;
        if n.lines().count() == 3 && d.lines().count() == 3 {
            Ok(())
        } else {
            Err(format!("{n}\n{d}"))
        }
    });
    let n = host.netctl_ok(&["top", "tp"]);
    let d = docker.run(&["top", "tp"]).1;
    assert_eq!(titles(&n), titles(&d));
    let n = host.netctl_ok(&["top", "tp", "-o", "pid,comm"]);
    let d = docker.run(&["top", "tp", "-o", "pid,comm"]).1;
    assert_eq!((titles(&n), commands(&n)), (titles(&d), commands(&d)));
}

/// The key paths of an inspected object: every map's keys, into each list's first item, and
/// not into maps whose keys are the user's (labels, ports, options).
fn key_paths(v: &serde_json::Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
    const USERS: [&str; 7] = [
        "Labels",
        "Ports",
        "ExposedPorts",
        "PortBindings",
        "Options",
        "Volumes",
        "Sysctls",
    ];
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}.{k}");
                out.insert(p.clone());
                let users = USERS.contains(&k.as_str()) || p.ends_with("LogConfig.Config");
                if !users {
                    key_paths(x, &p, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            if let Some(first) = items.first() {
                key_paths(first, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// A script's `inspect -f '{{.HostConfig.CpuQuota}}'` or `{{.GraphDriver.Data.MergedDir}}`
/// reads what Docker shows: every key Docker's `inspect` gives a container (with volumes,
/// a bind and a published port) or an image, netctl's gives too, and the values a script
/// would read (binds, modes, attached streams, masked paths, an image's unset config) are
/// Docker's.
#[test]
fn inspect_shows_every_key_dockers_shows() {
    let (host, docker) = netctl_netns_tests::docker::started();
    let create = [
        "create",
        "-i",
        "--name",
        "ik",
        "-v",
        "data:/data",
        "-v",
        "/tmp:/host:ro",
        "-v",
        "/anon",
        "-v",
        "more:/more:ro",
        "-p",
        "8080:80",
        "busybox",
        "sleep",
        "60",
    ];
    let run = [
        "run", "-d", "-i", "--name", "ik2", "-P", "busybox", "sleep", "60",
    ];
    for args in [&create[..], &run] {
        let ((nc, n), (dc, d)) = both(&host, &docker, args);
        assert_eq!((nc, dc), (0, 0), "{n} / {d}");
    }
    for what in ["ik", "ik2", "busybox"] {
        let ((nc, n), (dc, d)) = both(&host, &docker, &["inspect", what]);
        assert_eq!((nc, dc), (0, 0), "{n} / {d}");
        let paths = |s: &str| {
            let v: serde_json::Value = serde_json::from_str(s).unwrap();
            let mut out = std::collections::BTreeSet::new();
            key_paths(&v[0], "", &mut out);
            out
        };
        let (n, d) = (paths(&n), paths(&d));
        let missing: Vec<&String> = d.difference(&n).collect();
        assert!(missing.is_empty(), "{what}: netctl lacks {missing:?}");
    }
    let unset = "{{json .Config.Cmd}} {{json .Config.Entrypoint}} {{json .Config.Volumes}} \
        {{.Config.User}} [{{.Config.WorkingDir}}] {{json .Config.Labels}} \
        {{json .ContainerConfig.OnBuild}} {{.GraphDriver.Name}}";
    same(
        &host,
        &docker,
        &["image", "inspect", "-f", unset, "busybox"],
    );
    for what in ["ik", "ik2"] {
        let values = "{{.HostConfig.PublishAllPorts}} \
            {{json .HostConfig.MaskedPaths}} {{json .HostConfig.ReadonlyPaths}} \
            {{json .HostConfig.ConsoleSize}} {{.HostConfig.CpuQuota}} {{.Config.AttachStdin}} \
            {{.Config.AttachStdout}} {{.Config.AttachStderr}} {{.Config.StdinOnce}} \
            {{json .Config.Volumes}} {{.Platform}} {{.GraphDriver.Name}} {{json .ExecIDs}}";
        same(&host, &docker, &["inspect", "-f", values, what]);
        // Docker lists mounts and binds in no fixed order.
        let mounts = "{{range .Mounts}}{{.Type}} {{.Destination}} {{.Driver}} {{.Mode}} \
            {{.RW}}\n{{end}}{{range .HostConfig.Binds}}{{.}}\n{{end}}";
        let ((nc, n), (dc, d)) = both(&host, &docker, &["inspect", "-f", mounts, what]);
        let sorted = |s: String| {
            let mut l: Vec<String> = s.lines().map(String::from).collect();
            l.sort();
            l
        };
        assert_eq!((nc, sorted(n)), (dc, sorted(d)), "{what}");
    }
    // What a container cannot read or change, as in Docker's.
    let masked = "wc -c < /proc/kcore; ls -A /sys/firmware | wc -l; \
        echo 1 > /proc/sysrq-trigger || echo refused";
    same(
        &host,
        &docker,
        &[
            "run", "--rm", "--net", "none", "busybox", "sh", "-c", masked,
        ],
    );
    let id_file = host.dir().join("ik3.cid");
    let id_file = id_file.to_str().unwrap();
    host.netctl_ok(&[
        "create",
        "--name",
        "ik3",
        "--cidfile",
        id_file,
        "busybox",
        "true",
    ]);
    let shown = host.netctl_ok(&["inspect", "-f", "{{.HostConfig.ContainerIDFile}}", "ik3"]);
    assert_eq!(shown.trim(), id_file);
}
