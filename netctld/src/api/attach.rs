//! `POST /containers/{id}/attach` and `/resize`: a client attached before `start` (the
//! docker CLI's `run`) gets the output from the very start, because the start it waits for
//! keeps the output for it; one attached to a running container gets what comes next.

use std::ops::ControlFlow;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use netctl_engine::container::Container;
use netctl_engine::events::{EventFilter, EventOptions};
use netctl_engine::runtime::attach::{Attachment, DetachKeys, Frame};
use netctl_engine::Engine;

use super::hijack::{self, Input, Output};
use super::{flag, status, ApiError, ApiResult, Daemon, Query};

/// Which streams the client wants.
#[derive(Debug, Clone)]
struct Streams {
    /// What ends the attachment from the client's side (Docker's `detachKeys`).
    keys: DetachKeys,
    /// The output so far first (from the log).
    logs: bool,
    /// Then the live output.
    stream: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

/// `POST /containers/{id}/attach`.
pub async fn attach(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    q: Query,
    mut req: Request,
) -> ApiResult<Response> {
    let keys = match q.get("detachKeys").filter(|k| !k.is_empty()) {
        Some(k) => DetachKeys::parse(k)?,
        None => DetachKeys::default(),
    };
    let streams = Streams {
        keys,
        logs: flag(&q, "logs"),
        stream: flag(&q, "stream"),
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
    };
    let since = netctl_engine::when::now();
    let c = d.run(move |e| Ok(e.containers.find(&id)?)).await?;
    let (response, on) = hijack::upgrade(&mut req)?;
    if !c.is_running() {
        d.attaching
            .lock()
            .map_err(|_| ApiError::internal("the attach table is poisoned"))?
            .insert(c.config.id.clone());
    }
    let engine = d.engine.clone();
    hijack::spawn(on, move |input, output| {
        relay(&engine, &c, since, streams, input, output);
    });
    Ok(response)
}

/// Waits (if it must) for the container to start, then relays until it ends.
fn relay(
    engine: &Engine,
    c: &Container,
    since: netctl_engine::when::Instant,
    streams: Streams,
    input: Input,
    mut output: Output,
) {
    if streams.logs && !past_output(c, &streams, &mut output) {
        return;
    }
    if !streams.stream {
        let _ = output.flush();
        return;
    }
    if !c.is_running() && !started(engine, c, since) {
        return;
    }
    let Ok(mut conn) = Attachment::connect(engine, c) else {
        return;
    };
    if streams.stdin && c.config.interactive {
        if let Ok(to) = conn.input() {
            let keys = streams.keys.clone();
            std::thread::spawn(move || {
                let (mut input, mut to) = (input, to);
                // Detached, the attachment ends (and with it the connection); closed, the
                // container reads end of file.
                let how = match hijack::pump_input(&mut input, &mut to, keys) {
                    hijack::InputEnd::Detached => std::net::Shutdown::Both,
                    hijack::InputEnd::Closed => std::net::Shutdown::Write,
                };
                let _ = to.shutdown(how);
            });
        }
    }
    let tty = c.config.tty;
    while let Some(frame) = conn.next_frame() {
        let bytes = match frame {
            Frame::Exit(_) => break,
            Frame::Stdout(b) if streams.stdout => hijack::frame(tty, false, &b),
            Frame::Stderr(b) if streams.stderr => hijack::frame(tty, true, &b),
            _ => continue,
        };
        if output
            .write_all(&bytes)
            .and_then(|()| output.flush())
            .is_err()
        {
            return;
        }
    }
    let _ = output.flush();
}

/// Writes what the log holds, framed; false when the client went away.
fn past_output(c: &Container, streams: &Streams, output: &mut Output) -> bool {
    let tty = c.config.tty;
    let read = netctl_engine::logs::read(c, Default::default(), |rec| {
        let err = rec.is_stderr();
        if (err && !streams.stderr) || (!err && !streams.stdout) {
            return Ok(());
        }
        output
            .write_all(&hijack::frame(tty, err, rec.log.as_bytes()))
            .map_err(|e| netctl_engine::Error::io("write to the client", e))
    });
    !matches!(read, Err(netctl_engine::Error::Io { .. }))
}

/// Sleeps until the container's `start` (true) or its removal (false).
fn started(engine: &Engine, c: &Container, since: netctl_engine::when::Instant) -> bool {
    let Ok(filter) = EventFilter::parse(&[
        "type=container".into(),
        format!("container={}", c.config.id),
    ]) else {
        return false;
    };
    let opts = EventOptions {
        since: Some(since),
        until: None,
        filter,
        cancel: None,
    };
    let mut outcome = false;
    let _ = netctl_engine::events::read(engine, &opts, |e| {
        Ok(match e.action.as_str() {
            "start" => {
                outcome = true;
                ControlFlow::Break(())
            }
            "destroy" => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
    });
    outcome
}

/// `POST /containers/{id}/resize?h=ROWS&w=COLS`.
pub async fn resize(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let (rows, cols) = size(&q)?;
    d.run(move |engine| {
        let c = engine.containers.find(&id)?;
        if !c.is_running() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Container {} is not running", c.config.id),
            ));
        }
        netctl_engine::runtime::attach::resize(engine, &c, rows, cols)?;
        Ok(status(StatusCode::OK))
    })
    .await
}

/// The `h` and `w` of a resize.
pub fn size(q: &Query) -> ApiResult<(u16, u16)> {
    let dim = |k: &str| -> ApiResult<u16> {
        q.get(k)
            .map_or(Ok(0), |v| v.parse())
            .map_err(|_| ApiError::bad_request(format!("invalid {k}: a number of cells")))
    };
    Ok((dim("h")?, dim("w")?))
}
