//! `-t`: the container's terminal is made inside its own /dev/pts (so `tty` names
//! /dev/pts/0 there), and its master end is passed to the monitor over a unix socket with
//! SCM_RIGHTS, as runc's console socket does.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::error::{Context, Result};
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

fn open_tty(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(path)
}

/// A new terminal in the devpts instance mounted at `pts` (of `size` rows and columns
/// when given): its master and slave ends.
pub fn pair(pts: &Path, size: Option<(u16, u16)>) -> Result<(File, File)> {
    let master = open_tty(&pts.join("ptmx")).ctx(|| "open the container's /dev/pts/ptmx".into())?;
    rustix::pty::unlockpt(&master).ctx(|| "unlock the terminal".into())?;
    let name = rustix::pty::ptsname(&master, Vec::new()).ctx(|| "name the terminal".into())?;
    let number = name
        .to_string_lossy()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let slave = open_tty(&pts.join(number)).ctx(|| "open the terminal's slave end".into())?;
    if let Some((rows, cols)) = size {
        rustix::termios::tcsetwinsize(&slave, super::attach::winsize(rows, cols))
            .ctx(|| "size the terminal".into())?;
    }
    Ok((master, slave))
}

/// In the container (before pivoting into its root): makes a terminal in its own devpts
/// instance, mounted at `pts` (of `size` rows and columns when given), sends the master to
/// `socket`, and makes the slave our stdin, stdout and stderr.
pub fn make_in_container(pts: &Path, socket: &Path, size: Option<(u16, u16)>) -> Result<()> {
    let (master, slave) = pair(pts, size)?;
    let stream = UnixStream::connect(socket).ctx(|| format!("connect to {}", socket.display()))?;
    let fds = [master.as_fd()];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(&stream, &[IoSlice::new(b"t")], &mut anc, SendFlags::empty())
        .ctx(|| "send the terminal".into())?;
    rustix::stdio::dup2_stdin(&slave).ctx(|| "make the terminal the container's stdin".into())?;
    rustix::stdio::dup2_stdout(&slave).ctx(|| "make the terminal the container's stdout".into())?;
    rustix::stdio::dup2_stderr(&slave).ctx(|| "make the terminal the container's stderr".into())?;
    Ok(())
}

/// In the monitor: the master end the container sent.
pub fn receive(listener: &UnixListener) -> Result<File> {
    listener
        .set_nonblocking(true)
        .ctx(|| "wait for the container's terminal".into())?;
    let (stream, _) = listener
        .accept()
        .ctx(|| "the container sent no terminal".into())?;
    stream
        .set_nonblocking(false)
        .ctx(|| "read the container's terminal".into())?;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut byte)],
        &mut anc,
        RecvFlags::CMSG_CLOEXEC,
    )
    .ctx(|| "receive the container's terminal".into())?;
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(File::from(fd));
            }
        }
    }
    Err(crate::error::Error::State(
        "the container's terminal did not arrive".into(),
    ))
}
