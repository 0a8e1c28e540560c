//! Docker's error responses: `{"message": ...}` with the status code and wording the docker
//! CLI and SDKs expect, so they print the same `Error response from daemon: ...` lines.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use netctl_engine::{Error, Kind};

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
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match e.root() {
            Error::NotFound { kind, key } => not_found_text(*kind, key),
            _ => e.report(),
        };
        ApiError { status, message }
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
}
