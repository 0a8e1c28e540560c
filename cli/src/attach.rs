//! The terminal side of attaching: relays our stdin to the container (for `-i`; with `-t`,
//! Ctrl-P Ctrl-Q detaches), its output to our stdout and stderr, our window size to its
//! terminal, and (without a terminal) our signals to its first process — Docker's
//! sig-proxy. The connection itself is the engine's [`Attachment`].

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netctl_engine::container::Container;
use netctl_engine::runtime::attach::{Attachment, DetachKeys, Frame};
use netctl_engine::Engine;
use nix::sys::signal::{SigSet, Signal};

/// Puts our terminal in raw mode while a `-t` container is attached.
pub struct RawTerminal(rustix::termios::Termios);

impl RawTerminal {
    /// Raw mode on our stdin's terminal, restored on drop; None when stdin is no terminal.
    pub fn enter() -> Option<Self> {
        use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
        Some(Self(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}

/// Our terminal's size (rows, columns), when stdin is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    rustix::termios::tcgetwinsize(std::io::stdin())
        .ok()
        .map(|w| (w.ws_row, w.ws_col))
}

/// Sends our terminal's size to a `-t` container now and whenever it changes (SIGWINCH).
/// Call before starting other threads: they must inherit SIGWINCH blocked.
fn follow_window_size(engine: &Engine, c: &Container) {
    let send = {
        let (config, c) = (engine.config.clone(), c.clone());
        move || {
            if let (Some((rows, cols)), Ok(e)) = (terminal_size(), Engine::open(&config)) {
                let _ = netctl_engine::runtime::attach::resize(&e, &c, rows, cols);
            }
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

/// Docker's sig-proxy, for an attached container without a terminal: SIGINT, SIGTERM,
/// SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to us go to the container's first process.
fn proxy_signals(engine: &Engine, c: &Container) {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    let Ok(fd) = nix::sys::signalfd::SignalFd::new(&set) else {
        return;
    };
    let c = c.clone();
    let Ok(engine) = Engine::open(&engine.config) else {
        return;
    };
    std::thread::spawn(move || {
        while let Ok(Some(info)) = fd.read_signal() {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                let _ = netctl_engine::lifecycle::signal(&engine, &c, sig);
            }
        }
    });
}

/// Attaches to `c` (as read after it started) until it ends or the user detaches: its exit
/// code, None when detached.
pub fn attach(engine: &Engine, c: &Container) -> anyhow::Result<Option<i32>> {
    let mut conn = Attachment::connect(engine, c)?;
    if c.config.tty {
        follow_window_size(engine, c);
    }
    let _raw = c.config.tty.then(RawTerminal::enter).flatten();
    if !c.config.tty {
        proxy_signals(engine, c);
    }
    let detached = Arc::new(AtomicBool::new(false));
    if c.config.interactive {
        let (to_ctr, flag, tty) = (conn.input()?, detached.clone(), c.config.tty);
        std::thread::spawn(move || relay_stdin(to_ctr, tty, &flag));
    }
    let code = relay_frames(&mut conn);
    if detached.load(Ordering::SeqCst) {
        return Ok(None);
    }
    match code {
        Some(code) => Ok(Some(code)),
        None => {
            engine
                .sys
                .wait_gone(c.state.monitor_pid, Duration::from_secs(10));
            let mut c = c.clone();
            Ok(c.reload().ok().map(|()| c.state.exit_code))
        }
    }
}

fn relay_stdin(mut to_ctr: UnixStream, tty: bool, detached: &AtomicBool) {
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
                    detached.store(true, Ordering::SeqCst);
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
fn relay_frames(conn: &mut Attachment) -> Option<i32> {
    while let Some(frame) = conn.next_frame() {
        let _ = match frame {
            Frame::Exit(code) => return Some(code),
            Frame::Stderr(data) => std::io::stderr().write_all(&data),
            Frame::Stdout(data) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&data).and_then(|()| out.flush())
            }
        };
    }
    None
}
