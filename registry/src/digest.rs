//! Content digests (`sha256:<hex>`) and a hasher that checks one while bytes stream.

use std::fmt;

use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::error::{Error, Result};

/// The hash functions registries name blobs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256, what every registry uses.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl PartialOrd for Algorithm {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Algorithm {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl Digest {
    /// Parses `algorithm:hex`.
    pub fn parse(s: &str) -> Result<Self> {
        Self::checked(s).map_err(|why| Error::Digest(why.into()))
    }

    /// go-digest's checks, in its order and words.
    fn checked(s: &str) -> std::result::Result<Self, &'static str> {
        const FORMAT: &str = "invalid checksum digest format";
        let (alg, hex) = match s.split_once(':') {
            Some((a, h)) if !a.is_empty() && !h.is_empty() => (a, h),
            _ => return Err(FORMAT),
        };
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ if well_formed(alg, hex) => return Err("unsupported digest algorithm"),
            _ => return Err(FORMAT),
        };
        if hex.len() != algorithm.hex_len() {
            return Err("invalid checksum digest length");
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(FORMAT);
        }
        Ok(Self {
            algorithm,
            hex: hex.into(),
        })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        let mut v = Verifier::new(Algorithm::Sha256);
        v.update(bytes);
        v.finish()
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The hash function.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// go-digest's grammar: `[a-z0-9]+([.+_-][a-z0-9]+)*` then `[a-zA-Z0-9=_-]+`.
fn well_formed(alg: &str, encoded: &str) -> bool {
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    alg.split(['.', '+', '_', '-']).all(component)
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

/// Hashes bytes as they pass, to compare with the digest they were asked by.
pub enum Verifier {
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-384.
    Sha384(Sha384),
    /// SHA-512.
    Sha512(Sha512),
}

impl Verifier {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Verifier::Sha256(Sha256::new()),
            Algorithm::Sha384 => Verifier::Sha384(Sha384::new()),
            Algorithm::Sha512 => Verifier::Sha512(Sha512::new()),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Verifier::Sha256(h) => h.update(bytes),
            Verifier::Sha384(h) => h.update(bytes),
            Verifier::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self {
            Verifier::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Verifier::Sha384(h) => (Algorithm::Sha384, h.finalize().to_vec()),
            Verifier::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Digest {
            algorithm,
            hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_only_with_the_right_length() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let err = |s: &str| Digest::parse(s).unwrap_err().to_string();
        let upper = d.to_string().to_uppercase().replacen("SHA", "sha", 1);
        assert_eq!(err(&upper), "invalid checksum digest format");
        assert_eq!(err("sha256:abc"), "invalid checksum digest length");
        assert_eq!(
            err("md5:d41d8cd98f00b204e9800998ecf8427e"),
            "unsupported digest algorithm"
        );
        assert_eq!(err("MD5:d41d8"), "invalid checksum digest format");
        assert_eq!(err("sha256"), "invalid checksum digest format");
        assert!(Digest::parse(&format!("sha512:{}", "a".repeat(128))).is_ok());
        assert!(Digest::parse(&format!("sha384:{}", "a".repeat(96))).is_ok());
    }
}
