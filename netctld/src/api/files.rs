//! A container's files: `changes`, `export`, and `archive` (what `docker cp` uses: HEAD for
//! a path's stat, GET for a tar of it, PUT to unpack a tar into a folder), all through the
//! engine's copy helper, which works inside the container's own root.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use netctl_engine::copy::PathStat;
use serde_json::{json, Value};

use super::{status, stream, ApiError, ApiResult, Daemon, Query};

/// `GET /containers/{id}/changes`: `[{"Path", "Kind"}]`, Kind 0 modified, 1 added, 2 deleted.
pub async fn changes(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    d.run(move |engine| {
        let c = engine.containers.find(&id)?;
        let rows: Vec<Value> = netctl_engine::changes::changes(engine, &c)?
            .into_iter()
            .map(|ch| json!({"Path": ch.path, "Kind": ch.kind as u8}))
            .collect();
        Ok(Json(Value::Array(rows)))
    })
    .await
}

/// `GET /containers/{id}/export`: a tar of its file system.
pub async fn export(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = d.run(move |e| Ok(e.containers.find(&id)?)).await?;
    let engine = d.engine.clone();
    let body = stream::body(move |mut sink| {
        let _ = netctl_engine::copy::export(&engine, &c, &mut sink);
    })?;
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

/// The `path` query.
fn path_of(q: &Query) -> ApiResult<String> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("path is required"))
}

/// Docker's `X-Docker-Container-Path-Stat`: the stat as base64 JSON, its mode with Go's
/// file-type bits.
fn stat_header(s: &PathStat) -> ApiResult<HeaderValue> {
    const GO_DIR: u32 = 1 << 31;
    const GO_SYMLINK: u32 = 1 << 27;
    let mut mode = s.mode;
    if s.dir {
        mode |= GO_DIR;
    }
    if s.link_target.is_some() {
        mode |= GO_SYMLINK;
    }
    let v = json!({"name": s.name, "size": s.size, "mode": mode, "mtime": s.mtime,
                   "linkTarget": s.link_target.clone().unwrap_or_default()});
    let encoded = base64::engine::general_purpose::STANDARD.encode(v.to_string());
    HeaderValue::from_str(&encoded).map_err(|e| ApiError::internal(format!("stat header: {e}")))
}

/// A path that does not exist, in Docker's words.
fn no_path(path: &str) -> ApiError {
    ApiError::not_found(format!("Could not find the file {path} in container"))
}

/// `HEAD /containers/{id}/archive`: the path's stat in a header.
pub async fn archive_stat(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let path = path_of(&q)?;
    d.run(move |engine| {
        let c = engine.containers.find(&id)?;
        let s =
            netctl_engine::copy::stat(engine, &c, &path, false)?.ok_or_else(|| no_path(&path))?;
        let mut r = status(StatusCode::OK);
        r.headers_mut()
            .insert("x-docker-container-path-stat", stat_header(&s)?);
        Ok(r)
    })
    .await
}

/// `GET /containers/{id}/archive`: a tar of the path, its stat in a header.
pub async fn archive_get(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let path = path_of(&q)?;
    let (c, stat) = {
        let path = path.clone();
        d.run(move |engine| {
            let c = engine.containers.find(&id)?;
            let s = netctl_engine::copy::stat(engine, &c, &path, false)?
                .ok_or_else(|| no_path(&path))?;
            Ok((c, s))
        })
        .await?
    };
    let engine = d.engine.clone();
    let body = stream::body(move |mut sink| {
        let _ = netctl_engine::copy::get(&engine, &c, &path, false, &mut sink);
    })?;
    let mut r = ([(header::CONTENT_TYPE, "application/x-tar")], body).into_response();
    r.headers_mut()
        .insert("x-docker-container-path-stat", stat_header(&stat)?);
    Ok(r)
}

/// `PUT /containers/{id}/archive`: unpacks the tar body into the folder `path`.
pub async fn archive_put(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    q: Query,
    body: Body,
) -> ApiResult<Response> {
    // Docker 20.10 keeps the archived owners whatever `copyUIDGID` says, as the engine does.
    let path = path_of(&q)?;
    let spool_dir = d.engine.run_dir().join("spool");
    let tar = stream::spool(body, &spool_dir).await?;
    d.run(move |engine| {
        let c = engine.containers.find(&id)?;
        let s =
            netctl_engine::copy::stat(engine, &c, &path, true)?.ok_or_else(|| no_path(&path))?;
        if !s.dir {
            return Err(ApiError::bad_request(format!(
                "extraction point is not a directory: {path}"
            )));
        }
        let mut input = tar
            .reopen()
            .map_err(|e| ApiError::internal(format!("read the spooled tar: {e}")))?;
        netctl_engine::copy::put(engine, &c, &path, &mut input)?;
        Ok(status(StatusCode::OK))
    })
    .await
}
