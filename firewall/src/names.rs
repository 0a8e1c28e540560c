//! The typed values firewall scripts are built from. An interface name or a MAC address
//! comes from a conflist or a previous plugin's result; checked here, it can go into an
//! nft or iptables script without quoting tricks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::FirewallError;

/// A network interface name: 1-15 bytes of `[A-Za-z0-9_.-]` (no quotes, spaces, `/`, `%`
/// or wildcards, so it is one token in any script).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfName {
    type Err = FirewallError;

    fn from_str(s: &str) -> Result<Self, FirewallError> {
        let ok = !s.is_empty()
            && s.len() <= 15
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if ok {
            Ok(IfName(s.to_string()))
        } else {
            Err(FirewallError::BadValue(format!(
                "interface name {s:?}: use 1-15 of A-Z a-z 0-9 _ . -"
            )))
        }
    }
}

impl TryFrom<String> for IfName {
    type Error = FirewallError;

    fn try_from(s: String) -> Result<Self, FirewallError> {
        s.parse()
    }
}

impl From<IfName> for String {
    fn from(n: IfName) -> String {
        n.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A unicast MAC address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// The six bytes.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for MacAddr {
    type Err = FirewallError;

    fn from_str(s: &str) -> Result<Self, FirewallError> {
        let bad = || FirewallError::BadValue(format!("MAC address {s:?}: use aa:bb:cc:dd:ee:ff"));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl TryFrom<String> for MacAddr {
    type Error = FirewallError;

    fn try_from(s: String) -> Result<Self, FirewallError> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs_that_could_break_a_script_are_refused() {
        for bad in [
            "",
            "br\" drop",
            "a b",
            "eth%d",
            "br*",
            "1234567890123456",
            "x;y",
            "a/b",
        ] {
            assert!(bad.parse::<IfName>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "br-0123.7".parse::<IfName>().map(|n| n.to_string()).ok(),
            Some("br-0123.7".into())
        );
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "zz:42:ac:11:00:02",
            "02:42:ac:11:00:2",
            "02:42:ac:11:00:02\" }",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "02:42:AC:11:00:02"
                .parse::<MacAddr>()
                .map(|m| m.to_string())
                .ok(),
            Some("02:42:ac:11:00:02".into())
        );
        let from_json: Result<IfName, _> = serde_json::from_str("\"br-x\\\" accept\"");
        assert!(from_json.is_err(), "records are checked when read back too");
    }
}
