//! The integration-test harness: every test gets a throwaway "host" (a new network and mount
//! namespace entered by the test's own thread), "container" namespaces made inside it, and
//! the built plugin binaries. Everything is removed when the [`TestHost`] is dropped, also
//! when the test fails; and since the namespaces belong to the test's thread, the kernel
//! drops whatever is left when that thread ends. Nothing touches the machine's namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apifuzz;
pub mod cluster;
pub mod daemon;
pub mod docker;
pub mod fake_registry;
pub mod hostile;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use netctl_cni::invoke::{CniConfig, RuntimeConf};
use netctl_cni::NetConfList;
use netctl_net::NetNs;
use nix::mount::{mount, MsFlags};
use serde_json::Value;

/// The folder holding the built binaries (`target/<profile>`), or `NETCTL_BIN_DIR`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NETCTL_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The path of a built binary; fails loudly when it has not been built.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace` before the netns tests",
        p.display()
    );
    p
}

/// Polls `check` (every 20 ms) until it gives `Some`, for at most `within`; then panics
/// saying what never happened and what the last check saw. Tests wait for conditions with
/// this instead of sleeping a guessed time.
pub fn eventually<T>(
    what: &str,
    within: std::time::Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if std::time::Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last saw: {last}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// One test's private host: its own network and mount namespaces and a scratch folder.
pub struct TestHost {
    dir: tempfile::TempDir,
    containers: Vec<PathBuf>,
    background: Vec<std::process::Child>,
}

/// The default state folders of the plugins; each test gets an empty tmpfs over them, so
/// nothing a test does can land in the machine's own.
pub const STATE_DIRS: [&str; 2] = ["/run/netctl", "/var/lib/netctl"];

impl TestHost {
    /// Moves the calling test thread into a fresh network + mount namespace (mounts made
    /// there do not propagate back) and makes a scratch folder for state and netns files.
    pub fn new() -> TestHost {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the netns tests need root (they create namespaces)"
        );
        NetNs::unshare_private().expect("a private network and mount namespace for the test host");
        for d in STATE_DIRS {
            std::fs::create_dir_all(d).expect("state folder mount point");
            mount(
                Some("tmpfs"),
                d,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .expect("private tmpfs over a state folder");
        }
        let dir = tempfile::Builder::new()
            .prefix("netctl-test-")
            .tempdir()
            .expect("scratch folder");
        std::fs::create_dir(dir.path().join("netns")).expect("netns folder");
        let host = TestHost {
            dir,
            containers: Vec::new(),
            background: Vec::new(),
        };
        host.sh("ip link set lo up");
        // No test may ever ask the machine's own resolver: until a test names an upstream of
        // its own, resolv.conf names none.
        host.resolv_conf("# no upstream in this test\n");
        host
    }

    /// The scratch folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Makes a "container" network namespace, bind-mounted under the scratch folder.
    pub fn container(&mut self, name: &str) -> PathBuf {
        let path = self.dir().join("netns").join(name);
        NetNs::create(&path).expect("create a container namespace");
        self.containers.push(path.clone());
        path
    }

    /// Removes a container namespace early (to test DEL after the container is gone).
    pub fn remove_container(&mut self, path: &Path) {
        NetNs::remove(path).expect("remove a container namespace");
        self.containers.retain(|p| p != path);
    }

    /// A CNI client that finds the built plugins and caches under the scratch folder.
    pub fn cni(&self) -> CniConfig {
        CniConfig::new(vec![bin_dir()], self.dir().join("cni-cache"))
    }

    /// Runs a plugin binary directly; see [`run_plugin`].
    pub fn run_plugin(&self, name: &str, env: &[(&str, &str)], stdin: &str) -> (i32, Value) {
        run_plugin(name, env, stdin)
    }

    /// Runs a shell command in this host's namespaces; panics with its output if it fails.
    pub fn sh(&self, script: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "`{script}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a shell command; returns whether it succeeded and what it printed.
    pub fn try_sh(&self, script: &str) -> (bool, String) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("run sh");
        (out.status.success(), output_text(&out))
    }

    /// Runs a shell command inside a namespace; returns whether it succeeded and its output.
    pub fn try_sh_in(&self, netns: &Path, script: &str) -> (bool, String) {
        self.try_sh(&format!(
            "nsenter --net={} sh -c '{}'",
            netns.display(),
            script
        ))
    }

    /// Starts a long-running command inside a namespace; it is killed when the test ends.
    pub fn spawn_in(&mut self, netns: &Path, script: &str) {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a background command");
        self.background.push(child);
    }

    /// Starts a long-running command in this host's namespaces (a daemon another test
    /// needs); it is killed when the test ends.
    pub fn spawn(&mut self, script: &str) {
        let child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a background command");
        self.background.push(child);
    }

    /// Makes an "outside" host: a namespace linked to this host by a veth pair, `host_addr`
    /// on this side (interface `uplink`), `outside_addr` on the other, with a default route
    /// back; like a machine on the host's LAN.
    pub fn outside(&mut self, name: &str, host_addr: &str, outside_addr: &str) -> PathBuf {
        let ns = self.container(name);
        let gw = host_addr.split('/').next().unwrap_or_default();
        self.sh(&format!(
            "ip link add uplink type veth peer name eth0 netns {ns} && ip addr add {host_addr} dev uplink && ip link set uplink up",
            ns = ns.display()
        ));
        self.sh_in(
            &ns,
            &format!("ip link set lo up; ip addr add {outside_addr} dev eth0; ip link set eth0 up; ip route add default via {gw}"),
        );
        ns
    }

    /// Waits (up to 5 s) until the links DEL retired have been deleted by their reapers (no
    /// reaper runs any more, forked or started as `--reap-link`; other tests' reapers only
    /// make this wait a little longer).
    pub fn wait_for_reapers(&self) {
        eventually(
            "retired links reaped",
            std::time::Duration::from_secs(5),
            || {
                match self.try_sh(
                "ps -eo stat=,pid=,comm=,args= | grep -v '^Z' | grep -E -- '--reap-lin[k]|netctl-reape[r]'",
            ) {
                (true, running) => Err(running),
                (false, _) => Ok(()),
            }
            },
        );
    }

    /// Runs `netctl ARGS` (state in this test's private /var/lib/netctl and /run/netctl);
    /// returns exit code, stdout and stderr.
    pub fn netctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(binary("netctl"))
            .args(args)
            .env_remove("CNI_PATH")
            .env_remove("NETCTL_ROOT")
            .env_remove("NETCTL_RUN")
            .output()
            .expect("run netctl");
        exit_and_streams(&out)
    }

    /// Runs `netctl ARGS` and returns its stdout; panics with its output when it fails.
    pub fn netctl_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.netctl(args);
        assert_eq!(code, 0, "netctl {args:?} failed: {out}{err}");
        out
    }

    /// Imports a `busybox` image: Debian's static busybox with a link per applet, and a
    /// /www/index.html for httpd.
    pub fn busybox_image(&self) {
        let root = busybox_rootfs(self.dir());
        self.netctl_ok(&["image", "import", &root.display().to_string(), "busybox"]);
    }

    /// What a user would list to see what netctl left on the host: links, addresses, routes,
    /// firewall rules, mounts, namespaces, address allocations and DNS records (without the
    /// carrier and DAD states, which the kernel changes on its own time).
    pub fn host_listing(&self) -> String {
        self.wait_for_reapers();
        self.sh(
            "ip -o link | sed 's/ state .*//; s/NO-CARRIER,//; s/,LOWER_UP//'; ip -o addr | sed 's/ tentative//'; ip route | sed 's/ linkdown//'; nft list ruleset; \
             grep -c . /proc/self/mountinfo; ls -R /run/netctl/netns /var/lib/netctl/ipam /run/netctl/dns/records 2>/dev/null | grep -v '^last:'; true",
        )
    }

    /// Replaces /etc/resolv.conf, in this test's mount namespace only.
    pub fn resolv_conf(&self, text: &str) {
        let path = self.dir().join("resolv.conf");
        std::fs::write(&path, text).expect("write resolv.conf");
        self.sh(&format!("mount --bind {} /etc/resolv.conf", path.display()));
    }

    /// Runs a shell command inside a container namespace.
    pub fn sh_in(&self, netns: &Path, script: &str) -> String {
        self.sh(&format!(
            "nsenter --net={} sh -c '{}'",
            netns.display(),
            script
        ))
    }

    /// The libcni client, built once per test binary from Debian's libcni sources.
    pub fn libcni(&self, action: &str, list: &Path, rt: &RuntimeConf) -> Output {
        let netns = rt
            .netns
            .as_deref()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Command::new(libcni_client())
            .args([action, &list.display().to_string(), &rt.container_id])
            .arg(netns)
            .arg(&rt.ifname)
            .env("CNI_PATH", bin_dir())
            .env("CNI_CACHE_DIR", self.dir().join("libcni-cache"))
            .env(
                "CAP_ARGS",
                Value::Object(rt.capability_args.clone()).to_string(),
            )
            .output()
            .expect("run the libcni client")
    }

    /// Writes a conflist into the scratch folder and parses it.
    pub fn conflist(&self, name: &str, json: &Value) -> (PathBuf, NetConfList) {
        let path = self.dir().join(format!("{name}.conflist"));
        std::fs::write(&path, json.to_string()).expect("write conflist");
        let list = NetConfList::from_slice(json.to_string().as_bytes()).expect("valid conflist");
        (path, list)
    }
}

impl Default for TestHost {
    fn default() -> Self {
        TestHost::new()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Containers a test left (it failed midway): their monitors are detached processes
        // in this test's namespaces.
        if Path::new("/var/lib/netctl/containers").is_dir() {
            let (_, ids, _) = self.netctl(&["ps", "-aq"]);
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self.netctl(&[&["rm", "-f"][..], &ids].concat());
            }
        }
        // A DNS server a test started lives in this test's namespaces: stop its supervisor
        // (which would start it again), then it.
        for file in ["supervisor.pid", "dnsd.pid"] {
            if let Ok(pid) = std::fs::read_to_string(Path::new("/run/netctl/dns").join(file)) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        for mut c in self.background.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_namespace_processes(&self.containers);
        for p in self.containers.drain(..) {
            let _ = NetNs::remove(&p);
        }
    }
}

/// What a command printed, stdout then stderr.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command's exit code (-1 when a signal ended it), stdout and stderr.
pub fn exit_and_streams(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Makes (once) `DIR/busybox-rootfs`: Debian's static busybox with a link per applet, and a
/// /www/index.html for httpd; its path, for `netctl image import`.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("busybox-rootfs");
    if root.join("bin/busybox").is_file() {
        return root;
    }
    for d in ["bin", "etc", "tmp", "www", "root"] {
        std::fs::create_dir_all(root.join(d)).expect("rootfs folder");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                .expect("applet link");
        }
    }
    std::fs::write(root.join("www/index.html"), "hello from busybox httpd\n").expect("index.html");
    // Accounts for `-u` and `--group-add`, the same in netctl's image and Docker's.
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nwww:x:33:33:www:/var/www:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\ndaemon:x:1:\nwww:x:33:\nstaff:x:50:www\n",
    )
    .expect("group");
    root
}

/// Kills whatever still runs in this test's host namespace or in one of its container
/// namespaces (a firewall watcher, a server a failed test left, the daemon a `sh -c` in a
/// container started and left behind when the shell was killed): nothing a test started
/// outlives it.
fn kill_namespace_processes(containers: &[PathBuf]) {
    use std::os::unix::fs::MetadataExt;
    let inode = |p: &Path| std::fs::metadata(p).ok().map(|m| m.ino());
    let mut ours: Vec<u64> = containers.iter().filter_map(|c| inode(c)).collect();
    let Some(own) = inode(Path::new("/proc/thread-self/ns/net")) else {
        return;
    };
    ours.push(own);
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid as u32 != me && inode(&p.path().join("ns/net")).is_some_and(|i| ours.contains(&i)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs a plugin binary with exactly the given `CNI_*` environment and stdin; returns the
/// exit code and stdout parsed as JSON (`Null` when it printed nothing).
pub fn run_plugin(name: &str, env: &[(&str, &str)], stdin: &str) -> (i32, Value) {
    let mut cmd = Command::new(binary(name));
    for k in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = pipe(cmd, stdin.as_bytes());
    let text = String::from_utf8_lossy(&out.stdout);
    let json = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("plugin stdout is not JSON ({e}): {text:?}"))
    };
    (out.status.code().unwrap_or(-1), json)
}

fn pipe(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// A runtime configuration for one attachment.
pub fn attachment(container_id: &str, netns: Option<&Path>, ifname: &str) -> RuntimeConf {
    RuntimeConf {
        container_id: container_id.into(),
        netns: netns.map(Path::to_path_buf),
        ifname: ifname.into(),
        ..RuntimeConf::default()
    }
}

/// The standard `CNI_*` environment for a direct plugin call.
pub fn cni_env<'a>(command: &'a str, netns: &'a str) -> HashMap<&'static str, &'a str> {
    HashMap::from([
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ])
}

/// Builds `tests/netns/libcni-client` with Debian's Go and libcni (GOPATH mode), once.
pub(crate) fn libcni_client() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("libcni-client");
        let out = bin_dir().join("libcni-client");
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(&src)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", bin_dir().join("go-cache"))
            .status()
            .expect("run `go` (Debian packages golang-go and golang-github-appc-cni-dev)");
        assert!(status.success(), "building the libcni client failed");
        out
    })
}

/// Makes the calling test thread what a careless runtime is: SIGTERM, SIGINT and SIGHUP
/// blocked, SIGHUP also ignored. Everything it starts inherits that unless netctl resets it.
#[allow(unsafe_code)]
pub fn act_as_a_careless_runtime() {
    use nix::sys::signal::{pthread_sigmask, signal, SigHandler, SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).expect("block signals");
    // SAFETY: SIG_IGN is no handler: nothing runs on delivery.
    unsafe { signal(Signal::SIGHUP, SigHandler::SigIgn) }.expect("ignore SIGHUP");
}

/// Whether process `pid` runs (exists and is no zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

/// Sends one whole Ethernet `frame` out of interface `ifname` of namespace `ns`, as a
/// process with CAP_NET_RAW there can (a packet socket: any source MAC, any payload).
#[allow(unsafe_code)]
pub fn send_frame(ns: &Path, ifname: &str, frame: Vec<u8>) {
    use nix::sys::socket::SockaddrLike;
    use nix::sys::socket::{sendto, socket, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType};
    let ifname = ifname.to_string();
    NetNs::open(ns)
        .expect("open the namespace")
        .run(move || {
            let fd = socket(
                AddressFamily::Packet,
                SockType::Raw,
                SockFlag::empty(),
                None,
            )
            .expect("a packet socket");
            let index = nix::net::if_::if_nametoindex(ifname.as_str()).expect("the interface");
            // SAFETY: a zeroed sockaddr_ll is valid; the fields set are plain integers.
            let mut sll: nix::libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = nix::libc::AF_PACKET as u16;
            sll.sll_ifindex = index as i32;
            sll.sll_halen = 6;
            // SAFETY: the pointer and length are those of the sockaddr_ll above.
            let to = unsafe {
                LinkAddr::from_raw(
                    std::ptr::addr_of!(sll).cast(),
                    Some(std::mem::size_of::<nix::libc::sockaddr_ll>() as u32),
                )
            }
            .expect("a link address");
            sendto(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &frame,
                &to,
                MsgFlags::empty(),
            )
            .expect("send the frame");
        })
        .expect("run in the namespace");
}

/// An unsolicited ARP reply (gratuitous ARP, broadcast) from `mac` saying that `ip` is at
/// `mac`: what a neighbour sends to take an address over.
pub fn gratuitous_arp(mac: [u8; 6], ip: std::net::Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// Captures every frame on every interface of the calling thread's network namespace (a
/// packet socket, as tcpdump -i any) for `span`, in a thread of its own; what the thread
/// returns is every frame seen.
pub fn capture(span: std::time::Duration) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    use nix::sys::socket::{
        recv, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
    };
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::empty(),
        SockProtocol::EthAll,
    )
    .expect("a packet socket for the capture");
    nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 100_000),
    )
    .expect("a receive timeout");
    std::thread::spawn(move || {
        let until = std::time::Instant::now() + span;
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while std::time::Instant::now() < until {
            if let Ok(n) = recv(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &mut buf,
                MsgFlags::empty(),
            ) {
                frames.push(buf[..n].to_vec());
            }
        }
        frames
    })
}
