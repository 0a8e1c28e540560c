//! The Engine API: routes, API versions, and what every handler shares (the engine, run off
//! the async workers; Docker's query conventions).

mod attach;
mod containers;
mod create;
mod distribution;
mod error;
mod exec;
mod files;
mod hijack;
pub(crate) mod images;
mod networks;
mod stats;
mod stream;
mod system;
mod volumes;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use netctl_engine::Engine;

pub use error::ApiError;

/// The API version served, and the oldest accepted.
pub const API_VERSION: (u32, u32) = (1, 41);
/// The oldest API version accepted.
pub const MIN_API_VERSION: (u32, u32) = (1, 24);

/// What every handler shares.
#[derive(Clone)]
pub struct Daemon {
    /// The engine, shared with every request.
    pub engine: Arc<Engine>,
    /// Containers a client attached to before they started: their start keeps the output
    /// from the first byte for that client.
    pub attaching: Arc<Mutex<HashSet<String>>>,
    /// The exec instances made.
    pub execs: exec::Execs,
}

impl Daemon {
    /// The daemon's state around an engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Daemon {
            engine,
            attaching: Arc::default(),
            execs: Arc::default(),
        }
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

impl Daemon {
    /// Runs `f` on the engine off the async workers (the engine blocks: files, locks,
    /// netlink, plugins).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))?
    }
}

/// The query of a request, by name (a repeated name keeps its last value).
pub type Query = axum::extract::Query<BTreeMap<String, String>>;

/// A boolean query value as Docker reads one: `1`, `true`, `True` ... are true.
pub fn flag(q: &BTreeMap<String, String>, name: &str) -> bool {
    q.get(name)
        .is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "False" | "FALSE"))
}

/// The `filters` query value, `{"key": ["value", ...]}` (or the older `{"key": {"value":
/// true}}`), as `key=value` strings for the engine's filter parsers.
pub fn filters(q: &BTreeMap<String, String>) -> ApiResult<Vec<String>> {
    let Some(raw) = q.get("filters").filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    let parsed: BTreeMap<String, serde_json::Value> = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let mut out = Vec::new();
    for (key, values) in parsed {
        let values: Vec<String> = match values {
            serde_json::Value::Array(list) => list
                .into_iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| ApiError::bad_request(format!("invalid filter: {key}")))?,
            serde_json::Value::Object(map) => map
                .into_iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .map(|(v, _)| v)
                .collect(),
            _ => return Err(ApiError::bad_request(format!("invalid filter: {key}"))),
        };
        out.extend(values.into_iter().map(|v| format!("{key}={v}")));
    }
    Ok(out)
}

/// A JSON body, read as `T` as Go reads one into a struct: unknown fields are ignored and
/// `null` is the zero value; wrong types are a 400.
pub fn body<T: serde::de::DeserializeOwned + Default>(bytes: &axum::body::Bytes) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut v: serde_json::Value = serde_json::from_slice(bytes)?;
    drop_nulls(&mut v);
    Ok(serde_json::from_value(v)?)
}

/// Removes every `null` member of every object, so each reads as its field's default.
fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The API as the server calls it: the version prefix is read first (it decides the route),
/// then the routes.
pub fn service(daemon: Daemon) -> crate::serve::App {
    use tower::{Layer, ServiceExt};
    let app = axum::middleware::from_fn(versioned).layer(app(daemon));
    tower::util::BoxCloneSyncService::new(
        app.map_request(|r: Request<hyper::body::Incoming>| r.map(axum::body::Body::new)),
    )
}

/// Every route, served bare and under `/v{X.Y}/`.
fn app(daemon: Daemon) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/auth", axum::routing::post(distribution::auth))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .merge(networks::routes())
        .merge(volumes::routes())
        .merge(containers::routes())
        .merge(images::routes())
        .route(
            "/containers/{id}/attach",
            axum::routing::post(attach::attach),
        )
        .route(
            "/containers/{id}/resize",
            axum::routing::post(attach::resize),
        )
        .route("/containers/{id}/exec", axum::routing::post(exec::create))
        .route("/exec/{id}/start", axum::routing::post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", axum::routing::post(exec::resize))
        .route("/containers/{id}/changes", get(files::changes))
        .route("/containers/{id}/export", get(files::export))
        .route(
            "/containers/{id}/archive",
            get(files::archive_get)
                .head(files::archive_stat)
                .put(files::archive_put),
        )
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/system/df", get(system::df))
        .fallback(unsupported)
        .with_state(daemon)
}

/// What netctld does not serve: Docker's JSON error, never a hang. Swarm's endpoints answer
/// as a Docker that is in no swarm answers them.
async fn unsupported(req: Request) -> ApiError {
    let path = req.uri().path();
    if path == "/swarm/leave" {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not part of a swarm",
        );
    }
    let swarm = [
        "/swarm",
        "/nodes",
        "/services",
        "/tasks",
        "/secrets",
        "/configs",
    ];
    if swarm
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
        );
    }
    ApiError::not_found(format!(
        "{} {} is not supported by netctl",
        req.method(),
        req.uri().path()
    ))
}

/// The version a request asked for, from its `/v{X.Y}` prefix (the current one without).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

/// Strips the `/v{X.Y}` prefix, refusing versions outside 1.24-1.41 as Docker does, and
/// adds the headers Docker answers with.
pub async fn versioned(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let (version, rest) = match split_version(&path) {
        Some((v, rest)) => (v, rest.to_string()),
        None => (ApiVersion(API_VERSION.0, API_VERSION.1), path.clone()),
    };
    if version > ApiVersion(API_VERSION.0, API_VERSION.1) {
        return with_headers(
            ApiError::bad_request(format!(
                "client version {}.{} is too new. Maximum supported API version is {}.{}",
                version.0, version.1, API_VERSION.0, API_VERSION.1
            ))
            .into_response(),
        );
    }
    if version < ApiVersion(MIN_API_VERSION.0, MIN_API_VERSION.1) {
        return with_headers(ApiError::bad_request(format!(
            "client version {}.{} is too old. Minimum supported API version is {}.{}, please upgrade your client to a newer version",
            version.0, version.1, MIN_API_VERSION.0, MIN_API_VERSION.1
        )).into_response());
    }
    if rest != path {
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        match format!("{rest}{query}").parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return ApiError::bad_request("bad request path").into_response(),
        }
    }
    req.extensions_mut().insert(version);
    with_headers(json_error(next.run(req).await).await)
}

/// An error answered without Docker's JSON (a malformed query or path, a body over the
/// limit, a method a route lacks) rewritten as `{"message": ...}` with its status, so every
/// client reads every error the same way.
async fn json_error(r: Response) -> Response {
    let failed = r.status().is_client_error() || r.status().is_server_error();
    let json = r
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !failed || json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => parts
            .status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string(),
        t => t.to_string(),
    };
    ApiError::new(parts.status, message).into_response()
}

/// `/v1.41/containers/json` as (1.41, `/containers/json`).
fn split_version(path: &str) -> Option<(ApiVersion, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (major, minor) = rest[..end].split_once('.')?;
    let v = ApiVersion(major.parse().ok()?, minor.parse().ok()?);
    let tail = &rest[end..];
    Some((v, if tail.is_empty() { "/" } else { tail }))
}

fn with_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let api = format!("{}.{}", API_VERSION.0, API_VERSION.1);
    for (k, v) in [
        ("api-version", api.as_str()),
        ("docker-experimental", "false"),
        ("ostype", "linux"),
        (
            "server",
            concat!("netctld/", env!("CARGO_PKG_VERSION"), " (linux)"),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    r
}

/// An empty answer with a status (204 No Content, 304 Not Modified ...).
pub fn status(code: StatusCode) -> Response {
    code.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_split_and_bad_ones_left_alone() {
        assert_eq!(
            split_version("/v1.41/containers/json"),
            Some((ApiVersion(1, 41), "/containers/json"))
        );
        assert_eq!(
            split_version("/v1.24/_ping"),
            Some((ApiVersion(1, 24), "/_ping"))
        );
        assert_eq!(split_version("/volumes"), None);
        assert_eq!(split_version("/vx.y/info"), None);
    }

    #[test]
    fn filters_are_read_in_both_of_dockers_shapes() {
        let q = |s: &str| BTreeMap::from([("filters".to_string(), s.to_string())]);
        assert_eq!(
            filters(&q(r#"{"label":["a=b"],"name":["web"]}"#)).unwrap(),
            ["label=a=b", "name=web"]
        );
        assert_eq!(
            filters(&q(r#"{"dangling":{"true":true}}"#)).unwrap(),
            ["dangling=true"]
        );
        assert!(filters(&q("{")).is_err());
        assert!(filters(&q(r#"{"name":[1]}"#)).is_err());
    }
}
