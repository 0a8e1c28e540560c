//! `/containers`: create, start, stop, restart, kill, pause, unpause, wait, inspect, list,
//! logs, top, rename, update, prune, remove.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use netctl_engine::container::Container;
use netctl_engine::logs::LogOptions;
use netctl_engine::manage::WaitCondition;
use netctl_engine::summary::ListOptions;
use netctl_engine::Engine;
use serde_json::{json, Value};

use super::create::{CreateBody, ResourcesBody, RestartPolicy};
use super::{body, filters, flag, status, stream, ApiError, ApiResult, Daemon, Query};

/// The routes.
pub fn routes() -> Router<Daemon> {
    Router::new()
        .route("/containers/json", get(list))
        .route("/containers/create", post(create))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}", axum::routing::delete(remove))
        .route(
            "/containers/{id}/{alias}",
            axum::routing::delete(remove_parents_link),
        )
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/logs", get(logs))
}

fn find(engine: &Engine, key: &str) -> ApiResult<Container> {
    Ok(engine.containers.find(key)?)
}

async fn list(State(d): State<Daemon>, q: Query) -> ApiResult<Json<Vec<Value>>> {
    let opts = ListOptions {
        all: flag(&q, "all"),
        limit: q
            .get("limit")
            .and_then(|l| l.parse::<i64>().ok())
            .filter(|&l| l > 0)
            .and_then(|l| usize::try_from(l).ok()),
        filters: filters(&q)?,
    };
    let size = flag(&q, "size");
    d.run(move |engine| {
        let images = netctl_engine::image::ImageStore::open(engine.root())?;
        let lookup = netctl_engine::view::Lookup::read(engine);
        let mut out = Vec::new();
        let listing = netctl_engine::summary::list(engine, &opts)?;
        for c in &listing.shown {
            let image_size = size.then(|| images.find(&c.config.image).map_or(0, |i| i.size));
            out.push(serde_json::to_value(netctl_engine::summary::summary(
                c,
                listing.names.names(c),
                &lookup,
                image_size,
            ))?);
        }
        Ok(Json(out))
    })
    .await
}

async fn create(
    State(d): State<Daemon>,
    q: Query,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = q.get("name").filter(|n| !n.is_empty()).cloned();
    let spec = body::<CreateBody>(&bytes)?.spec(name)?;
    d.run(move |engine| {
        let (c, warnings) =
            netctl_engine::lifecycle::create(engine, &spec).map_err(missing_image_only)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({"Id": c.config.id, "Warnings": warnings})),
        ))
    })
    .await
}

/// A create's 404 means "no such image" to the docker CLI, which then pulls: anything else
/// missing (a network, a container to share) is a 400 with the same words.
fn missing_image_only(e: netctl_engine::Error) -> ApiError {
    let image = matches!(
        e.root(),
        netctl_engine::Error::NotFound {
            kind: netctl_engine::Kind::Image,
            ..
        }
    );
    let mut out = ApiError::from(e);
    if !image && out.status == StatusCode::NOT_FOUND {
        out.status = StatusCode::BAD_REQUEST;
    }
    out
}

async fn inspect(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let execs = d.execs.clone();
    d.run(move |engine| {
        let c = find(engine, &id)?;
        let mut view = netctl_engine::view::inspect(engine, &c);
        view.exec_ids = super::exec::live_ids(&execs, &c.config.id);
        Ok(Json(serde_json::to_value(view)?))
    })
    .await
}

async fn start(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Response> {
    let attaching = d.attaching.clone();
    d.run(move |engine| {
        let c = find(engine, &id)?;
        if c.is_running() {
            return Ok(status(StatusCode::NOT_MODIFIED));
        }
        // A client attached and waits: the monitor keeps the output from the start for it.
        let attached = attaching
            .lock()
            .map_err(|_| ApiError::internal("the attach table is poisoned"))?
            .remove(&c.config.id);
        netctl_engine::lifecycle::start(engine, &c, attached, None)?;
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

/// The `t` query: seconds before SIGKILL.
fn timeout(q: &Query) -> ApiResult<Option<Duration>> {
    q.get("t")
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>()
                .map(|n| Duration::from_secs(u64::try_from(n).unwrap_or(0)))
                .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}")))
        })
        .transpose()
}

async fn stop(State(d): State<Daemon>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let t = timeout(&q)?;
    d.run(move |engine| {
        let c = find(engine, &id)?;
        if !c.is_running() {
            return Ok(status(StatusCode::NOT_MODIFIED));
        }
        netctl_engine::lifecycle::stop(engine, &c, t)?;
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

async fn restart(State(d): State<Daemon>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let t = timeout(&q)?;
    d.run(move |engine| {
        let c = find(engine, &id)?;
        netctl_engine::lifecycle::restart(engine, &c, t)?;
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

async fn kill(State(d): State<Daemon>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .map_or("KILL", String::as_str);
    let sig = netctl_engine::spec::parse_signal(signal)?;
    d.run(move |engine| {
        let c = find(engine, &id)?;
        if !c.is_running() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Container {} is not running", c.config.id),
            ));
        }
        netctl_engine::lifecycle::kill(engine, &c, sig)?;
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

async fn pause(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Response> {
    freeze(d, id, true).await
}

async fn unpause(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Response> {
    freeze(d, id, false).await
}

async fn freeze(d: Daemon, id: String, frozen: bool) -> ApiResult<Response> {
    d.run(move |engine| {
        let c = find(engine, &id)?;
        netctl_engine::manage::pause(engine, &c, frozen)?;
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

/// `POST /containers/{id}/wait`: the status line goes out at once (the docker CLI starts
/// the container only after it), the result when the condition is met.
async fn wait(State(d): State<Daemon>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let condition: WaitCondition = q
        .get("condition")
        .map_or("", String::as_str)
        .parse()
        .map_err(ApiError::from)?;
    let since = netctl_engine::when::now();
    let c = d.run(move |engine| find(engine, &id)).await?;
    let engine = d.engine.clone();
    let body = stream::body(move |sink| {
        let result = netctl_engine::manage::wait(&engine, &c, condition, since, Some(&sink.cancel));
        let answer = match result {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.report()}}),
        };
        let mut bytes = answer.to_string().into_bytes();
        bytes.push(b'\n');
        sink.send(bytes);
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn remove(State(d): State<Daemon>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let (force, volumes) = (flag(&q, "force"), flag(&q, "v"));
    if flag(&q, "link") {
        return remove_link(d, id).await;
    }
    d.run(move |engine| {
        let c = find(engine, &id)?;
        netctl_engine::lifecycle::remove(engine, &c, force, volumes)?;
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

/// `DELETE /containers/{parent}/{alias}?link=1`: a legacy link (its name has a slash).
async fn remove_parents_link(
    State(d): State<Daemon>,
    Path((parent, alias)): Path<(String, String)>,
    q: Query,
) -> ApiResult<Response> {
    if !flag(&q, "link") {
        return Err(ApiError::not_found(format!(
            "No such container: {parent}/{alias}"
        )));
    }
    remove_link(d, format!("{parent}/{alias}")).await
}

async fn remove_link(d: Daemon, name: String) -> ApiResult<Response> {
    d.run(move |engine| {
        netctl_engine::manage::remove_link(engine, &name)?;
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

async fn rename(State(d): State<Daemon>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let name = q.get("name").cloned().unwrap_or_default();
    d.run(move |engine| {
        let c = find(engine, &id)?;
        netctl_engine::manage::rename(engine, &c, name.trim_start_matches('/'))?;
        Ok(status(StatusCode::NO_CONTENT))
    })
    .await
}

/// `POST /containers/{id}/update`'s body: limits and a restart policy.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateBody {
    #[serde(flatten)]
    resources: ResourcesBody,
    restart_policy: Option<RestartPolicy>,
}

async fn update(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let req = body::<UpdateBody>(&bytes)?;
    let update = netctl_engine::manage::UpdateRequest {
        resources: req.resources.resources()?,
        restart: req.restart_policy.map(RestartPolicy::request),
    };
    d.run(move |engine| {
        let c = find(engine, &id)?;
        let warnings = netctl_engine::manage::update(engine, &c, &update)?;
        Ok(Json(json!({ "Warnings": warnings })))
    })
    .await
}

async fn top(State(d): State<Daemon>, Path(id): Path<String>, q: Query) -> ApiResult<Json<Value>> {
    let args: Vec<String> = q
        .get("ps_args")
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    d.run(move |engine| {
        let c = find(engine, &id)?;
        let top = netctl_engine::manage::top(&c, &args)?;
        Ok(Json(
            json!({"Titles": top.titles, "Processes": top.processes}),
        ))
    })
    .await
}

async fn prune(State(d): State<Daemon>, q: Query) -> ApiResult<Json<Value>> {
    if !filters(&q)?.is_empty() {
        return Err(ApiError::bad_request(
            "netctl prunes containers without filters",
        ));
    }
    d.run(|engine| {
        let pruned = netctl_engine::system::prune_containers(engine)?;
        Ok(Json(json!({
            "ContainersDeleted": pruned.deleted,
            "SpaceReclaimed": pruned.reclaimed
        })))
    })
    .await
}

async fn logs(State(d): State<Daemon>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let (stdout, stderr) = (flag(&q, "stdout"), flag(&q, "stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let now = netctl_engine::when::now();
    let at = |k: &str| {
        q.get(k)
            .filter(|v| !v.is_empty() && v.as_str() != "0")
            .map(|t| netctl_engine::when::parse(t, now))
            .transpose()
    };
    let (since, until) = (at("since")?, at("until")?);
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("" | "all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail: {n}")))?,
        ),
    };
    let (follow, timestamps) = (flag(&q, "follow"), flag(&q, "timestamps"));
    let c = d.run(move |engine| find(engine, &id)).await?;
    if c.config.log_driver == netctl_engine::container::LogDriver::None {
        return Err(ApiError::bad_request(
            "configured logging driver does not support reading",
        ));
    }
    let tty = c.config.tty;
    let body = stream::body(move |sink| {
        let opts = LogOptions {
            follow,
            tail,
            since,
            until,
            cancel: Some(sink.cancel.clone()),
        };
        let _ = netctl_engine::logs::read(&c, opts, |rec| {
            let err = rec.is_stderr();
            if (err && !stderr) || (!err && !stdout) {
                return Ok(());
            }
            let text = if timestamps {
                format!("{} {}", rec.time, rec.log)
            } else {
                rec.log.clone()
            };
            if sink.send(super::hijack::frame(tty, err, text.as_bytes())) {
                Ok(())
            } else {
                Err(netctl_engine::Error::State("the client went away".into()))
            }
        });
    })?;
    // API 1.41 names both framings raw-stream; the framing follows the terminal.
    Ok((
        [(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")],
        body,
    )
        .into_response())
}
