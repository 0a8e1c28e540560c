//! The json-file log: one record per line, `{"log":"...\n","stream":"stdout","time":"..."}`,
//! written by the monitor and read back by `logs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::container::{Container, LogDriver};
use crate::error::{invalid, state, Context, Error, Result};
use crate::watch::{Cancel, FileWatch, Wake};
use crate::when::Instant;

/// `--log-opt max-size` / `max-file` of the json-file log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Rotate once the log reaches this many bytes (never when none).
    pub max_size: Option<u64>,
    /// How many files to keep, the live one included (1: the log is cut back to empty).
    pub max_file: u32,
}

/// The json-file options Docker knows; netctl acts on max-size and max-file.
const KNOWN_OPTS: [&str; 8] = [
    "max-size",
    "max-file",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

/// Checks `--log-opt`s for `driver` as Docker does; the rotation they ask for.
pub fn rotation(driver: LogDriver, opts: &BTreeMap<String, String>) -> Result<Rotation> {
    if driver == LogDriver::None {
        if let Some(k) = opts.keys().next() {
            invalid!("unknown log opt '{k}' for none log driver");
        }
        return Ok(Rotation::default());
    }
    if let Some(k) = opts.keys().find(|k| !KNOWN_OPTS.contains(&k.as_str())) {
        invalid!("unknown log opt '{k}' for json-file log driver");
    }
    let max_size = opts
        .get("max-size")
        .map(|v| crate::runtime::resources::parse_bytes(v))
        .transpose()?
        .filter(|&n| n > 0);
    let max_file = match opts.get("max-file") {
        None => 1,
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| {
                Error::Invalid(format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
            })?;
            if n < 1 {
                invalid!("max-file cannot be less than 1");
            }
            u32::try_from(n).unwrap_or(u32::MAX)
        }
    };
    // Without max-size nothing is rotated, and max-file has nothing to count (Docker 20.10
    // takes the pair so too).
    Ok(Rotation { max_size, max_file })
}

/// The json-file log as the monitor writes it, rotated as asked.
pub struct LogWriter {
    file: File,
    path: PathBuf,
    size: u64,
    rotation: Rotation,
}

impl LogWriter {
    /// Opens (appending) the log at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> Result<Self> {
        let file = append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            file,
            path: path.to_path_buf(),
            size,
            rotation,
        })
    }

    /// Appends a whole record; first rotates when the record would take the log past its
    /// size, as Docker's json-file does (a record is never split).
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let len = bytes.len() as u64;
        if let Some(max) = self.rotation.max_size {
            if self.size > 0 && self.size + len > max {
                self.rotate()?;
            }
        }
        self.file
            .write_all(bytes)
            .ctx(|| format!("write {}", self.path.display()))?;
        self.size += len;
        Ok(())
    }

    /// `<log>.1` is the newest old file, `<log>.N` the oldest kept; with one file the log
    /// is cut back to empty.
    fn rotate(&mut self) -> Result<()> {
        if self.rotation.max_file <= 1 {
            self.file
                .set_len(0)
                .ctx(|| format!("truncate {}", self.path.display()))?;
        } else {
            for n in (1..self.rotation.max_file - 1).rev() {
                let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))
                .ctx(|| format!("rotate {}", self.path.display()))?;
            self.file = append(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn append(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ctx(|| format!("open {}", path.display()))
}

/// The `n`th old file of a log.
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_os_string();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

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
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep following while the container runs.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Only records written at or after this instant.
    pub since: Option<Instant>,
    /// Only records written at or before this instant (following stops there).
    pub until: Option<Instant>,
    /// Stops following at once, between records too (a client that went away).
    pub cancel: Option<Cancel>,
}

impl LogOptions {
    fn wants(&self, rec: &Record) -> bool {
        let at = crate::when::of_rfc3339(&rec.time).unwrap_or_default();
        self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at <= u)
    }
}

/// Hands each record of the container's log to `each`: those within `since`/`until`, the
/// last `tail` of them, then (with `follow`) new ones as they come, until the container
/// stops (or `until` passes). Rotated files are read first, oldest first. A log not yet
/// written is empty.
pub fn read(
    c: &Container,
    opts: LogOptions,
    mut each: impl FnMut(&Record) -> Result<()>,
) -> Result<()> {
    if c.config.log_driver == LogDriver::None {
        state!("configured logging driver does not support reading");
    }
    let path = c.log_path();
    let mut old = Vec::new();
    for n in 1.. {
        let p = rotated(&path, n);
        if !p.exists() {
            break;
        }
        old.push(p);
    }
    let mut lines = Vec::new();
    for p in old.iter().rev() {
        if let Ok(f) = File::open(p) {
            read_lines(&mut BufReader::new(f), &mut lines, p)?;
        }
    }
    let file = match File::open(&path) {
        Ok(f) => Some(f),
        Err(_) if !opts.follow => None,
        Err(e) => return Err(e).ctx(|| format!("open {}", path.display())),
    };
    let mut reader = file.map(BufReader::new);
    if let Some(r) = reader.as_mut() {
        read_lines(r, &mut lines, &path)?;
    }
    let records: Vec<Record> = lines
        .iter()
        .filter_map(|l| parse(l))
        .filter(|r| opts.wants(r))
        .collect();
    let skip = opts.tail.map_or(0, |n| records.len().saturating_sub(n));
    for r in &records[skip..] {
        each(r)?;
    }
    match reader {
        Some(r) if opts.follow => follow(c, &path, r, &opts, each),
        _ => Ok(()),
    }
}

/// Every line left in `r`, ended or not.
fn read_lines(r: &mut BufReader<File>, lines: &mut Vec<String>, path: &Path) -> Result<()> {
    let mut line = String::new();
    while r
        .read_line(&mut line)
        .ctx(|| format!("read {}", path.display()))?
        > 0
    {
        lines.push(std::mem::take(&mut line));
    }
    Ok(())
}

/// Follows the live log while the container runs: across a rotation (the path names a new
/// file) and a cut back to empty (the file is shorter than what was read). Between records
/// it sleeps on a watch of the container's folder (the log and the state live there),
/// never polling.
fn follow(
    c: &Container,
    path: &Path,
    mut reader: BufReader<File>,
    opts: &LogOptions,
    mut each: impl FnMut(&Record) -> Result<()>,
) -> Result<()> {
    let watch = FileWatch::folder(&c.dir)?;
    let mut c = c.clone();
    let mut line = String::new();
    let mut emit = |l: &str| match parse(l) {
        Some(r) if opts.wants(&r) => each(&r),
        _ => Ok(()),
    };
    loop {
        if reader
            .read_line(&mut line)
            .ctx(|| format!("read {}", path.display()))?
            > 0
        {
            // A line still being written is kept until it ends.
            if line.ends_with('\n') {
                emit(&line)?;
                line.clear();
            }
            continue;
        }
        if opts.until.is_some_and(|u| crate::when::now() >= u) {
            return Ok(());
        }
        if c.reload().is_err() || !c.is_running() {
            let mut rest = Vec::new();
            read_lines(&mut reader, &mut rest, path)?;
            for l in rest {
                emit(&l)?;
            }
            return Ok(());
        }
        let here = reader.get_ref().metadata().ok();
        let there = std::fs::metadata(path).ok();
        let moved = matches!((&here, &there), (Some(a), Some(b)) if a.ino() != b.ino());
        let pos = reader.stream_position().unwrap_or(0);
        if moved {
            if let Ok(f) = File::open(path) {
                reader = BufReader::new(f);
            }
        } else if here.is_some_and(|m| m.len() < pos) {
            reader
                .rewind()
                .ctx(|| format!("rewind {}", path.display()))?;
        } else {
            let left = opts.until.map(|u| {
                u.saturating_sub(crate::when::now())
                    .max(Duration::from_millis(1))
            });
            if watch.wait(opts.cancel.as_ref(), left) == Wake::Cancelled {
                return Ok(());
            }
        }
    }
}

fn parse(line: &str) -> Option<Record> {
    serde_json::from_str::<Record>(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_opts_are_checked_as_dockers_are() {
        let opts = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            rotation(
                LogDriver::JsonFile,
                &opts(&[("max-size", "1k"), ("max-file", "3")])
            )
            .unwrap(),
            Rotation {
                max_size: Some(1024),
                max_file: 3
            }
        );
        for (bad, says) in [
            (
                &[("colour", "red")][..],
                "unknown log opt 'colour' for json-file log driver",
            ),
            (
                &[("max-size", "1k"), ("max-file", "0")],
                "max-file cannot be less than 1",
            ),
            (&[("max-size", "lots")], "invalid size"),
        ] {
            let e = rotation(LogDriver::JsonFile, &opts(bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_rotated_log_keeps_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(
            &path,
            Rotation {
                max_size: Some(10),
                max_file: 3,
            },
        )
        .unwrap();
        for i in 0..5 {
            w.write(format!("record {i}\n").as_bytes()).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(rotated(&path, 1)).unwrap(),
            "record 3\n"
        );
        assert_eq!(
            std::fs::read_to_string(rotated(&path, 2)).unwrap(),
            "record 2\n"
        );
        assert!(!rotated(&path, 3).exists());
        let mut one = LogWriter::open(
            &path,
            Rotation {
                max_size: Some(10),
                max_file: 1,
            },
        )
        .unwrap();
        one.write(b"0123456789ab\n").unwrap();
        one.write(b"x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n");
    }
}
