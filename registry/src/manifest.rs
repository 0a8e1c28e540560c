//! Manifests as registries serve them: Docker schema 2 and OCI image manifests, manifest
//! lists and OCI indexes with the platform each entry is for.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Docker schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Schema 1 (signed and unsigned), refused.
const SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// The largest manifest or index read (Docker's bound).
pub const MAX_MANIFEST: u64 = 4 << 20;

/// What a manifest request accepts.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// A pointer to content: its type, digest and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The content's media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// For an index entry: the platform it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An OS and CPU an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64` ...
    pub architecture: String,
    /// `v7`, `v8` ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl Platform {
    /// The platform of this machine, in Go's names.
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "aarch64" => ("arm64", ""),
            "x86" => ("386", ""),
            "arm" => ("arm", "v7"),
            "powerpc64" => ("ppc64le", ""),
            other => (other, ""),
        };
        Self {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.into(),
        }
    }

    /// Parses `--platform` as Docker does: `os/arch[/variant]`, or `os` or `arch` alone (the
    /// other the host's), with Go's other names for them (`x86_64`, `aarch64`, `armhf` ...).
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let host = Self::host();
        let (os, arch, variant) = match parts.as_slice() {
            [one] if ok(one) && KNOWN_OS.contains(&one.to_ascii_lowercase().as_str()) => {
                (*one, host.architecture.as_str(), host.variant.as_str())
            }
            [one] if ok(one) => (host.os.as_str(), *one, ""),
            [os, arch] if ok(os) && ok(arch) => (*os, *arch, ""),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => (*os, *arch, *variant),
            _ => {
                return Err(Error::Refused(format!(
                    "invalid platform {s:?}: use os/arch[/variant], for example linux/amd64"
                )))
            }
        };
        Ok(Self {
            os: os.to_ascii_lowercase(),
            architecture: arch.to_ascii_lowercase(),
            variant: variant.to_ascii_lowercase(),
        }
        .normalized())
    }

    /// The platform in containerd's canonical names: `amd64` for `x86_64`, `arm64` (no
    /// variant for `v8`) for `aarch64`, `arm/v7` for `armhf` and a bare `arm`, `386` for
    /// `i386`, `darwin` for `macos`.
    pub fn normalized(&self) -> Self {
        let os = match self.os.as_str() {
            "macos" => "darwin",
            os => os,
        };
        let (architecture, variant) = match (self.architecture.as_str(), self.variant.as_str()) {
            ("i386", v) => ("386", v.to_string()),
            ("x86_64" | "x86-64", v) => ("amd64", v.to_string()),
            ("aarch64" | "arm64", "v8" | "8") => ("arm64", String::new()),
            ("aarch64", v) => ("arm64", v.to_string()),
            ("armhf", _) | ("arm", "") => ("arm", "v7".to_string()),
            ("armel", _) => ("arm", "v6".to_string()),
            ("arm", v) if v.len() == 1 => ("arm", format!("v{v}")),
            (a, v) => (a, v.to_string()),
        };
        Self {
            os: os.into(),
            architecture: architecture.into(),
            variant,
        }
    }

    /// Whether an index entry for `other` runs here: same OS and architecture (in canonical
    /// names), and the variant when both name one.
    fn accepts(&self, other: &Platform) -> bool {
        let (me, them) = (self.normalized(), other.normalized());
        me.os == them.os
            && me.architecture == them.architecture
            && (me.variant.is_empty() || them.variant.is_empty() || me.variant == them.variant)
    }
}

/// Operating systems Go names (what `--platform linux` alone means).
const KNOWN_OS: [&str; 12] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "linux",
    "macos",
    "netbsd",
    "openbsd",
    "windows",
];

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// An image manifest: its config and layers, bottom first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// 2.
    pub schema_version: u32,
    /// Docker's or OCI's manifest type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The image config.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
}

/// A manifest list or index: one manifest per platform.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    /// The manifests.
    pub manifests: Vec<Descriptor>,
}

/// What a manifest request returned.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// An image.
    Image(ImageManifest),
    /// A choice of images by platform.
    Index(Index),
}

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Manifest {
    /// Parses a manifest by the media type the registry gave (or the document's own).
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            schema_version: u32,
            #[serde(default)]
            media_type: String,
            #[serde(default)]
            manifests: Option<serde_json::Value>,
        }
        let bad = |e: serde_json::Error| {
            Error::Refused(format!("the registry sent a malformed manifest: {e}"))
        };
        let probe: Probe = serde_json::from_slice(bytes).map_err(bad)?;
        let kind = match media_type.split(';').next().map(str::trim) {
            Some(t) if !t.is_empty() && t != "application/json" => t.to_string(),
            _ => probe.media_type.clone(),
        };
        if probe.schema_version == 1 || SCHEMA1.contains(&kind.as_str()) {
            return Err(Error::Refused(
                "this image is a schema 1 (Docker v2 schema 1) manifest, which netctl does not pull: push it again with a current docker or skopeo".into(),
            ));
        }
        match kind.as_str() {
            DOCKER_LIST | OCI_INDEX => {
                Ok(Manifest::Index(serde_json::from_slice(bytes).map_err(bad)?))
            }
            DOCKER_MANIFEST | OCI_MANIFEST => {
                Ok(Manifest::Image(serde_json::from_slice(bytes).map_err(bad)?))
            }
            "" if probe.manifests.is_some() => {
                Ok(Manifest::Index(serde_json::from_slice(bytes).map_err(bad)?))
            }
            "" => Ok(Manifest::Image(serde_json::from_slice(bytes).map_err(bad)?)),
            other => Err(Error::Refused(format!(
                "unsupported manifest media type {other:?}"
            ))),
        }
    }
}

impl Index {
    /// The entry for `platform`.
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor> {
        self.manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| platform.accepts(p)))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no matching manifest for {platform} in the manifest list entries"
                ))
            })
    }
}

impl Descriptor {
    /// How a layer with this media type is compressed.
    pub fn compression(&self) -> Result<Compression> {
        let t = self.media_type.as_str();
        if t == DOCKER_LAYER_GZIP || t.ends_with("tar+gzip") || t.ends_with("tar.gzip") {
            Ok(Compression::Gzip)
        } else if t.ends_with("tar+zstd") {
            Ok(Compression::Zstd)
        } else if t.ends_with(".tar") || t.ends_with("diff.tar") {
            Ok(Compression::None)
        } else {
            Err(Error::Refused(format!(
                "unsupported layer media type {t:?}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn an_index_picks_the_hosts_platform_and_refuses_others() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":2,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            digest('a'),
            digest('b')
        );
        let Manifest::Index(index) = Manifest::parse(OCI_INDEX, doc.as_bytes()).unwrap() else {
            panic!("not an index")
        };
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(index.select(&amd).unwrap().size, 2);
        assert_eq!(
            index
                .select(&Platform::parse("linux/arm64").unwrap())
                .unwrap()
                .size,
            1
        );
        for other_names in ["linux/x86_64", "LINUX/AMD64", "amd64", "linux/aarch64/v8"] {
            let p = Platform::parse(other_names).unwrap();
            assert!(index.select(&p).is_ok(), "{other_names}: {p}");
        }
        assert_eq!(
            Platform::parse("aarch64").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/armhf").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(Platform::parse("linux").unwrap(), Platform::host());
        assert!(Platform::parse("linux/").is_err() && Platform::parse("a/b/c/d").is_err());
        let err = index
            .select(&Platform::parse("linux/s390x").unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
    }

    #[test]
    fn schema1_and_unknown_types_are_refused() {
        let e = Manifest::parse("", br#"{"schemaVersion":1,"name":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        let e = Manifest::parse("text/html", b"{}").unwrap_err();
        assert!(
            e.to_string().contains("unsupported manifest media type"),
            "{e}"
        );
        assert!(Manifest::parse(DOCKER_MANIFEST, b"[").is_err());
    }

    #[test]
    fn layer_types_say_their_compression() {
        let d = |t: &str| Descriptor {
            media_type: t.into(),
            digest: Digest::sha256_of(b""),
            size: 0,
            platform: None,
        };
        assert_eq!(
            d(DOCKER_LAYER_GZIP).compression().unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            d("application/vnd.oci.image.layer.v1.tar+zstd")
                .compression()
                .unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            d("application/vnd.oci.image.layer.v1.tar")
                .compression()
                .unwrap(),
            Compression::None
        );
        assert!(d("application/x-foreign").compression().is_err());
    }
}
