//! Images as a user handles them: `load -i` of a `docker save` archive and of an OCI
//! layout archive (several layers, gzip, a whiteout, the config's Entrypoint, Cmd, Env and
//! WorkingDir), `images`, `image rm`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use netctl_netns_tests::TestHost;

/// Builds two layers (busybox; then /etc/motd added and /etc/gone whited out) and packs
/// them as `docker.tar` (docker save) and `oci.tar` (OCI layout, gzip layers).
const MAKE_ARCHIVES: &str = r#"
set -e
cd "$W"
mkdir -p l1/bin l1/etc l2/etc da oci/blobs/sha256
cp /bin/busybox l1/bin/busybox
for a in sh cat ls pwd echo; do ln -s busybox l1/bin/$a; done
echo old > l1/etc/gone
echo hi > l2/etc/motd
touch l2/etc/.wh.gone
tar -C l1 -cf l1.tar . && tar -C l2 -cf l2.tar .
d1=$(sha256sum l1.tar | cut -c1-64); d2=$(sha256sum l2.tar | cut -c1-64)
printf '%s' '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","GREETING=hello"],"Entrypoint":["/bin/sh","-c"],"Cmd":["echo $GREETING; cat /etc/motd; ls /etc; pwd"],"WorkingDir":"/etc","ExposedPorts":{"80/tcp":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:'$d1'","sha256:'$d2'"]}}' > cfg.json
c=$(sha256sum cfg.json | cut -c1-64)
mkdir da/$d1 da/$d2
cp l1.tar da/$d1/layer.tar; cp l2.tar da/$d2/layer.tar; cp cfg.json da/$c.json
printf '[{"Config":"%s.json","RepoTags":["loaded:v1"],"Layers":["%s/layer.tar","%s/layer.tar"]}]' $c $d1 $d2 > da/manifest.json
tar -C da -cf docker.tar .
gzip -c l1.tar > g1; gzip -c l2.tar > g2
g1=$(sha256sum g1 | cut -c1-64); g2=$(sha256sum g2 | cut -c1-64)
mv g1 oci/blobs/sha256/$g1; mv g2 oci/blobs/sha256/$g2; cp cfg.json oci/blobs/sha256/$c
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":1},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":1},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":1}]}' $c $g1 $g2 > m.json
m=$(sha256sum m.json | cut -c1-64); mv m.json oci/blobs/sha256/$m
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":1,"annotations":{"io.containerd.image.name":"docker.io/library/ocimg:v2","org.opencontainers.image.ref.name":"v2"}}]}' $m > oci/index.json
echo '{"imageLayoutVersion":"1.0.0"}' > oci/oci-layout
tar -C oci -cf oci.tar .
"#;

/// Both archive kinds load with their tags; a container of either runs the config's
/// entrypoint + cmd with its env in its working directory, sees the upper layer's file and
/// not the whited-out one; both share the stored layers.
#[test]
fn docker_save_and_oci_archives_load_and_run_with_their_config() {
    let host = TestHost::new();
    let w = host.dir().join("img");
    std::fs::create_dir_all(&w).unwrap();
    host.sh(&format!(
        "W={} sh -c '{}'",
        w.display(),
        MAKE_ARCHIVES.replace('\'', "'\\''")
    ));
    let out = host.netctl_ok(&["load", "-i", &w.join("docker.tar").display().to_string()]);
    assert_eq!(out, "Loaded image: loaded:v1\n");
    let out = host.netctl_ok(&["load", "-i", &w.join("oci.tar").display().to_string()]);
    assert_eq!(out, "Loaded image: ocimg:v2\n");
    for image in ["loaded:v1", "ocimg:v2"] {
        let out = host.netctl_ok(&["run", "--rm", "--net", "none", image]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "hello", "{image}: Env and Entrypoint: {out}");
        assert_eq!(lines[1], "hi", "{image}: the upper layer's file: {out}");
        assert!(
            !out.contains("gone"),
            "{image}: the whiteout hides a lower file: {out}"
        );
        assert_eq!(lines.last(), Some(&"/etc"), "{image}: WorkingDir: {out}");
    }
    let images = host.netctl_ok(&["images"]);
    let lines: Vec<&str> = images.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID"),
        "{images}"
    );
    assert!(
        images.contains("loaded ") && images.contains("ocimg "),
        "{images}"
    );
    let layers = std::fs::read_dir("/var/lib/netctl/image/layers")
        .unwrap()
        .count();
    assert_eq!(layers, 2, "the same layers are stored once");
    // -P publishes what the image exposes, each on a free host port.
    host.netctl_ok(&[
        "run",
        "-d",
        "--name",
        "exposed",
        "-P",
        "loaded:v1",
        "exec /bin/busybox sleep 1000",
    ]);
    let port = host.netctl_ok(&["port", "exposed"]);
    assert!(port.starts_with("80/tcp -> 0.0.0.0:"), "{port}");
    host.netctl_ok(&["rm", "-f", "exposed"]);
}

/// `image rm` is refused while a container uses the image, untags first when the image
/// has several tags, and deletes image and layers with the last one.
#[test]
fn image_rm_waits_for_containers_and_removes_layers_last() {
    let host = TestHost::new();
    host.busybox_image();
    host.netctl_ok(&["tag", "busybox", "other:1"]);
    host.netctl_ok(&["create", "--name", "user", "busybox", "true"]);
    assert_eq!(host.netctl_ok(&["rmi", "other:1"]), "Untagged: other:1\n");
    let (code, _, err) = host.netctl(&["image", "rm", "busybox"]);
    assert_eq!(code, 1);
    assert!(err.contains("a container uses it"), "{err}");
    host.netctl_ok(&["rm", "user"]);
    let out = host.netctl_ok(&["rmi", "busybox"]);
    assert!(
        out.starts_with("Untagged: busybox:latest\nDeleted: sha256:"),
        "{out}"
    );
    assert_eq!(host.netctl_ok(&["images", "-q"]), "");
    assert_eq!(
        std::fs::read_dir("/var/lib/netctl/image/layers")
            .unwrap()
            .count(),
        0
    );
    let (code, _, err) = host.netctl(&["run", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("Unable to find image 'busybox:latest' locally"),
        "{err}"
    );
}

/// `commit` makes an image of a container's changes (added, changed and deleted files) and
/// config, which runs as Docker's does, with the history Docker shows.
#[test]
fn commit_makes_an_image_of_a_containers_changes_as_dockers() {
    let mut host = TestHost::new();
    let docker = netctl_netns_tests::docker::Dockerd::start(&mut host, false);
    host.busybox_image();
    let script = "mkdir -p /newdir && echo x > /newdir/f && echo y >> /etc/passwd && rm /bin/ls";
    let run = [
        "run",
        "--name",
        "ch",
        "--net",
        "none",
        "-e",
        "MODE=snap",
        "-w",
        "/newdir",
    ];
    let mut n = run.to_vec();
    n.extend_from_slice(&["busybox", "sh", "-c", script]);
    host.netctl_ok(&n);
    let mut d = run.to_vec();
    d.extend_from_slice(&["dbox", "sh", "-c", script]);
    assert_eq!(docker.run(&d).0, 0);
    let commit = ["commit", "-m", "snapshot", "-a", "me", "ch", "snap:v1"];
    let id = host.netctl_ok(&commit);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(docker.run(&commit).0, 0);
    let check = "cat f; tail -1 /etc/passwd; echo $MODE; pwd; ls /bin/ls 2>&1 || echo gone";
    let mine = host.netctl_ok(&["run", "--rm", "--net", "none", "snap:v1", "sh", "-c", check]);
    let theirs = docker
        .run(&["run", "--rm", "--net", "none", "snap:v1", "sh", "-c", check])
        .1;
    assert_eq!(mine, theirs);
    assert!(mine.starts_with("x\ny\nsnap\n/newdir\n"), "{mine}");
    let f = "{{.Comment}}|{{.Size}}";
    let n = host.netctl_ok(&["history", "--format", "{{.Comment}}", "snap:v1"]);
    let d = docker
        .run(&["history", "--format", "{{.Comment}}", "snap:v1"])
        .1;
    assert_eq!(n, d, "{f}");
    for f in [
        "{{json .Config.Cmd}}",
        "{{.Config.WorkingDir}}",
        "{{.Author}}",
    ] {
        let n = host.netctl_ok(&["image", "inspect", "-f", f, "snap:v1"]);
        let d = docker.run(&["image", "inspect", "-f", f, "snap:v1"]).1;
        assert_eq!(n, d, "{f}");
    }
}

/// `save` writes Docker's archive: a real Docker loads and runs a netctl image (a committed
/// one too, with its whiteout), and netctl loads its own archive into a fresh root.
#[test]
fn saved_images_load_into_docker_and_back_into_netctl() {
    let mut host = TestHost::new();
    let docker = netctl_netns_tests::docker::Dockerd::start(&mut host, false);
    host.busybox_image();
    host.netctl_ok(&[
        "run",
        "--name",
        "ch",
        "--net",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo saved > /note && rm /bin/ls",
    ]);
    host.netctl_ok(&["commit", "ch", "snap:v1"]);
    let archive = host.dir().join("images.tar").display().to_string();
    host.netctl_ok(&["save", "-o", &archive, "snap:v1", "busybox"]);
    let (code, out) = docker.run(&["load", "-i", &archive]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Loaded image: snap:v1") && out.contains("Loaded image: busybox:latest"),
        "{out}"
    );
    let check = "cat /note; ls /bin/ls 2>&1 || echo gone";
    let (code, out) = docker.run(&["run", "--rm", "--net", "none", "snap:v1", "sh", "-c", check]);
    assert_eq!(
        (code, out.as_str()),
        (0, "saved\nls: /bin/ls: No such file or directory\ngone\n")
    );
    let fresh = host.dir().join("fresh").display().to_string();
    let load = host.sh(&format!(
        "{} --root {fresh} load -i {archive}",
        netctl_netns_tests::binary("netctl").display()
    ));
    assert!(load.contains("Loaded image: snap:v1"), "{load}");
    let out = host.sh(&format!(
        "{} --root {fresh} run --rm --net none snap:v1 cat /note",
        netctl_netns_tests::binary("netctl").display()
    ));
    assert_eq!(out, "saved\n");
}
