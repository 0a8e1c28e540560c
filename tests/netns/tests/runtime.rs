//! The bundled runtime as a user drives it: `netctl run/ps/exec/logs/stop/start/rm` on a
//! busybox image made from Debian's busybox-static, every container networked through the
//! plugins.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::BufRead;
use std::time::Duration;

use netctl_netns_tests::{eventually, TestHost};
use serde_json::Value;

fn inspect(host: &TestHost, what: &str) -> Value {
    let v: Value = serde_json::from_str(&host.netctl_ok(&["inspect", what])).unwrap();
    v[0].clone()
}

/// An HTTP GET through `sh_fn`, retried for up to 3 s while the server starts.
fn http_get(sh_fn: impl Fn(&str) -> (bool, String), addr: &str, port: u16) -> String {
    let cmd = format!("printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | busybox nc -w 3 {addr} {port}");
    eventually("an HTTP answer", Duration::from_secs(3), || {
        match sh_fn(&cmd) {
            (true, out) if out.contains("200 OK") => Ok(out),
            (_, out) => Err(out),
        }
    })
}

/// The first line `child` prints on its stdout (after which it keeps running).
fn first_line(
    child: &mut std::process::Child,
) -> (String, std::io::BufReader<std::process::ChildStdout>) {
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (line, out)
}

/// The container's IPv4 address on its (one) network.
fn ip_of(host: &TestHost, ctr: &str) -> String {
    let v = inspect(host, ctr);
    let networks = v["NetworkSettings"]["Networks"].as_object().unwrap();
    let mut ips = networks.values().map(|n| n["IPAddress"].as_str().unwrap());
    ips.next().unwrap().to_string()
}

/// Three `run -d --net-alias web` containers: ps shows them Up by name, `nslookup web` from
/// one answers all three, ping by name works, logs show what a container printed, stop +
/// start keep the name and reattach, and `rm -f` leaves the host as it was.
#[test]
fn three_web_containers_resolve_ping_log_restart_and_leave_nothing() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "app"]);
    // A network's bridge is made by its first container and stays until `network rm`.
    host.netctl_ok(&["run", "--rm", "--net", "app", "busybox", "true"]);
    let before = host.host_listing();
    for name in ["web1", "web2", "web3"] {
        let id = host.netctl_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--net",
            "app",
            "--net-alias",
            "web",
            "busybox",
            "sh",
            "-c",
            &format!("echo {name} says hello; exec sleep 1000"),
        ]);
        assert_eq!(id.trim().len(), 64, "run -d prints the ID: {id}");
    }
    let ps = host.netctl_ok(&["ps"]);
    let lines: Vec<&str> = ps.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID   IMAGE"), "{ps}");
    for name in ["web1", "web2", "web3"] {
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(name) && l.contains(" Up ")),
            "{name} is Up in ps: {ps}"
        );
    }
    let ns = host.netctl_ok(&["exec", "web1", "nslookup", "web"]);
    for name in ["web1", "web2", "web3"] {
        assert!(
            ns.contains(&ip_of(&host, name)),
            "web resolves to {name}: {ns}"
        );
    }
    let ping = host.netctl_ok(&["exec", "web1", "ping", "-c1", "-W2", "web2"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    assert_eq!(host.netctl_ok(&["logs", "web2"]), "web2 says hello\n");

    host.netctl_ok(&["stop", "-t", "1", "web3"]);
    let ps = host.netctl_ok(&["ps", "-a"]);
    assert!(
        ps.lines()
            .any(|l| l.ends_with("web3") && l.contains("Exited (137)")),
        "{ps}"
    );
    assert_eq!(
        inspect(&host, "web3")["NetworkSettings"]["Networks"]["app"]["IPAddress"],
        "",
        "a stopped container has no address, as in Docker"
    );
    host.netctl_ok(&["start", "web3"]);
    assert_eq!(inspect(&host, "web3")["Name"], "/web3");
    let ping = host.netctl_ok(&["exec", "web1", "ping", "-c1", "-W2", "web3"]);
    assert!(
        ping.contains("1 packets received"),
        "web3 is reachable again: {ping}"
    );
    assert_eq!(
        host.netctl_ok(&["logs", "--tail", "1", "web3"]),
        "web3 says hello\n"
    );

    host.netctl_ok(&["rm", "-f", "web1", "web2", "web3"]);
    assert_eq!(host.netctl_ok(&["ps", "-aq"]), "");
    assert_eq!(
        host.host_listing(),
        before,
        "rm -f leaves no link, address, rule, mount, namespace, allocation or record"
    );
}

/// `-p 8080:80` with busybox httpd answers from another namespace via the host's address and
/// from the host via 127.0.0.1; a second container cannot take the same host port, nor can
/// a port a host program holds be published; `-p 80` picks a free port.
#[test]
fn published_ports_answer_and_taken_ports_are_refused() {
    let mut host = TestHost::new();
    host.busybox_image();
    let outside = host.outside("lan", "192.0.2.1/24", "192.0.2.2/24");
    host.netctl_ok(&[
        "run", "-d", "--name", "site", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80", "-h",
        "/www",
    ]);
    let local = http_get(|c| host.try_sh(c), "127.0.0.1", 8080);
    assert!(local.contains("hello from busybox httpd"), "{local}");
    let from_lan = http_get(|c| host.try_sh_in(&outside, c), "192.0.2.1", 8080);
    assert!(from_lan.contains("hello from busybox httpd"), "{from_lan}");

    let (code, _, err) = host.netctl(&[
        "run", "-d", "--name", "again", "-p", "8080:80", "busybox", "httpd", "-f",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("8080"), "the error names the port: {err}");
    let holder = std::process::Command::new("busybox")
        .args(["nc", "-l", "-p", "9090"])
        .spawn()
        .unwrap();
    eventually(
        "nc listening on 9090",
        Duration::from_secs(5),
        || match host.try_sh("ss -Hltn 'sport = :9090'") {
            (true, out) if !out.is_empty() => Ok(()),
            (_, out) => Err(out),
        },
    );
    let (code, _, err) = host.netctl(&["run", "-d", "-p", "9090:80", "busybox", "httpd", "-f"]);
    let mut holder = holder;
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("port is already allocated"), "{err}");

    host.netctl_ok(&[
        "run", "-d", "--name", "any", "-p", "80", "busybox", "httpd", "-f", "-p", "80", "-h",
        "/www",
    ]);
    let port = inspect(&host, "any")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        .as_str()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    assert!(port >= 1024, "an ephemeral port: {port}");
    assert!(http_get(|c| host.try_sh(c), "127.0.0.1", port).contains("hello from busybox httpd"));
    assert!(host
        .netctl_ok(&["ps"])
        .contains(&format!("0.0.0.0:{port}->80/tcp")));
    let all = host.netctl_ok(&["ps", "-aq"]);
    assert_eq!(
        all.lines().count(),
        2,
        "failed runs leave no container: {all}"
    );
    host.netctl_ok(&["rm", "-f", "site", "any"]);
    let maps = host.sh("nft list map inet netctl portmap_tcp4");
    assert!(
        !maps.contains("elements"),
        "rm -f takes the port mappings away: {maps}"
    );
}

/// `--net host` sees the host's interfaces, `--net none` only lo, `--net container:NAME`
/// the other container's address.
#[test]
fn host_none_and_container_network_modes() {
    let host = TestHost::new();
    host.busybox_image();
    host.sh("ip link add hostonly0 type veth peer name hostonly1");
    let links = host.netctl_ok(&[
        "run", "--rm", "--net", "host", "busybox", "ip", "-o", "link",
    ]);
    assert!(links.contains("hostonly0"), "{links}");
    let none = host.netctl_ok(&[
        "run", "--rm", "--net", "none", "busybox", "ip", "-o", "link",
    ]);
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:") && none.contains("UP"), "{none}");
    host.netctl_ok(&["run", "-d", "--name", "first", "busybox", "sleep", "1000"]);
    let shared = host.netctl_ok(&[
        "run",
        "--rm",
        "--net",
        "container:first",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(shared.contains(&ip_of(&host, "first")), "{shared}");
    host.netctl_ok(&["rm", "-f", "first"]);
}

/// A file written in one container is neither in the image nor in a second container of
/// the same image; the container's own processes see only themselves (PID 1 is the command).
#[test]
fn containers_have_their_own_filesystem_and_processes() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "run",
        "--name",
        "writer",
        "busybox",
        "sh",
        "-c",
        "echo mine > /root/file; echo changed > /www/index.html",
    ]);
    let other = host.netctl_ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ls /root; cat /www/index.html",
    ]);
    assert_eq!(other, "hello from busybox httpd\n", "{other}");
    let (code, _, _) = host.netctl(&["run", "--rm", "busybox", "cat", "/root/file"]);
    assert_eq!(code, 1);
    let ps = host.netctl_ok(&["run", "--rm", "busybox", "ps", "-o", "pid,comm"]);
    assert_eq!(
        ps.lines()
            .nth(1)
            .map(str::split_whitespace)
            .map(|mut w| (w.next(), w.next())),
        Some((Some("1"), Some("ps"))),
        "{ps}"
    );
    let hn = host.netctl_ok(&["run", "--rm", "--hostname", "box", "busybox", "hostname"]);
    assert_eq!(hn, "box\n");
    let caps = host.netctl_ok(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "CapBnd",
        "/proc/self/status",
    ]);
    assert!(
        caps.contains("00000000a00425fb"),
        "Docker's default capabilities but CAP_MKNOD: {caps}"
    );
    let (code, _, err) = host.netctl(&[
        "run",
        "--rm",
        "busybox",
        "mknod",
        "/tmp/disk",
        "b",
        "8",
        "0",
    ]);
    assert_ne!(
        code, 0,
        "no device nodes (there is no device cgroup): {err}"
    );
}

/// Bad input is refused with Docker's exit code 125 and a message saying what was wrong,
/// and leaves no container and no attachment behind.
#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.10.0.0/24", "small"]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "taken",
        "--net",
        "small",
        "--ip",
        "10.10.0.9",
        "busybox",
        "sleep",
        "1000",
    ]);
    // The default bridge's device, like docker0, stays once made.
    host.netctl_ok(&["run", "--rm", "busybox", "true"]);
    let before = host.host_listing();
    let cases: [(&[&str], &str); 9] = [
        (
            &["run", "--ip", "172.17.0.9", "busybox", "true"],
            "only on user defined networks",
        ),
        (
            &["run", "nosuch"],
            "Unable to find image 'nosuch:latest' locally",
        ),
        (
            &["run", "--name", "taken", "busybox", "true"],
            "already in use",
        ),
        (
            &[
                "run",
                "--net",
                "small",
                "--ip",
                "10.99.0.5",
                "busybox",
                "true",
            ],
            "outside",
        ),
        (
            &[
                "run",
                "--net",
                "small",
                "--ip",
                "10.10.0.9",
                "busybox",
                "true",
            ],
            "10.10.0.9",
        ),
        (
            &["run", "--net", "nonet", "busybox", "true"],
            "No such network: nonet",
        ),
        (
            &[
                "run",
                "--net",
                "container:taken",
                "-p",
                "80:80",
                "busybox",
                "true",
            ],
            "port publishing",
        ),
        (
            &["run", "-p", "80:80/sctp", "busybox", "true"],
            "invalid proto",
        ),
        (
            &["run", "-p", "x:80", "busybox", "true"],
            "invalid port specification",
        ),
    ];
    for (args, want) in cases {
        let (code, out, err) = host.netctl(args);
        assert_eq!(code, 125, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?} says {want:?}: {err}");
    }
    let (code, _, err) = host.netctl(&["run", "busybox", "nosuchcommand"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("executable file not found"), "{err}");
    assert_eq!(
        host.netctl_ok(&["ps", "-aq"]).lines().count(),
        1,
        "only the first container exists"
    );
    assert_eq!(host.host_listing(), before);
    host.netctl_ok(&["rm", "-f", "taken"]);
}

/// `-t` gives the container a terminal of its own (/dev/pts/0 inside it) of our terminal's
/// size; `-it` under a terminal is interactive and ends with the shell's exit code.
#[test]
fn tty_containers_get_a_real_terminal() {
    let host = TestHost::new();
    host.busybox_image();
    let tty = host.netctl_ok(&["run", "--rm", "-t", "busybox", "tty"]);
    assert_eq!(tty.trim(), "/dev/pts/0");
    let netctl = netctl_netns_tests::binary("netctl");
    let (ok, out) = host.try_sh(&format!(
        "echo 'echo typed-in; exit 4' | script -eqc '{} run --rm -it busybox sh' /dev/null; echo code=$?",
        netctl.display()
    ));
    assert!(
        ok && out.contains("typed-in") && out.contains("code=4"),
        "{out}"
    );
    let (ok, out) = host.try_sh(&format!(
        "script -eqc 'stty rows 33 cols 77; {} run --rm -t busybox stty size' /dev/null",
        netctl.display()
    ));
    assert!(
        ok && out.contains("33 77"),
        "the container's terminal has our size: {out}"
    );
}

/// A monitor killed with SIGKILL (as if the machine's OOM killer took it): the next command
/// shows the container exited, and its addresses, veth, rules and records are gone.
#[test]
fn a_crashed_monitor_is_repaired_by_the_next_command() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "app"]);
    host.netctl_ok(&["run", "--rm", "--net", "app", "busybox", "true"]);
    let before = host.host_listing();
    let id = host.netctl_ok(&[
        "run", "-d", "--name", "crashy", "--net", "app", "-p", "8080:80", "busybox", "sleep",
        "1000",
    ]);
    let pid = inspect(&host, "crashy")["State"]["Pid"].as_u64().unwrap();
    host.sh(&format!(
        "pkill -9 -f '[_]_netctl-monitor .* {id}'; kill -9 {pid}; while pgrep -f '[_]_netctl-monitor .* {id}' >/dev/null; do sleep 0.01; done",
        id = id.trim()
    ));
    let ps = host.netctl_ok(&["ps", "-a"]);
    assert!(
        ps.lines()
            .any(|l| l.ends_with("crashy") && l.contains("Exited (255)")),
        "{ps}"
    );
    assert_eq!(host.host_listing(), before);
    host.netctl_ok(&["rm", "crashy"]);
}

/// The `run` flags of the seed notes: -e, --env-file, -w, --entrypoint, --hostname,
/// --add-host, --link, --dns, --mac-address, --rm; and kill, restart, logs -f, exec -e,
/// container prune.
#[test]
fn run_flags_and_lifecycle_commands_work_like_dockers() {
    let host = TestHost::new();
    host.busybox_image();
    let env_file = host.dir().join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n").unwrap();
    let out = host.netctl_ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/tmp/work",
        "--entrypoint",
        "/bin/sh",
        "busybox",
        "-c",
        "echo $A $FROM_FILE $HOME; pwd",
    ]);
    assert_eq!(out, "1 yes /root\n/tmp/work\n");
    assert_eq!(host.netctl_ok(&["ps", "-aq"]), "", "--rm removed it");

    host.netctl_ok(&["run", "-d", "--name", "db", "busybox", "sleep", "1000"]);
    let db_ip = ip_of(&host, "db");
    let out = host.netctl_ok(&[
        "run", "--rm", "--link", "db:database", "--add-host", "extra.example:10.1.2.3", "--dns", "192.0.2.53",
        "--mac-address", "02:42:0a:0b:0c:0d", "busybox", "sh", "-c",
        "cat /etc/hosts /etc/resolv.conf; cat /sys/class/net/eth0/address; ping -c1 -W2 database >/dev/null && echo linked",
    ]);
    assert!(out.contains("10.1.2.3\textra.example"), "{out}");
    assert!(out.contains(&format!("{db_ip}\tdatabase ")), "{out}");
    assert!(out.contains("nameserver 192.0.2.53"), "{out}");
    assert!(out.contains("02:42:0a:0b:0c:0d"), "{out}");
    assert!(out.ends_with("linked\n"), "{out}");

    host.netctl_ok(&["run", "-d", "--name", "counter", "busybox", "sh", "-c", "trap 'echo bye; exit 0' TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"]);
    let mut follow = std::process::Command::new(netctl_netns_tests::binary("netctl"))
        .args(["logs", "-f", "counter"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (first, mut rest) = first_line(&mut follow);
    assert_eq!(first, "tick 1\n");
    host.netctl_ok(&["stop", "counter"]);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut rest, &mut text).unwrap();
    assert!(follow.wait().unwrap().success());
    assert!(
        text.ends_with("bye\n"),
        "logs -f follows the running container until its end: {text}"
    );
    let ps = host.netctl_ok(&["ps", "-a", "--filter", "name=counter"]);
    assert!(ps.contains("Exited (0)"), "SIGTERM reached the trap: {ps}");

    host.netctl_ok(&["restart", "-t", "1", "db"]);
    assert_eq!(
        host.netctl_ok(&["exec", "-e", "X=42", "db", "sh", "-c", "echo $X"]),
        "42\n"
    );
    host.netctl_ok(&["kill", "db"]);
    let state = inspect(&host, "db")["State"].clone();
    assert_eq!(
        (state["Status"].as_str(), state["ExitCode"].as_u64()),
        (Some("exited"), Some(137))
    );
    let pruned = host.netctl_ok(&["container", "prune", "-f"]);
    assert_eq!(
        pruned.lines().filter(|l| l.len() == 64).count(),
        2,
        "{pruned}"
    );
    assert_eq!(host.netctl_ok(&["ps", "-aq"]), "");
}

/// An attached `run` without a terminal passes the signals it gets on to the container, as
/// Docker's sig-proxy does: Ctrl-C (SIGINT) reaches the container's trap.
#[test]
fn attached_run_passes_signals_to_the_container() {
    let host = TestHost::new();
    host.busybox_image();
    let mut child = std::process::Command::new(netctl_netns_tests::binary("netctl"))
        .args([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got INT; exit 5' INT; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (ready, mut rest) = first_line(&mut child);
    assert_eq!(ready, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut rest, &mut text).unwrap();
    assert_eq!(text, "got INT\n");
    assert_eq!(child.wait().unwrap().code(), Some(5));
}

/// `--dns` on a user network: resolv.conf names only 127.0.0.11, and names no network knows
/// go to the container's own resolver (a dnsmasq in a namespace of its own), not the host's;
/// another container without `--dns` gets no answer for them (the host has no upstream).
#[test]
fn dns_flag_makes_the_embedded_server_forward_to_the_containers_resolver() {
    let mut host = TestHost::new();
    host.busybox_image();
    let upstream = host.outside("resolver", "10.254.0.1/24", "10.254.0.53/24");
    host.spawn_in(&upstream, "dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=10.254.0.53 --bind-interfaces --address=/corp.test/192.0.2.77");
    host.netctl_ok(&["network", "create", "app"]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "own",
        "--net",
        "app",
        "--dns",
        "10.254.0.53",
        "busybox",
        "sleep",
        "1000",
    ]);
    host.netctl_ok(&[
        "run", "-d", "--name", "plain", "--net", "app", "busybox", "sleep", "1000",
    ]);
    let resolv = host.netctl_ok(&["exec", "own", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv
            .lines()
            .filter(|l| l.starts_with("nameserver"))
            .collect::<Vec<_>>(),
        ["nameserver 127.0.0.11"],
        "{resolv}"
    );
    eventually(
        "the upstream answers through --dns",
        Duration::from_secs(3),
        || {
            let got = host.netctl(&["exec", "own", "nslookup", "www.corp.test"]).1;
            if got.contains("192.0.2.77") {
                Ok(())
            } else {
                Err(got)
            }
        },
    );
    let (_, plain, _) = host.netctl(&["exec", "plain", "nslookup", "www.corp.test"]);
    assert!(!plain.contains("192.0.2.77"), "{plain}");
    host.netctl_ok(&["rm", "-f", "own", "plain"]);
}

/// On an IPv4-only network neither end of a container's veth gets an IPv6 link-local
/// address (no DAD, router solicitations or fe80 route per container); on an `--ipv6`
/// network the container has its addresses and a link-local one.
#[test]
fn ipv4_networks_give_veths_no_ipv6_link_local_addresses() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "v4"]);
    host.netctl_ok(&["network", "create", "--ipv6", "v6"]);
    host.netctl_ok(&[
        "run", "-d", "--name", "four", "--net", "v4", "busybox", "sleep", "1000",
    ]);
    host.netctl_ok(&[
        "run", "-d", "--name", "six", "--net", "v6", "busybox", "sleep", "1000",
    ]);
    // The kernel would add link-local addresses when the carrier comes up, which it reports
    // on its own time; so check what stops them (IPv6 off, or no address generation) as
    // well as the addresses.
    let inside = host.netctl_ok(&[
        "exec", "four", "sh", "-c",
        "ip -6 -o addr show dev eth0; c=/proc/sys/net/ipv6/conf/eth0; echo $(cat $c/disable_ipv6) $(cat $c/addr_gen_mode)",
    ]);
    assert!(
        inside.starts_with("1 ") || inside == "0 1\n",
        "no IPv6 address can appear in the container: {inside}"
    );
    let ports = host.sh(
        "for l in $(ip -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1); do \
           ip -6 -o addr show dev $l; \
           c=/proc/sys/net/ipv6/conf/$l; \
           [ $(cat $c/disable_ipv6) = 1 ] || [ $(cat $c/addr_gen_mode) = 1 ] || echo \"$l generates addresses\"; \
         done",
    );
    assert_eq!(ports, "", "bridge ports have no IPv6 address: {ports}");
    eventually(
        "the --ipv6 container's addresses",
        Duration::from_secs(5),
        || {
            let six = host.netctl_ok(&[
                "exec", "six", "ip", "-6", "-o", "addr", "show", "dev", "eth0",
            ]);
            if six.contains("fd42:") && six.contains("fe80:") {
                Ok(())
            } else {
                Err(six)
            }
        },
    );
    host.netctl_ok(&["rm", "-f", "four", "six"]);
}

/// A container's log cannot be opened (a folder sits where the file goes, as after a
/// careless restore): a container that prints far more than a pipe holds still runs to its
/// end and its exit is recorded, and `logs -f` right after `run -d` follows a container.
#[test]
fn a_container_whose_log_cannot_be_opened_still_runs_to_its_end() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&[
        "create",
        "--name",
        "loud",
        "busybox",
        "sh",
        "-c",
        "yes x | head -c 300000; exit 3",
    ]);
    let log = inspect(&host, "loud")["LogPath"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::create_dir_all(&log).unwrap();
    host.netctl_ok(&["start", "loud"]);
    eventually("the loud container exits", Duration::from_secs(10), || {
        let state = inspect(&host, "loud")["State"].clone();
        match (state["Status"].as_str(), state["ExitCode"].as_u64()) {
            (Some("exited"), Some(3)) => Ok(()),
            _ => Err(state.to_string()),
        }
    });
    host.netctl_ok(&["rm", "loud"]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "loud2",
        "busybox",
        "sh",
        "-c",
        "echo first; sleep 1000",
    ]);
    let mut child = std::process::Command::new(netctl_netns_tests::binary("netctl"))
        .args(["logs", "-f", "loud2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (first, _) = first_line(&mut child);
    assert_eq!(first, "first\n", "logs -f right after run -d");
    let _ = child.kill();
    let _ = child.wait();
    host.netctl_ok(&["rm", "-f", "loud2"]);
}

/// A container reaches a server on its host by `--add-host NAME:host-gateway` and by the
/// names podman gives the host (`host.containers.internal`, `host.docker.internal`): all are
/// the gateway of the container's network, the host's own address there.
#[test]
fn host_gateway_names_reach_a_server_on_the_host() {
    let mut host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.66.0.0/24", "app"]);
    let www = host.dir().join("host-www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("hello.txt"), "hello from the host\n").unwrap();
    host.spawn(&format!(
        "exec busybox httpd -f -p 10.66.0.1:8099 -h {}",
        www.display()
    ));
    let out = host.netctl_ok(&[
        "run",
        "--rm",
        "--net",
        "app",
        "--add-host",
        "gw:host-gateway",
        "busybox",
        "sh",
        "-c",
        "grep -E 'gw|internal' /etc/hosts; for n in gw host.docker.internal host.containers.internal; do wget -qO- http://$n:8099/hello.txt; done",
    ]);
    assert_eq!(
        out,
        "10.66.0.1\tgw\n10.66.0.1\thost.containers.internal host.docker.internal\n".to_string()
            + &"hello from the host\n".repeat(3)
    );
    let (code, _, err) =
        host.netctl(&["run", "--rm", "--add-host", "x:gateway", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("invalid IP address in add-host: \"gateway\""),
        "{err}"
    );
}

/// podman's network resolvers: `network create --dns` sends the names no network knows,
/// from containers without `--dns` of their own, to the network's resolver; `network update
/// --dns-drop/--dns-add` switches running containers to another at once, and a container
/// with its own `--dns` keeps it.
#[test]
fn network_resolvers_change_for_running_containers() {
    let mut host = TestHost::new();
    host.busybox_image();
    let upstream = host.outside("resolvers", "10.254.0.1/24", "10.254.0.53/24");
    host.sh_in(&upstream, "ip addr add 10.254.0.54/24 dev eth0");
    for (ip, answer) in [("10.254.0.53", "192.0.2.1"), ("10.254.0.54", "192.0.2.2")] {
        host.spawn_in(&upstream, &format!("dnsmasq --no-daemon --no-resolv --no-hosts --listen-address={ip} --bind-interfaces --address=/corp.test/{answer}"));
    }
    host.netctl_ok(&["network", "create", "--dns", "10.254.0.53", "app"]);
    host.netctl_ok(&[
        "run", "-d", "--name", "plain", "--net", "app", "busybox", "sleep", "1000",
    ]);
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "own",
        "--net",
        "app",
        "--dns",
        "10.254.0.53",
        "busybox",
        "sleep",
        "1000",
    ]);
    let answer = |c: &str, want: &str| {
        eventually(
            &format!("{c} resolves corp.test to {want}"),
            std::time::Duration::from_secs(10),
            || {
                let (_, out, _) = host.netctl(&["exec", c, "nslookup", "corp.test"]);
                if out.contains(&format!("Address: {want}")) {
                    Ok(())
                } else {
                    Err(out)
                }
            },
        )
    };
    answer("plain", "192.0.2.1");
    let out = host.netctl_ok(&[
        "network",
        "update",
        "--dns-drop",
        "10.254.0.53",
        "--dns-add",
        "10.254.0.54",
        "app",
    ]);
    assert_eq!(out, "app\n");
    answer("plain", "192.0.2.2");
    answer("own", "192.0.2.1");
    let servers = host.netctl_ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .NetworkDNSServers}}",
        "app",
    ]);
    assert_eq!(servers, "[\"10.254.0.54\"]\n");
    let (code, _, err) = host.netctl(&["network", "update", "--dns-drop", "10.9.9.9", "app"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("10.9.9.9 is not a DNS server of network app"),
        "{err}"
    );
    let (code, _, err) = host.netctl(&[
        "network",
        "create",
        "--internal",
        "--dns",
        "10.254.0.53",
        "closed",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("forwards no names"), "{err}");
    host.netctl_ok(&["rm", "-f", "plain", "own"]);
}
