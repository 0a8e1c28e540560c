//! `exec`: `POST /containers/{id}/exec` makes an instance, `POST /exec/{id}/start` runs it
//! (its stdio over the hijacked connection, or detached), `GET /exec/{id}/json` says how it
//! ended. The command runs through the engine's exec helper, never in the daemon.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use netctl_engine::container::Container;
use netctl_engine::runtime::attach::DetachKeys;
use netctl_engine::runtime::exec::{ExecRequest, Resizer};
use netctl_engine::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::hijack::{self, Input, Output};
use super::{body, status, ApiError, ApiResult, Daemon};

/// Instances kept at most; the oldest finished ones go first.
const KEPT: usize = 4096;

/// The exec instances the daemon knows.
pub type Execs = Arc<Mutex<HashMap<String, ExecRecord>>>;

/// One exec instance.
#[derive(Debug, Clone, Default)]
pub struct ExecRecord {
    container: String,
    cmd: Vec<String>,
    env: Vec<String>,
    user: String,
    workdir: String,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    running: bool,
    started: bool,
    exit_code: Option<i32>,
    pid: u32,
    made: u64,
    /// What ends an attached stdin without ending the command, and as it was given.
    keys: DetachKeys,
    detach_keys: String,
    /// How its terminal is resized while its command runs.
    resizer: Option<Arc<Resizer>>,
}

/// `POST /containers/{id}/exec`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    user: String,
    working_dir: String,
    privileged: bool,
    /// docker-py spells it `detachKeys` (Go matches JSON names without regard to case).
    #[serde(alias = "detachKeys")]
    detach_keys: String,
}

fn lock(execs: &Execs) -> ApiResult<std::sync::MutexGuard<'_, HashMap<String, ExecRecord>>> {
    execs
        .lock()
        .map_err(|_| ApiError::internal("the exec table is poisoned"))
}

/// `POST /containers/{id}/exec`.
pub async fn create(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req = body::<CreateBody>(&bytes)?;
    let keys = match req.detach_keys.as_str() {
        "" => DetachKeys::default(),
        k => DetachKeys::parse(k)?,
    };
    let cmd = req.cmd.unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    if req.privileged {
        return Err(ApiError::bad_request(
            "netctl runs exec with the container's own privileges: --privileged is not supported",
        ));
    }
    let c = d.run(move |e| Ok(e.containers.find(&id)?)).await?;
    if !c.is_running() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Container {} is not running", c.config.id),
        ));
    }
    if c.state.paused {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Container {} is paused, unpause the container before exec",
                c.config.id
            ),
        ));
    }
    let exec_id = netctl_engine::ids::random_id()?;
    let record = ExecRecord {
        container: c.config.id.clone(),
        cmd,
        env: req.env.unwrap_or_default(),
        user: req.user,
        workdir: req.working_dir,
        tty: req.tty,
        stdin: req.attach_stdin,
        stdout: req.attach_stdout,
        stderr: req.attach_stderr,
        made: netctl_engine::when::now().as_secs(),
        keys,
        detach_keys: req.detach_keys,
        ..ExecRecord::default()
    };
    let mut all = lock(&d.execs)?;
    if all.len() >= KEPT {
        let oldest = all
            .iter()
            .filter(|(_, r)| !r.running)
            .min_by_key(|(_, r)| r.made)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            all.remove(&k);
        }
    }
    all.insert(exec_id.clone(), record);
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))))
}

/// `POST /exec/{id}/start`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    /// Whether the client reads the output raw (a terminal) or in Docker's frames: the
    /// start's choice, not the instance's (docker-py reads a terminal's output framed).
    tty: bool,
    console_size: Option<Vec<u16>>,
}

/// `POST /exec/{id}/start`.
pub async fn start(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let bytes = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("read the body: {e}")))?;
    let opts = body::<StartBody>(&bytes)?;
    let record = {
        let mut all = lock(&d.execs)?;
        let r = all
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
        if r.started {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Error: Exec command {id} is already running"),
            ));
        }
        r.started = true;
        r.clone()
    };
    let size = match opts.console_size.as_deref() {
        Some([h, w]) if *h > 0 && *w > 0 => (*h, *w),
        _ => (24, 80),
    };
    let (engine, execs) = (d.engine.clone(), d.execs.clone());
    if opts.detach {
        d.run(move |e| {
            let c = e.containers.find(&record.container)?;
            let null = (Stdio::null(), Stdio::null(), Stdio::null());
            let (child, resizer) = spawn(e, &c, (&id, &record), size, null)?;
            track(&execs, &id, (child.id(), resizer));
            std::thread::spawn(move || {
                let code = netctl_engine::runtime::exec::finish(&engine, &c, child).ok();
                ended(&execs, &id, code);
            });
            Ok(status(StatusCode::OK))
        })
        .await
    } else {
        let (response, on) = hijack::upgrade(&mut req)?;
        let raw = opts.tty;
        hijack::spawn(on, move |input, output| {
            let client = Client {
                input,
                output: Arc::new(Mutex::new(Some(output))),
                raw,
            };
            relay(&engine, &execs, &id, &record, size, client);
        });
        Ok(response.into_response())
    }
}

/// A started command and the way to resize its terminal.
type Started = (std::process::Child, Option<Arc<Resizer>>);

/// Starts instance `id`'s command through the engine's helper (with a terminal, the way to
/// resize it).
fn spawn(
    engine: &Engine,
    c: &Container,
    (id, r): (&str, &ExecRecord),
    size: (u16, u16),
    stdio: (Stdio, Stdio, Stdio),
) -> netctl_engine::Result<Started> {
    let resizer = r
        .tty
        .then(|| Resizer::create(engine, id))
        .transpose()?
        .map(Arc::new);
    let req = ExecRequest {
        command: &r.cmd,
        env: &r.env,
        workdir: Some(r.workdir.as_str()).filter(|w| !w.is_empty()),
        interactive: r.stdin,
        user: Some(r.user.as_str()).filter(|u| !u.is_empty()),
        tty: r.tty.then_some(size),
        resize: resizer.as_deref().map(Resizer::path),
    };
    let child = netctl_engine::runtime::exec::spawn(engine, c, &req, stdio)?;
    Ok((child, resizer))
}

/// A container's exec instances that have not ended (Docker's `ExecIDs`), none when none.
pub fn live_ids(execs: &Execs, container: &str) -> Option<Vec<String>> {
    let all = execs.lock().ok()?;
    let mut ids: Vec<(u64, String)> = all
        .iter()
        .filter(|(_, r)| r.container == container && r.exit_code.is_none())
        .map(|(id, r)| (r.made, id.clone()))
        .collect();
    ids.sort();
    let ids: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
    (!ids.is_empty()).then_some(ids)
}

fn track(execs: &Execs, id: &str, (pid, resizer): (u32, Option<Arc<Resizer>>)) {
    if let Ok(mut all) = execs.lock() {
        if let Some(r) = all.get_mut(id) {
            r.running = true;
            r.pid = pid;
            r.resizer = resizer;
        }
    }
}

fn ended(execs: &Execs, id: &str, code: Option<i32>) {
    if let Ok(mut all) = execs.lock() {
        if let Some(r) = all.get_mut(id) {
            r.running = false;
            r.exit_code = Some(code.unwrap_or(126));
            r.resizer = None;
        }
    }
}

/// The client's side of a started instance: its input, its output (gone once it
/// detached), and whether the output goes raw or framed.
struct Client {
    input: Input,
    output: Arc<Mutex<Option<Output>>>,
    raw: bool,
}

/// Runs the command with its stdio on the hijacked connection; the exit code is recorded
/// before the connection closes (the docker CLI reads it right after). Detach keys on stdin
/// end the connection; the command runs on and its exit code is recorded when it ends.
fn relay(
    engine: &Engine,
    execs: &Execs,
    id: &str,
    r: &ExecRecord,
    size: (u16, u16),
    client: Client,
) {
    let stdin = if r.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let Client { input, output, raw } = client;
    let started = engine.containers.find(&r.container).and_then(|c| {
        Ok((
            spawn(
                engine,
                &c,
                (id, r),
                size,
                (stdin, Stdio::piped(), Stdio::piped()),
            )?,
            c,
        ))
    });
    let ((mut child, resizer), c) = match started {
        Ok(started) => started,
        Err(e) => {
            let missing = matches!(e.root(), netctl_engine::Error::CommandNotFound(_));
            ended(execs, id, Some(if missing { 127 } else { 126 }));
            let text = format!("OCI runtime exec failed: {}\r\n", e.report());
            if let Ok(mut out) = output.lock() {
                if let Some(out) = out.as_mut() {
                    let _ = out.write_all(&hijack::frame(raw, false, text.as_bytes()));
                }
            }
            return;
        }
    };
    track(execs, id, (child.id(), resizer));
    if let Some(mut to) = child.stdin.take() {
        let (mut input, keys, out) = (input, r.keys.clone(), output.clone());
        std::thread::spawn(move || {
            if hijack::pump_input(&mut input, &mut to, keys) == hijack::InputEnd::Detached {
                // The connection ends with both halves: the output here, the input below.
                if let Ok(mut o) = out.lock() {
                    o.take();
                }
            }
        });
    }
    let copiers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| (Box::new(s) as Box<dyn Read + Send>, false, r.stdout)),
        child
            .stderr
            .take()
            .map(|s| (Box::new(s) as Box<dyn Read + Send>, true, r.stderr)),
    ]
    .into_iter()
    .flatten()
    .map(|(from, err, wanted)| {
        let out = output.clone();
        std::thread::spawn(move || copy_framed(from, &out, raw, err, wanted))
    })
    .collect();
    for c in copiers {
        let _ = c.join();
    }
    let code = netctl_engine::runtime::exec::finish(engine, &c, child).ok();
    ended(execs, id, code);
    // The output ends here, though the input's pump still holds the shared slot: the
    // client reads the end of the stream once the command has ended.
    let last = output.lock().map(|mut out| out.take());
    drop(last);
}

/// Copies one of the command's outputs to the client, framed (dropped when not wanted, or
/// once the client detached: the command must not block on a full pipe).
fn copy_framed(
    mut from: Box<dyn Read + Send>,
    out: &Mutex<Option<Output>>,
    raw: bool,
    err: bool,
    wanted: bool,
) {
    let mut buf = [0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !wanted {
            continue;
        }
        let Ok(mut o) = out.lock() else { return };
        let Some(o) = o.as_mut() else { continue };
        let chunk = buf.get(..n).unwrap_or_default();
        if o.write_all(&hijack::frame(raw, err, chunk))
            .and_then(|()| o.flush())
            .is_err()
        {
            return;
        }
    }
}

/// `GET /exec/{id}/json`.
pub async fn inspect(State(d): State<Daemon>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let all = lock(&d.execs)?;
    let r = all
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
    let (entry, args) = r
        .cmd
        .split_first()
        .map_or(("", &[][..]), |(e, a)| (e.as_str(), a));
    Ok(Json(json!({
        "ID": id, "ContainerID": r.container, "Running": r.running, "ExitCode": r.exit_code,
        "Pid": r.pid, "OpenStdin": r.stdin, "OpenStdout": r.stdout, "OpenStderr": r.stderr,
        "CanRemove": false, "DetachKeys": r.detach_keys,
        "ProcessConfig": {"entrypoint": entry, "arguments": args, "tty": r.tty,
                          "privileged": false, "user": r.user}
    })))
}

/// `POST /exec/{id}/resize?h=&w=`: the terminal of a running instance takes the new size.
pub async fn resize(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    q: super::Query,
) -> ApiResult<Response> {
    let size = |k: &str| {
        q.get(k)
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("{k}: give a number of 1 to 65535")))
    };
    let (rows, cols) = (size("h")?, size("w")?);
    let resizer = {
        let all = lock(&d.execs)?;
        let r = all
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
        match (&r.resizer, r.tty) {
            (Some(resizer), _) => resizer.clone(),
            (None, false) => {
                return Err(ApiError::bad_request(format!(
                    "exec instance {id} has no terminal to resize"
                )))
            }
            (None, true) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("exec instance {id} is not running"),
                ))
            }
        }
    };
    d.run(move |_| Ok(resizer.resize(rows, cols)?)).await?;
    Ok(status(StatusCode::OK))
}
