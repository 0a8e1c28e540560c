//! The engine as many clients use it at once, and as a careless plugin treats it: parallel
//! `netctl` processes racing for the same names, subnets, networks and containers, and a
//! plugin that never returns. Each ends in one clear winner, clear errors for the others,
//! and nothing half-made left behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netctl_netns_tests::{bin_dir, eventually, TestHost};
use serde_json::{json, Value};

/// A plugin in a folder of its own that hangs on ADD (with a child in its process group)
/// after noting the child's PID in `<dir>/child`, and does nothing on every other command.
fn hanging_plugin(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let folder = dir.join("slow-plugins");
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("hang");
    let script = format!(
        "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\nsleep 300 </dev/null >/dev/null 2>&1 &\necho $! > {}\nexec sleep 300\n",
        dir.join("child").display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    folder
}

/// netctl-dns behind a script that, while `<dir>/slow` exists, notes in `<dir>/adding` that
/// an ADD began and takes 2 s more over it, and while `<dir>/fail-del` exists fails every
/// DEL: a plugin as slow or as broken as a test needs it.
fn wrapped_dns(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let folder = dir.join("wrapped-plugins");
    std::fs::create_dir_all(&folder).unwrap();
    let d = dir.display();
    let script = format!(
        "#!/bin/sh\n\
         if [ \"$CNI_COMMAND\" = ADD ] && [ -e {d}/slow ]; then touch {d}/adding; sleep 2; fi\n\
         if [ \"$CNI_COMMAND\" = DEL ] && [ -e {d}/fail-del ]; then\n\
           echo '{{\"cniVersion\": \"1.0.0\", \"code\": 5, \"msg\": \"DEL refused by the test\"}}'; exit 1\n\
         fi\n\
         exec {} \"$@\"\n",
        bin_dir().join("netctl-dns").display()
    );
    std::fs::write(folder.join("wrapped-dns"), script).unwrap();
    std::fs::set_permissions(
        folder.join("wrapped-dns"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    folder
}

fn conflist_path(name: &str) -> PathBuf {
    Path::new("/var/lib/netctl/networks").join(format!("{name}.conflist"))
}

/// Adds a plugin of `ty` to the end of network `name`'s chain, as an admin editing its
/// conflist would.
fn append_plugin(name: &str, ty: &str) {
    let path = conflist_path(name);
    let mut list: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    list["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": ty}));
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
}

/// Makes network `name` run its DNS plugin through [`wrapped_dns`].
fn wrap_dns_plugin(name: &str) {
    let path = conflist_path(name);
    let mut list: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for p in list["plugins"].as_array_mut().unwrap() {
        if p["type"] == "netctl-dns" {
            p["type"] = json!("wrapped-dns");
        }
    }
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
}

/// `netctl --cni-path FOLDER:<built plugins> ARGS`, as a child process.
fn netctl_with(plugins: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(netctl_netns_tests::binary("netctl"));
    cmd.arg("--cni-path")
        .arg(format!("{}:{}", plugins.display(), bin_dir().display()))
        .args(args)
        .env_remove("NETCTL_ROOT")
        .env_remove("NETCTL_RUN")
        .env_remove("NETCTL_CNI_PATH");
    cmd
}

fn finished(out: std::process::Output) -> (i32, String) {
    let (code, o, e) = netctl_netns_tests::exit_and_streams(&out);
    if out.status.success() {
        (code, o + &e)
    } else {
        (code, format!("({}) {o}{e}", out.status))
    }
}

fn pid_gone(pid: &str) -> Result<(), String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
    if stat.is_empty() || state.starts_with('Z') {
        Ok(())
    } else {
        Err(stat)
    }
}

/// A plugin of a network hangs on ADD: `run` fails after the configured deadline with an
/// error naming the plugin, the plugin and its children are killed, and the attachment is
/// undone as after a failed ADD (no veth, address, rule or record is left).
#[test]
fn a_plugin_that_hangs_is_killed_at_the_deadline_and_its_attachment_undone() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.20.0.0/24", "slow"]);
    host.netctl_ok(&["run", "--rm", "--net", "slow", "busybox", "true"]);
    let before = host.host_listing();
    let plugins = hanging_plugin(host.dir());
    append_plugin("slow", "hang");
    let cni_path = format!("{}:{}", plugins.display(), bin_dir().display());
    let started = Instant::now();
    let (code, out, err) = host.netctl(&[
        "--cni-path",
        &cni_path,
        "--plugin-deadline",
        "2",
        "run",
        "--name",
        "stuck",
        "--net",
        "slow",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{out}{err}");
    assert!(
        err.contains("hang") && err.contains("did not finish within 2s"),
        "the error names the plugin and its deadline: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "run waited {:?}",
        started.elapsed()
    );
    let child = std::fs::read_to_string(host.dir().join("child")).unwrap();
    eventually(
        "the plugin's child is killed",
        Duration::from_secs(5),
        || pid_gone(child.trim()),
    );
    assert_eq!(host.host_listing(), before, "the failed run left something");
    assert_eq!(host.netctl_ok(&["ps", "-q"]), "", "nothing runs");
}

/// Eight `netctl network create web` at once, as eight compose projects starting together:
/// one makes the network, the seven others are told it exists; eight creates of different
/// names without `--subnet` each get a subnet of their own.
#[test]
fn parallel_creates_make_one_network_per_name_and_distinct_subnets() {
    let host = TestHost::new();
    let same: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(netctl_netns_tests::binary("netctl"))
                .args(["network", "create", "web"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let results: Vec<(i32, String)> = same
        .into_iter()
        .map(|c| finished(c.wait_with_output().unwrap()))
        .collect();
    let made = results.iter().filter(|(code, _)| *code == 0).count();
    assert_eq!(made, 1, "{results:?}");
    for (code, text) in results.iter().filter(|(code, _)| *code != 0) {
        assert!(text.contains("already exists"), "{code}: {text}");
    }
    let names = host.netctl_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names.lines().filter(|n| *n == "web").count(), 1, "{names}");

    let distinct: Vec<_> = (0..8)
        .map(|i| {
            std::process::Command::new(netctl_netns_tests::binary("netctl"))
                .args(["network", "create", &format!("n{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in distinct {
        let (code, text) = finished(c.wait_with_output().unwrap());
        assert_eq!(code, 0, "{text}");
    }
    let subnet = |name: &str| {
        let v: Value =
            serde_json::from_str(&host.netctl_ok(&["network", "inspect", name])).unwrap();
        v[0]["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut subnets: Vec<String> = (0..8).map(|i| subnet(&format!("n{i}"))).collect();
    subnets.push(subnet("web"));
    let all = subnets.clone();
    subnets.sort();
    subnets.dedup();
    assert_eq!(subnets.len(), 9, "two networks share a subnet: {all:?}");
}

/// `network rm` while a container's ADD on that network is under way (its DNS plugin is
/// slow): the removal waits for the ADD and is refused, and the container keeps a working
/// network; the network goes once the container does.
#[test]
fn network_rm_waits_for_an_add_under_way_and_refuses() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.21.0.0/24", "busy"]);
    let plugins = wrapped_dns(host.dir());
    wrap_dns_plugin("busy");
    std::fs::write(host.dir().join("slow"), "").unwrap();
    let run = netctl_with(
        &plugins,
        &[
            "run", "-d", "--name", "c1", "--net", "busy", "busybox", "sleep", "1000",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let adding = host.dir().join("adding");
    eventually("the ADD begins", Duration::from_secs(20), || {
        adding.exists().then_some(()).ok_or_else(String::new)
    });
    let (code, text) = finished(
        netctl_with(&plugins, &["network", "rm", "busy"])
            .output()
            .unwrap(),
    );
    assert_ne!(
        code, 0,
        "the network went while a container joined it: {text}"
    );
    assert!(text.contains("active endpoints"), "{text}");
    let (code, text) = finished(run.wait_with_output().unwrap());
    assert_eq!(code, 0, "{text}");
    let ip = host.netctl_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "c1",
    ]);
    assert_eq!(ip.trim(), "10.21.0.2");
    host.netctl_ok(&["exec", "c1", "ip", "addr", "show", "eth0"]);
    let (code, text) = finished(netctl_with(&plugins, &["rm", "-f", "c1"]).output().unwrap());
    assert_eq!(code, 0, "{text}");
    let (code, text) = finished(
        netctl_with(&plugins, &["network", "rm", "busy"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{text}");
}

/// A network's DEL fails while `rm -f` removes a container: `rm` says so, the container is
/// kept as dead (not lost with its endpoint, which would make the network impossible to
/// remove), `network rm` is refused meanwhile; once DEL works, `network rm` finishes the
/// detach and removes the network, and `rm` removes the dead container.
#[test]
fn a_del_that_fails_during_rm_keeps_a_dead_record_that_is_finished_later() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.22.0.0/24", "brittle"]);
    let plugins = wrapped_dns(host.dir());
    wrap_dns_plugin("brittle");
    let ok = |args: &[&str]| {
        let (code, text) = finished(netctl_with(&plugins, args).output().unwrap());
        assert_eq!(code, 0, "netctl {args:?}: {text}");
        text
    };
    ok(&[
        "run", "-d", "--name", "c1", "--net", "brittle", "busybox", "sleep", "1000",
    ]);
    std::fs::write(host.dir().join("fail-del"), "").unwrap();
    let (code, text) = finished(netctl_with(&plugins, &["rm", "-f", "c1"]).output().unwrap());
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("DEL refused by the test") && text.contains("dead"),
        "{text}"
    );
    let ps = ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("c1 Dead"), "{ps}");
    let (code, text) = finished(
        netctl_with(&plugins, &["network", "rm", "brittle"])
            .output()
            .unwrap(),
    );
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("active endpoints"), "{text}");
    let (code, text) = finished(netctl_with(&plugins, &["start", "c1"]).output().unwrap());
    assert_ne!(code, 0, "a dead container started: {text}");

    std::fs::remove_file(host.dir().join("fail-del")).unwrap();
    ok(&["network", "rm", "brittle"]);
    ok(&["rm", "c1"]);
    assert_eq!(ok(&["ps", "-aq"]), "");
}

/// `start` and `rm` of one stopped container at once, ten times: either `rm` wins and the
/// container is gone with no process left behind, or `start` wins and `rm` is refused with
/// the container running; never a removed container whose process runs on.
#[test]
fn start_and_rm_at_once_never_leave_an_orphan() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.23.0.0/24", "race"]);
    for round in 0..10 {
        let name = format!("r{round}");
        let marker = format!("{}", 2000 + round);
        host.netctl_ok(&[
            "create", "--name", &name, "--net", "race", "busybox", "sleep", &marker,
        ]);
        let spawn = |args: &[&str]| {
            std::process::Command::new(netctl_netns_tests::binary("netctl"))
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let start = spawn(&["start", &name]);
        let rm = spawn(&["rm", &name]);
        let _ = start.wait_with_output().unwrap();
        let (rm_code, rm_text) = finished(rm.wait_with_output().unwrap());
        let listed = host.netctl_ok(&["ps", "-a", "--format", "{{.Names}}"]);
        let procs = host.sh(&format!("pgrep -f 'sleep {marker}$' || true"));
        if rm_code == 0 {
            assert!(!listed.lines().any(|l| l == name), "{listed}");
            assert_eq!(
                procs.trim(),
                "",
                "round {round}: removed, but its process runs on"
            );
        } else {
            assert!(
                rm_text.contains("running container"),
                "round {round}: {rm_text}"
            );
            host.netctl_ok(&["rm", "-f", &name]);
        }
    }
    host.netctl_ok(&["network", "rm", "race"]);
}

/// `rmi` of one image, again and again, while `image import` stores another (three
/// times): the imported image always runs (its layer, unpacked but not yet named by a
/// record, is never pruned as unused).
#[test]
fn rmi_during_an_import_never_prunes_the_new_images_layer() {
    let host = TestHost::new();
    let rootfs = netctl_netns_tests::busybox_rootfs(host.dir());
    let small = host.dir().join("small");
    std::fs::create_dir_all(&small).unwrap();
    for round in 0..3 {
        let tag = format!("b{round}");
        // Each round's image differs from the last, so its layer is new to the store.
        std::fs::write(rootfs.join("round"), round.to_string()).unwrap();
        let mut import = std::process::Command::new(netctl_netns_tests::binary("netctl"))
            .args(["image", "import", &rootfs.display().to_string(), &tag])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut removals = 0;
        while import.try_wait().unwrap().is_none() {
            std::fs::write(small.join("n"), removals.to_string()).unwrap();
            host.netctl_ok(&["image", "import", &small.display().to_string(), "old"]);
            host.netctl_ok(&["rmi", "old"]);
            removals += 1;
        }
        let (code, text) = finished(import.wait_with_output().unwrap());
        assert_eq!(code, 0, "round {round}, after {removals} removals: {text}");
        host.netctl_ok(&["run", "--rm", "--net", "none", &tag, "true"]);
    }
}
