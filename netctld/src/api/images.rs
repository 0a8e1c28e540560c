//! `/images`: list, inspect, history, tag, remove; pulling waits for registry support.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use netctl_engine::image::ImageStore;
use serde_json::{json, Value};

use super::{ApiError, ApiResult, Daemon};

/// The routes. Image names hold slashes (`library/busybox`), so the name is the rest of the
/// path and the action its last word.
pub fn routes() -> Router<Daemon> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(pull))
        .route("/images/{*name}", get(by_name).delete(remove).post(tag))
}

async fn list(State(d): State<Daemon>) -> ApiResult<Json<Vec<Value>>> {
    d.run(|engine| {
        let containers = engine.containers.all()?;
        let mut out = Vec::new();
        for i in ImageStore::open(engine.root())?.all()? {
            let used = containers.iter().filter(|c| c.config.image == i.id).count();
            out.push(json!({
                "Id": format!("sha256:{}", i.id), "ParentId": "", "RepoTags": i.tags,
                "RepoDigests": [], "Created": netctl_engine::clock::epoch(&i.created).unwrap_or(0),
                "Size": i.size, "VirtualSize": i.size, "SharedSize": -1,
                "Labels": i.config.labels, "Containers": used
            }));
        }
        Ok(Json(out))
    })
    .await
}

async fn pull(q: super::Query) -> ApiError {
    let name = q.get("fromImage").cloned().unwrap_or_default();
    ApiError::not_found(format!(
        "pull access denied for {name}: netctl does not pull from registries yet; load the image with `docker load` or `netctl load`"
    ))
}

/// `GET /images/NAME/json` and `GET /images/NAME/history`.
async fn by_name(State(d): State<Daemon>, Path(path): Path<String>) -> ApiResult<Json<Value>> {
    let (name, action) = split(&path);
    let (name, action) = (name.to_string(), action.to_string());
    d.run(move |engine| {
        let store = ImageStore::open(engine.root())?;
        let img = store.find(&name)?;
        match action.as_str() {
            "json" => Ok(Json(serde_json::to_value(
                netctl_engine::view::inspect_image(&img),
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
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (name, action) = split(&path);
    if action != "tag" {
        return Err(ApiError::not_found(format!(
            "POST /images/{path} is not supported by netctl"
        )));
    }
    let repo = q.get("repo").cloned().unwrap_or_default();
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    let name = name.to_string();
    d.run(move |engine| {
        netctl_engine::image::tag(engine, &name, &target)?;
        Ok((StatusCode::CREATED, Json(json!({}))))
    })
    .await
}

/// `DELETE /images/NAME`: Docker's `[{"Untagged": ...}, {"Deleted": ...}]`.
async fn remove(State(d): State<Daemon>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    d.run(move |engine| {
        let rows: Vec<Value> = netctl_engine::image::remove(engine, &name)?
            .into_iter()
            .filter_map(|line| {
                let (what, of) = line.split_once(": ")?;
                Some(json!({ what: of }))
            })
            .collect();
        Ok(Json(Value::Array(rows)))
    })
    .await
}

/// `busybox:latest/json` as (`busybox:latest`, `json`).
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or((path, ""))
}
