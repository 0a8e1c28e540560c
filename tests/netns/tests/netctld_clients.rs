//! netctld against clients that are not the well-behaved docker CLI on its unix socket: a
//! remote client over TCP (only with TLS and a certificate from the daemon's CA), and a
//! careless or hostile one (malformed requests, oversized heads and bodies, clients that
//! send half a request and wait).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use netctl_netns_tests::cluster::Pki;
use netctl_netns_tests::daemon::Netctld;
use netctl_netns_tests::{binary, TestHost};

/// Sends `head` then `body` (from another thread, so that a daemon that answers before
/// reading it all cannot block us), and reads the answer until the daemon closes.
fn exchange(sock: &Path, head: &str, body: Vec<u8>) -> String {
    let mut s = UnixStream::connect(sock).expect("connect to netctld");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let mut w = s.try_clone().expect("clone the stream");
    let head = head.to_string();
    let writer = std::thread::spawn(move || {
        // The daemon may close before it has read everything: that is an answer too.
        let _ = w
            .write_all(head.as_bytes())
            .and_then(|_| w.write_all(&body));
    });
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let _ = writer.join();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A request with a JSON body, on a connection closed after the answer.
fn request(sock: &Path, method: &str, path: &str, body: &str) -> String {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    exchange(sock, &head, body.as_bytes().to_vec())
}

/// The status line's code and the `"message"` of Docker's JSON error.
fn status_and_message(answer: &str) -> (u16, String) {
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    // A chunked body: the JSON is the line that starts with `{`.
    let json = body
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON body in {answer:?}"));
    let v: serde_json::Value = serde_json::from_str(json).expect("the body is JSON");
    let message = v["message"].as_str().expect("a message").to_string();
    (code, message)
}

/// A careless client sends a malformed filter, wrong JSON types, a method a route lacks and
/// a body over the limit: each gets Docker's JSON error with a 4xx status, and the daemon
/// goes on answering.
#[test]
fn malformed_requests_get_dockers_json_errors() {
    let mut host = TestHost::new();
    let daemon = Netctld::start(&mut host);
    let sock = daemon.socket();
    let cases: [(&str, &str, String, u16, &str); 6] = [
        (
            "GET",
            "/containers/json?filters=%7B",
            String::new(),
            400,
            "invalid filter",
        ),
        (
            "POST",
            "/networks/create",
            r#"{"Name": 5}"#.into(),
            400,
            "invalid type",
        ),
        (
            "POST",
            "/v1.41/containers/create",
            r#"{"Image": "busybox", "HostConfig": {"Memory": "lots"}}"#.into(),
            400,
            "invalid type",
        ),
        ("PUT", "/containers/json", String::new(), 405, "Not Allowed"),
        (
            "POST",
            "/networks/create",
            r#"{"Name": "aux", "IPAM": {"Config": [{"Subnet": "172.28.0.0/16", "AuxiliaryAddresses": {"a": "172.29.1.5"}}]}}"#.into(),
            400,
            "no matching subnet for aux-address",
        ),
        (
            "POST",
            "/networks/create",
            " ".repeat(3 << 20),
            413,
            "length limit",
        ),
    ];
    for (method, path, body, code, text) in cases {
        let (got, message) = status_and_message(&request(sock, method, path, &body));
        assert_eq!(got, code, "{method} {path}: {message}");
        assert!(message.contains(text), "{method} {path}: {message}");
    }
    assert_eq!(
        daemon.docker_ok(&["network", "ls", "-q"]).lines().count(),
        3
    );
}

/// A hostile client sends a request head of a megabyte: it is answered 431 (the daemon
/// does not buffer it), and others are still served.
#[test]
fn an_oversized_request_head_is_refused() {
    let mut host = TestHost::new();
    let daemon = Netctld::start(&mut host);
    let head = format!(
        "GET /_ping HTTP/1.1\r\nHost: docker\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = exchange(daemon.socket(), &head, Vec::new());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    assert_eq!(
        daemon.docker_ok(&["version", "--format", "{{.Server.APIVersion}}"]),
        "1.41\n"
    );
}

/// Two hundred clients each send half a request head and wait: a docker CLI is still
/// answered, and the daemon closes every half-sent connection after its head deadline
/// (10 s) instead of keeping it open for as long as the client likes.
#[test]
fn clients_that_send_half_a_request_neither_starve_others_nor_stay_open() {
    let mut host = TestHost::new();
    let daemon = Netctld::start(&mut host);
    let mut slow: Vec<UnixStream> = (0..200)
        .map(|_| {
            let mut s = UnixStream::connect(daemon.socket()).expect("connect");
            s.write_all(b"GET /_ping HTTP/1.1\r\nHost: dock")
                .expect("half a head");
            s
        })
        .collect();
    let start = Instant::now();
    daemon.docker_ok(&["network", "ls"]);
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let mut rest = Vec::new();
        // Closed by the daemon: the read ends (with or without a 408 first).
        let ended = s.read_to_end(&mut rest).is_ok();
        assert!(ended, "a half-sent request was kept open past 30 s");
    }
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "the half-sent requests were closed after {:?}",
        start.elapsed()
    );
}

/// An admin opens the API to other machines. Without `--tlsverify` and its three files
/// netctld refuses to start and says why; with them, a docker CLI holding a certificate
/// from the CA runs a container, while a client without a certificate, with one from
/// another CA, or speaking plain HTTP is turned away.
#[test]
fn the_api_over_tcp_answers_only_clients_with_a_certificate_from_its_ca() {
    let mut host = TestHost::new();
    host.busybox_image();
    let lo = "127.0.0.1";
    let pki = Pki::make(host.dir().join("pki"), &[("server", lo), ("client", lo)]);
    let stranger = Pki::make(host.dir().join("stranger"), &[("client", lo)]);
    let netctld = binary("netctld").display().to_string();
    let (started, said) = host.try_sh(&format!(
        "{netctld} -H unix://{}/plain.sock -H tcp://{lo}:2376",
        host.dir().display()
    ));
    assert!(!started, "netctld served plain TCP: {said}");
    assert!(said.contains("plain TCP"), "{said}");

    let daemon = Netctld::start_with(
        &mut host,
        &format!(
            "-H tcp://{lo}:2376 --tlsverify --tlscacert {} --tlscert {} --tlskey {}",
            pki.file("ca.crt"),
            pki.file("server.crt"),
            pki.file("server.key")
        ),
    );
    let remote = |args: &str| {
        host.try_sh(&format!(
            "/usr/bin/docker -H tcp://{lo}:2376 {args} run --rm busybox echo hello"
        ))
    };
    let ca = pki.file("ca.crt");
    let (ok, out) = remote(&format!(
        "--tlsverify --tlscacert {ca} --tlscert {} --tlskey {}",
        pki.file("client.crt"),
        pki.file("client.key")
    ));
    assert!(ok && out.contains("hello"), "{out}");

    let (ok, out) = remote(&format!("--tlsverify --tlscacert {ca}"));
    assert!(!ok && out.contains("certificate required"), "{out}");
    let (ok, out) = remote(&format!(
        "--tlsverify --tlscacert {ca} --tlscert {} --tlskey {}",
        stranger.file("client.crt"),
        stranger.file("client.key")
    ));
    assert!(!ok && out.contains("tls:"), "{out}");
    let (ok, out) = remote("");
    assert!(!ok && out.contains("TLS"), "{out}");
    assert!(daemon.docker_ok(&["ps", "-aq"]).is_empty());
}

/// Makes an exec instance of `cmd` (a JSON list) in `container` with stdin, stdout and a
/// terminal, and `more` body members; its ID.
fn exec_create(sock: &Path, container: &str, cmd: &str, more: &str) -> String {
    let body = format!(
        r#"{{"AttachStdin": true, "AttachStdout": true, "Tty": true, "Cmd": {cmd}, {more}}}"#
    );
    let answer = request(
        sock,
        "POST",
        &format!("/v1.41/containers/{container}/exec"),
        &body,
    );
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    v["Id"].as_str().expect("an ID").to_string()
}

/// Starts exec instance `id` on a hijacked connection (`tty` as the start body asks) and
/// returns the connection after the 101 answer's head.
fn exec_start(sock: &Path, id: &str, tty: bool) -> UnixStream {
    let body = format!(r#"{{"Detach": false, "Tty": {tty}}}"#);
    let mut s = UnixStream::connect(sock).expect("connect to netctld");
    let head = format!(
        "POST /v1.41/exec/{id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("send the start");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).expect("read the answer"),
            1,
            "closed: {got:?}"
        );
        got.push(byte[0]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    s
}

/// An exec made with `DetachKeys` (docker-py's `detachKeys`) and a terminal, as docker-py
/// drives one: started without `Tty` its output comes in Docker's frames; the detach keys on
/// its stdin end the connection while the command runs on.
#[test]
fn an_exec_is_framed_as_its_start_asks_and_detaches_on_its_keys() {
    let mut host = TestHost::new();
    host.busybox_image();
    let daemon = Netctld::start(&mut host);
    let sock = daemon.socket();
    daemon.docker_ok(&["run", "-d", "--name", "c1", "busybox", "sleep", "100"]);
    let make =
        |cmd: &str, keys: &str| exec_create(sock, "c1", cmd, &format!(r#""detachKeys": "{keys}""#));

    let id = make(r#"["printf", "yay"]"#, "ctrl-p");
    let mut s = exec_start(sock, &id, false);
    let start = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(out, b"\x01\x00\x00\x00\x00\x00\x00\x03yay", "framed output");
    // The stream ends with the command, though the client's input is still open.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    let id = make(r#"["cat"]"#, "ctrl-x");
    let mut s = exec_start(sock, &id, true);
    s.write_all(b"echo\n").expect("type a line");
    let mut echoed = [0u8; 64];
    let n = s.read(&mut echoed).expect("the terminal echoes");
    assert!(n > 0);
    s.write_all(b"\x18").expect("the detach key");
    let mut rest = Vec::new();
    let ended = s.read_to_end(&mut rest);
    assert!(
        ended.is_ok(),
        "the connection stays open after the detach key"
    );
    let inspect = request(sock, "GET", &format!("/v1.41/exec/{id}/json"), "");
    assert!(inspect.contains("\"Running\":true"), "{inspect}");
}

/// A client resizes an exec's terminal while its command runs, as `docker exec -it` does
/// when its window changes: the command sees the new size.
#[test]
fn an_exec_terminal_takes_a_new_size_while_it_runs() {
    let mut host = TestHost::new();
    host.busybox_image();
    let daemon = Netctld::start(&mut host);
    let sock = daemon.socket();
    daemon.docker_ok(&["run", "-d", "--name", "c1", "busybox", "sleep", "100"]);
    let cmd = r#"["sh", "-c", "stty size; read x; stty size"]"#;
    let id = exec_create(sock, "c1", cmd, r#""DetachKeys": """#);
    let mut s = exec_start(sock, &id, true);
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("24 80") {
        let n = s.read(&mut buf).expect("the first size");
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let resized = request(
        sock,
        "POST",
        &format!("/v1.41/exec/{id}/resize?h=30&w=100"),
        "",
    );
    assert!(resized.starts_with("HTTP/1.1 200"), "{resized}");
    s.write_all(b"\n").expect("go on");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        String::from_utf8_lossy(&rest).contains("30 100"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let gone = request(
        sock,
        "POST",
        &format!("/v1.41/exec/{id}/resize?h=30&w=100"),
        "",
    );
    assert!(gone.starts_with("HTTP/1.1 409"), "{gone}");
}
