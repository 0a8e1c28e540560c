//! A registry on loopback that answers as a test tells it — honestly, or as a broken or
//! hostile one: cut connections, trickled or stalled bodies, wrong sizes, endless redirects —
//! and the images it serves, built from single-file layers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

/// A request as the registry saw it.
#[derive(Debug, Clone)]
pub struct Asked {
    /// `GET`, `HEAD` ...
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// The `Authorization` header.
    pub auth: String,
    /// The `Range` header.
    pub range: String,
    /// The registry's own port.
    pub port: u16,
}

/// How an answer's body goes out.
#[derive(Clone)]
pub enum Sending {
    /// All of it.
    Whole,
    /// Its first bytes, then the connection closes (the head promises all of it).
    CutAfter(usize),
    /// A byte at a time, each after this pause.
    Trickle(Duration),
    /// All but its last byte; the rest once every holder of the barrier got this far.
    HoldLast(Arc<Barrier>),
    /// Its first bytes, then nothing more while the connection stays open.
    Stall(usize),
    /// Not even the head: the connection stays open and silent.
    Mute,
}

/// How long a stalled or mute answer keeps its connection open.
const SILENCE: Duration = Duration::from_secs(300);

/// What the registry answers.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How the body goes out.
    pub sending: Sending,
}

impl Answer {
    /// `status` with `body`, sent whole.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            sending: Sending::Whole,
        }
    }

    /// This answer with a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// This answer sent as `sending` says.
    pub fn sent(mut self, sending: Sending) -> Self {
        self.sending = sending;
        self
    }
}

/// A registry answering on loopback; each connection is served on its own thread.
pub struct FakeRegistry {
    /// Its port on 127.0.0.1.
    pub port: u16,
    seen: Arc<Mutex<Vec<Asked>>>,
}

impl FakeRegistry {
    /// Starts a registry that answers each request with what `answer` gives.
    pub fn start(answer: impl Fn(&Asked) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || serve(conn, port, &log, &*answer));
            }
        });
        Self { port, seen }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Asked> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests for `path` (without its query) were seen.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|a| a.method == method && a.path.split('?').next() == Some(path))
            .count()
    }
}

fn serve(
    mut conn: TcpStream,
    port: u16,
    log: &Mutex<Vec<Asked>>,
    answer: &(dyn Fn(&Asked) -> Answer + Send + Sync),
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let (mut auth, mut range) = (String::new(), String::new());
    loop {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = v.trim().to_string();
            } else if k.eq_ignore_ascii_case("range") {
                range = v.trim().to_string();
            }
        }
    }
    let mut words = first.split(' ');
    let asked = Asked {
        method: words.next().unwrap_or("").to_string(),
        path: words.next().unwrap_or("").to_string(),
        auth,
        range,
        port,
    };
    log.lock().unwrap().push(asked.clone());
    let a = answer(&asked);
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        a.status,
        a.body.len()
    );
    for (k, v) in &a.headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    if matches!(a.sending, Sending::Mute) {
        std::thread::sleep(SILENCE);
        return;
    }
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let body = &a.body;
    let _ = match a.sending {
        Sending::Whole => conn.write_all(body),
        Sending::CutAfter(n) => conn.write_all(&body[..n.min(body.len())]),
        Sending::Trickle(pause) => body.iter().try_for_each(|b| {
            std::thread::sleep(pause);
            conn.write_all(&[*b])
        }),
        Sending::Mute => Ok(()),
        Sending::Stall(n) => {
            let sent = conn.write_all(&body[..n.min(body.len())]);
            std::thread::sleep(SILENCE);
            sent
        }
        Sending::HoldLast(barrier) => {
            let split = body.len().saturating_sub(1);
            let sent = conn.write_all(&body[..split]).and_then(|()| conn.flush());
            barrier.wait();
            sent.and_then(|()| conn.write_all(&body[split..]))
        }
    };
}

/// An image as a registry serves it: its layers, config and manifest, with their digests.
pub struct FakeImage {
    /// Each layer's tar.
    pub layers: Vec<Vec<u8>>,
    /// The config.
    pub config: Vec<u8>,
    /// The manifest.
    pub manifest: String,
    /// The manifest's media type.
    pub media_type: &'static str,
}

impl FakeImage {
    /// An image of one layer per `(name, body)` file (the name written raw, so a hostile one
    /// stays as given), its config running the first file, and a Docker schema 2 or OCI
    /// manifest naming them.
    pub fn of_files(files: &[(&[u8], &[u8])], oci: bool) -> Self {
        let layers: Vec<Vec<u8>> = files.iter().map(|(n, b)| one_file_tar(n, b)).collect();
        Self::of_layers(layers, files.first().map_or(&b""[..], |f| f.0), oci)
    }

    /// An image of these layer tars, its config running `/cmd`.
    pub fn of_layers(layers: Vec<Vec<u8>>, cmd: &[u8], oci: bool) -> Self {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| format!("\"{}\"", sha256(l)))
            .collect();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/{}"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            String::from_utf8_lossy(cmd),
            diff_ids.join(",")
        )
        .into_bytes();
        let (media_type, config_type, layer_type) = if oci {
            (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar",
            )
        } else {
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar",
            )
        };
        let entries: Vec<String> = layers
            .iter()
            .map(|l| {
                format!(
                    r#"{{"mediaType":"{layer_type}","digest":"{}","size":{}}}"#,
                    sha256(l),
                    l.len()
                )
            })
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"{config_type}","digest":"{}","size":{}}},"layers":[{}]}}"#,
            sha256(&config),
            config.len(),
            entries.join(",")
        );
        Self {
            layers,
            config,
            manifest,
            media_type,
        }
    }

    /// The config's digest.
    pub fn config_digest(&self) -> String {
        sha256(&self.config)
    }

    /// Each layer's digest.
    pub fn layer_digest(&self, i: usize) -> String {
        sha256(&self.layers[i])
    }

    /// What an honest registry answers for `repo` (tag `tag`): `/v2/`, the manifest, the
    /// config and the layers; none for other paths.
    pub fn answer(&self, repo: &str, tag: &str, path: &str) -> Option<Answer> {
        let path = path.split('?').next().unwrap_or("");
        if path == "/v2/" {
            return Some(Answer::new(200, ""));
        }
        if path == format!("/v2/{repo}/manifests/{tag}") {
            let a = Answer::new(200, self.manifest.clone());
            return Some(a.header("Content-Type", self.media_type));
        }
        let blob = path.strip_prefix(&format!("/v2/{repo}/blobs/"))?;
        if blob == self.config_digest() {
            return Some(Answer::new(200, self.config.clone()));
        }
        (0..self.layers.len())
            .find(|i| self.layer_digest(*i) == blob)
            .map(|i| Answer::new(200, self.layers[i].clone()))
    }
}

/// A tar of one regular file.
pub fn one_file_tar(name: &[u8], body: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    tar.append(&h, body).unwrap();
    tar.into_inner().unwrap()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}
