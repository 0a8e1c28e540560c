//! VLANs on a bridge (`"vlan"` in the config), as a user sees them. This machine's kernel
//! has no bridge VLAN filtering, so the test boots Debian's cloud kernel (unpacked by
//! `scripts/deps test` into target/vm-kernel) in a QEMU VM with no network card, with the built
//! plugins, busybox, iproute2 and nft in its initramfs, and runs the user's steps there.
//! Each step prints `PROBE <name> <exit status>`; the expectations live here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netctl_netns_tests::bin_dir;
use serde_json::{json, Value};

/// How long the VM may take (it is emulated: no KVM here); it boots in about 10 s.
const VM_TIMEOUT: Duration = Duration::from_secs(300);

/// Kernel modules the steps need; nft expressions load the rest on demand.
const MODULES: &str = "veth bridge 8021q nf_tables nft_chain_nat nft_ct nft_masq nft_nat \
                       nft_fib_inet nft_reject_inet nf_conntrack nf_nat";

/// Builds the VM's root: busybox, iproute2 and nft with their libraries, the kernel's
/// network modules, the plugins in /cni. Arguments: root, kernel dir, plugin dir.
const BUILD_ROOT: &str = r#"
set -euo pipefail
root=$1 kdir=$2 bins=$3
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,cni,lib/modules}
cp /usr/bin/busybox "$root/bin/busybox"
chroot "$root" /bin/busybox --install -s
for b in /usr/sbin/nft /usr/sbin/ip /usr/sbin/bridge; do
  rm -f "$root/usr/sbin/${b##*/}"; cp "$b" "$root/usr/sbin/"
  for lib in $(ldd "$b" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
ver=$(ls "$kdir/lib/modules")
src=$kdir/lib/modules/$ver dst=$root/lib/modules/$ver
mkdir -p "$dst/kernel/drivers/net" "$dst/kernel/arch/x86"
cp -r "$src"/kernel/{net,lib,crypto} "$dst/kernel/"
cp -r "$src/kernel/arch/x86/crypto" "$dst/kernel/arch/x86/"
cp "$src/kernel/drivers/net/veth.ko" "$dst/kernel/drivers/net/"
cp "$src"/modules.{builtin,order} "$dst/"
cp "$bins"/netctl-bridge "$bins"/netctl-ipam "$root/cni/"
"#;

/// The VM's /init: mounts, modules, the steps between markers, power off.
fn init_script() -> String {
    format!(
        r#"#!/bin/sh
export PATH=/usr/sbin:/sbin:/bin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
depmod
for m in {MODULES}; do modprobe $m || echo "MODULE $m missing"; done
echo RESULT-START
sh /steps 2>&1
echo RESULT-END
poweroff -f
"#
    )
}

/// What the user does, in the VM. `probe NAME CMD...` runs a step and reports its status.
const STEPS: &str = r#"
export CNI_PATH=/cni
mkdir -p /run/netns /run/ipam
probe() { n=$1; shift; "$@" >/tmp/out 2>&1; rc=$?; echo "PROBE $n $rc"; sed 's/^/  | /' /tmp/out; }
ns() { touch /run/netns/$1; unshare --net=/run/netns/$1 true; }
cni() { CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 /cni/netctl-bridge < /conf/$3.json; }
add() { ns $1; cni ADD $1 $2 > /tmp/$1.json; }
port() { sed 's/.*"interfaces":\[{[^}]*},{"name":"\([^"]*\)".*/\1/' /tmp/$1.json; }
chk() { sed 's/}$//' /conf/$2.json > /tmp/chk.json; printf ',"prevResult":%s}' "$(cat /tmp/$1.json)" >> /tmp/chk.json
  CNI_COMMAND=CHECK CNI_CONTAINERID=$1 CNI_NETNS=/run/netns/$1 CNI_IFNAME=eth0 /cni/netctl-bridge < /tmp/chk.json; }
ping_from() { nsenter --net=/run/netns/$1 ping -c1 -W2 $2; }
links() { ip -o link show | sed 's/^[0-9]*: \([^:@]*\).*/\1/' | sort; }
gone() { for i in $(seq 50); do ip link show $1 >/dev/null 2>&1 || return 0; sleep 0.1; done; return 1; }

probe add-a add a v10
probe add-b add b v10
probe add-c add c v20
probe add-d add d v20
probe filtering grep -qx 1 /sys/class/net/br0/bridge/vlan_filtering
for c in a c; do echo "VLANS $c $(bridge -j vlan show dev $(port $c))"; done
echo "GATEWAY $(ip -o -4 addr show dev br0.10 | awk '{print $4}')"
probe a-b ping_from a 10.10.0.3
probe a-gateway ping_from a 10.10.0.1
probe c-d ping_from c 10.10.0.101
probe a-c ping_from a 10.10.0.100
probe c-a ping_from c 10.10.0.2
probe d-gateway ping_from d 10.10.0.1
probe check-a chk a v10
pa=$(port a)
bridge vlan del dev $pa vid 10
probe check-a-moved chk a v10
bridge vlan add dev $pa vid 10 pvid untagged
pb=$(port b)
probe del-b cni DEL b v10
probe b-port-gone gone $pb
probe a-gateway-after-del ping_from a 10.10.0.1

links > /tmp/links.before; nft list ruleset > /tmp/nft.before
probe add-bad add e v30-bad
echo "BAD $(cat /tmp/e.json)"
links > /tmp/links.after; nft list ruleset > /tmp/nft.after
probe bad-left-no-link cmp /tmp/links.before /tmp/links.after
probe bad-left-no-rule cmp /tmp/nft.before /tmp/nft.after
"#;

/// The networks: VLANs 10 (with a gateway) and 20 (without, default VLAN dropped) on one
/// bridge and one subnet; and one on another bridge whose ADD fails after its VLAN gateway
/// is made (a port mapping with port 0).
fn confs() -> Vec<(&'static str, Value)> {
    let ipam = |extra: Value| {
        let mut v =
            json!({"type": "netctl-ipam", "subnet": "10.10.0.0/24", "dataDir": "/run/ipam"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let bridge = |name: &str, extra: Value| {
        let mut v =
            json!({"cniVersion": "1.1.0", "name": name, "type": "netctl-bridge", "bridge": "br0"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    vec![
        (
            "v10",
            bridge(
                "v10",
                json!({"isGateway": true, "vlan": 10, "ipam": ipam(json!({}))}),
            ),
        ),
        (
            "v20",
            bridge(
                "v20",
                json!({"vlan": 20, "preserveDefaultVlan": false,
                       "ipam": ipam(json!({"rangeStart": "10.10.0.100"}))}),
            ),
        ),
        (
            "v30-bad",
            bridge(
                "v30",
                json!({"bridge": "br1", "isGateway": true, "vlan": 30,
                       "ipam": ipam(json!({"subnet": "10.30.0.0/24"})),
                       "runtimeConfig": {"portMappings": [
                           {"hostPort": 0, "containerPort": 80, "protocol": "tcp"}]}}),
            ),
        ),
    ]
}

fn kernel_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/vm-kernel")
}

fn sh(script: &str, args: &[&Path]) {
    let st = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .status()
        .expect("bash");
    assert!(st.success(), "building the VM's root failed");
}

/// Packs the VM's initramfs; returns its path.
fn initramfs(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    sh(BUILD_ROOT, &[&root, &kernel_dir(), &bin_dir()]);
    std::fs::write(root.join("init"), init_script()).unwrap();
    std::fs::write(root.join("steps"), STEPS).unwrap();
    std::fs::create_dir(root.join("conf")).unwrap();
    for (name, conf) in confs() {
        std::fs::write(root.join(format!("conf/{name}.json")), conf.to_string()).unwrap();
    }
    sh("chmod +x \"$1/init\"", &[&root]);
    let image = dir.join("initramfs.gz");
    sh(
        "cd \"$1\" && find . | cpio -o -H newc --quiet | gzip -1 > \"$2\"",
        &[&root, &image],
    );
    image
}

/// Boots the VM and returns what it printed between the markers.
fn run_vm(image: &Path) -> String {
    let kernel = std::fs::read_dir(kernel_dir().join("boot"))
        .expect("target/vm-kernel/boot is missing: run scripts/deps test")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("vmlinuz"))
        .expect("no vmlinuz in target/vm-kernel/boot: run scripts/deps test");
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1"])
        .args(["-nographic", "-no-reboot", "-nic", "none", "-kernel"])
        .arg(&kernel)
        .arg("-initrd")
        .arg(image)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 (scripts/deps test installs it)");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > VM_TIMEOUT {
            let _ = child.kill();
            panic!("the VM did not finish within {VM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let out = out.replace('\r', "");
    let start = out
        .find("RESULT-START")
        .unwrap_or_else(|| panic!("VM output:\n{out}"));
    let end = out
        .find("RESULT-END")
        .unwrap_or_else(|| panic!("VM output:\n{out}"));
    out[start..end].to_string()
}

/// The exit status of each probe, by name.
fn probes(out: &str) -> HashMap<String, i32> {
    out.lines()
        .filter_map(|l| l.strip_prefix("PROBE "))
        .filter_map(|l| {
            let (name, rc) = l.split_once(' ')?;
            Some((name.to_string(), rc.trim().parse().ok()?))
        })
        .collect()
}

/// The VLANs of container `c`'s bridge port: (VLAN id, its flags).
fn port_vlans(out: &str, c: &str) -> Vec<(u64, Vec<String>)> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("VLANS {c} ")))
        .unwrap_or_else(|| panic!("no VLAN listing of {c}:\n{out}"));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    v[0]["vlans"]
        .as_array()
        .unwrap_or_else(|| panic!("no vlans in {line}"))
        .iter()
        .map(|e| {
            let flags = e["flags"].as_array().cloned().unwrap_or_default();
            let flags = flags.iter().filter_map(|f| f.as_str()).map(String::from);
            (e["vlan"].as_u64().unwrap(), flags.collect())
        })
        .collect()
}

/// A user puts two networks with the same subnet on one bridge, in VLANs 10 and 20:
/// containers reach each other and the gateway within a VLAN, never across; each port
/// carries its VLAN untagged as PVID (and VLAN 1 only where the network keeps it); CHECK
/// fails once a port has left its VLAN; DEL removes the container's port; an ADD that fails after its VLAN gateway was made leaves
/// no link and no firewall rule behind.
#[test]
fn vlans_on_one_bridge_keep_networks_apart() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_vm(&initramfs(dir.path()));
    let p = probes(&out);
    let expect = |name: &str, ok: bool| {
        let rc = p
            .get(name)
            .unwrap_or_else(|| panic!("no probe {name}:\n{out}"));
        assert_eq!(*rc == 0, ok, "{name}: exit status {rc}\n{out}");
    };
    for name in ["add-a", "add-b", "add-c", "add-d", "filtering"] {
        expect(name, true);
    }
    for name in ["a-b", "a-gateway", "c-d", "a-gateway-after-del"] {
        expect(name, true);
    }
    for name in ["a-c", "c-a", "d-gateway"] {
        expect(name, false);
    }
    expect("check-a", true);
    expect("check-a-moved", false);
    assert!(
        out.contains("no longer an untagged port of VLAN 10"),
        "CHECK names the VLAN a port left:\n{out}"
    );
    for name in ["del-b", "b-port-gone"] {
        expect(name, true);
    }
    expect("add-bad", false);
    let bad: Value = out
        .lines()
        .find_map(|l| l.strip_prefix("BAD "))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no CNI error of the failed ADD:\n{out}"));
    assert_eq!(bad["code"], 7, "{bad}");
    assert!(bad["msg"].as_str().unwrap().contains("port 0"), "{bad}");
    expect("bad-left-no-link", true);
    expect("bad-left-no-rule", true);
    let untagged_pvid = |vid| (vid, vec!["PVID".to_string(), "Egress Untagged".to_string()]);
    let vlans_a = port_vlans(&out, "a");
    assert!(vlans_a.contains(&untagged_pvid(10)), "{vlans_a:?}");
    assert!(vlans_a.iter().any(|(v, _)| *v == 1), "{vlans_a:?}");
    assert_eq!(port_vlans(&out, "c"), vec![untagged_pvid(20)]);
    assert!(out.contains("GATEWAY 10.10.0.1/24"), "{out}");
}
