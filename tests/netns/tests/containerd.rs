//! containerd (Debian's 1.6, the runtime under Kubernetes nodes) as a second real runtime:
//! `ctr run --cni` attaches its containers with a conflist netctl wrote, from the test's own
//! /etc/cni/net.d and /opt/cni/bin, and netctl's plugins serve them as they serve netctl's
//! and podman's containers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use netctl_netns_tests::{binary, eventually, TestHost};

/// netctl's plugins as the CNI plugins runtimes find (/opt/cni/bin) and `network`'s
/// conflist as their only network (/etc/cni/net.d), both the test's own.
fn cni_dirs_with_netctl(host: &TestHost, network: &str) {
    for d in [
        "/etc/cni/net.d",
        "/opt/cni/bin",
        "/run/containerd",
        "/var/lib/containerd",
    ] {
        host.sh(&format!("mkdir -p {d} && mount -t tmpfs tmpfs {d}"));
    }
    for plugin in ["netctl-bridge", "netctl-ipam", "netctl-dns", "netctl-dnsd"] {
        std::fs::copy(binary(plugin), format!("/opt/cni/bin/{plugin}")).unwrap();
    }
    // CRI brings up each pod's loopback with the reference plugin, as every node has it.
    std::fs::copy("/usr/lib/cni/loopback", "/opt/cni/bin/loopback").unwrap();
    std::fs::copy(
        format!("/var/lib/netctl/networks/{network}.conflist"),
        format!("/etc/cni/net.d/10-{network}.conflist"),
    )
    .unwrap();
}

/// A containerd of the test's own (state in tmpfs, or as `config` says), with netctl's
/// plugins and `network`, answering `ctr version`.
fn containerd_started(host: &mut TestHost, network: &str, config: &std::path::Path) {
    cni_dirs_with_netctl(host, network);
    start_containerd(host, config);
}

/// Starts containerd (`config`, or its defaults when empty) and waits for `ctr version`.
fn start_containerd(host: &mut TestHost, config: &std::path::Path) {
    let log = host.dir().join("containerd.log");
    let args = if config.as_os_str().is_empty() {
        String::new()
    } else {
        format!("--config {}", config.display())
    };
    host.spawn(&format!("exec containerd {args} > {} 2>&1", log.display()));
    let address = if args.is_empty() {
        String::new()
    } else {
        let text = std::fs::read_to_string(config).unwrap();
        let a = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("address = "))
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        format!("-a {a}")
    };
    eventually("containerd answers", Duration::from_secs(20), || match host
        .try_sh(&format!("ctr {address} version"))
    {
        (true, _) => Ok(()),
        (false, out) => Err(out),
    });
}

/// A containerd of the test's own with its default state folders (tmpfs).
fn containerd_with_netctl(host: &mut TestHost, network: &str) {
    containerd_started(host, network, std::path::Path::new(""));
}

/// Files of the network's DNS records and address leases (what ADD makes and DEL takes).
fn attachments(network: &str) -> (Vec<String>, Vec<String>) {
    let names = |dir: String, keep: fn(&str) -> bool| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| keep(n))
            .collect();
        v.sort();
        v
    };
    (
        names(format!("/run/netctl/dns/records/{network}"), |n| {
            n.ends_with(".json")
        }),
        names(format!("/var/lib/netctl/ipam/{network}"), |n| {
            n.starts_with("owner:")
        }),
    )
}

/// A containerd user runs a server and a client with `ctr run --cni` on a network netctl
/// made: each gets an address of the network, the client reaches the server by the name
/// containerd gave it (its CNI container ID) through netctl's DNS server and by address, and
/// when the `--rm` client ends, its DEL takes back its record and its address.
#[test]
fn ctr_run_with_cni_attaches_through_netctls_plugins() {
    let mut host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["network", "create", "--subnet", "10.61.0.0/24", "ctrnet"]);
    let archive = host.dir().join("busybox.tar").display().to_string();
    host.netctl_ok(&["save", "-o", &archive, "busybox"]);
    containerd_with_netctl(&mut host, "ctrnet");
    host.sh(&format!("ctr images import {archive} >/dev/null"));
    let image = "docker.io/library/busybox:latest";
    host.sh(&format!(
        "ctr run -d --cni {image} web httpd -f -p 80 -h /etc >/dev/null"
    ));
    let (records, leases) = attachments("ctrnet");
    assert_eq!(records, ["default-web:eth0.json"]);
    assert_eq!(leases, ["owner:default-web:eth0"]);
    let out = host.sh(&format!(
        "ctr run --cni --rm {image} client sh -c 'ip -4 addr show eth0 | grep -o \"inet [0-9.]*\"; nslookup default-web 127.0.0.11 | grep ^Address: | tail -1; wget -qO- http://10.61.0.2/passwd | head -1'"
    ));
    assert_eq!(
        out,
        "inet 10.61.0.3\nAddress: 10.61.0.2\nroot:x:0:0:root:/root:/bin/sh\n"
    );
    assert_eq!(
        attachments("ctrnet"),
        (
            vec!["default-web:eth0.json".to_string()],
            vec!["owner:default-web:eth0".to_string()]
        ),
        "the client's DEL left its record or address"
    );
    host.sh("ctr task kill -s KILL web; for i in $(seq 50); do ctr task rm web >/dev/null 2>&1 && break; sleep 0.1; done; ctr container rm web");
}

/// The test's client of the CRI subset in proto/cri.proto.
mod cri {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("runtime.v1");
}

use cri::runtime_service_client::RuntimeServiceClient;

/// A CRI client on containerd's unix socket.
async fn cri_client(socket: std::path::PathBuf) -> RuntimeServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(socket)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
        .expect("connect to containerd's CRI socket");
    RuntimeServiceClient::new(channel)
}

/// What a kubelet does for a pod with a published port, through containerd's CRI: the
/// runtime reports its network ready (containerd 1.6 does so once it has loaded a CNI
/// conflist; it does not ask the plugins' STATUS, which containerd 2 does), RunPodSandbox
/// attaches the pod with `K8S_POD_*` CNI_ARGS and the port mapping, PodSandboxStatus shows
/// the pod IP, the pod's name resolves through netctl's DNS server, the host port answers,
/// the pod's ingress- and egress-bandwidth annotations are shaped by the reference bandwidth
/// plugin chained after netctl's (it finds the host veth in netctl's result; egress through
/// an ifb device), and StopPodSandbox takes it all back.
#[test]
fn a_kubelet_runs_a_pod_through_containerds_cri() {
    let mut host = TestHost::new();
    host.netctl_ok(&["network", "create", "--subnet", "10.61.0.0/24", "podnet"]);
    let rootfs = netctl_netns_tests::busybox_rootfs(host.dir());
    let sandbox_image = "netctl.test/pod-sandbox:1";
    host.netctl_ok(&[
        "image",
        "import",
        "-c",
        r#"CMD ["httpd", "-f", "-p", "80", "-h", "/etc"]"#,
        &rootfs.display().to_string(),
        sandbox_image,
    ]);
    host.busybox_image();
    let archive = host.dir().join("images.tar").display().to_string();
    host.netctl_ok(&["save", "-o", &archive, sandbox_image, "busybox"]);
    let state = host.dir().join("containerd");
    let socket = state.join("containerd.sock");
    std::fs::create_dir_all(&state).unwrap();
    // This machine may not let even root lower an OOM score (-998, what CRI gives a
    // sandbox): containerd's option for such nodes keeps it at the caller's. No AppArmor.
    std::fs::write(
        state.join("config.toml"),
        format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n[grpc]\n  address = \"{s}\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{sandbox_image}\"\n  disable_apparmor = true\n  restrict_oom_score_adj = true\n  [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"/opt/cni/bin\"\n    conf_dir = \"/etc/cni/net.d\"\n",
            d = state.display(),
            s = socket.display()
        ),
    )
    .unwrap();
    cni_dirs_with_netctl(&host, "podnet");
    // The reference bandwidth plugin chained after netctl's, as kubelet nodes shape pods.
    std::fs::copy("/usr/lib/cni/bandwidth", "/opt/cni/bin/bandwidth").unwrap();
    let conflist = "/etc/cni/net.d/10-podnet.conflist";
    let mut list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(conflist).unwrap()).unwrap();
    list["plugins"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}));
    std::fs::write(conflist, serde_json::to_vec(&list).unwrap()).unwrap();
    start_containerd(&mut host, &state.join("config.toml"));
    let ctr = format!("ctr -a {}", socket.display());
    host.sh(&format!("{ctr} -n k8s.io images import {archive} >/dev/null && {ctr} images import {archive} >/dev/null"));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt.block_on(cri_client(socket.clone()));
    let status = rt
        .block_on(client.status(cri::StatusRequest { verbose: false }))
        .unwrap()
        .into_inner();
    let network_ready = status
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.r#type == "NetworkReady")
        .expect("a NetworkReady condition");
    assert!(network_ready.status, "{network_ready:?}");

    let config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "web".into(),
            uid: "0f1e2d3c".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "web".into(),
        log_directory: host.dir().join("pod-logs").display().to_string(),
        dns_config: Some(cri::DnsConfig {
            servers: vec!["10.61.0.1".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        port_mappings: vec![cri::PortMapping {
            protocol: cri::Protocol::Tcp as i32,
            container_port: 80,
            host_port: 8081,
            host_ip: String::new(),
        }],
        annotations: [
            ("kubernetes.io/ingress-bandwidth", "10M"),
            ("kubernetes.io/egress-bandwidth", "5M"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into(),
        ..Default::default()
    };
    let id = rt
        .block_on(client.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        }))
        .unwrap_or_else(|e| {
            let log =
                std::fs::read_to_string(host.dir().join("containerd.log")).unwrap_or_default();
            panic!("RunPodSandbox: {e}\n{log}")
        })
        .into_inner()
        .pod_sandbox_id;
    let pod_status = rt
        .block_on(client.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        }))
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ip = pod_status.network.unwrap().ip;
    assert!(ip.starts_with("10.61.0."), "pod IP {ip}");
    let (records, leases) = attachments("podnet");
    assert_eq!(records, [format!("{id}:eth0.json")]);
    assert_eq!(leases, [format!("owner:{id}:eth0")]);

    let asked = host.sh(&format!(
        "{ctr} run --cni --rm docker.io/library/busybox:latest asker nslookup web 127.0.0.11 | grep ^Address: | tail -1"
    ));
    assert_eq!(asked, format!("Address: {ip}\n"));
    // Ingress: a tbf on the pod's host veth; egress: the veth's ingress redirected to an
    // ifb device with a tbf of its own (the reference plugin's way).
    let shaped = host.sh("tc qdisc show | grep ' tbf ' | grep -o 'rate [^ ]*' | sort");
    assert_eq!(
        shaped, "rate 10Mbit\nrate 5Mbit\n",
        "the pod's ingress and egress rates are not shaped on its host side"
    );
    let ifb = host.sh("ip -o link show type ifb | cut -d: -f2");
    assert!(
        ifb.trim().starts_with("bwp"),
        "an ifb device for egress: {ifb}"
    );
    let page = host.sh("curl -sS -m 5 http://10.61.0.1:8081/passwd | head -1");
    assert_eq!(page, "root:x:0:0:root:/root:/bin/sh\n");

    rt.block_on(client.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    }))
    .expect("StopPodSandbox");
    assert_eq!(
        attachments("podnet"),
        (Vec::new(), Vec::new()),
        "StopPodSandbox left the pod's record or address"
    );
    let ifb = host.sh("ip -o link show type ifb");
    assert!(
        ifb.is_empty(),
        "StopPodSandbox left the egress ifb device: {ifb}"
    );
    let (gone, _) = host.try_sh("curl -sS -m 2 http://10.61.0.1:8081/passwd");
    assert!(!gone, "the pod's host port still answers");
    rt.block_on(client.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id }))
        .expect("RemovePodSandbox");
}
