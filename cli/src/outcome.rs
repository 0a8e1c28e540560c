//! What a command ends with: an exit code, or a failure with the code Docker gives it.

use netctl_engine::Error;

/// A failed command: what to print and the exit code.
pub struct Failed {
    /// What went wrong, with its causes.
    pub error: anyhow::Error,
    /// The exit code.
    pub code: u8,
}

impl<E: Into<anyhow::Error>> From<E> for Failed {
    fn from(e: E) -> Self {
        Failed {
            error: e.into(),
            code: 1,
        }
    }
}

/// A command's outcome: its exit code, or a failure.
pub type Outcome = Result<u8, Failed>;

/// Docker's exit codes for `run`, `create` and `start`: 127 when the command does not exist,
/// 126 when it cannot run, 125 for every other failure.
pub fn start_failure(e: Error) -> Failed {
    let code = match e.root() {
        Error::CommandNotFound(_) => 127,
        Error::CommandNotRunnable { .. } => 126,
        _ => 125,
    };
    Failed {
        error: e.into(),
        code,
    }
}
