//! `netctl attach`: the monitor serves the container's stdio on a unix socket
//! (`<run>/attach/<short id>.sock`). Output goes to every attached client as frames —
//! one byte for the stream (1 stdout, 2 stderr), four for the length (big endian), the
//! bytes — and what a client sends is the container's stdin (for `-i` containers).
//! Ctrl-P Ctrl-Q detaches a client and leaves the container running.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::container::Container;
use crate::engine::Engine;

/// The attached clients of one container, as the monitor keeps them.
#[derive(Clone, Default)]
pub struct Clients(Arc<Mutex<Vec<UnixStream>>>);

impl Clients {
    /// Sends output to every client; a client that went away is dropped.
    pub fn send(&self, stream: u8, bytes: &[u8]) {
        let Ok(mut clients) = self.0.lock() else {
            return;
        };
        if clients.is_empty() {
            return;
        }
        let mut frame = Vec::with_capacity(bytes.len() + 5);
        frame.push(stream);
        frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        frame.extend_from_slice(bytes);
        clients.retain_mut(|c| c.write_all(&frame).is_ok());
    }
}

/// The socket of a container.
pub fn socket_path(engine: &Engine, c: &Container) -> PathBuf {
    engine
        .run_dir
        .join("attach")
        .join(format!("{}.sock", c.config.short_id()))
}

/// Serves attach clients until the monitor exits; `stdin` is the container's stdin, if
/// it reads one.
pub fn serve(path: PathBuf, clients: Clients, stdin: Option<File>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
    let stdin = stdin.map(|f| Arc::new(Mutex::new(f)));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            if let (Some(input), Ok(mut reader)) = (stdin.clone(), client.try_clone()) {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = reader.read(&mut buf) {
                        let Ok(mut f) = input.lock() else { break };
                        if f.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
            if let Ok(mut list) = clients.0.lock() {
                list.push(client);
            }
        }
    });
    Ok(())
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

/// `attach`: relays our stdin (if the container reads one) and its output until it exits
/// or the user detaches; returns the exit code to use.
pub fn attach(engine: &Engine, c: &Container) -> anyhow::Result<Option<i32>> {
    if !c.is_running() {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    let mut stream = UnixStream::connect(socket_path(engine, c))
        .with_context(|| format!("attach to {}", c.config.name))?;
    let _raw = c
        .config
        .tty
        .then(crate::container_cmd::RawTerminal::enter)
        .flatten();
    let detached = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if c.config.interactive || c.config.tty {
        let mut to_ctr = stream.try_clone()?;
        let flag = detached.clone();
        let main = stream.try_clone()?;
        std::thread::spawn(move || {
            let mut keys = DetachKeys::default();
            let mut byte = [0u8; 1];
            while let Ok(1) = std::io::stdin().read(&mut byte) {
                let Some(out) = keys.feed(byte[0]) else {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = main.shutdown(std::net::Shutdown::Both);
                    return;
                };
                if to_ctr.write_all(&out).is_err() {
                    return;
                }
            }
        });
    }
    relay_frames(&mut stream);
    if detached.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(None);
    }
    crate::lifecycle::wait_gone(c.state.monitor_pid, std::time::Duration::from_secs(10));
    let mut c = c.clone();
    Ok(c.reload().ok().map(|()| c.state.exit_code))
}

fn relay_frames(stream: &mut UnixStream) {
    let mut head = [0u8; 5];
    while stream.read_exact(&mut head).is_ok() {
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut data = vec![0u8; len];
        if stream.read_exact(&mut data).is_err() {
            return;
        }
        let _ = if head[0] == 2 {
            std::io::stderr().write_all(&data)
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&data).and_then(|()| out.flush())
        };
    }
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
}
