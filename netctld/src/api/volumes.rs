//! `/volumes`: create, list, inspect, remove, prune.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use netctl_engine::volume::VolumeStore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body, filters, flag, status, ApiError, ApiResult, ApiVersion, Daemon, Query};

/// The routes.
pub fn routes() -> Router<Daemon> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

/// A volume as the API shows it.
fn view(store: &VolumeStore, v: &netctl_engine::volume::Volume) -> ApiResult<Value> {
    Ok(serde_json::to_value(netctl_engine::view::inspect_volume(
        store, v,
    ))?)
}

/// Whether volume `v` passes `volume ls` filters: name (a part), label, driver, dangling.
fn wanted(
    filters: &[(String, String)],
    v: &netctl_engine::volume::Volume,
    used: impl Fn() -> bool,
) -> bool {
    filters.iter().all(|(k, val)| match k.as_str() {
        "name" => v.name.contains(val.as_str()),
        "driver" => val == "local",
        "dangling" => (val == "true" || val == "1") != used(),
        _ => match val.split_once('=') {
            Some((lk, lv)) => v.labels.get(lk).is_some_and(|x| x == lv),
            None => v.labels.contains_key(val),
        },
    })
}

fn parse_filters(q: &BTreeMap<String, String>) -> ApiResult<Vec<(String, String)>> {
    filters(q)?
        .into_iter()
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or((&f, ""));
            if !["name", "driver", "dangling", "label"].contains(&k) {
                return Err(ApiError::bad_request(format!("Invalid filter '{k}'")));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

async fn list(State(d): State<Daemon>, q: Query) -> ApiResult<Json<Value>> {
    let by = parse_filters(&q)?;
    d.run(move |engine| {
        let store = VolumeStore::open(engine.root())?;
        let containers = engine.containers.all()?;
        let mut out = Vec::new();
        for v in store.all()? {
            let used = || !netctl_engine::container::volume_users(&containers, &v.name).is_empty();
            if wanted(&by, &v, used) {
                out.push(view(&store, &v)?);
            }
        }
        Ok(Json(json!({"Volumes": out, "Warnings": []})))
    })
    .await
}

/// `POST /volumes/create`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

async fn create(State(d): State<Daemon>, bytes: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req = body::<CreateBody>(&bytes)?;
    if !matches!(req.driver.as_str(), "" | "local") {
        return Err(ApiError::not_found(format!(
            "error looking up volume plugin {}: plugin \"{}\" not found",
            req.driver, req.driver
        )));
    }
    if req.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::bad_request(
            "netctl's local volumes take no driver options",
        ));
    }
    d.run(move |engine| {
        let name = Some(req.name.as_str()).filter(|n| !n.is_empty());
        let v = netctl_engine::volume::create(engine, name, req.labels.unwrap_or_default())?;
        let store = VolumeStore::open(engine.root())?;
        Ok((StatusCode::CREATED, Json(view(&store, &v)?)))
    })
    .await
}

async fn inspect(State(d): State<Daemon>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    d.run(move |engine| {
        let store = VolumeStore::open(engine.root())?;
        Ok(Json(view(&store, &store.get(&name)?)?))
    })
    .await
}

async fn remove(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let force = flag(&q, "force");
    d.run(move |engine| {
        match netctl_engine::volume::remove(engine, &name) {
            Err(netctl_engine::Error::NotFound { .. }) if force => {}
            other => other?,
        }
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

async fn prune(
    State(d): State<Daemon>,
    Extension(version): Extension<ApiVersion>,
    q: Query,
) -> ApiResult<Json<Value>> {
    let by = filters(&q)?;
    // Before API 1.42 prune took named volumes too; `all=true` asks for that since.
    let all = version < ApiVersion(1, 42) || by.iter().any(|f| f == "all=true" || f == "all=1");
    if by.iter().any(|f| !f.starts_with("all=")) {
        return Err(ApiError::bad_request(
            "netctl prunes volumes by no filter but all",
        ));
    }
    d.run(move |engine| {
        let pruned = netctl_engine::system::prune_volumes(engine, all)?;
        Ok(Json(json!({
            "VolumesDeleted": pruned.deleted,
            "SpaceReclaimed": pruned.reclaimed
        })))
    })
    .await
}
