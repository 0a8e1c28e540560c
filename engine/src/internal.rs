//! The entry point of the engine's own processes ([`Internal`] commands): a binary that
//! links the engine calls [`run_internal`] with its arguments before anything else.

use crate::runtime::Internal;

/// Runs the internal command these arguments (with the program name) start, if they start
/// one: then the process's exit status (for the monitor, the container's), else None.
pub fn run_internal(args: &[String]) -> Option<i32> {
    netctl_cni::fsutil::cloexec_inherited();
    Some(match Internal::parse(args.get(1..)?)? {
        Internal::Monitor {
            config,
            id,
            attach,
            tty_size,
        } => crate::runtime::monitor::run(&config, &id, attach, tty_size),
        Internal::Launch(monitor) => crate::runtime::monitor::launch(&monitor),
        Internal::Init(spec) => crate::runtime::init::stage1(&spec),
        Internal::Init2(spec) => crate::runtime::init::stage2(&spec),
        Internal::Exec(spec) => crate::runtime::exec::helper(&spec),
        Internal::Copy(spec) => crate::copy::helper(&spec),
    })
}
