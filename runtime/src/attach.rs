//! Attaching: the monitor serves the container's stdio on a unix socket
//! (`<run>/attach/<short id>.sock`). Output goes to every attached client as frames —
//! one byte for the stream (1 stdout, 2 stderr, 3 the exit code once the container is
//! gone), four for the length (big endian), the bytes — and what a client sends is the
//! container's stdin (for `-i` containers). A connection opens with one byte: `a` for such a
//! client, `w` + rows + columns (two big-endian u16 each) to resize a `-t` container's
//! terminal. An attached `run`, `start -a` and `attach` are all clients; Ctrl-P Ctrl-Q
//! detaches one and leaves the container running.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::container::Container;
use crate::engine::Engine;

/// Output kept for the first client of an attached `run` (beyond it, the log has it).
const BACKLOG_MAX: usize = 1 << 20;
/// How long an attached `run`'s monitor waits for its client before giving up on it.
const FIRST_CLIENT_WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Inner {
    clients: Vec<UnixStream>,
    /// Frames kept until the first client arrives (attached `run` / `start -a`).
    backlog: Option<Vec<u8>>,
}

/// The attached clients of one container, as the monitor keeps them.
#[derive(Clone, Default)]
pub struct Clients(Arc<Mutex<Inner>>);

fn frame(stream: u8, bytes: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(bytes.len() + 5);
    f.push(stream);
    f.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    f.extend_from_slice(bytes);
    f
}

impl Clients {
    /// Clients whose first one gets all output from the start (the CLI of an attached run).
    pub fn holding() -> Self {
        let c = Self::default();
        if let Ok(mut inner) = c.0.lock() {
            inner.backlog = Some(Vec::new());
        }
        c
    }

    /// Sends output to every client; a client that went away is dropped.
    pub fn send(&self, stream: u8, bytes: &[u8]) {
        let Ok(mut inner) = self.0.lock() else {
            return;
        };
        if inner.clients.is_empty() && inner.backlog.is_none() {
            return;
        }
        let f = frame(stream, bytes);
        if let Some(backlog) = inner.backlog.as_mut() {
            if backlog.len() + f.len() <= BACKLOG_MAX {
                backlog.extend_from_slice(&f);
            }
            return;
        }
        inner.clients.retain_mut(|c| c.write_all(&f).is_ok());
    }

    fn add(&self, mut client: UnixStream) {
        let Ok(mut inner) = self.0.lock() else {
            return;
        };
        if let Some(backlog) = inner.backlog.take() {
            if client.write_all(&backlog).is_err() {
                return;
            }
        }
        inner.clients.push(client);
    }

    /// Tells every client the exit code and lets them go; an attached run's client that has
    /// not come yet is waited for a while.
    pub fn finish(&self, code: i32) {
        let deadline = Instant::now() + FIRST_CLIENT_WAIT;
        while Instant::now() < deadline && self.0.lock().is_ok_and(|i| i.backlog.is_some()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.send(3, code.to_string().as_bytes());
        if let Ok(mut inner) = self.0.lock() {
            inner.clients.clear();
        }
    }
}

/// The socket of a container.
pub fn socket_path(engine: &Engine, c: &Container) -> PathBuf {
    engine
        .run_dir
        .join("attach")
        .join(format!("{}.sock", c.config.short_id()))
}

/// Binds a container's socket.
pub fn listen(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))
}

/// The container's stdin as clients write to it; closed when a client ends its input
/// (for a terminal, whose end of input is a key, it stays open).
pub struct Stdin {
    file: Arc<Mutex<Option<File>>>,
    close_on_eof: bool,
}

impl Stdin {
    /// Clients write to `file`; `close_on_eof` for a pipe.
    pub fn new(file: File, close_on_eof: bool) -> Self {
        Self {
            file: Arc::new(Mutex::new(Some(file))),
            close_on_eof,
        }
    }

    fn feed(&self, mut from: UnixStream) {
        let (file, close) = (self.file.clone(), self.close_on_eof);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                let Ok(mut f) = file.lock() else { return };
                if f.as_mut().is_none_or(|f| f.write_all(&buf[..n]).is_err()) {
                    return;
                }
            }
            if close {
                if let Ok(mut f) = file.lock() {
                    f.take();
                }
            }
        });
    }
}

/// Serves attach clients until the monitor exits; `terminal` is the master of a `-t`
/// container's terminal, for resizes.
pub fn serve(
    listener: UnixListener,
    clients: Clients,
    stdin: Option<Stdin>,
    terminal: Option<File>,
) {
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let mut kind = [0u8; 1];
            if client.read_exact(&mut kind).is_err() {
                continue;
            }
            if kind[0] == b'w' {
                resize(&mut client, terminal.as_ref());
                continue;
            }
            if let (Some(input), Ok(reader)) = (stdin.as_ref(), client.try_clone()) {
                input.feed(reader);
            }
            clients.add(client);
        }
    });
}

fn resize(client: &mut UnixStream, terminal: Option<&File>) {
    let mut size = [0u8; 4];
    if let (Ok(()), Some(t)) = (client.read_exact(&mut size), terminal) {
        let _ = rustix::termios::tcsetwinsize(
            t,
            winsize(
                u16::from_be_bytes([size[0], size[1]]),
                u16::from_be_bytes([size[2], size[3]]),
            ),
        );
    }
}

/// A terminal size.
pub fn winsize(rows: u16, cols: u16) -> rustix::termios::Winsize {
    rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Sends our terminal's size to a `-t` container now and whenever it changes (SIGWINCH).
/// Call before starting other threads: they must inherit SIGWINCH blocked.
fn follow_window_size(path: PathBuf) {
    use nix::sys::signal::{SigSet, Signal};
    let send = move || {
        let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) else {
            return;
        };
        if let Ok(mut s) = UnixStream::connect(&path) {
            let mut msg = vec![b'w'];
            msg.extend_from_slice(&size.ws_row.to_be_bytes());
            msg.extend_from_slice(&size.ws_col.to_be_bytes());
            let _ = s.write_all(&msg);
        }
    };
    send();
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    if set.thread_block().is_err() {
        return;
    }
    let Ok(fd) = nix::sys::signalfd::SignalFd::new(&set) else {
        return;
    };
    std::thread::spawn(move || {
        while let Ok(Some(_)) = fd.read_signal() {
            send();
        }
    });
}

/// Watches typed bytes for the detach keys, Ctrl-P Ctrl-Q.
#[derive(Default)]
struct DetachKeys {
    pending: bool,
}

impl DetachKeys {
    /// The bytes to pass on for one typed byte; None when the user detached.
    fn feed(&mut self, b: u8) -> Option<Vec<u8>> {
        if self.pending && b == 0x11 {
            return None;
        }
        let mut out = Vec::new();
        if self.pending {
            out.push(0x10);
        }
        self.pending = b == 0x10;
        if !self.pending {
            out.push(b);
        }
        Some(out)
    }
}

/// `attach`: to a running container.
pub fn attach(engine: &Engine, c: &Container) -> anyhow::Result<Option<i32>> {
    if !c.is_running() {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    attach_client(engine, c)
}

/// Relays our stdin (for `-i`; with `-t` too, Ctrl-P Ctrl-Q detaches),
/// its output, and (without a terminal) our signals, until the container ends or the user
/// detaches: the exit code, None when detached.
pub fn attach_client(engine: &Engine, c: &Container) -> anyhow::Result<Option<i32>> {
    let path = socket_path(engine, c);
    let mut stream =
        UnixStream::connect(&path).with_context(|| format!("attach to {}", c.config.name))?;
    stream.write_all(b"a")?;
    if c.config.tty {
        follow_window_size(path);
    }
    let _raw = c
        .config
        .tty
        .then(crate::container_cmd::RawTerminal::enter)
        .flatten();
    if !c.config.tty {
        crate::lifecycle::proxy_signals(c);
    }
    let detached = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if c.config.interactive {
        let (to_ctr, flag, tty) = (stream.try_clone()?, detached.clone(), c.config.tty);
        std::thread::spawn(move || relay_stdin(to_ctr, tty, &flag));
    }
    let code = relay_frames(&mut stream);
    if detached.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(None);
    }
    match code {
        Some(code) => Ok(Some(code)),
        None => {
            crate::lifecycle::wait_gone(c.state.monitor_pid, Duration::from_secs(10));
            let mut c = c.clone();
            Ok(c.reload().ok().map(|()| c.state.exit_code))
        }
    }
}

fn relay_stdin(mut to_ctr: UnixStream, tty: bool, detached: &std::sync::atomic::AtomicBool) {
    let mut keys = DetachKeys::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = match std::io::stdin().read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n);
        for &b in &buf[..n] {
            match (tty, keys.feed(b)) {
                (true, None) => {
                    detached.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = to_ctr.shutdown(std::net::Shutdown::Both);
                    return;
                }
                (true, Some(bytes)) => out.extend(bytes),
                (false, _) => out.push(b),
            }
        }
        if to_ctr.write_all(&out).is_err() {
            return;
        }
    }
    let _ = to_ctr.shutdown(std::net::Shutdown::Write);
}

/// Writes output frames to our stdout/stderr; the exit code when the container ended.
fn relay_frames(stream: &mut UnixStream) -> Option<i32> {
    let mut head = [0u8; 5];
    while stream.read_exact(&mut head).is_ok() {
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut data = vec![0u8; len];
        if stream.read_exact(&mut data).is_err() {
            return None;
        }
        let _ = match head[0] {
            3 => return String::from_utf8_lossy(&data).parse().ok(),
            2 => std::io::stderr().write_all(&data),
            _ => {
                let mut out = std::io::stdout().lock();
                out.write_all(&data).and_then(|()| out.flush())
            }
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_p_ctrl_q_detaches_and_other_bytes_pass_through() {
        let mut k = DetachKeys::default();
        assert_eq!(k.feed(b'a'), Some(vec![b'a']));
        assert_eq!(k.feed(0x10), Some(vec![]));
        assert_eq!(k.feed(b'q'), Some(vec![0x10, b'q']));
        assert_eq!(k.feed(0x11), Some(vec![0x11]));
        assert_eq!(k.feed(0x10), Some(vec![]));
        assert_eq!(k.feed(0x11), None);
    }

    #[test]
    fn the_first_client_gets_the_backlog_then_live_output_and_the_exit_code() {
        let clients = Clients::holding();
        clients.send(1, b"early\n");
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        // (a client's opening byte is read by `serve`, not `add`)
        clients.add(ours);
        clients.send(2, b"late\n");
        clients.finish(7);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        let want = [frame(1, b"early\n"), frame(2, b"late\n"), frame(3, b"7")].concat();
        assert_eq!(got, want);
    }
}
