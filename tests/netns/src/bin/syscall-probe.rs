//! `syscall-probe`: makes the system calls a container's seccomp profile decides about and
//! prints how each went, one `name=OK` or `name=<errno>` per line. The tests copy it into an
//! image (it is static) and compare what containers get with what Docker's profile allows.
#![allow(unsafe_code)]

use nix::libc;

/// The outcome of a raw system call.
fn outcome(ret: libc::c_long) -> String {
    if ret >= 0 {
        "OK".into()
    } else {
        nix::errno::Errno::last().to_string()
    }
}

fn main() {
    let attr = [0u8; 128];
    let mut attr = attr;
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes()); // perf_event_attr.size
    let mut uring = [0u8; 120];
    let name = c"user";
    let desc = c"netctl-probe";
    let cwd = &mut [0u8; 256];
    // SAFETY: each call gets pointers to buffers that live across it, of the sizes the
    // kernel reads; none of them changes this process in a way the probe relies on.
    let calls: [(&str, libc::c_long); 7] = unsafe {
        [
            ("getpid", libc::syscall(libc::SYS_getpid)),
            (
                "keyctl",
                libc::syscall(
                    libc::SYS_keyctl,
                    0,  /* GET_KEYRING_ID */
                    -3, /* session */
                    0,
                ),
            ),
            (
                "add_key",
                libc::syscall(
                    libc::SYS_add_key,
                    name.as_ptr(),
                    desc.as_ptr(),
                    desc.as_ptr(),
                    12,
                    -2,
                ),
            ),
            (
                "perf_event_open",
                libc::syscall(libc::SYS_perf_event_open, attr.as_mut_ptr(), 0, -1, -1, 0),
            ),
            (
                "io_uring_setup",
                libc::syscall(libc::SYS_io_uring_setup, 1, uring.as_mut_ptr()),
            ),
            (
                "personality",
                libc::syscall(
                    libc::SYS_personality,
                    0x0040000, /* ADDR_NO_RANDOMIZE */
                ),
            ),
            (
                "getcwd",
                libc::syscall(libc::SYS_getcwd, cwd.as_mut_ptr(), cwd.len()),
            ),
        ]
    };
    for (name, ret) in calls {
        println!("{name}={}", outcome(ret));
    }
    // SAFETY: unshare takes flags only; the new user namespace is this process's alone.
    let userns = unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) };
    println!("unshare_user={}", outcome(userns));
}
