//! A layer 3 TUN device: the kernel hands its outgoing IP packets to the process holding
//! its descriptor, and takes IP packets from it as if they had arrived on the device. The
//! device lives as long as the descriptor (nothing is left when its holder dies).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::error::NetError;

const IFF_TUN: i16 = 0x0001;
const IFF_NO_PI: i16 = 0x1000;

nix::ioctl_write_ptr_bad!(tunsetiff, 0x4004_54ca, nix::libc::ifreq);

/// Creates the TUN device `name` (IP packets without extra header), non-blocking; the
/// descriptor that holds it. `name` must be a validated interface name.
pub fn create_tun(name: &str) -> Result<OwnedFd, NetError> {
    let fail = |source: std::io::Error| NetError::Netlink {
        what: format!("create TUN device {name} (/dev/net/tun)"),
        source,
    };
    let fd = open(
        "/dev/net/tun",
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(e.into()))?;
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: nix::libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(fail(std::io::Error::from(std::io::ErrorKind::InvalidInput)));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as nix::libc::c_char;
    }
    req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
    // SAFETY: TUNSETIFF reads one ifreq, which `req` is, from a valid pointer; the
    // descriptor is an open /dev/net/tun.
    unsafe { tunsetiff(fd.as_raw_fd(), &req) }.map_err(|e| fail(e.into()))?;
    Ok(fd)
}
