//! The CNI Error object and its well-known codes.

use serde::{Deserialize, Serialize};

/// A CNI error code: the spec's well-known codes, or a plugin's own (100 and up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: the requested CNI version is not supported.
    IncompatibleVersion,
    /// 2: a field of the network configuration is not supported.
    UnsupportedField,
    /// 3: the container is unknown or does not exist.
    UnknownContainer,
    /// 4: a `CNI_*` environment variable is missing or invalid.
    InvalidEnvironment,
    /// 5: an I/O failure.
    Io,
    /// 6: content could not be decoded.
    Decoding,
    /// 7: the network configuration is invalid.
    InvalidConfig,
    /// 11: a transient condition; the runtime should retry later.
    TryAgainLater,
    /// 50: the plugin cannot serve ADD (STATUS).
    PluginNotAvailable,
    /// 51: the plugin cannot serve ADD and existing containers may have limited connectivity.
    LimitedConnectivity,
    /// 100 and up: the plugin's own codes; any other unknown code read from a plugin.
    Plugin(u32),
}

impl ErrorCode {
    /// The numeric code on the wire.
    pub fn as_u32(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decoding => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Plugin(n) => n,
        }
    }

    /// The code for a number read off the wire.
    pub fn from_u32(n: u32) -> Self {
        match n {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decoding,
            7 => ErrorCode::InvalidConfig,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::PluginNotAvailable,
            51 => ErrorCode::LimitedConnectivity,
            n => ErrorCode::Plugin(n),
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.as_u32())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(ErrorCode::from_u32)
    }
}

/// A CNI error: what a plugin prints on stdout when it fails, and what the client returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg}{}", details_suffix(.details))]
pub struct Error {
    /// The error code.
    pub code: ErrorCode,
    /// A short message saying what went wrong.
    pub msg: String,
    /// Longer context: what was found, what to do.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(": {details}")
    }
}

impl Error {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with details added.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Error 4: a `CNI_*` variable is missing or invalid.
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidEnvironment, msg)
    }

    /// Error 7: the network configuration is invalid.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidConfig, msg)
    }

    /// Error 5: an I/O failure, with what was being done.
    pub fn io(what: impl Into<String>, err: &std::io::Error) -> Self {
        Error::new(ErrorCode::Io, what).with_details(err.to_string())
    }

    /// Error 6: content could not be decoded.
    pub fn decoding(what: impl Into<String>, err: &serde_json::Error) -> Self {
        Error::new(ErrorCode::Decoding, what).with_details(err.to_string())
    }

    /// The JSON a plugin prints for this error, in the given version.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code.as_u32(),
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = serde_json::Value::String(self.details.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_numbers() {
        for n in [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 142] {
            assert_eq!(ErrorCode::from_u32(n).as_u32(), n);
        }
    }

    #[test]
    fn error_json_has_version_code_msg_and_details() {
        let e = Error::invalid_config("bad mtu").with_details("mtu must be 68..65535");
        let v = e.to_json("1.0.0");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "bad mtu");
        assert_eq!(v["details"], "mtu must be 68..65535");
        let back: Error = serde_json::from_value(v).unwrap_or_else(|_| Error::invalid_env("x"));
        assert_eq!(back, e);
        assert_eq!(e.to_string(), "bad mtu: mtu must be 68..65535");
    }
}
