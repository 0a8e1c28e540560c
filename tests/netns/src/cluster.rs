//! A cluster of "machines" inside one test: each machine is a network and mount namespace of
//! its own (held by a `sleep` process), with private /run/netctl and /var/lib/netctl, one
//! leg on the test host's `underlay` bridge (10.99.0.N/24), one etcd member and, once it
//! joins, its own netctl-overlayd. Containers are namespaces made inside a machine. Dropping
//! the [`Lab`] kills every process of every machine; the kernel frees the rest.
//!
//! The cluster is secured as docs/overlay.md shows: a CA made for the lab signs each
//! machine's certificate (its etcd member's server and peer certificate, and its agent's
//! client certificate), and etcd asks for client certificates on both ports.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{binary, eventually, TestHost};

/// The test host (the underlay's switch) and its machines.
pub struct Lab {
    /// The test's own host namespace, holding the underlay bridge.
    pub host: TestHost,
    /// The machines, `m1`, `m2`, ...
    pub machines: Vec<Machine>,
    /// The lab's CA and certificates; None for a lab without TLS ([`Lab::plain`]).
    pub pki: Option<Pki>,
}

/// Certificates made with openssl: `ca.crt`, and `NAME.crt` + `NAME.key` for each named
/// holder (its address as subject alternative name; server and client use).
pub struct Pki {
    /// Where the files are.
    pub dir: PathBuf,
}

impl Pki {
    /// A CA in `dir` and a certificate from it for each `(name, address)`.
    pub fn make(dir: PathBuf, holders: &[(&str, &str)]) -> Pki {
        std::fs::create_dir_all(&dir).expect("pki folder");
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        let mut script = format!(
            "set -e; cd {d}; openssl req -x509 {ec} -keyout ca.key -out ca.crt -days 2 -subj /CN=netctl-lab-ca 2>/dev/null\n",
            d = dir.display()
        );
        for (n, addr) in holders {
            script += &format!(
                "openssl req {ec} -keyout {n}.key -out {n}.csr -subj /CN={n} 2>/dev/null\n\
                 printf 'subjectAltName=IP:{addr}\\nextendedKeyUsage=serverAuth,clientAuth\\n' > {n}.ext\n\
                 openssl x509 -req -in {n}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile {n}.ext -out {n}.crt 2>/dev/null\n"
            );
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "make the lab's certificates: {}",
            crate::output_text(&out)
        );
        Pki { dir }
    }

    /// A file of the PKI, as a string.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// One machine of a [`Lab`].
pub struct Machine {
    /// `m1`, `m2`, ...
    pub name: String,
    /// Its underlay address, `10.99.0.N`.
    pub addr: String,
    holder: Child,
    scratch: PathBuf,
}

impl Lab {
    /// `count` machines on one underlay, each running an etcd member of one cluster with
    /// TLS and client certificates on both ports (all healthy before this returns); none has
    /// joined the overlay yet.
    pub fn new(count: usize) -> Lab {
        Lab::make(count, true)
    }

    /// The same lab with etcd in plain HTTP and no client certificates (what the overlay
    /// benchmark sets beside the secured one).
    pub fn plain(count: usize) -> Lab {
        Lab::make(count, false)
    }

    fn make(count: usize, tls: bool) -> Lab {
        let host = TestHost::new();
        host.sh("ip link add underlay type bridge && ip link set underlay up");
        let machines: Vec<Machine> = (1..=count).map(|i| Machine::start(&host, i)).collect();
        let holders: Vec<(&str, &str)> = machines
            .iter()
            .map(|m| (m.name.as_str(), m.addr.as_str()))
            .collect();
        let pki = tls.then(|| Pki::make(host.dir().join("pki"), &holders));
        let lab = Lab {
            host,
            machines,
            pki,
        };
        let cluster: Vec<String> = lab
            .machines
            .iter()
            .map(|m| format!("{}={}://{}:2380", m.name, lab.scheme(), m.addr))
            .collect();
        for m in &lab.machines {
            m.start_etcd(&cluster.join(","), lab.pki.as_ref());
        }
        eventually("etcd has a leader", Duration::from_secs(20), || {
            match lab.machines[0].try_sh(&lab.etcdctl(
                1,
                &format!("--endpoints={} endpoint health", lab.endpoints()),
            )) {
                (true, _) => Ok(()),
                (false, out) => Err(out),
            }
        });
        lab
    }

    fn scheme(&self) -> &'static str {
        if self.pki.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// An `etcdctl` command line run on machine `from` (with that machine's client
    /// certificate in a secured lab).
    pub fn etcdctl(&self, from: usize, args: &str) -> String {
        let tls = self.pki.as_ref().map_or(String::new(), |p| {
            let n = &self.m(from).name;
            format!(
                "--cacert={} --cert={} --key={} ",
                p.file("ca.crt"),
                p.file(&format!("{n}.crt")),
                p.file(&format!("{n}.key"))
            )
        });
        format!("ETCDCTL_API=3 etcdctl --dial-timeout=1s --command-timeout=2s {tls}{args}")
    }

    /// The machine `m<n>`.
    pub fn m(&self, n: usize) -> &Machine {
        &self.machines[n - 1]
    }

    /// Every etcd member's client URL, comma-separated.
    pub fn endpoints(&self) -> String {
        self.machines
            .iter()
            .map(|m| format!("{}://{}:2379", self.scheme(), m.addr))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `netctl cluster join` on every machine (TTLs in seconds).
    pub fn join_all(&self, liveness_ttl: u32, tenure_ttl: u32) {
        for n in 1..=self.machines.len() {
            self.join(n, liveness_ttl, tenure_ttl);
        }
    }

    /// `netctl cluster join` on machine `n`, with its certificate in a secured lab.
    pub fn join(&self, n: usize, liveness_ttl: u32, tenure_ttl: u32) {
        let m = self.m(n);
        let args = self.join_args(n, liveness_ttl, tenure_ttl);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = m.netctl(&args);
        assert_eq!(code, 0, "{}: cluster join failed: {out}{err}", m.name);
    }

    /// The arguments of `netctl cluster join` for machine `n`.
    pub fn join_args(&self, n: usize, liveness_ttl: u32, tenure_ttl: u32) -> Vec<String> {
        let m = self.m(n);
        let mut args: Vec<String> = [
            "cluster",
            "join",
            "--store",
            &self.store(),
            "--advertise",
            &m.addr,
            "--host-name",
            &m.name,
            "--liveness-ttl",
            &liveness_ttl.to_string(),
            "--tenure-ttl",
            &tenure_ttl.to_string(),
        ]
        .map(String::from)
        .to_vec();
        if let Some(p) = &self.pki {
            for (flag, file) in [
                ("--etcd-cacert", "ca.crt".to_string()),
                ("--etcd-cert", format!("{}.crt", m.name)),
                ("--etcd-key", format!("{}.key", m.name)),
            ] {
                args.push(flag.into());
                args.push(p.file(&file));
            }
        }
        args
    }

    /// The `--store` every machine joins with.
    pub fn store(&self) -> String {
        let members: Vec<String> = self
            .machines
            .iter()
            .map(|m| format!("{}:2379", m.addr))
            .collect();
        format!("etcd://{}", members.join(","))
    }

    /// The machine (1-based) whose etcd member leads the cluster.
    pub fn etcd_leader(&self) -> usize {
        let out = self.m(1).stdout_of(&self.etcdctl(
            1,
            &format!("--endpoints={} endpoint status -w json", self.endpoints()),
        ));
        let status: serde_json::Value =
            serde_json::from_str(&out).expect("etcdctl endpoint status -w json");
        let leader = status
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|s| s["Status"]["header"]["member_id"] == s["Status"]["leader"])
            })
            .and_then(|s| s["Endpoint"].as_str())
            .expect("a leader");
        self.machines
            .iter()
            .position(|m| leader.contains(&m.addr))
            .expect("the leader is a machine")
            + 1
    }

    /// The keys under `prefix` in etcd, read through machine `from` (etcdctl's stdout
    /// alone: the warnings it logs on a slow answer are not keys).
    pub fn keys(&self, from: usize, prefix: &str) -> String {
        self.m(from).stdout_of(&self.etcdctl(
            from,
            &format!(
                "--endpoints={}://{}:2379 get --prefix --keys-only {prefix}",
                self.scheme(),
                self.m(from).addr
            ),
        ))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for m in &mut self.machines {
            m.kill();
        }
    }
}

impl Machine {
    fn start(host: &TestHost, n: usize) -> Machine {
        let name = format!("m{n}");
        let scratch = host.dir().join(&name);
        std::fs::create_dir_all(&scratch).expect("machine scratch folder");
        let holder = Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs tmpfs /run/netctl && mount -t tmpfs tmpfs /var/lib/netctl && echo up && exec sleep infinity")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a machine's namespace holder");
        let mut m = Machine {
            addr: format!("10.99.0.{n}"),
            name,
            holder,
            scratch,
        };
        let mut up = String::new();
        if let Some(out) = m.holder.stdout.as_mut() {
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut up)
                .expect("the holder says it is up");
        }
        assert_eq!(up.trim(), "up", "{}'s namespaces are ready", m.name);
        host.sh(&format!(
            "ip link add u{n} type veth peer name eth0 netns /proc/{pid}/ns/net && ip link set u{n} master underlay up",
            pid = m.pid()
        ));
        m.sh(&format!(
            "ip link set lo up && ip addr add {}/24 dev eth0 && ip link set eth0 up",
            m.addr
        ));
        m
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// A path inside this machine's mount namespace, as this process can open it.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.pid()))
    }

    /// This machine's network namespace, as a path this process can open.
    pub fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid()))
    }

    fn start_etcd(&self, cluster: &str, pki: Option<&Pki>) {
        let (name, addr) = (&self.name, &self.addr);
        let data = self.scratch.join("etcd");
        let log = self.scratch.join("etcd.log");
        let (scheme, tls) = match pki {
            Some(p) => {
                let (ca, crt, key) = (
                    p.file("ca.crt"),
                    p.file(&format!("{name}.crt")),
                    p.file(&format!("{name}.key")),
                );
                (
                    "https",
                    format!(
                        "--cert-file {crt} --key-file {key} --trusted-ca-file {ca} --client-cert-auth \
                         --peer-cert-file {crt} --peer-key-file {key} --peer-trusted-ca-file {ca} --peer-client-cert-auth"
                    ),
                )
            }
            None => ("http", String::new()),
        };
        self.sh(&format!(
            "etcd --name {name} --data-dir {data} --listen-peer-urls {scheme}://{addr}:2380 \
             --initial-advertise-peer-urls {scheme}://{addr}:2380 \
             --listen-client-urls {scheme}://{addr}:2379 --advertise-client-urls {scheme}://{addr}:2379 \
             --initial-cluster {cluster} --initial-cluster-state new --initial-cluster-token netctl-test \
             --heartbeat-interval 100 --election-timeout 1000 {tls} >{log} 2>&1 &",
            data = data.display(),
            log = log.display()
        ));
    }

    /// Runs a shell command in this machine.
    fn shell(&self, script: &str) -> std::process::Output {
        Command::new("nsenter")
            .args([
                "-t",
                &self.pid().to_string(),
                "-n",
                "-m",
                "sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter")
    }

    /// Runs a shell command in this machine; returns whether it succeeded and its output.
    pub fn try_sh(&self, script: &str) -> (bool, String) {
        let out = self.shell(script);
        (out.status.success(), crate::output_text(&out))
    }

    /// Runs a shell command in this machine; its stdout, or a panic with its output when it
    /// fails.
    pub fn stdout_of(&self, script: &str) -> String {
        let out = self.shell(script);
        assert!(
            out.status.success(),
            "{}: `{script}` failed: {}",
            self.name,
            crate::output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a shell command in this machine; panics with its output when it fails.
    pub fn sh(&self, script: &str) -> String {
        match self.try_sh(script) {
            (true, out) => out,
            (false, out) => panic!("{}: `{script}` failed: {out}", self.name),
        }
    }

    /// Runs `netctl ARGS` on this machine; exit code, stdout, stderr.
    pub fn netctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n", "-m"])
            .arg(binary("netctl"))
            .args(args)
            .env_remove("NETCTL_ROOT")
            .env_remove("NETCTL_RUN")
            .env_remove("CNI_PATH")
            .stdin(Stdio::null())
            .output()
            .expect("run netctl");
        crate::exit_and_streams(&out)
    }

    /// `netctl ARGS`, which must succeed; its stdout.
    pub fn netctl_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.netctl(args);
        assert_eq!(code, 0, "{}: netctl {args:?} failed: {out}{err}", self.name);
        out
    }

    /// ADD of container `id` (namespace `netns`) to `network`, as `netctl cni add` does for
    /// a runtime; the exit code, the address (if any) and what it printed.
    pub fn cni_add(
        &self,
        network: &str,
        id: &str,
        netns: &str,
        extra: &[&str],
    ) -> (i32, Option<String>, String) {
        let mut args = vec!["cni", "add", "--id", id, "--netns", netns, "--name", id];
        args.extend_from_slice(extra);
        args.push(network);
        let (code, out, err) = self.netctl(&args);
        let addr = serde_json::from_str::<serde_json::Value>(&out)
            .ok()
            .and_then(|v| {
                v["ips"][0]["address"]
                    .as_str()
                    .and_then(|a| a.split('/').next())
                    .map(str::to_string)
            });
        (code, addr, format!("{out}{err}"))
    }

    /// [`Machine::cni_add`], which must succeed; the address.
    pub fn cni_add_ok(&self, network: &str, id: &str, netns: &str, extra: &[&str]) -> String {
        match self.cni_add(network, id, netns, extra) {
            (0, Some(a), _) => a,
            (code, _, out) => panic!("{}: ADD of {id} failed ({code}): {out}", self.name),
        }
    }

    /// `netctl network create -d overlay --subnet SUBNET [EXTRA...] NAME` on this machine.
    pub fn create_overlay(&self, name: &str, subnet: &str, extra: &[&str]) {
        let mut args = vec!["network", "create", "-d", "overlay", "--subnet", subnet];
        args.extend_from_slice(extra);
        args.push(name);
        self.netctl_ok(&args);
    }

    /// Makes a container namespace on this machine; its path there.
    pub fn container(&self, name: &str) -> String {
        let path = format!("/run/netctl/test-netns/{name}");
        self.sh(&format!(
            "mkdir -p /run/netctl/test-netns && touch {path} && unshare --net={path} ip link set lo up"
        ));
        path
    }

    /// Runs a shell command inside container `netns` of this machine.
    pub fn in_container(&self, netns: &str, script: &str) -> (bool, String) {
        self.try_sh(&format!(
            "nsenter --net={netns} sh -c '{}'",
            script.replace('\'', r"'\''")
        ))
    }

    /// Runs Debian's libcni (the test suite's client) on this machine: `action` of the
    /// conflist at `list` (a path on this machine) for container `id` in `netns`, with
    /// capability arguments `caps` (JSON); whether it succeeded and what it printed.
    pub fn libcni(
        &self,
        action: &str,
        list: &str,
        id: &str,
        netns: &str,
        caps: &str,
    ) -> (bool, String) {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n", "-m"])
            .arg(crate::libcni_client())
            .args([action, list, id, netns, "eth0"])
            .env("CNI_PATH", crate::bin_dir())
            .env("CNI_CACHE_DIR", "/run/netctl/libcni-cache")
            .env("CAP_ARGS", caps)
            .stdin(Stdio::null())
            .output()
            .expect("run the libcni client");
        (out.status.success(), crate::output_text(&out))
    }

    /// What the agent wrote to its log (what it could not do), for failure messages.
    pub fn agent_log(&self) -> String {
        self.try_sh("cat /run/netctl/overlay/agent.log").1
    }

    /// The agent's process ID.
    pub fn agent_pid(&self) -> String {
        self.sh("cat /run/netctl/overlay/agent.pid")
            .trim()
            .to_string()
    }

    /// `kill -9` of this machine's agent (and nothing else).
    pub fn kill_agent(&self) {
        let pid = self.agent_pid();
        self.sh(&format!(
            "kill -9 {pid}; while [ -e /proc/{pid} ] && ! grep -q '^State:.*Z' /proc/{pid}/status; do sleep 0.01; done"
        ));
    }

    /// Kills every process of this machine (its agent, etcd member, DNS server, what runs in
    /// its containers and the holder): the machine is gone, its namespaces with it.
    pub fn kill(&mut self) {
        // Containers run in mount namespaces of their own: removed the way a user would.
        let netctl = binary("netctl").display().to_string();
        let _ = self.try_sh(&format!(
            "[ -d /var/lib/netctl/containers ] && ids=$({netctl} ps -aq) && [ -n \"$ids\" ] && {netctl} rm -f $ids"
        ));
        let mnt = std::fs::read_link(format!("/proc/{}/ns/mnt", self.pid())).ok();
        if let (Some(mnt), Ok(procs)) = (mnt, std::fs::read_dir("/proc")) {
            for p in procs.flatten() {
                let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                if std::fs::read_link(p.path().join("ns/mnt")).ok().as_ref() == Some(&mnt) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
