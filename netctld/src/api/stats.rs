//! `GET /containers/{id}/stats`: Docker's stats object, once or every second, from the
//! engine's samples (CPU time, memory against the limit, network and block I/O, tasks).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use netctl_engine::container::Container;
use netctl_engine::stats::Sample;
use serde_json::{json, Value};

use super::{stream, ApiResult, Daemon, Query};

/// One stats object: `now` with `before` as its "pre" reading.
fn object(c: &Container, before: Option<(&Sample, &str)>, now: &Sample, read: &str) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = |s: Option<&Sample>| {
        json!({"cpu_usage": {"total_usage": s.map_or(0, |s| s.cpu), "usage_in_kernelmode": 0,
                             "usage_in_usermode": 0},
               "system_cpu_usage": s.map_or(0, |s| s.system), "online_cpus": cpus,
               "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}})
    };
    json!({
        "read": read, "preread": before.map_or("0001-01-01T00:00:00Z", |(_, at)| at),
        "name": format!("/{}", c.config.name), "id": c.config.id,
        "pids_stats": {"current": now.pids},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": now.block.0},
            {"major": 0, "minor": 0, "op": "write", "value": now.block.1}]},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": cpu(Some(now)), "precpu_stats": cpu(before.map(|(s, _)| s)),
        "memory_stats": {"usage": now.memory, "limit": now.limit, "stats": {}},
        "networks": {"eth0": {"rx_bytes": now.net.0, "tx_bytes": now.net.1, "rx_packets": 0,
                               "tx_packets": 0, "rx_errors": 0, "tx_errors": 0,
                               "rx_dropped": 0, "tx_dropped": 0}}
    })
}

/// `stream` (default true): an object every second until the client leaves or the
/// container stops; else one (`one-shot`: without waiting for a second reading).
pub async fn stats(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let streaming = q
        .get("stream")
        .is_none_or(|v| !matches!(v.as_str(), "0" | "false" | "False"));
    let one_shot = super::flag(&q, "one-shot");
    let c = d.run(move |e| Ok(e.containers.find(&id)?)).await?;
    let body = stream::body(move |sink| {
        let now_text = netctl_engine::clock::now_rfc3339;
        let mut before: Option<(Sample, String)> = None;
        loop {
            let Ok(sample) = netctl_engine::stats::sample(&c) else {
                return;
            };
            let at = now_text();
            let pre = before.as_ref().map(|(s, t)| (s, t.as_str()));
            let done = !streaming && (one_shot || pre.is_some());
            if streaming || done {
                let mut line = object(&c, pre, &sample, &at).to_string().into_bytes();
                line.push(b'\n');
                if !sink.send(line) {
                    return;
                }
            }
            if done {
                return;
            }
            before = Some((sample, at));
            if sink.cancel.is_cancelled() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
