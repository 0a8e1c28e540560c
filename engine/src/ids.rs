//! IDs and names: random and derived 64-hex IDs, Docker's short IDs and name rule, random
//! `adjective_noun` names, and the one lookup of an object by name or ID prefix that every
//! store uses, so "no such" and "ambiguous" read the same for containers, images, volumes
//! and networks.

use std::io::Read;

use crate::error::{Context, Error, Kind, Result};

/// 64 random hex characters.
pub fn random_id() -> Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .ctx(|| "read /dev/urandom".into())?;
    Ok(hex(&b))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stable 64-hex ID derived from a key: for conflists netctl did not write (their name)
/// and for endpoints (network, container and interface).
pub fn derived_id(key: &str) -> String {
    (0..4u64)
        .map(|i| format!("{:016x}", netctl_net::fnv1a64(&format!("{i}/{key}"))))
        .collect()
}

pub use netctl_cni::validate::short_id;

/// Docker's rule for container and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    netctl_cni::validate::is_object_name(name)
}

/// Refuses a name that breaks [`valid_name`], in Docker's words.
pub fn check_name(kind: Kind, name: &str) -> Result<()> {
    if valid_name(name) {
        return Ok(());
    }
    let most = netctl_cni::validate::MAX_NAME_LEN;
    if name.len() > most {
        return Err(Error::Invalid(format!(
            "Invalid {kind} name: longer than {most} characters"
        )));
    }
    Err(Error::Invalid(format!(
        "Invalid {kind} name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )))
}

const ADJECTIVES: [&str; 24] = [
    "admiring", "bold", "brave", "clever", "cool", "eager", "elegant", "focused", "gallant",
    "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky", "relaxed", "serene", "sharp",
    "stoic", "tender", "vibrant", "wizardly", "zealous",
];
const NOUNS: [&str; 24] = [
    "babbage", "bell", "cerf", "curie", "dijkstra", "euler", "feynman", "gauss", "hopper",
    "kepler", "knuth", "lamport", "lovelace", "mayer", "noether", "pike", "ritchie", "shannon",
    "thompson", "torvalds", "turing", "volta", "wozniak", "yalow",
];

/// A random `adjective_noun`, with a number when that is taken.
pub fn random_name(taken: &[String]) -> Result<String> {
    let id = random_id()?;
    let n = u64::from_str_radix(short_id(&id), 16).unwrap_or(0) as usize;
    let base = format!("{}_{}", ADJECTIVES[n % 24], NOUNS[(n / 24) % 24]);
    Ok((0..)
        .map(|i| {
            if i == 0 {
                base.clone()
            } else {
                format!("{base}{i}")
            }
        })
        .find(|c| !taken.contains(c))
        .unwrap_or(base))
}

/// The one object of `all` that `key` names: by its name or full ID, else by a unique
/// prefix of its ID (at least `min_prefix` characters).
pub fn resolve<T>(
    kind: Kind,
    key: &str,
    all: Vec<T>,
    min_prefix: usize,
    name_and_id: impl Fn(&T) -> (&str, &str),
) -> Result<T> {
    let not_found = || Error::NotFound {
        kind,
        key: key.to_string(),
    };
    let mut prefixed = Vec::new();
    for item in all {
        let (name, id) = name_and_id(&item);
        if name == key || id == key {
            return Ok(item);
        }
        if key.len() >= min_prefix.max(1) && id.starts_with(key) {
            prefixed.push(item);
        }
    }
    let count = prefixed.len();
    match count {
        0 => Err(not_found()),
        1 => prefixed.pop().ok_or_else(not_found),
        _ => Err(Error::Ambiguous {
            kind,
            key: key.to_string(),
            count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rules() {
        assert!(valid_name("web-1.a_b") && valid_name("ab"));
        for bad in ["-web", "", "a b", "a", "_x"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let n = random_name(&[]).unwrap();
        assert!(n.contains('_') && valid_name(&n));
        assert!(check_name(Kind::Container, "a")
            .unwrap_err()
            .to_string()
            .contains("Invalid container name (a)"));
    }

    #[test]
    fn short_ids_never_panic() {
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id(""), "");
        assert_eq!(short_id("ééééééééééééé"), "éééééééééééé");
    }

    #[test]
    fn derived_ids_are_64_hex_and_stable() {
        let a = derived_id("web");
        assert_eq!(a.len(), 64);
        assert_eq!(a, derived_id("web"));
        assert_ne!(a, derived_id("web2"));
    }

    #[test]
    fn lookups_take_names_full_ids_and_unique_prefixes() {
        let all = || vec![("web", "abc123"), ("db", "abd456"), ("abc", "ff0000")];
        fn f<'a>(t: &'a (&'static str, &'static str)) -> (&'a str, &'a str) {
            (t.0, t.1)
        }
        assert_eq!(
            resolve(Kind::Container, "web", all(), 1, f).unwrap().0,
            "web"
        );
        assert_eq!(
            resolve(Kind::Container, "abc", all(), 1, f).unwrap().0,
            "abc",
            "a name wins over a prefix"
        );
        assert_eq!(
            resolve(Kind::Container, "abd", all(), 1, f).unwrap().0,
            "db"
        );
        let e = resolve(Kind::Network, "ab", all(), 1, f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "network ID prefix \"ab\" is ambiguous: 2 match; give more characters"
        );
        let e = resolve(Kind::Volume, "zz", all(), 1, f).unwrap_err();
        assert_eq!(e.to_string(), "No such volume: zz");
        assert!(
            resolve(Kind::Image, "ab", all(), 3, f).is_err(),
            "too short a prefix"
        );
    }
}
