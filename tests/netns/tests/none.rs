//! `--net none`: the container gets loopback only, driven through our CNI client, the
//! libcni client, and directly with bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netctl_netns_tests::{attachment, cni_env, TestHost};
use serde_json::{json, Value};

fn none_list() -> Value {
    json!({"cniVersion": "1.1.0", "name": "none", "plugins": [{"type": "netctl-none"}]})
}

/// A user runs a container with `--net none`: it sees `lo`, up, with 127.0.0.1; CHECK passes;
/// removing it twice is fine.
#[test]
fn none_attachment_brings_up_loopback_and_del_is_idempotent() {
    let mut host = TestHost::new();
    let ns = host.container("c1");
    let (_, list) = host.conflist("none", &none_list());
    let cni = host.cni();
    let rt = attachment("c1", Some(&ns), "eth0");

    let result = cni.add(&list, &rt).expect("ADD");
    assert_eq!(result.interfaces.len(), 1);
    assert_eq!(result.interfaces[0].name, "lo");
    assert_eq!(result.interfaces[0].sandbox.as_deref(), ns.to_str());
    assert!(result
        .ips
        .iter()
        .any(|ip| ip.address.to_string() == "127.0.0.1/8" && ip.interface == Some(0)));
    let links = host.sh_in(&ns, "ip -o link show lo");
    assert!(links.contains("UP"), "lo is up: {links}");
    assert!(
        host.sh_in(&ns, "ip -o link").lines().count() == 1,
        "only lo"
    );

    cni.check(&list, &rt).expect("CHECK");
    assert!(cni.cached_result("none", &rt).expect("cache").is_some());
    cni.del(&list, &rt).expect("first DEL");
    cni.del(&list, &rt).expect("second DEL");
    assert!(cni.cached_result("none", &rt).expect("cache").is_none());
    assert!(!host.sh_in(&ns, "ip -o link show lo").contains(",UP"));
}

/// The container's namespace was already removed when the runtime calls DEL: success.
#[test]
fn del_after_the_namespace_is_gone_succeeds() {
    let mut host = TestHost::new();
    let ns = host.container("c2");
    let (_, list) = host.conflist("none", &none_list());
    let cni = host.cni();
    let rt = attachment("c2", Some(&ns), "eth0");
    cni.add(&list, &rt).expect("ADD");
    host.remove_container(&ns);
    cni.del(&list, &rt).expect("DEL with the netns path gone");
    cni.del(&list, &attachment("c2", None, "eth0"))
        .expect("DEL with no netns at all");
}

/// CHECK of an attachment whose loopback someone brought down fails with a clear error.
#[test]
fn check_notices_loopback_brought_down() {
    let mut host = TestHost::new();
    let ns = host.container("c3");
    let (_, list) = host.conflist("none", &none_list());
    let cni = host.cni();
    let rt = attachment("c3", Some(&ns), "eth0");
    cni.add(&list, &rt).expect("ADD");
    host.sh_in(&ns, "ip link set lo down");
    let err = cni.check(&list, &rt).expect_err("CHECK must fail");
    assert!(err.msg.contains("loopback is down"), "{err}");
}

/// GC and STATUS through the client: nothing to collect, and ADD can always be served.
#[test]
fn gc_deletes_stale_cached_attachments_and_status_is_ok() {
    let mut host = TestHost::new();
    let live = host.container("live");
    let stale = host.container("stale");
    let (_, list) = host.conflist("none", &none_list());
    let cni = host.cni();
    cni.add(&list, &attachment("live", Some(&live), "eth0"))
        .expect("ADD live");
    cni.add(&list, &attachment("stale", Some(&stale), "eth0"))
        .expect("ADD stale");
    let valid = [netctl_cni::Attachment {
        container_id: "live".into(),
        ifname: "eth0".into(),
    }];
    cni.gc(&list, &valid).expect("GC");
    let left: Vec<_> = cni
        .cached_attachments("none")
        .expect("cache")
        .into_iter()
        .map(|r| r.container_id)
        .collect();
    assert_eq!(left, vec!["live".to_string()]);
    cni.status(&list).expect("STATUS");
}

/// A real CNI client, Debian's libcni (what podman's CNI backend and containerd link), runs
/// ADD, CHECK and DEL on the plugin in every version that libcni speaks.
#[test]
fn libcni_drives_none_through_add_check_del() {
    let mut host = TestHost::new();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let id = format!("lc{}", version.replace('.', ""));
        let ns = host.container(&id);
        let mut list = none_list();
        list["cniVersion"] = json!(version);
        let (path, _) = host.conflist(&format!("none-{id}"), &list);
        let rt = attachment(&id, Some(&ns), "eth0");
        let add = host.libcni("add", &path, &rt);
        assert!(add.status.success(), "{version} ADD: {add:?}");
        let result: Value = serde_json::from_slice(&add.stdout).expect("result JSON");
        assert_eq!(result["cniVersion"], version);
        assert_eq!(result["interfaces"][0]["name"], "lo");
        if version != "0.3.1" {
            let check = host.libcni("check", &path, &rt);
            assert!(check.status.success(), "{version} CHECK: {check:?}");
        }
        let del = host.libcni("del", &path, &rt);
        assert!(del.status.success(), "{version} DEL: {del:?}");
    }
}

fn assert_error(out: (i32, Value), code: u64, what: &str) {
    let (exit, json) = out;
    assert_ne!(exit, 0, "{what}: exit code must be non-zero");
    assert_eq!(json["code"], code, "{what}: {json}");
    assert!(
        json["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {json}"
    );
    assert!(json["cniVersion"].is_string(), "{what}: {json}");
}

/// Bad input always gets a CNI Error on stdout with the spec's code and a non-zero exit.
#[test]
fn bad_input_gets_error_json_with_the_right_code() {
    let mut host = TestHost::new();
    let ns = host.container("bad");
    let ns = ns.to_str().expect("utf-8 path");
    let good = r#"{"cniVersion":"1.0.0","name":"none","type":"netctl-none"}"#;
    let env = |overrides: &[(&'static str, &'static str)]| {
        let mut e = cni_env("ADD", ns);
        for (k, v) in overrides {
            if v.is_empty() {
                e.remove(k);
            } else {
                e.insert(k, v);
            }
        }
        e.into_iter().collect::<Vec<_>>()
    };
    assert_error(
        host.run_plugin("netctl-none", &env(&[]), "{\"cniVersion\":"),
        6,
        "malformed JSON",
    );
    assert_error(
        host.run_plugin("netctl-none", &env(&[("CNI_COMMAND", "")]), good),
        4,
        "no CNI_COMMAND",
    );
    assert_error(
        host.run_plugin("netctl-none", &env(&[("CNI_NETNS", "")]), good),
        4,
        "ADD without netns",
    );
    assert_error(
        host.run_plugin("netctl-none", &env(&[("CNI_COMMAND", "EXPLODE")]), good),
        4,
        "unknown command",
    );
    assert_error(
        host.run_plugin(
            "netctl-none",
            &env(&[("CNI_CONTAINERID", "../../etc/passwd")]),
            good,
        ),
        4,
        "container ID with ../",
    );
    assert_error(
        host.run_plugin("netctl-none", &env(&[("CNI_IFNAME", "eth0/../x")]), good),
        4,
        "ifname with /",
    );
    assert_error(
        host.run_plugin(
            "netctl-none",
            &env(&[]),
            r#"{"cniVersion":"0.2.0","name":"none","type":"netctl-none"}"#,
        ),
        1,
        "unsupported version",
    );
    assert_error(
        host.run_plugin(
            "netctl-none",
            &env(&[]),
            r#"{"cniVersion":"1.0.0","name":"../none","type":"netctl-none"}"#,
        ),
        7,
        "network name with ../",
    );
    assert_error(
        host.run_plugin(
            "netctl-none",
            &env(&[("CNI_NETNS", "/nonexistent/netns")]),
            good,
        ),
        4,
        "netns that does not exist",
    );
    // Nothing was touched by any of those calls: lo is still down.
    assert!(!host
        .sh_in(std::path::Path::new(ns), "ip -o link show lo")
        .contains(",UP"));
}

/// VERSION lists every version the plugin speaks.
#[test]
fn version_reports_supported_versions() {
    let host = TestHost::new();
    let (exit, json) = host.run_plugin(
        "netctl-none",
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"1.0.0"}"#,
    );
    assert_eq!(exit, 0);
    assert_eq!(
        json["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}
