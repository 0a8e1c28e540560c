//! Image references as Docker reads them (`[registry[:port]/]repository[:tag][@digest]`): no
//! registry means Docker Hub, an official image there is `library/NAME`, and the same
//! errors as Docker's for names it refuses.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Docker Hub's name in references.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Where Docker Hub's registry API answers.
const DEFAULT_REGISTRY_HOST: &str = "registry-1.docker.io";
/// The longest repository name (domain and path).
const MAX_NAME: usize = 255;
/// The longest tag.
const MAX_TAG: usize = 128;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn bad(why: &str) -> Error {
    Error::Reference(if why.is_empty() {
        "invalid reference format".into()
    } else {
        format!("invalid reference format: {why}")
    })
}

impl Reference {
    /// Parses a reference the way `docker pull` does (Docker's `ParseNormalizedNamed`).
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::Reference(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (domain, rest) = split_domain(s);
        // Docker checks the name up to the first ':' (tags may have capitals).
        let name = rest.split(':').next().unwrap_or_default();
        if name.to_lowercase() != name {
            return Err(bad("repository name must be lowercase"));
        }
        let (name_tag, digest) = match rest.as_str().split_once('@') {
            Some((n, d)) if digest_grammar(d) => (n, Some(d)),
            Some(_) => return Err(bad("")),
            None => (rest.as_str(), None),
        };
        let (path, tag) = match name_tag.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, Some(t)),
            _ => (name_tag, None),
        };
        if !valid_domain(&domain) || !path.split('/').all(valid_component) {
            return Err(bad(""));
        }
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(""));
            }
        }
        if domain.len() + 1 + path.len() > MAX_NAME {
            return Err(Error::Reference(format!(
                "repository name must not be more than {MAX_NAME} characters"
            )));
        }
        Ok(Self {
            domain,
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(Digest::parse).transpose()?,
        })
    }

    /// The reference with `latest` as its tag when it names neither a tag nor a digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".into());
        }
        self
    }

    /// `docker.io`, `registry.example:5000`, `[::1]:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside its registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if it names one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if it names one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The host and port the registry API answers at.
    pub fn registry_host(&self) -> &str {
        registry_host(&self.domain)
    }

    /// The repository as Docker shows it: `busybox`, `alice/web`, `registry.example:5000/web`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return format!("{}/{}", self.domain, self.path);
        }
        match self.path.strip_prefix("library/") {
            Some(name) if !name.contains('/') => name.to_string(),
            _ => self.path.clone(),
        }
    }

    /// The whole reference as Docker shows it (`busybox:latest`, `web@sha256:...`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// What the registry API calls the manifest: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified reference (`docker.io/library/busybox:latest`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The host and port the registry API of `domain` answers at (Docker Hub's differs).
pub fn registry_host(domain: &str) -> &str {
    if domain == DEFAULT_DOMAIN {
        DEFAULT_REGISTRY_HOST
    } else {
        domain
    }
}

/// Docker's `splitDockerDomain`: the part before the first `/` is a registry when it has a
/// `.` or `:`, is `localhost`, or has capitals; official images get `library/`.
fn split_domain(s: &str) -> (String, String) {
    let (domain, rest) = match s.split_once('/') {
        Some((d, r)) if d.contains(['.', ':']) || d == "localhost" || d.to_lowercase() != d => {
            (d, r)
        }
        _ => (DEFAULT_DOMAIN, s),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    if domain == DEFAULT_DOMAIN && !rest.contains('/') {
        return (domain.to_string(), format!("library/{rest}"));
    }
    (domain.to_string(), rest.to_string())
}

/// `host[:port]` with DNS-label hosts, or `[ipv6][:port]`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(p) => ("", Some(p)),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    port_ok && (d.starts_with('[') || host.split('.').all(label))
}

/// A path component: lowercase letters and digits, joined by one `.`, one or two `_`, or
/// any number of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !b.last().is_some_and(|&x| alnum(x)) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// The reference grammar's digest: `[A-Za-z][A-Za-z0-9]*` components joined by one of
/// `-_+.`, a `:`, then at least 32 hex digits (go-digest then checks the value).
fn digest_grammar(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let component = |c: &str| {
        c.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    alg.split(['-', '_', '+', '.']).all(component)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    t.len() <= MAX_TAG
        && t.bytes().next().is_some_and(word)
        && t.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => r.to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_without_registry_are_docker_hub_and_official_images_are_library() {
        assert_eq!(full("busybox"), "docker.io/library/busybox");
        assert_eq!(
            full("kwj1270/imagename:1.0.1"),
            "docker.io/kwj1270/imagename:1.0.1"
        );
        assert_eq!(
            full("index.docker.io/busybox:1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(
            full("docker.io/library/busybox"),
            "docker.io/library/busybox"
        );
    }

    #[test]
    fn registries_are_recognised_by_a_dot_a_port_or_localhost() {
        assert_eq!(full("localhost/web"), "localhost/web");
        assert_eq!(
            full("localhost:5000/team/web:1.2"),
            "localhost:5000/team/web:1.2"
        );
        assert_eq!(full("registry.example/web"), "registry.example/web");
        assert_eq!(full("[::1]:5000/web:v1"), "[::1]:5000/web:v1");
        // Without a slash the port is a tag, as Docker reads it.
        assert_eq!(full("localhost:5000"), "docker.io/library/localhost:5000");
    }

    #[test]
    fn familiar_forms_drop_docker_hub_and_library() {
        let r = Reference::parse("docker.io/library/busybox")
            .unwrap()
            .with_default_tag();
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse("alice/web:2").unwrap();
        assert_eq!(r.familiar(), "alice/web:2");
        let r = Reference::parse("reg.example:5000/library/web").unwrap();
        assert_eq!(r.familiar(), "reg.example:5000/library/web");
        assert_eq!(r.registry_host(), "reg.example:5000");
        assert_eq!(
            Reference::parse("busybox").unwrap().registry_host(),
            DEFAULT_REGISTRY_HOST
        );
    }

    #[test]
    fn digests_and_tags_are_kept_apart() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("web:1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(r.familiar(), format!("web:1@{d}"));
        assert_eq!(
            Reference::parse("web").unwrap().with_default_tag().tag(),
            Some("latest")
        );
        assert_eq!(
            Reference::parse(&format!("web@{d}"))
                .unwrap()
                .with_default_tag()
                .tag(),
            None
        );
    }

    #[test]
    fn bad_references_get_dockers_errors() {
        assert_eq!(
            full("Busybox"),
            "invalid reference format: repository name must be lowercase"
        );
        assert_eq!(full("a b"), "invalid reference format");
        assert_eq!(full(""), "invalid reference format");
        assert_eq!(full("web:"), "invalid reference format");
        assert_eq!(full("web@sha256:12"), "invalid reference format");
        assert_eq!(full("-web"), "invalid reference format");
        assert_eq!(full("web..x"), "invalid reference format");
        assert_eq!(full("reg-.example/web"), "invalid reference format");
        assert_eq!(
            full(&format!("web:{}", "t".repeat(129))),
            "invalid reference format"
        );
        assert_eq!(
            full(&"a".repeat(300)),
            "repository name must not be more than 255 characters"
        );
        assert_eq!(full("x/y:Tag_1.0-X"), "docker.io/x/y:Tag_1.0-X");
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(
            full(&hex),
            format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings")
        );
    }

    #[test]
    fn separators_follow_dockers_grammar() {
        for ok in ["a.b", "a_b", "a__b", "a---b", "a/b/c", "x9"] {
            assert!(Reference::parse(ok).is_ok(), "{ok}");
        }
        for no in ["a___b", "a._b", "a/", "/a", "a//b", "a.", "_a"] {
            assert!(Reference::parse(no).is_err(), "{no}");
        }
    }
}
