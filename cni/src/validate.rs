//! Checks on names that end up in paths and kernel calls, so that no input can make a
//! plugin touch anything outside its own state.

use crate::error::{Error, ErrorCode};

/// The longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// The longest name of a network, container or volume: each becomes a file or folder name
/// (255 bytes at most on Linux) with a suffix.
pub const MAX_NAME_LEN: usize = 128;

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, the spec's pattern for IDs and network names, at most
/// [`MAX_NAME_LEN`] characters.
fn is_cni_name(s: &str) -> bool {
    if s.len() > MAX_NAME_LEN {
        return false;
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Docker's rule for the names of containers, networks, volumes (and netctl's cluster
/// hosts): `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, two characters at least. What the CLI accepts, and
/// what the overlay agent accepts from etcd before a name becomes a file or a link.
pub fn is_object_name(name: &str) -> bool {
    name.len() > 1 && is_cni_name(name)
}

/// Checks `CNI_CONTAINERID`: present, and only `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn container_id(id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::new(
            ErrorCode::UnknownContainer,
            "missing container ID (CNI_CONTAINERID)",
        ));
    }
    if !is_cni_name(id) {
        return Err(
            Error::invalid_env("invalid container ID (CNI_CONTAINERID)").with_details(format!(
            "{id:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]* and be at most {MAX_NAME_LEN} characters"
        )),
        );
    }
    Ok(())
}

/// Checks a network name: present, and only `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn network_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid_config("missing network name (\"name\")"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid_config(format!(
            "network name longer than {MAX_NAME_LEN} characters"
        )));
    }
    if !is_cni_name(name) {
        return Err(Error::invalid_config("invalid characters in network name")
            .with_details(format!("{name:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")));
    }
    Ok(())
}

/// Checks an interface name (`CNI_IFNAME`, a bridge): 1 to 15 bytes, not `.` or `..`, no
/// `/`, `:`, `%` or white space. The kernel expands `%d` in a new link's name to a free
/// number, so a name with `%` would not be the name the plugin later looks for.
pub fn ifname(name: &str) -> Result<(), Error> {
    let why = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_IFNAME_LEN {
        Some("is longer than 15 characters")
    } else if name == "." || name == ".." {
        Some("may not be . or ..")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '%' || c.is_whitespace())
    {
        Some("may not contain '/', ':', '%' or white space")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::invalid_env(format!(
            "interface name (CNI_IFNAME) {name:?} {why}"
        ))),
        None => Ok(()),
    }
}

/// Checks a plugin type before it is looked up in `CNI_PATH`: a plain file name.
pub fn plugin_type(ty: &str) -> Result<(), Error> {
    if ty.is_empty() || ty.contains('/') || ty == "." || ty == ".." {
        return Err(Error::invalid_config(format!(
            "invalid plugin type {ty:?}: it must be the plain name of a plugin binary"
        )));
    }
    Ok(())
}

/// The first 12 characters of an ID (Docker's short ID); all of a shorter one.
pub fn short_id(id: &str) -> &str {
    let end = id.char_indices().nth(12).map_or(id.len(), |(i, _)| i);
    &id[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_that_could_escape_a_path_are_rejected() {
        assert!(container_id("abc123").is_ok());
        assert!(container_id("a_b.c-d").is_ok());
        for bad in ["../x", "a/b", "-abc", ".hidden", "a b", "a\0b"] {
            assert_eq!(
                container_id(bad).unwrap_err().code,
                ErrorCode::InvalidEnvironment,
                "{bad:?}"
            );
        }
        assert_eq!(
            container_id("").unwrap_err().code,
            ErrorCode::UnknownContainer
        );
    }

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        assert!(ifname("eth0").is_ok());
        assert!(ifname("a23456789012345").is_ok());
        for bad in [
            "",
            "a234567890123456",
            ".",
            "..",
            "e/0",
            "e:0",
            "e 0",
            "eth%d",
        ] {
            assert!(ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn network_names_and_plugin_types_are_plain_names() {
        assert!(network_name("my-net.1").is_ok());
        assert!(network_name("../net").is_err());
        assert!(network_name(&"n".repeat(MAX_NAME_LEN)).is_ok());
        assert!(network_name(&"n".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(!is_object_name(&"n".repeat(MAX_NAME_LEN + 1)));
        assert!(network_name("").is_err());
        assert!(plugin_type("netctl-bridge").is_ok());
        assert!(plugin_type("../sh").is_err());
    }
}
