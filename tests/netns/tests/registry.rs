//! netctl against a real registry: Debian's CNCF distribution registry (2.8) run in the
//! test's namespace, once with TLS from a CA the test makes and htpasswd basic auth, once
//! plain on loopback. A user logs in, pushes an image netctl built, pulls it on a fresh
//! root and runs it; a careless or hostile registry (a changed blob, an untrusted
//! certificate) gets a clear refusal and leaves nothing stored; skopeo reads what netctl
//! pushed and netctl pulls what skopeo copied (OCI manifests, zstd layers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netctl_netns_tests::cluster::Pki;
use netctl_netns_tests::daemon::Netctld;
use netctl_netns_tests::fake_registry::{Answer, FakeImage, FakeRegistry};
use netctl_netns_tests::{binary, busybox_rootfs, eventually, exit_and_streams, TestHost};

/// The address the TLS registry listens on: not loopback, so TLS is verified.
const TLS_ADDR: &str = "10.77.0.1";

/// A registry running in the test host.
struct Registry {
    /// Where it keeps blobs and manifests.
    data: PathBuf,
    /// `host:port`.
    host: String,
}

/// Starts a registry on `addr:port`; with `pki`, TLS with `registry.crt` and htpasswd auth
/// for alice / wonderland, and with `client_certs` only for clients with a certificate
/// from the PKI's CA.
fn start_registry(
    host: &mut TestHost,
    addr: &str,
    port: u16,
    pki: Option<&Pki>,
    client_certs: bool,
) -> Registry {
    let dir = host.dir().join(format!("registry-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    let mut config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: \"{addr}:{port}\"\n",
        data.display()
    );
    let scheme = match pki {
        Some(pki) => {
            host.sh(&format!(
                "htpasswd -Bbn alice wonderland > {}",
                dir.join("htpasswd").display()
            ));
            if client_certs {
                config += &format!("  tls:\n    clientcas:\n      - {}\n", pki.file("ca.crt"));
            } else {
                config += "  tls:\n";
            }
            config += &format!(
                "    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                pki.file("registry.crt"),
                pki.file("registry.key"),
                dir.join("htpasswd").display()
            );
            "https"
        }
        None => "http",
    };
    let config_path = dir.join("config.yml");
    std::fs::write(&config_path, config).unwrap();
    host.spawn(&format!(
        "exec docker-registry serve {} > {} 2>&1",
        config_path.display(),
        dir.join("log").display()
    ));
    let client = match pki {
        Some(pki) if client_certs => format!(
            "--cert {} --key {}",
            pki.file("client.crt"),
            pki.file("client.key")
        ),
        _ => String::new(),
    };
    eventually(
        "the registry answers",
        Duration::from_secs(20),
        || match host.try_sh(&format!(
            "curl -gsk {client} -o /dev/null -w '%{{http_code}}' {scheme}://{addr}:{port}/v2/"
        )) {
            (true, code) if code == "200" || code == "401" => Ok(()),
            (_, out) => Err(out),
        },
    );
    Registry {
        data,
        host: format!("{addr}:{port}"),
    }
}

/// A test host whose /etc/docker (certs.d) and /etc/netctl are its own, with an address
/// for the TLS registry and a CA that signed it.
fn host_with_pki() -> (TestHost, Pki) {
    let host = TestHost::new();
    for d in ["/etc/docker", "/etc/netctl"] {
        host.sh(&format!("mkdir -p {d} && mount -t tmpfs tmpfs {d}"));
    }
    host.sh(&format!("ip addr add {TLS_ADDR}/32 dev lo"));
    let pki = Pki::make(
        host.dir().join("pki"),
        &[("registry", TLS_ADDR), ("client", "127.0.0.1")],
    );
    (host, pki)
}

/// Trusts the test's CA for `registry` as Docker reads it (`certs.d/<host:port>/ca.crt`).
fn trust(pki: &Pki, registry: &Registry) {
    let dir = Path::new("/etc/docker/certs.d").join(&registry.host);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(pki.dir.join("ca.crt"), dir.join("ca.crt")).unwrap();
}

/// Runs netctl with `root` as its state and `config` as the user's Docker config folder.
fn netctl(host: &TestHost, root: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("netctl"))
        .arg("--root")
        .arg(host.dir().join(root))
        .args(args)
        .env("DOCKER_CONFIG", host.dir().join("docker-config"))
        .env_remove("NETCTL_ROOT")
        .env_remove("NETCTL_RUN")
        .output()
        .expect("run netctl");
    exit_and_streams(&out)
}

fn netctl_ok(host: &TestHost, root: &str, args: &[&str]) -> String {
    let (code, out, err) = netctl(host, root, args);
    assert_eq!(code, 0, "netctl {args:?} failed: {out}{err}");
    out
}

/// Imports the busybox rootfs as `reference` into `root`.
fn import(host: &TestHost, root: &str, reference: &str) {
    let rootfs = busybox_rootfs(host.dir());
    netctl_ok(
        host,
        root,
        &["image", "import", &rootfs.display().to_string(), reference],
    );
}

fn image_id(host: &TestHost, root: &str, reference: &str) -> String {
    netctl_ok(
        host,
        root,
        &["image", "inspect", "-f", "{{.Id}}", reference],
    )
    .trim()
    .to_string()
}

/// What is stored in a root's image store: its image records and layers.
fn stored(host: &TestHost, root: &str) -> Vec<String> {
    let dir = host.dir().join(root).join("image");
    ["images", "layers"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(dir.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

/// A user logs in to a TLS registry with basic auth, pushes an image netctl built, pulls it
/// on a fresh root (by tag, then by digest) and runs it; before the login, and with a wrong
/// password, they get Docker's refusals and nothing is stored.
#[test]
fn a_pushed_image_pulls_on_a_fresh_root_and_runs_through_tls_and_basic_auth() {
    let (mut host, pki) = host_with_pki();
    let reg = start_registry(&mut host, TLS_ADDR, 5443, Some(&pki), false);
    trust(&pki, &reg);
    let web = format!("{}/team/web:1.2", reg.host);
    import(&host, "a", &web);

    let (code, _, err) = netctl(&host, "a", &["push", &web]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no basic auth credentials"),
        "push without login: {err}"
    );

    let (code, _, err) = netctl(
        &host,
        "a",
        &["login", &reg.host, "-u", "alice", "-p", "queen"],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "login attempt to https://{}/v2/ failed with status: 401 Unauthorized",
            reg.host
        )),
        "{err}"
    );
    assert!(
        !host.dir().join("docker-config/config.json").exists(),
        "a failed login stored credentials"
    );

    let out = Command::new(binary("netctl"))
        .args(["login", &reg.host, "-u", "alice", "--password-stdin"])
        .env("DOCKER_CONFIG", host.dir().join("docker-config"))
        .stdin(std::fs::File::open(write(&host, "pw", "wonderland\n")).unwrap())
        .output()
        .unwrap();
    let (code, out, err) = exit_and_streams(&out);
    assert_eq!((code, out.as_str()), (0, "Login Succeeded\n"), "{err}");
    let config = std::fs::read_to_string(host.dir().join("docker-config/config.json")).unwrap();
    assert!(
        config.contains(&reg.host) && config.contains("YWxpY2U6d29uZGVybGFuZA=="),
        "{config}"
    );

    let pushed = netctl_ok(&host, "a", &["push", &web]);
    assert!(
        pushed.starts_with(&format!(
            "The push refers to repository [{}/team/web]",
            reg.host
        )),
        "{pushed}"
    );
    assert!(pushed.contains(": Pushed\n"), "{pushed}");
    let digest = pushed
        .lines()
        .find_map(|l| l.strip_prefix("1.2: digest: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no digest line in {pushed}"))
        .to_string();
    let again = netctl_ok(&host, "a", &["push", &web]);
    assert!(
        again.contains(": Layer already exists\n") && again.contains(&digest),
        "{again}"
    );
    // Another repository of the registry gets the layer mounted, not uploaded again.
    let other = format!("{}/team/other:1", reg.host);
    netctl_ok(&host, "a", &["tag", &web, &other]);
    let mounted = netctl_ok(&host, "a", &["push", &other]);
    assert!(mounted.contains(": Mounted from team/web\n"), "{mounted}");

    let pulled = netctl_ok(&host, "b", &["pull", &web]);
    assert!(pulled.contains("1.2: Pulling from team/web\n"), "{pulled}");
    assert!(pulled.contains(": Pull complete\n"), "{pulled}");
    assert!(
        pulled.contains(&format!(
            "Digest: {digest}\nStatus: Downloaded newer image for {web}\n{web}\n"
        )),
        "{pulled}"
    );
    assert_eq!(
        image_id(&host, "b", &web),
        image_id(&host, "a", &web),
        "the image keeps its ID"
    );
    let again = netctl_ok(&host, "b", &["pull", &web]);
    assert!(
        again.contains(": Already exists\n") && again.contains("Status: Image is up to date"),
        "{again}"
    );

    let ran = netctl_ok(
        &host,
        "b",
        &[
            "run",
            "--rm",
            "--net",
            "none",
            &web,
            "echo",
            "ran the pulled image",
        ],
    );
    assert_eq!(ran, "ran the pulled image\n");

    // `run` pulls what is missing, unless told never to.
    let (code, _, err) = netctl(
        &host,
        "fresh",
        &["run", "--pull", "never", "--net", "none", &web, "true"],
    );
    assert_eq!(code, 125);
    assert!(err.contains("Unable to find image"), "{err}");
    assert_eq!(stored(&host, "fresh"), Vec::<String>::new());
    let (code, out, err) = netctl(
        &host,
        "fresh",
        &[
            "run",
            "--rm",
            "--net",
            "none",
            &web,
            "echo",
            "pulled by run",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "pulled by run\n"), "{err}");
    assert!(
        err.contains(&format!("Unable to find image '{web}' locally"))
            && err.contains("Status: Downloaded newer image"),
        "{err}"
    );

    // A pulled image saves and loads with its ID.
    let archive = host.dir().join("pulled.tar").display().to_string();
    netctl_ok(&host, "b", &["save", "-o", &archive, &web]);
    netctl_ok(&host, "e", &["load", "-i", &archive]);
    assert_eq!(image_id(&host, "e", &web), image_id(&host, "a", &web));

    let by_digest = format!("{}/team/web@{digest}", reg.host);
    let pulled = netctl_ok(&host, "c", &["pull", &by_digest]);
    assert!(pulled.ends_with(&format!("{by_digest}\n")), "{pulled}");
    let listed = netctl_ok(
        &host,
        "c",
        &[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}",
        ],
    );
    assert_eq!(listed, format!("{}/team/web <none> {digest}\n", reg.host));
    assert_eq!(image_id(&host, "c", &by_digest), image_id(&host, "a", &web));

    let out = netctl_ok(&host, "a", &["logout", &reg.host]);
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.host)
    );
    let (code, _, err) = netctl(&host, "d", &["pull", &web]);
    assert_ne!(code, 0);
    assert!(
        err.contains("pull access denied for") && err.contains("may require 'docker login'"),
        "{err}"
    );
    assert_eq!(stored(&host, "d"), Vec::<String>::new());
}

fn write(host: &TestHost, name: &str, text: &str) -> PathBuf {
    let p = host.dir().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A registry whose certificate comes from a CA nobody trusted: the pull is refused with
/// the certificate error and nothing is stored (TLS is never skipped for it).
#[test]
fn a_registry_with_an_untrusted_certificate_is_refused() {
    let (mut host, pki) = host_with_pki();
    let reg = start_registry(&mut host, TLS_ADDR, 5443, Some(&pki), false);
    let (code, _, err) = netctl(&host, "a", &["pull", &format!("{}/team/web:1.2", reg.host)]);
    assert_ne!(code, 0);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(stored(&host, "a"), Vec::<String>::new());
}

/// A registry that takes only clients with a certificate from its CA: netctl presents the
/// one in `certs.d/<host:port>/client.cert` + `client.key`, as Docker does, and without it
/// the handshake is refused.
#[test]
fn client_certificates_in_certs_d_are_presented() {
    let (mut host, pki) = host_with_pki();
    let reg = start_registry(&mut host, TLS_ADDR, 5443, Some(&pki), true);
    trust(&pki, &reg);
    let web = format!("{}/team/web:1", reg.host);
    import(&host, "a", &web);
    let login = [
        "login",
        reg.host.as_str(),
        "-u",
        "alice",
        "-p",
        "wonderland",
    ];
    let (code, _, err) = netctl(&host, "a", &login);
    assert_ne!(code, 0, "a client without a certificate was let in");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("handshake"),
        "{err}"
    );
    let dir = Path::new("/etc/docker/certs.d").join(&reg.host);
    std::fs::copy(pki.dir.join("client.crt"), dir.join("client.cert")).unwrap();
    std::fs::copy(pki.dir.join("client.key"), dir.join("client.key")).unwrap();
    netctl_ok(&host, "a", &login);
    netctl_ok(&host, "a", &["push", &web]);
    netctl_ok(&host, "b", &["pull", &web]);
    assert_eq!(image_id(&host, "b", &web), image_id(&host, "a", &web));
}

/// A registry that speaks plain HTTP on a non-loopback address is refused until the user
/// names it insecure in /etc/netctl/daemon.json (Docker's `insecure-registries`).
#[test]
fn a_plain_registry_is_used_only_once_named_insecure() {
    let (mut host, _pki) = host_with_pki();
    let reg = start_registry(&mut host, TLS_ADDR, 5001, None, false);
    let web = format!("{}/team/web:1", reg.host);
    import(&host, "a", &web);
    let (code, _, err) = netctl(&host, "a", &["push", &web]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("https://{}/v2/", reg.host)), "{err}");
    std::fs::write(
        "/etc/netctl/daemon.json",
        format!(r#"{{"insecure-registries": ["{}"]}}"#, reg.host),
    )
    .unwrap();
    netctl_ok(&host, "a", &["push", &web]);
    netctl_ok(&host, "b", &["pull", &web]);
    assert_eq!(image_id(&host, "b", &web), image_id(&host, "a", &web));
}

/// A registry at an IPv6 address is named in brackets (`[::1]:5005/team/web:1`, as today's
/// Docker reads it): push and pull reach it, and loopback needs no insecure entry.
#[test]
fn a_registry_at_an_ipv6_address_is_reached_by_its_bracketed_name() {
    let (mut host, _pki) = host_with_pki();
    let reg = start_registry(&mut host, "[::1]", 5005, None, false);
    assert_eq!(reg.host, "[::1]:5005");
    let web = format!("{}/team/web:1", reg.host);
    import(&host, "a", &web);
    netctl_ok(&host, "a", &["push", &web]);
    let pulled = netctl_ok(&host, "b", &["pull", &web]);
    assert!(pulled.ends_with(&format!("{web}\n")), "{pulled}");
    assert_eq!(image_id(&host, "b", &web), image_id(&host, "a", &web));
}

/// A user pushes every tag of a repository at once (`push -a`), pulls them all on a fresh
/// root (`pull -a`), and does the same with the docker CLI through netctld (where the API
/// call without a tag means every tag, as Docker's daemon takes it).
#[test]
fn every_tag_of_a_repository_is_pushed_and_pulled_at_once() {
    let (mut host, _pki) = host_with_pki();
    let reg = start_registry(&mut host, "127.0.0.1", 5002, None, false);
    let repo = format!("{}/team/web", reg.host);
    import(&host, "a", &format!("{repo}:1"));
    netctl_ok(
        &host,
        "a",
        &["tag", &format!("{repo}:1"), &format!("{repo}:2")],
    );
    let small = host.dir().join("small");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("hello"), "hello\n").unwrap();
    netctl_ok(
        &host,
        "a",
        &[
            "image",
            "import",
            &small.display().to_string(),
            &format!("{repo}:3"),
        ],
    );
    let (code, _, err) = netctl(&host, "a", &["push", "-a", &format!("{repo}:1")]);
    assert_ne!(code, 0);
    assert!(
        err.contains("tag can't be used with --all-tags/-a"),
        "{err}"
    );
    let pushed = netctl_ok(&host, "a", &["push", "--all-tags", &repo]);
    assert_eq!(
        pushed.matches("The push refers to repository").count(),
        1,
        "{pushed}"
    );
    for t in ["1", "2", "3"] {
        assert!(
            pushed.contains(&format!("\n{t}: digest: sha256:")),
            "{pushed}"
        );
    }
    let pulled = netctl_ok(&host, "b", &["pull", "-a", &repo]);
    assert!(
        pulled.ends_with(&format!(
            "Status: Downloaded newer image for {repo}\n{repo}\n"
        )),
        "{pulled}"
    );
    assert_eq!(pulled.matches("Digest: sha256:").count(), 3, "{pulled}");
    let tags = |root: &str| {
        netctl_ok(&host, root, &["images", "--format", "{{.Tag}}", &repo])
            .lines()
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(tags("b"), tags("a"));
    assert_eq!(
        image_id(&host, "b", &format!("{repo}:3")),
        image_id(&host, "a", &format!("{repo}:3"))
    );

    // The docker CLI through netctld: pull -a, then push -a of another repository.
    let daemon = Netctld::start(&mut host);
    let ok = |args: &[&str]| {
        let (code, out, err) = docker(&daemon, &host, args, None);
        assert_eq!(code, 0, "docker {args:?}: {out}{err}");
        out
    };
    let out = ok(&["pull", "-a", &repo]);
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {repo}")),
        "{out}"
    );
    let listed = ok(&["images", "--format", "{{.Tag}}", &repo]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let copy = format!("{}/team/copy", reg.host);
    ok(&["tag", &format!("{repo}:1"), &format!("{copy}:x")]);
    ok(&["tag", &format!("{repo}:3"), &format!("{copy}:y")]);
    let out = ok(&["push", "-a", &copy]);
    assert!(
        out.contains("x: digest:") && out.contains("y: digest:"),
        "{out}"
    );
    let list = host.sh(&format!(
        "curl -sf http://{}/v2/team/copy/tags/list",
        reg.host
    ));
    assert!(list.contains(r#""tags":["x","y"]"#), "{list}");
}

/// A user whose machine reaches Docker Hub only through a mirror names it in
/// /etc/netctl/daemon.json (`registry-mirrors`, after one that is down): `pull busybox` and
/// a `run` that pulls come from the mirror, and so does the docker CLI's pull through
/// netctld; an image the mirror lacks is asked of Docker Hub itself (which this namespace
/// cannot reach); a malformed mirror is refused in words.
#[test]
fn docker_hub_images_come_from_the_configured_mirror() {
    let (mut host, _pki) = host_with_pki();
    let mirror = start_registry(&mut host, "127.0.0.1", 5004, None, false);
    let upstream = format!("{}/library/busybox:latest", mirror.host);
    import(&host, "a", &upstream);
    netctl_ok(&host, "a", &["push", &upstream]);
    std::fs::write(
        "/etc/netctl/daemon.json",
        format!(
            r#"{{"registry-mirrors": ["http://127.0.0.1:1", "http://{}"]}}"#,
            mirror.host
        ),
    )
    .unwrap();
    let pulled = netctl_ok(&host, "b", &["pull", "busybox"]);
    assert!(
        pulled.starts_with("Using default tag: latest\nlatest: Pulling from library/busybox\n"),
        "{pulled}"
    );
    assert!(
        pulled.ends_with(
            "Status: Downloaded newer image for busybox:latest\ndocker.io/library/busybox:latest\n"
        ),
        "{pulled}"
    );
    assert_eq!(
        image_id(&host, "b", "busybox"),
        image_id(&host, "a", &upstream)
    );
    let (code, out, err) = netctl(
        &host,
        "c",
        &[
            "run",
            "--rm",
            "--net",
            "none",
            "busybox",
            "echo",
            "from the mirror",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "from the mirror\n"), "{err}");

    let (code, _, err) = netctl(&host, "b", &["pull", "alpine"]);
    assert_ne!(code, 0);
    assert!(err.contains("registry-1.docker.io"), "{err}");
    let (code, _, err) = netctl(
        &host,
        "b",
        &["--registry-mirror", "mirror.example", "pull", "busybox"],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("invalid registry mirror \"mirror.example\""),
        "{err}"
    );

    let daemon = Netctld::start(&mut host);
    let (code, out, err) = docker(&daemon, &host, &["pull", "busybox"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Status: Downloaded newer image for busybox:latest"),
        "{out}"
    );
}

/// A registry serves a layer whose bytes were changed on its disk: the pull fails on the
/// digest, and the puller keeps no image and no layer; once the blob is whole again the
/// pull works.
#[test]
fn a_blob_changed_in_the_registry_is_refused_and_nothing_is_stored() {
    let mut host = TestHost::new();
    let reg = start_registry(&mut host, "127.0.0.1", 5000, None, false);
    let web = format!("{}/team/web:1", reg.host);
    import(&host, "a", &web);
    netctl_ok(&host, "a", &["push", &web]);
    let blobs = reg.data.join("docker/registry/v2/blobs/sha256");
    // The largest blob is the layer.
    let layer = host.sh(&format!(
        "ls -S $(find {} -name data) | head -1",
        blobs.display()
    ));
    let layer = layer.trim();
    host.sh(&format!("cp {layer} {layer}.orig && printf 'X' | dd of={layer} bs=1 seek=100 conv=notrunc 2>/dev/null"));
    let (code, _, err) = netctl(&host, "b", &["pull", &web]);
    assert_ne!(code, 0);
    assert!(
        err.contains("verification failed for digest sha256:"),
        "{err}"
    );
    assert_eq!(stored(&host, "b"), Vec::<String>::new());
    host.sh(&format!("mv {layer}.orig {layer}"));
    netctl_ok(&host, "b", &["pull", &web]);
    assert_eq!(image_id(&host, "b", &web), image_id(&host, "a", &web));
}

/// A multi-platform index (made with the registry API, as `docker manifest push` would):
/// pull picks the host's platform, `--platform` another, and a platform it lacks is refused
/// in Docker's words.
#[test]
fn an_index_picks_the_hosts_platform_unless_told_otherwise() {
    let mut host = TestHost::new();
    let reg = start_registry(&mut host, "127.0.0.1", 5000, None, false);
    let amd = format!("{}/multi:amd64", reg.host);
    let arm = format!("{}/multi:arm64", reg.host);
    import(&host, "a", &amd);
    netctl_ok(
        &host,
        "a",
        &[
            "image",
            "import",
            "-c",
            "ENV ARCH=arm64",
            &busybox_rootfs(host.dir()).display().to_string(),
            &arm,
        ],
    );
    let digest_of = |pushed: String| -> (String, usize) {
        let line = pushed
            .lines()
            .find(|l| l.contains(": digest: "))
            .unwrap()
            .to_string();
        let mut words = line.split(' ').skip(2);
        let d = words.next().unwrap().to_string();
        let size = words.nth(1).unwrap().parse().unwrap();
        (d, size)
    };
    let (amd_digest, amd_size) = digest_of(netctl_ok(&host, "a", &["push", &amd]));
    let (arm_digest, arm_size) = digest_of(netctl_ok(&host, "a", &["push", &arm]));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[
        {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{arm_digest}","size":{arm_size},"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
        {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{amd_digest}","size":{amd_size},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
    );
    let index_file = write(&host, "index.json", &index);
    host.sh(&format!(
        "curl -sf -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.list.v2+json' --data-binary @{} http://{}/v2/multi/manifests/both",
        index_file.display(),
        reg.host
    ));
    let both = format!("{}/multi:both", reg.host);
    netctl_ok(&host, "b", &["pull", &both]);
    assert_eq!(image_id(&host, "b", &both), image_id(&host, "a", &amd));
    netctl_ok(&host, "c", &["pull", "--platform", "linux/arm64", &both]);
    assert_eq!(image_id(&host, "c", &both), image_id(&host, "a", &arm));
    // Go's other names for a platform, as Docker takes them.
    netctl_ok(
        &host,
        "e",
        &["pull", "--platform", "linux/aarch64/v8", &both],
    );
    assert_eq!(image_id(&host, "e", &both), image_id(&host, "a", &arm));
    let (code, _, err) = netctl(&host, "d", &["pull", "--platform", "linux/s390x", &both]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{err}"
    );
}

/// skopeo reads what netctl pushed; netctl pulls what skopeo wrote (an OCI manifest with
/// zstd layers, and one with gzip) and runs it.
#[test]
fn skopeo_and_netctl_read_each_others_images() {
    let mut host = TestHost::new();
    let reg = start_registry(&mut host, "127.0.0.1", 5000, None, false);
    let web = format!("{}/team/web:1", reg.host);
    import(&host, "a", &web);
    netctl_ok(&host, "a", &["push", &web]);
    let copy = host.dir().join("copy");
    host.sh(&format!(
        "skopeo copy -q --src-tls-verify=false docker://{web} dir:{}",
        copy.display()
    ));
    for (tag, compression) in [("oci-zstd", "zstd"), ("oci-gzip", "gzip")] {
        host.sh(&format!(
            "skopeo copy -q --format oci --dest-compress-format {compression} --dest-tls-verify=false dir:{} docker://{}/copied:{tag}",
            copy.display(),
            reg.host
        ));
        let copied = format!("{}/copied:{tag}", reg.host);
        netctl_ok(&host, &format!("b-{tag}"), &["pull", &copied]);
        let ran = netctl_ok(
            &host,
            &format!("b-{tag}"),
            &["run", "--rm", "--net", "none", &copied, "echo", tag],
        );
        assert_eq!(ran, format!("{tag}\n"));
    }
}

/// `docker ARGS` against netctld, with the test's own Docker config folder.
fn docker(
    daemon: &Netctld,
    host: &TestHost,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut cmd = Command::new("/usr/bin/docker");
    cmd.env("DOCKER_HOST", daemon.host())
        .env("DOCKER_CONFIG", host.dir().join("docker-cli-config"))
        .env_remove("DOCKER_API_VERSION")
        .args(args);
    if let Some(text) = stdin {
        cmd.stdin(std::fs::File::open(write(host, "stdin", text)).unwrap());
    }
    exit_and_streams(&cmd.output().expect("run docker"))
}

/// Debian's pass credential helper and pass, unpacked by `scripts/deps test`.
fn credential_helpers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/credential-helpers/bin")
}

/// A user whose Docker config keeps credentials in `pass` (`"credsStore": "pass"`) logs in
/// with netctl and with the docker CLI: the password lands in pass, never in config.json;
/// each reads what the other stored, and logout takes it out of pass. A helper the config
/// names but that is not installed is refused in words.
#[test]
fn credentials_live_in_the_credential_helper_the_docker_config_names() {
    let (mut host, pki) = host_with_pki();
    let reg = start_registry(&mut host, TLS_ADDR, 5443, Some(&pki), false);
    trust(&pki, &reg);
    let daemon = Netctld::start(&mut host);
    let helpers = credential_helpers();
    assert!(
        helpers.join("docker-credential-pass").is_file(),
        "{} is missing: run scripts/deps test",
        helpers.display()
    );
    let config = host.dir().join("helper-config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"credsStore":"pass"}"#).unwrap();
    let gnupg = host.dir().join("gnupg");
    let env = [
        (
            "PATH",
            format!("{}:{}", helpers.display(), std::env::var("PATH").unwrap()),
        ),
        ("GNUPGHOME", gnupg.display().to_string()),
        (
            "PASSWORD_STORE_DIR",
            host.dir().join("password-store").display().to_string(),
        ),
        ("DOCKER_CONFIG", config.display().to_string()),
        ("DOCKER_HOST", daemon.host().to_string()),
    ];
    let run = |program: &str, args: &[&str], stdin: &str| {
        let mut cmd = Command::new(program);
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(std::fs::File::open(write(&host, "stdin", stdin)).unwrap());
        exit_and_streams(&cmd.output().unwrap())
    };
    let ok = |program: &str, args: &[&str], stdin: &str| {
        let (code, out, err) = run(program, args, stdin);
        assert_eq!(code, 0, "{program} {args:?}: {out}{err}");
        out
    };
    std::fs::create_dir(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    ok(
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "netctl test <netctl@test.invalid>",
            "default",
            "default",
            "never",
        ],
        "",
    );
    ok("pass", &["init", "netctl@test.invalid"], "");
    let netctl_bin = binary("netctl").display().to_string();
    let root = |r: &str| host.dir().join(r).display().to_string();
    let web = format!("{}/team/web:1", reg.host);
    import(&host, "a", &web);
    let listed = || ok("docker-credential-pass", &["list"], "");

    // netctl's login goes to pass; the file names the registry without a secret.
    let out = ok(
        &netctl_bin,
        &["login", &reg.host, "-u", "alice", "--password-stdin"],
        "wonderland\n",
    );
    assert_eq!(out, "Login Succeeded\n");
    let file = std::fs::read_to_string(config.join("config.json")).unwrap();
    assert!(!file.contains("\"auth\""), "{file}");
    assert!(
        file.contains(&reg.host) && file.contains("\"credsStore\": \"pass\""),
        "{file}"
    );
    assert_eq!(listed(), format!("{{\"{}\":\"alice\"}}\n", reg.host));
    ok(&netctl_bin, &["--root", &root("a"), "push", &web], "");

    // The docker CLI logs out of what netctl stored: netctl can pull no more ...
    let out = ok("/usr/bin/docker", &["logout", &reg.host], "");
    assert!(out.contains("Removing login credentials"), "{out}");
    assert_eq!(listed(), "{}\n");
    let (code, _, err) = run(&netctl_bin, &["--root", &root("b"), "pull", &web], "");
    assert_ne!(code, 0);
    assert!(err.contains("pull access denied"), "{err}");
    // ... until the docker CLI logs in (through netctld) and netctl reads what it stored.
    ok(
        "/usr/bin/docker",
        &["login", &reg.host, "-u", "alice", "--password-stdin"],
        "wonderland\n",
    );
    assert_eq!(listed(), format!("{{\"{}\":\"alice\"}}\n", reg.host));
    let out = ok(&netctl_bin, &["--root", &root("b"), "pull", &web], "");
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    let out = ok(&netctl_bin, &["logout", &reg.host], "");
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.host)
    );
    assert_eq!(listed(), "{}\n");

    // A helper named but not installed.
    std::fs::write(config.join("config.json"), r#"{"credsStore":"nothere"}"#).unwrap();
    let (code, _, err) = run(&netctl_bin, &["--root", &root("c"), "pull", &web], "");
    assert_ne!(code, 0);
    assert!(
        err.contains("docker-credential-nothere, which is not on the PATH"),
        "{err}"
    );
    ok("gpgconf", &["--kill", "gpg-agent"], "");
}

/// A Docker user logs in with the docker CLI through netctld, pushes an image, removes it,
/// pulls it back and runs it: the lines and errors are Docker's.
#[test]
fn the_docker_cli_logs_in_pushes_and_pulls_through_netctld() {
    let (mut host, pki) = host_with_pki();
    let reg = start_registry(&mut host, TLS_ADDR, 5443, Some(&pki), false);
    trust(&pki, &reg);
    let daemon = Netctld::start(&mut host);
    host.busybox_image();
    let web = format!("{}/team/web:2", reg.host);
    let ok = |args: &[&str]| {
        let (code, out, err) = docker(&daemon, &host, args, None);
        assert_eq!(code, 0, "docker {args:?}: {out}{err}");
        out
    };
    ok(&["tag", "busybox", &web]);
    let (code, out, err) = docker(&daemon, &host, &["push", &web], None);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("no basic auth credentials"), "{out}{err}");

    let (code, out, err) = docker(
        &daemon,
        &host,
        &["login", &reg.host, "-u", "alice", "--password-stdin"],
        Some("queen\n"),
    );
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("401 Unauthorized"), "{err}");
    let (code, out, err) = docker(
        &daemon,
        &host,
        &["login", &reg.host, "-u", "alice", "--password-stdin"],
        Some("wonderland\n"),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Login Succeeded"), "{out}");

    let pushed = ok(&["push", &web]);
    assert!(pushed.contains(": Pushed\n"), "{pushed}");
    let digest = pushed
        .lines()
        .find_map(|l| l.strip_prefix("2: digest: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no digest in {pushed}"))
        .to_string();
    ok(&["rmi", &web, "busybox"]);
    let pulled = ok(&["pull", &web]);
    assert!(
        pulled.contains(&format!(
            "Digest: {digest}\nStatus: Downloaded newer image for {web}\n"
        )),
        "{pulled}"
    );
    let listed = ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}}",
    ]);
    assert_eq!(listed, format!("{}/team/web:2 {digest}\n", reg.host));
    assert_eq!(
        ok(&["run", "--rm", "--net", "none", &web, "echo", "via netctld"]),
        "via netctld\n"
    );
    // `docker run` of an image netctld lacks pulls it first, as with dockerd.
    ok(&["rmi", &web]);
    let (code, out, err) = docker(
        &daemon,
        &host,
        &[
            "run",
            "--rm",
            "--net",
            "none",
            &web,
            "echo",
            "pulled by run",
        ],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "pulled by run\n"), "{err}");
    assert!(
        err.contains(&format!("Unable to find image '{web}' locally")),
        "{err}"
    );

    let (code, _, err) = docker(
        &daemon,
        &host,
        &["pull", &format!("{}/team/nosuch", reg.host)],
        None,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "Error response from daemon: manifest for {}/team/nosuch:latest not found",
            reg.host
        )),
        "{err}"
    );
}

/// A registry that answers with a manifest over the bound, endless redirects, a 401 for
/// every token it hands out, a layer whose tar climbs out of its folder, or a manifest that
/// gives a layer's size one byte short or long: each pull fails at once with a clear error,
/// asks a bounded number of times, and stores nothing.
#[test]
fn a_hostile_registry_gets_a_clear_refusal_and_nothing_is_stored() {
    let host = TestHost::new();
    // A layer whose member climbs out, and an image that names it honestly.
    let evil = FakeImage::of_files(&[(b"../../escape", b"owned")], false);
    // Honest layers whose manifests lie about their size, one way and the other.
    let liar = |delta: i64| {
        let mut image = FakeImage::of_files(&[(b"fine", b"fine\n")], false);
        let size = image.layers[0].len() as i64;
        image.manifest = image.manifest.replace(
            &format!("\"size\":{size}}}"),
            &format!("\"size\":{}}}", size + delta),
        );
        image
    };
    let (short, long) = (liar(-1), liar(1));
    let mt = "application/vnd.docker.distribution.manifest.v2+json";
    let reg = FakeRegistry::start(move |a| match a.path.as_str() {
        "/v2/big/manifests/1" => Answer::new(200, vec![b' '; 5 << 20]).header("Content-Type", mt),
        "/v2/loop/manifests/1" => Answer::new(302, "").header("Location", "/v2/loop/manifests/1"),
        p => evil
            .answer("evil", "1", p)
            .or_else(|| short.answer("short", "1", p))
            .or_else(|| long.answer("long", "1", p))
            .unwrap_or_else(|| Answer::new(404, format!("not here on {}", a.port))),
    });
    let auth = FakeRegistry::start(|a| {
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"loop\"",
            a.port
        );
        match a.path.split('?').next().unwrap_or("") {
            "/token" => Answer::new(200, r#"{"token":"never-good"}"#),
            _ => Answer::new(401, "").header("WWW-Authenticate", &challenge),
        }
    });
    let cases = [
        (format!("{}/big:1", reg.host()), "over the bound"),
        (format!("{}/loop:1", reg.host()), "too many redirects"),
        (format!("{}/deny:1", auth.host()), "pull access denied"),
        (format!("{}/evil:1", reg.host()), "escape"),
        (format!("{}/short:1", reg.host()), "longer than the"),
        (format!("{}/long:1", reg.host()), "verification failed"),
    ];
    for (reference, words) in cases {
        let started = std::time::Instant::now();
        let (code, _, err) = netctl(&host, "a", &["pull", &reference]);
        assert_ne!(code, 0, "{reference}");
        assert!(err.contains(words), "{reference}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{reference} took {:?}",
            started.elapsed()
        );
        assert_eq!(stored(&host, "a"), Vec::<String>::new(), "{reference}");
    }
    assert!(!host.dir().join("escape").exists() && !Path::new("/escape").exists());
    assert!(reg.seen().len() < 40, "{:?}", reg.seen());
    assert!(auth.seen().len() < 10, "{:?}", auth.seen());
}

/// A registry behind a token server (the `WWW-Authenticate: Bearer` flow of Docker Hub and
/// most registries): `login` gets a token with the user's password, a pull asks a token for
/// the repository's scope and sends it; without credentials the pull is denied.
#[test]
fn bearer_tokens_are_fetched_with_the_stored_credentials() {
    let host = TestHost::new();
    let image = FakeImage::of_files(&[(b"hello", b"hello\n")], true);
    // base64("alice:wonderland")
    let basic = "Basic YWxpY2U6d29uZGVybGFuZA==";
    let reg = FakeRegistry::start(move |a| {
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"fake\"",
            a.port
        );
        let (route, query) = a.path.split_once('?').unwrap_or((&a.path, ""));
        if route == "/token" {
            return if a.auth == basic
                && (!query.contains("scope=")
                    || query.contains("scope=repository%3Ateam%2Fweb%3Apull")
                    || query.contains("scope=repository:team/web:pull"))
            {
                Answer::new(200, r#"{"access_token":"tok-for-alice"}"#)
            } else {
                Answer::new(401, "")
            };
        }
        if a.auth != "Bearer tok-for-alice" {
            return Answer::new(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
            .header("WWW-Authenticate", &challenge);
        }
        image
            .answer("team/web", "1", route)
            .unwrap_or_else(|| Answer::new(404, ""))
    });
    let port = reg.port;
    let web = format!("127.0.0.1:{port}/team/web:1");
    let (code, _, err) = netctl(&host, "a", &["pull", &web]);
    assert_ne!(code, 0);
    assert!(err.contains("pull access denied for 127.0.0.1"), "{err}");
    let (code, _, err) = netctl(
        &host,
        "a",
        &[
            "login",
            &format!("127.0.0.1:{port}"),
            "-u",
            "alice",
            "-p",
            "queen",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("401 Unauthorized"), "{err}");
    netctl_ok(
        &host,
        "a",
        &[
            "login",
            &format!("127.0.0.1:{port}"),
            "-u",
            "alice",
            "-p",
            "wonderland",
        ],
    );
    let pulled = netctl_ok(&host, "a", &["pull", &web]);
    assert!(
        pulled.contains("Status: Downloaded newer image"),
        "{pulled}"
    );
    assert_eq!(
        netctl_ok(
            &host,
            "a",
            &["image", "inspect", "-f", "{{json .Config.Cmd}}", &web]
        ),
        "[\"/hello\"]\n"
    );
    let asked: Vec<String> = reg
        .seen()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .map(|r| r.path)
        .collect();
    assert!(
        asked.iter().any(|r| r.contains("scope=repository")),
        "{asked:?}"
    );
}
