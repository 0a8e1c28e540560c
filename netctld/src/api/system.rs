//! `/_ping`, `/version`, `/info`, `/events`.

use std::ops::ControlFlow;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use netctl_engine::events::{EventFilter, EventOptions};
use serde_json::{json, Value};

use super::{filters, stream, ApiResult, Daemon, Query, API_VERSION, MIN_API_VERSION};

/// `GET|HEAD /_ping`: `OK`, with the API version in the headers (the client negotiates
/// from them).
pub async fn ping() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
        ],
        "OK",
    )
        .into_response()
}

/// Go's name of this machine's architecture.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `GET /version`.
pub async fn version(State(d): State<Daemon>) -> ApiResult<Json<Value>> {
    let kernel = d
        .run(|_| Ok(std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default()))
        .await?;
    let api = format!("{}.{}", API_VERSION.0, API_VERSION.1);
    let min = format!("{}.{}", MIN_API_VERSION.0, MIN_API_VERSION.1);
    let v = env!("CARGO_PKG_VERSION");
    Ok(Json(json!({
        "Platform": {"Name": "netctl"},
        "Components": [{"Name": "Engine", "Version": v, "Details": {
            "ApiVersion": api, "MinAPIVersion": min, "Os": "linux", "Arch": go_arch(),
            "KernelVersion": kernel.trim()}}],
        "Version": v, "ApiVersion": api, "MinAPIVersion": min, "GitCommit": "",
        "GoVersion": "", "Os": "linux", "Arch": go_arch(), "KernelVersion": kernel.trim(),
        "BuildTime": ""
    })))
}

/// `GET /info`: the engine's facts, with the empty parts Docker's clients read.
pub async fn info(State(d): State<Daemon>) -> ApiResult<Json<Value>> {
    let info = d.run(|e| Ok(netctl_engine::system::info(e)?)).await?;
    let mut v = serde_json::to_value(info)?;
    if let Value::Object(m) = &mut v {
        m.insert(
            "Swarm".into(),
            json!({"LocalNodeState": "inactive", "ControlAvailable": false}),
        );
        m.insert("Runtimes".into(), json!({"netctl": {"path": "netctl"}}));
        m.insert(
            "RegistryConfig".into(),
            json!({"IndexConfigs": {}, "InsecureRegistryCVIDRs": [], "Mirrors": []}),
        );
        m.insert("Labels".into(), json!([]));
        m.insert("Warnings".into(), json!([]));
        m.insert("Architecture".into(), json!(std::env::consts::ARCH));
    }
    Ok(Json(v))
}

/// `GET /events`: one JSON object per event, following until `until` or the client leaves.
pub async fn events(State(d): State<Daemon>, q: Query) -> ApiResult<Response> {
    let now = netctl_engine::when::now();
    let at = |k: &str| {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|t| netctl_engine::when::parse(t, now))
            .transpose()
    };
    let since = at("since")?;
    let until = at("until")?;
    let filter = EventFilter::parse(&filters(&q)?)?;
    let engine = d.engine.clone();
    let body = stream::body(move |sink| {
        let opts = EventOptions {
            since,
            until,
            filter,
            cancel: Some(sink.cancel.clone()),
        };
        let _ = netctl_engine::events::read(&engine, &opts, |e| {
            let mut line = serde_json::to_vec(e).unwrap_or_default();
            line.push(b'\n');
            Ok(if sink.send(line) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            })
        });
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /system/df`: images, containers (with their sizes) and volumes (with theirs).
pub async fn df(State(d): State<Daemon>) -> ApiResult<Json<Value>> {
    d.run(|engine| {
        let images = super::images::summaries(engine)?;
        let layers: u64 = images.iter().filter_map(|i| i["Size"].as_u64()).sum();
        let store = netctl_engine::image::ImageStore::open(engine.root())?;
        let all = engine.containers.all()?;
        let lookup = netctl_engine::view::Lookup::read(engine);
        let names = netctl_engine::summary::LinkNames::of(&all);
        let mut containers = Vec::new();
        for c in &all {
            let size = Some(store.find(&c.config.image).map_or(0, |i| i.size));
            containers.push(serde_json::to_value(netctl_engine::summary::summary(
                c,
                names.names(c),
                &lookup,
                size,
            ))?);
        }
        let vstore = netctl_engine::volume::VolumeStore::open(engine.root())?;
        let mut volumes = Vec::new();
        for v in vstore.all()? {
            let mut view = serde_json::to_value(netctl_engine::view::inspect_volume(&vstore, &v))?;
            let users = netctl_engine::container::volume_users(&all, &v.name).len();
            view["UsageData"] =
                json!({"Size": netctl_engine::layer::du(&vstore.data(&v.name)), "RefCount": users});
            volumes.push(view);
        }
        Ok(Json(
            json!({"LayersSize": layers, "Images": images, "Containers": containers,
                        "Volumes": volumes, "BuildCache": []}),
        ))
    })
    .await
}
