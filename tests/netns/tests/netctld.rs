//! netctld driven by the Debian docker CLI (20.10, API 1.41), as a user with
//! `DOCKER_HOST=unix://...` drives it: the seed notes' networking walk-through, one state
//! shared with the netctl command line, Docker's errors and exit codes, and API versions.

use std::time::Duration;

use netctl_netns_tests::daemon::Netctld;
use netctl_netns_tests::{eventually, TestHost};

fn started() -> (TestHost, Netctld) {
    let mut host = TestHost::new();
    host.busybox_image();
    let daemon = Netctld::start(&mut host);
    (host, daemon)
}

/// An HTTP GET of `addr:port` from the host, retried while the server starts.
fn get(host: &TestHost, addr: &str, port: u16) -> String {
    let cmd = format!("printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | busybox nc -w 2 {addr} {port}");
    eventually(
        &format!("{addr}:{port}"),
        Duration::from_secs(5),
        || match host.try_sh(&cmd) {
            (true, out) if out.contains("200 OK") => Ok(out),
            (_, out) => Err(out),
        },
    )
}

/// The walk-through of Docker's networking docs, typed into the docker CLI: a network with
/// a subnet and an IP range, two containers behind one alias, a published port, connect and
/// disconnect, and everything gone after `rm -f` and `network rm`.
#[test]
fn the_docker_cli_builds_networks_and_containers_through_netctld() {
    let (host, d) = started();
    let id = d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        "172.72.0.0/16",
        "--ip-range",
        "172.72.0.0/24",
        "app",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let ranges = d.docker_ok(&[
        "network",
        "inspect",
        "app",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.IPRange}} {{.Gateway}}{{end}}",
    ]);
    assert_eq!(ranges.trim(), "172.72.0.0/16 172.72.0.0/24 172.72.0.1");
    let names = d.docker_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for want in ["app bridge", "bridge bridge", "host host", "none null"] {
        assert!(names.lines().any(|l| l == want), "{want} in {names}");
    }

    for (name, port) in [("web1", Some("8080:80")), ("web2", None)] {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--net",
            "app",
            "--net-alias",
            "web",
        ];
        if let Some(p) = port {
            args.extend(["-p", p]);
        }
        args.extend(["busybox", "httpd", "-f", "-p", "80", "-h", "/www"]);
        let id = d.docker_ok(&args);
        assert_eq!(id.trim().len(), 64, "run -d prints the ID: {id}");
    }
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.Status}} {{.Ports}}"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("web1 Up")
                && l.ends_with("0.0.0.0:8080->80/tcp, :::8080->80/tcp")),
        "{ps}"
    );
    let ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.app.IPAddress}}",
        "web1",
    ]);
    assert!(ip.starts_with("172.72.0."), "inside the IP range: {ip}");
    assert!(get(&host, "127.0.0.1", 8080).contains("hello from busybox"));

    // One state: the netctl command line sees the containers docker made, and their alias
    // answers with both.
    let answer = host.netctl_ok(&["exec", "web1", "nslookup", "web"]);
    assert_eq!(answer.matches("172.72.0.").count(), 2, "{answer}");

    d.docker_ok(&["network", "disconnect", "app", "web2"]);
    let (code, _, _) = host.netctl(&["exec", "web1", "nslookup", "web2"]);
    assert_ne!(code, 0, "web2 left the network's DNS");
    d.docker_ok(&[
        "network",
        "connect",
        "--alias",
        "api",
        "--driver-opt",
        "com.example.setting=on",
        "app",
        "web2",
    ]);
    let answer = host.netctl_ok(&["exec", "web1", "nslookup", "api"]);
    assert!(answer.contains("172.72.0."), "{answer}");
    let opts = d.docker_ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.app.DriverOpts}}",
        "web2",
    ]);
    assert_eq!(opts.trim(), r#"{"com.example.setting":"on"}"#);
    // `--link` on a user network: a name for the linking container alone.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--net",
        "app",
        "--link",
        "web1:backend",
        "busybox",
        "sleep",
        "300",
    ]);
    let answer = d.docker_ok(&["exec", "client", "nslookup", "backend"]);
    assert!(answer.contains(ip.trim()), "backend is web1: {answer}");
    let (code, _, _) = d.docker(&["exec", "web2", "nslookup", "backend"]);
    assert_ne!(code, 0, "only the linking container knows backend");

    // A legacy link on the default bridge: among its target's names, and removable.
    d.docker_ok(&["run", "-d", "--name", "src", "busybox", "sleep", "300"]);
    d.docker_ok(&[
        "run", "-d", "--name", "dst", "--link", "src:al", "busybox", "sleep", "300",
    ]);
    let names = [
        "ps",
        "--no-trunc",
        "--format",
        "{{.Names}}",
        "-f",
        "name=src",
    ];
    assert_eq!(d.docker_ok(&names), "dst/al,src\n");
    assert_eq!(d.docker_ok(&["rm", "--link", "dst/al"]), "dst/al\n");
    assert_eq!(d.docker_ok(&names), "src\n");

    d.docker_ok(&["rm", "-f", "web1", "web2", "client", "src", "dst"]);
    d.docker_ok(&["network", "rm", "app"]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    let names = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!names.contains("app"), "{names}");
}

/// What a user mistypes gets Docker's words and exit codes, and nothing is left half-made.
#[test]
fn mistakes_get_dockers_errors_through_netctld() {
    let (host, d) = started();
    let (code, _, err) = d.docker(&["network", "rm", "doesnotexist"]);
    assert_eq!(
        (code, err.trim()),
        (1, "Error: No such network: doesnotexist")
    );
    let (code, _, err) = d.docker(&["run", "-d", "--network", "doesnotexist", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("Error response from daemon: network doesnotexist not found"),
        "{err}"
    );
    let (code, _, err) = d.docker(&["network", "rm", "bridge"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bridge is a pre-defined network and cannot be removed"),
        "{err}"
    );
    let (code, _, err) = d.docker(&["stop", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: nosuch"), "{err}");
    let (code, _, err) = d.docker(&["run", "-d", "--name", "x", "nosuchimage", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("nosuchimage"), "{err}");
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "", "no half-made container");

    // Versions outside 1.24-1.41 are refused as Docker refuses them.
    let too_old = host.sh(&format!(
        "curl -s --unix-socket {} http://d/v1.12/info",
        d.host().trim_start_matches("unix://")
    ));
    assert!(
        too_old.contains("client version 1.12 is too old. Minimum supported API version is 1.24"),
        "{too_old}"
    );
    let too_new = host.sh(&format!(
        "curl -s --unix-socket {} http://d/v1.99/info",
        d.host().trim_start_matches("unix://")
    ));
    assert!(
        too_new.contains("client version 1.99 is too new. Maximum supported API version is 1.41"),
        "{too_new}"
    );
}

/// Containers, volumes and logs through the docker CLI, on the same state as netctl's.
#[test]
fn containers_volumes_and_logs_through_netctld() {
    let (host, d) = started();
    host.netctl_ok(&["run", "-d", "--name", "fromcli", "busybox", "sleep", "1000"]);
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.Image}} {{.Command}}"]);
    assert_eq!(ps.trim(), "fromcli busybox \"sleep 1000\"");

    d.docker_ok(&["volume", "create", "data"]);
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "data");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello; echo oops >&2; echo kept > /data/f",
    ]);
    assert_eq!(d.docker_ok(&["wait", "talker"]).trim(), "0");
    let (code, out, err) = d.docker(&["logs", "talker"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "hello\n", "oops\n"));
    let state = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "talker",
    ]);
    assert_eq!(state.trim(), "exited 0");
    let (code, _, err) = d.docker(&["volume", "rm", "data"]);
    assert_eq!(code, 1, "in use: {err}");
    d.docker_ok(&["rm", "talker"]);
    d.docker_ok(&["volume", "rm", "data"]);

    d.docker_ok(&["stop", "-t", "1", "fromcli"]);
    let state = d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "fromcli"]);
    assert_eq!(state.trim(), "false");
    d.docker_ok(&["start", "fromcli"]);
    d.docker_ok(&["rename", "fromcli", "renamed"]);
    let top = d.docker_ok(&["top", "renamed"]);
    assert!(top.contains("sleep 1000"), "{top}");
    d.docker_ok(&["rm", "-f", "renamed"]);
    assert_eq!(host.netctl_ok(&["ps", "-aq"]), "");
}

/// `docker update` of a running container: its new memory limit is in force in the cgroup
/// its processes are in, a restart policy given afterwards restarts it when it exits, and
/// a bad value is refused with nothing changed.
#[test]
fn docker_update_changes_the_limits_and_restart_policy_of_a_running_container() {
    let (host, d) = started();
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 3",
    ]);
    let id = id.trim();
    d.docker_ok(&[
        "update",
        "--memory",
        "300m",
        "--restart",
        "on-failure:5",
        "c1",
    ]);
    let shown = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        "c1",
    ]);
    assert_eq!(shown.trim(), "314572800 on-failure:5");
    let pid = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "c1"]);
    let limit = host.sh(&format!(
        "g=$(awk -F: '$2 ~ /memory/ || $2 == \"\" {{print $3; exit}}' /proc/{}/cgroup); \
         cat /sys/fs/cgroup/memory$g/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup$g/memory.max",
        pid.trim()
    ));
    assert_eq!(limit.trim(), "314572800", "the limit in force for {id}");
    eventually(
        "c1 restarts after exiting 3",
        Duration::from_secs(20),
        || match d
            .docker_ok(&["inspect", "-f", "{{.RestartCount}}", "c1"])
            .trim()
        {
            "0" => Err("not restarted yet".to_string()),
            n => Ok(n.to_string()),
        },
    );
    let (code, _, err) = d.docker(&["update", "--memory", "1k", "c1"]);
    assert_eq!(code, 1);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    let memory = d.docker_ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "c1"]);
    assert_eq!(memory.trim(), "314572800");
    d.docker_ok(&["rm", "-f", "c1"]);
}

/// `docker run` attached, `-i` with piped input, `--rm`, and `docker exec`: the output,
/// the exit codes and the stdin a user sees with Docker.
#[test]
fn attached_runs_and_execs_relay_stdio_and_exit_codes() {
    let (host, d) = started();
    let (code, out, err) = d.docker(&["run", "--name", "hello", "busybox", "echo", "hello"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "hello\n", ""));
    let (code, out, err) = d.docker(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    let (code, out, _) = d.docker(&["run", "--rm", "busybox", "echo", "gone"]);
    assert_eq!((code, out.as_str()), (0, "gone\n"));
    let piped = host.sh(&format!(
        "echo fed | DOCKER_HOST={} /usr/bin/docker run -i --rm busybox cat",
        d.host()
    ));
    assert_eq!(piped, "fed\n");
    let names = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.lines().count(), 2, "--rm ones are gone: {names}");
    // The monitors are nobody's children: the long-lived daemon has nothing to reap.
    let zombies = host.sh(&format!(
        "ps -o stat= --ppid $(pgrep -f '[n]etctld -H {}') | grep -c Z || true",
        d.host()
    ));
    assert_eq!(zombies.trim(), "0", "zombies under netctld");

    d.docker_ok(&["run", "-d", "--name", "s1", "busybox", "sleep", "1000"]);
    let (code, out, _) = d.docker(&["exec", "s1", "sh", "-c", "hostname; exit 5"]);
    let id = d.docker_ok(&["inspect", "-f", "{{.Config.Hostname}}", "s1"]);
    assert_eq!((code, out.as_str()), (5, id.as_str()));
    let fed = host.sh(&format!(
        "echo again | DOCKER_HOST={} /usr/bin/docker exec -i s1 cat",
        d.host()
    ));
    assert_eq!(fed, "again\n");
    let (code, _, _) = d.docker(&["exec", "s1", "nosuch"]);
    assert_eq!(code, 127, "a missing command");
    // Inspect lists the exec instances still running, as Docker's `ExecIDs`.
    let execs = "{{json .ExecIDs}}";
    assert_eq!(d.docker_ok(&["inspect", "-f", execs, "s1"]), "null\n");
    d.docker_ok(&["exec", "-d", "s1", "sleep", "1000"]);
    let listed = d.docker_ok(&["inspect", "-f", execs, "s1"]);
    let listed: Vec<String> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].len(), 64, "{listed:?}");
    let (code, _, err) = d.docker(&["exec", "hello", "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not running"), "{err}");
    d.docker_ok(&["rm", "-f", "s1", "hello"]);
}

/// docker-compose (Debian's 1.29.2, on docker-py 5.0.3): a two-service project on a user
/// network with aliases and a published port. Names resolve both ways, the port answers, a
/// second `up -d` recreates nothing, and `down` leaves nothing.
#[test]
fn docker_compose_brings_a_project_up_and_down_through_netctld() {
    let (host, d) = started();
    let dir = host.dir().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        r#"version: "3.8"
services:
  web:
    image: busybox
    command: httpd -f -p 80 -h /www
    ports: ["8081:80"]
    networks:
      app:
        aliases: [front]
  client:
    image: busybox
    command: sleep 1000
    networks:
      app:
        aliases: [back]
networks:
  app:
    ipam:
      config:
        - subnet: 172.73.0.0/16
"#,
    )
    .unwrap();
    let compose = |args: &str| {
        host.try_sh(&format!(
            "cd {} && DOCKER_HOST={} /usr/bin/docker-compose -p demo {args} 2>&1",
            dir.display(),
            d.host()
        ))
    };
    let (ok, out) = compose("up -d");
    assert!(ok, "{out}");
    for (from, name) in [
        ("demo_client_1", "front"),
        ("demo_client_1", "web"),
        ("demo_web_1", "back"),
    ] {
        let answer = host.netctl_ok(&["exec", from, "nslookup", name]);
        assert!(answer.contains("172.73."), "{name} from {from}: {answer}");
    }
    assert!(get(&host, "127.0.0.1", 8081).contains("hello from busybox"));
    let ids = d.docker_ok(&["ps", "-q", "--no-trunc"]);
    let (ok, out) = compose("up -d");
    assert!(ok, "{out}");
    assert!(
        out.contains("demo_web_1 is up-to-date") && out.contains("demo_client_1 is up-to-date"),
        "{out}"
    );
    assert_eq!(
        d.docker_ok(&["ps", "-q", "--no-trunc"]),
        ids,
        "nothing recreated"
    );
    let (ok, out) = compose("down -t 1");
    assert!(ok, "{out}");
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains("demo"), "{nets}");
    assert_eq!(host.netctl_ok(&["volume", "ls", "-q"]), "");
}

/// Live restore: `kill -9` of netctld leaves every container running; a new netctld serves
/// them at once (logs, wait, stop).
#[test]
fn containers_outlive_a_killed_netctld_and_the_next_one_serves_them() {
    let (mut host, d) = started();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "echo before; trap 'echo bye; exit 4' TERM; while true; do sleep 0.1; done",
    ]);
    d.kill();
    let ps = host.netctl_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("ticker Up"), "still running: {ps}");
    let d = Netctld::start(&mut host);
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "ticker");
    assert_eq!(d.docker_ok(&["logs", "ticker"]), "before\n");
    let waiter = std::thread::spawn({
        let sock = d.host().to_string();
        move || {
            std::process::Command::new("/usr/bin/docker")
                .env("DOCKER_HOST", sock)
                .args(["wait", "ticker"])
                .output()
                .unwrap()
        }
    });
    d.docker_ok(&["stop", "ticker"]);
    let out = waiter.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");
    assert_eq!(d.docker_ok(&["logs", "ticker"]), "before\nbye\n");
}

/// `docker cp` both ways, `diff`, `export`, `commit`, `stats --no-stream`, `save | load` and
/// `system df` through netctld, as a user types them.
#[test]
fn files_images_and_stats_through_netctld() {
    let (host, d) = started();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo made > /made; sleep 1000",
    ]);
    let dir = host.dir().display().to_string();
    std::fs::write(host.dir().join("in.txt"), "from the host\n").unwrap();
    d.docker_ok(&["cp", &format!("{dir}/in.txt"), "box:/tmp/in.txt"]);
    assert_eq!(
        d.docker_ok(&["exec", "box", "cat", "/tmp/in.txt"]),
        "from the host\n"
    );
    eventually("the file is made", Duration::from_secs(5), || {
        match d.docker(&["cp", "box:/made", &format!("{dir}/made")]) {
            (0, _, _) => Ok(()),
            (_, o, e) => Err(format!("{o}{e}")),
        }
    });
    assert_eq!(
        std::fs::read_to_string(host.dir().join("made")).unwrap(),
        "made\n"
    );
    let (code, _, err) = d.docker(&["cp", "box:/nosuch", &dir]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "Error: No such container:path: box:/nosuch");

    let diff = d.docker_ok(&["diff", "box"]);
    assert!(diff.lines().any(|l| l == "A /made"), "{diff}");
    let tar = host.sh(&format!(
        "DOCKER_HOST={} /usr/bin/docker export box | tar -t | grep -c '^made$'",
        d.host()
    ));
    assert_eq!(tar.trim(), "1");
    host.sh(&format!(
        "DOCKER_HOST={h} /usr/bin/docker export box | DOCKER_HOST={h} /usr/bin/docker import - imported:1",
        h = d.host()
    ));
    assert_eq!(
        d.docker_ok(&["run", "--rm", "imported:1", "cat", "/made"]),
        "made\n"
    );

    let stats = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "box",
    ]);
    assert!(stats.starts_with("box "), "{stats}");

    let id = d.docker_ok(&["commit", "box", "snap:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "snap:1", "cat", "/made"]),
        "made\n"
    );
    host.sh(&format!(
        "DOCKER_HOST={h} /usr/bin/docker save snap:1 > {dir}/snap.tar && DOCKER_HOST={h} /usr/bin/docker rmi snap:1",
        h = d.host()
    ));
    let loaded = d.docker_ok(&["load", "-i", &format!("{dir}/snap.tar")]);
    assert_eq!(loaded.trim(), "Loaded image: snap:1");
    // Byte for byte the layers it was saved with: the same image ID after the round trip.
    let again = d.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "snap:1"]);
    assert_eq!(again.trim(), id.trim(), "the image ID after save | load");
    let df = d.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(
        df.contains("Images 3") && df.contains("Containers 1"),
        "{df}"
    );
    d.docker_ok(&["rm", "-f", "box"]);
}

/// `docker commit --change` and `docker import --change`: the instructions are in the new
/// image's config; an instruction Docker does not take is refused and no image is made.
#[test]
fn commit_and_import_apply_dockerfile_changes() {
    let (host, d) = started();
    d.docker_ok(&["run", "--name", "c1", "busybox", "touch", "/made"]);
    d.docker_ok(&[
        "commit",
        "-c",
        "EXPOSE 8000",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "ENV A=1",
        "c1",
        "committed",
    ]);
    let config = d.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.ExposedPorts}} {{json .Config.Cmd}} {{json .Config.Env}}",
        "committed",
    ]);
    assert!(
        config.starts_with(r#"{"8000/tcp":{}} ["sh"] ["#) && config.trim().ends_with(r#","A=1"]"#),
        "{config}"
    );
    // As Docker's: the image it was made over, and the container's config as it was.
    let base = d.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let made = d.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Parent}} {{.ContainerConfig.Image}} {{json .ContainerConfig.Cmd}}",
        "committed",
    ]);
    assert_eq!(
        made.trim(),
        format!("{} busybox [\"touch\",\"/made\"]", base.trim())
    );
    let images = d.docker_ok(&["images", "-q"]);
    let (code, _, err) = d.docker(&["commit", "-c", "RUN rm -rf /", "c1", "refused"]);
    assert_eq!(code, 1);
    assert!(err.contains("RUN is not a valid change command"), "{err}");
    assert_eq!(d.docker_ok(&["images", "-q"]), images, "no image was made");

    let tar = host.dir().join("rootfs.tar");
    d.docker_ok(&["export", "-o", &tar.display().to_string(), "c1"]);
    d.docker_ok(&[
        "import",
        "-c",
        "WORKDIR /srv",
        "-c",
        "USER nobody",
        &tar.display().to_string(),
        "imported",
    ]);
    let config = d.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.WorkingDir}} {{.Config.User}}",
        "imported",
    ]);
    assert_eq!(config.trim(), "/srv nobody");
}

/// A restart right after `kill -9` (as a service manager does it) can find the old socket
/// still taking connections while the dead daemon's listener is being closed: a socket
/// that takes connections but never answers is stale, and the new netctld takes its path;
/// a netctld that answers there is left alone, in words.
#[test]
fn a_socket_that_never_answers_is_taken_over_and_a_live_daemon_is_not() {
    let mut host = TestHost::new();
    let path = host.dir().join("netctld.sock");
    // Takes each connection and closes it unanswered, as a dying daemon's socket does.
    let silent = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || silent.incoming().for_each(drop));
    let d = Netctld::start(&mut host);
    assert_eq!(d.docker_ok(&["ps", "-q"]), "");
    let (ok, out) = host.try_sh(&format!(
        "timeout 20 {} -H unix://{} 2>&1",
        netctl_netns_tests::binary("netctld").display(),
        path.display()
    ));
    assert!(!ok, "a second netctld started: {out}");
    assert!(out.contains("another daemon answers there"), "{out}");
    assert_eq!(d.docker_ok(&["ps", "-q"]), "", "the first one still serves");
}
