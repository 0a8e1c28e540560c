//! Attaching: the monitor serves the container's stdio on a unix socket
//! (`<run>/attach/<short id>.sock`). Output goes to every attached client as frames —
//! one byte for the stream (1 stdout, 2 stderr, 3 the exit code once the container is
//! gone), four for the length (big endian), the bytes — and what a client sends is the
//! container's stdin (for `-i` containers). A connection opens with one byte: `a` for such a
//! client, `w` + rows + columns (two big-endian u16 each) to resize a `-t` container's
//! terminal. An attached `run`, `start -a` and `attach` are all clients ([`Attachment`]).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Context, Result};

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
        .run_dir()
        .join("attach")
        .join(format!("{}.sock", c.config.short_id()))
}

/// Binds a container's socket.
pub fn listen(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).ctx(|| format!("bind {}", path.display()))
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

/// The stdin and terminal attach clients reach: the current process's, replaced when the
/// monitor restarts it.
#[derive(Clone, Default)]
pub struct Io(Arc<Mutex<Current>>);

/// The current process's stdin and terminal.
type Current = (Option<Arc<Stdin>>, Option<Arc<File>>);

impl Io {
    /// From now on, clients write to `stdin` and resize `terminal` (a `-t` container's
    /// master).
    pub fn replace(&self, stdin: Option<Stdin>, terminal: Option<File>) {
        if let Ok(mut io) = self.0.lock() {
            *io = (stdin.map(Arc::new), terminal.map(Arc::new));
        }
    }

    fn current(&self) -> Current {
        self.0.lock().map(|io| io.clone()).unwrap_or_default()
    }
}

/// Serves attach clients until the monitor exits.
pub fn serve(listener: UnixListener, clients: Clients, io: Io) {
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let mut kind = [0u8; 1];
            if client.read_exact(&mut kind).is_err() {
                continue;
            }
            let (stdin, terminal) = io.current();
            if kind[0] == b'w' {
                apply_resize(&mut client, terminal.as_deref());
                continue;
            }
            if let (Some(input), Ok(reader)) = (stdin.as_ref(), client.try_clone()) {
                input.feed(reader);
            }
            clients.add(client);
        }
    });
}

fn apply_resize(client: &mut UnixStream, terminal: Option<&File>) {
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

/// One piece of what an attached client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes the container wrote to stdout (or its terminal).
    Stdout(Vec<u8>),
    /// Bytes the container wrote to stderr.
    Stderr(Vec<u8>),
    /// The container ended with this exit code.
    Exit(i32),
}

/// A client's connection to a container's monitor: the container's output as [`Frame`]s,
/// and (for `-i` containers) what is written to [`Attachment::input`] as its stdin.
pub struct Attachment {
    stream: UnixStream,
}

impl Attachment {
    /// Attaches to a running container.
    pub fn connect(engine: &Engine, c: &Container) -> Result<Self> {
        let path = socket_path(engine, c);
        let mut stream =
            UnixStream::connect(&path).ctx(|| format!("attach to {}", c.config.name))?;
        stream
            .write_all(b"a")
            .ctx(|| format!("attach to {}", c.config.name))?;
        Ok(Attachment { stream })
    }

    /// Where to write the container's stdin; shut down writing to end it.
    pub fn input(&self) -> Result<UnixStream> {
        self.stream
            .try_clone()
            .ctx(|| "share the attach connection".into())
    }

    /// The next frame; None when the monitor went away without an exit code.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head).ok()?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut data = vec![0u8; len];
        self.stream.read_exact(&mut data).ok()?;
        Some(match head[0] {
            3 => Frame::Exit(String::from_utf8_lossy(&data).parse().ok()?),
            2 => Frame::Stderr(data),
            _ => Frame::Stdout(data),
        })
    }
}

/// Sets the size of a `-t` container's terminal.
pub fn resize(engine: &Engine, c: &Container, rows: u16, cols: u16) -> Result<()> {
    let path = socket_path(engine, c);
    let mut msg = vec![b'w'];
    msg.extend_from_slice(&rows.to_be_bytes());
    msg.extend_from_slice(&cols.to_be_bytes());
    UnixStream::connect(&path)
        .and_then(|mut s| s.write_all(&msg))
        .ctx(|| format!("resize the terminal of {}", c.config.name))
}

/// A detach key sequence (Docker's `--detach-keys`, `ctrl-p,ctrl-q` by default) and how much
/// of it the input has typed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl Default for DetachKeys {
    fn default() -> Self {
        DetachKeys {
            keys: vec![0x10, 0x11],
            matched: 0,
        }
    }
}

impl DetachKeys {
    /// Parses Docker's form: comma-separated keys, each a single character or `ctrl-X`
    /// (X a letter or one of `@[\\]^_`).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut keys = Vec::new();
        for k in spec.split(',') {
            let b = match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => match c.as_bytes()[0] {
                    l @ b'a'..=b'z' => l - b'a' + 1,
                    s @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_') => s - b'@',
                    _ => crate::error::invalid!("Unknown character: '{c}'"),
                },
                None if k.len() == 1 => k.as_bytes()[0],
                _ => crate::error::invalid!("Unknown character: '{k}'"),
            };
            keys.push(b);
        }
        Ok(DetachKeys { keys, matched: 0 })
    }

    /// The bytes to pass on for one typed byte (a partial match is held back, and given
    /// back when the next byte breaks it); None when the whole sequence was typed.
    pub fn feed(&mut self, b: u8) -> Option<Vec<u8>> {
        if self.keys.get(self.matched) == Some(&b) {
            self.matched += 1;
            if self.matched == self.keys.len() {
                return None;
            }
            return Some(Vec::new());
        }
        let mut out = self.keys[..self.matched].to_vec();
        self.matched = 0;
        if self.keys.first() == Some(&b) {
            self.matched = 1;
        } else {
            out.push(b);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_read_as_dockers_and_held_back_until_broken() {
        let mut k = DetachKeys::default();
        assert_eq!(k.feed(b'a'), Some(vec![b'a']));
        assert_eq!(k.feed(0x10), Some(vec![]));
        assert_eq!(k.feed(b'q'), Some(vec![0x10, b'q']));
        assert_eq!(k.feed(0x10), Some(vec![]));
        assert_eq!(k.feed(0x11), None);
        let mut x = DetachKeys::parse("ctrl-x").unwrap();
        assert_eq!(x.feed(0x18), None);
        assert_eq!(DetachKeys::parse("ctrl-@,a").unwrap().keys, [0, b'a']);
        assert!(DetachKeys::parse("ctrl-1").is_err());
        assert!(DetachKeys::parse("ab").is_err());
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
