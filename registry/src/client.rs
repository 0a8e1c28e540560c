//! A client of one registry (the OCI distribution API, `/v2/`): HTTPS with the system's CAs
//! plus `certs.d/<host>/` as Docker reads it, plain HTTP only for insecure registries, the
//! `WWW-Authenticate` challenge (basic or bearer token) answered once per scope, a deadline
//! on every connect and read, and bounded answers.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ureq::http::{self, Method, Response, StatusCode};
use ureq::tls::{Certificate, ClientCert, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Body, SendBody};

use crate::blob::VerifiedBlob;
use crate::credentials::Credentials;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ACCEPT, MAX_MANIFEST};

/// How registries are reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Registries (`host[:port]`) that may answer plain HTTP or unverified HTTPS.
    pub insecure: Vec<String>,
    /// Docker's per-registry certificate folders (`/etc/docker/certs.d`).
    pub certs_dir: PathBuf,
    /// The system's CA bundle.
    pub ca_bundle: PathBuf,
    /// Docker Hub's mirrors (`registry-mirrors`): `http(s)://host[:port]`, asked in order
    /// before Docker Hub itself for pulls.
    pub mirrors: Vec<String>,
    /// The deadline of every request: to connect, for an answer's head, for a whole small
    /// answer (a manifest, a token, an error), for any one read, and the window over which a
    /// blob must arrive at [`crate::blob::MIN_RATE`] at least.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            mirrors: Vec::new(),
            certs_dir: PathBuf::from("/etc/docker/certs.d"),
            ca_bundle: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            timeout: Duration::from_secs(60),
        }
    }
}

impl Options {
    /// Whether `host` may be reached without verified TLS: named insecure, or on loopback
    /// (as Docker treats 127.0.0.0/8).
    fn is_insecure(&self, host: &str) -> bool {
        let name = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
            _ => host,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        self.insecure.iter().any(|i| i == host || i == name)
            || name == "localhost"
            || name == "::1"
            || name.starts_with("127.")
    }
}

/// Which challenge the registry answered `/v2/` with.
#[derive(Debug, Clone)]
enum Challenge {
    None,
    Basic,
    Bearer { realm: String, service: String },
}

/// A connection to one registry.
pub struct Registry {
    agent: Agent,
    base: String,
    credentials: Option<Credentials>,
    challenge: Challenge,
    tokens: Mutex<HashMap<String, String>>,
    deadline: Duration,
}

/// The most tags a repository's list may give (an all-tags pull).
pub const MAX_TAGS: usize = 10_000;
/// The most pages a tag list may come in.
const MAX_TAG_PAGES: usize = 1_000;

/// A request body: none, bytes (which can be sent again after a challenge), or a stream.
enum Payload<'a> {
    /// No body.
    Empty,
    /// Bytes.
    Bytes(&'a [u8]),
    /// A stream of a known length.
    Stream(&'a mut dyn Read, u64),
    /// A stream of unknown length, sent chunked.
    Chunked(&'a mut dyn Read),
}

impl Registry {
    /// Reaches the registry at `host` and learns how it wants to be authenticated (Docker's
    /// ping of `/v2/`): HTTPS first; plain HTTP when the registry is insecure.
    pub fn connect(
        options: &Options,
        host: &str,
        credentials: Option<Credentials>,
    ) -> Result<Self> {
        let insecure = options.is_insecure(host);
        let schemes: &[&str] = if insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        Self::open(options, host, schemes, insecure, credentials)
    }

    /// Reaches a mirror at its URL (`http://host:port` is plain HTTP, `https://` verified
    /// unless the host is insecure), as [`Registry::connect`] does.
    pub fn connect_mirror(
        options: &Options,
        url: &str,
        credentials: Option<Credentials>,
    ) -> Result<Self> {
        let (scheme, host) = mirror_parts(url)?;
        let insecure = scheme == "http" || options.is_insecure(host);
        Self::open(options, host, &[scheme], insecure, credentials)
    }

    /// Pings `/v2/` over the first scheme that answers.
    fn open(
        options: &Options,
        host: &str,
        schemes: &[&str],
        insecure: bool,
        credentials: Option<Credentials>,
    ) -> Result<Self> {
        let agent = agent(options, host, insecure)?;
        let mut last = None;
        for scheme in schemes {
            let base = format!("{scheme}://{host}");
            match agent.get(format!("{base}/v2/")).call() {
                Ok(resp) => {
                    let challenge = challenge_of(&resp)?;
                    return Ok(Self {
                        agent,
                        base,
                        credentials,
                        challenge,
                        tokens: Mutex::new(HashMap::new()),
                        deadline: options.timeout,
                    });
                }
                Err(e) => last = Some(unreachable(&format!("{base}/v2/"), e)),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unreachable(format!("cannot reach {host}"))))
    }

    /// Where this registry answers (`https://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Checks the credentials as `docker login` does: `/v2/` answers 200 with them.
    pub fn login(&self) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let fail = |status: StatusCode| {
            Error::Unauthorized(format!(
                "login attempt to {url} failed with status: {status}"
            ))
        };
        let resp = match &self.challenge {
            Challenge::None => return Ok(()),
            Challenge::Basic => self.request(Method::GET, &url, None, &[], Payload::Empty)?,
            Challenge::Bearer { .. } => {
                self.token("")?;
                return Ok(());
            }
        };
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(fail(s)),
        }
    }

    /// The manifest `reference` (a tag or digest) of `repo`: parsed, its bytes and their
    /// digest, checked against `reference` when that is a digest.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<(Manifest, Vec<u8>, Digest)> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let mut resp = self.checked(
            Method::GET,
            &url,
            repo,
            false,
            &[("Accept", ACCEPT)],
            Payload::Empty,
        )?;
        let media_type = header(&resp, "content-type");
        let bytes = read_bounded(&mut resp, MAX_MANIFEST, "manifest", self.deadline)?;
        let digest = Digest::sha256_of(&bytes);
        if let Ok(want) = Digest::parse(reference) {
            if want != digest {
                return Err(Error::Refused(format!(
                    "manifest verification failed for digest {want}: the registry sent content with digest {digest}"
                )));
            }
        }
        Ok((Manifest::parse(&media_type, &bytes)?, bytes, digest))
    }

    /// Every tag of `repo` (`GET /v2/<repo>/tags/list`, following the `Link` pages), at
    /// most [`MAX_TAGS`].
    pub fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = format!("{}/v2/{repo}/tags/list", self.base);
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let mut resp = self.checked(Method::GET, &url, repo, false, &[], Payload::Empty)?;
            let next = next_page(&header(&resp, "link"));
            let bytes = read_bounded(&mut resp, 4 << 20, "tag list", self.deadline)?;
            let page: Page = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Refused(format!("{url} answered no tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            if tags.len() > MAX_TAGS {
                return Err(Error::Refused(format!(
                    "{repo} has over {MAX_TAGS} tags: pull them by name"
                )));
            }
            match next {
                Some(n) => url = self.absolute(&n),
                None => return Ok(tags),
            }
        }
        Err(Error::Refused(format!(
            "{repo}'s tag list goes on past {MAX_TAG_PAGES} pages: refusing it"
        )))
    }

    /// A blob small enough to hold (an image config), verified.
    pub fn blob_bytes(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        bound: u64,
    ) -> Result<Vec<u8>> {
        if size > bound {
            return Err(Error::Refused(format!(
                "blob {digest} is {size} bytes, over the bound of {bound}"
            )));
        }
        let mut bytes = Vec::new();
        self.blob(repo, digest, size)?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Refused(e.to_string()))?;
        Ok(bytes)
    }

    /// A blob as a stream that fails (with `InvalidData`) when it runs past `size` or ends
    /// with another size or digest; a dropped connection is resumed with a `Range` request.
    pub fn blob(&self, repo: &str, digest: &Digest, size: u64) -> Result<VerifiedBlob<'_>> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let (at, repo) = (url.clone(), repo.to_string());
        let reopen = Box::new(move |from: u64| self.blob_from(&at, &repo, from));
        VerifiedBlob::open(reopen, digest.clone(), size, self.deadline).map_err(|e| {
            match e.into_inner().map(|b| b.downcast::<Error>()) {
                Some(Ok(e)) => *e,
                Some(Err(other)) => Error::Unreachable(other.to_string()),
                None => Error::Unreachable(format!("{url}: cannot be read")),
            }
        })
    }

    /// The blob at `url` from byte `from` on, and how many bytes before `from` the answer
    /// holds (all of them when the registry sends the whole blob instead of the range).
    fn blob_from(
        &self,
        url: &str,
        repo: &str,
        from: u64,
    ) -> io::Result<(Box<dyn Read + Send + '_>, u64)> {
        let range = format!("bytes={from}-");
        let headers: &[(&str, &str)] = if from == 0 { &[] } else { &[("Range", &range)] };
        let resp = self
            .checked(Method::GET, url, repo, false, headers, Payload::Empty)
            .map_err(io::Error::other)?;
        let skip = match resp.status().as_u16() {
            206 if content_range_start(&resp) == Some(from) => 0,
            206 => {
                return Err(io::Error::other(Error::Refused(format!(
                    "{url}: the registry answered bytes {from}- with another range"
                ))))
            }
            _ => from,
        };
        let body = Stalling {
            inner: resp.into_body().into_reader(),
            url: url.to_string(),
            deadline: self.deadline,
        };
        Ok((Box::new(body), skip))
    }

    /// Whether the repository has the blob.
    pub fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self.request(
            Method::HEAD,
            &url,
            Some(&push_scope(repo)),
            &[],
            Payload::Empty,
        )?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refusal(&url, resp)),
        }
    }

    /// Asks the registry to link a blob of another repository (`from`) into `repo`;
    /// whether it did (otherwise the blob must be uploaded).
    pub fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<bool> {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
            self.base
        );
        let resp = self.checked(
            Method::POST,
            &url,
            repo,
            true,
            &[("Content-Length", "0")],
            Payload::Empty,
        )?;
        if resp.status() == StatusCode::ACCEPTED {
            // An upload was started instead; leave it to expire on the registry.
            return Ok(false);
        }
        Ok(resp.status() == StatusCode::CREATED)
    }

    /// Uploads a blob in one request (start an upload, then PUT it whole).
    pub fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        body: &mut dyn Read,
        size: u64,
    ) -> Result<()> {
        let url = with_digest(self.start_upload(repo)?, digest);
        self.checked(
            Method::PUT,
            &url,
            repo,
            true,
            &[("Content-Type", "application/octet-stream")],
            Payload::Stream(body, size),
        )?;
        Ok(())
    }

    /// Uploads a blob whose digest is known only once it is all written: its bytes go in
    /// one chunked PATCH as they are made, then `digest` (called after the stream ended)
    /// closes the upload. When `digest` gives none (whoever made the bytes failed) the
    /// upload is left unfinished, for the registry to expire, and none is returned.
    pub fn upload_streaming(
        &self,
        repo: &str,
        body: &mut dyn Read,
        digest: impl FnOnce() -> Option<Digest>,
    ) -> Result<Option<Digest>> {
        let location = self.start_upload(repo)?;
        let resp = self.checked(
            Method::PATCH,
            &location,
            repo,
            true,
            &[("Content-Type", "application/octet-stream")],
            Payload::Chunked(body),
        )?;
        let location = self.location(&location, &resp)?;
        let Some(digest) = digest() else {
            return Ok(None);
        };
        let url = with_digest(location, &digest);
        self.checked(
            Method::PUT,
            &url,
            repo,
            true,
            &[("Content-Length", "0")],
            Payload::Empty,
        )?;
        Ok(Some(digest))
    }

    /// Starts a blob upload; the URL to send it to.
    fn start_upload(&self, repo: &str) -> Result<String> {
        let start = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let resp = self.checked(
            Method::POST,
            &start,
            repo,
            true,
            &[("Content-Length", "0")],
            Payload::Empty,
        )?;
        self.location(&start, &resp)
    }

    /// The upload's next URL, from the answer's `Location`.
    fn location(&self, url: &str, resp: &Response<Body>) -> Result<String> {
        match header(resp, "location") {
            l if l.is_empty() => Err(Error::Refused(format!(
                "{url} answered an upload step without a Location"
            ))),
            l => Ok(self.absolute(&l)),
        }
    }

    /// Puts a manifest under `reference` (a tag); the digest the registry files it under.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        self.checked(
            Method::PUT,
            &url,
            repo,
            true,
            &[("Content-Type", media_type)],
            Payload::Bytes(bytes),
        )?;
        Ok(Digest::sha256_of(bytes))
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.into()
        } else {
            format!("{}/{}", self.base, location.trim_start_matches('/'))
        }
    }

    /// A request under the repository's pull (or pull and push) scope; anything but success
    /// is an error.
    fn checked(
        &self,
        method: Method,
        url: &str,
        repo: &str,
        push: bool,
        headers: &[(&str, &str)],
        body: Payload,
    ) -> Result<Response<Body>> {
        let scope = if push {
            push_scope(repo)
        } else {
            format!("repository:{repo}:pull")
        };
        let resp = self.request(method, url, Some(&scope), headers, body)?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.refusal(url, resp))
        }
    }

    /// The error for an unsuccessful answer; Docker's words for a basic challenge answered
    /// without credentials.
    fn refusal(&self, url: &str, resp: Response<Body>) -> Error {
        if resp.status() == StatusCode::UNAUTHORIZED
            && matches!(self.challenge, Challenge::Basic)
            && self.credentials.is_none()
        {
            return Error::Unauthorized("no basic auth credentials".into());
        }
        status_error(url, resp)
    }

    /// Sends a request with the credentials the registry asked for, answering a 401 once.
    fn request(
        &self,
        method: Method,
        url: &str,
        scope: Option<&str>,
        headers: &[(&str, &str)],
        mut body: Payload,
    ) -> Result<Response<Body>> {
        let scope = scope.unwrap_or("");
        let mut fresh = false;
        loop {
            let auth = self.authorization(scope, fresh)?;
            let mut req = http::Request::builder().method(method.clone()).uri(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            let sent = match &mut body {
                Payload::Empty => req.body(SendBody::none()).map(|r| self.agent.run(r)),
                Payload::Bytes(b) => {
                    let mut bytes: &[u8] = b;
                    req.header("Content-Length", b.len().to_string())
                        .body(SendBody::from_reader(&mut bytes))
                        .map(|r| self.agent.run(r))
                }
                Payload::Stream(r, size) => req
                    .header("Content-Length", size.to_string())
                    .body(SendBody::from_reader(*r))
                    .map(|q| self.agent.run(q)),
                Payload::Chunked(r) => req
                    .body(SendBody::from_reader(*r))
                    .map(|q| self.agent.run(q)),
            };
            let resp = sent
                .map_err(|e| Error::Refused(format!("bad request to {url}: {e}")))?
                .map_err(|e| unreachable(url, e))?;
            let retry = resp.status() == StatusCode::UNAUTHORIZED
                && !fresh
                && !matches!(body, Payload::Stream(..) | Payload::Chunked(_))
                && !matches!(self.challenge, Challenge::None);
            if !retry {
                return Ok(resp);
            }
            fresh = true;
        }
    }

    /// The Authorization header for `scope`: basic credentials, or a bearer token fetched
    /// once per scope (again when `fresh`).
    fn authorization(&self, scope: &str, fresh: bool) -> Result<Option<String>> {
        match &self.challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self.credentials.as_ref().map(basic)),
            Challenge::Bearer { .. } => {
                let cached = self.tokens.lock().ok().and_then(|t| t.get(scope).cloned());
                match cached {
                    Some(t) if !fresh => Ok(Some(format!("Bearer {t}"))),
                    _ => self.token(scope).map(|t| Some(format!("Bearer {t}"))),
                }
            }
        }
    }

    /// Fetches a bearer token for `scope` from the challenge's realm.
    fn token(&self, scope: &str) -> Result<String> {
        let Challenge::Bearer { realm, service } = &self.challenge else {
            return Ok(String::new());
        };
        let mut req = self.agent.get(realm).query("service", service);
        if !scope.is_empty() {
            req = req.query("scope", scope);
        }
        if let Some(c) = &self.credentials {
            req = req
                .query("account", &c.username)
                .header("Authorization", basic(c));
        }
        let mut resp = req.call().map_err(|e| unreachable(realm, e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized(format!(
                "login attempt to {}/v2/ failed with status: 401 Unauthorized",
                self.base
            )));
        }
        if !resp.status().is_success() {
            return Err(status_error(realm, resp));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let bytes = read_bounded(&mut resp, 1 << 20, "token", self.deadline)?;
        let t: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Refused(format!("the token server {realm} answered: {e}")))?;
        let token = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if token.is_empty() {
            return Err(Error::Refused(format!(
                "the token server {realm} gave no token"
            )));
        }
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(scope.to_string(), token.clone());
        }
        Ok(token)
    }
}

/// An upload URL with the `digest` that closes it.
fn with_digest(mut url: String, digest: &Digest) -> String {
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&format!("digest={digest}"));
    url
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn header(resp: &Response<Body>, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Reads a whole answer of at most `bound` bytes that arrives within `deadline`.
fn read_bounded(
    resp: &mut Response<Body>,
    bound: u64,
    what: &str,
    deadline: Duration,
) -> Result<Vec<u8>> {
    let until = Instant::now() + deadline;
    let mut reader = resp.body_mut().with_config().limit(bound).reader();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        let n = reader
            .read(&mut chunk)
            .map_err(|e| match ureq::Error::from(e) {
                ureq::Error::BodyExceedsLimit(_) => Error::Refused(format!(
                    "the registry's {what} is over the bound of {bound} bytes"
                )),
                e => Error::Unreachable(format!("reading the registry's {what}: {e}")),
            })?;
        bytes.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if n == 0 {
            return Ok(bytes);
        }
        if Instant::now() > until {
            return Err(Error::Unreachable(format!(
                "the registry's {what} did not arrive within {} s ({} bytes came): giving up",
                deadline.as_secs(),
                bytes.len()
            )));
        }
    }
}

/// A blob's body whose stall (nothing for a whole deadline) is a `TimedOut` error that says
/// so.
struct Stalling<R> {
    inner: R,
    url: String,
    deadline: Duration,
}

impl<R: Read> Read for Stalling<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| match ureq::Error::from(e) {
                ureq::Error::Timeout(_) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{}: the registry sent nothing for {} s: timed out",
                        self.url,
                        self.deadline.as_secs()
                    ),
                ),
                e => e.into_io(),
            })
    }
}

/// A mirror URL's scheme and host; Docker's rules: `http` or `https`, no user, path or query.
pub fn mirror_parts(url: &str) -> Result<(&'static str, &str)> {
    let bad = |why: &str| {
        Error::Refused(format!(
            "invalid registry mirror {url:?}: {why}; use http(s)://host[:port]"
        ))
    };
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = url.strip_prefix("http://") {
        ("http", r)
    } else {
        return Err(bad("it must start with http:// or https://"));
    };
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(bad("it may name a host and port only"));
    }
    Ok((scheme, host))
}

/// The URL of a `Link: <URL>; rel="next"` header, if any.
fn next_page(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// Where a `206` answer's `Content-Range: bytes START-END/TOTAL` starts.
fn content_range_start(resp: &Response<Body>) -> Option<u64> {
    let value = header(resp, "content-range");
    let range = value.strip_prefix("bytes ")?;
    range.split_once('-')?.0.trim().parse().ok()
}

/// The challenge of a `/v2/` answer: none for 200, else what `WWW-Authenticate` asks.
fn challenge_of(resp: &Response<Body>) -> Result<Challenge> {
    if resp.status() != StatusCode::UNAUTHORIZED {
        return Ok(Challenge::None);
    }
    let value = header(resp, "www-authenticate");
    let (scheme, params) = value.split_once(' ').unwrap_or((value.as_str(), ""));
    let params = parse_params(params);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Ok(Challenge::Basic),
        "bearer" => {
            let realm = params.get("realm").cloned().unwrap_or_default();
            if !(realm.starts_with("https://") || realm.starts_with("http://")) {
                return Err(Error::Refused(format!(
                    "the registry's token realm {realm:?} is not an http(s) URL"
                )));
            }
            Ok(Challenge::Bearer {
                realm,
                service: params.get("service").cloned().unwrap_or_default(),
            })
        }
        _ => Err(Error::Refused(format!(
            "the registry asks for an unsupported authentication: {value:?}"
        ))),
    }
}

/// `key="value", key=value` (quoted strings with backslash escapes).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

/// How long an error answer's body may take (it only adds words to the error).
const ERROR_DEADLINE: Duration = Duration::from_secs(10);

/// A registry's error answer in Docker's words (`manifest unknown: manifest unknown`).
fn status_error(url: &str, mut resp: Response<Body>) -> Error {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = resp.status();
    let text = read_bounded(&mut resp, 64 << 10, "error", ERROR_DEADLINE)
        .ok()
        .and_then(|b| serde_json::from_slice::<Errors>(&b).ok())
        .map(|e| {
            e.errors
                .iter()
                .map(|x| format!("{}: {}", x.code.to_lowercase().replace('_', " "), x.message))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| match status.as_u16() {
            401 => "unauthorized: authentication required".into(),
            _ => format!("{url}: {status}"),
        });
    match status.as_u16() {
        401 | 403 => Error::Unauthorized(text),
        404 => Error::NotFound(text),
        _ => Error::Refused(text),
    }
}

fn unreachable(url: &str, e: ureq::Error) -> Error {
    match e {
        ureq::Error::TooManyRedirects => Error::Refused(format!("{url}: too many redirects")),
        ureq::Error::Timeout(t) => Error::Unreachable(format!("{url}: timed out ({t})")),
        e => Error::Unreachable(format!("Get {url:?}: {e}")),
    }
}

/// The HTTP agent for `host`: its TLS roots and client certificate, deadlines, bounded
/// redirects that drop credentials.
fn agent(options: &Options, host: &str, insecure: bool) -> Result<Agent> {
    let dir = options.certs_dir.join(host);
    let mut roots = read_certs(&options.ca_bundle).unwrap_or_default();
    let (extra, client) = certs_d(&dir)?;
    roots.extend(extra);
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::from(roots))
        .client_cert(client)
        .disable_verification(insecure)
        .build();
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(10)
        .max_redirects_will_error(true)
        .tls_config(tls)
        .timeout_connect(Some(options.timeout))
        .timeout_recv_response(Some(options.timeout))
        .timeout_per_read(Some(options.timeout))
        .timeout_per_write(Some(options.timeout))
        .timeout_send_body(None)
        .user_agent(concat!("netctl/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(Agent::new_with_config(config))
}

fn read_certs(path: &Path) -> Option<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path).ok()?;
    Some(
        ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect(),
    )
}

/// Docker's `certs.d/<host>`: `*.crt` are CAs, `X.cert` with `X.key` a client certificate.
fn certs_d(dir: &Path) -> Result<(Vec<Certificate<'static>>, Option<ClientCert>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok((Vec::new(), None));
    };
    let mut cas = Vec::new();
    let mut client = None;
    for entry in entries.flatten() {
        let path = entry.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => cas.extend(read_certs(&path).unwrap_or_default()),
            Some("cert") => {
                let key_path = path.with_extension("key");
                let bad = |why: String| {
                    Error::Refused(format!("client certificate {}: {why}", path.display()))
                };
                let chain = read_certs(&path).ok_or_else(|| bad("cannot be read".into()))?;
                let key_pem = std::fs::read(&key_path)
                    .map_err(|e| bad(format!("missing key {}: {e}", key_path.display())))?;
                let key =
                    ureq::tls::PrivateKey::from_pem(&key_pem).map_err(|e| bad(e.to_string()))?;
                client = Some(ClientCert::new_with_certs(&chain, key));
            }
            _ => {}
        }
    }
    Ok((cas, client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_quoted_and_bare_values() {
        let p = parse_params(
            r#"realm="https://auth.example/token",service="reg \"x\"", scope=repository:a:pull"#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "reg \"x\"");
        assert_eq!(p["scope"], "repository:a:pull");
        assert!(parse_params("").is_empty());
        assert!(parse_params("=,,=\"").len() <= 1);
    }

    #[test]
    fn mirrors_are_urls_of_a_host() {
        assert_eq!(
            mirror_parts("https://mirror.example:5000/").unwrap(),
            ("https", "mirror.example:5000")
        );
        assert_eq!(
            mirror_parts("http://10.0.0.1").unwrap(),
            ("http", "10.0.0.1")
        );
        for bad in [
            "mirror.example",
            "ftp://m",
            "https://m/v2/",
            "https://u@m",
            "https://",
        ] {
            assert!(mirror_parts(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_list_pages_follow_the_next_link() {
        assert_eq!(
            next_page(r#"</v2/web/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/web/tags/list?n=2&last=b")
        );
        assert_eq!(next_page(r#"<https://r/x>; rel="prev""#), None);
        assert_eq!(next_page(""), None);
    }

    #[test]
    fn loopback_and_named_registries_are_insecure() {
        let o = Options {
            insecure: vec!["reg.example:5000".into(), "plain.example".into()],
            ..Options::default()
        };
        for h in [
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "reg.example:5000",
            "plain.example:443",
        ] {
            assert!(o.is_insecure(h), "{h}");
        }
        assert!(!o.is_insecure("reg.example:5001"));
        assert!(!o.is_insecure("secure.example"));
    }
}
