//! `/images`: list, inspect, history, tag, remove, load, save, import; pull and push in
//! [`super::distribution`].

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use netctl_engine::image::ImageStore;
use serde_json::{json, Value};

use super::{stream, ApiError, ApiResult, Daemon};

/// The routes. Image names hold slashes (`library/busybox`), so the name is the rest of the
/// path and the action its last word.
pub fn routes() -> Router<Daemon> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(pull))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/prune", post(prune))
        .route("/images/{*name}", get(by_name).delete(remove).post(tag))
        .route("/commit", post(commit))
}

/// `POST /images/load`: a `docker save` (or OCI) archive; Docker's JSON lines saying what
/// was loaded (`quiet` only silences progress, which netctl does not send).
async fn load(State(d): State<Daemon>, body: Body) -> ApiResult<Response> {
    let archive = stream::spool(body, &d.engine.run_dir().join("spool")).await?;
    d.run(move |engine| {
        // As Docker's: the answer is a 200 stream whatever happens, and a failure its last
        // line (docker-py raises ImageLoadError from it, the docker CLI prints it).
        let loaded = match netctl_engine::image::load(engine, archive.path()) {
            Ok(loaded) => loaded,
            Err(e) => {
                let message = super::ApiError::from(e).message;
                let line = json!({"errorDetail": {"message": message}, "error": message});
                return Ok((
                    [(header::CONTENT_TYPE, "application/json")],
                    format!("{line}\n"),
                )
                    .into_response());
            }
        };
        let mut out = String::new();
        for img in loaded {
            let line = match img.tags.first() {
                Some(t) => format!("Loaded image: {t}\n"),
                None => format!("Loaded image ID: sha256:{}\n", img.id),
            };
            out.push_str(&json!({ "stream": line }).to_string());
            out.push('\n');
        }
        Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
    })
    .await
}

/// `GET /images/get?names=...` and `GET /images/{name}/get`: Docker's archive.
async fn save_many(
    State(d): State<Daemon>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> ApiResult<Response> {
    save(&d, values(raw.as_deref(), "names")).await
}

/// Every value of a repeated query parameter (`changes=...&changes=...`), decoded.
fn values(raw: Option<&str>, name: &str) -> Vec<String> {
    let prefix = format!("{name}=");
    raw.unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.strip_prefix(prefix.as_str()))
        .map(decode)
        .filter(|v| !v.is_empty())
        .collect()
}

/// `%2F` and `+` in a query value.
fn decode(v: &str) -> String {
    let mut out = Vec::new();
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => match u8::from_str_radix(&String::from_utf8_lossy(hex), 16) {
                Ok(c) => {
                    out.push(c);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            (b'+', _) => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn save(d: &Daemon, names: Vec<String>) -> ApiResult<Response> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let (store, images) = d
        .run(move |engine| {
            let store = ImageStore::open(engine.root())?;
            let images = netctl_engine::save::selection(&store, &names)?;
            Ok((store, images))
        })
        .await?;
    let body = stream::body(move |sink| {
        let _ = netctl_engine::save::save(&store, &images, sink);
    })?;
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

/// `POST /images/prune`: dangling images (`dangling=false`: every unused one).
async fn prune(State(d): State<Daemon>, q: super::Query) -> ApiResult<Json<Value>> {
    let by = super::filters(&q)?;
    let all = by
        .iter()
        .any(|f| f == "dangling=false" || f == "dangling=0");
    if by.iter().any(|f| !f.starts_with("dangling=")) {
        return Err(ApiError::bad_request(
            "netctl prunes images by no filter but dangling",
        ));
    }
    d.run(move |engine| {
        let pruned = netctl_engine::system::prune_images(engine, all)?;
        let rows = removal_rows(&pruned.deleted);
        Ok(Json(
            json!({"ImagesDeleted": rows, "SpaceReclaimed": pruned.reclaimed}),
        ))
    })
    .await
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=`.
async fn commit(
    State(d): State<Daemon>,
    q: super::Query,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = q.get("container").cloned().unwrap_or_default();
    let reference = reference(&q);
    let req = netctl_engine::commit::CommitRequest {
        changes: values(raw.as_deref(), "changes"),
        reference,
        comment: q.get("comment").cloned().unwrap_or_default(),
        author: q.get("author").cloned().unwrap_or_default(),
        pause: q
            .get("pause")
            .is_none_or(|p| !matches!(p.as_str(), "0" | "false")),
    };
    d.run(move |engine| {
        let c = engine.containers.find(&key)?;
        let img = netctl_engine::commit::commit(engine, &c, &req)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({"Id": format!("sha256:{}", img.id)})),
        ))
    })
    .await
}

async fn list(State(d): State<Daemon>) -> ApiResult<Json<Vec<Value>>> {
    d.run(|engine| Ok(Json(summaries(engine)?))).await
}

/// Every image as `/images/json` and `/system/df` list them.
pub fn summaries(engine: &netctl_engine::Engine) -> ApiResult<Vec<Value>> {
    let containers = engine.containers.all()?;
    let mut out = Vec::new();
    for i in ImageStore::open(engine.root())?.all()? {
        let used = containers.iter().filter(|c| c.config.image == i.id).count();
        out.push(json!({
            "Id": format!("sha256:{}", i.id), "ParentId": "", "RepoTags": i.tags,
            "RepoDigests": i.repo_digests, "Created": netctl_engine::clock::epoch(&i.created).unwrap_or(0),
            "Size": i.size, "VirtualSize": i.size, "SharedSize": -1,
            "Labels": i.config.labels, "Containers": used
        }));
    }
    Ok(out)
}

/// `POST /images/create`: `fromImage` pulls from a registry; `fromSrc=-` imports the tar
/// body as a one-layer image (`docker import`).
async fn pull(
    State(d): State<Daemon>,
    q: super::Query,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    body: Body,
) -> ApiResult<Response> {
    match q.get("fromSrc").map(String::as_str) {
        Some("-") => {}
        Some(src) => {
            return Err(ApiError::bad_request(format!(
                "netctl imports from the request body only (fromSrc=-), not from {src}"
            )))
        }
        None => return super::distribution::pull(&d, &q, &headers, body).await,
    }
    let changes = values(raw.as_deref(), "changes");
    let reference = reference(&q);
    let tar = stream::spool(body, &d.engine.run_dir().join("spool")).await?;
    d.run(move |engine| {
        let img = netctl_engine::image::import(engine, tar.path(), reference.as_deref(), &changes)?;
        let line = json!({ "status": format!("sha256:{}", img.id) }).to_string() + "\n";
        Ok(([(header::CONTENT_TYPE, "application/json")], line).into_response())
    })
    .await
}

/// `GET /images/NAME/json`, `/history` and `/get`.
async fn by_name(State(d): State<Daemon>, Path(path): Path<String>) -> ApiResult<Response> {
    let (name, action) = split(&path);
    let (name, action) = (name.to_string(), action.to_string());
    if action == "get" {
        return save(&d, vec![name]).await;
    }
    details(d, name, action)
        .await
        .map(IntoResponse::into_response)
}

async fn details(d: Daemon, name: String, action: String) -> ApiResult<Json<Value>> {
    d.run(move |engine| {
        let store = ImageStore::open(engine.root())?;
        let img = store.find(&name)?;
        match action.as_str() {
            "json" => Ok(Json(serde_json::to_value(
                netctl_engine::view::inspect_image(&store, &img),
            )?)),
            "history" => {
                let rows: Vec<Value> = netctl_engine::image::history(&store, &img)?
                    .into_iter()
                    .map(|h| {
                        json!({"Id": h.id, "Created": netctl_engine::clock::epoch(&h.created).unwrap_or(0),
                               "CreatedBy": h.created_by, "Tags": null, "Size": h.size, "Comment": h.comment})
                    })
                    .collect();
                Ok(Json(Value::Array(rows)))
            }
            _ => Err(ApiError::not_found(format!("page not found: {action}"))),
        }
    })
    .await
}

/// `POST /images/NAME/tag?repo=R&tag=T`.
async fn tag(
    State(d): State<Daemon>,
    Path(path): Path<String>,
    q: super::Query,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let (name, action) = split(&path);
    if action == "push" {
        return super::distribution::push(&d, name, &q, &headers).await;
    }
    if action != "tag" {
        return Err(ApiError::not_found(format!(
            "POST /images/{path} is not supported by netctl"
        )));
    }
    let target = reference(&q).unwrap_or_default();
    let name = name.to_string();
    d.run(move |engine| {
        netctl_engine::image::tag(engine, &name, &target)?;
        Ok((StatusCode::CREATED, Json(json!({}))).into_response())
    })
    .await
}

/// `DELETE /images/NAME`: Docker's `[{"Untagged": ...}, {"Deleted": ...}]`.
async fn remove(State(d): State<Daemon>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    d.run(move |engine| {
        let rows = removal_rows(&netctl_engine::image::remove(engine, &name)?);
        Ok(Json(Value::Array(rows)))
    })
    .await
}

/// `REPO[:TAG]` from the `repo` and `tag` queries (none without a repo).
fn reference(q: &super::Query) -> Option<String> {
    let repo = q.get("repo").filter(|r| !r.is_empty())?;
    Some(match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.clone(),
    })
}

/// The engine's `Untagged: X` / `Deleted: X` lines as Docker's `[{"Untagged": X}, ...]`.
fn removal_rows(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|line| {
            let (what, of) = line.split_once(": ")?;
            Some(json!({ what: of }))
        })
        .collect()
}

/// `busybox:latest/json` as (`busybox:latest`, `json`).
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or((path, ""))
}
