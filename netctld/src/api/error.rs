//! Docker's error responses: `{"message": ...}` with the status code and wording the docker
//! CLI and SDKs expect, so they print the same `Error response from daemon: ...` lines.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use netctl_cni::ErrorCode;
use netctl_engine::{Error, Kind};
use netctl_ipam::{CODE_ADDRESS_IN_USE, CODE_EXHAUSTED};

/// A failed request: its status and Docker's message.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message the client prints.
    pub message: String,
}

impl ApiError {
    /// A 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A 500: the daemon failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e.root() {
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Ambiguous { .. } | Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::CommandNotFound(_) | Error::CommandNotRunnable { .. } => StatusCode::BAD_REQUEST,
            Error::Conflict(_) | Error::State(_) => StatusCode::CONFLICT,
            Error::Cni { source, .. } => cni_status(source.code),
            Error::Registry(r) => registry_status(r),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match e.root() {
            Error::NotFound { kind, key } => not_found_text(*kind, key),
            _ => e.report(),
        };
        ApiError { status, message }
    }
}

/// A registry failure as Docker's status: a bad reference is the client's, a missing
/// repository or manifest 404, refused credentials 401; a registry that cannot be reached
/// 502, the gateway's error (the docker CLI prints the message whatever the status).
fn registry_status(e: &netctl_registry::Error) -> StatusCode {
    use netctl_registry::Error as R;
    match e {
        R::Reference(_) | R::Digest(_) => StatusCode::BAD_REQUEST,
        R::NotFound(_) => StatusCode::NOT_FOUND,
        R::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        R::Unreachable(_) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A plugin's failure as Docker's status for the same failure: a request the plugin found
/// wrong is the client's (400), an address taken 403 and an exhausted pool 503 (as
/// libnetwork's IPAM answers), anything else the daemon's.
fn cni_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::IncompatibleVersion
        | ErrorCode::UnsupportedField
        | ErrorCode::InvalidEnvironment
        | ErrorCode::Decoding
        | ErrorCode::InvalidConfig => StatusCode::BAD_REQUEST,
        ErrorCode::Plugin(CODE_ADDRESS_IN_USE) => StatusCode::FORBIDDEN,
        ErrorCode::Plugin(CODE_EXHAUSTED) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Docker's daemon wording for an object that does not exist.
fn not_found_text(kind: Kind, key: &str) -> String {
    match kind {
        Kind::Network => format!("network {key} not found"),
        Kind::Volume => format!("get {key}: no such volume"),
        Kind::Container => format!("No such container: {key}"),
        Kind::Image => format!("No such image: {key}"),
        Kind::Path => format!("Could not find the file {key} in container"),
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::bad_request(format!("invalid JSON: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_get_dockers_status_and_wording() {
        let e = ApiError::from(Error::NotFound {
            kind: Kind::Network,
            key: "nosuch".into(),
        });
        assert_eq!(
            (e.status, e.message.as_str()),
            (StatusCode::NOT_FOUND, "network nosuch not found")
        );
        let e = ApiError::from(Error::Conflict("name in use".into()).context("create"));
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(
            ApiError::from(Error::Invalid("bad".into())).status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_plugin_refusing_the_request_is_the_clients_mistake() {
        let cni = |code| Error::Cni {
            network: "app".into(),
            source: netctl_cni::Error::new(code, "refused"),
        };
        let status = |code| ApiError::from(cni(code)).status;
        assert_eq!(status(ErrorCode::InvalidConfig), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(ErrorCode::Plugin(CODE_ADDRESS_IN_USE)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(ErrorCode::Plugin(CODE_EXHAUSTED)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(ErrorCode::Io), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
