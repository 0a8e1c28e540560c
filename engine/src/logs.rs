//! The json-file log: one record per line, `{"log":"...\n","stream":"stdout","time":"..."}`,
//! written by the monitor and read back by `logs`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::container::{Container, LogDriver};
use crate::error::{state, Context, Result};

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The line, with its newline.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When it was written (RFC 3339).
    pub time: String,
}

impl Record {
    /// Whether it came from stderr.
    pub fn is_stderr(&self) -> bool {
        self.stream == "stderr"
    }
}

/// How much of the log to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOptions {
    /// Keep following while the container runs.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
}

/// Hands each record of the container's log to `each`: the last `tail` ones, then (with
/// `follow`) new ones as they come, until the container stops. A log not yet written is
/// empty.
pub fn read(
    c: &Container,
    opts: LogOptions,
    mut each: impl FnMut(&Record) -> Result<()>,
) -> Result<()> {
    if c.config.log_driver == LogDriver::None {
        state!("configured logging driver does not support reading");
    }
    let path = c.log_path();
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(_) if !opts.follow => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("open {}", path.display())),
    };
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut line = String::new();
    let read = |r: &mut BufReader<File>, l: &mut String| {
        r.read_line(l).ctx(|| format!("read {}", path.display()))
    };
    while read(&mut reader, &mut line)? > 0 {
        lines.push(std::mem::take(&mut line));
    }
    let skip = opts.tail.map_or(0, |n| lines.len().saturating_sub(n));
    for l in &lines[skip..] {
        emit(l, &mut each)?;
    }
    if !opts.follow {
        return Ok(());
    }
    let mut c = c.clone();
    loop {
        if read(&mut reader, &mut line)? > 0 {
            // A line still being written is kept until it ends.
            if line.ends_with('\n') {
                emit(&line, &mut each)?;
                line.clear();
            }
            continue;
        }
        if c.reload().is_err() || !c.is_running() {
            while read(&mut reader, &mut line)? > 0 {
                emit(&line, &mut each)?;
                line.clear();
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn emit(line: &str, each: &mut impl FnMut(&Record) -> Result<()>) -> Result<()> {
    match serde_json::from_str::<Record>(line) {
        Ok(rec) => each(&rec),
        Err(_) => Ok(()),
    }
}
