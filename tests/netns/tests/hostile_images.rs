//! Images an attacker crafted: layer members named to land outside the layer (whiteouts
//! above all), links to host files, archives whose members link to host files or devices,
//! and image symlinks that would lead mounts and /etc files onto the host. Each test names
//! what the attacker did and checks that the host's files are exactly as they were.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use netctl_netns_tests::hostile::{docker_archive, tar, Member};
use netctl_netns_tests::TestHost;

/// A host folder with a precious file, and the same path relative to `/` (for names that
/// climb up to it from a layer).
fn victim(host: &TestHost) -> (PathBuf, String) {
    let dir = host.dir().join("victim");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("precious"), "precious\n").unwrap();
    let rel = dir.strip_prefix("/").unwrap().display().to_string();
    (dir, rel)
}

fn assert_untouched(dir: &Path) {
    let p = dir.join("precious");
    let meta = std::fs::symlink_metadata(&p).unwrap();
    assert!(meta.is_file(), "{} is still a regular file", p.display());
    assert_eq!(meta.nlink(), 1, "no hard link to it was made");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "precious\n");
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["precious"],
        "nothing was added to {}",
        dir.display()
    );
    let opaque = rustix::fs::getxattr(dir, "trusted.overlay.opaque", &mut [0u8; 8][..]);
    assert!(
        opaque.is_err(),
        "{} got no overlay opaque mark",
        dir.display()
    );
}

fn import(host: &TestHost, name: &str, archive: &[u8]) -> (i32, String) {
    let path = host.dir().join(format!("{name}.tar"));
    std::fs::write(&path, archive).unwrap();
    let (code, _, err) = host.netctl(&["image", "import", &path.display().to_string(), name]);
    (code, err)
}

/// The attacker's layer whites out a host file through `../`, through an absolute name and
/// through a symlink the layer itself planted, and marks a host folder opaque the same
/// ways: every such member is refused or lands inside the layer, and the host's files stay.
#[test]
fn layer_whiteouts_never_touch_a_host_file() {
    let host = TestHost::new();
    let (dir, rel) = victim(&host);
    let up = "../".repeat(12);
    let climb_wh = format!("{up}{rel}/.wh.precious");
    let climb_opq = format!("{up}{rel}/.wh..wh..opq");
    let abs_wh = format!("/{rel}/.wh.precious");
    let dir_s = dir.display().to_string();
    let cases: Vec<(&str, Vec<Member>)> = vec![
        ("climb-wh", vec![Member::file(&climb_wh, b"")]),
        ("climb-opq", vec![Member::file(&climb_opq, b"")]),
        ("abs-wh", vec![Member::file(&abs_wh, b"")]),
        (
            "link-wh",
            vec![
                Member::symlink("up", &dir_s),
                Member::file("up/.wh.precious", b""),
            ],
        ),
        (
            "link-opq",
            vec![
                Member::symlink("up", &dir_s),
                Member::file("up/.wh..wh..opq", b""),
            ],
        ),
        (
            "link-file",
            vec![
                Member::symlink("up", &dir_s),
                Member::file("up/planted", b"x"),
            ],
        ),
    ];
    for (name, members) in &cases {
        let (code, err) = import(&host, name, &tar(members));
        if *name != "abs-wh" {
            assert_ne!(code, 0, "{name}: the layer is refused");
            assert!(
                err.contains("archive member"),
                "{name}: names the member: {err}"
            );
        }
        assert_untouched(&dir);
    }
    assert_eq!(
        std::fs::read_dir("/var/lib/netctl/image/layers")
            .unwrap()
            .count(),
        1,
        "only the layer whose members all landed inside it was stored"
    );
}

/// The attacker's layer hard-links a host file (by `../` and by absolute name, which is the
/// layer's own path): the layer is refused, and the host file gets no second name inside
/// the store (where a container could write to it).
#[test]
fn layer_hard_links_to_host_files_are_refused() {
    let host = TestHost::new();
    let (dir, rel) = victim(&host);
    let climb = format!("{}{rel}/precious", "../".repeat(12));
    let abs = format!("/{rel}/precious");
    for (name, target) in [("climb", climb.as_str()), ("abs", abs.as_str())] {
        let (code, err) = import(&host, name, &tar(&[Member::hard_link("hl", target)]));
        assert_ne!(code, 0, "{name}: refused");
        assert!(err.contains("hard link"), "{name}: {err}");
        assert_untouched(&dir);
    }
}

/// `netctl load` of a `docker save` archive whose layer member is a symlink to a tar on the
/// host, whose config is a symlink to /dev/zero, which carries a device member, or whose
/// manifest is 9 MiB: each is refused at once with the member named, and nothing is stored.
#[test]
fn load_reads_only_members_of_the_archive() {
    let host = TestHost::new();
    let secret_tar = host.dir().join("secret.tar");
    std::fs::write(
        &secret_tar,
        tar(&[Member::file("secret", b"host secret\n")]),
    )
    .unwrap();
    let layer = tar(&[Member::file("hello", b"hi\n")]);
    let secret_s = secret_tar.display().to_string();
    let big = vec![b' '; 9 << 20];
    let archives: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "layer-link",
            docker_archive(
                &["l/layer.tar"],
                "config.json",
                &[Member::symlink("l/layer.tar", &secret_s)],
            ),
            "outside the archive",
        ),
        (
            "config-zero",
            docker_archive(
                &["l/layer.tar"],
                "cfg.json",
                &[
                    Member::file("l/layer.tar", &layer),
                    Member::symlink("cfg.json", "/dev/zero"),
                ],
            ),
            "outside the archive",
        ),
        (
            "device",
            docker_archive(
                &["l/layer.tar"],
                "config.json",
                &[
                    Member::file("l/layer.tar", &layer),
                    Member::char_device("null"),
                ],
            ),
            "not allowed",
        ),
        (
            "huge-config",
            docker_archive(
                &["l/layer.tar"],
                "cfg.json",
                &[
                    Member::file("l/layer.tar", &layer),
                    Member::file("cfg.json", &big),
                ],
            ),
            "allowed",
        ),
    ];
    for (name, bytes, why) in archives {
        let path = host.dir().join(format!("{name}.tar"));
        std::fs::write(&path, bytes).unwrap();
        // A hang (reading /dev/zero) is what the attacker wants: bound the wait.
        let (ok, out) = host.try_sh(&format!(
            "timeout 60 {} load -i {}",
            netctl_netns_tests::binary("netctl").display(),
            path.display()
        ));
        assert!(!ok, "{name}: refused: {out}");
        assert!(out.contains(why), "{name}: says why ({why}): {out}");
        assert!(
            !out.contains("Terminated"),
            "{name}: refused at once: {out}"
        );
    }
    assert_eq!(host.netctl_ok(&["images", "-q"]), "", "no image was stored");
    assert_eq!(
        std::fs::read_dir("/var/lib/netctl/image/layers")
            .unwrap()
            .count(),
        0,
        "no layer was stored"
    );
    // In-archive links still work: an older `docker save` links a shared layer.
    let ok = docker_archive(
        &["a/layer.tar", "b/layer.tar"],
        "config.json",
        &[
            Member::file("a/layer.tar", &layer),
            Member::symlink("b/layer.tar", "../a/layer.tar"),
        ],
    );
    let path = host.dir().join("ok.tar");
    std::fs::write(&path, ok).unwrap();
    host.netctl_ok(&["load", "-i", &path.display().to_string()]);
}

/// An image whose `/data` links to a host folder, whose `/www` climbs out with `../`, and
/// whose `/etc` links to a host folder: a named volume at /data copies nothing of the host,
/// `-v`, `--tmpfs`, a file bind and `-w` below /www make nothing on the host, and the
/// container's hosts, hostname and resolv.conf are never written into the host folder.
#[test]
fn image_symlinks_never_lead_mounts_or_etc_files_onto_the_host() {
    let host = TestHost::new();
    let (secret_dir, _) = victim(&host);
    let escape = host.dir().join("escape");
    let host_etc = host.dir().join("host-etc");
    for d in [&escape, &host_etc] {
        std::fs::create_dir_all(d).unwrap();
    }
    let root = host.dir().join("evil-rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "ls", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::os::unix::fs::symlink(&secret_dir, root.join("data")).unwrap();
    let rel = escape.strip_prefix("/").unwrap().display().to_string();
    std::os::unix::fs::symlink(format!("{}{rel}", "../".repeat(12)), root.join("www")).unwrap();
    std::os::unix::fs::symlink(&host_etc, root.join("etc")).unwrap();
    host.netctl_ok(&["image", "import", &root.display().to_string(), "evil"]);
    let src = host.dir().join("bind-src");
    std::fs::create_dir_all(&src).unwrap();
    let file = host.dir().join("bind-file");
    std::fs::write(&file, "f\n").unwrap();
    let out = host.netctl_ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "-v",
        "vol:/data",
        "-v",
        &format!("{}:/www/sub", src.display()),
        "--tmpfs",
        "/www/t",
        "-v",
        &format!("{}:/www/f", file.display()),
        "-w",
        "/www/wd",
        "evil",
        "sh",
        "-c",
        "ls /data; cat /www/f; cat /etc/hostname; pwd",
    ]);
    assert!(
        !out.contains("precious"),
        "the volume got nothing of the host: {out}"
    );
    assert!(out.starts_with("f\n"), "the file bind is there: {out}");
    assert_untouched(&secret_dir);
    let vol = std::fs::read_dir("/var/lib/netctl/volumes/vol/_data")
        .unwrap()
        .count();
    assert_eq!(vol, 0, "the volume is empty");
    for d in [&escape, &host_etc] {
        assert_eq!(
            std::fs::read_dir(d).unwrap().count(),
            0,
            "nothing was made in {}",
            d.display()
        );
    }
}

/// An image's `VOLUME` names a path with a colon, `<host folder>:/loot`, hoping to be read
/// as `-v SOURCE:TARGET` and have the host's folder bound into its containers: it is one
/// path in the container, an anonymous volume, and the host's folder is never seen.
#[test]
fn an_images_volume_never_binds_a_host_folder() {
    let host = TestHost::new();
    host.busybox_image();
    let (secret_dir, _) = victim(&host);
    host.netctl_ok(&["create", "--name", "base", "busybox", "true"]);
    let volume = format!("VOLUME {}:/loot", secret_dir.display());
    host.netctl_ok(&["commit", "--change", &volume, "base", "evil"]);
    let script = format!(
        "cat /loot/precious; echo pwned > /loot/precious; ls /loot; \
         grep -c ' {}:/loot ' /proc/mounts",
        secret_dir.display()
    );
    let (_, out, err) = host.netctl(&["run", "--rm", "--net", "none", "evil", "sh", "-c", &script]);
    assert_eq!(out, "1\n", "only a volume at the one odd path: {out}{err}");
    assert_untouched(&secret_dir);
    // A volume over the whole root is refused, in words, and leaves no container.
    host.netctl_ok(&["commit", "--change", "VOLUME /", "base", "rootvol"]);
    let (code, _, err) = host.netctl(&["run", "--rm", "--net", "none", "rootvol", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("can't be '/'"), "{err}");
    assert_eq!(
        host.netctl_ok(&["ps", "-aq"]).lines().count(),
        1,
        "only base"
    );
}

/// An image whose /dev or /proc is a symlink to a host folder is refused with a clear error:
/// netctl mounts its own file systems there and never follows a link to do so.
#[test]
fn an_image_whose_system_folders_are_symlinks_is_refused() {
    let host = TestHost::new();
    let (dir, _) = victim(&host);
    for sys in ["dev", "proc"] {
        let root = host.dir().join(format!("root-{sys}"));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink(&dir, root.join(sys)).unwrap();
        let name = format!("bad-{sys}");
        host.netctl_ok(&["image", "import", &root.display().to_string(), &name]);
        let (code, _, err) = host.netctl(&[
            "run",
            "--rm",
            "--net",
            "none",
            &name,
            "/bin/busybox",
            "true",
        ]);
        assert_ne!(code, 0, "{sys}: refused");
        assert!(err.contains("symlink"), "{sys}: says why: {err}");
        assert_untouched(&dir);
    }
}

/// The processes running `bin` (by the inode their `/proc/<pid>/exe` leads to), and whether
/// each runs inside a container (a nested PID namespace).
fn running(bin: &Path) -> Vec<(i32, bool)> {
    let want = std::fs::metadata(bin).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let exe = std::fs::metadata(e.path().join("exe")).ok()?;
            (exe.dev() == want.dev() && exe.ino() == want.ino()).then_some(())?;
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let nested = status
                .lines()
                .any(|l| l.starts_with("NSpid:") && l.split_whitespace().count() > 2);
            Some((pid, nested))
        })
        .collect()
}

/// The process inside a container that runs `bin`; waits up to 5 s for one.
fn inside_container(bin: &Path) -> i32 {
    let mut found = None;
    netctl_netns_tests::eventually(
        "netctl runs inside the container",
        std::time::Duration::from_secs(5),
        || match running(bin).into_iter().find(|(_, nested)| *nested) {
            Some((pid, _)) => {
                found = Some(pid);
                Ok(())
            }
            None => Err("none yet".into()),
        },
    );
    found.unwrap()
}

/// What the container of CVE-2019-5736 does with process `pid`: keeps its binary open by
/// path (`O_PATH` on /proc/<pid>/exe), waits until nothing runs that binary any more (here
/// every process running it is killed, the container's monitor too), then opens the binary
/// through that descriptor for writing. The error it gets, or None when it could have
/// written netctl (the descriptor is closed at once: nothing is written).
fn try_to_overwrite(bin: &Path, pid: i32) -> Option<rustix::io::Errno> {
    use rustix::fs::{Mode, OFlags};
    let held = rustix::fs::open(
        format!("/proc/{pid}/exe"),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    netctl_netns_tests::eventually(
        "nothing runs the binary",
        std::time::Duration::from_secs(5),
        || match running(bin).as_slice() {
            [] => Ok(()),
            left => {
                for (p, _) in left {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                Err(format!("{left:?}"))
            }
        },
    );
    let through = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&held));
    rustix::fs::open(through, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()).err()
}

/// A copy of netctl of this test's own (nothing else runs it), beside links to the plugins.
fn private_netctl(host: &TestHost) -> PathBuf {
    let dir = host.dir().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(netctl_netns_tests::bin_dir())
        .unwrap()
        .flatten()
    {
        let name = e.file_name();
        if name.to_string_lossy().starts_with("netctl-") {
            std::os::unix::fs::symlink(e.path(), dir.join(&name)).unwrap();
        }
    }
    let copy = dir.join("netctl");
    std::fs::copy(netctl_netns_tests::binary("netctl"), &copy).unwrap();
    copy
}

/// An image whose program is a script starting `#!/proc/self/exe` (runc's CVE-2019-5736),
/// run as a container's command and through `exec`: the kernel runs netctl's own binary
/// inside the container, which then tries to write that binary through /proc/<pid>/exe once
/// nothing runs it. Every try fails with EROFS: netctl enters containers only from a
/// read-only view of its binary.
#[test]
fn a_container_cannot_write_the_netctl_binary_through_proc_self_exe() {
    let host = TestHost::new();
    let netctl = private_netctl(&host);
    let root = netctl_netns_tests::busybox_rootfs(host.dir());
    // `--run-dir` takes the script's own path; `load -i /fifo` then waits on the fifo, so
    // the process is there to be found.
    std::fs::write(root.join("evil"), "#!/proc/self/exe --run-dir\n").unwrap();
    std::fs::set_permissions(
        root.join("evil"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&netctl)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "netctl {args:?}: {out:?}");
    };
    run(&["image", "import", &root.display().to_string(), "evil"]);
    run(&[
        "run", "-d", "--name", "entry", "--net", "none", "evil", "/evil", "load", "-i", "/fifo",
    ]);
    let pid = inside_container(&netctl);
    assert_eq!(
        try_to_overwrite(&netctl, pid),
        Some(rustix::io::Errno::ROFS),
        "run: the container could open netctl for writing"
    );
    run(&[
        "run", "-d", "--name", "victim", "--net", "none", "evil", "sleep", "1000",
    ]);
    let null = std::process::Stdio::null;
    let mut exec = std::process::Command::new(&netctl)
        .args(["exec", "victim", "/evil", "load", "-i", "/fifo"])
        .stdout(null())
        .stderr(null())
        .spawn()
        .unwrap();
    let pid = inside_container(&netctl);
    assert_eq!(
        try_to_overwrite(&netctl, pid),
        Some(rustix::io::Errno::ROFS),
        "exec: the container could open netctl for writing"
    );
    let _ = exec.wait();
    host.netctl_ok(&["rm", "-f", "entry", "victim"]);
}
