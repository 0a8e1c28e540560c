//! `cp` both ways, as a user copies config in and results out — and as a hostile container
//! tries to turn a copy against the host with symlinks — side by side with a real Docker
//! 20.10 on the same busybox image: the files that land, their modes, links and owners.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use netctl_netns_tests::docker::Dockerd;
use netctl_netns_tests::TestHost;

const SETUP: &str = "mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b && \
    ln -sfn /etc/hostname /data/link && ln -sfn / /data/escape && chown 33:33 /data/a && \
    chmod 640 /data/a && sleep 600";

struct Pair {
    host: TestHost,
    docker: Dockerd,
    n: PathBuf,
    d: PathBuf,
}

fn started() -> Pair {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    let (n, d) = (host.dir().join("n"), host.dir().join("d"));
    std::fs::create_dir_all(&n).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    host.netctl_ok(&[
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "c1",
        "--hostname",
        "inside",
        "busybox",
        "sh",
        "-c",
        SETUP,
    ]);
    let (code, out) = docker.run(&[
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "c1",
        "--hostname",
        "inside",
        "dbox",
        "sh",
        "-c",
        SETUP,
    ]);
    assert_eq!(code, 0, "{out}");
    let p = Pair { host, docker, n, d };
    netctl_netns_tests::eventually("set up", std::time::Duration::from_secs(10), || {
        let n = p
            .host
            .netctl(&["exec", "c1", "test", "-L", "/data/escape"])
            .0;
        let d = p
            .docker
            .run(&["exec", "c1", "test", "-L", "/data/escape"])
            .0;
        if (n, d) == (0, 0) {
            Ok(())
        } else {
            Err(format!("{n} {d}"))
        }
    });
    p
}

impl Pair {
    /// `cp` with `{}` standing for each side's own host folder; the exit codes must match.
    fn cp(&self, args: &[&str]) -> (String, String) {
        let fill = |dir: &PathBuf| -> Vec<String> {
            args.iter()
                .map(|a| a.replace("{}", &dir.display().to_string()))
                .collect()
        };
        let mut n = vec!["cp".to_string()];
        n.extend(fill(&self.n));
        let mut d = vec!["cp".to_string()];
        d.extend(fill(&self.d));
        let nargs: Vec<&str> = n.iter().map(String::as_str).collect();
        let dargs: Vec<&str> = d.iter().map(String::as_str).collect();
        let (ncode, nout, nerr) = self.host.netctl(&nargs);
        let (dcode, dout) = self.docker.run(&dargs);
        assert_eq!(
            ncode, dcode,
            "{args:?}: docker {dout:?}, netctl {nout}{nerr}"
        );
        (nout + &nerr, dout)
    }

    /// What landed in each side's folder: path, type, mode, size, link target, owner.
    fn listings(&self) -> (String, String) {
        let list = |dir: &PathBuf| {
            self.host.sh(&format!(
                "cd {} && find . -mindepth 1 -printf '%P %y %m %s %l %U:%G\\n' | sort",
                dir.display()
            ))
        };
        (list(&self.n), list(&self.d))
    }

    /// The same command in both containers.
    fn exec(&self, script: &str) -> (String, String) {
        (
            self.host.netctl_ok(&["exec", "c1", "sh", "-c", script]),
            self.docker.run(&["exec", "c1", "sh", "-c", script]).1,
        )
    }
}

/// Files, folders, contents (`DIR/.`), followed links (`-L`) and a missing path, out of a
/// running and then a stopped container: the same files land, owned by the caller.
#[test]
fn copies_out_land_as_dockers_do() {
    let p = started();
    p.cp(&["c1:/data/a", "{}/"]);
    p.cp(&["c1:/data", "{}/tree"]);
    p.cp(&["c1:/data/.", "{}/contents"]);
    p.cp(&["c1:/data/a", "{}/renamed.txt"]);
    p.cp(&["-L", "c1:/data/link", "{}/followed"]);
    p.cp(&["c1:/data/sub/", "{}/sub-again"]);
    let (n, d) = p.listings();
    assert_eq!(n, d);
    assert!(n.contains("tree/link l 777"), "links stay links: {n}");
    assert_eq!(
        std::fs::read_to_string(p.n.join("followed")).unwrap(),
        "inside\n",
        "the container's file"
    );
    let (nerr, derr) = p.cp(&["c1:/nosuch", "{}/"]);
    assert!(
        derr.contains("No such container:path: c1:/nosuch"),
        "{derr}"
    );
    assert!(
        nerr.contains("No such container:path: c1:/nosuch"),
        "{nerr}"
    );
    p.cp(&["c1:/data/a", "{}/a/"]);
    p.cp(&["c1:/data", "{}/a"]);
    let (n, d) = p.cp(&["c1:/data/a", "-"]);
    assert_eq!(n.len(), d.len(), "the same archive on stdout");
    p.host.netctl_ok(&["stop", "-t", "1", "c1"]);
    assert_eq!(p.docker.run(&["stop", "-t", "1", "c1"]).0, 0);
    p.cp(&["c1:/data/sub/b", "{}/from-stopped"]);
    let (n, d) = p.listings();
    assert_eq!(n, d);
}

/// Files and folders into a container, with and without `-a` (Docker 20.10 keeps the
/// owners either way), into a new name, a folder and a folder's contents; into a stopped
/// container too.
#[test]
fn copies_in_land_as_dockers_do() {
    let p = started();
    for side in [&p.n, &p.d] {
        p.host.sh(&format!(
            "mkdir -p {0}/src/inner && echo cfg > {0}/src/app.conf && echo x > {0}/src/inner/x && chown -R 1234:1234 {0}/src && chmod 600 {0}/src/app.conf",
            side.display()
        ));
    }
    p.cp(&["{}/src/app.conf", "c1:/tmp/"]);
    p.cp(&["{}/src", "c1:/tmp/tree"]);
    p.cp(&["-a", "{}/src", "c1:/tmp/kept"]);
    p.cp(&["{}/src/.", "c1:/tmp/contents"]);
    p.cp(&["{}/src/app.conf", "c1:/tmp/renamed.conf"]);
    p.cp(&["{}/src/app.conf", "c1:/nosuch/dir/"]);
    let list = "cd /tmp && find . -mindepth 1 | sort | while read f; do stat -c '%n %F %a %u:%g' \"$f\"; done; cat tree/app.conf contents/inner/x";
    let (n, d) = p.exec(list);
    assert_eq!(n, d);
    assert!(
        n.contains("kept/app.conf regular file 600 1234:1234")
            && n.contains("tree/app.conf regular file 600 1234:1234"),
        "owners are kept, with or without -a, as Docker 20.10 keeps them: {n}"
    );
    p.host.netctl_ok(&["stop", "-t", "1", "c1"]);
    assert_eq!(p.docker.run(&["stop", "-t", "1", "c1"]).0, 0);
    p.cp(&["{}/src/inner/x", "c1:/tmp/while-stopped"]);
    p.host.netctl_ok(&["start", "c1"]);
    assert_eq!(p.docker.run(&["start", "c1"]).0, 0);
    let (n, d) = p.exec("cat /tmp/while-stopped");
    assert_eq!((n.as_str(), d.as_str()), ("x\n", "x\n"));
}

/// A container that plants `escape -> /` and `etc -> /etc` links cannot make a copy read
/// or write the host's files: every path resolves inside the container.
#[test]
fn a_containers_symlinks_never_lead_a_copy_to_the_host() {
    let p = started();
    std::fs::write(p.host.dir().join("secret"), "host secret\n").unwrap();
    let secret = p.host.dir().join("secret").display().to_string();
    let (code, _, _) = p.host.netctl(&[
        "cp",
        &format!("c1:/data/escape{secret}"),
        &p.n.display().to_string(),
    ]);
    assert_ne!(code, 0, "the host's file is not in the container");
    p.cp(&["c1:/data/escape/etc/hostname", "{}/hostname"]);
    assert_eq!(
        std::fs::read_to_string(p.n.join("hostname")).unwrap(),
        "inside\n"
    );
    let before = p.host.sh("cat /etc/hostname; ls /etc | wc -l");
    std::fs::write(p.n.join("planted"), "planted\n").unwrap();
    p.host.netctl_ok(&[
        "cp",
        &p.n.join("planted").display().to_string(),
        "c1:/data/escape/etc/",
    ]);
    assert_eq!(
        p.host.sh("cat /etc/hostname; ls /etc | wc -l"),
        before,
        "the host's /etc is untouched"
    );
    assert!(!std::path::Path::new("/etc/planted").exists());
    assert_eq!(
        p.host.netctl_ok(&["exec", "c1", "cat", "/etc/planted"]),
        "planted\n"
    );
}

/// `diff` lists what a container added, changed and deleted, and `export` writes its whole
/// file system (not its mounts), as Docker's do.
#[test]
fn diff_and_export_show_the_containers_file_system_as_dockers() {
    let mut host = TestHost::new();
    let docker = Dockerd::start(&mut host, false);
    host.busybox_image();
    let script = "mkdir /newdir && echo x > /newdir/f && echo y >> /etc/passwd && rm /bin/ls && touch /tmp/t";
    host.netctl_ok(&[
        "run", "--name", "ch", "--net", "none", "busybox", "sh", "-c", script,
    ]);
    let (code, out) = docker.run(&[
        "run", "--name", "ch", "--net", "none", "dbox", "sh", "-c", script,
    ]);
    assert_eq!(code, 0, "{out}");
    let n = host.netctl_ok(&["diff", "ch"]);
    let d = docker.run(&["diff", "ch"]).1;
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&n), sorted(&d));
    assert!(n.contains("D /bin/ls") && n.contains("A /newdir/f"), "{n}");
    let list = |cmd: String| {
        let names = host.sh(&format!(
            "{cmd} | tar -t | sed 's|/$||' | grep -v -e '^dev/' -e '^.dockerenv$' | sort"
        ));
        names
    };
    let nexp = list(format!(
        "{} export ch",
        netctl_netns_tests::binary("netctl").display()
    ));
    let dexp = list(docker.cmd("export ch"));
    assert_eq!(nexp, dexp);
    let f = host.sh(&format!(
        "{} export ch | tar -xO newdir/f",
        netctl_netns_tests::binary("netctl").display()
    ));
    assert_eq!(f, "x\n");
}
