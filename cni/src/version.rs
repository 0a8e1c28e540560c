//! Spec versions and what each one allows.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorCode};

/// A CNI specification version this crate can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecVersion {
    /// 0.3.0
    V0_3_0,
    /// 0.3.1
    V0_3_1,
    /// 0.4.0: adds CHECK and `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: drops `version` from ips.
    V1_0_0,
    /// 1.1.0: adds GC, STATUS and the extra interface and route fields.
    V1_1_0,
}

impl SpecVersion {
    /// Every supported version, oldest first.
    pub const ALL: [SpecVersion; 5] = [
        SpecVersion::V0_3_0,
        SpecVersion::V0_3_1,
        SpecVersion::V0_4_0,
        SpecVersion::V1_0_0,
        SpecVersion::V1_1_0,
    ];

    /// The newest version, the one used when nothing else is asked for.
    pub const LATEST: SpecVersion = SpecVersion::V1_1_0;

    /// The version as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_3_0 => "0.3.0",
            SpecVersion::V0_3_1 => "0.3.1",
            SpecVersion::V0_4_0 => "0.4.0",
            SpecVersion::V1_0_0 => "1.0.0",
            SpecVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Whether CHECK exists in this version.
    pub fn has_check(self) -> bool {
        self >= SpecVersion::V0_4_0
    }

    /// Whether GC and STATUS exist in this version.
    pub fn has_gc_and_status(self) -> bool {
        self >= SpecVersion::V1_1_0
    }

    /// Whether each ips entry carries a `version` field ("4" or "6").
    pub fn ips_carry_version(self) -> bool {
        self < SpecVersion::V1_0_0
    }

    /// Whether interfaces and routes may carry the 1.1.0 fields (mtu, socketPath, table ...).
    pub fn has_extended_fields(self) -> bool {
        self >= SpecVersion::V1_1_0
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SpecVersion {
    type Err = Error;

    /// Parses a version; anything unsupported (an absent version means 0.1.0) is error 1.
    fn from_str(s: &str) -> Result<Self, Error> {
        SpecVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                let shown = if s.is_empty() {
                    "0.1.0 (none given)"
                } else {
                    s
                };
                Error::new(
                    ErrorCode::IncompatibleVersion,
                    format!("unsupported CNI version {shown}"),
                )
                .with_details(format!("supported versions: {}", supported_list()))
            })
    }
}

impl serde::Serialize for SpecVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The supported versions as a comma-separated list, for messages.
pub fn supported_list() -> String {
    SpecVersion::ALL.map(SpecVersion::as_str).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_version_and_rejects_others_with_code_1() {
        for v in SpecVersion::ALL {
            assert_eq!(v.as_str().parse::<SpecVersion>().ok(), Some(v));
        }
        for bad in ["", "0.2.0", "1.2.0", "v1.0.0"] {
            let err = bad.parse::<SpecVersion>().err();
            assert_eq!(err.map(|e| e.code), Some(ErrorCode::IncompatibleVersion));
        }
    }

    #[test]
    fn commands_exist_only_from_their_version_on() {
        assert!(!SpecVersion::V0_3_1.has_check());
        assert!(SpecVersion::V0_4_0.has_check());
        assert!(!SpecVersion::V1_0_0.has_gc_and_status());
        assert!(SpecVersion::V1_1_0.has_gc_and_status());
    }
}
