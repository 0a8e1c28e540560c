//! Registries: `POST /images/create?fromImage=` (pull), `POST /images/{name}/push` and
//! `POST /auth`, with the credentials of Docker's `X-Registry-Auth` header and Docker's
//! JSON progress lines.

use std::sync::Mutex;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use netctl_engine::pull::{Progress, PullRequest};
use netctl_engine::push::PushRequest;
use netctl_registry::{Credentials, Registry};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{stream, ApiError, ApiResult, Daemon};

/// What clients put in `X-Registry-Auth` (base64url JSON) and `POST /auth` bodies.
#[derive(Deserialize, Default)]
struct AuthConfig {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
    #[serde(default)]
    serveraddress: String,
}

impl AuthConfig {
    fn credentials(&self) -> Option<Credentials> {
        if !self.username.is_empty() {
            return Some(Credentials {
                username: self.username.clone(),
                password: self.password.clone(),
            });
        }
        netctl_registry::credentials::decode_auth(&self.auth).ok()
    }
}

/// The credentials of `X-Registry-Auth`, none when it is absent or empty.
fn registry_auth(headers: &HeaderMap) -> ApiResult<Option<Credentials>> {
    let Some(value) = headers.get("x-registry-auth") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
        .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Auth header: {e}")))?;
    let config: AuthConfig = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Auth header: {e}")))?;
    Ok(config.credentials())
}

/// One of Docker's JSON progress lines.
fn progress_line(p: &Progress) -> Value {
    let mut v = json!({"status": p.status, "progressDetail": {}});
    if !p.id.is_empty() {
        v["id"] = json!(p.id);
    }
    if let Some((current, total)) = p.bytes {
        v["progressDetail"] = json!({"current": current, "total": total});
    }
    v
}

fn line(v: &Value) -> Vec<u8> {
    let mut bytes = v.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// Runs `work` (a pull or push) on a blocking thread, streaming its progress lines. A
/// failure before the first line is the request's error status, as Docker answers (the
/// docker CLI prints `Error response from daemon: ...`); a later one is the stream's last
/// line.
async fn progress_stream(
    d: &Daemon,
    work: impl FnOnce(&netctl_engine::Engine, &(dyn Fn(Progress) + Sync)) -> Result<Vec<Value>, ApiError>
        + Send
        + 'static,
) -> ApiResult<Response> {
    let engine = d.engine.clone();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Option<ApiError>>();
    let body = stream::body(move |sink| {
        let first = Mutex::new(Some(first_tx));
        let started = || {
            if let Some(tx) = first.lock().ok().and_then(|mut f| f.take()) {
                let _ = tx.send(None);
            }
        };
        let sink = Mutex::new(sink);
        let say = |p: Progress| {
            started();
            if let Ok(s) = sink.lock() {
                s.send(line(&progress_line(&p)));
            }
        };
        let result = work(&engine, &say);
        let lines = match result {
            Ok(lines) => lines,
            Err(e) => match first.lock().ok().and_then(|mut f| f.take()) {
                Some(tx) => {
                    let _ = tx.send(Some(e));
                    return;
                }
                None => vec![json!({"errorDetail": {"message": e.message}, "error": e.message})],
            },
        };
        started();
        if let Ok(s) = sink.lock() {
            for l in lines {
                s.send(line(&l));
            }
        };
    })?;
    match first_rx.await {
        Ok(Some(e)) => Err(e),
        _ => Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response()),
    }
}

/// `POST /images/create?fromImage=NAME&tag=TAG[&platform=]`: a pull.
pub async fn pull(
    d: &Daemon,
    q: &super::Query,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    drop(body);
    let image = q.get("fromImage").cloned().unwrap_or_default();
    let tag = q.get("tag").filter(|t| !t.is_empty());
    let names_one = tag.is_some()
        || netctl_registry::Reference::parse(&image)
            .is_ok_and(|r| r.tag().is_some() || r.digest().is_some());
    let reference = match tag {
        Some(t) if t.contains(':') => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None => image,
    };
    netctl_engine::pull::reference(&reference).map_err(ApiError::from)?;
    let req = PullRequest {
        reference,
        platform: q.get("platform").cloned(),
        credentials: registry_auth(headers)?,
    };
    if !names_one {
        // No tag: every tag of the repository, as Docker's daemon pulls it.
        return progress_stream(d, move |engine, say| {
            let pulled = netctl_engine::image::pull_all_tags(engine, &req, say)?;
            Ok(vec![
                json!({"status": format!("Status: {}", pulled.status())}),
            ])
        })
        .await;
    }
    progress_stream(d, move |engine, say| {
        let pulled = netctl_engine::image::pull(engine, &req, say)?;
        Ok(vec![
            json!({"status": format!("Digest: {}", pulled.digest)}),
            json!({"status": format!("Status: {}", pulled.status())}),
        ])
    })
    .await
}

/// `POST /images/{name}/push?tag=TAG`.
pub async fn push(
    d: &Daemon,
    name: &str,
    q: &super::Query,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let tag = q.get("tag").filter(|t| !t.is_empty());
    let req = PushRequest {
        reference: match tag {
            Some(t) => format!("{name}:{t}"),
            None => name.to_string(),
        },
        credentials: registry_auth(headers)?,
    };
    let all =
        tag.is_none() && netctl_registry::Reference::parse(name).is_ok_and(|r| r.tag().is_none());
    progress_stream(d, move |engine, say| {
        let pushed = if all {
            // No tag: every tag of the repository, as Docker's daemon pushes them.
            netctl_engine::image::push_all_tags(engine, &req, say)?
        } else {
            vec![netctl_engine::image::push(engine, &req, say)?]
        };
        Ok(pushed
            .iter()
            .map(|p| {
                json!({"progressDetail": {}, "aux": {
                    "Tag": p.tag, "Digest": p.digest.to_string(), "Size": p.size}})
            })
            .collect())
    })
    .await
}

/// `POST /auth`: checks credentials with the registry (`docker login`).
pub async fn auth(State(d): State<Daemon>, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let config: AuthConfig = serde_json::from_slice(&body)?;
    let creds = config
        .credentials()
        .ok_or_else(|| ApiError::bad_request("a login needs a username and password"))?;
    let domain = netctl_registry::credentials::server_domain(&config.serveraddress);
    d.run(move |engine| {
        let registry = Registry::connect(
            &engine.config.registry,
            netctl_registry::reference::registry_host(&domain),
            Some(creds),
        )
        .map_err(netctl_engine::Error::from)?;
        registry.login().map_err(netctl_engine::Error::from)?;
        Ok(Json(
            json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn registry_auth_headers_decode_as_docker_sends_them() {
        let mut h = HeaderMap::new();
        assert!(registry_auth(&h).unwrap().is_none());
        let enc = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"alice","password":"w?>","serveraddress":"r:5000"}"#);
        h.insert("x-registry-auth", enc.parse().unwrap());
        assert_eq!(registry_auth(&h).unwrap().unwrap().password, "w?>");
        h.insert("x-registry-auth", "e30=".parse().unwrap());
        assert!(registry_auth(&h).unwrap().is_none());
        h.insert("x-registry-auth", "!!".parse().unwrap());
        assert_eq!(
            registry_auth(&h).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
